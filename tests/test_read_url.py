"""Reading a model without a clone: ``mvc get/ls/registry --repo URL`` and ``mvc.open/get/read_bytes/describe/
materialize(repo=URL)``, from a bare clone, a ``--no-checkout`` clone, a shallow clone and a ``file://`` URL,
with the weights on a directory remote and on S3 (moto on 127.0.0.1).

One source repository per module (five commits, a 200 kB README in git, the model churn registered twice,
prod on the first version, a tracked directory whose small files went up in a pack), pushed to a
directory store and cloned bare; tests that change a repository or a store copy it first. Every test
has its own user cache (MVC_CACHE_DIR), so none sees what another fetched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import Cli, git, make_file

import mvc
from mvc.errors import NoRemote

BUCKET, PREFIX = "models", "team/churn"
MODEL_SIZE = 300_000
BIG = 17 << 20


def oid_of(data: bytes) -> str:
    import xxhash

    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def files_under(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def executables(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file() and os.stat(p).st_mode & 0o100}


def store_file(store: Path, oid: str) -> Path:
    digest = oid.split(":", 1)[1]
    return store / "objects" / digest[:2] / digest[2:]


def build_world(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> SimpleNamespace:
    """The source repository, its directory store, and clones of it to read from (never changed by a test)."""
    top = tmp_path_factory.mktemp("world")
    src, store = top / "src", top / "store"
    src.mkdir()
    cli = Cli()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(src)
        mp.setenv("MVC_CACHE_DIR", str(top / "build-cache"))
        git(src, "init", "-q")
        mvc.init(str(src))
        cli("remote", "add", "store", str(store), "--default")
        cli("remote", "add", "s3", f"s3://{BUCKET}/{PREFIX}")
        cli("remote", "modify", "s3", "endpoint_url", s3_server)
        # whole objects: these tests damage them in place (tests/test_chunked_read.py reads chunked ones)
        cli("remote", "modify", "store", "chunks", "false")
        cli("remote", "modify", "s3", "chunks", "false")
        git(src, "add", "-A")
        git(src, "commit", "-q", "-m", "mvc init")
        make_file(src / "README.md", 200_000, seed=7)  # in git: a reader by URL never needs it
        git(src, "add", "README.md")
        git(src, "commit", "-q", "-m", "readme")
        (src / "notes.txt").write_text("notes\n")
        git(src, "add", "notes.txt")
        git(src, "commit", "-q", "-m", "notes")
        # v1: the model and a directory of small files (they go up in one pack) with an executable and a subdirectory
        make_file(src / "model.bin", MODEL_SIZE, seed=1)
        for i in range(pack_min()):
            make_file(src / "data" / f"part-{i:02d}.bin", 1000 + 17 * i, seed=100 + i)
        make_file(src / "data" / "sub" / "nested.txt", 50, seed=99)
        (src / "data" / "run.sh").write_text("#!/bin/sh\necho hi\n")
        (src / "data" / "run.sh").chmod(0o755)
        cli("add", "model.bin", "--name", "churn", "-m", "accuracy=0.8")
        cli("add", "data")
        git(src, "add", "-A")
        git(src, "commit", "-q", "-m", "v1")
        cli("push")
        cli("register", "churn")
        cli("assign", "churn", "prod")
        v1 = (src / "model.bin").read_bytes()
        # v2: the newest version, at HEAD
        make_file(src / "model.bin", MODEL_SIZE + 1000, seed=2)
        cli("add", "model.bin", "-m", "accuracy=0.9")
        make_file(src / "big.bin", BIG, seed=3)  # more than two of a stream's reads (8 MiB each)
        (src / "empty.bin").write_bytes(b"")
        cli("add", "big.bin", "empty.bin")
        git(src, "add", "-A")
        git(src, "commit", "-q", "-m", "v2")
        cli("push")
        cli("register", "churn")
        v2 = (src / "model.bin").read_bytes()
        big = (src / "big.bin").read_bytes()
        ls_json = json.loads(cli("ls", "--json").stdout)
        ls_text = cli("ls").stdout
        registry_text = cli("registry").stdout
        ls_v1_json = json.loads(cli("ls", "--rev", "churn@v0.0.1", "--json").stdout)
        registry_json = json.loads(cli("registry", "--json").stdout)
        registry_churn_json = json.loads(cli("registry", "churn", "--json").stdout)
    bare = top / "bare.git"
    git(top, "clone", "-q", "--bare", str(src), str(bare))
    git(bare, "config", "uploadpack.allowFilter", "true")
    nocheckout = top / "nocheckout"
    git(top, "clone", "-q", "--no-checkout", str(src), str(nocheckout))
    shallow = top / "shallow"
    git(top, "clone", "-q", "--depth", "1", f"file://{src}", str(shallow))
    assert git(src, "rev-list", "--count", "HEAD").strip() == "5"
    return SimpleNamespace(
        top=top,
        src=src,
        store=store,
        bare=bare,
        nocheckout=nocheckout,
        shallow=shallow,
        v1=v1,
        v2=v2,
        big=big,
        data=files_under(src / "data"),
        ls_json=ls_json,
        ls_text=ls_text,
        registry_text=registry_text,
        ls_v1_json=ls_v1_json,
        registry_json=registry_json,
        registry_churn_json=registry_churn_json,
        s3_server=s3_server,
    )


world = pytest.fixture(scope="module")(build_world)


def pack_min() -> int:
    from mvc.objects import pack

    return pack.MIN_OBJECTS


def own_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user cache of this test's own; the current directory is an empty one outside any repository."""
    d = tmp_path / "user-cache"
    monkeypatch.setenv("MVC_CACHE_DIR", str(d))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    return d


user_cache = pytest.fixture(autouse=True, name="user_cache")(own_user_cache)


def cached_objects(user_cache: Path) -> list[str]:
    """Object files in the user's object cache (``cache/objects/xx/…``)."""
    objects = user_cache / "cache" / "objects"
    return sorted(p.parent.name + p.name for p in objects.glob("*/*")) if objects.exists() else []


def git_caches(user_cache: Path) -> list[Path]:
    repos = user_cache / "repos"
    return sorted(p for p in repos.iterdir() if p.is_dir()) if repos.exists() else []


def leftovers(d: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name not in keep)


