"""What ``mvc get`` / ``mvc.get`` does at OUT: never replacing without --force what another writer put there during
the fetch, and one clear error for a place that cannot be written to.

The source repository is test_read_url's (the model churn, a tracked ``data/`` of small packed files); nothing
here changes it. Another writer is injected in-process, at a fixed step of the fetch, never by timing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import git, make_file
from test_read_url import build_world, files_under, own_user_cache

import mvc
from mvc.errors import PathError, StorageError

world = pytest.fixture(scope="module")(build_world)
user_cache = pytest.fixture(autouse=True, name="user_cache")(own_user_cache)

SOMEONE_ELSES = b"someone else's file\n"


def temps_in(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".mvc-tmp."))


def after_first_download(monkeypatch: pytest.MonkeyPatch, then) -> None:
    """Run then() once, right after the first object of a get by URL is downloaded (OUT was found free before)."""
    from mvc.objects import reader

    real, done, lock = reader.download, [], threading.Lock()

    def download(*args, **kw):
        n = real(*args, **kw)
        with lock:
            first = not done
            done.append(True)
        if first:
            then()
        return n

    monkeypatch.setattr(reader, "download", download)


# -- 1. without --force, nothing at OUT is ever replaced ------------------------------------------------
@pytest.mark.parametrize("ref", ["churn#prod", "data"])
def test_a_file_put_at_out_during_the_fetch_is_kept(world, tmp_path, monkeypatch, ref):
    """A file that appears at OUT after the check, while the model is fetched, stays; the get fails and leaves no
    temp (a directory model included: its put must not move the file aside and delete it)."""
    out = tmp_path / "out" / "model"
    out.parent.mkdir()
    after_first_download(monkeypatch, lambda: out.write_bytes(SOMEONE_ELSES))
    with pytest.raises(PathError, match="another writer put it there meanwhile"):
        mvc.get(ref, str(out), repo=str(world.bare))
    assert out.read_bytes() == SOMEONE_ELSES
    assert temps_in(out.parent) == []


def test_a_directory_put_at_out_during_the_fetch_is_kept(world, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def mkdir() -> None:
        out.mkdir()
        (out / "mine").write_bytes(SOMEONE_ELSES)

    after_first_download(monkeypatch, mkdir)
    with pytest.raises(PathError, match="another writer"):
        mvc.get("data", str(out), repo=str(world.bare))
    assert files_under(out) == {"mine": SOMEONE_ELSES}
    assert temps_in(tmp_path) == []


def test_two_gets_of_one_out_one_wins_the_other_fails(world, tmp_path, monkeypatch, mvc_error):
    """A second get to the same OUT runs whole while the first fetches: it wins, the first fails, the second's file
    stays (never the last writer's silently)."""
    out = tmp_path / "o.bin"
    second: list[dict] = []
    after_first_download(monkeypatch, lambda: second.append(mvc.get("churn@latest", str(out), repo=str(world.bare))))
    mvc_error("get", "--repo", str(world.bare), "churn#prod", "-o", str(out), words=("another writer", str(out)))
    assert second and second[0]["out"] == str(out)
    assert out.read_bytes() == world.v2
    assert temps_in(tmp_path) == []


def test_force_still_replaces_what_appeared(world, tmp_path, monkeypatch):
    """--force replaces a file at OUT, also one that appeared during the fetch (as documented)."""
    out = tmp_path / "o.bin"
    after_first_download(monkeypatch, lambda: out.write_bytes(SOMEONE_ELSES))
    mvc.get("churn#prod", str(out), repo=str(world.bare), force=True)
    assert out.read_bytes() == world.v1


def test_in_a_clone_a_file_put_at_out_during_the_export_is_kept(repo, tmp_path, monkeypatch, mvc_error):
    """The same from a clone's cache: the file is exported to a temp, and only put at OUT where nothing is."""
    from mvc.objects.odb import ODB

    make_file(repo / "m.bin", 5000, seed=4)
    mvc.add(["m.bin"])
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "m")
    out = tmp_path / "elsewhere" / "m.bin"
    out.parent.mkdir()
    real = ODB.export

    def export(self, oid, dest, *args, **kw):
        how = real(self, oid, dest, *args, **kw)
        if not out.exists():
            out.write_bytes(SOMEONE_ELSES)
        return how

    monkeypatch.setattr(ODB, "export", export)
    mvc_error("get", "m.bin", "-o", str(out), words=("another writer",))
    assert out.read_bytes() == SOMEONE_ELSES
    assert temps_in(out.parent) == [] and not [p for p in (repo / ".mvc" / "tmp").glob("*") if p.is_file()]
    out.unlink()
    monkeypatch.setattr(ODB, "export", real)
    mvc.get("m.bin", str(out))  # nothing there: written
    assert out.read_bytes() == (repo / "m.bin").read_bytes()


