"""The names a pickle stream mentions, read from its opcodes and never executed: the class names of plain
pickles, of joblib files (pickles with raw numpy buffers between their opcodes) and of torch archives (the zip
format's data.pkl, and the legacy format's run of pickles), with the tensor storages and arrays they describe.

A small stack model follows the opcodes (pickletools' table and argument readers) far enough to name what
STACK_GLOBAL, BINPERSID and joblib's array wrappers refer to; nothing is imported or called. A scan ends at
STOP, at the first byte that is no valid opcode (``complete`` is then false) and at its caps; arguments over
ARG_MAX are skipped by seeking, unread. Only a zip directory that contradicts itself raises ModelFormatError.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickletools
import struct
from typing import IO, Any

from mvc.errors import ModelFormatError

OPS_MAX = 500_000  # opcodes followed in all: a model's pickle has a few dozen per tensor or array
READ_MAX = 32 << 20  # bytes of opcodes and arguments read in all; skipped arguments and arrays do not count
ARG_MAX = 1 << 20  # a longer string or bytes argument is skipped unread: only names matter here
LINE_MAX = 1 << 16  # a protocol 0 argument line
CLASSES_MAX = 256  # distinct class names kept
NAME_MAX = 256  # characters of a class name kept
DIRECTORY_MAX = 8 << 20  # bytes of a zip's central directory: ~80,000 torch storages
SMALL = 64  # bytes of an archive's byteorder and version records
TORCH_LEGACY = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."  # the pickled magic number of torch < 1.6 files
WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
COMPRESSED = {b"x": "zlib", b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ": "xz", b"]\x00\x00": "lzma"}
COMPRESSED[b"\x04\x22\x4d\x18"] = "lz4"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
TORCH_DTYPES = {
    "Float": "float32",
    "Double": "float64",
    "Half": "float16",
    "BFloat16": "bfloat16",
    "Long": "int64",
    "Int": "int32",
    "Short": "int16",
    "Char": "int8",
    "Byte": "uint8",
    "Bool": "bool",
    "ComplexFloat": "complex64",
    "ComplexDouble": "complex128",
}
PUSHED = ("int", "int_or_bool", "bytes_or_str", "bytes", "bytearray", "str", "float")
OPS = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
# the arguments that carry their length first: its width and signedness
PREFIXED = {
    pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
    pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
    pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
    pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
}
# the opcodes that push their argument: ints, strings, bytes, floats
VALUES = frozenset(
    op.name
    for op in pickletools.opcodes
    if op.arg and not op.stack_before and [x.name for x in op.stack_after] in ([t] for t in PUSHED)
)
TUPLES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
SKIPPED = object()  # an argument too long to read
OTHER = object()  # a value the scanner does not follow


class Global:
    """A class or function a pickle names (GLOBAL, STACK_GLOBAL, INST)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class Obj:
    """What REDUCE, NEWOBJ or OBJ would build: its callable, arguments, and the state BUILD gives it."""

    __slots__ = ("args", "cls", "state")

    def __init__(self, cls: Any, args: Any) -> None:
        self.cls, self.args, self.state = cls, args, None


class Found:
    """What scans saw: class names, torch storages (key -> class, elements), joblib arrays and elements."""

    __slots__ = ("arrays", "classes", "elements", "ops", "protocol", "storages")

    def __init__(self) -> None:
        self.classes: dict[str, None] = {}
        self.storages: dict[str, tuple[str, int]] = {}
        self.arrays = self.elements = self.ops = self.protocol = 0

    def note(self, name: str) -> str:
        if len(self.classes) < CLASSES_MAX:
            self.classes.setdefault(name[:NAME_MAX], None)
        return name


class Stream:
    """``size`` bytes of f from its position, as pickletools' readers want them: short reads at the end,
    bounded lines, skips by seeking; ``spent`` counts the bytes read."""

    __slots__ = ("f", "left", "spent")

    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f, self.left, self.spent = f, size, 0

    def read(self, n: int) -> bytes:
        data = self.f.read(max(0, min(n, self.left)))
        self.left -= len(data)
        self.spent += len(data)
        return data

    def readline(self) -> bytes:
        data = self.f.readline(max(0, min(LINE_MAX, self.left)))
        self.left -= len(data)
        self.spent += len(data)
        return data

    def skip(self, n: int) -> None:
        if not 0 <= n <= self.left:
            raise ValueError(f"{n} bytes skipped with {self.left} left")
        self.f.seek(n, os.SEEK_CUR)
        self.left -= n


