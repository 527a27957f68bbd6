"""The registry with real git: register, assign, deprecate, registry, log, diff, model revisions.

Tags made by hand with GTO's grammar (``git tag -a``) and explicit tagger dates check that mvc reads
what GTO writes and orders it as docs/FORMAT.md ("Registry tags") says.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import git, make_file, run_mvc

import mvc
from mvc.errors import RegistryError

T0 = 1_700_000_000  # a tagger time before any test's commits: hand-made history comes first


def tag(
    repo: Path,
    name: str,
    rev: str = "HEAD",
    message: str = "made by hand",
    when: int | None = None,
    lightweight: bool = False,
) -> None:
    env = dict(os.environ)
    if when is not None:
        env["GIT_COMMITTER_DATE"] = f"{when} +0000"
    args = ["tag", name, rev] if lightweight else ["tag", "-a", name, "-m", message, rev]
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def commit_model(
    repo: Path,
    seed: int,
    *,
    path: str = "models/churn.pt",
    name: str | None = "churn",
    meta: dict | None = None,
    size: int = 1000,
    msg: str | None = None,
) -> str:
    make_file(repo / path, size + seed, seed=seed)
    mvc.add([str(repo / path)], meta=meta, name=name)
    git(repo, "commit", "-q", "-m", msg or f"train {seed}")
    return git(repo, "rev-parse", "HEAD").strip()


def error(mvc_cli, *args: str, words: tuple[str, ...] = ()) -> str:
    """A user error: exit 1, one 'error: …' line on stderr, nothing on stdout."""
    r = mvc_cli(*args, ok=False)
    lines = r.stderr.splitlines()
    assert r.exit_code == 1, r.output
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert r.stdout == ""
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    return lines[0]


def state(name: str = "churn") -> dict:
    return {m["name"]: m for m in mvc.registry(deprecated=True)}[name]


def stages(name: str = "churn") -> dict[str, str]:
    return {s: d["version"] for s, d in state(name)["stages"].items()}


def tag_names(repo: Path) -> list[str]:
    return git(repo, "tag", "-l").split()


@pytest.fixture
def model(repo: Path) -> Path:
    """A repo with the named model churn (models/churn.pt) committed once."""
    commit_model(repo, 1, meta={"accuracy": 0.8})
    return repo


# -- add --name -------------------------------------------------------------------------------
def test_add_name_writes_and_stages_the_mapping(repo, mvc_cli):
    make_file(repo / "models" / "churn.pt", 100)
    r = mvc_cli("add", "models/churn.pt", "--name", "churn")
    assert "added models/churn.pt" in r.stdout
    assert '[models.churn]\npath = "models/churn.pt"' in (repo / ".mvc" / "config.toml").read_text()
    assert ".mvc/config.toml" in git(repo, "diff", "--cached", "--name-only")
    make_file(repo / "other.pt", 10)
    r = mvc_cli("add", "other.pt", "--name", "churn")
    assert "model churn now names other.pt (was models/churn.pt)" in r.stdout


def test_add_name_refusals(repo, mvc_cli):
    make_file(repo / "a.pt", 10)
    make_file(repo / "b.pt", 10)
    error(mvc_cli, "add", "a.pt", "--name", "Churn", words=("invalid model name",))
    error(mvc_cli, "add", "a.pt", "b.pt", "--name", "churn", words=("one model",))
    assert "models" not in (repo / ".mvc" / "config.toml").read_text()


# -- register ---------------------------------------------------------------------------------
def test_register_first_then_bumps(model, mvc_cli):
    r = mvc_cli("register", "churn")
    assert "created tag churn@v0.0.1" in r.stdout and "git push origin churn@v0.0.1" in r.stdout
    commit_model(model, 2)
    mvc_cli("register", "churn")
    commit_model(model, 3)
    mvc_cli("register", "churn", "--bump-minor")
    commit_model(model, 4)
    mvc_cli("register", "churn", "--bump-major")
    commit_model(model, 5)
    mvc_cli("register", "churn", "2.5.0")  # a missing 'v' is added
    commit_model(model, 6)
    mvc_cli("register", "churn", "--bump-patch", "-m", "patched")
    assert sorted(tag_names(model)) == [
        "churn@v0.0.1",
        "churn@v0.0.2",
        "churn@v0.1.0",
        "churn@v1.0.0",
        "churn@v2.5.0",
        "churn@v2.5.1",
    ]
    assert state()["latest"]["version"] == "v2.5.1"
    assert git(model, "cat-file", "-t", "churn@v2.5.1").strip() == "tag"


def test_registering_the_same_weights_again_warns(model, mvc_cli):
    """A commit whose model pointer is the latest version's (retrained, but not added again): registered, with
    a warning on stderr, -q included; different weights, or no version before, say nothing."""
    r = mvc_cli("register", "churn")
    assert r.stderr == ""
    git(model, "commit", "-q", "--allow-empty", "-m", "code only")
    r = mvc_cli("register", "churn", "-q")
    assert r.stdout == "" and "churn@v0.0.2" in tag_names(model)
    assert r.stderr.startswith("mvc: churn@v0.0.2 holds the same weights as churn@v0.0.1 (")
    assert "run 'mvc add models/churn.pt', commit, and register that commit" in r.stderr
    commit_model(model, 2)
    assert mvc.register("churn")["same_as"] is None
    git(model, "commit", "-q", "--allow-empty", "-m", "code only")
    r = mvc_cli("assign", "churn", "dev")  # registers HEAD first: the same warning
    assert "created tag churn@v0.0.4" in r.stdout and "same weights as churn@v0.0.3" in r.stderr


def test_register_annotation_and_tagger(model, mvc_cli):
    mvc_cli("register", "churn", "-m", "first good model")
    raw = git(model, "cat-file", "-p", "churn@v0.0.1")
    assert "tagger Test User <test@example.com>" in raw
    body = raw.split("\n\n", 1)[1]
    ptr = mvc.ls()[0]
    assert body == f"first good model\n\nmvc-path: models/churn.pt\nmvc-oid: {ptr['oid']}\nmvc-size: {ptr['size']}\n"
    v = state()["versions"][0]
    assert (v["oid"], v["size"], v["message"], v["tagger"]) == (
        ptr["oid"],
        ptr["size"],
        "first good model",
        "Test User",
    )


def test_register_at_rev_and_refusals(model, mvc_cli):
    first = git(model, "rev-parse", "HEAD").strip()
    commit_model(model, 2)
    r = mvc_cli("register", "churn", "v1.0.0", "--rev", "HEAD~1")
    assert first[:7] in r.stdout
    error(mvc_cli, "register", "churn", "v1.0.0", words=("exists already",))
    error(mvc_cli, "register", "churn", "--rev", "HEAD~1", words=("already registered", "v1.0.0"))
    error(mvc_cli, "register", "churn", "v1.2", words=("invalid version",))
    error(mvc_cli, "register", "Churn", words=("invalid model name",))
    error(mvc_cli, "register", "fraud", words=("not a model", "--name fraud"))
    error(mvc_cli, "register", "churn", "--rev", "HEAD~2", words=("not a model",))  # before mvc add --name
    error(mvc_cli, "register", "churn", "--rev", "nope", words=("unknown revision",))
    error(mvc_cli, "register", "churn", "v3.0.0", "--bump-minor", words=("not both",))
    assert tag_names(model) == ["churn@v1.0.0"]


def test_register_refuses_a_commit_where_the_model_is_not_tracked(model, mvc_cli):
    git(model, "rm", "-q", "models/churn.pt.mvc")
    git(model, "commit", "-q", "-m", "drop the pointer")
    error(mvc_cli, "register", "churn", words=("not tracked", "models/churn.pt"))


# -- assign and promotion rules ---------------------------------------------------------------
def test_assign_registers_first_and_counts(model, mvc_cli):
    r = mvc_cli("assign", "churn", "dev")
    assert "created tag churn@v0.0.1" in r.stdout and "created tag churn#dev#1" in r.stdout
    assert "git push origin 'churn#dev#1'" in r.stdout
    mvc_cli("assign", "churn", "prod", "--version", "v0.0.1")
    commit_model(model, 2)
    mvc_cli("register", "churn")
    mvc_cli("assign", "churn", "dev", "--version", "0.0.2")
    assert sorted(tag_names(model)) == ["churn#dev#1", "churn#dev#3", "churn#prod#2", "churn@v0.0.1", "churn@v0.0.2"]
    assert stages() == {"dev": "v0.0.2", "prod": "v0.0.1"}
    raw = git(model, "cat-file", "-p", "churn#dev#3")
    assert "Assigning stage dev to artifact churn version v0.0.2" in raw and "mvc-oid: xxh128:" in raw


def test_assign_refusals(model, mvc_cli):
    mvc_cli("assign", "churn", "dev")
    error(mvc_cli, "assign", "churn", "dev", words=("already points to v0.0.1",))
    error(mvc_cli, "assign", "churn", "prod", "--version", "v9.0.0", words=("no version v9.0.0",))
    error(mvc_cli, "assign", "churn", "prod", "--version", "v0.0.1", "--rev", "HEAD", words=("not both",))
    error(mvc_cli, "assign", "churn", "Prod", words=("invalid stage name",))
    error(mvc_cli, "assign", "fraud", "dev", words=("not a model",))
    mvc_cli("deprecate", "churn", "v0.0.1")
    error(mvc_cli, "assign", "churn", "prod", "--version", "v0.0.1", words=("deregistered",))
    error(mvc_cli, "assign", "churn", "prod", words=("deregistered",))


def test_stage_reassigned_and_cancelled(model, mvc_cli):
    mvc_cli("assign", "churn", "prod")  # v0.0.1
    commit_model(model, 2)
    mvc_cli("assign", "churn", "prod")  # v0.0.2
    assert stages() == {"prod": "v0.0.2"}
    mvc_cli("assign", "churn", "prod", "--version", "v0.0.1")  # roll back
    assert stages() == {"prod": "v0.0.1"}
    r = mvc_cli("deprecate", "churn", "v0.0.1", "prod")
    assert "churn#prod!#4" in r.stdout
    assert stages() == {"prod": "v0.0.2"}  # v0.0.2 still holds prod: it was never cancelled (as in GTO)
    mvc_cli("deprecate", "churn", "v0.0.2", "prod")
    assert stages() == {}
    error(mvc_cli, "deprecate", "churn", "v0.0.2", "prod", words=("not in stage prod",))
    assert state()["latest"]["version"] == "v0.0.2"


@pytest.fixture
def ordered(model: Path) -> Path:
    with open(model / ".mvc" / "config.toml", "a") as f:
        f.write('\n[stages]\norder = ["dev", "staging", "prod"]\n\n[stages.prod]\nrequire = ["accuracy >= 0.9"]\n')
    return model


def test_promotion_order(ordered, mvc_cli):
    error(mvc_cli, "assign", "churn", "staging", words=("not in stage dev", "before staging", "--force"))
    assert tag_names(ordered) == []  # a refused assignment registers nothing
    error(mvc_cli, "assign", "churn", "qa", words=("not in the [stages] order", "dev, staging, prod"))
    mvc_cli("assign", "churn", "dev")
    mvc_cli("assign", "churn", "staging")
    mvc_cli("deprecate", "churn", "v0.0.1", "staging")
    error(mvc_cli, "assign", "churn", "prod", words=("not in stage staging",))
    mvc_cli("assign", "churn", "qa", "--force")
    assert stages() == {"dev": "v0.0.1", "qa": "v0.0.1"}


def test_promotion_gate(ordered, mvc_cli):
    mvc_cli("assign", "churn", "dev")
    mvc_cli("assign", "churn", "staging")
    error(mvc_cli, "assign", "churn", "prod", words=("accuracy >= 0.9", "accuracy is 0.8", "--force"))
    commit_model(ordered, 2, meta={"accuracy": 0.95})
    mvc_cli("assign", "churn", "dev")
    mvc_cli("assign", "churn", "staging")
    mvc_cli("assign", "churn", "prod")
    assert stages() == {"dev": "v0.0.2", "staging": "v0.0.2", "prod": "v0.0.2"}
    mvc_cli("assign", "churn", "prod", "--version", "v0.0.1", "--force")
    assert stages()["prod"] == "v0.0.1"


def test_gate_rules():
    from mvc.errors import ConfigError
    from mvc.format.pointer import check_gate

    meta = {"accuracy": 0.93, "epochs": 10, "ok": True, "data": "2024-06", "m": {"f1": 0.7}}
    assert check_gate("accuracy >= 0.9", meta) is None
    assert check_gate("epochs<10", meta) == "epochs is 10"
    assert check_gate("ok == true", meta) is None
    assert check_gate("data == '2024-06'", meta) is None
    assert check_gate("data != 2024-06", meta) == "data is '2024-06'"
    assert check_gate("m.f1 > 0.5", meta) is None
    assert "no meta loss" in check_gate("loss < 1", meta)
    assert "cannot be compared" in check_gate("data > 3", meta)
    with pytest.raises(ConfigError, match="KEY OP VALUE"):
        check_gate("accuracy is high", meta)


def test_bad_stages_config(model, mvc_cli):
    with open(model / ".mvc" / "config.toml", "a") as f:
        f.write('\n[stages]\norder = "dev"\n')
    error(mvc_cli, "assign", "churn", "dev", words=("[stages]", "order"))


# -- deprecate --------------------------------------------------------------------------------
def test_deregister_version(model, mvc_cli):
    mvc_cli("assign", "churn", "prod")
    commit_model(model, 2)
    mvc_cli("assign", "churn", "prod")
    r = mvc_cli("deprecate", "churn", "v0.0.2")
    assert "created tag churn@v0.0.2!" in r.stdout
    s = state()
    assert s["latest"]["version"] == "v0.0.1"
    assert stages() == {"prod": "v0.0.1"}  # the stage falls back to the last live assignment
    error(mvc_cli, "deprecate", "churn", "v0.0.2", words=("deregistered already",))
    error(mvc_cli, "deprecate", "churn", "v7.0.0", words=("no version",))
    commit_model(model, 3)
    assert mvc.register("churn")["version"] == "v0.0.3"  # never reuses a deregistered number


def test_deprecate_model_and_revive(model, mvc_cli):
    mvc_cli("register", "churn")
    r = mvc_cli("deprecate", "churn")
    assert "created tag churn@deprecated" in r.stdout
    assert mvc.registry() == []
    assert "(deprecated)" in mvc_cli("registry", "--deprecated").stdout
    error(mvc_cli, "deprecate", "churn", words=("deprecated already",))
    error(mvc_cli, "ls", "--rev", "churn@latest", words=("deprecated",))
    commit_model(model, 2)
    mvc_cli("register", "churn")  # a new version brings the model back
    assert [m["name"] for m in mvc.registry()] == ["churn"]
    mvc_cli("deprecate", "churn")  # the simple tag exists: this one carries a counter
    assert "churn@deprecated#1" in tag_names(model)
    assert mvc.registry() == []
    text = mvc_cli("registry", "churn").stdout
    assert "deprecated (its revisions do not resolve until a later registry tag of it)" in text
    mvc_cli("deprecate", "churn", "v0.0.1")  # any later registry tag, a deregistration too, as GTO's is_active
    assert [(m["name"], m["latest"]["version"]) for m in mvc.registry()] == [("churn", "v0.0.2")]
    error(mvc_cli, "deprecate", "fraud", words=("no model named 'fraud'",))


def test_tags_are_never_moved_or_deleted(model, mvc_cli):
    mvc_cli("assign", "churn", "prod")
    before = git(model, "for-each-ref", "--format=%(refname) %(objectname)", "refs/tags")
    commit_model(model, 2)
    mvc_cli("assign", "churn", "prod")
    mvc_cli("deprecate", "churn", "v0.0.1", "prod")
    mvc_cli("deprecate", "churn", "v0.0.1")
    mvc_cli("deprecate", "churn")
    after = git(model, "for-each-ref", "--format=%(refname) %(objectname)", "refs/tags")
    assert set(before.splitlines()) <= set(after.splitlines())


# -- tags written by GTO (or by hand in its grammar) ------------------------------------------
def test_reads_hand_made_gto_tags(model, mvc_cli):
    c1 = git(model, "rev-parse", "HEAD").strip()
    c2 = commit_model(model, 2)
    tag(model, "churn@v1.0.0", c1, "Registering artifact churn version v1.0.0", T0)
    tag(model, "churn@v1.1.0", c2, "plain message", T0 + 10)
    tag(model, "churn#prod#1", c1, when=T0 + 20)
    tag(model, "churn#staging", c2, when=T0 + 30)  # old GTO: no counter
    tag(model, "churn#prod#2", c2, when=T0 + 40)
    tag(model, "churn#prod#9", c1, lightweight=True)  # lightweight: ignored, but its counter counts
    tag(model, "v1.0", c1, when=T0)  # not a registry tag
    s = state()
    assert s["latest"]["version"] == "v1.1.0"
    assert stages() == {"prod": "v1.1.0", "staging": "v1.1.0"}
    v = {x["version"]: x for x in s["versions"]}
    assert v["v1.1.0"]["message"] == "plain message" and v["v1.1.0"]["oid"] == mvc.ls()[0]["oid"]  # its pointer's
    assert s["path"] == "models/churn.pt"  # no mvc annotation yet: the config at the tags' commits names it
    mvc_cli("assign", "churn", "prod", "--version", "v1.0.0")
    assert "churn#prod#10" in tag_names(model)
    assert stages()["prod"] == "v1.0.0"
    assert state()["path"] == "models/churn.pt"


def test_order_is_tagger_time_not_name(model):
    c1 = git(model, "rev-parse", "HEAD").strip()
    c2 = commit_model(model, 2)
    tag(model, "churn@v1.0.0", c1, when=T0)
    tag(model, "churn@v2.0.0", c2, when=T0 + 1)
    tag(model, "churn#prod#2", c1, when=T0 + 50)  # a smaller counter can still be the later tag
    tag(model, "churn#prod#5", c2, when=T0 + 40)
    assert stages() == {"prod": "v1.0.0"}
    tag(model, "churn#prod!#6", c1, when=T0 + 60)
    assert stages() == {"prod": "v2.0.0"}


def test_ties_in_one_second_follow_gto_priorities(model):
    c1 = git(model, "rev-parse", "HEAD").strip()
    tag(model, "churn@v1.0.0", c1, when=T0)
    tag(model, "churn#prod#1", c1, when=T0 + 5)
    tag(model, "churn#prod!#2", c1, when=T0 + 5)  # same second: the cancellation wins
    assert stages() == {}
    tag(model, "churn#dev!#3", c1, when=T0 + 6)
    tag(model, "churn#dev#4", c1, when=T0 + 6)  # even with the larger counter
    assert "dev" not in stages()
    tag(model, "churn@v1.0.0!", c1, when=T0 + 7)
    assert state()["latest"] is None
    tag(model, "churn@deprecated", c1, when=T0 + 8)
    assert state()["deprecated"] is False  # the versions' commits are later than the deprecation (GTO)


def test_deprecation_against_commit_times(gitrepo):
    """GTO counts each version's commit time as an event: a deprecation must be later than all."""
    import mvc as api

    api.init(str(gitrepo))
    make_file(gitrepo / "m.pt", 10)
    api.add([str(gitrepo / "m.pt")], name="m")
    env = dict(os.environ, GIT_COMMITTER_DATE=f"{T0} +0000", GIT_AUTHOR_DATE=f"{T0} +0000")
    subprocess.run(["git", "commit", "-q", "-m", "old"], cwd=gitrepo, env=env, check=True)
    tag(gitrepo, "m@v1.0.0", when=T0 + 10)
    tag(gitrepo, "m@deprecated", when=T0 + 10)  # same second as the registration: not deprecated
    assert [m["name"] for m in api.registry()] == ["m"]
    tag(gitrepo, "m@deprecated#1", when=T0 + 11)
    assert api.registry() == []