def s3_store(endpoint: str, store: Path, big: bool = False):
    """The bucket, holding what the directory store holds (the same layout under PREFIX; big.bin only if
    asked: 17 MiB take moto a while); the boto3 client."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    for p in store.rglob("*"):
        rel = p.relative_to(store).as_posix()
        if p.is_file() and not rel.startswith("tmp/") and (big or p.stat().st_size < BIG):
            s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{rel}", Body=p.read_bytes())
    return s3


def urls(world) -> dict[str, str]:
    return {
        "bare": str(world.bare),
        "no-checkout": str(world.nocheckout),
        "file-url": f"file://{world.bare}",
        "shallow": str(world.shallow),
    }


# -- every kind of URL, every kind of reference, both stores ------------------------------------------
REFS = {  # reference -> the version it names
    "churn#prod": "v1",
    "churn@v0.0.1": "v1",
    "churn@latest": "v2",
    "model.bin --rev main": "v2",
    "model.bin": "v2",
}


@pytest.mark.parametrize(
    ("kind", "store"),
    # the URL is git's business, the remote mvc's: S3 with two of the URLs
    [
        ("bare", "directory"),
        ("no-checkout", "directory"),
        ("file-url", "directory"),
        ("shallow", "directory"),
        ("bare", "s3"),
        ("shallow", "s3"),
    ],
)
def test_get_every_reference(world, mvc_cli, user_cache, tmp_path, request, kind, store):
    url = urls(world)[kind]
    extra: tuple[str, ...] = ()
    if store == "s3":
        s3_store(request.getfixturevalue("s3_endpoint"), world.store)
        extra = ("--remote", "s3")
    refs = dict(REFS)
    if kind == "shallow":  # a clone of depth 1 holds the last commit and its tag only
        del refs["churn#prod"], refs["churn@v0.0.1"]
    for i, (ref, want) in enumerate(refs.items()):
        out = tmp_path / f"out{i}.bin"
        r = mvc_cli("get", "--repo", url, *ref.split(), "-o", str(out), *extra)
        assert r.stdout.startswith(f"wrote {out} ("), r.stdout
        assert out.read_bytes() == getattr(world, want), (ref, kind)
    out = tmp_path / "data-copy"
    mvc_cli("get", "--repo", url, "data", "-o", str(out), *extra)
    assert files_under(out) == world.data
    assert executables(out) == {"run.sh"}
    assert cached_objects(user_cache) == []  # no copy kept without --cache
    assert leftovers(tmp_path, {"here", "user-cache", "data-copy"} | {f"out{i}.bin" for i in range(len(refs))}) == []


def test_default_out_is_the_file_name_here(world, mvc_cli, tmp_path):
    mvc_cli("get", "--repo", str(world.bare), "churn#prod")
    assert (tmp_path / "here" / "model.bin").read_bytes() == world.v1
    mvc_cli("get", "--repo", str(world.bare), "data")
    assert files_under(tmp_path / "here" / "data") == world.data


def test_get_json(world, mvc_cli, tmp_path):
    out = tmp_path / "m.bin"
    r = json.loads(mvc_cli("get", "--repo", str(world.bare), "churn#prod", "-o", str(out), "--json").stdout)
    assert r["out"] == str(out) and r["oid"] == oid_of(world.v1) and r["size"] == len(world.v1)
    assert r["kind"] == "file" and r["path"] == "model.bin"


class moved_away:
    """The directory renamed for the block (a remote gone), then put back."""

    def __init__(self, path: Path):
        self.path, self.aside = path, path.with_name(path.name + ".away")

    def __enter__(self) -> None:
        self.path.rename(self.aside)

    def __exit__(self, *exc) -> None:
        self.aside.rename(self.path)


def empty_bucket(s3) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=o["Key"])
    s3.delete_bucket(Bucket=BUCKET)


@pytest.mark.parametrize("store", ["directory", "s3"])
@pytest.mark.parametrize("ref", ["churn#prod", "data"])
def test_cache_keeps_the_objects_for_the_next_read(world, mvc_cli, user_cache, tmp_path, request, store, ref):
    """With --cache every object the read needed stays in the user cache (a directory: its manifest too), so the
    same read works with the remote gone."""
    extra: tuple[str, ...] = ()
    if store == "s3":
        s3 = s3_store(request.getfixturevalue("s3_endpoint"), world.store)
        extra = ("--remote", "s3")
    url = str(world.bare)
    mvc_cli("get", "--repo", url, ref, "-o", str(tmp_path / "a"), "--cache", *extra)
    info = mvc.describe(ref, repo=url)
    if ref == "data":
        assert len(cached_objects(user_cache)) == len(world.data) + 1, "each file and the manifest"
    else:
        assert cached_objects(user_cache) == [oid_of(world.v1)[7:]]
    assert info["oid"][7:] in cached_objects(user_cache)
    if store == "s3":
        empty_bucket(s3)
        mvc_cli("get", "--repo", url, ref, "-o", str(tmp_path / "b"), "--cache", *extra)
    else:
        with moved_away(world.store):
            mvc_cli("get", "--repo", url, ref, "-o", str(tmp_path / "b"), "--cache")
    if ref == "data":
        assert files_under(tmp_path / "b") == world.data
        assert executables(tmp_path / "b") == {"run.sh"}
    else:
        assert (tmp_path / "b").read_bytes() == world.v1


def test_directory_from_a_pack_with_no_journal_yet(world, tmp_path, monkeypatch):
    """The first read of a directory whose small files are in a pack, with a user cache that knows nothing of the
    remote yet: each time, every file arrives (its files are fetched in parallel; each learns where the
    pack holds it)."""
    failures = []
    for i in range(4):
        monkeypatch.setenv("MVC_CACHE_DIR", str(tmp_path / f"cache{i}"))
        try:
            mvc.get("data", tmp_path / f"out{i}", repo=str(world.bare))
        except Exception as e:  # counted: the assertion says how often and how
            failures.append(f"{type(e).__name__}: {e}")
        else:
            assert files_under(tmp_path / f"out{i}") == world.data
    assert failures == []


# -- the registry moves on upstream ------------------------------------------------------------------
def clone_pair(world, top: Path) -> tuple[Path, Path]:
    """A clone of the source to change (tags and all) and a bare repository to push those changes to."""
    work, bare = top / "work", top / "bare.git"
    git(top, "clone", "-q", str(world.src), str(work))
    git(top, "clone", "-q", "--bare", str(world.src), str(bare))
    git(bare, "config", "uploadpack.allowFilter", "true")
    return work, bare


def test_stage_moved_upstream(world, mvc_cli, tmp_path, monkeypatch):
    work, bare = clone_pair(world, tmp_path)
    out = tmp_path / "m.bin"
    mvc_cli("get", "--repo", str(bare), "churn#prod", "-o", str(out))
    assert out.read_bytes() == world.v1
    monkeypatch.chdir(work)
    mvc_cli("assign", "churn", "prod", "--version", "v0.0.2")
    git(work, "push", "-q", str(bare), "--tags")
    mvc_cli("get", "--repo", str(bare), "churn#prod", "-o", str(out), "--force")
    assert out.read_bytes() == world.v2
    assert mvc.read_bytes("churn#prod", repo=str(bare)) == world.v2
    assert mvc.describe("churn#prod", repo=str(bare))["oid"] == oid_of(world.v2)


def test_tag_deleted_upstream_is_forgotten(world, mvc_cli, mvc_error, user_cache, tmp_path):
    _work, bare = clone_pair(world, tmp_path)
    assert mvc.read_bytes("churn@v0.0.2", repo=str(bare)) == world.v2
    assert mvc.read_bytes("churn@latest", repo=str(bare)) == world.v2
    (cache,) = git_caches(user_cache)
    assert "churn@v0.0.2" in git(cache, "tag", "-l").split()
    git(bare, "tag", "-d", "churn@v0.0.2")
    mvc_error("get", "--repo", str(bare), "churn@v0.0.2", "-o", str(tmp_path / "x"), words=("v0.0.2",))
    assert not (tmp_path / "x").exists()
    assert mvc.read_bytes("churn@latest", repo=str(bare)) == world.v1
    assert "churn@v0.0.2" not in git(cache, "tag", "-l").split()
    assert {v["version"] for v in mvc.registry(repo=str(bare))[0]["versions"]} == {"v0.0.1"}


def test_branch_moved_upstream(world, mvc_cli, tmp_path, monkeypatch):
    """HEAD and --rev BRANCH are what the repository holds now, not what the cache fetched before."""
    work, bare = clone_pair(world, tmp_path)
    assert mvc.read_bytes("model.bin", repo=str(bare)) == world.v2
    assert mvc.read_bytes("model.bin", repo=str(bare), rev="main") == world.v2
    git(work, "revert", "--no-edit", "HEAD")  # model.bin back to v1
    git(work, "push", "-q", str(bare), "main")
    assert mvc.read_bytes("model.bin", repo=str(bare)) == world.v1
    assert mvc.read_bytes("model.bin", repo=str(bare), rev="main") == world.v1


# -- as little git traffic as works ------------------------------------------------------------------
def missing_and_present(cache: Path) -> tuple[set[str], set[str]]:
    """(ids of objects the cache lacks, ids it holds) among everything its refs reach."""
    out = git(cache, "rev-list", "--objects", "--missing=print", "--all").splitlines()
    missing = {line[1:41] for line in out if line.startswith("?")}
    present = {line[:40] for line in out if not line.startswith("?")}
    return missing, present


def blob_id(repo: Path, rev: str, path: str) -> str:
    return git(repo, "rev-parse", f"{rev}:{path}").strip()


@pytest.mark.parametrize("ref", ["model.bin", "churn#prod"])
def test_shallow_cache_and_only_the_blobs_needed(world, user_cache, tmp_path, ref):
    assert mvc.read_bytes(ref, repo=str(world.bare)) == (world.v2 if ref == "model.bin" else world.v1)
    (cache,) = git_caches(user_cache)
    assert (cache / "shallow").exists()
    commits = git(cache, "rev-list", "--all").split()
    if ref == "model.bin":
        assert commits == [git(world.src, "rev-parse", "HEAD").strip()]
    else:  # the commits churn's tags name (v0.0.1 and prod on one, v0.0.2 on the other): 2 of 5
        assert len(commits) <= 2
    rev = "HEAD" if ref == "model.bin" else "churn@v0.0.1"
    missing, present = missing_and_present(cache)
    needed = {blob_id(world.src, rev, "model.bin.mvc"), blob_id(world.src, rev, ".mvc/config.toml")}
    assert needed <= present
    assert blob_id(world.src, rev, "README.md") in missing
    assert blob_id(world.src, rev, "data.mvc") in missing
    assert blob_id(world.src, rev, ".gitignore") in missing
    # a second read asks for nothing new
    before = sorted(p.name for p in (cache / "objects" / "pack").iterdir())
    mvc.read_bytes(ref, repo=str(world.bare))
    assert sorted(p.name for p in (cache / "objects" / "pack").iterdir()) == before


def test_without_filters_the_server_sends_one_commit(world, user_cache, tmp_path):
    """A server that does not honour filters sends the blobs of the commit asked for, still at depth 1."""
    bare = tmp_path / "plain.git"
    git(tmp_path, "clone", "-q", "--bare", str(world.src), str(bare))
    git(bare, "config", "uploadpack.allowFilter", "false")
    assert mvc.read_bytes("model.bin", repo=str(bare)) == world.v2
    (cache,) = git_caches(user_cache)
    assert (cache / "shallow").exists()
    assert len(git(cache, "rev-list", "--all").split()) == 1


def test_rev_that_needs_history(world, user_cache):
    """A revision ls-remote cannot name (main~1, a short id) is resolved after fetching history, no blobs."""
    v1_commit = git(world.src, "rev-parse", "main~1").strip()
    assert mvc.read_bytes("model.bin", repo=str(world.bare), rev="main~1") == world.v1
    assert mvc.read_bytes("model.bin", repo=str(world.bare), rev=v1_commit[:10]) == world.v1
    assert mvc.read_bytes("model.bin", repo=str(world.bare), rev=v1_commit) == world.v1
    assert mvc.read_bytes("model.bin.mvc", repo=str(world.bare), rev="churn@v0.0.1") == world.v1
    (cache,) = git_caches(user_cache)
    missing, _ = missing_and_present(cache)
    assert blob_id(world.src, "HEAD", "README.md") in missing


# -- bad input: one line, what is wrong and what to do -------------------------------------------------
def test_unreachable_repository(mvc_error, tmp_path):
    for url in (str(tmp_path / "nowhere.git"), f"file://{tmp_path}/nowhere.git", "https://127.0.0.1:1/x.git"):
        mvc_error("get", "--repo", url, "churn#prod", "-o", str(tmp_path / "x"), words=(url, "cannot"))
        mvc_error("get", "--repo", url, "model.bin", "-o", str(tmp_path / "x"), words=(url, "cannot"))
        mvc_error("ls", "--repo", url, words=(url,))
        mvc_error("registry", "--repo", url, words=(url,))
    assert not (tmp_path / "x").exists()


def test_not_a_git_repository(mvc_error, tmp_path):
    (tmp_path / "plain").mkdir()
    mvc_error("get", "--repo", str(tmp_path / "plain"), "model.bin", words=(str(tmp_path / "plain"),))


def test_unknown_names(world, mvc_error, tmp_path):
    url, out = str(world.bare), str(tmp_path / "x")
    mvc_error("get", "--repo", url, "nope#prod", "-o", out, words=("nope", "churn"))
    mvc_error("get", "--repo", url, "nope@latest", "-o", out, words=("nope", "churn"))
    mvc_error("get", "--repo", url, "churn#staging", "-o", out, words=("staging", "prod"))
    mvc_error("get", "--repo", url, "churn@v9.9.9", "-o", out, words=("v9.9.9",))
    mvc_error("get", "--repo", url, "other.bin", "-o", out, words=("other.bin", "not tracked", "mvc ls --repo"))
    mvc_error("get", "--repo", url, "big.bin", "--rev", "churn@v0.0.1", "-o", out, words=("big.bin", "not tracked"))
    mvc_error("get", "--repo", url, "model.bin", "--rev", "nosuch", "-o", out, words=("nosuch",))
    # a commit id the repository does not have is an unknown revision, not a problem of access
    mvc_error("get", "--repo", url, "model.bin", "--rev", "f" * 40, "-o", out, words=("f" * 40, "unknown revision"))
    mvc_error("ls", "--repo", url, "--rev", "nosuch", words=("nosuch",))
    mvc_error("registry", "nope", "--repo", url, words=("nope",))
    mvc_error("get", "--repo", "", "model.bin", "-o", out, words=("--repo",))
    assert not (tmp_path / "x").exists()


def test_out_exists(world, mvc_cli, mvc_error, tmp_path):
    out = tmp_path / "m.bin"
    out.write_bytes(b"keep me")
    mvc_error("get", "--repo", str(world.bare), "churn#prod", "-o", str(out), words=("already exists", "--force"))
    assert out.read_bytes() == b"keep me"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mine").write_bytes(b"mine")
    mvc_error("get", "--repo", str(world.bare), "data", "-o", str(tmp_path / "d"), words=("already exists",))
    assert files_under(tmp_path / "d") == {"mine": b"mine"}
    mvc_error("get", "--repo", str(world.bare), "data", "-o", str(tmp_path / "d"), "--force", words=("did not write",))
    assert files_under(tmp_path / "d") == {"mine": b"mine"}
    mvc_cli("get", "--repo", str(world.bare), "churn#prod", "-o", str(out), "--force")
    mvc_cli("get", "--repo", str(world.bare), "data", "-o", str(tmp_path / "e"))
    mvc_cli("get", "--repo", str(world.bare), "data", "-o", str(tmp_path / "e"), "--force", "--cache")
    assert out.read_bytes() == world.v1 and files_under(tmp_path / "e") == world.data


def test_no_remote_configured(mvc_cli, mvc_error, tmp_path, monkeypatch, world):
    """A repository whose config names no remote: the read says to pass --remote, and works with it."""
    src = tmp_path / "noremote"
    src.mkdir()
    git(src, "init", "-q")
    mvc.init(str(src))
    shutil.copy(world.src / "model.bin", src / "model.bin")
    monkeypatch.chdir(src)
    mvc_cli("add", "model.bin")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "model")
    bare = tmp_path / "noremote.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(bare))
    monkeypatch.chdir(tmp_path / "here")
    mvc_error("get", "--repo", str(bare), "model.bin", "-o", str(tmp_path / "x"), words=("--remote",))
    with pytest.raises(NoRemote, match="in Python: remote="):  # the API's caller passes no option
        mvc.read_bytes("model.bin", repo=str(bare))
    mvc_error("get", "--repo", str(bare), "model.bin", "--remote", "store", "-o", str(tmp_path / "x"), words=("store",))
    mvc_cli("get", "--repo", str(bare), "model.bin", "--remote", str(world.store), "-o", str(tmp_path / "x"))
    assert (tmp_path / "x").read_bytes() == world.v2


def test_remote_without_the_object(world, mvc_error, tmp_path):
    empty = tmp_path / "empty-store"
    empty.mkdir()
    for remote in (str(empty), str(tmp_path / "no-store-here")):
        # the remote named as the user gave it (a URL), not as "remote --remote"
        mvc_error(
            "get",
            "--repo",
            str(world.bare),
            "churn#prod",
            "-o",
            str(tmp_path / "x"),
            "--remote",
            remote,
            words=(remote,),
        )
    assert not (tmp_path / "x").exists()


def craft(repo: Path, files: dict[str, bytes], parent: str = "HEAD") -> str:
    """A commit of parent's tree plus files, built with 'git mktree', which takes names the index refuses."""

    def tree(rev_tree: str | None, changes: dict[str, bytes]) -> str:
        entries: dict[str, str] = {}
        if rev_tree is not None:
            for rec in git(repo, "ls-tree", "-z", rev_tree).split("\0"):
                if rec:
                    meta, name = rec.split("\t", 1)
                    entries[name] = meta
        sub: dict[str, dict[str, bytes]] = {}
        for path, data in changes.items():
            head, _, rest = path.partition("/")
            if rest:
                sub.setdefault(head, {})[rest] = data
            else:
                oid = subprocess.run(
                    ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data, capture_output=True, check=True
                ).stdout.decode()
                entries[head] = f"100644 blob {oid.strip()}"
        for name, changes_below in sub.items():
            old = entries.get(name)
            below = old.split()[2] if old and old.split()[1] == "tree" else None
            entries[name] = f"040000 tree {tree(below, changes_below)}"
        listing = "".join(f"{meta}\t{name}\0" for name, meta in entries.items())
        out = subprocess.run(["git", "mktree", "-z"], cwd=repo, input=listing.encode(), capture_output=True, check=True)
        return out.stdout.decode().strip()

    root = git(repo, "rev-parse", f"{parent}^{{tree}}").strip()
    return git(repo, "commit-tree", tree(root, files), "-p", parent, "-m", "crafted").strip()


