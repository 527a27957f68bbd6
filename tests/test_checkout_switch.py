"""Switching a workspace file between versions (issue 11): the right bytes land, a switch reads them once,
a corrupt object never lands, and a change of the user's is never replaced unless its content is in the
cache, whatever the state cache remembers.

What the state cache can tell: a file's inode, mtime, ctime and size as they were when its content was
hashed or written. An edit whose mtime was put back with ``os.utime`` keeps inode, mtime and size, but no
one can put back a ctime: that is why it is part of the key. A file checkout has just written is vouched
for at once because its ctime is later than its mtime (``fileio.settle``): any write since would have
moved the mtime.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat

import pytest
import xxhash
from conftest import git, make_file

from mvc.repo import statedb
from mvc.storage import fileio

SIZES = {"small": 3000, "large": 2 * fileio.SMALL + 12345}  # large: the copy in a thread, the swap


def oid_of(data: bytes) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def obj(repo, oid):
    return repo / ".mvc" / "cache" / "objects" / oid[7:9] / oid[9:]


def no_temp_files(root) -> bool:
    return not [p for p in root.rglob("*.tmp") if ".git" not in p.parts]


@pytest.fixture(params=list(SIZES))
def versions(request, repo, mvc_cli):
    """model.bin committed in two versions, tags v1 and v2 (main); the workspace holds v2."""
    data = {}
    for tag, seed in (("v1", 1), ("v2", 2)):
        data[tag] = make_file(repo / "model.bin", SIZES[request.param], seed=seed).read_bytes()
        mvc_cli("add", "model.bin")
        git(repo, "commit", "-q", "-m", tag)
        git(repo, "tag", tag)
    return repo, data


@pytest.fixture
def hashes(monkeypatch) -> dict[str, int]:
    """Bytes read by the two functions that read and hash file contents (what a pass over them costs)."""
    counts = {"hash_fd": 0, "copy_hash_fd": 0}
    from mvc.storage import copying

    real_hash, real_copy = fileio.hash_fd, copying.copy_hash_fd

    def hash_fd(fd, size, *a, **kw):
        counts["hash_fd"] += size
        return real_hash(fd, size, *a, **kw)

    def copy_hash_fd(src, dst, size, *a, **kw):
        counts["copy_hash_fd"] += size
        return real_copy(src, dst, size, *a, **kw)

    monkeypatch.setattr(fileio, "hash_fd", hash_fd)
    monkeypatch.setattr(copying, "copy_hash_fd", copy_hash_fd)
    return counts


def switch(repo, mvc_cli, tag: str) -> None:
    git(repo, "checkout", "-q", tag)
    assert mvc_cli("checkout").stdout.startswith("restored model.bin")


def test_switching_back_and_forth_restores_the_right_bytes(versions, mvc_cli):
    repo, data = versions
    for tag in ("v1", "v2", "v1", "v2", "v1"):
        switch(repo, mvc_cli, tag)
        assert (repo / "model.bin").read_bytes() == data[tag]
        assert mvc_cli("status").stdout == "model.bin: up to date\n"
    assert no_temp_files(repo)


def test_switching_with_rev_restores_the_right_bytes_and_pointers(versions, mvc_cli):
    repo, data = versions
    for rev, tag in (("v1", "v1"), ("main", "v2"), ("v1", "v1"), ("main", "v2")):
        mvc_cli("checkout", "--rev", rev)
        assert (repo / "model.bin").read_bytes() == data[tag]
        assert mvc_cli("status").stdout == "model.bin: up to date\n"


def test_a_switch_reads_the_bytes_once(versions, hashes, mvc_cli):
    """Before, each switch hashed the current file (its entry was too recent to trust) before the copy; now
    the file checkout wrote is vouched for at once, and only the copy (hashed as it goes) reads bytes."""
    repo, data = versions
    size = len(data["v1"])
    switch(repo, mvc_cli, "v1")  # the v2 file 'mvc add' saw is recent: it is hashed once here
    assert hashes == {"hash_fd": size, "copy_hash_fd": size}
    for tag in ("v2", "v1", "v2"):
        hashes.update(hash_fd=0, copy_hash_fd=0)
        switch(repo, mvc_cli, tag)
        assert hashes == {"hash_fd": 0, "copy_hash_fd": size}, tag
    hashes.update(hash_fd=0, copy_hash_fd=0)
    assert mvc_cli("status").stdout == "model.bin: up to date\n"
    assert mvc_cli("add", "model.bin").stdout.startswith("unchanged model.bin")
    assert hashes == {"hash_fd": 0, "copy_hash_fd": 0}


def corrupt(path) -> None:
    path.chmod(0o644)  # cache objects are read-only
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x55]))
    path.chmod(0o444)


@pytest.mark.parametrize("how", ["git checkout", "--rev"])
def test_a_corrupt_object_is_refused_and_the_workspace_file_left_as_it_was(versions, mvc_cli, mvc_error, how):
    repo, data = versions
    switch(repo, mvc_cli, "v1")
    switch(repo, mvc_cli, "v2")  # the workspace file now one checkout wrote and recorded
    ws = repo / "model.bin"
    before = ws.stat()
    corrupt(obj(repo, oid_of(data["v1"])))
    if how == "--rev":
        mvc_error("checkout", "--rev", "v1", words=(oid_of(data["v1"]), "corrupt", "quarantine"))
        assert (repo / "model.bin.mvc").read_text() == git(repo, "show", "v2:model.bin.mvc")
    else:
        git(repo, "checkout", "-q", "v1")
        mvc_error("checkout", words=(oid_of(data["v1"]), "corrupt", "quarantine"))
    assert ws.read_bytes() == data["v2"]
    after = ws.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert not obj(repo, oid_of(data["v1"])).exists() and no_temp_files(repo)
    assert len(list((repo / ".mvc" / "cache" / "quarantine").iterdir())) == 1


def edit_keeping_size_and_mtime(path) -> bytes:
    """Change a byte in place, then put the mtime back: same inode, size and mtime; only the ctime moved."""
    st = path.stat()
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = path.stat()
    assert (now.st_ino, now.st_mtime_ns, now.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)
    return path.read_bytes()


def test_an_edit_with_its_mtime_put_back_is_not_replaced(versions, mvc_cli, mvc_error):
    repo, data = versions
    switch(repo, mvc_cli, "v1")
    switch(repo, mvc_cli, "v2")  # recorded by checkout: the state cache would vouch for v2
    ws = repo / "model.bin"
    edited = edit_keeping_size_and_mtime(ws)
    assert mvc_cli("status").stdout == "model.bin: modified\n"
    git(repo, "checkout", "-q", "v1")
    mvc_error("checkout", words=("model.bin", "not in the cache", "--force"))
    assert ws.read_bytes() == edited
    # --force replaces it, and keeps what it replaced in the cache first
    out = mvc_cli("checkout", "--force").stdout
    m = re.search(r"^kept the replaced content of model.bin in the cache as (xxh128:[0-9a-f]{32})$", out, re.M)
    assert m and m.group(1) == oid_of(edited) and obj(repo, m.group(1)).read_bytes() == edited
    assert ws.read_bytes() == data["v1"]


def test_a_file_checkout_recorded_then_edited_is_modified(versions, mvc_cli, mvc_error, hashes):
    repo, data = versions
    switch(repo, mvc_cli, "v1")
    ws = repo / "model.bin"
    hashes.update(hash_fd=0, copy_hash_fd=0)
    assert mvc_cli("status").stdout == "model.bin: up to date\n"
    assert hashes["hash_fd"] == 0  # vouched for at once, no second to wait
    with open(ws, "r+b") as f:  # at once, within the timestamp tick of the checkout if the clock allows
        f.write(b"\0" * 16)
    assert ws.stat().st_size == len(data["v1"])
    assert mvc_cli("status").stdout == "model.bin: modified\n"
    git(repo, "checkout", "-q", "v2")
    mvc_error("checkout", words=("model.bin", "not in the cache"))
    assert ws.read_bytes()[:16] == b"\0" * 16


def test_an_edit_with_its_mtime_put_back_after_checkout_is_modified(versions, mvc_cli):
    repo, _ = versions
    switch(repo, mvc_cli, "v1")
    edit_keeping_size_and_mtime(repo / "model.bin")
    assert mvc_cli("status").stdout == "model.bin: modified\n"


def test_a_changed_mode_alone_keeps_the_file_vouched_for(repo, mvc_cli, hashes):
    """A directory entry whose content is right but whose executable bit is not is only chmodded; the chmod
    moves the ctime, so checkout records the file again rather than leave it to be hashed."""
    make_file(repo / "d" / "run.bin", 3000, seed=1)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    (repo / "d" / "run.bin").chmod(0o755)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "checkout", "-q", "v1")
    mvc_cli("checkout")
    git(repo, "checkout", "-q", "main")
    mvc_cli("checkout")  # v1's file as written by checkout: vouched for, only chmodded
    assert os.stat(repo / "d" / "run.bin").st_mode & 0o100
    hashes.update(hash_fd=0, copy_hash_fd=0)
    assert mvc_cli("status").stdout == "d: up to date\n"
    assert hashes == {"hash_fd": 0, "copy_hash_fd": 0}


def test_a_state_db_of_the_old_layout_is_emptied(versions, mvc_cli, hashes):
    """Entries without a ctime could vouch for an edit whose mtime was put back: none is used."""
    repo, data = versions
    db = repo / ".mvc" / "state.db"
    db.unlink()
    st = (repo / "model.bin").stat()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE state (path TEXT PRIMARY KEY, inode INTEGER, mtime_ns INTEGER, size INTEGER, oid TEXT)")
    con.execute("INSERT INTO state VALUES (?, ?, ?, ?, ?)", ("model.bin", st.st_ino, st.st_mtime_ns, 1, "xxh128:0"))
    con.commit()
    con.close()
    hashes.update(hash_fd=0, copy_hash_fd=0)
    assert mvc_cli("status").stdout == "model.bin: up to date\n"
    assert hashes["hash_fd"] == len(data["v2"])
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == statedb.SCHEMA
    con.close()


# -- the primitives -----------------------------------------------------------------------------------
def test_settle_makes_any_later_write_show(tmp_path):
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x" * 1000)
        st = fileio.settle(fd)
    finally:
        os.close(fd)
    if st is None:
        pytest.skip("no utime on a file descriptor here")
    assert st.st_ctime_ns > st.st_mtime_ns and statedb.trusted(st)
    with open(path, "r+b") as f:  # at once: the same timestamp tick, on a coarse clock
        f.write(b"y")
    assert path.stat().st_mtime_ns != st.st_mtime_ns


def test_a_fresh_file_is_not_trusted(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    st = path.stat()
    assert st.st_ctime_ns <= st.st_mtime_ns and not statedb.trusted(st)


def test_swap_into_replaces_a_file_and_deletes_the_old_one(tmp_path):
    dest, tmp, other = tmp_path / "dest", tmp_path / "new.tmp", tmp_path / "other-link"
    dest.write_bytes(b"old")
    os.link(dest, other)  # to see the old inode's links go down
    tmp.write_bytes(b"new")
    fileio.swap_into(str(tmp), str(dest))
    assert dest.read_bytes() == b"new" and not tmp.exists()
    assert other.read_bytes() == b"old" and other.stat().st_nlink == 1


def test_swap_into_a_missing_or_symlinked_dest(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"target")
    (tmp_path / "link").symlink_to(target)
    for name in ("missing", "link"):
        tmp = tmp_path / f"{name}.tmp"
        tmp.write_bytes(name.encode())
        fileio.swap_into(str(tmp), str(tmp_path / name))
        assert (tmp_path / name).read_bytes() == name.encode() and not (tmp_path / name).is_symlink()
        assert not tmp.exists()
    assert target.read_bytes() == b"target"


def test_swap_into_a_directory_fails_as_replace_does(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "keep").write_bytes(b"k")
    tmp = tmp_path / "new.tmp"
    tmp.write_bytes(b"new")
    with pytest.raises(OSError):
        fileio.swap_into(str(tmp), str(tmp_path / "dir"))
    assert (tmp_path / "dir" / "keep").read_bytes() == b"k" and tmp.read_bytes() == b"new"


def test_drop_cached_changes_nothing_and_never_fails(tmp_path):
    big = make_file(tmp_path / "big", fileio.SMALL + 1, seed=3)
    data = big.read_bytes()
    before = big.stat()
    fileio.drop_cached(str(big))
    after = big.stat()
    assert big.read_bytes() == data
    assert (after.st_mtime_ns, after.st_ctime_ns, stat.S_IMODE(after.st_mode)) == (
        before.st_mtime_ns,
        before.st_ctime_ns,
        stat.S_IMODE(before.st_mode),
    )
    (tmp_path / "link").symlink_to(big)
    (tmp_path / "d").mkdir()
    for path in ("missing", "link", "d"):
        fileio.drop_cached(str(tmp_path / path))