def test_unregistered_commit_with_a_stage_is_a_commit_version(model, mvc_cli):
    c1 = git(model, "rev-parse", "HEAD").strip()
    tag(model, "churn#prod#1", c1, when=T0)  # GTO --skip-registration
    s = state()
    assert s["latest"] is None and s["stages"]["prod"]["version"] == c1
    assert "#prod" in mvc_cli("registry").stdout and c1[:7] in mvc_cli("registry").stdout
    tag(model, "churn#prod!#2", c1, when=T0 + 1)  # GTO cannot cancel a stage of an unregistered commit
    assert stages() == {"prod": c1}
    error(mvc_cli, "deprecate", "churn", c1, "prod", words=("not a registered version", "register it first"))
    mvc_cli("register", "churn", "v1.0.0")  # the stage tags now belong to the registered version (as in GTO)
    assert stages() == {}
    mvc_cli("assign", "churn", "prod")
    assert stages() == {"prod": "v1.0.0"}


def test_monorepo_names_and_other_tags(gitrepo, mvc_cli):
    git(gitrepo, "commit", "-q", "--allow-empty", "-m", "x")
    tag(gitrepo, "models/dir=churn@v1.0.0", when=T0)
    tag(gitrepo, "release-1", when=T0)
    tag(gitrepo, "churn@created", when=T0)
    out = json.loads(mvc_cli("registry", "--json").stdout)  # works without 'mvc init'
    assert [(m["name"], m["latest"]["version"]) for m in out] == [("models/dir:churn", "v1.0.0")]


