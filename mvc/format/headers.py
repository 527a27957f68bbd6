"""What a model file holds, told from its headers alone, for `mvc add` to record: the tensors, parameters and
metadata of safetensors, GGUF and ONNX files, and (through mvc/format/pickles.py) what torch archives, joblib
files and pickles name. Nothing is loaded, unpickled or imported; every length a header states is checked
against the file before it is followed, and what is read is capped (READ_MAX and the rest below), so a
hostile file costs milliseconds and at worst a one-line ModelFormatError.

The summary is a small dict of str, int, float, bool, lists and dicts of those (no None: TOML has none), with
``format`` always. A cap reached while reading adds ``partial = true``; the pickle-based formats say instead
whether their scan reached its end (``complete``).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterator
from typing import IO, Any, TypeGuard

from mvc.errors import ModelFormatError
from mvc.format import pickles

HEAD = 16  # first bytes read to tell a format
SAFETENSORS_MAX = 16 << 20  # bytes of a safetensors header read (the format allows 100 MB): past it, partial
SAFETENSORS_SNIFF = 100 << 20  # a header length above this is no safetensors file's, when only bytes tell
READ_MAX = 16 << 20  # bytes of a GGUF or ONNX header taken (skipped values and tensor data do not count)
CHUNK = 8 << 10  # bytes read at a time around what is taken
STR_READ = 1024  # bytes of a string read from a header; the rest is skipped
STR_MAX = 1024  # characters of a string in the summary
KEY_MAX = 256  # characters of a key in the summary
ITEMS_MAX = 256  # entries of a table or list in the summary
NAMES_MAX = 64  # graph inputs and outputs named
ARRAY_KEEP = 16  # a GGUF array value with more items is recorded by its length alone
DIMS_MAX = 64
INT64 = 2**63 - 1

ST_WIDTHS = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2}
ST_WIDTHS.update({"BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8})
# GGUF metadata value types with a fixed size, as struct codes; 8 is a string, 9 an array
GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
# ggml tensor types: name, elements per block, bytes per block (0: size not checked)
GGML = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22)}
GGML.update({7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 0, 0), 10: ("Q2_K", 256, 84)})
GGML.update({11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210)})
GGML.update({15: ("Q8_K", 0, 0), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98)})
GGML.update({19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82)})
GGML.update({23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8)})
GGML.update({28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54)})
GGML.update({35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17)})
ONNX_TYPE_NAMES = (  # TensorProto.DataType, by number
    "UNDEFINED FLOAT UINT8 INT8 UINT16 INT16 INT32 INT64 STRING BOOL FLOAT16 DOUBLE UINT32 UINT64 COMPLEX64 "
    "COMPLEX128 BFLOAT16 FLOAT8E4M3FN FLOAT8E4M3FNUZ FLOAT8E5M2 FLOAT8E5M2FNUZ UINT4 INT4 FLOAT4E2M1 FLOAT8E8M0 "
    "UINT2 INT2 FLOAT6E2M3 FLOAT6E3M2"
)
ONNX_TYPES = ONNX_TYPE_NAMES.split()
ONNX_STRINGS = {2: "producer_name", 3: "producer_version", 4: "domain", 6: "doc_string"}
ONNX_NEXT = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72}  # the field after ir_version in a ModelProto


def summarize(f: IO[bytes], size: int, name: str) -> dict[str, Any] | None:
    """A summary of the model file f (binary, seekable, read from its start; ``size`` bytes long), or None when
    it is none of the formats read here. ``name``, the file's name, tells a format by its suffix where the bytes
    cannot, and is named in errors. ModelFormatError: its headers contradict themselves or the file."""
    f.seek(0)
    fmt = sniff(f.read(HEAD), size, os.path.splitext(name)[1].lower())
    if fmt is None:
        return None
    out = READERS[fmt](f, size, name)
    return None if out is None else clean(out)


def sniff(head: bytes, size: int, suffix: str) -> str | None:
    """The format the first bytes show, or else the suffix names; None for any other file."""
    if head[:4] == b"GGUF":
        return "gguf"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head.startswith(pickles.TORCH_LEGACY[:HEAD]):
        return "torch-legacy"
    if head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= min(SAFETENSORS_SNIFF, size - 8):
        return "safetensors"  # before pickles: a header of 640 bytes starts with b"\x80\x02"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in ONNX_NEXT:
        return "onnx"
    if suffix in (".gguf", ".safetensors", ".onnx"):
        return suffix[1:]
    return "pickle" if suffix in pickles.PICKLE_SUFFIXES else None


def clean(value: Any) -> Any:
    """value made TOML- and JSON-safe: strings capped and valid UTF-8, ints in int64, floats finite, tables
    and lists capped at ITEMS_MAX entries."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -INT64 - 1 <= value <= INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return text(value, STR_MAX)
    if isinstance(value, dict):
        return {text(str(k), KEY_MAX): clean(v) for k, v in list(value.items())[:ITEMS_MAX]}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value[:ITEMS_MAX]]
    raise TypeError(f"a {type(value).__name__} in a summary")  # a bug here, not a bad file


