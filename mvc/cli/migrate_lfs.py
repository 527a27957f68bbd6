"""import-lfs: git-lfs pointers of the current commit converted to mvc pointers."""

from __future__ import annotations

import click

from mvc import progress as progressmod
from mvc.api import import_lfs as api
from mvc.cli.common import echo_json, human, json_option, quiet_option
from mvc.format.pointer import shell_quoted


@click.command("import-lfs")
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("--push", is_flag=True, help="Then push the imported objects to the mvc remote.")
@click.option("-r", "--remote", metavar="NAME", help="The remote --push uses (default: the default remote).")
@click.option("--no-fetch", is_flag=True, help="Never run 'git lfs fetch': fail if .git/lfs/objects lacks an object.")
@click.option("--no-history", is_flag=True, help="Do not store the git-lfs content of older revisions.")
@click.option(
    "--no-stage",
    is_flag=True,
    help="Do not stage the change in git (nor 'git rm --cached' the old pointers); print the commands that do.",
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
    leaves what is imported alone, stages what a --no-stage run left, and imports
    the git-lfs files a branch from before the import brought in a merge; with
    nothing new it says so and exits 0.

    \b
    Commits from before the import track the converted paths in git: 'git checkout'
    of one overwrites changes not yet 'mvc add'ed ('git checkout --no-overwrite-ignore'
    refuses instead).

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
    if r["not_covered"]:
        n, first = len(r["not_covered"]), r["not_covered"][0]
        click.echo(
            f"left in git: {n} git-lfs pointer{'s' if n != 1 else ''} no filter=lfs line covers, never a git-lfs "
            f"file in HEAD's history (first: {first}): name {'them' if n != 1 else 'it'} to import "
            f"('mvc import-lfs {shell_quoted(first)}'), else git keeps the pointer text"
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
    if r["staged_now"]:
        n = len(r["staged_now"])
        click.echo(f"staged what an import with --no-stage left unstaged: {n} file{'s' if n != 1 else ''}")
    if r["old_commits_track"]:
        click.echo(
            "note: commits from before the import hold these paths in git, and 'git checkout' of one overwrites "
            "their changes not yet 'mvc add'ed without a word: 'mvc add' first, or 'git checkout --no-overwrite-ignore'"
        )
    if r["not_staged"]["remove"] or r["not_staged"]["add"]:
        click.echo(
            "not staged (--no-stage): 'git add -A' or 'git commit -a' before these commands would commit the "
            "weights into git; stage the import with them (or run 'mvc import-lfs' again):"
        )
        for command in _stage_commands(r["not_staged"]):
            click.echo(f"  {command}")
    if "push" in r:
        p = r["push"]
        click.echo(f"pushed {p['uploaded']} object(s) ({human(p['bytes'])}) to {p['remote']}")


def _stage_commands(todo: dict[str, list[str]]) -> list[str]:
    """The git commands that stage what an import with --no-stage wrote, ready to paste."""

    def git(args: str, paths: list[str]) -> str:
        # git reads a path after '--' as a pattern: one with pattern characters must be read literally
        literal = any(c in p for p in paths for c in "*?[\\") or any(p.startswith(":") for p in paths)
        return f"git {'--literal-pathspecs ' if literal else ''}{args} -- {' '.join(shell_quoted(p) for p in paths)}"

    out = [git("rm --cached -q", todo["remove"])] if todo["remove"] else []
    add = [p for p in todo["add"] if p != api.IMPORTED_REL]
    if add:
        out.append(git("add", add))
    if api.IMPORTED_REL in todo["add"]:
        out.append(git("add -f", [api.IMPORTED_REL]))  # .mvc/.gitignore may hide it from a plain 'git add'
    return out
