"""Moving weights: push / fetch / pull, and what ``mvc status -r`` adds.

Order on a remote (docs/FORMAT.md, "Remote layout"): file objects and directory entries first, their
manifest after them, so a manifest on a remote means its entries are there too; pointers reach git
after the objects they name (the user's ``git push``, or the pre-push hook, comes last).

"Nothing to push" is decided from the journal and one small read (the remote's gc stamp: a gc since the
journal was written makes it start again), and s3fs/fsspec are not imported for it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from typing import Any

from mvc import progress as progressmod
from mvc.errors import CorruptObject, MvcError, ObjectMissing
from mvc.objects.journal import Journal
from mvc.objects.meter import Meter, Recorder
from mvc.repo.remotes import Spec, fetch_wanted, journal, mark_user, open_transfer, spec
from mvc.repo.repository import Repo, open_repo
from mvc.repo.selection import Wanted, pointers, user_jobs, user_revs

STAMP_EVERY = 600  # seconds a push trusts its journal's check of the remote's gc stamp


def push(
    paths: Iterable[str] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    revs: Iterable[str] | None = None,
    all_branches: bool = False,
    all_tags: bool = False,
    all_commits: bool = False,
    verify_remote: bool = False,
    fresh_stamp: bool = False,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Upload the objects the selected pointers need that the remote lacks (entries before manifests).
    ``fresh_stamp``: read the remote's gc stamp now, whenever it was last read (the pre-push hook: a gc since
    the last push may have deleted what the commits about to be published reuse).

    Pointers: those of the work tree (filtered by paths), or of ``revs`` / every branch / tag / commit
    instead. Returns {"remote", "uploaded", "bytes", "present"}, and "root_missing" (a directory remote's path) when
    the journal says everything is there but that directory does not exist now (a share not mounted). Raises
    ObjectMissing, after pushing the rest, when objects are neither in the cache nor on the remote.
    """
    repo = open_repo(repo)
    revs, jobs = user_revs(revs) or [], user_jobs(jobs)
    sp = spec(repo, remote)
    sp.check()  # before the journal: "nothing to push" to a cache would be a lie
    selected = pointers(repo, paths, revs, all_branches, all_tags, all_commits)
    wanted = Wanted()
    for label, p in selected.items():
        wanted.add_pointer(label, p)
    jr = journal(repo)
    try:
        if not verify_remote:
            _check_stamp(repo, sp, jr, fresh_stamp)
        return _push(repo, sp, wanted, jr, jobs, verify_remote, progress)
    finally:
        jr.close()


def _check_stamp(repo: Repo, sp: Spec, jr: Journal, fresh: bool = False) -> None:
    """Forget what the journal says the remote holds when an ``mvc gc -r`` deleted from it since (its gc stamp
    changed), or when the remote lost its layout marker (emptied since): an object this clone pushed long ago,
    that no git ref named yet, may be gone (docs/FORMAT.md, "A remote"). One read of a small file (two when
    there is no stamp), at most once every STAMP_EVERY seconds per remote (so pushes in a row ask nothing), or
    now whatever the last read (``fresh``: the pre-push hook), through the store's reading client; a remote that
    cannot be reached leaves the journal trusted, as before."""
    import time

    from mvc.errors import RemoteNotFound
    from mvc.objects import layout

    had, checked = jr.stamp(sp.key)
    now = time.time()
    if 0 <= now - checked < STAMP_EVERY and not fresh:
        return
    root = sp.local_dir
    if root is not None and not os.path.isdir(root) and checked > 0:
        # a directory remote looked at before, not there now (a share not mounted): unreachable, not emptied (a
        # push then refuses to make it again: _check_still_there); never looked at, it is a new remote
        return
    try:
        t = open_transfer(repo, sp, jr, reading=True)
        wiped = False
        try:
            try:
                stamp = _read_stamp(t)
            except RemoteNotFound:
                stamp = None
            if stamp is None:  # emptied, or its files deleted by hand
                try:
                    wiped = had is None and not t.store.exists(layout.MARKER)
                except RemoteNotFound:  # its bucket gone: nothing is there any more (the push then says so)
                    wiped = True
        finally:
            t.close()
    except (MvcError, OSError):
        return  # unreachable (or unreadable): "nothing to push" stays an answer offline, as the journal says
    jr.set_stamp(sp.key, stamp, now, restart=stamp != had or wiped)


def _read_stamp(remote: Any) -> str | None:
    """The remote's gc stamp now, None when it has none; a failure to read it raises."""
    from mvc.errors import RemoteObjectMissing
    from mvc.objects import layout

    try:
        return str(remote.store.get_range(layout.GC_STAMP, 0, layout.MARKER_MAX).decode("ascii", "replace"))
    except RemoteObjectMissing:
        return None


