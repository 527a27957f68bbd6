"""Commands that bring another tool's repository over to mvc: ``mvc import-dvc``. (``mvc import-lfs`` lives in
``mvc/cli/migrate_lfs.py``.)"""

from __future__ import annotations

import click

from mvc.cli.common import bars, echo_json, json_option, quiet_option


@click.command("import-dvc")
@click.option("--no-history", is_flag=True, help="Import only the versions the work tree names, not older commits'.")
@click.option("--dvc-remote", metavar="NAME", help="The DVC remote to fetch what DVC's cache lacks (default: DVC's).")
@click.option("--push", "push", is_flag=True, help="Then push everything imported to the mvc remote.")
@click.option("-r", "--remote", metavar="NAME", help="The mvc remote --push uploads to (default: the default one).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N", help="Files hashed or fetched at once.")
@json_option
@quiet_option
def import_dvc(
    no_history: bool,
    dvc_remote: str | None,
    push: bool,
    remote: str | None,
    jobs: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Convert this DVC repository's outputs into mvc pointers, staged for one commit.

    \b
    Every .dvc file (and every cached output of dvc.lock) becomes PATH.mvc with
    DVC's desc/meta kept in [meta.dvc]; the .dvc files are removed, DVC's remotes
    become mvc remotes (URL + /mvc; credentials only in config.local.toml), and
    .mvc/imported.toml maps DVC's md5s to mvc's objects so that older revisions
    (checkout --rev, get --rev, log, GTO tags) still read. Content is hashed from
    DVC's cache (linked where possible) or fetched once from the DVC remote, its
    md5 checked. All or nothing: on any error, nothing is written. Review with
    'git status', then commit.

    \b
    Example:
      mvc import-dvc
      mvc import-dvc --push -r storage
    """
    from mvc.api.import_dvc import import_dvc as run

    r = run(
        history=not no_history,
        dvc_remote=dvc_remote,
        push=push,
        remote=remote,
        jobs=jobs,
        progress=bars(quiet),
    )
    if as_json:
        echo_json(r)
        return
    click.echo(
        f"imported {len(r['paths'])} DVC outputs ({r['objects']} versions, {r['fetched']} fetched from DVC's remote)"
    )
    for path in r["paths"]:
        click.echo(f"  {path}")
    if r["history_versions"] or r["history_missing"]:
        click.echo(
            f"older revisions: {r['history_versions']} versions readable, "
            f"{len(r['history_missing'])} not (in neither DVC's cache nor its remote)"
        )
    for name in r["remotes"]:
        click.echo(f"remote {name}: added (DVC's URL + /mvc)")
    if r["pushed"] is not None:
        click.echo(f"pushed {r['pushed']['uploaded']} objects to {r['pushed']['remote']}")
    click.echo("staged: review with 'git status', then 'git commit'")
