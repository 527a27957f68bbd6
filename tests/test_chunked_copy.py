"""``Rebuilder.rebuild`` on a store that copies in the kernel (a directory remote): the chunks it copies are
joined across pieces into large copies made by one thread, chunks of versions in the cache are written from
memory beside them, the file is hashed behind them all; every check of a damaged store still holds.

Packs and recipes are made by hand in a ``DirStore`` (no repository), with ``PIECE`` and ``COPY`` lowered so
that a file of a few MiB spans many pieces, copies and packs.
"""

from __future__ import annotations

import itertools
import os
import random
import threading

import pytest
import xxhash

from mvc.errors import RemoteCorrupt
from mvc.objects import chunked, chunker, pack, readplan
from mvc.objects import recipe as rc
from mvc.objects.odb import ODB
from mvc.storage.directory import DirStore

PIECE = 64 << 10
COPY = 256 << 10
PACKS = ["a1" * 16, "b2" * 16, "c3" * 16]
AWAY = "d4" * 16  # a pack the store does not have


def oid_of(data: bytes | memoryview) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


class World:
    """An object of chunks spread over three packs: stretches of each pack in turn, a stretch of pack 0 that
    follows on in the pack what came before it but not in the file, a gap of junk inside pack 2, and one chunk
    that appears twice in the file."""

    def __init__(self, root, local: list[chunker.Chunk] | None = None, base: bytes = b""):
        rnd = random.Random(12)
        self.store = DirStore(str(root), str(root))
        os.makedirs(root / "packs")
        blobs = [rnd.randbytes(rnd.randrange(4 << 10, 40 << 10)) for _ in range(120)]
        packs: dict[str, bytearray] = {name: bytearray() for name in PACKS}
        layout = [0] * 40 + [1] * 30 + [0] * 20 + [2] * 30
        entries: list[rc.Entry] = []
        at = 0
        parts: list[bytes] = []

        def put(name: str, data: bytes, offset: int) -> None:
            nonlocal at
            entries.append(rc.Entry("c", oid_of(data), at, len(data), name, offset, len(data)))
            parts.append(data)
            at += len(data)

        for i, (blob, p) in enumerate(zip(blobs, layout, strict=True)):
            if i == 105:
                packs[PACKS[2]] += b"junk" * 1000  # chunks either side of it are read apart
            if local is not None and i == 60:  # chunks of a version in the cache, in a pack the store lacks
                for c in local:
                    put(AWAY, base[c.offset : c.offset + c.size], c.offset)
            put(PACKS[p], blob, len(packs[PACKS[p]]))
            packs[PACKS[p]] += blob
        again = entries[3]  # the same chunk again, read from where it is
        entries.append(again._replace(at=at))
        parts.append(blobs[3])
        for name, data in packs.items():
            (root / pack.pack_rel(name)).write_bytes(data)
        self.data = b"".join(parts)
        self.oid = oid_of(self.data)
        self.recipe = rc.Recipe(len(self.data), [], entries)

    def rebuild(self, out, odb: ODB | None = None, local: list[str] = (), jobs: int = 3):
        rb = chunked.Rebuilder(self.store, odb, "origin")
        got: list[int] = []
        lock = threading.Lock()

        def progress(n: int) -> None:
            with lock:
                got.append(n)

        fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            digest, copied, sent = rb.rebuild(self.oid, self.recipe, fd, "model.bin", jobs, progress, local)
        finally:
            os.close(fd)
        return digest, copied, sent, sum(got)


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    monkeypatch.setattr(readplan, "PIECE", PIECE)
    monkeypatch.setattr(readplan, "LIGHT_PIECE", 4 * PIECE)
    monkeypatch.setattr(readplan, "COPY", COPY)


@pytest.fixture
def copies(monkeypatch):
    """Every kernel copy the store makes: (bytes, thread)."""
    made: list[tuple[int, int]] = []
    real = DirStore.copy_range_to

    def spy(self, rel, start, end, fd, at):
        made.append((end - start, threading.get_ident()))
        return real(self, rel, start, end, fd, at)

    monkeypatch.setattr(DirStore, "copy_range_to", spy)
    return made


