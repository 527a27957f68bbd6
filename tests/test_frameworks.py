"""mvc.load and mvc.save: every format round-trips (safetensors, torch, .npy/.npz, ONNX, joblib, pickle);
formats that run code load only with trust=True; a missing framework is one line naming its extra; a file
without its suffix is told from its first bytes; hostile files are one MvcError each, never a crash or a
huge allocation. Everything is generated here, small."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import git
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

import mvc
from mvc.api import frameworks
from mvc.api.model_formats import load_file, sniff
from mvc.errors import ModelFormatError, MvcError, PathError, UntrustedModel
from mvc.format import pointer as ptrfmt

ARRAYS = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, -2, 3], dtype=np.int64)}


def assert_arrays_equal(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k


def assert_tensors_equal(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        assert isinstance(got[k], torch.Tensor) and torch.equal(got[k], want[k]), k


def pointer_meta(path: str) -> dict:
    return ptrfmt.loads(Path(path + ptrfmt.SUFFIX).read_bytes(), path).meta


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".mvc-tmp")]


def regression() -> tuple[LinearRegression, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((20, 3))
    return LinearRegression().fit(x, x @ np.array([1.0, -2.0, 0.5]) + 3), x


class Net(torch.nn.Module):
    def __init__(self, tied: bool = False) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)
        if tied:
            self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def tiny_onnx():
    """y = x + c, c = [1, 2, 3]: an ONNX model built in memory."""
    import onnx
    from onnx import TensorProto, helper

    c = helper.make_tensor("c", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"])],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [c],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what any onnxruntime of recent years reads
    onnx.checker.check_model(model)
    return model


class Evil:
    """Unpickling it makes a directory: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def safetensors_bytes(tensors: dict | None = None) -> bytes:
    from safetensors.numpy import save

    return save(tensors or {"w": np.arange(6, dtype=np.float32)})


def torch_bytes(obj, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def npy_bytes(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def load_bytes(data: bytes, name: str, **kw):
    return load_file(io.BytesIO(data), name=name, **kw)


# -- save → load, each format -----------------------------------------------------------------
def test_numpy_dict_to_safetensors(repo: Path):
    r = frameworks.save(ARRAYS, "model.safetensors")
    assert r["path"] == "model.safetensors" and r["kind"] == "file" and r["changed"]
    assert_arrays_equal(load_file("model.safetensors"), ARRAYS)
    assert_tensors_equal(
        load_file("model.safetensors", framework="pt"), {k: torch.from_numpy(v) for k, v in ARRAYS.items()}
    )
    meta = pointer_meta("model.safetensors")
    assert meta["framework"] == "numpy"
    assert meta["versions"] == {
        "numpy": np.__version__,
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "safetensors": __import__("safetensors").__version__,
    }
    assert "model.safetensors.mvc" in git(repo, "diff", "--cached", "--name-only").split()
    assert leftovers(repo) == []


def test_torch_module_to_safetensors_and_back(repo: Path):
    torch.manual_seed(0)
    net, x = Net(), torch.randn(2, 4)
    frameworks.save(net, "models/net.safetensors")
    fresh = Net()
    fresh.load_state_dict(load_file("models/net.safetensors", framework="pt"))
    assert torch.equal(fresh(x), net(x))
    meta = pointer_meta("models/net.safetensors")
    assert meta["framework"] == "torch" and meta["versions"]["torch"] == torch.__version__
    assert "numpy" not in meta["versions"]


def test_tied_weights_are_written_twice_and_tied_again(repo: Path):
    torch.manual_seed(1)
    net, x = Net(tied=True), torch.randn(2, 4)
    frameworks.save(net, "tied.safetensors")
    state = load_file("tied.safetensors", framework="pt")
    assert torch.equal(state["a.weight"], state["b.weight"])
    fresh = Net(tied=True)
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x), net(x)) and fresh.a.weight is fresh.b.weight


def test_non_contiguous_tensors_are_saved(repo: Path):
    t = torch.arange(12.0).reshape(3, 4)
    frameworks.save({"t": t.T, "view": t[1]}, "views.safetensors")
    got = load_file("views.safetensors", framework="pt")
    assert torch.equal(got["t"], t.T) and torch.equal(got["view"], t[1])


def meta_net() -> torch.nn.Module:
    with torch.device("meta"):
        return Net()


def refused_before_writing(repo: Path, obj, path: str, words: tuple[str, ...]) -> None:
    """save(obj, path) raises one line holding words, and nothing is written (no file, no temp file)."""
    with pytest.raises(ModelFormatError) as e:
        frameworks.save(obj, path)
    line = str(e.value)
    assert "\n" not in line
    for w in words:
        assert w in line, (w, line)
    assert not os.path.exists(path) and leftovers(repo) == []


@pytest.mark.parametrize(
    ("obj", "path", "words"),
    [
        # the meta device: shapes with no data (safetensors' writer raised NotImplementedError; torch.save wrote a
        # file of no weights, which loads as meta tensors)
        (meta_net(), "m.safetensors", ("meta device", "no data")),
        (meta_net(), "m.pt", ("meta device",)),
        ({"w": torch.empty(3, device="meta")}, "m.safetensors", ("meta device",)),
        ({"model": {"w": torch.empty(3, device="meta")}, "epoch": 3}, "m.pt", ("meta device",)),
        (torch.empty(2, device="meta"), "m.pt", ("meta device",)),
        # what safetensors has no dtype or layout for (NotImplementedError, KeyError from its writer)
        ({"s": torch.eye(3).to_sparse()}, "m.safetensors", ("'s'", "sparse_coo", ".pt")),
        ({"c": torch.ones(3, dtype=torch.complex128)}, "m.safetensors", ("complex128", ".pt")),
        # a masked array's mask: .npy (NotImplementedError) and safetensors (the mask dropped) hold no mask
        (np.ma.masked_array([1, 2], mask=[0, 1]), "m.npy", ("MaskedArray", "m.joblib")),
        ({"a": np.ma.masked_array([1, 2], mask=[0, 1])}, "m.safetensors", ("m.joblib",)),
    ],
)
def test_tensors_and_arrays_a_format_cannot_hold_are_refused_before_writing(
    repo: Path, obj, path: str, words: tuple[str, ...]
):
    refused_before_writing(repo, obj, path, words)


