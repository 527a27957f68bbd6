"""One file inside a tracked directory, read alone: ``mvc get DIR/SUB/FILE`` and ``mvc.describe/open/read_bytes/
get/materialize/load`` of such a path, by URL (directory store and S3) and in a clone, the directory's manifest
read for its oid and size and only that file's bytes fetched (a range of the pack the directory went up in).

The source repository is test_read_url's (a tracked ``data/`` of small packed files, ``sub/nested.txt`` and an
executable ``run.sh``); nothing here changes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import git
from test_read_url import build_world, cached_objects, oid_of, only_loopback, own_user_cache, s3_store

import mvc
from mvc.errors import ModelFormatError, MvcError, PathError

world = pytest.fixture(scope="module")(build_world)
user_cache = pytest.fixture(autouse=True, name="user_cache")(own_user_cache)
loopback_only = pytest.fixture(autouse=True, name="loopback_only")(only_loopback)

FILES = ("data/part-03.bin", "data/sub/nested.txt")


def want(world, path: str) -> bytes:
    return world.data[path.removeprefix("data/")]


@pytest.mark.parametrize("store", ["directory", "s3"])
def test_by_url(world, mvc_cli, user_cache, tmp_path, request, store):
    url = str(world.bare)
    remote = None
    if store == "s3":
        s3_store(request.getfixturevalue("s3_endpoint"), world.store)
        remote = "s3"
    extra = ("--remote", remote) if remote else ()
    for i, path in enumerate(FILES):
        data = want(world, path)
        d = mvc.describe(path, repo=url) if remote is None else None
        if d is not None:
            assert (d["path"], d["kind"], d["oid"], d["size"], d["within"]) == (
                path,
                "file",
                oid_of(data),
                len(data),
                "data",
            )
        assert mvc.read_bytes(path, repo=url, remote=remote) == data
        with mvc.open(path, repo=url, remote=remote) as f:
            f.seek(10)
            assert f.read(7) == data[10:17]
        out = tmp_path / f"out{i}"
        r = json.loads(mvc_cli("get", "--repo", url, path, "-o", str(out), "--json", *extra).stdout)
        assert out.read_bytes() == data
        assert (r["path"], r["kind"], r["oid"]) == (path, "file", oid_of(data))
        assert Path(mvc.materialize(path, repo=url, remote=remote)).read_bytes() == data
        with pytest.raises(ModelFormatError, match=path.rsplit("/", 1)[1]):  # found, and its format asked of its name
            mvc.load(path, repo=url, remote=remote)
    run = tmp_path / "run.sh"
    mvc.get("data/run.sh", run, repo=url, remote=remote)
    assert run.read_bytes() == want(world, "data/run.sh") and os.stat(run).st_mode & 0o100  # its mode kept
    assert cached_objects(user_cache) == []  # without --cache: neither the manifest nor the file is kept
    out = tmp_path / "kept"
    mvc_cli("get", "--repo", url, FILES[0], "-o", str(out), "--cache", *extra)
    assert cached_objects(user_cache) == [oid_of(want(world, FILES[0])).split(":")[1]]  # that file's object alone


def test_at_a_revision_and_by_default_out(world, mvc_cli, tmp_path):
    url = str(world.bare)
    mvc_cli("get", "--repo", url, "data/sub/nested.txt", "--rev", "HEAD~1")  # data/ is as it was at v1
    assert (tmp_path / "here" / "nested.txt").read_bytes() == want(world, "data/sub/nested.txt")
    with pytest.raises(PathError, match="not tracked by mvc at HEAD~2"):
        mvc.describe("data/sub/nested.txt", repo=url, rev="HEAD~2")  # before data/ was tracked


def test_in_a_clone_fetches_that_file_only(world, mvc_cli, mvc_error, tmp_path, monkeypatch):
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(world.src), str(work))
    monkeypatch.chdir(work)
    out = tmp_path / "one.bin"
    r = mvc_cli("get", "data/part-03.bin", "-o", str(out))
    assert r.stdout.startswith(f"wrote {out} (")
    assert out.read_bytes() == want(world, "data/part-03.bin")
    objects = work / ".mvc" / "cache" / "objects"
    held = sorted(p.parent.name + p.name for p in objects.glob("*/*"))
    manifest = mvc.describe("data")["oid"].split(":")[1]
    assert held == sorted([manifest, oid_of(out.read_bytes()).split(":")[1]])  # the manifest and the one file
    assert not (work / "data").exists()  # the work tree untouched
    mvc_cli("get", "data/run.sh", "-o", str(tmp_path / "run.sh"))  # from the cache, its mode kept
    assert os.stat(tmp_path / "run.sh").st_mode & 0o100
    monkeypatch.chdir(work / ".mvc")  # a path given from a subdirectory is the user's, as for every command
    assert mvc.read_bytes(str(work / "data" / "sub" / "nested.txt")) == want(world, "data/sub/nested.txt")
    monkeypatch.chdir(work)
    assert mvc.describe("data/run.sh", repo=mvc.Repo(str(work)))["within"] == "data"


def test_refused(world, mvc_cli, mvc_error, tmp_path, monkeypatch):
    url = str(world.bare)
    out = str(tmp_path / "o")
    mvc_error("get", "--repo", url, "data/sub", "-o", out, words=("data/sub is a directory inside", "get data whole"))
    mvc_error(
        "get", "--repo", url, "data/nope.bin", "-o", out, words=("data/nope.bin is not in tracked directory data",)
    )
    mvc_error("get", "--repo", url, "model.bin/x", "-o", out, words=("model.bin at HEAD", "is a file"))
    mvc_error("get", "--repo", url, "data/../model.bin", "-o", out, words=("never reads",))
    mvc_error("get", "--repo", url, "data/.git/config", "-o", out, words=("never reads",))
    assert not Path(out).exists()
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(world.src), str(work))
    monkeypatch.chdir(work)
    mvc_cli("pull")
    (work / "data" / "sub" / "nested.txt").write_text("my edit\n")
    # the work tree's own copy is a tracked path: never replaced, even with --force
    mvc_error(
        "get", "data/sub/nested.txt", "-o", "data/sub/nested.txt", "--force", words=("a path this work tree tracks",)
    )
    assert (work / "data" / "sub" / "nested.txt").read_text() == "my edit\n"
    with pytest.raises(MvcError, match="is part of tracked directory data"):
        mvc.show("data/sub/nested.txt")  # a version's record is the directory's


def test_a_repo_given_from_elsewhere_names_paths_from_its_root(world, tmp_path, monkeypatch):
    """A serving process outside the work tree passes mvc.Repo(ROOT): relative paths are that root's (inside the
    work tree they stay the current directory's, as on the command line)."""
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(world.src), str(work))
    r = mvc.Repo(str(work))
    monkeypatch.chdir(tmp_path / "here")  # outside the work tree
    assert mvc.read_bytes("model.bin", repo=r) == world.v2
    assert mvc.read_bytes("model.bin.mvc", repo=r, rev="HEAD~1") == world.v1
    assert mvc.read_bytes("churn#prod", repo=r) == world.v1
    assert mvc.read_bytes("data/sub/nested.txt", repo=r) == want(world, "data/sub/nested.txt")
    assert mvc.describe(str(work / "data"), repo=r)["kind"] == "dir"
    monkeypatch.chdir(work / "data" if (work / "data").is_dir() else work)
    with pytest.raises(PathError, match="not tracked"):
        mvc.describe("nope.bin", repo=r)
