"""Deltas: a tensor stored as its difference from the same tensor of a base version (docs/FORMAT.md,
"Deltas").

A fine-tune moves every weight a little, so its bytes share no chunk with the base version, but the
difference of each value's bit pattern from the base's is a small integer. The codec ``zd`` takes the
bytes as little-endian integers of the tensor's element width (lanes), subtracts the base lane by lane
(modulo 2^bits: no borrow crosses a lane), maps the differences to unsigned ones near zero (zigzag:
0, -1, 1, -2 … -> 0, 1, 2, 3 …), splits them into byte planes (every lane's byte 0, then every byte 1,
…: the high bytes are nearly all zero) and compresses that with zstd.

With numpy installed (``mvc[deltas]``) the lanes are numpy arrays. Without it the same arithmetic runs
on Python's big integers, one integer per segment (SWAR: masks keep each lane's borrow and carry in
it), about ten times slower: writers make deltas only with numpy, readers decode them either way, to the
same bytes. Decoding takes no new memory but its output (or none, given where to write): the frame is
decompressed into a buffer of the calling thread and the lanes rebuilt in place, since fresh pages are what
costs most here (docs/benchmarks.md, "Fresh memory").

A light fine-tune leaves most lanes as they were (only about 1 % of bf16 values move at relative updates
of 1e-3), and decompressing a whole frame of zero planes is what a dense delta's reader spends its time
on. The codec ``zs`` lists only the lanes that changed: the gaps between their places and their zigzag
differences, as byte planes in a zstd frame. Its reader copies the base and adds the few differences in
place, several times faster than ``zd`` and smaller too while at most a quarter of the lanes changed
(docs/benchmarks.md, "Early afternoon of 2026-12-03: sparse deltas"); ``best`` picks between the two.
This module knows nothing of stores or files.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from mvc.errors import CorruptObject

ZD = "zd"  # dense: every lane's difference (docs/FORMAT.md, "Delta codec")
ZS = "zs"  # sparse: the lanes that changed, and their differences (layout format 3)
CODECS = (ZD, ZS)
SPARSE_BELOW = 4  # zs when at most 1/SPARSE_BELOW of the lanes changed: smaller and faster to read than zd
GAP = 4  # bytes of a zs entry's gap (a delta covers at most 64 MiB: 2^26 lanes)
BLOCK = 1 << 18  # a zs reader adds this many differences at a time (its memory, whatever the delta claims)
LANES = (1, 2, 4, 8)  # element widths in bytes
LEVEL = 1  # zstd level: as small as 3 on fine-tunes, and faster (docs/benchmarks.md, "Issue 12")
SEGMENT = 4 << 20  # a delta covers at most this many bytes of a tensor (memory, parallel reads)
SCRATCH_MAX = 2 * SEGMENT  # a thread keeps buffers this large for the next decode; larger ones are let go

_scratch = threading.local()
# A frame whose bytes take more than SCRATCH_MAX decodes alone: a writer's deltas cover SEGMENT bytes, so only a
# foreign or hostile one waits, and a recipe of 64 MiB `zs` deltas that each declare 5 × their size (what the
# format allows at lanes of one byte) costs one such buffer at a time, not one per reading thread.
_large = threading.Lock()


def _buffer(name: str, n: int) -> memoryview:
    """n bytes of the calling thread's buffer ``name``, kept for its next decode (when at most SCRATCH_MAX)."""
    buf: bytearray | None = getattr(_scratch, name, None)
    if buf is None or len(buf) < n:
        buf = bytearray(n)
        if n <= SCRATCH_MAX:
            setattr(_scratch, name, buf)
    return memoryview(buf)[:n]


@functools.lru_cache(maxsize=16)
def _masks(n: int, w: int) -> tuple[int, int, int]:
    """(every lane's top bit, every lane's low bit, every lane's bits but the top) for n bytes of w-byte lanes."""
    top = b"\x00" * (w - 1) + b"\x80"
    low = b"\x01" + b"\x00" * (w - 1)
    rest = b"\xff" * (w - 1) + b"\x7f"
    k = n // w
    return (
        int.from_bytes(top * k, "little"),
        int.from_bytes(low * k, "little"),
        int.from_bytes(rest * k, "little"),
    )


