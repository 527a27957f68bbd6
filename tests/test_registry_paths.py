"""Where a registered version is when its tag does not say: GTO's tags (no mvc trailers) and versions from before
``mvc import-dvc`` / ``mvc import-lfs``. ``mvc registry`` and ``mvc ui build`` read their path, oid and size as
``mvc show`` and ``mvc log`` do (``models.locate``: the config at the version's commit, its pointer there or the
pointer another tool's file stands for), in a fixed number of git processes whatever the number of versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, make_file

import mvc
from mvc import git as gitmod
from mvc.api import site, site_render

MODEL = "models/churn.pt"


def gto_tag(root: Path, name: str, rev: str = "HEAD") -> None:
    """A tag as GTO writes it: annotated, its message GTO's wording, no mvc trailers."""
    version = name.partition("@")[2]
    git(root, "tag", "-a", name, "-m", f"Registering artifact {name.partition('@')[0]} version {version}", rev)


def commit(root: Path, seed: int, path: str = MODEL, name: str | None = "churn") -> str:
    make_file(root / path, 1000 + seed, seed=seed)
    mvc.add([str(root / path)], name=name)
    git(root, "commit", "-q", "-m", f"train {seed}")
    return git(root, "rev-parse", "HEAD").strip()


def pointer(root: Path, path: str = MODEL) -> tuple[str, int]:
    entry = next(e for e in mvc.ls() if e["path"] == path)
    return entry["oid"], entry["size"]


def model(name: str = "churn") -> dict:
    return {m["name"]: m for m in mvc.registry(deprecated=True)}[name]


# -- tags GTO wrote -------------------------------------------------------------------------------
def test_a_gto_version_takes_path_oid_and_size_from_its_commit(repo: Path, mvc_cli, tmp_path: Path):
    c1 = commit(repo, 1)
    gto_tag(repo, "churn@v0.0.1")
    oid, size = pointer(repo)
    out = mvc_cli("registry").stdout.splitlines()
    assert out[1].split() == ["churn", "v0.0.1", MODEL]
    m = model()
    assert m["path"] == MODEL
    assert [(v["version"], v["commit"], v["oid"], v["size"]) for v in m["versions"]] == [("v0.0.1", c1, oid, size)]
    assert [v["path"] for v in site.collect()["models"][0]["versions"]] == [MODEL]
    # the site: the size on the model's page too, not only on the version's
    mvc_cli("ui", "build", "-o", str(tmp_path / "site"))
    page = (tmp_path / "site" / "m" / "churn" / "index.html").read_text()
    assert f"<td>{site_render.human(size)}</td></tr>" in page and "no path at commit" not in page


@pytest.mark.parametrize(
    "trailers",
    [
        "mvc-path: ../../outside.bin",  # outside the repository: git's cat-file fails the whole batch on it
        "mvc-path: /etc/passwd",
        "mvc-path: models/./churn.pt",
        "mvc-path: models/churn.pt\nmvc-size: \u00b2",  # int() refuses '²'
        "mvc-oid: not-an-oid\nmvc-size: \u0663",  # an Arabic-Indic 3, which int() reads
    ],
)
def test_a_hostile_tags_trailers_are_ignored_not_trusted(repo: Path, mvc_cli, tmp_path: Path, trailers: str):
    """A hand-made tag whose trailers are not what mvc writes (a path escaping the repository, a size no integer):
    the registry, its --json and the site read every model all the same, the version where its commit puts it."""
    commit(repo, 1)
    oid, size = pointer(repo)
    git(repo, "tag", "-a", "churn@v0.0.2", "-m", f"Registering artifact churn version v0.0.2\n\n{trailers}")
    assert "churn" in mvc_cli("registry").stdout
    m = model()
    assert m["path"] == MODEL
    assert [(v["version"], v["oid"], v["size"]) for v in m["versions"]] == [("v0.0.2", oid, size)]
    assert json.loads(mvc_cli("registry", "--json").stdout)[0]["path"] == MODEL
    assert [v["path"] for v in site.collect()["models"][0]["versions"]] == [MODEL]
    mvc_cli("ui", "build", "-o", str(tmp_path / "site"))
    assert "outside" not in (tmp_path / "site" / "m" / "churn" / "index.html").read_text()


