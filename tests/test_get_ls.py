"""`mvc get` (a model as of a revision, elsewhere) and `mvc ls` (tracked paths at a revision)."""

from __future__ import annotations

import json
import os

import pytest
from conftest import git, make_file

import mvc
from mvc.format import pointer as ptrfmt


def files_under(d) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def snapshot(repo) -> dict[str, bytes]:
    """Every file of the work tree (not .git or the cache), to prove a command left it alone."""
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.parts and "cache" not in p.parts and p.name != "state.db"
    }


@pytest.fixture
def history(repo, mvc_cli):
    make_file(repo / "model.bin", 3000, seed=1)
    make_file(repo / "model" / "a.bin", 500, seed=2)
    make_file(repo / "model" / "run.sh", 20, seed=3).chmod(0o755)
    mvc_cli("add", "model.bin", "model", "-m", "accuracy=0.8")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    v1 = {
        "model.bin": (repo / "model.bin").read_bytes(),
        "model": files_under(repo / "model"),
        "file": ptrfmt.loads((repo / "model.bin.mvc").read_bytes()),
        "dir": ptrfmt.loads((repo / "model.mvc").read_bytes()),
    }
    make_file(repo / "model.bin", 4000, seed=4)
    make_file(repo / "model" / "a.bin", 600, seed=5)
    make_file(repo / "extra.bin", 10, seed=6)
    mvc_cli("add", "model.bin", "model", "extra.bin", "-m", "accuracy=0.9")
    git(repo, "commit", "-q", "-m", "v2")
    return repo, v1


# -- get ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rev", ["v1", "HEAD~1", "main~1"])
def test_get_file_at_rev(history, mvc_cli, tmp_path, rev):
    repo, v1 = history
    before = snapshot(repo)
    index = git(repo, "ls-files", "-s")
    out = tmp_path / "out" / "model-v1.bin"
    res = mvc_cli("get", "model.bin", "--rev", rev, "-o", str(out)).stdout
    assert res == f"wrote {out} (2.9 KiB, {v1['file'].oid[7:19]})\n"
    assert out.read_bytes() == v1["model.bin"]
    assert os.access(out, os.W_OK)  # a copy of its own, not a link to the read-only cache
    assert snapshot(repo) == before
    assert git(repo, "ls-files", "-s") == index
    assert git(repo, "status", "--porcelain") == ""


def test_get_directory_at_rev(history, mvc_cli, tmp_path):
    repo, v1 = history
    before = snapshot(repo)
    out = tmp_path / "model-v1"
    mvc_cli("get", "model", "--rev", "v1", "--out", str(out))
    assert files_under(out) == v1["model"]
    assert os.stat(out / "run.sh").st_mode & 0o100
    assert not os.stat(out / "a.bin").st_mode & 0o111
    assert snapshot(repo) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_get_without_rev_uses_the_work_tree_pointer(history, mvc_cli, tmp_path):
    repo, _ = history
    mvc_cli("get", "model.bin", "-o", str(tmp_path / "now.bin"))
    assert (tmp_path / "now.bin").read_bytes() == (repo / "model.bin").read_bytes()


def test_get_relative_out_and_pointer_name(history, mvc_cli, monkeypatch):
    repo, v1 = history
    (repo / "exports").mkdir()
    monkeypatch.chdir(repo / "exports")
    mvc_cli("get", "../model.bin.mvc", "-r", "v1", "-o", "m.bin")
    assert (repo / "exports" / "m.bin").read_bytes() == v1["model.bin"]


def test_get_refuses_existing_out_without_force(history, mvc_cli, mvc_error, tmp_path):
    _repo, v1 = history
    out = tmp_path / "existing.bin"
    out.write_bytes(b"keep me")
    mvc_error("get", "model.bin", "--rev", "v1", "-o", str(out), words=("already exists", "--force"))
    assert out.read_bytes() == b"keep me"
    mvc_cli("get", "model.bin", "--rev", "v1", "-o", str(out), "--force")
    assert out.read_bytes() == v1["model.bin"]


def test_get_refuses_existing_out_dir_without_force(history, mvc_cli, mvc_error, tmp_path):
    _repo, v1 = history
    out = tmp_path / "existing"
    make_file(out / "mine.txt", 5)
    mine = {"mine.txt": make_file(tmp_path / "x", 5).read_bytes()}
    mvc_error("get", "model", "--rev", "v1", "-o", str(out), words=("already exists", "--force"))
    assert files_under(out) == mine
    # --force replaces only a directory mvc get wrote: the user's own is kept
    mvc_error("get", "model", "--rev", "v1", "-o", str(out), "--force", words=("did not write", "move it away"))
    assert files_under(out) == mine
    copy = tmp_path / "copy"
    mvc_cli("get", "model", "--rev", "v1", "-o", str(copy))
    assert files_under(copy) == v1["model"]
    mvc_cli("get", "model", "-o", str(copy), "--force")  # its own copy: replaced
    assert files_under(copy) == files_under(history[0] / "model")
    mvc_cli("get", "model", "--rev", "v1", "-o", str(copy), "--force")
    assert files_under(copy) == v1["model"]
    (copy / "notes.txt").write_bytes(b"mine")  # a file added to mvc's copy: no longer only mvc's
    mvc_error("get", "model", "-o", str(copy), "--force", words=("did not write",))
    assert files_under(copy) == {**v1["model"], "notes.txt": b"mine"}