def test_registry_reads_tags_only_including_packed_refs(model, mvc_cli):
    mvc_cli("assign", "churn", "dev")
    git(model, "pack-refs", "--all")
    assert not (model / ".git" / "refs" / "tags" / "churn@v0.0.1").exists()
    commit_model(model, 2)
    mvc_cli("assign", "churn", "dev")  # one loose, the others packed
    for p in ("models", ".mvc"):
        subprocess.run(["rm", "-rf", str(model / p)], check=True)
    out = mvc_cli("registry").stdout.splitlines()
    assert out[0].split() == ["name", "latest", "#dev", "path"]
    assert out[1].split() == ["churn", "v0.0.2", "v0.0.2", "models/churn.pt"]


def test_registry_json_and_text(model, mvc_cli):
    assert "no registered models yet" in mvc_cli("registry").stdout
    mvc_cli("assign", "churn", "prod")
    commit_model(model, 2)
    mvc_cli("assign", "churn", "dev")
    rows = json.loads(mvc_cli("registry", "--json").stdout)
    assert len(rows) == 1
    m = rows[0]
    assert m["latest"]["version"] == "v0.0.2" and m["deprecated"] is False
    assert {s: d["version"] for s, d in m["stages"].items()} == {"prod": "v0.0.1", "dev": "v0.0.2"}
    assert m["stages"]["dev"]["tag"] == "churn#dev#2"
    assert [(v["version"], v["stages"]) for v in m["versions"]] == [("v0.0.2", ["dev"]), ("v0.0.1", ["prod"])]
    text = mvc_cli("registry").stdout.splitlines()
    assert text[0].split() == ["name", "latest", "#prod", "#dev", "path"]
    assert text[1].split() == ["churn", "v0.0.2", "v0.0.1", "v0.0.2", "models/churn.pt"]
    with open(model / ".mvc" / "config.toml", "a") as f:  # the stages' order, where the config sets one
        f.write('\n[stages]\norder = ["dev", "staging", "prod"]\n')
    text = mvc_cli("registry").stdout.splitlines()
    assert text[0].split() == ["name", "latest", "#dev", "#prod", "path"]
    assert text[1].split() == ["churn", "v0.0.2", "v0.0.2", "v0.0.1", "models/churn.pt"]


