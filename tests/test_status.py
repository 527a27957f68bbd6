"""`mvc status`: up to date, modified, missing from workspace, missing from cache; --json; exit 0."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import git, make_file

import mvc
from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf


def obj(repo, oid):
    return repo / ".mvc" / "cache" / "objects" / oid[7:9] / oid[9:]


def remove_obj(repo, oid):
    path = obj(repo, oid)
    path.chmod(0o644)
    path.unlink()


@pytest.fixture
def tracked(repo, mvc_cli):
    """model.bin and a directory model/ tracked and committed."""
    make_file(repo / "model.bin", 2000, seed=1)
    make_file(repo / "model" / "a.bin", 100, seed=2)
    make_file(repo / "model" / "sub" / "b.bin", 100, seed=3)
    mvc_cli("add", "model.bin", "model")
    git(repo, "commit", "-q", "-m", "models")
    return repo


def status(mvc_cli, *args) -> str:
    r = mvc_cli("status", *args)
    assert r.exit_code == 0 and r.stderr == ""
    return r.stdout


def test_nothing_tracked(repo, mvc_cli):
    assert status(mvc_cli) == "nothing tracked yet: run 'mvc add PATH'\n"
    assert json.loads(status(mvc_cli, "--json")) == []


def test_up_to_date(tracked, mvc_cli):
    assert status(mvc_cli) == "model.bin: up to date\nmodel: up to date\n"


def test_modified_same_size(tracked, mvc_cli):
    data = bytearray((tracked / "model.bin").read_bytes())
    data[1000] ^= 1
    (tracked / "model.bin").write_bytes(bytes(data))
    assert status(mvc_cli) == "model.bin: modified\nmodel: up to date\n"


def test_modified_other_size(tracked, mvc_cli):
    with open(tracked / "model.bin", "ab") as f:
        f.write(b"x")
    assert status(mvc_cli, "model.bin") == "model.bin: modified\n"


def test_another_cached_version_is_said_with_both_ways_out(tracked, mvc_cli):
    """After a git reset (no hook, no mvc checkout) the workspace holds the version the cache has and the
    pointer does not name: status says so, from the state cache (nothing hashed), and how to go either way."""
    import time

    make_file(tracked / "model.bin", 3000, seed=7)
    old = time.time() - 10
    os.utime(tracked / "model.bin", (old, old))  # (the state cache records files a second old)
    mvc_cli("add", "model.bin", "-q")
    v2 = json.loads(mvc_cli("status", "--json", "model.bin").stdout)[0]["oid"]
    git(tracked, "commit", "-q", "-m", "v2")
    git(tracked, "reset", "-q", "--hard", "HEAD~1")
    out = status(mvc_cli, "model.bin")
    assert out.startswith(f"model.bin: modified: it holds another version the cache has ({v2[7:19]})"), out
    assert "'mvc checkout model.bin' restores" in out and "'mvc add model.bin' records" in out
    assert json.loads(status(mvc_cli, "--json", "model.bin"))[0]["other"] == v2
    mvc_cli("checkout", "model.bin", "--force")
    assert status(mvc_cli, "model.bin") == "model.bin: up to date\n"


def test_another_cached_version_the_state_cache_does_not_know_is_said_the_first_time(tracked, mvc_cli):
    """A version the cache holds, of the pointer's size, written again (the state cache does not know the new
    file): status hashes it to call it modified, and names the version from that hash on its first run (it did
    so only from the second, once the hash was recorded)."""
    import time

    make_file(tracked / "model.bin", 2000, seed=7)  # the size of the committed version
    mvc_cli("add", "model.bin", "-q")
    v2 = json.loads(status(mvc_cli, "--json", "model.bin"))[0]["oid"]
    data = (tracked / "model.bin").read_bytes()
    git(tracked, "checkout", "-q", "HEAD", "--", "model.bin.mvc")  # the pointer back to v1, v2's bytes kept
    (tracked / "model.bin").unlink()
    (tracked / "model.bin").write_bytes(data)  # a new file: no row of the state cache vouches for it
    old = time.time() - 20
    os.utime(tracked / "model.bin", (old, old))
    [row] = json.loads(status(mvc_cli, "--json", "model.bin"))
    assert (row["workspace"], row.get("other")) == ("modified", v2), row


def test_status_looks_at_a_file_once(tracked, monkeypatch):
    """A tracked file is lstat'ed once and asked of the state cache once by status, up to date or modified (of
    its pointer's size or not): whether it holds another version the cache has is told from what was read."""
    from mvc.repo import statedb

    calls: list[str] = []
    lstat, get = os.lstat, statedb.StateDB.get

    def counted_lstat(path, *args, **kwargs):
        if os.fspath(path).endswith(os.sep + "model.bin"):
            calls.append("lstat")
        return lstat(path, *args, **kwargs)

    def counted_get(self, rel, st):
        if rel == "model.bin":
            calls.append("get")
        return get(self, rel, st)

    monkeypatch.setattr(os, "lstat", counted_lstat)
    monkeypatch.setattr(statedb.StateDB, "get", counted_get)
    v1 = (tracked / "model.bin").read_bytes()
    changed = bytearray(v1)
    changed[1000] ^= 1
    for data, ws in ((None, "ok"), (v1 + b"x", "modified"), (bytes(changed), "modified")):
        if data is not None:  # one more byte; then the pointer's size, a byte changed
            (tracked / "model.bin").unlink()
            (tracked / "model.bin").write_bytes(data)
        calls.clear()
        assert [r["workspace"] for r in mvc.status(["model.bin"])] == [ws]
        assert sorted(calls) == ["get", "lstat"], (ws, calls)


