"""Directory manifests: one object listing a directory's files (docs/FORMAT.md, "Manifest")."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mvc.errors import CorruptObject
from mvc.objects import oid as oids

HEADER = b"mvc-manifest 1\n"


@dataclass(frozen=True)
class Entry:
    path: str  # relative, '/'-separated
    oid: str
    size: int
    executable: bool = False


def bad_relpath(path: object) -> str | None:
    """Why path is not a safe relative '/'-separated path, or None when it is."""
    if not isinstance(path, str) or not path:
        return "empty path"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":") or "\\" in path:
        return "absolute path"
    if any(c in path for c in "\0\n\r"):
        return "control character in path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "path with '..', '.' or an empty component"
    return None


def dumps(entries: list[Entry]) -> bytes:
    lines = [HEADER]
    for e in sorted(entries, key=lambda e: e.path):
        lines.append(json.dumps([e.path, e.oid, e.size, e.executable], ensure_ascii=False,
                                separators=(",", ":")).encode() + b"\n")
    return b"".join(lines)


def loads(data: bytes, oid: str = "") -> list[Entry]:
    """Parse and validate a manifest; any fault raises CorruptObject naming the entry."""
    def fail(why: str) -> CorruptObject:
        return CorruptObject(f"manifest {oid or ''} is invalid: {why}: re-add the directory or fetch it again")

    if not data.startswith(HEADER):
        raise fail("unknown header (a newer mvc may have written it: upgrade mvc)")
    entries: list[Entry] = []
    seen: set[str] = set()
    for line in data[len(HEADER):].splitlines():
        try:
            path, eoid, size, executable = json.loads(line)
        except (ValueError, TypeError):
            raise fail(f"unreadable line {line[:60]!r}") from None
        why = bad_relpath(path)
        if why:
            raise fail(f"{why}: {path!r}")
        if not oids.is_oid(eoid) or not isinstance(size, int) or size < 0 or not isinstance(executable, bool):
            raise fail(f"bad oid or size for {path!r}")
        if path in seen:
            raise fail(f"duplicate entry {path!r}")
        seen.add(path)
        entries.append(Entry(path, eoid, size, executable))
    for e in entries:  # a file cannot also be a directory of another entry
        parts = e.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise fail(f"entry {e.path!r} lies under file entry {'/'.join(parts[:i])!r}")
    return entries