def _stamp_now(remote: Any) -> str | None:
    """The remote's gc stamp now (None: none; also when it cannot be read, as the end of a push then reads it)."""
    try:
        return _read_stamp(remote)
    except (MvcError, OSError):
        return None


def _after_gc(
    repo: Repo,
    remote: Any,
    jr: Journal,
    sp: Spec,
    stamp: str | None,
    wanted: Wanted,
    reused: set[str],
    sent_manifests: list[str],
    meter: Meter,
    recorder: Recorder,
) -> int:
    """Bytes sent again: when an ``mvc gc -r`` deleted from the remote while this push ran (its gc stamp is not
    the one the push started with), it may have taken objects the push counted on as there and no git ref named
    yet (an abandoned push's, reused). The remote is asked afresh (its packs listed and their indexes read
    again, nothing taken from what this command learnt before) about those, and about every entry of each
    manifest among them or sent (read from the cache); what is gone goes up again from the cache, entries before
    the manifests whose entries are all there. One read of the stamp otherwise; a stamp that cannot be read
    leaves things as they are (as at the start of a push)."""
    try:
        now = _read_stamp(remote)
    except (MvcError, OSError):
        return 0
    if now == stamp:
        return 0
    jr.set_stamp(sp.key, now, time.time(), restart=True)
    remote.forget_placement()
    manifests = sorted({m for m in reused if m in wanted.manifests} | set(sent_manifests))
    for m in manifests:
        if m not in wanted.entries and repo.odb.exists(m):
            wanted.read_manifest(repo, m)
    entries = {e.oid for m in manifests for e in wanted.entries.get(m, [])}
    asked = {o for o in reused if o in wanted.files} | entries | set(manifests)
    there = remote.existing(asked)
    gone = asked - there
    files = sorted(o for o in gone if o not in wanted.manifests and repo.odb.exists(o))
    sent = remote.upload(files, {o: wanted.files[o][1] for o in files}, meter, recorder) if files else 0
    on = there | set(files)
    ready = [
        m
        for m in manifests
        if m in gone and repo.odb.exists(m) and m in wanted.entries and all(e.oid in on for e in wanted.entries[m])
    ]
    if ready:
        sent += remote.upload(ready, {m: repo.odb.size(m) for m in ready}, meter, recorder)
    return sent


