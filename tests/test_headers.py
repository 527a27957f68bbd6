"""mvc/format/headers.py: model files summarised from their headers alone. Real files made by the real libraries
(where installed) and a generated GGUF give the expected summaries; headers that lie about their lengths and
offsets raise a one-line ModelFormatError; hypothesis feeds every reader garbage, truncations and byte flips
of valid files, and the only outcomes are a TOML-safe dict, None or ModelFormatError. Nothing is executed."""

from __future__ import annotations

import io
import json
import math
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvc.errors import ModelFormatError
from mvc.format import headers, pickles
from mvc.format.headers import summarize

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
SOME = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def summary(data: bytes, name: str) -> dict[str, Any] | None:
    return summarize(io.BytesIO(data), len(data), name)


def safe(value: Any) -> None:
    """A summary is plain data that TOML and strict JSON both store and give back unchanged."""
    assert isinstance(value, dict) and isinstance(value["format"], str)
    assert tomllib.loads(tomli_w.dumps({"model": value})) == {"model": value}
    json.dumps(value, allow_nan=False)


def outcome(data: bytes, name: str) -> dict[str, Any] | None:
    """Only a safe dict, None or a one-line ModelFormatError naming the file."""
    try:
        out = summary(data, name)
    except ModelFormatError as e:
        assert "\n" not in str(e) and name in str(e), str(e)
        return None
    if out is not None:
        safe(out)
    return out


# -- a GGUF writer, from the public spec: magic, version, counts, typed key/values, tensor infos, data ------
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALARS = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q"}
SCALARS[F64] = "d"
F32_T, F16_T, Q8_0_T = 0, 1, 8


