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
costs most here (docs/benchmarks.md, "Fresh memory"). This module knows nothing of stores or files.
"""

from __future__ import annotations

import functools
import threading

from mvc.errors import CorruptObject

CODEC = "zd"
LANES = (1, 2, 4, 8)  # element widths in bytes
LEVEL = 1  # zstd level: as small as 3 on fine-tunes, and faster (docs/benchmarks.md, "Issue 12")
SEGMENT = 4 << 20  # a delta covers at most this many bytes of a tensor (memory, parallel reads)
SCRATCH_MAX = 2 * SEGMENT  # a thread keeps buffers this large for the next decode; larger ones are let go

_scratch = threading.local()


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


def encode(new: bytes, base: bytes, w: int) -> bytes:
    """The delta of new against base, both the same length, a multiple of the lane width w."""
    import zstandard

    n = len(new)
    if len(base) != n or w not in LANES or n % w:
        raise ValueError("a delta needs two byte strings of one length, a multiple of a lane width of 1, 2, 4 or 8")
    raw = _zigzag_numpy(new, base, w) if fast() else _zigzag_ints(new, base, w)
    return zstandard.ZstdCompressor(level=LEVEL).compress(raw)


def _zigzag_numpy(new: bytes, base: bytes, w: int) -> bytes:
    import numpy as np

    unsigned = np.dtype(f"<u{w}")
    d = np.frombuffer(new, unsigned) - np.frombuffer(base, unsigned)  # wraps modulo 2^bits
    z = (d << unsigned.type(1)) ^ (d.view(f"<i{w}") >> (8 * w - 1)).view(unsigned)
    return z.view(np.uint8).reshape(-1, w).T.tobytes()  # byte planes


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
    delta: bytes | memoryview, base: bytes | memoryview, w: int, where: str, out: memoryview | bytearray | None = None
) -> bytes | memoryview:
    """The bytes a delta of base encodes, written into ``out`` (len(base) writable bytes) when given; CorruptObject
    (naming where) if it does not decode to len(base) bytes."""
    n = len(base)
    if w not in LANES or n % w:
        raise CorruptObject(f"{where}: a delta of {n} bytes cannot have lanes of {w} bytes")
    raw = _decompress(delta, n, where)
    if fast():
        return _unzigzag_numpy(raw, base, w, out)
    got = _unzigzag_ints(bytes(raw), base, w)
    if out is None:
        return got
    view = memoryview(out)[:n]
    view[:] = got
    return view


def _decompress(delta: bytes | memoryview, n: int, where: str) -> memoryview:
    """The frame's n bytes, in the calling thread's buffer (valid until its next decode)."""
    import zstandard

    got, extra = 0, b""
    try:
        # writers record the frame's size: a frame claiming any other is refused before memory is taken for it
        declared = zstandard.frame_content_size(delta)
        if declared != n:
            raise CorruptObject(f"{where}: the delta declares {declared} bytes, not the {n} of its base")
        raw = _buffer("raw", n)
        with zstandard.ZstdDecompressor().stream_reader(delta, read_size=max(1, len(delta))) as frame:
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
            f"{where}: the delta decodes to {'more than ' if extra else ''}{got} bytes, not the {n} of its base"
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
