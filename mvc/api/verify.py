"""``mvc verify`` and ``mvc registry --check``: is every version the repository names recoverable, byte for
byte? The cache is re-hashed; each object the chosen pointers need must be sound in the cache or on the
remote (with ``remote``: downloaded from there and re-hashed); ``repair`` replaces a corrupt cache object
with a verified copy from the remote, and (with ``remote``) a corrupt remote copy with the cache's sound one."""

from __future__ import annotations

import os
import time
from typing import Any

from mvc import progress as progressmod
from mvc.errors import MvcError, ObjectMissing, RemoteCorrupt, RemoteObjectMissing
from mvc.format import pointer as ptrfmt
from mvc.objects import oid as oids
from mvc.repo import compact
from mvc.repo import reach as reachmod
from mvc.repo.remotes import default_remote, forget_user_mark, journal, open_transfer, spec
from mvc.repo.repository import Repo, open_repo
from mvc.repo.selection import user_jobs, user_revs
from mvc.storage import fileio, tempfiles

# what verify finds wrong with an object, as --json spells it
CORRUPT = "corrupt in cache"  # the cache's copy does not hash to its oid
MISSING = "missing"  # in neither the cache nor the remote
REMOTE_CORRUPT = "corrupt on remote"  # the remote's copy does not hash to its oid (or is cut short)
NOT_CHECKED = "not in cache, no remote"  # not in the cache and no remote is configured to look in
NOT_ON_REMOTE = "not on remote"  # sound in the cache, but the remote verify was asked to read lacks it
INVALID = "invalid manifest"  # hashes to its oid, but no mvc reads it (a damaged or hostile commit's directory)


