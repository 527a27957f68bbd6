"""What the machine runs short of: a read-only file system, memory, a file-size limit, a disk that fills while
gc or verify writes. Read commands go on where they can; the rest say why in one line and leave nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, make_file, mount_tmpfs, umount_tmpfs

import mvc


def _mvc(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvc", *args], cwd=cwd, capture_output=True, text=True, **kw)


def test_read_commands_work_in_a_read_only_clone_where_mvc_never_ran(repo: Path, tmp_path: Path):
    """A clone on a read-only mount: status and diff tried to write .git/info/exclude (refused as a StorageError
    the skip did not catch), then to make .mvc/state.db (a traceback: SQLite cannot open it)."""
    make_file(repo / "model.bin", 1000)
    mvc.add(["model.bin"])
    git(repo, "commit", "-q", "-m", "m")
    fs = tmp_path / "fs"
    if not mount_tmpfs(fs, "16m"):
        pytest.skip("needs a file system to make read-only: root, allowed to mount a tmpfs")
    try:
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
    finally:
        umount_tmpfs(fs)


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
    mvc.add(["d"])
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