def test_copies_are_joined_across_pieces_and_made_by_one_thread(tmp_path, copies):
    w = World(tmp_path / "store")
    digest, copied, sent, progressed = w.rebuild(tmp_path / "out")
    assert "xxh128:" + digest == w.oid and (tmp_path / "out").read_bytes() == w.data
    assert copied and sent == len(w.data) and progressed == len(w.data)
    pieces = len(readplan.pieces(w.recipe))
    # runs: pack 0, pack 1, pack 0 again, pack 2 before and after its junk, the repeated chunk; each cut at COPY
    assert 6 <= len(copies) < pieces / 2, (len(copies), pieces)
    assert max(n for n, _ in copies) > 2 * PIECE and all(n <= COPY for n, _ in copies)
    assert len({thread for _, thread in copies[1:]}) == 1  # the first tells whether the kernel copies at all


def test_chunks_of_the_cache_are_written_beside_the_copies(tmp_path, copies):
    """The cache holds a version whose chunks the object shares: they are read there (their pack is not on the
    store) and written from memory by other threads while one thread copies the rest."""
    base = random.Random(7).randbytes(1 << 20)
    with chunker.Mapped(_file(tmp_path / "base", base)) as m:
        local = list(chunker.cut(m.view, chunker.segments(m.view, m.size)))
    assert len(local) > 4
    odb = ODB(str(tmp_path / "cache"))
    base_oid = odb.add_bytes(base)
    w = World(tmp_path / "store", local, base)
    digest, copied, sent, progressed = w.rebuild(tmp_path / "out", odb, [base_oid])
    assert "xxh128:" + digest == w.oid and (tmp_path / "out").read_bytes() == w.data
    assert copied and progressed == len(w.data)
    assert sent == len(w.data) - len(base)  # nothing of the cached version was read from the store
    assert len({thread for _, thread in copies[1:]}) == 1


def test_a_pack_cut_short_or_gone_is_refused_past_the_first_copy(tmp_path):
    w = World(tmp_path / "store")
    last = tmp_path / "store" / pack.pack_rel(PACKS[2])
    whole = last.read_bytes()
    last.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(RemoteCorrupt, match="cut short") as e:
        w.rebuild(tmp_path / "out1")
    assert pack.pack_rel(PACKS[2]) in str(e.value)
    last.write_bytes(whole)
    (tmp_path / "store" / pack.pack_rel(PACKS[1])).unlink()
    with pytest.raises(RemoteCorrupt, match="which is not there") as e:
        w.rebuild(tmp_path / "out2", jobs=1)
    assert pack.pack_rel(PACKS[1]) in str(e.value)
    assert not [t for t in threading.enumerate() if t.name.startswith("mvc-remote")]  # the hash stopped too


@pytest.mark.parametrize("refused_from", [0, 3])
def test_copies_the_kernel_refuses_go_through_memory(tmp_path, monkeypatch, refused_from):
    """copy_file_range cannot copy between these files (another filesystem): from the first copy on, the
    rebuild is made in memory as from any other store; from a later one, those copies are read into memory."""
    w = World(tmp_path / "store")
    calls = []
    real = DirStore.copy_range_to

    def refusing(self, rel, start, end, fd, at):
        calls.append(rel)
        return -1 if len(calls) > refused_from else real(self, rel, start, end, fd, at)

    monkeypatch.setattr(DirStore, "copy_range_to", refusing)
    digest, copied, sent, progressed = w.rebuild(tmp_path / "out")
    assert "xxh128:" + digest == w.oid and (tmp_path / "out").read_bytes() == w.data
    assert copied == bool(refused_from) and progressed == len(w.data)
    assert sent >= len(w.data)  # the junk between runs may be read too
    assert len(calls) == (1 if not refused_from else len(readplan.copies(w.recipe.entries)))


