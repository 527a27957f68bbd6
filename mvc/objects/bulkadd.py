"""Many files stored in the cache at once, by forked processes (:mod:`mvc.storage.forked`): what ``mvc add`` of
thousands of files does. Where a copy is allowed, each process puts the files under 1 MiB into packs of its own
(docs/FORMAT.md, "Cache packs") rather than one object file each: for 100,000 small files, creating the files is
most of the cost."""

from __future__ import annotations

import os
import stat as statmod

from mvc.objects import cachepacks
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects.odb import ODB, changed_while_added
from mvc.storage import fileio
from mvc.storage.fileio import Progress


def add_files(
    odb: ODB, srcs: list[str], link_types: list[str], workers: int, progress: Progress | None = None
) -> list[tuple[str, str, os.stat_result]]:
    """``odb.add_file`` of every src, by ``workers`` forked processes (the caller has no other thread), for copies
    and reflinks only (what leaves the user's file as it is); odb then knows what they stored as if it had stored
    it. Returns (oid, how it was stored, src's stat before reading) of each."""
    from mvc.storage.forked import map_forked, stat_fields, stat_from

    writer: cachepacks.Writer | None = None
    if "copy" in link_types:
        odb.mark_packs()
        writer = cachepacks.Writer(odb.packs, odb.tmp_dir, odb.fsync)  # opens nothing until a worker adds

    def one(src: str, shown: Progress) -> tuple[str, str, tuple, bool]:
        got = _add_packed(odb, src, writer, shown) if writer is not None else None
        if got is None:
            before = odb.placed
            oid, how, st = odb.add_file(src, link_types, progress=shown)
            got = oid, how, st, odb.placed > before
        return got[0], got[1], stat_fields(got[2]), got[3]

    try:
        results = map_forked(one, srcs, workers, progress, writer.close if writer is not None else None)
    finally:
        odb.packs.refresh()  # what the workers published, even if one failed
    out = []
    for oid, how, st, placed in results:
        if placed:
            odb.stored(oid)
        out.append((oid, how, stat_from(st)))
    return out


def _add_packed(
    odb: ODB, src: str, writer: cachepacks.Writer, progress: Progress | None
) -> tuple[str, str, os.stat_result, bool] | None:
    """Store src, a regular file under 1 MiB, in writer's pack, unless the cache has its content: (oid, "copy", its
    stat before reading, whether this stored it); None for anything else (``odb.add_file`` stores it, or says what
    is wrong with it)."""
    fd = fileio.open_source(src)
    try:
        st = os.fstat(fd)
        if not statmod.S_ISREG(st.st_mode) or not pk.packable(st.st_size):
            return None
        data = os.pread(fd, st.st_size + 1, 0)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if len(data) != st.st_size or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        raise changed_while_added(src)
    oid = oids.from_digest(fileio.hexdigest_bytes(data))
    if progress is not None:
        progress(len(data))
    if writer.holds(oid) or (odb.exists(oid) and odb.freshen(oid)):
        return oid, "copy", st, False
    with fileio.space_errors(f"the cache ({odb.root})"):
        writer.add(oid, data)
    return oid, "copy", st, True