def _push(
    repo: Repo, sp: Spec, wanted: Wanted, jr: Journal, jobs: int | None, verify: bool, progress: progressmod.Factory
) -> dict[str, Any]:
    known = set() if verify else jr.known(sp.key, list(wanted.files) + list(wanted.manifests))
    unread: list[str] = []  # manifests neither in the cache nor known on the remote
    for moid in list(wanted.manifests):
        if moid in known:
            continue  # on the remote, so are its entries (they are pushed first)
        if repo.odb.exists(moid):
            wanted.read_manifest(repo, moid)
        else:
            unread.append(moid)
    if not verify:
        entry_oids = {e.oid for es in wanted.entries.values() for e in es} - known
        known |= jr.known(sp.key, entry_oids)
    everything = set(wanted.files) | set(wanted.manifests)
    candidates = everything - known
    result: dict[str, Any] = {"remote": sp.name, "uploaded": 0, "bytes": 0, "present": len(everything & known)}
    if not candidates:  # decided from the journal alone: no request (a directory remote's root: one stat)
        root = sp.local_dir
        if root is not None and known and not os.path.isdir(root):
            result["root_missing"] = root  # a share not mounted: what the journal says is all there is to go on
        return result
    if known:
        _check_still_there(sp)

    remote = open_transfer(repo, sp, jr, jobs)
    try:
        remote.check_writable()  # a read-only store (http://) is refused before any request
        if verify:  # every pack index read again and checked against its pack's size, none taken on record
            remote.read_packs(recheck=True)
        there = remote.existing(candidates)
        if verify:  # a chunked object counts only when every pack its recipe names is there
            from mvc.objects.chunked import CHUNK_FROM

            there -= remote.incomplete({o for o in there if o in wanted.files and wanted.files[o][1] >= CHUNK_FROM})
        jr.add(sp.key, there)
        if verify:
            jr.discard(sp.key, candidates - there)
        for moid in unread:
            if moid in there and verify:  # check its entries too: bring the manifest into the cache to read it
                remote.download([moid], Meter(progressmod.null, "", 0, 1))
                entries = wanted.read_manifest(repo, moid)
                there |= remote.existing({e.oid for e in entries} - there - known)
        on_remote = known | there
        todo = [o for o in wanted.files if o not in on_remote]
        lacking = repo.odb.missing(todo, valid=True)  # a busy fan-out directory listed once; oids read checked
        expanded: list[str] = []
        if lacking:  # versions the cache holds compacted (mvc gc --compact): whole again to go up
            from mvc.repo import compact

            expanded = compact.expand(repo, lacking, progress, {o: wanted.label(o) for o in lacking})
            lacking = repo.odb.missing(lacking)
        lack = set(lacking)
        missing: list[str] = [o for o in todo if o in lack]
        files: list[str] = [o for o in todo if o not in lack]
        recorder = Recorder(jr, sp.key)
        manifests_todo = [m for m in wanted.manifests if m not in on_remote and repo.odb.exists(m)]
        missing += [m for m in wanted.manifests if m not in on_remote and not repo.odb.exists(m)]
        sizes = _sizes(repo, files, wanted, manifests_todo)
        meter = Meter(progress, f"pushing to {sp.name}", sum(sizes[o] for o in files), len(files) + len(manifests_todo))
        bases: dict[str, list[str]] = {}
        if sp.chunks:
            from mvc.objects.chunked import CHUNK_FROM
            from mvc.repo.bases import bases_for, inside

            large = {o: wanted.paths[o] for o in files if sizes[o] >= CHUNK_FROM and o in wanted.paths}
            bases = bases_for(repo, large, inside(wanted, large))
        lease = _lease(remote) if files or manifests_todo else None
        stamp = jr.stamp(sp.key)[0] if not verify else _stamp_now(remote)  # what the last gc -r wrote, as seen
        failed = False
        try:
            sent = remote.upload(files, sizes, meter, recorder, bases)
            recorder.flush()
            uploaded = set(files)
            # a manifest goes up only when every entry it lists is on the remote
            ready = [
                m
                for m in manifests_todo
                if all(e.oid in on_remote or e.oid in uploaded for e in wanted.entries.get(m, []))
            ]
            blocked = [m for m in manifests_todo if m not in ready]
            sent += remote.upload(ready, sizes, meter, recorder)
            sent += _after_gc(repo, remote, jr, sp, stamp, wanted, on_remote - uploaded, ready, meter, recorder)
            mark_user(repo, sp, remote, jr, recheck=verify)
            if expanded:  # up now: whole copies go again, the cache keeps them compacted (as gc --compact left it)
                from mvc.repo import compact

                here = {p.oid for p in pointers(repo, (), None).values()}  # the work tree's stay whole
                compact.drop_whole(repo, [o for o in expanded if o not in here])
        except BaseException:
            failed = True
            raise
        finally:
            recorder.flush()
            meter.close()
            if lease is not None:
                # on the way out of a failed push (a server gone silent, Ctrl-C), not waited for: it lapses in a day
                with contextlib.suppress(MvcError), remote.store.briefly() if failed else contextlib.nullcontext():
                    remote.store.delete(lease)
    finally:
        remote.close()
    result.update(uploaded=len(files) + len(ready), bytes=sent, present=len(everything & on_remote))
    if missing or blocked:
        first = (missing or blocked)[0]
        count = len(missing) + len(blocked)
        more = f" and {count - 1} more object{'s' if count > 2 else ''}" if count > 1 else ""
        from mvc.repo.repository import in_quotes, shell_quoted

        path = wanted.paths.get(first)
        readd = in_quotes(f"mvc add {shell_quoted(path)}") if path else "'mvc add PATH'"
        raise ObjectMissing(
            f"{wanted.label(first)} (object {first}){more} could not be pushed to {sp.name}: it is neither in "
            f"the cache nor on the remote; the rest was pushed: re-add it with {readd} where the file exists, "
            "or fetch it from the remote that has it ('mvc fetch -r NAME'), then push again"
        )
    return result


def _check_still_there(sp: Spec) -> None:
    """Refuse to make again a directory remote this repository pushed to before (the journal knows objects there)
    and that is gone: a share not mounted, or a URL that resolves elsewhere; a push would fill a new directory on
    the local disk while git published pointers nobody can fetch. A first push makes the directory."""
    from mvc.errors import RemoteNotFound

    root = sp.local_dir
    if root is not None and not os.path.isdir(root):
        raise RemoteNotFound(
            f"remote directory {root} of {sp.name} does not exist, though this repository pushed there before: mount "
            f"it, or fix its URL ('mvc remote modify {sp.name} url URL'); to start it afresh, create the directory"
        )


def _sizes(repo: Repo, files: list[str], wanted: Wanted, manifests: list[str]) -> dict[str, int]:
    """The size of each object to push: a small size its pointer or manifest gives is taken at its word (no
    stat for each of 100,000 small files; a pack reads each object and sends one that is larger alone),
    every other object's stat once."""
    from mvc.objects.pack import OBJECT_MAX

    sizes = {}
    for o in files:
        claimed = wanted.files[o][1]
        sizes[o] = claimed if 0 < claimed < OBJECT_MAX else repo.odb.size(o)
    for m in manifests:
        sizes[m] = repo.odb.size(m)
    return sizes