def publish(work: Path, bare: Path, commit: str, branch: str, tag: str | None = None, message: str = "x") -> None:
    git(work, "update-ref", f"refs/heads/{branch}", commit)
    refs = [f"refs/heads/{branch}"]
    if tag is not None:
        git(work, "tag", "-a", tag, "-m", message, commit)
        refs.append(f"refs/tags/{tag}")
    git(work, "push", "-q", str(bare), *refs)


def with_model(work: Path, name: str, target: str) -> bytes:
    text = (work / ".mvc" / "config.toml").read_text()
    return (text + f"\n[models.{name}]\npath = {json.dumps(target)}\n").encode()


TARGETS = [".mvc/config.toml", "sub/.git/hooks/pre-commit", ".gitignore", ".GIT/x"]
ENTRIES = [".git/config", "../escape", "a/../../escape", "/abs"]


@pytest.fixture(scope="module")
def hostile(world, tmp_path_factory) -> SimpleNamespace:
    """A bare repository that the hostile collaborator pushed to: pointers to paths mvc never reads (branch and
    registry tag evilN), directories whose manifests leave them (branch dirN, the manifests on a copy of the
    store), garbage pointers and configs, and a version tag on a commit without the model."""
    from mvc.format import pointer as ptrfmt
    from mvc.objects import manifest as mf

    top = tmp_path_factory.mktemp("hostile")
    work, bare = clone_pair(world, top)
    pointer = (work / "model.bin.mvc").read_bytes()
    for i, target in enumerate(TARGETS):
        files = {target + ".mvc": pointer, ".mvc/config.toml": with_model(work, f"evil{i}", target)}
        publish(work, bare, craft(work, files), f"evil{i}", f"evil{i}@v1.0.0")
    store = top / "store"
    shutil.copytree(world.store, store)
    v1 = oid_of(world.v1)
    for i, entry in enumerate(ENTRIES):
        manifest = mf.dumps([mf.Entry(entry, v1, len(world.v1)), mf.Entry("ok.bin", v1, len(world.v1))])
        store_file(store, oid_of(manifest)).parent.mkdir(parents=True, exist_ok=True)
        store_file(store, oid_of(manifest)).write_bytes(manifest)
        dir_pointer = ptrfmt.dumps(ptrfmt.Pointer("dir", oid_of(manifest), 2 * len(world.v1), nfiles=2))
        publish(work, bare, craft(work, {"d.mvc": dir_pointer}), f"dir{i}")
    publish(work, bare, craft(work, {"model.bin.mvc": b"this is = not [toml\n"}), "bad-pointer")
    publish(work, bare, craft(work, {".mvc/config.toml": b"[remote.store\nurl = 3\n"}), "bad-config")
    publish(work, bare, craft(work, {"model.bin.mvc": b'version = 99\nkind = "file"\n'}), "future-pointer")
    # a version tag on the first commit, before the model was added, whose annotation names the model
    first = git(work, "rev-list", "--max-parents=0", "HEAD").strip()
    oid = oid_of(world.v2)
    message = f"v0.0.9\n\nmvc-path: model.bin\nmvc-oid: {oid}\nmvc-size: {len(world.v2)}\n"
    git(work, "tag", "-a", "churn@v0.0.9", "-m", message, first)
    git(work, "push", "-q", str(bare), "refs/tags/churn@v0.0.9")
    return SimpleNamespace(bare=str(bare), store=str(store))


