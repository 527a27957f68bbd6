"""The record of a version: nested --meta, TOML values, meta files, merging, [auto], mvc show, mvc mv, and how
log and show print what a hostile record holds."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import git, make_file
from hypothesis import given
from hypothesis import strategies as st

import mvc
from mvc.errors import MetaError, MvcError, PointerError
from mvc.format import pointer as ptrfmt

OID = "xxh128:" + "ab" * 16


def pointer(path) -> ptrfmt.Pointer:
    return ptrfmt.loads(path.read_bytes())


def safetensors_file(path, n: int = 2, meta: dict | None = None):
    import numpy as np
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"t{i}": np.ones((i + 2, 3), dtype=np.float32) for i in range(n)}, str(path), metadata=meta)
    return path


# -- --meta: nesting, values, removal ------------------------------------------------------------
def test_meta_nests_dotted_keys_and_reads_toml_values(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    args = ["metrics.auc=0.91", "metrics.f1=0.8", '"a.b"=1', "params.layers=[64, 32]", 'params.opt={name="adam"}']
    args += ['note="[draft] 1.0"', "word=hello world", "id=0e12", "big=1_000", "day=2024-06", "flag=true"]
    mvc_cli("add", "m.bin", *[x for a in args for x in ("-m", a)])
    assert pointer(repo / "m.bin.mvc").meta == {
        "metrics": {"auc": 0.91, "f1": 0.8},
        "a.b": 1,
        "params": {"layers": [64, 32], "opt": {"name": "adam"}},
        "note": "[draft] 1.0",
        "word": "hello world",
        "id": "0e12",
        "big": "1_000",
        "day": "2024-06",
        "flag": True,
    }


def test_meta_removal_prunes_emptied_tables_and_merges_deeply(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin", "-m", "a.b.c=1", "-m", "a.d=2", "-m", "x.y=3", "-m", "keep={}")
    mvc_cli("add", "m.bin", "-m", "a.b.c=", "-m", "x.y=", "-m", "nothing.here=", "-m", "a.e=5")
    assert pointer(repo / "m.bin.mvc").meta == {"a": {"d": 2, "e": 5}, "keep": {}}
    mvc_cli("add", "m.bin", "-m", "a=", "-m", "a.z=1")  # applied in order: removed, then set anew
    assert pointer(repo / "m.bin.mvc").meta == {"a": {"z": 1}, "keep": {}}


def test_meta_files_merge_in_order_and_meta_applies_last(repo, mvc_cli, tmp_path):
    make_file(repo / "m.bin", 10)
    (tmp_path / "a.json").write_text(json.dumps({"params": {"lr": 0.1, "layers": 2}, "drop": 1, "gone": {"x": 1}}))
    (tmp_path / "b.toml").write_text('[params]\nlr = 0.01\n\n[data.train]\npath = "d/train.csv"\n')
    (tmp_path / "c.yaml").write_text("params:\n  seed: 7\ndrop: null\ntags: [a, b]\n")
    mvc_cli("add", "m.bin", "-m", "gone.x=", "-m", "params.lr=0.5", "--meta-file", str(tmp_path / "a.json"))
    assert pointer(repo / "m.bin.mvc").meta == {"params": {"lr": 0.5, "layers": 2}, "drop": 1}
    files = ["--meta-file", str(tmp_path / "b.toml"), "--meta-file", str(tmp_path / "c.yaml")]
    mvc_cli("add", "m.bin", *files)
    assert pointer(repo / "m.bin.mvc").meta == {
        "params": {"lr": 0.01, "layers": 2, "seed": 7},
        "data": {"train": {"path": "d/train.csv"}},
        "tags": ["a", "b"],
    }


def test_api_meta_dicts_deep_merge(repo):
    make_file(repo / "m.bin", 10)
    mvc.add(["m.bin"], meta={"metrics": {"auc": 0.9}, "a": 1})
    mvc.add(["m.bin"], meta={"metrics": {"f1": 0.7}, "a": None})
    mvc.add(["m.bin"], meta=[{"metrics": None}, {"metrics": {"loss": 0.2}}])
    assert pointer(repo / "m.bin.mvc").meta == {"metrics": {"loss": 0.2}}
    with pytest.raises(MetaError, match="TOML cannot hold"):
        mvc.add(["m.bin"], meta={"x": {1, 2}})


def bad_inputs(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "broken.toml").write_text("a = \n")
    (tmp_path / "broken.yaml").write_text("a: [1\n")
    (tmp_path / "huge.json").write_text('{"n": 100000000000000000000}')
    (tmp_path / "nullarray.json").write_text('{"n": [1, null]}')
    (tmp_path / "intkey.yaml").write_text("1: a\n")
    (tmp_path / "surrogate.json").write_text('{"s": "\\ud800"}')
    (tmp_path / "deep.json").write_text('{"a": ' * 40 + "1" + "}" * 40)
    (tmp_path / "m.txt").write_text("a = 1\n")
    f = str(tmp_path)
    return [
        (("--meta-file", f"{f}/list.json"), ("list.json", "table")),
        (("--meta-file", f"{f}/broken.json"), ("broken.json", "not valid json")),
        (("--meta-file", f"{f}/broken.toml"), ("broken.toml", "not valid toml")),
        (("--meta-file", f"{f}/broken.yaml"), ("broken.yaml", "not valid yaml")),
        (("--meta-file", f"{f}/huge.json"), ("huge.json", "64 bits")),
        (("--meta-file", f"{f}/nullarray.json"), ("nullarray.json", "null")),
        (("--meta-file", f"{f}/intkey.yaml"), ("intkey.yaml", "keys must be strings")),
        (("--meta-file", f"{f}/surrogate.json"), ("surrogate.json", "unicode")),
        (("--meta-file", f"{f}/deep.json"), ("deep.json", "deep")),
        (("--meta-file", f"{f}/m.txt"), ("m.txt", ".json")),
        (("--meta-file", f"{f}/missing.json"), ("missing.json", "cannot read")),
        (("-m", "x=[1,"), ("x=[1,", "toml")),
        (("-m", "x={a=1}\ny=2"), ("toml",)),
        (("-m", '"a.b=1'), ("quote",)),
        (("-m", "a..b=1"), ("dot-separated",)),
        (("-m", 'a."b"c=1'), ("dot-separated",)),
        (("-m", "x=99999999999999999999999"), ("--meta 'x=99999999999999999999999'", "64 bits")),
    ]


def test_bad_records_are_one_line_errors_and_write_nothing(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin", "-m", "a=1")
    before = (repo / "m.bin.mvc").read_bytes()
    make_file(repo / "m.bin", 12, seed=3)  # a new version, which must not be stored or pointed at either
    for args, words in bad_inputs(tmp_path):
        mvc_error("add", "m.bin", "-m", "b=2", *args, words=words)
        assert (repo / "m.bin.mvc").read_bytes() == before, args
    assert pointer(repo / "m.bin.mvc").meta == {"a": 1}


def test_yaml_without_pyyaml_says_to_install_it(repo, mvc_error, tmp_path, monkeypatch):
    make_file(repo / "m.bin", 10)
    (tmp_path / "r.yml").write_text("a: 1\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    mvc_error("add", "m.bin", "--meta-file", str(tmp_path / "r.yml"), words=("pip install pyyaml", "r.yml"))
    assert not (repo / "m.bin.mvc").exists()


# -- auto ------------------------------------------------------------------------------------
def test_auto_is_recorded_for_a_new_version_only(repo, mvc_cli, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    head = git(repo, "rev-parse", "HEAD").strip()
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    auto = pointer(repo / "m.bin.mvc").auto
    assert auto["created"] == "2023-11-14T22:13:20Z" and auto["commit"] == head and auto["dirty"] is False
    assert auto["mvc_version"] == mvc.__version__ and auto["host"] and auto["user"]
    assert "model" not in auto  # random bytes are no model format
    git(repo, "commit", "-q", "-m", "m")
    before = (repo / "m.bin.mvc").read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    assert mvc_cli("add", "m.bin").stdout.startswith("unchanged")
    assert (repo / "m.bin.mvc").read_bytes() == before
    mvc_cli("add", "m.bin", "-m", "a=1")  # the record changes, the version does not: [auto] stays
    assert pointer(repo / "m.bin.mvc").auto == auto
    (repo / "tracked.txt").write_text("x")
    git(repo, "add", "tracked.txt")
    make_file(repo / "m.bin", 11, seed=2)
    mvc_cli("add", "m.bin")
    new = pointer(repo / "m.bin.mvc").auto
    assert new["created"] == "2027-01-15T08:00:00Z" and new["dirty"] is True


def test_no_auto_and_the_config_key(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    assert pointer(repo / "m.bin.mvc").auto
    make_file(repo / "m.bin", 11, seed=2)
    mvc_cli("add", "m.bin", "--no-auto")  # a new version: the old [auto] described the one before
    assert pointer(repo / "m.bin.mvc").auto == {} and b"[auto]" not in (repo / "m.bin.mvc").read_bytes()
    mvc_cli("config", "core.auto_record", "false")
    make_file(repo / "n.bin", 10)
    mvc.add(["n.bin"])
    assert pointer(repo / "n.bin.mvc").auto == {}
    make_file(repo / "o.bin", 10, seed=4)
    mvc.add(["o.bin"], auto=True)
    assert "created" in pointer(repo / "o.bin.mvc").auto


def test_auto_model_summaries_of_a_file_and_a_directory(repo, mvc_cli):
    safetensors_file(repo / "m.safetensors", meta={"epoch": "3"})
    mvc_cli("add", "m.safetensors")
    model = pointer(repo / "m.safetensors.mvc").auto["model"]
    assert model["format"] == "safetensors" and model["tensors"] == 2 and model["parameters"] == 6 + 9
    assert model["metadata"] == {"epoch": "3"}
    safetensors_file(repo / "d" / "big.safetensors", n=3)
    safetensors_file(repo / "d" / "sub" / "small.safetensors", n=1)
    (repo / "d" / "bad.safetensors").write_bytes((20).to_bytes(8, "little") + b"{" + b" " * 19)
    (repo / "d" / "readme.txt").write_text("hello")
    mvc_cli("add", "d")
    files = pointer(repo / "d.mvc").auto["model"]["files"]
    assert set(files) == {"big.safetensors", "sub/small.safetensors", "bad.safetensors"}
    assert files["big.safetensors"]["tensors"] == 3 and files["sub/small.safetensors"]["tensors"] == 1
    assert files["bad.safetensors"]["format"] == "safetensors" and "error" in files["bad.safetensors"]


def test_a_directory_summary_is_capped(repo, mvc_cli, monkeypatch):
    from mvc.api import record

    monkeypatch.setattr(record, "SUMMARIES_MAX", 2)
    for i in range(4):
        safetensors_file(repo / "d" / f"m{i}.safetensors", n=i + 1)
    mvc_cli("add", "d")
    model = pointer(repo / "d.mvc").auto["model"]
    assert set(model["files"]) == {"m3.safetensors", "m2.safetensors"} and model["more"] == 2  # largest first


def test_a_directory_whose_largest_files_are_no_models_is_not_opened_whole(repo, mvc_cli, monkeypatch):
    """A directory of data: once its LOOK_EMPTY largest files are none of the formats read, the rest are not opened."""
    from mvc.api import record

    monkeypatch.setattr(record, "LOOK_EMPTY", 3)
    for i in range(6):
        (repo / "data").mkdir(exist_ok=True)
        (repo / "data" / f"x{i}.bin").write_bytes(bytes([i]) * (1000 - i))
    safetensors_file(repo / "data" / "tiny.safetensors", n=1)  # the smallest: past the first 3
    safetensors_file(repo / "models" / "tiny.safetensors", n=1)
    for i in range(6):
        (repo / "models" / f"x{i}.bin").write_bytes(bytes([i]) * (1000 - i))
    safetensors_file(repo / "models" / "big.safetensors", n=40)  # among the largest: the rest are looked at
    mvc_cli("add", "data", "models")
    assert "model" not in pointer(repo / "data.mvc").auto
    assert set(pointer(repo / "models.mvc").auto["model"]["files"]) == {"big.safetensors", "tiny.safetensors"}


# -- the pointer format ----------------------------------------------------------------------
def test_auto_must_be_a_table_and_an_older_reader_keeps_it(monkeypatch):
    head = f'format = 1\nkind = "file"\noid = "{OID}"\nsize = 1\n'
    with pytest.raises(PointerError, match=r"\[auto\] must be a table"):
        ptrfmt.loads(head + 'auto = "x"\n', "m.bin.mvc")
    text = head + '\n[auto]\ncreated = "2024-01-01T00:00:00Z"\n\n[auto.model]\nformat = "onnx"\n'
    assert ptrfmt.dumps(ptrfmt.loads(text)) == text.encode()
    monkeypatch.setattr(ptrfmt, "_KNOWN", ptrfmt._KNOWN - {"auto"})  # as mvc 0.3.0 reads it
    old = ptrfmt.loads(text)
    assert old.extra == {"auto": {"created": "2024-01-01T00:00:00Z", "model": {"format": "onnx"}}}
    assert ptrfmt.dumps(old) == text.encode()


hostile = st.recursive(
    st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)


@given(hostile, hostile, st.sampled_from(["file", "dir", "x"]))
def test_pointers_with_hostile_meta_and_auto_parse_or_raise_pointer_error(meta, auto, kind):
    import tomli_w

    from mvc.api.show import plain

    doc = {"format": 1, "kind": kind, "oid": OID, "size": 1, "nfiles": 1, "meta": meta, "auto": auto}
    try:
        data = tomli_w.dumps({k: v for k, v in doc.items() if v is not None}).encode()
    except (TypeError, ValueError):
        return
    try:
        p = ptrfmt.loads(data, "m.bin.mvc")
    except PointerError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(p.meta, dict) and isinstance(p.auto, dict)
    assert ptrfmt.loads(ptrfmt.dumps(p)) == p
    json.dumps(plain(p.to_dict()))
    from mvc.cli.record import flat, lines

    for line in lines(p.meta, 1) + lines(p.auto, 1) + [f"{k}={v}" for k, v in flat(p.meta)]:
        assert line.isprintable()


# -- show --------------------------------------------------------------------------------------
@pytest.fixture
def registered(repo, mvc_cli):
    safetensors_file(repo / "models" / "churn.safetensors")
    mvc_cli("add", "models/churn.safetensors", "--name", "churn", "-m", "metrics.auc=0.9", "-m", "tags=[1, 2]")
    git(repo, "commit", "-q", "-m", "train churn\n\nmore words")
    mvc_cli("register", "churn", "v1.0.0")
    mvc_cli("assign", "churn", "prod", "--version", "v1.0.0")
    return repo


def test_show_a_path_a_version_and_a_stage(registered, mvc_cli):
    c1 = git(registered, "rev-parse", "HEAD").strip()
    safetensors_file(registered / "models" / "churn.safetensors", n=3)
    mvc_cli("add", "models/churn.safetensors", "-m", "metrics.auc=0.95")
    text = mvc_cli("show", "models/churn.safetensors").stdout
    assert "auc: 0.95" in text and "model" in text and "churn" in text and "commit " not in text
    for ref in ("churn@v1.0.0", "churn#prod"):
        d = json.loads(mvc_cli("show", ref, "--json").stdout)
        assert d["commit"] == c1 and d["message"] == "train churn\n\nmore words" and d["author"] == "Test User"
        assert d["names"] == ["churn"] and d["versions"] == ["v1.0.0"] and d["stages"] == ["prod"]
        assert d["meta"] == {"metrics": {"auc": 0.9}, "tags": [1, 2]} and d["auto"]["model"]["tensors"] == 2
        assert d["rev"] == ref and d["path"] == "models/churn.safetensors"
    text = mvc_cli("show", "churn#prod").stdout
    assert "versions  v1.0.0" in text and "stages    #prod" in text and "message   train churn\n" in text
    assert "meta:\n  tags: 1, 2\n  metrics:\n    auc: 0.9\n" in text and "{" not in text and "'" not in text
    d = mvc.show("models/churn.safetensors", rev="HEAD")
    assert d["commit"] == c1 and d["meta"]["metrics"] == {"auc": 0.9}


def test_show_a_path_or_name_at_a_registry_revision(registered, mvc_cli):
    c1 = git(registered, "rev-parse", "HEAD").strip()
    safetensors_file(registered / "models" / "churn.safetensors", n=3)
    mvc_cli("add", "models/churn.safetensors", "-m", "metrics.auc=0.95")
    git(registered, "commit", "-q", "-m", "retrain")
    for rev in ("churn#prod", "churn@latest", "churn@v1.0.0", "churn#prod#1"):
        for ref in ("models/churn.safetensors", "churn"):
            d = json.loads(mvc_cli("show", ref, "--rev", rev, "--json").stdout)
            assert d["commit"] == c1 and d["meta"]["metrics"] == {"auc": 0.9} and d["stages"] == ["prod"], (ref, rev)
            assert d["rev"] == rev
        d = mvc.show("models/churn.safetensors", rev=rev)
        assert d["commit"] == c1 and d["versions"] == ["v1.0.0"]


def test_show_a_model_name_alone_is_its_work_tree_version(registered, mvc_cli):
    safetensors_file(registered / "models" / "churn.safetensors", n=3)
    mvc_cli("add", "models/churn.safetensors", "-m", "metrics.auc=0.97")
    d = json.loads(mvc_cli("show", "churn", "--json").stdout)
    assert d["path"] == "models/churn.safetensors" and d["meta"]["metrics"]["auc"] == 0.97


def test_show_and_log_escape_hostile_strings(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc.add(["m.bin"], meta={"evil\x1b[31m": "a\nb\x07", "nested": {"list": ["\u202e", {"k": "\x00"}]}})
    git(repo, "commit", "-q", "-m", "m")
    (repo / "m.bin.mvc").write_bytes((repo / "m.bin.mvc").read_bytes() + b"\n[auto.when]\nat = 1979-05-27\n")
    text = mvc_cli("show", "m.bin").stdout
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\x00" not in text
    assert "evil\\x1b[31m: a\\nb\\x07" in text and "\\u202e, {k = \\x00}" in text and "at: 1979-05-27" in text
    assert json.loads(mvc_cli("show", "m.bin", "--json").stdout)["auto"]["when"] == {"at": "1979-05-27"}
    log = mvc_cli("log", "m.bin").stdout
    assert "\x1b" not in log and "evil\\x1b[31m=a\\nb\\x07" in log and "nested.list=[\\u202e, {k = \\x00}]" in log


def test_show_refuses_what_is_not_tracked(repo, mvc_error):
    mvc_error("show", "nothing.bin", words=("not tracked",))
    mvc_error("show", "ghost@v1.0.0", words=("no model named",))


# -- mv ----------------------------------------------------------------------------------------
def test_mv_a_named_file_keeps_record_name_and_history(registered, mvc_cli):
    repo = registered
    before = (repo / "models" / "churn.safetensors.mvc").read_bytes()
    data = (repo / "models" / "churn.safetensors").read_bytes()
    out = mvc_cli("mv", "models/churn.safetensors", "v2/churn.safetensors").stdout
    assert out == "moved models/churn.safetensors -> v2/churn.safetensors\nmodel churn now names v2/churn.safetensors\n"
    assert not (repo / "models" / "churn.safetensors").exists() and not (repo / "models/churn.safetensors.mvc").exists()
    assert (repo / "v2" / "churn.safetensors").read_bytes() == data
    assert (repo / "v2" / "churn.safetensors.mvc").read_bytes() == before
    assert "/churn.safetensors" in (repo / "v2" / ".gitignore").read_text()
    assert "/churn.safetensors" not in (repo / "models" / ".gitignore").read_text()
    status = git(repo, "status", "--porcelain")
    assert "R  models/churn.safetensors.mvc -> v2/churn.safetensors.mvc" in status and "M  .mvc/config.toml" in status
    assert "?? " not in status and not git(repo, "diff")  # everything staged
    git(repo, "commit", "-q", "-m", "move")
    assert [r["change"] for r in mvc.log("churn")] == ["moved", "added"]
    assert [r["path"] for r in mvc.log("v2/churn.safetensors")] == ["v2/churn.safetensors", "models/churn.safetensors"]
    assert mvc_cli("status").stdout.strip().endswith("up to date")
    assert mvc.show("churn#prod")["path"] == "models/churn.safetensors"  # the registered version is where it was


def test_log_of_a_path_no_name_maps_follows_its_moves(repo, mvc_cli):
    make_file(repo / "a.bin", 10)
    mvc_cli("add", "a.bin", "-m", "v=1")
    git(repo, "commit", "-q", "-m", "a")
    make_file(repo / "a.bin", 11, seed=3)
    mvc_cli("add", "a.bin")
    git(repo, "commit", "-q", "-m", "a, again")
    mvc_cli("mv", "a.bin", "b/a.bin")
    git(repo, "commit", "-q", "-m", "moved")
    log = mvc.log("b/a.bin")
    assert [(r["change"], r["path"]) for r in log][-2:] == [("modified", "a.bin"), ("added", "a.bin")]
    assert log[0]["path"] == "b/a.bin" and len(log) == 3


def test_mv_a_directory_and_a_pointer_without_data(repo, mvc_cli):
    make_file(repo / "d" / "a.bin", 10)
    make_file(repo / "d" / "s" / "b.bin", 10, seed=1)
    make_file(repo / "lone.bin", 10, seed=2)
    mvc_cli("add", "d", "lone.bin", "-m", "x=1")
    git(repo, "commit", "-q", "-m", "d")
    mvc_cli("mv", "d.mvc", "e")  # the pointer's name names the path as well
    assert (repo / "e" / "s" / "b.bin").is_file() and not (repo / "d").exists()
    assert pointer(repo / "e.mvc").meta == {"x": 1}
    (repo / "lone.bin").unlink()
    assert "pointer only" in mvc_cli("mv", "lone.bin", "sub/lone.bin").stdout
    assert (repo / "sub" / "lone.bin.mvc").is_file()
    assert [line.split()[-1] for line in mvc_cli("status").stdout.splitlines()] == ["date", "workspace"]


def test_mv_refusals_move_nothing(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "m.bin", 10)
    make_file(repo / "d" / "a.bin", 10, seed=1)
    make_file(repo / "other.bin", 10, seed=2)
    mvc_cli("add", "m.bin", "d")
    (repo / "plain.txt").write_text("x")
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    cases = [
        (("m.bin", "other.bin"), ("already exists",)),
        (("m.bin", "d"), ("already exists",)),
        (("m.bin", ".mvc/m.bin"), ("never tracks",)),
        (("m.bin", ".git/m.bin"), ("never tracks",)),
        (("m.bin", str(tmp_path / "out.bin")), ("outside the repository",)),
        (("m.bin", "d/x/m.bin"), ("inside d, which mvc tracks",)),
        (("m.bin", "m.bin"), ("already",)),
        (("d", "d/e"), ("inside",)),
        (("plain.txt", "p.txt"), ("not tracked",)),
        (("nothing", "p.txt"), ("not tracked",)),
        (("m.bin", "x.mvc"), ("pointer file",)),
    ]
    for args, words in cases:
        mvc_error("mv", *args, words=words)
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before and not (repo / "d" / "x").exists()


def test_mv_into_a_directory_as_mv_does(repo, mvc_cli, mvc_error):
    make_file(repo / "m.bin", 10)
    make_file(repo / "n.bin", 10, seed=1)
    make_file(repo / "d" / "a.bin", 10, seed=2)
    mvc_cli("add", "m.bin", "n.bin", "d")
    (repo / "models").mkdir()
    mvc_cli("mv", "m.bin", "models")  # an existing directory mvc does not track: into it
    mvc_cli("mv", "n.bin", "new/")  # a trailing slash: into it, made
    assert (repo / "models" / "m.bin.mvc").is_file() and (repo / "models" / "m.bin").is_file()
    assert (repo / "new" / "n.bin.mvc").is_file() and (repo / "new" / "n.bin").is_file()
    mvc_error("mv", "models/m.bin", "d/", words=("inside d, which mvc tracks",))  # never into a tracked one


def test_mv_across_filesystems_is_refused(repo, mvc_cli, mvc_error, monkeypatch):
    import errno
    import os

    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    real = os.rename

    def rename(a, b):
        if str(a).endswith("m.bin"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(a, b)

    monkeypatch.setattr(os, "rename", rename)
    mvc_error("mv", "m.bin", "new/m.bin", words=("another filesystem",))
    assert (repo / "m.bin").is_file() and (repo / "m.bin.mvc").is_file() and not (repo / "new").exists()


def test_errors_are_mvc_errors():
    assert issubclass(MetaError, MvcError)


def test_add_with_a_name_says_the_config_changed(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    out = mvc_cli("add", "m.bin", "--name", "churn").stdout
    assert "unchanged m.bin" in out and "model churn now names m.bin" in out
    assert "now names" not in mvc_cli("add", "m.bin", "--name", "churn").stdout  # already so: nothing said