def test_masked_arrays_and_sparse_tensors_go_where_they_are_kept_whole(repo: Path):
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    assert frameworks.save(masked, "masked")["path"] == "masked"  # joblib, its natural format
    got = mvc.load("masked", trust=True)
    assert isinstance(got, np.ma.MaskedArray) and got.mask.tolist() == [False, True, False]
    sparse = torch.eye(3).to_sparse()
    frameworks.save({"s": sparse}, "sparse.pt")
    assert torch.equal(mvc.load("sparse.pt")["s"].to_dense(), sparse.to_dense())


def test_a_safetensors_file_gets_the_mode_of_any_new_file(repo: Path):
    """The safetensors library makes its files 0600: a model saved on a shared machine was unreadable by the group
    that reads every other file there."""
    old = os.umask(0o022)
    try:
        frameworks.save(ARRAYS, "m.safetensors")
        frameworks.save(np.zeros(3), "m.npy")
    finally:
        os.umask(old)
    assert (repo / "m.safetensors").stat().st_mode & 0o777 == (repo / "m.npy").stat().st_mode & 0o777 == 0o644


def test_torch_state_dict_and_checkpoint_to_pt(repo: Path):
    state = {"w": torch.randn(3, 3), "n": torch.tensor([1, 2, 3])}
    frameworks.save(state, "model.pt")
    assert_tensors_equal(load_file("model.pt"), state)  # weights_only: no trust needed
    checkpoint = {"model": state, "epoch": 3, "lr": 0.1}
    frameworks.save(checkpoint, "ckpt.pth")
    got = load_file("ckpt.pth")
    assert got["epoch"] == 3 and got["lr"] == 0.1
    assert_tensors_equal(got["model"], state)
    assert pointer_meta("ckpt.pth")["framework"] == "torch"


def test_single_tensor_and_array_without_suffix(repo: Path):
    t = torch.randn(5)
    frameworks.save(t, "tensor")  # torch's own format, told from its first bytes on the way back
    assert torch.equal(load_file("tensor"), t)
    a = np.linspace(0, 1, 7)
    frameworks.save(a, "array")
    assert np.array_equal(load_file("array"), a)


def test_array_to_npy_and_arrays_to_npz(repo: Path):
    a = np.arange(10, dtype=np.int16).reshape(2, 5)
    frameworks.save(a, "a.npy")
    got = load_file("a.npy")
    assert got.dtype == a.dtype and np.array_equal(got, a)
    assert pointer_meta("a.npy")["framework"] == "numpy"
    frameworks.save(ARRAYS, "arrays.npz")
    assert_arrays_equal(load_file("arrays.npz"), ARRAYS)
    frameworks.save(a, "one.npz")
    assert np.array_equal(load_file("one.npz")["arr_0"], a)


def test_sklearn_to_joblib_and_pickle(repo: Path):
    model, x = regression()
    frameworks.save(model, "models/lr.joblib", meta={"accuracy": 0.93})
    loaded = load_file("models/lr.joblib", trust=True)
    assert isinstance(loaded, LinearRegression)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    meta = pointer_meta("models/lr.joblib")
    assert meta["framework"] == "sklearn" and meta["accuracy"] == 0.93
    import joblib
    import sklearn

    assert meta["versions"]["sklearn"] == sklearn.__version__
    assert meta["versions"]["joblib"] == joblib.__version__
    assert meta["versions"]["numpy"] == np.__version__
    frameworks.save(model, "lr.pkl")  # a .pkl is a plain pickle: pickle.load reads it
    with open("lr.pkl", "rb") as f:
        assert np.array_equal(pickle.load(f).predict(x), model.predict(x))
    for framework in (None, "pickle", "sklearn"):
        again = load_file("lr.pkl", trust=True, framework=framework)
        assert np.array_equal(again.predict(x), model.predict(x))


def test_compressed_joblib_loads(tmp_path: Path):
    import joblib

    model, x = regression()
    joblib.dump(model, tmp_path / "lr.pkl", compress=3)
    assert np.array_equal(load_file(tmp_path / "lr.pkl", trust=True).predict(x), model.predict(x))


def test_onnx_bytes_model_and_session(repo: Path):
    import onnx

    model = tiny_onnx()
    frameworks.save(model, "add.onnx")
    assert pointer_meta("add.onnx")["framework"] == "onnx"
    data = load_file("add.onnx")  # the default: the bytes, whatever is installed
    assert data == model.SerializeToString()
    proto = load_file("add.onnx", framework="onnx")
    assert isinstance(proto, onnx.ModelProto) and proto == model
    session = load_file("add.onnx", framework="onnxruntime")
    (y,) = session.run(None, {"x": np.array([1.0, 1.0, 1.0], dtype=np.float32)})
    assert np.array_equal(y, np.array([2.0, 3.0, 4.0], dtype=np.float32))


