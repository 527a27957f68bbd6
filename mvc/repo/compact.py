"""The cache's compacted versions (docs/FORMAT.md, "Compacted versions"): versions of large files that the work
tree does not hold, kept in ``<cache>/compact/`` as chunks and deltas in packs with one recipe each (a directory
remote's layout, written and read by the transfer engine), and rebuilt whole into the cache on demand."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from mvc import progress as progressmod
from mvc.objects import oid as oids
from mvc.objects import recipe as rc

if TYPE_CHECKING:
    from mvc.objects.journal import Journal
    from mvc.objects.transfer import Transfer
    from mvc.repo.repository import Repo

DIR = "compact"  # below the cache's root
NAME = "the cache's compacted versions"  # how messages name it


def root(repo: Repo) -> str:
    return os.path.join(repo.odb.root, DIR)


def key(repo: Repo) -> str:
    """Its identity in the journal (which chunks and packs it holds)."""
    return "compact:" + root(repo)


def recipe_path(repo: Repo, oid: str) -> str:
    return os.path.join(root(repo), *rc.rel(oid).split("/"))


def held(repo: Repo, wanted: Iterable[str]) -> set[str]:
    """Which of these objects the cache holds compacted (a recipe: one stat each, none where nothing is)."""
    if not os.path.isdir(os.path.join(root(repo), "recipes")):
        return set()
    return {o for o in wanted if os.path.exists(recipe_path(repo, o))}


def all_held(repo: Repo) -> set[str]:
    """Every object the cache holds compacted."""
    found: set[str] = set()
    top = os.path.join(root(repo), "recipes")
    if not os.path.isdir(top):
        return found
    for fan in os.scandir(top):
        if fan.is_dir(follow_symlinks=False):
            for e in os.scandir(fan.path):
                oid = oids.from_relpath(f"{fan.name}/{e.name}")
                if oid:
                    found.add(oid)
    return found


def open_transfer(repo: Repo, jr: Journal) -> Transfer:
    """The compacted versions as a store the transfer engine writes (compaction) and reads (expansion)."""
    from mvc.objects.transfer import Transfer
    from mvc.storage.directory import DirStore

    where = root(repo)
    store = DirStore(where, where, fsync=repo.odb.fsync)
    t = Transfer(store, repo.odb, jr, key(repo), name=NAME, jobs=4, packs=True, chunks=True)
    t.bases_in_cache = True  # read by this cache alone, which gc keeps the bases of (docs/FORMAT.md)
    t.sampled_bases = True  # the work tree's version, tried first, may be a retrained model: older ones next
    t.lone = False  # what it holds is what has a recipe (held): a lone pack would be a version nothing finds
    return t


def _rebuilt(
    repo: Repo, todo: list[str], what: str, labels: dict[str, str], progress: progressmod.Factory
) -> Iterator[tuple[str, str, str | None, str]]:
    """Rebuild each object of todo from the compacted store into a temp file of the cache's tmp/: yields
    (oid, its label, the hex digest rebuilt or None (no recipe), the temp file), which goes after each step;
    a rebuild refused on the way (a damaged pack or recipe, a missing base) raises its MvcError."""
    from mvc.objects.journal import Journal

    jr = Journal(os.path.join(repo.mvc_dir, "remotes.db"))
    try:
        t = open_transfer(repo, jr)
        try:
            for oid in todo:
                label = labels.get(oid, f"object {oid}")
                tmp = repo.odb.tmp_path(what)
                bar = progress(f"{what} {label}", 0)
                try:
                    got = t.get_chunked(oid, tmp, label, bar.update)
                    bar.close()
                    yield oid, label, got[0] if got else None, tmp
                finally:
                    bar.close()
                    if os.path.lexists(tmp):
                        os.unlink(tmp)
        finally:
            t.close()
    finally:
        jr.close()


def expand(
    repo: Repo,
    wanted: Iterable[str],
    progress: progressmod.Factory = progressmod.null,
    labels: dict[str, str] | None = None,
) -> list[str]:
    """Rebuild whole into the cache each of these objects the cache holds compacted (checked against its oid
    before it is placed); returns the ones it rebuilt."""
    from mvc.errors import CorruptObject

    done: list[str] = []
    for oid, label, digest, tmp in _rebuilt(repo, sorted(held(repo, wanted)), "rebuilding", labels or {}, progress):
        if digest is None:
            continue
        if oids.from_digest(digest) != oid:
            raise CorruptObject(
                f"{label}: the cache's compacted copy of {oid} rebuilds to other bytes (xxh128:{digest}); nothing "
                "was written: fetch it from a remote ('mvc fetch'), or run 'mvc verify' to see what else is damaged"
            )
        repo.odb.install(tmp, oid)
        done.append(oid)
    return done


def drop_whole(repo: Repo, rebuilt: Iterable[str]) -> None:
    """Delete the whole copies :func:`expand` made of objects the cache still holds compacted (a push needed
    them whole for a moment): the cache stays as small as ``gc --compact`` left it. Only loose object files,
    and only of objects the compacted store still rebuilds (``held``)."""
    import contextlib

    for oid in sorted(held(repo, rebuilt)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(repo.odb.path(oid))


def unsound(repo: Repo, wanted: Iterable[str], progress: progressmod.Factory = progressmod.null) -> list[str]:
    """Of these compacted objects, those that do not rebuild to their oid (a damaged pack or recipe, a
    missing base), each rebuilt into a temp file that then goes: nothing is placed."""
    from mvc.errors import CorruptObject, MvcError, ObjectMissing, RemoteError, StorageError

    bad: list[str] = []
    for oid in sorted(held(repo, wanted)):  # one at a time: a refused rebuild names this one only
        try:
            for _, _, digest, _ in _rebuilt(repo, [oid], "verifying", {}, progress):
                if digest is None or oids.from_digest(digest) != oid:
                    bad.append(oid)
        except MvcError as e:
            if isinstance(e, (StorageError, RemoteError)) and not isinstance(e, (CorruptObject, ObjectMissing)):
                raise  # the disk (full, read-only) stopped the check: said as it is, not as a bad copy
            bad.append(oid)
    return bad
