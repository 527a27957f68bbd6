"""Writing large objects to a remote as chunks and deltas in packs, plus one recipe each (docs/FORMAT.md,
"Chunked objects").

``ChunkWriter`` cuts an object of the cache into chunks (``chunker``), makes deltas of the tensors a base
version holds too (``delta``) where that is much smaller, packs what the remote lacks in file order and
uploads the packs, then returns the recipe that names them, for the caller to write last. It works on a
store, the local cache and a few callables of the transfer engine, never on a repository.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import xxhash

from mvc.errors import CorruptObject
from mvc.objects import chunker, delta
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects import recipe as rc
from mvc.objects.chunked import LOCAL_BASES, Rebuilder
from mvc.objects.odb import ODB
from mvc.storage import fileio
from mvc.storage.fileio import Progress
from mvc.storage.store import Store

DELTA_FROM = 4  # a tensor is tried as a delta when at least 1/DELTA_FROM of its bytes are new chunks
DELTA_RATIO = 0.5  # and stored as one when its deltas take at most this share of those new chunks
Located = Callable[[list[str]], dict[str, tuple[str, pk.Entry]]]


class ChunkWriter:
    """Uploads objects of ``odb`` to ``store`` as chunked objects.

    locate: where the store's packs hold chunks already (the journal and the indexes read);
    put_pack: uploads one pack and its index, returns the bytes sent (thread-safe);
    record_pack: records a pack uploaded (in the caller's thread: the journal is not shared);
    present: whether the store holds an object (a delta base must be there for readers to decode it).
    """

    def __init__(
        self,
        store: Store,
        odb: ODB,
        rebuilder: Rebuilder,
        locate: Located,
        put_pack: Callable[[str, bytes, bytes], int],
        record_pack: Callable[[str, list[pk.Entry]], None],
        jobs: int,
        present: Callable[[str], bool] = lambda oid: False,
    ):
        self.store, self.odb, self.rebuilder = store, odb, rebuilder
        self.locate, self.put_pack, self.record_pack = locate, put_pack, record_pack
        self.present = present
        self.jobs = max(1, min(jobs, 4))  # packs in flight: each up to pk.TARGET bytes in memory

    def upload(
        self, oid: str, bases: list[str], check: Callable[[str], None], progress: Progress | None = None
    ) -> tuple[bytes, int]:
        """Upload what the store lacks of object oid; returns (its recipe, bytes sent). The recipe is the
        caller's to upload, last. check(digest) refuses a cache object that does not hash to its oid."""
        from concurrent.futures import Future, ThreadPoolExecutor

        with chunker.Mapped(self.odb.path(oid)) as m:
            view = m.view
            segs = chunker.segments(view, m.size)
            whole = xxhash.xxh3_128()

            def cut_done(start: int, end: int) -> None:
                whole.update(view[start:end])  # segments cover the file in order: it is read once
                m.drop(start, end)

            chunks = list(chunker.cut(view, segs, done=cut_done))
            check(whole.hexdigest())
            located = dict(self.locate([c.oid for c in chunks]))
            by_segment = _by_segment(segs, chunks)
            plans = self._delta_plans(oid, m, segs, by_segment, located, bases)
            entries: list[rc.Entry] = []
            packing = _Packer()
            sent = 0
            pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="mvc-push")
            flying: list[tuple[Future[int], str, list[pk.Entry], int]] = []
            covered = 0  # bytes of the file whose chunks are on the store (what the progress bar shows)

            def settle(block: bool) -> None:
                nonlocal sent, covered
                while flying and (block or flying[0][0].done() or len(flying) >= self.jobs):
                    future, name, pentries, end = flying.pop(0)
                    sent += future.result()
                    self.record_pack(name, pentries)
                    for e in pentries:
                        located[e.oid] = (name, e)
                    if progress:
                        progress(end - covered)
                    covered = end

            def close_pack() -> None:
                built = packing.close()
                if built is None:
                    return
                m.drop(0, entries[-1].at)  # what is packed is read: memory stays about a pack
                name, data, index, pentries, waiting = built
                for i in waiting:
                    e = entries[i]
                    where = next(p for p in pentries if p.oid == e.oid)
                    entries[i] = e._replace(pack=name, offset=where.offset)
                end = entries[-1].at + entries[-1].size
                flying.append((pool.submit(self.put_pack, name, data, index), name, pentries, end))
                settle(False)

            def add(e: rc.Entry, data: Callable[[], bytes]) -> None:
                where = located.get(e.oid)
                if where is not None:
                    entries.append(e._replace(pack=where[0], offset=where[1].offset))
                    return
                entries.append(e)
                if packing.add(e.oid, data, len(entries) - 1, e.stored):
                    close_pack()

            try:
                for seg, seg_chunks, plan in zip(segs, by_segment, plans, strict=True):
                    pieces = plan.result() if plan is not None else None
                    if pieces is None:  # no base tensor, or a delta would not pay
                        for c in seg_chunks:
                            add(rc.Entry("c", c.oid, c.offset, c.size, "", 0, c.size), _slice(view, c.offset, c.size))
                        continue
                    for at, size, data, depth, base, base_at in pieces:
                        doid = oids.from_digest(fileio.hexdigest_bytes(data))
                        add(
                            rc.Entry("d", doid, at, size, "", 0, len(data), seg.lane, depth, base, base_at),
                            _given(data),
                        )
                close_pack()
                settle(True)
                if progress:
                    progress(m.size - covered)
            finally:
                for f, _, _, _ in flying:
                    f.cancel()
                pool.shutdown(wait=True)
        hints = [b for b in bases if b != oid][:LOCAL_BASES]  # where a reader holding them finds chunks
        return rc.render(m.size, hints, entries), sent

    def _base(self, oid: str, bases: list[str]) -> tuple[str, rc.Recipe | None] | None:
        """The first of bases that deltas of oid may use, with its recipe on the store (None: stored whole):
        in the cache and sound (a rotten base would publish deltas nobody can decode), on the store, its
        own chain of deltas not passing through oid (a cycle), and not already as deep as deltas may go
        (then an older version, or chunks)."""
        fallback = None
        for b in bases:
            if b == oid or not self.odb.exists(b) or not self.present(b):
                continue
            try:
                r = self.rebuilder.recipe(b)
                if self._reads(r, oid):
                    continue
                self.odb.verify(b)  # quarantined when it does not hash to its oid
            except CorruptObject:
                continue
            if _deepest(r, 0, r.size if r else 0) < rc.MAX_DEPTH:
                return b, r
            fallback = fallback or (b, r)
        return fallback

    def _reads(self, r: rc.Recipe | None, oid: str) -> bool:
        """Whether rebuilding what recipe r describes reads object oid, through its deltas' bases."""
        todo, seen = [(r, rc.MAX_DEPTH)], set()
        while todo:
            recipe, left = todo.pop()
            for b in {e.base for e in recipe.entries if e.kind == "d"} if recipe else ():
                if b == oid:
                    return True
                if left > 1 and b not in seen:
                    seen.add(b)
                    todo.append((self.rebuilder.recipe(b), left - 1))
        return False

    def _delta_plans(
        self,
        oid: str,
        m: chunker.Mapped,
        segs: list[chunker.Segment],
        by_segment: list[list[chunker.Chunk]],
        located: dict[str, Any],
        bases: list[str],
    ) -> list[Any]:
        """For each segment, None (store its chunks) or a future of its delta pieces."""
        plans: list[Any] = [None] * len(segs)
        if not delta.fast():
            return plans
        chosen = self._base(oid, bases)
        if chosen is None:
            return plans
        base, base_recipe = chosen
        mapped = chunker.Mapped(self.odb.path(base))
        base_by_key = {s.key: s for s in chunker.segments(mapped.view, mapped.size) if s.key}
        todo = []
        for i, seg in enumerate(segs):
            bseg = base_by_key.get(seg.key) if seg.key else None
            if bseg is None or bseg.size != seg.size:
                continue
            new = sum(c.size for c in by_segment[i] if c.oid not in located)
            if new * DELTA_FROM >= seg.size:
                todo.append((i, seg, bseg, new))
        if not todo:
            mapped.__exit__()
            return plans
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 4)), thread_name_prefix="mvc-delta")
        left = [len(todo)]
        lock = threading.Lock()

        def make(seg: chunker.Segment, bseg: chunker.Segment, new: int) -> list[Any] | None:
            try:
                pieces = []
                total = 0
                step = delta.SEGMENT - delta.SEGMENT % seg.lane
                for off in range(0, seg.size, step):
                    size = min(step, seg.size - off)
                    depth = 1 + _deepest(base_recipe, bseg.offset + off, bseg.offset + off + size)
                    if depth > rc.MAX_DEPTH:
                        return None
                    data = delta.encode(
                        bytes(m.view[seg.offset + off : seg.offset + off + size]),
                        bytes(mapped.view[bseg.offset + off : bseg.offset + off + size]),
                        seg.lane,
                    )
                    m.drop(seg.offset + off, seg.offset + off + size)
                    mapped.drop(bseg.offset + off, bseg.offset + off + size)
                    total += len(data)
                    if total > new * DELTA_RATIO:
                        return None
                    pieces.append((seg.offset + off, size, data, depth, base, bseg.offset + off))
                return pieces
            finally:
                with lock:
                    left[0] -= 1
                    if not left[0]:
                        mapped.__exit__()
                        pool.shutdown(wait=False)

        for i, seg, bseg, new in todo:
            plans[i] = pool.submit(make, seg, bseg, new)
        return plans


