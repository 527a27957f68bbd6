"""DVC's files, read for ``mvc import-dvc`` and for revisions before it (docs/FORMAT.md, "Imported history"):
``.dvc`` files, ``dvc.lock``, ``dvc.yaml`` (which outputs are not cached), a cache's ``.dir`` listings, DVC's
config, GTO's ``artifacts.yaml``, and the ``dvc`` table of ``.mvc/imported.toml``. Every one is untrusted: each
function returns valid data or raises ``ForeignError`` naming the file."""

from __future__ import annotations

import datetime
import json
import math
import posixpath
import re
from typing import Any

from mvc.errors import ForeignError
from mvc.format.pointer import MAX_SIZE, bad_target
from mvc.objects import oid as oids
from mvc.objects.manifest import bad_relpath, git_owned

MD5 = re.compile(r"[0-9a-f]{32}")
DIR_SUFFIX = ".dir"
MAX_DVC_FILE = 1 << 20  # a .dvc file is a few lines; a larger one is not DVC's
MAX_LOCK_FILE = 64 << 20
MAX_DEPTH = 32
OUT_KEYS = {"path", "md5", "size", "nfiles", "hash", "cache", "persist", "remote", "push", "desc", "type", "labels"}
OUT_KEYS |= {"meta", "isexec", "checkpoint"}
DVC_KEYS = {"outs", "md5", "deps", "frozen", "wdir", "meta", "desc", "always_changed"}
RECORDED = ("desc", "meta", "type", "labels")  # what a pointer's meta.dvc keeps of an output


class Out:
    """One output of a .dvc file or a dvc.lock stage: repository-relative posix path, DVC's md5 (``….dir`` for a
    directory), size and nfiles when recorded, whether it was hashed by DVC 2.x (text files without CRs), and
    the record kept in the pointer's ``meta.dvc``."""

    __slots__ = ("legacy", "md5", "nfiles", "path", "record", "size")

    def __init__(self, path: str, md5: str, size: int | None, nfiles: int | None, legacy: bool, record: dict):
        self.path, self.md5, self.size, self.nfiles, self.legacy, self.record = path, md5, size, nfiles, legacy, record

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(DIR_SUFFIX)


def _yaml(data: bytes, where: str, limit: int) -> Any:
    if len(data) > limit:
        raise ForeignError(f"{where}: {len(data)} bytes, more than a DVC file holds: check the file")
    try:  # not at the top: only imports and revisions before one read DVC's files
        import yaml  # type: ignore[import-untyped]  # PyYAML, a dependency; no stubs installed
    except ImportError:
        raise ForeignError(f"{where}: reading DVC's files needs PyYAML: pip install pyyaml") from None

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(data.decode("utf-8"), Loader=loader)  # a safe loader: plain data only
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        line = str(e).replace("\n", " ")[:160]
        raise ForeignError(f"{where}: not valid YAML ({line}): fix or restore the file") from None


def toml_value(value: Any, where: str, depth: int = 0) -> Any:
    """A YAML value as TOML can hold it (dates as ISO strings, nulls dropped from tables); refused otherwise."""
    if depth > MAX_DEPTH:
        raise ForeignError(f"{where}: nested deeper than {MAX_DEPTH}: simplify the record")
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ForeignError(f"{where}: the integer {str(value)[:30]} does not fit in 64 bits: fix the value")
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return value
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None:
                continue
            out[str(k)] = toml_value(v, where, depth + 1)
        return out
    if isinstance(value, list):
        if any(v is None for v in value):
            raise ForeignError(f"{where}: a list holds a null, which mvc's record cannot hold: fix the value")
        return [toml_value(v, where, depth + 1) for v in value]
    raise ForeignError(f"{where}: a value of type {type(value).__name__} mvc's record cannot hold: fix the value")


def target(base: str, path: Any, where: str) -> str:
    """An output's path (relative to base, the .dvc file's directory) as a repository-relative posix path;
    refuses one that escapes the repository or reaches into .git or .mvc."""
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        raise ForeignError(f"{where}: an output's path must be a relative posix path, not {str(path)[:60]!r}")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise ForeignError(f"{where}: output path {path[:80]!r} is absolute: it must lie in the repository")
    joined = posixpath.normpath(posixpath.join(base, path)) if base else posixpath.normpath(path)
    if joined == ".." or joined.startswith("../"):
        raise ForeignError(f"{where}: output path {path[:80]!r} escapes the repository: fix or remove the file")
    why = bad_target(joined)
    if why is not None:
        raise ForeignError(f"{where}: output path {joined[:80]!r} is one mvc never tracks ({why}): fix the file")
    return joined