def fetch(
    paths: Iterable[str] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    revs: Iterable[str] | None = None,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Download into the cache the objects the selected pointers need (manifests first, then their entries).

    Every object is hashed and placed only if it matches its oid. Returns {"remote", "downloaded",
    "bytes", "present"}.
    """
    repo = open_repo(repo)
    revs, jobs = user_revs(revs) or [], user_jobs(jobs)
    sp = spec(repo, remote)
    wanted = Wanted()
    for label, p in pointers(repo, paths, revs).items():
        wanted.add_pointer(label, p)
    return fetch_wanted(repo, sp, wanted, jobs, progress)


def pull(
    paths: Iterable[str] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    rev: str | None = None,
    force: bool = False,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """fetch, then checkout: the fetch result plus "checkout", the rows of :func:`mvc.api.checkout.checkout`."""
    from mvc.api import checkout as checkoutmod

    repo = open_repo(repo)
    try:
        result = fetch(paths, remote=remote, jobs=jobs, revs=[rev] if rev else None, repo=repo, progress=progress)
    except (CorruptObject, ObjectMissing) as e:
        if rev is not None:
            raise
        # as git-lfs and DVC do: what did come whole is restored, and the error still says what did not
        whole = _complete(repo, paths)
        if not whole:
            raise
        try:
            checkoutmod.checkout(whole, force=force, repo=repo, progress=progress)
        except MvcError:  # (a modified file, say): the fetch's error is the one to tell
            raise e from None
        n = len(whole)  # every path the error does not name
        restored = f"{n} other path{'s' if n != 1 else ''} fetched whole {'were' if n != 1 else 'was'} restored"
        raise type(e)(f"{e} ({restored})") from None
    result["checkout"] = checkoutmod.checkout(paths, rev=rev, force=force, repo=repo, progress=progress)
    return result


def _lease(remote: Any) -> str:
    """Write a lease on the remote before the first upload (``leases/<seconds>-<random>``): a ``gc -r`` that starts
    while this push runs keeps everything written after it (the packs of a chunked file go up before the chunk
    list that names them). The push deletes it when done; a killed push's lease lapses after a day."""
    from mvc.objects import layout

    remote.check_layout(writing=True)  # first: nothing is written to a place that is not mvc's
    rel = f"{layout.LEASES}{int(time.time())}-{os.urandom(6).hex()}"
    remote.store.put_bytes(rel, b"mvc push\n")
    return rel


def _complete(repo: Repo, paths: Iterable[str]) -> list[str]:
    """The tracked paths among paths (all when none) whose objects the cache holds every one of."""
    found = []
    for label, p in pointers(repo, paths, None).items():
        if not repo.odb.exists(p.oid):
            continue
        if p.kind == "dir":
            try:
                from mvc.objects import manifest as mf

                entries = mf.loads(repo.odb.read_bytes(p.oid), p.oid)
            except MvcError:
                continue
            if not all(repo.odb.exists(e.oid) for e in entries):
                continue
        found.append(repo.abs(Repo.target_of(label)))
    return found


def status(
    paths: Iterable[str] = (), *, remote: str | None = None, jobs: int | None = None, repo: Repo | None = None
) -> list[dict[str, Any]]:
    """Per tracked path of the work tree: how many of its objects are not pushed (in the cache, not on
    the remote), not fetched (on the remote, not in the cache) and missing from both.

    Objects the journal does not know are looked up on the remote (and recorded when found).
    """
    repo = open_repo(repo)
    sp = spec(repo, remote)
    sp.check()
    selected = pointers(repo, paths, None, skip_conflicted=True)  # (status lists those as conflicted)
    per_path: dict[str, set[str]] = {}
    wanted = Wanted()
    for label, p in selected.items():
        wanted.add_pointer(label, p)
        objs = {p.oid}
        if p.kind == "dir" and repo.odb.exists(p.oid):
            objs |= {e.oid for e in wanted.read_manifest(repo, p.oid)}
        per_path[label] = objs
    everything = set().union(*per_path.values()) if per_path else set()
    jr = journal(repo)
    try:
        on_remote = jr.known(sp.key, everything)
        unknown = everything - on_remote
        if unknown:
            transfer = open_transfer(repo, sp, jr, jobs, reading=True)
            try:
                there = transfer.existing(unknown)
            finally:
                transfer.close()
            jr.add(sp.key, there)
            on_remote |= there
    finally:
        jr.close()
    rows = []
    for label, objs in per_path.items():
        cached = {o for o in objs if repo.odb.exists(o)}
        rows.append(
            {
                "path": Repo.target_of(label),
                "remote": sp.name,
                "not_pushed": len(cached - on_remote),
                "not_fetched": len((objs - cached) & on_remote),
                "missing": len(objs - cached - on_remote),
            }
        )
    return rows
