"""Unit and property tests of the pieces of chunked objects (docs/FORMAT.md, "Chunked objects"): the recipe
parser (untrusted input from a shared bucket), the delta codec (numpy and pure-int paths), and the chunker
(safetensors segments, content-defined chunks). No store, no repository: those are tests/remote_suite.py's
("chunked" tests) and tests/test_chunked_read.py's.

safetensors bytes are made here: an 8-byte little-endian header length, the JSON header (dtype, shape,
data_offsets per tensor, optional ``__metadata__``), then the tensors' bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import struct
import subprocess
import sys

import numpy as np
import pytest
import xxhash
from conftest import git, make_file
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mvc.errors import CorruptObject
from mvc.objects import chunker, delta
from mvc.objects import recipe as rc

FEW = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DECODERS = ("compiled", "numpy", "ints")  # delta's three ways to read a delta, giving the same bytes


@contextlib.contextmanager
def decoding(how: str):
    """delta's decoders as ``how`` says: compiled (mvc.objects._patch, built at install where a C compiler was at
    hand), numpy, or Python's integers."""
    saved = delta._native, delta.fast
    if how == "compiled" and delta._native() is None:
        pytest.skip("mvc.objects._patch was not compiled at install")
    if how != "compiled":
        delta._native = lambda: None
    if how == "ints":
        delta.fast = lambda: False
    try:
        yield
    finally:
        delta._native, delta.fast = saved


SOME = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
OWN = "xxh128:" + "0f" * 16  # the object a recipe rebuilds
OTHER = "xxh128:" + "ab" * 16
PACK = "cd" * 16
WHERE = "recipes/0f/0f0f… on remote origin"


def oid_of(data: bytes) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def fake_oid(i: int) -> str:
    return "xxh128:" + f"{i:032x}"


# -- safetensors bytes ------------------------------------------------------------------------------
def safetensors(tensors: list[tuple[str, str, list[int], bytes]], meta: dict[str, str] | None = None) -> bytes:
    """A safetensors file: tensors (name, dtype, shape, bytes) in order, after the header."""
    header: dict[str, object] = {}
    if meta is not None:
        header["__metadata__"] = meta
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def bf16(rng: np.random.Generator, n: int) -> np.ndarray:
    """n bfloat16 values (as their uint16 bit patterns) of trained-weight-like magnitudes."""
    f = rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)
    return (f.view(np.uint32) >> 16).astype(np.uint16)


def fine_tuned(base: np.ndarray, seed: int) -> np.ndarray:
    """Every bf16 value of base moved by 1 or 2 units in the last place (about 1e-2 to 1e-3 relative): a
    fine-tune's bit patterns, none of them equal to the base's."""
    steps = np.random.default_rng(seed).choice(np.array([-2, -1, 1, 2]), base.size)
    return (base.astype(np.int32) + steps).astype(np.uint16)


def model(seed: int = 0, sizes: tuple[int, ...] = (700_000, 1_300_000, 64, 900_000), meta=None) -> bytes:
    """A small safetensors model of bf16 tensors (sizes in elements), named layerN.weight."""
    rng = np.random.default_rng(seed)
    tensors = [(f"layer{i}.weight", "BF16", [n], bf16(rng, n).tobytes()) for i, n in enumerate(sizes)]
    return safetensors(tensors, meta)


def chunks_of(data: bytes) -> list[chunker.Chunk]:
    return list(chunker.cut(memoryview(data), chunker.segments(memoryview(data), len(data))))


# == recipes =========================================================================================
def chunk_entry(oid: str, at: int, size: int, offset: int = 0, pack: str = PACK) -> rc.Entry:
    return rc.Entry("c", oid, at, size, pack, offset, size)


def delta_entry(oid: str, at: int, size: int, *, lane=2, depth=1, base=OTHER, base_offset=0, stored=100) -> rc.Entry:
    return rc.Entry("d", oid, at, size, PACK, 0, stored, lane, depth, base, base_offset)


def valid(extra_lines: list[str] | None = None, *, size: int = 300, head: list[str] | None = None) -> bytes:
    """A valid recipe of 300 bytes (a chunk of 100, a delta of 200) with lines inserted after the size line."""
    lines = ["mvc-chunks 1", f"size {size}"] + (head or [])
    lines += [
        f"c {fake_oid(1)} 100 {PACK} 0",
        f"d {fake_oid(2)} 200 {PACK} 100 50 2 1 {OTHER} 100",
    ]
    lines += extra_lines or []
    return "".join(line + "\n" for line in lines).encode()


