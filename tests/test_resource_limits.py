"""What the machine runs short of: a read-only file system, memory, a file-size limit, a disk that fills while
gc or verify writes. Read commands go on where they can; the rest say why in one line and leave nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, make_file, repo_on_tmpfs, small_fs

import mvc


def _mvc(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvc", *args], cwd=cwd, capture_output=True, text=True, **kw)


def test_read_commands_work_in_a_read_only_clone_where_mvc_never_ran(repo: Path, tmp_path: Path):
    """A clone on a read-only mount: status and diff tried to write .git/info/exclude (refused as a StorageError
    the skip did not catch), then to make .mvc/state.db (a traceback: SQLite cannot open it)."""
    make_file(repo / "model.bin", 1000)
    mvc.add(["model.bin"])
    git(repo, "commit", "-q", "-m", "m")
    with small_fs(tmp_path / "fs", "16m") as fs:
        clone = fs / "clone"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        for args in (("status",), ("diff",), ("ls",)):
            done = _mvc(*args, cwd=clone)
            assert done.returncode in (0, 1) and "Traceback" not in done.stderr, (args, done.stderr)
            assert "cannot write" not in done.stderr and "info/exclude" not in done.stderr, (args, done.stderr)
        assert _mvc("status", cwd=clone).stdout.startswith("model.bin: ")
        done = _mvc("checkout", cwd=clone)
        assert done.returncode != 0 and "Traceback" not in done.stderr and done.stderr.startswith("error: ")


def test_a_file_size_limit_is_named_not_a_full_disk(repo: Path):
    """ulimit -f (or FAT32's 4 GiB) gives EFBIG, which mvc said as "no space left: free some space"."""
    import resource

    make_file(repo / "m.bin", 3 << 20)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    done = subprocess.run(
        [sys.executable, "-m", "mvc", "add", "m.bin"], cwd=repo, capture_output=True, text=True, preexec_fn=limit
    )
    assert done.returncode == 1 and "file-size limit (ulimit -f)" in done.stderr, done.stderr
    assert "free some space" not in done.stderr and (repo / "m.bin").stat().st_size == 3 << 20


def test_a_pack_index_is_read_with_the_memory_it_takes(repo: Path):
    """Every index read asked for 64 MiB (the bound), which a read reserves first: a push of a directory in
    cache packs failed under a memory limit where the indexes are a few KiB."""
    import tracemalloc

    for i in range(2100):  # enough for forked workers, which store small files in cache packs
        make_file(repo / "d" / f"f{i:04}", 200, seed=i)
    assert _mvc("add", "d", cwd=repo).returncode == 0  # (a process of its own: one with threads never forks)
    packs = mvc.repo.repository.open_repo(str(repo)).odb.packs
    names = [n[:-4] for n in os.listdir(os.path.dirname(packs.index_path("x"))) if n.endswith(".idx")]
    assert names
    tracemalloc.start()
    try:
        for name in names:
            assert packs.index_bytes(name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def _fill(fs: Path, leave: int) -> None:
    """Fill the file system at fs but for about leave bytes."""
    st = os.statvfs(fs)
    (fs / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def _temps(cache: Path) -> list[str]:
    tmp = cache / "tmp"
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(".mvc-tmp.")) if tmp.is_dir() else []


def test_gc_and_verify_leave_no_temp_when_the_disk_fills(tmp_path: Path, monkeypatch):
    """gc rewriting a cache pack and verify --repair downloading a sound copy left their temp files in the cache's
    tmp/ when the disk filled (swept only when a day old)."""
    with repo_on_tmpfs(tmp_path, "80m", monkeypatch) as (fs, repo):
        for i in range(3000):  # forked workers: cache packs
            make_file(repo / "d" / f"f{i:04}", 5000, seed=i)
        make_file(repo / "model.bin", 2 << 20, seed=7)
        assert _mvc("add", "d", "model.bin", cwd=repo).returncode == 0  # (forks: a process with threads never does)
        git(repo, "commit", "-q", "-m", "v1")
        for i in range(0, 3000, 2):  # half of them change: v1's packs half dead, rewritten by gc
            make_file(repo / "d" / f"f{i:04}", 5000, seed=10_000 + i)
        assert _mvc("add", "d", cwd=repo).returncode == 0
        git(repo, "commit", "-q", "-m", "v2")
        remote = tmp_path / "remote"
        assert _mvc("remote", "add", "o", str(remote), cwd=repo).returncode == 0
        assert _mvc("push", "-q", cwd=repo).returncode == 0
        cache = repo / ".mvc" / "cache"
        _fill(fs, 8 << 10)
        done = _mvc("gc", "--grace", "0", "--keep-last", "1", "--force", "--sole-user", cwd=repo)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert _temps(cache) == [], _temps(cache)

        (fs / "filler").unlink()
        obj = Path(mvc.repo.repository.open_repo(str(repo)).odb.path(mvc.describe("model.bin")["oid"]))
        obj.chmod(0o644)
        data = bytearray(obj.read_bytes())
        data[1000] ^= 1
        obj.write_bytes(bytes(data))
        _fill(fs, 1 << 20)
        done = _mvc("verify", "--repair", "-r", "o", cwd=repo)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert _temps(cache) == [], _temps(cache)


def test_a_read_by_url_into_a_full_user_cache_leaves_nothing_half_made(repo: Path, tmp_path: Path):
    make_file(repo / "m.bin", 1000)
    mvc.add(["m.bin"])
    git(repo, "commit", "-q", "-m", "m")
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    with small_fs(tmp_path / "fs", "1m") as fs:
        _fill(fs, 4 << 10)
        env = {**os.environ, "MVC_CACHE_DIR": str(fs / "mvc")}
        done = _mvc("get", "--repo", str(bare), "m.bin", "-o", str(tmp_path / "out.bin"), cwd=tmp_path, env=env)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert "repository's .git" not in done.stderr, done.stderr
        repos = fs / "mvc" / "repos"
        assert not repos.is_dir() or not [p for p in repos.iterdir() if ".tmp" in p.name]


def _pushed(repo: Path, remote: Path, size: int) -> None:
    """m.bin of size bytes added, committed and pushed to remote (o, a directory)."""
    make_file(repo / "m.bin", size)
    assert _mvc("remote", "add", "o", str(remote), cwd=repo).returncode == 0
    mvc.add(["m.bin"])
    git(repo, "commit", "-q", "-am", "m")
    assert _mvc("push", "-q", cwd=repo).returncode == 0


def test_get_onto_a_small_disk_does_not_suggest_gc(repo: Path, tmp_path: Path):
    """gc frees the cache's file system, not the one -o writes to."""
    _pushed(repo, tmp_path / "remote", 2 << 20)
    with small_fs(tmp_path / "fs", "1m") as fs:
        remote = str(tmp_path / "remote")
        for args in (("m.bin",), ("--repo", str(repo), "m.bin"), ("m.bin", "--remote", remote)):
            done = _mvc("get", *args, "-o", str(fs / "out.bin"), cwd=tmp_path if "--repo" in args else repo)
            assert done.returncode != 0 and "space" in done.stderr, done.stderr
            assert "mvc gc" not in done.stderr, done.stderr


def test_too_many_open_files_names_the_limit(repo: Path):
    import resource

    for i in range(2100):
        make_file(repo / "d" / f"f{i:04}", 100, seed=i)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (9, 9))

    done = subprocess.run(
        [sys.executable, "-m", "mvc", "add", "d"], cwd=repo, capture_output=True, text=True, preexec_fn=limit
    )
    if done.returncode == 0:
        pytest.skip("mvc needed no more than 9 files open here")
    assert "Traceback" not in done.stderr and "ulimit -n" in done.stderr, done.stderr


def test_a_full_disk_while_adding_and_checking_out_leaves_the_files_as_they_were(tmp_path: Path, monkeypatch):
    """The disk's own ENOSPC (tests/test_bad_input.py simulates it with a file-size limit)."""
    with repo_on_tmpfs(tmp_path, "24m", monkeypatch) as (fs, repo):
        big = make_file(repo / "big.bin", 14 << 20, seed=1).read_bytes()  # the cache's copy does not fit
        done = _mvc("add", "big.bin", cwd=repo)
        assert done.returncode == 1 and "no space left" in done.stderr and "free some space" in done.stderr
        assert (repo / "big.bin").read_bytes() == big and not (repo / "big.bin.mvc").exists()
        assert _temps(repo / ".mvc" / "cache") == []
        (repo / "big.bin").unlink()
        make_file(repo / "m.bin", 6 << 20, seed=2)
        assert _mvc("add", "m.bin", cwd=repo).returncode == 0
        (repo / "m.bin").unlink()
        _fill(fs, 2 << 20)
        done = _mvc("checkout", cwd=repo)
        assert done.returncode == 1 and "space" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (repo / "m.bin").exists() and not [p for p in repo.iterdir() if ".mvc-tmp." in p.name]


def test_a_read_by_url_into_a_small_user_cache_names_the_gc_that_frees_it(repo: Path, tmp_path: Path):
    _pushed(repo, tmp_path / "remote", 3 << 20)
    with small_fs(tmp_path / "fs", "2m") as fs:
        env = {**os.environ, "MVC_CACHE_DIR": str(fs / "mvc")}
        done = _mvc("get", "--repo", str(repo), "m.bin", "-o", str(tmp_path / "o"), "--cache", cwd=tmp_path, env=env)
        assert done.returncode != 0 and "not enough disk space" in done.stderr, done.stderr
        assert "'mvc gc --user-cache --force'" in done.stderr, done.stderr


def test_out_of_memory_is_one_line_naming_the_limit(repo: Path, monkeypatch, mvc_error):
    """Memory runs out mid-command (a memory limit: ulimit -v, a batch system's): one line naming the limit and
    -j, exit 1, no traceback; the file is left as it was."""
    from mvc.api import workspace

    make_file(repo / "m.bin", 1000)

    def add(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(workspace, "add", add)
    line = mvc_error("add", "m.bin", words=("out of memory", "ulimit -v", "-j"))
    assert line == "error: out of memory: lower -j, or raise the memory limit (ulimit -v), then retry"
    assert (repo / "m.bin").stat().st_size == 1000 and not (repo / "m.bin.mvc").exists()