# -- model revisions --------------------------------------------------------------------------
def test_checkout_and_get_model_revisions(model, mvc_cli, tmp_path):
    v1 = (model / "models" / "churn.pt").read_bytes()
    mvc_cli("assign", "churn", "prod")
    commit_model(model, 2)
    mvc_cli("register", "churn", "v1.2.0")
    v2 = (model / "models" / "churn.pt").read_bytes()
    r = mvc_cli("checkout", "churn#prod")
    assert "restored models/churn.pt" in r.stdout
    assert (model / "models" / "churn.pt").read_bytes() == v1
    mvc_cli("checkout", "churn@latest")
    assert (model / "models" / "churn.pt").read_bytes() == v2
    mvc_cli("checkout", "churn@v0.0.1")
    assert (model / "models" / "churn.pt").read_bytes() == v1
    mvc_cli("get", "churn@v1.2.0", "-o", "out.bin")
    assert (model / "out.bin").read_bytes() == v2
    mvc_cli("get", "churn#prod", "-o", str(tmp_path / "prod.bin"))
    assert (tmp_path / "prod.bin").read_bytes() == v1
    error(mvc_cli, "get", "churn@v1.2.0", "-o", "x.bin", "--rev", "HEAD", words=("drop --rev",))
    error(mvc_cli, "checkout", "churn#staging", words=("points to no version",))
    error(mvc_cli, "checkout", "churn@v9.9.9", words=("no version v9.9.9",))
    error(mvc_cli, "checkout", "churn#prod", "models/churn.pt", words=("separate commands",))