@st.composite
def recipes(draw) -> tuple[int, list[str], list[rc.Entry]]:
    """(size, bases, entries) of a well-formed recipe."""
    bases = draw(st.lists(st.integers(1, 2**128 - 1).map(lambda i: f"xxh128:{i:032x}"), max_size=4, unique=True))
    bases = [b for b in bases if b != OWN]
    entries = []
    at = 0
    for _ in range(draw(st.integers(0, 12))):
        oid = draw(st.integers(0, 2**128 - 1).map(lambda i: f"xxh128:{i:032x}"))
        pack = draw(st.sampled_from([PACK, "0" * 32, "f" * 32]))
        offset = draw(st.integers(0, 2**40))
        if draw(st.booleans()):
            size = draw(st.integers(1, rc.ENTRY_MAX))
            entries.append(rc.Entry("c", oid, at, size, pack, offset, size))
        else:
            lane = draw(st.sampled_from(delta.LANES))
            size = lane * draw(st.integers(1, rc.ENTRY_MAX // lane))
            stored = draw(st.integers(1, rc.ENTRY_MAX))
            base = draw(st.sampled_from([OTHER, fake_oid(7), fake_oid(8)]))
            entries.append(
                rc.Entry(
                    "d", oid, at, size, pack, offset, stored, lane, draw(st.integers(1, rc.MAX_DEPTH)), base,
                    draw(st.integers(0, 2**50)), draw(st.sampled_from(delta.CODECS)),
                )
            )  # fmt: skip
        at += size
    return at, bases, entries


@SOME
@given(recipes())
def test_recipe_round_trip(r):
    size, bases, entries = r
    data = rc.render(size, bases, entries)
    assert data.isascii() and data.endswith(b"\n")
    assert rc.parse(data, WHERE, OWN) == rc.Recipe(size, bases, entries)


def test_recipe_of_a_real_shape():
    data = valid(head=[f"base {OTHER}"])
    r = rc.parse(data, WHERE, OWN)
    assert r.size == 300 and r.bases == [OTHER]
    assert r.entries == [
        rc.Entry("c", fake_oid(1), 0, 100, PACK, 0, 100),
        rc.Entry("d", fake_oid(2), 100, 200, PACK, 100, 50, 2, 1, OTHER, 100),
    ]
    assert rc.render(r.size, r.bases, r.entries) == data
    assert rc.rel(OWN) == "recipes/0f/" + "0f" * 15
    assert rc.parse(b"mvc-chunks 1\nsize 0\n", WHERE, OWN) == rc.Recipe(0, [], [])  # an empty object
    assert rc.layout_format(r.entries) == 2


def test_a_sparse_delta_is_named_by_an_eleventh_field_and_needs_layout_format_3():
    data = valid().replace(f"{OTHER} 100\n".encode(), f"{OTHER} 100 zs\n".encode())
    r = rc.parse(data, WHERE, OWN)
    assert r.entries[1] == rc.Entry("d", fake_oid(2), 100, 200, PACK, 100, 50, 2, 1, OTHER, 100, "zs")
    assert rc.render(r.size, r.bases, r.entries) == data
    assert rc.layout_format(r.entries) == 3
    assert rc.layout_format(r.entries[:1]) == 2  # chunks alone
    for field in (b"zd", b"ZS", b"zs zs", b"", b"zx", b"1"):  # zd is never written out: one spelling per recipe
        refused(data.replace(b" 100 zs\n", b" 100 " + field + b"\n"), "line 4")


def refused(data: bytes, *words: str) -> str:
    with pytest.raises(CorruptObject) as e:
        rc.parse(data, WHERE, OWN)
    msg = str(e.value)
    assert WHERE in msg and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


D = f"d {fake_oid(2)} 200 {PACK} 100 50"  # a delta line up to its lane


@pytest.mark.parametrize(
    ("data", "words"),
    [
        pytest.param(valid(size=301), ("300 bytes", "301"), id="entries-fall-short"),
        pytest.param(valid(size=299), ("more than the 299",), id="entries-run-over"),
        pytest.param(valid(size=0), ("more than the 0",), id="size-0-with-entries"),
        pytest.param(valid().replace(b" 2 1 xx", b" 2 0 xx"), ("line 4",), id="delta-depth-0"),
        pytest.param(valid().replace(b" 2 1 xx", b" 2 5 xx"), ("line 4",), id="delta-depth-5"),
        pytest.param(valid().replace(b" 2 1 xx", b" 3 1 xx"), ("line 4",), id="lane-3"),
        pytest.param(valid().replace(b" 2 1 xx", b" 16 1 xx"), ("line 4",), id="lane-16"),
        pytest.param(valid().replace(b" 2 1 xx", b" 0 1 xx"), ("line 4",), id="lane-0"),
        pytest.param(valid().replace(b"200", b"201").replace(b"size 300", b"size 301"), ("line 4",), id="lane-2-odd"),
        pytest.param(
            (valid()[:-1].rsplit(b"\n", 1)[0] + b"\n" + f"{D} 8 1 {OTHER} 0\n".replace("200", "204").encode()).replace(
                b"size 300", b"size 304"
            ),
            ("line 4",),
            id="lane-8-not-dividing-204",
        ),
        pytest.param(valid().replace(f"{OTHER} 100".encode(), f"{OWN} 100".encode()), ("itself",), id="delta-of-itself"),
        pytest.param(valid(head=[f"base {OWN}"]), ("line 3",), id="base-line-is-itself"),
        pytest.param(valid([f"base {OTHER}"], size=300), ("line 5",), id="base-after-entries"),
        pytest.param(valid(head=[f"base {fake_oid(100 + i)}" for i in range(17)]), ("line 19",), id="17-bases"),
        pytest.param(valid(head=["base xxh128:ABAB"]), ("line 3",), id="base-not-an-oid"),
        pytest.param(valid(head=["base"]), ("line 3",), id="base-without-oid"),
        pytest.param(valid().replace(b"size 300", b"size 0300"), ("line 2",), id="size-leading-zero"),
        pytest.param(valid().replace(b" 100 50 ", b" 0100 50 "), ("line 4",), id="offset-leading-zero"),
        pytest.param(valid().replace(b"c xxh128", b"c  xxh128"), ("line 3",), id="double-space"),
        pytest.param(valid().replace(b" 100 ", b" +100 ", 1), ("line 3",), id="plus-sign"),
        pytest.param(valid().replace(b" 0\n", b" -0\n", 1), ("line 3",), id="minus-sign"),
        pytest.param(valid().replace(b"size 300", "size 3٠0".encode()), ("not ASCII",), id="arabic-digit"),
        pytest.param(valid() + "\u00e9\n".encode(), ("not ASCII",), id="non-ascii"),
        pytest.param(valid()[:-1], ("no final newline",), id="missing-final-newline"),
        pytest.param(valid().replace(b"\n", b"\r\n"), (), id="crlf"),
        pytest.param(valid() + b"\n", ("line 5",), id="empty-line"),
        pytest.param(valid().replace(b"mvc-chunks 1", b"mvc-chunks 2"), ("bad header",), id="header-version"),
        pytest.param(b"", ("bad header",), id="empty"),
        pytest.param(b"mvc-chunks 1\n", ("no final newline",), id="header-only"),
        pytest.param(b"mvc-chunks 1\n\n", ("line 2",), id="no-size"),
        pytest.param(valid().replace(b"size 300", b"size=300"), ("line 2",), id="size-syntax"),
        pytest.param(valid().replace(b"c xxh128", b"x xxh128"), ("line 3",), id="unknown-kind"),
        pytest.param(valid().replace(b" 0\nd", b" 0 7\nd"), ("line 3",), id="chunk-extra-field"),
        pytest.param(valid().replace(PACK.encode() + b" 0\n", PACK.upper().encode() + b" 0\n"), ("line 3",), id="pack"),
        pytest.param(valid().replace(b" 100 50 ", b" 100 0 "), ("line 4",), id="stored-0"),
        pytest.param(
            valid().replace(b" 100 50 ", f" 100 {rc.ENTRY_MAX + 1} ".encode()), ("line 4",), id="stored-over-64MiB"
        ),
        pytest.param(
            valid(size=rc.ENTRY_MAX + 1 + 200).replace(b" 100 " + PACK.encode() + b" 0", f" {rc.ENTRY_MAX + 1} {PACK} 0".encode()),
            ("line 3",),
            id="size-over-64MiB",
        ),
        pytest.param(
            valid().replace(b"c " + fake_oid(1).encode() + b" 100 " + PACK.encode() + b" 0", f"c {fake_oid(1)} 100 {PACK} 9223372036854775808".encode()),
            ("line 3",),
            id="offset-over-2**63",
        ),
        pytest.param(
            valid().replace(b" 100 " + PACK.encode() + b" 0", f" 100 {PACK} 9223372036854775807".encode()),
            ("line 3",),
            id="offset-plus-size-over-2**63",
        ),
        pytest.param(
            valid().replace(f"{OTHER} 100".encode(), f"{OTHER} 9223372036854775700".encode()),
            ("line 4",),
            id="base-offset-plus-size-over-2**63",
        ),
        pytest.param(
            valid().replace(b"size 300", b"size 99999999999999999999"), ("line 2",), id="size-20-digits"
        ),
    ],
)  # fmt: skip
def test_recipe_refusals(data, words):
    refused(data, *words)


def test_sixteen_bases_are_allowed_seventeen_are_not():
    sixteen = [f"base {fake_oid(100 + i)}" for i in range(rc.MAX_BASES)]
    assert rc.MAX_BASES == 16
    assert len(rc.parse(valid(head=sixteen), WHERE, OWN).bases) == 16
    refused(valid(head=[*sixteen, f"base {fake_oid(99)}"]))


def test_depths_one_to_four_are_read():
    for depth in range(1, rc.MAX_DEPTH + 1):
        data = valid().replace(b" 2 1 xx", f" 2 {depth} xx".encode())
        assert rc.parse(data, WHERE, OWN).entries[1].depth == depth
    assert rc.MAX_DEPTH == 4


def test_oversize_recipe_is_refused_unread(monkeypatch):
    assert rc.RECIPE_MAX == 256 << 20  # FORMAT.md: a recipe over 256 MiB is refused
    data = valid()
    monkeypatch.setattr(rc, "RECIPE_MAX", len(data))
    assert rc.parse(data, WHERE, OWN).size == 300
    refused(data + b"x", "larger than any mvc chunk list")


# near-valid recipes: a valid one with a few bytes changed, cut, or repeated
@st.composite
def mutated(draw) -> bytes:
    size, bases, entries = draw(recipes())
    data = bytearray(rc.render(size, bases, entries))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.sampled_from(b" \n0123456789abcdefxcdbase-\x00\xff"))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(max_size=8))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "dup":
            data[i:i] = data[i : i + draw(st.integers(1, 80))]
    return bytes(data)


@SOME
@given(st.one_of(st.binary(max_size=300), mutated(), st.binary(max_size=200).map(lambda b: rc.HEADER + b)))
@example(b"mvc-chunks 1\nsize 1\nc xxh128:" + b"0" * 32 + b" 1 " + PACK.encode() + b" 0\n")
def test_garbage_recipes_raise_only_corrupt_object(data):
    """Whatever the bytes, parse returns a recipe whose entries add up to its size, or raises CorruptObject."""
    try:
        r = rc.parse(data, WHERE, OWN)
    except CorruptObject as e:
        assert WHERE in str(e)
        return
    at = 0
    for e in r.entries:
        assert e.at == at and 1 <= e.size <= rc.ENTRY_MAX and 1 <= e.stored <= rc.ENTRY_MAX
        if e.kind == "d":
            assert e.lane in delta.LANES and e.size % e.lane == 0 and 1 <= e.depth <= rc.MAX_DEPTH
            assert e.base != OWN
        at += e.size
    assert at == r.size and OWN not in r.bases and len(r.bases) <= rc.MAX_BASES


