"""The compiled adder of a delta's differences (``mvc.objects._patch``, built at install where a C compiler was at
hand): it reads untrusted frames, so every argument that disagrees with its buffers is refused with ValueError,
and whatever the bytes, it adds exactly what the format says (a reference in Python here) or refuses."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_chunked import CHANGES

from mvc.objects import delta

patch = pytest.importorskip("mvc.objects._patch", reason="mvc.objects._patch was not compiled at install")


def planes(values: list[int], width: int) -> bytes:
    """values as byte planes of width bytes (byte i of every value together)."""
    return b"".join(bytes((v >> (8 * i)) & 255 for v in values) for i in range(width))


def unzigzag(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def reference_sparse(window: bytearray, gaps: list[int], values: list[int], w: int, k: int) -> bytes | None:
    """The format's arithmetic over the whole base at once; None where a change falls at or past lane k."""
    out, place = bytearray(window), -1
    for g, v in zip(gaps, values, strict=True):
        place += g + 1
        if place >= k:
            return None
        a = int.from_bytes(out[place * w : (place + 1) * w], "little") + unzigzag(v)
        out[place * w : (place + 1) * w] = (a % (1 << (8 * w))).to_bytes(w, "little")
    return bytes(out)


def sparse_in_windows(base: bytes, raw: bytes, m: int, w: int, k: int, lanes: int) -> bytes:
    """base patched by patch.sparse a window of ``lanes`` lanes at a time, in order."""
    out, state = bytearray(base), (0, -1)
    for first in range(0, max(k, 1), lanes):  # (an empty base: one empty window)
        view = memoryview(out)[first * w : min(k, first + lanes) * w]
        state = patch.sparse(view, raw, m, w, first, *state, k)
    assert state[0] == m  # every change was added
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(delta.LANES), st.integers(0, 50), CHANGES, st.integers(1, 60))
def test_any_changes_in_any_windows_add_what_the_format_says_or_are_refused(w, k, changes, lanes):
    base = bytes((i * 11) & 255 for i in range(k * w))
    gaps, values = [g for g, _ in changes], [v % (1 << (8 * w)) for _, v in changes]
    raw, want = planes(gaps, delta.GAP) + planes(values, w), reference_sparse(bytearray(base), gaps, values, w, k)
    try:
        got: bytes | None = sparse_in_windows(base, raw, len(changes), w, k, lanes)
    except ValueError as e:
        assert "past the" in str(e)
        got = None
    assert got == want


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(delta.LANES), st.integers(0, 40), st.integers(0, 80))
def test_any_bytes_as_planes_never_read_or_write_out_of_bounds(raw, w, k, m):
    """m may claim more entries than raw holds: refused before any read (under a sanitizer-free build, what this
    can show is that the claim is checked and the result is the reference's)."""
    base = bytes(k * w)
    if m > len(raw) // (delta.GAP + w):
        with pytest.raises(ValueError, match="shorter than their entries"):
            patch.sparse(bytearray(base), raw, m, w, 0, 0, -1, k)
        return
    gaps = [int.from_bytes(bytes(raw[i * m + j] for i in range(delta.GAP)), "little") for j in range(m)]
    values = [int.from_bytes(bytes(raw[(delta.GAP + i) * m + j] for i in range(w)), "little") for j in range(m)]
    want = reference_sparse(bytearray(base), gaps, values, w, k)
    try:
        got: bytes | None = sparse_in_windows(base, raw, m, w, k, 7)
    except ValueError:
        got = None
    assert got == want


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param((bytearray(8), b"", 0, 3, 0, 0, -1, 4), "1, 2, 4 or 8", id="lane-of-3-bytes"),
        pytest.param((bytearray(8), b"", 0, 16, 0, 0, -1, 4), "1, 2, 4 or 8", id="lane-of-16-bytes"),
        pytest.param((bytearray(8), bytes(11), 2, 2, 0, 0, -1, 4), "shorter than their entries", id="short-planes"),
        pytest.param((bytearray(8), bytes(12), -1, 2, 0, 0, -1, 4), "shorter than their entries", id="negative-m"),
        pytest.param((bytearray(8), bytes(12), 2, 2, 0, 3, -1, 4), "no such place", id="j-past-m"),
        pytest.param((bytearray(8), bytes(12), 2, 2, 0, -1, -1, 4), "no such place", id="negative-j"),
        pytest.param((bytearray(8), bytes(12), 2, 2, 0, 0, -2, 4), "no such place", id="place-before-minus-one"),
        pytest.param((bytearray(8), bytes(12), 2, 2, 0, 0, 4, 4), "no such place", id="place-at-k"),
        pytest.param((bytearray(8), bytes(12), 2, 2, -1, 0, -1, 4), "no such place", id="negative-first"),
        pytest.param((bytearray(8), bytes(12), 2, 2, 5, 0, -1, 4), "more lanes than", id="first-past-k"),
        pytest.param(  # sums near the largest index would overflow
            (bytearray(8), bytes(12), 2, 2, sys.maxsize, 0, -1, sys.maxsize), "more lanes than", id="huge-first"
        ),
        pytest.param(
            (bytearray(8), b"\xff\xff" * 4 + bytes(4), 2, 2, 0, 0, sys.maxsize - 2, sys.maxsize),
            "more lanes than",
            id="huge-place",
        ),
    ],
)
def test_sparse_refuses_arguments_that_disagree(args, words):
    with pytest.raises(ValueError, match=words):
        patch.sparse(*args)