def text(s: str, cap: int) -> str:
    s = s.encode("utf-8", "replace").decode("utf-8")  # lone surrogates (JSON allows them) become '?'
    return s if len(s) <= cap else s[: cap - 1] + "…"


def quoted(s: Any) -> str:
    """A name from a file, for a one-line message."""
    return repr(text(str(s), 80))


def count(table: dict[str, int], key: str) -> None:
    table[key] = table.get(key, 0) + 1


class Cursor:
    """Reads of f at ``pos`` through a small window: never past ``size`` (ModelFormatError), skips are seeks;
    ``spent`` counts the bytes taken, for the callers' caps."""

    __slots__ = ("at", "buf", "f", "name", "pos", "size", "spent", "what")

    def __init__(self, f: IO[bytes], size: int, name: str, what: str) -> None:
        self.f, self.size, self.name, self.what = f, size, name, what
        self.pos = self.at = self.spent = 0
        self.buf = b""

    def bad(self, problem: str) -> ModelFormatError:
        return ModelFormatError(f"{self.name} is not a valid {self.what} file ({problem}): it is truncated or damaged")

    def take(self, n: int) -> bytes:
        if n > self.size - self.pos:
            raise self.bad(f"{n} bytes at byte {self.pos} run past its end at {self.size}")
        i = self.pos - self.at
        if i < 0 or i + n > len(self.buf):
            self.f.seek(self.pos)
            self.buf = self.f.read(max(n, min(CHUNK, self.size - self.pos)))
            self.at, i = self.pos, 0
            if len(self.buf) < n:
                raise self.bad(f"it ends at byte {self.pos + len(self.buf)}, before its stated size")
        self.pos += n
        self.spent += n
        return self.buf[i : i + n]

    def skip(self, n: int) -> None:
        if n > self.size - self.pos:
            raise self.bad(f"{n} bytes at byte {self.pos} run past its end at {self.size}")
        self.pos += n

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def text(self, n: int, keep: int = STR_READ) -> str:
        data = self.take(min(n, keep))
        self.skip(n - len(data))
        return data.decode("utf-8", "replace")


# -- safetensors -------------------------------------------------------------------------------------------
def read_safetensors(f: IO[bytes], size: int, name: str) -> dict[str, Any]:
    """Tensor and parameter counts, dtypes and ``__metadata__`` from the JSON header (see safetensors_table)."""
    n = safetensors_length(f, size, name)
    if n > SAFETENSORS_MAX:
        return {"format": "safetensors", "header_bytes": n, "partial": True}
    meta, tensors = safetensors_table(f, size, name, n)
    dtypes = dict[str, int]()
    for dtype, _, _, _ in tensors.values():
        count(dtypes, dtype)
    params = sum(math.prod(shape) for _, shape, _, _ in tensors.values())
    out: dict[str, Any] = {"format": "safetensors", "tensors": len(tensors), "parameters": params}
    out["dtypes"] = dict(sorted(dtypes.items()))
    if meta:
        out["metadata"] = meta
    return out


def st_bad(name: str, problem: str) -> ModelFormatError:
    return ModelFormatError(f"{name} is not a valid safetensors file ({problem}): it is truncated or damaged")


def safetensors_length(f: IO[bytes], size: int, name: str) -> int:
    """The length of the JSON header that the first 8 bytes of f (a file of ``size`` bytes) state, checked
    against the bytes that follow them."""
    f.seek(0)
    n = int.from_bytes(f.read(8), "little")
    if size < 8 or n > size - 8:
        raise st_bad(name, f"its header claims {n} bytes but {max(0, size - 8)} follow its length")
    return n


Tensors = dict[str, tuple[str, list[int], int, int]]  # name -> (dtype, shape, begin, end): bytes after the header