def test_bin_is_torch_and_string_arrays_go_to_npz(repo: Path):
    state = {"w": torch.ones(3)}
    frameworks.save(state, "pytorch_model.bin")  # what from_pretrained reads: torch's zip, not safetensors
    assert Path("pytorch_model.bin").read_bytes()[:4] == b"PK\x03\x04"
    assert_tensors_equal(load_file("pytorch_model.bin"), state)
    labels = {"names": np.array(["cat", "dog"]), "ids": np.arange(2)}
    frameworks.save(labels, "labels")
    assert_arrays_equal(load_file("labels"), labels)
    assert Path("labels").read_bytes()[:2] == b"PK"
    with pytest.raises(ModelFormatError, match="numbers and booleans"):
        frameworks.save(labels, "labels.safetensors")


def test_other_objects_go_to_joblib(repo: Path):
    obj = {"vocab": ["a", "b"], "size": 2}
    frameworks.save(obj, "vocab")
    assert load_file("vocab", trust=True) == obj
    assert pointer_meta("vocab")["framework"] == "python"


# -- save: what it records, where it writes, what it refuses -----------------------------------
def test_user_meta_merges_over_recorded_and_none_removes(repo: Path):
    frameworks.save(ARRAYS, "m.safetensors", meta={"framework": "jax", "stage": "dev"})
    meta = pointer_meta("m.safetensors")
    assert meta["framework"] == "jax" and meta["stage"] == "dev" and "versions" in meta
    frameworks.save(ARRAYS, "m.safetensors", meta={"versions": None})
    meta = pointer_meta("m.safetensors")
    assert "versions" not in meta and meta["framework"] == "numpy" and meta["stage"] == "dev"


def test_arrays_in_any_memory_order_are_saved_as_their_values(repo: Path):
    """A transpose, Fortran order, a strided slice, a reversed view: safetensors writes a buffer as it lies in
    memory, so each is made contiguous first; what loads back equals what was saved."""
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    arrays = {"t": x.T, "f": np.asfortranarray(x), "s": x[:, ::2], "r": x[::-1], "n": x[::-1, ::-2]}
    frameworks.save(arrays, "views.safetensors")
    assert_arrays_equal(load_file("views.safetensors"), {k: np.ascontiguousarray(v) for k, v in arrays.items()})


def test_npz_keeps_keys_named_like_savez_parameters(repo: Path):
    obj = {"file": np.arange(3), "allow_pickle": np.ones(2), "x": np.array(["a", "b"])}
    frameworks.save(obj, "m.npz")
    assert_arrays_equal(load_file("m.npz"), obj)


def test_a_bad_record_is_refused_before_the_file_is_written(repo: Path):
    frameworks.save(ARRAYS, "m.safetensors")
    before = Path("m.safetensors").read_bytes()
    for meta in ("not a table", {1: "int key"}, {"when": object()}):
        with pytest.raises(MvcError):
            frameworks.save({"w": np.zeros(3)}, "m.safetensors", meta=meta)  # type: ignore[arg-type]
        assert Path("m.safetensors").read_bytes() == before
    assert mvc.status(["m.safetensors"])[0]["workspace"] == "ok"
    with pytest.raises(ModelFormatError, match="cannot be written"):
        frameworks.save(lambda: 1, "f.joblib")  # a lambda does not pickle
    assert not Path("f.joblib").exists() and leftovers(repo) == []


def test_numpy_scalars_in_meta_are_numbers_and_versions_are_replaced(repo: Path):
    frameworks.save(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), "m.joblib", meta={"n": np.int64(5)})
    meta = pointer_meta("m.joblib")
    assert meta["n"] == 5 and "sklearn" in meta["versions"]
    frameworks.save([1, 2, 3], "m.joblib", meta={"ok": np.True_})
    meta = pointer_meta("m.joblib")
    assert meta["ok"] is True and "sklearn" not in meta["versions"]  # the table the new save wrote, whole


def test_save_replaces_the_file_and_stage_false(repo: Path):
    first = frameworks.save(ARRAYS, "m.safetensors")
    git(repo, "commit", "-q", "-m", "v1")
    second = {"w": np.ones(2)}
    r = frameworks.save(second, "m.safetensors", stage=False)
    assert r["changed"] and r["oid"] != first["oid"]
    assert_arrays_equal(load_file("m.safetensors"), second)
    assert git(repo, "diff", "--cached", "--name-only") == ""
    assert leftovers(repo) == []


def test_save_with_name_maps_the_model(repo: Path):
    r = frameworks.save(ARRAYS, "models/churn.safetensors", name="churn")
    assert r["name"] == "churn"
    assert 'path = "models/churn.safetensors"' in (repo / ".mvc" / "config.toml").read_text()


@pytest.mark.parametrize(
    ("obj", "path", "words"),
    [
        (regression()[0], "m.safetensors", ("LinearRegression", "m.safetensors", "m.joblib")),
        (ARRAYS, "m.npy", ("dict", "one NumPy array", "m.safetensors")),
        (np.zeros(3), "m.safetensors", ("ndarray", "m.npy")),
        ({"w": torch.zeros(2)}, "m.npz", ("dict", "m.safetensors")),
        (np.zeros(3), "m.onnx", ("ONNX", "m.npy")),
        ("text", "m.pt", ("str", "m.joblib")),
        (np.array([None, 1], dtype=object), "m.npy", ("m.joblib",)),
    ],
)
def test_save_refuses_a_suffix_that_contradicts_the_object(repo: Path, obj, path: str, words: tuple[str, ...]):
    refused_before_writing(repo, obj, path, words)