def test_a_mistyped_model_revision_is_named_as_one(model, mvc_cli, tmp_path):
    """Text that names no tracked path but reads as a registry revision gets the registry's error, not 'run mvc add':
    a version not written vX.Y.Z, or a model this repository has no tag of. A tracked file with '@' in its name
    stays a path."""
    mvc_cli("register", "churn")
    for cmd in (["get", "churn@v9", "-o", "x.bin"], ["checkout", "churn@1.0.0"]):
        line = error(mvc_cli, *cmd, words=("no version or stage of model churn", "churn@vX.Y.Z"))
        assert "mvc add" not in line
    for cmd in (["get", "fraud@v1.0.0", "-o", "x.bin"], ["checkout", "fraud#prod"]):
        error(mvc_cli, *cmd, words=("no model named 'fraud'", "git fetch --tags"))
    error(mvc_cli, "checkout", "x@y", words=("not tracked by mvc",))
    error(mvc_cli, "ls", "--rev", "churn@v9", words=("no version or stage of model churn",))  # a --rev too
    error(mvc_cli, "diff", "fraud#prod", words=("no model named 'fraud'",))
    assert "models/churn.pt" in mvc_cli("ls", "--rev", "HEAD@{0}").stdout  # git's own '@' forms still work
    make_file(model / "churn@v9", 10)  # a file of that name: a path, not a revision
    mvc_cli("add", "churn@v9")
    (model / "churn@v9").unlink()
    mvc_cli("checkout", "churn@v9")
    assert (model / "churn@v9").exists()
    git(model, "add", "-A")
    git(model, "commit", "-q", "-m", "more")
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(model), str(bare))
    git(model, "push", "-q", str(bare), "--tags")
    error(mvc_cli, "get", "--repo", str(bare), "churn@v9.x", "-o", "y.bin", words=("no version or stage", "--repo"))


