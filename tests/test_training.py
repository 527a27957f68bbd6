"""mvc.run: a training script's record written with the model on a clean exit, nothing on an exception;
data and artifacts recorded; artifacts pushed, fetched, kept by gc and checked by verify; bad values refused."""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import datetime
from pathlib import Path

import pytest
from conftest import git, make_file

import mvc
from mvc.errors import ConfigError, MvcError, PathError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def pointer(path: Path) -> dict:
    return tomllib.loads(path.with_name(path.name + ".mvc").read_text())


def staged(repo: Path) -> list[str]:
    return git(repo, "diff", "--cached", "--name-only").split()


@pytest.fixture
def data(repo: Path) -> Path:
    """data/train.csv tracked and committed."""
    make_file(repo / "data" / "train.csv", 500, seed=7)
    mvc.add("data/train.csv")
    git(repo, "commit", "-q", "-m", "data")
    return repo


def test_clean_exit_writes_the_record_in_one_add(data, monkeypatch):
    import mvc.api.workspace as ws

    calls = []
    real_add = ws.add
    monkeypatch.setattr(ws, "add", lambda *a, **kw: calls.append(kw) or real_add(*a, **kw))
    with mvc.run("models/churn.pkl", name="churn", params={"lr": 0.1}) as run:
        run.param("epochs", 10)
        run.params({"optim": "adam"}, depth=6, layers=(64, 32), sched={"kind": "cos", "warmup": 2})
        run.metric("f1", 0.5)
        run.metric("f1", 0.81)  # the last value wins
        run.metrics(auc=0.9, loss=float("nan"))
        d = run.data("train", "data/train.csv")
        run.data("events", "s3://lake/events/")
        make_file(data / "plots" / "roc.png", 300, seed=3)
        a = run.artifact("roc", "plots/roc.png")
        run.set("note", "baseline")
        assert not (data / "models" / "churn.pkl.mvc").exists()  # nothing written while the block runs
        make_file(data / "models" / "churn.pkl", 1000, seed=1)
    assert len(calls) == 1
    p = pointer(data / "models" / "churn.pkl")
    meta = p["meta"]
    assert run.result["oid"] == p["oid"] and run.result["name"] == "churn"
    assert meta["params"] == {
        "lr": 0.1,
        "epochs": 10,
        "optim": "adam",
        "depth": 6,
        "layers": [64, 32],
        "sched": {"kind": "cos", "warmup": 2},
    }
    assert meta["metrics"]["f1"] == 0.81 and meta["metrics"]["auc"] == 0.9 and math.isnan(meta["metrics"]["loss"])
    assert meta["data"] == {
        "train": {"path": "data/train.csv", "oid": pointer(data / "data" / "train.csv")["oid"]},
        "events": {"url": "s3://lake/events/"},
    }
    assert d == meta["data"]["train"]
    assert meta["artifacts"] == {"roc": a} and a["path"] == "plots/roc.png" and a["size"] == 300
    assert mvc.Repo.find().odb.read_bytes(a["oid"]) == (data / "plots" / "roc.png").read_bytes()
    assert meta["note"] == "baseline"
    started, ended = (datetime.fromisoformat(meta["training"][k].replace("Z", "+00:00")) for k in ("started", "ended"))
    assert started <= ended and meta["training"]["ended"].endswith("Z")
    assert "models/churn.pkl.mvc" in staged(data) and ".mvc/config.toml" in staged(data)  # named, staged
    assert "plots/roc.png.mvc" not in os.listdir(data / "plots")  # an artifact is not tracked for it


def test_a_rerun_replaces_the_run_tables_and_keeps_other_meta(repo):
    make_file(repo / "m.bin", 100, seed=1)
    mvc.add("m.bin", meta={"owner": "ana"})
    with mvc.run("m.bin") as run:
        run.metrics(f1=0.8, auc=0.9)
        run.param("lr", 0.1)
    with mvc.run("m.bin") as run:
        run.metric("f1", 0.85)
        make_file(repo / "m.bin", 100, seed=2)
    meta = pointer(repo / "m.bin")["meta"]
    assert meta["metrics"] == {"f1": 0.85}
    assert "params" not in meta and meta["owner"] == "ana"


def test_an_exception_adds_nothing(repo):
    make_file(repo / "m.bin", 100, seed=1)
    with pytest.raises(RuntimeError, match="diverged"), mvc.run("m.bin", name="m") as run:
        run.metric("f1", 0.3)
        raise RuntimeError("diverged")
    assert not (repo / "m.bin.mvc").exists()
    assert run.result is None
    assert staged(repo) == []
    with pytest.raises(ConfigError, match="has ended"):
        run.metric("f1", 0.4)


