"""cache.type: hardlink, symlink, copy, reflink (falls back to copy on ext4); read-only objects; unprotect."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import git, make_file

from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf


def obj(repo, oid):
    return repo / ".mvc" / "cache" / "objects" / oid[7:9] / oid[9:]


def oid_at(path) -> str:
    return ptrfmt.loads(path.with_name(path.name + ".mvc").read_bytes()).oid


def all_objects(repo):
    return list((repo / ".mvc" / "cache" / "objects").glob("*/*"))


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(params=["reflink,copy", "hardlink", "symlink", "copy", "reflink"])
def any_mode(request, repo, mvc_cli):
    mvc_cli("config", "cache.type", request.param)
    return request.param


def test_objects_are_read_only_in_every_mode(repo, mvc_cli, any_mode):
    make_file(repo / "m.bin", 1000, seed=1)
    make_file(repo / "d" / "a.bin", 100, seed=2)
    make_file(repo / "d" / "x.sh", 100, seed=3).chmod(0o755)
    mvc_cli("add", "m.bin", "d")
    objects = all_objects(repo)
    assert len(objects) == 4  # m.bin, a.bin, x.sh and the manifest
    assert {mode(p) for p in objects} == {0o444}
    assert not list((repo / ".mvc" / "cache" / "tmp").iterdir())
    assert mvc_cli("status").stdout == "d: up to date\nm.bin: up to date\n"
    # and a full round trip through the cache works in this mode
    data = {p: p.read_bytes() for p in (repo / "m.bin", repo / "d" / "a.bin", repo / "d" / "x.sh")}
    (repo / "m.bin").unlink()
    shutil.rmtree(repo / "d")
    mvc_cli("checkout")
    assert {p: p.read_bytes() for p in data} == data
    assert mvc_cli("status").stdout == "d: up to date\nm.bin: up to date\n"
    assert {mode(p) for p in all_objects(repo)} == {0o444}


def test_hardlink(repo, mvc_cli):
    mvc_cli("config", "cache.type", "hardlink")
    data = make_file(repo / "m.bin", 1000).read_bytes()
    mvc_cli("add", "m.bin")
    o = obj(repo, oid_at(repo / "m.bin"))
    assert os.stat(repo / "m.bin").st_ino == os.stat(o).st_ino
    assert mode(repo / "m.bin") == 0o444  # an in-place write cannot corrupt the cache
    assert (repo / "m.bin").read_bytes() == data
    (repo / "m.bin").unlink()
    mvc_cli("checkout")
    assert os.stat(repo / "m.bin").st_ino == os.stat(o).st_ino
    assert mvc_cli("status").stdout == "m.bin: up to date\n"


def test_hardlink_when_object_already_cached(repo, mvc_cli):
    """Content the cache already holds: the workspace file is replaced by a link to that object."""
    mvc_cli("config", "cache.type", "hardlink")
    make_file(repo / "a.bin", 1000, seed=1)
    make_file(repo / "b.bin", 1000, seed=1)  # same content
    mvc_cli("add", "a.bin")
    mvc_cli("add", "b.bin")
    o = obj(repo, oid_at(repo / "a.bin"))
    assert os.stat(repo / "a.bin").st_ino == os.stat(repo / "b.bin").st_ino == os.stat(o).st_ino


def test_hardlink_directory_keeps_executable_bits_in_manifest(repo, mvc_cli):
    mvc_cli("config", "cache.type", "hardlink")
    make_file(repo / "d" / "run.sh", 10, seed=1).chmod(0o755)
    make_file(repo / "d" / "w.bin", 10, seed=2)
    mvc_cli("add", "d")
    for name in ("run.sh", "w.bin"):
        f = repo / "d" / name
        assert os.stat(f).st_ino == os.stat(obj(repo, "xxh128:" + _digest(f))).st_ino
        assert mode(f) == 0o444
    entries = {e.path: e.executable for e in mf.loads(obj(repo, oid_at(repo / "d")).read_bytes())}
    assert entries == {"run.sh": True, "w.bin": False}
    # re-adding the linked (now read-only) files keeps the recorded bits
    mvc_cli("add", "d")
    assert {e.path: e.executable for e in mf.loads(obj(repo, oid_at(repo / "d")).read_bytes())} == entries
    assert mvc_cli("status").stdout == "d: up to date\n"


def _digest(path) -> str:
    import xxhash

    return xxhash.xxh3_128_hexdigest(path.read_bytes())


def test_symlink(repo, mvc_cli):
    mvc_cli("config", "cache.type", "symlink")
    data = make_file(repo / "m.bin", 1000).read_bytes()
    mvc_cli("add", "m.bin")
    o = obj(repo, oid_at(repo / "m.bin"))
    assert (repo / "m.bin").is_symlink()
    assert os.path.realpath(repo / "m.bin") == os.path.realpath(o)
    assert (repo / "m.bin").read_bytes() == data
    assert mode(o) == 0o444
    (repo / "m.bin").unlink()
    mvc_cli("checkout")
    assert (repo / "m.bin").is_symlink() and os.path.realpath(repo / "m.bin") == os.path.realpath(o)
    assert mvc_cli("status").stdout == "m.bin: up to date\n"
    assert mvc_cli("add", "m.bin").stdout.startswith("unchanged m.bin")


def test_a_symlink_to_another_cached_version_is_said_so(repo, mvc_cli):
    """cache.type symlink, a git reset with no mvc checkout after it: the link names the version it holds, which
    status says with both ways out (the link's oid was taken for an edit of the file)."""
    mvc_cli("config", "cache.type", "symlink")
    make_file(repo / "m.bin", 1000, seed=1)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "v1")
    (repo / "m.bin").unlink()
    make_file(repo / "m.bin", 1000, seed=2)
    mvc_cli("add", "m.bin")
    v2 = oid_at(repo / "m.bin")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    assert (repo / "m.bin").is_symlink()
    out = mvc_cli("status", "m.bin").stdout
    assert out.startswith(f"m.bin: modified: it holds another version the cache has ({v2[7:19]})"), out


