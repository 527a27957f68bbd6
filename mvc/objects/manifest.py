"""Directory manifests: one object listing a directory's files (docs/FORMAT.md, "Manifest")."""

from __future__ import annotations

import itertools
import operator
import re
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


# What git's verify_path refuses to check out (core.protectNTFS and core.protectHFS, on by default or
# where it matters) and what git reads from the work tree itself: no tracked path may name them.
GIT_FILES = (".gitignore", ".gitattributes", ".gitmodules")
# their NTFS short (8.3) names: 'gitmod~1', and the hashed form git also knows ('gi7eba~1')
_GIT_SHORT = ("gitign", "gitatt", "gitmod", "gi250a", "gi7d29", "gi7eba")
# code points HFS+ ignores in names, so '.g\u200cit' is '.git' there
_HFS_IGNORABLE = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


def fold(name: str) -> str:
    """A path component as a filesystem that ignores case (and, NTFS, trailing dots and spaces and a
    ``:stream``; HFS+, some code points) may take it: ``.GIT.``, and ``.git`` with a U+200C in it, fold to ``.git``."""
    low = name.lower()
    if not low.isascii():
        low = low.translate(_HFS_IGNORABLE)
    return low.partition(":")[0].rstrip(" .")


def git_owned(path: str, files: bool = True) -> str | None:
    """Why the '/'-separated path names something of git's, or None: a component that is ``.git`` in any
    spelling a filesystem may take for it (any case; NTFS: trailing dots or spaces, ``:stream``, the
    short name ``git~1``; HFS+: ignorable code points), or, as its last component, one of the files
    git reads from the work tree (``.gitignore``, ``.gitattributes``, ``.gitmodules``, spelt the same ways).

    A few string operations: paths without 'git' or '~' in them (nearly all) cost one lower() and two searches
    (NTFS's hashed short names of git's files, ``gi7eba~1``, do not hold 'git')."""
    low = path.lower()
    if not low.isascii():
        low = low.translate(_HFS_IGNORABLE)
    if "git" not in low and "~" not in low:
        return None
    parts = low.split("/")
    for part in parts:
        name = part.partition(":")[0].rstrip(" .")
        if name == ".git" or name == "git~1":
            return "it names git's .git directory"
    if not files:
        return None
    last = parts[-1].partition(":")[0].rstrip(" .")
    if last in GIT_FILES or (last[6:7] == "~" and last[7:8].isdigit() and last[:6] in _GIT_SHORT):
        return "it names .gitignore, .gitattributes or .gitmodules, which git reads itself"
    return None


def bad_relpath(path: object) -> str | None:
    """Why path is not a safe relative '/'-separated path, or None when it is."""
    if not isinstance(path, str) or not path:
        return "empty path"
    if path[0] == "/" or path[1:2] == ":":
        return "absolute path"
    if "\\" in path:  # a separator on Windows: the same bytes would name another path there
        return "a backslash in the name"
    if "\0" in path or "\n" in path or "\r" in path:
        return "control character in path"
    parts = path.split("/")
    if "" in parts or "." in parts or ".." in parts:
        return "path with '..', '.' or an empty component"
    # a .git inside the directory would be a repository (hooks, config) planted in the work tree; but
    # .gitignore, .gitattributes and .gitmodules are ordinary files there: the tracked directory is ignored
    # by git as a whole, so git never reads them (model directories from Hugging Face ship .gitattributes)
    return git_owned(path, files=False)


# A '/'-separated path of components that start with none of '.', ' ' and end in no space, made of ASCII letters,
# digits, spaces and a few marks: no empty, '.' or '..' component, no drive, no backslash, no control character.
_PLAIN_PATHS = re.compile(r"(?:[A-Za-z0-9_+=@,~-](?:[A-Za-z0-9_.+=@,~ -]*[A-Za-z0-9_.+=@,~-])?(?:/|\n))*")


def plain_relpaths(paths: list[str]) -> bool:
    """Whether every path is plain (see _PLAIN_PATHS) and names nothing of git's: then :func:`bad_relpath` passes
    each, and none needs asking one by one (100,000 names of a directory being added: one pass of a regular
    expression, not 0.2 s of calls). False says only that some path needs the question asked."""
    text = "\n".join(paths) + "\n"
    if text.count("\n") != len(paths):  # a name with a newline of its own (which bad_relpath refuses)
        return False
    return "git" not in text.lower() and _PLAIN_PATHS.fullmatch(text) is not None


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


