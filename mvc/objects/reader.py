"""Reading one object where it is, never trusting it: a verified stream, and a verified download to a
file, from the local cache or straight from a store (alone, or inside a pack), with no cache copy.

A stream hashes what it returns in order; a read that would return the object's last byte first hashes
whatever was skipped (seeks) and raises ``CorruptObject`` if the whole does not hash to the oid, so no
reader ever reaches the end of a wrong object. A download is written to a temp file, hashed, and only
then renamed into place by the caller.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mvc.errors import CorruptObject, MvcError, RemoteObjectMissing, RemoteWrongSize
from mvc.objects import layout
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects.recipe import rel as recipe_rel
from mvc.objects.transfer import Transfer
from mvc.storage import fileio, parallel
from mvc.storage.store import Progress

READ = 8 << 20  # bytes per request of a stream from a store (the part size large loaders use)
LOCAL_READ = 1 << 20  # bytes per read of a stream from the local cache

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

ReadRange = Callable[[int, int], bytes]  # (start, end) -> bytes [start, end) of the object


class VerifiedReader(io.RawIOBase):
    """The ``size`` bytes of object ``oid``, read through ``read_range``; ``label`` names it in errors, which are
    ``corrupt`` (``RemoteCorrupt`` where the bytes come from a remote). Wrap it in ``io.BufferedReader`` (as
    :func:`open_stream` does) for small reads."""

    def __init__(
        self,
        oid: str,
        size: int,
        read_range: ReadRange,
        label: str,
        chunk: int = READ,
        closer: Callable[[], None] | None = None,
        source: str = "",
        on_corrupt: Callable[[], None] | None = None,
        corrupt: type[CorruptObject] = CorruptObject,
    ):
        import xxhash

        self._closer = closer
        self._on_corrupt = on_corrupt  # called before CorruptObject is raised (the cache moves its copy aside)
        self.source = source  # where the bytes are read, named in the error (a store's file)
        self.error = corrupt  # what a wrong or short object raises: RemoteCorrupt for a remote's copy
        self.oid, self.size, self._read, self.label, self.chunk = oid, size, read_range, label, chunk
        self.name = label
        self._pos = 0
        self._hashed = 0  # bytes [0, _hashed) went into _hasher
        self._hasher = xxhash.xxh3_128()
        self.verified = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        closer, self._closer = self._closer, None
        if not self.closed and closer is not None:
            closer()
        super().close()
        # what it read through (a cache file's descriptor, a remote and its journal) let go now, not when the
        # stream itself is: a closed stream a caller keeps (in a list, a traceback) holds nothing open
        self._read = _closed

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.chunk, max(0, self.size - self._pos))
        if n == 0:
            if self.size == 0:
                self._finish()
            return 0
        start, end = self._pos, self._pos + n
        if end == self.size:
            self._catch_up(start)
        data = self._get(start, end)
        if start <= self._hashed < end:
            self._hasher.update(memoryview(data)[self._hashed - start :])
            self._hashed = end
        if end == self.size:
            self._finish()
        memoryview(b)[:n] = data
        self._pos = end
        return n

    def readall(self) -> bytes:
        parts: list[bytes] = []
        while True:
            data = self.read(self.chunk)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def _get(self, start: int, end: int) -> bytes:
        data = self._read(start, end)
        if len(data) != end - start:
            self._corrupt()
            raise self.error(
                f"{self.label} is truncated (object {self.oid} ends before its {self.size} bytes): "
                "nothing more was returned; mend it on a machine that has it: 'mvc verify --repair' (-r REMOTE for a "
                "remote's copy; 'mvc push --verify-remote' for a file stored as chunks)"
            )
        return data

    def _corrupt(self) -> None:
        if self._on_corrupt is not None:
            try:
                self._on_corrupt()
            except (MvcError, OSError):  # (a read-only cache keeps its copy: the error is raised all the same)
                pass

    def _catch_up(self, until: int) -> None:
        """Hash the bytes skipped by seeks, up to until, so the end can be checked."""
        while self._hashed < until:
            end = min(until, self._hashed + self.chunk)
            self._hasher.update(self._get(self._hashed, end))
            self._hashed = end

    def _finish(self) -> None:
        if self.verified:
            return
        digest = self._hasher.hexdigest()
        if oids.from_digest(digest) != self.oid:
            read = f", read from {self.source}," if self.source else ""
            self._corrupt()
            raise self.error(
                f"{self.label} is corrupt (object {self.oid}{read} hashes to xxh128:{digest}): its last bytes were "
                "not returned; mend it on a machine that has it: 'mvc verify --repair' (-r REMOTE for a remote's copy; "
                "'mvc push --verify-remote' for a file stored as chunks)"
            )
        self.verified = True


def _closed(start: int, end: int) -> bytes:
    raise ValueError("read of closed file")


def check(data: bytes, oid: str, label: str) -> None:
    """Refuse bytes read whole (a manifest) that do not hash to oid."""
    digest = fileio.hexdigest_bytes(data)
    if oids.from_digest(digest) != oid:
        raise CorruptObject(
            f"{label} is corrupt (object {oid} hashes to xxh128:{digest}): mend it with "
            "'mvc verify --repair' (-r REMOTE for a remote's copy) on a machine that has it"
        )


def open_stream(raw: VerifiedReader, buffer: int) -> io.BufferedReader:
    return io.BufferedReader(raw, buffer_size=buffer)


def cache_source(odb: Any, oid: str) -> ReadRange:
    """Ranges of a cache object: its file's, or (in one of the cache's packs: under 1 MiB) its bytes read and checked
    at once."""
    path = odb.path(oid)
    if os.access(path, os.F_OK):
        return local_source(path)
    data = odb.read_bytes(oid)
    return lambda start, end: data[start:end]


def local_source(path: str) -> ReadRange:
    """Ranges of a local file (a cache object), each read with one pread."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    import weakref

    def read(start: int, end: int) -> bytes:
        return os.pread(fd, end - start, start)

    weakref.finalize(read, os.close, fd)
    return read