def test_symlink_directory(repo, mvc_cli):
    mvc_cli("config", "cache.type", "symlink")
    make_file(repo / "d" / "a.bin", 10, seed=1)
    make_file(repo / "d" / "sub" / "b.bin", 10, seed=2)
    mvc_cli("add", "d")
    for f in (repo / "d" / "a.bin", repo / "d" / "sub" / "b.bin"):
        assert f.is_symlink()
        assert os.path.dirname(os.path.dirname(os.path.realpath(f))) == str(repo / ".mvc" / "cache" / "objects")
    assert mvc_cli("add", "d").stdout.startswith("unchanged d")
    assert mvc_cli("status").stdout == "d: up to date\n"


@pytest.mark.parametrize("cache_type", ["copy", "reflink", "reflink,copy"])
def test_copy_and_reflink_fallback(repo, mvc_cli, cache_type):
    """On ext4 (no reflinks) the reflink mode falls back to a copy: independent, writable files."""
    mvc_cli("config", "cache.type", cache_type)
    f = make_file(repo / "m.bin", 1000)
    before = os.stat(f)
    mvc_cli("add", "m.bin")
    o = obj(repo, oid_at(f))
    assert os.stat(f).st_ino == before.st_ino and mode(f) == stat.S_IMODE(before.st_mode)  # left as it was
    assert os.stat(o).st_ino != before.st_ino and os.stat(o).st_nlink == 1
    f.unlink()
    mvc_cli("checkout")
    assert not f.is_symlink() and os.stat(f).st_ino != os.stat(o).st_ino
    assert mode(f) & 0o200  # writable: editing it cannot touch the cache
    with open(f, "r+b") as fh:
        fh.write(b"edited")
    assert o.read_bytes() != f.read_bytes() and mvc_cli("status").stdout == "m.bin: modified\n"


