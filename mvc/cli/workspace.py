"""init, add, status, checkout, get, ls, unprotect, config."""

from __future__ import annotations

import os

import click

from mvc.api import listing
from mvc.api import workspace as api
from mvc.cli.common import (
    bars,
    echo_checkout,
    echo_json,
    human,
    json_option,
    quiet_option,
    repo_option,
    rev_option,
    short,
    shown_path,
    start_dir,
    unicode_only,
    user_path,
    user_url,
)
from mvc.errors import ConfigError, PathError


@click.command()
@click.option("--no-stage", is_flag=True, help="Do not stage .mvc/config.toml and .mvc/.gitignore in git.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when it succeeds.")
def init(no_stage: bool, quiet: bool) -> None:
    """Set up mvc in the current git repository (idempotent).

    \b
    Creates .mvc/config.toml (commit it) and .mvc/.gitignore, which keeps the cache,
    the state database and config.local.toml out of git.

    \b
    Example:
      git init && mvc init
    """
    res = api.init(stage=not no_stage)
    if not quiet:
        click.echo(("Initialized mvc in " if res["created"] else "mvc is already set up in ") + shown_path(res["root"]))


def _parse_meta(items: tuple[str, ...], files: tuple[str, ...]) -> list[dict]:
    """The records to merge, in order: each --meta-file, then each --meta (docs/FORMAT.md, "The record")."""
    from mvc.api import record

    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. --meta accuracy=0.93)", param_hint="--meta")
    return [record.load_file(user_path(f)) for f in files] + [record.parse_item(item) for item in items]


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
@click.option(
    "--meta",
    "-m",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set KEY in the pointer's [meta] table (repeatable): a.b=1 nests, [..] {..} '..' are TOML; KEY= removes KEY.",
)
@click.option(
    "--meta-file",
    multiple=True,
    metavar="FILE",
    help="Merge a record from a JSON, TOML or YAML file into [meta] (repeatable, in order; --meta applies last).",
)
@click.option("--no-auto", is_flag=True, help="Record no [auto] table (time, user, commit, model summary).")
@click.option("--no-stage", is_flag=True, help="Do not stage the pointer and .gitignore in git.")
@click.option("--name", metavar="NAME", help="Model name for the registry, kept in .mvc/config.toml [models.NAME].")
@click.option(
    "--base",
    metavar="REV",
    help="Push the new version as deltas against the path's version at REV (a directory: each file against the file "
    "at its path in the directory at REV; default: the previous one).",
)
@quiet_option
def add(
    paths: tuple[str, ...],
    meta: tuple[str, ...],
    meta_file: tuple[str, ...],
    no_auto: bool,
    no_stage: bool,
    name: str | None,
    base: str | None,
    quiet: bool,
) -> None:
    """Track files or directories: store them in the cache and write PATH.mvc pointers.

    \b
    The path is added to the .gitignore beside it, and the pointer and .gitignore are
    staged in git. Re-adding an unchanged path does no hashing.

    \b
    Example:
      mvc add model.safetensors --meta accuracy=0.93
      mvc add model.safetensors --meta metrics.auc=0.91 --meta-file params.json
      git commit -m "churn model v2"
      mvc add models/churn.pt --name churn   # a named model: mvc register churn
      mvc add model.safetensors --base churn@v1.0.0   # fine-tuned from v1.0.0
    """
    layers = _parse_meta(meta, meta_file)
    auto = False if no_auto else None
    for r in api.add(paths, meta=layers, stage=not no_stage, name=name, base=base, auto=auto, progress=bars(quiet)):
        what = f"{r['nfiles']} file{'' if r['nfiles'] == 1 else 's'}, " if r["kind"] == "dir" else ""
        detail = f"({what}{human(r['size'])}, {short(r['oid'])})"
        if r["changed"]:
            click.echo(f"added {shown_path(r['path'])} {detail}")
        elif r["stored"]:  # e.g. after cache.dir changed: the pointer was right, the cache lacked its content
            click.echo(f"stored {shown_path(r['path'])} in the cache, pointer unchanged {detail}")
        else:
            click.echo(f"unchanged {shown_path(r['path'])} {detail}")
        if r.get("renamed_from"):
            click.echo(f"model {r['name']} now names {shown_path(r['path'])} (was {r['renamed_from']})")
        elif r.get("named"):
            click.echo(f"model {r['name']} now names {shown_path(r['path'])} (in .mvc/config.toml)")