def test_get_path_not_tracked_at_rev(history, mvc_error, tmp_path):
    mvc_error("get", "extra.bin", "--rev", "v1", "-o", str(tmp_path / "x"), words=("not tracked", "mvc ls --rev v1"))
    assert not (tmp_path / "x").exists()


def test_get_untracked_path(history, mvc_error, tmp_path):
    mvc_error("get", "nothing.bin", "-o", str(tmp_path / "x"), words=("not tracked", "does not exist"))
    (history[0] / "untracked.bin").write_bytes(b"x")
    mvc_error("get", "untracked.bin", "-o", str(tmp_path / "x"), words=("not tracked", "mvc add"))


def test_get_object_missing(history, mvc_error, tmp_path):
    repo, v1 = history
    o = repo / ".mvc" / "cache" / "objects" / v1["file"].oid[7:9] / v1["file"].oid[9:]
    o.chmod(0o644)
    o.unlink()
    mvc_error("get", "model.bin", "--rev", "v1", "-o", str(tmp_path / "x"), words=("not in the cache",))
    assert not (tmp_path / "x").exists()


def test_get_writes_the_file_name_here_by_default(history, mvc_cli, mvc_error, monkeypatch):
    repo, v1 = history
    before = (repo / "model.bin").read_bytes()
    # at the root the default OUT is the workspace file itself: refused, never overwritten
    mvc_error("get", "model.bin", "--rev", "v1", words=("tracks", "mvc checkout --rev"))
    assert (repo / "model.bin").read_bytes() == before
    mvc_error("get", "model.bin", "--rev", "v1", "--force", words=("tracks",))  # not even with --force
    assert (repo / "model.bin").read_bytes() == before
    (repo / "elsewhere").mkdir()
    monkeypatch.chdir(repo / "elsewhere")
    mvc_cli("get", "../model.bin", "--rev", "v1")
    assert (repo / "elsewhere" / "model.bin").read_bytes() == v1["model.bin"]


def test_get_python_api(history, tmp_path):
    _repo, v1 = history
    res = mvc.get("model.bin", str(tmp_path / "a.bin"), rev="v1")
    assert res == {
        "path": "model.bin",
        "out": str(tmp_path / "a.bin"),
        "kind": "file",
        "oid": v1["file"].oid,
        "size": 3000,
        "rev": "v1",
    }


# -- ls -----------------------------------------------------------------------------------------
def test_ls_text(history, mvc_cli):
    _repo, v1 = history
    rows = [line.split() for line in mvc_cli("ls").stdout.splitlines()]
    assert [(r[0], r[-1]) for r in rows] == [("file", "extra.bin"), ("file", "model.bin"), ("dir", "model")]
    out = mvc_cli("ls", "--rev", "v1").stdout.splitlines()
    assert out == [
        f"file     2.9 KiB  {v1['file'].oid[7:19]}  model.bin",
        f"dir        520 B  {v1['dir'].oid[7:19]}  model",
    ]


def test_ls_json_at_rev(history, mvc_cli):
    _repo, v1 = history
    rows = json.loads(mvc_cli("ls", "--rev", "v1", "--json").stdout)
    assert rows == [
        {"path": "model.bin", "kind": "file", "size": 3000, "oid": v1["file"].oid, "meta": {"accuracy": 0.8}},
        {"path": "model", "kind": "dir", "size": 520, "oid": v1["dir"].oid, "nfiles": 2, "meta": {"accuracy": 0.8}},
    ]
    assert mvc.ls(rev="v1") == rows


def test_ls_json_work_tree(history, mvc_cli):
    repo, _ = history
    rows = json.loads(mvc_cli("ls", "--json").stdout)
    assert [(r["path"], r["meta"]["accuracy"]) for r in rows] == [
        ("extra.bin", 0.9),
        ("model.bin", 0.9),
        ("model", 0.9),
    ]
    assert {r["oid"] for r in rows} == {ptrfmt.loads((repo / f"{r['path']}.mvc").read_bytes()).oid for r in rows}


def test_ls_rev_reads_git_not_the_work_tree(history, mvc_cli):
    repo, _v1 = history
    (repo / "model.bin.mvc").unlink()
    (repo / "model.mvc").write_text("garbage [")
    rows = json.loads(mvc_cli("ls", "--rev", "v1", "--json").stdout)
    assert [r["path"] for r in rows] == ["model.bin", "model"]


def test_ls_nothing_tracked(repo, mvc_cli):
    assert mvc_cli("ls").stdout == ""
    assert json.loads(mvc_cli("ls", "--json").stdout) == []
    assert json.loads(mvc_cli("ls", "--rev", "HEAD", "--json").stdout) == []


def test_ls_unknown_rev(history, mvc_error):
    mvc_error("ls", "--rev", "v9", words=("unknown revision", "'v9'"))