def argument(s: Stream, op: pickletools.OpcodeInfo) -> Any:
    """The argument of op, read from s; SKIPPED for a string or bytes over ARG_MAX (ValueError on garbage)."""
    arg = op.arg
    if arg is None:
        return None
    reader: Any = arg.reader
    if arg.n not in PREFIXED:
        return reader(s)
    width, signed = PREFIXED[arg.n]
    head = s.read(width)
    if len(head) < width:
        raise ValueError("the file ends in a length")
    n = int.from_bytes(head, "little", signed=signed)
    if n > ARG_MAX:
        s.skip(n)
        return SKIPPED
    return reader(io.BytesIO(head + s.read(n)))  # a negative or short length: the reader raises ValueError


def scan(s: Stream, found: Found, joblib: bool = False, outer: bool = True) -> bool:
    """Follow one pickle from s to its STOP, noting what it names in found; False when it stopped short (garbage,
    the end of the file, or a cap). ``joblib``: skip the numpy buffers that follow joblib's array wrappers."""
    stack: list[Any] = []
    marks: list[int] = []  # where each open MARK's items start on the stack
    memo: dict[Any, Any] = {}
    proto = 0

    def frame() -> int:
        return marks[-1] if marks else 0

    def pop() -> Any:
        if len(stack) <= frame():
            raise ValueError("the stack is empty")
        return stack.pop()

    def top() -> Any:
        if len(stack) <= frame():
            raise ValueError("the stack is empty")
        return stack[-1]

    def to_mark() -> list[Any]:
        if not marks:
            raise ValueError("no MARK")
        i = marks.pop()
        items = stack[i:]
        del stack[i:]
        return items

    try:
        while found.ops < OPS_MAX and s.spent <= READ_MAX:
            op = OPS.get(s.read(1))
            if op is None:
                return False
            found.ops += 1
            value = argument(s, op)
            name = op.name
            if name in VALUES:
                stack.append(value)
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[value] = top()
            elif name == "MEMOIZE":
                memo[len(memo)] = top()
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                if value not in memo:
                    raise ValueError(f"memo {value} unset")
                stack.append(memo[value])
            elif name == "MARK":
                marks.append(len(stack))
            elif name in TUPLES:
                items = [pop() for _ in range(TUPLES[name])]
                stack.append(tuple(reversed(items)))
            elif name == "TUPLE":
                stack.append(tuple(to_mark()))
            elif name in ("EMPTY_DICT", "DICT"):
                items = to_mark() if name == "DICT" else []
                stack.append(dict(pairs(items)))
            elif name in ("SETITEM", "SETITEMS"):
                items = to_mark() if name == "SETITEMS" else [*reversed([pop(), pop()])]
                target = top()
                if isinstance(target, dict):
                    target.update(pairs(items))
            elif name in ("GLOBAL", "INST"):
                module, _, qualname = value.partition(" ")
                cls = Global(found.note(imported(module, qualname, proto)))
                stack.append(cls if name == "GLOBAL" else Obj(cls, tuple(to_mark())))
            elif name == "STACK_GLOBAL":
                qualname, module = pop(), pop()
                if not (isinstance(module, str) and isinstance(qualname, str)):
                    raise ValueError("STACK_GLOBAL of a non-string")
                stack.append(Global(found.note(imported(module, qualname, proto))))
            elif name == "OBJ":
                items = to_mark()
                if not items:
                    raise ValueError("OBJ without a class")
                stack.append(Obj(items[0], tuple(items[1:])))
            elif name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX"):
                if name == "NEWOBJ_EX":
                    pop()
                args = pop()
                stack.append(Obj(pop(), args))
            elif name == "BUILD":
                state = pop()
                obj = top()
                if isinstance(obj, Obj):
                    obj.state = state
                    if (
                        joblib
                        and isinstance(obj.cls, Global)
                        and obj.cls.name == WRAPPER
                        and not array(s, found, state)
                    ):
                        return False
            elif name == "BINPERSID":
                storage(found, pop())
                stack.append(OTHER)
            elif name == "STOP":
                pop()
                return True
            elif name == "PROTO":
                if value > 5:
                    raise ValueError(f"protocol {value}")
                proto = value
                found.protocol = value if outer else found.protocol
            elif name == "POP":
                if len(stack) > frame():
                    stack.pop()
                elif marks:  # protocol 0's recursive tuples pop their MARK this way
                    marks.pop()
                else:
                    raise ValueError("POP of an empty stack")
            elif name == "POP_MARK":
                to_mark()
            elif name == "DUP":
                stack.append(top())
            elif name != "FRAME":  # the rest (lists, sets, None, booleans, buffers, extensions) by their table
                before = [x.name for x in op.stack_before]
                if "mark" in before:
                    to_mark()
                    before = before[: before.index("mark")]
                for _ in before:
                    pop()
                stack.extend(OTHER for _ in op.stack_after)
            if outer and op.proto > found.protocol and name != "PROTO":
                found.protocol = op.proto
    except (ValueError, EOFError, OverflowError):
        return False  # garbage: pickletools' readers and the stack model raise ValueError
    return False


