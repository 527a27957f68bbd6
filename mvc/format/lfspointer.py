"""git-lfs's committed formats, as ``mvc import-lfs`` and the reads of imported history meet them: a pointer
file (git-lfs docs/spec.md), the ``filter=lfs`` lines of a ``.gitattributes`` file, and the ``[lfs.sha256]``
table of ``.mvc/imported.toml`` (docs/FORMAT.md, "Imported history"). All three are untrusted: whoever can push
a commit writes them. Each parser returns valid data or raises :class:`PointerError`."""

from __future__ import annotations

import re
from typing import Any

from mvc.errors import PointerError
from mvc.objects import oid as oids

MAX_POINTER = 1024  # git-lfs never treats a larger blob as a pointer
VERSIONS = ("https://git-lfs.github.com/spec/v1", "https://hawser.github.com/spec/v1")
IMPORTED = "imported.toml"  # .mvc/imported.toml, the map of imported content: its one name (repo/foreign.py's too)
MAX_SIZE = 2**63 - 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY = re.compile(r"[a-z0-9.-]+")
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_LFS_ATTRS = ("filter=lfs", "diff=lfs", "merge=lfs", "-text", "lockable")


class LfsPointer:
    __slots__ = ("sha256", "size")

    def __init__(self, sha256: str, size: int):
        self.sha256 = sha256
        self.size = size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LfsPointer) and (self.sha256, self.size) == (other.sha256, other.size)

    def __repr__(self) -> str:
        return f"LfsPointer({self.sha256!r}, {self.size})"


def dumps(p: LfsPointer) -> bytes:
    """The one encoding git-lfs writes."""
    return f"version {VERSIONS[0]}\noid sha256:{p.sha256}\nsize {p.size}\n".encode()


def looks_like(data: bytes) -> bool:
    """Whether data claims to be a git-lfs pointer (its first line), valid or not."""
    return len(data) < MAX_POINTER and data.startswith(b"version https://")


def loads(data: bytes, where: str = "git-lfs pointer") -> LfsPointer:
    """A git-lfs pointer: ``version`` first, then keys in order, one ``key value`` a line, each ending in a
    newline; ``oid sha256:<64 hex>`` and ``size N`` required. Extensions (``ext-…``) change the content
    git-lfs stores and are refused; other keys are ignored, as the spec asks."""
    bad = f"{where} is not a valid git-lfs pointer"
    if len(data) >= MAX_POINTER:
        raise PointerError(f"{bad} (larger than {MAX_POINTER} bytes): check the file with 'git show'")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise PointerError(f"{bad} (not ASCII): check the file with 'git show'") from None
    if not text.endswith("\n"):
        raise PointerError(f"{bad} (no final newline): check the file with 'git show'")
    fields: dict[str, str] = {}
    order = []
    for line in text[:-1].split("\n"):
        key, sep, value = line.partition(" ")
        if not sep or not _KEY.fullmatch(key) or not value or key in fields:
            raise PointerError(f"{bad} (line {line[:40]!r}): check the file with 'git show'")
        fields[key] = value
        order.append(key)
    if not order or order[0] != "version" or fields["version"] not in VERSIONS:
        raise PointerError(f"{bad} (its first line must be 'version {VERSIONS[0]}'): check the file with 'git show'")
    if order[1:] != sorted(order[1:]):
        raise PointerError(f"{bad} (keys out of order): check the file with 'git show'")
    if any(k.startswith("ext-") for k in order):
        raise PointerError(f"{where} uses a git-lfs extension, which mvc cannot import: run 'git lfs smudge' on it")
    oid, size = fields.get("oid", ""), fields.get("size", "")
    algo, _, digest = oid.partition(":")
    if algo != "sha256" or not _SHA256.fullmatch(digest):
        raise PointerError(f"{bad} (oid must be 'sha256:' and 64 lowercase hex digits): check the file")
    if not _SIZE.fullmatch(size) or int(size) > MAX_SIZE:
        raise PointerError(f"{bad} (size must be a whole number of bytes): check the file")
    return LfsPointer(digest, int(size))