def test_save_refuses_a_path_outside_the_repository(repo: Path, tmp_path: Path):
    outside = tmp_path / "elsewhere.safetensors"
    with pytest.raises(PathError, match="outside the repository"):
        frameworks.save(ARRAYS, str(outside))
    assert not outside.exists()


def test_save_keeps_the_file_it_replaces_in_the_cache(repo: Path):
    """A file save overwrites whose content the cache lacks (never added) is stored in the cache first."""
    (repo / "m.safetensors").write_bytes(b"the user's own weights, never added")
    from mvc.objects.oid import from_digest
    from mvc.storage.fileio import hexdigest_bytes

    old = from_digest(hexdigest_bytes(b"the user's own weights, never added"))
    frameworks.save(ARRAYS, "m.safetensors")
    assert mvc.Repo(str(repo)).odb.exists(old)
    assert_arrays_equal(load_file("m.safetensors"), ARRAYS)


def test_save_refuses_what_add_would_before_writing(repo: Path):
    (repo / "m.safetensors").write_bytes(b"committed to git itself")
    git(repo, "add", "m.safetensors")
    with pytest.raises(PathError, match="already tracked by git"):
        frameworks.save(ARRAYS, "m.safetensors")
    assert (repo / "m.safetensors").read_bytes() == b"committed to git itself"
    with pytest.raises(MvcError, match="invalid model name"):
        frameworks.save(ARRAYS, "n.safetensors", name="Not A Name")
    assert not (repo / "n.safetensors").exists()


def test_save_refuses_a_directory(repo: Path):
    (repo / "models").mkdir()
    with pytest.raises(ModelFormatError, match="is a directory"):
        frameworks.save(ARRAYS, "models")


# -- trust ------------------------------------------------------------------------------------
def test_pickle_and_joblib_need_trust_and_run_nothing_without(tmp_path: Path):
    import joblib

    marker = tmp_path / "ran"
    evil = pickle.dumps(Evil(marker))
    (tmp_path / "evil.pkl").write_bytes(evil)
    joblib.dump(Evil(marker), tmp_path / "evil.joblib")
    for name in ("evil.pkl", "evil.joblib", "evil.pickle"):
        with pytest.raises(UntrustedModel) as e:
            load_bytes(evil, name)
        assert str(e.value) == (
            f"{name} is a {'joblib' if name.endswith('joblib') else 'pickle'} file: loading it runs code stored in "
            "it: pass trust=True if you trust who committed it"
        )
    for name in ("evil", "evil.bin", "evil.model"):  # told from the first bytes: still refused
        with pytest.raises(UntrustedModel, match="trust=True"):
            load_bytes(evil, name)
    with pytest.raises(UntrustedModel):
        load_file(tmp_path / "evil.joblib")
    assert not marker.exists()
    load_file(tmp_path / "evil.pkl", trust=True)
    assert marker.is_dir()  # trust means it: the code ran


def test_torch_pickle_needs_trust(tmp_path: Path):
    data = torch_bytes(torch.nn.Linear(2, 2))
    with pytest.raises(UntrustedModel) as e:
        load_bytes(data, "module.pt")
    assert "torch.nn.modules.linear.Linear" in str(e.value) and "trust=True" in str(e.value)
    assert isinstance(load_bytes(data, "module.pt", trust=True), torch.nn.Linear)
    marker = tmp_path / "ran"
    with pytest.raises(UntrustedModel, match="trust=True"):
        load_bytes(torch_bytes({"x": Evil(marker)}), "evil.pt")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # (torch's note on the protocol it was given)
def test_a_torch_checkpoint_of_any_pickle_protocol_that_runs_code_is_untrusted(tmp_path: Path):
    """Pickle protocol 4 makes torch's safe loader fail on an opcode, not on a named global: still untrusted, not
    'damaged'; and nothing ran."""
    marker = tmp_path / "ran"
    buf = io.BytesIO()
    torch.save({"x": Evil(marker)}, buf, pickle_protocol=4)
    with pytest.raises(UntrustedModel, match="trust=True"):
        load_bytes(buf.getvalue(), "evil.pt")
    assert not marker.exists()


def test_npz_of_members_that_are_not_arrays_is_refused():
    """A zip named .npz whose members are not .npy files (a PyTorch checkpoint renamed, say): refused as
    mislabelled, not handed back as raw member bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(ModelFormatError, match="not an array"):
        load_bytes(buf.getvalue(), "m.npz")


def test_a_trusted_joblib_file_cut_short_is_damaged(tmp_path: Path):
    import joblib

    path = tmp_path / "m.joblib"
    joblib.dump({"w": np.arange(1000)}, path)
    data = path.read_bytes()
    with pytest.raises(ModelFormatError, match="truncated, damaged"):
        load_bytes(data[: len(data) // 2], "m.joblib", trust=True)


def test_object_arrays_need_trust():
    objects = np.array([{"a": 1}, None], dtype=object)
    for data, name in ((npy_bytes(objects, allow_pickle=True), "o.npy"), (npz_bytes(o=objects), "o.npz")):
        with pytest.raises(UntrustedModel) as e:
            load_bytes(data, name)
        assert "Python objects" in str(e.value) and "trust=True" in str(e.value)
    got = load_bytes(npz_bytes(o=objects, n=np.arange(3)), "o.npz", trust=True)
    assert got["o"][0] == {"a": 1} and np.array_equal(got["n"], np.arange(3))


# -- frameworks that are not installed ----------------------------------------------------------
MISSING = """
import sys
for m in {blocked!r}:
    sys.modules[m] = None  # an import of it fails as if it were not installed
from mvc.errors import MvcError
try:
{call}
except MvcError as e:
    print(type(e).__name__ + ": " + str(e))
