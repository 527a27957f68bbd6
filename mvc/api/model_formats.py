"""Model file formats: telling one from a file's name and first bytes, reading one from a local binary file,
and writing an object in the format that holds it. No repository here; each framework is imported by the
function that needs it, so importing this module costs nothing."""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Callable
from typing import IO, Any

from mvc.errors import FrameworkMissing, ModelFormatError, MvcError, UntrustedModel

SAFETENSORS, TORCH, NPY, NPZ, ONNX, JOBLIB, PICKLE = "safetensors", "torch", "npy", "npz", "onnx", "joblib", "pickle"
SUFFIXES = {
    ".safetensors": SAFETENSORS,
    ".pt": TORCH,
    ".pth": TORCH,
    ".ckpt": TORCH,
    ".npy": NPY,
    ".npz": NPZ,
    ".onnx": ONNX,
    ".joblib": JOBLIB,
    ".pkl": PICKLE,
    ".pickle": PICKLE,
}  # any other suffix (.bin, none) is told from the first bytes
TITLES = {
    SAFETENSORS: "a safetensors file",
    TORCH: "a PyTorch file",
    NPY: "a NumPy .npy file",
    NPZ: "a NumPy .npz archive",
    ONNX: "an ONNX model",
    JOBLIB: "a joblib file",
    PICKLE: "a pickle file",
}
# the framework= values each format takes (None: the format's default); aliases are normalised first
FRAMEWORKS = {
    SAFETENSORS: ("numpy", "torch"),
    TORCH: ("torch",),
    NPY: ("numpy",),
    NPZ: ("numpy",),
    ONNX: ("bytes", "onnx", "onnxruntime"),
    JOBLIB: ("joblib", "sklearn"),
    PICKLE: ("pickle", "joblib", "sklearn"),
}
ALIASES = {"np": "numpy", "pt": "torch", "pytorch": "torch", "ort": "onnxruntime", "scikit-learn": "sklearn"}
# the module a missing import names -> (its package on PyPI, mvc's extra that installs it)
PACKAGES = {
    "safetensors": ("safetensors", "safetensors"),
    "numpy": ("numpy", "numpy"),
    "torch": ("torch", "torch"),
    "sklearn": ("scikit-learn", "sklearn"),
    "joblib": ("joblib", "sklearn"),
    "scipy": ("scipy", "sklearn"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
}
HEAD = 512  # first bytes read to tell a format: a zip's first member name must fit
SAFETENSORS_HEADER_MAX = 100 << 20  # the safetensors library refuses larger headers too
TORCH_LEGACY = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."  # the pickled magic number of torch < 1.6 files
# safetensors' dtypes as NumPy's (little-endian, as the format stores them) and torch's names them
NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "U64": "<u8", "I32": "<i4", "U32": "<u4"}
NUMPY_DTYPES.update({"I16": "<i2", "U16": "<u2", "I8": "i1", "U8": "u1", "BOOL": "?", "C64": "<c8"})
TORCH_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
}
TORCH_DTYPES.update({"I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "U16": "uint16", "U32": "uint32"})
TORCH_DTYPES.update({"U64": "uint64", "C64": "complex64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"})
TORCH_DTYPES.update({"F8_E8M0": "float8_e8m0fnu"})
DEFLATE_MAX = 1032  # deflate's largest expansion: an archive member claiming more lies about its size
TRUST_FIX = "pass trust=True if you trust who committed it"


# -- imports --------------------------------------------------------------------------------
def missing(e: ImportError, doing: str) -> FrameworkMissing:
    """The one-line error for an import that failed while ``doing`` (e.g. 'loading model.pt')."""
    top = (e.name or "").split(".")[0] or "a module"
    if top in PACKAGES:
        package, extra = PACKAGES[top]
        return FrameworkMissing(f"{doing} needs the {package} package: pip install 'mvc[{extra}]'")
    return FrameworkMissing(f"{doing} needs the Python module {top}, which is not installed: install its package")


def need(module: str, doing: str) -> Any:
    """Import module (a framework), or raise the one-line error naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise missing(e, doing) from None


def loaded(module: str) -> Any:
    """The module if this process imported it already: an object of a framework implies its import, so
    looking an object's type up costs no import."""
    return sys.modules.get(module)


# -- telling a format -------------------------------------------------------------------------
def by_suffix(name: str) -> str | None:
    """The format a file name's suffix names, or None when only the bytes can tell."""
    return SUFFIXES.get(os.path.splitext(name)[1].lower())


def sniff(head: bytes) -> str | None:
    """The format the first bytes of a file show, or None."""
    if head.startswith(b"\x93NUMPY"):
        return NPY
    if head.startswith(b"PK\x03\x04") and len(head) >= 30:
        # the first member's name: numpy's archives hold NAME.npy files; torch's start with ARCHIVE/data.pkl
        n = int.from_bytes(head[26:28], "little")
        first = head[30 : 30 + n]
        return NPZ if first.endswith(b".npy") else TORCH
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return TORCH if head.startswith(TORCH_LEGACY) else PICKLE
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= SAFETENSORS_HEADER_MAX:
        return SAFETENSORS
    return None


def check(fmt: str, name: str, framework: str | None, trust: bool, device: str | None) -> str | None:
    """Refuse what cannot be done before any byte is read; returns the framework, normalised."""
    if framework is not None:
        given, framework = framework, ALIASES.get(framework, framework)
        if framework not in FRAMEWORKS[fmt]:
            takes = ", ".join(repr(f) for f in FRAMEWORKS[fmt])
            raise ModelFormatError(f"framework={given!r} does not apply to {name} ({TITLES[fmt]}): pass one of {takes}")
    if fmt in (JOBLIB, PICKLE) and not trust:
        raise UntrustedModel(f"{name} is {TITLES[fmt]}: loading it runs code stored in it: {TRUST_FIX}")
    if device is not None and not (
        framework == "onnxruntime" or fmt == TORCH or (fmt, framework) == (SAFETENSORS, "torch")
    ):
        raise ModelFormatError(
            f"device={device!r} applies to torch tensors and onnxruntime sessions, not to {name} as loaded: "
            "pass framework='pt' (or 'onnxruntime') or no device"
        )
    if device is not None:
        _check_device(device, "onnxruntime" if framework == "onnxruntime" else "torch", name)
    return framework


def _check_device(device: str, runtime: str, name: str) -> None:
    """Refuse a device the runtime does not know, or a CUDA one on a machine without CUDA, before any byte is read:
    said as the device's fault, not as a damaged file."""
    kind = device.split(":")[0]
    if runtime == "onnxruntime":
        if kind not in ("cpu", "cuda"):
            raise ModelFormatError(f"device={device!r}: an onnxruntime session runs on 'cpu' or 'cuda' (or 'cuda:N')")
        return
    torch = need("torch", f"loading {name} on {device}")
    try:
        torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ModelFormatError(
            f"device={device!r} is not a device torch knows: pass e.g. 'cpu', 'cuda' or 'cuda:0'"
        ) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelFormatError(f"device={device!r}, but torch sees no CUDA device on this machine: pass device='cpu'")


# -- reading ------------------------------------------------------------------------------------
def load_file(
    file: str | os.PathLike | IO[bytes],
    *,
    name: str | None = None,
    framework: str | None = None,
    trust: bool = False,
    device: str | None = None,
) -> Any:
    """Load a local model file (a path, or a binary seekable file object) as ``mvc.load`` does; ``name`` (a file
    name, for its suffix and the messages) defaults to the path's."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return load_file(f, name=name or os.path.basename(file), framework=framework, trust=trust, device=device)
    name = name or os.path.basename(str(getattr(file, "name", "") or "")) or "the model"
    fmt = by_suffix(name)
    if fmt is not None:  # refusals first: an untrusted pickle is not even read
        check(fmt, name, framework, trust, device)
    start = file.tell()
    head = file.read(HEAD)
    file.seek(start)
    if fmt is None:
        fmt = sniff(head)
        if fmt is None:
            raise ModelFormatError(
                f"cannot tell the format of {name} from its name or first bytes: give it its format's suffix "
                f"({', '.join(SUFFIXES)})"
            )
    framework = check(fmt, name, framework, trust, device)
    safe = not trust or fmt not in (TORCH, JOBLIB, PICKLE)  # the formats whose trusted loads run the file's code
    try:
        return READERS[fmt](file, name, framework, trust, device)
    except MvcError:
        raise
    except ImportError as e:  # an unpickled object's module
        raise missing(e, f"loading {name}") from None
    except Exception as e:
        import pickle
        import struct
        import zipfile

        damaged = (
            EOFError,
            IndexError,
            struct.error,  # (a trusted joblib file cut short)
            pickle.UnpicklingError,
            zipfile.BadZipFile,
            *((RuntimeError,) if fmt == TORCH else ()),
        )
        cut = isinstance(e, ValueError) and "EOF" in str(e)  # (numpy reading an array a joblib file cut short)
        if not safe and not isinstance(e, damaged) and not cut:
            raise  # the trusted file's own code failed: its traceback is the user's to read
        raise corrupt(name, fmt, e, head) from None


def corrupt(name: str, fmt: str, e: BaseException, head: bytes) -> ModelFormatError:
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0][:200]
    actual = sniff(head)
    looks = f"; its first bytes look like {TITLES[actual]}" if actual not in (None, fmt) else ""
    return ModelFormatError(
        f"{name} is not a valid {TITLES[fmt].split(' ', 1)[1]} ({reason}{looks}): it is truncated, damaged "
        "or mislabelled: save it again"
    )


def _safetensors(f: IO[bytes], name: str, framework: str | None, trust: bool, device: str | None) -> Any:
    """The tensors as views of one buffer holding the file's bytes, read whole (and so verified, from a stream of
    mvc's) before its header is parsed: about the model's size in memory, where the safetensors library's load of
    those bytes copies every tensor out of them (twice the model)."""
    if framework == "torch":
        torch = need("torch", f"loading {name} with framework='pt'")
    else:
        np = need("numpy", f"loading {name}")
    data = read_whole(f)
    start, tensors = safetensors_layout(data, name)
    out: dict[str, Any] = {}
    if framework == "torch":
        for key, (dtype, shape, begin, _) in tensors.items():
            kind = getattr(torch, TORCH_DTYPES.get(dtype, ""), None)
            if not isinstance(kind, torch.dtype):
                raise ModelFormatError(f"{name} holds {dtype} tensors, which this torch cannot hold: update torch")
            count = math.prod(shape)
            if count == 0:
                t = torch.empty(shape, dtype=kind)
            else:
                t = torch.frombuffer(data, dtype=kind, count=count, offset=start + begin).reshape(shape)
                if (start + begin) % t.element_size():
                    t = t.clone()  # (an odd place: a copy of its own, aligned)
            out[key] = t if device is None else t.to(device)
        return out
    other = sorted({dtype for dtype, _, _, _ in tensors.values()} - set(NUMPY_DTYPES))
    if other:
        raise ModelFormatError(f"{name} holds {other[0]} tensors, which NumPy cannot hold: load it with framework='pt'")
    for key, (dtype, shape, begin, end) in tensors.items():
        kind = np.dtype(NUMPY_DTYPES[dtype])
        a = np.frombuffer(data, dtype=kind, count=(end - begin) // kind.itemsize, offset=start + begin).reshape(shape)
        out[key] = a if a.flags.aligned else a.copy()
    return out


def read_whole(f: IO[bytes]) -> bytearray:
    """The rest of f in one buffer, filled in place (read() would gather pieces and join them: twice the model in
    memory), read to its end: a stream of mvc's has then checked every byte against its oid."""
    at = f.tell()
    size = f.seek(0, os.SEEK_END) - at
    f.seek(at)
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise ValueError(f"{size - got} bytes missing at its end")
        got += n
    view.release()
    if f.read(1):  # (also where a stream of mvc's checks an empty object)
        raise ValueError("it grew while it was read")
    return data


def safetensors_layout(data: bytearray, name: str) -> tuple[int, dict[str, tuple[str, list[int], int, int]]]:
    """Where the tensors of a safetensors file's bytes start, and each one's (dtype, shape, begin, end) from there:
    the header checked by ``headers.safetensors_table`` (offsets, shapes, overlaps), and the tensors covering the
    data without a gap, as the safetensors library requires."""
    from mvc.format import headers

    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, shorter than the header's length")
    n = int.from_bytes(data[:8], "little")
    if n > SAFETENSORS_HEADER_MAX or n > len(data) - 8:
        raise ValueError(f"its header claims {n} bytes but {len(data) - 8} follow the length")
    _, tensors = headers.safetensors_table(io.BytesIO(bytes(data[: 8 + n])), len(data), name, n)
    last = 0
    for begin, end, key in sorted((b, e, k) for k, (_, _, b, e) in tensors.items()):
        if begin != last:
            raise ValueError(
                f"tensor {key!r} starts at byte {begin} of the data, not at {last}, where the one before ends"
            )
        last = end
    if last != len(data) - 8 - n:
        raise ValueError(f"its tensors end at byte {last} of the data, which holds {len(data) - 8 - n}")
    return 8 + n, tensors


def _torch(f: IO[bytes], name: str, framework: str | None, trust: bool, device: str | None) -> Any:
    import pickle
    import re

    torch = need("torch", f"loading {name}")
    try:
        return torch.load(f, map_location=device, weights_only=not trust)
    except pickle.UnpicklingError as e:
        # torch's restricted unpickler met a global it does not allow, or an object it builds none of
        found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(e), re.IGNORECASE)
        refused = "allowlisted" in str(e) or "Weights only load failed" in str(e)  # (torch's safe loader said no)
        if trust or (found is None and not refused):
            raise
        what = f"a {found.group(1)}" if found else "objects"
        raise UntrustedModel(
            f"{name} holds {what}, not only tensors: loading it runs code stored in it: {TRUST_FIX}"
        ) from None


def _npy(f: IO[bytes], name: str, framework: str | None, trust: bool, device: str | None) -> Any:
    np = need("numpy", f"loading {name}")
    start = f.tell()
    size = f.seek(0, os.SEEK_END) - start
    f.seek(start)
    check_npy(f, size, name, trust)
    f.seek(start)
    return np.load(f, allow_pickle=trust)


def _npz(f: IO[bytes], name: str, framework: str | None, trust: bool, device: str | None) -> Any:
    import zipfile

    np = need("numpy", f"loading {name}")
    start = f.tell()
    with zipfile.ZipFile(f) as z:
        for info in z.infolist():
            stored = info.compress_type == zipfile.ZIP_STORED
            if info.file_size > (info.compress_size if stored else DEFLATE_MAX * info.compress_size + 1024):
                raise ModelFormatError(
                    f"{name}: member {info.filename} claims {info.file_size} bytes from {info.compress_size} "
                    "stored, more than compression can give: the archive is corrupt"
                )
            if not info.filename.endswith(".npy"):  # (np.load would hand back its raw bytes as an "array")
                raise ModelFormatError(
                    f"{name} is not a NumPy .npz archive: its member {info.filename!r} is not an array (.npy); "
                    f"it is mislabelled or damaged: save it again"
                )
            with z.open(info) as member:
                check_npy(member, info.file_size, f"{name}:{info.filename}", trust)
    f.seek(start)
    with np.load(f, allow_pickle=trust) as arrays:
        return {key: arrays[key] for key in arrays.files}


def check_npy(f: IO[bytes], size: int, name: str, trust: bool) -> None:
    """Read a .npy header from f (``size`` bytes long): refuse object arrays without trust, and an array the
    file is too short to hold (numpy would allocate all of it before reading)."""
    from numpy.lib import format as npformat

    version = npformat.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = npformat.read_array_header_1_0(f)
    else:
        shape, _, dtype = npformat.read_array_header_2_0(f)
    if dtype.hasobject:
        if not trust:
            raise UntrustedModel(
                f"{name} holds Python objects: loading it unpickles them, which runs code: {TRUST_FIX}"
            )
        return
    count = 1
    for n in shape:
        count *= n
    want, have = count * dtype.itemsize, size - f.tell()
    if want > have:
        raise ModelFormatError(
            f"{name} is truncated: its header promises {want} bytes of array data but {have} follow: save it again"
        )


def _onnx(f: IO[bytes], name: str, framework: str | None, trust: bool, device: str | None) -> Any:
    data = f.read()
    if framework in (None, "bytes"):
        return data
    if framework == "onnx":
        return need("onnx", f"loading {name} with framework='onnx'").load_model_from_string(data)
    ort = need("onnxruntime", f"loading {name} with framework='onnxruntime'")
    providers = ["CPUExecutionProvider"]
    if device is not None and device.split(":")[0] == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(data, providers=providers)


def _pickled(f: IO[bytes], name: str, framework: str | None, trust: bool, device: str | None) -> Any:
    import pickle

    if framework != "pickle":
        # joblib reads plain pickles too, and its own files (compressed, or with numpy arrays inline)
        try:
            joblib = need("joblib", f"loading {name}")
        except FrameworkMissing:
            if by_suffix(name) == JOBLIB or framework in ("joblib", "sklearn"):
                raise
        else:
            return joblib.load(f)
    # a joblib file read without joblib: unpickling imports joblib, which fails as a missing module
    return pickle.load(f)


READERS: dict[str, Callable[[IO[bytes], str, str | None, bool, str | None], Any]] = {
    SAFETENSORS: _safetensors,
    TORCH: _torch,
    NPY: _npy,
    NPZ: _npz,
    ONNX: _onnx,
    JOBLIB: _pickled,
    PICKLE: _pickled,
}
