"""Many files stored in the cache at once, by forked processes (:mod:`mvc.storage.forked`): what ``mvc add`` of
thousands of files does. Where a copy is allowed, each process puts the files under 1 MiB into packs of its own
(docs/FORMAT.md, "Cache packs") rather than one object file each: for 100,000 small files, creating the files is
most of the cost."""

from __future__ import annotations

import errno
import os
import stat as statmod
from array import array
from collections.abc import Callable
from typing import Any

from mvc.objects import cachepacks
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects.odb import ODB, changed_while_added
from mvc.storage import fileio
from mvc.storage.fileio import Progress


def add_files(
    odb: ODB, srcs: list[str], link_types: list[str], workers: int, progress: Progress | None = None
) -> list[tuple[str, str, tuple[int, ...]]]:
    """``odb.add_file`` of every src, by ``workers`` forked processes (the caller has no other thread), for copies
    and reflinks only (what leaves the user's file as it is); odb then knows what they stored as if it had stored
    it. Returns (oid, how it was stored, src's stat before reading as ``forked.stat_fields`` keeps it) of each."""
    from mvc.storage.forked import stat_fields

    writer = _writer(odb, link_types)
    loose = _fanouts(odb)

    def one(src: str, shown: Progress) -> tuple[str, str, tuple, bool]:
        oid, how, st, placed = _store(odb, src, writer, link_types, shown, loose)
        assert oid is not None
        return oid, how, stat_fields(st), placed

    results = _forked(odb, one, srcs, workers, progress, writer)
    odb.stored_many([oid for oid, _, _, placed in results if placed])
    return [(oid, how, st) for oid, how, st, _ in results]


def _store(
    odb: ODB,
    src: str,
    writer: cachepacks.Writer | None,
    link_types: list[str],
    progress: Progress,
    loose: set[str] | None,
    scan: bool = False,
) -> tuple[str | None, str, os.stat_result, bool]:
    """In a forked worker: store src as :func:`add_files` does, in writer's pack when it is small, else as
    ``odb.add_file`` does. (oid, how, its stat before reading, whether this stored it); ``scan``: src was not
    stat'ed, and one that is not a regular file is left as it is, as (None, "", its stat, False)."""
    if writer is not None:
        got = _add_packed(odb, src, writer, progress, loose, scan)
    elif scan and not statmod.S_ISREG((st := os.lstat(src)).st_mode):
        got = (None, "", st, False)
    else:
        got = None
    if got is not None:
        return got
    before = odb.placed
    oid, how, st = odb.add_file(src, link_types, progress=progress)
    return oid, how, st, odb.placed > before


def _forked(
    odb: ODB,
    fn: Callable[[Any, Progress], Any],
    items: list[Any],
    workers: int,
    progress: Progress | None,
    writer: cachepacks.Writer | None,
) -> list[Any]:
    """map_forked of fn over items, each worker closing writer's last pack; the packs they published then read."""
    from mvc.storage import tempfiles
    from mvc.storage.forked import map_forked

    tempfiles.sweep_dead(odb.tmp_dir, min_age=3600)  # what an earlier add's killed workers left (an hour old)
    try:
        return map_forked(
            fn,
            items,
            workers,
            progress,
            writer.close if writer is not None else None,
            # a worker that failed or was stopped left its pack's temp: cleared once it is gone
            ended=lambda pids: tempfiles.remove_of(odb.tmp_dir, pids),
        )
    finally:
        odb.packs.refresh()  # what the workers published, even if one failed


def _writer(odb: ODB, link_types: list[str]) -> cachepacks.Writer | None:
    """The cache pack writer of forked workers where a copy is allowed (it opens nothing until one adds)."""
    if "copy" not in link_types:
        return None
    odb.mark_packs()
    return cachepacks.Writer(odb.packs, odb.tmp_dir, odb.fsync)


class Share:
    """What one forked process of :func:`scan_add` hands back for its run of files, in their order: the oid of each
    (None: not a regular file, left as it is), the stat fields of each (``forked.stat_fields``, 13 numbers a file,
    as bytes of an array: the lstat of one left as it is, else the fstat taken before reading it), the state rows
    of those the state cache may trust, and the objects it stored."""

    __slots__ = ("fields", "oids", "rows", "stored")

    def __init__(self, oids_: list[str | None], fields: bytes, rows: list[tuple], stored: list[str]):
        self.oids, self.fields, self.rows, self.stored = oids_, fields, rows, stored