"""


def run_blocked(blocked: list[str], call: str, cwd: Path) -> str:
    script = MISSING.format(blocked=blocked, call="    " + call)
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize(
    ("name", "blocked", "kw", "package", "extra"),
    [
        ("model.safetensors", ["numpy"], {}, "numpy", "numpy"),
        ("model.safetensors", ["torch"], {"framework": "pt"}, "torch", "torch"),
        ("model.pt", ["torch"], {}, "torch", "torch"),
        ("model.npy", ["numpy"], {}, "numpy", "numpy"),
        ("model.joblib", ["joblib"], {"trust": True}, "joblib", "sklearn"),
        ("model.joblib", ["sklearn"], {"trust": True}, "scikit-learn", "sklearn"),
        ("model.onnx", ["onnxruntime"], {"framework": "onnxruntime"}, "onnxruntime", "onnx"),
        ("model.onnx", ["onnx"], {"framework": "onnx"}, "onnx", "onnx"),
    ],
)
def test_missing_framework_names_its_extra(tmp_path: Path, name, blocked, kw, package, extra):
    path = tmp_path / name
    if name.endswith(".safetensors"):
        path.write_bytes(safetensors_bytes())
    elif name.endswith(".pt"):
        path.write_bytes(torch_bytes({"w": torch.ones(2)}))
    elif name.endswith(".npy"):
        path.write_bytes(npy_bytes(np.ones(2)))
    elif name.endswith(".joblib"):
        import joblib

        joblib.dump(regression()[0], path)
    else:
        path.write_bytes(tiny_onnx().SerializeToString())
    out = run_blocked(
        blocked, f"from mvc.api.model_formats import load_file; load_file({str(path)!r}, **{kw!r})", tmp_path
    )
    doing = f"loading {name}" + (f" with framework={kw['framework']!r}" if "framework" in kw else "")
    assert out == f"FrameworkMissing: {doing} needs the {package} package: pip install 'mvc[{extra}]'"


def test_loading_safetensors_needs_numpy_or_torch_alone(tmp_path: Path):
    """mvc reads the format itself (the library's load copies every tensor): only writing needs the package."""
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes())
    out = run_blocked(
        ["safetensors"],
        f"from mvc.api.model_formats import load_file; print(sorted(load_file({str(path)!r})))",
        tmp_path,
    )
    assert out == "['w']"


PEAK = """
import sys
import numpy
import mvc
def peak():  # (VmHWM: ru_maxrss keeps the parent's peak across exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
base = peak()
got = mvc.load("m.safetensors", repo=sys.argv[1] if len(sys.argv) > 1 else None)
print(sum(a.nbytes for a in got.values()), peak() - base)
"""