def _count(v: Any) -> bool:
    return type(v) is int and 0 <= v <= MAX_SIZE


def _out(entry: Any, base: str, where: str, extra: dict[str, Any] | None = None) -> Out | None:
    """One output entry; None for one DVC does not cache (``cache: false``: git tracks it)."""
    if not isinstance(entry, dict):
        raise ForeignError(f"{where}: each output must be a mapping with path and md5")
    unknown = sorted(str(k) for k in entry if k not in OUT_KEYS)
    if unknown:
        raise ForeignError(f"{where}: unknown output field {unknown[0][:40]!r}: mvc cannot import it")
    path = target(base, entry.get("path"), where)
    if entry.get("cache", True) is False:
        return None
    if entry.get("cache", True) is not True:
        raise ForeignError(f"{where}: output {path}: cache must be true or false")
    md5 = entry.get("md5")
    if not isinstance(md5, str) or not MD5.fullmatch(md5.removesuffix(DIR_SUFFIX)):
        raise ForeignError(f"{where}: output {path}: md5 must be 32 hex digits (and .dir for a directory)")
    algo = entry.get("hash", "legacy")
    if algo not in ("md5", "legacy"):
        raise ForeignError(f"{where}: output {path}: unknown hash {str(algo)[:20]!r} (DVC's are md5)")
    size, nfiles = entry.get("size"), entry.get("nfiles")
    if size is not None and not _count(size):
        raise ForeignError(f"{where}: output {path}: size must be a non-negative integer")
    if nfiles is not None and (not _count(nfiles) or not md5.endswith(DIR_SUFFIX)):
        raise ForeignError(f"{where}: output {path}: nfiles must be a non-negative integer of a directory")
    record: dict[str, Any] = {"md5": md5}
    for key in RECORDED:
        if entry.get(key) is not None:
            record[key] = toml_value(entry[key], f"{where}: output {path}: {key}")
    for key, value in (extra or {}).items():
        record.setdefault(key, value)
    return Out(path, md5, size, nfiles, algo == "legacy", record)


def parse_dvc(data: bytes, where: str) -> list[Out]:
    """The cached outputs of a .dvc file; where is its repository-relative path."""
    d = _yaml(data, where, MAX_DVC_FILE)
    if not isinstance(d, dict):
        raise ForeignError(f"{where}: not a DVC file (expected a mapping with outs): fix or remove it")
    unknown = sorted(str(k) for k in d if k not in DVC_KEYS)
    if unknown:
        raise ForeignError(f"{where}: unknown field {unknown[0][:40]!r}: mvc cannot import it")
    outs = d.get("outs")
    if not isinstance(outs, list) or not outs:
        raise ForeignError(f"{where}: outs must be a non-empty list of outputs")
    base = posixpath.dirname(where)
    if d.get("wdir") is not None:
        base = _wdir(base, d["wdir"], where)
    extra: dict[str, Any] = {}
    for key in ("desc", "meta"):  # the file's own record, kept with each output that has none of its own
        if d.get(key) is not None:
            extra[key] = toml_value(d[key], f"{where}: {key}")
    found = [o for o in (_out(e, base, where, extra) for e in outs) if o is not None]
    _no_repeats(found, where)
    return found


def import_source(data: bytes, where: str) -> tuple[str, str, str] | None:
    """(repository URL, the path there, the revision: DVC's locked commit, else the one named, else "") of a .dvc
    file ``dvc import`` wrote (a dependency with ``repo:``), or None for another .dvc file."""
    d = _yaml(data, where, MAX_DVC_FILE)
    deps = d.get("deps") if isinstance(d, dict) else None
    for dep in deps if isinstance(deps, list) else []:
        if not isinstance(dep, dict) or "repo" not in dep:
            continue
        repo, path = dep["repo"], dep.get("path")
        if not isinstance(repo, dict) or not isinstance(repo.get("url"), str) or not isinstance(path, str):
            raise ForeignError(f"{where}: a dependency on a repository must name its url and path: fix the file")
        rev = repo.get("rev_lock") or repo.get("rev") or ""
        if not isinstance(rev, str):
            raise ForeignError(f"{where}: the revision of a dependency on a repository must be text: fix the file")
        return repo["url"], path, rev
    return None


def _wdir(base: str, wdir: Any, where: str) -> str:
    """A ``wdir`` (relative to base, the directory of the file that sets it) as a repository-relative posix path,
    "" for the root; refused as ``target`` refuses an output's path."""
    if not isinstance(wdir, str):
        raise ForeignError(f"{where}: wdir must be a path")
    return target(base, wdir, where) if posixpath.normpath(posixpath.join(base, wdir)) != "." else ""