def test_a_tag_moved_by_hand_shows_its_pointer_and_says_so(repo: Path, mvc_cli, tmp_path: Path):
    """churn@v0.0.2 moved with 'git tag -f' onto v0.0.1's commit, its mvc trailers kept: the site shows the
    pointer's oid and size (what the version is) and says that the tag's differ."""
    c1 = commit(repo, 1)
    oid1, size1 = pointer(repo)
    commit(repo, 2)
    mvc_cli("register", "churn", "-q")
    message = git(repo, "for-each-ref", "--format=%(contents)", "refs/tags/churn@v0.0.1")
    git(repo, "tag", "-f", "-a", "churn@v0.0.1", "-m", message.strip(), c1)  # (its trailers: the second file's)
    v = site.collect()["models"][0]["versions"][0]
    assert (v["oid"], v["size"]) == (oid1, size1) and "the tag was moved or written by hand" in v["warning"]
    mvc_cli("ui", "build", "-o", str(tmp_path / "site"))
    assert "tag differs" in (tmp_path / "site" / "m" / "churn" / "index.html").read_text()


def test_the_model_path_is_its_newest_tags(repo: Path):
    commit(repo, 1)
    mvc.register("churn")  # mvc's tag records models/churn.pt
    git(repo, "rm", "-q", f"{MODEL}.mvc")
    c2 = commit(repo, 2, path="models/churn-v2.pt")  # the name moves
    gto_tag(repo, "churn@v0.0.2")
    m = model()
    assert m["path"] == "models/churn-v2.pt"
    paths = {v["version"]: v["path"] for v in site.collect()["models"][0]["versions"]}
    assert paths == {"v0.0.1": MODEL, "v0.0.2": "models/churn-v2.pt"}
    assert {v["version"]: v["commit"] for v in m["versions"]}["v0.0.2"] == c2


def test_a_commit_that_does_not_name_the_model_leaves_its_version_without_path(repo: Path, mvc_cli):
    c1 = commit(repo, 1, name=None)  # tracked, not named yet
    gto_tag(repo, "churn@v0.0.1")
    assert model()["path"] is None  # no tag records it, no commit's config (HEAD's neither) names it
    mvc.add([str(repo / MODEL)], name="churn")  # named later: today's config says where the model is
    git(repo, "commit", "-q", "-m", "name it")
    m = model()
    assert m["path"] == MODEL
    assert [v["commit"] for v in m["versions"]] == [c1]
    assert "oid" not in m["versions"][0]  # as 'mvc show churn@v0.0.1' refuses it: not a model at that commit
    shown = site.collect()["models"][0]["versions"][0]
    assert shown["path"] is None and "no path at commit" in shown["error"] and ".mvc/config.toml" in shown["error"]


def test_reading_the_registry_costs_the_same_git_processes_for_any_number_of_versions(repo: Path, monkeypatch):
    runs: list[str] = []
    real = gitmod._run_git

    def counted(args, *rest, **kw):
        runs.append(args[0])
        return real(args, *rest, **kw)

    monkeypatch.setattr(gitmod, "_run_git", counted)
    counts = []
    for n in (2, 12):
        while len(git(repo, "tag", "-l").split()) < n:
            commit(repo, len(runs) + 100)
            gto_tag(repo, f"churn@v0.0.{len(git(repo, 'tag', '-l').split()) + 1}")
        runs.clear()
        m = model()
        assert len(m["versions"]) == n and all("oid" in v for v in m["versions"])
        counts.append(sorted(runs))
    assert counts[0] == counts[1] and counts[1].count("cat-file") <= 2, counts