def safetensors_table(f: IO[bytes], size: int, name: str, n: int) -> tuple[dict[str, str], Tensors]:
    """(``__metadata__``, the tensors) from the n-byte JSON header after f's first 8 bytes: every tensor's offsets
    checked against the data that follows the header, its dtype and shape, and the other tensors'."""
    f.seek(8)
    try:
        header = json.loads(f.read(n))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        header = None
    if not isinstance(header, dict):
        raise st_bad(name, "its header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise st_bad(name, "its __metadata__ is not a table of strings")
    room = size - 8 - n
    tensors: Tensors = {}
    for key, t in header.items():
        t = t if isinstance(t, dict) else {}
        dtype, shape, offsets = t.get("dtype"), t.get("shape"), t.get("data_offsets")
        if not (isinstance(dtype, str) and naturals(shape) and naturals(offsets) and len(offsets) == 2):
            raise st_bad(name, f"tensor {quoted(key)} has no dtype, shape of naturals or two data_offsets")
        if len(shape) > DIMS_MAX:
            raise st_bad(name, f"tensor {quoted(key)} has {len(shape)} dimensions")
        begin, end = offsets
        if not begin <= end <= room:
            raise st_bad(
                name, f"tensor {quoted(key)} has data_offsets [{begin}, {end}] outside the {room} bytes of data"
            )
        elements, width = math.prod(shape), ST_WIDTHS.get(dtype)
        if (width and elements * width != end - begin) or elements > 8 * (end - begin):
            raise st_bad(
                name, f"tensor {quoted(key)} of {elements} {quoted(dtype)} elements does not fit {end - begin} bytes"
            )
        tensors[key] = (dtype, shape, begin, end)
    last = 0
    for begin, end, key in sorted((b, e, k) for k, (_, _, b, e) in tensors.items()):
        if begin < last:
            raise st_bad(name, f"tensor {quoted(key)} at bytes [{begin}, {end}] overlaps another")
        last = end
    return meta, tensors


def naturals(v: Any) -> TypeGuard[list[int]]:
    return isinstance(v, list) and all(type(i) is int and i >= 0 for i in v)


# -- GGUF ----------------------------------------------------------------------------------------------------
def read_gguf(f: IO[bytes], size: int, name: str) -> dict[str, Any]:
    """Version, tensor and parameter counts, ggml tensor types and the short metadata values of a GGUF file
    (v2, v3); long strings and arrays (a tokenizer's vocabulary) are skipped, their lengths recorded."""
    cur = Cursor(f, size, name, "GGUF")
    if cur.take(4) != b"GGUF":
        raise cur.bad("no GGUF magic")
    raw = cur.take(4)
    order = ">" if int.from_bytes(raw, "big") in (2, 3) else "<"  # big-endian files exist, for s390x
    version = int.from_bytes(raw, "big" if order == ">" else "little")
    out: dict[str, Any] = {"format": "gguf", "version": version}
    if order == ">":
        out["byteorder"] = "big"
    if version not in (2, 3):
        out["partial"] = True  # a version this does not know (1 had 32-bit counts)
        return out
    tensors, kvs = cur.unpack(order + "QQ")
    if kvs > (size - cur.pos) // 13 or tensors > (size - cur.pos) // 24:
        raise cur.bad(f"it claims {kvs} metadata entries and {tensors} tensors, more than its {size} bytes hold")
    metadata: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    alignment = 32
    for _ in range(kvs):
        key = cur.text(*cur.unpack(order + "Q"))
        (vtype,) = cur.unpack(order + "I")
        value, length = gguf_value(cur, order, vtype, 0)
        if cur.spent > READ_MAX:
            out["partial"] = True
            break
        if key == "general.alignment":
            if vtype != 4 or not 0 < value <= 1 << 30 or value & (value - 1):
                raise cur.bad(f"general.alignment is {value!r}, not a power of two")
            alignment = value
        if value is not None:
            metadata[key] = value
        else:
            lengths[key] = length
    infos: list[tuple[int, int, int]] = []
    params, dtypes = 0, dict[str, int]()
    for _ in range(tensors if "partial" not in out else 0):
        if cur.spent > READ_MAX:
            out["partial"] = True
            break
        cur.skip(cur.unpack(order + "Q")[0])  # the tensor's name
        (dims,) = cur.unpack(order + "I")
        if dims > 8:
            raise cur.bad(f"a tensor of {dims} dimensions at byte {cur.pos}")
        shape = cur.unpack(order + "Q" * dims)
        ttype, offset = cur.unpack(order + "IQ")
        tname, block, width = GGML.get(ttype, (f"type{ttype}", 0, 0))
        elements = math.prod(shape)
        if elements > 8 * size:
            raise cur.bad(f"a tensor at byte {cur.pos} claims {elements} elements, more than {size} bytes hold")
        infos.append((offset, -(-elements // block) * width if block else 0, elements))
        params += elements
        count(dtypes, tname)
    out["tensors"] = tensors
    if "partial" not in out:  # all tensor infos read: where the data starts is known
        data = -(-cur.pos // alignment) * alignment
        room, last = size - data, 0
        for offset, nbytes, elements in sorted(infos):
            if offset % alignment or offset < last or offset + nbytes > room or elements > 8 * (room - offset):
                raise cur.bad(f"a tensor at data offset {offset} of {nbytes} bytes overlaps another or the end")
            last = offset + nbytes
        out.update(parameters=params, dtypes=dict(sorted(dtypes.items())))
    out["metadata"] = metadata
    if lengths:
        out["lengths"] = lengths
    return out


def gguf_value(cur: Cursor, order: str, vtype: int, depth: int) -> tuple[Any, int]:
    """A metadata value: (the value, 0) when kept; (None, its length) when too long, skipped."""
    if vtype in GGUF_SCALARS:
        return cur.unpack(order + GGUF_SCALARS[vtype])[0], 0
    if vtype == 8:
        (n,) = cur.unpack(order + "Q")
        if n > STR_READ:
            cur.skip(n)
            return None, n
        return cur.text(n), 0
    if vtype != 9:
        raise cur.bad(f"a metadata value of type {vtype} at byte {cur.pos}")
    etype, n = cur.unpack(order + "IQ")
    if etype in GGUF_SCALARS:
        width = struct.calcsize(GGUF_SCALARS[etype])
        if n > (cur.size - cur.pos) // width:
            raise cur.bad(f"an array of {n} items at byte {cur.pos} runs past the end")
        if n > ARRAY_KEEP:
            cur.skip(n * width)
            return None, n
        return list(cur.unpack(order + GGUF_SCALARS[etype] * n)), 0
    if etype not in (8, 9) or depth >= 3:
        raise cur.bad(f"an array of type {etype} at byte {cur.pos}")
    if n > (cur.size - cur.pos) // 8:
        raise cur.bad(f"an array of {n} items at byte {cur.pos} runs past the end")
    items = []
    for _ in range(n):
        if cur.spent > READ_MAX:
            return None, n
        value, _ = gguf_value(cur, order, etype, depth + 1)
        if n <= ARRAY_KEEP and isinstance(value, str):
            items.append(value)
    return (items, 0) if len(items) == n else (None, n)


# -- ONNX --------------------------------------------------------------------------------------------------
def read_onnx(f: IO[bytes], size: int, name: str) -> dict[str, Any]:
    """The ModelProto's versions, producer, opsets and metadata, and from its graph: the name, node counts by
    op type, initializer and parameter counts, inputs and outputs; the protobuf wire format is read by hand,
    and what is not needed (tensor data, attributes) is skipped by seeking."""
    cur = Cursor(f, size, name, "ONNX")
    out: dict[str, Any] = {"format": "onnx"}
    opsets: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for field, wire, n in fields(cur, size):
        if cur.spent > READ_MAX + CHUNK:  # past the graph's cap, with room for the opsets after it
            out["partial"] = True
            break
        if field in (1, 5) and wire == 0:
            out["ir_version" if field == 1 else "model_version"] = int64(n)
        elif field in ONNX_STRINGS and wire == 2:
            out[ONNX_STRINGS[field]] = cur.text(n)
        elif field in (8, 14) and wire == 2:
            pair = message(cur, cur.pos + n)
            key, value = pair.get(1, ""), pair.get(2)
            if field == 8 and isinstance(key, str) and isinstance(value, int):
                opsets[key or "ai.onnx"] = int64(value)
            elif field == 14 and isinstance(key, str) and isinstance(value, str):
                metadata[key] = value
        elif field == 7 and wire == 2:
            out["graph"] = graph(cur, cur.pos + n)
    if "ir_version" not in out and "graph" not in out:
        raise cur.bad("it has neither an ir_version nor a graph")
    if opsets:
        out["opsets"] = opsets
    if metadata:
        out["metadata"] = metadata
    return out


def graph(cur: Cursor, end: int) -> dict[str, Any]:
    g: dict[str, Any] = {"nodes": 0, "ops": {}, "initializers": 0, "parameters": 0, "dtypes": {}}
    inputs: list[str] = []
    outputs: list[str] = []
    for field, wire, n in fields(cur, end):
        if cur.spent > READ_MAX:
            g["partial"] = True
            break
        if wire != 2:
            continue
        if field == 1:
            g["nodes"] += 1
            node = message(cur, cur.pos + n, wanted=(4, 7))
            op, domain = node.get(4, ""), node.get(7, "")
            count(g["ops"], f"{domain}.{op}" if domain not in ("", "ai.onnx") else op)
        elif field == 2:
            g["name"] = cur.text(n)
        elif field == 5:
            g["initializers"] += 1
            dims, dtype = tensor(cur, cur.pos + n)
            g["parameters"] += math.prod(dims)
            if g["parameters"] > INT64:
                raise cur.bad(f"its initializers claim {g['parameters']} elements")
            count(g["dtypes"], ONNX_TYPES[dtype] if 0 <= dtype < len(ONNX_TYPES) else f"type{dtype}")
        elif field in (11, 12):
            names = inputs if field == 11 else outputs
            if len(names) < NAMES_MAX:
                names.append(str(message(cur, cur.pos + n, wanted=(1,)).get(1, "")))
    g.update(inputs=inputs, outputs=outputs)
    return g


def tensor(cur: Cursor, end: int) -> tuple[list[int], int]:
    """A TensorProto's dims (field 1, packed or not) and data_type (field 2)."""
    dims: list[int] = []
    dtype = 0
    for field, wire, n in fields(cur, end):
        if field == 1 and wire == 0:
            dims.append(int64(n))
        elif field == 1 and wire == 2:
            stop = cur.pos + n
            while cur.pos < stop and len(dims) <= DIMS_MAX:
                dims.append(int64(varint(cur, stop)))
        elif field == 2 and wire == 0:
            dtype = int64(n)
        if len(dims) > DIMS_MAX:
            raise cur.bad(f"an initializer at byte {cur.pos} has over {DIMS_MAX} dimensions")
    if any(d < 0 for d in dims) or any(d > 1 << 48 for d in dims) or math.prod(dims) > 1 << 48:
        raise cur.bad(f"an initializer before byte {cur.pos} has dims {dims}")
    return dims, dtype


def message(cur: Cursor, end: int, wanted: tuple[int, ...] = (1, 2)) -> dict[int, Any]:
    """The wanted fields of a small message: varints as ints, length-delimited ones as text."""
    out: dict[int, Any] = {}
    for field, wire, n in fields(cur, end):
        if field in wanted and wire in (0, 2):
            out[field] = n if wire == 0 else cur.text(n)
    return out


def fields(cur: Cursor, end: int) -> Iterator[tuple[int, int, int]]:
    """The fields of the message that ends at ``end``: (number, wire type, the varint or the length). After a
    length-delimited one the cursor moves past it, whatever the caller read of it."""
    while cur.pos < end:
        key = varint(cur, end)
        field, wire = key >> 3, key & 7
        if field == 0 or wire not in (0, 1, 2, 5):
            raise cur.bad(f"field {field} of wire type {wire} at byte {cur.pos}")
        if wire == 0:
            yield field, 0, varint(cur, end)
        elif wire == 2:
            n = varint(cur, end)
            start = cur.pos
            if n > end - start:
                raise cur.bad(f"field {field} of {n} bytes at byte {start} runs past its message, at {end}")
            yield field, 2, n
            cur.pos = start + n
        else:
            width = 8 if wire == 1 else 4
            if width > end - cur.pos:
                raise cur.bad(f"field {field} at byte {cur.pos} runs past its message, at {end}")
            cur.skip(width)
            yield field, wire, 0


def varint(cur: Cursor, end: int) -> int:
    value = shift = 0
    while shift < 70:
        if cur.pos >= end:
            raise cur.bad(f"a number at byte {cur.pos} runs past its message, at {end}")
        b = cur.take(1)[0]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & (2**64 - 1)
        shift += 7
    raise cur.bad(f"a number at byte {cur.pos} is longer than 10 bytes")


def int64(n: int) -> int:
    return n - 2**64 if n > INT64 else n


READERS = {
    "safetensors": read_safetensors,
    "gguf": read_gguf,
    "onnx": read_onnx,
    "zip": pickles.torch_zip,
    "torch-legacy": pickles.torch_legacy,
    "pickle": pickles.pickled,
}
