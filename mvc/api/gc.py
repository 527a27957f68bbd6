"""``mvc gc``: remove from the local cache the objects nothing the repository keeps needs (docs/FORMAT.md,
"What gc keeps"). A dry run unless ``force``; what it keeps is always a superset of what git keeps
reachable, narrowed only by options the user types."""

from __future__ import annotations

import contextlib
import os
import re
import time
from typing import Any

from mvc import progress as progressmod
from mvc.errors import GcRefused, PathError
from mvc.objects import cachepacks
from mvc.repo import reach as reachmod
from mvc.repo.repository import Repo, open_repo
from mvc.repo.selection import user_jobs, user_revs

GRACE = "14d"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_grace(text: str | float) -> float:
    """Seconds of a grace period written ``0``, ``90s``, ``30m``, ``12h``, ``14d`` or ``2w``, or given as a number of
    seconds (from Python)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and 0 <= text < float("inf"):
        return float(text)  # seconds, as a number (the Python API's)
    if not isinstance(text, str):
        raise PathError(f"grace period {text!r} is not a duration: write it like '14d', '12h', '30m' or 0")
    m = re.fullmatch(r"(0|[0-9]{1,6})([smhdw]?)", text.strip())
    if m is None or (m[1] != "0" and not m[2]):
        raise PathError(f"grace period {text!r} is not a duration: write it like 14d, 12h, 30m or 0 (at most 6 digits)")
    return int(m[1]) * _UNITS.get(m[2] or "s", 1)


def gc(
    *,
    force: bool = False,
    keep_last: int | None = None,
    revs: str | list[str] | None = None,
    drop_deprecated: bool = False,
    grace: str = GRACE,
    sole_user: bool = False,
    remote: str | None = None,
    jobs: int | None = None,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Find (and with ``force`` delete) the cache objects that nothing kept needs; with ``remote``, the
    remote's objects, recipes and packs instead (:func:`_gc_remote`).

    Kept, always: the work tree's and the index's pointers (every worktree's), every ref's tip (branches,
    tags, registry versions and stages, remote-tracking branches), HEAD, stashes, and objects changed
    less than ``grace`` ago. Kept by default and narrowed by options: every commit of the history (``revs``: only
    the history of these revisions; ``keep_last``: of each tracked path, only N versions of that history, those at
    the tips counting first, then the newest); ``drop_deprecated``: the registry tags of deprecated models are no
    longer kept as tips. The cache's compacted versions (:mod:`mvc.api.compact`) no kept version needs go too, and
    what kept ones need (their deltas' bases) is kept. Returns {"dry_run", "objects", "bytes", "kept", "young",
    "grace", "groups", "unreadable", "compacted_files", "compacted_bytes", "packed_kept" (unneeded objects kept in
    cache packs that hold needed ones)}.
    """
    repo = open_repo(repo)
    revs, jobs = user_revs(revs), user_jobs(jobs)
    if keep_last is not None and keep_last < 0:
        raise PathError("--keep-last must be 0 or more: the number of versions of each path to keep")
    window = parse_grace(grace)
    # the clock is read before the keep set: what a command writes while gc reads the refs and the work tree
    # is later than the cutoff, so kept (an object written then may be named by a pointer gc missed)
    if remote is not None:
        return _gc_remote(
            repo,
            remote,
            force,
            keep_last,
            revs,
            drop_deprecated,
            grace,
            window,
            sole_user,
            jobs,
            progress,
        )
    _check_cache_owner(repo, sole_user)
    if force:
        _restore_trash(repo.odb)  # what a gc killed part way left renamed, put back first (a rename: new ctime)
        cachepacks.restore_trash(repo.odb.packs)
    # An add between storing an object and writing its pointer is waited for (with --force), and none starts
    # one until the pointers are read: an object it freshened before the clock is then named by what gc reads.
    with repo.odb.collecting() if force else contextlib.nullcontext():
        started = time.time()
        keep, dropped = reachmod.keep_set(repo, keep_last, revs, drop_deprecated)
    _refuse_unread(keep)
    needed = keep.objects()
    now = started
    gone_compacted = _collect_compacted(repo, needed, force, now - window)  # first: needed grows by bases

    doomed: list[tuple[str, int]] = []
    young = kept = 0
    bar = progress("scanning the cache", 0)
    loose = set()
    try:
        for oid in repo.odb.loose_oids():
            loose.add(oid)
            bar.update(1)
            if oid in needed:
                kept += 1
                continue
            try:
                st = os.lstat(repo.odb.path(oid))
            except FileNotFoundError:
                continue
            if _in_use(st, now - window):
                young += 1
                continue
            doomed.append((oid, st.st_size))
    finally:
        bar.close()
    kept += len(needed.intersection(repo.odb.packs.keys()) - loose)
    deleted = _delete(repo, doomed, now - window) if force else list(doomed)
    packed, stay = cachepacks.collect(repo.odb.packs, needed, now - window, force, repo.odb.tmp_dir, repo.odb.fsync)
    doomed += packed
    deleted += packed
    if force:
        cachepacks.remove_orphans(repo.odb.packs, now - window)
    return {
        "dry_run": not force,
        "objects": len(deleted),
        "bytes": sum(size for _, size in deleted),
        "kept": kept,
        "young": young,
        "grace": grace,
        "groups": _groups(doomed, dropped),
        "unreadable": keep.unreadable,
        "compacted_files": len(gone_compacted),
        "compacted_bytes": sum(size for _, size in gone_compacted),
        "packed_kept": stay,
    }


