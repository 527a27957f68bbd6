"""The state cache (.mvc/state.db): unchanged files are never hashed again, and deleting it changes no result.

Hash calls are counted by wrapping mvc.storage.fileio.hash_fd and copying.copy_hash_fd with functions that
count and delegate: the real hashing and the real files are used throughout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest
import tomllib
from conftest import git, make_file

from mvc.objects import manifest as mf
from mvc.objects import oid as oids
from mvc.repo import pathstatus
from mvc.storage import fileio


@pytest.fixture
def hashes(monkeypatch) -> dict[str, int]:
    """Counts of calls to the two functions that read and hash file contents."""
    counts = {"hash_fd": 0, "copy_hash_fd": 0}
    from mvc.storage import copying

    real_hash, real_copy = fileio.hash_fd, copying.copy_hash_fd

    def hash_fd(*a, **kw):
        counts["hash_fd"] += 1
        return real_hash(*a, **kw)

    def copy_hash_fd(*a, **kw):
        counts["copy_hash_fd"] += 1
        return real_copy(*a, **kw)

    monkeypatch.setattr(fileio, "hash_fd", hash_fd)
    monkeypatch.setattr(copying, "copy_hash_fd", copy_hash_fd)
    return counts


def total(counts) -> int:
    return sum(counts.values())


def age(*paths, seconds: int = 10) -> None:
    """Move mtimes into the past: the state cache trusts only entries older than the timestamp granularity."""
    then = time.time() - seconds
    for p in paths:
        for f in [p] if p.is_file() else [x for x in p.rglob("*") if x.is_file()]:
            os.utime(f, (then, then))


@pytest.fixture
def tracked(repo, mvc_cli):
    make_file(repo / "model.bin", 3000, seed=1)
    for i in range(5):
        make_file(repo / "model" / f"part-{i}.bin", 200, seed=10 + i)
    age(repo / "model.bin", repo / "model")
    mvc_cli("add", "model.bin", "model")
    git(repo, "commit", "-q", "-m", "models")
    return repo


def test_first_add_hashes_each_file_once(repo, mvc_cli, hashes):
    make_file(repo / "model.bin", 3000, seed=1)
    make_file(repo / "d" / "a.bin", 10, seed=2)
    make_file(repo / "d" / "b.bin", 10, seed=3)
    mvc_cli("add", "model.bin", "d")
    assert total(hashes) == 3  # read once each, hashing while copying


@pytest.mark.parametrize("cache_type", ["copy", "reflink,copy", "hardlink", "symlink"])
def test_re_add_unchanged_does_no_hashing(repo, mvc_cli, hashes, cache_type):
    mvc_cli("config", "cache.type", cache_type)
    make_file(repo / "model.bin", 3000, seed=1)
    make_file(repo / "model" / "a.bin", 100, seed=2)
    make_file(repo / "model" / "b.bin", 100, seed=3)
    age(repo / "model.bin", repo / "model")
    mvc_cli("add", "model.bin", "model")
    assert total(hashes) > 0
    hashes.update(hash_fd=0, copy_hash_fd=0)
    out = mvc_cli("add", "model.bin", "model").stdout
    assert out.startswith("unchanged model.bin") and "unchanged model (" in out
    assert total(hashes) == 0
    assert mvc_cli("status").stdout == "model.bin: up to date\nmodel: up to date\n"
    assert total(hashes) == 0


def test_status_and_checkout_with_nothing_changed_do_no_hashing(tracked, mvc_cli, hashes):
    assert mvc_cli("status").stdout == "model.bin: up to date\nmodel: up to date\n"
    assert mvc_cli("checkout").stdout == ""
    assert mvc_cli("status", "--json").exit_code == 0
    assert total(hashes) == 0


def test_restored_files_are_remembered(tracked, mvc_cli, hashes):
    """Files written by checkout go into the state cache too (once they are old enough)."""
    (tracked / "model.bin").unlink()
    mvc_cli("checkout")
    age(tracked / "model.bin")
    mvc_cli("add", "model.bin")  # learns the aged file's stat (one hash)
    hashes.update(hash_fd=0, copy_hash_fd=0)
    mvc_cli("status")
    assert total(hashes) == 0


def test_changed_file_is_hashed_again(tracked, mvc_cli, hashes):
    data = bytearray((tracked / "model.bin").read_bytes())
    data[0] ^= 0xFF
    (tracked / "model.bin").write_bytes(bytes(data))  # same size, new mtime
    assert mvc_cli("status").stdout == "model.bin: modified\nmodel: up to date\n"
    assert hashes["hash_fd"] == 1


def test_same_size_and_restored_mtime_on_a_new_inode_is_hashed(tracked, mvc_cli, hashes):
    """The inode is part of the key: replacing the file (as editors and cp do) is noticed."""
    f = tracked / "model.bin"
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[0] ^= 0xFF
    tmp = tracked / "new.tmp"
    tmp.write_bytes(bytes(data))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    tmp.replace(f)
    if f.stat().st_ino == st.st_ino:
        pytest.skip("the filesystem reused the inode")
    assert mvc_cli("status", "model.bin").stdout == "model.bin: modified\n"


def test_recent_files_are_not_trusted(repo, mvc_cli, hashes):
    """A file modified within a second of being recorded could change again without its mtime moving."""
    f = make_file(repo / "fresh.bin", 100)
    soon = time.time() + 60  # "just modified" however slowly this test runs
    os.utime(f, (soon, soon))
    mvc_cli("add", "fresh.bin")
    hashes.update(hash_fd=0, copy_hash_fd=0)
    mvc_cli("status")
    assert hashes["hash_fd"] == 1


def results(mvc_cli):
    return (mvc_cli("status", "--json").stdout, mvc_cli("ls", "--json").stdout)


@pytest.mark.parametrize("damage", ["deleted", "garbage", "emptied table", "corrupt table pages"])
def test_state_db_loss_changes_no_result(tracked, mvc_cli, hashes, damage):
    d = tracked / "model"
    make_file(d / "part-0.bin", 200, seed=99)  # one modified file in the dir
    before = results(mvc_cli)
    assert json.loads(before[0])[1]["workspace"] == "modified"
    db = tracked / ".mvc" / "state.db"
    if damage == "deleted":
        db.unlink()
    elif damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    elif damage == "corrupt table pages":  # the schema page reads fine; the rows' page does not
        data = db.read_bytes()
        assert len(data) > 4096
        db.write_bytes(data[:4096] + b"\xff" * (len(data) - 4096))
    else:
        import sqlite3

        con = sqlite3.connect(db)
        con.execute("DELETE FROM state")
        con.commit()
        con.close()
    hashes.update(hash_fd=0, copy_hash_fd=0)
    assert results(mvc_cli) == before
    assert total(hashes) > 0  # it had to hash again, and came to the same answer
    assert mvc_cli("add", "model.bin").stdout.startswith("unchanged model.bin")
    assert mvc_cli("add", "model").stdout.startswith("added model")
    db.unlink()
    assert mvc_cli("add", "model").stdout.startswith("unchanged model")


def test_state_db_loss_then_checkout_still_refuses_unsaved_work(tracked, mvc_cli, mvc_error):
    make_file(tracked / "model" / "part-1.bin", 200, seed=98)
    (tracked / ".mvc" / "state.db").unlink()
    mvc_error("checkout", words=("model/part-1.bin", "--force"))
    (tracked / ".mvc" / "state.db").unlink()
    mvc_cli("checkout", "--force")
    assert mvc_cli("status").stdout == "model.bin: up to date\nmodel: up to date\n"


def test_state_db_is_ignored_by_git(tracked):
    assert (tracked / ".mvc" / "state.db").is_file()
    assert git(tracked, "status", "--porcelain") == ""


# -- a tracked directory's fingerprint: what a no-op status of 100,000 files costs one walk ---------------
def dir_rows(repo) -> dict[str, str]:
    with sqlite3.connect(repo / ".mvc" / "state.db") as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'dirs'").fetchall():
            return {}
        return dict(db.execute("SELECT path, oid FROM dirs").fetchall())


def pointer_oid(repo, rel: str) -> str:
    return tomllib.loads((repo / f"{rel}.mvc").read_text())["oid"]


@pytest.fixture
def scans(monkeypatch) -> list[str]:
    """The directories status scanned file by file (state cache lookups, manifest rebuilt)."""
    seen: list[str] = []
    real = pathstatus.scan_dir

    def scan_dir(repo, rel, *a, **kw):
        seen.append(rel)
        return real(repo, rel, *a, **kw)

    monkeypatch.setattr(pathstatus, "scan_dir", scan_dir)
    return seen


def test_add_records_the_directory_and_a_no_op_status_only_walks_it(tracked, mvc_cli, hashes, scans):
    assert dir_rows(tracked) == {"model": pointer_oid(tracked, "model")}
    assert mvc_cli("status", "model").stdout == "model: up to date\n"
    assert scans == [] and total(hashes) == 0


def same_size_rewrite(d):
    f = d / "part-1.bin"
    st = f.stat()
    f.write_bytes(bytes(b ^ 1 for b in f.read_bytes()))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back: only the ctime moved


def rename(d):
    (d / "part-1.bin").rename(d / "part-1b.bin")


CHANGES = {
    "same size, mtime put back": same_size_rewrite,
    "renamed": rename,
    "new file": lambda d: make_file(d / "new.bin", 10),
    "removed": lambda d: (d / "part-2.bin").unlink(),
    "made executable": lambda d: (d / "part-3.bin").chmod(0o755),
    "new empty subdirectory holding a file": lambda d: make_file(d / "sub" / "x.bin", 1),
}


@pytest.mark.parametrize("change", CHANGES)
def test_any_change_to_a_recorded_directory_is_seen(tracked, mvc_cli, scans, change):
    CHANGES[change](tracked / "model")
    assert mvc_cli("status", "model").stdout == "model: modified\n"
    assert scans == ["model"]


def test_undoing_a_change_is_up_to_date_again_and_recorded_again(tracked, mvc_cli, scans):
    d = tracked / "model"
    data = (d / "part-1.bin").read_bytes()
    (d / "part-1.bin").write_bytes(b"other")
    assert mvc_cli("status", "model").stdout == "model: modified\n"
    (d / "part-1.bin").write_bytes(data)
    age(d)
    assert mvc_cli("status", "model").stdout == "model: up to date\n"  # hashed, seen to match: recorded
    scans.clear()
    assert mvc_cli("status", "model").stdout == "model: up to date\n"
    assert scans == []


def test_a_cache_object_gone_is_seen_without_a_scan(tracked, mvc_cli, scans):
    entries = mf.loads(
        (tracked / ".mvc" / "cache" / "objects" / oids.to_relpath(pointer_oid(tracked, "model"))).read_bytes()
    )
    os.unlink(tracked / ".mvc" / "cache" / "objects" / oids.to_relpath(entries[0].oid))
    assert json.loads(mvc_cli("status", "model", "--json").stdout)[0]["cache"] == "missing"
    assert scans == []


def test_a_directory_of_just_written_files_is_not_recorded(repo, mvc_cli):
    """As with single files: a file written within the timestamp granularity could change unseen."""
    f = make_file(repo / "fresh" / "a.bin", 100)
    soon = time.time() + 60
    os.utime(f, (soon, soon))
    mvc_cli("add", "fresh")
    assert dir_rows(repo) == {}
    assert mvc_cli("status", "fresh").stdout == "fresh: up to date\n"
    assert dir_rows(repo) == {}


@pytest.mark.parametrize("cache_type", ["hardlink", "symlink"])
def test_a_directory_linked_to_the_cache_is_never_taken_on_its_fingerprint(repo, mvc_cli, cache_type, scans):
    """A link's stat does not vouch for what it points at: such directories are scanned every time."""
    mvc_cli("config", "cache.type", cache_type)
    for i in range(3):
        make_file(repo / "model" / f"p{i}.bin", 100, seed=i)
    age(repo / "model")
    mvc_cli("add", "model")
    for _ in range(2):
        assert mvc_cli("status", "model").stdout == "model: up to date\n"
    assert scans == ["model", "model"]