def _no_repeats(found: list[Out], where: str) -> None:
    seen: set[str] = set()
    for o in found:
        if o.path in seen:
            raise ForeignError(f"{where}: output {o.path} is listed twice: fix the file")
        seen.add(o.path)


def stages(data: bytes, where: str) -> dict[str, tuple[str | None, frozenset[str]]]:
    """What dvc.yaml (where) says of each stage's entry in the dvc.lock beside it: {stage name: (the stage's
    ``wdir`` as a repository-relative path, "" for the root, the directory of dvc.yaml when unset, None when
    templated with ``${…}``; the outputs it declares with ``cache: false``, as written)}. A ``foreach`` stage's
    body is its ``do:``; ``foreach`` and ``matrix`` entries (``NAME@KEY`` in dvc.lock) go by NAME."""
    d = _yaml(data, where, MAX_LOCK_FILE)
    table = d.get("stages", {}) if isinstance(d, dict) else None
    if not isinstance(table, dict):
        raise ForeignError(f"{where}: stages must be a mapping of stage names: fix the file")
    base = posixpath.dirname(where)
    found: dict[str, tuple[str | None, frozenset[str]]] = {}
    for name, stage in table.items():
        body = stage.get("do", stage) if isinstance(stage, dict) else None
        if not isinstance(body, dict):
            continue
        wdir = body.get("wdir")
        templated = isinstance(wdir, str) and "${" in wdir
        at = None if templated else base if wdir is None else _wdir(base, wdir, f"{where} (stage {str(name)[:40]})")
        uncached: set[str] = set()
        for kind in ("outs", "metrics", "plots"):
            entries = body.get(kind)
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    uncached.update(
                        str(p) for p, opts in entry.items() if isinstance(opts, dict) and opts.get("cache") is False
                    )
        found[str(name)] = (at, frozenset(uncached))
    return found


def parse_lock(
    data: bytes, where: str, pipeline: dict[str, tuple[str | None, frozenset[str]]] | None = None
) -> list[Out]:
    """The cached outputs of every stage of a dvc.lock (schema 2.0). Their paths are relative to their stage's
    ``wdir``; pipeline: ``stages()`` of the dvc.yaml beside it (default: none, every wdir its directory)."""
    d = _yaml(data, where, MAX_LOCK_FILE)
    if not isinstance(d, dict) or str(d.get("schema")) != "2.0" or not isinstance(d.get("stages", {}), dict):
        raise ForeignError(f"{where}: not a dvc.lock of schema 2.0 (DVC 2 or 3): run 'dvc commit' with DVC 2 or 3")
    found = []
    for name, stage in d.get("stages", {}).items():
        if not isinstance(stage, dict) or not isinstance(stage.get("outs", []), list):
            raise ForeignError(f"{where}: stage {str(name)[:40]} must be a mapping with a list of outs")
        known = (pipeline or {}).get(str(name)) or (pipeline or {}).get(str(name).partition("@")[0])
        base, skip = known or (posixpath.dirname(where), frozenset())
        for entry in stage.get("outs", []):
            if isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry["path"] in skip:
                continue
            if isinstance(entry, dict) and "md5" not in entry:
                raise ForeignError(f"{where}: stage {str(name)[:40]}: an output without md5: run 'dvc repro'")
            if base is None:
                raise ForeignError(
                    f"{where}: stage {str(name)[:40]}: its wdir in dvc.yaml is templated (${{…}}), which mvc "
                    "cannot resolve: write the wdir out in dvc.yaml"
                )
            o = _out(entry, base, f"{where} (stage {str(name)[:40]})", {"stage": str(name)})
            if o is not None:
                found.append(o)
    _no_repeats(found, where)
    return found


def lock_outputs(lock: bytes, where: str, yaml: bytes | None) -> list[Out]:
    """The cached outputs of the dvc.lock at where (its bytes lock), read with the dvc.yaml beside it (its bytes
    yaml, None when there is none): the one reading of a dvc.lock, at the work tree and at old revisions."""
    yaml_path = posixpath.join(posixpath.dirname(where), "dvc.yaml")
    return parse_lock(lock, where, stages(yaml, yaml_path) if yaml is not None else None)