def _collect_compacted(repo: Repo, needed: set[str], force: bool, cutoff: float) -> list[tuple[str, int]]:
    """The cache's compacted versions (docs/FORMAT.md, "Compacted versions") as gc treats a remote: the
    recipes no kept version needs, and packs with no live entry, go once older than cutoff, and packs mostly dead
    are rewritten; needed grows by the bases of the kept ones' deltas (whole in the cache, or compacted). Returns
    what went (rel, size)."""
    from mvc.objects import recipe as rc
    from mvc.objects import repack
    from mvc.objects.journal import Journal
    from mvc.repo import compact as compactmod

    held = compactmod.all_held(repo)
    if not held:
        return []
    jr = Journal(os.path.join(repo.mvc_dir, "remotes.db"))
    try:
        t = compactmod.open_transfer(repo, jr)
        try:
            listing = t.store.list_times("")
            # compacted since the cutoff: kept, with what they read
            young = {o for o in held if ((listing.get(rc.rel(o)) or (0, 0.0))[1] or 0.0) > cutoff}
            live, damaged = _recipe_closure(t.rebuilder(), needed, held, young)
            if damaged:
                raise GcRefused(
                    f"the compacted copy of object {sorted(damaged)[0]} ({compactmod.recipe_path(repo, sorted(damaged)[0])}) "
                    "cannot be read, so gc cannot tell what it needs; nothing was deleted: run 'mvc verify'"
                )
            t.read_packs(recheck=True)
            doomed, named, _ = _store_doomed(listing, needed | young, cutoff)
            kept = repack.recipes(t.rebuilder(), (needed & held) | young)
            packs = repack.plan(listing, jr.pack_entries(t.key), needed | young | live, kept, cutoff)
            if force:
                repack.rewrite(t, packs)  # first: a corrupt live entry refuses before anything is deleted
                jr.forget_packs(t.key, packs.gone)
                jr.discard(t.key, [oid for oid, _ in named + packs.named])
                for rel, _ in doomed + packs.files:
                    t.store.delete(rel)
            return doomed + packs.files
        finally:
            t.close()
    finally:
        jr.close()


def _restore_trash(odb: Any) -> int:
    """Put back the objects a gc killed part way left renamed for deletion (``ab/cdef….gc-PID``, its process
    gone): each is a whole object, which this gc judges again. Returns how many."""
    import functools

    if not os.path.isdir(odb.objects_dir):
        return 0
    fans = [fan for fan in os.scandir(odb.objects_dir) if fan.is_dir(follow_symlinks=False)]
    return sum(cachepacks.put_back(fan.path, functools.partial(_object_name, fan.name)) for fan in fans)


def _object_name(fan: str, name: str) -> bool:
    from mvc.objects import oid as oids

    return oids.from_relpath(f"{fan}/{name}") is not None


def _groups(doomed: list[tuple[str, int]], dropped: reachmod.Reach) -> list[dict[str, Any]]:
    """What goes, by the path and version that named it (history versions keep_last let go), else together."""
    groups: dict[str, list[int]] = {}
    for oid, size in doomed:
        names = dropped.labels.get(oid)
        g = groups.setdefault(names[0] if names else "not named by any pointer", [0, 0])
        g[0] += 1
        g[1] += size
    return [{"what": k, "objects": v[0], "bytes": v[1]} for k, v in sorted(groups.items())]