def test_ls_in_nested_directories(repo, mvc_cli):
    make_file(repo / "a" / "b" / "c.bin", 10)
    mvc_cli("add", "a/b/c.bin")
    git(repo, "commit", "-q", "-m", "c")
    assert [r["path"] for r in json.loads(mvc_cli("ls", "--rev", "HEAD", "--json").stdout)] == ["a/b/c.bin"]


# -- what --force may replace ----------------------------------------------------------------------
def test_get_never_replaces_the_directory_it_runs_in(history, mvc_error, tmp_path, monkeypatch):
    repo, _v1 = history
    work = tmp_path / "work"
    make_file(work / "app.py", 50)
    make_file(work / "data" / "x.bin", 50, seed=4)
    before = files_under(work)
    for out in (".", "..", str(work)):
        monkeypatch.chdir(work / "data")  # (-C moved this process: each command starts here again)
        mvc_error("-C", str(repo), "get", "model", "--rev", "v1", "-o", out, "--force", words=("you are in",))
    monkeypatch.chdir(work)
    mvc_error("-C", str(repo), "get", "model.bin", "--rev", "v1", "-o", ".", "--force", words=("you are in",))
    assert files_under(work) == before


def test_get_into_a_directory_given_with_a_trailing_slash(history, mvc_cli, tmp_path):
    _repo, v1 = history
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(b"mine")
    mvc_cli("get", "model.bin", "--rev", "v1", "-o", f"{dest}/")
    mvc_cli("get", "model", "--rev", "v1", "-o", f"{dest}{os.sep}")
    assert (dest / "model.bin").read_bytes() == v1["model.bin"]
    assert files_under(dest / "model") == v1["model"]
    assert (dest / "keep.txt").read_bytes() == b"mine"


def test_get_of_a_file_onto_a_directory_is_refused(history, mvc_error, tmp_path):
    d = tmp_path / "d"
    make_file(d / "mine.bin", 10)
    mvc_error("get", "model.bin", "--rev", "v1", "-o", str(d), "--force", words=("is a directory", f"{d}{os.sep}"))
    assert files_under(d) == {"mine.bin": make_file(tmp_path / "x", 10).read_bytes()}


def test_get_refuses_git_and_mvc_directories_and_paths_below_a_file(history, mvc_error, tmp_path):
    repo, _v1 = history
    for out in (repo / ".git" / "hooks" / "post-checkout", repo / ".mvc" / "config.toml"):
        before = out.read_bytes() if out.exists() else None
        mvc_error("get", "model.bin", "--rev", "v1", "-o", str(out), "--force", words=("inside the repository",))
        assert (out.read_bytes() if out.exists() else None) == before
    (tmp_path / "afile").write_bytes(b"x")
    mvc_error("get", "model.bin", "-o", str(tmp_path / "afile" / "m.bin"), words=("cannot make the output directory",))
    with pytest.raises(mvc.MvcError, match="cannot make the output directory"):
        mvc.get("model.bin", str(tmp_path / "afile" / "m.bin"))
    with pytest.raises(mvc.MvcError, match="force=True"):
        mvc.get("model.bin", str(tmp_path / "afile"))


def test_a_copy_changed_while_the_model_was_fetched_is_kept(history, mvc_cli, tmp_path):
    """--force checked OUT before the fetch; a file written into it meanwhile (a checkpoint) makes the swap
    refuse, not delete it."""
    from mvc.api import outputs

    out = tmp_path / "copy"
    mvc_cli("get", "model", "--rev", "v1", "-o", str(out))
    outputs.check(str(out), "dir", True)  # what get checks first: mvc's own copy
    (out / "checkpoint.pt").write_bytes(b"saved meanwhile")
    new = tmp_path / "new"
    new.mkdir()
    with pytest.raises(mvc.MvcError, match="changed while the model was fetched"):
        outputs.put(str(new), str(out))
    assert (out / "checkpoint.pt").read_bytes() == b"saved meanwhile"


def test_get_refuses_a_way_into_git_through_a_link(history, mvc_error, tmp_path):
    repo, _v1 = history
    (tmp_path / "link").symlink_to(repo / ".git")
    mvc_error("get", "model.bin", "--rev", "v1", "-o", str(tmp_path / "link" / "x"), words=("inside the repository",))
    assert not (repo / ".git" / "x").exists()
    (repo / "..model").mkdir()  # a name that starts with '..' lies inside the work tree all the same
    (repo / "..model.mvc").write_bytes((repo / "model.mvc").read_bytes())
    mvc_error("get", "model", "-o", str(repo / "..model"), "--force", words=("tracks",))


def test_a_linked_mvc_directory_is_refused(gitrepo, mvc_cli, mvc_error, tmp_path):
    (tmp_path / "outside").mkdir()
    (gitrepo / ".mvc").symlink_to(tmp_path / "outside")
    mvc_error("init", words=("symbolic link", "git rm"))
    mvc_error("status", words=("symbolic link",))
    assert list((tmp_path / "outside").iterdir()) == []
