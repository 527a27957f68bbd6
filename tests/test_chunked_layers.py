"""``Rebuilder.rebuild`` of a version deep in a chain of fine-tunes, on a store that reads through descriptors (a
directory remote): each window's base bytes are read from the versions below it, every level's sparse changes
added on the way (``chunked._Layer``), by two threads taking turns or by one; where a window would cut a lane of
a delta below, or a level cannot be read so, the version is read into a piece's buffer as before. Every way gives
the same bytes, and every check of a damaged store still holds.

Packs and recipes are made by hand in a ``DirStore`` (no repository).
"""

from __future__ import annotations

import itertools
import os
import random
import weakref

import pytest
import xxhash
from test_chunked_copy import SparseWorld

from mvc.errors import RemoteCorrupt
from mvc.objects import chunked, delta, pack
from mvc.objects import recipe as rc
from mvc.objects.odb import ODB
from mvc.storage.directory import DirStore
from mvc.storage.store import RangeStream, Store

SEGMENT = 48 << 10
SIZE = 600 << 10


def oid_of(data: bytes | memoryview) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def pack_name(i: int) -> str:
    return f"{i:02x}" * 16


def put(root, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def tuned(rnd: random.Random, data: bytes) -> bytes:
    """About 1 % of the 2-byte lanes of data changed (a light fine-tune)."""
    new = bytearray(data)
    for _ in range(len(data) // 200):
        i = rnd.randrange(len(new) // 2) * 2
        new[i] ^= 1 + rnd.randrange(255)
    return bytes(new)


class Streamed(DirStore):
    """A directory store read as a remote store is: ranges in order, one request at a time (no positional reads,
    no kernel copies)."""

    copies_ranges = False

    def read_stream(self, rel: str, start: int, end: int) -> RangeStream:
        return Store.read_stream(self, rel, start, end)


class Chain:
    """v0 stored as chunks, then ``depth`` versions, each a fine-tune of the one before stored as sparse deltas
    against it (one segment of each kept as a chunk: a tensor stored whole inside a delta version). ``shifted``:
    the version just below the top cuts its deltas 2 bytes off the top's, in lanes of 4 bytes, so the top's
    windows fall inside its lanes."""

    def __init__(self, root, depth: int, shifted: bool = False, streamed: bool = False):
        rnd = random.Random(depth)
        self.root = root
        self.store = (Streamed if streamed else DirStore)(str(root), str(root))
        os.makedirs(root / "packs")
        self.versions = [rnd.randbytes(SIZE)]
        blob = self.versions[0]
        put(root, pack.pack_rel(pack_name(0)), blob)
        entries = [
            rc.Entry(
                "c", oid_of(blob[a : a + SEGMENT]), a, min(SEGMENT, SIZE - a), pack_name(0), a, min(SEGMENT, SIZE - a)
            )
            for a in range(0, SIZE, SEGMENT)
        ]
        put(root, rc.rel(oid_of(blob)), rc.render(SIZE, [], entries))
        self.deltas: list[list[rc.Entry]] = [[]]
        for level in range(1, depth + 1):
            base, new = self.versions[-1], tuned(rnd, self.versions[-1])
            lane, cuts = 2, list(range(0, SIZE, SEGMENT))
            if shifted and level == depth - 1:
                lane, cuts = 4, [0, *range(2, SIZE - 4, SEGMENT)]
            cuts = [*cuts, SIZE]
            blob, entries, made = bytearray(), [], []
            for k, (a, b) in enumerate(itertools.pairwise(cuts)):
                if k == 2 or (b - a) % lane or b - a < lane:  # a chunk: its bytes as they are
                    entries.append(rc.Entry("c", oid_of(new[a:b]), a, b - a, pack_name(level), len(blob), b - a))
                    blob += new[a:b]
                    continue
                d = delta.encode_sparse(new[a:b], base[a:b], lane)
                e = rc.Entry("d", oid_of(d), a, b - a, pack_name(level), len(blob), len(d), lane, level,
                             oid_of(base), a, delta.ZS)  # fmt: skip
                entries.append(e)
                made.append(e)
                blob += d
            put(root, pack.pack_rel(pack_name(level)), bytes(blob))
            put(root, rc.rel(oid_of(new)), rc.render(SIZE, [], entries))
            self.versions.append(new)
            self.deltas.append(made)
        self.data = self.versions[-1]
        self.oid = oid_of(self.data)
        self.recipe = rc.Recipe(SIZE, [], entries)

    rebuild = SparseWorld.rebuild


@pytest.fixture
def layers(monkeypatch) -> list[int]:
    """Skip without the compiled adder; else the reads made through a ``_Layer`` from now on (their sizes)."""
    if not delta.compiled():
        pytest.skip("mvc.objects._patch was not compiled at install")
    reads: list[int] = []
    real = chunked._Layer.read
    monkeypatch.setattr(
        chunked._Layer, "read", lambda self, off, view, above: reads.append(len(view)) or real(self, off, view, above)
    )
    return reads


@pytest.mark.parametrize("depth", [2, 4])
@pytest.mark.parametrize("in_pairs", [True, False])
@pytest.mark.parametrize("window", [64, 1000, None])
@pytest.mark.parametrize("streamed", [False, True])
def test_a_version_deep_in_a_chain_is_read_through_its_layers(
    tmp_path, monkeypatch, layers, depth, in_pairs, window, streamed
):
    """Two, and four, levels of sparse deltas: every window's base read from v0's pack, each level's changes added
    on the way, by two threads taking turns or by one (a run not mostly sparse; a store read as a remote one is,
    ranges in order), at any window: exact bytes."""
    if window is not None:
        monkeypatch.setattr(chunked, "WINDOW", window)
        monkeypatch.setattr(chunked, "PAIR_WINDOW", window)
    if not in_pairs:
        monkeypatch.setattr(chunked.Rebuilder, "_mostly_sparse", lambda *a: False)
    c = Chain(tmp_path / "store", depth, streamed=streamed)
    out = tmp_path / "out"
    assert c.rebuild(out) == c.oid[len("xxh128:") :]
    assert out.read_bytes() == c.data
    assert sum(layers) >= (depth - 1) * (SIZE - 3 * SEGMENT)  # every level below the top, all but its chunks


def test_a_window_that_would_cut_a_lane_below_reads_the_version_as_before(tmp_path, monkeypatch, layers):
    """The level below the top cuts its deltas 2 bytes off the top's windows, in 4-byte lanes: no layer is read
    (the top's base is read into a piece's buffer), and the bytes are exact."""
    monkeypatch.setattr(chunked, "PAIR_WINDOW", 1000)
    c = Chain(tmp_path / "store", 3, shifted=True)
    out = tmp_path / "out"
    assert c.rebuild(out) == c.oid[len("xxh128:") :]
    assert out.read_bytes() == c.data
    assert not layers


def test_layers_stop_at_a_version_the_cache_holds(tmp_path, layers):
    """The cache holds v2 of four: only the level above it is read as a layer, v2 from the cache's copy."""
    c = Chain(tmp_path / "store", 4)
    odb = ODB(str(tmp_path / "cache"))
    odb.add_bytes(c.versions[2])
    out = tmp_path / "out"
    assert c.rebuild(out, odb) == c.oid[len("xxh128:") :]
    assert out.read_bytes() == c.data
    assert 0 < sum(layers) <= SIZE


def test_each_layers_frame_is_let_go_once_both_threads_are_past_it(tmp_path, monkeypatch, layers):
    """Frames decoded for the levels below live only while the threads read their stretch: never more than a few
    at once, however many the chain holds, and none once the rebuild ends."""
    monkeypatch.setattr(chunked, "PAIR_WINDOW", 4096)
    live: weakref.WeakSet = weakref.WeakSet()
    most = 0
    real = delta.Frame

    class Frame(real):  # type: ignore[misc,valid-type]
        def __init__(self, *a, **k):
            nonlocal most
            super().__init__(*a, **k)
            live.add(self)
            most = max(most, len(live))

    monkeypatch.setattr(delta, "Frame", Frame)
    c = Chain(tmp_path / "store", 4)
    out = tmp_path / "out"
    assert c.rebuild(out) == c.oid[len("xxh128:") :]
    below = sum(len(d) for d in c.deltas[1:-1])
    assert layers and most <= 16 < below
    import gc

    gc.collect()
    assert not live


def test_a_damaged_delta_below_is_refused_naming_it(tmp_path, layers):
    """A delta of the level below the top whose bytes were changed in its pack: refused, naming that delta and
    the pack, before any of its changes are added."""
    c = Chain(tmp_path / "store", 3)
    e = c.deltas[2][3]
    path = c.root / pack.pack_rel(e.pack)
    data = bytearray(path.read_bytes())
    data[e.offset + e.stored // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RemoteCorrupt, match=f"delta {e.oid} at bytes .* is corrupt"):
        c.rebuild(tmp_path / "out")


def test_a_delta_below_that_changes_a_lane_past_its_end_is_refused(tmp_path, layers):
    """A level below whose delta (hashing to its oid: a hostile writer's) changes a lane past the bytes its entry
    covers: refused as corrupt, naming it, whichever thread meets it first."""
    c = Chain(tmp_path / "store", 3)
    e = c.deltas[2][3]
    v1, v2 = c.versions[1], c.versions[2]
    longer = bytearray(v2[e.at : e.at + e.size + 2])
    longer[-2] ^= 1  # a change in the lane after the entry's last
    d = delta.encode_sparse(bytes(longer), v1[e.at : e.at + e.size + 2], 2)
    put(c.root, pack.pack_rel(pack_name(9)), d)
    hostile = e._replace(oid=oid_of(d), pack=pack_name(9), offset=0, stored=len(d))
    recipe = rc.parse((c.root / rc.rel(oid_of(v2))).read_bytes(), "v2", oid_of(v2))
    entries = [hostile if x == e else x for x in recipe.entries]
    put(c.root, rc.rel(oid_of(v2)), rc.render(SIZE, [], entries))
    with pytest.raises(RemoteCorrupt, match=f"delta {hostile.oid} on remote origin.*past the"):
        c.rebuild(tmp_path / "out")
    assert layers  # (read as a layer, and refused there)


class Counted(Streamed):
    """A ``Streamed`` store that keeps the ranges it was asked for, in order: streams, and whole ranges."""

    def __init__(self, root: str):
        super().__init__(root, root)
        self.asked: list[tuple[str, int, int]] = []
        self.inner = Streamed(root, root)  # (whose stream's steps are not counted again)

    def read_stream(self, rel: str, start: int, end: int) -> RangeStream:
        self.asked.append((rel, start, end))
        return self.inner.read_stream(rel, start, end)

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        self.asked.append((rel, start, end))
        return super().get_range(rel, start, end)

    def get_range_into(self, rel: str, start: int, buf: memoryview) -> int:
        self.asked.append((rel, start, start + len(buf)))
        return super().get_range_into(rel, start, buf)


def counted_rebuild(root, depth: int) -> tuple[Chain, list[tuple[str, int, int]], list[list[int]]]:
    """A chain ``depth`` deep rebuilt from a ``Counted`` store, its bytes checked; the ranges the store was asked
    for, in order; and for each version (0: the bottom), where among them its pack was asked for."""
    c = Chain(root, depth, streamed=True)
    c.store = counted = Counted(c.store.root)
    out = root.parent / "out"
    assert c.rebuild(out) == c.oid[len("xxh128:") :]
    assert out.read_bytes() == c.data
    asks = [[k for k, (rel, *_) in enumerate(counted.asked) if rel == pack.pack_rel(pack_name(v))] for v in range(5)]
    return c, counted.asked, asks


@pytest.mark.parametrize("depth", [2, 4])
def test_each_level_is_read_in_few_requests_on_a_remote_store(tmp_path, layers, depth):
    """On a store read through requests (S3), the deltas of each level below the top are read together, and the
    bottom version's bytes under neighbouring deltas in one response they share: a few requests a level, not one
    for each delta at every level (1,120 requests for a 1 GiB file 4 deep, where an unchunked get makes 64)."""
    c, asked, asks = counted_rebuild(tmp_path / "store", depth)
    assert layers
    # each level's pack: its deltas on either side of the chunk that parts them (the top's read ahead at once)
    for level in range(1, depth + 1):
        assert 0 < len(asks[level]) <= 3 < len(c.deltas[level])
    # the bottom version's bytes: every byte asked for once, at most, in few responses
    bottom = [(a, b) for rel, a, b in asked if rel == pack.pack_rel(pack_name(0))]
    assert len(bottom) <= 3
    assert sum(b - a for a, b in bottom) <= SIZE


def test_the_deltas_of_every_level_are_read_first_while_they_fit(tmp_path, layers):
    """A rebuild reads ahead the deltas of the version and, in what is left of PREFETCH, those of each level below:
    each level's pack is asked for once, before the bottom version's bytes (the top's once more, later, for the
    chunk it holds)."""
    _, _, asks = counted_rebuild(tmp_path / "store", 4)
    for level in range(1, 5):
        assert asks[level][0] < asks[0][0]
        assert len(asks[level]) == (2 if level == 4 else 1)


@pytest.mark.parametrize("levels", [0, 1, 2])
def test_levels_past_what_prefetch_holds_are_read_with_their_layers(tmp_path, monkeypatch, layers, levels):
    """PREFETCH holds the top's deltas and ``levels`` levels below (whole levels, nearest first): the rest are
    read level by level as their layers are, and the bytes are exact."""
    stored = [sum(e.stored for e in d) for d in Chain(tmp_path / "sizes", 4).deltas]
    monkeypatch.setattr(chunked, "PREFETCH", sum(stored[4 - levels :]) + 1)
    _, _, asks = counted_rebuild(tmp_path / "store", 4)
    for level in range(1, 4):
        assert (max(asks[level]) < asks[0][0]) == (level >= 4 - levels)