def test_checkout_model_revision_fetches_from_the_remote(model, mvc_cli, tmp_path):
    v1 = (model / "models" / "churn.pt").read_bytes()
    mvc_cli("assign", "churn", "prod")
    commit_model(model, 2)
    mvc_cli("remote", "add", "store", str(tmp_path / "store"), "--default")
    mvc_cli("push", "--rev", "churn#prod")
    for p in (model / ".mvc" / "cache").rglob("*"):
        if p.is_file():
            p.chmod(0o644)
            p.unlink()
    (model / "models" / "churn.pt").unlink()  # v2 is in no cache now: checkout would rightly refuse
    mvc_cli("checkout", "churn#prod")
    assert (model / "models" / "churn.pt").read_bytes() == v1


def test_checkout_model_revision_after_a_rename(model, mvc_cli):
    mvc_cli("register", "churn")
    v1 = (model / "models" / "churn.pt").read_bytes()
    git(model, "rm", "-q", "models/churn.pt.mvc")
    commit_model(model, 2, path="new/churn.pt")
    mvc_cli("checkout", "churn@v0.0.1")  # the model's path at that version
    assert (model / "models" / "churn.pt").read_bytes() == v1


def test_revisions_everywhere(model, mvc_cli):
    first = git(model, "rev-parse", "HEAD").strip()
    mvc_cli("assign", "churn", "prod")
    commit_model(model, 2)
    repo = mvc.Repo(str(model))
    assert repo.resolve("churn#prod") == first
    assert repo.resolve("churn@v0.0.1") == first
    out = json.loads(mvc_cli("ls", "--rev", "churn#prod", "--json").stdout)
    assert out[0]["size"] == 1001
    error(mvc_cli, "ls", "--rev", "fraud#prod", words=("no model named 'fraud'",))  # not a model nor git's
    mvc_cli("register", "churn")
    mvc_cli("deprecate", "churn", "v0.0.2")
    assert repo.resolve("churn@latest") == first
    error(mvc_cli, "get", "churn@v0.0.2", "-o", "x", words=("deregistered", "--rev "))


# -- log --------------------------------------------------------------------------------------
def test_log_name_follows_renames(model, mvc_cli):
    c1 = git(model, "rev-parse", "HEAD").strip()
    mvc_cli("assign", "churn", "prod")
    c2 = commit_model(model, 2, meta={"accuracy": 0.9}, msg="retrain with more data")
    git(model, "commit", "-q", "--allow-empty", "-m", "unrelated")
    git(model, "rm", "-q", "models/churn.pt.mvc")
    c3 = commit_model(model, 3, path="models/v2/churn.pt", msg="move the model")
    make_file(model / "readme.txt", 10)
    git(model, "add", "readme.txt")
    git(model, "commit", "-q", "-m", "docs")
    mvc_cli("register", "churn", "--rev", c3)
    rows = mvc.log("churn")
    assert [(r["commit"], r["change"], r["path"]) for r in rows] == [
        (c3, "moved", "models/v2/churn.pt"),
        (c2, "modified", "models/churn.pt"),
        (c1, "added", "models/churn.pt"),
    ]
    assert rows[0]["versions"] == ["v0.0.2"] and rows[2]["versions"] == ["v0.0.1"]
    assert rows[2]["stages"] == ["prod"]
    assert rows[1]["message"] == "retrain with more data" and rows[1]["author"] == "Test User"
    assert rows[1]["meta"] == {"accuracy": 0.9} and rows[1]["size"] == 1002 and rows[1]["oid"].startswith("xxh128:")
    text = mvc_cli("log", "churn").stdout
    assert f"commit {c3[:10]}" in text and "(v0.0.1, #prod)" in text and "accuracy=0.9" in text


def test_log_shows_a_version_registered_on_a_commit_that_did_not_change_the_model(model, mvc_cli):
    """A release of a code change (register on a commit where the pointer is unchanged): the log lists no line
    for that commit, and used to show the version nowhere; it is now named with the change it holds."""
    c1 = git(model, "rev-parse", "HEAD").strip()
    mvc_cli("register", "churn")  # v0.0.1 on c1
    git(model, "commit", "-q", "--allow-empty", "-m", "code only")
    c2 = git(model, "rev-parse", "HEAD").strip()
    mvc_cli("register", "churn", "-q")  # v0.0.2 on c2, the same pointer
    mvc_cli("assign", "churn", "prod", "-q")
    c3 = commit_model(model, 2)
    rows = mvc.log("churn")
    assert [(r["commit"], r["versions"], r["also"]) for r in rows] == [
        (c3, [], []),
        (c1, ["v0.0.1"], [{"commit": c2, "versions": ["v0.0.2"], "stages": ["prod"]}]),
    ]
    text = mvc_cli("log", "churn").stdout
    assert f"    also v0.0.2, #prod at {c2[:10]} (a later commit, the same model)" in text
    assert mvc.log("models/churn.pt")[1]["also"][0]["versions"] == ["v0.0.2"]  # by path too