def test_modified_replaced_by_a_directory(tracked, mvc_cli):
    (tracked / "model.bin").unlink()
    (tracked / "model.bin").mkdir()
    assert status(mvc_cli, "model.bin") == "model.bin: modified\n"


def test_a_directory_holding_what_mvc_cannot_record_is_modified(tracked, mvc_cli, mvc_error):
    """A FIFO put in a tracked directory: status says the directory is modified (the rest is still reported)
    and add refuses it in one line that names it and the fix."""
    os.mkfifo(tracked / "model" / "sub" / "pipe")
    assert status(mvc_cli) == "model.bin: up to date\nmodel: modified\n"
    line = mvc_error("add", "model")
    assert "model/sub/pipe is not a regular file" in line and "move it out of the way or delete it" in line


def test_a_pointer_that_never_parses_is_not_waited_for(tracked, mvc_cli, mvc_error, monkeypatch):
    """Reading a pointer again is for one git is writing (gone, empty, cut in a line), not for one that will never
    parse (a merge conflict's markers): no pause before the error, or before status lists it as conflicted."""
    import time

    naps: list[float] = []
    monkeypatch.setattr(time, "sleep", naps.append)
    (tracked / "model.bin.mvc").write_text("<<<<<<< HEAD\noid = 1\n=======\noid = 2\n>>>>>>> other\n")
    mvc_error("checkout", "model.bin", words=("merge conflict markers",))
    out = mvc_cli("status", "model.bin").stdout
    assert "model.bin: conflicted" in out and "no merge left it unmerged" in out and "git log -p" in out, out
    assert naps == []


def test_missing_from_workspace(tracked, mvc_cli):
    (tracked / "model.bin").unlink()
    shutil.rmtree(tracked / "model")
    assert status(mvc_cli) == "model.bin: missing from workspace\nmodel: missing from workspace\n"


def test_missing_from_cache(tracked, mvc_cli):
    remove_obj(tracked, ptrfmt.loads((tracked / "model.bin.mvc").read_bytes()).oid)
    assert status(mvc_cli) == "model.bin: missing from cache\nmodel: up to date\n"
    (tracked / "model.bin").unlink()
    assert status(mvc_cli, "model.bin") == "model.bin: missing from workspace, missing from cache\n"


