"""import-lfs: git-lfs pointers of the current commit converted to mvc pointers."""

from __future__ import annotations

import click

from mvc import progress as progressmod
from mvc.api import import_lfs as api
from mvc.cli.common import echo_json, human, json_option, quiet_option


@click.command("import-lfs")
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("--push", is_flag=True, help="Then push the imported objects to the mvc remote.")
@click.option("-r", "--remote", metavar="NAME", help="The remote --push uses (default: the default remote).")
@click.option("--no-fetch", is_flag=True, help="Never run 'git lfs fetch': fail if .git/lfs/objects lacks an object.")
@click.option("--no-history", is_flag=True, help="Do not store the git-lfs content of older revisions.")
@click.option(
    "--no-stage", is_flag=True, help="Do not stage the change in git (nor 'git rm --cached' the old pointers)."
)
@json_option
@quiet_option
def import_lfs(
    paths: tuple[str, ...],
    push: bool,
    remote: str | None,
    no_fetch: bool,
    no_history: bool,
    no_stage: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Convert the git-lfs files of the current commit (or those under PATHS) to mvc.

    \b
    Each object is taken from .git/lfs/objects (or 'git lfs fetch'), checked against
    its sha256 and size, stored in the cache; PATH.mvc is written, PATH holds the
    model, the old pointer leaves the index, and the filter=lfs lines whose every file
    was converted leave .gitattributes. .mvc/imported.toml maps the git-lfs content
    to mvc objects, so older revisions stay readable. History is not rewritten.
    Nothing is written unless every object is found and checked, and a failure while
    writing puts every file and the index back. A failed --push leaves the import
    staged and names the commands that push it again. Run again (after 'git lfs
    fetch --all', say), it maps the older versions now in .git/lfs/objects and
    leaves what is imported alone; with nothing new it says so and exits 0.

    \b
    Example:
      mvc import-lfs --push
      git commit -m "move the models from git-lfs to mvc"
    """
    r = api.import_lfs(
        paths,
        push=push,
        remote=remote,
        fetch=not no_fetch,
        history=not no_history,
        stage=not no_stage,
        progress=progressmod.terminal(quiet),
    )
    if as_json:
        echo_json(r)
        return
    h = r["history"]
    if r["not_pointers"]:
        n, first = len(r["not_pointers"]), r["not_pointers"][0]
        click.echo(
            f"left in git: {n} file{'s' if n != 1 else ''} a git-lfs line names but git holds as plain files, not "
            f"git-lfs pointers (first: {first}): 'git lfs migrate import' them first, or 'mvc add' them"
        )
    lacking = f"{h['missing']} not in .git/lfs/objects ('git lfs fetch --all', then 'mvc import-lfs' again)"
    if r["up_to_date"]:
        older = f"; older versions: {lacking}" if h["missing"] else ""
        click.echo(f"nothing new to import: the git-lfs files are in mvc already{older}")
        return
    for row in r["imported"]:
        click.echo(f"imported {row['path']} ({human(row['size'])}, from {row['source']})")
    if h["stored"] or h["missing"]:
        stored = f"{h['stored']} older version{'' if h['stored'] == 1 else 's'}"
        click.echo(f"stored {stored} for reading old revisions{'; ' + lacking if h['missing'] else ''}")
    for line in r["attributes"]:
        click.echo(f"removed from {line}")
    if "push" in r:
        p = r["push"]
        click.echo(f"pushed {p['uploaded']} object(s) ({human(p['bytes'])}) to {p['remote']}")
