"""Two versions of a model compared by content (``mvc diff --model A B``): for safetensors files, the tensors
added, removed, retyped or reshaped, and changed in value; for other files, whether the bytes differ; for
directories, the files added, removed and changed (from the two manifests), and with ``tensors`` the tensor
diff of each changed safetensors file among them.

What is read: the two headers (the first 8 bytes, then the JSON header), from the cache when it holds the
version, else by byte range from the remote, nothing more. Tensors of the same name, dtype and shape are
compared only when the cache holds both versions: their bytes, tensor by tensor in blocks of BLOCK bytes
(numpy only there), giving the largest absolute change; otherwise their change is "unknown", unless
``fetch`` first fetches the versions into the cache (whole, verified). Header bytes cannot be checked against
the oid (only a whole object can): they are parsed strictly instead (``mvc.format.headers``), so a lying
header is a one-line ModelFormatError naming the version.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

from mvc import progress as progressmod
from mvc.api import read
from mvc.api.target import Target, local_odb, resolve
from mvc.errors import ModelFormatError, MvcError, PathError, RemoteObjectMissing
from mvc.format import config as cfgfmt
from mvc.format import headers
from mvc.format.config import CONFIG_PATH
from mvc.format.pointer import SUFFIX
from mvc.repo.repository import Repo, open_repo

BLOCK = 4 << 20  # bytes of each version's tensor read at a time
HEADER_MAX = 100 << 20  # the largest header the safetensors format allows
ST_SUFFIX = ".safetensors"
BITS = {1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}  # an element's bits, by width: what tells a changed element
VALUES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BOOL": "u1", "I8": "i1", "U8": "u1", "I16": "<i2"}
VALUES.update({"U16": "<u2", "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8"})  # BF16 apart: no numpy type
CHANGES = ("added", "removed", "reshaped", "changed", "unknown", "unchanged")


# -- which form of mvc diff ------------------------------------------------------------------
def model_form(a: str | None, b: str | None = None, *, repo: Repo | None = None) -> bool:
    """Whether mvc diff's arguments name model versions rather than revisions: one of them is no git revision
    but a model name, a tracked path or REV:PATH. (A registry revision such as churn@v1 is a revision too: its
    pointers are compared, unless --model.)"""
    if a is None:
        return False
    r = open_repo(repo)
    for ref in (a, b):
        if ref is None:
            continue
        try:
            r.resolve(ref)
            continue
        except MvcError:
            pass
        if ":" in ref or ref in _names(r) or _tracked(r, ref):
            return True
    return False


def _names(r: Repo) -> dict[str, str]:
    return cfgfmt.models(r.config.shared, CONFIG_PATH)


def _tracked(r: Repo, ref: str) -> bool:
    try:
        rel = r.rel(ref)
    except MvcError:
        return False
    return os.path.isfile(r.abs(rel if rel.endswith(SUFFIX) else rel + SUFFIX))


def _target(r: Repo, ref: str) -> Target:
    """A model version: NAME@vX.Y.Z, NAME@latest, NAME#STAGE, NAME or PATH (the work tree's pointer), or
    REV:PATH and REV:NAME (git's spelling: that path, or the path the model had, at a revision)."""
    if ":" in ref and not os.path.lexists(ref):
        rev, path = ref.split(":", 1)
        if not os.path.lexists(path) and not os.path.lexists(path + SUFFIX):
            from mvc.repo.models import models_at

            try:
                mapped = models_at(r.git, r.resolve(rev)).get(path)
            except MvcError:
                mapped = None
            if mapped is not None:
                path = r.abs(mapped)
        return resolve(path, repo=r, rev=rev)
    names = _names(r)
    if ref in names and not os.path.lexists(ref) and not os.path.lexists(ref + SUFFIX):
        return resolve(r.abs(names[ref]), repo=r)
    try:
        return resolve(ref, repo=r)
    except PathError:
        if not os.path.lexists(ref) and _is_revision(r, ref):  # a revision where a model version is asked for
            raise PathError(
                f"{ref} is a revision, and this compares model versions: give {ref}:PATH, NAME@vX.Y.Z or NAME#STAGE"
            ) from None
        raise


def _is_revision(r: Repo, text: str) -> bool:
    try:
        r.resolve(text)
    except MvcError:
        return False
    return True


# -- the comparison ---------------------------------------------------------------------------
def diff_models(
    a: str | os.PathLike,
    b: str | os.PathLike | None = None,
    *,
    tensors: bool = False,
    fetch: bool = False,
    remote: str | None = None,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """What changed from model version a to b (default: a's path in the work tree; with a naming the work
    tree's version, HEAD's against it). See the module's docstring, and docs/cli.md, "mvc diff".

    tensors: the tensor diff of each changed safetensors file of a directory. fetch: versions the cache lacks
    fetched into it first, so that every tensor is compared. remote: where versions the cache lacks are read.
    Returns {a, b: {ref, path, kind, oid, size, rev?, commit?}, kind, same, size_change, format?, tensors?,
    counts?, metadata_changes?, files?}."""
    r = open_repo(repo)
    a, b = os.fspath(a), os.fspath(b) if b is not None else None  # (a path given as a Path)
    ta = _target(r, a)
    if b is not None:
        tb = _target(r, b)
    elif ta.commit is None:  # the work tree's version: against HEAD's
        ta, tb = resolve(r.abs(ta.path), repo=r, rev="HEAD"), ta
        a, b = f"HEAD:{ta.path}", a
    else:
        tb = resolve(r.abs(ta.path), repo=r)
        b = tb.path
    sa, sb = _Side(ta, remote), _Side(tb, remote)
    try:
        return _diff(sa, sb, a, b, tensors, fetch, progress)
    finally:
        sa.close()
        sb.close()


def _diff(
    sa: _Side, sb: _Side, a: str, b: str, tensors: bool, fetch: bool, progress: progressmod.Factory
) -> dict[str, Any]:
    pa, pb = sa.t.pointer, sb.t.pointer
    out: dict[str, Any] = {
        "a": {"ref": a, **_described(sa.t)},
        "b": {"ref": b, **_described(sb.t)},
        "kind": pa.kind if pa.kind == pb.kind else f"{pa.kind} -> {pb.kind}",
        "same": pa.oid == pb.oid,
        "size_change": pb.size - pa.size,
    }
    if pa.kind != pb.kind:
        return out
    if pa.kind == "file":
        if _safetensors(sa.t) or _safetensors(sb.t):
            if fetch:
                sa.fetch([("", pa.oid, pa.size)], progress)
                sb.fetch([("", pb.oid, pb.size)], progress)
            out["format"] = "safetensors"
            out.update(_tensors(sa, (pa.oid, pa.size, ""), sb, (pb.oid, pb.size, "")))
        return out
    fa, fb = sa.manifest(), sb.manifest()
    files, counts = [], dict.fromkeys(("added", "removed", "changed", "unchanged"), 0)
    for path in sorted(set(fa) | set(fb)):
        x, y = fa.get(path), fb.get(path)
        change = "added" if x is None else "removed" if y is None else "unchanged" if x == y else "changed"
        counts[change] += 1
        if change == "unchanged":
            continue
        row: dict[str, Any] = {"path": path, "change": change, "a": _file(x), "b": _file(y)}
        if tensors and x is not None and y is not None and path.endswith(ST_SUFFIX):
            if fetch:
                sa.fetch([(path, *x)], progress)
                sb.fetch([(path, *y)], progress)
            row["format"] = "safetensors"
            row.update(_tensors(sa, (*x, path), sb, (*y, path)))
        files.append(row)
    out["files"], out["counts"] = files, counts
    return out


def _described(t: Target) -> dict[str, Any]:
    d = t.describe()
    d.pop("meta", None)
    if t.commit and t.repo is not None:
        d["commit"] = t.repo.resolve(t.commit)  # the id, where a path at a revision holds the revision
    return d


def _file(e: tuple[str, int] | None) -> dict[str, Any] | None:
    return None if e is None else {"oid": e[0], "size": e[1]}


def _safetensors(t: Target) -> bool:
    return t.path.endswith(ST_SUFFIX) or t.pointer.meta.get("format") == "safetensors"


class _Side:
    """One version: its target, the cache, and its remote (opened on first need)."""

    def __init__(self, t: Target, remote: str | None):
        self.t = t
        self.odb = local_odb(t)
        self.lazy = read._Remote(t, remote, self.odb)

    def close(self) -> None:
        self.lazy.__exit__()

    def label(self, sub: str) -> str:
        return self.t.label_of(sub)

    def local(self, oid: str) -> bool:
        return bool(self.odb.exists(oid))

    def fetch(self, files: list[tuple[str, str, int]], progress: progressmod.Factory) -> None:
        read._fetch_into(self.odb, self.lazy, self.t, [(s, o, n, False) for s, o, n in files], progress)

    def manifest(self) -> dict[str, tuple[str, int]]:
        from mvc.objects import manifest as mf

        p = self.t.pointer
        label = f"the manifest of directory {self.t.label}"
        data = read._small_object(self.t, self.lazy, self.odb, p.oid, label)
        return {e.path: (e.oid, e.size) for e in mf.loads(data, p.oid)}

    def source(self, oid: str, size: int, sub: str) -> Any:
        """(start, end) -> bytes of the object: from the cache, else by range from the remote."""
        from mvc.objects import reader

        if self.local(oid):
            return reader.cache_source(self.odb, oid)
        remote = self.lazy()
        try:
            where = reader.locate(remote, oid, size)
        except RemoteObjectMissing:
            raise RemoteObjectMissing(
                f"{self.label(sub)} (object {oid}) is neither in the cache nor on remote {remote.name}: "
                "push it from where it exists, or pass --remote of a remote that has it"
            ) from None
        return reader.remote_source(remote, where, self.label(sub), size)


Obj = tuple[str, int, str]  # oid, size, path in the directory ("": the model itself)


def header(read_range: Any, size: int, label: str) -> tuple[int, dict[str, str], headers.Tensors]:
    """(header length, __metadata__, tensors) of the safetensors object read_range reads (``size`` bytes),
    reading its first 8 bytes and its header alone."""
    head = read_range(0, min(8, size))
    n = headers.safetensors_length(io.BytesIO(head), size, label)
    if n > HEADER_MAX:
        raise ModelFormatError(
            f"{label} is not a valid safetensors file (its header claims {n} bytes, more than the format's "
            f"{HEADER_MAX >> 20} MiB): it is damaged or not a safetensors file"
        )
    meta, table = headers.safetensors_table(io.BytesIO(head + read_range(8, 8 + n)), size, label, n)
    return n, meta, table


def _tensors(sa: _Side, a: Obj, sb: _Side, b: Obj) -> dict[str, Any]:
    """The tensor diff of object a (of side sa) against b."""
    (oid_a, size_a, sub_a), (oid_b, size_b, sub_b) = a, b
    label_a, label_b = sa.label(sub_a), sb.label(sub_b)
    read_a, read_b = sa.source(oid_a, size_a, sub_a), sb.source(oid_b, size_b, sub_b)
    na, meta_a, ta = header(read_a, size_a, label_a)
    nb, meta_b, tb = header(read_b, size_b, label_b)
    same = oid_a == oid_b
    local = same or (sa.local(oid_a) and sb.local(oid_b))
    rows, counts = [], dict.fromkeys(CHANGES, 0)
    for name in sorted(set(ta) | set(tb)):
        x, y = ta.get(name), tb.get(name)
        row: dict[str, Any] = {"name": name, "a": _shape(x), "b": _shape(y)}
        if x is None or y is None:
            row["change"] = "added" if x is None else "removed"
        elif (x[0], x[1]) != (y[0], y[1]):
            row["change"] = "reshaped"
        elif same:
            row["change"] = "unchanged"
        elif not local:
            row["change"] = "unknown"
        else:
            where = ((read_a, 8 + na + x[2], label_a), (read_b, 8 + nb + y[2], label_b))
            row.update(_compare(where, x[3] - x[2], x[0], name))
        counts[row["change"]] += 1
        rows.append(row)
    keys = sorted(set(meta_a) | set(meta_b))
    changed = {k: [meta_a.get(k), meta_b.get(k)] for k in keys if meta_a.get(k) != meta_b.get(k)}
    return {"tensors": rows, "counts": counts, "metadata_changes": changed, "complete": local}


def _shape(t: tuple[str, list[int], int, int] | None) -> dict[str, Any] | None:
    return None if t is None else {"dtype": t[0], "shape": t[1]}


def _compare(where: tuple[tuple[Any, int, str], ...], length: int, dtype: str, name: str) -> dict[str, Any]:
    """Whether one tensor's bytes differ in the two versions, read block by block; for a changed one, how many
    elements differ and the largest absolute change (numeric dtypes), or "nan" where a NaN is involved."""
    (read_a, at_a, label_a), (read_b, at_b, label_b) = where
    width = headers.ST_WIDTHS.get(dtype, 1)
    step = BLOCK - BLOCK % width
    differ: int | None = 0
    top: float | None = 0.0 if dtype in VALUES or dtype == "BF16" else None
    changed = False
    for off in range(0, length, step):
        end = min(length, off + step)
        x, y = read_a(at_a + off, at_a + end), read_b(at_b + off, at_b + end)
        for data, label in ((x, label_a), (y, label_b)):
            if len(data) != end - off:
                raise ModelFormatError(
                    f"{label} ends inside the data of tensor {headers.quoted(name)}: it is truncated"
                )
        if x == y:
            continue
        changed = True
        n, d = _delta(x, y, dtype)
        differ = None if n is None or differ is None else differ + n
        if top is not None and d is not None:
            top = d if math.isnan(d) or math.isnan(top) else max(top, d)
    if not changed:
        return {"change": "unchanged"}
    out: dict[str, Any] = {"change": "changed", "elements_changed": differ}
    if top is not None:
        out["max_abs"] = top if math.isfinite(top) else str(top)  # JSON has no nan or inf
    return out


def _delta(x: bytes, y: bytes, dtype: str) -> tuple[int | None, float | None]:
    """(elements whose bits differ, the largest absolute difference of their values) of one block."""
    import numpy as np

    width = headers.ST_WIDTHS.get(dtype)
    if width not in BITS:
        return None, None
    bits = BITS[width]
    ux, uy = np.frombuffer(x, bits), np.frombuffer(y, bits)
    mask = ux != uy
    n = int(np.count_nonzero(mask))
    if dtype == "BF16":  # bfloat16 is the top half of a float32
        fx = (ux[mask].astype(np.uint32) << 16).view(np.float32)
        fy = (uy[mask].astype(np.uint32) << 16).view(np.float32)
    elif dtype in VALUES:
        fx, fy = ux[mask].view(VALUES[dtype]), uy[mask].view(VALUES[dtype])
    else:
        return n, None
    with np.errstate(all="ignore"):
        d = np.abs(fx.astype(np.float64) - fy.astype(np.float64))
    return n, float(d.max()) if d.size else 0.0