@pytest.mark.parametrize("i", range(len(TARGETS)), ids=TARGETS)
def test_pointer_to_a_path_mvc_never_reads(hostile, mvc_error, tmp_path, i):
    target, bare = TARGETS[i], hostile.bare
    out = tmp_path / "out"
    for args in (
        ("get", "--repo", bare, target, "--rev", f"evil{i}", "-o", str(out)),
        ("get", "--repo", bare, target + ".mvc", "--rev", f"evil{i}", "-o", str(out)),
        ("get", "--repo", bare, f"evil{i}@v1.0.0", "-o", str(out)),
        ("get", "--repo", bare, f"evil{i}@v1.0.0"),
        ("ls", "--repo", bare, "--rev", f"evil{i}"),
    ):
        line = mvc_error(*args)
        assert "never" in line and "force" not in line, line
    assert not out.exists() and list((tmp_path / "here").iterdir()) == []
    for call in (mvc.read_bytes, mvc.describe, mvc.materialize):
        with pytest.raises(mvc.errors.MvcError):
            call(f"evil{i}@v1.0.0", repo=bare)
    assert not (tmp_path / "user-cache" / "models").exists()


@pytest.mark.parametrize("i", range(len(ENTRIES)), ids=ENTRIES)
def test_manifest_entry_mvc_never_writes(hostile, mvc_error, tmp_path, i):
    """A directory whose manifest (stored under its true oid) lists a path outside it, or git's files."""
    out = tmp_path / "sub" / "out"
    args = ("get", "--repo", hostile.bare, "d", "--rev", f"dir{i}", "-o", str(out), "--remote", hostile.store)
    mvc_error(*args, words=("manifest", "invalid"))
    mvc_error(*args, "--cache", words=("manifest", "invalid"))
    with pytest.raises(mvc.errors.MvcError):
        mvc.materialize("d", repo=hostile.bare, rev=f"dir{i}", remote=hostile.store)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "sub" / "escape").exists()
    assert not (tmp_path / "sub").exists() or list((tmp_path / "sub").iterdir()) == []
    assert not (tmp_path / ".git").exists()