@SOME
@given(
    st.lists(st.integers(1, 50), min_size=1, max_size=20),
    st.integers(0, 1100),
    st.integers(0, 120),
)
def test_covering_finds_exactly_the_overlapping_entries(sizes, start, length):
    entries, at = [], 0
    for i, size in enumerate(sizes):
        entries.append(chunk_entry(fake_oid(i), at, size))
        at += size
    end = start + length
    want = [e for e in entries if e.at < end and e.at + e.size > start]
    assert rc.covering(entries, start, end) == want


# == deltas ==========================================================================================
def fine_tune_like(lane: int, n: int, seed: int) -> tuple[bytes, bytes]:
    """(new, base) of n bytes: base values of the lane's width, new ones a few units in the last place away."""
    rng = np.random.default_rng(seed)
    if lane == 2:
        base = bf16(rng, n // 2)
        return fine_tuned(base, seed + 1).tobytes(), base.tobytes()
    dtype = {1: np.uint8, 4: np.uint32, 8: np.uint64}[lane]
    base = rng.integers(0, np.iinfo(dtype).max, n // lane, dtype=dtype, endpoint=True)
    steps = rng.integers(-3, 4, n // lane).astype(np.int64)
    return (base + steps.astype(dtype)).astype(dtype).tobytes(), base.tobytes()  # wraps modulo 2^bits


@pytest.mark.parametrize("lane", delta.LANES)
@pytest.mark.parametrize("kind", ["random", "fine-tune"])
def test_delta_round_trip(lane, kind):
    n = 1 << 18
    if kind == "random":
        rng = random.Random(lane)
        new, base = rng.randbytes(n), rng.randbytes(n)
    else:
        new, base = fine_tune_like(lane, n, lane)
    d = delta.encode(new, base, lane)
    assert delta.decode(d, base, lane, "x") == new
    if kind == "fine-tune":
        assert len(d) < n * (0.45 if lane == 1 else 0.3), len(d)  # what makes deltas worth storing


@pytest.mark.parametrize("scratch", [1 << 10, 1 << 30])
def test_deltas_larger_than_a_threads_scratch_decode_one_at_a_time(monkeypatch, scratch):
    """A delta whose frame declares more than SCRATCH_MAX bytes (what a hostile `zs` delta of 64 MiB declaring
    5 × that would) decodes alone, whatever the threads reading at once; smaller ones side by side."""
    import threading
    import time

    monkeypatch.setattr(delta, "SCRATCH_MAX", scratch)
    new, base = fine_tune_like(2, 1 << 16, 9)
    deltas = [delta.encode(new, base, 2), delta.encode_sparse(new, base, 2)]
    inside, most, lock = 0, 0, threading.Lock()
    real = delta._decompress

    def counted(*args, **kw):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        try:
            return real(*args, **kw)
        finally:
            with lock:
                inside -= 1

    monkeypatch.setattr(delta, "_decompress", counted)
    got: list[bytes] = []

    def one(i: int) -> None:
        d = deltas[i % 2]
        got.append(bytes(delta.decode(d, base, 2, "x", None, delta.ZS if i % 2 else delta.ZD)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [new] * 6
    if scratch < len(base):
        assert most == 1
    else:
        assert most > 1  # (so the first case shows the rule, not threads that never met)


def test_fine_tuned_bf16_is_much_smaller_as_a_delta_than_compressed_alone():
    import zstandard

    new, base = fine_tune_like(2, 1 << 20, 5)
    assert all(a != b for a, b in zip(np.frombuffer(new, np.uint16), np.frombuffer(base, np.uint16), strict=True))
    d = delta.encode(new, base, 2)
    alone = zstandard.ZstdCompressor(level=3).compress(new)
    assert len(d) * 3 < len(alone), (len(d), len(alone))


def test_delta_of_identical_bytes_and_extreme_differences():
    for lane in delta.LANES:
        base = bytes(range(256)) * lane * 4
        assert delta.decode(delta.encode(base, base, lane), base, lane, "x") == base
        new = bytes(b ^ 0xFF for b in base)  # differences near ±2^(bits-1): zigzag's extremes
        assert delta.decode(delta.encode(new, base, lane), base, lane, "x") == new
        top = b"\x00" * (lane - 1) + b"\x80"
        new = top * (len(base) // lane)  # 0x80.. - 0 = the most negative value: wraps, still round-trips
        assert delta.decode(delta.encode(new, bytes(len(base)), lane), bytes(len(base)), lane, "x") == new


def test_encode_refuses_what_no_recipe_can_hold():
    with pytest.raises(ValueError):
        delta.encode(b"abcd", b"abc", 1)
    with pytest.raises(ValueError):
        delta.encode(b"abc", b"abc", 2)
    with pytest.raises(ValueError):
        delta.encode(b"abcdef", b"abcdef", 3)


lane_bytes = st.sampled_from(delta.LANES).flatmap(
    lambda w: st.tuples(st.just(w), st.integers(0, 64).flatmap(lambda k: st.tuples(st.binary(min_size=k * w, max_size=k * w), st.binary(min_size=k * w, max_size=k * w))))
)  # fmt: skip


@SOME
@given(lane_bytes)
@example((8, (b"\x00" * 7 + b"\x80", b"\xff" * 8)))
@example((4, (b"\x01\x00\x00\x00", b"\x02\x00\x00\x00")))
def test_numpy_and_int_paths_give_identical_bytes(case):
    """The writer's numpy path and the reader's pure-int fallback: the same zigzag planes, the same decoding,
    for any bytes (FORMAT.md gives the codec; both paths implement it)."""
    w, (new, base) = case
    z = delta._zigzag_numpy(new, base, w)
    assert z == delta._zigzag_ints(new, base, w)
    assert len(z) == len(new)
    assert delta._unzigzag_numpy(z, base, w) == new == delta._unzigzag_ints(z, base, w)
    # any planes (not only an encoder's) decode the same way on both paths
    assert delta._unzigzag_numpy(new, base, w) == delta._unzigzag_ints(new, base, w)


@pytest.mark.parametrize("lane", delta.LANES)
def test_zigzag_matches_the_formula_of_the_format(lane):
    """zigzag(d) = (d << 1) ^ (d >> (bits - 1)), d = new - base modulo 2^bits, then byte planes."""
    rng = random.Random(lane)
    k = 33
    new, base = rng.randbytes(k * lane), rng.randbytes(k * lane)
    bits = 8 * lane
    zs = []
    for i in range(k):
        a = int.from_bytes(new[i * lane : (i + 1) * lane], "little")
        b = int.from_bytes(base[i * lane : (i + 1) * lane], "little")
        d = (a - b) % (1 << bits)
        signed = d - (1 << bits) if d >> (bits - 1) else d
        zs.append((((signed << 1) ^ (signed >> (bits - 1))) % (1 << bits)).to_bytes(lane, "little"))
    planes = b"".join(bytes(z[j] for z in zs) for j in range(lane))
    assert delta._zigzag_numpy(new, base, lane) == planes
    assert delta._zigzag_ints(new, base, lane) == planes


@pytest.mark.parametrize("how", DECODERS)
def test_deltas_decode_into_a_given_buffer_and_the_thread_buffers_never_leak_between_decodes(how):
    """A rebuild decodes each delta into its piece's buffer, through buffers each thread keeps: decodes of other
    sizes and lanes in between, or of garbage, leave no trace in the next one."""
    cases = [fine_tune_like(lane, n, lane + n) for lane, n in ((2, 1 << 16), (4, 1 << 12), (1, 999), (8, 1 << 15))]
    frames = [delta.encode(new, base, lane) for (new, base), lane in zip(cases, (2, 4, 1, 8), strict=True)]
    arena = bytearray(sum(len(new) for new, _ in cases) + 3)
    at = 3  # an unaligned place
    with decoding(how):
        for _ in range(2):
            for (new, base), lane, frame in zip(cases, (2, 4, 1, 8), frames, strict=True):
                out = memoryview(arena)[at : at + len(new)]
                got = delta.decode(frame, base, lane, "x", out)
                assert bytes(got) == new and bytes(out) == new
                assert delta.decode(frame, base, lane, "x") == new  # and into new memory
                with pytest.raises(CorruptObject):
                    delta.decode(frame[:-2], base, lane, "x", out)
                with pytest.raises(CorruptObject):
                    delta.decode(frame + frame, base, lane, "x")  # nothing may follow the frame
            at = 0


def test_an_arena_hands_out_aligned_slices_and_new_memory_when_full():
    from mvc.objects.chunked import _Arena

    a = _Arena(256)
    x, y = a.take(10), a.take(100)
    assert len(x) == 10 and len(y) == 100
    assert isinstance(y, memoryview) and a.at == 64 + 100
    z = a.take(100)  # 128 + 100 > 256
    assert isinstance(z, bytearray) and len(z) == 100
    a.clear()
    assert a.take(256) is not None and a.at == 256


def test_without_numpy_deltas_decode_the_same(monkeypatch):
    new, base = fine_tune_like(2, 1 << 16, 9)
    d = delta.encode(new, base, 2)
    monkeypatch.setattr(delta, "fast", lambda: False)
    monkeypatch.setattr(delta, "_native", lambda: None)
    assert delta.decode(d, base, 2, "x") == new
    assert delta.encode(new, base, 2) == d  # the slow encoder writes the same frame


# -- sparse deltas (zs) ----------------------------------------------------------------------------
def lightly_tuned(lane: int, n: int, seed: int, share: float = 0.01) -> tuple[bytes, bytes]:
    """(new, base) of n bytes where about ``share`` of the lanes moved by a few units (the others are equal), as
    a light fine-tune leaves bf16 weights; the first and last lanes always move."""
    rng = np.random.default_rng(seed)
    dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[lane]
    base = rng.integers(0, np.iinfo(dtype).max, n // lane, dtype=dtype, endpoint=True)
    moved = rng.random(base.size) < share
    moved[0] = moved[-1] = True
    steps = rng.choice(np.array([-3, -2, -1, 1, 2, 3]), base.size) * moved
    return (base + steps.astype(dtype)).astype(dtype).tobytes(), base.tobytes()  # wraps modulo 2^bits


def both_paths(frame, base, lane, codec, monkeypatch, out=None) -> bytes:
    """What every decoder decodes (the same, or the test fails); into ``out`` the first time."""
    got = set()
    for how in DECODERS:
        if how == "compiled" and delta._native() is None:
            continue
        with decoding(how):
            got.add(bytes(delta.decode(frame, base, lane, "x", out if not got else None, codec)))
    assert len(got) == 1
    return got.pop()


@pytest.mark.parametrize("lane", delta.LANES)
@pytest.mark.parametrize("kind", ["light", "random", "identical", "extreme"])
def test_sparse_delta_round_trip_on_both_paths(lane, kind, monkeypatch):
    n = 6000 * lane
    if kind == "light":
        new, base = lightly_tuned(lane, n, lane)
    elif kind == "random":
        rng = random.Random(lane)
        new, base = rng.randbytes(n), rng.randbytes(n)
    elif kind == "identical":
        new = base = bytes(range(256)) * (n // 256) + bytes(n % 256)
    else:  # differences at zigzag's extremes, in every other lane
        base = bytes(n)
        top = b"\x00" * (lane - 1) + b"\x80"
        new = (top + bytes(lane)) * (n // lane // 2)
    frame = delta.encode_sparse(new, base, lane)
    arena = bytearray(n + 5)
    out = memoryview(arena)[3 : 3 + n]  # an unaligned place, as an arena may give
    assert both_paths(frame, base, lane, "zs", monkeypatch, out) == new == bytes(out)
    if kind == "light":
        assert len(frame) < len(delta.encode(new, base, lane)), "sparse is smaller than dense on a light tune"
    if kind == "identical":
        assert len(frame) < 20


@pytest.mark.parametrize("lane", delta.LANES)
def test_sparse_frame_matches_the_formula_of_the_format(lane):
    """zs: for each lane whose zigzag(new - base) is not 0, in order, its gap (place - previous place - 1; the
    first: its place) as 4-byte planes, then those zigzag values as lane-byte planes; one zstd frame."""
    import zstandard

    rng = random.Random(lane)
    k, bits = 300, 8 * lane
    base = rng.randbytes(k * lane)
    new = bytearray(base)
    for i in {0, k - 1, *rng.sample(range(k), 25)}:
        new[i * lane + rng.randrange(lane)] ^= 1 << rng.randrange(8)
    gaps, zs, last = [], [], -1
    for i in range(k):
        a = int.from_bytes(new[i * lane : (i + 1) * lane], "little")
        b = int.from_bytes(base[i * lane : (i + 1) * lane], "little")
        d = (a - b) % (1 << bits)
        if d:
            signed = d - (1 << bits) if d >> (bits - 1) else d
            gaps.append(i - last - 1)
            zs.append(((signed << 1) ^ (signed >> (bits - 1))) % (1 << bits))
            last = i
    content = b"".join(bytes((g >> (8 * j)) & 255 for g in gaps) for j in range(4))
    content += b"".join(bytes((z >> (8 * j)) & 255 for z in zs) for j in range(lane))
    frame = delta.encode_sparse(bytes(new), base, lane)
    assert zstandard.frame_content_size(frame) == len(content) == len(gaps) * (4 + lane)
    assert zstandard.ZstdDecompressor().decompress(frame) == content


def test_best_is_sparse_up_to_a_quarter_of_the_lanes_changed():
    for share, codec in ((0.01, "zs"), (0.2, "zs"), (0.5, "zd")):
        new, base = lightly_tuned(2, 1 << 18, 11, share)
        got, frame = delta.best(new, base, 2)
        assert got == codec, share
        assert delta.decode(frame, base, 2, "x", codec=got) == new
    k = 4000
    base = bytes(2 * k)
    for moved, codec in ((k // 4, "zs"), (k // 4 + 1, "zd")):
        new = b"\x01\x00" * moved + bytes(2 * (k - moved))
        assert delta.best(new, base, 2)[0] == codec, moved
    new, base = fine_tune_like(2, 1 << 16, 3)  # every value moved
    assert delta.best(new, base, 2) == ("zd", delta.encode(new, base, 2))


def test_without_numpy_a_writer_makes_only_dense_deltas(monkeypatch):
    new, base = lightly_tuned(2, 1 << 14, 4)
    monkeypatch.setattr(delta, "fast", lambda: False)
    assert delta.best(new, base, 2) == ("zd", delta.encode(new, base, 2))


def sparse_frame(gaps: list[int], values: list[int], lane: int, content_size: bool = True) -> bytes:
    import zstandard

    content = b"".join(bytes((g >> (8 * j)) & 255 for g in gaps) for j in range(4))
    content += b"".join(bytes((v >> (8 * j)) & 255 for v in values) for j in range(lane))
    return zstandard.ZstdCompressor(write_content_size=content_size).compress(content)


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        pytest.param(sparse_frame([0], [2], 2)[:-2], ("x:",), id="truncated"),
        pytest.param(sparse_frame([0], [2], 2) + b"\x00", ("x:",), id="bytes-after-the-frame"),
        pytest.param(sparse_frame([0], [2], 2, content_size=False), ("declares",), id="no-content-size"),
        pytest.param(sparse_frame([0], [2], 2)[:4] + b"garbage", ("x:",), id="garbage"),
        pytest.param(sparse_frame([0, 0], [2], 2), ("not at most",), id="not-whole-changes"),
        pytest.param(sparse_frame([0] * 9, [2] * 9, 2), ("not at most 8 changes",), id="more-changes-than-lanes"),
        pytest.param(sparse_frame([8], [2], 2), ("lane 8, past the 8",), id="a-place-past-the-end"),
        pytest.param(sparse_frame([3, 3, 1], [2, 2, 2], 2), ("lane 9",), id="places-that-add-up-past-the-end"),
        pytest.param(sparse_frame([2**32 - 1], [2], 2), ("past the 8",), id="the-largest-gap"),
    ],
)
@pytest.mark.parametrize("how", DECODERS)
def test_damaged_sparse_deltas_are_refused_on_every_path(frame, words, how):
    base = bytes(16)  # 8 lanes of 2 bytes
    with decoding(how), pytest.raises(CorruptObject) as e:
        delta.decode(frame, base, 2, "x", None, "zs")
    for w in words:
        assert w in str(e.value), str(e.value)


def test_an_unknown_codec_is_refused():
    with pytest.raises(CorruptObject, match="no delta codec is named 'zq'"):
        delta.decode(delta.encode(bytes(4), bytes(4), 2), bytes(4), 2, "x", None, "zq")


def test_a_sparse_delta_of_many_changes_is_applied_a_block_at_a_time(monkeypatch):
    monkeypatch.setattr(delta, "BLOCK", 7)  # blocks end inside the list of changes, and the last block is short
    new, base = lightly_tuned(4, 4 * 1000, 8, share=0.1)
    frame = delta.encode_sparse(new, base, 4)
    assert both_paths(frame, base, 4, "zs", monkeypatch) == new
    past = sparse_frame([0] * 20 + [990], [1] * 21, 4)  # the bad place is in the fourth block
    with pytest.raises(CorruptObject, match="past the 1000"):
        delta.decode(past, base, 4, "x", None, "zs")


# lists of changes as (gap before the lane, zigzag value): small gaps, and gaps up to a zs entry's largest
CHANGES = st.lists(st.tuples(st.one_of(st.integers(0, 5), st.integers(0, 2**32 - 1)), st.integers(0, 2**64 - 1)))


@st.composite
def sparse_lists(draw) -> tuple[int, int, list[int], list[int]]:
    """(lane, lanes of the base, gaps, values): lists of changes, mostly in range, some past the end."""
    lane = draw(st.sampled_from(delta.LANES))
    k = draw(st.integers(0, 40))
    m = draw(st.integers(0, k + 1))
    gap = st.one_of(st.integers(0, 3), st.integers(0, 2**32 - 1))
    gaps = draw(st.lists(gap, min_size=m, max_size=m))
    values = draw(st.lists(st.integers(0, 2 ** (8 * lane) - 1), min_size=m, max_size=m))
    return lane, k, gaps, values


@SOME
@given(sparse_lists())
@example((2, 4, [0, 0, 0, 0], [1, 2, 3, 2**16 - 1]))
@example((8, 2, [1], [2**64 - 1]))
def test_any_list_of_changes_decodes_the_same_on_every_path_or_is_refused_on_all(case):
    lane, k, gaps, values = case
    base = bytes((i * 7) & 255 for i in range(k * lane))
    frame = sparse_frame(gaps, values, lane)
    got = []
    for how in DECODERS[delta._native() is None :]:
        with decoding(how):
            try:
                got.append(bytes(delta.decode(frame, base, lane, "x", None, "zs")))
            except CorruptObject:
                got.append(None)
    assert len(set(got)) == 1
    ok = len(gaps) <= k and (not gaps or sum(gaps) + len(gaps) <= k)
    assert (got[0] is not None) == ok
    if ok:  # the base with each listed lane moved by its un-zigzagged value, modulo 2^bits
        want, place = bytearray(base), -1
        for g, v in zip(gaps, values, strict=True):
            place += g + 1
            a = int.from_bytes(want[place * lane : (place + 1) * lane], "little") + ((v >> 1) ^ -(v & 1))
            want[place * lane : (place + 1) * lane] = (a % (1 << (8 * lane))).to_bytes(lane, "little")
        assert got[0] == bytes(want)


def garbage_frames(base_len: int) -> dict[str, bytes]:
    import zstandard

    good = delta.encode(bytes(base_len), bytes(base_len), 2)
    return {
        "empty": b"",
        "not zstd": b"hello, world",
        "magic only": b"\x28\xb5\x2f\xfd",
        "truncated": good[:-3],
        "frame of fewer bytes": zstandard.ZstdCompressor().compress(bytes(base_len - 2)),
        "frame of more bytes": zstandard.ZstdCompressor().compress(bytes(base_len + 2)),
        "frame without its size, fewer": zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 10),
        "frame without its size, more": zstandard.ZstdCompressor(write_content_size=False).compress(
            b"x" * (base_len * 3)
        ),
        "skippable frame": b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"abcd",
    }


@pytest.mark.parametrize("name", list(garbage_frames(64)))
def test_garbage_deltas_are_refused(name):
    base = bytes(range(64))
    with pytest.raises(CorruptObject) as e:
        delta.decode(garbage_frames(64)[name], base, 2, "delta X of recipes/ab/cd")
    assert "delta X of recipes/ab/cd" in str(e.value)


def test_a_delta_with_lanes_that_do_not_fit_is_refused():
    d = delta.encode(bytes(6), bytes(6), 2)
    for lane, base in ((4, bytes(6)), (3, bytes(6)), (0, bytes(6)), (2, bytes(5))):
        with pytest.raises(CorruptObject):
            delta.decode(d, base, lane, "x")


@SOME
@given(st.binary(max_size=200), st.sampled_from(delta.LANES), st.integers(0, 40), st.sampled_from(delta.CODECS))
def test_decode_of_any_bytes_raises_only_corrupt_object(data, lane, k, codec):
    base = bytes((i * 7) & 255 for i in range(k * lane))
    for how in DECODERS[delta._native() is None :]:
        with decoding(how):
            try:
                out = delta.decode(data, base, lane, "x", None, codec)
            except CorruptObject:
                continue
        assert len(out) == len(base)


@st.composite
def mutated_deltas(draw) -> tuple[bytes, bytes, int, str]:
    """(a valid delta with a few bytes changed, cut or added, its base, its lane, its codec)."""
    lane = draw(st.sampled_from(delta.LANES))
    codec = draw(st.sampled_from(delta.CODECS))
    k = draw(st.integers(1, 300))
    rng = random.Random(draw(st.integers(0, 2**32)))
    base = rng.randbytes(k * lane)
    new = bytes((b + rng.choice((0, 0, 1, 255))) & 255 for b in base)
    data = bytearray((delta.encode_sparse if codec == "zs" else delta.encode)(new, base, lane))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and i < len(data):
            data[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=6))
    return bytes(data), base, lane, codec


@SOME
@given(mutated_deltas())
def test_damaged_deltas_raise_only_corrupt_object(case):
    data, base, lane, codec = case
    try:
        out = delta.decode(data, base, lane, "delta X", None, codec)
    except CorruptObject as e:
        assert "delta X" in str(e)
        return
    assert len(out) == len(base)  # (the oid of the delta's bytes is what catches a change that still decodes)


def test_a_delta_declaring_a_huge_size_is_refused_before_it_is_inflated():
    import tracemalloc

    import zstandard

    n = 256 << 20
    comp = zstandard.ZstdCompressor(level=3).compressobj(size=n)
    zeros = bytes(1 << 24)
    bomb = b"".join([comp.compress(zeros) for _ in range(n >> 24)] + [comp.flush()])
    assert len(bomb) < 64 << 10 and zstandard.frame_content_size(bomb) == n
    tracemalloc.start()
    try:
        with pytest.raises(CorruptObject):
            delta.decode(bomb, bytes(4096), 2, "x")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"refusing a delta for 4 KiB took {peak >> 20} MiB"


def test_a_delta_frame_claiming_a_terabyte_is_corrupt():
    import zstandard

    z = zstandard.ZstdCompressor(level=3).compressobj(size=1 << 40)
    bomb = z.compress(bytes(10)) + z.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    assert len(bomb) < 100
    try:
        delta.decode(bomb, bytes(4096), 2, "x")
    except CorruptObject:
        return
    except MemoryError:
        pytest.fail("MemoryError")
    pytest.fail("decoded")


def test_fast_says_numpy_is_there():
    assert delta.fast() is True  # the test venv installs numpy (mvc[deltas])


def test_the_compiled_adder_is_built_where_a_c_compiler_is():
    """pip builds mvc/objects/_patch.c as an optional extension: with a compiler at hand a build that failed would
    pass unseen (mvc works without it, slower), so the test venv holds it to being there."""
    import shutil
    import sysconfig

    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler: mvc is installed without its compiled module")
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        pytest.skip("no Python headers (a python3-dev package): mvc is installed without its compiled module")
    assert delta.compiled() and delta.reads_fast()


# == the chunker =====================================================================================
def test_safetensors_header_and_each_tensor_are_segments():
    data = model(1, meta={"format": "pt"})
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    segs = chunker.segments(memoryview(data), len(data))
    assert segs[0] == chunker.Segment(0, 8 + n, "", 1)
    starts = {s.offset for s in segs}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = (8 + n + o for o in info["data_offsets"])
        seg = next(s for s in segs if s.offset == begin)
        assert seg == chunker.Segment(begin, end - begin, f"{name}\0BF16\0{info['shape'][0]}", 2, True)
        assert begin in starts
    # ... and every chunk lies inside one segment: every tensor starts a chunk
    cuts = {c.offset for c in chunks_of(data)}
    assert starts <= cuts
    covers(segs, len(data))


def test_dtypes_give_lanes_and_unknown_ones_lane_one():
    tensors = [
        ("a", "F32", [3], bytes(12)),
        ("b", "I64", [2], bytes(16)),
        ("c", "F8_E4M3", [5], bytes(5)),
        ("d", "WEIRD", [4], bytes(4)),
        ("e", "F16", [3], bytes(5)),  # bytes that are no whole number of elements: no delta key
        ("f", "F16", [0], b""),  # empty: no segment
    ]
    data = safetensors(tensors)
    segs = chunker.segments(memoryview(data), len(data))
    assert [(s.size, s.lane, s.key.split("\0")[0] if s.key else "") for s in segs[1:]] == [
        (12, 4, "a"),
        (16, 8, "b"),
        (5, 1, "c"),
        (4, 1, "d"),
        (5, 2, ""),
    ]


def test_gaps_and_a_tail_become_segments_of_their_own():
    t = [("a", "U8", [10], bytes(10)), ("b", "U8", [10], bytes(10))]
    data = bytearray(safetensors(t))
    n = int.from_bytes(data[:8], "little")
    hdr = json.loads(data[8 : 8 + n])
    hdr["b"]["data_offsets"] = [15, 25]  # a gap of 5 bytes after a, then b, then 3 bytes of tail
    text = json.dumps(hdr).encode()
    data = struct.pack("<Q", len(text)) + text + bytes(28)
    start = 8 + len(text)
    segs = chunker.segments(memoryview(data), len(data))
    assert [(s.offset - start, s.size, bool(s.key)) for s in segs[1:]] == [
        (0, 10, True),
        (10, 5, False),
        (15, 10, True),
        (25, 3, False),
    ]
    covers(segs, len(data))


def covers(segs: list[chunker.Segment], size: int) -> None:
    at = 0
    for s in segs:
        assert s.offset == at and s.size >= 0 and s.lane in delta.LANES
        at += s.size
    assert at == size


def hostile_header(draw) -> bytes:
    """A safetensors-like header that may lie: huge or tiny lengths, overlapping or out-of-range offsets,
    JSON that is not an object, wrong types."""
    value = st.one_of(
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.booleans(),
        st.text(max_size=5),
        st.none(),
        st.lists(st.integers(-10, 300), max_size=3),
    )
    info = st.fixed_dictionaries(
        {},
        optional={
            "dtype": st.one_of(st.sampled_from(["BF16", "F32", "U8", "I64", "WEIRD"]), value),
            "shape": st.one_of(st.lists(st.integers(-2, 10), max_size=3), value),
            "data_offsets": st.one_of(st.lists(st.integers(-5, 400), min_size=2, max_size=2), value),
        },
    )
    doc = draw(
        st.one_of(
            st.dictionaries(st.text(max_size=6), st.one_of(info, value), max_size=5),
            st.lists(value, max_size=3),
            value,
        )
    )
    return json.dumps(doc).encode()


@st.composite
def hostile_files(draw) -> bytes:
    kind = draw(st.sampled_from(["header", "length", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=600))
    text = hostile_header(draw)
    body = draw(st.binary(max_size=400))
    if kind == "length":  # a length that lies: huge, past the end, zero, or off by a few
        n = draw(
            st.sampled_from([0, 1, 2**63, 2**64 - 1, chunker.HEADER_MAX + 1, len(text) + len(body) + 1, len(text) - 1])
        )
        n = max(0, n)
    else:
        n = len(text)
    return struct.pack("<Q", n % 2**64) + text + body


@SOME
@given(hostile_files())
@example(b"")
@example(struct.pack("<Q", 2) + b"{}")
@example(struct.pack("<Q", 2**64 - 1) + b"{}" + bytes(100))
@example(safetensors([("a", "U8", [4], bytes(4))])[:-2])  # a tensor past the end
@example(struct.pack("<Q", 2) + b"[]" + bytes(20))
@example(struct.pack("<Q", 60) + b'{"a":{"dtype":"U8","shape":[9],"data_offsets":[0,9]}}'.ljust(60) + bytes(20))
@example(
    struct.pack("<Q", 110)
    + b'{"a":{"dtype":"U8","shape":[9],"data_offsets":[0,9]},"b":{"dtype":"U8","shape":[9],"data_offsets":[4,13]}}'.ljust(
        110
    )
    + bytes(20)
)  # overlapping tensors
@example(struct.pack("<Q", 10) + b"{" * 10 + bytes(10))
def test_segments_of_any_bytes_cover_the_file_and_never_raise(data):
    segs = chunker.segments(memoryview(data), len(data))
    covers(segs, len(data))
    if len(segs) > 1:  # taken apart as safetensors: the header segment first, tensors in file order
        n = int.from_bytes(data[:8], "little")
        assert segs[0] == chunker.Segment(0, 8 + n, "", 1)
    chunks = list(chunker.cut(memoryview(data), segs))
    assert b"".join(data[c.offset : c.offset + c.size] for c in chunks) == data
    for c in chunks:
        assert c.oid == oid_of(data[c.offset : c.offset + c.size])


def test_deeply_nested_header_is_plain_bytes():
    text = b"{" + b'"a":' * 1 + b"[" * 100_000 + b"]" * 100_000 + b"}"
    data = struct.pack("<Q", len(text)) + text + bytes(10)
    assert chunker.segments(memoryview(data), len(data)) == [chunker.Segment(0, len(data), "", 1)]


@FEW
@given(st.integers(0, 2**32), st.integers(200_000, 600_000))
def test_chunks_cover_the_file_in_order_and_in_bounds(seed, size):
    data = random.Random(seed).randbytes(size)
    chunks = chunks_of(data)
    at = 0
    for c in chunks:
        assert c.offset == at
        assert c.size <= chunker.MAX
        at += c.size
    assert at == size
    assert all(c.size >= chunker.MIN for c in chunks[:-1])  # one segment: only the last may be short


def test_chunking_is_deterministic_and_near_the_average(tmp_path):
    data = model(3, sizes=(2_000_000, 1_500_000))
    p = tmp_path / "m.safetensors"
    p.write_bytes(data)
    segs, chunks, digest = chunker.chunk_file(str(p))
    assert digest == xxhash.xxh3_128_hexdigest(data)
    assert (segs, chunks) == (chunker.segments(memoryview(data), len(data)), chunks_of(data))
    assert chunker.chunk_file(str(p)) == (segs, chunks, digest)
    avg = len(data) / len(chunks)
    assert chunker.AVG / 2 < avg < chunker.AVG * 2, avg
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert chunker.chunk_file(str(empty)) == ([chunker.Segment(0, 0, "", 1)], [], xxhash.xxh3_128_hexdigest(b""))


def tensor_chunks(data: bytes) -> dict[str, list[str]]:
    """{tensor key: the oids of its chunks}."""
    view = memoryview(data)
    segs = chunker.segments(view, len(data))
    chunks = list(chunker.cut(view, segs))
    out = {}
    for s in segs:
        if s.key:
            out[s.key] = [c.oid for c in chunks if s.offset <= c.offset < s.offset + s.size]
    return out


def test_a_grown_header_leaves_every_tensor_chunk_unchanged():
    before = model(4)
    after = model(4, meta={"note": "x" * 5000, "epoch": "12"})  # 5 KB more of JSON header
    assert len(after) > len(before) + 5000
    old, new = tensor_chunks(before), tensor_chunks(after)
    assert old == new and len(old) == 4
    old_oids = {c.oid for c in chunks_of(before)}
    changed = [c for c in chunks_of(after) if c.oid not in old_oids]
    assert len(changed) == 1 and changed[0].offset == 0  # the header's chunk alone


def test_a_4k_edit_in_one_tensor_changes_a_chunk_or_two():
    sizes = (1_500_000, 1_500_000)
    before = model(5, sizes=sizes)
    n = int.from_bytes(before[:8], "little")
    at = 8 + n + 2 * 1_500_000 + 700_000  # inside the second tensor
    after = bytearray(before)
    after[at : at + 4096] = random.Random(1).randbytes(4096)
    after = bytes(after)
    old_oids = {c.oid for c in chunks_of(before)}
    new_chunks = chunks_of(after)
    changed = [c for c in new_chunks if c.oid not in old_oids]
    assert 1 <= len(changed) <= 2, changed
    assert all(c.offset <= at + 4096 and c.offset + c.size >= at for c in changed)
    assert sum(c.size for c in changed) <= 2 * chunker.MAX
    old_t, new_t = tensor_chunks(before), tensor_chunks(after)
    first = next(iter(old_t))
    assert old_t[first] == new_t[first]  # the other tensor is untouched


def test_mapped_file_and_drop(tmp_path):
    p = tmp_path / "f"
    data = random.Random(2).randbytes(3 << 20)
    p.write_bytes(data)
    with chunker.Mapped(str(p)) as m:
        assert m.size == len(data) and bytes(m.view[100:200]) == data[100:200]
        m.drop(0, 1 << 20)  # the pages come back on the next read
        assert bytes(m.view[: 1 << 20]) == data[: 1 << 20]
        m.drop(5, 10**12)
    e = tmp_path / "e"
    e.write_bytes(b"")
    with chunker.Mapped(str(e)) as m:
        assert m.size == 0 and bytes(m.view) == b""
        m.drop(0, 10)


# == mvc add --base ==================================================================================
def test_add_base_refuses_a_revision_without_that_file(repo, mvc_cli, mvc_error):
    """--base names a revision whose version of the path a push stores deltas against: a revision without a
    file version of the path, or no revision at all, is refused before anything is added."""
    make_file(repo / "m.bin", 1000, seed=1)
    make_file(repo / "d" / "f.bin", 100, seed=2)
    mvc_cli("add", "m.bin", "d")
    git(repo, "commit", "-q", "-m", "v1")
    make_file(repo / "m.bin", 1000, seed=3)
    pointer = (repo / "m.bin.mvc").read_bytes()
    mvc_error("add", "m.bin", "--base", "HEAD~1", words=("HEAD~1", "no file version of m.bin", "--base"))
    mvc_error("add", "m.bin", "--base", "no-such-rev", words=("no-such-rev",))
    make_file(repo / "d" / "f.bin", 100, seed=4)
    git(repo, "mv", "d.mvc", "e.mvc")
    git(repo, "commit", "-q", "-m", "d is e now")
    mvc_error("add", "d", "--base", "HEAD", words=("no directory version of d", "--base"))
    mvc_error("add", "m.bin", "--base", "HEAD:e", words=("HEAD:e",))
    assert (repo / "m.bin.mvc").read_bytes() == pointer  # nothing was added
    mvc_cli("add", "m.bin", "--base", "HEAD")
    assert (repo / "m.bin.mvc").read_bytes() != pointer


def test_add_base_of_a_directory_gives_each_file_its_counterpart_at_the_revision(repo, mvc_cli, mvc_error):
    """``mvc add DIR --base REV``: each file of DIR is stored against the file at its path in DIR at REV; a file
    DIR did not hold at REV gets none; a revision where the path is a file, not a directory, is refused."""
    from mvc.repo.repository import Repo

    make_file(repo / "d" / "a.bin", 1000, seed=1)
    make_file(repo / "d" / "b.bin", 1000, seed=2)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "v1")
    v1 = {n: oid_of((repo / "d" / n).read_bytes()) for n in ("a.bin", "b.bin")}
    make_file(repo / "d" / "a.bin", 1000, seed=3)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "v2")
    make_file(repo / "d" / "a.bin", 1000, seed=4)
    make_file(repo / "d" / "b.bin", 1000, seed=5)
    make_file(repo / "d" / "c.bin", 1000, seed=6)
    mvc_cli("add", "d", "--base", "HEAD~1")
    now = {n: oid_of((repo / "d" / n).read_bytes()) for n in ("a.bin", "b.bin", "c.bin")}
    with Repo(str(repo)) as r:
        assert r.state.base(now["a.bin"]) == v1["a.bin"]  # v1's, not v2's
        assert r.state.base(now["b.bin"]) == v1["b.bin"]
        assert r.state.base(now["c.bin"]) is None  # new since
    make_file(repo / "m.bin", 100, seed=7)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    (repo / "m.bin.mvc").unlink()
    (repo / "m.bin").unlink()
    make_file(repo / "m.bin" / "x.bin", 100, seed=8)
    mvc_error("add", "m.bin", "--base", "HEAD", words=("no directory version of m.bin", "--base"))


def test_the_previous_versions_are_read_from_history_and_what_is_no_pointer_is_passed_over(repo, mvc_cli):
    """A push's delta bases: the versions of the path before the one pushed, newest first, read from git in one
    cat-file (no pygit2 loaded); a commit where the pointer's path is a symlink or a directory gives none."""
    from mvc.repo import bases
    from mvc.repo.repository import Repo

    oids_ = []
    for i in range(3):
        make_file(repo / "m.bin", 1000, seed=10 + i)
        mvc_cli("add", "m.bin")
        git(repo, "commit", "-q", "-m", f"v{i + 1}")
        oids_.append(oid_of((repo / "m.bin").read_bytes()))
    pointer = (repo / "m.bin.mvc").read_bytes()
    (repo / "m.bin.mvc").unlink()
    (repo / "m.bin.mvc").symlink_to(pointer.decode())  # its text is a pointer's: still no pointer
    git(repo, "add", "m.bin.mvc")
    git(repo, "commit", "-q", "-m", "a symlink")
    git(repo, "rm", "-q", "m.bin.mvc")
    (repo / "m.bin.mvc").mkdir()
    (repo / "m.bin.mvc" / "x").write_text("x")
    git(repo, "add", "m.bin.mvc")
    git(repo, "commit", "-q", "-m", "a directory")
    with Repo(str(repo)) as r:
        assert bases.previous(r, "m.bin", oids_[2]) == [oids_[1], oids_[0]]
        assert bases.previous(r, "m.bin", oids_[1]) == [oids_[0]]
        assert bases.previous(r, "m.bin", "0" * 32) == [oids_[2], oids_[1]]  # not committed: from HEAD back
        assert bases.previous(r, "m.bin", oids_[0]) == []
        assert bases.previous(r, "other.bin", oids_[0]) == []
    code = "import sys; from mvc.repo import bases, repository as r; bases.previous(r.Repo('.'), 'm.bin', ''); "
    code += "print('pygit2' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr


def test_the_previous_versions_of_a_directorys_file_are_those_at_its_path_in_earlier_manifests(repo, mvc_cli):
    """A file of a tracked directory is based on the objects at its relative path in the directory's earlier
    manifests, newest first, never a newer one; a renamed or added file has none, nor does a file moved out of
    the directory (a new tracked path); a manifest the cache lacks is passed over. One git rev-list and one git
    cat-file for the directory, however many of its files."""
    from mvc.repo import bases
    from mvc.repo.repository import Repo

    def oids_in(d: str) -> dict[str, str]:
        return {p.name: oid_of(p.read_bytes()) for p in sorted((repo / d).iterdir())}

    def commit(msg: str) -> dict[str, str]:
        mvc_cli("add", "llm")
        git(repo, "commit", "-q", "-m", msg)
        return oids_in("llm")

    make_file(repo / "llm" / "a.bin", 1000, seed=1)
    make_file(repo / "llm" / "b.bin", 1000, seed=2)
    v1 = commit("v1")
    make_file(repo / "llm" / "a.bin", 1000, seed=3)
    (repo / "llm" / "b.bin").unlink()
    make_file(repo / "llm" / "b2.bin", 1000, seed=4)  # b renamed (and changed)
    make_file(repo / "llm" / "c.bin", 1000, seed=5)  # added
    v2 = commit("v2")
    make_file(repo / "llm" / "a.bin", 1000, seed=6)
    v3 = commit("v3")
    with Repo(str(repo)) as r:
        calls: list[str] = []
        run = r.git.run
        r.git.run = lambda *a, **k: calls.append(a[0]) or run(*a, **k)  # type: ignore[method-assign]
        files = {v3["a.bin"]: "llm", v2["a.bin"]: "llm", v2["b2.bin"]: "llm", v2["c.bin"]: "llm"}
        got = bases.bases_for(r, files)
        assert got == {v3["a.bin"]: [v2["a.bin"], v1["a.bin"]], v2["a.bin"]: [v1["a.bin"]]}
        assert calls == ["rev-list", "cat-file"]
        inside = {v3["a.bin"]: "a.bin", v2["b2.bin"]: "b2.bin", v2["c.bin"]: "c.bin"}
        assert bases.bases_for(r, files, inside) == got
        fresh = "0" * 32  # a version not committed yet: from HEAD back
        assert bases.bases_for(r, {fresh: "llm"}, {fresh: "a.bin"}) == {fresh: [v3["a.bin"], v2["a.bin"]]}
        assert bases.bases_for(r, {fresh: "llm"}) == {}  # where in the directory: nothing says
        assert bases.previous(r, "llm", v3["a.bin"]) == []  # a directory has no file versions
    (repo / "llm" / "a.bin").rename(repo / "a.bin")  # moved out of the directory, changed
    make_file(repo / "a.bin", 1000, seed=7)
    mvc_cli("add", "a.bin", "llm")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a moved out")
    out = oid_of((repo / "a.bin").read_bytes())
    with Repo(str(repo)) as r:
        assert bases.bases_for(r, {out: "a.bin"}) == {}
        assert bases.bases_for(r, {v3["a.bin"]: "llm"}) == {v3["a.bin"]: [v2["a.bin"], v1["a.bin"]]}
        v2_manifest = bases._History(r, "llm", "HEAD").pointers[2].oid
        os.chmod(r.odb.path(v2_manifest), 0o644)
        os.unlink(r.odb.path(v2_manifest))
        assert not r.odb.exists(v2_manifest)
        assert bases.bases_for(r, {v3["a.bin"]: "llm"}) == {v3["a.bin"]: [v1["a.bin"]]}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 200_000), min_size=1, max_size=24), st.randoms(use_true_random=False))
def test_a_file_written_in_pieces_in_any_order_is_hashed_behind_the_writes(sizes, rnd):
    """A rebuild's threads write their pieces in any order; the hash reads the file up to the first piece still
    to come, and its digest is that of the whole file."""
    import tempfile
    import threading

    from mvc.storage.parallel import HashBehind

    data = random.Random(len(sizes)).randbytes(sum(sizes))
    starts, at = [], 0
    for n in sizes:
        starts.append(at)
        at += n
    order = list(range(len(sizes)))
    rnd.shuffle(order)
    with tempfile.TemporaryFile() as f:
        hasher = HashBehind(f.fileno(), len(data), starts, None)
        stop = threading.Event()
        reader = threading.Thread(target=hasher.run, args=(stop,))
        reader.start()
        for i in order:
            os.pwrite(f.fileno(), data[starts[i] : starts[i] + sizes[i]], starts[i])
            hasher.done(starts[i])
        reader.join(10)
        assert not reader.is_alive()
    assert hasher.hexdigest() == xxhash.xxh3_128_hexdigest(data)


def test_a_failed_write_releases_the_hash():
    import tempfile
    import threading

    from mvc.storage.parallel import HashBehind

    with tempfile.TemporaryFile() as f:
        os.pwrite(f.fileno(), b"x" * 10, 0)
        hasher = HashBehind(f.fileno(), 30, [0, 10, 20], None)
        hasher.done(0)
        stop = threading.Event()
        reader = threading.Thread(target=hasher.run, args=(stop,))
        reader.start()
        stop.set()  # the piece at 10 failed: run_parallel sets stop
        reader.join(5)
        assert not reader.is_alive()
    with pytest.raises(AssertionError):
        hasher.hexdigest()


def test_a_window_at_the_front_is_hashed_from_memory_and_catches_up_only_over_written_bytes(tmp_path):
    """HashBehind.feed: a piece's first bytes hash what lies written before them, then themselves (not yet in the
    file); a later window follows on; bytes not at the front are refused (read back once written); ``clear``
    (the piece's bytes before these are in the file) lets a run that starts inside its piece catch up, but only
    while no other write before it is still to come."""
    from mvc.storage.parallel import HashBehind

    data = bytes(range(256)) * 4  # 1024 bytes: [0, 100) written, piece A [100, 600), piece B [600, 1024)
    path = tmp_path / "f"
    path.write_bytes(data[:100] + bytes(924))
    with open(path, "rb") as f:
        h = HashBehind(f.fileno(), len(data), [100, 600], None)
        assert not h.feed(memoryview(data)[650:700], 650, 600, clear=True)  # piece A still to come before it
        assert not h.feed(memoryview(data)[150:200], 150, 100)  # not at the front, not clear
        assert h.feed(memoryview(data)[100:150], 100, 100)  # at its piece's start: [0, 100) read back, then it
        assert h.at == 150
        assert h.feed(memoryview(data)[150:600], 150, 100)
        h.done(100)
        path.write_bytes(data[:600] + data[600:650] + bytes(374))  # B's first 50 bytes copied (in the file)
        assert h.feed(memoryview(data)[650:1024], 650, 600, clear=True)  # [600, 650) read back, then the rest
        h.done(600)
        assert h.hexdigest() == xxhash.xxh3_128_hexdigest(data)


def test_run_parallel_ends_its_threads_when_ctrl_c_lands_in_a_thread_start(monkeypatch):
    """A Ctrl-C landing in Thread.start (after the thread began, before run_parallel knew of it): the
    KeyboardInterrupt is raised once the running calls end; no thread is left waiting for work."""
    import threading
    import time

    from mvc.storage import parallel

    real_start = threading.Thread.start
    started = [0]

    def start(self):
        real_start(self)
        started[0] += 1
        if started[0] == 2:
            raise KeyboardInterrupt  # as a SIGINT landing in start()'s wait for the thread

    outcome: list[str] = []

    def call() -> None:
        try:
            parallel.run_parallel(lambda item: time.sleep(0.2 if item == "a" else 0.01), ["a", "b", "c"], 2)
            outcome.append("returned")
        except KeyboardInterrupt:
            outcome.append("raised")

    runner = threading.Thread(target=call, daemon=True)
    monkeypatch.setattr(threading.Thread, "start", start)
    real_start(runner)  # (its workers are the first and second threads started from here on)
    runner.join(10)
    monkeypatch.undo()
    assert not runner.is_alive(), "run_parallel waits forever for a thread it did not count"
    assert outcome == ["raised"]
    assert not [t for t in threading.enumerate() if t.name.startswith("mvc-remote")]


def test_a_push_sends_each_version_after_its_bases():
    """transfer.bases_first: bases going up in the same push come first (a history listed newest first), the
    best base before the others; a cycle that --base choices close is cut, every version sent once."""
    from mvc.objects.transfer import bases_first

    v = [fake_oid(i) for i in range(5)]
    assert bases_first([v[3], v[2], v[1]], {v[3]: [v[2], v[1]], v[2]: [v[1], v[0]]}) == [v[1], v[2], v[3]]
    assert bases_first([v[1], v[2]], {v[1]: [v[2]], v[2]: [v[1]]}) == [v[2], v[1]]
    assert bases_first([v[4], v[0]], {v[4]: [v[3], v[0]]}) == [v[0], v[4]]
    assert bases_first([], {}) == []