_WS = {"ok": "up to date", "modified": "modified", "missing": "missing from workspace", "conflicted": "conflicted"}


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("-r", "--remote", metavar="REMOTE", help="Also show what is not pushed to, or not fetched from, REMOTE.")
@click.option(
    "--files", "list_files", is_flag=True, help="Of a modified directory, list the files added, removed or modified."
)
@json_option
@quiet_option
def status(paths: tuple[str, ...], remote: str | None, list_files: bool, as_json: bool, quiet: bool) -> None:
    """Show, per tracked path, whether the workspace and the cache match its pointer.

    \b
    States: up to date, modified, missing from workspace, missing from cache,
    conflicted (a pointer left with merge conflict markers);
    with -r REMOTE also: not pushed, not fetched, missing from cache and remote.

    \b
    Example:
      mvc status
      mvc status models/ --json
      mvc status data/ --files
      mvc status -r origin
    """
    rows = listing.status(paths, files=list_files, progress=bars(quiet))
    if remote is not None:
        from mvc.api import sync

        on_remote = {r["path"]: r for r in sync.status(paths, remote=remote)}
        for r in rows:
            r["remote"] = on_remote.get(r["path"])
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("nothing tracked yet: run 'mvc add PATH'")
    for r in rows:
        if r["workspace"] == "conflicted" and not r["unmerged"]:
            prel = shown_path(r["pointer"])
            click.echo(
                f"{shown_path(r['path'])}: conflicted: its pointer holds merge conflict markers, but no merge left it "
                f"unmerged (they were written or committed so): restore a good version ('git checkout -- {prel}', or "
                f"one an earlier commit holds: 'git log -p -- {prel}', then 'git checkout COMMIT -- {prel}'), or "
                f"'git rm {prel}'"
            )
            continue
        if r["workspace"] == "conflicted":
            prel = shown_path(r["pointer"])
            click.echo(
                f"{shown_path(r['path'])}: conflicted: a merge left its pointer unmerged (keep one side with 'git checkout "
                f"--ours {prel}' or --theirs, or 'git rm {prel}' to take a side's deletion; 'git add {prel}'; then "
                f"'mvc checkout {shown_path(r['path'])}')"
            )
            continue
        states = [] if r["workspace"] == "ok" else [_WS[r["workspace"]]]
        if r.get("other"):  # (after a git reset or rebase without mvc checkout: the next add would record it)
            from mvc.repo.repository import in_quotes, shell_quoted

            shown = shell_quoted(r["path"])
            states[0] = (
                f"modified: it holds another version the cache has ({short(r['other'])}): "
                f"{in_quotes('mvc checkout ' + shown)} restores its pointer's, {in_quotes('mvc add ' + shown)} "
                "records this one"
            )
        if r["cache"] != "ok":
            states.append("missing from cache")
        rem = r.get("remote")
        if rem:
            for key, what in (
                ("not_pushed", "not pushed to"),
                ("not_fetched", "not fetched from"),
                ("missing", "missing from the cache and"),
            ):
                if rem[key]:
                    states.append(f"{what} {rem['remote']} ({rem[key]} object{'s' if rem[key] > 1 else ''})")
        click.echo(f"{shown_path(r['path'])}: {', '.join(states) or 'up to date'}")
        if "files" in r:
            _echo_changes(r["path"], r["files"])


def _echo_changes(path: str, changes: dict[str, list[str]] | None) -> None:
    """A modified directory's changed files, one a line below it, as git status lists them."""
    if changes is None:
        from mvc.format.pointer import suggested

        click.echo(
            f"    (its manifest is not in the cache: run {suggested('mvc fetch {}', path)} to list the files changed)"
        )
        return
    for what in ("added", "removed", "modified"):
        for sub in changes[what]:
            click.echo(f"    {what + ':':<10} {shown_path(f'{path}/{sub}')}")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@rev_option("Restore the pointer files as of REV (commit, branch, tag) first, then the files.")
