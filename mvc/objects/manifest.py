"""Directory manifests: one object listing a directory's files (docs/FORMAT.md, "Manifest")."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

from mvc.errors import CorruptObject
from mvc.objects import oid as oids

HEADER = b"mvc-manifest 1\n"
MAX_SIZE = 2**63 - 1  # sizes are 64-bit everywhere they are stored (SQLite, the file systems)


@cache
def _json() -> tuple[Callable[[str], tuple[Any, int]], Callable[[Any], Any]]:
    """(raw_decode, loads), imported on first use: commands on single files never need json."""
    import json

    return json.JSONDecoder().raw_decode, json.loads


class Entry(NamedTuple):  # immutable; built 2x faster than a frozen dataclass
    path: str  # relative, '/'-separated
    oid: str
    size: int
    executable: bool = False


def bad_relpath(path: object) -> str | None:
    """Why path is not a safe relative '/'-separated path, or None when it is."""
    if not isinstance(path, str) or not path:
        return "empty path"
    if path[0] == "/" or path[1:2] == ":" or "\\" in path:
        return "absolute path"
    if "\0" in path or "\n" in path or "\r" in path:
        return "control character in path"
    parts = path.split("/")
    if "" in parts or "." in parts or ".." in parts:
        return "path with '..', '.' or an empty component"
    return None


def dumps(entries: list[Entry]) -> bytes:
    # Byte-identical to JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode of each row: only the
    # path needs JSON string escaping (oids are hex, sizes ints), so the rest is formatted directly (4x faster).
    from json.encoder import encode_basestring

    text = "".join(
        [
            f'[{encode_basestring(e.path)},"{e.oid}",{e.size},{"true" if e.executable else "false"}]\n'
            for e in sorted(entries, key=lambda e: e.path)
        ]
    )
    return HEADER + text.encode()


def loads(data: bytes, oid: str = "") -> list[Entry]:
    """Parse and validate a manifest; any fault raises CorruptObject naming the entry."""

    def fail(why: str) -> CorruptObject:
        return CorruptObject(f"manifest {oid or ''} is invalid: {why}: re-add the directory or fetch it again")

    if not data.startswith(HEADER):
        raise fail("unknown header (a newer mvc may have written it: upgrade mvc)")
    raw_decode, json_loads = _json()
    entries: list[Entry] = []
    seen: set[str] = set()
    for line in data[len(HEADER) :].splitlines():
        try:
            if line[:2] == b'["':
                # what json.loads does with such a line (it too decodes it as UTF-8 with surrogatepass),
                # minus its per-call encoding sniffing and whitespace matching: 3x faster
                text = line.decode("utf-8", "surrogatepass")
                row, end = raw_decode(text)
                if end != len(text):
                    row = json_loads(text)  # trailing whitespace (accepted) or extra data (refused)
            else:
                row = json_loads(line)
            path, eoid, size, executable = row
        except (ValueError, TypeError, RecursionError):
            raise fail(f"unreadable line {line[:60]!r}") from None
        why = bad_relpath(path)
        if why:
            raise fail(f"{why}: {path!r}")
        if not oids.is_oid(eoid) or type(size) is not int or not 0 <= size <= MAX_SIZE or type(executable) is not bool:
            raise fail(f"bad oid or size for {path!r}")
        if path in seen:
            raise fail(f"duplicate entry {path!r}")
        seen.add(path)
        entries.append(Entry(path, eoid, size, executable))
    for e in entries:  # a file cannot also be a directory of another entry
        i = e.path.find("/")
        while i != -1:
            if e.path[:i] in seen:
                raise fail(f"entry {e.path!r} lies under file entry {e.path[:i]!r}")
            i = e.path.find("/", i + 1)
    return entries