def test_garbage_at_the_revision(hostile, mvc_error, tmp_path):
    bare, out = hostile.bare, str(tmp_path / "x")
    line = mvc_error("get", "--repo", bare, "model.bin", "--rev", "bad-pointer", "-o", out, words=("model.bin.mvc",))
    mvc_error("ls", "--repo", bare, "--rev", "bad-pointer", words=("model.bin.mvc",))
    mvc_error("get", "--repo", bare, "model.bin", "--rev", "bad-config", "-o", out, words=(".mvc/config.toml",))
    mvc_error("get", "--repo", bare, "model.bin", "--rev", "future-pointer", "-o", out, words=("model.bin.mvc",))
    assert not (tmp_path / "x").exists()
    assert "git checkout -- model.bin.mvc at" not in line, "advice to run a command that cannot work: " + line


def test_registry_tag_that_lies(world, hostile, mvc_error, tmp_path):
    """A version tag on a commit that has no model (its annotation names one): the error says so."""
    bare = hostile.bare
    line = mvc_error("get", "--repo", bare, "churn@v0.0.9", "-o", str(tmp_path / "x"), words=("churn@v0.0.9",))
    assert "model.bin" in line and ("not tracked" in line or "no path" in line), line
    mvc_error("get", "--repo", bare, "churn@latest", "-o", str(tmp_path / "x"))  # the newest version is that one
    assert not (tmp_path / "x").exists()
    assert mvc.read_bytes("churn@v0.0.1", repo=bare) == world.v1  # the other versions still read


