"""Chunk lists ("recipes"): how a large object is rebuilt from chunks and deltas held in packs
(docs/FORMAT.md, "Chunked objects").

A recipe is stored on a remote at ``recipes/ab/cdef…``, named by the oid of the whole object it
rebuilds. It is ASCII text::

    mvc-chunks 1
    size <bytes of the object>
    base <oid>                                  (any number: versions the writer chunked against)
    c <chunk oid> <size> <pack> <offset>        (the next size bytes are that chunk)
    d <delta oid> <size> <pack> <offset> <stored> <lane> <depth> <base oid> <base offset> [zs]

in the order of the object's bytes. This module builds and parses them strictly and knows nothing of
stores: a recipe is untrusted input, and the parser refuses anything but the format.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mvc.errors import CorruptObject
from mvc.objects import delta, layout
from mvc.objects import oid as oids
from mvc.objects import pack as pk

HEADER = b"mvc-chunks 1\n"
RECIPES = "recipes/"
RECIPE_MAX = 256 << 20  # a larger recipe is refused unread (a 1 GiB object's is under 1 MiB)
ENTRY_MAX = 64 << 20  # bytes one entry may produce or occupy in its pack (writers: far less)
MAX_DEPTH = 4  # a writer bases a delta on bytes reached in at most this many hops down (a delta's depth)
READ_HOPS = 16  # a reader follows at most this many: a base written again as deltas may lengthen a chain
MAX_BASES = 16
# a chunk line, the bulk of every recipe: matched whole, then its numbers bounded (as _entry does, faster)
_CHUNK = re.compile(r"c (xxh128:[0-9a-f]{32}) ([1-9][0-9]{0,18}) ([0-9a-f]{32}) (0|[1-9][0-9]{0,18})")


class Entry(NamedTuple):
    kind: str  # "c": a chunk; "d": a delta
    oid: str  # the chunk's or the delta's oid: the hash of its bytes in the pack
    at: int  # where its bytes go in the object
    size: int  # how many bytes it produces
    pack: str
    offset: int  # where its bytes are in the pack
    stored: int  # how many bytes it occupies there (a chunk: size)
    lane: int = 0  # deltas only
    depth: int = 0  # 0 for a chunk; a delta: 1 + the deepest entry of its base's range
    base: str = ""
    base_offset: int = 0
    codec: str = delta.ZD  # deltas only: zd, or zs (written as an 11th field; layout format 3)


class Recipe(NamedTuple):
    size: int
    bases: list[str]
    entries: list[Entry]


def rel(oid: str) -> str:
    return RECIPES + oids.to_relpath(oid)


def render(size: int, bases: list[str], entries: list[Entry]) -> bytes:
    lines = [HEADER, f"size {size}\n".encode()]
    lines += [f"base {b}\n".encode() for b in bases]
    for e in entries:
        if e.kind == "c":
            lines.append(f"c {e.oid} {e.size} {e.pack} {e.offset}\n".encode())
        else:
            codec = "" if e.codec == delta.ZD else f" {e.codec}"
            lines.append(
                f"d {e.oid} {e.size} {e.pack} {e.offset} {e.stored} {e.lane} {e.depth} {e.base} {e.base_offset}"
                f"{codec}\n".encode()
            )
    return b"".join(lines)


def layout_format(entries: list[Entry]) -> int:
    """The layout format a remote must declare before it holds a recipe of these entries (docs/FORMAT.md)."""
    return layout.SPARSE if any(e.codec == delta.ZS for e in entries) else layout.CHUNKED


def _number(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19 or (len(text) > 1 and text[0] == "0"):
        raise ValueError(text)
    n = int(text)
    if n > pk.MAX_NUMBER:
        raise ValueError(text)
    return n


def parse(data: bytes, where: str, oid: str) -> Recipe:
    """The recipe of object oid; CorruptObject (naming where) for anything but the format: a bad line,
    entries that do not add up to the size, a delta deeper than MAX_DEPTH or based on the object itself."""
    if len(data) > RECIPE_MAX:
        raise CorruptObject(f"{where} is larger than any mvc chunk list ({RECIPE_MAX >> 20} MiB)")
    if not data.startswith(HEADER):
        raise CorruptObject(f"{where} is not an mvc chunk list (bad header)")
    try:
        text = data[len(HEADER) :].decode("ascii")
    except UnicodeDecodeError:
        raise CorruptObject(f"{where} is not an mvc chunk list (not ASCII)") from None
    if not text.endswith("\n"):
        raise CorruptObject(f"{where} is truncated (no final newline)")
    lines = text[:-1].split("\n")
    first = lines[0].split(" ")
    try:
        if len(first) != 2 or first[0] != "size":
            raise ValueError
        size = _number(first[1])
    except ValueError:
        raise CorruptObject(f"{where}: line 2 is not 'size BYTES'") from None
    bases: list[str] = []
    entries: list[Entry] = []
    at = 0
    for n, line in enumerate(lines[1:], 3):
        m = _CHUNK.fullmatch(line)
        if m is not None:
            cid, size_text, pack, offset_text = m.groups()
            n_bytes, offset = int(size_text), int(offset_text)
            if n_bytes > ENTRY_MAX or offset + n_bytes > pk.MAX_NUMBER:
                raise CorruptObject(f"{where}: line {n} is not a chunk ('c …'), a delta ('d …') or a base")
            entries.append(Entry("c", cid, at, n_bytes, pack, offset, n_bytes))
            at += n_bytes
            if at > size:
                raise CorruptObject(f"{where}: its entries produce more than the {size} bytes it declares")
            continue
        parts = line.split(" ")
        try:
            if parts[0] == "base" and not entries:
                if len(parts) == 2 and parts[1] == oid:
                    raise CorruptObject(f"{where}: line {n} names the object itself as its base, which no writer does")
                if len(parts) != 2 or not oids.is_oid(parts[1]) or len(bases) >= MAX_BASES:
                    raise ValueError
                bases.append(parts[1])
                continue
            entry = _entry(parts, at)
        except ValueError:
            raise CorruptObject(f"{where}: line {n} is not a chunk ('c …'), a delta ('d …') or a base") from None
        if entry.base == oid:
            raise CorruptObject(f"{where}: line {n} is a delta of the object itself, which no writer makes")
        entries.append(entry)
        at += entry.size
        if at > size:
            raise CorruptObject(f"{where}: its entries produce more than the {size} bytes it declares")
    if at != size:
        raise CorruptObject(f"{where}: its entries produce {at} bytes, not the {size} it declares")
    return Recipe(size, bases, entries)


def _entry(parts: list[str], at: int) -> Entry:
    kind = parts[0]
    if kind == "c" and len(parts) == 5:
        _, oid, size, pack, offset = parts
        e = Entry("c", oid, at, _number(size), pack, _number(offset), 0)
        e = e._replace(stored=e.size)
    elif kind == "d" and (len(parts) == 10 or (len(parts) == 11 and parts[10] == delta.ZS)):
        _, oid, size, pack, offset, stored, lane, depth, base, base_offset = parts[:10]
        e = Entry(
            "d",
            oid,
            at,
            _number(size),
            pack,
            _number(offset),
            _number(stored),
            _number(lane),
            _number(depth),
            base,
            _number(base_offset),
            parts[10] if len(parts) == 11 else delta.ZD,
        )
        if (
            e.lane not in delta.LANES
            or e.size % e.lane
            or not 1 <= e.depth <= MAX_DEPTH
            or not oids.is_oid(base)
            or e.base_offset + e.size > pk.MAX_NUMBER
        ):
            raise ValueError
    else:
        raise ValueError
    if (
        not oids.is_oid(oid)
        or not pk.is_name(pack)
        or not 1 <= e.size <= ENTRY_MAX
        or not 1 <= e.stored <= ENTRY_MAX
        or e.offset + e.stored > pk.MAX_NUMBER
    ):
        raise ValueError
    return e


def _at(e: Entry) -> int:
    return e.at


def covering(entries: list[Entry], start: int, end: int) -> list[Entry]:
    """The entries whose bytes overlap [start, end), in order (entries sorted by ``at``)."""
    import bisect

    i = max(0, bisect.bisect_right(entries, start, key=_at) - 1)
    out = []
    while i < len(entries) and entries[i].at < end:
        if entries[i].at + entries[i].size > start:
            out.append(entries[i])
        i += 1
    return out