def test_hardlink_falls_back_to_copy_across_filesystems(repo, mvc_cli):
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(repo).st_dev:
        pytest.skip("no second filesystem to put the cache on")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as cache:
        mvc_cli("config", "cache.dir", cache, "--local")
        mvc_cli("config", "cache.type", "hardlink,copy")
        f = make_file(repo / "m.bin", 1000)
        mvc_cli("add", "m.bin")
        o = os.path.join(cache, "objects", oid_at(f)[7:9], oid_at(f)[9:])
        assert os.stat(o).st_ino != os.stat(f).st_ino and mode(o) == 0o444
        f.unlink()
        mvc_cli("checkout")
        assert f.read_bytes() == Path(o).read_bytes()
        assert os.stat(o).st_ino != os.stat(f).st_ino


@pytest.mark.parametrize("cache_type", ["hardlink", "symlink"])
def test_unprotect_then_edit_in_place(repo, mvc_cli, cache_type):
    mvc_cli("config", "cache.type", cache_type)
    data = make_file(repo / "m.bin", 1000).read_bytes()
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    o = obj(repo, oid_at(repo / "m.bin"))
    assert mvc_cli("unprotect", "m.bin").stdout == "unprotected m.bin\n"
    f = repo / "m.bin"
    assert not f.is_symlink() and os.stat(f).st_ino != os.stat(o).st_ino
    assert mode(f) & 0o200 and f.read_bytes() == data
    assert mvc_cli("status").stdout == "m.bin: up to date\n"
    with open(f, "r+b") as fh:
        fh.write(b"fine-tuned")
    assert o.read_bytes() == data  # the cache object is untouched
    assert mvc_cli("status").stdout == "m.bin: modified\n"
    mvc_cli("add", "m.bin")
    assert oid_at(f) != o.name and obj(repo, oid_at(f)).read_bytes() == f.read_bytes()
    assert git(repo, "diff", "--cached", "--name-only").split() == ["m.bin.mvc"]


def test_unprotect_directory_restores_executable_bits(repo, mvc_cli):
    mvc_cli("config", "cache.type", "hardlink")
    make_file(repo / "d" / "run.sh", 10, seed=1).chmod(0o755)
    make_file(repo / "d" / "w.bin", 10, seed=2)
    mvc_cli("add", "d")
    out = mvc_cli("unprotect", "d").stdout
    assert sorted(out.splitlines()) == ["unprotected d/run.sh", "unprotected d/w.bin"]
    assert mode(repo / "d" / "run.sh") & 0o100 and mode(repo / "d" / "run.sh") & 0o200
    assert not mode(repo / "d" / "w.bin") & 0o111
    assert mvc_cli("status").stdout == "d: up to date\n"


def test_unprotect_copy_is_a_no_op(repo, mvc_cli):
    mvc_cli("config", "cache.type", "copy")
    f = make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    ino = os.stat(f).st_ino
    assert mvc_cli("unprotect", "m.bin").stdout == ""
    assert os.stat(f).st_ino == ino


def test_unprotect_untracked_path(repo, mvc_error):
    make_file(repo / "m.bin", 10)
    mvc_error("unprotect", "m.bin", words=("not tracked", "mvc add m.bin"))


def test_replacing_a_linked_file_does_not_touch_the_cache(repo, mvc_cli):
    """Tools that write a new file and rename it over the old one are safe with links too."""
    mvc_cli("config", "cache.type", "hardlink")
    data = make_file(repo / "m.bin", 1000, seed=1).read_bytes()
    mvc_cli("add", "m.bin")
    o = obj(repo, oid_at(repo / "m.bin"))
    make_file(repo / "new.tmp", 1000, seed=2).replace(repo / "m.bin")
    assert o.read_bytes() == data
    assert mvc_cli("status").stdout == "m.bin: modified\n"
    mvc_cli("add", "m.bin")
    assert os.stat(repo / "m.bin").st_ino == os.stat(obj(repo, oid_at(repo / "m.bin"))).st_ino


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the warning is for root only")
def test_root_is_warned_that_linked_files_are_writable_to_it(repo):
    from conftest import run_mvc

    proc = run_mvc("config", "cache.type", "hardlink,copy", cwd=repo)
    assert proc.returncode == 0 and "root can write a read-only file" in proc.stderr
    make_file(repo / "m.bin", 1000)
    proc = run_mvc("add", "m.bin", cwd=repo)
    assert proc.returncode == 0 and proc.stderr.count("warning:") == 1
    proc = run_mvc("status", cwd=repo)
    assert "warning" not in proc.stderr  # only where files are linked (add, checkout) or the mode is set


