"""``mvc gc --compact``: the versions of large files that the work tree does not hold move from whole cache
objects into the cache's compacted store (chunks, and deltas against the version the work tree holds or older
ones of the same path), each checked by rebuilding it before its whole copy goes (docs/FORMAT.md, "Compacted
versions")."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from mvc import progress as progressmod
from mvc.errors import CorruptObject
from mvc.repo import compact as compactmod
from mvc.repo import reach as reachmod
from mvc.repo.repository import Repo, open_repo

if TYPE_CHECKING:
    from mvc.repo.selection import Wanted


def compact(
    *, force: bool = False, repo: Repo | None = None, progress: progressmod.Factory = progressmod.null
) -> dict[str, Any]:
    """Find (and with ``force`` compact) the cache's whole objects of 4 MiB or more that a kept version needs
    but no work tree (nor index) holds. Returns {"dry_run", "objects", "bytes" (their whole size),
    "stored" (bytes the compacted store grew by), "freed" (bytes of whole objects deleted), "versions":
    [{"what", "oid", "size"}]}. Nothing is deleted that does not rebuild to its oid from the store."""
    from mvc.api.gc import _delete
    from mvc.objects.chunked import CHUNK_FROM
    from mvc.repo.bases import bases_for, inside

    repo = open_repo(repo)
    keep, _ = reachmod.keep_set(repo, None, None, False)
    here = reachmod.Reach()
    reachmod.add_workspace(repo, here)
    here.read_manifests(repo)
    whole = here.objects()
    current = _by_path(here)  # tracked path (a directory's file: DIR/SUB) -> the oid the work tree holds
    sizes = _large(keep.wanted, CHUNK_FROM)
    rel = inside(keep.wanted, sizes)  # {oid: SUB} of the files of tracked directories
    paths = {o: f"{keep.wanted.paths[o]}/{rel[o]}" if o in rel else keep.wanted.paths.get(o, o) for o in sizes}
    held = compactmod.all_held(repo)
    # a version compacted before and rebuilt whole since (a checkout of it) only loses its whole copy again
    todo = sorted((o for o in sizes if o not in whole and repo.odb.exists(o)), key=lambda o: (paths[o], o))
    versions = [{"what": keep.wanted.label(o), "oid": o, "size": sizes[o]} for o in todo]
    result: dict[str, Any] = {
        "dry_run": not force,
        "objects": len(todo),
        "bytes": sum(sizes[o] for o in todo),
        "stored": 0,
        "freed": 0,
        "versions": versions,
    }
    if not force or not todo:
        return result
    from mvc.objects.journal import Journal
    from mvc.objects.meter import Meter, Recorder
    from mvc.objects.transfer import bases_first

    # older versions of the same path (a directory's file: at the same relative path in the directory's earlier
    # manifests), one history read per tracked path; after the version the work tree holds at that path
    older = bases_for(repo, {o: keep.wanted.paths[o] for o in todo if o in keep.wanted.paths}, rel)
    bases = {o: [b for b in [current.get(paths[o])] if b and b != o and repo.odb.exists(b)] for o in todo}
    for o, found in older.items():
        bases[o] += [b for b in found if b not in bases[o]]
    before = _store_bytes(compactmod.root(repo))
    started = time.time()
    jr = Journal(os.path.join(repo.mvc_dir, "remotes.db"))
    freed: list[tuple[str, int]] = []
    try:
        t = compactmod.open_transfer(repo, jr)
        try:
            meter = Meter(progress, "compacting", sum(sizes[o] for o in todo), len(todo))
            recorder = Recorder(jr, compactmod.key(repo))
            try:
                for group in _by_group(todo, paths):
                    # a version after the older ones it may be based on: those are then whole in the cache still
                    # (what deltas are made against) and compacted (how deep their chains are, which the writer
                    # keeps within MAX_DEPTH)
                    for oid in bases_first(group, bases):
                        if oid not in held:
                            t.upload([oid], {oid: sizes[oid]}, meter, recorder, {oid: bases[oid]})
                        if compactmod.unsound(repo, [oid]):  # rebuilt from the store alone before the whole copy goes
                            raise CorruptObject(
                                f"{keep.wanted.label(oid)}: its compacted copy does not rebuild to {oid}; the whole "
                                "copy was kept: run 'mvc verify' and report this"
                            )
                    # the whole copies go as gc deletes: unless something freshened one meanwhile
                    freed += _delete(repo, [(o, sizes[o]) for o in group], started)
                result["rebased"] = len(_rebase_deep(repo, t, sizes, paths, current, recorder))
            finally:
                recorder.flush()
                meter.close()
        finally:
            t.close()
    finally:
        jr.close()
    result["stored"] = _store_bytes(compactmod.root(repo)) - before
    result["freed"] = sum(size for _, size in freed)
    return result


def _hops(repo: Repo, oid: str, memo: dict[str, int]) -> int:
    """How many deltas a read of compacted object oid follows down to whole bytes (0: whole in the cache, or
    chunks only); a cycle or a recipe that does not parse counts as too deep."""
    from mvc.objects import recipe as rc

    if oid in memo:
        return memo[oid]
    memo[oid] = rc.READ_HOPS + 1  # (while this one is being looked at: a cycle back to it)
    path = compactmod.recipe_path(repo, oid)
    if os.access(repo.odb.path(oid), os.F_OK) or not os.path.exists(path):
        memo[oid] = 0
        return 0
    try:
        with open(path, "rb") as f:
            r = rc.parse(f.read(), path, oid)
    except (OSError, CorruptObject):
        return memo[oid]
    bases = {e.base for e in r.entries if e.kind == "d"}
    memo[oid] = min(rc.READ_HOPS + 1, max((1 + _hops(repo, b, memo) for b in bases), default=0))
    return memo[oid]


def _rebase_deep(
    repo: Repo, t: Any, sizes: dict[str, int], paths: dict[str, str], current: dict[str, str], recorder: Any
) -> list[tuple[str, int]]:
    """Compacted versions now more than MAX_DEPTH deltas from whole bytes (their base compacted since, as deltas
    of its own: compacting after each new version makes every older chain one longer) compacted again against
    the version the work tree holds: each rebuilt whole into the cache, its chunk list written anew, checked by
    rebuilding it, then its whole copy let go. Killed at any point, each is whole, compacted, or both."""
    from mvc import progress as progressmod
    from mvc.objects import recipe as rc
    from mvc.objects.meter import Meter

    memo: dict[str, int] = {}
    deep = [o for o in sorted(compactmod.all_held(repo)) if o in sizes and _hops(repo, o, memo) > rc.MAX_DEPTH]
    done: list[tuple[str, int]] = []
    for oid in deep:
        base = current.get(paths[oid])
        if not base or base == oid or not repo.odb.exists(base) or oid not in compactmod.expand(repo, [oid]):
            continue
        os.unlink(compactmod.recipe_path(repo, oid))  # (whole in the cache now)
        t.upload([oid], {oid: sizes[oid]}, Meter(progressmod.null, "", 0, 0), recorder, {oid: [base]})
        if compactmod.unsound(repo, [oid]):
            raise CorruptObject(
                f"{paths[oid]}: its compacted copy does not rebuild to {oid}; the whole copy was kept: run 'mvc "
                "verify' and report this"
            )
        compactmod.drop_whole(repo, [oid])
        done.append((oid, sizes[oid]))
    return done


def _by_path(here: reachmod.Reach) -> dict[str, str]:
    """{tracked path: oid} of the files the work tree holds, a directory's files as DIR/SUB."""
    from mvc.repo.bases import inside

    w = here.wanted
    rel = inside(w, w.files)  # (a directory's file has the directory's tracked path in w.paths)
    out: dict[str, str] = {}
    for oid, path in w.paths.items():
        if oid in w.files and oid not in rel:
            out.setdefault(path, oid)
        for e in w.entries.get(oid, []):
            out.setdefault(f"{path}/{e.path}", e.oid)
    return out


def _large(w: Wanted, least: int) -> dict[str, int]:
    """{oid: size} of the kept files of at least ``least`` bytes (directories' files too: a manifest read lists
    them among ``w.files``)."""
    return {oid: size for oid, (_, size) in w.files.items() if size >= least and oid not in w.manifests}


def _by_group(todo: list[str], paths: dict[str, str]) -> list[list[str]]:
    """todo (sorted by path) cut into the versions of each tracked path."""
    groups: dict[str, list[str]] = {}
    for oid in todo:
        groups.setdefault(paths[oid], []).append(oid)
    return list(groups.values())


def _store_bytes(top: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(top):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