def test_by_url_the_registry_reads_tags_alone(repo: Path, tmp_path: Path):
    commit(repo, 1)
    gto_tag(repo, "churn@v0.0.1")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    m = {x["name"]: x for x in mvc.registry(repo=f"file://{bare}")}["churn"]
    assert m["path"] is None and "oid" not in m["versions"][0]  # no blob fetched to learn them


# -- history from before an import ----------------------------------------------------------------
def _lineage_matches_log(name: str) -> list[tuple[str, str]]:
    """The site's lineage of a model, checked against 'mvc log': the same commits, the same changes."""
    d = {m["name"]: m for m in site.collect()["models"]}[name]
    shown = [(c["commit"], ", ".join(c["changes"])) for c in d["lineage"]]
    logged = [(e["commit"], f"{e['change']} {e['path']}") for e in mvc.log(name)]
    assert shown == logged
    return shown


DVC = shutil.which("dvc", path=os.path.dirname(sys.executable)) or shutil.which("dvc")


@pytest.mark.skipif(DVC is None, reason="dvc is not installed: pip install -e '.[dvc-test]'")
def test_an_imported_dvc_and_gto_registry_reads_like_any_other(gitrepo: Path, mvc_cli, tmp_path: Path):
    root = gitrepo
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site")}

    def dvc(*args: str) -> None:
        proc = subprocess.run([DVC, *args], cwd=root, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    dvc("init", "-q")
    (root / "dvc.yaml").write_text(f"artifacts:\n  churn:\n    path: {MODEL}\n    type: model\n")
    commits = []
    for seed in (1, 2):
        make_file(root / MODEL, 2000 + seed, seed=seed)
        dvc("add", "-q", MODEL)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"v{seed}")
        commits.append(git(root, "rev-parse", "HEAD").strip())
        gto_tag(root, f"churn@v1.0.{seed - 1}")
    mvc.init(str(root))
    mvc_cli("import-dvc", "-q")
    git(root, "commit", "-q", "-m", "to mvc")

    m = model()
    assert m["path"] == MODEL
    logged = {e["commit"]: e for e in mvc.log("churn")}
    for v in m["versions"]:
        assert (v["oid"], v["size"]) == (logged[v["commit"]]["oid"], logged[v["commit"]]["size"])
    row = mvc_cli("registry").stdout.splitlines()[1].split()
    assert row == ["churn", "v1.0.1", MODEL]
    d = site.collect()["models"][0]
    for v in d["versions"]:
        assert "error" not in v and (v["path"], v["pointer"]["oid"]) == (MODEL, logged[v["commit"]]["oid"])
        assert v["meta"]["dvc"]["md5"]  # the record the .dvc file stands for
    assert _lineage_matches_log("churn") == [(commits[1], f"modified {MODEL}"), (commits[0], f"added {MODEL}")]


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="git-lfs is not installed (apt-get install git-lfs)")
def test_an_imported_lfs_and_gto_registry_reads_like_any_other(gitrepo: Path, mvc_cli):
    root = gitrepo
    git(root, "lfs", "install", "--local")
    git(root, "lfs", "track", "*.bin")
    (root / "artifacts.yaml").write_text("model:\n  path: model.bin\n  type: model\n")
    data = {}
    for seed in (1, 2):
        make_file(root / "model.bin", 3000 + seed, seed=seed)
        data[seed] = (root / "model.bin").read_bytes()
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"v{seed}")
        gto_tag(root, f"model@v1.0.{seed - 1}")
    mvc.init(str(root))
    git(root, "commit", "-q", "-m", "mvc init")
    mvc_cli("import-lfs", "-q")
    git(root, "commit", "-q", "-m", "to mvc")

    m = model("model")
    assert m["path"] == "model.bin"
    assert sorted((v["version"], v["size"]) for v in m["versions"]) == [("v1.0.0", 3001), ("v1.0.1", 3002)]
    assert all("error" not in v for v in site.collect()["models"][0]["versions"])
    shown = _lineage_matches_log("model")
    assert [c for _, c in shown][-2:] == ["modified model.bin", "added model.bin"]
    assert json.loads(mvc_cli("registry", "--json").stdout)[0]["path"] == "model.bin"