@pytest.mark.parametrize("then", ["status", "add", "unprotect"])
def test_an_object_edited_through_its_symlink_is_seen_and_the_edit_kept(repo, mvc_cli, then):
    """chmod u+w through a symlink makes the cache object writable, and an edit then writes into it: status
    says modified (the object's name proves nothing any more), add stores the edit as a new object, unprotect
    keeps it as a file; the overwritten object goes to quarantine/, never counted sound."""
    mvc_cli("config", "cache.type", "symlink")
    (repo / "m.bin").write_bytes(b"A" * 100)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "v1")
    os.chmod(repo / "m.bin", 0o644)  # follows the link: the object itself
    (repo / "m.bin").write_bytes(b"B" * 100)
    rows = json.loads(mvc_cli("status", "--json").stdout)
    assert [r["workspace"] for r in rows] == ["modified"]
    if then == "add":
        out = mvc_cli("add", "m.bin").stdout
        assert out.startswith("added m.bin") and (repo / "m.bin").is_symlink()
        assert (repo / "m.bin").read_bytes() == b"B" * 100
        assert json.loads(mvc_cli("status", "--json").stdout)[0]["workspace"] == "ok"
    if then == "unprotect":
        mvc_cli("unprotect", "m.bin")
        assert not (repo / "m.bin").is_symlink() and (repo / "m.bin").read_bytes() == b"B" * 100
        assert json.loads(mvc_cli("status", "--json").stdout)[0]["workspace"] == "modified"
    if then != "status":
        assert len(list((repo / ".mvc" / "cache" / "quarantine").iterdir())) == 1


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_a_file_linked_from_elsewhere_is_copied_not_taken(repo, mvc_cli, tmp_path, kind):
    """A file with another hard link (outside the repository) is not made the cache's object: that name would
    be made read-only, and an edit through it would change the object."""
    mvc_cli("config", "cache.type", kind)
    outside = make_file(tmp_path / "outside.bin", 1000, seed=4)
    os.link(outside, repo / "m.bin")
    mvc_cli("add", "m.bin")
    o = obj(repo, oid_at(repo / "m.bin"))
    assert os.stat(o).st_ino != os.stat(outside).st_ino and mode(outside) & 0o200  # the outside file as it was
    with open(outside, "ab") as f:
        f.write(b"an edit out there")
    assert "corrupt" not in mvc_cli("verify").stdout


@pytest.mark.parametrize("then", ["status", "add"])
def test_a_write_through_a_read_only_symlinked_object_is_seen(repo, mvc_cli, monkeypatch, then):
    """Root writes a read-only file: a program running as root that rewrites a symlinked model in place (same
    size, the object left read-only) changes the cached object. Its link's name proves nothing then: the state
    cache vouches for the object's own stat, so status says modified, and add keeps the edit as a new version
    and moves the damaged object to quarantine/. (The write is made here by a chmod around it, as root's would.)"""
    from mvc.storage import fileio

    mvc_cli("config", "cache.type", "symlink")
    (repo / "m.bin").write_bytes(b"A" * 100)
    (repo / "d").mkdir()
    (repo / "d" / "a").write_bytes(b"a" * 50)
    (repo / "d" / "b").write_bytes(b"b" * 50)
    mvc_cli("add", "m.bin", "d")
    git(repo, "commit", "-q", "-m", "v1")
    hashed: list[str] = []
    real = fileio.hash_file
    monkeypatch.setattr(fileio, "hash_file", lambda path, *a: hashed.append(path) or real(path, *a))
    assert mvc_cli("status").stdout == "d: up to date\nm.bin: up to date\n"
    assert hashed == []  # the links mvc made are vouched for by what it recorded, not hashed
    for path, data in ((repo / "m.bin", b"B" * 100), (repo / "d" / "a", b"c" * 50)):
        o = Path(os.path.realpath(path))
        os.chmod(o, 0o644)
        with open(path, "r+b") as f:  # in place, through the link
            f.write(data)
        os.chmod(o, 0o444)
    assert mvc_cli("status").stdout == "d: modified\nm.bin: modified\n"
    if then == "add":
        mvc_cli("add", "m.bin", "d")
        assert (repo / "m.bin").is_symlink() and (repo / "m.bin").read_bytes() == b"B" * 100
        assert (repo / "d" / "a").is_symlink() and (repo / "d" / "a").read_bytes() == b"c" * 50
        assert mvc_cli("status").stdout == "d: up to date\nm.bin: up to date\n"
        assert len(list((repo / ".mvc" / "cache" / "quarantine").iterdir())) == 2
        assert "corrupt" not in mvc_cli("verify", ok=False).stdout