def _refuse_a_new_push(t: Any, name: str, listing: dict[str, tuple[int, float | None]]) -> None:
    """A push that began after gc listed the remote (its lease is new) may reuse files gc is about to delete, and
    end before it: nothing is deleted then. (The stamp is written already: a push beginning from now on checks,
    at its end, that what it reused is still there.)"""
    from mvc.objects.layout import LEASES

    new = sorted(set(t.store.list_times(LEASES)) - set(listing))
    if new:
        raise GcRefused(
            f"a push to remote {name} began while gc read it ({new[0]}): nothing was deleted; run gc again once the "
            "push is done"
        )


def _refuse_unread(keep: reachmod.Reach) -> None:
    if keep.unread_manifests:
        first = keep.unread_manifests[0]
        raise GcRefused(
            f"{keep.wanted.label(first)} (manifest {first}) is kept but cannot be read from the cache, so gc "
            "cannot tell which files it needs; nothing was deleted: fetch it again ('mvc fetch') or run 'mvc verify "
            "--repair' first"
        )


def _delete(repo: Repo, doomed: list[tuple[str, int]], cutoff: float) -> list[tuple[str, int]]:
    """Delete each object unless a writer freshened it since the scan: renamed aside first (from then on a
    writer that freshens it finds it gone and stores it again), its mtime checked on the renamed file, then
    unlinked, or renamed back. The objects actually deleted."""
    from mvc.objects.odb import TRASH

    done: list[tuple[str, int]] = []
    for oid, size in doomed:
        path = repo.odb.path(oid)
        trash = f"{path}{TRASH}{os.getpid()}"
        try:
            if _in_use(os.lstat(path), cutoff):
                continue
            os.rename(path, trash)
        except FileNotFoundError:
            continue
        st = os.lstat(trash)
        if st.st_nlink > 1 or st.st_mtime > cutoff:  # freshened (or linked) between the check and the rename
            os.rename(trash, path)  # a copy a writer stored meanwhile has the same bytes
            continue
        os.unlink(trash)
        done.append((oid, size))
    for prefix in {oid.split(":", 1)[1][:2] for oid, _ in done}:  # drop fan-out directories left empty
        try:
            os.rmdir(os.path.join(repo.odb.objects_dir, prefix))
        except OSError:
            pass
    return done


def _in_use(st: os.stat_result, cutoff: float) -> bool:
    """Whether a cache object counts as in use whatever names it: written or freshened after cutoff, or
    hard-linked from elsewhere (a workspace file, cache.type hardlink)."""
    return st.st_nlink > 1 or max(st.st_mtime, st.st_ctime) > cutoff


def _check_cache_owner(repo: Repo, sole_user: bool) -> None:
    """A cache other than this repository's own (``.mvc/cache``, of the main work tree in a linked worktree, and
    not a link: a committed one may point at another project's cache) may be shared by repositories gc cannot
    see: refused unless sole_user. A remote's directory is refused whatever the flags (``gc -r`` is its gc)."""
    from mvc.objects.layout import GC_STAMP

    root, own = repo.odb.root, os.path.normpath(repo.odb.root) == os.path.normpath(repo.own_cache)
    remote = [n for n in (GC_STAMP, "leases", "repos") if os.path.lexists(os.path.join(root, n))]
    if remote:
        raise GcRefused(
            f"the cache {root} holds a remote's {remote[0]}: it is an mvc remote, not a cache, so nothing was "
            "deleted: point cache.dir (or the .mvc/cache link) elsewhere; a remote's gc is 'mvc gc -r NAME'"
        )
    if (own and not os.path.islink(repo.own_cache)) or sole_user:
        return
    why = f"a symbolic link (to {os.path.realpath(root)})" if own else "not this repository's own (cache.dir is set)"
    raise GcRefused(
        f"the cache {root} is {why}, and other repositories may use it: gc cannot see what they need, so nothing "
        "was deleted; if this repository is its only user, run 'mvc gc --sole-user'"
        + (" (a link committed to git: 'git rm --cached .mvc/cache', then make it a directory)" if own else "")
    )