_OID_AT_END = re.compile(rb',"(xxh128:[0-9a-f]{32})",\d+,(?:true|false)\]\n')


def oids_of(data: bytes, oid: str = "") -> set[str]:
    """The objects a manifest names. Read off the lines' ends where every line has the shape dumps writes
    (100,000 entries: 0.01 s); parsed and validated whole (0.3 s) otherwise."""
    found = _OID_AT_END.findall(data)
    if data.startswith(HEADER) and len(found) == data.count(b"\n") - 1:
        return {o.decode() for o in found}
    return {e.oid for e in loads(data, oid)}


# Every line in the shape dumps writes, each path needing no JSON escape (nearly every manifest): read in one
# pass of a regular expression, and a path checked one by one only where the whole text shows it may be unsafe.
_PLAIN_ROWS = re.compile(r'^\["([^"\\\x00-\x1f]*)","(xxh128:[0-9a-f]{32})",(0|[1-9][0-9]{0,17}),(true|false)\]\n', re.M)
# what bad_relpath refuses, as it shows in such a text (where '["' only starts a line): an empty path, a
# leading '/', an empty, '.' or '..' component; and a drive ('C:')
_UNSAFE_MARKS = ('[""', '["/', "//", '/",', '["./', '["../', "/./", "/../", '/.",', '/..",', '[".",', '["..",')
_UNSAFE = re.compile("|".join(map(re.escape, _UNSAFE_MARKS)))  # any of them, in one pass of the text
_DRIVE = re.compile(r'\[".:')


def _plain(data: bytes) -> list[Entry] | None:
    """The entries of a manifest whose every line is plain and sound (see _PLAIN_ROWS); None for any other,
    which :func:`loads` then reads line by line, naming the fault. 100,000 entries: 0.1 s, not 0.4 s."""
    try:
        text = data[len(HEADER) :].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    rows = _PLAIN_ROWS.findall(text)
    # each match runs from a line's start to its newline: as many as there are newlines, and every line is one
    if len(rows) != text.count("\n") or not (text.endswith("\n") or not text):
        return None
    if _UNSAFE.search(text) or _DRIVE.search(text):
        return None
    # a path may name .git in some spelling: ask of each
    if (not text.isascii() or "git" in text.lower()) and any(bad_relpath(path) for path, _, _, _ in rows):
        return None
    paths = [row[0] for row in rows]
    if not _in_order(paths):  # (loads names the fault)
        return None
    # (Entry's own __new__ is a Python call; sizes of at most 18 digits are below MAX_SIZE)
    sizes = map(int, [row[2] for row in rows])
    executable = [row[3] == "true" for row in rows]
    columns = zip(paths, [row[1] for row in rows], sizes, executable, strict=True)
    return list(map(tuple.__new__, itertools.repeat(Entry), columns))


def loads(data: bytes, oid: str = "") -> list[Entry]:
    """Parse and validate a manifest; any fault raises CorruptObject naming the entry (or the two lines out of
    order: docs/FORMAT.md, "Manifests")."""

    def fail(why: str) -> CorruptObject:
        return CorruptObject(f"manifest {oid or ''} is invalid: {why}: re-add the directory or fetch it again")

    if not data.startswith(HEADER):
        raise fail("unknown header (a newer mvc may have written it: upgrade mvc)")
    plain = _plain(data)
    if plain is not None:
        _check_nesting(plain, fail)
        return plain
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
    if not _in_order([e.path for e in entries]):
        a, b = next((a, b) for a, b in itertools.pairwise(entries) if a.path >= b.path)
        raise fail(f"lines not sorted by path ({b.path!r} after {a.path!r})")
    _check_nesting(entries, fail)
    return entries


def _in_order(paths: list[str]) -> bool:
    """Whether paths are strictly in code point order, as :func:`dumps` writes them (so no path repeats): the one
    encoding of a directory, hence its one oid. (map and all run in C: 100,000 paths cost what a set of them does.)"""
    return all(map(operator.lt, paths, itertools.islice(paths, 1, None)))


def _check_nesting(entries: list[Entry], fail: Callable[[str], CorruptObject]) -> None:
    """A file cannot also be a directory of another entry."""
    seen = {e.path for e in entries}
    for e in entries:
        i = e.path.find("/")
        while i != -1:
            if e.path[:i] in seen:
                raise fail(f"entry {e.path!r} lies under file entry {e.path[:i]!r}")
            i = e.path.find("/", i + 1)