def test_put_new_refuses_whatever_is_there(tmp_path):
    """The step itself: a file or a directory is given its name only where nothing is; tmp is then left as it was."""
    from mvc.storage.tempfiles import put_new

    for there in ("file", "dir", "empty-dir", "link"):
        for kind in ("file", "dir"):
            d = tmp_path / f"{there}-{kind}"
            d.mkdir()
            tmp, dest = d / "tmp", d / "dest"
            tmp.mkdir() if kind == "dir" else tmp.write_bytes(b"new")
            if there == "file":
                dest.write_bytes(b"old")
            elif there == "link":
                dest.symlink_to(d / "nowhere")
            else:
                dest.mkdir()
                if there == "dir":
                    (dest / "x").write_bytes(b"old")
            with pytest.raises(FileExistsError):
                put_new(str(tmp), str(dest))
            assert tmp.exists() and os.path.lexists(dest)
            assert there != "file" or dest.read_bytes() == b"old"
    new = tmp_path / "new"
    new.write_bytes(b"x")
    put_new(str(new), str(tmp_path / "placed"))
    assert (tmp_path / "placed").read_bytes() == b"x" and not new.exists()


# -- 2. an output directory that cannot be written: StorageError, however the remote keeps the object ---------
@contextlib.contextmanager
def read_only_dir(where: Path):
    """A directory this process cannot write in: mode 0o555, or (root writes there all the same) a read-only tmpfs;
    the test skips where neither can be had."""
    if os.geteuid() != 0:
        where.mkdir()
        where.chmod(0o555)
        try:
            if os.access(where, os.W_OK):
                pytest.skip("this user writes in a directory of mode 0o555")
            yield where
        finally:
            where.chmod(0o755)
        return
    where.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(where)], capture_output=True
    ).returncode:
        pytest.skip("needs a read-only file system: a user other than root, or root allowed to mount a tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("ref", ["data/part-03.bin", "data", "churn#prod"])
@pytest.mark.parametrize("cache", [False, True])
def test_an_output_directory_that_cannot_be_written(world, tmp_path, ref, cache):
    """A file of a pack on the remote (one file of a directory), a whole directory, a file stored alone: each a
    StorageError (an MvcError) naming the place, never a bare OSError."""
    ro = tmp_path / "ro"
    with read_only_dir(ro), pytest.raises(StorageError, match=f"cannot write {ro}.*check permissions"):
        mvc.get(ref, str(ro / "x"), repo=str(world.bare), cache=cache)


# -- 3. --cache with a corrupt copy in the user's cache: the remote's copy is read --------------------------
@pytest.mark.parametrize(("ref", "version"), [("model.bin", "v2"), ("churn#prod", "v1"), ("data", None)])
@pytest.mark.parametrize("cache", [True, False])
def test_a_corrupt_user_cache_copy_is_moved_aside_and_the_remote_read(
    world, mvc_cli, user_cache, tmp_path, ref, version, cache
):
    """As read_bytes does: the copy goes to quarantine/ and the get writes the remote's bytes, where it failed with
    a fix ('mvc fetch') that a machine with no clone cannot run (without --cache too: a file the user's cache holds
    is read from it)."""
    url = str(world.bare)
    mvc_cli("get", "--repo", url, ref, "-o", str(tmp_path / "a"), "--cache")
    objects = sorted(p for p in (user_cache / "cache" / "objects").glob("*/*") if p.stat().st_size > 500)
    assert objects
    rotten = objects[-1]  # (a directory: one of its files; else the model)
    rotten.chmod(0o644)
    data = bytearray(rotten.read_bytes())
    data[len(data) // 2] ^= 1
    rotten.write_bytes(bytes(data))
    mvc_cli("get", "--repo", url, ref, "-o", str(tmp_path / "b"), *(("--cache",) if cache else ()))
    if version is None:
        assert files_under(tmp_path / "b") == world.data
    else:
        assert (tmp_path / "b").read_bytes() == getattr(world, version)
    if cache or version is not None:  # (a directory without --cache comes from the remote, its cache unread)
        assert list((user_cache / "cache" / "quarantine").iterdir())
        assert not rotten.exists() or rotten.read_bytes() != bytes(data)  # (--cache: fetched again, sound)


# -- 5. a place no file can be written to is said to be so, not to lack disk space ----------------------------
@pytest.mark.skipif(not os.path.isdir("/proc/self") or os.statvfs("/proc").f_blocks != 0, reason="needs Linux's /proc")
def test_out_in_a_pseudo_file_system(world, mvc_error):
    line = mvc_error("get", "--repo", str(world.bare), "model.bin", "-o", "/proc/self/x.bin", words=("cannot write",))
    assert "/proc" in line and "disk space" not in line and "pseudo file system" in line


def test_out_in_a_read_only_place_that_is_also_full(world, tmp_path, monkeypatch):
    """A read-only directory whose file system shows no room (a full disk mounted read-only): the place is said."""
    from mvc.objects import transfer

    monkeypatch.setattr(transfer, "free_space", lambda path: (str(tmp_path / "ro"), 0))
    with read_only_dir(tmp_path / "ro") as ro, pytest.raises(StorageError, match=r"cannot write to .*read-only") as e:
        mvc.get("model.bin", str(ro / "x"), repo=str(world.bare))
    assert "disk space" not in str(e.value)


# -- 6. -o - -----------------------------------------------------------------------------------------------
def test_out_dash_is_refused_with_the_way_to_the_bytes(world, mvc_cli, mvc_error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mvc_error("get", "--repo", str(world.bare), "model.bin", "-o", "-", words=("stdout", "mvc.read_bytes", "./-"))
    assert not (tmp_path / "-").exists()
    mvc_error("get", "--repo", str(world.bare), "data", "-o", "-", words=("stdout",))
    mvc_cli("get", "--repo", str(world.bare), "model.bin", "-o", "./-", "-q")  # a file named -: as it says
    assert (tmp_path / "-").read_bytes() == world.v2
