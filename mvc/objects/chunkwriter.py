"""Writing large objects to a remote as chunks and deltas in packs, plus one recipe each (docs/FORMAT.md,
"Chunked objects").

``ChunkWriter`` cuts an object of the cache into chunks (``chunker``), makes deltas of the tensors a base
version holds too (``delta``) where that is much smaller, packs what the remote lacks in file order and
uploads the packs, then returns the recipe that names them, for the caller to write last. ``describe_whole``
lists the chunks of an object stored as a lone pack (docs/FORMAT.md, "Lone packs"). It works on a store, the
local cache and a few callables of the transfer engine, never on a repository.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import xxhash

from mvc.errors import CorruptObject
from mvc.objects import chunker, delta
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects import recipe as rc
from mvc.objects.chunked import LOCAL_BASES, Rebuilder
from mvc.objects.odb import ODB
from mvc.storage import fileio, parallel
from mvc.storage.fileio import Progress
from mvc.storage.store import Store

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

DELTA_FROM = 4  # a tensor is tried as a delta when at least 1/DELTA_FROM of its bytes are new chunks
DELTA_RATIO = 0.5  # and stored as one when its deltas take at most this share of those new chunks
CUTTERS = 2  # threads cutting segments ahead of the writer (pyfastcdc runs without the GIL)
AHEAD = 8  # segments cut ahead of the first whose deltas are not made yet (bounds what waits in memory)
PROBE = 256 << 10  # bytes of a tensor whose delta is tried first: deltas that cannot pay stop there
PROBE_SLACK = 1.5  # a small sample compresses worse than the whole: a margin before giving up
# On a store that copies ranges in the kernel (a directory), a pack that is one run of the file (new chunks) grows
# to this: the kernel copies it from the cache object, and a reader copies it back in one call
# (one 1 GiB source copies in 0.25 s, 64 packs of 16 MiB in 0.45: docs/benchmarks.md, "Issue 12").
SPAN_TARGET = 256 << 20
Located = Callable[[list[str]], dict[str, tuple[str, pk.Entry]]]
Chooser = Callable[[Callable[[str], bool]], "tuple[str, rc.Recipe | None] | None"]  # given whether deltas pay


class ChunkWriter:
    """Uploads objects of ``odb`` to ``store`` as chunked objects.

    locate: where the store's packs hold chunks already (the journal and the indexes read);
    record_packs: records packs uploaded (in the caller's thread: the journal is not shared), at the end; given a
    callable, it waits for it before the record counts (the last packs are recorded while they are uploaded);
    present: whether the store holds an object (a delta base must be there for readers to decode it);
    sampled: of several bases, the first whose deltas a sample says pay, not the first that may serve (the
    compacted store's first base, the work tree's version, may be a retrained model).
    """

    def __init__(
        self,
        store: Store,
        odb: ODB,
        rebuilder: Rebuilder,
        locate: Located,
        record_packs: Callable[[list[tuple[str, list[pk.Entry]]], Callable[[], object] | None], None],
        jobs: int,
        present: Callable[[str], bool] = lambda oid: False,
        sampled: bool = False,
    ):
        self.store, self.odb, self.rebuilder = store, odb, rebuilder
        self.locate, self.record_packs = locate, record_packs
        self.present = present
        self.sampled = sampled
        self.jobs = max(1, min(jobs, 4))  # packs in flight: each up to pk.TARGET bytes in memory

    def upload(
        self, oid: str, bases: list[str], check: Callable[[str], None], progress: Progress | None = None
    ) -> tuple[bytes, int, int]:
        """Upload what the store lacks of object oid; returns (its recipe, the layout format the store must
        declare before it holds that recipe, bytes sent). The recipe is the caller's to upload, last.
        check(digest) refuses a cache object that does not hash to its oid."""
        from concurrent.futures import ThreadPoolExecutor

        path = self.odb.path(oid)
        with chunker.Mapped(path) as m:
            view = m.view
            segs = chunker.segments(view, m.size)
            whole = xxhash.xxh3_128()
            located: dict[str, tuple[str, pk.Entry]] = {}
            deltas = self._deltas(oid, m, bases)
            entries: list[rc.Entry] = []
            runs = SPAN_TARGET if self.store.copies_ranges else pk.TARGET  # how long a pack of a run of the file grows
            packing = _Packer(view, runs, whole.hexdigest)
            sent = 0
            pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="mvc-push")
            halt = threading.Event()  # set when the upload fails or is interrupted: the packs in flight are called off
            halts = (*parallel.halts(), halt)
            flying: list[tuple[Future[int], str, list[pk.Entry], int]] = []
            covered = 0  # bytes of the file whose chunks are on the store (what the progress bar shows)
            uploaded: list[tuple[str, list[pk.Entry]]] = []  # recorded at the end, in one transaction
            recorded = False

            def put_pack(name: str, data: bytes | memoryview, index: bytes, span: tuple[int, int] | None) -> int:
                if span is not None:  # the pack is that run of the cache object: the store may copy it there
                    self.store.put_range(pk.pack_rel(name), path, *span)
                else:
                    self.store.put_bytes(pk.pack_rel(name), data)
                self.store.put_bytes(pk.index_rel(name), index)  # the index makes the pack visible: it goes last
                return len(data)

            def settle(block: bool) -> None:
                nonlocal sent, covered
                while flying and (block or flying[0][0].done() or len(flying) >= self.jobs):
                    future, name, pentries, end = flying.pop(0)
                    sent += future.result()
                    uploaded.append((name, pentries))
                    for e in pentries:
                        located[e.oid] = (name, e)
                    if progress and end > covered:
                        progress(end - covered)
                    covered = max(covered, end)

            def close_pack() -> None:
                built = packing.close()
                if built is None:
                    return
                name, data, index, pentries, waiting, span = built
                offsets = {p.oid: p.offset for p in pentries}
                for i in waiting:
                    entries[i] = entries[i]._replace(pack=name, offset=offsets[entries[i].oid])
                end = entries[-1].at + entries[-1].size
                if flying:  # the packs before the last in flight are read: memory stays about two packs
                    m.drop(0, flying[-1][3])
                flying.append(
                    (pool.submit(parallel.within, halts, put_pack, name, data, index, span), name, pentries, end)
                )
                settle(False)

            def add(e: rc.Entry, data: bytes | memoryview, at: int | None) -> None:
                where = located.get(e.oid)
                if where is not None:
                    entries.append(e._replace(pack=where[0], offset=where[1].offset))
                    return
                if packing.filled >= pk.TARGET and packing.breaks(at):  # a long run ends: its pack is not built
                    close_pack()  # in memory, so a pack that would stop being one run is closed first
                entries.append(e)
                if packing.add(e.oid, data, len(entries) - 1, at):
                    close_pack()

            def emit(
                seg: chunker.Segment, seg_chunks: list[chunker.Chunk], plan: Future[Any] | None, hashed: bool
            ) -> None:
                # segments are emitted in file order: the whole file is hashed here (unless it was as the segment
                # was cut), chunk by chunk, so that a new chunk is still in the CPU's cache when its pack's name is
                # hashed (``_Packer.add``)
                pieces = plan.result() if plan is not None else None
                if pieces is None:  # no base tensor, or a delta would not pay
                    for c in seg_chunks:
                        chunk = view[c.offset : c.offset + c.size]
                        if not hashed:
                            whole.update(chunk)
                        add(rc.Entry("c", c.oid, c.offset, c.size, "", 0, c.size), chunk, c.offset)
                else:
                    whole.update(view[seg.offset : seg.offset + seg.size])
                    for at, size, codec, data, depth, base, base_at in pieces:
                        doid = oids.from_digest(fileio.hexdigest_bytes(data))
                        e = rc.Entry("d", doid, at, size, "", 0, len(data), seg.lane, depth, base, base_at, codec)
                        add(e, data, None)
                m.drop(seg.offset, seg.offset + seg.size)  # resident memory stays small; a span is copied in the kernel

            # One pass, segment by segment: while a segment is cut (pyfastcdc, without the GIL), the packs
            # of those before it are written from other threads, and deltas are made in others. A segment's pages
            # stay mapped from its cut to its emission (at most AHEAD segments). When no delta can be tried, a
            # tensor is cut here, with the whole file's hash: hashing holds the GIL, so a thread would only take
            # turns with this one (3-5 ms a turn, handed back at the interpreter's switch interval).
            inline = deltas is None
            pending: deque[tuple[chunker.Segment, list[chunker.Chunk], Future[Any] | None, bool]] = deque()
            cutter = ThreadPoolExecutor(CUTTERS, thread_name_prefix="mvc-cut")
            try:
                for seg, cut in _cut_ahead(cutter, view, segs, lambda ahead: inline and ahead.fixed):
                    seg_chunks = chunker.cut_fixed(view, seg, feed=whole.update) if cut is None else cut.result()
                    located.update(self.locate([c.oid for c in seg_chunks if c.oid not in located]))
                    plan = deltas.plan(seg, seg_chunks, located) if deltas is not None else None
                    pending.append((seg, seg_chunks, plan, cut is None))
                    while pending and (pending[0][2] is None or pending[0][2].done() or len(pending) > AHEAD):
                        emit(*pending.popleft())
                while pending:
                    emit(*pending.popleft())
                check(whole.hexdigest())  # before the recipe: a corrupt cache object is never published
                close_pack()
                hints = [b for b in bases if b != oid][:LOCAL_BASES]  # where a reader holding them finds chunks
                recipe = rc.render(m.size, hints, entries)  # while the last packs are written
                # and they are recorded meanwhile, the record committed once they are there
                self.record_packs(uploaded + [(n, p) for _, n, p, _ in flying], lambda: settle(True))
                recorded = True
                if progress:
                    progress(m.size - covered)
            except BaseException:
                parallel.call_off(halt)  # not waited for on a server that stopped answering
                raise
            finally:
                for f, _, _, _ in flying:
                    f.cancel()
                pool.shutdown(wait=True)
                if not recorded:  # an interrupted push keeps the record of what it sent
                    uploaded += [(n, p) for f, n, p, _ in flying if not f.cancelled() and f.exception() is None]
                    self.record_packs(uploaded, None)
                cutter.shutdown(wait=True, cancel_futures=True)
                if deltas is not None:
                    deltas.close()
        return recipe, rc.layout_format(entries), sent

    def _base(
        self, oid: str, bases: list[str], pays: Callable[[str], bool] | None = None
    ) -> tuple[str, rc.Recipe | None] | None:
        """The version deltas of oid are made against, with its recipe on the store (None: stored whole): the first
        of bases that may serve (:meth:`_serves`) and is not already as deep as deltas may go (with ``pays``: of
        several, the first whose deltas pay, else the first); when none is, the nearest version that may serve and
        is not that their own deltas are based on (breadth first, at most MAX_DEPTH hops down), so that each
        version of a chain of fine-tunes finds a base; else the first of bases that may serve (a tensor whose
        deltas would be too deep then goes as chunks)."""
        deep: list[tuple[str, rc.Recipe | None]] = []
        seen = {oid}
        level = bases
        for hop in range(rc.MAX_DEPTH + 1):
            below: list[str] = []
            unpaid: list[tuple[str, rc.Recipe | None]] = []  # (sampled before _serves hashes the whole base)
            for b in level:
                if b in seen:
                    continue
                seen.add(b)
                if not self.present(b):  # (then no recipe either: nothing to walk)
                    continue
                try:
                    r = self.rebuilder.recipe(b)
                except CorruptObject:
                    continue
                if r is None or _deepest(r, 0, r.size) < rc.MAX_DEPTH:
                    if pays is not None and len(level) > 1 and not pays(b):
                        unpaid.append((b, r))
                    elif self._serves(oid, b, r):
                        return b, r
                elif hop == 0:
                    deep.append((b, r))
                below += dict.fromkeys(e.base for e in r.entries if e.kind == "d") if r else ()
            found = next((u for u in unpaid if self._serves(oid, *u)), None)
            if found is not None:
                return found
            level = below
        return next((found for found in deep if self._serves(oid, *found)), None)

    def _serves(self, oid: str, b: str, r: rc.Recipe | None) -> bool:
        """Whether deltas of oid may use version b, which the store holds (its recipe there: r): in the cache and
        sound (a rotten base would publish deltas nobody can decode), its own chain of deltas not passing through
        oid (a cycle)."""
        if not self.odb.exists(b):
            return False
        try:
            if self._reads(r, oid):
                return False
            self.odb.verify(b)  # quarantined when it does not hash to its oid
        except CorruptObject:
            return False
        return True

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

    def _deltas(self, oid: str, m: chunker.Mapped, bases: list[str]) -> _Deltas | None:
        """What makes deltas of oid's tensors against a base version (chosen by :meth:`_base` when a tensor
        first needs one: a push of a small edit reads nothing of the base)."""
        return (
            _Deltas(m, lambda pays: self._base(oid, bases, pays if self.sampled else None), self.odb) if bases else None
        )


class _Deltas:
    """Deltas of a file's tensors against the same tensors of a base version, made on other threads."""

    def __init__(self, m: chunker.Mapped, choose: Chooser, odb: ODB):
        self.m, self.choose, self.odb = m, choose, odb
        self.ready: bool | None = None  # None: the base not looked for yet; False: no deltas
        self.base: str = ""
        self.recipe: rc.Recipe | None = None
        self.by_key: dict[str, chunker.Segment] = {}
        self.mapped: chunker.Mapped | None = None
        self.pool: Any = None

    def _ready(self, seg: chunker.Segment, new: int) -> bool:
        if self.ready is None:
            self.ready = False
            if not delta.fast():
                return False
            # the first tensor that needs a base samples the candidates (when the writer is ``sampled``)
            chosen = self.choose(lambda base: self._pays(seg, new, base))
            if chosen is None:
                return False
            from concurrent.futures import ThreadPoolExecutor

            fileio.release_large_frees()  # deltas' temporaries, freed, must not pin the heap
            self.base, self.recipe = chosen
            self.mapped = chunker.Mapped(self.odb.path(self.base))
            self.by_key = {s.key: s for s in chunker.segments(self.mapped.view, self.mapped.size) if s.key}
            self.pool = ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 4)), thread_name_prefix="mvc-delta")
            self.ready = True
        return self.ready

    def plan(self, seg: chunker.Segment, chunks: list[chunker.Chunk], located: dict[str, Any]) -> Any:
        """A future of the segment's delta pieces (None when they would not pay), or None: no delta is tried
        (not a tensor, too few of its chunks are new, no base, or no such tensor in the base)."""
        if not seg.key:
            return None
        new = sum(c.size for c in chunks if c.oid not in located)
        if new * DELTA_FROM < seg.size or not self._ready(seg, new):
            return None
        bseg = self.by_key.get(seg.key)
        if bseg is None or bseg.size != seg.size:
            return None
        return self.pool.submit(self._make, seg, bseg, new)

    def _sample_pays(
        self, seg: chunker.Segment, bseg: chunker.Segment, new: int, mapped: chunker.Mapped, slack: float = PROBE_SLACK
    ) -> bool:
        """Whether a sample of the segment's delta against bseg of the mapped base is small enough to go on: a
        retrained tensor (new values, nothing to gain) costs PROBE bytes, not all of it."""
        at = (seg.size // 2) - (seg.size // 2) % seg.lane
        probe = min(PROBE - PROBE % seg.lane, seg.size - at)
        _, sample = delta.best(
            bytes(self.m.view[seg.offset + at : seg.offset + at + probe]),
            bytes(mapped.view[bseg.offset + at : bseg.offset + at + probe]),
            seg.lane,
        )
        return len(sample) * seg.size <= slack * DELTA_RATIO * new * probe

    def _pays(self, seg: chunker.Segment, new: int, base: str) -> bool:
        """Whether the segment's deltas against the same tensor of version base (in the cache) would pay, by a
        sample (what :meth:`_make` tries first) held to DELTA_RATIO itself: a retrained tensor's sample passes
        :meth:`_make`'s margin (random bf16 against other random bf16: about 0.7 of its bytes) but not that."""
        try:
            with chunker.Mapped(self.odb.path(base)) as mapped:
                bseg = next((s for s in chunker.segments(mapped.view, mapped.size) if s.key == seg.key), None)
                return bseg is not None and bseg.size == seg.size and self._sample_pays(seg, bseg, new, mapped, 1.0)
        except (OSError, ValueError):
            return False

    def _make(self, seg: chunker.Segment, bseg: chunker.Segment, new: int) -> list[Any] | None:
        m, mapped = self.m, self.mapped
        assert mapped is not None
        if not self._sample_pays(seg, bseg, new, mapped):
            return None
        pieces = []
        total = 0
        step = delta.SEGMENT - delta.SEGMENT % seg.lane
        for off in range(0, seg.size, step):
            size = min(step, seg.size - off)
            depth = 1 + _deepest(self.recipe, bseg.offset + off, bseg.offset + off + size)
            if depth > rc.MAX_DEPTH:
                return None
            codec, data = delta.best(
                bytes(m.view[seg.offset + off : seg.offset + off + size]),
                bytes(mapped.view[bseg.offset + off : bseg.offset + off + size]),
                seg.lane,
            )
            mapped.drop(bseg.offset + off, bseg.offset + off + size)
            m.drop(seg.offset + off, seg.offset + off + size)
            total += len(data)
            if total > new * DELTA_RATIO:
                return None
            pieces.append((seg.offset + off, size, codec, data, depth, self.base, bseg.offset + off))
        return pieces

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.mapped is not None:
            self.mapped.__exit__()


class _Packer:
    """New objects gathered in file order until a pack is full. While they are one run of the file (a new
    file's chunks), the pack is that slice of the mapped file: its bytes are not copied to build it."""

    def __init__(self, view: memoryview, span_target: int, whole: Callable[[], str]) -> None:
        self.view = view
        self.span_target = span_target  # how large a pack that is one run of the file may grow
        self.whole = whole  # the whole file's hex digest, once all of it is added
        self.objects: list[tuple[str, bytes | memoryview]] = []
        self.waiting: list[int] = []  # entries waiting for this pack's name
        self.seen: set[str] = set()
        self.filled = 0
        self.span: tuple[int, int] | None = None  # the run of the file the objects are, while they are one
        # The run's hash, fed as it grows (its bytes are then in the CPU's cache). A run from the file's start is
        # not: if it ends at the file's end, it is the file, and its hash the whole file's; if not, it is hashed
        # when it is closed.
        self.span_hash: Any = None

    def add(self, oid: str, data: bytes | memoryview, entry: int, at: int | None) -> bool:
        """Add an object (at: where it is in the file, None for a delta); whether the pack is full."""
        self.waiting.append(entry)
        if oid not in self.seen:  # (the same bytes again are stored once: the entry names the first)
            self.seen.add(oid)
            self.objects.append((oid, data))
            if at is not None and len(self.objects) == 1:
                self.span = (at, at)
                self.span_hash = xxhash.xxh3_128() if at else None
                self._grow(data)
            elif at is not None and self.span is not None and self.span[1] == at:
                self._grow(data)
            else:
                self.span = self.span_hash = None
                self.filled += len(data)
        return self.filled >= (self.span_target if self.span is not None else pk.TARGET)

    def _grow(self, data: bytes | memoryview) -> None:
        assert self.span is not None
        self.span = (self.span[0], self.span[1] + len(data))
        self.filled += len(data)
        if self.span_hash is not None:
            self.span_hash.update(data)

    def breaks(self, at: int | None) -> bool:
        """Whether an object at ``at`` (None: a delta) would end the run of the file this pack is."""
        return bool(self.objects) and (self.span is None or at is None or self.span[1] != at)

    def close(
        self,
    ) -> tuple[str, bytes | memoryview, bytes, list[pk.Entry], list[int], tuple[int, int] | None] | None:
        if not self.objects:
            return None
        span = self.span
        run = name = None
        if span is not None:
            run = self.view[span[0] : span[1]]
            if self.span_hash is not None:
                name = self.span_hash.hexdigest()
            else:
                name = self.whole() if span[1] == len(self.view) else fileio.hexdigest_bytes(run)
        name, data, index, entries = pk.build_ordered(self.objects, run, name)
        waiting = self.waiting
        self.objects, self.waiting, self.seen, self.filled, self.span, self.span_hash = [], [], set(), 0, None, None
        return name, data, index, entries, waiting, span


def describe_whole(odb: ODB, oid: str, check: Callable[[str], None]) -> tuple[str, list[pk.Entry], bytes, rc.Recipe]:
    """(its pack's name, the index's entries, the index, the recipe) of object oid stored as the pack named by its
    digest (docs/FORMAT.md, "Lone packs"): cut from the cache as a push cuts it, each chunk listed once, where it
    first is. check(digest) refuses a cache object that does not hash to its oid: nothing is described then."""
    from concurrent.futures import ThreadPoolExecutor

    name = oids.digest(oid)
    whole = xxhash.xxh3_128()
    entries: list[rc.Entry] = []
    first: dict[str, pk.Entry] = {}
    with chunker.Mapped(odb.path(oid)) as m, ThreadPoolExecutor(CUTTERS, thread_name_prefix="mvc-cut") as pool:
        for seg, cut in _cut_ahead(pool, m.view, chunker.segments(m.view, m.size), lambda ahead: False):
            assert cut is not None
            for c in cut.result():
                at = first.setdefault(c.oid, pk.Entry(c.oid, c.offset, c.size)).offset
                entries.append(rc.Entry("c", c.oid, c.offset, c.size, name, at, c.size))
            whole.update(m.view[seg.offset : seg.offset + seg.size])
            m.drop(seg.offset, seg.offset + seg.size)
        size = m.size
    check(whole.hexdigest())
    index = list(first.values())
    return name, index, pk.render_index(index), rc.Recipe(size, [], entries)


def _cut(view: memoryview, seg: chunker.Segment) -> list[chunker.Chunk]:
    return list(chunker.cut(view, [seg]))


def _cut_ahead(
    pool: ThreadPoolExecutor, view: memoryview, segs: list[chunker.Segment], here: Callable[[chunker.Segment], bool]
) -> Iterator[tuple[chunker.Segment, Future[list[chunker.Chunk]] | None]]:
    """Each segment in file order with the future of its chunks, cut by the pool CUTTERS * 2 segments ahead
    (pyfastcdc runs without the GIL); None for a segment the caller cuts itself (``here``)."""
    cuts: deque[Future[list[chunker.Chunk]] | None] = deque()
    for i, seg in enumerate(segs):
        while len(cuts) < CUTTERS * 2 and i + len(cuts) < len(segs):
            ahead = segs[i + len(cuts)]
            cuts.append(None if here(ahead) else pool.submit(_cut, view, ahead))
        yield seg, cuts.popleft()


def _deepest(r: rc.Recipe | None, start: int, end: int) -> int:
    if r is None:
        return 0
    return max((e.depth for e in rc.covering(r.entries, start, end)), default=0)