def test_safetensors_loads_in_about_the_models_size(repo: Path, tmp_path: Path):
    """The file's bytes, read whole and verified, hold the tensors (views of them): about 1x the model at the peak,
    from the cache or streamed from a remote, where the bytes and a copy of every tensor were 2x."""
    from mvc.api import remote_config

    rng = np.random.default_rng(0)
    arrays = {f"t{i}": rng.standard_normal((1000, 6000), dtype=np.float32) for i in range(5)}  # 120 MB
    arrays["odd"] = np.arange(7, dtype=np.float16)  # the tensors after it start at an odd place
    arrays["z"] = np.arange(3, dtype=np.int64)
    remote_config.add("store", str(tmp_path / "store"), default=True)
    frameworks.save(arrays, "m.safetensors")
    size = os.path.getsize("m.safetensors")
    del arrays
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model")
    mvc.push()
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    for where in ([], [str(bare)]):  # from the cache; by URL, from the remote
        env = {**os.environ, "MVC_CACHE_DIR": str(tmp_path / "user-cache")}
        done = subprocess.run(
            [sys.executable, "-c", PEAK, *where], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 0, done.stderr
        nbytes, grew = map(int, done.stdout.split())
        # plus what does not grow with the model: a remote stream's read-ahead (five 8 MiB reads), its modules
        assert nbytes > 0.99 * size and grew < 1.3 * size + (64 << 20), (where, grew / size)


def test_a_big_endian_array_to_safetensors_says_so_and_a_numpy_scalar_saves_as_a_0d_array(repo: Path):
    big = {"w": np.arange(3, dtype=">f4"), "b": np.arange(2, dtype=np.int64)}
    with pytest.raises(ModelFormatError) as e:
        frameworks.save(big, "m.safetensors")
    assert "'w'" in str(e.value) and "big-endian" in str(e.value) and "m.npz" in str(e.value)
    assert "newbyteorder('<')" in str(e.value)
    assert not (repo / "m.safetensors").exists()
    little = {k: v.astype(v.dtype.newbyteorder("<")) for k, v in big.items()}
    frameworks.save(little, "m.safetensors")  # as it says
    assert_arrays_equal(load_file("m.safetensors"), little)
    frameworks.save(big, "m.npz")
    assert_arrays_equal(load_file("m.npz"), big)
    frameworks.save(np.float32(3.0), "s.npy")
    got = load_file("s.npy")
    assert got.shape == () and got.dtype == np.float32 and got == 3.0
    with pytest.raises(ModelFormatError, match="one NumPy array"):
        frameworks.save(np.array([{"a": 1}], dtype=object)[0], "o.npy")  # (a dict, not a NumPy scalar)


def test_missing_framework_on_save_writes_nothing(repo: Path):
    call = "import numpy, mvc.api.frameworks as f; f.save({'w': numpy.ones(2)}, 'm.safetensors')"
    out = run_blocked(["safetensors"], call, repo)
    assert out == "FrameworkMissing: saving m.safetensors needs the safetensors package: pip install 'mvc[safetensors]'"
    assert sorted(p.name for p in repo.iterdir()) == [".git", ".mvc"]


def test_importing_the_module_imports_no_framework():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import mvc, mvc.api.frameworks; mvc.load; mvc.save"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "mvc" in imported
    heavy = {"numpy", "torch", "sklearn", "scipy", "joblib", "safetensors", "onnx", "onnxruntime"}
    assert not imported & heavy, imported & heavy


# -- telling a format from its first bytes -------------------------------------------------------
def test_formats_are_told_from_their_first_bytes():
    state = {"w": torch.arange(4.0)}
    a = np.arange(5)
    cases = [
        (safetensors_bytes(), "safetensors"),
        (torch_bytes(state), "torch"),
        (torch_bytes(state, legacy=True), "torch"),
        (npy_bytes(a), "npy"),
        (npz_bytes(a=a), "npz"),
        (pickle.dumps({"x": 1}, protocol=2), "pickle"),
        (pickle.dumps({"x": 1}, protocol=5), "pickle"),
        (b"\x00" * 64, None),
        (b"", None),
    ]
    for data, fmt in cases:
        assert sniff(data[:512]) == fmt, (fmt, data[:16])
    for name in ("weights", "weights.bin", "weights.model"):
        assert_arrays_equal(load_bytes(safetensors_bytes(), name), {"w": np.arange(6, dtype=np.float32)})
        assert_tensors_equal(load_bytes(torch_bytes(state), name), state)
        assert_tensors_equal(load_bytes(torch_bytes(state, legacy=True), name), state)
        assert np.array_equal(load_bytes(npy_bytes(a), name), a)
        assert np.array_equal(load_bytes(npz_bytes(a=a), name)["a"], a)
        assert load_bytes(pickle.dumps({"x": 1}), name, trust=True) == {"x": 1}


def test_unknown_bytes_without_a_suffix():
    with pytest.raises(ModelFormatError) as e:
        load_bytes(b"hello, this is not a model\n", "README")
    assert str(e.value).startswith("cannot tell the format of README from its name or first bytes: give it")
    assert ".safetensors" in str(e.value)


@pytest.mark.parametrize(
    ("name", "kw", "words"),
    [
        ("m.npy", {"framework": "pt"}, ("framework='pt'", "m.npy", "'numpy'")),
        ("m.safetensors", {"framework": "onnx"}, ("framework='onnx'", "'numpy', 'torch'")),
        ("m.safetensors", {"device": "cpu"}, ("device='cpu'", "framework='pt'")),
        ("m.npz", {"device": "cuda"}, ("device='cuda'",)),
        ("m.onnx", {"device": "cpu"}, ("device='cpu'", "onnxruntime")),
        ("m.pt", {"device": "nodevice"}, ("device='nodevice'", "not a device torch knows")),
        ("m.safetensors", {"framework": "pt", "device": "gpu9"}, ("device='gpu9'", "not a device torch knows")),
        ("m.onnx", {"framework": "onnxruntime", "device": "bogus"}, ("device='bogus'", "'cpu' or 'cuda'")),
        *([] if torch.cuda.is_available() else [("m.pt", {"device": "cuda:0"}, ("no CUDA device", "device='cpu'"))]),
    ],
)
def test_framework_and_device_must_apply(name: str, kw: dict, words: tuple[str, ...]):
    with pytest.raises(ModelFormatError) as e:
        load_bytes(b"never read", name, **kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_device_moves_torch_tensors():
    state = {"w": torch.ones(2)}
    assert load_bytes(torch_bytes(state), "m.pt", device="cpu")["w"].device.type == "cpu"
    assert load_bytes(safetensors_bytes(), "m.safetensors", framework="pt", device="cpu")["w"].device.type == "cpu"


def test_bfloat16_needs_torch():
    from safetensors.torch import save

    data = save({"w": torch.ones(2, dtype=torch.bfloat16)})
    with pytest.raises(
        ModelFormatError, match="holds BF16 tensors, which NumPy cannot hold: load it with framework='pt'"
    ):
        load_bytes(data, "m.safetensors")
    assert load_bytes(data, "m.safetensors", framework="pt")["w"].dtype == torch.bfloat16


# -- hostile files ------------------------------------------------------------------------------
def lying_offsets(data: bytes, old: bytes, new: bytes) -> bytes:
    """data with its safetensors header's text changed (and its length with it)."""
    n = struct.unpack("<Q", data[:8])[0]
    header = data[8 : 8 + n].replace(old, new)
    return struct.pack("<Q", len(header)) + header + data[8 + n :]


def test_hostile_safetensors():
    good = safetensors_bytes({"a": np.arange(6, dtype=np.float32), "b": np.arange(2, dtype=np.float32)})
    header = json.loads(good[8 : 8 + struct.unpack("<Q", good[:8])[0]])
    a, b = header["a"]["data_offsets"], header["b"]["data_offsets"]
    old_a = json.dumps(a, separators=(",", ":")).encode()
    cases = {
        "truncated": good[:-3],
        "only the length": good[:8],
        "shorter than the length": good[:5],
        "header longer than the file": struct.pack("<Q", len(good)) + good[8:],
        "header past the limit": struct.pack("<Q", 1 << 40) + good[8:],
        "offsets past the end": lying_offsets(good, old_a, f"[{a[0]},{a[1] * 100}]".encode()),
        "offsets overlapping": lying_offsets(good, old_a, json.dumps(b, separators=(",", ":")).encode()),
        "shape and offsets disagree": lying_offsets(good, b'"shape":[6]', b'"shape":[9]'),
        "header not json": good[:8] + b"{" + b"x" * (struct.unpack("<Q", good[:8])[0] - 1) + good[8 + 64 :],
        "header a list": lying_offsets(good, b"{", b"["),
    }
    for why, data in cases.items():
        with pytest.raises(ModelFormatError) as e:
            load_bytes(data, "m.safetensors")
        assert "\n" not in str(e.value) and str(e.value).startswith("m.safetensors"), (why, str(e.value))
        with pytest.raises(ModelFormatError):
            load_bytes(data, "m.safetensors", framework="pt")


def test_hostile_npy_never_allocates_what_the_header_claims():
    good = npy_bytes(np.arange(1000, dtype=np.float64))
    with pytest.raises(ModelFormatError, match="truncated: its header promises 8000 bytes of array data"):
        load_bytes(good[:300], "a.npy")
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    huge = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117) + b"\n" + b"\x00" * 64
    with pytest.raises(ModelFormatError, match="truncated"):
        load_bytes(huge, "a.npy")
    with pytest.raises(ModelFormatError, match="truncated"):
        load_bytes(npz_with(huge), "a.npz")
    with pytest.raises(ModelFormatError, match=r"^a\.npy is not a valid NumPy \.npy file"):
        load_bytes(b"\x93NUMPY\x09\x00garbage", "a.npy")


def npz_with(member: bytes) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.npy", member)
    return buf.getvalue()


def test_npz_member_lying_about_its_size():
    import zipfile

    data = bytearray(npz_with(npy_bytes(np.arange(100.0))))
    z = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = z.infolist()[0]
    central = data.rfind(b"PK\x01\x02")  # the central directory entry: its uncompressed size at +24
    data[central + 24 : central + 28] = struct.pack("<I", info.file_size * 1000)
    with pytest.raises(ModelFormatError, match="more than compression can give"):
        load_bytes(bytes(data), "a.npz")


def test_hostile_torch_and_zip_files():
    good = torch_bytes({"w": torch.ones(100)})
    for data in (good[:100], good[:-40], good[:30] + b"\x00" * (len(good) - 30)):
        with pytest.raises(ModelFormatError, match=r"^m\.pt is not a valid PyTorch file"):
            load_bytes(data, "m.pt")
    with pytest.raises(ModelFormatError, match=r"^a\.npz is not a valid NumPy \.npz archive"):
        load_bytes(npz_bytes(a=np.ones(3))[:-10], "a.npz")


def test_a_mislabelled_file_says_what_it_looks_like():
    with pytest.raises(ModelFormatError) as e:
        load_bytes(torch_bytes({"w": torch.ones(2)}), "m.safetensors")
    assert "its first bytes look like a PyTorch file" in str(e.value)
    with pytest.raises(ModelFormatError, match="look like a safetensors file"):
        load_bytes(safetensors_bytes(), "m.npy")


def test_corrupt_onnx():
    with pytest.raises(ModelFormatError, match=r"^m\.onnx is not a valid ONNX model"):
        load_bytes(b"\xff" * 40, "m.onnx", framework="onnx")
    with pytest.raises(ModelFormatError, match=r"^m\.onnx is not a valid ONNX model"):
        load_bytes(b"\xff" * 40, "m.onnx", framework="onnxruntime")


def test_corrupt_trusted_pickle_is_one_line():
    data = pickle.dumps({"x": list(range(100))})
    for name in ("m.pkl", "m.joblib"):
        with pytest.raises(ModelFormatError, match=rf"^{name.replace('.', r'[.]')} is not a valid"):
            load_bytes(data[:-20], name, trust=True)


VALID = [
    ("m.safetensors", safetensors_bytes({"a": np.arange(6, dtype=np.float32), "b": np.ones((2, 2))})),
    ("m.npy", npy_bytes(np.arange(20, dtype=np.int32).reshape(4, 5))),
    ("m.npz", npz_bytes(a=np.arange(3), b=np.ones(2))),
    ("m.pt", torch_bytes({"w": torch.arange(8.0), "n": torch.tensor(3)})),
    ("m.pt", torch_bytes({"w": torch.arange(8.0)}, legacy=True)),
    ("m", safetensors_bytes()),
    ("m", npy_bytes(np.arange(4))),
]


@given(
    which=st.integers(0, len(VALID) - 1),
    cut=st.integers(0, 10_000),
    at=st.integers(0, 10_000),
    junk=st.binary(max_size=16),
)
def test_damaged_files_raise_only_mvc_errors(which: int, cut: int, at: int, junk: bytes):
    """A valid file cut short and overwritten somewhere: loading it (untrusted) gives a value or an MvcError."""
    name, data = VALID[which]
    data = data[: max(1, len(data) - cut % len(data))]
    at %= len(data)
    data = data[:at] + junk + data[at + len(junk) :]
    try:
        load_bytes(data, name)
    except MvcError as e:
        assert "\n" not in str(e)


@given(data=st.binary(max_size=600), name=st.sampled_from(["m", "m.safetensors", "m.npy", "m.npz", "m.pt", "m.bin"]))
def test_garbage_raises_only_mvc_errors(data: bytes, name: str):
    try:
        load_bytes(data, name)
    except MvcError:
        pass
    try:
        load_bytes(b"\x93NUMPY" + data, name)
    except MvcError:
        pass


# -- load by reference (mvc.api.read) --------------------------------------------------------------
def test_load_a_tracked_path_at_a_revision(repo: Path):
    first = {"w": np.zeros(3, dtype=np.float32)}
    frameworks.save(first, "models/m.safetensors")
    git(repo, "commit", "-q", "-m", "v1")
    frameworks.save(ARRAYS, "models/m.safetensors")
    git(repo, "commit", "-q", "-m", "v2")
    assert_arrays_equal(mvc.load("models/m.safetensors"), ARRAYS)
    assert_arrays_equal(mvc.load("models/m.safetensors", rev="HEAD~1"), first)
    t = mvc.load("models/m.safetensors", framework="pt")
    assert isinstance(t["w"], torch.Tensor)
    os.chdir("models")  # refs are relative to the current directory, as mvc's paths are
    assert_arrays_equal(mvc.load("m.safetensors"), ARRAYS)


@pytest.mark.parametrize(
    ("obj", "path", "kw"),
    [
        ({"w": torch.arange(4.0)}, "m.pt", {}),
        (torch.nn.Linear(2, 2), "m.safetensors", {"framework": "pt"}),
        (np.arange(6).reshape(2, 3), "m.npy", {}),
        (ARRAYS, "m.npz", {}),
        ({"x": [1, 2]}, "m.joblib", {"trust": True}),
        ({"x": [1, 2]}, "m.pkl", {"trust": True}),
        (torch.arange(4.0), "no-suffix", {}),
    ],
)
def test_load_streams_each_format_by_reference(repo: Path, obj, path: str, kw: dict):
    frameworks.save(obj, f"models/{path}")
    git(repo, "commit", "-q", "-m", "model")
    os.remove(f"models/{path}")  # the cache serves it
    got = mvc.load(f"models/{path}", **kw)
    want = obj.state_dict() if isinstance(obj, torch.nn.Module) else obj
    if isinstance(want, np.ndarray):
        assert np.array_equal(got, want)
    elif isinstance(want, torch.Tensor):
        assert torch.equal(got, want)
    elif path.endswith(".npz"):
        assert_arrays_equal(got, want)
    elif isinstance(want, dict) and all(isinstance(v, torch.Tensor) for v in want.values()):
        assert_tensors_equal(got, dict(want))
    else:
        assert got == want


def test_load_onnx_by_reference(repo: Path):
    model = tiny_onnx()
    frameworks.save(model, "add.onnx")
    assert mvc.load("add.onnx") == model.SerializeToString()
    session = mvc.load("add.onnx", framework="onnxruntime", device="cpu")
    (y,) = session.run(None, {"x": np.zeros(3, dtype=np.float32)})
    assert y.tolist() == [1.0, 2.0, 3.0]


def test_untrusted_formats_are_refused_before_reading(repo: Path):
    frameworks.save({"x": 1}, "m.pkl")
    git(repo, "commit", "-q", "-m", "model")
    os.remove("m.pkl")
    objects = [p for p in (repo / ".mvc" / "cache").rglob("*") if p.is_file()]
    assert objects
    for p in objects:
        p.unlink()  # nothing to read: the refusal must come first
    with pytest.raises(MvcError, match="no mvc remote configured"):  # it would read: from a remote
        mvc.load("m.pkl", trust=True)
    with pytest.raises(UntrustedModel, match="trust=True"):
        mvc.load("m.pkl")


def test_load_registry_revisions(repo: Path):
    model, x = regression()
    frameworks.save(model, "models/lr.joblib", name="churn")
    git(repo, "commit", "-q", "-m", "v1")
    mvc.register("churn")
    mvc.assign("churn", "prod")
    frameworks.save(LinearRegression().fit(x, x @ np.array([0.0, 1.0, 0.0])), "models/lr.joblib")
    git(repo, "commit", "-q", "-m", "v2")
    mvc.register("churn")
    prod = mvc.load("churn#prod", trust=True)
    assert np.array_equal(prod.predict(x), model.predict(x))
    assert not np.array_equal(mvc.load("churn@latest", trust=True).predict(x), model.predict(x))
    assert np.array_equal(mvc.load("churn@v0.0.1", trust=True).predict(x), model.predict(x))
    with pytest.raises(UntrustedModel, match=r"lr\.joblib is a joblib file"):
        mvc.load("churn#prod")


def test_load_a_tracked_directory_gives_a_local_path(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from safetensors.numpy import save_file

    monkeypatch.setenv("MVC_CACHE_DIR", str(tmp_path / "user-cache"))
    d = repo / "hf-model"
    d.mkdir()
    (d / "config.json").write_text('{"hidden": 4}')
    save_file(ARRAYS, str(d / "model.safetensors"))
    mvc.add(["hf-model"])
    git(repo, "commit", "-q", "-m", "dir")
    path = mvc.load("hf-model")
    assert isinstance(path, str) and os.path.isdir(path) and Path(path).resolve() != d.resolve()
    assert json.loads(Path(path, "config.json").read_text()) == {"hidden": 4}
    assert_arrays_equal(load_file(os.path.join(path, "model.safetensors")), ARRAYS)
    with pytest.raises(ModelFormatError, match="is a directory"):
        mvc.load("hf-model", framework="pt")


def test_load_from_a_repository_url(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from mvc.api import remote_config

    monkeypatch.setenv("MVC_CACHE_DIR", str(tmp_path / "user-cache"))
    remote_config.add("store", str(tmp_path / "store"), default=True)
    frameworks.save(ARRAYS, "m.safetensors", name="churn")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model")
    mvc.push()
    mvc.register("churn")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert_arrays_equal(mvc.load("m.safetensors", repo=str(repo)), ARRAYS)
    assert_arrays_equal(mvc.load("churn@latest", repo=str(repo)), ARRAYS)


def test_top_level_names():
    assert mvc.load is frameworks.load and mvc.save is frameworks.save