def parse_dir(data: bytes, md5: str, where: str) -> list[tuple[str, str]]:
    """A DVC directory listing (``….dir``): [(relpath, md5)], checked against its md5 and path rules."""
    import hashlib

    if hashlib.md5(data, usedforsecurity=False).hexdigest() != md5.removesuffix(DIR_SUFFIX):
        raise ForeignError(f"{where}: does not match its md5 {md5}: the DVC cache or remote is damaged")
    try:
        entries = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ForeignError(f"{where}: not a DVC directory listing (JSON): the DVC cache is damaged") from None
    if not isinstance(entries, list):
        raise ForeignError(f"{where}: not a DVC directory listing (a JSON list): the DVC cache is damaged")
    found, seen = [], set()
    for e in entries:
        rel, sum_ = (e.get("relpath"), e.get("md5")) if isinstance(e, dict) else (None, None)
        if not isinstance(rel, str) or not isinstance(sum_, str) or not MD5.fullmatch(sum_):
            raise ForeignError(f"{where}: an entry without relpath and md5: the DVC cache is damaged")
        why = bad_relpath(rel) or git_owned(rel)
        if why is not None or rel in seen:
            raise ForeignError(f"{where}: entry {rel[:80]!r}: {why or 'listed twice'}: mvc cannot import it")
        seen.add(rel)
        found.append((rel, sum_))
    return found


def parse_config(text: str, where: str) -> dict[str, dict[str, str]]:
    """DVC's config (``.dvc/config``, ``.dvc/config.local``: configobj INI): {section: {key: value}}, section
    names unquoted (``remote "s3"`` -> ``remote s3``)."""
    import configparser

    cp = configparser.RawConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read_string(text, where)
    except configparser.Error as e:
        raise ForeignError(f"{where}: not a DVC config ({str(e).splitlines()[0][:120]}): fix the file") from None
    out = {}
    for section in cp.sections():
        name = " ".join(section.strip().strip("'\"").replace('"', " ").replace("'", " ").split())
        out[name] = {k: v.strip().strip("'\"") for k, v in cp.items(section)}
    return out


def gto_artifacts(data: bytes, where: str, dvc_yaml: bool = False) -> dict[str, str]:
    """{model name: path} of GTO's artifacts.yaml (or dvc.yaml's ``artifacts:``): names GTO tags use."""
    d = _yaml(data, where, MAX_LOCK_FILE)
    table = d.get("artifacts") if dvc_yaml and isinstance(d, dict) else d
    found: dict[str, str] = {}
    if not isinstance(table, dict):
        return found
    base = posixpath.dirname(where)
    for name, entry in table.items():
        path = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(name, str) and ":" not in name and isinstance(path, str):
            try:
                found[name] = target(base, path, where)
            except ForeignError:
                continue
    return found


def imported(table: Any, where: str) -> dict[str, tuple[str, int, int | None]]:
    """The ``dvc`` table of .mvc/imported.toml: {DVC md5: (mvc oid, size, nfiles or None)}."""
    md5s = table.get("md5", {}) if isinstance(table, dict) else None
    if not isinstance(md5s, dict):
        raise ForeignError(f"{where}: [dvc.md5] must be a table of DVC md5s: restore it with 'git checkout'")
    found = {}
    for md5, e in md5s.items():
        ok = isinstance(e, dict) and MD5.fullmatch(md5.removesuffix(DIR_SUFFIX)) is not None
        oid, size, nfiles = (e.get("oid"), e.get("size"), e.get("nfiles")) if isinstance(e, dict) else (0, 0, 0)
        is_dir = md5.endswith(DIR_SUFFIX)
        if not (ok and oids.is_oid(oid) and _count(size) and (_count(nfiles) if is_dir else nfiles is None)):
            raise ForeignError(f"{where}: entry {md5[:40]!r} needs oid, size (and nfiles for .dir): restore the file")
        found[md5] = (str(oid), int(size), nfiles if is_dir else None)  # type: ignore[arg-type]
    return found


def unreached(table: Any, where: str) -> dict[str, str]:
    """The ``unreached`` table of the map's dvc table: {DVC md5: the DVC remote that could not be read for it when
    the import ran} (none: those the map lacks were in neither DVC's cache nor its remote)."""
    found = table.get("unreached", {}) if isinstance(table, dict) else {}
    ok = isinstance(found, dict) and all(
        isinstance(r, str) and MD5.fullmatch(m.removesuffix(DIR_SUFFIX)) for m, r in found.items()
    )
    if not ok:
        raise ForeignError(
            f"{where}: [dvc.unreached] must map DVC md5s to remote names: restore it with 'git checkout'"
        )
    return dict(found)


def note_unreached(table: dict[str, Any], now: dict[str, str], missing: list[str], remote: str | None) -> None:
    """Record in the map's dvc table the md5s whose DVC remote could not be read (now, by this run; remote: its
    name), keeping earlier ones no run has imported or found missing since."""
    known = table.get("md5", {})
    kept = {m: r for m, r in unreached(table, "the map").items() if m not in known and m not in missing}
    kept.update(dict.fromkeys(now, remote or ""))
    if kept:
        table["unreached"] = dict(sorted(kept.items()))
    else:
        table.pop("unreached", None)