def imported(module: str, qualname: str, proto: int) -> str:
    """module.qualname as an unpickler would import it: below protocol 3 it maps Python 2's names (fix_imports)."""
    if proto < 3:
        default = (_compat_pickle.IMPORT_MAPPING.get(module, module), qualname)
        module, qualname = _compat_pickle.NAME_MAPPING.get((module, qualname), default)
    return f"{module}.{qualname}"


def pairs(items: list[Any]) -> list[tuple[str, Any]]:
    """The items of a DICT or SETITEMS as (key, value), the keys that are strings only (the rest is not needed)."""
    return [(k, v) for k, v in zip(items[::2], items[1::2], strict=False) if isinstance(k, str)]


def array(s: Stream, found: Found, state: Any) -> bool:
    """Skip the raw buffer that joblib writes after a NumpyArrayWrapper's BUILD (an object array: the pickle
    that holds it); False when the wrapper's state does not tell the buffer's size."""
    shape = state.get("shape") if isinstance(state, dict) else None
    dtype = state.get("dtype") if isinstance(state, dict) else None
    if not (isinstance(shape, tuple) and len(shape) <= 64 and all(type(d) is int and 0 <= d < 2**63 for d in shape)):
        return False
    if not (isinstance(dtype, Obj) and isinstance(dtype.args, tuple) and dtype.args and isinstance(dtype.args[0], str)):
        return False
    code, dstate = dtype.args[0], dtype.state if isinstance(dtype.state, tuple) else ()
    found.arrays += 1
    if code.startswith("O") or (len(dstate) > 7 and type(dstate[7]) is int and dstate[7] & 1):
        return scan(s, found, outer=False)  # numpy.dtype's flags: 1 means it holds objects
    count = math.prod(shape)
    found.elements += count
    width = dstate[5] if len(dstate) > 5 and type(dstate[5]) is int and dstate[5] > 0 else 0
    if not width:  # fixed-size dtypes: 'f8', 'c16', 'M8'
        digits = "".join(c for c in code[:8] if c in "0123456789")  # (str.isdigit takes '²', which int() refuses)
        width = int(digits) if digits else 0
    if width <= 0:
        return False
    if type(state.get("numpy_array_alignment_bytes")) is int:  # joblib >= 1.2: a byte of padding length, padding
        pad = s.read(1)
        if not pad:
            return False
        s.skip(pad[0])
    s.skip(count * width)
    return True


def storage(found: Found, pid: Any) -> None:
    """Note a torch storage from its persistent id: ('storage', class, key, location, elements, ...)."""
    if (
        isinstance(pid, tuple)
        and len(pid) >= 5
        and isinstance(pid[0], str)
        and pid[0] == "storage"
        and isinstance(pid[1], Global)
        and isinstance(pid[2], str)
        and type(pid[4]) is int
        and 0 <= pid[4] < 2**48
    ):
        found.storages[pid[2][:NAME_MAX]] = (pid[1].name, pid[4])


def summary(fmt: str, found: Found, complete: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"format": fmt, "protocol": found.protocol}
    out["classes"] = sorted(found.classes)
    if found.storages:
        dtypes: dict[str, int] = {}
        for cls, _ in found.storages.values():
            short = cls.rpartition(".")[2].removesuffix("Storage")
            dtype = TORCH_DTYPES.get(short, short)
            dtypes[dtype] = dtypes.get(dtype, 0) + 1
        out["parameters"] = sum(n for _, n in found.storages.values())
        out["dtypes"] = dict(sorted(dtypes.items()))
    if found.arrays:
        out["arrays"] = found.arrays
        out["parameters"] = found.elements
    out["complete"] = complete
    return out