class Where:
    """Where an object is on a store: a whole object at rel (offset 0: stored alone, or the pack named by its
    oid), a slice of a pack, or (chunked: its oid) an object its recipe at rel rebuilds."""

    __slots__ = ("chunked", "offset", "packed", "rel", "size")

    def __init__(self, rel: str, offset: int, size: int | None, chunked: str = "", packed: str = ""):
        self.rel, self.offset, self.size, self.chunked = rel, offset, size, chunked
        self.packed = packed  # a slice of a pack: the object's oid, to look for it again if the pack is gone


def locate(remote: Transfer, oid: str, size: int | None = None) -> Where:
    """Where oid is on remote: in a pack the journal or the pack indexes know of, alone, or chunked (its
    recipe). Reads the pack indexes only when the object is not there alone, and after the recipe when it
    is too large to be packed (size, where known)."""
    found = remote.locate([oid]).get(oid)
    if found is None:
        rel = layout.object_rel(oid)
        if remote.store.exists(rel):
            return Where(rel, 0, None)

        def chunked() -> Where | None:
            remote.check_layout()
            if remote.format < layout.CHUNKED:
                return None
            rb = remote.rebuilder()
            whole = rb.whole_rel(oid)
            if whole is not None:
                if remote.store.exists(whole):  # the pack that is the object: read as if stored whole
                    return Where(whole, 0, None)
                rb.lacks_whole(oid)
            if rb.recipe(oid, size) is not None:
                return Where(recipe_rel(oid), 0, None, chunked=oid)
            return None

        if not pk.packable(size):
            where = chunked()
            if where is not None:
                return where
        remote.read_packs()
        found = remote.locate([oid]).get(oid)
        if found is None:
            where = chunked()
            if where is not None:
                return where
            raise RemoteObjectMissing(f"object {oid} is not on remote {remote.name}")
    name, entry = found
    return Where(pk.pack_rel(name), entry.offset, entry.size, packed=oid)


