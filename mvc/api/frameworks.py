"""``mvc.load`` and ``mvc.save``: a model version as a framework's object, and an object written in its
format and added. The formats themselves (telling, reading) are ``mvc.api.model_formats``; every framework
is imported by the function that needs it."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from mvc.api import model_formats as fmts
from mvc.api.model_formats import JOBLIB, NPY, NPZ, ONNX, PICKLE, SAFETENSORS, SUFFIXES, TITLES, TORCH, loaded, need
from mvc.errors import ModelFormatError

if TYPE_CHECKING:
    from mvc.repo.repository import Repo


def load(
    ref: str | os.PathLike,
    *,
    repo: Repo | str | os.PathLike | None = None,
    rev: str | None = None,
    remote: str | None = None,
    framework: str | None = None,
    trust: bool = False,
    device: str | None = None,
) -> Any:
    """The model that ref names (a tracked path, ``NAME@v1.2.3``, ``NAME@latest``, ``NAME#STAGE``) as an object.

    ``framework``: what to build (default: the format's natural object; see docs/api.md), e.g. ``"pt"`` for
    torch tensors from safetensors, ``"onnxruntime"`` for an InferenceSession. ``trust``: allow formats that run
    code stored in the file (pickle, joblib, torch pickles beyond tensors). ``device``: torch's map_location,
    or a CUDA provider for onnxruntime. A tracked directory gives a local path to a verified copy."""
    from mvc.api import read

    t = read.target_of(ref, repo=repo, rev=rev, remote=remote)  # once: a repository by URL is asked once, not per step
    info = t.describe()
    name = info["path"].rsplit("/", 1)[-1]
    if info["kind"] == "dir":
        if framework not in (None, "path") or device is not None:
            raise ModelFormatError(
                f"{info['path']} is a directory: load gives its local path, for the framework's own loader "
                "(e.g. from_pretrained): pass no framework or device"
            )
        return read.materialize(t, remote=remote)
    fmt = fmts.by_suffix(name)
    if fmt is not None:  # refuse before any byte is fetched
        fmts.check(fmt, name, framework, trust, device)
    return read.read_twice(
        t, remote, lambda f: fmts.load_file(f, name=name, framework=framework, trust=trust, device=device)
    )


def save(
    obj: Any,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    meta: dict[str, Any] | None = None,
    stage: bool = True,
    repo: Repo | None = None,
) -> dict[str, Any]:
    """Write obj to path in its format and add it (``mvc.add``): safetensors for a dict of NumPy arrays or torch
    tensors and for a torch module (its state_dict()), .npy for an array, joblib for anything else, or the
    format path's suffix names. The pointer's meta gets ``framework`` and ``versions``, then ``meta``'s keys.
    ``name``: the registry model name of the path. Returns add's entry for the path."""
    from mvc.api import record, workspace
    from mvc.repo.repository import open_repo
    from mvc.storage import fileio, tempfiles

    path = os.fspath(path)
    repo = open_repo(repo)
    # the record refused before anything is written (a numpy scalar is the number it holds, as for mvc.run)
    given = record.check(_numbers(meta) if meta is not None else {}, "meta")
    fmt, kind = plan(obj, os.path.basename(path))
    framework = framework_of(obj, kind)
    if framework == "torch":
        _refuse_meta(obj, path)
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise ModelFormatError(f"{path} is a directory: save writes one file, name it (e.g. {path}/model{suffix(fmt)})")
    workspace.check_add(path, name=name, repo=repo)  # what add would refuse, refused before anything is written
    _keep(repo, full)
    parent = os.path.dirname(full)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfiles.tmp_name(parent, os.path.basename(full))
    try:
        with fileio.space_errors(path):
            try:
                write(obj, fmt, kind, tmp, os.path.basename(full))
            except (TypeError, AttributeError, ValueError, NotImplementedError, _pickle_error()) as e:  # (its refusals)
                raise ModelFormatError(
                    f"{path}: this {type(obj).__name__} cannot be written as {TITLES.get(fmt, fmt)} "
                    f"({str(e).splitlines()[0] if str(e) else type(e).__name__}): save what it holds in a format "
                    "that takes it, or make it serializable"
                ) from None
            fd = os.open(tmp, os.O_RDONLY)
            try:
                if fmt == SAFETENSORS:  # the mode any new file gets (the safetensors library makes its own 0600)
                    os.fchmod(fd, 0o666 & ~tempfiles.umask())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, full)
    except BaseException:
        fileio.remove_quietly(tmp)
        raise
    fileio.fsync_dir(parent)
    recorded: dict[str, Any] = {"framework": framework, "versions": versions(fmt, framework)}
    # a new save's versions replace the whole table (the old one may name a framework this object does not use)
    layers = [{"versions": None}, recorded, given]
    return workspace.add([path], meta=layers, stage=stage, name=name, repo=repo)[0]


def _refuse_meta(obj: Any, path: str) -> None:
    """A tensor on torch's meta device has a shape and no data (a model built with ``device="meta"``, or whose
    weights were never loaded): saving it would write no weights (torch.save) or fail in the writer."""
    torch = loaded("torch")
    todo, seen = [obj], 0
    while todo and seen < 100_000:  # a checkpoint's nesting, walked as far as is cheap
        x = todo.pop()
        seen += 1
        if isinstance(x, torch.nn.Module):
            todo.extend(x.state_dict(keep_vars=True).values())
        elif isinstance(x, dict):
            todo.extend(x.values())
        elif isinstance(x, (list, tuple)):
            todo.extend(x)
        elif isinstance(x, torch.Tensor) and x.is_meta:
            raise ModelFormatError(
                f"cannot save to {path}: it holds tensors on the meta device, shapes with no data (a model built "
                "with device='meta', or whose weights were never loaded): load or initialise its weights first"
            )


def _pickle_error() -> type[Exception]:
    import pickle

    return pickle.PicklingError


def _numbers(value: Any) -> Any:
    """value with numpy scalars as the Python numbers they hold, in tables and arrays at any depth."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers(v) for v in value]
    from mvc.api.training import _plain

    return _plain(value)


def _keep(repo: Repo, full: str) -> None:
    """The file save replaces is kept in the cache first (synced), unless the cache holds its content: mvc
    never overwrites a file whose content is not safely in the cache (as ``checkout --force``)."""
    import stat

    from mvc.storage import fileio

    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        return  # a symlink is replaced, never followed: no data of the user's is lost
    digest, _ = fileio.hash_file(full)
    from mvc.objects.oid import from_digest

    if not repo.odb.exists(from_digest(digest)):
        repo.odb.add_file(full, ("copy",), durable=True)


# -- writing ------------------------------------------------------------------------------------
# What an object is, for choosing its format: "arrays" (a dict of numpy arrays of the dtypes safetensors
# holds), "any-arrays" (a dict of numpy arrays, some of other dtypes: strings, dates, …), "tensors" (a dict of
# torch tensors), "module" (a torch nn.Module: its state_dict() is saved), "array", "tensor", "onnx" (an onnx
# ModelProto), "object" (anything else, object arrays included: pickled)
NATURAL = {
    "arrays": SAFETENSORS,
    "any-arrays": NPZ,
    "tensors": SAFETENSORS,
    "module": SAFETENSORS,
    "array": NPY,
    "tensor": TORCH,
    "onnx": ONNX,
    "object": JOBLIB,
}
HOLDS = {
    SAFETENSORS: ("arrays", "tensors", "module"),
    TORCH: ("tensors", "module", "tensor", "checkpoint"),
    NPY: ("array",),
    NPZ: ("arrays", "any-arrays", "array"),
    ONNX: ("onnx",),
}
HOLDS_TEXT = {
    SAFETENSORS: "a dict of NumPy arrays (numbers and booleans) or torch tensors, or a torch module",
    TORCH: "torch tensors, a torch module or a dict (a checkpoint)",
    NPY: "one NumPy array",
    NPZ: "NumPy arrays (one, or a dict of them)",
    ONNX: "an onnx.ModelProto",
}


SAFETENSORS_DTYPES = {"f8", "f4", "f2", "i8", "u8", "i4", "u4", "i2", "u2", "i1", "u1", "b1", "c8"}  # little-endian


def kind_of(obj: Any) -> str:
    np, torch, onnx = loaded("numpy"), loaded("torch"), loaded("onnx")
    if np is not None and (_array(np, obj) or (isinstance(obj, np.generic) and not obj.dtype.hasobject)):
        return "array"  # (a NumPy scalar, np.float32(3.0), as the 0-d array np.save makes of it)
    if torch is not None:
        if isinstance(obj, torch.Tensor):
            return "tensor"
        if isinstance(obj, torch.nn.Module):
            return "module"
    if onnx is not None and isinstance(obj, onnx.ModelProto):
        return "onnx"
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj):
        if np is not None and all(_array(np, v) for v in obj.values()):
            return (
                "arrays" if all(v.dtype.str.lstrip("|<=") in SAFETENSORS_DTYPES for v in obj.values()) else "any-arrays"
            )
        if torch is not None and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return "tensors"
    return "object"


def _array(np: Any, obj: Any) -> bool:
    """An array whose values are the whole of it: object arrays pickle, and a masked array's mask would be lost
    (.npy and safetensors hold the data alone), so both go to joblib."""
    return isinstance(obj, np.ndarray) and not obj.dtype.hasobject and not isinstance(obj, np.ma.MaskedArray)


def plan(obj: Any, name: str) -> tuple[str, str]:
    """(the format to write obj in, its kind): the one the name's suffix names, else obj's natural one.
    Raises when the suffix names a format that cannot hold obj."""
    kind = kind_of(obj)
    fmt = TORCH if os.path.splitext(name)[1].lower() == ".bin" else fmts.by_suffix(name)  # pytorch_model.bin
    if fmt is None:
        return NATURAL[kind], kind
    if fmt in (JOBLIB, PICKLE):
        return fmt, kind
    if fmt == TORCH and kind == "object" and isinstance(obj, dict):
        kind = "checkpoint"
    if kind not in HOLDS[fmt]:
        swapped = _big_endian(obj) if fmt == SAFETENSORS and kind == "any-arrays" else None
        if swapped is not None:
            raise ModelFormatError(
                f"cannot save array {swapped!r} to {name}: it is big-endian ({obj[swapped].dtype.str}), and safetensors "
                f"holds little-endian arrays alone: name it {os.path.splitext(name)[0]}.npz, or save "
                "arr.astype(arr.dtype.newbyteorder('<'))"
            )
        raise ModelFormatError(
            f"cannot save {what(obj)} to {name}: {TITLES[fmt]} holds {HOLDS_TEXT[fmt]}: "
            f"name it {os.path.splitext(name)[0]}{suffix(NATURAL[kind])}"
        )
    return fmt, kind


def _big_endian(arrays: dict[str, Any]) -> str | None:
    """The first array of a dict that safetensors would hold if it were little-endian, when that is all it lacks."""
    if not all(a.dtype.str.lstrip("|<=>") in SAFETENSORS_DTYPES for a in arrays.values()):
        return None
    return next((key for key, a in arrays.items() if a.dtype.str[0] == ">"), None)


def what(obj: Any) -> str:
    t = type(obj)
    return f"a {t.__qualname__}" if t.__module__ == "builtins" else f"a {t.__module__}.{t.__qualname__}"


def suffix(fmt: str) -> str:
    return next(s for s, f in SUFFIXES.items() if f == fmt)


def framework_of(obj: Any, kind: str) -> str:
    """The framework an object belongs to, as recorded in the pointer's meta."""
    if kind in ("arrays", "any-arrays", "array"):
        return "numpy"
    if kind in ("tensors", "module", "tensor", "checkpoint"):
        return "torch"
    if kind == "onnx":
        return "onnx"
    top = type(obj).__module__.split(".")[0]
    return "python" if top in ("builtins", "__main__") else top


def versions(fmt: str, framework: str) -> dict[str, str]:
    """Python's version and those of the framework and the libraries that wrote the format, by import name."""
    names = {framework, {SAFETENSORS: "safetensors", JOBLIB: "joblib", NPY: "numpy", NPZ: "numpy"}.get(fmt, "")}
    if framework not in ("torch", "onnx"):
        names.add("numpy")  # scikit-learn and other pickled objects hold numpy arrays
    out = {"python": "{}.{}.{}".format(*sys.version_info[:3])}
    for module in sorted(names - {"", "python"}):
        version = getattr(loaded(module), "__version__", None)
        if isinstance(version, str):
            out[module] = version
    return out


def write(obj: Any, fmt: str, kind: str, path: str, shown: str) -> None:
    """Write obj in fmt to path, a new file (``shown`` is its name in messages)."""
    doing = f"saving {shown}"
    if fmt == SAFETENSORS:
        if kind == "arrays":  # each array's bytes in C order: safetensors writes a buffer as it lies in memory
            np = need("numpy", doing)
            arrays = {k: np.ascontiguousarray(v) for k, v in obj.items()}
            need("safetensors.numpy", doing).save_file(arrays, path, metadata={"format": "np"})
        else:
            need("safetensors.torch", doing).save_file(tensors(obj), path, metadata={"format": "pt"})
    elif fmt == TORCH:
        need("torch", doing).save(obj.state_dict() if kind == "module" else obj, path)
    elif fmt in (NPY, NPZ):
        np = need("numpy", doing)
        with open(path, "wb") as f:
            if fmt == NPY:
                np.save(f, obj, allow_pickle=False)
            else:  # np.savez's own layout, written member by member: a key may be any name ('file' too)
                import zipfile

                members = obj if kind != "array" else {"arr_0": obj}
                with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
                    for key, value in members.items():
                        with z.open(f"{key}.npy", "w", force_zip64=True) as m:
                            try:
                                np.lib.format.write_array(m, np.asanyarray(value), allow_pickle=False)
                            except ValueError as e:
                                raise ModelFormatError(
                                    f"{shown}: array {key!r} cannot be saved without pickling ({e}): convert it "
                                    "to numbers or strings"
                                ) from None
    elif fmt == ONNX:
        with open(path, "wb") as f:
            f.write(obj.SerializeToString())
    elif fmt == JOBLIB:
        need("joblib", doing).dump(obj, path)
    else:
        import pickle

        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def tensors(obj: Any) -> dict[str, Any]:
    """A module's state dict or a dict of tensors, as safetensors takes it: detached, on the CPU, contiguous,
    and no two sharing memory (tied weights are written twice; torch's load_state_dict ties them again)."""
    state = obj.state_dict() if kind_of(obj) == "module" else obj
    torch = loaded("torch")
    known = getattr(sys.modules.get("safetensors.torch"), "_SIZE", None)  # the dtypes safetensors writes
    out, seen = {}, set()
    for key, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ModelFormatError(
                f"the state dict of {what(obj)} holds {key}, {what(t)}, which safetensors cannot hold: "
                "save it to a .pt file"
            )
        odd = (
            f"a {str(t.layout).removeprefix('torch.')} tensor"
            if t.layout != torch.strided
            else f"a tensor of {str(t.dtype).removeprefix('torch.')}"
            if t.is_quantized or (known is not None and t.dtype not in known)
            else None
        )
        if odd is not None:
            raise ModelFormatError(f"tensor {key!r} is {odd}, which safetensors cannot hold: save it to a .pt file")
        t = t.detach().cpu()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen or not t.is_contiguous():
            t = t.contiguous().clone()
        if ptr:
            seen.add(ptr)
        out[key] = t
    return out