def scan_add(
    odb: ODB,
    srcs: list[str],
    labels: list[str],
    link_types: list[str],
    workers: int,
    row: Callable[[str, tuple[int, ...], str], tuple | None],
    progress: Progress | None = None,
    known: dict[str, tuple[int, int, int, int, str]] | None = None,
) -> list[Share]:
    """Stat and store the files srcs (not stat'ed yet; tracked as labels), as :func:`add_files` stores them, by
    ``workers`` forked processes, each taking a run of them and returning a :class:`Share` (in order): what the
    state cache, the manifest and the fingerprint need, with nothing per file left for this process to build but
    the entries. A file not regular is left as it is (the caller looks at it). ``row(label, stat fields, oid)``:
    the state cache's row of a file stored, or None (statedb.row). ``known``: the state cache's rows by label
    ({label: (inode, mtime_ns, ctime_ns, size, oid)}, statedb.StateDB.under): a file whose stat they match, and
    whose object the cache holds, is not read (a re-add after one file changed stats the rest)."""
    from mvc.storage.forked import stat_fields

    writer = _writer(odb, link_types)
    loose = _fanouts(odb)
    odb.packs.any()  # the cache packs' objects listed here, once, not by each worker
    n = len(srcs)
    step = -(-n // workers)
    runs = [range(i, min(i + step, n)) for i in range(0, n, step)]

    def one(run: range, shown: Progress) -> Share:
        found: list[str | None] = []
        fields = array("q")
        rows: list[tuple] = []
        stored: list[str] = []
        keep = fields.extend
        for i in run:  # once per file: kept to what it needs
            src = srcs[i]
            was = known.get(labels[i]) if known else None
            if was is not None:
                st = os.lstat(src)
                same = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size) == was[:4]
                if same and statmod.S_ISREG(st.st_mode) and _cached(odb, was[4], loose):
                    keep(stat_fields(st))
                    found.append(was[4])
                    continue
            oid, _, st, placed = _store(odb, src, writer, link_types, shown, loose, scan=True)
            if oid is None:  # not a regular file: left as it is
                found.append(None)
                keep(stat_fields(st))
                continue
            f = stat_fields(st)
            keep(f)
            found.append(oid)
            if placed:
                stored.append(oid)
            r = row(labels[i], f, oid)
            if r is not None:
                rows.append(r)
        return Share(found, fields.tobytes(), rows, stored)

    shares = _forked(odb, one, runs, len(runs), progress, writer)
    for share in shares:
        odb.stored_many(share.stored)
    return shares


def _fanouts(odb: ODB) -> set[str] | None:
    """The fan-out directories of the cache's loose objects (``objects/ab/``) as they are now, or None when they
    cannot be listed: an object whose directory is not among them is not stored loose, and a worker asks for it
    with no system call (into an empty cache, 100,000 of them). One made meanwhile by another process only means
    an object it stored loose may go in a pack too."""
    try:
        return set(os.listdir(odb.objects_dir))
    except FileNotFoundError:
        return set()
    except OSError:
        return None


def _cached(odb: ODB, oid: str, loose: set[str] | None) -> bool:
    """odb.exists(oid) for an oid this process computed (well formed), with no system call where ``loose`` says
    its fan-out directory is not there."""
    if odb.packs.has(oid):
        return True
    return (loose is None or oid[7:9] in loose) and os.access(f"{odb.objects_dir}/{oid[7:9]}/{oid[9:]}", os.F_OK)


def _add_packed(
    odb: ODB,
    src: str,
    writer: cachepacks.Writer,
    progress: Progress | None,
    loose: set[str] | None = None,
    scan: bool = False,
) -> tuple[str | None, str, os.stat_result, bool] | None:
    """Store src, a regular file under 1 MiB, in writer's pack, unless the cache has its content: (oid, "copy", its
    stat before reading, whether this stored it); None for anything else (``odb.add_file`` stores it, or says what
    is wrong with it). ``loose``: the cache's fan-out directories, see :func:`_fanouts` (None: ask for each).
    ``scan``: src was not stat'ed (it may be a symlink, a FIFO…): one that is not a regular file is left as it is,
    as (None, "", its stat, False), with no system call more than a regular file costs."""
    if scan:
        try:  # (O_NONBLOCK: a FIFO's open would wait for a writer)
            fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError as e:
            if e.errno != errno.ELOOP:
                fd = fileio.open_source(src)  # fails the same way, and says so in one line
            else:
                return None, "", os.lstat(src), False  # a symlink
    else:
        fd = fileio.open_source(src)
    try:
        st = os.fstat(fd)
        if not statmod.S_ISREG(st.st_mode):
            return (None, "", st, False) if scan else None
        if not pk.packable(st.st_size):
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
    if writer.holds(oid) or (_cached(odb, oid, loose) and odb.freshen(oid)):
        return oid, "copy", st, False
    try:  # (what fileio.space_errors does, without a context manager for each file)
        writer.add(oid, data)
    except OSError as e:
        err = fileio.local_error(e, f"the cache ({odb.root})")
        if err is None:
            raise
        raise err from None
    return oid, "copy", st, True
