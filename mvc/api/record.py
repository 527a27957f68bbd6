"""The record of a model version as ``add`` writes it: the user's ``[meta]`` (``--meta KEY=VALUE``, meta files and
dicts, deep-merged in order) and what ``add`` fills in itself (``[auto]``: when, who, where, from which commit, and
what the model file holds, from its headers alone). docs/FORMAT.md, "The record"; ``mvc.api.show`` reads it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mvc.errors import MetaError, ModelFormatError
from mvc.format import pointer as ptrfmt
from mvc.repo.repository import Repo

if TYPE_CHECKING:
    from mvc.objects import manifest as mf

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INT64 = 2**63 - 1
DEPTH_MAX = 32  # tables and arrays nested in a record
SUMMARIES_MAX = 64  # files of a directory whose header summary [auto] keeps
LOOK_MAX = 1024  # files of a directory looked at (largest first) to find them
LOOK_EMPTY = 128  # ... but no more once this many of the largest were none of the formats read
SUMMARY_BYTES = 256 << 10  # JSON size of a directory's summaries past which no more are kept
ERROR_MAX = 200  # characters of a summary's error kept
FILE_SUFFIXES = {".json": "JSON", ".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}


# -- meta: KEY=VALUE, files, dicts ------------------------------------------------------------
def parse_item(item: str) -> dict[str, Any]:
    """One ``--meta KEY=VALUE`` as the nested table it sets: dotted keys nest, quoted TOML keys stay whole, an
    empty VALUE (None in the table) removes the key. MetaError: no ``=``, a bad key or value."""
    key, value = _split(item)
    parts = parse_key(key, item)
    out: dict[str, Any] = {parts[-1]: parse_value(value, item) if value != "" else None}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return check(out, f"--meta {_shown(item)}")  # its error names the option, not a place in a list


def _split(item: str) -> tuple[str, str]:
    """KEY and VALUE of KEY=VALUE, at the first ``=`` outside a quoted key."""
    quote = ""
    i = 0
    while i < len(item):
        c = item[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "=":
            return item[:i], item[i + 1 :]
        i += 1
    if quote:
        raise MetaError(
            f"--meta {_shown(item)}: a quote in KEY is not closed: quote keys as TOML does, e.g. '\"a.b\"=1'"
        )
    raise MetaError(f"--meta {_shown(item)} is not KEY=VALUE: write e.g. --meta accuracy=0.93 (KEY= removes KEY)")


def parse_key(key: str, item: str) -> list[str]:
    """The parts of a dotted key: ``a.b`` is two, ``"a.b"`` (TOML's quoting, escapes and all) is one; an unquoted
    part is taken as typed (spaces and any letters), without the whitespace around it."""
    parts: list[str] = []
    i, n = 0, len(key)
    bad = f"--meta {_shown(item)}: KEY must be dot-separated names, quoted as TOML quotes keys where a name holds a dot"
    while True:
        while i < n and key[i] in " \t":
            i += 1
        if i < n and key[i] in "\"'":
            q, j = key[i], i + 1
            while j < n and key[j] != q:
                j += 2 if (q == '"' and key[j] == "\\") else 1
            if j >= n:
                raise MetaError(f"{bad} (a quote is not closed)")
            try:
                part = tomllib.loads(f"k = {key[i : j + 1]}")["k"]
            except tomllib.TOMLDecodeError:
                raise MetaError(f"{bad} (a quoted part is not a TOML string)") from None
            i = j + 1
            while i < n and key[i] in " \t":
                i += 1
        else:
            j = key.find(".", i)
            j = n if j < 0 else j
            part = key[i:j].strip()
            if not part or '"' in part or "'" in part:
                raise MetaError(f"{bad} (an empty or half-quoted part)")
            i = j
        parts.append(part)
        if i >= n:
            return parts
        if key[i] != ".":
            raise MetaError(f"{bad} (text after a quoted part)")
        i += 1


def parse_value(text: str, item: str = "") -> Any:
    """A ``--meta`` VALUE: plain decimal numbers and true/false are TOML numbers and booleans (as before); one
    that starts with ``[``, ``{``, ``"`` or ``'`` is a TOML value (array, inline table, string); anything else
    is the string as typed (``0e12``, ``1_000``, ``2024-06``, ``nan`` stay strings)."""
    if text[:1] not in ("[", "{", '"', "'"):
        return ptrfmt.parse_meta_value(text)
    try:
        doc = tomllib.loads(f"v = {text}\n")
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        doc = {"error": _line(str(e))}
    if set(doc) != {"v"}:
        why = f" ({doc['error']})" if "error" in doc and "v" not in doc else ""
        raise MetaError(
            f"--meta {_shown(item or text)}: a value starting with {text[0]} is read as TOML, and this is not a TOML "
            f"value{why}: fix it, or quote it as a string: --meta 'KEY=\"...\"'"
        )
    return doc["v"]


def load_file(path: str) -> dict[str, Any]:
    """A whole record from a JSON, TOML or YAML file (by its suffix), checked as :func:`check` checks."""
    kind = FILE_SUFFIXES.get(os.path.splitext(path)[1].lower())
    if kind is None:
        raise MetaError(f"{path}: a meta file is JSON, TOML or YAML: name it *.json, *.toml, *.yaml or *.yml")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MetaError(f"{path}: cannot read the meta file ({e.strerror}): check the path") from None
    fix = "fix the file, or give the values with --meta KEY=VALUE"
    try:
        if kind == "JSON":
            import json

            value = json.loads(data.decode("utf-8"))
        elif kind == "TOML":
            value = tomllib.loads(data.decode("utf-8"))
        else:
            try:
                import yaml  # type: ignore[import-untyped]  # optional; no stubs installed
            except ImportError:
                raise MetaError(
                    f"{path}: reading YAML needs PyYAML, which is not installed: install it (pip install pyyaml), "
                    "or write the record as JSON or TOML"
                ) from None
            try:
                value = yaml.safe_load(data)
            except yaml.YAMLError as e:
                raise MetaError(f"{path}: not valid YAML ({_line(str(e))}): {fix}") from None
    except (ValueError, RecursionError) as e:  # JSON's, TOML's and UTF-8's errors are ValueErrors
        raise MetaError(f"{path}: not valid {kind} ({_line(str(e))}): {fix}") from None
    if value is None and kind == "YAML":
        value = {}  # an empty YAML document
    return check(value, path)


def check(record: Any, where: str) -> dict[str, Any]:
    """record as a pointer's [meta] can hold it, or MetaError naming where and the key: a table of string keys;
    values TOML holds (strings, 64-bit integers, floats, booleans, dates and times, arrays, tables). None (JSON's
    null, YAML's ~) in a table removes that key; in an array it has no meaning and is refused."""
    if not isinstance(record, Mapping):
        raise MetaError(
            f"{where}: a record is a table of KEY = VALUE (a JSON object, a TOML document, a YAML mapping), not "
            f"{_what(record)}: wrap the values in one"
        )
    return _checked(record, where, [], 0)


def _checked(value: Any, where: str, at: list[str], depth: int) -> Any:
    import datetime as dt

    def refuse(why: str) -> MetaError:
        key = ".".join(at) or "the record"
        return MetaError(f"{where}: {_shown(key)} {why}: change or remove it")

    if depth > DEPTH_MAX:
        raise refuse(f"nests tables and arrays more than {DEPTH_MAX} deep")
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise refuse(f"has the key {_shown(str(k))}, a {type(k).__name__}: keys must be strings")
            _text(k, lambda: refuse("has a key that is not valid Unicode"))
            out[k] = None if v is None else _checked(v, where, [*at, k], depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        if any(v is None for v in value):
            raise refuse("is an array holding null, which TOML cannot hold")
        return [_checked(v, where, at, depth + 1) for v in value]
    if isinstance(value, (bool, float, dt.date, dt.time)):
        return value
    if isinstance(value, int):
        if not -INT64 - 1 <= value <= INT64:
            raise refuse("is an integer beyond 64 bits, which TOML cannot hold (write it as a string)")
        return value
    if isinstance(value, str):
        return _text(value, lambda: refuse("is a string that is not valid Unicode"))
    raise refuse(f"is {_what(value)}, which TOML cannot hold")


def _text(s: str, refuse: Any) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON's "\ud800")
        raise refuse() from None
    return s


def layers(meta: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None, where: str = "meta") -> list[dict[str, Any]]:
    """``mvc.add``'s meta: one table, or tables applied in order, each checked."""
    if meta is None:
        return []
    if isinstance(meta, Mapping):
        return [check(meta, where)]
    return [check(m, f"{where}[{i}]") for i, m in enumerate(meta)]


def apply(meta: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """meta with layer deep-merged into it: tables merge key by key, anything else replaces; None removes the key,
    and a table that a removal leaves empty goes too. meta is not changed."""
    out = dict(meta)
    for k, v in layer.items():
        old = out.get(k)
        if v is None:
            out.pop(k, None)
        elif not isinstance(v, Mapping):
            out[k] = v
        elif isinstance(old, dict):
            new = apply(old, v)
            if new or not old:
                out[k] = new
            else:
                out.pop(k)
        elif not _removes_only(v):
            out[k] = apply({}, v)
    return out


def _removes_only(table: Mapping[str, Any]) -> bool:
    return bool(table) and all(v is None or (isinstance(v, Mapping) and _removes_only(v)) for v in table.values())


# -- auto: what mvc add records itself -----------------------------------------------------------
class Auto:
    """What ``[auto]`` holds for every path of one ``add``, taken once, when the first new version needs it."""

    __slots__ = ("_common", "repo")

    def __init__(self, repo: Repo):
        self.repo = repo
        self._common: dict[str, Any] | None = None

    def common(self) -> dict[str, Any]:
        if self._common is None:
            self._common = _common(self.repo)
        return self._common

    def of(self, rel: str, kind: str, oid: str, entries: list[mf.Entry] | None = None) -> dict[str, Any]:
        """The [auto] table of the new version oid of rel (a directory: ``entries``, its manifest's, when the
        caller has them; else the manifest is read from the cache)."""
        out = dict(self.common())
        if kind == "file":
            model = _model_of_file(self.repo.abs(rel))
        else:
            model = _model_of_dir(self.repo, rel, oid, entries)
        if model is not None:
            out["model"] = model
        return out


def _common(repo: Repo) -> dict[str, Any]:
    import time

    from mvc import __version__

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")  # reproducible builds' convention: a fixed time
    when = int(epoch) if epoch.isascii() and epoch.isdigit() else time.time()
    out: dict[str, Any] = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))}
    try:
        import getpass

        out["user"] = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name in the environment or the password database
        pass
    try:
        import socket

        out["host"] = socket.gethostname()
    except OSError:
        pass
    out["mvc_version"] = __version__
    head = repo.git.run("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).decode().strip()
    if head:
        out["commit"] = head
    out["dirty"] = _dirty(repo)
    return out


def _dirty(repo: Repo) -> bool:
    """Whether git's status shows changes to tracked files other than what add itself writes (pointers,
    .gitignore files, .mvc/config.toml)."""
    from mvc.format.config import CONFIG_PATH

    out = repo.git.run("--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=no")
    fields = out.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths = [entry[3:]]
        if entry[0] in "RC":  # a rename or copy: the source follows
            paths.append(fields[i])
            i += 1
        for p in paths:
            if not (p.endswith(ptrfmt.SUFFIX) or p.rpartition("/")[2] == ".gitignore" or p == CONFIG_PATH):
                return True
    return False


def _summary(full: str, size: int, name: str) -> dict[str, Any] | None:
    """The header summary of one file; a file its format's reader refuses is recorded with the error."""
    from mvc.format import headers

    try:
        # the first bytes alone first, with no file object: most files of a data directory are none of the
        # formats (100 directories of 1,000 files: 12,800 files asked, 0.1 s less)
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # (a link followed, as open() does)
        try:
            head = os.pread(fd, headers.HEAD, 0)
        finally:
            os.close(fd)
        if headers.sniff(head, size, os.path.splitext(name)[1].lower()) is None:
            return None  # what summarize answers for it
        with open(full, "rb") as f:
            try:
                return headers.summarize(f, size, name)
            except ModelFormatError as e:
                f.seek(0)
                fmt = headers.sniff(f.read(headers.HEAD), size, os.path.splitext(name)[1].lower())
                return {"format": fmt or "unknown", "error": headers.text(_line(str(e)), ERROR_MAX)}
    except OSError:  # gone or unreadable since it was stored: the record simply has no summary
        return None


def _model_of_file(full: str) -> dict[str, Any] | None:
    try:
        size = os.path.getsize(full)
    except OSError:
        return None
    return _summary(full, size, os.path.basename(full))


def _model_of_dir(repo: Repo, rel: str, oid: str, listed: list[mf.Entry] | None) -> dict[str, Any] | None:
    import heapq
    import json

    from mvc.objects import manifest as mf

    if listed is None:
        listed = mf.loads(repo.odb.read_bytes(oid), oid)
    entries = heapq.nsmallest(LOOK_MAX, listed, key=lambda e: (-e.size, e.path))  # the largest first
    files: dict[str, Any] = {}
    spent = looked = 0
    for e in entries:
        if len(files) >= SUMMARIES_MAX or spent > SUMMARY_BYTES or (looked >= LOOK_EMPTY and not files):
            break  # the last: a directory of data, not of models (its 100,000 files need not all be opened)
        looked += 1
        s = _summary(repo.abs(f"{rel}/{e.path}"), e.size, e.path.rpartition("/")[2])
        if s is not None:
            files[e.path] = s
            spent += len(json.dumps(s, default=str))
    if not files:
        return None
    out: dict[str, Any] = {"files": files}
    if looked < len(listed):
        out["more"] = len(listed) - looked
    return out


# -- messages ---------------------------------------------------------------------------------
def _line(text: str) -> str:
    return " ".join(text.split())


def _shown(text: str, cap: int = 80) -> str:
    """A user's text in a one-line message: control characters escaped, long text cut."""
    from mvc.format.headers import quoted

    return quoted(text)[: cap + 2]


def _what(value: Any) -> str:
    names = {list: "an array", tuple: "an array", str: "a string", bool: "a boolean", int: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")