def _file(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_deltas_of_adjoining_base_ranges_share_one_read_of_their_base(monkeypatch):
    """A piece's deltas whose base ranges follow one another in one base, at one depth, read that base once;
    another base, a gap, another depth or RUN_MAX starts a new read."""
    monkeypatch.setattr(readplan, "RUN_MAX", 100)

    def d(at: int, size: int, base: str = "B", base_offset: int | None = None, depth: int = 1) -> rc.Entry:
        return rc.Entry("d", f"x{at}", at, size, "p", at, 1, 2, depth, base, at if base_offset is None else base_offset)

    entries = [
        d(0, 10),
        d(10, 10),
        d(20, 10, base_offset=40),  # a gap in the base
        d(30, 10, base="C", base_offset=30),
        d(40, 10, base="C", base_offset=40, depth=2),
        d(50, 40, base="C", base_offset=50, depth=2),
        d(90, 60, base="C", base_offset=90, depth=2),  # to 150: more than RUN_MAX from 40
    ]
    got = list(readplan.base_runs(entries, [(i, b"") for i in range(len(entries))]))
    assert [[i for i, _ in run] for run in got] == [[0, 1], [2], [3], [4, 5], [6]]
    assert list(readplan.base_runs(entries, [])) == []


class SparseWorld:
    """A new version of a base object of 2-byte lanes, stored as sparse deltas (and one dense one) against it, the
    base stored on the store as ``how`` says: chunks lying in one pack as in the object, chunks in packs in
    another order, whole, or only in the local cache."""

    def __init__(self, root, how: str, delta_size: int = 48 << 10):
        from mvc.objects import delta, layout

        rnd = random.Random(7)
        self.store = DirStore(str(root), str(root))
        os.makedirs(root / "packs")
        self.base = rnd.randbytes(600 << 10)
        new = bytearray(self.base)
        for _ in range(900):  # about 1 % of the lanes
            i = rnd.randrange(len(new) // 2) * 2
            new[i] ^= 1 + rnd.randrange(255)
        self.data = bytes(new)
        self.base_oid, self.oid = oid_of(self.base), oid_of(self.data)
        # chunks of uneven sizes, cut where deltas start too (as a writer's tensor blocks are), but for two places:
        # the deltas' base ranges there straddle a chunk
        cuts = {*range(0, len(self.base), delta_size), *(rnd.randrange(len(self.base)) for _ in range(20))}
        cuts -= {3 * delta_size, 9 * delta_size}
        cuts = sorted({0, *cuts, len(self.base)})
        chunks = [(a, self.base[a:b]) for a, b in itertools.pairwise(cuts)]
        if how in ("straight", "shuffled"):
            order = list(range(len(chunks)))
            if how == "shuffled":
                rnd.shuffle(order)
            blob, entries, where = bytearray(), [], {}
            for k in order:
                where[k] = len(blob)
                blob += chunks[k][1]
            for k, (at, data) in enumerate(chunks):
                entries.append(rc.Entry("c", oid_of(data), at, len(data), PACKS[0], where[k], len(data)))
            (root / pack.pack_rel(PACKS[0])).write_bytes(blob)
            self._put(root, rc.rel(self.base_oid), rc.render(len(self.base), [], entries))
        elif how == "whole":
            self._put(root, layout.object_rel(self.base_oid), self.base)
        blob, entries = bytearray(), []
        for at in range(0, len(self.data), delta_size):
            new_part, old = self.data[at : at + delta_size], self.base[at : at + delta_size]
            codec = "zd" if at == 4 * delta_size else "zs"
            d = delta.encode(new_part, old, 2) if codec == "zd" else delta.encode_sparse(new_part, old, 2)
            entries.append(
                rc.Entry("d", oid_of(d), at, len(new_part), PACKS[1], len(blob), len(d), 2, 1, self.base_oid, at, codec)
            )
            blob += d
        (root / pack.pack_rel(PACKS[1])).write_bytes(blob)
        self.recipe = rc.Recipe(len(self.data), [], entries)

    @staticmethod
    def _put(root, rel: str, data: bytes) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)

    def rebuild(self, out, odb: ODB | None = None) -> str:
        rb = chunked.Rebuilder(self.store, odb, "origin")
        fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            return rb.rebuild(self.oid, self.recipe, fd, "model.bin", 2)[0]
        finally:
            os.close(fd)


@pytest.mark.parametrize("how", ["straight", "shuffled", "whole", "cache"])
def test_sparse_deltas_patch_their_base_where_it_is_read(tmp_path, monkeypatch, how):
    """A run of deltas (sparse, and the dense one) reads its base in order through a small window, patching it as
    it goes: from the packs of the base's chunks in one stream per stretch lying there as in the object
    (``read_stream``), or from the cache's copy. A base stored whole as an object (no pack named by its oid) is
    read into the piece's buffer and patched there. Every way rebuilds the same bytes."""
    w = SparseWorld(tmp_path / "store", how)
    odb = None
    if how == "cache":
        odb = ODB(str(tmp_path / "cache"))
        odb.add_bytes(w.base)
    into: list[int] = []  # bytes of the base read into a piece's buffer
    copied: list[int] = []  # bytes of the base's packs read into memory of their own
    streams: list[int] = []  # bytes of the base's pack asked of read_stream, one figure per stream
    real_into, real_range, real_stream = DirStore.get_range_into, DirStore.get_range, DirStore.read_stream

    def spy_into(store, rel, start, buf):
        into.append(len(buf))
        return real_into(store, rel, start, buf)

    def spy_range(store, rel, start, end):
        data = real_range(store, rel, start, end)
        copied.append(len(data) if rel == pack.pack_rel(PACKS[0]) else 0)
        return data

    def spy_stream(store, rel, start, end):
        streams.append(end - start if rel == pack.pack_rel(PACKS[0]) else 0)
        return real_stream(store, rel, start, end)

    monkeypatch.setattr(DirStore, "get_range_into", spy_into)
    monkeypatch.setattr(DirStore, "get_range", spy_range)
    monkeypatch.setattr(DirStore, "read_stream", spy_stream)
    assert w.rebuild(tmp_path / "out", odb) == w.oid[len("xxh128:") :]
    assert (tmp_path / "out").read_bytes() == w.data
    if how == "straight":  # one stream per stretch of the base's chunks lying in the pack in order
        assert sum(streams) > len(w.base) * 0.9 and not sum(copied) and not into, (streams, copied, into)
        assert max(streams) > len(w.base) * 0.1
    elif how == "shuffled":  # the same bytes, one stream per chunk
        assert sum(streams) > len(w.base) * 0.6 and len(streams) > 10, (streams, copied)
    elif how == "whole":
        assert sum(into) >= len(w.base) * 0.8 and not sum(copied) and not streams
    else:
        assert not into and not sum(copied) and not streams


def test_a_sparse_delta_whose_base_comes_short_is_refused(tmp_path):
    w = SparseWorld(tmp_path / "store", "whole")
    from mvc.objects import layout

    (tmp_path / "store" / layout.object_rel(w.base_oid)).write_bytes(w.base[:-1000])
    with pytest.raises(RemoteCorrupt, match="which is shorter"):
        w.rebuild(tmp_path / "out")
    w2 = SparseWorld(tmp_path / "store2", "whole")
    os.unlink(tmp_path / "store2" / layout.object_rel(w2.base_oid))
    with pytest.raises(RemoteCorrupt, match="which is not there"):
        w2.rebuild(tmp_path / "out2")


@pytest.mark.parametrize("prefetch", [chunked.PREFETCH, 0])
def test_a_rebuild_reads_few_deltas_first_in_one_request(tmp_path, monkeypatch, prefetch):
    """Deltas that take at most PREFETCH bytes are read (and checked) before the pieces, in one ranged read per
    run of a pack, instead of one read per piece; more than that, and each piece reads its own."""
    monkeypatch.setattr(chunked, "PREFETCH", prefetch)
    w = SparseWorld(tmp_path / "store", "straight")
    reads: list[tuple[int, int]] = []
    real = DirStore.get_range

    def spy(store, rel, start, end):
        if rel == pack.pack_rel(PACKS[1]):
            reads.append((start, end))
        return real(store, rel, start, end)

    monkeypatch.setattr(DirStore, "get_range", spy)
    assert w.rebuild(tmp_path / "out") == w.oid[len("xxh128:") :]
    assert (tmp_path / "out").read_bytes() == w.data
    deltas = [e for e in w.recipe.entries if e.kind == "d"]
    if prefetch:
        assert reads == [(0, deltas[-1].offset + deltas[-1].stored)]
    else:  # each piece reads its own, one read per run of them
        assert 1 < len(reads) < len(deltas), reads


def test_a_damaged_delta_read_first_is_refused_naming_it(tmp_path):
    w = SparseWorld(tmp_path / "store", "straight")
    path = tmp_path / "store" / pack.pack_rel(PACKS[1])
    data = bytearray(path.read_bytes())
    e = [e for e in w.recipe.entries if e.kind == "d"][3]
    data[e.offset + 5] ^= 0xFF
    path.write_bytes(data)
    with pytest.raises(RemoteCorrupt, match=f"delta {e.oid}"):
        w.rebuild(tmp_path / "out")


def test_pieces_hold_piece_bytes_in_memory_and_more_through_the_window(monkeypatch):
    """A piece ends once it holds PIECE bytes of entries read into memory, or spans LIGHT_PIECE bytes in all:
    entries written through the window (sparse deltas, a remote's chunks) make pieces of fewer, larger reads."""
    monkeypatch.setattr(readplan, "PIECE", 300)
    monkeypatch.setattr(readplan, "LIGHT_PIECE", 1000)
    r = rc.Recipe(2000, [], [rc.Entry("c", f"c{i}", 100 * i, 100, "p", 100 * i, 100) for i in range(20)])
    ends = lambda light: [b for _, b in readplan.pieces(r, light)]  # noqa: E731
    assert ends(None) == ends(lambda e: False) == [300, 600, 900, 1200, 1500, 1800, 2000]
    assert ends(lambda e: True) == [1000, 2000]
    assert ends(lambda e: int(e.oid[1:]) % 2 == 0) == [600, 1200, 1800, 2000]


@pytest.mark.parametrize("in_pairs", [False, True])
def test_a_piece_through_the_window_stops_when_another_fails(tmp_path, monkeypatch, in_pairs):
    """One piece's delta is damaged: the rebuild raises its error, and a piece still writing through the window
    stops at its next window instead of writing the rest of the file. In pairs (pieces in order, two threads
    taking turns, as on a local disk), nothing after the damaged delta's piece is written."""
    import threading
    import time

    from mvc.objects import delta
    from mvc.storage import parallel

    real_helper = parallel.Helper
    monkeypatch.setattr(chunked, "PREFETCH", 0)  # each piece reads its own deltas, the damaged one among them
    monkeypatch.setattr(chunked, "WINDOW", 64)  # thousands of windows a piece
    monkeypatch.setattr(chunked, "PAIR_WINDOW", 64)
    w = SparseWorld(tmp_path / "store", "straight")
    if in_pairs and not delta.compiled():
        pytest.skip("mvc.objects._patch was not compiled at install")
    if not in_pairs:  # pieces in parallel, as on a remote store
        monkeypatch.setattr(chunked.Rebuilder, "_mostly_sparse", lambda *a: False)
    made: list[object] = []
    monkeypatch.setattr(parallel, "Helper", lambda: made.append(1) or real_helper())
    pieces = readplan.pieces(w.recipe, lambda e: e.codec == "zs")
    assert len(pieces) >= 2
    bad = next(e for e in w.recipe.entries if e.at >= pieces[1][0] and e.codec == "zs")
    path = tmp_path / "store" / pack.pack_rel(bad.pack)
    data = bytearray(path.read_bytes())
    data[bad.offset + 3] ^= 0xFF
    path.write_bytes(data)
    writes: list[int] = []
    real = os.pwritev
    monkeypatch.setattr(os, "pwritev", lambda fd, parts, at: writes.append(at) or real(fd, parts, at))
    with pytest.raises(RemoteCorrupt, match=f"delta {bad.oid}"):
        w.rebuild(tmp_path / "out")
    deadline = time.monotonic() + 30
    while any(t.name.startswith("mvc-remote") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(made) == in_pairs
    if in_pairs:
        assert writes and max(writes) < next(end for start, end in pieces if start <= bad.at < end)
    else:
        first = pieces[0][1] - pieces[0][0]
        assert len(writes) < first // 64 // 2, (len(writes), first // 64)


# -- two threads taking turns (a local disk: Rebuilder._patch_pair) ---------------------------------------------------
def paired(monkeypatch) -> list[int]:
    """Skip without the compiled adder; else the sizes of the runs of deltas patched by two threads from now on."""
    from mvc.objects import delta

    if not delta.compiled():
        pytest.skip("mvc.objects._patch was not compiled at install")
    sizes: list[int] = []
    real = chunked.Rebuilder._patch_pair
    monkeypatch.setattr(
        chunked.Rebuilder,
        "_patch_pair",
        lambda self, run, *a: sizes.append(sum(e.size for e in run)) or real(self, run, *a),
    )
    return sizes


@pytest.mark.parametrize("how", ["straight", "shuffled", "whole", "cache"])
def test_two_threads_taking_turns_rebuild_the_exact_bytes(tmp_path, monkeypatch, how):
    """On a local disk a run of sparse deltas is patched by two threads taking every other window, each read where
    the base lies (one pack, packs in another order, the base whole, the cache's copy), each window hashed in its
    turn: the file and its hash are exact, whatever the window, and a window larger than a write's most is
    written in several calls. (A base stored whole, as an object, is read into a piece's buffer instead.)"""
    from mvc.storage import fileio

    sizes = paired(monkeypatch)
    writes: list[int] = []
    real_pwritev = os.pwritev

    def pwritev(fd, buffers, offset):
        writes.append(sum(len(b) for b in buffers))
        return real_pwritev(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", pwritev)
    for window, most in ((64, 1 << 20), (1000, 300), (chunked.WINDOW, 1 << 20), (chunked.PAIR_WINDOW, 1 << 20)):
        monkeypatch.setattr(chunked, "WINDOW", window)
        monkeypatch.setattr(chunked, "PAIR_WINDOW", window)
        monkeypatch.setattr(fileio, "WRITE_MAX", most)
        writes.clear()
        w = SparseWorld(tmp_path / f"store-{window}", how)
        odb = None
        if how == "cache":
            odb = ODB(str(tmp_path / f"cache-{window}"))
            odb.add_bytes(w.base)
        out = tmp_path / f"out-{window}"
        assert w.rebuild(out, odb) == w.oid[len("xxh128:") :]
        assert out.read_bytes() == w.data
        assert writes and max(writes) <= most  # (no write asks the file system for a folio larger than that)
    assert bool(sizes) == (how != "whole")


@pytest.mark.parametrize("thread", ["mvc-helper", "mvc-remote"])
def test_in_turns_the_first_error_is_raised_whichever_thread_met_it(tmp_path, monkeypatch, thread):
    """One thread meets a damaged window: the rebuild raises that error, not the WorkStopped of the other thread,
    which stops at its next turn."""
    paired(monkeypatch)
    monkeypatch.setattr(chunked, "WINDOW", 64)
    monkeypatch.setattr(chunked, "PAIR_WINDOW", 64)
    w = SparseWorld(tmp_path / "store", "straight")
    real = chunked._Positional.read_at
    met: list[str] = []

    def read_at(self, pos, view):
        if threading.current_thread().name.startswith(thread) and pos >= 3000:
            met.append(thread)
            raise RemoteCorrupt(f"damaged for {thread}")
        return real(self, pos, view)

    monkeypatch.setattr(chunked._Positional, "read_at", read_at)
    with pytest.raises(RemoteCorrupt, match=f"damaged for {thread}"):
        w.rebuild(tmp_path / "out")
    assert met


def test_in_turns_a_failure_before_the_first_window_is_raised_not_waited_for(tmp_path, monkeypatch):
    """The helper fails before it takes a window (no memory for its window): the rebuild raises that error at
    once; the piece's thread does not wait for a turn the helper never takes."""
    sizes = paired(monkeypatch)
    monkeypatch.setattr(chunked, "WINDOW", 64)
    monkeypatch.setattr(chunked, "PAIR_WINDOW", 64)
    w = SparseWorld(tmp_path / "store", "straight")
    real = chunked.Rebuilder._window

    def window(self, *size):
        if threading.current_thread().name == "mvc-helper":
            raise MemoryError("no window for the helper")
        return real(self, *size)

    monkeypatch.setattr(chunked.Rebuilder, "_window", window)
    result: list[BaseException | None] = []

    def go():
        try:
            w.rebuild(tmp_path / "out")
            result.append(None)
        except BaseException as e:
            result.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the rebuild waits for a turn the helper never takes"
    assert sizes and isinstance(result[0], MemoryError)


@pytest.mark.parametrize("in_pairs", [False, True])
def test_pieces_stop_once_another_work_item_failed(tmp_path, monkeypatch, in_pairs):
    """Another work item fails (the hash, a copy): pieces not yet begun are dropped, in pairs (one thread over
    every piece, in order) as with pieces in parallel."""
    import time

    from mvc.storage import parallel

    paired(monkeypatch)
    w = SparseWorld(tmp_path / "store", "whole")  # the base is a whole object: every delta from memory
    monkeypatch.setattr(chunked.Rebuilder, "_mostly_sparse", lambda *a: in_pairs)
    n = len(readplan.pieces(w.recipe))
    written: list[int] = []
    real = chunked.Rebuilder._entries

    def entries(self, *a, **k):
        time.sleep(0.05)
        written.append(1)
        return real(self, *a, **k)

    def run(self, stop):  # the hash fails at once
        time.sleep(0.02)
        raise RuntimeError("boom")

    monkeypatch.setattr(chunked.Rebuilder, "_entries", entries)
    monkeypatch.setattr(parallel.HashBehind, "run", run)
    with pytest.raises(RuntimeError, match="boom"):
        w.rebuild(tmp_path / "out")
    assert len(written) < n


def late_copy_world(root, tail: bool):
    """(store, recipe, data): two chunks copied in two runs (the second by the copy thread), then sparse deltas
    against a base in one pack; ``tail``: a third chunk after them, which extends the file early."""
    from mvc.objects import delta

    rnd = random.Random(5)
    store = DirStore(str(root), str(root))
    os.makedirs(root / "packs")
    base = rnd.randbytes(96 << 10)
    new = bytearray(base)
    for _ in range(200):
        i = rnd.randrange(len(new) // 2) * 2
        new[i] ^= 1 + rnd.randrange(255)
    a, b, c = rnd.randbytes(1000), rnd.randbytes(1000), rnd.randbytes(1000)
    data = a + b + bytes(new) + (c if tail else b"")
    (root / pack.pack_rel(PACKS[0])).write_bytes(base)
    base_oid = oid_of(base)
    (root / rc.rel(base_oid)).parent.mkdir(parents=True, exist_ok=True)
    (root / rc.rel(base_oid)).write_bytes(
        rc.render(len(base), [], [rc.Entry("c", base_oid, 0, len(base), PACKS[0], 0, len(base))])
    )
    (root / pack.pack_rel(PACKS[2])).write_bytes(a + b"junk" * 100 + b + b"junk" * 100 + c)
    entries = [
        rc.Entry("c", oid_of(a), 0, 1000, PACKS[2], 0, 1000),
        rc.Entry("c", oid_of(b), 1000, 1000, PACKS[2], 1400, 1000),
    ]
    blob = bytearray()
    for at in range(0, len(new), 48 << 10):
        d = delta.encode_sparse(bytes(new[at : at + (48 << 10)]), base[at : at + (48 << 10)], 2)
        entries.append(
            rc.Entry("d", oid_of(d), 2000 + at, 48 << 10, PACKS[1], len(blob), len(d), 2, 1, base_oid, at, "zs")
        )
        blob += d
    (root / pack.pack_rel(PACKS[1])).write_bytes(blob)
    if tail:
        entries.append(rc.Entry("c", oid_of(c), 2000 + len(new), 1000, PACKS[2], 2800, 1000))
    return store, rc.Recipe(len(data), [], entries), data


@pytest.mark.parametrize("tail", [False, True])
def test_in_turns_a_window_not_hashed_in_its_turn_is_read_back_only_once_written(tmp_path, monkeypatch, tail):
    """A copy before the run is still pending when its first window's turn comes (not hashed then); the copy ends
    before the next window's turn, whose thread must not read back the first window, which the other thread has
    not written yet: the file's hash is its bytes' (widened gaps: sleeps)."""
    import time

    from mvc.storage import parallel

    sizes = paired(monkeypatch)
    monkeypatch.setattr(chunked, "WINDOW", 4096)
    monkeypatch.setattr(chunked, "PAIR_WINDOW", 4096)
    store, recipe, data = late_copy_world(tmp_path / "store", tail)
    real_copy, real_write, real_feed = DirStore.copy_range_to, os.pwritev, parallel.HashBehind.feed

    def copy_range_to(self, rel, start, end, fd, at):
        if at == 1000:
            time.sleep(0.3)  # the copy thread's run is still pending when window 0 is fed
        return real_copy(self, rel, start, end, fd, at)

    def pwritev(fd, views, at):
        if at == 2000:
            time.sleep(1.0)  # window 0's thread is slow to write it after its turn
        return real_write(fd, views, at)

    def feed(self, view, at, start, clear=False):
        if at == 2000 + 4096:
            time.sleep(0.6)  # window 1's turn comes after the copy ended
        return real_feed(self, view, at, start, clear)

    monkeypatch.setattr(DirStore, "copy_range_to", copy_range_to)
    monkeypatch.setattr(os, "pwritev", pwritev)
    monkeypatch.setattr(parallel.HashBehind, "feed", feed)
    rb = chunked.Rebuilder(store, None, "origin")
    out = tmp_path / "out"
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        digest = rb.rebuild(oid_of(data), recipe, fd, "model.bin", 2)[0]
    finally:
        os.close(fd)
    assert sizes and out.read_bytes() == data
    assert digest == xxhash.xxh3_128_hexdigest(data)
