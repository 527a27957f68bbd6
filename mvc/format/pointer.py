"""Pointer files (``<path>.mvc``): TOML, one canonical encoding, unknown keys preserved."""

from __future__ import annotations

import re
import sys
from typing import Any, cast

from mvc.errors import ConfigError, ConflictedPointer, PointerError
from mvc.format.config import MVC_DIR
from mvc.objects import oid as oids
from mvc.objects.manifest import bad_relpath, fold, git_owned

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMAT = 1
SUFFIX = ".mvc"  # a pointer is the tracked path plus this suffix: the one place it is spelled
KINDS = ("file", "dir")
MAX_SIZE = 2**63 - 1  # sizes are 64-bit wherever they are stored
_KNOWN = {"format", "kind", "oid", "size", "nfiles", "meta", "auto", "executable"}


class Pointer:
    """A parsed pointer file. A plain class: importing and building a dataclass costs ~3 ms of start-up."""

    __slots__ = ("auto", "executable", "extra", "kind", "meta", "nfiles", "oid", "size")

    def __init__(
        self,
        kind: str,
        oid: str,
        size: int,
        nfiles: int | None = None,
        meta: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        auto: dict[str, Any] | None = None,
        executable: bool = False,
    ):
        self.kind = kind
        self.oid = oid
        self.size = size
        self.nfiles = nfiles
        self.meta: dict[str, Any] = meta if meta is not None else {}
        self.extra: dict[str, Any] = extra if extra is not None else {}  # keys this version does not know
        self.auto: dict[str, Any] = auto if auto is not None else {}  # what mvc add recorded of this version
        self.executable = executable  # a file's owner execute bit, as mvc add found it (written only when set)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pointer) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "Pointer(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra)
        d.update(format=FORMAT, kind=self.kind, oid=self.oid, size=self.size)
        if self.kind == "dir":
            d["nfiles"] = self.nfiles or 0
        if self.executable:
            d["executable"] = True
        if self.meta:
            d["meta"] = self.meta
        if self.auto:
            d["auto"] = self.auto
        return d


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def dumps(pointer: Pointer) -> bytes:
    """The one canonical encoding: keys sorted at every level, as tomli-w writes them."""
    import tomli_w

    return tomli_w.dumps(_sorted(pointer.to_dict())).encode()


_CONFLICT = re.compile(rb"^<{7}( |$)", re.MULTILINE)  # what git writes into a file a merge could not merge