def _lane_mask(w: int) -> int:
    return (1 << (8 * w)) - 1


def _planes(data: bytes, w: int) -> bytes:
    if w == 1:
        return data
    return b"".join(data[i::w] for i in range(w))


def _unplanes(data: bytes, w: int) -> bytes:
    if w == 1:
        return data
    k = len(data) // w
    out = bytearray(len(data))
    for i in range(w):
        out[i::w] = data[i * k : (i + 1) * k]
    return bytes(out)


def fast() -> bool:
    """Whether numpy is there to make deltas at a writer's speed."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _native() -> Any:
    """mvc.objects._patch (compiled at install where a C compiler was at hand), else None: numpy does the same
    (docs/ARCHITECTURE.md, "Compiled code")."""
    try:
        from mvc.objects import _patch
    except ImportError:
        return None
    return _patch


def compiled() -> bool:
    """Whether mvc.objects._patch was compiled at install."""
    return _native() is not None


def reads_fast() -> bool:
    """Whether deltas are read at speed: compiled, or with numpy."""
    return _native() is not None or fast()


def _check(new: bytes, base: bytes, w: int) -> None:
    if len(base) != len(new) or w not in LANES or len(new) % w:
        raise ValueError("a delta needs two byte strings of one length, a multiple of a lane width of 1, 2, 4 or 8")


def _compress(raw: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=LEVEL).compress(raw)


def encode(new: bytes, base: bytes, w: int) -> bytes:
    """The dense (zd) delta of new against base, both the same length, a multiple of the lane width w."""
    _check(new, base, w)
    return _compress(_zigzag_numpy(new, base, w) if fast() else _zigzag_ints(new, base, w))


def encode_sparse(new: bytes, base: bytes, w: int) -> bytes:
    """The sparse (zs) delta of new against base (numpy only: writers make deltas only with it)."""
    _check(new, base, w)
    return _compress(_sparse_numpy(_differences(new, base, w), w))


def best(new: bytes, base: bytes, w: int) -> tuple[str, bytes]:
    """(codec, delta) of new against base: zs when at most 1/SPARSE_BELOW of the lanes changed, else zd."""
    _check(new, base, w)
    if not fast():
        return ZD, encode(new, base, w)
    import numpy as np

    d = _differences(new, base, w)
    if np.count_nonzero(d) * SPARSE_BELOW <= len(d):
        return ZS, _compress(_sparse_numpy(d, w))
    return ZD, _compress(_planes_numpy(_zigzag(d, w), w))


def _differences(new: bytes, base: bytes, w: int) -> Any:
    import numpy as np

    unsigned = np.dtype(f"<u{w}")
    return np.frombuffer(new, unsigned) - np.frombuffer(base, unsigned)  # wraps modulo 2^bits


def _zigzag(d: Any, w: int) -> Any:
    unsigned = d.dtype
    return (d << unsigned.type(1)) ^ (d.view(f"<i{w}") >> (8 * w - 1)).view(unsigned)


def _planes_numpy(z: Any, w: int) -> bytes:
    import numpy as np

    return z.view(np.uint8).reshape(-1, w).T.tobytes()  # byte planes


def _zigzag_numpy(new: bytes, base: bytes, w: int) -> bytes:
    return _planes_numpy(_zigzag(_differences(new, base, w), w), w)


def _sparse_numpy(d: Any, w: int) -> bytes:
    """zs's frame content: the gap before each changed lane (its place minus the last one's, minus one; the first:
    its place) as GAP-byte planes, then their zigzag differences as w-byte planes."""
    import numpy as np

    places = np.flatnonzero(d)
    gaps = np.diff(places, prepend=-1) - 1
    return _planes_numpy(gaps.astype("<u4"), GAP) + _planes_numpy(_zigzag(d[places], w), w)


def _unzigzag_numpy(
    raw: bytes | memoryview, base: bytes | memoryview, w: int, out: memoryview | bytearray | None = None
) -> memoryview:
    """Lanes rebuilt from raw's planes and added to base, in out (or a new buffer); the only other memory is
    one lane-wide buffer of the calling thread."""
    import numpy as np

    unsigned = np.dtype(f"<u{w}")
    k = len(raw) // w
    planes = np.frombuffer(raw, np.uint8)
    z = np.frombuffer(out, unsigned, count=k) if out is not None else np.empty(k, unsigned)
    t = np.frombuffer(_buffer("lanes", k * w), unsigned)
    np.copyto(z, planes[:k], casting="unsafe")  # lanes rebuilt plane by plane: faster than a strided transpose
    for i in range(1, w):
        np.copyto(t, planes[i * k : (i + 1) * k], casting="unsafe")
        np.left_shift(t, unsigned.type(8 * i), out=t)
        np.bitwise_or(z, t, out=z)
    one = unsigned.type(1)
    np.bitwise_and(z, one, out=t)
    np.negative(t, out=t)  # the sign: 0 or all ones (unsigned arithmetic wraps)
    np.right_shift(z, one, out=z)
    np.bitwise_xor(z, t, out=z)
    np.add(z, np.frombuffer(base, unsigned, count=k), out=z)
    return z.view(np.uint8).data  # the array's own bytes: no copy


def _zigzag_ints(new: bytes, base: bytes, w: int) -> bytes:
    n = len(new)
    top, _, rest = _masks(n, w)
    a = int.from_bytes(new, "little")
    b = int.from_bytes(base, "little")
    # lane-wise a - b modulo 2^bits: borrow-free SWAR subtraction
    d = ((a | top) - (b & rest)) ^ ((a ^ ~b) & top)
    d &= (1 << (8 * n)) - 1
    # zigzag per lane: (d << 1) ^ (sign of d spread over the lane)
    sign = ((d & top) >> (8 * w - 1)) * _lane_mask(w)
    z = ((d & rest) << 1) ^ sign
    return _planes(z.to_bytes(n, "little"), w)


def decode(
    delta: bytes | memoryview,
    base: bytes | memoryview,
    w: int,
    where: str,
    out: memoryview | bytearray | None = None,
    codec: str = ZD,
) -> bytes | memoryview:
    """The bytes a delta of base encodes, written into ``out`` (len(base) writable bytes) when given; CorruptObject
    (naming where) if it does not decode to len(base) bytes."""
    n = len(base)
    _fits(n, w, codec, where)
    declared = _content_size(delta, where)  # the frame's own word, read once: checked below before any use
    with _large if max(n, declared) > SCRATCH_MAX else contextlib.nullcontext():
        if _native() is not None:
            target = memoryview(out if out is not None else bytearray(n))[:n]
            if out is not base:  # (a caller may hand the base's own bytes, to be patched in place)
                target[:] = base
            _adder(delta, declared, n, w, where, codec)(target, 0)
            return target
        if codec == ZS:
            got = _decode_sparse(delta, declared, base, w, where, out)
        elif fast():
            return _unzigzag_numpy(_decompress(delta, declared, n, where), base, w, out)
        else:
            got = _unzigzag_ints(bytes(_decompress(delta, declared, n, where)), base, w)
    if out is None or isinstance(got, memoryview):
        return got
    view = memoryview(out)[:n]
    view[:] = got
    return view


def _decode_sparse(
    delta: bytes | memoryview,
    declared: int,
    base: bytes | memoryview,
    w: int,
    where: str,
    out: memoryview | bytearray | None,
) -> bytes | memoryview:
    """base with the changes a zs delta (whose frame declares ``declared`` bytes) lists added (in out when given,
    else new memory)."""
    raw, m = _sparse_raw(delta, declared, len(base), w, where)
    if not fast():
        return _sparse_apply_ints(bytes(raw), m, base, w, where)
    import numpy as np

    k = len(base) // w
    z = np.frombuffer(out, f"<u{w}", count=k) if out is not None else np.empty(k, f"<u{w}")
    if out is not base:  # (a caller may hand the base's own bytes, to be patched in place)
        np.copyto(z, np.frombuffer(base, f"<u{w}", count=k))
    for places, differences in _sparse_blocks(raw, m, k, w, where):
        z[places] += differences  # modulo 2^bits
    return z.view(np.uint8).data


def _sparse_raw(
    delta: bytes | memoryview, declared: int, n: int, w: int, where: str, own: bool = False
) -> tuple[memoryview, int]:
    """(the decompressed frame of a zs delta of n bytes, in the calling thread's buffer (``own``: memory of its
    own); its count of changes)."""
    k, unit = n // w, GAP + w
    if declared % unit or declared > k * unit:
        raise CorruptObject(
            f"{where}: the sparse delta declares {declared} bytes, not at most {k} changes of {unit} bytes each"
        )
    return _decompress(delta, declared, declared, where, "it declares", own), declared // unit


def _past_end(where: str, place: int, k: int) -> CorruptObject:
    return CorruptObject(f"{where}: the sparse delta changes lane {place}, past the {k} lanes of its base")


def _sparse_blocks(raw: memoryview, m: int, k: int, w: int, where: str) -> Iterator[tuple[Any, Any]]:
    """The m changes of a zs frame, BLOCK at a time (its memory, whatever the frame claims): (their lanes, in
    increasing order, each below k; the differences to add there, modulo 2^bits)."""
    import numpy as np

    planes = np.frombuffer(raw, np.uint8)
    last = -1
    for start in range(0, m, BLOCK):
        stop = min(m, start + BLOCK)
        places = _interleaved(planes, m, 0, GAP, start, stop).astype(np.int64)
        places += 1
        np.cumsum(places, out=places)
        places += last
        if places[-1] >= k:
            raise _past_end(where, int(places[-1]), k)
        last = int(places[-1])
        yield places, _unzigzag(_interleaved(planes, m, GAP, w, start, stop))


def _interleaved(planes: Any, m: int, first: int, width: int, start: int, stop: int) -> Any:
    """Lanes start..stop of the planes first..first+width (each m bytes long), as little-endian integers of width
    bytes: the bytes interleaved, then read as integers (fewer passes than shifts and ors)."""
    import numpy as np

    x = np.empty((stop - start, width), np.uint8)
    for i in range(width):
        x[:, i] = planes[(first + i) * m + start : (first + i) * m + stop]
    return x.view(f"<u{width}").reshape(stop - start)


def _unzigzag(z: Any) -> Any:
    one = z.dtype.type(1)
    return (z >> one) ^ -(z & one)


def patch_through(
    delta: bytes | memoryview,
    n: int,
    w: int,
    where: str,
    buf: memoryview,
    read: Callable[[int, memoryview], int],
    write: Callable[[memoryview, int], None],
    codec: str = ZS,
    own: bool = False,
) -> None:
    """Rebuild the n bytes a delta encodes (compiled, or with numpy: :func:`reads_fast`) a window of at most
    len(buf) bytes at a time (:func:`windows`): read(offset, view) fills view with its base's bytes from offset
    (returns how many), the differences that fall there are added (a zs delta's few, a zd delta's every lane),
    and write(view, offset) takes them. The window stays in the core's cache, so the bytes cross memory once each way, as a copy's do
    (docs/benchmarks.md, "a delta get through a small window"). CorruptObject (naming where) as :func:`decode`,
    or when the base ends first. ``own``: the frame decoded into memory of its own (a :class:`Frame`), not the
    thread's buffer, which read may use for deltas of its own (a base that is itself a delta version)."""
    _fits(n, w, codec, where)
    if len(buf) < max(LANES):
        raise ValueError("a window holds at least one lane of every width")
    declared = _content_size(delta, where)
    with _large if max(n, declared) > SCRATCH_MAX else contextlib.nullcontext():
        add = Frame(delta, n, w, where, codec).adder() if own else _adder(delta, declared, n, w, where, codec)
        for start, end in windows(n, w, len(buf)):
            view = buf[: end - start]
            if read(start, view) != len(view):
                raise CorruptObject(f"{where}: its base ends before byte {end} of the delta")
            add(view, start // w)
            write(view, start)


def _fits(n: int, w: int, codec: str, where: str) -> None:
    """CorruptObject unless a delta of n bytes may have lanes of w bytes and codec is one mvc reads."""
    if w not in LANES or n % w:
        raise CorruptObject(f"{where}: a delta of {n} bytes cannot have lanes of {w} bytes")
    if codec not in (ZS, ZD):
        raise CorruptObject(f"{where}: no delta codec is named {codec!r}")


def windows(n: int, w: int, size: int) -> list[tuple[int, int]]:
    """The windows [start, end) of at most size bytes, whole lanes of w bytes each, that a delta of n bytes is
    rebuilt through."""
    step = size // w * w
    return [(start, min(n, start + step)) for start in range(0, n, step)]


class Frame:
    """A delta's frame decompressed once, into memory of its own, for adders in several threads (compiled only:
    :func:`pairs`): each thread's :meth:`adder` adds the differences of the windows it takes, in increasing
    order, passing over those of the windows it skips (another thread's). CorruptObject (naming where) as
    :func:`decode`."""

    def __init__(self, delta: bytes | memoryview, n: int, w: int, where: str, codec: str):
        _fits(n, w, codec, where)
        declared = _content_size(delta, where)
        self.n, self.w, self.where, self.codec, self.m = n, w, where, codec, 0
        if codec == ZS:
            raw, self.m = _sparse_raw(delta, declared, n, w, where, own=True)
        else:
            raw = _decompress(delta, declared, n, where, own=True)
        self.raw = raw  # (not the thread's buffer, which its next decode reuses)
        self.adder()  # a first change past the end is refused here, once

    def adder(self) -> Callable[[memoryview, int], None]:
        return _native_adder(self.raw, self.m, self.n, self.w, self.where, self.codec)


def pairs(delta: bytes | memoryview, n: int) -> bool:
    """Whether a :class:`Frame` takes this delta of n bytes: compiled, and no larger than a thread's buffers (a
    larger frame decodes alone, under a lock that two threads taking turns could not share)."""
    try:
        return _native() is not None and max(n, _content_size(delta, "")) <= SCRATCH_MAX
    except CorruptObject:
        return False


def _adder(
    delta: bytes | memoryview, declared: int, n: int, w: int, where: str, codec: str
) -> Callable[[memoryview, int], None]:
    """add(view, first): a delta's differences for lanes first.. added to the lanes of view; called for
    consecutive ranges, in order. Compiled where it was built, else with numpy."""
    if _native() is None:
        if codec == ZS:
            return _sparse_adder(delta, declared, n, w, where)
        return _dense_adder(delta, declared, n, w, where)
    if codec == ZD:
        return _native_adder(_decompress(delta, declared, n, where), 0, n, w, where, codec)
    raw, m = _sparse_raw(delta, declared, n, w, where)
    return _native_adder(raw, m, n, w, where, codec)


def _native_adder(
    raw: bytes | memoryview, m: int, n: int, w: int, where: str, codec: str
) -> Callable[[memoryview, int], None]:
    """add(view, first), compiled, from a frame's decompressed planes (a zs frame's: m changes); windows in
    increasing order, any skipped."""
    native = _native()
    if codec == ZD:
        return lambda view, first: native.dense(view, raw, n // w, w, first)
    state = (0, -1)  # the next change, and the lane of the last one added (or passed over)

    def add(view: memoryview, first: int) -> None:
        nonlocal state
        try:
            state = native.sparse(view, raw, m, w, first, *state, n // w)
        except ValueError as e:  # (a change past the base's lanes: the frame's, checked there)
            raise CorruptObject(f"{where}: {e}") from None

    add(memoryview(bytearray()), 0)  # a first change past the end is refused before any window (n may be 0)
    return add


def _sparse_adder(delta: bytes | memoryview, declared: int, n: int, w: int, where: str) -> Callable[[Any, int], None]:
    """add(view, first): a zs delta's changes to lanes first.. added to them; called for consecutive ranges."""
    import numpy as np

    raw, m = _sparse_raw(delta, declared, n, w, where)
    blocks = _sparse_blocks(raw, m, n // w, w, where)
    none = (np.empty(0, np.int64), np.empty(0, f"<u{w}"))
    state = [*next(blocks, none), 0]  # this block's places, differences, and the first change not added yet

    def add(view: memoryview, first: int) -> None:
        z = np.frombuffer(view, f"<u{w}")
        places, differences, at = state
        end = first + len(z)
        while True:
            upto = at + int(np.searchsorted(places[at:], end))
            if upto > at:
                z[places[at:upto] - first] += differences[at:upto]
            at = upto
            if at < len(places):
                break
            places, differences = next(blocks, none)
            at = 0
            if not len(places):
                break
        state[:] = [places, differences, at]

    return add


def _dense_adder(delta: bytes | memoryview, declared: int, n: int, w: int, where: str) -> Callable[[Any, int], None]:
    """add(view, first): a zd delta's differences for lanes first.. added to them."""
    import numpy as np

    planes = np.frombuffer(_decompress(delta, declared, n, where), np.uint8)

    def add(view: memoryview, first: int) -> None:
        z = np.frombuffer(view, f"<u{w}")
        z += _unzigzag(_interleaved(planes, n // w, 0, w, first, first + len(z)))

    return add


def _sparse_apply_ints(raw: bytes, m: int, base: bytes | memoryview, w: int, where: str) -> bytes:
    k, mask = len(base) // w, _lane_mask(w)
    out = bytearray(base)
    place = -1
    for j in range(m):
        place += 1 + sum(raw[i * m + j] << (8 * i) for i in range(GAP))
        if place >= k:
            raise _past_end(where, place, k)
        z = sum(raw[(GAP + i) * m + j] << (8 * i) for i in range(w))
        at = place * w
        a = int.from_bytes(out[at : at + w], "little") + ((z >> 1) ^ -(z & 1))
        out[at : at + w] = (a & mask).to_bytes(w, "little")
    return bytes(out)


def _content_size(delta: bytes | memoryview, where: str) -> int:
    import zstandard

    try:
        return zstandard.frame_content_size(delta)
    except zstandard.ZstdError as e:
        raise CorruptObject(f"{where}: the delta does not decompress ({e})") from None


def _decompress(
    delta: bytes | memoryview, declared: int, n: int, where: str, what: str = "of its base", own: bool = False
) -> memoryview:
    """The frame's n bytes, in the calling thread's buffer (valid until its next decode; ``own``: in memory of
    their own)."""
    import zstandard

    got, extra = 0, b""
    try:
        # writers record the frame's size: a frame claiming any other is refused before memory is taken for it
        if declared != n:
            raise CorruptObject(f"{where}: the delta declares {declared} bytes, not the {n} {what}")
        raw = memoryview(bytearray(n)) if own else _buffer("raw", n)
        decompressor = getattr(_scratch, "zstd", None)  # the calling thread's, made once: its context reused
        if decompressor is None:
            decompressor = _scratch.zstd = zstandard.ZstdDecompressor()
        with decompressor.stream_reader(delta, read_size=max(1, len(delta))) as frame:
            while got < n:
                step = frame.readinto(raw[got:])
                if not step:
                    break
                got += step
            extra = frame.read(1)  # nothing may follow the frame's bytes
    except zstandard.ZstdError as e:
        raise CorruptObject(f"{where}: the delta does not decompress ({e})") from None
    if got != n or extra:
        raise CorruptObject(
            f"{where}: the delta decodes to {'more than ' if extra else ''}{got} bytes, not the {n} {what}"
        )
    return raw


def _unzigzag_ints(raw: bytes, base: bytes | memoryview, w: int) -> bytes | memoryview:
    n = len(base)
    top, low, rest = _masks(n, w)
    z = int.from_bytes(_unplanes(raw, w), "little")
    # un-zigzag per lane: (z >> 1) ^ -(z & 1)
    d = ((z >> 1) & rest) ^ ((z & low) * _lane_mask(w))
    b = int.from_bytes(base, "little")
    # lane-wise b + d modulo 2^bits: carry-free SWAR addition
    a = ((b & rest) + (d & rest)) ^ ((b ^ d) & top)
    return a.to_bytes(n, "little")