@click.option(
    "--force",
    "-f",
    is_flag=True,
    help="Replace modified files; their content is first stored in the cache and its oid printed.",
)
@quiet_option
def checkout(paths: tuple[str, ...], rev: str | None, force: bool, quiet: bool) -> None:
    """Make workspace files match their pointers (all tracked paths by default).

    \b
    A modified file whose content is not in the cache is never replaced silently:
    without --force the command refuses; with --force the content is kept in the cache.

    \b
    A path may be a model revision: NAME#STAGE, NAME@vX.Y.Z or NAME@latest restores
    that model's file as of that version (its path at that commit).

    \b
    With --rev or a model revision, the pointers restored are staged in git, as
    'git checkout REV -- PATH' stages them; each is named with the command that undoes it.

    \b
    Example:
      mvc checkout
      mvc checkout model.safetensors --rev v1.0
      mvc checkout churn#prod
    """
    from mvc.api import checkout as checkoutapi

    echo_checkout(checkoutapi.checkout(paths, rev=rev, force=force, progress=bars(quiet)))


@click.command()
@click.argument("ref", metavar="PATH|NAME@VERSION|NAME#STAGE", type=click.Path(readable=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(readable=False),
    help="Where to write the model (default: its file name, here; DIR/: in DIR; relative to where the command is typed; "
    "- (stdout) is refused).",
)
@rev_option("Revision to read the pointer from (default: the work tree; with --repo, its HEAD).")
@repo_option
@click.option(
    "--remote",
    metavar="URL|NAME",
    help="Read the weights from this remote instead of the default one the repository configures.",
)
@click.option("--cache", is_flag=True, help="With --repo or --remote: also keep the objects in ~/.cache/mvc.")
@click.option(
    "--force",
    "-f",
    is_flag=True,
    help="Replace OUT if it exists: a file, or a directory an earlier mvc get wrote and nothing changed since.",
)
@json_option
@quiet_option
def get(
    ref: str,
    out: str | None,
    rev: str | None,
    repo: str | None,
    remote: str | None,
    cache: bool,
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write a tracked model as of a revision to OUT, leaving the work tree alone.

    \b
    REF is a tracked path (with --rev REV), or a model revision: NAME@vX.Y.Z, NAME#STAGE, NAME@latest.
    A path inside a tracked directory gets that one file of it.
    With --repo URL nothing is cloned: the revision is resolved with a few git requests (cached in
    ~/.cache/mvc/repos), the weights stream from the repository's remote straight to OUT, verified.

    \b
    Example:
      mvc get model.safetensors --rev v1.0 -o /tmp/model-v1.safetensors
      mvc get churn@v1.2.0 -o out.bin
      mvc get --repo git@github.com:acme/models.git churn#prod -o /srv/churn.joblib
    """
    from mvc.api import outputs, read
    from mvc.api.target import ByUrl

    outputs.started_in = start_dir()  # never replaced with --force, as the directory it runs in
    if cache and repo is None and remote is None:
        raise click.UsageError("--cache goes with --repo or --remote (without them, the repository's cache is used)")
    if out == "-":  # (curl's and wget's stdout): a model is written whole, verified, then renamed, never streamed
        raise PathError(
            "-o - (stdout) is not supported: mvc get writes a file, verified before it is in place; give a path "
            "(./- for a file named -), or read the bytes in Python: mvc.read_bytes or mvc.open"
        )
    r = read.get(
        ref,
        user_path(out) if out is not None else user_path("." + os.sep) if outputs.started_in else None,
        repo=ByUrl(user_url(repo)) if repo is not None else None,  # by URL: a normal repository's HEAD too
        rev=rev,
        # a URL or a path (with a "/") is the user's; a bare word is a remote's name
        remote=user_url(remote) if remote is not None and ("/" in remote or "://" in remote) else remote,
        force=force,
        cache=cache,
        progress=bars(quiet or as_json),
    )
    if as_json:
        echo_json(r)
        return
    click.echo(f"wrote {shown_path(r['out'])} ({human(r['size'])}, {short(r['oid'])})")


@click.command()
@rev_option("List the pointers as of REV instead of the work tree (with --repo: its HEAD).")
@repo_option
@json_option
def ls(rev: str | None, repo: str | None, as_json: bool) -> None:
    """List tracked paths with kind, size and oid.

    \b
    Example:
      mvc ls
      mvc ls --rev HEAD~1 --json
      mvc ls --repo https://github.com/acme/models.git --rev main
    """
    from mvc.api import target

    here = target.here_as_url() if repo is None else None  # a bare repository, a --no-checkout clone
    if repo is not None or here is not None:
        rows = target.ls_url(user_url(repo) if repo is not None else str(here), rev)
    else:
        rows = listing.ls(rev=rev)
    if as_json:
        echo_json(rows)
        return
    if not rows:  # said on stderr: stdout lists paths, and there are none
        if rev is None and repo is None and here is None:
            click.echo("nothing tracked yet: run 'mvc add PATH'", err=True)
        else:
            click.echo(
                f"no path tracked by mvc at {rev or 'HEAD'}{f' of {repo}' if repo is not None else ''}", err=True
            )
    for r in rows:
        if "not_imported" in r:  # the row on stdout, why and the way forward on stderr
            click.echo(f"{'-':4}  {'-':>10}  {'not imported':12}  {shown_path(r['path'])}")
            click.echo(f"mvc: {r['error']}", err=True)
            continue
        click.echo(f"{r['kind']:4}  {human(r['size']):>10}  {short(r['oid'])}  {shown_path(r['path'])}")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
@quiet_option
def unprotect(paths: tuple[str, ...], quiet: bool) -> None:
    """Turn cache links (cache.type hardlink/symlink) into writable copies, to edit in place.

    \b
    Example:
      mvc unprotect model.safetensors && python finetune.py && mvc add model.safetensors
    """
    from mvc.api import untrack

    for rel in untrack.unprotect(paths, progress=bars(quiet)):
        click.echo(f"unprotected {rel}")


@click.command(context_settings={"ignore_unknown_options": True})  # a negative VALUE is a value
@click.argument("key", callback=unicode_only)
@click.argument("value", required=False, callback=unicode_only)
@click.option("--local", is_flag=True, help="Write .mvc/config.local.toml (this machine only, git-ignored).")
@click.option("--unset", is_flag=True, help="Remove KEY.")
def config(key: str, value: str | None, local: bool, unset: bool) -> None:
    """Get or set a config value (reading prints the default when it is not set).

    \b
    Keys: cache.dir (path; relative to .mvc/), cache.type (list from reflink, hardlink,
    symlink, copy, tried in order), core.fsync, core.auto_record (true/false),
    core.remote (default remote), hooks.max_size (a size: 10MB, 512KiB, 0 for none),
    hooks.extensions, hooks.allow (lists are comma-separated), remote.NAME.KEY (see
    'mvc remote'). A value not valid for its key is refused and not written.

    \b
    Example:
      mvc config cache.type hardlink,copy
      mvc config cache.dir /mnt/shared/mvc-cache --local
    """
    from mvc.api import config as cfg

    if unset and value is not None:
        raise ConfigError("pass either VALUE or --unset, not both")
    if value is None and not unset:
        shown = cfg.get(key)
        if shown is None:
            raise ConfigError(f"{key} is not set: set it with 'mvc config {key} VALUE'")
        click.echo(shown if isinstance(shown, str) else cfg.render(shown))
        return
    cfg.set(key, None if unset else value, local=local)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
@click.option("--no-stage", is_flag=True, help="Do not stage the pointer removal and .gitignore in git.")
def remove(paths: tuple[str, ...], no_stage: bool) -> None:
    """Stop tracking paths: delete their .mvc pointers and .gitignore entries.

    \b
    The files themselves and their objects in the cache are kept.

    \b
    Example:
      mvc remove old-model.bin && git commit -m "stop tracking old-model.bin"
    """
    from mvc.api import untrack

    for rel in untrack.remove(paths, stage=not no_stage):
        click.echo(f"stopped tracking {rel}")