def test_rows_put_from_a_forked_add_s_fields_are_those_put_from_stat_results(tmp_path):
    """StateDB.put_fields (what a forked add hands back) keeps the rows put would, and skips the same ones: a file
    written within the racy window, a name SQLite cannot hold."""
    from mvc.repo.statedb import StateDB
    from mvc.storage.forked import stat_fields

    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(b"o")
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    new.write_bytes(b"n")  # just written: not trusted
    stats = [("d/old.bin", os.lstat(old)), ("d/new.bin", os.lstat(new)), ("d/\udcff.bin", os.lstat(old))]
    one, many = StateDB(str(tmp_path / "a.db")), StateDB(str(tmp_path / "b.db"))
    for rel, st in stats:
        one.put(rel, st, "xxh128:" + "a" * 32)
    many.put_fields([(rel, stat_fields(st), "xxh128:" + "a" * 32) for rel, st in stats])
    assert many._pending == one._pending and [r[0] for r in one._pending] == ["d/old.bin"]


def test_local_state_is_ignored_on_a_branch_older_than_mvc_init(gitrepo, mvc_cli):
    """.mvc/.gitignore is not there on a branch from before 'mvc init': the repository's info/exclude keeps
    git from taking state.db, the journal and the lock there (a 'git add -A' once committed them)."""
    (gitrepo / "train.py").write_text("code\n")
    git(gitrepo, "add", "-A")
    git(gitrepo, "commit", "-q", "-m", "before mvc")
    git(gitrepo, "branch", "old")
    mvc_cli("init")
    make_file(gitrepo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    git(gitrepo, "commit", "-q", "-m", "mvc")
    assert (gitrepo / ".mvc" / "state.db").exists()
    git(gitrepo, "checkout", "-q", "old")
    assert not (gitrepo / ".mvc" / ".gitignore").exists()
    status = git(gitrepo, "status", "--porcelain", "--untracked-files=all")
    assert ".mvc/" not in status, status
    exclude = (gitrepo / ".git" / "info" / "exclude").read_text()
    mvc_cli("init", "--no-stage")  # once: not written twice
    assert (gitrepo / ".git" / "info" / "exclude").read_text().count("/.mvc/*") == 1
    assert "/.mvc/*" in exclude


def test_format_md_names_state_dbs_columns_in_the_tables_order(repo, mvc_cli):
    """docs/FORMAT.md's table definitions of .mvc/state.db list the columns as the tables have them, in order."""
    import re

    from conftest import ROOT

    make_file(repo / "m.bin", 2000, seed=1)
    make_file(repo / "d" / "a.bin", 100, seed=2)
    age(repo / "m.bin", repo / "d" / "a.bin")  # (old enough to be vouched for: dirs gets its row)
    mvc_cli("add", "m.bin", "d")
    mvc_cli("status")
    doc = (ROOT / "docs" / "FORMAT.md").read_text()
    part = doc[doc.index("- `.mvc/state.db`:") : doc.index("- `.mvc/.gitignore`")]
    documented = {t: [c.split()[0] for c in cols.split(", ")] for t, cols in re.findall(r"`(\w+)\(([^)]*)\)`", part)}
    db = sqlite3.connect(repo / ".mvc" / "state.db")
    tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert {"state", "dirs", "added"} <= set(tables) <= set(documented), (tables, documented)
    for t in tables:
        assert documented[t] == [row[1] for row in db.execute(f"PRAGMA table_info({t})")], t
    db.close()
