"""A delta rebuilt through a small window (``delta.patch_through``): the base read a window at a time, the
changes that fall there added, the window handed on. It must give exactly what ``delta.decode`` gives, whatever
the window, the lane width, the blocks its list of changes is read in; and refuse what decode refuses (a damaged
frame, changes past the end) and a base that ends first, always with CorruptObject. Every case runs on both
decoders that read through a window, compiled and numpy, which must agree."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_chunked import CHANGES, DECODERS, decoding, lightly_tuned, sparse_frame

from mvc.errors import CorruptObject
from mvc.objects import delta


def through(frame: bytes, base: bytes, lane: int, window: int, cut: int | None = None, codec: str = "zs") -> bytes:
    """What patch_through writes, gathered (each window written once, in order), on every decoder that reads
    through a window: the same bytes, or the same kind of error (raised); ``cut``: the base's bytes end there."""
    got: list[tuple[type | None, bytes | str]] = []
    for how in DECODERS[delta._native() is None : 2]:
        with decoding(how):
            try:
                got.append((None, _through(frame, base, lane, window, cut, codec)))
            except (CorruptObject, ValueError) as e:
                got.append((type(e), str(e)))
    assert len({kind or value for kind, value in got}) == 1, got  # (errors may name different lanes past the end)
    kind, value = got[0]
    if kind is not None:
        raise kind(value)
    assert isinstance(value, bytes)
    return value


def _through(frame: bytes, base: bytes, lane: int, window: int, cut: int | None, codec: str) -> bytes:
    out = bytearray(len(base))
    held = base if cut is None else base[:cut]
    at = 0

    def read(start: int, view: memoryview) -> int:
        got = held[start : start + len(view)]
        view[: len(got)] = got
        return len(got)

    def write(view: memoryview, start: int) -> None:
        nonlocal at
        assert start == at and len(view) <= window  # in order, each window once, never past the window
        out[start : start + len(view)] = view
        at += len(view)

    delta.patch_through(frame, len(base), lane, "delta X", memoryview(bytearray(window)), read, write, codec)
    assert at == len(base)
    return bytes(out)


@pytest.mark.parametrize("lane", delta.LANES)
@pytest.mark.parametrize("window", [8, 24, 4100, 1 << 20])
def test_a_windowed_rebuild_gives_the_decoded_bytes(lane, window):
    new, base = lightly_tuned(lane, 5000 * lane, lane, 0.05)
    frame = delta.encode_sparse(new, base, lane)
    assert through(frame, base, lane, window) == new == bytes(delta.decode(frame, base, lane, "x", None, "zs"))


def test_a_window_smaller_than_a_lane_or_not_a_whole_number_of_lanes():
    new, base = lightly_tuned(4, 400, 3, 0.2)
    frame = delta.encode_sparse(new, base, 4)
    assert through(frame, base, 4, 10) == new  # 8 bytes a window: whole lanes
    with pytest.raises(ValueError, match="at least one lane"):
        through(frame, base, 4, 7)


def test_changes_read_in_many_blocks_land_in_the_right_windows(monkeypatch):
    monkeypatch.setattr(delta, "BLOCK", 7)  # blocks end inside windows, windows inside blocks
    new, base = lightly_tuned(2, 6000, 9, 0.3)
    frame = delta.encode_sparse(new, base, 2)
    for window in (8, 66, 1000, 6000):
        assert through(frame, base, 2, window) == new


def test_identical_bytes_and_every_lane_changed():
    base = bytes(range(256)) * 8
    assert through(delta.encode_sparse(base, base, 2), base, 2, 100) == base
    moved = bytes((b + 1) & 255 for b in base)
    assert through(delta.encode_sparse(moved, base, 1), base, 1, 100) == moved


def test_a_base_that_ends_first_is_refused():
    new, base = lightly_tuned(2, 2000, 5, 0.1)
    frame = delta.encode_sparse(new, base, 2)
    with pytest.raises(CorruptObject, match="base ends before byte"):
        through(frame, base, 2, 256, cut=900)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(delta.LANES), st.integers(0, 60), CHANGES, st.integers(8, 80), st.integers(1, 9))
def test_any_list_of_changes_rebuilds_as_decode_does_or_is_refused_as_there(lane, k, changes, window, block):
    saved = delta.BLOCK
    delta.BLOCK = block
    try:
        base = bytes((i * 7) & 255 for i in range(k * lane))
        frame = sparse_frame([g for g, _ in changes], [v % (1 << (8 * lane)) for _, v in changes], lane)
        try:
            want: bytes | None = bytes(delta.decode(frame, base, lane, "x", None, "zs"))
        except CorruptObject:
            want = None
        try:
            got: bytes | None = through(frame, base, lane, window)
        except CorruptObject:
            got = None
        except ValueError:
            assert window < max(delta.LANES)
            return
        assert got == want
    finally:
        delta.BLOCK = saved


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(delta.LANES), st.integers(0, 40), st.integers(8, 64))
def test_any_bytes_as_a_frame_raise_only_corrupt_object(data, lane, k, window):
    base = bytes((i * 5) & 255 for i in range(k * lane))
    try:
        got = through(data, base, lane, window)
    except CorruptObject:
        return
    assert len(got) == len(base)


@pytest.mark.parametrize("lane", delta.LANES)
@pytest.mark.parametrize("window", [8, 24, 4100])
def test_a_dense_delta_through_the_window_gives_the_decoded_bytes(lane, window):
    rng = random.Random(lane)
    base = rng.randbytes(3000 * lane)
    new = bytes((b + rng.choice((0, 1, 255, 2))) & 255 for b in base)  # every lane may move
    frame = delta.encode(new, base, lane)
    assert through(frame, base, lane, window, codec="zd") == new == bytes(delta.decode(frame, base, lane, "x"))
    with pytest.raises(CorruptObject, match="base ends before byte"):
        through(frame, base, lane, window, cut=len(base) - lane, codec="zd")
    with pytest.raises(CorruptObject, match="no delta codec is named 'zq'"):
        through(frame, base, lane, window, codec="zq")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(delta.LANES), st.integers(0, 40), st.integers(8, 64))
def test_any_bytes_as_a_dense_frame_fail_as_decode_fails(data, lane, k, window):
    """Whatever the frame, the window gives what decode gives, or both refuse it."""
    base = bytes((i * 5) & 255 for i in range(k * lane))
    try:
        want: bytes | None = bytes(delta.decode(data, base, lane, "x", None, "zd"))
    except CorruptObject:
        want = None
    try:
        got: bytes | None = through(data, base, lane, window, codec="zd")
    except CorruptObject:
        got = None
    assert got == want