def test_log_path(model, mvc_cli):
    c1 = git(model, "rev-parse", "HEAD").strip()
    c2 = commit_model(model, 2)
    git(model, "rm", "-q", "models/churn.pt.mvc")
    git(model, "commit", "-q", "-m", "stop tracking")
    c3 = git(model, "rev-parse", "HEAD").strip()
    rows = json.loads(mvc_cli("log", "models/churn.pt", "--json").stdout)
    assert [(r["commit"], r["change"]) for r in rows] == [(c3, "removed"), (c2, "modified"), (c1, "added")]
    assert rows[1]["names"] == ["churn"]
    assert [r["commit"] for r in mvc.log("churn", rev="HEAD~1")] == [c2, c1]
    error(mvc_cli, "log", "nothing/here.bin", words=("neither a model name nor a tracked path",))


def test_log_through_a_merge(model):
    c1 = git(model, "rev-parse", "HEAD").strip()
    git(model, "checkout", "-q", "-b", "side")
    c2 = commit_model(model, 2)
    git(model, "checkout", "-q", "main")
    git(model, "commit", "-q", "--allow-empty", "-m", "main moves on")
    git(model, "merge", "-q", "--no-edit", "side")
    assert [r["commit"] for r in mvc.log("churn")] == [c2, c1]


def test_log_lists_a_merge_that_threw_away_the_main_lines_change(model):
    """Both lines changed the model and the merge kept the other side: the model the main line holds from the
    merge on is not main's change listed just below it, so the merge is listed, as the change it is; a merge
    that only brings in the other side's change (main left the model alone) is not."""
    c1 = git(model, "rev-parse", "HEAD").strip()
    git(model, "checkout", "-q", "-b", "side")
    c2 = commit_model(model, 2)
    git(model, "checkout", "-q", "main")
    c3 = commit_model(model, 3)
    git(model, "merge", "-q", "--no-edit", "-s", "ours", "side")  # (the merge machinery aside: then theirs)
    git(model, "checkout", "side", "--", "models/churn.pt.mvc")
    git(model, "commit", "-q", "--amend", "--no-edit")
    merge = git(model, "rev-parse", "HEAD").strip()
    rows = mvc.log("churn")
    assert [(r["commit"], r["change"]) for r in rows] == [
        (merge, "modified"),
        (c3, "modified"),
        (c2, "modified"),
        (c1, "added"),
    ]
    assert rows[0]["oid"] == rows[2]["oid"] != rows[1]["oid"]


# -- diff -------------------------------------------------------------------------------------
def test_diff_head_against_work_tree(model, mvc_cli):
    assert mvc_cli("diff").stdout.strip() == "no model changed"
    make_file(model / "models" / "churn.pt", 3000, seed=9)
    mvc.add([str(model / "models" / "churn.pt")], meta={"accuracy": 0.91, "epochs": 3})
    make_file(model / "fraud.pt", 500)
    mvc.add([str(model / "fraud.pt")], name="fraud")
    rows = {r["path"]: r for r in mvc.diff()}
    churn, fraud = rows["models/churn.pt"], rows["fraud.pt"]
    assert churn["change"] == "modified" and churn["names"] == ["churn"]
    assert churn["size_change"] == 3000 - 1001
    assert churn["meta_changes"] == {"accuracy": [0.8, 0.91], "epochs": [None, 3]}
    assert fraud["change"] == "added" and fraud["names"] == ["fraud"] and fraud["old"] is None
    text = mvc_cli("diff").stdout
    assert "modified  models/churn.pt (churn)  1001 B -> 2.9 KiB (+2.0 KiB)" in text
    assert "accuracy: 0.8 -> 0.91" in text and "epochs: (none) -> 3" in text
    assert "added     fraud.pt (fraud)  500 B" in text


def test_diff_names_data_changed_in_the_work_tree_but_not_added(model, mvc_cli):
    """A weights file overwritten after mvc add: its pointer is HEAD's, but the diff against the work tree
    says the data changed (as dvc diff does) instead of "no model changed"."""
    make_file(model / "models" / "churn.pt", 1001, seed=5)  # the size of the committed one, other bytes
    rows = json.loads(mvc_cli("diff", "--json").stdout)
    assert [(r["change"], r["path"], r["names"], r["workspace"]) for r in rows] == [
        ("unadded", "models/churn.pt", ["churn"], "modified")
    ]
    assert rows[0]["old"] == rows[0]["new"] and rows[0]["size_change"] == 0
    text = mvc_cli("diff").stdout
    assert "unadded   models/churn.pt (churn)  changed in the work tree since mvc add" in text
    assert "mvc add models/churn.pt" in text and "no model changed" not in text
    assert "run 'mvc add churn.pt' to record it" in run_mvc("diff", cwd=model / "models").stdout  # as typed there
    # between two revisions the work tree plays no part
    assert mvc.diff("HEAD", "HEAD") == []
    # a pointer changed and its data changed again after the add: one row, which says both
    make_file(model / "fraud.pt", 500)
    mvc.add([str(model / "fraud.pt")], name="fraud")
    make_file(model / "fraud.pt", 600)
    rows = {r["path"]: r for r in mvc.diff()}
    assert (rows["fraud.pt"]["change"], rows["fraud.pt"]["workspace"]) == ("added", "modified")
    assert "work tree: changed again since mvc add" in mvc_cli("diff").stdout
    # recorded: the diff is the pointer's alone; data not checked out is no change
    mvc.add([str(model / "models" / "churn.pt"), str(model / "fraud.pt")])
    (model / "fraud.pt").unlink()
    rows = {r["path"]: r for r in mvc.diff()}
    assert rows["models/churn.pt"]["change"] == "modified" and rows["models/churn.pt"]["workspace"] == "ok"
    assert rows["fraud.pt"]["workspace"] == "missing" and set(rows) == {"models/churn.pt", "fraud.pt"}