# -- ls and registry by URL print what they print in the repository ------------------------------------
@pytest.mark.parametrize("kind", ["bare", "no-checkout", "file-url"])
def test_ls_and_registry_by_url(world, mvc_cli, kind):
    url = urls(world)[kind]
    assert json.loads(mvc_cli("ls", "--repo", url, "--json").stdout) == world.ls_json
    assert json.loads(mvc_cli("ls", "--repo", url, "--rev", "churn@v0.0.1", "--json").stdout) == world.ls_v1_json
    assert mvc_cli("ls", "--repo", url).stdout == world.ls_text
    assert json.loads(mvc_cli("registry", "--repo", url, "--json").stdout) == world.registry_json
    assert json.loads(mvc_cli("registry", "churn", "--repo", url, "--json").stdout) == world.registry_churn_json
    assert mvc_cli("registry", "--repo", url).stdout == world.registry_text
    assert mvc.registry(repo=url) == world.registry_json


def test_ls_by_url_reads_no_weights(world, mvc_cli, user_cache):
    with moved_away(world.store):
        mvc_cli("ls", "--repo", str(world.bare), "--json")
        mvc_cli("registry", "--repo", str(world.bare), "--json")
    assert cached_objects(user_cache) == []


# -- --remote: the committed config names a remote this machine cannot see -----------------------------
def test_remote_override(world, mvc_cli, mvc_error, tmp_path, monkeypatch):
    work, bare = clone_pair(world, tmp_path)
    monkeypatch.chdir(work)
    mvc_cli("remote", "modify", "store", "url", str(tmp_path / "their-nas" / "store"))
    git(work, "commit", "-q", "-m", "the remote on their machine")
    git(work, "push", "-q", str(bare), "main")
    monkeypatch.chdir(tmp_path / "here")
    out = tmp_path / "m.bin"
    mvc_error("get", "--repo", str(bare), "model.bin", "-o", str(out), words=("their-nas",))
    assert not out.exists()
    mvc_cli("get", "--repo", str(bare), "model.bin", "-o", str(out), "--remote", str(world.store))
    assert out.read_bytes() == world.v2
    rel = os.path.relpath(world.store)  # relative to where the command is typed
    mvc_cli("get", "--repo", str(bare), "churn#prod", "-o", str(tmp_path / "p.bin"), "--remote", rel)
    assert (tmp_path / "p.bin").read_bytes() == world.v1
    assert mvc.read_bytes("model.bin", repo=str(bare), remote=str(world.store)) == world.v2
    assert Path(mvc.materialize("model.bin", repo=str(bare), remote=str(world.store))).read_bytes() == world.v2
    mvc.get("model.bin", tmp_path / "m2.bin", repo=str(bare), remote=f"file://{world.store}")
    assert (tmp_path / "m2.bin").read_bytes() == world.v2


def test_remote_by_name(world, s3_endpoint):
    """--remote NAME picks another of the remotes the repository's config names."""
    s3_store(s3_endpoint, world.store)
    url = str(world.bare)
    assert mvc.read_bytes("churn#prod", repo=url, remote="s3") == world.v1
    with moved_away(world.store):
        assert mvc.read_bytes("model.bin", repo=url, remote="s3") == world.v2
    with pytest.raises(mvc.errors.MvcError, match="nas"):
        mvc.read_bytes("model.bin", repo=url, remote="nas")


# -- hermetic, and the cache's git is the cache's --------------------------------------------------------
def only_loopback(monkeypatch):
    """No connection from this process leaves 127.0.0.1 (git runs only on paths and 127.0.0.1 URLs here)."""
    import ipaddress
    import socket

    real = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            assert host == "localhost" or ipaddress.ip_address(host).is_loopback, f"connection to {address}"
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


loopback_only = pytest.fixture(autouse=True, name="loopback_only")(only_loopback)


@pytest.mark.parametrize(
    "names",
    [("GIT_DIR", "GIT_INDEX_FILE"), ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")],
    ids=["hook", "hook-with-work-tree"],
)
def test_a_hooks_git_environment_is_left_alone(world, tmp_path, monkeypatch, names):
    """Run from a git hook (GIT_DIR, GIT_INDEX_FILE and, where git runs with --work-tree, GIT_WORK_TREE name the
    user's repository), the cache's git works in the cache, and the user's repository is left as it was."""
    victim = tmp_path / "victim"
    git(tmp_path, "init", "-q", str(victim))
    (victim / "f").write_text("x")
    git(victim, "add", "f")
    git(victim, "commit", "-q", "-m", "f")
    looks = (("show-ref",), ("config", "--list", "--local"), ("ls-files", "-s"), ("status", "--porcelain"))
    before = [git(victim, *args) for args in looks]
    env = {"GIT_DIR": victim / ".git", "GIT_WORK_TREE": victim, "GIT_INDEX_FILE": victim / ".git" / "index"}
    for name in names:
        monkeypatch.setenv(name, str(env[name]))
    assert mvc.read_bytes("churn#prod", repo=str(world.bare)) == world.v1
    assert mvc.read_bytes("model.bin", repo=str(world.bare)) == world.v2
    for name in names:
        monkeypatch.delenv(name)
    assert [git(victim, *args) for args in looks] == before


def test_two_urls_two_caches(world, user_cache):
    """Each URL has a cache of its own; the same URL spelt the same way shares one."""
    mvc.read_bytes("model.bin", repo=str(world.bare))
    mvc.read_bytes("model.bin", repo=str(world.bare) + "/")
    mvc.read_bytes("model.bin", repo=str(world.nocheckout))
    assert len(git_caches(user_cache)) == 2


def test_tag_moved_upstream(world, tmp_path):
    """Tags are never moved by mvc or GTO, but git lets anyone force-push one: the cache follows."""
    work, bare = clone_pair(world, tmp_path)
    assert mvc.read_bytes("churn@v0.0.2", repo=str(bare)) == world.v2
    git(work, "tag", "-f", "-a", "churn@v0.0.2", "-m", "moved", "churn@v0.0.1^{commit}")
    git(work, "push", "-q", "--force", str(bare), "refs/tags/churn@v0.0.2")
    assert mvc.read_bytes("churn@v0.0.2", repo=str(bare)) == world.v1


def test_empty_and_plain_repositories(mvc_cli, mvc_error, tmp_path):
    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(empty))
    mvc_error("get", "--repo", str(empty), "model.bin", "-o", str(tmp_path / "x"), words=("no commits",))
    mvc_error("ls", "--repo", str(empty), words=("no commits",))  # not "unknown revision 'HEAD'"
    mvc_error("get", "--repo", str(empty), "churn#prod", "-o", str(tmp_path / "x"), words=("churn",))
    assert json.loads(mvc_cli("registry", "--repo", str(empty), "--json").stdout) == []
    plain = tmp_path / "plain"  # git, never mvc
    git(tmp_path, "init", "-q", str(plain))
    (plain / "model.bin").write_bytes(b"in git itself")
    git(plain, "add", "model.bin")
    git(plain, "commit", "-q", "-m", "model")
    mvc_error("get", "--repo", str(plain), "model.bin", "-o", str(tmp_path / "x"), words=("not tracked",))
    assert json.loads(mvc_cli("ls", "--repo", str(plain), "--json").stdout) == []
    assert not (tmp_path / "x").exists()


