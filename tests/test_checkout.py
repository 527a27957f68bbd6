"""`mvc checkout`: restore files, --rev (commit, branch, tag), never destroy unsaved work, --force keeps it."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess

import pytest
import xxhash
from conftest import git, make_file

from mvc.format import pointer as ptrfmt


def oid_of(data: bytes) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def obj(repo, oid):
    return repo / ".mvc" / "cache" / "objects" / oid[7:9] / oid[9:]


def files_under(d) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def history(repo, mvc_cli):
    """Two commits of model.bin and model/: v1 (tag v1, branch old) and v2 (main)."""
    make_file(repo / "model.bin", 3000, seed=1)
    make_file(repo / "model" / "a.bin", 500, seed=2)
    make_file(repo / "model" / "sub" / "b.bin", 500, seed=3)
    mvc_cli("add", "model.bin", "model")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    git(repo, "branch", "old")
    v1 = {
        "model.bin": (repo / "model.bin").read_bytes(),
        "model": files_under(repo / "model"),
        "model.bin.mvc": (repo / "model.bin.mvc").read_bytes(),
        "model.mvc": (repo / "model.mvc").read_bytes(),
        "sha": git(repo, "rev-parse", "HEAD").strip(),
    }
    make_file(repo / "model.bin", 4000, seed=4)
    make_file(repo / "model" / "a.bin", 600, seed=5)
    (repo / "model" / "sub" / "b.bin").unlink()
    make_file(repo / "model" / "c.bin", 700, seed=6)
    mvc_cli("add", "model.bin", "model")
    git(repo, "commit", "-q", "-m", "v2")
    v2 = {
        "model.bin": (repo / "model.bin").read_bytes(),
        "model": files_under(repo / "model"),
        "model.bin.mvc": (repo / "model.bin.mvc").read_bytes(),
        "model.mvc": (repo / "model.mvc").read_bytes(),
    }
    return repo, v1, v2


def assert_at(repo, version):
    assert (repo / "model.bin").read_bytes() == version["model.bin"]
    assert files_under(repo / "model") == version["model"]
    assert (repo / "model.bin.mvc").read_bytes() == version["model.bin.mvc"]
    assert (repo / "model.mvc").read_bytes() == version["model.mvc"]


def test_restores_missing_file_and_directory(history, mvc_cli):
    repo, _, v2 = history
    (repo / "model.bin").unlink()
    shutil.rmtree(repo / "model")
    out = mvc_cli("checkout").stdout
    assert sorted(out.splitlines()) == sorted(
        [
            f"restored model.bin ({ptrfmt.loads(v2['model.bin.mvc']).oid[7:19]})",
            f"restored model ({ptrfmt.loads(v2['model.mvc']).oid[7:19]})",
        ]
    )
    assert_at(repo, v2)
    assert mvc_cli("status").stdout == "model.bin: up to date\nmodel: up to date\n"
    assert mvc_cli("checkout").stdout == ""  # nothing left to do
    assert git(repo, "status", "--porcelain") == ""


def test_restores_only_the_named_path(history, mvc_cli):
    repo, _, v2 = history
    (repo / "model.bin").unlink()
    (repo / "model" / "a.bin").unlink()
    mvc_cli("checkout", "model.bin")
    assert (repo / "model.bin").read_bytes() == v2["model.bin"]
    assert not (repo / "model" / "a.bin").exists()


def test_restores_a_file_inside_a_directory(history, mvc_cli):
    repo, _, v2 = history
    (repo / "model" / "a.bin").unlink()
    mvc_cli("checkout", "model")
    assert files_under(repo / "model") == v2["model"]


@pytest.mark.parametrize("rev", ["v1", "old", "sha", "HEAD~1"])
def test_rev_commit_branch_tag(history, mvc_cli, rev):
    repo, v1, v2 = history
    mvc_cli("checkout", "--rev", v1["sha"] if rev == "sha" else rev)
    assert_at(repo, v1)
    # the pointers as of REV are in the work tree and the index: committing would record v1 again
    assert git(repo, "diff", "--name-only") == ""
    assert git(repo, "diff", "--cached", "--name-only").split() == ["model.bin.mvc", "model.mvc"]
    assert mvc_cli("status").stdout == "model.bin: up to date\nmodel: up to date\n"
    mvc_cli("checkout", "--rev", "main")
    assert_at(repo, v2)
    assert git(repo, "status", "--porcelain") == ""


def test_rev_for_one_path(history, mvc_cli):
    repo, v1, v2 = history
    mvc_cli("checkout", "model.bin", "--rev", "v1")
    assert (repo / "model.bin").read_bytes() == v1["model.bin"]
    assert files_under(repo / "model") == v2["model"]
    assert (repo / "model.mvc").read_bytes() == v2["model.mvc"]


def test_rev_removes_files_the_old_manifest_lacks_when_safe(history, mvc_cli):
    repo, v1, _ = history
    assert (repo / "model" / "c.bin").exists()  # only in v2, whose content is in the cache
    mvc_cli("checkout", "model", "--rev", "v1")
    assert not (repo / "model" / "c.bin").exists()
    assert files_under(repo / "model") == v1["model"]


def test_directories_emptied_by_removed_files_go_too(history, mvc_cli):
    repo, _v1, v2 = history
    os.rmdir(repo / "model" / "sub")  # v2 has no sub/
    mvc_cli("checkout", "model", "--rev", "v1")
    assert (repo / "model" / "sub" / "b.bin").exists()
    (repo / "model" / "keep").mkdir()  # the user's own empty directory is not mvc's to remove
    mvc_cli("checkout", "model", "--rev", "main")
    assert not (repo / "model" / "sub").exists()  # as git does with the directories of removed files
    assert (repo / "model" / "keep").is_dir()
    assert files_under(repo / "model") == v2["model"]


def test_unknown_rev(history, mvc_error):
    repo, _, v2 = history
    mvc_error("checkout", "--rev", "no-such-tag", words=("unknown revision", "git log"))
    assert_at(repo, v2)


def test_unknown_rev_in_a_shallow_clone_says_the_clone_is_shallow(history, mvc_error, tmp_path, monkeypatch):
    """git log there shows one commit: the history the clone lacks is the answer, not 'check it with git log'."""
    repo = history[0]
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", repo.as_uri(), str(clone))
    monkeypatch.chdir(clone)
    for args in (("checkout", "--rev", "HEAD~1"), ("log", "model.bin", "--rev", "HEAD~1")):
        mvc_error(*args, words=("unknown revision 'HEAD~1' in this shallow clone", "'git fetch --unshallow'"))


def test_modified_file_not_in_cache_is_refused(history, mvc_cli, mvc_error):
    repo, _, v2 = history
    make_file(repo / "model.bin", 4000, seed=77)  # unsaved work
    work = (repo / "model.bin").read_bytes()
    mvc_error("checkout", words=("model.bin", "not in the cache", "mvc add", "--force"))
    assert (repo / "model.bin").read_bytes() == work
    assert (repo / "model.bin.mvc").read_bytes() == v2["model.bin.mvc"]


def test_modified_file_refused_with_rev_changes_nothing(history, mvc_cli, mvc_error):
    """A refused checkout --rev leaves the pointers (work tree and index) as they were."""
    repo, _, v2 = history
    make_file(repo / "model.bin", 10, seed=77)
    work = (repo / "model.bin").read_bytes()
    mvc_error("checkout", "--rev", "v1", words=("model.bin", "--force"))
    assert (repo / "model.bin").read_bytes() == work
    assert (repo / "model.bin.mvc").read_bytes() == v2["model.bin.mvc"]
    assert (repo / "model.mvc").read_bytes() == v2["model.mvc"]
    assert git(repo, "status", "--porcelain") == ""


def test_force_keeps_the_replaced_content_in_the_cache(history, mvc_cli):
    repo, v1, _ = history
    make_file(repo / "model.bin", 5000, seed=77)
    work = (repo / "model.bin").read_bytes()
    out = mvc_cli("checkout", "--rev", "v1", "--force").stdout
    m = re.search(r"^kept the replaced content of model.bin in the cache as (xxh128:[0-9a-f]{32})$", out, re.M)
    assert m, out
    assert m.group(1) == oid_of(work)
    kept = obj(repo, m.group(1))
    assert kept.read_bytes() == work
    assert stat.S_IMODE(kept.stat().st_mode) == 0o444
    assert_at(repo, v1)
    # the printed oid is enough to get the work back
    (repo / "model.bin.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("file", m.group(1), len(work))))
    mvc_cli("checkout", "model.bin")
    assert (repo / "model.bin").read_bytes() == work


def test_modified_file_in_cache_is_replaced_without_force(history, mvc_cli):
    """Content that the cache already holds (an older version) is safe to replace."""
    repo, v1, v2 = history
    (repo / "model.bin").write_bytes(v1["model.bin"])
    out = mvc_cli("checkout", "model.bin").stdout
    assert "kept" not in out
    assert (repo / "model.bin").read_bytes() == v2["model.bin"]


def test_dir_extra_file_not_in_cache_is_refused_then_forced(history, mvc_cli, mvc_error):
    repo, _, v2 = history
    extra = make_file(repo / "model" / "notes" / "extra.txt", 50, seed=9)
    mvc_error("checkout", "model", words=("model/notes/extra.txt", "not in the cache"))
    assert extra.read_bytes() == make_file(repo.parent / "x", 50, seed=9).read_bytes()
    out = mvc_cli("checkout", "model", "--force").stdout
    m = re.search(r"kept the replaced content of model/notes/extra.txt in the cache as (xxh128:\w+)", out)
    assert m and obj(repo, m.group(1)).read_bytes() == (repo.parent / "x").read_bytes()
    assert files_under(repo / "model") == v2["model"]


def test_a_link_a_forced_checkout_replaces_is_said_with_its_target(history, mvc_cli, mvc_error, tmp_path):
    """A symbolic link of the user's in a tracked directory: --force replaces it (what it points at is untouched),
    and says so, naming the target, so that the user can make it again."""
    repo, _, v2 = history
    target = tmp_path / "elsewhere"
    target.mkdir()
    (repo / "model" / "ext").symlink_to(target)
    mvc_error("checkout", "model", words=("model/ext",))
    out = mvc_cli("checkout", "model", "--force").stdout
    assert f"replaced the link model/ext (to {target})" in out, out
    assert target.is_dir() and files_under(repo / "model") == v2["model"]
    assert "replaced the link" not in mvc_cli("checkout", "model", "--force").stdout  # (once: it is gone)


def test_dir_extra_file_in_cache_is_removed_without_force(history, mvc_cli):
    repo, v1, v2 = history
    (repo / "model" / "copy.bin").write_bytes(v1["model"]["a.bin"])  # content the cache holds
    out = mvc_cli("checkout", "model").stdout
    assert "kept" not in out
    assert files_under(repo / "model") == v2["model"]


def test_dir_modified_file_not_in_cache_is_refused(history, mvc_cli, mvc_error):
    repo, _, v2 = history
    make_file(repo / "model" / "a.bin", 600, seed=55)
    work = (repo / "model" / "a.bin").read_bytes()
    (repo / "model" / "c.bin").unlink()
    mvc_error("checkout", "--rev", "v1", words=("model/a.bin", "--force"))
    assert (repo / "model" / "a.bin").read_bytes() == work
    assert not (repo / "model" / "c.bin").exists()  # nothing restored either: the command did nothing
    assert (repo / "model.mvc").read_bytes() == v2["model.mvc"]
    assert git(repo, "status", "--porcelain") == ""


def test_dir_executable_bit_is_restored(repo, mvc_cli):
    make_file(repo / "d" / "run.sh", 10).chmod(0o755)
    mvc_cli("add", "d")
    (repo / "d" / "run.sh").chmod(0o644)
    assert mvc_cli("status").stdout == "d: modified\n"
    assert mvc_cli("checkout").stdout.startswith("restored d")
    assert os.stat(repo / "d" / "run.sh").st_mode & 0o100
    assert mvc_cli("status").stdout == "d: up to date\n"


def test_dir_checkout_restores_executable_files(repo, mvc_cli):
    make_file(repo / "d" / "run.sh", 10).chmod(0o755)
    make_file(repo / "d" / "data", 10, seed=1).chmod(0o644)
    mvc_cli("add", "d")
    shutil.rmtree(repo / "d")
    mvc_cli("checkout")
    assert os.stat(repo / "d" / "run.sh").st_mode & 0o100
    assert not os.stat(repo / "d" / "data").st_mode & 0o111


def test_directory_where_a_file_goes(history, mvc_cli, mvc_error):
    repo, _, v2 = history
    (repo / "model.bin").unlink()
    make_file(repo / "model.bin" / "inner.bin", 10, seed=3)
    mvc_error("checkout", "model.bin", words=("model.bin/inner.bin", "--force"))
    mvc_cli("checkout", "model.bin", "--force")
    assert (repo / "model.bin").read_bytes() == v2["model.bin"]


def test_file_where_a_directory_goes(history, mvc_cli):
    repo, v1, v2 = history
    shutil.rmtree(repo / "model")
    (repo / "model").write_bytes(v1["model"]["a.bin"])  # content the cache holds: safe to replace
    mvc_cli("checkout", "model")
    assert files_under(repo / "model") == v2["model"]


def test_symlink_at_tracked_path_is_replaced_not_followed(history, mvc_cli, mvc_error, tmp_path):
    repo, _, v2 = history
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (repo / "model.bin").unlink()
    (repo / "model.bin").symlink_to(victim)
    mvc_error("checkout", "model.bin", words=("model.bin", "--force"))
    mvc_cli("checkout", "model.bin", "--force")
    assert not (repo / "model.bin").is_symlink()
    assert (repo / "model.bin").read_bytes() == v2["model.bin"]
    assert victim.read_bytes() == b"precious"


def test_object_missing_from_cache(history, mvc_error):
    repo, _, v2 = history
    (repo / "model.bin").unlink()
    o = obj(repo, ptrfmt.loads(v2["model.bin.mvc"]).oid)
    o.chmod(0o644)
    o.unlink()
    mvc_error("checkout", words=("model.bin", "not in the cache", "mvc remote add", "mvc add model.bin"))
    assert not (repo / "model.bin").exists()


def test_rev_refuses_pointer_with_unstaged_changes(history, mvc_cli, mvc_error):
    repo, v1, _ = history
    edited = (repo / "model.bin.mvc").read_text() + '\n[meta]\nnote = "hand edit"\n'
    (repo / "model.bin.mvc").write_text(edited)
    mvc_error("checkout", "--rev", "v1", words=("model.bin.mvc", "git add", "--force"))
    assert (repo / "model.bin.mvc").read_text() == edited
    mvc_cli("checkout", "--rev", "v1", "--force")
    assert_at(repo, v1)


def test_rev_where_path_is_not_tracked(history, mvc_cli, mvc_error):
    repo, _, _ = history
    make_file(repo / "new.bin", 10)
    mvc_cli("add", "new.bin")
    git(repo, "commit", "-q", "-m", "new")
    mvc_error("checkout", "new.bin", "--rev", "v1", words=("new.bin", "not tracked"))
    assert (repo / "new.bin.mvc").is_file()


def test_checkout_writes_no_temp_files(history, mvc_cli):
    repo, _v1, _ = history
    mvc_cli("checkout", "--rev", "v1")
    leftovers = [p for p in repo.rglob("*.tmp") if ".git" not in p.parts]
    assert leftovers == []


def test_rev_refuses_to_drop_a_version_added_and_not_committed(history, mvc_cli, mvc_error):
    """An 'mvc add' staged and not committed is named by no commit: checkout --rev refuses to replace its
    pointer (without --force), while what an earlier checkout --rev staged is replaced freely (the undo)."""
    repo, v1, _v2 = history
    make_file(repo / "model.bin", 5000, seed=7)
    mvc_cli("add", "model.bin", "-m", "note=best-run")
    staged = (repo / "model.bin.mvc").read_bytes()
    mvc_error("checkout", "--rev", "v1", "model.bin", words=("staged and not committed", "commit it first", "--force"))
    assert (repo / "model.bin.mvc").read_bytes() == staged
    git(repo, "commit", "-q", "-m", "v3")
    v3 = (repo / "model.bin").read_bytes()
    mvc_cli("checkout", "--rev", "v1", "model.bin")  # committed now: goes freely
    assert (repo / "model.bin").read_bytes() == v1["model.bin"]
    mvc_cli("checkout", "--rev", "HEAD", "model.bin")  # the undo: v1's pointer is in history
    assert (repo / "model.bin").read_bytes() == v3
    make_file(repo / "model.bin", 5000, seed=8)
    mvc_cli("add", "model.bin")
    mvc_cli("checkout", "--rev", "v1", "model.bin", "--force")
    assert (repo / "model.bin").read_bytes() == v1["model.bin"]


def test_a_pointer_brought_back_by_rev_gets_its_gitignore_line(repo, mvc_cli):
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    mvc_cli("remove", "m.bin")
    git(repo, "commit", "-q", "-m", "no m")
    assert "/m.bin" not in (repo / ".gitignore").read_text()
    mvc_cli("checkout", "--rev", "HEAD~1", "m.bin")
    assert "/m.bin" in (repo / ".gitignore").read_text()
    status = git(repo, "status", "--porcelain")
    assert "?? m.bin" not in status and "M  .gitignore" in status, status  # staged as the pointer is


def test_a_checkout_writes_the_gitignore_line_a_commit_lacks(repo, mvc_cli):
    """A collaborator's commit holds a pointer without its .gitignore line: the weights a checkout (or pull)
    restores are ignored all the same, so 'git add -A' never commits them."""
    (repo / "m.bin").write_bytes(b"weights\n" * 100)
    mvc_cli("add", "m.bin")
    (repo / ".gitignore").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "no ignore line")
    (repo / "m.bin").unlink()
    mvc_cli("checkout")
    assert (repo / "m.bin").exists() and "/m.bin" in (repo / ".gitignore").read_text()
    out = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert "m.bin\n" not in out.replace("m.bin.mvc", ""), out