def test_checks_come_before_training(repo):
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    with pytest.raises(MvcError, match="invalid model name"):
        mvc.run("m.bin", name="Bad Name")
    (repo / "in_git.bin").write_text("x")
    git(repo, "add", "in_git.bin")
    with pytest.raises(PathError, match="already tracked by git"):
        mvc.run("in_git.bin")
    with pytest.raises(PathError, match="outside the repository"):
        mvc.run("/tmp/elsewhere.bin")


def test_the_model_file_must_exist_at_the_end(repo, monkeypatch):
    """A script that saved the model elsewhere: the error says the run's record is not lost, and how to add it."""
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    with pytest.raises(PathError) as e, mvc.run("never_written.bin") as run:
        run.metric("f1", 0.8)
    line = str(e.value)
    assert "sub/never_written.bin was not written" in line and "nothing was added" in line
    assert "mvc.add('never_written.bin', meta=run.meta())" in line
    (repo / "sub" / "never_written.bin").write_bytes(b"the model")
    mvc.add("never_written.bin", meta=run.meta())
    assert mvc.show("never_written.bin")["meta"]["metrics"] == {"f1": 0.8}


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda r: r.metric("f1", None), "metric 'f1' is None"),
        (lambda r: r.metric("f1", "0.8"), "a metric is a number"),
        (lambda r: r.metric("ok", True), "a metric is a number"),
        (lambda r: r.param("lr", None), "param 'lr' is None"),
        (lambda r: r.param("model", object()), "TOML cannot store"),
        (lambda r: r.param("grid", [1, None]), "grid[1]"),
        (lambda r: r.params({1: 2}), "name 1 is not allowed"),
        (lambda r: r.param("sched", {3: "x"}), "keys of a table are strings"),
        (lambda r: r.metric("val.f1", 0.8), "without '.'"),
        (lambda r: r.metric("", 0.8), "is not allowed"),
        (lambda r: r.set("metrics", {"f1": 1}), "the run's own table"),
        (lambda r: r.data("train", "nothing.csv"), "not tracked by mvc"),
        (lambda r: r.artifact("roc", "missing.png"), "does not exist"),
        (lambda r: r.artifact("dir", "."), "is a directory"),
        (lambda r: r.artifact("out", "/etc/hostname"), "outside the repository"),
    ],
)
def test_bad_values_are_refused_in_one_line(repo, call, words):
    make_file(repo / "m.bin", 10)
    with pytest.raises(MvcError) as e, mvc.run("m.bin") as run:
        call(run)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert not (repo / "m.bin.mvc").exists()


def test_numpy_scalars_and_dates_are_taken(repo):
    import datetime as dt

    np = pytest.importorskip("numpy")
    make_file(repo / "m.bin", 10)
    with mvc.run("m.bin") as run:
        run.metric("acc", np.float32(0.5))
        run.metric("n", np.int64(3))
        run.param("day", dt.date(2024, 6, 1))
        run.metric("big", float("inf"))
    meta = pointer(repo / "m.bin")["meta"]
    assert meta["metrics"] == {"acc": 0.5, "n": 3, "big": float("inf")}
    assert meta["params"] == {"day": dt.date(2024, 6, 1)}


def test_data_changed_since_add_is_refused(data):
    (data / "data" / "train.csv").write_text("changed")
    make_file(data / "m.bin", 10)
    with pytest.raises(PathError, match="changed since it was added"), mvc.run("m.bin") as run:
        run.data("train", "data/train.csv")


# -- artifacts travel with their pointer -----------------------------------------------------------
def artifact_run(repo: Path, seed: int, fail: bool = False) -> str:
    """A run of m.bin storing plots/roc.png (content from seed); returns the artifact's oid."""
    make_file(repo / "plots" / "roc.png", 200, seed=seed)
    oid = ""
    try:
        with mvc.run("m.bin") as run:
            oid = run.artifact("roc", "plots/roc.png")["oid"]
            make_file(repo / "m.bin", 100, seed=seed)
            if fail:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    return oid


def test_artifacts_are_pushed_fetched_verified_and_kept_by_gc(repo, mvc_cli, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    mvc_cli("remote", "add", "origin", str(store), "--default")
    lost = artifact_run(repo, 1, fail=True)  # a failed run: its artifact is in the cache, named by nothing
    kept = artifact_run(repo, 2)
    assert lost != kept
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "train")
    r = mvc.push()
    assert r["uploaded"] == 2  # the model and its artifact
    odb = mvc.Repo.find().odb
    assert not odb.missing([lost, kept])

    out = json.loads(mvc_cli("gc", "--grace", "0", "--force", "--json", "-q").stdout)
    assert odb.exists(kept) and not odb.exists(lost)
    assert out["objects"] == 1 and out["kept"] == 2  # the lost artifact went; the model and its artifact stay
    assert mvc.verify()["problems"] == []

    path = odb.path(kept)  # lose it locally: fetch brings it back from the remote
    os.chmod(os.path.dirname(path), 0o755)
    os.unlink(path)
    mvc.fetch()
    assert odb.read_bytes(kept) == (repo / "plots" / "roc.png").read_bytes()