def gguf(kvs: list[tuple[str, int, Any]], tensors: list[tuple[str, list[int], int]], **kw: Any) -> bytes:
    order, alignment = kw.get("order", "<"), kw.get("alignment", 32)

    def string(s: str | bytes) -> bytes:
        b = s.encode() if isinstance(s, str) else s
        return struct.pack(order + "Q", len(b)) + b

    def value(t: int, v: Any) -> bytes:
        if t in SCALARS:
            return struct.pack(order + SCALARS[t], v)
        if t == STRING:
            return string(v)
        et, items = v
        return struct.pack(order + "IQ", et, len(items)) + b"".join(value(et, i) for i in items)

    out = b"GGUF" + struct.pack(order + "IQQ", kw.get("version", 3), len(tensors), len(kvs))
    out += b"".join(string(k) + struct.pack(order + "I", t) + value(t, v) for k, t, v in kvs)
    offset, data = 0, b""
    for name, dims, ttype in tensors:
        n = math.prod(dims)
        nbytes = {F32_T: 4 * n, F16_T: 2 * n, Q8_0_T: n // 32 * 34}[ttype]
        out += string(name) + struct.pack(order + "I", len(dims)) + struct.pack(order + "Q" * len(dims), *dims)
        out += struct.pack(order + "IQ", ttype, offset + kw.get("shift", 0))
        padded = -(-nbytes // alignment) * alignment
        data += bytes(nbytes) + bytes(padded - nbytes)
        offset += padded
    return out + bytes(-len(out) % alignment) + data


LLAMA_KVS = [
    ("general.architecture", STRING, "llama"),
    ("general.name", STRING, "tiny"),
    ("general.alignment", U32, 32),
    ("general.file_type", U32, 7),
    ("general.quantization_version", U32, 2),
    ("llama.context_length", U32, 2048),
    ("llama.rope.freq_base", F32, 10000.0),
    ("llama.use_parallel_residual", BOOL, True),
    ("general.tags", ARRAY, (STRING, ["text", "tiny"])),
    ("llama.rope.dims", ARRAY, (I32, [1, 2, 3])),
    ("tokenizer.ggml.tokens", ARRAY, (STRING, [f"tok{i}" for i in range(1000)])),
    ("tokenizer.ggml.scores", ARRAY, (F32, [0.5] * 1000)),
    ("tokenizer.chat_template", STRING, "{{ x }}" * 300),
    ("test.f64", F64, -1.25),
]
LLAMA_TENSORS = [("token_embd.weight", [64, 10], F32_T), ("blk.0.attn_q.weight", [64, 64], Q8_0_T)]
LLAMA_TENSORS.append(("output_norm.weight", [64], F16_T))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real file per format, made by its library (skipped where the library is missing)."""
    d = tmp_path_factory.mktemp("models")
    out = {"m.gguf": d / "m.gguf", "evil.pkl": d / "evil.pkl"}
    out["m.gguf"].write_bytes(gguf(LLAMA_KVS, LLAMA_TENSORS))
    out["evil.pkl"].write_bytes(b"cos\nsystem\n(S'touch " + str(d / "pwned").encode() + b"'\ntR.")
    np = pytest.importorskip("numpy")
    from safetensors.numpy import save_file

    out["m.safetensors"] = d / "m.safetensors"
    tensors = {"w": np.zeros((2, 3), np.float32), "b": np.arange(4), "h": np.ones(5, np.float16)}
    save_file(tensors, str(out["m.safetensors"]), metadata={"format": "np", "note": "n" * 5000})
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2).half())
    for name, obj, kw in [("sd.pt", model.state_dict(), {}), ("full.pth", model, {})]:
        out[name] = d / name
        torch.save(obj, out[name], **kw)
    out["legacy.pt"] = d / "legacy.pt"
    torch.save(model.state_dict(), out["legacy.pt"], _use_new_zipfile_serialization=False)
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "W")
    b = numpy_helper.from_array(np.ones((2,), np.int64), "B")
    nodes = [helper.make_node("MatMul", ["X", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["a"])]
    nodes += [helper.make_node("Relu", ["a"], ["Y"]), helper.make_node("Gelu", ["Y"], ["Z"], domain="com.microsoft")]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3])
    z = helper.make_tensor_value_info("Z", TensorProto.FLOAT, [1, 2])
    model_proto = helper.make_model(
        helper.make_graph(nodes, "tiny", [x], [z], [w, b]),
        producer_name="mvc-test",
        producer_version="1.0",
        doc_string="a tiny model",
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    model_proto.model_version = 7
    helper.set_model_props(model_proto, {"author": "me"})
    out["m.onnx"] = d / "m.onnx"
    onnx.save(model_proto, out["m.onnx"])
    joblib = pytest.importorskip("joblib")
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    xs = np.random.default_rng(0).random((40, 3))
    pipe = Pipeline([("s", StandardScaler()), ("lr", LogisticRegression())]).fit(xs, xs[:, 0] > 0.5)
    out["p.joblib"] = d / "p.joblib"
    joblib.dump({"objects": np.array([1, "x"], dtype=object), "pipe": pipe}, out["p.joblib"])
    out["z.joblib"] = d / "z.joblib"
    joblib.dump(pipe, out["z.joblib"], compress=3)
    for protocol in range(6):
        out[f"p{protocol}.pkl"] = d / f"p{protocol}.pkl"
        out[f"p{protocol}.pkl"].write_bytes(pickle.dumps(pipe, protocol=protocol))
    return out


def read(files: dict[str, Path], name: str) -> dict[str, Any]:
    path = files[name]
    with open(path, "rb") as f:
        out = summarize(f, path.stat().st_size, name)
    assert out is not None
    safe(out)
    return out


# -- what each format's summary holds ---------------------------------------------------------------------
def test_safetensors(files):
    out = read(files, "m.safetensors")
    note = out["metadata"].pop("note")
    assert out == {
        "format": "safetensors",
        "tensors": 3,
        "parameters": 15,
        "dtypes": {"F16": 1, "F32": 1, "I64": 1},
        "metadata": {"format": "np"},
    }
    assert len(note) == headers.STR_MAX and note.endswith("…")  # capped


def test_gguf():
    out = summary(gguf(LLAMA_KVS, LLAMA_TENSORS), "m.gguf")
    assert out == {
        "format": "gguf",
        "version": 3,
        "tensors": 3,
        "parameters": 640 + 4096 + 64,
        "dtypes": {"F16": 1, "F32": 1, "Q8_0": 1},
        "metadata": {
            "general.architecture": "llama",
            "general.name": "tiny",
            "general.alignment": 32,
            "general.file_type": 7,
            "general.quantization_version": 2,
            "llama.context_length": 2048,
            "llama.rope.freq_base": 10000.0,
            "llama.use_parallel_residual": True,
            "general.tags": ["text", "tiny"],
            "llama.rope.dims": [1, 2, 3],
            "test.f64": -1.25,
        },
        "lengths": {"tokenizer.ggml.tokens": 1000, "tokenizer.ggml.scores": 1000, "tokenizer.chat_template": 2100},
    }


def test_gguf_big_endian_v2_and_other_versions():
    out = summary(gguf(LLAMA_KVS[:2], LLAMA_TENSORS, order=">", version=2), "m.bin")
    assert out is not None and out["byteorder"] == "big" and out["version"] == 2 and out["parameters"] == 4800
    assert summary(gguf([], [], version=1), "old.gguf") == {"format": "gguf", "version": 1, "partial": True}


def test_onnx(files):
    out = read(files, "m.onnx")
    assert out["ir_version"] >= 7
    del out["ir_version"]
    assert out == {
        "format": "onnx",
        "producer_name": "mvc-test",
        "producer_version": "1.0",
        "model_version": 7,
        "doc_string": "a tiny model",
        "graph": {
            "name": "tiny",
            "nodes": 4,
            "ops": {"MatMul": 1, "Add": 1, "Relu": 1, "com.microsoft.Gelu": 1},
            "initializers": 2,
            "parameters": 8,
            "dtypes": {"FLOAT": 1, "INT64": 1},
            "inputs": ["X"],
            "outputs": ["Z"],
        },
        "opsets": {"ai.onnx": 17, "com.microsoft": 1},
        "metadata": {"author": "me"},
    }
    renamed = files["m.onnx"].read_bytes()  # told from its bytes under any name
    assert summary(renamed, "model.bin") == read(files, "m.onnx")


STATE_DICT_CLASSES = ["collections.OrderedDict", "torch.FloatStorage", "torch.HalfStorage"]
STATE_DICT_CLASSES.append("torch._utils._rebuild_tensor_v2")


def test_torch_archives(files):
    out = read(files, "sd.pt")
    assert out == {
        "format": "torch",
        "archive": "sd",
        "byteorder": "little",
        "version": out["version"],
        "storages": 4,
        "protocol": 2,
        "classes": STATE_DICT_CLASSES,
        "parameters": 12 + 4 + 8 + 2,
        "dtypes": {"float16": 2, "float32": 2},
        "complete": True,
    }
    assert out["version"].isdigit()
    full = read(files, "full.pth")
    assert {"torch.nn.modules.linear.Linear", "torch.nn.modules.container.Sequential"} <= set(full["classes"])
    legacy = read(files, "legacy.pt")
    assert legacy["legacy"] is True and legacy["classes"] == STATE_DICT_CLASSES and legacy["storages"] == 4
    assert legacy["parameters"] == 26 and legacy["complete"] is True


def test_joblib_skips_its_numpy_buffers(files):
    out = read(files, "p.joblib")
    # the classes after the first array's raw buffer are found: the buffers were skipped, not parsed
    assert {
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.linear_model._logistic.LogisticRegression",
        "joblib.numpy_pickle.NumpyArrayWrapper",
    } <= set(out["classes"])
    assert out["format"] == "joblib" and out["complete"] is True and out["arrays"] >= 5 and out["parameters"] > 0
    assert read(files, "z.joblib") == {"format": "joblib", "compression": "zlib"}


@pytest.mark.parametrize("protocol", range(6))
def test_pickles_of_every_protocol(files, protocol):
    out = read(files, f"p{protocol}.pkl")
    assert out["format"] == "pickle" and out["protocol"] == protocol and out["complete"] is True
    assert {"sklearn.pipeline.Pipeline", "sklearn.linear_model._logistic.LogisticRegression"} <= set(out["classes"])
    assert not any(c.startswith(("copy_reg.", "__builtin__.")) for c in out["classes"])  # Python 2 names mapped


def test_other_files_are_none():
    for data, name in [(b"", "a.bin"), (b"hello world\n", "README"), (b"PK\x03\x04" + bytes(60), "x.bin")]:
        assert outcome(data, name) is None
    assert summary(b'{"a": 1, "b": [1, 2, 3]}\n', "config.json") is None


# -- nothing runs, nothing is imported --------------------------------------------------------------------
def test_a_pickle_that_would_run_a_command_is_only_named(files):
    out = read(files, "evil.pkl")
    assert out == {"format": "pickle", "protocol": 0, "classes": ["os.system"], "complete": True}
    assert not (files["evil.pkl"].parent / "pwned").exists()


def test_stack_global_names_follow_the_memo():
    def u(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()

    data = b"\x80\x04" + u("os") + b"\x94" + u("system") + b"\x94\x93" + u("echo hi") + b"\x85R0"  # os.system
    data += b"h\x00" + u("popen") + b"\x93" + b"0"  # the memo's "os" again, with a new name
    data += u("mvc_never_imported") + b"\x94h\x02\x93" + u("builtins") + u("eval") + b"\x93."
    list(pickletools_ops(data))  # a valid pickle
    assert summary(data, "x.pkl") == {
        "format": "pickle",
        "protocol": 4,
        "classes": ["builtins.eval", "mvc_never_imported.mvc_never_imported", "os.popen", "os.system"],
        "complete": True,
    }
    assert "mvc_never_imported" not in sys.modules


def pickletools_ops(data: bytes) -> Any:
    import pickletools

    return pickletools.genops(data)


def test_no_framework_is_imported(files):
    """A fresh interpreter summarises every file and imports none of the frameworks that made them."""
    paths = [str(p) for p in files.values()]
    code = (
        "import os, sys\nfrom mvc.format.headers import summarize\n"
        f"for p in {paths!r}:\n    summarize(open(p, 'rb'), os.path.getsize(p), p)\n"
        "bad = {'torch', 'numpy', 'onnx', 'safetensors', 'joblib', 'sklearn'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- headers that lie ---------------------------------------------------------------------------------------
def safetensors_file(header: dict[str, Any], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize(
    ("header", "data", "problem"),
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "outside the 4 bytes"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, b"\0" * 8, "shape of naturals"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "does not fit"),
        ({"a": {"dtype": "F4", "shape": [99], "data_offsets": [0, 8]}}, b"\0" * 8, "does not fit"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "overlaps",
        ),
        ({"__metadata__": {"a": 1}}, b"", "__metadata__"),
        ({"a": [1, 2]}, b"", "no dtype"),
    ],
)
def test_safetensors_lies(header, data, problem):
    with pytest.raises(ModelFormatError, match=problem) as e:
        summary(safetensors_file(header, data), "bad.safetensors")
    assert "bad.safetensors" in str(e.value) and "\n" not in str(e.value)


def test_safetensors_length_past_the_end_and_the_header_cap():
    with pytest.raises(ModelFormatError, match="claims 1000 bytes but 2 follow"):
        summary((1000).to_bytes(8, "little") + b"{}", "m.safetensors")
    n = headers.SAFETENSORS_MAX + 1
    big = n.to_bytes(8, "little") + b"{" + b" " * (n - 2) + b"}"
    assert summary(big, "m.safetensors") == {"format": "safetensors", "header_bytes": n, "partial": True}


def test_gguf_lies():
    good = gguf(LLAMA_KVS, LLAMA_TENSORS)
    one_kv = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"a"
    cases = {
        "past its end": good[:24] + struct.pack("<Q", 10**12) + good[32:],  # the first key's length
        "runs past the end": one_kv + struct.pack("<IIQ", ARRAY, U32, 10**9) + bytes(64),
        "overlaps another or the end": gguf(LLAMA_KVS[:2], LLAMA_TENSORS, shift=64),
        "not a power of two": gguf([("general.alignment", U32, 24)], []),
        "metadata value of type 13": one_kv + struct.pack("<I", 13) + bytes(64),
        "arrays? of type 9": one_kv + struct.pack("<IIQ", ARRAY, ARRAY, 1) + struct.pack("<IQ", ARRAY, 1) * 5,
        "more than its": good[:8] + struct.pack("<QQ", 10**15, 3) + good[24:],
    }
    for problem, data in cases.items():
        with pytest.raises(ModelFormatError, match=problem):
            summary(data, "m.gguf")
    misaligned = gguf(LLAMA_KVS[:2], LLAMA_TENSORS[:1], shift=4)
    with pytest.raises(ModelFormatError, match="data offset 4"):
        summary(misaligned, "m.gguf")


def test_gguf_caps(monkeypatch):
    monkeypatch.setattr(headers, "READ_MAX", 2000)  # the vocabulary alone is over it
    out = summary(gguf(LLAMA_KVS, LLAMA_TENSORS), "m.gguf")
    assert out is not None and out["partial"] is True and out["metadata"]["general.name"] == "tiny"
    assert out["tensors"] == 3 and "parameters" not in out  # the tensor infos were not reached


def test_onnx_lies(files):
    good = files["m.onnx"].read_bytes()
    with pytest.raises(ModelFormatError, match="runs past its message"):
        summary(good[:-20], "m.onnx")
    with pytest.raises(ModelFormatError, match="wire type 3"):
        summary(b"\x08\x07\x0b", "m.onnx")
    with pytest.raises(ModelFormatError, match="neither an ir_version nor a graph"):
        summary(b"", "m.onnx")


def test_zip_lies(files):
    good = files["sd.pt"].read_bytes()
    with pytest.raises(ModelFormatError, match=r"sd\.pt is not a valid zip archive"):
        summary(good[: len(good) // 2], "sd.pt")
    eocd = good.rindex(b"PK\x05\x06")  # a central directory that claims 2 GiB: refused before zipfile reads it
    huge = good[: eocd - 20] + good[eocd : eocd + 12] + struct.pack("<I", 2**31) + good[eocd + 16 :]
    with pytest.raises(ModelFormatError, match="over the 8 MiB"):
        summary(huge, "sd.pt")


def test_pickle_scans_stop_cleanly(files, monkeypatch):
    data = files["p.joblib"].read_bytes()
    cut = summary(data[: len(data) // 2], "p.joblib")
    assert cut is not None and cut["complete"] is False
    garbage = data[:200] + b"\xff" * 50
    assert summary(garbage, "p.joblib")["complete"] is False  # type: ignore[index]
    with pytest.raises(ModelFormatError, match="not a valid pickle"):
        summary(b"hello", "notes.pkl")  # told by its suffix alone, and no pickle
    huge_arg = pickle.dumps({"blob": b"x" * (pickles.ARG_MAX + 1), "cls": ModelFormatError}, protocol=4)
    assert summary(huge_arg, "x.pkl")["classes"] == ["mvc.errors.ModelFormatError"]  # type: ignore[index]
    monkeypatch.setattr(pickles, "OPS_MAX", 10)
    assert summary(files["p4.pkl"].read_bytes(), "p4.pkl")["complete"] is False  # type: ignore[index]


# -- garbage -------------------------------------------------------------------------------------------------
def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Truncations, byte flips and splices of data, and random bytes behind its first four."""
    n = len(data)
    flips = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=8)

    def flip(changes: list[tuple[int, int]]) -> bytes:
        b = bytearray(data)
        for i, v in changes:
            b[i] = v
        return bytes(b)

    return st.one_of(
        st.integers(0, n).map(lambda i: data[:i]),
        flips.map(flip),
        st.tuples(st.integers(0, n), st.binary(max_size=64)).map(lambda t: data[: t[0]] + t[1] + data[t[0] :]),
        st.binary(max_size=256).map(lambda b: data[:4] + b),
    )


FUZZED = ["m.safetensors", "m.gguf", "m.onnx", "sd.pt", "legacy.pt", "p.joblib", "p0.pkl", "p5.pkl"]


@pytest.mark.parametrize("name", FUZZED)
def test_garbage_gives_a_summary_none_or_one_line_error(files, name):
    if name not in files:
        pytest.skip("its library is not installed")
    data = files[name].read_bytes()

    @SOME
    @given(mutations(data))
    def check(mutated: bytes) -> None:
        outcome(mutated, name)

    check()


@SOME
@given(st.binary(max_size=512), st.sampled_from(["x.bin", "x.safetensors", "x.gguf", "x.onnx", "x.pkl", "x.pt"]))
def test_random_bytes(data, name):
    outcome(data, name)


@SOME
@given(st.lists(st.sampled_from(sorted(pickles.OPS)), max_size=40), st.binary(max_size=32))
def test_random_opcode_streams(codes, tail):
    """Opcodes in any order, with any arguments: never an exception, whatever the stack model is asked."""
    out = outcome(b"\x80\x04" + b"".join(codes) + tail, "x.pkl")
    assert out is None or out["format"] != "pickle" or isinstance(out["complete"], bool)
