"""Packs: many small objects in one remote file, so a push or fetch of thousands of them costs a few
requests instead of one each (docs/FORMAT.md, "Packs").

A pack is the objects' bytes one after another, in oid order; its index lists where each one lies.
Both are named by the xxh3-128 digest of the pack's bytes. This module builds and parses them and
knows nothing of stores: the remote layer moves the bytes.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from mvc.errors import CorruptObject
from mvc.objects import oid as oids
from mvc.storage import fileio

INDEX_HEADER = b"mvc-pack-index 1\n"
OBJECT_MAX = 1 << 20  # objects smaller than this travel in packs; larger ones alone
TARGET = 16 << 20  # a pack is closed once it holds this many bytes
MAX_NUMBER = 2**63 - 1  # offsets and sizes are stored in SQLite's 64-bit integers
INDEX_MAX = 64 << 20  # a larger index is refused unread (a pack of TARGET bytes needs far less)
MIN_OBJECTS = 16  # fewer small objects than this go alone: a pack and its index are two requests
_NAME_LEN = 32
_LINES = r"(?:xxh128:[0-9a-f]{32} [0-9]{1,19} [0-9]{1,19}\n)*"  # an index's lines, all well formed (compiled on use)


class Entry(NamedTuple):  # immutable; a NamedTuple, not a dataclass: checkout imports this on start-up
    oid: str
    offset: int
    size: int


def packable(size: int | None) -> bool:
    """Whether an object of this size (None: unknown) may be in a pack: where a reader looks for it first (mvc
    packs only objects under OBJECT_MAX, and chunks only larger ones; readers rely on it for no more)."""
    return size is None or size < OBJECT_MAX


def pack_rel(name: str) -> str:
    return f"packs/{name}.pack"


def whole_rel(oid: str) -> str:
    """The pack that is object oid, if the store has it: a pack is named by the hash of its bytes, so the one named
    by the object's digest holds exactly the object (docs/FORMAT.md, "Lone packs")."""
    return pack_rel(oids.digest(oid))


def index_rel(name: str) -> str:
    return f"packs/{name}.idx"


def is_name(name: str) -> bool:
    return len(name) == _NAME_LEN and all(c in "0123456789abcdef" for c in name)


def names_in(rels: Iterable[str]) -> set[str]:
    """Names of the complete packs among a listing of ``packs/``: both the pack and its index present.

    A pack without its index is a push that did not finish: ignored, as the index makes a pack visible.
    """
    packs: set[str] = set()
    indexes: set[str] = set()
    for rel in rels:
        base = rel.rsplit("/", 1)[-1]
        stem, dot, ext = base.partition(".")
        if dot and is_name(stem) and rel == f"packs/{base}":
            (packs if ext == "pack" else indexes if ext == "idx" else set()).add(stem)
    return packs & indexes


def packs_in(rels: Iterable[str]) -> set[str]:
    """Names of every pack a listing of ``packs/`` holds, with its index or without."""
    names = (rel[len("packs/") : -len(".pack")] for rel in rels if rel.startswith("packs/") and rel.endswith(".pack"))
    return {name for name in names if is_name(name)}


def lone_in(rels: Iterable[str]) -> set[str]:
    """Names of the packs among a listing of ``packs/`` that have no index: a push that did not finish, or a lone
    pack, an object stored whole in the pack named by its digest (docs/FORMAT.md, "Lone packs")."""
    listed = set(rels)
    return {name for name in packs_in(listed) if index_rel(name) not in listed}


def group(sizes: dict[str, int]) -> list[list[str]]:
    """Split oids into packs of about TARGET bytes, in oid order (so concurrent writers of the same
    objects build the same packs, under the same names)."""
    groups: list[list[str]] = []
    current: list[str] = []
    filled = 0
    for oid in sorted(sizes):
        current.append(oid)
        filled += sizes[oid]
        if filled >= TARGET:
            groups.append(current)
            current, filled = [], 0
    if current:
        groups.append(current)
    return groups


def build(objects: list[tuple[str, bytes]]) -> tuple[str, bytes | memoryview, bytes, list[Entry]]:
    """(name, pack bytes, index bytes, entries) for the objects, which the caller has verified, in oid order."""
    return build_ordered(sorted(objects))


