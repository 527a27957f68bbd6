"""``mvc gc`` and ``mvc verify``: what the cache may lose, and whether every version can be read back."""

from __future__ import annotations

import click

from mvc.cli.common import bars, echo_json, human, json_option, quiet_option, short


@click.command()
@click.option("--force", "-f", is_flag=True, help="Delete. Without it gc only says what it would delete.")
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    metavar="N",
    help="Of the history, keep only N versions of each tracked path: the versions at the tips count first, then "
    "the newest (tips, registry tags, the work tree and the index are kept whatever N).",
)
@click.option(
    "--rev",
    "revs",
    multiple=True,
    metavar="REV",
    help="Keep the history of REV only (repeatable; default: of every ref and reflog).",
)
@click.option("--drop-deprecated", is_flag=True, help="No longer keep the registry tags of deprecated models.")
@click.option(
    "--grace",
    default="14d",
    show_default=True,
    metavar="TIME",
    help="Keep objects written or used more recently than this (e.g. 14d, 12h, 0).",
)
@click.option(
    "--sole-user",
    is_flag=True,
    help="This repository is the only one using the cache (when cache.dir is set) or the remote (-r) "
    "where gc cannot check that itself.",
)
@click.option("-r", "--remote", metavar="REMOTE", help="Collect the remote REMOTE instead of the local cache.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N", help="Parallel requests (with -r).")
@click.option(
    "--compact",
    is_flag=True,
    help="Then keep the versions of large files that the work tree does not hold as chunks and deltas "
    "(rebuilt whole when a command needs them).",
)
@click.option(
    "--user-cache",
    is_flag=True,
    help="Collect the user's cache of reads without a clone (~/.cache/mvc) instead: what no read used within --grace.",
)
@json_option
@quiet_option
def gc(
    force: bool,
    keep_last: int | None,
    revs: tuple[str, ...],
    drop_deprecated: bool,
    grace: str,
    sole_user: bool,
    remote: str | None,
    jobs: int | None,
    compact: bool,
    user_cache: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Delete cache objects nothing in the repository needs: a dry run unless --force.

    \b
    Always kept: every pointer of the work tree and the index (of every worktree), every ref's tip
    (branches, tags, registry versions and stages, remote-tracking branches), HEAD, stashes, and
    objects younger than --grace. By default every commit of the history and of the reflogs too, so gc
    deletes only what no such commit names (an abandoned add, say); --keep-last and --rev narrow that.
    With -r REMOTE, the remote is collected instead: also kept is everything every ref of every git
    remote needs (git ls-remote; a ref this clone has not fetched stops gc), and the delta bases of what
    is kept; whole objects, chunk lists and packs with no live entry go once older than --grace by the
    remote's clock, and a pack at least half dead is rewritten with its live entries (the old one goes in a
    later gc, after --grace). A remote that another repository also pushes to is refused. With --compact, the
    kept versions of files of 4 MiB or more that no work tree holds are then stored as chunks and deltas
    (against the version the work tree holds, or an older one) in the cache's compacted store, each checked
    by rebuilding it before its whole copy goes; commands that need one rebuild it whole. With
    --user-cache, the user's cache of reads without a clone is collected instead (no repository needed):
    materialized copies, objects kept by --cache and repositories' git metadata that no read used within
    --grace (a read fetches them again), and the records of copies mvc get wrote that are gone or changed.

    \b
    Example:
      mvc gc                         # what would go
      mvc gc --keep-last 3 --force   # keep 3 versions of each path in the history
      mvc gc --drop-deprecated --keep-last 0 --force
      mvc gc -r origin               # what would go from the remote origin
      mvc gc --compact --force       # and compact the versions the work tree does not hold
      mvc gc --user-cache --grace 30d --force
    """
    from mvc.api import gc as api

    if user_cache:
        _gc_user_cache(
            force,
            grace,
            as_json,
            bool(
                keep_last is not None or revs or drop_deprecated or sole_user or remote or compact or jobs is not None
            ),
        )
        return
    if compact and remote is not None:
        raise click.UsageError("--compact works on the local cache: run it without -r")
    r = api.gc(
        force=force,
        keep_last=keep_last,
        revs=list(revs) or None,
        drop_deprecated=drop_deprecated,
        grace=grace,
        sole_user=sole_user,
        remote=remote,
        jobs=jobs,
        progress=bars(quiet),
    )
    if compact:
        from mvc.api.compact import compact as compact_cache

        r["compact"] = compact_cache(force=force, progress=bars(quiet))
    if as_json:
        echo_json(r)
        return
    verb = "would delete" if r["dry_run"] else "deleted"
    if r.get("remote"):
        verb += f" from {r['remote']}"
    for g in r["groups"]:
        click.echo(f"  {g['what']}: {g['objects']} object{'s' if g['objects'] != 1 else ''}, {human(g['bytes'])}")
    young = f"; {r['young']} younger than {r['grace']} kept" if r["young"] else ""
    packs = r.get("packs_deleted") or 0
    also = f" and {packs} pack{'s' if packs != 1 else ''} no object needs" if packs and not r["objects"] else ""
    click.echo(
        f"{verb} {r['objects']} object{'s' if r['objects'] != 1 else ''}{also} ({human(r['bytes'])}); kept "
        f"{r['kept']}{young}"
    )
    if r["unreadable"]:
        click.echo(
            f"warning: {len(r['unreadable'])} pointer(s) could not be read (damaged, or at a path mvc never tracks) and "
            f"name nothing: {r['unreadable'][0]}",
            err=True,
        )
    if r.get("lease_since"):
        import time

        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["lease_since"]))
        click.echo(
            f"a push's lease from {since} kept everything written since, whatever --grace (a push running now, or "
            "one killed: its lease is honoured for a day, then deleted"
            + (f"; when no push runs, delete {r['lease']} to let gc go on now)" if r.get("lease") else ")")
        )
    if r.get("packs_rewritten"):
        click.echo(
            f"{'would rewrite' if r['dry_run'] else 'rewrote'} {r['packs_rewritten']} mostly dead pack(s) with their "
            f"live entries: {human(r['rewrite_frees'])} freed when a later gc deletes the old ones (after --grace)"
        )
    if r.get("packs_superseded"):
        click.echo(f"{r['packs_superseded']} pack(s) already rewritten wait for a later gc (after --grace)")
    if r.get("packs_partly_dead"):
        click.echo(
            f"{r['packs_partly_dead']} pack(s) kept for their live entries hold {human(r['dead_bytes_in_kept_packs'])} "
            "of dead ones (less than half of each, or younger than --grace)"
        )
    if r.get("packed_kept"):
        click.echo(
            f"{r['packed_kept']} object(s) no version needs stay in cache packs beside ones that are needed "
            "(a cache pack goes whole, once none of its objects is needed)"
        )
    if r.get("compacted_files"):
        click.echo(f"{verb} {r['compacted_files']} file(s) of compacted versions ({human(r['compacted_bytes'])})")
    c = r.get("compact")
    if c is not None:
        n = f"{c['objects']} version{'s' if c['objects'] != 1 else ''} ({human(c['bytes'])} whole)"
        if c["dry_run"]:
            click.echo(f"would compact {n}")
        else:
            click.echo(f"compacted {n}: the compacted store grew by {human(c['stored'])}, {human(c['freed'])} freed")
    if r["dry_run"] and (r["objects"] or r.get("packs_rewritten") or r.get("compacted_files") or (c and c["objects"])):
        click.echo("run it again with --force (and the same options) to do it")


def _gc_user_cache(force: bool, grace: str, as_json: bool, narrowed: bool) -> None:
    from mvc.api import usercache

    if narrowed:
        from mvc.errors import GcRefused

        raise GcRefused("gc --user-cache takes only --grace, --force, --json and -q: drop the other options")
    r = usercache.collect(force=force, grace=grace)
    if as_json:
        echo_json(r)
        return
    for g in r["groups"]:
        click.echo(f"  {g['what']}: {g['entries']}, {human(g['bytes'])}")
    verb = "would delete" if r["dry_run"] else "deleted"
    click.echo(f"{verb} {r['entries']} from {r['root']} ({human(r['bytes'])}); kept {r['kept']} used within {grace}")
    if r["dry_run"] and r["entries"]:
        click.echo("run it again with --force (and the same options) to do it")


PROBLEMS_SHOWN = 100  # verify's problem lines printed; --json has them all


@click.command()
@click.option("-r", "--remote", metavar="REMOTE", help="Download every needed object from REMOTE and re-hash it.")
@click.option(
    "--rev", "revs", multiple=True, metavar="REV", help="Check these revisions (repeatable) instead of the defaults."
)
@click.option("--all-tags", is_flag=True, help="Check every tag too.")
@click.option(
    "--repair",
    is_flag=True,
    help="Replace corrupt cache objects with verified copies from the remote; with -r, also rewrite that remote's "
    "corrupt copies from the cache's sound ones.",
)
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N", help="Parallel downloads.")
@json_option
@quiet_option
def verify(
    remote: str | None,
    revs: tuple[str, ...],
    all_tags: bool,
    repair: bool,
    jobs: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Re-hash the cache and check that every version can be read back.

    \b
    Checks the pointers of the work tree, the index, every branch and every registry tag but a
    deprecated model's (or --rev, --all-tags): each object they need must hash right in the cache
    or be on the remote (the default remote, asked; with -r REMOTE it is downloaded from there and
    re-hashed). Exit status 1 when anything is
    corrupt or lost; the report names the model paths and versions affected.

    \b
    Example:
      mvc verify
      mvc verify -r origin --all-tags
      mvc verify --repair
      mvc verify -r origin --repair   # also mends origin's damaged copies
    """
    from mvc.api import verify as api
    from mvc.errors import VerifyFailed
    from mvc.format.pointer import in_quotes

    r = api.verify(
        remote=remote, revs=list(revs) or None, all_tags=all_tags, repair=repair, jobs=jobs, progress=bars(quiet)
    )
    open_ = [p for p in r["problems"] if not p["repaired"]]
    if as_json:
        echo_json(r)
    else:
        c, n = r["cache"], r["cache"]["objects"]
        # a rate of a few bytes hashed in microseconds says nothing ("0 MB/s"): shown from 1 MiB on
        rate = f" ({human(int(c['bytes'] / c['seconds']))}/s)" if c["seconds"] and c["bytes"] >= 1 << 20 else ""
        click.echo(
            f"cache: {n} object{'s' if n != 1 else ''}, {human(c['bytes'])} re-hashed in {c['seconds']:.2f} s{rate}"
        )
        where = f" (remote {r['remote']})" if r["remote"] else " (no remote)"
        objects = f"{r['objects']} object{'s' if r['objects'] != 1 else ''}"
        click.echo(f"checked {objects} for {r['pointers']} pointer{'s' if r['pointers'] != 1 else ''}{where}")
        for p in r["problems"][:PROBLEMS_SHOWN]:
            names = ", ".join(p["needed_by"][:3]) or "not needed by any checked pointer"
            more = f" and {len(p['needed_by']) - 3} more" if len(p["needed_by"]) > 3 else ""
            fixed = (
                f" (rewritten there from the cache: {p['remote_file']})"
                if p["repaired"] and "remote_file" in p
                else " (repaired from the remote)"
                if p["repaired"]
                else " (no remote has a verified copy: moved to the cache's quarantine/)"
                if p.get("quarantined")
                else f" ({p['remote_file']})"
                if "remote_file" in p
                else ""
            )
            click.echo(f"{p['problem']}{fixed}: {short(p['oid'])}: {names}{more}")
        if len(r["problems"]) > PROBLEMS_SHOWN:  # (a remote that lost thousands of objects: a line each is noise)
            click.echo(f"... and {len(r['problems']) - PROBLEMS_SHOWN} more problems (--json lists every one)")
        for label in r["unreadable"]:
            click.echo(f"unreadable pointer: {label}")
        if not open_ and not r["unreadable"]:
            click.echo("every version checked can be read back")
    if open_ or r["unreadable"]:
        first = open_[0] if open_ else None
        what = (
            f"{first['problem']}: {(first['needed_by'] or [first['oid']])[0]}"
            if first
            else f"pointer {r['unreadable'][0]} cannot be read"
        )
        on_remote = first is not None and first["problem"] == api.REMOTE_CORRUPT
        lost = first is not None and first["problem"] == api.NOT_ON_REMOTE
        hint = (
            "the pointer is damaged, was never mvc's, or lies at a path mvc never tracks: restore it with git ('git "
            "log -p' of it), or remove it ('git rm')"
            if first is None
            else "the directory's pointer names a manifest no mvc reads (a damaged commit): restore the pointer with "
            "git, or add the directory again from a good copy"
            if first["problem"] == api.INVALID
            else "run 'mvc verify --repair'"
            if any(p["problem"] == api.CORRUPT for p in open_) and not repair
            else f"this machine has it: run {' and '.join(in_quotes(c) for c in r['push'])} to send it again"
            if lost
            else f"run 'mvc verify -r {r['remote']} --repair' where a cache holds it sound, or delete the damaged "
            "file on the remote ('mvc pull' of that path names it) and run 'mvc push --verify-remote' from a "
            "machine that has it"
            if on_remote and not repair
            else "delete the damaged file on the remote ('mvc pull' of that path names it), then run 'mvc push "
            "--verify-remote' from a machine that has it"
            if on_remote
            else "add it again from its source, or push it from a machine that has it"
            if repair
            else "push it from a machine that has it"
        )
        n = len(open_) + len(r["unreadable"])
        raise VerifyFailed(f"{n} problem{'s' if n != 1 else ''}, first {what}: {hint}")