def test_diff_between_revisions(model, mvc_cli):
    mvc_cli("assign", "churn", "prod")
    commit_model(model, 2, meta={"accuracy": 0.95})
    mvc_cli("register", "churn")
    rows = json.loads(mvc_cli("diff", "churn#prod", "churn@latest", "--json").stdout)
    assert [(r["change"], r["meta_changes"]) for r in rows] == [("modified", {"accuracy": [0.8, 0.95]})]
    assert json.loads(mvc_cli("diff", "churn@latest", "--json").stdout) == []  # against the work tree
    git(model, "rm", "-q", "models/churn.pt.mvc")
    c3 = commit_model(model, 3, path="models/v2/churn.pt")
    rows = mvc.diff("HEAD~1", c3)
    assert [(r["change"], r.get("old_path"), r["path"]) for r in rows] == [
        ("moved", "models/churn.pt", "models/v2/churn.pt")
    ]
    assert "moved     models/churn.pt -> models/v2/churn.pt (churn)" in mvc_cli("diff", "HEAD~1", "HEAD").stdout
    rows = mvc.diff("HEAD", "HEAD~2")
    assert rows[0]["change"] == "moved"
    error(mvc_cli, "diff", "nope", words=("unknown revision",))


def test_diff_removed(model):
    git(model, "rm", "-q", "models/churn.pt.mvc")
    rows = mvc.diff()
    assert [(r["change"], r["path"], r["new"]) for r in rows] == [("removed", "models/churn.pt", None)]


# -- the CLI as a user runs it ----------------------------------------------------------------
def test_subprocess_errors_are_one_line(model):
    p = run_mvc("assign", "churn", "staging", "--version", "v1.0.0", cwd=model)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip().splitlines() == ["error: churn has no versions yet: register one with 'mvc register churn'"]
    p = run_mvc("registry", "--json", cwd=model)
    assert p.returncode == 0 and json.loads(p.stdout) == []


def test_tagger_identity_is_required(model, tmp_path):
    env = dict(
        os.environ,
        GIT_CONFIG_GLOBAL=str(tmp_path / "none"),
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="user.useConfigOnly",
        GIT_CONFIG_VALUE_0="true",
    )
    p = run_mvc("register", "churn", cwd=model, env=env)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1
    assert "git config user.name" in p.stderr and "git config user.email" in p.stderr
    assert tag_names(model) == []


def test_registry_outside_a_git_repository(tmp_path):
    p = run_mvc("registry", cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "git init" in p.stderr


def test_registry_does_not_import_pygit2(model):
    mvc.register("churn")
    code = (
        "import sys; from mvc.cli import cli; cli(['registry'], standalone_mode=False); "
        "sys.stderr.write(str(sorted(m for m in sys.modules if m.split('.')[0] in ('pygit2', 'fsspec', 's3fs'))))"
    )
    p = subprocess.run([os.sys.executable, "-c", code], cwd=model, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "churn" in p.stdout and p.stderr == "[]"


def test_api_raises_registry_errors(model):
    with pytest.raises(RegistryError, match="not a model"):
        mvc.register("fraud")
    with pytest.raises(RegistryError, match="name the version"):
        mvc.deprecate("churn", stage="prod")


def test_log_shows_nested_meta_as_dotted_keys(repo, mvc_cli):
    commit_model(repo, 1, meta={"framework": "sklearn", "versions": {"numpy": "2.1.0", "sklearn": "1.5.2"}})
    text = mvc_cli("log", "churn").stdout
    assert "versions.numpy=2.1.0" in text and "versions.sklearn=1.5.2" in text and "{" not in text


def test_an_exact_stage_tag_names_its_version_everywhere(model, mvc_cli, tmp_path):
    """GTO's exact tag names (``churn#prod#1``: the stage as its first assignment left it; ``churn@v0.0.1#1``)
    read in show and get as in ls --rev."""
    mvc_cli("assign", "churn", "prod")  # churn@v0.0.1, churn#prod#1
    first = (model / "models" / "churn.pt").read_bytes()
    commit_model(model, 2)
    mvc_cli("register", "churn")
    mvc_cli("assign", "churn", "prod", "--version", "v0.0.2")  # churn#prod#2
    assert json.loads(mvc_cli("show", "churn#prod#1", "--json").stdout)["versions"] == ["v0.0.1"]
    mvc_cli("get", "churn#prod#1", "-o", str(tmp_path / "a.pt"))
    assert (tmp_path / "a.pt").read_bytes() == first
    assert json.loads(mvc_cli("show", "churn#prod#2", "--json").stdout)["versions"] == ["v0.0.2"]
