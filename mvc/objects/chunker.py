"""Cutting a large file into content-defined chunks, where its structure is known along it
(docs/FORMAT.md, "Chunked objects").

A file is first split into segments: for a safetensors file the 8-byte length and JSON header is one
segment and every tensor another, so a header that grows or a tensor that is retrained never moves
the boundaries of its neighbours; any other file is one segment. A tensor is cut in blocks of AVG bytes
from its start, anything else by FastCDC (``pyfastcdc``, compiled) into chunks of about AVG bytes; each
chunk is named by the xxh3-128 digest of its bytes, as objects are. The same bytes always give the same chunks: readers rely on that only to reuse what
they already have, never for correctness (every rebuilt file is checked against its oid).

This module reads a local file and knows nothing of stores.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import xxhash

from mvc.objects import oid as oids

AVG = 64 << 10  # average chunk size: see docs/benchmarks.md, "Issue 12" (size against savings and requests)
MIN = AVG // 8
MAX = AVG * 2
HEADER_MAX = 100 << 20  # safetensors' own limit on its JSON header
# bytes per element of each safetensors dtype: the lane width deltas subtract in
DTYPE_WIDTH = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class Segment(NamedTuple):
    offset: int
    size: int
    key: str  # what a base version's segment must match to serve as a delta base ("" for none)
    lane: int  # element width in bytes (1 when unknown)
    fixed: bool = False  # a tensor: cut in blocks of AVG bytes from its start (see cut)


class Chunk(NamedTuple):
    oid: str
    offset: int
    size: int


def segments(view: memoryview | bytes, size: int) -> list[Segment]:
    """The file's segments, in order, covering it exactly: a safetensors file's header and tensors, or
    the whole file as one segment when it is anything else (or a safetensors file whose header does not
    describe its bytes: such a file is chunked as plain bytes, never refused)."""
    found = _safetensors(view, size)
    return found if found is not None else [Segment(0, size, "", 1)]


def _safetensors(view: memoryview | bytes, size: int) -> list[Segment] | None:
    if size < 10:
        return None
    n = int.from_bytes(view[:8], "little")
    if n < 2 or n > HEADER_MAX or 8 + n > size or bytes(view[8:9]) != b"{":
        return None
    try:
        header = json.loads(bytes(view[8 : 8 + n]))
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    start = 8 + n
    tensors: list[tuple[int, int, str, int]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            return None
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if (
            not isinstance(dtype, str)
            or not isinstance(shape, list)
            or not all(type(d) is int for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= size - start
        ):
            return None
        width = DTYPE_WIDTH.get(dtype, 1)
        key = f"{name}\0{dtype}\0{','.join(map(str, shape))}"
        tensors.append((start + offsets[0], start + offsets[1], key, width))
    tensors.sort()
    out = [Segment(0, start, "", 1)]
    at = start
    for begin, end, key, width in tensors:
        if begin < at:
            return None  # overlapping tensors: not a layout to take apart
        if begin > at:
            out.append(Segment(at, begin - at, "", 1))
        if end > begin:
            out.append(Segment(begin, end - begin, key if (end - begin) % width == 0 else "", width, True))
        at = end
    if at < size:
        out.append(Segment(at, size - at, "", 1))
    return out


def cut(
    view: memoryview, segs: list[Segment], avg: int = AVG, done: Callable[[int, int], None] | None = None
) -> Iterator[Chunk]:
    """The chunks of each segment in turn, each with its oid; ``done(start, end)`` after each segment.

    A tensor is cut in blocks of ``avg`` bytes from its start: its size is fixed by its shape, so an edit
    never shifts its bytes, and blocks find what content-defined boundaries would, for no search (hashing
    alone: a new file pushes at copy speed). Anything else (the header, an unknown format) is cut by
    FastCDC, which finds shifted content again."""
    cdc = None  # pyfastcdc is imported only for a segment that needs it (a safetensors file has none)
    digest = xxhash.xxh3_128_hexdigest
    for seg in segs:
        if seg.fixed:
            yield from cut_fixed(view, seg, avg)
        elif seg.size <= avg * 2:
            if seg.size:
                yield Chunk(oids.from_digest(digest(view[seg.offset : seg.offset + seg.size])), seg.offset, seg.size)
        else:
            if cdc is None:
                from pyfastcdc import FastCDC

                cdc = FastCDC(avg_size=avg, min_size=max(64, avg // 8), max_size=avg * 2)
            part = view[seg.offset : seg.offset + seg.size]
            for c in cdc.cut_buf(part):
                start = seg.offset + c.offset
                yield Chunk(oids.from_digest(digest(part[c.offset : c.offset + c.length])), start, c.length)
            part.release()
        if done is not None:
            done(seg.offset, seg.offset + seg.size)


def cut_fixed(
    view: memoryview, seg: Segment, avg: int = AVG, feed: Callable[[memoryview], object] | None = None
) -> list[Chunk]:
    """The chunks of a tensor (see :func:`cut`); ``feed`` is given each chunk's bytes too, while they are in
    the CPU's cache (the hash of the whole file)."""
    digest, name, end = xxhash.xxh3_128_hexdigest, oids.from_digest, seg.offset + seg.size
    out = []
    for at in range(seg.offset, end, avg):
        block = view[at : min(at + avg, end)]
        if feed is not None:
            feed(block)
        out.append(Chunk(name(digest(block)), at, len(block)))
    return out


class Mapped:
    """A read-only mapping of a local file (empty files included), closed with the context."""

    def __init__(self, path: str):
        fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(fd).st_size
            self._map = mmap.mmap(fd, self.size, prot=mmap.PROT_READ) if self.size else None
        finally:
            os.close(fd)
        self.view = memoryview(self._map) if self._map is not None else memoryview(b"")

    def __enter__(self) -> Mapped:
        return self

    def drop(self, start: int, end: int) -> None:
        """Unmap the pages of [start, end) from this process (they stay in the page cache; a later read
        maps them again): a pass over a large file then keeps its resident memory small."""
        if self._map is None or not hasattr(self._map, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start -= start % mmap.PAGESIZE
        end = min(end, self.size)
        if end > start:
            self._map.madvise(mmap.MADV_DONTNEED, start, end - start)

    def __exit__(self, *exc: object) -> None:
        try:
            self.view.release()
            if self._map is not None:
                self._map.close()
        except BufferError:  # a slice still alive (a worker stopped by an error): the collector closes it
            pass


def chunk_file(path: str, avg: int = AVG) -> tuple[list[Segment], list[Chunk], str]:
    """(segments, chunks, the whole file's hex digest) of a local file, read once."""
    with Mapped(path) as m:
        segs = segments(m.view, m.size)
        whole = xxhash.xxh3_128()

        def done(start: int, end: int) -> None:
            whole.update(m.view[start:end])  # segments cover the file in order
            m.drop(start, end)

        chunks = list(cut(m.view, segs, avg, done))
        return segs, chunks, whole.hexdigest()
