"""Remotes a collaborator's committed config can point at what is not a remote (docs/FORMAT.md, "A remote",
"The cache"): a cache (this repository's, or one another project shares) is refused by every verb that uses a
remote; ``mvc gc -r`` deletes only from a store that holds the layout marker; a cache.dir inside the work tree is
ignored by git. Each refusal is one line, and nothing of the place is written or deleted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import git, make_file

from mvc.objects import layout

FIX = "point the remote at a directory of its own"
# every verb that uses the remote (the default remote, or -r team)
USES = [
    ("push",),
    ("fetch",),
    ("pull",),
    ("status", "-r", "team"),
    ("verify", "-r", "team"),
    ("gc", "-r", "team"),
    ("gc", "-r", "team", "--force", "--sole-user", "--grace", "0"),
]


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path below root with its mode, mtime and (files) bytes: what "nothing was written" compares."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_mode, st.st_mtime_ns, p.read_bytes() if p.is_file() else b"")
    return out


def other_project(tmp_path: Path, mvc_cli, cache: Path, monkeypatch) -> Path:
    """Another repository whose only copy of other.bin is in the cache it shares at cache."""
    here = os.getcwd()
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    monkeypatch.chdir(other)
    mvc_cli("init")
    mvc_cli("config", "cache.dir", str(cache))
    make_file(other / "other.bin", 5000, seed=7)
    mvc_cli("add", "other.bin")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "other")
    monkeypatch.chdir(here)
    return other


def set_remote(repo: Path, url: str) -> None:
    """What the collaborator commits: remote team, the default."""
    config = repo / ".mvc" / "config.toml"
    config.write_text(config.read_text() + f'\n[remote.team]\nurl = "{url}"\n\n[core]\nremote = "team"\n')


@pytest.mark.parametrize("case", ["shared", "own", "inside-own", "contains-own", "another", "inside-another"])
def test_a_remote_that_is_a_cache_is_refused_by_every_verb(repo, mvc_cli, mvc_error, tmp_path, monkeypatch, case):
    shared = tmp_path / "shared-cache"
    other = other_project(tmp_path, mvc_cli, shared, monkeypatch)
    if case == "shared":  # the team's cache as this repository's cache.dir, and as its remote
        mvc_cli("config", "cache.dir", str(shared))
        url, shown, why = str(shared), shared, "is this repository's cache"
    elif case == "own":
        url, shown, why = ".mvc/cache", repo / ".mvc" / "cache", "is this repository's cache"
    elif case == "inside-own":
        url, shown, why = ".mvc/cache/compact", repo / ".mvc" / "cache" / "compact", "lies inside this repository's"
    elif case == "contains-own":
        mvc_cli("config", "cache.dir", str(tmp_path / "team" / "cache"))
        url, shown, why = str(tmp_path / "team"), tmp_path / "team", "contains this repository's cache"
    elif case == "another":  # not this repository's cache: told by what its root holds
        url, shown, why = str(shared), shared, "is an mvc cache"
    else:
        url, shown, why = str(shared / "compact"), shared / "compact", f"lies inside the mvc cache {shared}"
    set_remote(repo, url)
    make_file(repo / "m.bin", 3000)
    mvc_cli("add", "m.bin")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a collaborator's config, and a model")
    cache = Path(repo / ".mvc" / "cache" if case in ("own", "inside-own", "another", "inside-another") else shared)
    if case == "contains-own":
        cache = tmp_path / "team"
    before = {d: snapshot(d) for d in {cache, shared}}
    for args in USES:
        line = mvc_error(*args, words=("remote team", os.path.realpath(shown), why, FIX, "'mvc remote modify team"))
        assert "nothing was read or written" in line, line
    assert {d: snapshot(d) for d in before} == before  # nothing written, nothing deleted
    monkeypatch.chdir(other)
    assert "every version checked can be read back" in mvc_cli("verify").output
    monkeypatch.chdir(repo)
    mvc_cli("remote", "modify", "team", "url", str(tmp_path / "team-remote"))  # the fix the error names works
    assert "pushed 1 object" in mvc_cli("push").output


def test_a_cache_is_told_from_a_remote_by_its_root(repo, mvc_cli, tmp_path):
    make_file(repo / "m.bin", 3000)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default")
    mvc_cli("push")
    cache = repo / ".mvc" / "cache"
    assert layout.cache_at(str(cache)) == os.path.realpath(cache)
    assert layout.cache_at(str(cache / "objects")) == os.path.realpath(cache)
    assert layout.cache_at(str(tmp_path / "remote")) is None  # a remote pushed to is not a cache
    assert layout.cache_at(str(tmp_path / "nowhere")) is None
    (cache / layout.IGNORE).unlink()  # a cache from before the .gitignore, no other sign: not told by its root
    assert layout.cache_at(str(cache)) is None
    (cache / "quarantine").mkdir()  # what only a cache holds
    assert layout.cache_at(str(cache)) == os.path.realpath(cache)


# -- gc -r and a place without the marker ------------------------------------------------------------------
GC = [
    ("gc", "-r", "evil"),
    ("gc", "-r", "evil", "--force"),
    ("gc", "-r", "evil", "--sole-user"),
    ("gc", "-r", "evil", "--force", "--sole-user", "--grace", "0"),
]


def someones_dir(root: Path, foreign: bool) -> Path:
    """A directory with files whose names look like an object and a pack; foreign: and something else."""
    (root / "objects" / "ab").mkdir(parents=True)
    (root / "objects" / "ab" / ("c" * 30)).write_text("user data")
    (root / "packs").mkdir()
    (root / "packs" / ("0" * 32 + ".pack")).write_text("user data")
    if foreign:
        (root / "Documents").mkdir()
        (root / "Documents" / "notes.txt").write_text("notes")
    return root


@pytest.mark.parametrize("foreign", [True, False], ids=["not-mvcs", "no-marker"])
def test_gc_of_a_remote_without_the_marker_deletes_nothing(repo, mvc_cli, mvc_error, tmp_path, foreign):
    place = someones_dir(tmp_path / "someones-dir", foreign)
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "evil", str(place))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x")
    before = snapshot(place)
    if foreign:  # what push says, gc says
        mvc_error("push", "-r", "evil", words=("not empty and not an mvc remote", "Documents"))
    for args in GC:
        if foreign:
            words: tuple[str, ...] = (str(place), "not empty and not an mvc remote", "'Documents'", "point the remote")
        else:
            words = ("remote evil", "has no mvc.toml", "'mvc push -r evil --verify-remote'")
        line = mvc_error(*args, words=words)
        assert "nothing was deleted" in line, line
        assert snapshot(place) == before  # no gc-stamp, no object or pack deleted
    assert not (place / layout.GC_STAMP).exists()


def test_a_remote_that_lost_its_marker_is_collected_once_a_push_marks_it(repo, mvc_cli, mvc_error, tmp_path):
    remote = tmp_path / "remote"
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(remote), "--default")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    mvc_cli("push")
    make_file(repo / "m.bin", 1000, seed=1)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-am", "v2")
    mvc_cli("push")
    (remote / layout.MARKER).unlink()  # an mvc remote from before markers looks like this
    before = snapshot(remote)
    mvc_error("gc", "-r", "origin", "--force", "--grace", "0", "--keep-last", "1", words=("has no mvc.toml",))
    assert snapshot(remote) == before
    mvc_cli("push", "--verify-remote")  # what the error says to run: it writes the marker
    assert (remote / layout.MARKER).read_bytes() == layout.MARKER_BYTES
    out = mvc_cli("gc", "-r", "origin", "--force", "--grace", "0", "--keep-last", "1").output
    assert "deleted from origin 1 object" in out, out


def test_gc_of_an_s3_prefix_without_the_marker_deletes_nothing(repo, mvc_cli, mvc_error, s3_endpoint):
    from remote_suite import S3Backend, configure

    s3 = S3Backend(s3_endpoint)
    configure(mvc_cli, s3, "evil")
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "x")
    s3.write("objects/ab/" + "c" * 30, b"someone's data")
    s3.write("packs/" + "0" * 32 + ".pack", b"someone's data")
    before = s3.rels()
    for args in GC:
        mvc_error(*args, words=("remote evil", "has no mvc.toml", "nothing was deleted"))
    s3.write("notes.txt", b"someone's notes")
    mvc_error("push", words=("not empty and not an mvc remote", "notes.txt"))
    for args in GC:
        mvc_error(*args, words=("not empty and not an mvc remote", "notes.txt", "nothing was deleted"))
    assert s3.rels() == before | {"notes.txt"}  # no gc-stamp, nothing deleted
    assert s3.read("objects/ab/" + "c" * 30) == b"someone's data"


# -- a cache.dir inside the work tree ------------------------------------------------------------------
def ignored(repo: Path, rel: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", rel], cwd=repo).returncode == 0


def test_a_cache_inside_the_work_tree_is_ignored_by_git(repo, mvc_cli):
    mvc_cli("config", "cache.dir", "../vendor")  # a collaborator's committed cache.dir: repo/vendor
    git(repo, "commit", "-q", "-am", "cache.dir")
    make_file(repo / "private.bin", 3000)
    mvc_cli("add", "private.bin")
    vendor = repo / "vendor"
    assert (vendor / layout.IGNORE).read_bytes() == layout.IGNORE_BYTES
    (obj,) = [p for p in (vendor / "objects").rglob("*") if p.is_file()]
    for p in (obj, vendor / layout.MARKER, vendor / layout.IGNORE):
        assert ignored(repo, str(p.relative_to(repo))), p
    git(repo, "add", "-A")
    staged = git(repo, "diff", "--cached", "--name-only").split()
    assert "private.bin.mvc" in staged and not [s for s in staged if s.startswith("vendor")], staged
    assert "vendor" not in git(repo, "status", "--porcelain", "--untracked-files=all")


def test_a_cache_made_before_the_gitignore_gets_it_on_its_next_write(repo, mvc_cli):
    mvc_cli("config", "cache.dir", "../vendor")
    make_file(repo / "a.bin", 3000)
    mvc_cli("add", "a.bin")
    (repo / "vendor" / layout.IGNORE).unlink()  # as an mvc before it left a cache
    assert not ignored(repo, "vendor/mvc.toml")
    make_file(repo / "b.bin", 3000, seed=1)
    mvc_cli("add", "b.bin")
    assert ignored(repo, "vendor/mvc.toml")
    assert not [p for p in (repo / "vendor" / "objects").rglob("*") if p.is_file() and not ignored(repo, str(p))]


def test_a_gitignore_of_the_users_in_a_cache_is_left_alone(repo, mvc_cli):
    make_file(repo / "a.bin", 3000)
    mvc_cli("add", "a.bin")
    ours = repo / ".mvc" / "cache" / layout.IGNORE
    assert ours.read_bytes() == layout.IGNORE_BYTES  # every cache has one: harmless outside a work tree
    ours.write_text("# mine\n*\n")
    make_file(repo / "b.bin", 3000, seed=1)
    mvc_cli("add", "b.bin")
    assert ours.read_text() == "# mine\n*\n"


def test_a_sparse_terabyte_at_an_objects_place_on_a_directory_remote_fills_no_disk(repo, mvc_cli, tmp_path):
    """A shared directory remote whose object file was replaced by a sparse file of a terabyte (which costs its
    writer nothing): pull refuses it by its size before it copies a byte, and the cache does not grow."""
    import shutil

    from conftest import make_file

    remote = tmp_path / "shared"
    remote.mkdir()
    make_file(repo / "model.bin", 5000, seed=3)
    mvc_cli("add", "model.bin")
    mvc_cli("remote", "add", "origin", str(remote), "--default")
    mvc_cli("push")
    (obj,) = list((remote / "objects").glob("*/*"))
    os.truncate(obj, 1 << 40)
    shutil.rmtree(repo / ".mvc" / "cache")
    (repo / "model.bin").unlink()
    result = mvc_cli("pull", ok=False)
    assert result.exit_code != 0 and f"holds {1 << 40} bytes, but the object has 5000" in result.stderr
    used = sum(p.stat().st_blocks * 512 for p in (repo / ".mvc").rglob("*") if p.is_file())
    assert used < 10 << 20 and not (repo / "model.bin").exists()
