"""mvc metrics NAME and the metrics of mvc registry NAME: versions side by side, read from each version's
pointer at its commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git, make_file

import mvc


def train(repo: Path, seed: int, metrics: dict, params: dict | None = None, commit: bool = True) -> None:
    make_file(repo / "models" / "churn.pkl", 200 + seed, seed=seed)
    with mvc.run("models/churn.pkl", name="churn", params=params or {}) as run:
        run.metrics(metrics)
    if commit:
        git(repo, "commit", "-q", "-m", f"train {seed}")


@pytest.fixture
def three(repo: Path, mvc_cli) -> Path:
    """churn v0.0.1 (#prod), v0.0.2, v0.0.3 (#dev): f1 in all three, auc from v0.0.2 on, loss in v0.0.1 only."""
    train(repo, 1, {"f1": 0.8, "loss": 0.5}, {"lr": 0.1})
    mvc_cli("register", "churn", "-q")
    train(repo, 2, {"f1": 0.8125, "auc": 0.9}, {"lr": 0.05, "depth": 6})
    mvc_cli("register", "churn", "-q")
    train(repo, 3, {"f1": 0.85, "auc": 0.93}, {"lr": 0.05, "depth": 8})
    mvc_cli("register", "churn", "-q")
    mvc_cli("assign", "churn", "prod", "--version", "v0.0.1", "-q")
    mvc_cli("assign", "churn", "dev", "-q")
    return repo


def cells(line: str, header: str) -> dict[str, str]:
    """A table line cut at its header's column starts: {column: its cell, stripped}."""
    names = header.split()
    starts = [header.index(n) for n in names]
    ends = [*starts[1:], None]
    return {n: line[a:b].strip() for n, a, b in zip(names, starts, ends, strict=True)}


def test_metrics_table_newest_first_with_stages_and_blanks(three, mvc_cli):
    lines = mvc_cli("metrics", "churn").stdout.splitlines()
    header = lines[0]
    assert header.split() == ["version", "commit", "date", "stages", "auc", "f1", "loss"]
    rows = [cells(line, header) for line in lines[1:]]
    assert [r["version"] for r in rows] == ["v0.0.3", "v0.0.2", "v0.0.1"]  # the work tree is v0.0.3: no row
    assert [r["stages"] for r in rows] == ["#dev", "-", "#prod"]
    assert [r["f1"] for r in rows] == ["0.85", "0.8125", "0.8"]
    assert [r["auc"] for r in rows] == ["0.93", "0.9", ""]  # missing: blank
    assert [r["loss"] for r in rows] == ["", "", "0.5"]
    assert rows[0]["commit"] == git(three, "rev-parse", "--short=7", "HEAD").strip()


def test_metrics_keys_and_params(three, mvc_cli):
    lines = mvc_cli("metrics", "churn", "--keys", "loss,f1").stdout.splitlines()
    assert lines[0].split() == ["version", "commit", "date", "stages", "loss", "f1"]
    lines = mvc_cli("metrics", "churn", "-p").stdout.splitlines()
    assert lines[0].split()[-3:] == ["loss", "params.depth", "params.lr"]
    rows = [cells(line, lines[0]) for line in lines[1:]]
    assert [r["params.depth"] for r in rows] == ["8", "6", ""]
    lines = mvc_cli("metrics", "churn", "-k", "f1,lr", "-p").stdout.splitlines()
    assert lines[0].split()[4:] == ["f1", "params.lr"]


def test_metrics_json(three, mvc_cli):
    rows = json.loads(mvc_cli("metrics", "churn", "--json").stdout)
    assert [r["version"] for r in rows] == ["v0.0.3", "v0.0.2", "v0.0.1"]
    assert set(rows[0]) == {"version", "commit", "date", "stages", "active", "metrics", "params"}
    assert rows[0]["stages"] == ["dev"] and rows[2]["stages"] == ["prod"]
    assert rows[2]["metrics"] == {"f1": 0.8, "loss": 0.5} and rows[2]["params"] == {"lr": 0.1}
    assert rows[0]["commit"] == git(three, "rev-parse", "HEAD").strip()
    assert rows[0]["date"].startswith("20")
    keyed = json.loads(mvc_cli("metrics", "churn", "--json", "--keys", "auc,lr").stdout)
    assert keyed[2]["metrics"] == {} and keyed[2]["params"] == {"lr": 0.1} and keyed[0]["metrics"] == {"auc": 0.93}
    assert mvc.api.metrics.metrics("churn") == rows  # the API returns what --json prints (no NaN here)


def test_the_work_tree_row_and_deregistered_versions(three, mvc_cli):
    train(three, 4, {"f1": 0.9, "recall": float("nan")}, commit=False)
    mvc_cli("deprecate", "churn", "v0.0.2", "-q")
    lines = mvc_cli("metrics", "churn").stdout.splitlines()
    rows = [cells(line, lines[0]) for line in lines[1:]]
    assert rows[0]["version"] == "(work tree)" and rows[0]["f1"] == "0.9" and rows[0]["recall"] == "nan"
    assert rows[0]["commit"] == ""
    assert rows[2]["version"] == "v0.0.2" and rows[2]["stages"] == "deregistered"
    first = json.loads(mvc_cli("metrics", "churn", "--json").stdout)[0]
    assert first["worktree"] is True and first["version"] is None and first["metrics"] == {"f1": 0.9, "recall": None}


def test_a_model_only_the_work_tree_names(repo, mvc_cli):
    train(repo, 1, {"f1": 0.7}, commit=False)
    lines = mvc_cli("metrics", "churn").stdout.splitlines()
    assert lines[0].split() == ["version", "commit", "date", "stages", "f1"] and len(lines) == 2
    assert cells(lines[1], lines[0]) == {"version": "(work tree)", "commit": "", "date": "", "stages": "", "f1": "0.7"}


def test_keys_no_version_records_are_said(three, mvc_cli, mvc_error):
    """A typo in --keys is no silently missing (metrics) or empty (registry NAME) column: a key some version records
    is shown and the others are named on stderr; when none is recorded, one error names the keys that are."""
    for command in ("metrics", "registry"):
        r = mvc_cli(command, "churn", "--keys", "auc,nosuch")
        header = r.stdout.splitlines()[0 if command == "metrics" else 1].split()
        assert header[4:] == ["auc"], r.stdout
        assert r.stderr == "mvc: not shown: no version of churn records 'nosuch'\n"
        line = mvc_error(command, "churn", "--keys", "nosuch,typo", words=("no version of churn records",))
        assert "'nosuch', 'typo'" in line and "metrics auc, f1, loss" in line and "pick --keys from those" in line
    assert "params depth, lr" in mvc_error("metrics", "churn", "-k", "nosuch")  # metrics' keys also pick params
    r = mvc_cli("metrics", "churn", "--keys", "auc,lr")  # a param, without --params
    assert (
        r.stdout.splitlines()[0].split()[4:] == ["auc"] and r.stderr == "mvc: not shown: 'lr' is a param (--params)\n"
    )
    assert json.loads(mvc_cli("registry", "churn", "-k", "f1,nosuch", "--json").stdout)["metric_keys"] == ["f1"]
    with pytest.raises(mvc.errors.RegistryError, match="no version of churn records 'nosuch'"):
        mvc.api.metrics.metrics("churn", keys=["nosuch"])


def test_unknown_model(three, mvc_error):
    mvc_error("metrics", "nope", words=("no model named 'nope'", "models: churn"))


# -- mvc registry NAME -----------------------------------------------------------------------------
def test_registry_name_shows_the_latest_versions_first_metrics(three, mvc_cli):
    lines = mvc_cli("registry", "churn").stdout.splitlines()
    assert lines[0] == "model churn (models/churn.pkl), latest v0.0.3"
    assert lines[1].split() == ["version", "commit", "date", "stages", "auc", "f1"]  # v0.0.3's metrics, sorted
    rows = [cells(line, lines[1]) for line in lines[2:]]
    assert [(r["version"], r["stages"], r["auc"], r["f1"]) for r in rows] == [
        ("v0.0.3", "#dev", "0.93", "0.85"),
        ("v0.0.2", "-", "0.9", "0.8125"),
        ("v0.0.1", "#prod", "", "0.8"),
    ]
    lines = mvc_cli("registry", "churn", "--keys", "loss").stdout.splitlines()
    assert lines[1].split()[-1] == "loss" and lines[-1].split()[-1] == "0.5"
    assert mvc_cli("registry", "churn", "--keys", "").stdout.splitlines()[1].split()[-1] == "stages"


def test_registry_name_takes_its_columns_from_the_newest_version_that_has_metrics(three, mvc_cli):
    """The latest version registered by hand on a commit where the model records no metrics (GTO's tag on a commit
    without its pointer, say): the columns are the newest readable version's, not none."""
    git(three, "commit", "-q", "--allow-empty", "-m", "no model here")
    git(three, "rm", "-q", "models/churn.pkl.mvc")
    git(three, "commit", "-q", "-m", "model gone")
    git(three, "tag", "-a", "churn@v1.0.0", "-m", "Registering artifact churn version v1.0.0")
    header = mvc_cli("registry", "churn").stdout.splitlines()[1].split()
    assert header == ["version", "commit", "date", "stages", "auc", "f1"]


def test_registry_name_json(three, mvc_cli, mvc_error):
    m = json.loads(mvc_cli("registry", "churn", "--json").stdout)
    assert m["metric_keys"] == ["auc", "f1"]
    assert [v["metrics"] for v in m["versions"]] == [{"auc": 0.93, "f1": 0.85}, {"auc": 0.9, "f1": 0.8125}, {"f1": 0.8}]
    listed = json.loads(mvc_cli("registry", "--json").stdout)[0]
    assert {k: v for k, v in m.items() if k != "metric_keys"} == {
        **listed,
        "versions": [{**v, "metrics": w["metrics"]} for v, w in zip(listed["versions"], m["versions"], strict=True)],
    }
    keyed = json.loads(mvc_cli("registry", "churn", "--json", "-k", "loss").stdout)
    assert keyed["metric_keys"] == ["loss"] and [v["metrics"] for v in keyed["versions"]] == [{}, {}, {"loss": 0.5}]
    r = mvc_cli("registry", "--keys", "f1", ok=False)
    assert r.exit_code == 2 and "--keys goes with NAME" in r.output