def test_a_pointer_naming_a_bad_artifact_oid_is_not_fatal(repo, mvc_cli):
    make_file(repo / "m.bin", 100)
    mvc.add("m.bin", meta={"artifacts": {"roc": {"path": "x.png", "oid": "nonsense", "size": 3}, "b": 5}})
    git(repo, "commit", "-q", "-m", "m")
    mvc_cli("gc", "--grace", "0", "-q")
    from mvc.repo.selection import Wanted, load_pointer

    w = Wanted()
    w.add_pointer("m.bin.mvc", load_pointer(mvc.Repo.find(), "m.bin.mvc"))
    assert list(w.files) == [pointer(repo / "m.bin")["oid"]]


def test_an_artifact_is_freshened_as_the_runs_pointer_names_it(repo):
    """run.artifact stores a file when the run records it, maybe hours before the run's pointer names it: the
    add that writes the pointer freshens it as it does the model (a gc with a short grace between sees it in use);
    one a gc deleted meanwhile is an error naming it, not a pointer to a missing object."""
    import time

    odb = mvc.Repo.find().odb
    make_file(repo / "plots" / "roc.png", 200, seed=5)
    with mvc.run("m.bin") as run:
        oid = run.artifact("roc", "plots/roc.png")["oid"]
        make_file(repo / "m.bin", 100, seed=5)
        old = time.time() - 30 * 86400
        os.utime(odb.path(oid), (old, old))  # stored long ago
    assert time.time() - os.stat(odb.path(oid)).st_mtime < 60
    make_file(repo / "plots" / "roc.png", 200, seed=6)
    with mvc.run("m.bin") as run:  # a gc takes the artifact meanwhile: stored again from its file
        oid = run.artifact("roc", "plots/roc.png")["oid"]
        make_file(repo / "m.bin", 100, seed=6)
        path = odb.path(oid)
        os.chmod(os.path.dirname(path), 0o755)
        os.unlink(path)
    assert odb.exists(oid)
    make_file(repo / "plots" / "roc.png", 200, seed=7)
    with pytest.raises(mvc.errors.ObjectMissing, match="artifact roc"), mvc.run("m.bin") as run:
        oid = run.artifact("roc", "plots/roc.png")["oid"]
        make_file(repo / "m.bin", 100, seed=7)
        path = odb.path(oid)
        os.chmod(os.path.dirname(path), 0o755)
        os.unlink(path)  # a gc took it meanwhile
        make_file(repo / "plots" / "roc.png", 200, seed=8)  # and its file holds another plot now


def test_a_data_url_is_recorded_without_its_credentials(data):
    """The record is committed: a user and password in the URL, or a signed URL's signature, must not be."""
    with mvc.run("models/churn.pkl") as run:
        run.data("events", "https://alice:RUNSECRET@data.example/events/")
        run.data("lake", "s3://AKIAIOSFODNN7EXAMPLE:RUN/SECRET2@lake/events/")
        run.data("signed", "https://h.example/x.csv?X-Amz-Signature=SIGSECRET&token=TOKSECRET&part=3")
        make_file(data / "models" / "churn.pkl", 1000, seed=1)
    text = (data / "models" / "churn.pkl.mvc").read_text()
    assert "SECRET" not in text, text
    urls = pointer(data / "models" / "churn.pkl")["meta"]["data"]
    assert urls["events"]["url"] == "https://***@data.example/events/"
    assert urls["signed"]["url"] == "https://h.example/x.csv?X-Amz-Signature=***&token=***&part=3"


def test_a_metric_beyond_64_bits_says_what_a_metric_can_be(repo: Path):
    """A metric cannot be a string: its refusal says float(value), or a param or a key of its own as a string."""
    from mvc.api import training

    with pytest.raises(mvc.errors.MetaError) as e:
        training.check_metric("steps", 2**70)
    assert "float(value)" in str(e.value) and "run.param" in str(e.value) and "pass it as a string" not in str(e.value)
    with pytest.raises(mvc.errors.MetaError, match="pass it as a string"):
        training.check_value("seed", 2**70)  # a param may be one