def test_dir_missing_from_cache_when_one_file_object_is_gone(tracked, mvc_cli):
    p = ptrfmt.loads((tracked / "model.mvc").read_bytes())
    entry = mf.loads(obj(tracked, p.oid).read_bytes())[0]
    remove_obj(tracked, entry.oid)
    assert status(mvc_cli, "model") == "model: missing from cache\n"


def test_dir_missing_from_cache_when_manifest_is_gone(tracked, mvc_cli):
    remove_obj(tracked, ptrfmt.loads((tracked / "model.mvc").read_bytes()).oid)
    assert status(mvc_cli, "model") == "model: missing from cache\n"
    make_file(tracked / "model" / "new.bin", 5)  # without the manifest a change is still seen
    assert status(mvc_cli, "model") == "model: modified, missing from cache\n"


def test_json(tracked, mvc_cli):
    (tracked / "model.bin").unlink()
    rows = json.loads(status(mvc_cli, "--json"))
    mp = ptrfmt.loads((tracked / "model.mvc").read_bytes())
    fp = ptrfmt.loads((tracked / "model.bin.mvc").read_bytes())
    assert rows == [  # in the order of the pointer files' paths
        {"path": "model.bin", "kind": "file", "oid": fp.oid, "size": 2000, "workspace": "missing", "cache": "ok"},
        {"path": "model", "kind": "dir", "oid": mp.oid, "size": 200, "workspace": "ok", "cache": "ok"},
    ]
    assert mvc.status() == rows


@pytest.mark.parametrize("read_manifest", [False, True], ids=["hashed", "manifest read"])
@pytest.mark.parametrize(
    "change", ["file added", "file removed", "file changed", "file renamed", "chmod +x", "chmod -x", "empty dir added"]
)
def test_directory_changes(tracked, mvc_cli, monkeypatch, change, read_manifest):
    """Small changes are hashed and the manifest they make compared; more than HASH_FIRST bytes to hash (0 here)
    and the manifest is read first, to find a change without hashing."""
    if read_manifest:
        monkeypatch.setattr("mvc.repo.pathstatus.HASH_FIRST", 0)
    d = tracked / "model"
    if change == "file added":
        make_file(d / "sub" / "c.bin", 1)
    elif change == "file removed":
        (d / "sub" / "b.bin").unlink()
    elif change == "file changed":
        make_file(d / "a.bin", 100, seed=99)
    elif change == "file renamed":
        (d / "a.bin").rename(d / "a2.bin")
    elif change == "chmod +x":
        (d / "a.bin").chmod(0o755)
    elif change == "chmod -x":
        (d / "a.bin").chmod(0o755)
        mvc_cli("add", "model")
        assert status(mvc_cli, "model") == "model: up to date\n"
        (d / "a.bin").chmod(0o644)
    elif change == "empty dir added":
        (d / "empty").mkdir()
        # empty directories are not recorded, so this is no change
        assert status(mvc_cli, "model") == "model: up to date\n"
        return
    assert status(mvc_cli, "model") == "model: modified\n"
    assert status(mvc_cli, "model.bin") == "model.bin: up to date\n"


def test_path_selection(tracked, mvc_cli, monkeypatch):
    assert status(mvc_cli, "model.bin.mvc") == "model.bin: up to date\n"  # the pointer names it too
    assert status(mvc_cli, ".") == "model.bin: up to date\nmodel: up to date\n"
    monkeypatch.chdir(tracked / "model")
    assert status(mvc_cli, "..") == "model.bin: up to date\nmodel: up to date\n"


def test_status_of_untracked_path_is_refused(tracked, mvc_error):
    make_file(tracked / "other.bin", 1)
    mvc_error("status", "other.bin", words=("not tracked", "mvc add other.bin"))