def build_ordered(
    parts: Sequence[tuple[str, bytes | memoryview]], data: bytes | memoryview | None = None, name: str | None = None
) -> tuple[str, bytes | memoryview, bytes, list[Entry]]:
    """As :func:`build`, the objects in the order given; data: the parts already joined, when they are one
    run of a mapped file (the pack is then that slice: no copy); name: their hex digest, when the caller has it."""
    entries = []
    offset = 0
    for oid, part in parts:
        entries.append(Entry(oid, offset, len(part)))
        offset += len(part)
    if data is None:
        data = b"".join(part for _, part in parts)
    return name or fileio.hexdigest_bytes(data), data, render_index(entries), entries


def render_index(entries: Iterable[Entry]) -> bytes:
    """The index of a pack holding these entries."""
    return INDEX_HEADER + "".join(f"{e.oid} {e.offset} {e.size}\n" for e in entries).encode()


def split(data: bytes, start: int, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes, str]]:
    """Each entry of a run read from offset start of its pack: (entry, its bytes, their hex digest).
    A run cut short yields short bytes, which fail their hash like any other damage."""
    view = memoryview(data)
    for e in entries:
        chunk = bytes(view[e.offset - start : e.offset - start + e.size])
        yield e, chunk, fileio.hexdigest_bytes(chunk)


def parse_index(data: bytes, where: str, pack_size: int | None = None) -> list[Entry]:
    """The entries of a pack index; CorruptObject (naming where) for anything but the format, or, given the
    size of its pack (from the listing that found it), for an entry that lies past the pack's end: an
    index that claims bytes its pack does not hold is refused whole, never trusted for any of its objects."""
    if len(data) > INDEX_MAX:
        raise CorruptObject(f"{where} is larger than any mvc pack index ({INDEX_MAX >> 20} MiB)")
    if not data.startswith(INDEX_HEADER):
        raise CorruptObject(f"{where} is not an mvc pack index (bad header)")
    try:
        text = data[len(INDEX_HEADER) :].decode("ascii")
    except UnicodeDecodeError:
        text = "\0"
    if text and not text.endswith("\n"):
        raise CorruptObject(f"{where} is truncated (no final newline)")
    if text and re.fullmatch(_LINES, text) is not None:  # all well formed, checked in one pass: split at once
        words = text.split()
        offsets, sizes = list(map(int, words[1::3])), list(map(int, words[2::3]))
        ends = max(map(operator.add, offsets, sizes))
        if max(offsets) <= MAX_NUMBER and max(sizes) <= MAX_NUMBER and (pack_size is None or ends <= pack_size):
            # Entry's own __new__ is Python: tuple.__new__ builds the same objects without a Python call each
            return list(map(tuple.__new__, itertools.repeat(Entry), zip(words[0::3], offsets, sizes, strict=True)))
    return _parse_lines(text, where, pack_size)  # (empty, or) what is wrong, and where


def _parse_lines(text: str, where: str, pack_size: int | None) -> list[Entry]:
    out = []
    for n, line in enumerate(text.splitlines(), 2):
        parts = line.split(" ")
        if (
            len(parts) != 3
            or not oids.is_oid(parts[0])
            or not parts[1].isdigit()
            or not parts[2].isdigit()
            or not parts[1].isascii()
            or not parts[2].isascii()
            or len(parts[1]) > 19
            or len(parts[2]) > 19
            or int(parts[1]) > MAX_NUMBER
            or int(parts[2]) > MAX_NUMBER
        ):
            raise CorruptObject(f"{where}: line {n} is not 'OID OFFSET SIZE'")
        e = Entry(parts[0], int(parts[1]), int(parts[2]))
        if pack_size is not None and e.offset + e.size > pack_size:
            raise CorruptObject(
                f"{where}: line {n} places {e.oid} at bytes {e.offset}-{e.offset + e.size}, past the end of its "
                f"pack ({pack_size} bytes)"
            )
        out.append(e)
    return out


def runs(
    entries: list[tuple[str, Entry]], gap: int = OBJECT_MAX, most: int = TARGET + OBJECT_MAX
) -> list[list[tuple[str, Entry]]]:
    """Group (pack name, entry) pairs into runs, each read with one ranged request: same pack, in offset
    order, holes of at most ``gap`` bytes between neighbours, at most ``most`` bytes in all (by
    default a whole pack mvc wrote fits in one run)."""
    out: list[list[tuple[str, Entry]]] = []
    for name, e in sorted(entries, key=lambda x: (x[0], x[1].offset)):
        if out:
            last_name, last = out[-1][-1]
            first = out[-1][0][1]
            end = e.offset + e.size
            if (
                last_name == name
                and e.offset >= last.offset + last.size
                and e.offset - (last.offset + last.size) <= gap
                and end - first.offset <= most
            ):
                out[-1].append((name, e))
                continue
        out.append([(name, e)])
    return out