# -- .gitattributes ---------------------------------------------------------------------------------
class Rule:
    """One pattern line of a .gitattributes in directory ``base`` ("" at the root), and what it says of
    git-lfs: ``lfs`` True (``filter=lfs``), False (another filter, or ``-filter``), None (filter unspecified)."""

    __slots__ = ("_basename", "_re", "base", "lfs", "line", "pattern")

    def __init__(self, base: str, line: str, pattern: str, lfs: bool | None):
        self.base, self.line, self.pattern, self.lfs = base, line, pattern, lfs
        anchored = "/" in pattern
        self._basename = not anchored
        # over the UTF-8 bytes (each as one latin-1 character), as git's wildmatch: '?' is one byte
        self._re = re.compile(_translate(_bytewise(pattern.lstrip("/") if anchored else pattern), anchored))

    def matches(self, path: str) -> bool:
        """Whether this line names the file at repository-relative path."""
        if self.base:
            if not path.startswith(self.base + "/"):
                return False
            path = path[len(self.base) + 1 :]
        return self._re.fullmatch(_bytewise(path.rpartition("/")[2] if self._basename else path)) is not None

    def lfs_only(self) -> bool:
        """Whether every attribute of the line is git-lfs's (``git lfs track`` wrote it)."""
        return all(a in _LFS_ATTRS for a in _written_pattern(self.line)[1])


def rules(text: bytes, base: str = "") -> list[Rule]:
    """The pattern lines of a .gitattributes (in directory base) that set or unset ``filter``. Lines git
    ignores (macros, negated or directory patterns, undecodable ones) are skipped, never refused: git
    reads the file on its own and skips them too."""
    out = []
    for raw in text.split(b"\n"):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            continue
        if not line or line.startswith(("#", "[attr]")):
            continue
        if line.startswith('"'):  # a C-quoted pattern (a name with spaces: git writes it so)
            quoted = _unquote(line)
            if quoted is None:
                continue
            pattern, rest = quoted
            attrs = rest.split()
        else:
            pattern, *attrs = line.split()
        if pattern.startswith("!") or pattern.endswith(("/", "\\")):
            continue
        lfs: bool | None = None
        for a in attrs:
            if a.startswith("filter="):
                lfs = a == "filter=lfs"
            elif a in ("-filter", "filter"):
                lfs = False
            elif a == "!filter":
                lfs = None
        if any(a.lstrip("-!").split("=")[0] == "filter" for a in attrs):
            out.append(Rule(base, line, pattern, lfs))
    return out


def lfs_filtered(path: str, all_rules: list[Rule]) -> bool:
    """Whether git runs the git-lfs filter on path: the last line naming it decides, deeper .gitattributes
    files after shallower ones (the order of all_rules)."""
    decided: bool | None = None
    for r in all_rules:
        if r.matches(path):
            decided = r.lfs
    return bool(decided)


def _written_pattern(line: str) -> tuple[str, list[str]]:
    """(the pattern as the line writes it, quotes included; the attributes after it) of a pattern line."""
    if line.startswith('"'):
        quoted = _unquote(line)
        if quoted is not None:
            rest = quoted[1]
            return line[: len(line) - len(rest)], rest.split()
    pattern, *attrs = line.split()
    return pattern, attrs