class _Packer:
    """New objects gathered in file order until a pack is full."""

    def __init__(self) -> None:
        self.objects: list[tuple[str, Callable[[], bytes]]] = []
        self.waiting: list[int] = []  # entries waiting for this pack's name
        self.seen: dict[str, int] = {}
        self.filled = 0

    def add(self, oid: str, data: Callable[[], bytes], entry: int, size: int) -> bool:
        self.waiting.append(entry)
        if oid not in self.seen:
            self.seen[oid] = len(self.objects)
            self.objects.append((oid, data))
            self.filled += size
        return self.filled >= pk.TARGET

    def close(self) -> tuple[str, bytes, bytes, list[pk.Entry], list[int]] | None:
        if not self.objects:
            return None
        name, data, index, entries = pk.build([(o, d()) for o, d in self.objects], keep_order=True)
        waiting = self.waiting
        self.objects, self.waiting, self.seen, self.filled = [], [], {}, 0
        return name, data, index, entries, waiting


def _slice(view: memoryview, offset: int, size: int) -> Callable[[], bytes]:
    return lambda: bytes(view[offset : offset + size])


def _given(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _by_segment(segs: list[chunker.Segment], chunks: list[chunker.Chunk]) -> list[list[chunker.Chunk]]:
    out: list[list[chunker.Chunk]] = [[] for _ in segs]
    i = 0
    for c in chunks:
        while c.offset >= segs[i].offset + segs[i].size:
            i += 1
        out[i].append(c)
    return out


def _deepest(r: rc.Recipe | None, start: int, end: int) -> int:
    if r is None:
        return 0
    return max((e.depth for e in rc.covering(r.entries, start, end)), default=0)
