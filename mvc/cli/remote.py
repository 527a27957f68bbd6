"""remote (add, list, remove, modify, default), push, fetch, pull."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mvc import progress as progressmod
from mvc.api import remote_config as api
from mvc.api import sync
from mvc.cli.common import echo_checkout, echo_json, human, json_option, quiet_option, unicode_only, user_url


def transfer_bars(quiet: bool) -> progressmod.Factory:
    """Bars for any transfer, however few its bytes: many small objects take long for their requests."""
    return progressmod.terminal(quiet, min_bytes=0)


def remote_option(f: Callable) -> Callable:
    return click.option(
        "-r", "--remote", metavar="NAME", help="The remote to use (default: core.remote, or the only remote)."
    )(f)


def jobs_option(f: Callable) -> Callable:
    return click.option(
        "-j",
        "--jobs",
        type=click.IntRange(min=1),
        metavar="N",
        help="Parallel transfers (default: the remote's jobs setting, else 16 for S3, 4 for a directory, 8 otherwise).",
    )(f)


def transfer_options(f: Callable) -> Callable:
    """PATHS, -r REMOTE and -j N: what push, fetch and pull have in common."""
    f = remote_option(jobs_option(f))
    return click.argument("paths", nargs=-1, type=click.Path(readable=False))(f)


def _objects(n: int) -> str:
    return f"{n} object{'' if n == 1 else 's'}"


def no_stage_option(f: Callable) -> Callable:
    return click.option(
        "--no-stage", is_flag=True, help="Do not stage .mvc/config.toml in git (a --local change is never staged)."
    )(f)


# -- mvc remote ...  ------------------------------------------------------------------------------
@click.group()
def remote() -> None:
    """Configure remotes: the stores that push, fetch and pull use.

    \b
    A remote is a directory, s3://bucket/prefix, or any fsspec URL (gs://, az://,
    ssh://, https:// read-only). Settings go to .mvc/config.toml, staged in git
    (commit it); --local and secrets go to .mvc/config.local.toml (this machine only).

    \b
    Example:
      mvc remote add origin s3://models/churn --default
      mvc remote modify origin endpoint_url http://localhost:9000
      mvc push
    """


@remote.command("add")
@click.argument("name", callback=unicode_only)
@click.argument("url", callback=unicode_only)
@click.option(
    "--default", "-d", "default", is_flag=True, help="Make it the default remote (the first remote is, without it)."
)
@click.option("--local", is_flag=True, help="Write .mvc/config.local.toml (this machine only, git-ignored).")
@no_stage_option
def remote_add(name: str, url: str, default: bool, local: bool, no_stage: bool) -> None:
    """Add a remote NAME at URL.

    \b
    A relative directory is taken from the directory the command is typed in (also
    under -C) and stored relative to the repository root. .mvc/config.toml is staged.

    \b
    Example:
      mvc remote add origin s3://my-bucket/models --default
      mvc remote add backup /mnt/nas/mvc-store
    """
    r = api.add(name, user_url(url), default=default, local=local, stage=not no_stage)
    if local:
        where = ".mvc/config.local.toml"
    else:
        where = ".mvc/config.toml (" + ("staged; " if r["staged"] else "") + "commit it to share the remote)"
    click.echo(f"added remote {r['name']} -> {r['url']}{' (default)' if r['default'] else ''} in {where}")


@remote.command("list")
@json_option
def remote_list(as_json: bool) -> None:
    """List remotes with their URL and settings (secret values hidden).

    \b
    Example:
      mvc remote list
      mvc remote list --json
    """
    rows = api.remotes()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no remote configured: add one with 'mvc remote add NAME URL --default'")
    for r in rows:
        opts = "".join(f" {k}={v}" for k, v in r["options"].items())
        flags = " (default)" if r["default"] else ""
        flags += " [local]" if r["scope"] == "local" else ""
        click.echo(f"{r['name']}\t{r['url']}{flags}{opts}")


@remote.command("remove")
@click.argument("name")
@no_stage_option
def remote_remove(name: str, no_stage: bool) -> None:
    """Remove remote NAME from the config (the store itself is left alone).

    \b
    Example:
      mvc remote remove backup
    """
    was = next((r["name"] for r in api.remotes() if r["default"]), None)
    staged = api.remove(name, stage=not no_stage)
    click.echo(f"removed remote {name}" + _staged(staged))
    if was == name:  # where push goes now is said, never left to find out
        now = next((r["name"] for r in api.remotes() if r["default"]), None)
        click.echo(
            f"{name} was the default remote; the default is now {now} (the only remote left)"
            if now
            else f"{name} was the default remote; there is none now: set one with 'mvc remote default NAME'"
        )


def _staged(staged: bool) -> str:
    return " (.mvc/config.toml staged)" if staged else ""


@remote.command("modify", context_settings={"ignore_unknown_options": True})  # (a negative VALUE)
@click.argument("name")
@click.argument("key", callback=unicode_only)
@click.argument("value", required=False, callback=unicode_only)
@click.option("--local", is_flag=True, help="Write .mvc/config.local.toml (required for secrets).")
@click.option("--unset", is_flag=True, help="Remove KEY.")
@no_stage_option
def remote_modify(name: str, key: str, value: str | None, local: bool, unset: bool, no_stage: bool) -> None:
    """Set KEY of remote NAME to VALUE.

    \b
    Keys: url, endpoint_url (S3-compatible stores), profile, region, jobs, packs
    (true/false: push small objects in packs, default true), chunks (true/false:
    push files of 4 MiB or more as chunks and deltas, default true); for S3 also
    access_key_id, secret_access_key, session_token (only with --local), and s3fs's
    options (e.g. anon true). A key the remote's store does not know is refused (a
    directory knows url, jobs, packs, chunks); a filesystem that takes any keyword
    (gcsfs, adlfs, …) is handed any other key.

    \b
    Example:
      mvc remote modify origin endpoint_url http://127.0.0.1:9000
      mvc remote modify origin secret_access_key ... --local
      mvc remote modify origin jobs --unset
    """
    if unset == (value is not None):
        raise click.UsageError("give either VALUE or --unset")
    if key == "url" and value is not None:
        value = user_url(value)
    staged = api.modify(name, key, value, local=local, stage=not no_stage)
    click.echo((f"unset {name}.{key}" if unset else f"set {name}.{key}") + _staged(staged))


@remote.command("default")
@click.argument("name", required=False)
@click.option("--local", is_flag=True, help="Write .mvc/config.local.toml (this machine only).")
@click.option("--unset", is_flag=True, help="Remove the default (with --local: this machine's alone).")
@no_stage_option
def remote_default(name: str | None, local: bool, unset: bool, no_stage: bool) -> None:
    """Show the default remote, or make NAME the default.

    \b
    Example:
      mvc remote default origin
    """
    if unset:
        if name:
            raise click.UsageError("give either NAME or --unset, not both")
        staged = api.set_default(None, local=local, stage=not no_stage)
        click.echo(f"unset the default remote{' of this machine' if local else ''}" + _staged(staged))
    elif name:
        staged = api.set_default(name, local=local, stage=not no_stage)
        click.echo(f"default remote: {name}" + _staged(staged))
    else:
        from mvc.errors import NoRemote
        from mvc.repo.remotes import default_remote
        from mvc.repo.repository import Repo

        found = default_remote(Repo.find())
        if found is None:
            raise NoRemote("no default remote: set one with 'mvc remote default NAME'")
        click.echo(found)


# -- transfers ------------------------------------------------------------------------------------
@click.command()
@transfer_options
@click.option(
    "--rev",
    "revs",
    multiple=True,
    metavar="REV",
    help="Push what REV's pointers need instead of the work tree's (repeatable).",
)
@click.option("--all-branches", "-a", is_flag=True, help="Push what every local branch needs.")
@click.option("--all-tags", "-T", is_flag=True, help="Push what every tag needs.")
@click.option("--all-commits", "-A", is_flag=True, help="Push what every commit needs.")
@click.option(
    "--verify-remote", is_flag=True, help="Ask the remote which objects it has instead of trusting the local journal."
)
@quiet_option
def push(
    paths: tuple[str, ...],
    remote: str | None,
    jobs: int | None,
    revs: tuple[str, ...],
    all_branches: bool,
    all_tags: bool,
    all_commits: bool,
    verify_remote: bool,
    quiet: bool,
) -> None:
    """Upload the objects of tracked paths that the remote lacks.

    \b
    Objects already recorded as pushed are skipped without asking the remote, so a
    push with nothing to do is instant. Directory entries go up before their manifest.
    Interrupted? Run it again: only what is missing is sent.

    \b
    Example:
      mvc push
      mvc push models/ -r backup
      mvc push --all-tags --verify-remote
    """
    r = sync.push(
        paths,
        remote=remote,
        jobs=jobs,
        revs=list(revs),
        all_branches=all_branches,
        all_tags=all_tags,
        all_commits=all_commits,
        verify_remote=verify_remote,
        progress=transfer_bars(quiet),
    )
    if r["uploaded"]:
        there = f"; {r['present']} already there" if r["present"] else ""
        click.echo(f"pushed {_objects(r['uploaded'])} ({human(r['bytes'])}) to {r['remote']}{there}")
    elif r.get("root_missing"):
        click.echo(
            f"nothing to push: everything is on {r['remote']} as this repository last saw it, but its directory "
            f"{r['root_missing']} does not exist now: mount it (or fix the URL: "
            f"'mvc remote modify {r['remote']} url URL') before others fetch"
        )
    else:
        click.echo(f"nothing to push: everything is on {r['remote']}")


@click.command()
@transfer_options
@click.option(
    "--rev",
    "revs",
    multiple=True,
    metavar="REV",
    help="Fetch what REV's pointers need instead of the work tree's (repeatable).",
)
@quiet_option
def fetch(paths: tuple[str, ...], remote: str | None, jobs: int | None, revs: tuple[str, ...], quiet: bool) -> None:
    """Download into the cache the objects of tracked paths that it lacks.

    \b
    Each object is hashed and refused if it does not match its id; the work tree is
    not touched (see 'mvc pull' and 'mvc checkout').

    \b
    Example:
      mvc fetch
      mvc fetch model.safetensors --rev v1.0
    """
    r = sync.fetch(paths, remote=remote, jobs=jobs, revs=list(revs), progress=transfer_bars(quiet))
    _fetched(r)


def _fetched(r: dict[str, Any]) -> None:
    if r["downloaded"]:
        there = f"; {r['present']} already in the cache" if r["present"] else ""
        click.echo(f"fetched {_objects(r['downloaded'])} ({human(r['bytes'])}) from {r['remote']}{there}")
    else:
        click.echo("nothing to fetch: everything is in the cache")


@click.command()
@transfer_options
@click.option("--rev", metavar="REV", help="Restore the pointers as of REV (commit, branch, tag) and their files.")
@click.option(
    "--force",
    "-f",
    is_flag=True,
    help="Replace modified files; their content is first stored in the cache and its oid printed.",
)
@quiet_option
def pull(
    paths: tuple[str, ...], remote: str | None, jobs: int | None, rev: str | None, force: bool, quiet: bool
) -> None:
    """Fetch, then check out: bring the workspace in line with its pointers.

    \b
    Example:
      git pull && mvc pull
      mvc pull model.safetensors --rev v1.0
    """
    r = sync.pull(paths, remote=remote, jobs=jobs, rev=rev, force=force, progress=transfer_bars(quiet))
    _fetched(r)
    echo_checkout(r["checkout"])