def test_a_symlink_the_state_cache_does_not_know_is_hashed_once(repo, mvc_cli, monkeypatch):
    """Links made by a checkout are recorded; with the state cache gone, the next status hashes each object once
    (it is intact: nothing is copied or moved), and then trusts it again."""
    from mvc.storage import fileio

    mvc_cli("config", "cache.type", "symlink")
    make_file(repo / "m.bin", 1000, seed=1)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "v1")
    (repo / "m.bin").unlink()
    mvc_cli("checkout")
    hashed: list[str] = []
    real = fileio.hash_file
    monkeypatch.setattr(fileio, "hash_file", lambda path, *a: hashed.append(path) or real(path, *a))
    assert mvc_cli("status").stdout == "m.bin: up to date\n" and hashed == []
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(repo / ".mvc" / f"state.db{suffix}"):
            os.unlink(repo / ".mvc" / f"state.db{suffix}")
    assert mvc_cli("status").stdout == "m.bin: up to date\n" and len(hashed) == 1
    mvc_cli("add", "m.bin")
    assert (repo / "m.bin").is_symlink() and not (repo / ".mvc" / "cache" / "quarantine").exists()
    assert mvc_cli("status").stdout == "m.bin: up to date\n" and len(hashed) == 1


def test_a_file_symlinked_into_the_cache_is_fresh_as_it_goes_in(repo, mvc_cli, monkeypatch):
    """With cache.type symlink, the user's own file becomes the object: its mtime, maybe years old, is set to now
    as it is renamed into the cache, before the workspace name becomes a link, so that a gc running before the
    pointer is written never takes the only copy for old garbage."""
    import time

    from mvc.api import workspace

    mvc_cli("config", "cache.type", "symlink")
    make_file(repo / "m.bin", 1000, seed=5)
    os.utime(repo / "m.bin", (1_500_000_000, 1_500_000_000))
    seen: list[float] = []

    def at_pointer(*args, **kwargs):  # the moment add writes the pointer: the object already fresh
        seen.append(os.stat(repo / "m.bin").st_mtime)
        return real(*args, **kwargs)

    real = workspace._write_pointer
    monkeypatch.setattr(workspace, "_write_pointer", at_pointer)
    mvc_cli("add", "m.bin")
    assert (repo / "m.bin").is_symlink() and seen and time.time() - seen[0] < 60


def test_unprotect_of_a_link_the_state_cache_does_not_know_keeps_the_execute_bit(repo, mvc_cli):
    """A symlinked directory whose links the state cache does not vouch for (state.db gone, or links made by an
    older mvc): unprotect hashes each object once, finds it as named, and copies it with its manifest's mode."""
    mvc_cli("config", "cache.type", "symlink")
    (repo / "d").mkdir()
    (repo / "d" / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n" * 10)
    os.chmod(repo / "d" / "run.sh", 0o755)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "v1")
    for suffix in ("", "-wal", "-shm", "-journal"):
        (repo / ".mvc" / f"state.db{suffix}").unlink(missing_ok=True)
    mvc_cli("unprotect", "d")
    st = os.lstat(repo / "d" / "run.sh")
    assert not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o100
    assert not (repo / ".mvc" / "cache" / "quarantine").exists()
