"""``mvc diff`` of two model versions (issue 14): safetensors tensors added, removed, reshaped, retyped and
changed (with the largest absolute change when the cache holds both), directories file by file, a version
read from a directory remote by header ranges alone, lying headers, and the revision form left as it was.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import git
from hypothesis import given
from hypothesis import strategies as st

import mvc
from mvc.errors import ModelFormatError
from mvc.format import headers
from mvc.repo.repository import open_repo

PATH = "models/churn.safetensors"
EVIL = "evil\x1b[31m<script>"


def st_bytes(tensors: dict[str, np.ndarray | tuple[str, list[int], bytes]], meta: dict | None = None) -> bytes:
    """A safetensors file: numpy arrays, or (dtype, shape, raw bytes) for dtypes numpy lacks (BF16)."""
    names = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i4"): "I32", np.dtype("<f8"): "F64"}
    header: dict = {"__metadata__": meta} if meta else {}
    data = b""
    for name, t in tensors.items():
        dtype, shape, raw = (names[t.dtype], list(t.shape), t.tobytes()) if isinstance(t, np.ndarray) else t
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + data


def bf16(values: list[float]) -> tuple[str, list[int], bytes]:
    bits = (np.array(values, dtype="<f4").view("<u4") >> 16).astype("<u2")
    return ("BF16", [len(values)], bits.tobytes())


def v1_tensors() -> dict:
    rng = np.random.default_rng(0)
    return {
        "keep": rng.standard_normal((4, 4)).astype("<f4"),
        "w": rng.standard_normal((8, 8)).astype("<f4"),
        "bf": bf16([1.0, 2.0, -3.0, 0.5]),
        "ints": np.arange(5, dtype="<i4"),
        "old.bias": np.zeros(3, dtype="<f4"),
        "emb": np.ones((10, 4), dtype="<f4"),
        "cast": np.ones(4, dtype="<f4"),
    }


def v2_tensors() -> dict:
    t = v1_tensors()
    w = t["w"].copy()
    w[1, 2] += np.float32(0.25)
    w[7, 7] -= np.float32(0.125)
    ints = t["ints"].copy()
    ints[3] -= 7
    del t["old.bias"]
    t.update(w=w, ints=ints, bf=bf16([1.0, 2.5, -3.0, 0.5]), emb=np.ones((12, 4), dtype="<f4"))
    t.update({"cast": np.ones(4, dtype="<f2"), "new.bias": np.zeros(768, dtype="<f4"), EVIL: np.zeros(1, "<f4")})
    return t


def commit(repo: Path, data: bytes, version: str, mvc_cli, path: str = PATH) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_bytes(data)
    mvc.add([str(repo / path)], name="churn")
    git(repo, "commit", "-q", "-m", f"train {version}")
    mvc_cli("register", "churn", version)


@pytest.fixture
def two(repo: Path, mvc_cli) -> Path:
    commit(repo, st_bytes(v1_tensors(), {"epoch": "1"}), "v1.0.0", mvc_cli)
    commit(repo, st_bytes(v2_tensors(), {"epoch": "2"}), "v1.1.0", mvc_cli)
    return repo


def by_name(result: dict) -> dict[str, dict]:
    return {t["name"]: t for t in result["tensors"]}


def test_tensors_of_two_registered_versions(two, mvc_cli):
    r = json.loads(mvc_cli("diff", "--model", "churn@v1.0.0", "churn@v1.1.0", "--json").stdout)
    assert r["kind"] == "file" and r["format"] == "safetensors" and not r["same"] and r["complete"]
    assert r["a"]["ref"] == "churn@v1.0.0" and r["a"]["path"] == PATH and r["b"]["rev"] == "churn@v1.1.0"
    t = by_name(r)
    assert {n: x["change"] for n, x in t.items()} == {
        "keep": "unchanged",
        "w": "changed",
        "bf": "changed",
        "ints": "changed",
        "old.bias": "removed",
        "emb": "reshaped",
        "cast": "reshaped",
        "new.bias": "added",
        EVIL: "added",
    }
    assert r["counts"] == {"added": 2, "removed": 1, "reshaped": 2, "changed": 3, "unknown": 0, "unchanged": 1}
    assert t["w"]["max_abs"] == pytest.approx(0.25) and t["w"]["elements_changed"] == 2
    assert t["bf"]["max_abs"] == 0.5 and t["bf"]["elements_changed"] == 1
    assert t["ints"]["max_abs"] == 7 and t["ints"]["elements_changed"] == 1
    assert t["emb"]["a"] == {"dtype": "F32", "shape": [10, 4]} and t["emb"]["b"]["shape"] == [12, 4]
    assert t["cast"]["b"]["dtype"] == "F16" and t["old.bias"]["b"] is None and t["new.bias"]["a"] is None
    assert r["metadata_changes"] == {"epoch": ["1", "2"]}

    text = mvc_cli("diff", "--model", "churn@v1.0.0", "churn@v1.1.0").stdout
    assert "tensors: 2 added, 1 removed, 2 reshaped, 3 changed, 1 unchanged" in text
    assert "~ w  max |Δ| 0.25  (2 of 64 elements)" in text
    assert "+ new.bias  F32 [768]" in text and "- old.bias  F32 [3]" in text
    assert "! emb  F32 [10, 4] -> F32 [12, 4]" in text and "! cast  F32 [4] -> F16 [4]" in text
    assert "metadata epoch: 1 -> 2" in text
    assert "\x1b" not in text and "+ evil\\x1b[31m<script>  F32 [1]" in text  # escaped, not a terminal escape
    assert "keep" not in text


def test_the_ref_grammar(two, mvc_cli):
    mvc_cli("assign", "churn", "prod", "--version", "v1.0.0")
    # a model name (no revision) picks the model form: prod's version against the work tree's
    r = json.loads(mvc_cli("diff", "churn#prod", "churn", "--json").stdout)
    assert r["a"]["ref"] == "churn#prod" and by_name(r)["w"]["change"] == "changed"
    r = mvc.diff_models("HEAD~1:" + PATH, PATH)
    assert by_name(r)["bf"]["max_abs"] == 0.5
    assert mvc.diff_models("HEAD~1:churn")["counts"]["changed"] == 3  # against the work tree
    assert mvc.diff_models("churn@v1.1.0", "churn")["same"]
    r = mvc.diff_models("churn")  # the work tree's version against HEAD's
    assert r["same"] and r["a"]["ref"] == f"HEAD:{PATH}" and r["counts"]["unchanged"] == 8
    # two registry revisions alone are still the revision form: pointers compared
    rows = json.loads(mvc_cli("diff", "churn@v1.0.0", "churn@v1.1.0", "--json").stdout)
    assert [(x["change"], x["path"]) for x in rows] == [("modified", PATH)]


def test_other_files_same_or_not(repo, mvc_cli):
    (repo / "m.bin").write_bytes(b"a" * 100)
    mvc.add([str(repo / "m.bin")])
    git(repo, "commit", "-q", "-m", "one")
    (repo / "m.bin").write_bytes(b"b" * 150)
    mvc.add([str(repo / "m.bin")])
    r = mvc.diff_models("HEAD:m.bin", "m.bin")
    assert not r["same"] and r["size_change"] == 50 and "tensors" not in r
    assert "content differs (100 B -> 150 B)" in mvc_cli("diff", "m.bin").stdout


def test_directory_files_and_tensors(repo, mvc_cli):
    d = repo / "bert"
    d.mkdir()
    (d / "same.txt").write_text("same")
    (d / "changed.txt").write_text("one")
    (d / "gone.txt").write_text("gone")
    (d / "model.safetensors").write_bytes(st_bytes(v1_tensors()))
    mvc.add([str(d)])
    git(repo, "commit", "-q", "-m", "one")
    (d / "changed.txt").write_text("two!")
    (d / "gone.txt").unlink()
    (d / "new.txt").write_text("new")
    (d / "model.safetensors").write_bytes(st_bytes(v2_tensors()))
    mvc.add([str(d)])
    r = mvc.diff_models("HEAD:bert", "bert")
    assert r["kind"] == "dir" and r["counts"] == {"added": 1, "removed": 1, "changed": 2, "unchanged": 1}
    files = {f["path"]: f for f in r["files"]}
    assert {p: f["change"] for p, f in files.items()} == {
        "changed.txt": "changed",
        "gone.txt": "removed",
        "model.safetensors": "changed",
        "new.txt": "added",
    }
    assert files["changed.txt"]["a"]["size"] == 3 and files["changed.txt"]["b"]["size"] == 4
    assert "tensors" not in files["model.safetensors"]
    r = json.loads(mvc_cli("diff", "HEAD:bert", "bert", "--tensors", "--json").stdout)
    m = next(f for f in r["files"] if f["path"] == "model.safetensors")
    assert by_name(m)["w"]["max_abs"] == pytest.approx(0.25)
    text = mvc_cli("diff", "bert", "--tensors").stdout
    assert "files: 1 added, 1 removed, 2 changed, 1 same" in text
    assert "~ model.safetensors" in text and "    ~ w  max |Δ| 0.25" in text and "+ new.txt  3 B" in text


def test_a_version_only_on_a_remote_is_read_by_header_ranges(repo, mvc_cli, tmp_path, monkeypatch):
    from mvc.storage.directory import DirStore

    big = np.arange(400_000, dtype="<f4")  # 1.6 MB: stored alone on the remote, not in a pack
    commit(repo, st_bytes({**v1_tensors(), "big": big}), "v1.0.0", mvc_cli)
    mvc_cli("remote", "add", "store", str(tmp_path / "store"), "--default")
    git(repo, "commit", "-q", "-m", "remote")
    mvc_cli("push")
    commit(repo, st_bytes({**v2_tensors(), "big": big + 1}), "v1.1.0", mvc_cli)
    mvc_cli("push")
    oid_a = mvc.describe("churn@v1.0.0")["oid"]
    size_a = mvc.describe("churn@v1.0.0")["size"]
    odb = open_repo(None).odb
    Path(odb.path(oid_a)).unlink()  # v1 now only on the remote
    asked: list[tuple[str, int, int]] = []
    real = DirStore.get_range

    def spy(self, rel, start, end):
        asked.append((rel, start, end))
        return real(self, rel, start, end)

    monkeypatch.setattr(DirStore, "get_range", spy)
    r = mvc.diff_models("churn@v1.0.0", "churn@v1.1.0")
    assert not r["complete"] and r["counts"]["unknown"] == 5  # keep, w, bf, ints, big
    assert by_name(r)["new.bias"]["change"] == "added" and by_name(r)["emb"]["change"] == "reshaped"
    assert sum(end - start for _, start, end in asked) < 4096 < size_a  # the 8 bytes and the header alone
    assert [start for _, start, _ in asked] == [0, 8]
    assert not odb.exists(oid_a)  # nothing fetched into the cache
    text = mvc_cli("diff", "--model", "churn@v1.0.0", "churn@v1.1.0").stdout
    assert "? keep" in text and "--fetch" in text
    r = json.loads(mvc_cli("diff", "--model", "churn@v1.0.0", "churn@v1.1.0", "--fetch", "--json").stdout)
    assert r["complete"] and by_name(r)["big"]["max_abs"] == 1.0 and by_name(r)["keep"]["change"] == "unchanged"
    assert odb.exists(oid_a)


LIES = [
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}, 8, "outside the 8 bytes"),
    (
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        },
        12,
        "overlaps",
    ),
    ({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8, "does not fit"),
    ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, 8, "shape of naturals"),
]


@pytest.mark.parametrize("header, data, words", LIES)
def test_lying_headers_are_one_line_errors(repo, mvc_cli, mvc_error, header, data, words):
    commit(repo, st_bytes(v1_tensors()), "v1.0.0", mvc_cli)
    head = json.dumps(header).encode()
    commit(repo, struct.pack("<Q", len(head)) + head + bytes(data), "v1.1.0", mvc_cli)
    line = mvc_error("diff", "--model", "churn@v1.0.0", "churn@v1.1.0", words=(words, PATH, "churn@v1.1.0"))
    assert "not a valid safetensors file" in line


@pytest.mark.parametrize(
    "data, words",
    [
        (struct.pack("<Q", 1 << 40) + b"{}", "claims 1099511627776 bytes"),
        (struct.pack("<Q", 5) + b"nope!", "not a JSON object"),
        (b"\x01\x02", "claims"),
        (struct.pack("<Q", 2) + b"{}", None),  # an empty file is fine: every tensor removed
    ],
)
def test_broken_files(repo, mvc_cli, mvc_error, data, words):
    commit(repo, st_bytes(v1_tensors()), "v1.0.0", mvc_cli)
    commit(repo, data, "v1.1.0", mvc_cli)
    if words is None:
        assert mvc.diff_models("churn@v1.0.0", "churn@v1.1.0")["counts"]["removed"] == 7
        return
    mvc_error("diff", "--model", "churn@v1.0.0", "churn@v1.1.0", words=(words, "churn@v1.1.0"))


def test_a_header_over_the_format_cap(repo, mvc_cli, mvc_error, monkeypatch):
    monkeypatch.setattr("mvc.api.tensordiff.HEADER_MAX", 64)
    commit(repo, st_bytes(v1_tensors()), "v1.0.0", mvc_cli)
    mvc_error("diff", "churn@v1.0.0", "churn", words=("more than the format", "churn@v1.0.0"))


def test_the_revision_form_is_unchanged(two, mvc_cli, mvc_error):
    assert mvc_cli("diff").stdout.strip() == "no model changed"
    assert "modified  models/churn.safetensors (churn)" in mvc_cli("diff", "HEAD~1", "HEAD").stdout
    mvc_error("diff", "nope", words=("unknown revision",))
    mvc_error("diff", "--model", "nope", words=("nope",))


@given(st.binary(max_size=300))
def test_the_table_parser_returns_or_raises_one_error(data):
    f = io.BytesIO(data)
    try:
        n = headers.safetensors_length(f, len(data), "x")
        meta, table = headers.safetensors_table(f, len(data), "x", n)
    except ModelFormatError as e:
        assert "\n" not in str(e)
        return
    for dtype, _, begin, end in table.values():
        assert isinstance(dtype, str) and 0 <= begin <= end <= len(data) - 8 - n
    assert all(isinstance(v, str) for v in meta.values())


@given(st.binary(min_size=8, max_size=40), st.binary(max_size=40))
def test_the_table_parser_on_json_like_garbage(prefix, tail):
    body = b'{"t": {"dtype": "F32", "shape": [1], "data_offsets": ' + prefix + b"}}"
    data = struct.pack("<Q", len(body)) + body + tail
    try:
        headers.safetensors_table(io.BytesIO(data), len(data), "x", len(body))
    except ModelFormatError:
        pass
