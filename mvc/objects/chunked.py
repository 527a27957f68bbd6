"""Reading chunked objects of a remote (docs/FORMAT.md, "Chunked objects"): ``Rebuilder`` reads any byte
range of an object stored as chunks and deltas in packs, from chunks the local cache already holds in other
versions and ranged reads of packs, every chunk and delta checked against its oid, every delta's base chain
bounded; a caller rebuilding a whole object checks it against the object's oid before it is used. Writing
them is ``mvc.objects.chunkwriter``.

It works on a store and the local cache, never on a repository.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import functools
import itertools
import os
import threading
from collections.abc import Callable, Container, Iterable
from typing import TYPE_CHECKING, TypeVar

from mvc.errors import CorruptObject, RemoteCorrupt, RemoteObjectMissing, RemoteWrongSize, WorkStopped
from mvc.objects import chunker, delta, layout
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects import readplan as plan
from mvc.objects import recipe as rc
from mvc.objects.odb import ODB
from mvc.storage import fileio
from mvc.storage.fileio import Progress
from mvc.storage.store import FileRange, RangeStream, Store

if TYPE_CHECKING:
    from mvc.storage.parallel import HashBehind, Helper

CHUNK_FROM = 4 << 20  # objects of at least this many bytes are chunked (docs/benchmarks.md, "Issue 12")
# On a store that copies in the kernel (a directory), a file of at least this many bytes with no earlier version
# is pushed as a lone pack, uncut (docs/FORMAT.md, "Lone packs"): cutting it would cost more than the copy, while
# below this the cut takes less than the command's start and finds chunks other files share.
LONE_FROM = 64 << 20
LOCAL_BASES = 4  # versions in the local cache a rebuild cuts into chunks to reuse them
# The bytes of bases one object's deltas may read, at every depth: BASE_READS times its size, plus BASE_SLACK. A
# writer's chain reads about its size once a hop (a delta's base range straddling the base's own entries reads
# those whole: at most twice), and four hops at most; a chain that reads more is crafted, or damaged.
BASE_READS = 32
BASE_SLACK = 256 << 20
# Deltas and a remote's chunks are rebuilt this many bytes at a time, read, patched and written while they
# stay in a core's cache (docs/benchmarks.md, "a delta get through a small window").
WINDOW = 512 << 10
# ... and by two threads taking turns, this many: fewer, larger windows cost less a byte there, each written
# ``fileio.WRITE_MAX`` bytes a call (docs/benchmarks.md, "seventh session")
PAIR_WINDOW = 2 << 20
PREFETCH = 32 << 20  # a rebuild whose deltas take at most this many bytes reads them all first, in few requests
PAIR_PARTS = 64  # a run of deltas whose base lies in more parts than this is patched by one thread (descriptors)

_T = TypeVar("_T")


class Rebuilder:
    """Reads chunked objects of ``store`` (remote ``name``), reusing chunks of versions in ``odb``."""

    def __init__(self, store: Store, odb: ODB | None, name: str):
        self.store, self.odb, self.name = store, odb, name
        self._recipes: dict[str, rc.Recipe | None] = {}
        self._local: dict[str, tuple[str, int]] = {}  # chunk oid -> (a local file, offset)
        self._cut: set[str] = set()  # local versions already cut for _local
        self._lock = threading.Lock()
        self._checked: dict[str, bool] = {}  # objects of the local cache read in ranges: sound or not
        self._flights: dict[str, threading.Lock] = {}  # one request per recipe, however many threads want it
        self._arenas = threading.local()
        self._prefetched: dict[tuple[str, int, int, str], bytes | memoryview] = {}  # (pack, offset, stored, oid)
        self._no_whole: set[str] = set()  # objects with no pack named by their oid on the store
        self._whole: dict[str, bool] = {}  # objects whose pack named by their oid the store was asked about
        self.bad_whole: dict[str, str] = {}  # objects whose pack named by their oid hashes to another digest
        self.wrong_whole: dict[str, RemoteWrongSize] = {}  # objects whose pack named by their oid has another size
        self.recipe_bytes = 0  # bytes of recipes read (a rebuild reports them with the rest it read)
        self._lights: dict[rc.Entry, bool] = {}  # deltas: whether a window reads their base (_light)

    def _sound(self, oid: str) -> bool:
        """Whether the local cache holds object oid, checked against its oid once (a delta's base is read from
        there in ranges that cannot be hashed alone); one that is not is quarantined and read from the store."""
        if self.odb is None or not self.odb.exists(oid):
            return False
        with self._lock:
            if oid not in self._checked:
                try:
                    self.odb.verify(oid)
                    self._checked[oid] = True
                except CorruptObject:  # moved aside: its chunks are read from elsewhere too
                    self._checked[oid] = False
                    gone = self.odb.path(oid)
                    self._local = {c: here for c, here in self._local.items() if here[0] != gone}
            return self._checked[oid]

    def whole_rel(self, oid: str) -> str | None:
        """The pack named by object oid's digest, unless the store is known to lack it: such a pack is the object
        itself (a pack is named by the hash of its bytes), as a push writes a new file (docs/FORMAT.md, "Chunked
        objects"). Read from there, the object is checked whole, by whoever reads its last byte."""
        return None if oid in self._no_whole else pk.whole_rel(oid)

    def get_whole(
        self, oid: str, dest: str, progress: Progress | None, size: int | None = None
    ) -> tuple[str, int] | None:
        """Object oid copied into the new file dest from the pack that is the object, in one copy, as (its hex
        digest, its size); None, with no dest, when the store has no such pack or it is not the object (then
        its recipe names the bad chunk). ``size``: the object's, where known: a pack of another size is refused
        before it is copied (``Store.get_file``)."""
        if os.path.lexists(dest):  # (dest is new: the file removed below is one this call made)
            return None
        try:
            digest = self._whole_range(oid, lambda rel: self.store.get_file(rel, dest, progress, size))
        except RemoteWrongSize as e:  # as a pack that hashes wrong: its recipe (if any) is read instead
            fileio.remove_quietly(dest)
            self.lacks_whole(oid)
            self.wrong_whole[oid] = e
            return None
        if digest is None or oids.from_digest(digest) != oid:
            fileio.remove_quietly(dest)
            if digest is not None:
                self.lacks_whole(oid)
                self.bad_whole[oid] = digest
            return None
        return digest, os.path.getsize(dest)

    def learn(self, oid: str, r: rc.Recipe) -> None:
        """The recipe of object oid, as this process wrote it to the store."""
        with self._lock:
            self._recipes[oid] = r

    def lacks_whole(self, oid: str) -> None:
        """Remember that the store has no pack named by oid (one read found none)."""
        self._no_whole.add(oid)

    def rewritten_whole(self, oid: str) -> None:
        """The store's pack named by oid was written again (``mvc.objects.mend``): the next read looks afresh."""
        self._no_whole.discard(oid)
        self._whole.pop(oid, None)
        self.bad_whole.pop(oid, None)
        self.wrong_whole.pop(oid, None)
        self._lights.clear()

    def tally(self, size: int) -> _Tally:
        """A count of the bytes read for one object of ``size`` bytes, its bases' bounded (:class:`_Tally`)."""
        return _Tally(size)

    def recipe(self, oid: str, size: int | None = None) -> rc.Recipe | None:
        """The recipe of object oid on the store, None when there is none (the object is stored whole, or
        not at all). Read once per rebuilder. ``size``: the object's size, where a pointer says it; a recipe
        that rebuilds another size is refused before anything is written."""
        found = self._recipe(oid)
        if found is not None and size is not None and found.size != size:
            raise RemoteCorrupt(
                f"{self.store.where(rc.rel(oid))} on remote {self.name} rebuilds {found.size} bytes, but the "
                f"object has {size}; nothing was written: push the file again from a machine that has it"
            )
        return found

    def _recipe(self, oid: str) -> rc.Recipe | None:
        with self._lock:
            if oid in self._recipes:
                return self._recipes[oid]
            flight = self._flights.setdefault(oid, threading.Lock())
        with flight:  # threads wanting the same recipe wait for one request, not one each
            with self._lock:
                if oid in self._recipes:
                    return self._recipes[oid]
            rel = rc.rel(oid)
            try:
                data = self.store.get_range(rel, 0, rc.RECIPE_MAX + 1)
            except RemoteObjectMissing:
                found = None
            else:
                self.recipe_bytes += len(data)
                try:
                    found = rc.parse(data, f"{self.store.where(rel)} on remote {self.name}", oid)
                except CorruptObject as e:
                    raise RemoteCorrupt(
                        f"{e}; nothing was written: run 'mvc push --verify-remote' (with --all-commits for an old "
                        "version) from a machine that has the file, which writes it again"
                    ) from None
            with self._lock:
                self._recipes[oid] = found
            return found

    def incomplete(
        self, found: Iterable[str], pack_sizes: dict[str, int], there: Callable[[set[str]], set[str]] | None = None
    ) -> set[str]:
        """Of these objects, those whose recipe is damaged or names a pack not among pack_sizes (the store's
        listing of ``packs/``), or bytes past its end; with ``there`` (which of some oids the store holds), also
        those a delta of which has a base the store lacks or holds incomplete, down the chain (a reader without
        the base in its cache could not rebuild them)."""
        sound: dict[str, bool] = {}
        present: dict[str, bool] = {}  # bases asked about once (many versions share one base)

        def held(bases: set[str]) -> bool:
            ask = bases - present.keys()
            if ask and there is not None:
                found = there(ask)
                present.update({b: b in found for b in ask})
            return all(present.get(b, False) for b in bases)

        def check(oid: str, chain: tuple[str, ...]) -> bool:
            if oid in sound:
                return sound[oid]
            try:
                r = self.recipe(oid)
            except CorruptObject:
                r, ok = None, False
            else:
                ok = r is None or all(e.offset + e.stored <= pack_sizes.get(pk.pack_rel(e.pack), -1) for e in r.entries)
            if ok and r is not None and there is not None:
                bases = {e.base for e in r.entries if e.kind == "d"}
                if bases:
                    ok = len(chain) < rc.READ_HOPS and not bases & {oid, *chain} and held(bases)
                    ok = ok and all(check(b, (*chain, oid)) for b in sorted(bases))
            sound[oid] = ok
            return ok

        return {oid for oid in sorted(found) if not check(oid, ())}

    def reuse(self, r: rc.Recipe, more: Iterable[str] = ()) -> None:
        """Cut the versions a recipe names (its bases, its deltas' bases) and ``more`` (the caller's: earlier
        versions of the same path) that the local cache holds, so that their chunks are read from there
        instead of the store."""
        if self.odb is None:
            return
        wanted = list(dict.fromkeys([*r.bases, *(e.base for e in r.entries if e.kind == "d"), *more]))
        for base in wanted[:LOCAL_BASES]:
            if base in self._cut or not self.odb.exists(base):
                continue
            self._cut.add(base)
            self._lights.clear()  # (its chunks may be where a delta's base was not read through a window)
            path = self.odb.path(base)
            try:
                with chunker.Mapped(path) as m:
                    for c in chunker.cut(m.view, chunker.segments(m.view, m.size), done=m.drop):
                        self._local.setdefault(c.oid, (path, c.offset))
            except OSError:
                continue

    def rebuild(
        self,
        oid: str,
        r: rc.Recipe,
        fd: int,
        label: str,
        jobs: int,
        progress: Progress | None = None,
        local: Iterable[str] = (),
    ) -> tuple[str, bool, int]:
        """Write object oid, as recipe r builds it, into the empty file fd (open for reading and writing),
        taking the chunks it can from versions in the cache (see :meth:`reuse`; ``local``: more of them).

        On a store that copies in the kernel, the store's chunks are copied in file order by one thread (parallel
        copies into one file contend in the kernel); the rest is written in pieces by others: deltas and
        runs of chunks through a small window (:meth:`_stream`), what remains from memory, each thread decoding
        its piece's deltas into a buffer of its own; the file is hashed behind all of them (``HashBehind``).
        Returns (the hex xxh3-128 of the file's bytes: the caller compares it with oid before it uses the file;
        whether bytes were written unchecked one chunk at a time, copied in the kernel or through a window: then
        :meth:`check_chunks` names a bad one; the bytes read from the store)."""
        from mvc.storage.parallel import HashBehind, Helper, run_parallel

        self.reuse(r, local)
        fileio.preallocate(fd, r.size)
        tally = _Tally(r.size)
        copies: list[list[rc.Entry]] = []
        if self.store.copies_ranges:
            copies = plan.copies([e for e in r.entries if e.kind == "c" and e.oid not in self._local])
            if copies and not self._copy(copies[0], label, tally, fd):  # the first copy tells
                copies = []
        copied, wrong = {e for run in copies for e in run}, self._wrong_size(oid)
        # every read is local and most bytes are sparse deltas: the pieces in order, each run of them patched by
        # two threads taking every other window, each window hashed in turn (_patch_pair)
        paired = self.store.copies_ranges and delta.compiled() and self._mostly_sparse(r, copied)
        pieces = [p for p in plan.pieces(r, self._light) if any(e not in copied for e in rc.covering(r.entries, *p))]
        # where each write to come starts: the hash reads the file up to the first
        behind = HashBehind(fd, r.size, [run[0].at for run in copies[1:]] + [p[0] for p in pieces], progress)
        stop, unchecked = threading.Event(), threading.Event()
        writing = threading.Lock()

        def copy_all() -> None:
            for run in copies[1:]:
                if stop.is_set():
                    return
                if not self._copy(run, label, tally, fd):  # not between these files after all: through memory
                    for sub in plan.runs(run, list(range(len(run)))):
                        parts = [p for _, p in self._fetch(sub, run, label, tally)]
                        with writing:  # (as the pieces write)
                            fileio.pwritev_all(fd, parts, run[sub[0]].at)
                behind.done(run[0].at)

        def write(view: memoryview, at: int) -> None:
            if stop.is_set():  # another piece failed, or Ctrl-C: a piece through the window ends at its next window
                raise WorkStopped("the rebuild was called off")
            with writing:  # one writer at a time: writers of one file otherwise spin on its lock in the kernel
                n = os.pwritev(fd, [view], at) if len(view) <= fileio.WRITE_MAX else 0
                if n < len(view):  # (a larger window, WRITE_MAX bytes a call; rare: a signal, a full disk)
                    fileio.pwritev_all(fd, [view[n:]], at + n)

        def piece(p: tuple[int, int], helper: Helper | None = None) -> None:
            entries = rc.covering(r.entries, *p)
            pair = None if helper is None else _Pair(helper, behind, p[0], stop)
            streamed = self._stream(entries, label, (oid,), tally, copied, write, pair)
            if streamed:
                unchecked.set()
            if any(e not in streamed and e not in copied for e in entries):
                arena = self._arena()
                parts = self._entries(entries, label, (oid,), tally, _Either(copied, streamed), arena)
                with writing:
                    _write(fd, entries, parts, wrong)
                arena.clear()
            behind.done(p[0])

        def in_pairs() -> None:
            helper = Helper()
            try:
                for p in pieces:
                    if stop.is_set():  # another work item failed, or Ctrl-C
                        raise WorkStopped("the rebuild was called off")
                    piece(p, helper)
            finally:
                helper.close()

        work: list[Callable[[], None]] = [lambda: behind.run(stop), *([copy_all] if copies else [])]
        if paired:
            work.append(in_pairs)
            threads = len(work)
        else:
            threads = max(jobs, 1)
            if self.store.copies_ranges:  # every read is local: more threads than CPUs only take turns, and evict
                from mvc.storage import forked  # (its imports: 2.5 ms, which a run of deltas in turns does without)

                threads = min(threads, forked.cpus())  # each other's windows from the cores' caches
            work += [functools.partial(piece, p) for p in pieces]
            threads += 1  # the hash mostly waits
        ahead = self._prefetch(r, label, tally, jobs)
        try:
            run_parallel(lambda call: call(), work, threads, None, stop)
        finally:
            with self._lock:  # (another rebuild of this transfer may be reading its own meanwhile)
                for key in ahead:
                    self._prefetched.pop(key, None)
        return behind.hexdigest(), bool(copies) or unchecked.is_set(), tally.n

    def _mostly_sparse(self, r: rc.Recipe, copied: Container[rc.Entry]) -> bool:
        """Whether most of the bytes of r that are not ``copied`` are sparse deltas read through a window (a dense
        one decompresses whole: two threads taking its windows would each decompress it)."""
        rest = [e for e in r.entries if e not in copied]
        light = sum(e.size for e in rest if e.kind == "d" and e.codec == delta.ZS and self._light(e))
        return 2 * light > sum(e.size for e in rest)

    def _prefetch(self, r: rc.Recipe, label: str, tally: _Tally, jobs: int) -> Iterable[tuple[str, int, int, str]]:
        """Read (and check) every delta of r first when they take at most PREFETCH bytes: they lie together in
        few packs, so a few requests replace one per piece (a light fine-tune's deltas are a few MiB); and, from
        a store read through requests, in what is left of PREFETCH, the sparse deltas of the versions below that
        are read as layers, a level at a time (``_nested``). Returns the keys it added to ``_prefetched``, which
        the rebuild removes when it ends."""
        from mvc.storage.parallel import run_parallel

        wanted = [i for i, e in enumerate(r.entries) if e.kind == "d"]
        cost = sum(r.entries[i].stored for i in wanted)
        if not wanted or cost > PREFETCH:
            return {}
        found: dict[tuple[str, int, int, str], bytes | memoryview] = {}
        work = [(r.entries, run) for run in plan.runs([r.entries[i] for i in wanted], wanted)]
        for entries, index in self._nested(r, PREFETCH - cost):
            work += [(entries, run) for run in plan.runs([entries[i] for i in index], index)]

        def fetch(job: tuple[list[rc.Entry], list[int]]) -> tuple[list[rc.Entry], list[tuple[int, bytes | memoryview]]]:
            entries, run = job
            return entries, self._fetch(run, entries, label, tally)

        def keep(
            job: tuple[list[rc.Entry], list[int]], got: tuple[list[rc.Entry], list[tuple[int, bytes | memoryview]]]
        ) -> None:
            entries, pieces = got
            for i, piece in pieces:
                e = entries[i]
                found[(e.pack, e.offset, e.stored, e.oid)] = piece

        run_parallel(fetch, work, max(jobs, 1), keep)
        with self._lock:
            self._prefetched.update(found)
        return found

    def _nested(self, r: rc.Recipe, budget: int) -> list[tuple[list[rc.Entry], list[int]]]:
        """The sparse deltas of the versions below r that a rebuild reads as layers (compiled; each version down
        the chains its sparse deltas are based on, read through its recipe, at most READ_HOPS down), as (a
        recipe's entries, the indexes of its deltas), a whole level at a time while they take at most budget
        bytes; none from a store whose files are read here (a directory remote: its reads cost no request, and
        deltas read ahead stay in memory until the rebuild ends)."""
        if not delta.compiled() or self.store.copies_ranges:
            return []
        out: list[tuple[list[rc.Entry], list[int]]] = []
        seen: set[str] = set()
        level = {e.base for e in r.entries if e.kind == "d" and e.codec == delta.ZS}
        for _ in range(rc.READ_HOPS):
            found, below = [], set()
            for base in sorted(level - seen):
                seen.add(base)
                if self._whole_at(base) is not None:
                    continue  # (read whole: no layers below it)
                br = self.recipe(base)
                if br is None:
                    continue
                index = [i for i, e in enumerate(br.entries) if e.kind == "d" and e.codec == delta.ZS]
                if index:
                    found.append((br.entries, index))
                    below |= {br.entries[i].base for i in index}
            cost = sum(entries[i].stored for entries, index in found for i in index)
            if not found or cost > budget:
                break
            out += found
            budget -= cost
            level = below
        return out

    def _stream(
        self,
        entries: list[rc.Entry],
        label: str,
        chain: tuple[str, ...],
        tally: _Tally,
        skip: Container[rc.Entry],
        write: Callable[[memoryview, int], None],
        pair: _Pair | None = None,
    ) -> set[rc.Entry]:
        """Write the entries it can without a piece's buffer, through a window of WINDOW bytes handed to
        write(bytes, offset in the object), and return them: runs of deltas, patched as their base is read
        in order (:func:`delta.patch_through`; the base from the cache's copy, from the pack that is the base, or
        from the packs of its chunks in one ranged read each); and, on a store that does not copy in the kernel,
        runs of chunks lying one after another in one pack, in one ranged read. Read into a piece's buffer and
        written from there, the bytes would cross memory twice more (docs/benchmarks.md, "a delta get through a
        small window"). Bytes read so are not checked one chunk at a time: the file's hash covers them, and a
        rebuild that fails it looks for the chunk to blame (:meth:`check_chunks`)."""
        done: set[rc.Entry] = set()
        i = 0
        while i < len(entries):
            j, e = i + 1, entries[i]
            if e in skip:
                i = j
                continue
            if e.kind == "d" and self._light(e):
                while j < len(entries) and _base_follows(entries[j - 1], entries[j], skip):
                    j += 1
                if pair is not None:  # the bytes before the run are in the file (copied) when the piece starts so
                    pair.clear = all(x in skip for x in entries[:i])
                if self._patch_run(entries[i:j], label, chain, tally, write, pair):
                    done.update(entries[i:j])
            elif self._light(e):
                while j < len(entries) and self._pack_follows(entries[j - 1], entries[j], skip):
                    j += 1
                self._copy_run(entries[i:j], label, tally, write)
                done.update(entries[i:j])
            i = j
        return done

    def _light(self, e: rc.Entry) -> bool:
        """Whether :meth:`_stream` writes entry e through its window (a delta: when its base is read so),
        rather than from a piece's memory."""
        if e.kind == "d":
            known = self._lights.get(e)
            if known is None:  # (asked several times an entry while a rebuild plans; a chain's levels each time)
                known = self._lights[e] = (
                    e.codec in delta.CODECS
                    and delta.reads_fast()
                    and self._base_parts(e.base, e.base_offset, e.base_offset + e.size) is not None
                )
            return known
        return e.stored == e.size and not self.store.copies_ranges and e.oid not in self._local

    def _pack_follows(self, a: rc.Entry, b: rc.Entry, skip: Container[rc.Entry]) -> bool:
        """Whether chunk b follows chunk a both in one pack and in the object (one read takes both)."""
        return (
            b.kind == "c"
            and b not in skip
            and self._light(b)
            and (b.pack, b.offset, b.at) == (a.pack, a.offset + a.stored, a.at + a.size)
        )

    def _copy_run(
        self, run: list[rc.Entry], label: str, tally: _Tally, write: Callable[[memoryview, int], None]
    ) -> None:
        """Chunks lying one after another in one pack and in the object, read in one ranged read a window at a
        time, each window written."""
        first, last = run[0], run[-1]
        rel = pk.pack_rel(first.pack)
        size = last.at + last.size - first.at
        stream = _Sequence(self, [("store", rel, first.offset, size)], label, tally)
        try:
            window = self._window()
            for start in range(0, size, len(window)):
                view = window[: min(len(window), size - start)]
                if stream.read_full(view) != len(view):
                    raise self.cut_short(label, rel, first.offset + start + len(view))
                write(view, first.at + start)
        finally:
            stream.close()

    def _patch_run(
        self,
        run: list[rc.Entry],
        label: str,
        chain: tuple[str, ...],
        tally: _Tally,
        write: Callable[[memoryview, int], None],
        pair: _Pair | None = None,
    ) -> bool:
        """Deltas whose base ranges adjoin in one base, patched a window at a time as their base is read
        in order (by two threads with ``pair``, when they can: :meth:`_patch_pair`); False, with nothing
        written, when their base is not read so (it is a delta version itself, or stored as a plain object)."""
        first, last = run[0], run[-1]
        start, end = first.base_offset, last.base_offset + last.size
        parts = self._base_parts(first.base, start, end, chain)
        if parts is None:
            return False
        # a base that is itself a delta version: each window's base bytes read from the versions below it, their
        # changes added on the way (``_Layer``), where every window falls on whole lanes of every delta it crosses
        layered = any(isinstance(p, _Layer) for p in parts)
        paired = pair is not None and _leaves(parts) <= PAIR_PARTS
        if layered and not _aligned(parts, start, _cuts(run, PAIR_WINDOW if paired else WINDOW)):
            return False
        for e in run:
            self._check_chain(e, label, chain)
            tally.base(e.size, self, label)
        data = self._deltas(run, label, tally)
        # every frame sparse and small enough to be decoded once for both threads (a Frame)
        framed = all(e.codec == delta.ZS for e in run) and all(map(delta.pairs, data, (e.size for e in run)))
        if layered and not (framed and self._fill(parts, _via(label, first), tally)):
            return False
        if paired and framed:
            assert pair is not None
            self._patch_pair(run, data, parts, label, tally, write, pair)
            return True
        window = self._window()
        if layered:
            positional = _Positional(self, parts, _via(label, first), tally, users=1)
            base: _Sequence | _Positional = positional
        else:
            base = _Sequence(self, [p for p in parts if isinstance(p, tuple)], _via(label, first), tally)
        try:
            for e, frame in zip(run, data, strict=True):

                def read(at: int, view: memoryview, e: rc.Entry = e) -> int:
                    if isinstance(base, _Positional):
                        got = base.read_at(e.base_offset - start + at, view)
                    else:
                        got = base.read_full(view)
                    if got != len(view):
                        raise self._short_base(e, e.base_offset + at, e.base_offset + at + len(view), label)
                    return len(view)

                try:
                    delta.patch_through(
                        frame,
                        e.size,
                        e.lane,
                        f"{label}: delta {e.oid} on remote {self.name}",
                        window,
                        read,
                        lambda view, at, e=e: write(view, e.at + at),  # type: ignore[misc]
                        e.codec,
                        own=layered,  # (read decodes the layers' frames in this thread)
                    )
                except RemoteCorrupt:
                    raise  # (the base's, from read: it says what to do)
                except CorruptObject as err:
                    raise RemoteCorrupt(f"{err}; nothing was written: {self._mend()}") from None
        finally:
            base.close()
        return True

    def _fill(self, parts: list[_Part | _Layer], label: str, tally: _Tally) -> bool:
        """Read (and check) the deltas of every ``_Layer`` among parts and below them, each level's together (few
        requests: a level's deltas lie in order in few packs), and count their bases' bytes; False when one of
        them is too large for a ``delta.Frame``."""
        layers = [p for p in parts if isinstance(p, _Layer)]
        if not layers:
            return True
        data = self._deltas([p.e for p in layers], label, tally)
        for layer, frame in zip(layers, data, strict=True):
            if not delta.pairs(frame, layer.e.size):
                return False
            tally.base(layer.hi - layer.lo, self, label)
            layer.data = frame
            layer.where = f"{label}: delta {layer.e.oid} on remote {self.name}"
        # the parts below, each group's once, a level's together but for each base apart (the label names it)
        below: dict[str, tuple[rc.Entry, list[_Part | _Layer]]] = {}
        for layer in {id(p.below): p for p in layers}.values():
            below.setdefault(layer.e.base, (layer.e, []))[1].extend(layer.below.parts)
        return all(self._fill(ps, _via(label, e), tally) for e, ps in below.values())

    def _patch_pair(
        self,
        run: list[rc.Entry],
        data: list[bytes | memoryview],
        parts: list[_Part | _Layer],
        label: str,
        tally: _Tally,
        write: Callable[[memoryview, int], None],
        pair: _Pair,
    ) -> None:
        """The deltas of run (their frames: data) patched as :meth:`_patch_run` does, by this thread and pair's
        helper taking every other window, each reading its windows' base bytes where they lie (parts, positional
        reads) into a window of its own. Each window is hashed in its turn, in order, while it is still in its
        core's cache (``HashBehind.feed``), then written: on two cores this is faster than one thread patching
        and another hashing what was written (docs/benchmarks.md, "a compiled adder, and two threads taking
        turns")."""
        from mvc.storage.parallel import Turns

        first = run[0]
        base = _Positional(self, parts, _via(label, first), tally)
        wins = [
            (k, e, start, end - start)
            for k, e in enumerate(run)
            for start, end in delta.windows(e.size, e.lane, PAIR_WINDOW)
        ]
        # how many of the two threads take windows of each delta (every other window: both, from two windows on)
        counts = collections.Counter(k for k, *_ in wins)
        users = [min(2, counts[k]) for k in range(len(run))]
        frames = _Frames(run, data, f"{label}: delta {{}} on remote {self.name}", users)
        turns = Turns(pair.stop)

        def half(me: int) -> None:
            now, add = -1, None
            try:
                window = self._window(PAIR_WINDOW)
                for i in range(me, len(wins), 2):
                    k, e, start, size = wins[i]
                    try:
                        if now != k:  # each thread adds with an adder of its own, from one frame decoded once
                            frames.release(now)
                            now, add = k, frames.get(k).adder()
                        view = window[:size]
                        if base.read_at(e.base_offset - first.base_offset + start, view) != size:
                            raise self._short_base(e, e.base_offset + start, e.base_offset + start + size, label)
                        assert add is not None
                        add(view, start // e.lane)
                    except RemoteCorrupt:
                        raise  # (the base's: it says what to do)
                    except CorruptObject as err:
                        raise RemoteCorrupt(f"{err}; nothing was written: {self._mend()}") from None
                    turns.wait(i)
                    # (the bytes before the run are read back only at its first window: a later one would read
                    # back windows of the run not yet written)
                    pair.behind.feed(view, e.at + start, pair.start, pair.clear and i == 0)
                    turns.done(i)
                    write(view, e.at + start)
                frames.release(now)
            except BaseException as e:
                failed.append(e)  # (before the other thread stops at its next turn, saying so)
                turns.failed.set()
                raise

        failed: list[BaseException] = []
        pair.helper.start(lambda: half(1))
        try:
            with contextlib.suppress(BaseException):
                half(0)
            with contextlib.suppress(BaseException):
                pair.helper.result()
            if failed:
                raise failed[0]  # the first thread's error, not the other's WorkStopped
        finally:
            base.close()  # (neither thread reads any more)

    def _base_parts(self, oid: str, start: int, end: int, chain: tuple[str, ...] = ()) -> list[_Part | _Layer] | None:
        """Where bytes [start, end) of object oid lie, in order, as a base read without checks: the cache's copy
        (checked once), the pack named by oid (the object itself), or the entries of its recipe: chunks (from
        versions in the cache, else from their packs) and sparse deltas (``_Layer``: read from their own base,
        their changes added on the way, down a chain of such versions); None when some of it is not read so (a
        dense delta, an object stored as a plain object, a cycle): then the caller reads it into a piece's
        buffer. ``chain``: the objects whose deltas led here."""
        whole = self._whole_at(oid)
        if whole is not None:
            return [(*whole, start, end - start)]
        r = self.recipe(oid)
        if r is None:
            return None
        parts: list[_Part | _Layer] = []
        entries = rc.covering(r.entries, start, end)
        i = 0
        while i < len(entries):
            e = entries[i]
            lo, hi = max(start, e.at), min(end, e.at + e.size)
            here = self._local.get(e.oid) if e.kind == "c" else None
            if here is not None:
                part: _Part = ("file", here[0], here[1] + lo - e.at, hi - lo)
            elif e.kind == "c" and e.stored == e.size:
                part = ("store", pk.pack_rel(e.pack), e.offset + lo - e.at, hi - lo)
            elif e.kind == "d" and self._layers(e, oid, chain):
                # e and the deltas after it that read on in the same base share what lies below them (_Below)
                j = i + 1
                while j < len(entries) and _base_follows(entries[j - 1], entries[j], ()):
                    if not self._layers(entries[j], oid, chain):
                        break
                    j += 1
                group = entries[i:j]
                low = e.base_offset + lo - e.at
                high = group[-1].base_offset + min(end, group[-1].at + group[-1].size) - group[-1].at
                below = self._base_parts(e.base, low, high, (*chain, oid))
                if below is None:
                    return None
                shared = _Below(below, low, len(group))
                for f in group:
                    flo, fhi = max(start, f.at) - f.at, min(end, f.at + f.size) - f.at
                    parts.append(_Layer(f, flo, fhi, shared, f.base_offset + flo - low))
                i = j
                continue
            else:
                return None
            kind, where, at, n = parts[-1] if parts and isinstance(parts[-1], tuple) else ("", "", 0, 0)
            if (kind, where, at + n) == part[:3]:
                parts[-1] = (kind, where, at, n + part[3])
            else:
                parts.append(part)
            i += 1
        return parts if sum(_size(p) for p in parts) == end - start else None

    def _layers(self, e: rc.Entry, oid: str, chain: tuple[str, ...]) -> bool:
        """Whether delta e of object oid, itself a base, is read as a ``_Layer``: sparse, added by the compiled
        adder, and its base neither round a cycle nor past READ_HOPS (those are refused by the piece's reads,
        which name them)."""
        return (
            e.codec == delta.ZS
            and delta.compiled()
            and e.base != oid
            and e.base not in chain
            and len(chain) < rc.READ_HOPS
        )

    def _whole_at(self, oid: str) -> tuple[str, str] | None:
        """Where object oid is read whole without checks, as a part's (kind, where): the cache's copy (checked
        once), or the pack named by oid; None when it is read through its recipe."""
        if self.odb is not None and self._sound(oid):
            return ("file", self.odb.path(oid))
        rel = self.whole_rel(oid)
        if rel is not None and self._holds_whole(oid, rel):
            return ("store", rel)
        return None

    def _holds_whole(self, oid: str, rel: str) -> bool:
        """Whether the store holds rel, the pack named by object oid (asked once: a stat, or one request)."""
        with self._lock:
            known = self._whole.get(oid)
        if known is None:
            known = self.store.exists(rel)
            with self._lock:
                self._whole[oid] = known
            if not known:
                self.lacks_whole(oid)
        return known

    def _deltas(self, run: list[rc.Entry], label: str, tally: _Tally) -> list[bytes | memoryview]:
        """The bytes of the deltas of run, checked: read ahead, or read now."""
        out: dict[int, bytes | memoryview] = {}
        remote: list[int] = []
        for i, e in enumerate(run):
            ahead = self._prefetched.get((e.pack, e.offset, e.stored, e.oid))
            if ahead is None:
                remote.append(i)
            else:
                out[i] = ahead
        for fetched in plan.runs([run[i] for i in remote], remote):
            out.update(self._fetch(fetched, run, label, tally))
        return [out[i] for i in range(len(run))]

    def _window(self, size: int = WINDOW) -> memoryview:
        """The calling thread's window of size bytes: WINDOW for :meth:`_stream`, PAIR_WINDOW for
        :meth:`_patch_pair`."""
        windows: dict[int, memoryview] | None = getattr(self._arenas, "windows", None)
        if windows is None:
            windows = self._arenas.windows = {}
        if size not in windows:
            windows[size] = memoryview(bytearray(size))
        return windows[size]

    def _arena(self) -> _Arena:
        """The calling thread's buffer for the deltas of one piece, decoded there and written before the next."""
        arena: _Arena | None = getattr(self._arenas, "arena", None)
        if arena is None:
            arena = self._arenas.arena = _Arena(plan.PIECE + delta.SEGMENT + (1 << 16))  # room for alignment
        return arena

    def _mend(self) -> str:
        """The fix of a chunk list that parses and names packs that are there, whose bytes are wrong: a push (even
        with --verify-remote) finds it complete and sends nothing."""
        return (
            f"run 'mvc verify -r {self.name} --repair --all-tags' on a machine whose cache holds it (it goes up whole)"
        )

    def _gone(self, label: str, rel: str) -> RemoteCorrupt:
        return RemoteCorrupt(
            f"{label}: its chunk list on remote {self.name} names {self.store.where(rel)}, which is not there; "
            "nothing was written: push the file again from a machine that has it"
        )

    def cut_short(self, label: str, rel: str, end: int) -> RemoteCorrupt:
        """The error for the store's file rel ending before byte ``end``, which a chunk list names."""
        return RemoteCorrupt(
            f"{label}: {self.store.where(rel)} on remote {self.name} is cut short: it ends before byte {end}, which "
            f"its chunk list names; nothing was written: run 'mvc verify -r {self.name} --repair --all-tags' on a "
            "machine whose cache holds the versions that use that pack (each goes up whole); the pack itself may be "
            "shared by other versions: do not delete it"
        )

    def _wrong_size(self, oid: str) -> RemoteCorrupt:
        return RemoteCorrupt(
            f"{oid}: its chunk list {self.store.where(rc.rel(oid))} on remote {self.name} gives a chunk a wrong "
            "size; nothing was written: push the file again from a machine that has it"
        )

    def check_chunks(self, r: rc.Recipe, label: str) -> None:
        """Read and hash every chunk of recipe r the store holds, and of the recipes of its deltas' bases (what a
        rebuild that copied them in the kernel, or read them through a window, did not check one by one): raises
        the error naming the first that is corrupt or cut short. For a rebuilt file that does not hash to its
        oid, before the error that blames the chunk list."""
        recipes = [(r, label)]
        for base in sorted({e.base for e in r.entries if e.kind == "d"}):
            if not self._sound(base):
                found = self.recipe(base)
                if found is not None:
                    recipes.append((found, f"{label}, through its deltas' base {base}"))
        for one, shown in recipes:
            remote = [i for i, e in enumerate(one.entries) if e.kind == "c"]
            for run in plan.runs([one.entries[i] for i in remote], remote):
                self._fetch(run, one.entries, shown, None)

    def read(
        self,
        oid: str,
        start: int,
        end: int,
        label: str,
        r: rc.Recipe | None = None,
        chain: tuple[str, ...] = (),
        tally: _Tally | None = None,
    ) -> bytes:
        """Bytes [start, end) of object oid: from the local cache when it holds the object, else from its
        recipe on the store, else from the object stored whole. ``chain``: the objects whose deltas led here,
        as a base (:meth:`_base` bounds it)."""
        if start >= end:
            return b""
        if self.odb is not None and self._sound(oid):
            fd = os.open(self.odb.path(oid), os.O_RDONLY)
            try:
                return os.pread(fd, end - start, start)
            finally:
                os.close(fd)
        if r is None:
            got = self._whole_range(oid, lambda rel: self.store.get_range(rel, start, end))
            if got is not None:
                if tally is not None:
                    tally.add(len(got))
                return got
            r = self.recipe(oid)
        if r is None:
            data = self.store.get_range(layout.object_rel(oid), start, end)
            if tally is not None:
                tally.add(len(data))
            return data
        entries = rc.covering(r.entries, start, end)
        data = b"".join(p for p in self._entries(entries, label, (*chain, oid), tally) if p is not None)  # no None
        first = entries[0].at if entries else start
        if start == first and end - first == len(data):
            return data  # a rebuild's pieces end at entries: no second copy
        return data[start - first : end - first]

    def _entries(
        self,
        entries: list[rc.Entry],
        label: str,
        chain: tuple[str, ...],
        tally: _Tally | None,
        copied: Container[rc.Entry] = (),
        arena: _Arena | None = None,
        into: memoryview | None = None,
        placed: set[int] | None = None,
    ) -> list[bytes | memoryview | None]:
        """The bytes of each entry, checked; None for those ``copied`` into the file being rebuilt, unchecked
        (the caller hashes the file). Deltas are decoded into ``arena`` when given (the caller writes them before
        it clears it): a run of sparse deltas is applied in place to its base, read there. ``into``: where the
        entries' bytes go (entries[0].at is its start); chunks lying in a pack as in the object are read straight
        there, and their indexes added to ``placed``."""
        out: list[bytes | memoryview | None] = [None] * len(entries)
        remote: list[int] = []
        deltas: list[tuple[int, bytes | memoryview]] = []
        local = self._read_local(entries)
        for i, e in enumerate(entries):
            if e in copied:
                continue
            if e.kind == "c":
                mine = local.get(i)
                if mine is not None and oids.from_digest(fileio.hexdigest_bytes(mine)) == e.oid:
                    out[i] = mine
                    continue
            else:
                ahead = self._prefetched.get((e.pack, e.offset, e.stored, e.oid))  # read and checked already
                if ahead is not None:
                    deltas.append((i, ahead))
                    continue
            remote.append(i)
        for run in plan.runs([entries[i] for i in remote], remote):
            for i, piece in self._fetch(run, entries, label, tally, into, placed):
                if entries[i].kind == "d":
                    deltas.append((i, piece))
                else:
                    out[i] = piece
        for group in plan.base_runs(entries, deltas):  # one read of the base for deltas of adjoining ranges
            first, last = entries[group[0][0]], entries[group[-1][0]]
            start, end = first.base_offset, last.base_offset + last.size
            if arena is not None and all(entries[i].codec == delta.ZS for i, _ in group):
                buf = arena.take(end - start)
                if isinstance(buf, memoryview):  # (it fits: a piece's bytes always do)
                    self._base_into(first, start, end, label, tally, buf, chain)
                    for i, piece in group:  # each sparse delta patches its base's bytes where they lie
                        e = entries[i]
                        view = buf[e.base_offset - start : e.base_offset - start + e.size]
                        out[i] = self._decode(e, piece, view, label, None, view)
                    continue
            base = self._base(first, start, end, label, tally, chain)
            for i, piece in group:
                e = entries[i]
                at = e.base_offset - first.base_offset
                out[i] = self._decode(e, piece, base[at : at + e.size], label, arena)
        return out

    def _copy(self, run: list[rc.Entry], label: str, tally: _Tally, into: int) -> bool:
        """Chunks lying one after another in one pack and in the file, copied in the kernel; False when the kernel
        cannot copy between these files (nothing was written)."""
        first, last = run[0], run[-1]
        rel = pk.pack_rel(first.pack)
        start, end = first.offset, last.offset + last.stored
        try:
            n = self.store.copy_range_to(rel, start, end, into, first.at)
        except RemoteObjectMissing:
            raise self._gone(label, rel) from None
        if n < 0:
            return False
        if n != end - start:
            raise RemoteCorrupt(
                f"{label}: {self.store.where(rel)} on remote {self.name} is cut short: it ends at byte {start + n}, "
                f"before the chunks its chunk list names there (to byte {end}); nothing was written: delete that "
                "pack and its .idx on the remote, then run 'mvc push --verify-remote' from a machine that has the file"
            )
        tally.add(n)
        return True

    def _read_local(self, entries: list[rc.Entry]) -> dict[int, memoryview]:
        """{index: bytes} of the chunks among entries that versions in the cache hold (not checked yet): one read
        per run of them that lie one after another in one file, as an unchanged stretch of a model does."""
        found: dict[int, memoryview] = {}
        if not self._local:
            return found
        i = 0
        while i < len(entries):
            here = self._local.get(entries[i].oid) if entries[i].kind == "c" else None
            if here is None:
                i += 1
                continue
            path, start = here
            j, end = i + 1, start + entries[i].size
            while j < len(entries) and entries[j].kind == "c" and self._local.get(entries[j].oid) == (path, end):
                end += entries[j].size
                j += 1
            data = _pread(path, start, end - start)
            if data is not None:
                view, at = memoryview(data), 0
                for k in range(i, j):
                    found[k] = view[at : at + entries[k].size]
                    at += entries[k].size
            i = j
        return found

    def _fetch(
        self,
        run: list[int],
        entries: list[rc.Entry],
        label: str,
        tally: _Tally | None,
        into: memoryview | None = None,
        placed: set[int] | None = None,
    ) -> list[tuple[int, bytes | memoryview]]:
        first = entries[run[0]]
        rel = pk.pack_rel(first.pack)
        start, end = first.offset, max(entries[i].offset + entries[i].stored for i in run)
        origin = entries[0].at
        # chunks lying in the pack as in the object (a pack of a version's new chunks): read where they go
        straight = (
            into is not None
            and placed is not None
            and first.at - origin + end - start <= len(into)
            and all(entries[i].kind == "c" and entries[i].offset - start == entries[i].at - first.at for i in run)
            and entries[run[-1]].offset + entries[run[-1]].stored == end
        )
        try:
            if straight:
                assert into is not None and placed is not None
                view = into[first.at - origin : first.at - origin + end - start]
                data: bytes | memoryview = view[: self.store.get_range_into(rel, start, view)]
                placed.update(run)
            else:
                data = self.store.get_range(rel, start, end)
        except RemoteObjectMissing:
            raise self._gone(label, rel) from None
        if tally is not None:
            tally.add(len(data))
        out: list[tuple[int, bytes | memoryview]] = []
        view = memoryview(data)  # slices, not copies: the pieces are joined once by the caller
        for i in run:
            e = entries[i]
            piece = view[e.offset - start : e.offset - start + e.stored]
            if oids.from_digest(fileio.hexdigest_bytes(piece)) != e.oid:
                raise RemoteCorrupt(
                    f"{label}: {'chunk' if e.kind == 'c' else 'delta'} {e.oid} at bytes {e.offset}-"
                    f"{e.offset + e.stored} of {self.store.where(rel)} on remote {self.name} is corrupt or cut "
                    f"short; nothing was written: run 'mvc verify -r {self.name} --repair --all-tags' on a machine "
                    "whose cache holds the versions that use that pack (each goes up whole); the pack itself may be "
                    "shared by other versions: do not delete it"
                )
            out.append((i, piece))
        return out

    def _base(
        self, e: rc.Entry, start: int, end: int, label: str, tally: _Tally | None, chain: tuple[str, ...]
    ) -> memoryview:
        """Bytes [start, end) of the base of delta e (and of those after it, read with it), e one of the entries of
        chain[-1]."""
        self._check_chain(e, label, chain)
        if tally is not None:
            tally.base(end - start, self, label)
        try:
            base = self.read(e.base, start, end, _via(label, e), chain=chain, tally=tally)
        except RemoteObjectMissing:
            raise self._no_base(e, label) from None
        if len(base) != end - start:
            raise self._short_base(e, start, end, label)
        return memoryview(base)

    def _base_into(
        self,
        e: rc.Entry,
        start: int,
        end: int,
        label: str,
        tally: _Tally | None,
        buf: memoryview,
        chain: tuple[str, ...],
    ) -> None:
        """Bytes [start, end) of the base of delta e (and of those after it) read into buf, as :meth:`_base`."""
        self._check_chain(e, label, chain)
        if tally is not None:
            tally.base(end - start, self, label)
        try:
            n = self._read_into(e.base, start, end, _via(label, e), buf, chain, tally)
        except RemoteObjectMissing:
            raise self._no_base(e, label) from None
        if n != end - start:
            raise self._short_base(e, start, end, label)

    def _check_chain(self, e: rc.Entry, label: str, chain: tuple[str, ...]) -> None:
        """Refuse to read delta e's base where that would go round a cycle of deltas (its base is an object whose
        deltas led here) or follow more than READ_HOPS deltas down. A writer keeps a chain within MAX_DEPTH when
        it writes it, but a base's chunk list written again later (a push that mends it, a compaction, another
        writer) may make it longer: the depth a delta records bounds nothing a reader relies on."""
        if e.base in chain:
            raise RemoteCorrupt(
                f"{label}: on remote {self.name}, the deltas of object {chain[-1]} are based on {e.base}, which is "
                "itself rebuilt from them (a cycle, which only a damaged chunk list or two pushes at once make); "
                "nothing was written: delete the chunk list of one of them on the remote ('recipes/…'), then run "
                "'mvc push --verify-remote' from a machine that has that version"
            )
        if len(chain) > rc.READ_HOPS:
            raise RemoteCorrupt(
                f"{label}: on remote {self.name}, reading it follows more than {rc.READ_HOPS} deltas, each based on "
                "the next; nothing was written: delete the chunk list of one of them on the remote ('recipes/…'), "
                "then run 'mvc push --verify-remote' from a machine that has that version"
            )

    def _no_base(self, e: rc.Entry, label: str) -> RemoteCorrupt:
        return RemoteCorrupt(
            f"{label}: a delta on remote {self.name} is based on object {e.base}, which is not there; "
            "nothing was written: push that version, or this file again from a machine that has it"
        )

    def _short_base(self, e: rc.Entry, start: int, end: int, label: str) -> RemoteCorrupt:
        return RemoteCorrupt(
            f"{label}: a delta on remote {self.name} needs bytes {start}-{end} of object {e.base}, which is "
            f"shorter; nothing was written: {self._mend()}"
        )

    def _read_into(
        self, oid: str, start: int, end: int, label: str, buf: memoryview, chain: tuple[str, ...], tally: _Tally | None
    ) -> int:
        """Bytes [start, end) of object oid read into buf (end - start bytes), as :meth:`read` gives them, without
        memory of their own where they can be read straight there; returns how many (fewer: oid ends first)."""
        if self.odb is not None and self._sound(oid):
            fd = os.open(self.odb.path(oid), os.O_RDONLY)
            try:
                return fileio.preadv_all(fd, buf, start)
            finally:
                os.close(fd)
        n = self._whole_range(oid, lambda rel: self.store.get_range_into(rel, start, buf))
        if n is not None:
            if tally is not None:
                tally.add(n)
            return n
        r = self.recipe(oid)
        if r is None:
            n = self.store.get_range_into(layout.object_rel(oid), start, buf)
            if tally is not None:
                tally.add(n)
            return n
        entries = rc.covering(r.entries, start, end)
        if not entries or entries[0].at != start or entries[-1].at + entries[-1].size != end:
            data = self.read(oid, start, end, label, r, chain, tally)  # entries that straddle the range
            buf[: len(data)] = data
            return len(data)
        placed: set[int] = set()
        parts = self._entries(entries, label, (*chain, oid), tally, into=buf, placed=placed)
        for i, (e, part) in enumerate(zip(entries, parts, strict=True)):
            if i not in placed and part is not None:
                if len(part) != e.size:
                    raise self._wrong_size(oid)
                buf[e.at - start : e.at - start + e.size] = part
        return end - start

    def _whole_range(self, oid: str, read: Callable[[str], _T]) -> _T | None:
        """read(the pack named by oid), None when the store has none (remembered). Bytes read there are not checked
        one range at a time: the rebuilt file's hash covers them, and a file that fails it is blamed on its bases
        too (:func:`rebuilt_wrong`)."""
        rel = self.whole_rel(oid)
        if rel is None:
            return None
        try:
            return read(rel)
        except RemoteObjectMissing:
            self.lacks_whole(oid)
            return None

    def _decode(
        self,
        e: rc.Entry,
        data: bytes | memoryview,
        base: memoryview,
        label: str,
        arena: _Arena | None,
        out: memoryview | bytearray | None = None,
    ) -> bytes | memoryview:
        """Delta e decoded against base into out (for a sparse delta, out may be base itself: patched in place),
        else a slice of the arena, else new memory."""
        try:
            if out is None and arena is not None:
                out = arena.take(e.size)
            return delta.decode(data, base, e.lane, f"{label}: delta {e.oid} on remote {self.name}", out, e.codec)
        except CorruptObject as err:
            raise RemoteCorrupt(f"{err}; nothing was written: {self._mend()}") from None


def _via(label: str, e: rc.Entry) -> str:
    """The label of a read of delta e's base: what a damaged chunk there is found in names that version too."""
    return f"{label}, through its deltas' base {e.base}"


def rebuilt_wrong(rb: Rebuilder, oid: str, digest: str, label: str) -> RemoteCorrupt:
    """The error for an object rebuilt from its recipe that does not hash to its oid: the recipe, or a base
    its deltas read (whose ranges cannot be checked alone), is damaged."""
    r = rb._recipes.get(oid)
    bases = sorted({e.base for e in r.entries if e.kind == "d"}) if r else []
    also = f", or the version its deltas are based on ({', '.join(bases[:2])})," if bases else ""
    return RemoteCorrupt(
        f"{label}: rebuilt from {rb.store.where(rc.rel(oid))} on remote {rb.name}, it hashes to xxh128:{digest}, "
        f"not to its oid: that chunk list{also} is corrupt; nothing was placed in the cache or workspace: run "
        f"'mvc verify -r {rb.name} --repair --all-tags' on a machine whose cache holds them (a push finds the chunk "
        "list sound and sends nothing)"
    )


class _Arena:
    """A buffer handed out in consecutive slices until cleared; a slice that does not fit is new memory."""

    def __init__(self, size: int):
        self.view = memoryview(bytearray(size))
        self.at = 0

    def take(self, n: int) -> memoryview | bytearray:
        at = -(-self.at // 64) * 64  # every slice aligned for any lane width
        if at + n > len(self.view):
            return bytearray(n)
        self.at = at + n
        return self.view[at : self.at]

    def clear(self) -> None:
        self.at = 0


_Part = tuple[str, str, int, int]  # ("file", a path here, or "store", a name on the store; offset; bytes)


class _Sequence:
    """Parts of a rebuilder's files (:meth:`Rebuilder._base_parts`) read one after another into the caller's
    views, each opened at its first read and closed at its last; bytes read from the store are counted."""

    def __init__(self, rb: Rebuilder, parts: list[_Part], label: str, tally: _Tally):
        self.rb, self.parts, self.label, self.tally = rb, list(reversed(parts)), label, tally
        self.stream: RangeStream | None = None
        self.left = 0
        self.store, self.where, self.end = False, "", 0

    def read_full(self, view: memoryview) -> int:
        """Fill view; fewer bytes only where the parts end, or one of them is cut short."""
        got = 0
        while got < len(view):
            if self.stream is None:
                if not self.parts:
                    break
                self._open(*self.parts.pop())
            assert self.stream is not None
            try:
                k = self.stream.readinto(view[got : got + min(len(view) - got, self.left)])
            except RemoteObjectMissing:  # (a store that reads at the first read, not at the open)
                raise self.rb._gone(self.label, self.where) from None
            if self.store:
                self.tally.add(k)
            got += k
            self.left -= k
            if not self.left or not k:
                self.stream.close()
                self.stream = None
                if not k and self.store:  # (a file of the cache's, checked whole, ends where its size says)
                    raise self.rb.cut_short(self.label, self.where, self.end)
                if not k:
                    self.parts.clear()  # what follows would land in the wrong place
                    break
        return got

    def _open(self, kind: str, where: str, at: int, n: int) -> None:
        self.left, self.store, self.where, self.end = n, kind == "store", where, at + n
        self.stream = _open_part(self.rb, (kind, where, at, n), self.label)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


def _open_part(rb: Rebuilder, part: _Part, label: str) -> RangeStream:
    """A stream of one part of a rebuilder's files (:meth:`Rebuilder._base_parts`): the cache's file, or a store's
    range (RemoteCorrupt naming label when it is not there)."""
    kind, where, at, n = part
    if kind == "file":
        return FileRange(os.open(where, os.O_RDONLY), at, at + n)
    try:
        return rb.store.read_stream(where, at, at + n)
    except RemoteObjectMissing:
        raise rb._gone(label, where) from None


class _Pair:
    """What a piece's runs of deltas need to be patched by two threads (:meth:`Rebuilder._patch_pair`): the
    helper thread, the file's hash, and where the piece starts."""

    def __init__(self, helper: Helper, behind: HashBehind, start: int, stop: threading.Event):
        self.helper, self.behind, self.start, self.stop = helper, behind, start, stop
        self.clear = False  # whether the piece's bytes before its run of deltas are in the file


class _Frames:
    """The frames of a run of deltas (``data``) decoded once each, for two threads taking turns over their windows
    (:meth:`Rebuilder._patch_pair`): a thread that starts a delta decodes it unless the other did, and the next
    one too, ahead (the other thread's wait is then on a decode already done); a frame is let go once each thread
    that takes windows of its delta is past it."""

    def __init__(self, run: list[rc.Entry], data: list[bytes | memoryview], where: str, users: list[int]):
        self.run, self.data, self.where, self.users = run, data, where, users  # users: threads taking each delta
        self.lock = threading.Lock()
        self.ready: dict[int, threading.Event] = {}
        self.got: dict[int, delta.Frame | BaseException] = {}

    def get(self, k: int) -> delta.Frame:
        self._decode(k)
        if k + 1 < len(self.run):
            self._decode(k + 1)
        self.ready[k].wait()
        got = self.got[k]
        if isinstance(got, BaseException):
            raise got
        return got

    def release(self, k: int) -> None:
        """A thread is past delta k (k < 0: none): the frame goes once no thread needs it."""
        if k < 0:
            return
        with self.lock:
            self.users[k] -= 1
            if self.users[k] <= 0:
                self.got.pop(k, None)

    def _decode(self, k: int) -> None:
        with self.lock:
            if k in self.ready:
                return  # (decoded, or being decoded by the other thread)
            self.ready[k] = threading.Event()
        e = self.run[k]
        try:
            self.got[k] = delta.Frame(self.data[k], e.size, e.lane, self.where.format(e.oid), e.codec)
        except BaseException as err:  # (raised to each thread that takes it)
            self.got[k] = err
        finally:
            self.ready[k].set()


class _Positional:
    """Parts of a rebuilder's files read where the caller says, by any of ``users`` threads, each reading forward
    (a store that reads through descriptors: positional reads; any other store: by one thread, in order): each
    opened at its first read, all closed at the end; bytes read from the store are counted. A ``_Layer`` among
    them is let go once every thread has read past it."""

    def __init__(self, rb: Rebuilder, parts: list[_Part | _Layer], label: str, tally: _Tally, users: int = 2):
        self.rb, self.parts, self.label, self.tally, self.users = rb, parts, label, tally, users
        self.starts = list(itertools.accumulate(map(_size, parts), initial=0))
        self.open: dict[int, RangeStream] = {}
        self.ends: dict[int, int] = {}  # where the last read of each store's response ended
        self.lock = threading.Lock()
        self.past: dict[int, int] = {}  # thread -> the first part it has not read past
        layers = [p for p in parts if isinstance(p, _Layer)]
        for a, b in itertools.pairwise(layers):
            a.next = b

    def read_at(self, pos: int, view: memoryview) -> int:
        """Fill view with the bytes from pos of the parts laid end to end; fewer only where they end."""
        self._passed(pos)
        got = 0
        while got < len(view):
            k = bisect.bisect_right(self.starts, pos + got) - 1
            if k >= len(self.parts):
                break
            part = self.parts[k]
            skip = pos + got - self.starts[k]
            want = min(len(view) - got, _size(part) - skip)
            if isinstance(part, _Layer):
                got += part.read(skip, view[got : got + want], self)
                continue
            kind, where, at, n = part
            step = self._read(k, at + skip, view[got : got + want])
            if kind == "store":
                self.tally.add(step)
            got += step
            if step < want:
                if kind == "store":
                    raise self.rb.cut_short(self.label, where, at + n)
                break
        return got

    def _passed(self, pos: int) -> None:
        """The calling thread reads from pos on: the layers before it it is past (reads go forward)."""
        me = threading.get_ident()
        k = self.past.get(me, 0)
        while k < len(self.parts) and self.starts[k + 1] <= pos:
            part = self.parts[k]
            if isinstance(part, _Layer):
                part.passed(self.users)
            k += 1
        self.past[me] = k

    def _read(self, k: int, offset: int, view: memoryview) -> int:
        """Bytes of part k's file from offset into view: positional where it is a file here; else (a store's
        response, read in order by one thread: ``users`` 1) from where the last read of it ended, the part opened
        again where a read starts elsewhere."""
        part = self.parts[k]
        assert isinstance(part, tuple)  # (a layer reads through its own parts)
        kind, where, at, n = part
        with self.lock:
            stream = self.open.get(k)
            if stream is None or (not isinstance(stream, FileRange) and self.ends.get(k) != offset):
                if stream is not None:
                    stream.close()
                stream = self.open[k] = _open_part(self.rb, (kind, where, offset, at + n - offset), self.label)
        if isinstance(stream, FileRange):
            return stream.read_at(offset, view)
        got = 0
        while got < len(view):
            try:
                step = stream.readinto(view[got:])
            except RemoteObjectMissing:  # (a store that reads at the first read, not at the open)
                raise self.rb._gone(self.label, where) from None
            if not step:
                break
            got += step
        self.ends[k] = offset + got
        return got

    def close(self) -> None:
        with self.lock:
            for stream in self.open.values():
                stream.close()
            self.open.clear()
        for part in self.parts:
            if isinstance(part, _Layer):
                part.release()


class _Below:
    """What a group of ``_Layer``s reads, the deltas of one base whose base ranges adjoin: ``parts``, laid end to
    end from byte ``origin`` of that base. They share one ``_Positional`` (one response of a store's range for all
    of them, not one each), made at the first read of any of them and closed once each has let go."""

    def __init__(self, parts: list[_Part | _Layer], origin: int, layers: int):
        self.parts, self.origin, self.left = parts, origin, layers
        self.lock = threading.Lock()
        self.source: _Positional | None = None

    def open(self, above: _Positional, e: rc.Entry) -> _Positional:
        with self.lock:
            if self.source is None:
                self.source = _Positional(above.rb, self.parts, _via(above.label, e), above.tally, above.users)
            return self.source

    def release(self) -> None:
        """One of the layers let go."""
        with self.lock:
            self.left -= 1
            source = self.source if self.left <= 0 else None
            if source is not None:
                self.source = None
        if source is not None:
            source.close()


def _shared(layers: Iterable[_Layer]) -> list[_Below]:
    """The groups below layers, each once, in order."""
    return list({id(p.below): p.below for p in layers}.values())


class _Layer:
    """Bytes [lo, hi) of delta e, an entry of a base that is itself a delta version: read from e's own base
    (``below``, shared with the layers of the deltas beside it: byte e.base_offset + lo of that base is byte
    ``shift`` of its parts), e's changes added on the way. The frame (``data``, read and checked by
    :meth:`Rebuilder._fill`) is decoded once, at the first read, for every thread; each thread adds with an adder
    of its own, reading forward. Reads fall on whole lanes (:func:`_aligned`)."""

    def __init__(self, e: rc.Entry, lo: int, hi: int, below: _Below, shift: int):
        self.e, self.lo, self.hi, self.below, self.shift = e, lo, hi, below, shift
        self.data: bytes | memoryview | None = None
        self.where = ""
        self.lock = threading.Lock()
        self.source: _Positional | None = None
        self.gone = False  # let go (its share of below too)
        self.frame: delta.Frame | None = None
        self.adders: dict[int, Callable[[memoryview, int], None]] = {}
        self.readers = 0  # threads past it
        self.next: _Layer | None = None  # the next layer of the same parts, decoded ahead

    def read(self, off: int, view: memoryview, above: _Positional) -> int:
        """Bytes [lo + off, lo + off + len(view)) of the delta's target into view (all of them, or
        RemoteCorrupt)."""
        e = self.e
        with self.lock:
            self._open(above)
            source, frame = self.source, self.frame
        assert source is not None and frame is not None
        if self.next is not None:
            self.next.ahead(above)
        at = e.base_offset + self.lo + off
        if source.read_at(self.shift + off, view) != len(view):
            raise above.rb._short_base(e, at, at + len(view), above.label)
        me = threading.get_ident()
        add = self.adders.get(me)
        if add is None:
            add = self.adders[me] = frame.adder()
        add(view, (self.lo + off) // e.lane)
        return len(view)

    def ahead(self, above: _Positional) -> None:
        """Decode the frame now unless a thread did or does: the thread that reads it first (the other, taking the
        next window) then finds it ready rather than waiting for this one's decode."""
        if self.source is None and self.lock.acquire(blocking=False):
            try:
                self._open(above)
            finally:
                self.lock.release()

    def _open(self, above: _Positional) -> None:
        """The frame decoded and the source below made, once (the lock held)."""
        if self.source is None:
            assert self.data is not None, "a layer is filled before it is read, and read before it is let go"
            e = self.e
            self.frame = delta.Frame(self.data, e.size, e.lane, self.where, e.codec)
            self.source = self.below.open(above, e)

    def passed(self, users: int) -> None:
        with self.lock:
            self.readers += 1
            done = self.readers >= users
        if done:
            self.release()

    def release(self) -> None:
        """Let go of the decoded frame, and of its share of below (closed once every layer of it let go)."""
        with self.lock:
            self.source, self.frame, self.data = None, None, None
            self.adders.clear()
            first, self.gone = not self.gone, True
        if first:
            self.below.release()


def _size(part: _Part | _Layer) -> int:
    return part.hi - part.lo if isinstance(part, _Layer) else part[3]


def _leaves(parts: list[_Part | _Layer]) -> int:
    """How many files parts read, at every level."""
    return sum(isinstance(p, tuple) for p in parts) + sum(
        _leaves(b.parts) for b in _shared(p for p in parts if isinstance(p, _Layer))
    )


def _cuts(run: list[rc.Entry], size: int) -> list[int]:
    """Where the windows of a run of deltas (:func:`delta.windows`, of at most size bytes) start and end in their
    base."""
    return sorted({e.base_offset + c for e in run for w in delta.windows(e.size, e.lane, size) for c in w})


def _aligned(parts: list[_Part | _Layer], origin: int, cuts: list[int]) -> bool:
    """Whether reads of parts (laid end to end from byte origin of their object) that start and end at cuts fall
    on whole lanes of every ``_Layer``'s delta, at every level below."""
    at = origin
    below: dict[int, tuple[_Below, set[int]]] = {}  # the cuts of each group below, in its base
    for p in parts:
        end = at + _size(p)
        if isinstance(p, _Layer):
            e = p.e
            inside = cuts[bisect.bisect_left(cuts, at) : bisect.bisect_right(cuts, end)]
            if any((c - e.at) % e.lane for c in inside):
                return False
            # (at and end are cuts below too: a read of the group's parts stops where each layer's range ends)
            shift = e.base_offset + p.lo - at  # byte c of this object is byte c + shift of e's base
            below.setdefault(id(p.below), (p.below, set()))[1].update(c + shift for c in (at, end, *inside))
        at = end
    return all(_aligned(b.parts, b.origin, sorted(cs)) for b, cs in below.values())


def _base_follows(a: rc.Entry, b: rc.Entry, skip: Container[rc.Entry]) -> bool:
    """Whether delta b reads the bytes of the same base right after delta a's."""
    return (
        b.kind == "d"
        and b.codec in delta.CODECS
        and b not in skip
        and (b.base, b.depth, b.base_offset) == (a.base, a.depth, a.base_offset + a.size)
    )


class _Either:
    """Entries in either of two containers."""

    def __init__(self, a: Container[rc.Entry], b: Container[rc.Entry]):
        self.a, self.b = a, b

    def __contains__(self, e: object) -> bool:
        return e in self.a or e in self.b


class _Tally:
    """Bytes read from the store, counted from several threads; and the bytes of bases that the deltas of one
    object read, at every depth, bounded by its size (``BASE_READS``): a crafted chain in which each small delta
    reads a little of a large delta, which decodes whole each time, would otherwise read without end."""

    def __init__(self, size: int = 0) -> None:
        self.n = 0
        self.based = 0
        self.budget = BASE_READS * size + BASE_SLACK
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.n += n

    def base(self, n: int, rb: Rebuilder, label: str) -> None:
        with self.lock:
            self.based += n
            over = self.based > self.budget
        if over:
            raise RemoteCorrupt(
                f"{label}: on remote {rb.name}, its deltas read more than {self.budget} bytes of their bases (a chunk "
                "list crafted or damaged: small deltas each reading a little of a large one); nothing was written: "
                "push that version again from a machine that has it"
            )


def _write(fd: int, entries: list[rc.Entry], parts: list[bytes | memoryview | None], wrong: RemoteCorrupt) -> None:
    """The entries' bytes held in memory (None: already in the file) written at their places, one ``pwritev`` for
    each stretch of them; a part of the wrong size is refused (the file would not be what was hashed)."""
    group: list[bytes | memoryview] = []
    at = 0
    for e, part in zip(entries, parts, strict=True):
        if part is None:
            if group:
                fileio.pwritev_all(fd, group, at)
                group = []
            continue
        if len(part) != e.size:
            raise wrong
        if not group:
            at = e.at
        group.append(part)
    if group:
        fileio.pwritev_all(fd, group, at)


def _pread(path: str, offset: int, size: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)