# -- a remote ---------------------------------------------------------------------------------------
def _gc_remote(
    repo: Repo,
    name: str,
    force: bool,
    keep_last: int | None,
    revs: list[str] | None,
    drop_deprecated: bool,
    grace: str,
    window: float,
    sole_user: bool,
    jobs: int | None,
    progress: progressmod.Factory,
) -> dict[str, Any]:
    """gc of remote name: what this repository keeps, plus everything every ref of every git remote needs
    (their history too), plus the delta bases of what is kept; what is left goes when older than the grace
    period by the remote's own clock: whole objects, recipes, and packs none of whose entries is kept; a pack
    mostly dead is rewritten (:mod:`mvc.objects.repack`), and one a rewrite replaced goes in a later run."""
    from mvc.objects import layout, repack
    from mvc.objects import oid as oids
    from mvc.objects import recipe as rc
    from mvc.objects.meter import Meter
    from mvc.repo.remotes import journal, open_transfer, spec

    sp = spec(repo, name)
    sp.check()  # a cache is no remote (docs/FORMAT.md, "A remote"): refused before the keep set is read
    jr = journal(repo)
    try:
        t = open_transfer(repo, sp, jr, jobs)
        try:
            t.check_writable()
            t.check_layout()
            layout.refuse_unmarked(t.store, sp.name)  # before any listing: gc deletes only where mvc wrote
            # The clock, then the pushes running now: one that ends (its lease deleted) before the listing below
            # wrote its files before the cutoff, and nothing in git names them yet; one that begins after this
            # clock writes after the cutoff.
            cutoff = time.time() - window
            running = t.store.list_times(layout.LEASES)
            keep, dropped = reachmod.keep_set(repo, keep_last, revs, drop_deprecated, reachmod.git_remote_tips(repo))
            _refuse_unread(keep)
            unread = [m for m in keep.wanted.manifests if m not in keep.wanted.entries]
            if unread:  # directories whose manifest only the remote holds: fetched, to learn their files
                t.download(sorted(t.existing(unread)), Meter(progressmod.null, "", 0, 0))
                keep.read_manifests(repo)
                _refuse_unread(keep)
                lost = [m for m in unread if m not in keep.wanted.entries]
                if lost:
                    raise GcRefused(
                        f"{keep.wanted.label(lost[0])} (manifest {lost[0]}) is kept but neither the cache nor remote "
                        f"{sp.name} has it, so gc cannot tell which files it needs; nothing was deleted: push it "
                        "from a machine that has it"
                    )
            listing = t.store.list_times("")
            _check_remote_users(repo, sp.name, listing, sole_user)
            unknown = [rel for rel, (_, when) in listing.items() if when is None]
            if unknown:
                raise GcRefused(
                    f"remote {sp.name} does not say when {unknown[0]} was written, so the grace period cannot be "
                    "checked; nothing was deleted"
                )
            needed = keep.objects()
            held_from = cutoff
            now = time.time()
            early, _, seen = layout.leases(running, cutoff, now)
            cutoff, stale_leases, lease = layout.leases(listing, min(cutoff, early), now)
            lease = lease or seen
            leased = cutoff < held_from  # a live push lease (a push running now, or one killed within a day)
            recipes = {
                oids.from_relpath(rel[len(rc.RECIPES) :]) or "": when or 0.0
                for rel, (_, when) in listing.items()
                if rel.startswith(rc.RECIPES)
            }
            young_recipes = {oid for oid, when in recipes.items() if when > cutoff}  # a push not in git yet
            live_chunks, damaged = _recipe_closure(t.rebuilder(), needed, set(recipes), young_recipes)
            if damaged:
                first = sorted(damaged)[0]
                raise GcRefused(
                    f"the chunk list of {keep.wanted.label(first)} ({t.store.where(rc.rel(first))}) on remote {sp.name} "
                    "cannot be read, so gc cannot tell which chunks it needs; nothing was deleted: retry, or run 'mvc "
                    "push --verify-remote' from a machine that has it"
                )
            t.read_packs(recheck=True)  # every index read again: the packs as they are now
            doomed, named, young = _store_doomed(listing, needed, cutoff)
            kept = repack.recipes(t.rebuilder(), (needed & set(recipes)) | young_recipes)
            packs = repack.plan(listing, jr.pack_entries(sp.key), needed | live_chunks, kept, cutoff)
            if force:
                repack.rewrite(t, packs)  # first: a corrupt live entry refuses before anything is deleted
            doomed, named, young = doomed + packs.files + stale_leases, named + packs.named, young + packs.young
            deleted = doomed
            if force and doomed:  # the journal first: killed half way, it says absent what may still be there
                jr.forget_packs(sp.key, packs.gone)
                jr.discard(sp.key, [oid for oid, _ in named])
                # then the stamp, before the first delete: every other clone's push stops trusting its journal
                stamp = f"mvc-gc {int(time.time())} {os.urandom(8).hex()}\n"
                t.store.put_bytes(layout.GC_STAMP, stamp.encode())
                jr.set_stamp(sp.key, stamp, time.time())
                _refuse_a_new_push(t, sp.name, listing)
                deleted = []
                for rel, size in doomed:
                    t.store.delete(rel)
                    deleted.append((rel, size))
        finally:
            t.close()
    finally:
        jr.close()
    return {
        "dry_run": not force,
        "remote": sp.name,
        "objects": len(named),
        "files": len(deleted),
        "bytes": sum(size for _, size in deleted),
        "kept": len(needed),
        "young": young,
        "grace": grace,
        "lease_since": cutoff + 60 if leased else None,
        "lease": t.store.where(lease) if leased and lease else None,
        "packs_deleted": len(packs.gone),
        "packs_rewritten": len(packs.rewrite),
        "rewrite_frees": packs.frees,
        "packs_superseded": packs.waiting,
        "packs_partly_dead": packs.partly[0],
        "dead_bytes_in_kept_packs": packs.partly[1],
        "groups": _groups(named, dropped),
        "unreadable": keep.unreadable,
    }