def test_uncommitted_pointer_is_listed(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin", "--no-stage")
    assert status(mvc_cli) == "m.bin: up to date\n"


def test_touch_without_change_is_up_to_date(tracked, mvc_cli):
    os.utime(tracked / "model.bin", ns=(1, 1))
    os.utime(tracked / "model" / "a.bin")
    assert status(mvc_cli) == "model.bin: up to date\nmodel: up to date\n"


def test_many_directories_are_judged_each_as_alone(repo, mvc_cli):
    """A status of several directories judges each as when it is asked about alone, whatever became of it (edited,
    deleted, replaced by a file or a symlink, a file more)."""
    names = [f"d{i}" for i in range(7)]
    for i, name in enumerate(names):
        make_file(repo / name / "a.bin", 100, seed=i)
        make_file(repo / name / "sub" / "b.bin", 50, seed=10 + i)
    mvc_cli("add", *names)
    git(repo, "commit", "-q", "-m", "dirs")
    make_file(repo / "d1" / "a.bin", 100, seed=99)  # modified
    shutil.rmtree(repo / "d2")  # missing
    shutil.rmtree(repo / "d3")
    (repo / "d3").write_bytes(b"a file now")  # replaced by a file
    shutil.rmtree(repo / "d4")
    os.symlink(repo / "d0", repo / "d4")  # a symlink to a directory
    (repo / "d5" / "new.bin").write_bytes(b"x")  # a file more
    together = json.loads(mvc_cli("status", "--json").stdout)
    alone = [json.loads(mvc_cli("status", "--json", name).stdout)[0] for name in names]
    assert together == alone
    assert [e["workspace"] for e in together] == ["ok", "modified", "missing", "modified", "modified", "modified", "ok"]


@pytest.fixture
def forked_stat(monkeypatch):
    """mvc (in this process) stats a directory of 10 files or more by two forked processes."""
    monkeypatch.setattr("mvc.repo.worktree.STAT_FORKED_FROM", 10)
    monkeypatch.setattr("mvc.storage.forked.workers_for", lambda n, least, most=8: 2 if n >= least else 1)


def test_a_walk_by_forked_processes_finds_what_one_process_finds(repo, monkeypatch):
    from mvc.repo import worktree

    for i in range(25):
        make_file(repo / "d" / f"s{i % 3}" / f"f{i}.bin", 100 + i, seed=i)
    full = str(repo / "d")
    one = worktree.Walk(full)
    monkeypatch.setattr(worktree, "STAT_FORKED_FROM", 10)
    monkeypatch.setattr("mvc.storage.forked.workers_for", lambda n, least, most=8: 2)
    two = worktree.Walk(full)
    assert two._shares is not None and one._shares is None  # (the walk under test did fork)
    assert two.fingerprint() == one.fingerprint() is not None
    assert [
        (s, p, (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode, st.st_mtime)) for s, p, st in two
    ] == [(s, p, (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode, st.st_mtime)) for s, p, st in one]
    os.symlink("s0/f0.bin", repo / "d" / "link")  # not a regular file: no fingerprint, in both
    assert worktree.Walk(full).fingerprint() is None
    monkeypatch.setattr(worktree, "STAT_FORKED_FROM", 10**9)
    assert worktree.Walk(full).fingerprint() is None


def test_a_forked_share_digests_and_judges_as_one_process_does(repo):
    """The numbers, the 'regular' and the 'trusted' of a forked worker's share (columns of its stat fields) are
    what each file's stat_result says, for regular files, a read-only hard link (a cache link), a symlink, a file
    just changed; and its stat fields make those stat_results again."""
    import stat
    import time
    from array import array

    from mvc.repo import statedb, worktree
    from mvc.storage import forked

    d = repo / "d"
    for i in range(5):
        make_file(d / f"f{i}.bin", 10 + i, seed=i)
    old = time.time_ns() - 10 * statedb.RACY_NS
    for f in d.iterdir():
        os.utime(f, ns=(old, old))
    paths = sorted(str(f) for f in d.iterdir())
    seen = []

    def judge(share: list[str]) -> None:
        racy_from = time.time_ns() - statedb.RACY_NS
        digested, fields, regular, trusted = worktree._stat_share(share, racy_from)
        stats = [os.lstat(p) for p in share]  # what they must be, said per stat_result
        want = array(
            "q", [x for st in stats for x in (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)]
        )
        want_regular = all(
            stat.S_ISREG(st.st_mode) and not (st.st_nlink > 1 and not st.st_mode & 0o222) for st in stats
        )
        want_trusted = not any(st.st_ctime_ns <= st.st_mtime_ns > racy_from for st in stats)
        assert (digested, regular, trusted) == (want.tobytes(), want_regular, want_trusted)
        one, one_regular, one_trusted = worktree._digested(stats, racy_from)  # the walk in one process
        assert (one.tobytes(), one_regular, one_trusted) == (want.tobytes(), want_regular, want_trusted)
        assert forked.stats_from(array("q", fields)) == stats
        seen.append((regular, trusted))

    judge(paths)
    make_file(d / "now.bin", 3, seed=9)  # changed just now: racy
    judge([*paths, str(d / "now.bin")])
    os.symlink("f1.bin", d / "sym")
    judge([*paths, str(d / "sym")])
    os.link(d / "f0.bin", d / "hard.bin")
    os.chmod(d / "f0.bin", 0o444)  # a read-only hard link: a cache link
    judge(paths)
    assert seen == [(True, True), (True, False), (False, False), (False, True)]  # (the symlink is new: racy too)


def test_status_of_a_directory_statted_by_forked_processes(repo, mvc_cli, forked_stat):
    for i in range(30):
        make_file(repo / "d" / f"f{i}.bin", 100 + i, seed=i)
    mvc_cli("add", "d")
    assert "d: up to date" in mvc_cli("status").output
    assert "d: up to date" in mvc_cli("status").output  # the second: from the fingerprint alone
    make_file(repo / "d" / "f7.bin", 107, seed=1000)
    assert "d: modified" in mvc_cli("status").output


@pytest.mark.parametrize(
    "change", ["file changed", "file added", "file removed", "file renamed", "chmod +x", "touched"]
)
def test_a_forked_walk_judges_a_change_from_its_numbers(repo, mvc_cli, forked_stat, monkeypatch, change):
    """Past a fingerprint the state cache does not know, a directory whose numbers forked processes took is judged
    from them: no file is scanned into a File object, the ones the state cache does not vouch for are hashed, and
    the manifest all of them make is compared with the pointer's by its hash. A file touched and not changed
    leaves it up to date, and the status after that takes the fingerprint alone."""
    from mvc.repo import pathstatus

    d = repo / "d"
    for i in range(30):
        make_file(d / f"f{i}.bin", 100 + i, seed=i)
        os.utime(d / f"f{i}.bin", ns=(10**18, 10**18))  # (not changed within the racy second: trusted)
    mvc_cli("add", "d")
    if change == "file changed":
        make_file(d / "f7.bin", 107, seed=1000)
    elif change == "file added":
        make_file(d / "sub" / "new.bin", 5, seed=5)
    elif change == "file removed":
        (d / "f3.bin").unlink()
    elif change == "file renamed":
        (d / "f3.bin").rename(d / "g3.bin")
    elif change == "chmod +x":
        (d / "f4.bin").chmod(0o755)
    else:
        os.utime(d / "f5.bin", ns=(10**18 + 10**9, 10**18 + 10**9))
    monkeypatch.setattr(pathstatus, "scan_dir", lambda *args: pytest.fail("the directory was scanned"))
    hashed: list[str] = []
    real = pathstatus.hash_of
    monkeypatch.setattr(pathstatus, "hash_of", lambda repo, rel, f, bar: hashed.append(rel) or real(repo, rel, f, bar))
    if change != "touched":
        assert status(mvc_cli) == "d: modified\n"
        assert (
            hashed
            == {
                "file changed": ["d/f7.bin"],
                "file added": ["d/sub/new.bin"],
                "file removed": [],
                "file renamed": ["d/g3.bin"],
                "chmod +x": ["d/f4.bin"],
            }[change]
        )  # only the files the state cache does not vouch for
        return
    assert status(mvc_cli) == "d: up to date\n" and hashed == ["d/f5.bin"]
    assert status(mvc_cli) == "d: up to date\n" and hashed == ["d/f5.bin"]  # the state cache's row, then
    monkeypatch.setattr(pathstatus, "_status_columns", lambda *args: pytest.fail("judged again"))
    assert status(mvc_cli) == "d: up to date\n"  # the fingerprint alone


def test_files_lists_what_changed_in_a_directory(tracked, mvc_cli):
    """--files: a modified directory's files added, removed and modified (content of the same size, another size,
    the executable bit), in text and JSON; nothing for a path that is up to date."""
    m = tracked / "model"
    make_file(m / "new.bin", 10, seed=9)
    (m / "sub" / "b.bin").unlink()
    make_file(m / "a.bin", 100, seed=4)  # same size, other bytes
    make_file(m / "c.bin", 5, seed=5)
    mvc_cli("add", "model")
    git(tracked, "commit", "-q", "-m", "more")
    make_file(m / "c.bin", 6, seed=5)  # another size: not read
    make_file(m / "a.bin", 100, seed=6)
    (m / "new.bin").chmod(0o755)
    (m / "d.bin").write_bytes(b"d")
    rows = {r["path"]: r for r in json.loads(mvc_cli("status", "--files", "--json").stdout)}
    assert rows["model"]["files"] == {"added": ["d.bin"], "removed": [], "modified": ["a.bin", "c.bin", "new.bin"]}
    assert "files" not in rows["model.bin"]
    assert "files" not in {r["path"]: r for r in json.loads(mvc_cli("status", "--json").stdout)}["model"]
    text = status(mvc_cli, "--files").splitlines()
    assert text == [
        "model.bin: up to date",
        "model: modified",
        "    added:     model/d.bin",
        "    modified:  model/a.bin",
        "    modified:  model/c.bin",
        "    modified:  model/new.bin",
    ]
    (m / "d.bin").unlink()
    (m / "c.bin").unlink()
    rows = {r["path"]: r for r in json.loads(mvc_cli("status", "--files", "--json").stdout)}
    assert rows["model"]["files"]["removed"] == ["c.bin"]


def test_files_without_the_manifest_says_how_to_get_it(tracked, mvc_cli):
    (tracked / "model" / "a.bin").unlink()
    remove_obj(tracked, ptrfmt.loads((tracked / "model.mvc").read_bytes()).oid)
    rows = {r["path"]: r for r in json.loads(mvc_cli("status", "--files", "--json").stdout)}
    assert rows["model"]["workspace"] == "modified" and rows["model"]["files"] is None
    assert "run 'mvc fetch model' to list the files changed" in status(mvc_cli, "--files")


def test_files_reads_each_changed_file_once(tracked, mvc_cli, monkeypatch):
    """status --files compares the files status scanned and hashed: no file is read twice."""
    from mvc.storage import fileio

    make_file(tracked / "model" / "a.bin", 100, seed=7)
    read = []
    real = fileio.hash_file
    monkeypatch.setattr(fileio, "hash_file", lambda path, *a, **k: read.append(path) or real(path, *a, **k))
    [row] = mvc.status(["model"], files=True)
    assert row["files"]["modified"] == ["a.bin"]
    assert str(tracked / "model" / "a.bin") in read and len(read) == len(set(read))  # (files just written: racy)
