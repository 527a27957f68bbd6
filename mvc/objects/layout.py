"""The layout of an object store (the cache, or a remote): where an object, a pack and the layout
marker live below its root, and the marker itself (docs/FORMAT.md, "Layout marker").

Every store mvc writes holds ``mvc.toml`` at its root: ``format = 1``, ``format = 2`` for a remote that
holds chunked objects (``recipes/``), ``format = 3`` once a recipe there names a sparse delta, or ``format = 4``
once an object there is a lone pack (``packs/<digest>.pack``, no index, no recipe). A reader
checks it before it trusts anything else there, and refuses a format it does not know, naming the upgrade.
What only a cache's root holds beside it (its ``.gitignore``, ``quarantine/``, ``compact/``) tells a cache from a
remote: a directory remote that is a cache is refused (:func:`cache_at`).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mvc.errors import LayoutError, StorageError
from mvc.objects import oid as oids
from mvc.storage import fileio, tempfiles

if TYPE_CHECKING:
    from mvc.storage.store import Store

OBJECTS = "objects/"
MARKER = tempfiles.MARKER  # "mvc.toml"
FORMAT = 1  # what a new store gets
CHUNKED = 2  # a remote with chunked objects: recipes/ (docs/FORMAT.md, "Chunked objects")
SPARSE = 3  # recipes may name sparse deltas (codec zs; docs/FORMAT.md, "Delta codec")
LONE = 4  # objects may be lone packs: packs/<digest>.pack alone (docs/FORMAT.md, "Lone packs")
CACHE_PACKS = 5  # a cache whose small objects may be in packs/ (docs/FORMAT.md, "Cache packs")
FORMATS = (FORMAT, CHUNKED, SPARSE, LONE, CACHE_PACKS)  # what this mvc reads


def marker_bytes(fmt: int) -> bytes:
    return f"# mvc object store layout (docs/FORMAT.md); do not edit\nformat = {fmt}\n".encode()


MARKER_BYTES = marker_bytes(FORMAT)
MARKER_MAX = 4096  # a marker is a few bytes: a bigger one is not mvc's
# What a store of format 1 holds at its root, besides its marker: a store without a marker that holds
# anything else is not mvc's (a cache or a remote from before markers holds only these; a cache, its .gitignore).
GC_LOCK = "gc.lock"  # a cache's: held shared by commands that store objects and then name them, exclusive by gc
CACHE_ENTRIES = frozenset({"objects", "tmp", "quarantine", "compact", ".gitignore", GC_LOCK})
REMOTE_ENTRIES = frozenset({"objects", "packs", "tmp", "recipes", "repos", "gc-stamp", "leases"})
# A cache's root also holds what a remote's never does: its .gitignore (written before its first object, so that
# git ignores the cache wherever cache.dir puts it), quarantine/, compact/ (docs/FORMAT.md, "The cache").
IGNORE = ".gitignore"
IGNORE_BYTES = b'# an mvc cache (docs/FORMAT.md, "The cache"): git ignores everything here\n*\n'
CACHE_ONLY = ("quarantine", "compact")
GC_STAMP = "gc-stamp"  # what the last mvc gc -r that deleted anything wrote before it did (a push then rechecks)
REPOS = "repos/"  # one empty file per repository that pushes here, named by its root commit (mvc gc -r)
LEASES = "leases/"  # one small file per push that is uploading now: gc -r keeps what was written after it
LEASE_MAX = 86400.0  # a lease older than this is a killed push's: no longer honoured, and deleted by gc -r --force


def object_rel(oid: str) -> str:
    """Where object oid lives below a store's root: ``objects/ab/cdef…``."""
    return OBJECTS + oids.to_relpath(oid)


