"""mvc import-dvc and mvc import-lfs run again: what is new is imported (a .dvc file merged after the import, an
output mvc never tracked, older versions that DVC's cache or .git/lfs/objects hold since), what is imported already
is left alone, and a run with nothing new says so in one line and exits 0 with nothing changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import test_import_dvc as dvc_tests
import test_import_lfs as lfs_tests
from conftest import git, make_file, run_mvc
from test_import_dvc import DVC, dvc, state
from test_import_lfs import V1, V2, _two_lfs_files, clone, needs_lfs, oid_of

# the fixtures of those files, used here too
dvc_repo = dvc_tests.dvc_repo
origin = lfs_tests.origin
lfs_repo = lfs_tests.lfs_repo
needs_dvc = pytest.mark.skipif(DVC is None, reason="dvc is not installed: pip install -e '.[dvc-test]'")


def mvc_json(root: Path, *args: str) -> dict:
    return json.loads(run_mvc(*args, "--json", cwd=root, check=True).stdout)


def staged(root: Path) -> set[str]:
    return {line for line in git(root, "diff", "--cached", "--name-status").splitlines() if line}


def up_to_date(root: Path, command: str) -> None:
    """A run with nothing new: exit 0, one line saying so, nothing changed."""
    before = state(root), git(root, "diff", "--cached", "--binary")
    r = run_mvc(command, cwd=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("nothing new to import") and r.stdout.count("\n") == 1 and r.stderr == "", r.stdout
    assert (state(root), git(root, "diff", "--cached", "--binary")) == before


# -- import-dvc ------------------------------------------------------------------------------------------------
@needs_dvc
def test_dvc_rerun_imports_a_dvc_file_merged_after_the_import(dvc_repo):
    root, _, _ = dvc_repo
    git(root, "branch", "teammate")  # still on DVC
    out = mvc_json(root, "import-dvc")
    assert out["paths"] == ["data", "model.bin", "out.bin"] and out["kept"] == [] and not out["up_to_date"]
    git(root, "commit", "-q", "-m", "to mvc")
    up_to_date(root, "import-dvc")  # the kept dvc.lock names out.bin, which mvc tracks: left alone
    assert mvc_json(root, "import-dvc")["kept"] == ["out.bin"]

    git(root, "checkout", "-q", "teammate")
    make_file(root / "new.pt", 4000, seed=99)
    dvc(root, "add", "-q", "new.pt")
    git(root, "add", "new.pt.dvc", ".gitignore")
    git(root, "commit", "-q", "-m", "teammate adds new.pt with DVC")
    added = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "teammate", "-m", "merge")
    pointers = {p: (root / p).read_bytes() for p in ("model.bin.mvc", "data.mvc", "out.bin.mvc")}

    r = run_mvc("import-dvc", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "imported 1 DVC output (1 version)" in r.stdout and "versions readable" not in r.stdout, r.stdout
    assert "left alone: 1 DVC output mvc tracks already" in r.stdout
    assert staged(root) == {"D\tnew.pt.dvc", "A\tnew.pt.mvc", "M\t.mvc/imported.toml"}
    assert {p: (root / p).read_bytes() for p in pointers} == pointers
    assert (root / "new.pt").read_bytes() == make_file(root.parent / "want", 4000, seed=99).read_bytes()
    git(root, "commit", "-q", "-m", "import new.pt")
    up_to_date(root, "import-dvc")
    # the import of new.pt is no change in its lineage: added by the teammate's commit
    log = mvc_json(root, "log", "new.pt")
    assert [(e["commit"], e["change"]) for e in log] == [(added, "added")]


@needs_dvc
def test_dvc_file_left_over_goes_and_one_naming_another_version_is_refused(dvc_repo):
    root, _, _ = dvc_repo
    run_mvc("import-dvc", cwd=root, check=True)
    git(root, "commit", "-q", "-m", "to mvc")
    pointer = (root / "model.bin.mvc").read_bytes()
    model = (root / "model.bin").read_bytes()

    git(root, "checkout", "HEAD~1", "--", "model.bin.dvc")  # the version imported: a leftover (a merge kept it)
    git(root, "commit", "-q", "-m", "a merge kept model.bin.dvc")
    out = mvc_json(root, "import-dvc")
    assert out["paths"] == [] and out["dvc_files"] == ["model.bin.dvc"] and "model.bin" in out["kept"]
    assert not (root / "model.bin.dvc").exists() and (root / "model.bin.mvc").read_bytes() == pointer
    assert staged(root) - {"M\t.mvc/imported.toml"} == {"D\tmodel.bin.dvc"}
    git(root, "commit", "-q", "-m", "drop the leftover")

    git(root, "checkout", "churn@v1.0.0", "--", "model.bin.dvc")  # another version than mvc's
    before = state(root)
    r = run_mvc("import-dvc", cwd=root)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert "model.bin.dvc names another version of model.bin than mvc tracks" in r.stderr
    assert "'git rm model.bin.dvc'" in r.stderr and "'mvc remove model.bin'" in r.stderr
    assert state(root) == before and (root / "model.bin.mvc").read_bytes() == pointer

    # the way out the error names: DVC's version, the work tree's file kept as it is
    run_mvc("remove", "model.bin", cwd=root, check=True)
    assert mvc_json(root, "import-dvc", "model.bin")["paths"] == ["model.bin"]
    assert (root / "model.bin").read_bytes() == model
    assert b'desc = "the churn model"' in (root / "model.bin.mvc").read_bytes()


@needs_dvc
def test_dvc_output_mvc_stopped_tracking_stays_so_unless_named(dvc_repo, mvc_error):
    root, _, _ = dvc_repo
    run_mvc("import-dvc", cwd=root, check=True)
    git(root, "commit", "-q", "-m", "to mvc")
    run_mvc("remove", "out.bin", cwd=root, check=True)
    git(root, "commit", "-q", "-m", "stop tracking out.bin")
    up_to_date(root, "import-dvc")
    assert not (root / "out.bin.mvc").exists()

    out = mvc_json(root, "import-dvc", "out.bin")  # named: imported anew
    assert out["paths"] == ["out.bin"] and (root / "out.bin.mvc").exists()
    assert "A\tout.bin.mvc" in staged(root)
    before = state(root)
    line = mvc_error("import-dvc", "no-such-output", words=("no-such-output", "no DVC output"))
    assert "check the path" in line
    assert state(root) == before


@needs_dvc
def test_dvc_rerun_reads_older_versions_dvcs_cache_holds_since(dvc_repo, tmp_path: Path):
    root, remote, versions = dvc_repo
    md5 = next(
        line.split()[-1] for line in git(root, "show", "churn@v1.0.0:model.bin.dvc").splitlines() if "md5:" in line
    )
    # absent there ('dvc push' sent HEAD's versions alone); a remote out of reach: test_import_dvc_reasons.py
    (remote / "files" / "md5" / md5[:2] / md5[2:]).unlink(missing_ok=True)
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    shutil.move(cached, tmp_path / "aside")
    out = mvc_json(root, "import-dvc")
    assert out["history_missing"] == [md5]
    git(root, "commit", "-q", "-m", "to mvc")
    assert run_mvc("get", "churn@v1.0.0", "-o", str(tmp_path / "v1"), cwd=root).returncode != 0
    # a checkout of that revision says so, changing nothing, rather than leave today's version in place
    before = (root / "model.bin").read_bytes()
    for args in (("checkout", "--rev", "churn@v1.0.0"), ("checkout", "--rev", "churn@v1.0.0", "model.bin")):
        r = run_mvc(*args, cwd=root)
        assert r.returncode != 0 and f"md5 {md5}" in r.stderr and "could not import" in r.stderr, r.stderr
        assert "dvc fetch" in r.stderr and (root / "model.bin").read_bytes() == before
    r = run_mvc("get", "--rev", "churn@v1.0.0", "model.bin", "-o", str(tmp_path / "v1"), cwd=root)
    assert r.returncode != 0 and "could not import" in r.stderr, r.stderr

    r = run_mvc("import-dvc", cwd=root)  # still missing: nothing new
    assert r.returncode == 0 and r.stdout == (
        "nothing new to import: every DVC output here is in mvc already; "
        "1 older version in neither DVC's cache nor its remote\n"
    ), r.stdout
    shutil.move(tmp_path / "aside", cached)  # 'dvc fetch' brought it back, say
    r = run_mvc("import-dvc", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "older revisions: 1 version now readable, 0 not" in r.stdout, r.stdout
    assert staged(root) == {"M\t.mvc/imported.toml"}
    git(root, "commit", "-q", "-m", "older versions")
    run_mvc("get", "churn@v1.0.0", "-o", str(tmp_path / "v1"), cwd=root, check=True)
    assert (tmp_path / "v1").read_bytes() == versions["v1"]["model.bin"]
    up_to_date(root, "import-dvc")


@needs_dvc
def test_a_version_the_import_could_not_bring_in_is_no_removal_in_the_log(dvc_repo, tmp_path: Path):
    """mvc log lists the commit of a DVC version that was in neither DVC's cache nor its remote as the change it
    was, saying that mvc cannot read it, not as the model removed there and added back at the next commit."""
    root, remote, _ = dvc_repo
    shutil.rmtree(remote)
    v1 = git(root, "rev-parse", "churn@v1.0.0^{commit}").strip()
    md5 = next(line.split()[-1] for line in git(root, "show", f"{v1}:model.bin.dvc").splitlines() if "md5:" in line)
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    shutil.move(cached, tmp_path / "aside")
    mvc_json(root, "import-dvc")
    git(root, "commit", "-q", "-m", "to mvc")
    rows = mvc_json(root, "log", "model.bin")
    assert "removed" not in [r["change"] for r in rows], rows
    at_v1 = [r for r in rows if r["commit"] == v1]
    assert len(at_v1) == 1 and f"md5 {md5}" in at_v1[0]["error"] and "could not import" in at_v1[0]["error"]
    assert "could not import" in run_mvc("log", "model.bin", cwd=root, check=True).stdout


def imported_without_v1(dvc_repo, tmp_path: Path) -> tuple[Path, str]:
    """(the repository, v1's md5) after an import that found model.bin's v1 (churn@v1.0.0) in neither DVC's cache
    nor its remote (both taken away), committed."""
    root, remote, _ = dvc_repo
    shutil.rmtree(remote)
    md5 = next(
        line.split()[-1] for line in git(root, "show", "churn@v1.0.0:model.bin.dvc").splitlines() if "md5:" in line
    )
    shutil.move(root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:], tmp_path / "aside")
    mvc_json(root, "import-dvc")
    git(root, "commit", "-q", "-m", "to mvc")
    return root, md5


@needs_dvc
def test_ls_and_diff_say_a_version_the_import_could_not_bring_in(dvc_repo, tmp_path: Path):
    """mvc ls --rev and mvc diff (against the work tree, between two revisions, either way round) list a DVC version
    that was in neither DVC's cache nor its remote as a version not imported, saying why, not as no version."""
    root, md5 = imported_without_v1(dvc_repo, tmp_path)

    rows = {r["path"]: r for r in mvc_json(root, "ls", "--rev", "churn@v1.0.0")}
    assert set(rows) == {"data", "model.bin", "out.bin"}, rows  # out.bin: the same content as model.bin then
    model = rows["model.bin"]
    assert model["not_imported"] == md5 and model["oid"] is None and model["kind"] is None
    assert f"model.bin at churn@v1.0.0 is a DVC version (md5 {md5}) that 'mvc import-dvc' could not" in model["error"]
    assert "not_imported" not in rows["data"] and rows["data"]["kind"] == "dir"
    r = run_mvc("ls", "--rev", "churn@v1.0.0", cwd=root, check=True)
    assert "-              -  not imported  model.bin\n" in r.stdout and r.stdout.count("\n") == 3, r.stdout
    assert r.stderr.count("could not import") == 2 and "run 'mvc import-dvc' again" in r.stderr, r.stderr

    head = mvc_json(root, "ls")
    oid = next(r["oid"] for r in head if r["path"] == "model.bin")
    for args, side in (((), "old"), (("HEAD",), "old"), (("HEAD", "churn@v1.0.0"), "new")):
        revs = ("churn@v1.0.0", *args) if side == "old" else args
        rows = {r["path"]: r for r in mvc_json(root, "diff", *revs)}
        model = rows["model.bin"]
        assert model["change"] == "modified" and model["not_imported"] == {side: md5}, model
        assert model[side] is None and model["new" if side == "old" else "old"]["oid"] == oid
        assert model["size_change"] is None and model["meta_changes"] == {}
        assert f"md5 {md5}" in model["error"] and "could not import" in model["error"]
        assert rows["out.bin"]["not_imported"] == {side: md5} and "not_imported" not in rows["data"]
        text = run_mvc("diff", *revs, cwd=root, check=True).stdout
        shown = "not imported -> 48.8 KiB" if side == "old" else "48.8 KiB -> not imported"
        assert f"modified  model.bin (churn)  {shown}\n" in text and "could not import" in text, text
    assert mvc_json(root, "diff", "churn@v1.0.0", "churn@v1.0.0") == []  # the same version unread: no change


@needs_dvc
def test_ls_by_url_lists_an_old_revision_as_ls_in_a_clone_does(dvc_repo, tmp_path: Path):
    """mvc ls --repo URL --rev OLD reads the DVC files of a revision before the import through the map, as mvc ls
    --rev in a clone does: the versions imported as their pointers, one the import could not bring in as such."""
    root, md5 = imported_without_v1(dvc_repo, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    for args in (("--json",), ()):
        here = run_mvc("ls", "--rev", "churn@v1.0.0", *args, cwd=root, check=True)
        by_url = run_mvc("ls", "--repo", str(root), "--rev", "churn@v1.0.0", *args, cwd=outside, check=True)
        assert (by_url.stdout, by_url.stderr) == (here.stdout, here.stderr)
    rows = {r["path"]: r for r in mvc_json(outside, "ls", "--repo", str(root), "--rev", "churn@v1.0.0")}
    assert set(rows) == {"data", "model.bin", "out.bin"} and rows["model.bin"]["not_imported"] == md5, rows
    assert rows["data"]["kind"] == "dir" and "could not import" in rows["model.bin"]["error"]
    assert "-              -  not imported  model.bin\n" in by_url.stdout, by_url.stdout


@needs_dvc
def test_an_output_an_import_of_other_paths_left_to_dvc_is_not_mvcs_at_old_revisions(dvc_repo, tmp_path, mvc_error):
    """After 'mvc import-dvc model.bin', data is DVC's still: its versions at old revisions are not versions mvc
    could not import (checkout --rev, get --rev, ls --rev and diff say nothing of them), but paths mvc does not
    track there."""
    root, _, versions = dvc_repo
    assert mvc_json(root, "import-dvc", "model.bin")["paths"] == ["model.bin"]
    git(root, "commit", "-q", "-m", "model.bin to mvc")
    assert (root / "data.dvc").exists()

    r = run_mvc("checkout", "--rev", "churn@v1.0.0", cwd=root)
    assert r.returncode == 0 and "could not import" not in r.stderr, r.stderr
    assert (root / "model.bin").read_bytes() == versions["v1"]["model.bin"]
    for args in (("checkout", "--rev", "churn@v1.0.0", "data"), ("get", "--rev", "churn@v1.0.0", "data")):
        mvc_error(*args, words=("data is not tracked by mvc at churn@v1.0.0", "mvc ls --rev churn@v1.0.0"))
    rows = mvc_json(root, "ls", "--rev", "churn@v1.0.0")
    assert "data" not in {r["path"] for r in rows} and not any("not_imported" in r for r in rows), rows
    r = run_mvc("ls", "--rev", "churn@v1.0.0", cwd=root, check=True)
    assert "data" not in r.stdout and r.stderr == "", r.stdout + r.stderr
    run_mvc("checkout", "--rev", "HEAD", cwd=root, check=True)
    assert "data" not in {r["path"] for r in mvc_json(root, "diff", "churn@v1.0.0")}
    assert "not imported" not in run_mvc("diff", "churn@v1.0.0", cwd=root, check=True).stdout


# -- import-lfs ------------------------------------------------------------------------------------------------
@needs_lfs
def test_lfs_rerun_after_git_lfs_fetch_all_makes_older_versions_readable(origin, tmp_path, monkeypatch, mvc_cli):
    root = clone(origin, tmp_path / "repo", False, monkeypatch)  # only what the import fetches: HEAD's version
    out = mvc_json(root, "import-lfs")
    assert out["history"] == {"stored": 0, "missing": 1} and not out["up_to_date"]
    git(root, "commit", "-qm", "to mvc")
    first = git(root, "rev-list", "--max-parents=0", "HEAD").strip()
    r = mvc_cli("get", "model.bin", "--rev", first, "-o", str(tmp_path / "v1"), ok=False)
    assert r.exit_code != 0 and "is a git-lfs version" in r.stderr and "git lfs fetch --all" in r.stderr, r.stderr
    rows = mvc_json(root, "log", "model.bin")  # the unfetched version: the change it was, not a removal
    assert [r.get("oid") is None for r in rows][-1] and "git-lfs version" in rows[-1]["error"], rows
    trace = tmp_path / "git-trace"  # log reads each commit's tree once, the version it lacks included
    run_mvc("log", "model.bin", cwd=root, check=True, env={**os.environ, "GIT_TRACE": str(trace)})
    listed = [line.split()[-1] for line in trace.read_text().splitlines() if " git ls-tree " in line]
    assert first in listed and len(listed) == len(set(listed)), listed
    sha = "sha256:" + hashlib.sha256(V1).hexdigest()  # ls --rev and diff: a version not imported, as log says
    [row] = mvc_json(root, "ls", "--rev", first)
    assert row["not_imported"] == sha and row["oid"] is None and "git lfs fetch --all" in row["error"], row
    assert mvc_json(tmp_path, "ls", "--repo", str(root), "--rev", first) == [row]  # by URL: as in a clone
    [row] = mvc_json(root, "diff", first, "HEAD")
    assert row["change"] == "modified" and row["not_imported"] == {"old": sha} and "git-lfs version" in row["error"]

    r = run_mvc("import-lfs", cwd=root)
    assert r.returncode == 0 and r.stdout.startswith("nothing new to import") and r.stdout.count("\n") == 1
    assert "1 not in .git/lfs/objects" in r.stdout and "git lfs fetch --all" in r.stdout, r.stdout

    git(root, "lfs", "fetch", "--all")
    r = run_mvc("import-lfs", cwd=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "stored 1 older version for reading old revisions\n", r.stdout
    assert staged(root) == {"M\t.mvc/imported.toml"}
    git(root, "commit", "-qm", "older versions")
    mvc_cli("get", "model.bin", "--rev", first, "-o", str(tmp_path / "v1"))
    [row] = mvc_json(root, "ls", "--rev", first)
    assert row["oid"] == oid_of(V1) and "not_imported" not in row, row
    assert mvc_json(tmp_path, "ls", "--repo", str(root), "--rev", first) == [row]
    assert (tmp_path / "v1").read_bytes() == V1
    assert (root / "model.bin").read_bytes() == V2
    up_to_date(root, "import-lfs")


@needs_lfs
def test_lfs_rerun_before_the_commit_converts_the_rest_and_leaves_the_rest_alone(lfs_repo: Path):
    root = lfs_repo
    _two_lfs_files(root)
    out = mvc_json(root, "import-lfs", "model.bin")
    assert [r["path"] for r in out["imported"]] == ["model.bin"]
    assert "filter=lfs" in (root / ".gitattributes").read_text()  # sub/b.bin is still git-lfs's
    pointer = (root / "model.bin.mvc").read_bytes()

    out = mvc_json(root, "import-lfs")  # not committed yet: model.bin is converted already
    assert [r["path"] for r in out["imported"]] == ["sub/b.bin"] and out["history"]["stored"] == 0
    assert (root / "model.bin.mvc").read_bytes() == pointer and (root / "model.bin").read_bytes() == V2
    assert not (root / ".gitattributes").exists()  # every file its one line matched is mvc's now
    up_to_date(root, "import-lfs")
    (root / "model.bin").write_bytes(b"retrained")  # a new version mvc records: the import leaves it alone
    run_mvc("add", "model.bin", cwd=root, check=True)
    up_to_date(root, "import-lfs")
    assert (root / "model.bin").read_bytes() == b"retrained"
    git(root, "commit", "-qm", "to mvc")
    up_to_date(root, "import-lfs")
    up_to_date(root, "import-lfs")  # twice: still nothing


@needs_lfs
def test_lfs_rerun_stages_what_a_no_stage_import_left(lfs_repo: Path):
    """After --no-stage the git-lfs pointer is still in the index: a run without it stages the import (and a
    'git add -A' then commits no weights)."""
    root = lfs_repo
    _two_lfs_files(root)
    out = mvc_json(root, "import-lfs", "--no-stage")
    assert out["not_staged"]["remove"] == ["model.bin", "sub/b.bin"] and staged(root) == set()
    again = mvc_json(root, "import-lfs", "--no-stage")  # still not staged: said again
    assert again["not_staged"] == out["not_staged"] and again["imported"] == []
    out = mvc_json(root, "import-lfs")
    assert out["staged_now"] == ["model.bin", "sub/b.bin"] and out["imported"] == [], out
    assert staged(root) >= {"D\tmodel.bin", "D\tsub/b.bin", "A\tmodel.bin.mvc", "A\tsub/b.bin.mvc"}
    assert {"D\t.gitattributes", "A\t.gitignore", "A\tsub/.gitignore", "A\t.mvc/imported.toml"} <= staged(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "to mvc")
    assert git(root, "ls-files", "model.bin", "sub/b.bin") == ""
    up_to_date(root, "import-lfs")


@needs_lfs
def test_lfs_rerun_imports_a_git_lfs_file_of_a_branch_merged_after_the_import(lfs_repo: Path, tmp_path: Path):
    """A branch from before the import adds a git-lfs file; merged after it, HEAD holds its pointer where no
    filter=lfs line is any more. The blob was a git-lfs file on the branch: the next run imports it. A pointer
    never under a filter=lfs line is said, and imported when named."""
    root = lfs_repo
    git(root, "checkout", "-qb", "exp")
    (root / "b.bin").write_bytes(V1)
    git(root, "add", "b.bin")
    git(root, "commit", "-qm", "exp: b.bin")
    git(root, "checkout", "-q", "main")
    run_mvc("import-lfs", cwd=root, check=True)
    git(root, "commit", "-qm", "to mvc")
    git(root, "merge", "-q", "exp", "-m", "merge exp")
    assert (root / "b.bin").read_bytes() == lfs_tests.lfs_pointer(V1)  # pointer text, no filter
    lfs_tests._commit_blob(root, "notes/c.dat", lfs_tests.lfs_pointer(V1))  # never under a filter=lfs line

    r = run_mvc("import-lfs", cwd=root, check=True)
    assert "imported b.bin" in r.stdout and "c.dat" in r.stdout and "left in git: 1 git-lfs pointer" in r.stdout
    assert (root / "b.bin").read_bytes() == V1 and {"D\tb.bin", "A\tb.bin.mvc"} <= staged(root)
    git(root, "commit", "-qm", "b.bin to mvc")
    out = mvc_json(root, "import-lfs")
    assert out["up_to_date"] and out["not_covered"] == ["notes/c.dat"]
    out = mvc_json(root, "import-lfs", "notes/c.dat")
    assert [r["path"] for r in out["imported"]] == ["notes/c.dat"]
    assert (root / "notes" / "c.dat").read_bytes() == V1
    run_mvc("get", "b.bin", "--rev", "exp", "-o", str(tmp_path / "b"), cwd=root, check=True)
    assert (tmp_path / "b").read_bytes() == V1


@needs_lfs
def test_lfs_import_is_no_change_in_the_log(lfs_repo: Path):
    """The imported pointer has no [auto] (the import is no new version): its bytes are those the old revisions'
    git-lfs pointers read as, so mvc log shows the two git-lfs commits and not the import."""
    root = lfs_repo
    run_mvc("import-lfs", cwd=root, check=True)
    assert b"[auto]" not in (root / "model.bin.mvc").read_bytes()
    git(root, "commit", "-qm", "to mvc")
    log = mvc_json(root, "log", "model.bin")
    commits = git(root, "rev-list", "HEAD~2").split()  # v2, v1: not 'mvc init', not the import
    assert [(e["commit"], e["change"], e["oid"]) for e in log] == [
        (commits[0], "modified", oid_of(V2)),
        (commits[1], "added", oid_of(V1)),
    ]


@needs_dvc
def test_dvc_rerun_after_an_import_killed_before_staging_stages_the_pointer(dvc_repo):
    """An import killed after it wrote a pointer but before it staged anything (the pointer untracked, the .dvc
    file still tracked): the re-run, finding the pointer of that very version, stages it with the .dvc file's
    removal, so the commit never holds neither."""
    root, _, _ = dvc_repo
    r = run_mvc("import-dvc", cwd=root, check=True)
    assert r.returncode == 0
    git(root, "reset", "-q")  # as if killed before its staging: pointers written, nothing staged
    for dvc_file in ("model.bin.dvc", "data.dvc"):
        git(root, "checkout", "-q", "HEAD", "--", dvc_file)
    assert "?? model.bin.mvc" in git(root, "status", "--porcelain")
    out = mvc_json(root, "import-dvc")
    assert "model.bin" in out["kept"]
    names = set(git(root, "diff", "--cached", "--name-only").split())
    assert {"model.bin.mvc", "data.mvc", "model.bin.dvc", "data.dvc"} <= names, names
    git(root, "commit", "-q", "-m", "to mvc")
    tree = set(git(root, "ls-tree", "-r", "--name-only", "HEAD").split())
    assert "model.bin.mvc" in tree and "model.bin.dvc" not in tree


@needs_dvc
def test_dvc_import_push_to_an_unknown_remote_is_refused_before_anything_is_written(dvc_repo):
    """--push -r NAME of a remote neither mvc nor DVC has: refused first, the import all or nothing as its docs
    say; a DVC remote's name is taken (the import makes it mvc's)."""
    root, _, _ = dvc_repo
    before = state(root)
    r = run_mvc("import-dvc", "--push", "-r", "nosuch", cwd=root)
    assert r.returncode != 0 and "nosuch" in r.stderr and "Traceback" not in r.stderr
    assert state(root) == before


@lfs_tests.needs_lfs
def test_lfs_rerun_after_an_import_killed_while_writing_finishes_it(lfs_repo: Path):
    """kill -9 while import-lfs wrote the files back: pointers written but not staged, no map, .gitattributes as
    it was, a file still renamed aside (a temp of a dead process) and another not written back. The re-run takes
    the pointers it wrote for its own, writes the files again, removes the temp, and stages the import."""
    root = lfs_repo
    _two_lfs_files(root)
    run_mvc("import-lfs", cwd=root, check=True)
    git(root, "reset", "-q")  # as killed before its staging: what it wrote is in the work tree only
    (root / ".mvc" / "imported.toml").unlink(missing_ok=True)
    git(root, "checkout", "-q", "HEAD", "--", ".gitattributes")
    dead = 2**22 + 12345  # (no such process)
    aside = root / f".mvc-tmp.aside.{dead}.1.0000abcd.tmp"
    aside.write_bytes(V2)  # model.bin, renamed aside by the killed run
    (root / "sub" / "b.bin").unlink()  # put aside, never written back
    assert "?? model.bin.mvc" in git(root, "status", "--porcelain", "--untracked-files=all")
    r = run_mvc("import-lfs", cwd=root)
    assert r.returncode == 0, r.stderr
    assert (root / "model.bin").read_bytes() == V2 and (root / "sub" / "b.bin").read_bytes() == V1[:1000]
    assert not aside.exists()
    names = set(git(root, "diff", "--cached", "--name-only").split())
    assert {"model.bin.mvc", "sub/b.bin.mvc"} <= names, names


@needs_dvc
@pytest.mark.parametrize("remote_there", [True, False])
def test_dvc_import_takes_a_version_damaged_in_dvcs_cache_from_dvcs_remote(dvc_repo, tmp_path: Path, remote_there):
    """A file of DVC's cache that no longer matches its md5: the import reads DVC's remote's copy instead, as for
    one missing; with no remote copy either, the error names the damaged file and the fix."""
    root, remote, versions = dvc_repo
    md5 = next(line.split()[-1] for line in git(root, "show", "HEAD:model.bin.dvc").splitlines() if "md5:" in line)
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.chmod(0o644)
    cached.write_bytes(b"bit rot" + cached.read_bytes()[7:])
    if not remote_there:
        shutil.move(remote, tmp_path / "moved-away")
        for name in ("model.bin", "out.bin"):  # (the work tree's own bytes would do: out.bin is a copy)
            (root / name).write_bytes(b"retrained")
        before = state(root)
        r = run_mvc("import-dvc", cwd=root)
        assert r.returncode != 0 and str(cached) in r.stderr and "damaged" in r.stderr and "dvc fetch" in r.stderr
        assert state(root) == before
        return
    out = mvc_json(root, "import-dvc")
    assert out["fetched"] >= 1
    assert (root / "model.bin").read_bytes() == versions["v2"]["model.bin"]


@needs_dvc
def test_a_dvc_remote_of_this_machine_alone_stays_out_of_the_committed_config(dvc_repo, tmp_path: Path):
    """A remote DVC keeps in .dvc/config.local (a path of this machine's, a host): the import makes it an mvc
    remote in .mvc/config.local.toml alone, never in the committed .mvc/config.toml."""
    root, _, _ = dvc_repo
    dvc(root, "remote", "add", "--local", "personal", str(tmp_path / "personal-store"))
    mvc_json(root, "import-dvc")
    shared = (root / ".mvc" / "config.toml").read_text()
    local = (root / ".mvc" / "config.local.toml").read_text()
    assert "personal" not in shared and "personal-store" not in shared
    assert "[remote.personal]" in local and "personal-store/mvc" in local
    assert "[remote.storage]" in shared  # the committed one stays shared


@needs_dvc
def test_dvc_outputs_linked_into_dvcs_cache_become_mvcs_files(tmp_path: Path, monkeypatch):
    """DVC's cache.type symlink: the work tree's outputs are links into DVC's cache. The import replaces them with
    mvc's copies (the same bytes), so status says up to date and nothing depends on DVC's cache any more."""
    import os

    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    dvc(root, "config", "cache.type", "symlink")
    make_file(root / "m.pt", 100_000, seed=1)
    (root / "d" / "sub").mkdir(parents=True)
    for i in range(3):
        make_file(root / "d" / "sub" / f"f{i}", 500, seed=10 + i)
    data = {p: (root / p).read_bytes() for p in ("m.pt", "d/sub/f0", "d/sub/f2")}
    dvc(root, "add", "-q", "m.pt", "d")
    assert (root / "m.pt").is_symlink() and (root / "d" / "sub" / "f0").is_symlink()
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "dvc")
    monkeypatch.chdir(root)
    run_mvc("init", cwd=root, check=True)
    run_mvc("import-dvc", cwd=root, check=True)
    for p, b in data.items():
        assert not (root / p).is_symlink() and (root / p).read_bytes() == b, p
    out = run_mvc("status", cwd=root, check=True).stdout
    assert out == "d: up to date\nm.pt: up to date\n", out
    assert os.access(root / ".dvc" / "cache", os.R_OK)  # DVC's cache is left as it was


@needs_dvc
def test_naming_an_output_dvc_does_not_cache_or_a_file_inside_one_says_so(dvc_repo):
    root, _, _ = dvc_repo
    (root / "nc.bin").write_bytes(b"not cached\n")
    (root / "nc.bin.dvc").write_text("outs:\n- path: nc.bin\n  cache: false\n")
    git(root, "add", "nc.bin", "nc.bin.dvc")
    git(root, "commit", "-q", "-m", "an uncached output")
    for name in ("nc.bin", "nc.bin.dvc"):
        r = run_mvc("import-dvc", name, cwd=root)
        assert r.returncode != 0 and "cache: false" in r.stderr and "mvc add" in r.stderr, r.stderr
    inner = next(p for p in sorted((root / "data").rglob("*")) if p.is_file()).relative_to(root).as_posix()
    r = run_mvc("import-dvc", inner, cwd=root)
    assert r.returncode != 0 and "inside DVC output data" in r.stderr and "mvc import-dvc data" in r.stderr, r.stderr