def test_credentials_in_the_url_stay_out_of_messages(mvc_error):
    url = "https://alice:s3cr3t@127.0.0.1:1/x.git"
    for args in (("get", "--repo", url, "model.bin"), ("ls", "--repo", url), ("registry", "--repo", url)):
        line = mvc_error(*args, words=("127.0.0.1",))
        assert "s3cr3t" not in line, line


def test_cache_dir_not_writable(world, mvc_error, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MVC_CACHE_DIR", str(blocker / "mvc"))
    mvc_error("get", "--repo", str(world.bare), "model.bin", "-o", str(tmp_path / "x"), words=("MVC_CACHE_DIR",))
    assert not (tmp_path / "x").exists()


def test_repo_relative_to_where_the_command_is_typed(world, mvc_cli, tmp_path, monkeypatch):
    """-C changes where tracked paths are read from, not where --repo, --remote and -o are (the user's paths)."""
    (tmp_path / "elsewhere").mkdir()
    rel_repo, rel_store = os.path.relpath(world.bare), os.path.relpath(world.store)
    mvc_cli("-C", str(tmp_path / "elsewhere"), "get", "--repo", rel_repo, "model.bin", "-o", "m.bin")
    assert (tmp_path / "here" / "m.bin").read_bytes() == world.v2
    monkeypatch.chdir(tmp_path / "here")  # -C moved this process (the CLI runs in it)
    mvc_cli("-C", "../elsewhere", "get", "--repo", rel_repo, "churn#prod", "-o", "p.bin", "--remote", rel_store)
    assert (tmp_path / "here" / "p.bin").read_bytes() == world.v1
    monkeypatch.chdir(tmp_path / "here")
    # a remote's name stays a name (not a directory "store" where the command is typed)
    mvc_cli("-C", "../elsewhere", "get", "--repo", rel_repo, "churn#prod", "-o", "n.bin", "--remote", "store")
    assert (tmp_path / "here" / "n.bin").read_bytes() == world.v1


def test_two_processes_share_a_new_cache(world, tmp_path):
    """Two reads of the same URL at once, the user cache empty: both succeed, one git cache is made."""
    import sys

    outs = [tmp_path / f"m{i}.bin" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mvc", "get", "--repo", str(world.bare), "churn#prod", "-o", str(out), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert all(out.read_bytes() == world.v1 for out in outs)
    assert len(git_caches(tmp_path / "user-cache")) == 1


def test_a_failed_get_leaves_no_directory_it_made(world, tmp_path, mvc_error):
    """OUT's missing parent directories are made for the write, and removed again when it fails."""
    out = tmp_path / "new" / "deeper" / "model.bin"
    mvc_error("get", "--repo", str(world.bare), "churn#prod", "--remote", str(tmp_path / "no-store"), "-o", str(out))
    assert not (tmp_path / "new").exists()


# -- a serving process: threads, killed readers -----------------------------------------------------
def test_threads_of_one_process_read_at_once(world, tmp_path, mvc_cli):
    """Threads of one process call mvc.get by URL on a fresh user cache (what a web server does): each gets
    its copy, those writing one directory at once leave a whole copy, and the cache serves the next call."""
    import threading

    errors: list[BaseException] = []
    outs = tmp_path / "outs"

    def one(i: int) -> None:
        try:
            ref, out, force = [
                ("churn#prod", outs / f"m{i}.bin", False),
                ("churn@v0.0.2", outs / f"n{i}.bin", False),
                ("data", outs / "shared", True),
            ][i % 3]
            mvc.get(ref, str(out), repo=str(world.bare), force=force and (outs / "shared").exists())
        except mvc.MvcError as e:
            # two first writers of "shared" at once: one may find it there; two with force: one may find that the
            # other replaced it meanwhile, during its fetch or as it starts (its check reads the copy the other is
            # swapping out), and leave it (either way a whole copy is there, checked below)
            raced = ("already exists", "changed while the model was fetched", "or its files changed since")
            if not any(r in str(e) for r in raced):
                errors.append(e)
        except BaseException as e:  # any other error fails the test
            errors.append(e)

    for _ in range(2):
        threads = [threading.Thread(target=one, args=(i,)) for i in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    for i in range(0, 9, 3):
        assert (outs / f"m{i}.bin").read_bytes() == world.v1
        assert (outs / f"n{i + 1}.bin").read_bytes() == world.v2
    assert files_under(outs / "shared") == world.data
    assert sorted(p.name for p in outs.iterdir() if p.name.startswith(".mvc-tmp")) == []
    mvc_cli("get", "--repo", str(world.bare), "churn#prod", "-o", str(tmp_path / "later.bin"))
    assert (tmp_path / "later.bin").read_bytes() == world.v1


def test_what_a_killed_get_left_beside_out_is_swept(world, tmp_path, mvc_cli):
    from mvc.storage import tempfiles

    dead = subprocess.Popen(["true"])
    dead.wait()
    out_dir = tmp_path / "srv"
    out_dir.mkdir()
    name = tempfiles.tmp_name(str(out_dir), "m.bin").replace(f".{os.getpid()}.", f".{dead.pid}.")
    Path(name).write_bytes(b"half a model")
    left_dir = Path(tempfiles.tmp_name(str(out_dir), "data").replace(f".{os.getpid()}.", f".{dead.pid}."))
    make_file(left_dir / "x.bin", 10)
    young = Path(tempfiles.tmp_name(str(out_dir), "young").replace(f".{os.getpid()}.", f".{dead.pid}."))
    young.write_bytes(b"maybe another machine's, writing now")  # (its pid means nothing there): kept
    hour_ago = time.time() - 3700
    for p in (Path(name), left_dir):
        os.utime(p, (hour_ago, hour_ago))
    alive = Path(tempfiles.tmp_name(str(out_dir), "other"))  # a writer still running (this one): kept
    alive.write_bytes(b"busy")
    os.utime(alive, (hour_ago, hour_ago))
    (out_dir / "mine.txt").write_bytes(b"mine")
    mvc_cli("get", "--repo", str(world.bare), "churn#prod", "-o", str(out_dir / "m.bin"))
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([alive.name, young.name, "m.bin", "mine.txt"])


def test_a_fetch_killed_under_its_lock_leaves_no_lock_that_stops_the_next(world, tmp_path, mvc_cli):
    """git's own lock files (shallow.lock, a ref's .lock) that a killed fetch left in the user's cache of a
    repository are stale once mvc holds its lock there: the next read removes them and goes on."""
    mvc_cli("get", "--repo", str(world.bare), "churn@v0.0.1", "-o", str(tmp_path / "a.bin"))
    [cache] = [p for p in (tmp_path / "user-cache" / "repos").iterdir() if p.is_dir()]
    (cache / "shallow.lock").write_bytes(b"")
    (cache / "packed-refs.lock").write_bytes(b"")
    (cache / "refs" / "tags").mkdir(parents=True, exist_ok=True)
    (cache / "refs" / "tags" / "churn@v0.0.2.lock").write_bytes(b"")
    mvc_cli("get", "--repo", str(world.bare), "churn@v0.0.2", "-o", str(tmp_path / "b.bin"))
    assert (tmp_path / "b.bin").read_bytes() == world.v2
    assert sorted(p.name for p in cache.rglob("*.lock")) == ["mvc.lock"]


def _read_only_runs() -> bool:
    try:
        return (
            subprocess.run(
                ["unshare", "-m", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp /tmp"],
                capture_output=True,
                timeout=30,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _read_only_runs(), reason="needs a private mount namespace (unshare -m, as root)")
def test_a_read_only_user_cache_serves_what_it_holds(world, tmp_path, user_cache):
    """A cache baked into an image with a read-only root: reads it holds work; one it lacks says to set
    MVC_CACHE_DIR (one line, not a URL or credentials problem)."""
    import sys

    mvc.get("churn#prod", str(tmp_path / "warm.bin"), repo=str(world.bare), cache=True)
    mvc.materialize("data", repo=str(world.bare))
    script = f"""
import mvc, sys
url = {str(world.bare)!r}
print(mvc.read_bytes("churn#prod", repo=url) == open({str(tmp_path / "warm.bin")!r}, "rb").read())
print(mvc.get("churn#prod", {str(tmp_path / "out.bin")!r}, repo=url)["oid"])
print(mvc.materialize("data", repo=url))
try:
    mvc.registry(repo=url)
except mvc.MvcError as e:
    print("refused:", e)
"""
    ro = str(user_cache)
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" -c "$3"',
            "sh",
            ro,
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "True" and lines[1].startswith("xxh128:") and lines[2].endswith("/data")
    assert (tmp_path / "out.bin").read_bytes() == world.v1


def test_a_remote_that_names_nothing_is_refused_also_when_the_cache_holds_the_object(
    world, tmp_path, mvc_cli, mvc_error
):
    url = str(world.bare)
    mvc_cli("get", "--repo", url, "churn#prod", "-o", str(tmp_path / "a.bin"), "--cache")
    for remote, words in (
        ("nosuchremote", ("no remote 'nosuchremote'",)),
        (str(tmp_path / "no" / "such"), ("does not exist",)),
        ("zzz://x", ("zzz://",)),
    ):
        mvc_error("get", "--repo", url, "churn#prod", "-o", str(tmp_path / "b.bin"), "--remote", remote, words=words)
        with pytest.raises(mvc.MvcError):
            mvc.materialize("churn#prod", repo=url, remote=remote)
    assert not (tmp_path / "b.bin").exists()
    mvc_cli("get", "--repo", url, "churn#prod", "-o", str(tmp_path / "c.bin"), "--remote", str(world.store))


def test_a_home_relative_remote_directory_is_found(world, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copytree(world.store, home / "store")
    monkeypatch.setenv("HOME", str(home))
    mvc.get("churn#prod", str(tmp_path / "a.bin"), repo=str(world.bare), remote="~/store")
    assert (tmp_path / "a.bin").read_bytes() == world.v1


def test_a_path_in_a_work_tree_reads_that_work_tree_and_a_url_of_it_its_head(repo, tmp_path, mvc_cli, monkeypatch):
    """repo= a path in a work tree (its root, a subdirectory, a file, a Path) is that work tree, as for every verb: the
    pointer the work tree holds now, from its cache. Its file:// URL, a bare clone of it and the CLI's --repo read
    by URL: HEAD, from the remote."""
    mvc_cli("remote", "add", "store", str(tmp_path / "store"), "--default")
    make_file(repo / "m.bin", 1000, seed=1)
    (repo / "sub").mkdir()
    (repo / "sub" / "keep.txt").write_text("in git\n")
    mvc_cli("add", "m.bin", "--name", "churn")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    mvc_cli("push")
    mvc_cli("register", "churn")
    v1 = (repo / "m.bin").read_bytes()
    make_file(repo / "m.bin", 1000, seed=2)  # added, not committed nor pushed: in the cache alone
    mvc_cli("add", "m.bin")
    v2 = (repo / "m.bin").read_bytes()
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MVC_CACHE_DIR", str(tmp_path / "user-cache"))
    for where in (str(repo), str(repo / "sub"), repo / "sub", str(repo / "sub" / "keep.txt")):
        assert mvc.read_bytes("m.bin", repo=where) == v2, where
        with mvc.open("m.bin", repo=where) as f:
            assert f.read() == v2
        assert "repo" not in mvc.describe("m.bin", repo=where)
        assert Path(mvc.materialize("m.bin", repo=where)).read_bytes() == v2
        assert mvc.get("m.bin", tmp_path / "out.bin", repo=where, force=True)["rev"] is None  # the work tree
        assert (tmp_path / "out.bin").read_bytes() == v2
        assert mvc.read_bytes("churn@latest", repo=where) == v1
        assert [m["name"] for m in mvc.registry(repo=where)] == ["churn"]
    for url in (f"file://{repo}", str(bare)):
        assert mvc.read_bytes("m.bin", repo=url) == v1, url
        assert mvc.describe("m.bin", repo=url)["repo"] == url
    mvc_cli("get", "--repo", str(repo), "m.bin", "-o", str(tmp_path / "cli.bin"))  # docs/cli.md: --repo reads HEAD
    assert (tmp_path / "cli.bin").read_bytes() == v1