def loads(data: bytes | str, where: str = "pointer", fix: str | None = None) -> Pointer:
    """Parse a pointer; where names it in errors, fix says what to do (default: restore it from git)."""
    fix = fix or (
        f"restore it with 'git checkout -- {where}' or re-run 'mvc add', or rename it if it is a file of yours "
        "(mvc reads every *.mvc file as a pointer)"
    )
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        d = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as e:
        if _CONFLICT.search(data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")):
            raise ConflictedPointer(
                f"{where} has merge conflict markers: keep one side with 'git checkout --ours {where}' (or "
                f"--theirs) and 'git add {where}', then 'mvc checkout' writes that version's weights"
            ) from None
        raise PointerError(f"{where}: not a valid pointer file ({e}): {fix}") from None
    version = d.get("format")
    if type(version) is not int or version != FORMAT:  # `true` and `1.0` compare equal to 1 in Python
        if type(version) is int and version > FORMAT:
            raise PointerError(
                f"{where}: pointer format {version} is newer than this mvc knows ({FORMAT}): upgrade mvc"
            )
        raise PointerError(
            f"{where}: missing or unknown pointer format {version!r} (expected format = {FORMAT}): {fix}"
        )
    kind, oid, size, nfiles, meta = d.get("kind"), d.get("oid"), d.get("size"), d.get("nfiles"), d.get("meta", {})
    if kind not in KINDS:
        raise PointerError(f"{where}: kind must be 'file' or 'dir', not {kind!r}: {fix}")
    if not oids.is_oid(oid):
        raise PointerError(f"{where}: bad oid {oid!r} (expected 'xxh128:' and 32 hex digits): {fix}")
    if not _count(size):
        raise PointerError(f"{where}: size must be a non-negative 64-bit integer, not {str(size)[:40]}: {fix}")
    if kind == "dir" and not _count(nfiles):
        raise PointerError(f"{where}: a dir pointer needs nfiles, a non-negative integer: {fix}")
    if kind == "file" and "nfiles" in d:
        raise PointerError(f"{where}: nfiles is only allowed in a dir pointer: {fix}")
    if not isinstance(meta, dict):
        raise PointerError(f"{where}: [meta] must be a table: {fix}")
    auto = d.get("auto", {})
    if not isinstance(auto, dict):
        raise PointerError(f"{where}: [auto] must be a table: {fix}")
    executable = d.get("executable", False)
    if type(executable) is not bool or (executable and kind != "file"):
        raise PointerError(f"{where}: executable must be true or false, and only in a file pointer: {fix}")
    extra = {k: v for k, v in d.items() if k not in _KNOWN}
    # the checks above leave kind, oid and size of their types (mypy cannot follow is_oid and _count)
    return Pointer(
        kind, cast(str, oid), cast(int, size), nfiles if kind == "dir" else None, meta, extra, auto, executable
    )


def has_control(name: str) -> bool:
    """A control character (below U+0020, or DEL) in name: one breaks a .gitignore line, a terminal, a log."""
    if name.isprintable():  # C speed; only names with something unusual in them take the loop below
        return False
    return any(c < " " or c == "\x7f" for c in name)


def quoted(path: str) -> str:
    """A path for a one-line message: as it is, or, when it holds a character that does not print (a control
    character, C0 or C1, a byte that is not UTF-8, a direction override), in the shell's ``$'...'`` quoting,
    so that a newline in a name cannot split the line, no terminal acts on it, and the fix can be pasted."""
    if path.isprintable():
        return path
    return "$'" + "".join(c if c.isprintable() and c not in "'\\" else escaped(c) for c in path) + "'"


def escaped(c: str) -> str:
    """One character as the shell's ``$'...'`` quoting writes it (``\\x..``, ``\\u....``, ``\\U........``)."""
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # a byte that is not UTF-8, as Python keeps it (surrogateescape): that byte
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n < 0x80 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def shell_quoted(path: str) -> str:
    """A path as a command in a message writes it, ready to paste into a POSIX shell: ``./-rf`` for a path
    that begins with a dash, which mvc and git would otherwise read as options."""
    if path.startswith("-"):
        path = "./" + path
    if not path.isprintable():
        return quoted(path)
    import shlex  # not at the top: only messages need it

    return shlex.quote(path)


def in_quotes(command: str) -> str:
    """A command a message suggests, set off in single quotes; in double quotes where it holds a single quote of
    its own (a path the shell needs quoted, ``mvc add 'my model.pt'``), which single quotes around it would split
    in two; in backquotes where it holds both."""
    if "'" not in command:
        return f"'{command}'"
    return f'"{command}"' if '"' not in command else f"`{command}`"


def suggested(template: str, *args: str) -> str:
    """A command a message suggests: template (``mvc ls --rev {}``) with each ``{}`` the next of args (a path or a
    revision as the user typed it) shell-quoted, set off as ``in_quotes`` does: pasted into a shell, it runs."""
    return in_quotes(template.format(*(shell_quoted(a) for a in args)))


def bad_target(rel: str) -> str | None:
    """Why no pointer may track the repository-relative posix path rel (mvc would read, write or delete
    through it), or None. The path rules of docs/FORMAT.md ("Pointer files"), on the path's text alone:

    - a control character anywhere (it would become two lines of .gitignore);
    - anything a manifest entry may not be (empty, absolute, ``\\``, an empty, ``.`` or ``..``
      component, a ``.git`` component in any spelling git refuses, a last component git reads itself:
      ``.gitignore``, ``.gitattributes``, ``.gitmodules``);
    - a first component ``.mvc`` (in any spelling, as for ``.git``): mvc's own directory (cache, config, state);
    - a name ending in ``.mvc``: a pointer never tracks another pointer (git tracks those).

    The repository adds what depends on its layout (a cache.dir or git directory elsewhere in the work
    tree): ``Repo.untrackable``, the one check every command calls."""
    if has_control(rel):
        return "its name has a control character"
    why = bad_relpath(rel) or git_owned(rel)  # the tracked path itself may not be a file git reads either
    if why is not None:
        return why
    if fold(rel.partition("/")[0]) == MVC_DIR:
        return f"it lies in {MVC_DIR}/, mvc's own directory"
    if rel.endswith(SUFFIX):
        return f"it is itself a pointer file's name (ends in {SUFFIX})"
    return None


def _count(v: Any) -> bool:
    return type(v) is int and 0 <= v <= MAX_SIZE


_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
# a decimal point, or an exponent on a non-zero mantissa (1e-3): "0e12" reads as an id, not as 0.0
_FLOAT = re.compile(r"[+-]?((0|[1-9][0-9]*)\.[0-9]+([eE][+-]?[0-9]+)?|[1-9][0-9]*[eE][+-]?[0-9]+)")


def parse_meta_value(text: str) -> Any:
    """``--meta k=v`` values: plain decimal numbers and true/false become TOML numbers and booleans.

    Anything else stays a string, so ids such as ``0e12`` or ``1_000`` are kept as typed.
    """
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


_RULE_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")


def _meta_value(meta: dict[str, Any], key: str) -> tuple[bool, Any]:
    if key in meta:
        return True, meta[key]
    node: Any = meta
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_gate(rule: str, meta: dict[str, Any], where: str = "[stages] require") -> str | None:
    """None if meta passes the rule ``KEY OP VALUE`` (a ``[stages.NAME] require`` gate), else why not."""
    m = _RULE_RE.match(rule)
    if m is None:
        raise ConfigError(f'{where}: cannot read the rule {rule!r}: write KEY OP VALUE, e.g. "accuracy >= 0.9"')
    key, op, text = m.groups()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        want: Any = text[1:-1]
    else:
        want = parse_meta_value(text)
    found, have = _meta_value(meta, key)
    if not found:
        return f"the model has no meta {key} (set it with 'mvc add PATH --meta {key}=VALUE')"
    number = (int, float)
    if op in ("==", "!="):
        same = have == want and isinstance(have, bool) == isinstance(want, bool)
        return None if same == (op == "==") else f"{key} is {have!r}"
    if not (isinstance(have, number) and isinstance(want, number)) or isinstance(have, bool) or isinstance(want, bool):
        return f"{key} is {have!r}, which cannot be compared with {want!r}"
    ok = {">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want}[op]
    return None if ok else f"{key} is {have!r}"