def _bytewise(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", '"': '"', "\\": "\\"}


def _unquote(line: str) -> tuple[str, str] | None:
    """A line that starts with a C-quoted pattern (git's ``"a\\"b c"``: escapes, octal bytes): (the pattern, the
    rest of the line); None when the quote does not close, or the bytes are not UTF-8."""
    out = bytearray()
    i, n = 1, len(line)
    while i < n:
        c = line[i]
        if c == '"':
            try:
                return out.decode("utf-8"), line[i + 1 :]
            except UnicodeDecodeError:
                return None
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        if i + 1 >= n:
            return None
        e = line[i + 1]
        if e in _ESCAPES:
            out += _ESCAPES[e].encode("utf-8")
            i += 2
        elif line[i + 1 : i + 4].isdigit() and all(d in "01234567" for d in line[i + 1 : i + 4]):
            out.append(int(line[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        else:
            return None
    return None


# POSIX classes in a bracket expression, as wildmatch knows them
_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


def _bracket(pattern: str, i: int) -> tuple[str, int] | None:
    """The bracket expression at pattern[i] ("[") as a regular expression that never matches "/", and the index
    after it; None when it does not close (then "[" is a literal)."""
    j = i + 1
    neg = j < len(pattern) and pattern[j] in "!^"
    if neg:
        j += 1
    items: list[str] = []
    first = True
    while j < len(pattern):
        c = pattern[j]
        if c == "]" and not first:
            body = "".join(items)
            return ("(?:(?!/)[" + ("^" if neg else "") + body + "])"), j + 1
        first = False
        if c == "[" and pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            name = pattern[j + 2 : end] if end > 0 else ""
            if name in _CLASSES:
                items.append(_CLASSES[name])
                j = end + 2
                continue
            if end > 0:
                return None  # an unknown class: git matches nothing with it
        if c == "\\" and j + 1 < len(pattern):
            items.append(re.escape(pattern[j + 1]))
            j += 2
            continue
        if pattern.startswith("-", j + 1) and j + 2 < len(pattern) and pattern[j + 2] != "]":
            lo, hi = c, pattern[j + 2]
            if hi == "\\" and j + 3 < len(pattern):
                hi, j = pattern[j + 3], j + 1
            if lo <= hi:
                items.append(re.escape(lo) + "-" + re.escape(hi))
            j += 3
            continue
        items.append(re.escape(c))
        j += 1
    return None


def _translate(pattern: str, anchored: bool) -> str:
    """A gitattributes pattern (wildmatch, as git uses with FNM_PATHNAME) as a regular expression."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*" and pattern.startswith("**", i) and anchored:
            at_start = i == 0 or pattern[i - 1] == "/"
            if at_start and pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
                continue
            if at_start and i + 2 == n:
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            got = _bracket(pattern, i)
            if got is None:
                out.append(re.escape(c))
                i += 1
                continue
            out.append(got[0])
            i = got[1]
        elif c == "\\" and i + 1 < n:  # an escaped character: itself
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def strip_lfs(text: bytes, drop: set[str]) -> bytes:
    """text without the git-lfs attributes of the lines in drop (a line that held only git-lfs's goes)."""
    out = []
    for raw in text.split(b"\n"):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            line = ""
        if line not in drop:
            out.append(raw)
            continue
        written, attrs = _written_pattern(line)
        kept = [a for a in attrs if a not in _LFS_ATTRS]
        if kept:
            out.append(" ".join([written, *kept]).encode())
    return b"\n".join(out)


# -- .mvc/imported.toml, [lfs.sha256] ---------------------------------------------------------------
def imported(doc: dict[str, Any], where: str = f".mvc/{IMPORTED}") -> dict[str, tuple[str, int]]:
    """{sha256: (mvc oid, size)} of the ``[lfs.sha256]`` table of the parsed map (absent: empty)."""
    lfs = doc.get("lfs", {})
    if not isinstance(lfs, dict):
        raise PointerError(f"{where}: 'lfs' must be a table: fix the file or restore it with git")
    table = lfs.get("sha256", {})
    if not isinstance(table, dict):
        raise PointerError(f"{where}: 'lfs.sha256' must be a table: fix the file or restore it with git")
    out: dict[str, tuple[str, int]] = {}
    for sha, entry in table.items():
        oid = entry.get("oid") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        ok = _SHA256.fullmatch(sha) is not None and isinstance(oid, str) and oids.is_oid(oid)
        if not (ok and isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= MAX_SIZE):
            raise PointerError(
                f"{where}: entry {sha[:70]!r} of [lfs.sha256] must be '<64 hex>' = {{oid = \"xxh128:…\", size = N}}: "
                "fix the file or restore it with git"
            )
        out[sha] = (str(oid), int(size))
    return out