def check_marker(data: bytes, where: str) -> int:
    """The layout format that a marker's bytes declare; refuses a marker that is not mvc's or whose
    format this version of mvc does not know."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        if len(data) > MARKER_MAX:
            raise ValueError("too large")
        doc = tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise LayoutError(
            f"{where} is not an mvc layout marker: this is not an mvc store; point mvc at another location"
        ) from None
    fmt = doc.get("format")
    if type(fmt) is not int:
        raise LayoutError(f"{where} has no integer 'format': this is not an mvc store; point mvc at another location")
    if fmt not in FORMATS:
        raise LayoutError(
            f"{where} says layout format {fmt}, which this mvc does not know (it reads formats 1 to {FORMATS[-1]}): "
            "upgrade mvc (pip install -U mvc)"
        )
    return fmt


def refuse_foreign(
    names: Iterable[str],
    allowed: frozenset[str],
    where: str,
    what: str,
    fix: str,
    done: str = "nothing was written to it",
) -> None:
    """Refuse (LayoutError) a store without a marker whose root holds names other than what an mvc store of
    format 1 holds there (``allowed``, the marker, temp files of mvc's pattern): it is not mvc's, and mvc
    writes nothing into it. An empty store, or one from before markers, passes."""
    foreign = sorted(n for n in names if n not in allowed and n != MARKER and not tempfiles.is_tmp_name(n))
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise LayoutError(
            f"{where} is not empty and not {what}: it has no {MARKER} and holds {foreign[0]!r}{more}, which mvc "
            f"never writes there; {done}: {fix}"
        )


def refuse_unmarked(store: Store, name: str) -> None:
    """Refuse (LayoutError), for a verb that deletes from it (``mvc gc -r``), a remote without a marker: nothing
    else proves that mvc wrote its files. As a push refuses it when it holds what an mvc remote never does, else
    (empty, or an mvc remote from before markers) because nothing there is known to be mvc's."""
    if store.exists(MARKER):
        return
    where = f"{store.url} (remote {name})"
    fix = f"point the remote at an empty location or an mvc remote ('mvc remote modify {name} url URL')"
    refuse_foreign(store.names(), REMOTE_ENTRIES, where, "an mvc remote", fix, done="nothing was deleted")
    raise LayoutError(
        f"{where} has no {MARKER}, so nothing there is known to be mvc's; nothing was deleted: if it is an mvc "
        f"remote, 'mvc push -r {name} --verify-remote' writes its {MARKER}, then run gc again"
    )


def leases(
    listing: dict[str, tuple[int, float | None]], cutoff: float, now: float
) -> tuple[float, list[tuple[str, int]], str | None]:
    """For gc -r, from a remote's listing (rel -> (size, write time)): (cutoff moved back to the oldest live push
    lease less a minute, so that what a push running now wrote is kept whatever the grace; the leases of killed
    pushes, older than LEASE_MAX, to delete; the oldest live lease, None when there is none)."""
    live: list[tuple[float, str]] = []
    stale: list[tuple[str, int]] = []
    for rel, (size, when) in listing.items():
        if not rel.startswith(LEASES) or when is None:
            continue
        if when > now - LEASE_MAX:
            live.append((when, rel))
        else:
            stale.append((rel, size))
    if not live:
        return cutoff, stale, None
    when, rel = min(live)
    return min(cutoff, when - 60), stale, rel


def write_ignore(root: str, fsync: bool = False) -> None:
    """Before a cache's first write in a process: its ``.gitignore`` (``*``), unless a file of that name is there,
    so that git ignores the cache wherever cache.dir puts it, a work tree included. A root this user may not
    write (a shared cache another user made) goes without: its objects are written where they may be."""
    path = os.path.join(root, IGNORE)
    if os.path.lexists(path):
        return
    try:
        fileio.atomic_write(path, IGNORE_BYTES, fsync=fsync)
    except (OSError, StorageError):
        pass


def cache_at(path: str) -> str | None:
    """The mvc cache that the directory path is or lies inside (a real path), else None: the nearest directory,
    path or one above it, whose root holds a marker and, beside it, what only a cache's root holds (its
    ``.gitignore``, ``quarantine/``, ``compact/``) or a marker of a cache's format (5). One stat a directory."""
    d = os.path.realpath(path)
    while True:
        if _is_cache(d):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _is_cache(root: str) -> bool:
    marker = os.path.join(root, MARKER)
    try:
        if not stat.S_ISREG(os.stat(marker).st_mode):
            return False
    except OSError:
        return False
    if any(os.path.isdir(os.path.join(root, n)) for n in CACHE_ONLY):
        return True
    try:
        with open(os.path.join(root, IGNORE), "rb") as f:
            if f.read(len(IGNORE_BYTES)) == IGNORE_BYTES:
                return True
    except OSError:
        pass
    try:
        with open(marker, "rb") as f:
            return check_marker(f.read(MARKER_MAX + 1), marker) == CACHE_PACKS
    except (OSError, LayoutError):
        return False