def remote_source(remote: Transfer, where: Where, label: str = "", size: int | None = None) -> ReadRange:
    store = remote.store
    if where.chunked:
        oid, rb = where.chunked, remote.rebuilder()
        r = rb.recipe(oid, size)
        if r is None:
            raise RemoteObjectMissing(f"object {oid} is not on remote {remote.name}")
        rb.reuse(r)

        def rebuilt(start: int, end: int) -> bytes:
            end = min(end, r.size)  # each read's reads of bases bounded by the bytes it asks (a stream reads again)
            return rb.read(oid, start, end, label or oid, r, tally=rb.tally(max(end - start, 0)))

        return rebuilt

    again: list[ReadRange] = []  # where the object is read once found again, if its pack is gone
    moved = threading.Lock()

    def read(start: int, end: int) -> bytes:
        if again:
            return again[0](start, end)
        if where.size is not None:
            end = min(end, where.size)
        try:
            return store.get_range(where.rel, where.offset + start, where.offset + end)
        except RemoteObjectMissing:
            if not where.packed:
                raise
        with moved:  # the journal's pack is gone (a gc may have rewritten it): packs/ listed again, once
            if not again:
                remote.packs_gone({where.rel[len("packs/") : -len(".pack")]})
                found = locate(remote, where.packed, size)
                again.append(
                    remote_source(remote, Where(found.rel, found.offset, found.size, found.chunked), label, size)
                )
        return again[0](start, end)

    return read


class ReadAhead:
    """A remote object's ranges for a reader that mostly goes forward: the object is read in chunks of a
    fixed grid, and while one is consumed the next ``depth`` are already being fetched (from ``depth``
    threads): a stream then waits on the network about as much as a parallel download would. Memory: the
    current chunk plus ``depth`` more. A seek elsewhere drops what was fetched ahead. ``close`` stops it."""

    def __init__(self, read: ReadRange, size: int, chunk: int = READ, depth: int = 4):
        self.read, self.size, self.chunk, self.depth = read, size, chunk, depth
        self.current: tuple[int, bytes] | None = None  # (chunk index, its bytes)
        self.pending: dict[int, Future[bytes]] = {}  # chunk index -> its bytes, being fetched
        self.pool: ThreadPoolExecutor | None = None
        # the fetches' halt (parallel.within): close calls off the reads still running, so that a stalled one is
        # not waited for (the thread that made this reader works for its own runs' halts as well)
        self.halt = threading.Event()
        self.halts = (*parallel.halts(), self.halt)

    def __call__(self, start: int, end: int) -> bytes:
        parts = []
        pos = start
        while pos < end:
            index = pos // self.chunk
            data = self._chunk(index)
            piece = data[pos - index * self.chunk : end - index * self.chunk]
            if not piece:
                break  # the object ends here
            parts.append(piece)
            pos += len(piece)
        return b"".join(parts)

    def _chunk(self, index: int) -> bytes:
        if self.current is not None and self.current[0] == index:
            return self.current[1]
        future = self.pending.pop(index, None)
        data = future.result() if future is not None else self._fetch(index)
        self.current = (index, data)
        for i in [i for i in self.pending if not index < i <= index + self.depth]:
            self.pending.pop(i).cancel()  # behind a seek: not needed
        last = (self.size - 1) // self.chunk
        for i in range(index + 1, min(index + self.depth, last) + 1):
            if i not in self.pending:
                self.pending[i] = self._pool().submit(parallel.within, self.halts, self._fetch, i)
        return data

    def _fetch(self, index: int) -> bytes:
        start = index * self.chunk
        return self.read(start, min(self.size, start + self.chunk))

    def _pool(self) -> ThreadPoolExecutor:
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.depth, thread_name_prefix="mvc-read-ahead")
        return self.pool

    def close(self) -> None:
        """Fetches not started are dropped, those running called off (their connections aborted, a request s3fs
        sends cancelled); the threads are waited for, which then end at once."""
        for f in self.pending.values():
            f.cancel()
        self.pending.clear()
        if self.pool is not None:
            parallel.call_off(self.halt)
            self.pool.shutdown(wait=True)


