"""Commands that bring another tool's repository over to mvc: ``mvc import-dvc``. (``mvc import-lfs`` lives in
``mvc/cli/migrate_lfs.py``.)"""

from __future__ import annotations

import click

from mvc.cli.common import bars, echo_json, json_option, quiet_option, safe, shown_path


@click.command("import-dvc")
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("--no-history", is_flag=True, help="Import only the versions the work tree names, not older commits'.")
@click.option("--dvc-remote", metavar="NAME", help="The DVC remote to fetch what DVC's cache lacks (default: DVC's).")
@click.option("--push", "push", is_flag=True, help="Then push everything imported to the mvc remote.")
@click.option("-r", "--remote", metavar="NAME", help="The mvc remote --push uploads to (default: the default one).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N", help="Files hashed or fetched at once.")
@json_option
@quiet_option
def import_dvc(
    paths: tuple[str, ...],
    no_history: bool,
    dvc_remote: str | None,
    push: bool,
    remote: str | None,
    jobs: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Convert this DVC repository's outputs (or those under PATHS) into mvc pointers, staged for one commit.

    \b
    Every .dvc file (and every cached output of dvc.lock) becomes PATH.mvc with
    DVC's desc/meta kept in [meta.dvc]; the .dvc files are removed, DVC's remotes
    become mvc remotes (URL + /mvc; credentials only in config.local.toml), and
    .mvc/imported.toml maps DVC's md5s to mvc's objects so that older revisions
    (checkout --rev, get --rev, log, GTO tags) still read. Content is hashed from
    DVC's cache (linked where possible) or fetched once from the DVC remote, its
    md5 checked. All or nothing: on any error, nothing is written. Review with
    'git status', then commit. Run again, it imports only what is new (a .dvc
    file merged since, a new stage output, older versions now in DVC's cache)
    and leaves what mvc tracks alone; with nothing new it says so and exits 0.

    \b
    Example:
      mvc import-dvc
      mvc import-dvc --push -r storage
      mvc import-dvc new.pt.dvc
    """
    from mvc.api.import_dvc import import_dvc as run

    r = run(
        paths,
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
    missing, unreached = len(r["history_missing"]), len(r["history_unreachable"])
    # older versions not imported: absent (DVC's own fix) or DVC's remote not reached (reconnect, run again)
    away = (
        f"{_n(unreached, 'older version')} not read: {r['dvc_remote_error']} (reconnect it, then run 'mvc "
        "import-dvc' again)"
        if unreached
        else ""
    )
    if r["up_to_date"]:
        lacking = [f"{_n(missing, 'older version')} in neither DVC's cache nor its remote"] if missing else []
        click.echo(
            "; ".join(
                ["nothing new to import: every DVC output here is in mvc already", *lacking, *([away] if away else [])]
            )
        )
        return
    fetched = f", {r['fetched']} fetched from DVC's remote" if r["fetched"] else ""
    if r["from_worktree"]:  # DVC's cache and remote lacked them: the work tree held the very bytes
        fetched += f", {r['from_worktree']} taken from the work tree, md5 checked: DVC's cache and remote lack it"
    if r["paths"]:
        click.echo(f"imported {_n(len(r['paths']), 'DVC output')} ({_n(r['objects'], 'version')}{fetched})")
    for path in r["paths"]:
        click.echo(f"  {path}")
    for d in r["dvc_imports"]:  # the link 'dvc update' follows goes with the .dvc file
        at = f"{d['url']}@{d['rev']}" if d["rev"] else d["url"]
        click.echo(
            f"{shown_path(d['dvc_file'])}: 'dvc import' of {safe(d['path'])} from {safe(at)}: mvc keeps this "
            "version, not that link (no 'dvc update': take a newer version from there and 'mvc add' it)"
        )
    if r["kept"]:
        click.echo(f"left alone: {_n(len(r['kept']), 'DVC output')} mvc tracks already")
    if r["history_versions"] or missing or unreached:
        lacking = [f"{missing} not (in neither DVC's cache nor its remote)"] if missing or not unreached else []
        said = "; ".join([*lacking, *([away] if away else [])])
        click.echo(f"older revisions: {_n(r['history_versions'], 'version')} now readable, {said}")
    for name in r["remotes"]:
        click.echo(f"remote {name}: added (DVC's URL + /mvc)")
    if r["pushed"] is not None:
        click.echo(f"pushed {_n(r['pushed']['uploaded'], 'object')} to {r['pushed']['remote']}")
    click.echo("staged: review with 'git status', then 'git commit'")


def _n(count: int, noun: str) -> str:
    """'1 version', '2 versions'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