def _store_doomed(
    listing: dict[str, tuple[int, float | None]], needed: set[str], cutoff: float
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """What goes from a store (a remote, or the cache's compacted versions) as listed (rel -> (size, write
    time)), packs apart (:mod:`mvc.objects.repack`): whole objects and recipes not needed, once older than
    cutoff. Returns (doomed (rel, size), what they held (oid, size), how many were too young)."""
    from mvc.objects import oid as oids
    from mvc.objects import recipe as rc

    doomed: list[tuple[str, int]] = []
    named: list[tuple[str, int]] = []
    young = 0
    for rel, (size, when) in sorted(listing.items()):
        if rel.startswith(("objects/", rc.RECIPES)):
            oid = oids.from_relpath(rel.split("/", 1)[1])
            if not oid or oid in needed:
                continue
            if when is None or when > cutoff:
                young += 1
                continue
            doomed.append((rel, size))
            named.append((oid, size))
    return doomed, named, young


def _check_remote_users(repo: Repo, name: str, listing: dict[str, Any], sole_user: bool) -> None:
    """Refuse a remote that another repository pushes to (``repos/ROOT`` names each: docs/FORMAT.md, "What
    gc keeps"), or one where no repository is named yet (pushed by an mvc older than 0.3) unless sole_user."""
    from mvc.objects import layout

    users = {rel[len(layout.REPOS) :] for rel in listing if rel.startswith(layout.REPOS)}
    ours = set(repo.git.roots())
    # a root commit this clone holds is its own history's (one amended since it pushed, say)
    held = repo.git.peel_commits(u for u in users - ours if re.fullmatch("[0-9a-f]{40}", u))
    others = users - ours - {u for u, commit in held.items() if commit}
    if others:
        first = sorted(others)[0]
        raise GcRefused(
            f"remote {name} is also used by another repository (root commit {first[:12]}), whose versions gc "
            "cannot see; nothing was deleted: give each repository its own remote to collect (if that "
            f"repository is gone for good, delete {layout.REPOS}{first} on the remote)"
        )
    if not users and not sole_user:
        raise GcRefused(
            f"remote {name} does not say which repositories push to it (they pushed with an mvc older than 0.3), "
            "so gc cannot tell whether others need its objects; nothing was deleted: if this repository is "
            f"its only user, run 'mvc gc -r {name} --sole-user'"
        )


def _recipe_closure(rb: Any, needed: set[str], on_remote: set[str], young: set[str]) -> tuple[set[str], set[str]]:
    """(the chunks and deltas named by the recipes of needed objects and by the young recipes, the recipes
    that could not be read); needed grows by every delta's base (a kept version's deltas need their
    bases), recursively."""
    from mvc.errors import MvcError

    chunks: set[str] = set()
    damaged: set[str] = set()
    todo = sorted((needed & on_remote) | young)
    seen: set[str] = set()
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        try:
            r = rb.recipe(oid)
        except MvcError:
            damaged.add(oid)
            continue
        if r is None:
            continue
        for e in r.entries:
            chunks.add(e.oid)
            if e.kind == "d" and e.base not in needed:
                needed.add(e.base)
                if e.base in on_remote:
                    todo.append(e.base)
    return chunks, damaged