def _rebuild(remote: Transfer, oid: str, dest: str, label: str, progress: Progress | None, size: int | None) -> int:
    """Object oid rebuilt from its chunk list on remote into dest, verified; RemoteObjectMissing if there is none."""

    remote.check_layout()
    got = remote.get_chunked(oid, dest, label, progress, size) if remote.format >= layout.CHUNKED else None
    if got is None:
        raise RemoteObjectMissing(f"object {oid} is not on remote {remote.name}")
    digest = got[0]
    if oids.from_digest(digest) != oid:
        from mvc.objects.chunked import rebuilt_wrong

        fileio.remove_quietly(dest)
        raise rebuilt_wrong(remote.rebuilder(), oid, digest, label)
    return os.path.getsize(dest)


def download(
    remote: Transfer,
    oid: str,
    dest: str,
    label: str,
    progress: Progress | None = None,
    located: tuple[str, pk.Entry] | None = None,
    searched: bool = False,
    size: int | None = None,
) -> int:
    """Write object oid from remote to the new file dest, verified; returns its size. A corrupt or truncated
    object raises ``RemoteCorrupt`` (dest is left for the caller to remove); dest that cannot be written (its
    disk full, its directory read-only) ``StorageError``, however the remote keeps the object.

    searched: the caller has read the packs and passes what ``remote.locate`` found (``located``, or None:
    the object is not in a pack). Then nothing here touches the journal, whose connection belongs to the
    caller's thread: what threads downloading at once need. size: the object's, where known (a chunk list
    of another size is refused)."""
    try:
        return _download(remote, oid, dest, label, progress, located, searched, size)
    except OSError as e:  # (a store's own errors are RemoteErrors by now: an OSError left is this machine's)
        mine = fileio.local_error(e, os.path.dirname(dest) or ".", only_space=e.filename not in (dest, None))
        if mine is None:
            raise
        raise mine from None


def _download(
    remote: Transfer,
    oid: str,
    dest: str,
    label: str,
    progress: Progress | None,
    located: tuple[str, pk.Entry] | None,
    searched: bool,
    size: int | None,
) -> int:
    from mvc.errors import RemoteCorrupt

    found = located if searched else remote.locate([oid]).get(oid)
    if found is None:
        rel = layout.object_rel(oid)
        try:
            digest = remote.store.get_file(rel, dest, progress, size)
        except RemoteWrongSize as wrong:
            raise RemoteWrongSize(f"{label}: {wrong}") from None
        except RemoteObjectMissing:
            fileio.remove_quietly(dest)
            if not searched and not pk.packable(size):  # a large object not stored whole: chunked, likely
                try:
                    return _rebuild(remote, oid, dest, label, progress, size)
                except RemoteObjectMissing:
                    pass
            if not searched:
                remote.read_packs()
                found = remote.locate([oid]).get(oid)
            if found is None:
                return _rebuild(remote, oid, dest, label, progress, size)
        else:
            if oids.from_digest(digest) != oid:
                raise RemoteCorrupt(
                    f"{label} is corrupt: {remote.store.where(rel)} on remote {remote.name} (it hashes to "
                    f"xxh128:{digest}); nothing was written: mend it with 'mvc verify -r {remote.name} --repair' "
                    "on a machine that has it"
                )
            return os.path.getsize(dest)
    name, e = found
    try:
        data = remote.store.get_range(pk.pack_rel(name), e.offset, e.offset + e.size)
    except RemoteObjectMissing:
        if searched:
            raise
        remote.packs_gone({name})  # where the journal placed it is gone: where is it now (searched, so once)
        remote.read_packs()
        return _download(remote, oid, dest, label, progress, remote.locate([oid]).get(oid), True, size)
    digest = fileio.hexdigest_bytes(data)
    if oids.from_digest(digest) != oid:
        raise RemoteCorrupt(
            f"{label} is corrupt: object {oid} in {remote.store.where(pk.pack_rel(name))} on remote {remote.name} "
            f"(it hashes to xxh128:{digest}); nothing was written: mend it with 'mvc verify -r {remote.name} --repair' "
            "on a machine that has its objects"
        )
    with open(dest, "xb") as f:
        f.write(data)
    if progress:
        progress(len(data))
    return len(data)
