"""gc after ``mvc import-dvc``: a version that only an old commit's ``.dvc`` file names, read through
``.mvc/imported.toml``, is kept in the cache and on a remote, and read back afterwards, from a fresh clone too;
once nothing keeps it (``--keep-last``, its map entry gone), gc lets it go like any other version."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import git, make_file, run_mvc
from test_import_dvc import DVC, dvc

pytestmark = pytest.mark.skipif(DVC is None, reason="dvc is not installed: pip install -e '.[dvc-test]'")


def mvc_json(root: Path, *args: str) -> dict:
    return json.loads(run_mvc(*args, "--json", cwd=root, check=True).stdout)


@pytest.fixture
def imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A DVC repository with model.bin v1 then v2 committed, imported into mvc with a directory remote and
    committed; returns (root, remote, v1 commit, {version: bytes}, {version: oid})."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    versions, commits = {}, {}
    for v in (1, 2):
        make_file(root / "model.bin", 40_000 + v, seed=v)
        dvc(root, "add", "-q", "model.bin")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"model v{v}")
        versions[v] = (root / "model.bin").read_bytes()
        commits[v] = git(root, "rev-parse", "HEAD").strip()
    monkeypatch.chdir(root)
    remote = tmp_path / "remote"
    run_mvc("init", cwd=root, check=True)
    run_mvc("remote", "add", "store", str(remote), "--default", cwd=root, check=True)
    out = mvc_json(root, "import-dvc")
    assert out["history_versions"] == 1 and out["history_missing"] == []
    git(root, "commit", "-q", "-m", "import from DVC")
    # the migration done, DVC's cache goes: mvc's objects hard-linked from it (which gc counts as in use while
    # another link exists) are plain objects of mvc's cache now, kept only if a pointer needs them
    shutil.rmtree(root / ".dvc" / "cache")
    log = mvc_json(root, "log", "model.bin")
    assert [e["commit"] for e in log] == [commits[2], commits[1]]  # the import changed nothing
    oids = {2: log[0]["oid"], 1: log[1]["oid"]}
    assert not git(root, "ls-tree", "-r", "--name-only", "HEAD").count("model.bin.dvc")
    return root, remote, commits[1], versions, oids


def in_cache(root: Path, oid: str) -> bool:
    from mvc.repo.repository import Repo

    return Repo(str(root)).odb.exists(oid)


def abandoned_add(root: Path, name: str, push: bool = False) -> str:
    """The oid of a file added (and pushed) and then thrown away before any commit: what gc is for."""
    from mvc.format import pointer as ptrfmt

    make_file(root / name, 3000, seed=len(name))
    run_mvc("add", name, cwd=root, check=True)
    oid = ptrfmt.loads((root / f"{name}.mvc").read_bytes(), name).oid
    if push:
        run_mvc("push", name, cwd=root, check=True)
    git(root, "rm", "-q", "--cached", f"{name}.mvc")
    (root / f"{name}.mvc").unlink()
    return oid


def test_gc_keeps_a_version_only_an_old_dvc_file_names(imported, tmp_path: Path):
    root, _, v1, versions, oids = imported
    junk = abandoned_add(root, "junk.bin")

    dry = mvc_json(root, "gc", "--grace", "0")
    assert dry["dry_run"] and dry["objects"] == 1 and dry["kept"] == 2
    done = mvc_json(root, "gc", "--grace", "0", "--force")
    assert done["objects"] == 1 and not in_cache(root, junk)
    assert in_cache(root, oids[1]) and in_cache(root, oids[2])

    run_mvc("push", "--all-commits", cwd=root, check=True)
    abandoned_add(root, "junk2.bin", push=True)  # a version the remote holds that nothing names
    done = mvc_json(root, "gc", "-r", "store", "--force", "--grace", "0")
    assert done["objects"] == 1 and done["kept"] == 2, done

    # v1 still reads back: here, from an empty cache through the remote, and from a fresh clone
    shutil.rmtree(root / ".mvc" / "cache")
    (root / "model.bin").unlink()
    r = run_mvc("checkout", "--rev", v1, "model.bin", cwd=root)
    assert r.returncode == 0, r.stderr
    assert (root / "model.bin").read_bytes() == versions[1]
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    run_mvc("pull", cwd=clone, check=True)
    assert (clone / "model.bin").read_bytes() == versions[2]
    r = run_mvc("checkout", "--rev", v1, "model.bin", cwd=clone)
    assert r.returncode == 0, r.stderr
    assert (clone / "model.bin").read_bytes() == versions[1]


def test_gc_lets_the_version_go_once_nothing_keeps_it(imported):
    root, _, v1, _, oids = imported
    # narrowed history: of model.bin only the version at the tip is kept
    dry = mvc_json(root, "gc", "--grace", "0", "--keep-last", "1")
    assert dry["objects"] == 1 and [g["what"] for g in dry["groups"]] == [f"model.bin at {v1[:10]}"], dry
    assert in_cache(root, oids[1])

    # the map's entry of v1 gone (edited out and committed): its .dvc file names nothing mvc reads
    path = root / ".mvc" / "imported.toml"
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    import tomli_w

    doc = tomllib.loads(path.read_text())
    doc["dvc"]["md5"] = {k: e for k, e in doc["dvc"]["md5"].items() if e["oid"] != oids[1]}
    path.write_text(tomli_w.dumps(doc))
    git(root, "commit", "-q", "-am", "forget v1")
    rows = mvc_json(root, "log", "model.bin")  # v1's commit: the change it was, which mvc cannot read
    assert [e.get("oid") for e in rows] == [oids[2], None] and "could not import" in rows[1]["error"], rows
    done = mvc_json(root, "gc", "--grace", "0", "--force")
    assert done["objects"] == 1 and not in_cache(root, oids[1]) and in_cache(root, oids[2])