def verify(
    *,
    remote: str | None = None,
    revs: str | list[str] | None = None,
    all_tags: bool = False,
    repair: bool = False,
    jobs: int | None = None,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Check the cache and the pointers of the chosen revisions (default: the work tree, the index, every
    branch and every registry tag but a deprecated model's; ``revs``: these instead; ``all_tags``: every tag too).

    Returns {"cache": {"objects", "bytes", "seconds", "corrupt"}, "pointers", "objects", "remote",
    "downloaded", "problems": [{"oid", "problem", "repaired", "quarantined", "needed_by"}], "unreadable", "push"}
    (``quarantined``: with repair, a corrupt object no remote could replace, moved to the cache's quarantine/;
    ``push``: the commands that send the objects "not on remote" there again, :func:`push_commands`). With
    ``remote`` and ``repair``, an object corrupt on the remote and sound in the cache is rewritten there
    (``mvc.objects.mend``): its problem says ``remote_file``, the file rewritten (repaired), or "not rewritten: "
    and why. The caller decides what a problem means for the exit status."""
    repo = open_repo(repo)
    revs, jobs = user_revs(revs), user_jobs(jobs)
    repo.odb.packs.repair = repair  # a damaged cache-pack index: moved aside with --repair, else only reported
    reach = reachmod.Reach()
    commits: dict[str, str] = {}
    if revs:
        for rev in revs:
            commits.setdefault(repo.resolve(rev), rev)
    else:
        reachmod.add_workspace(repo, reach)
        for branch, commit in sorted(repo.git.ref_commits("refs/heads").items()):
            commits.setdefault(commit, branch)
    deprecated = _deprecated(repo) if not all_tags and not revs else set()
    for tag, commit in sorted(repo.git.ref_commits("refs/tags").items()):
        model = reachmod.model_of(tag)
        if all_tags or (not revs and model is not None and model not in deprecated):
            commits.setdefault(commit, tag)
    reach.add_commits(repo, commits)

    cache = _check_cache(repo, progress)
    corrupt = set(cache["corrupt"])
    reach.read_manifests(repo)
    name = remote if remote is not None else default_remote(repo)
    problems: dict[str, str] = dict.fromkeys(corrupt, CORRUPT)
    result: dict[str, Any] = {
        "cache": cache,
        "pointers": reach.pointers,
        "objects": 0,
        "remote": name,
        "downloaded": 0,
        "problems": [],
        "unreadable": reach.unreadable,
    }
    repaired: set[str] = set()
    rewritten: dict[str, str] = {}
    if name is not None:
        checked = _check_remote(repo, name, reach, corrupt, remote is not None, repair, jobs, progress)
        for oid, problem in checked["problems"].items():  # a corrupt cache copy stays the first thing said
            if problems.get(oid) != CORRUPT:
                problems[oid] = problem
        repaired = checked["repaired"]
        rewritten = checked["rewritten"]
        for oid, rel in rewritten.items():
            if not rel.startswith(NOT_REWRITTEN):
                problems[oid] = REMOTE_CORRUPT  # said, though mended
        result["downloaded"] = checked["downloaded"]
    else:
        compacted = compact.held(repo, reach.objects())
        for oid in reach.objects():
            if oid in corrupt or not (repo.odb.exists(oid) or oid in compacted):
                problems.setdefault(oid, NOT_CHECKED)
    for moid in reach.invalid_manifests:  # sound bytes that do not parse: no fetch or repair mends them
        problems[moid] = INVALID
    quarantined: set[str] = set()
    if repair:  # what no remote could replace is moved aside, so that no command uses it (nothing is deleted)
        for oid in corrupt - repaired:
            if repo.odb.exists(oid):
                repo.odb.quarantine(oid)
                quarantined.add(oid)
    result["objects"] = len(reach.objects())
    result["problems"] = [
        {
            "oid": o,
            "problem": p,
            "repaired": o in repaired or (o in rewritten and not rewritten[o].startswith(NOT_REWRITTEN)),
            "quarantined": o in quarantined,
            **({"remote_file": rewritten[o]} if o in rewritten else {}),
            "needed_by": reach.named(o) if o in reach.objects() else [],
        }
        for o, p in sorted(problems.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    lost = sorted(o for o, p in problems.items() if p == NOT_ON_REMOTE)
    result["push"] = push_commands(reach, lost, name, bool(revs)) if lost and name is not None else []
    return result


def push_commands(reach: reachmod.Reach, lost: list[str], remote: str, by_rev: bool) -> list[str]:
    """The ``mvc push`` commands that send the objects lost (sound in the cache) to remote again: a plain push
    sends only the work tree's, so one named only at a branch or tag takes ``--rev`` (several:
    ``--all-branches --all-tags``, or each ``--rev`` verify was given), one of another worktree a push there."""
    work = False
    revs: dict[str, None] = {}
    trees: dict[str, None] = {}
    for oid in lost:
        places = reach.places.get(oid, set())
        if reachmod.WORK in places:
            work = True
    for oid in lost:
        places = reach.places.get(oid, set())
        if reachmod.WORK in places or any(n in (revs if k == "rev" else trees) for k, n in places):
            continue
        kind, where = min(places, key=lambda p: (p[0] != "rev", p[1]), default=("rev", ""))
        if where:
            (revs if kind == "rev" else trees)[where] = None
    q = ptrfmt.shell_quoted
    push = f"mvc push -r {q(remote)}"
    commands = [push] if work or not (revs or trees) else []
    if len(revs) == 1 or (revs and by_rev):
        commands.append(push + "".join(f" --rev {q(r)}" for r in revs))
    elif revs:
        commands.append(push + " --all-branches --all-tags")
    commands += [f"mvc -C {q(root)} push -r {q(remote)}" for root in trees]
    return commands


def _hash_cached(repo: Repo, oid: str, progress: fileio.Progress) -> str:
    """The digest of cache object oid's bytes as stored: its file, or its bytes in one of the cache's packs."""
    try:
        with open(repo.odb.path(oid), "rb") as f:
            return fileio.hash_fd(f.fileno(), os.fstat(f.fileno()).st_size, progress)
    except FileNotFoundError:
        data = repo.odb.packs.read(oid)
        if data is None:
            raise
        progress(len(data))
        return fileio.hexdigest_bytes(data)


def _check_cache(repo: Repo, progress: progressmod.Factory) -> dict[str, Any]:
    """Every object of the cache re-hashed, with a progress bar of bytes. An object a cache pack's index lists is
    corrupt when that index does not parse (cachepacks.Packed.damaged)."""
    objects = []
    corrupt: list[str] = []
    total = 0
    for oid in repo.odb.all_oids():
        try:
            size = repo.odb.size(oid)
        except (OSError, ObjectMissing):
            if oid in repo.odb.packs.damaged:
                corrupt.append(oid)
            continue
        objects.append(oid)
        total += size
    bar = progress("verifying the cache", total)
    start = time.perf_counter()
    try:
        for oid in objects:
            try:
                digest = _hash_cached(repo, oid, bar.update)
            except OSError:
                corrupt.append(oid)  # unreadable: as good as corrupt
                continue
            if oids.from_digest(digest) != oid:
                corrupt.append(oid)
    finally:
        bar.close()
    compacted = compact.all_held(repo) - set(objects)  # versions kept as chunks and deltas: each rebuilt
    corrupt += compact.unsound(repo, compacted, progress)
    seconds = time.perf_counter() - start
    return {
        "objects": len(objects) + len(compacted),
        "bytes": total,
        "seconds": round(seconds, 3),
        "corrupt": sorted(corrupt),
    }


def _check_remote(
    repo: Repo,
    name: str,
    reach: reachmod.Reach,
    corrupt: set[str],
    download_all: bool,
    repair: bool,
    jobs: int | None,
    progress: progressmod.Factory,
) -> dict[str, Any]:
    """What the remote cannot give back. Objects not sound in the cache must be on it (asked, not downloaded);
    with download_all every needed object is downloaded and re-hashed (to a temp file, never into the cache);
    with repair, a corrupt cache object whose remote copy is sound replaces it."""
    from mvc.objects import reader
    from mvc.objects.meter import Meter
    from mvc.storage.parallel import run_parallel

    sp = spec(repo, name)
    jr = journal(repo)
    problems: dict[str, str] = {}
    repaired: set[str] = set()
    rewritten: dict[str, str] = {}  # corrupt on the remote: the remote's file mend rewrote from the cache, or why not
    downloaded = 0
    try:
        remote = open_transfer(repo, sp, jr, jobs, reading=not (repair and download_all))
        remote.remote_only = download_all  # a delta's base read from the remote too: what a fresh clone would read
        try:
            unread = [m for m in reach.wanted.manifests if m not in reach.wanted.entries and m not in corrupt]
            if unread:  # directories whose manifest the cache lacks: it is fetched, to know their files
                remote.download(sorted(remote.existing(unread)), Meter(progressmod.null, "", 0, 0))
                reach.read_manifests(repo)
            needed = reach.objects()
            compacted = compact.held(repo, needed)
            local_ok = {o for o in needed if o not in corrupt and (repo.odb.exists(o) or o in compacted)}
            to_read = (needed if download_all else needed - local_ok) | (corrupt if repair else set())
            there = remote.existing(to_read) if to_read else set()
            for oid in to_read - there:
                if oid in local_ok:
                    problems[oid] = NOT_ON_REMOTE
                elif oid not in corrupt:
                    problems[oid] = MISSING
            # what the journal said was pushed and the remote lacks (lost there): forgotten, so a push sends it again
            jr.discard(sp.key, list(to_read - there))
            if to_read - there:  # a remote that lost objects may have lost this repository's mark too
                forget_user_mark(repo, sp, jr)
            # without download_all the remote is only asked which it holds; only a corrupt object to repair comes down
            there = there if download_all else there & corrupt if repair else set()
            located = remote.locate(there)  # here: the journal's connection is this thread's
            sizes = {o: reach.wanted.files[o][1] for o in there if o in reach.wanted.files}
            bar = progress(f"reading from {sp.name}", sum(sizes.values()))
            repo.odb.tmp_path("verify")  # the cache's tmp/ exists, swept once

            def read(oid: str) -> tuple[str | None, int]:
                dest = tempfiles.tmp_name(repo.odb.tmp_dir, "verify")
                installing = False
                try:
                    n = reader.download(
                        remote, oid, dest, reach.wanted.label(oid), bar.update, located.get(oid), True, sizes.get(oid)
                    )
                    installing = oid in corrupt and repair
                except RemoteCorrupt:
                    return REMOTE_CORRUPT, 0
                except RemoteObjectMissing:
                    return MISSING, 0
                finally:
                    if not installing:  # (a download that failed too: a full disk leaves no temp behind)
                        fileio.remove_quietly(dest)
                if installing:  # the download hashed it to oid: it replaces the corrupt one
                    repo.odb.quarantine(oid)
                    repo.odb.install(dest, oid)
                return None, n

            def done(oid: str, got: tuple[str | None, int]) -> None:
                nonlocal downloaded
                problem, n = got
                downloaded += n
                if problem is None and oid in corrupt and repair:
                    repaired.add(oid)
                elif problem is not None:
                    problems[oid] = problem

            try:
                run_parallel(read, sorted(there), remote.jobs, done)
                if repair and download_all:  # what the remote holds damaged, rewritten there from the cache
                    for oid in sorted(o for o, p in problems.items() if p == REMOTE_CORRUPT and o in local_ok):
                        rewritten[oid] = _mend(remote, repo, oid, sizes.get(oid), read)
                        if not rewritten[oid].startswith(NOT_REWRITTEN):
                            del problems[oid]
            finally:
                bar.close()
        finally:
            remote.close()
    finally:
        jr.close()
    return {"problems": problems, "repaired": repaired, "downloaded": downloaded, "rewritten": rewritten}


NOT_REWRITTEN = "not rewritten: "


def _mend(remote: Any, repo: Repo, oid: str, size: int | None, read: Any) -> str:
    """The remote's damaged copy of oid rewritten from the cache's sound one, then downloaded and re-hashed: the
    file rewritten, or NOT_REWRITTEN and why."""
    from mvc.objects import mend

    if getattr(remote.store, "read_only", False):
        return NOT_REWRITTEN + "the remote takes no writes"
    rebuilt: list[str] = []
    try:
        if not repo.odb.exists(oid):  # held compacted (gc --compact): whole again for as long as it is sent
            rebuilt = compact.expand(repo, [oid])
        rel, why = mend.mend(remote, repo.odb, oid, size)
    except (MvcError, OSError) as e:  # a remote that refuses writes, a cache that changed: said, not raised
        return NOT_REWRITTEN + (str(e) or type(e).__name__)
    finally:
        if rebuilt:
            compact.drop_whole(repo, rebuilt)
    if not rel:
        return NOT_REWRITTEN + why
    problem, _ = read(oid)
    return rel if problem is None else f"{NOT_REWRITTEN}{rel} was rewritten, and still reads back {problem}"


def registry_check(
    name: str | None = None, *, remote: str | None = None, repo: Repo | None = None
) -> list[dict[str, Any]]:
    """Per model, per live version (and the stages it holds): whether its weights can be fetched: every
    object they need is in the cache or on the default remote, or, with ``remote`` named, on that remote (what
    others can fetch) (``mvc verify`` re-hashes them). Rows {"model", "version", "stages", "path",
    "state", "missing"}, by model, newest version first; state "ok", "missing" or "unreadable"."""
    from mvc.format.tags import semver_key
    from mvc.repo import models

    repo = open_repo(repo)
    state = models.load(repo.git)
    if name is not None:
        models.find_model(state, name)  # an unknown name is an error, as for 'mvc registry NAME'
    where = remote if remote is not None else default_remote(repo)
    rows: list[dict[str, Any]] = []
    per_row: list[tuple[dict[str, Any], reachmod.Reach]] = []
    for mname, m in sorted(state.models.items()):
        if not m.events or m.deprecated or (name is not None and mname != name):
            continue
        stages: dict[str, list[str]] = {}
        for stage, vs in m.stages().items():
            stages.setdefault(vs.version, []).append(stage)
        # newest first, as registry NAME; commits GTO assigned a stage without registering them last
        for v in sorted(
            m.versions.values(), key=lambda v: (v.registered, v.registered and semver_key(v.name)), reverse=True
        ):
            if not v.active:
                continue
            row: dict[str, Any] = {"model": mname, "version": v.name, "stages": stages.get(v.name, [])}
            r = reachmod.Reach()
            try:
                info = models.model_at(repo.git, mname, v.commit, repo)
            except MvcError as e:
                row.update(path=None, state="unreadable", missing=[], error=str(e))
                rows.append(row)
                continue
            row["path"] = info["path"]
            r.add(
                f"{info['path']}{ptrfmt.SUFFIX} at {mname}@{v.name}",
                pointer=ptrfmt.Pointer(info["kind"], info["oid"], info["size"]),
            )
            per_row.append((row, r))
            rows.append(row)
    remote_t = None
    jr = None
    try:
        for row, r in per_row:
            r.read_manifests(repo)
            need = r.objects()
            # with a remote named, what others can fetch: every object on it; else on it or in this cache
            lacking = set(need) if remote is not None else {o for o in need if not repo.odb.exists(o)}
            if lacking and where is not None:
                if remote_t is None:
                    jr = journal(repo)
                    remote_t = open_transfer(repo, spec(repo, where), jr, reading=True)
                unread = [m for m in r.wanted.manifests if m not in r.wanted.entries]
                if unread:
                    got = remote_t.existing(unread)
                    if got:
                        from mvc.objects.meter import Meter

                        remote_t.download(sorted(got), Meter(progressmod.null, "", 0, 0))
                        r.read_manifests(repo)
                        lacking = (
                            set(r.objects())
                            if remote is not None
                            else {o for o in r.objects() if not repo.odb.exists(o)}
                        )
                lacking -= remote_t.existing(lacking)
            row["state"] = "ok" if not lacking else "missing"
            row["missing"] = sorted(lacking)
    finally:
        if remote_t is not None:
            remote_t.close()
        if jr is not None:
            jr.close()
    return rows


def _deprecated(repo: Repo) -> set[str]:
    """The registry's deprecated models: their tags are not checked by default (``gc --drop-deprecated`` may have
    let their weights go; ``--all-tags`` checks them)."""
    from mvc.repo import models

    state = models.load(repo.git)
    return {name for name, m in state.models.items() if m.events and m.deprecated}