# -- the formats ------------------------------------------------------------------------------------------
def pickled(f: IO[bytes], size: int, name: str) -> dict[str, Any]:
    """A plain pickle or a joblib file: the classes it names, and joblib's arrays."""
    suffix = os.path.splitext(name)[1].lower()
    f.seek(0)
    head = f.read(8)
    if head[:1] != b"\x80":  # joblib.dump(..., compress=...) writes a compressed stream
        for magic, kind in COMPRESSED.items():
            if head.startswith(magic):
                return {"format": "joblib" if suffix == ".joblib" else "pickle", "compression": kind}
    f.seek(0)
    found = Found()
    complete = scan(Stream(f, size), found, joblib=True)
    if not complete and head[:1] != b"\x80" and not found.classes:  # told by its suffix alone
        raise ModelFormatError(
            f"{name} is not a valid pickle file (its opcodes stop after {found.ops}): it is truncated or damaged"
        )
    fmt = "joblib" if suffix == ".joblib" or WRAPPER in found.classes else "pickle"
    return summary(fmt, found, complete)


def torch_legacy(f: IO[bytes], size: int, name: str) -> dict[str, Any]:
    """A torch file of the format before 1.6: pickles of a magic number, a version, the system's sizes and the
    object, then the storages' keys and their raw bytes."""
    f.seek(0)
    s, found = Stream(f, size), Found()
    complete = all(scan(s, found) for _ in range(4))
    out = summary("torch", found, complete)
    out["legacy"] = True
    out["storages"] = len(found.storages)
    return out


def torch_zip(f: IO[bytes], size: int, name: str) -> dict[str, Any] | None:
    """A torch archive (torch.save since 1.6, TorchScript): its record name, byteorder and version records, the
    storages under data/ and what data.pkl names; None for a zip archive of something else."""
    import zipfile
    import zlib

    directory(f, size, name)
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            pkl = next((i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1), None)
            if pkl is None:
                return None
            prefix = pkl.filename.removesuffix("data.pkl")
            out: dict[str, Any] = {"format": "torch", "archive": prefix[:-1]}
            records = {i.filename: i for i in infos if i.filename.startswith(prefix)}
            for key in ("byteorder", "version"):
                info = records.get(prefix + key)
                if info is not None and info.file_size <= SMALL:
                    out[key] = z.read(info)[:SMALL].decode("ascii", "replace").strip()
            out["storages"] = sum(1 for n in records if n.startswith(prefix + "data/") and not n.endswith("/"))
            with z.open(pkl) as member:
                data = member.read(min(pkl.file_size, READ_MAX + 1))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise damaged(name, e) from None
    except (ValueError, OverflowError, struct.error) as e:  # a negative seek, a name that is not UTF-8
        raise damaged(name, e) from None
    found = Found()
    complete = scan(Stream(io.BytesIO(data), len(data)), found)
    out.update((k, v) for k, v in summary("torch", found, complete).items() if k != "format")
    return out


def damaged(name: str, e: BaseException) -> ModelFormatError:
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return ModelFormatError(f"{name} is not a valid zip archive ({reason}): it is truncated or damaged")


def directory(f: IO[bytes], size: int, name: str) -> None:
    """Refuse a zip whose central directory (as its end records state it) is over DIRECTORY_MAX, before zipfile
    reads all of it and makes an object of each entry."""
    tail = min(size, 22 + 0xFFFF + 20)
    f.seek(size - tail)
    end = f.read(tail)
    i = end.rfind(b"PK\x05\x06")
    if i < 0 or len(end) < i + 22:
        raise ModelFormatError(f"{name} is not a valid zip archive (no end of central directory): it is truncated")
    length = int.from_bytes(end[i + 12 : i + 16], "little")
    if i >= 20 and end[i - 20 : i - 16] == b"PK\x06\x07":  # zip64: the sizes are in its own end record
        at = int.from_bytes(end[i - 12 : i - 4], "little")
        if at <= size - 56:
            f.seek(at)
            record = f.read(56)
            if record[:4] == b"PK\x06\x06":
                length = int.from_bytes(record[40:48], "little")
    if length > DIRECTORY_MAX:
        raise ModelFormatError(
            f"{name}: its zip directory is {length} bytes, over the {DIRECTORY_MAX >> 20} MiB mvc summarises"
        )