def test_a_window_must_be_writable():
    with pytest.raises(TypeError):
        patch.sparse(bytes(8), bytes(12), 2, 2, 0, 0, -1, 4)


def test_sparse_stops_at_the_first_change_past_the_window_and_goes_on_from_there():
    gaps, values = [0, 5, 0], [2, 4, 6]  # lanes 0, 6 and 7 move by +1, +2, +3
    raw = planes(gaps, delta.GAP) + planes(values, 2)
    out = bytearray(16)
    assert patch.sparse(memoryview(out)[:8], raw, 3, 2, 0, 0, -1, 8) == (1, 0)  # lanes 0..3
    assert patch.sparse(memoryview(out)[8:], raw, 3, 2, 4, 1, 0, 8) == (3, 7)  # lanes 4..7
    assert out == bytes([1, 0] + [0] * 10 + [2, 0, 3, 0])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(delta.LANES), st.integers(0, 40), st.binary(max_size=400), st.integers(1, 50))
def test_dense_adds_every_lane_as_the_format_says(w, k, noise, lanes):
    values = (
        [int.from_bytes((noise * (w * k + 1))[j * w : (j + 1) * w], "little") for j in range(k)] if noise else [0] * k
    )
    base = bytes((i * 3) & 255 for i in range(k * w))
    raw = planes(values, w)
    out = bytearray(base)
    for first in range(0, max(k, 1), lanes):  # (an empty base: one empty window)
        patch.dense(memoryview(out)[first * w : min(k, first + lanes) * w], raw, k, w, first)
    want = bytearray(base)
    for j, v in enumerate(values):
        a = int.from_bytes(want[j * w : (j + 1) * w], "little") + unzigzag(v)
        want[j * w : (j + 1) * w] = (a % (1 << (8 * w))).to_bytes(w, "little")
    assert out == want


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param((bytearray(8), bytes(8), 4, 3, 0), "1, 2, 4 or 8", id="lane-of-3-bytes"),
        pytest.param((bytearray(8), bytes(7), 4, 2, 0), "shorter than their lanes", id="short-planes"),
        pytest.param((bytearray(8), bytes(8), 4, 2, 1), "past the last lane", id="window-past-the-end"),
        pytest.param((bytearray(8), bytes(8), 4, 2, -1), "past the last lane", id="negative-first"),
        pytest.param((bytearray(8), bytes(8), -1, 2, 0), "shorter than their lanes", id="negative-count"),
    ],
)
def test_dense_refuses_arguments_that_disagree(args, words):
    with pytest.raises(ValueError, match=words):
        patch.dense(*args)


def test_a_frame_decoded_once_serves_two_adders_taking_every_other_window():
    """delta.Frame, as two threads taking turns use it: each adder adds the windows it takes and passes over the
    others'; together they give what decode gives."""
    from test_chunked import lightly_tuned

    new, base = lightly_tuned(2, 40_000, 3, 0.05)
    frame = delta.Frame(delta.encode_sparse(new, base, 2), len(base), 2, "x", delta.ZS)
    out, adders = bytearray(base), (frame.adder(), frame.adder())
    for i, (start, end) in enumerate(delta.windows(len(base), 2, 1000)):
        adders[i % 2](memoryview(out)[start:end], start // 2)
    assert out == new == bytes(delta.decode(delta.encode_sparse(new, base, 2), base, 2, "x", None, delta.ZS))


@pytest.mark.parametrize("codec", delta.CODECS)
def test_a_frame_refuses_what_decode_refuses(codec):
    from test_chunked import garbage_frames, sparse_frame

    from mvc.errors import CorruptObject

    for data in garbage_frames(64).values():  # refused as decode refuses them (a frame of zero changes is none)
        try:
            delta.decode(data, bytes(64), 2, "delta X", None, codec)
        except CorruptObject as e:
            with pytest.raises(CorruptObject, match="delta X"):
                delta.Frame(data, 64, 2, "delta X", codec)
            assert "delta X" in str(e)
        else:
            delta.Frame(data, 64, 2, "delta X", codec)
    with pytest.raises(CorruptObject, match="lane 9, past the 8"):
        delta.Frame(sparse_frame([9], [2], 2), 16, 2, "delta X", delta.ZS)  # refused before any window
    with pytest.raises(CorruptObject, match="cannot have lanes of 4"):
        delta.Frame(sparse_frame([0], [2], 2), 6, 4, "delta X", codec)
