"""mvc import-dvc says the true reason when it cannot do what it was asked, in one line with the fix: DVC's usual
'/models/*' ignore pattern, a merge conflict on a .dvc file, a .dvc file git does not track, a stage output DVC does
not cache, a path mvc tracks already, a DVC remote out of reach (told apart from a version it lacks)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import test_import_dvc as dvc_tests
from conftest import git, make_file, run_mvc
from test_import_dvc import DVC, dvc, state

dvc_repo = dvc_tests.dvc_repo  # (the fixture of that file, used here too)
pytestmark = pytest.mark.skipif(DVC is None, reason="dvc is not installed: pip install -e '.[dvc-test]'")


def test_dvcs_models_star_ignore_pattern_is_refused_up_front_with_the_lines_to_add(tmp_path, monkeypatch, mvc_error):
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    (root / ".gitignore").write_text("/models/*\n!/models/*.dvc\n")
    make_file(root / "models" / "m.bin", 1000, seed=1)
    dvc(root, "add", "-q", "models/m.bin")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "v1")
    monkeypatch.chdir(root)
    run_mvc("init", cwd=root, check=True)
    before = state(root)
    mvc_error(
        "import-dvc",
        words=("models/m.bin.mvc", ".gitignore:1 '/models/*'", "'!/models/*.mvc'", "'!/models/.gitignore'"),
    )
    assert state(root) == before and (root / "models" / "m.bin.dvc").exists()
    with (root / ".gitignore").open("a") as f:
        f.write("!/models/*.mvc\n!/models/.gitignore\n")
    run_mvc("import-dvc", cwd=root, check=True)
    assert "A\tmodels/m.bin.mvc" in git(root, "diff", "--cached", "--name-status")


def test_a_whole_directory_ignored_says_to_ignore_its_files_instead(tmp_path, monkeypatch, mvc_error):
    """'/models/' ignores the directory itself: git never looks inside it, so no '!' line below takes a file back;
    the fix says to make the line ignore the directory's files first."""
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    make_file(root / "models" / "m.bin", 1000, seed=1)
    dvc(root, "add", "-q", "models/m.bin")
    (root / ".gitignore").write_text("/models/\n")  # (after dvc add, which refuses a .dvc file git would ignore)
    git(root, "add", "-f", "models/m.bin.dvc")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "v1")
    monkeypatch.chdir(root)
    run_mvc("init", cwd=root, check=True)
    mvc_error("import-dvc", words=("would be ignored by git", "make that line ignore the files in the directory"))


def test_a_merge_conflict_on_a_dvc_file_says_resolve_it_first(dvc_repo, mvc_error):
    root, _, _ = dvc_repo
    git(root, "checkout", "-q", "-b", "exp")
    with (root / "model.bin.dvc").open("a") as f:
        f.write("desc: exp's\n")
    git(root, "commit", "-q", "-am", "exp")
    git(root, "checkout", "-q", "-")
    with (root / "model.bin.dvc").open("a") as f:
        f.write("desc: main's\n")
    git(root, "commit", "-q", "-am", "main")
    r = subprocess.run(["git", "merge", "-q", "exp"], cwd=root, capture_output=True)
    assert r.returncode != 0  # the conflict
    before = state(root)
    mvc_error("import-dvc", words=("model.bin.dvc has an unresolved merge conflict", "git add model.bin.dvc"))
    assert state(root) == before


def test_an_ignored_dvc_file_and_an_uncached_stage_output_get_their_true_reasons(dvc_repo, mvc_error):
    root, _, _ = dvc_repo
    make_file(root / "scratch.bin", 100, seed=5)
    (root / "scratch.bin.dvc").write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: scratch.bin\n")
    with (root / ".gitignore").open("a") as f:
        f.write("scratch.bin.dvc\n")
    with (root / "dvc.yaml").open("a") as f:
        f.write("  report:\n    cmd: echo hi > report.txt\n    outs:\n    - report.txt:\n        cache: false\n")
    (root / "report.txt").write_text("hi\n")
    git(root, "add", ".gitignore", "dvc.yaml", "report.txt")
    git(root, "commit", "-q", "-m", "a scratch file and a report")
    for name in ("scratch.bin", "scratch.bin.dvc"):
        mvc_error(
            "import-dvc",
            name,
            words=("scratch.bin.dvc is not tracked by git", "ignored by .gitignore", "git add -f scratch.bin.dvc"),
        )
    mvc_error("import-dvc", "report.txt", words=("cache: false output of stage report", "mvc add report.txt"))
    # a path mvc tracks already, its .dvc file gone with the import
    run_mvc("import-dvc", cwd=root, check=True)
    git(root, "commit", "-q", "-m", "to mvc")
    mvc_error("import-dvc", "model.bin", words=("model.bin is tracked by mvc already",))


def test_a_dvc_remote_out_of_reach_is_told_apart_from_a_version_it_lacks(dvc_repo, tmp_path: Path):
    root, remote, _ = dvc_repo
    md5 = next(
        line.split()[-1] for line in git(root, "show", "churn@v1.0.0:model.bin.dvc").splitlines() if "md5:" in line
    )
    dvc(root, "push", "-q", "--all-commits")
    (root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).unlink()  # only the remote has it
    shutil.move(remote, tmp_path / "offline")  # the share is not mounted
    out = json.loads(run_mvc("import-dvc", "--json", cwd=root, check=True).stdout)
    assert out["history_unreachable"] == [md5] and out["history_missing"] == [], out
    assert "DVC remote storage" in out["dvc_remote_error"], out
    git(root, "commit", "-q", "-m", "to mvc")
    r = run_mvc("get", "--rev", "churn@v1.0.0", "model.bin", "-o", str(tmp_path / "v1"), cwd=root)
    assert r.returncode != 0 and "could not be reached" in r.stderr and "neither" not in r.stderr, r.stderr
    r = run_mvc("import-dvc", cwd=root)  # still out of reach: nothing new, and the line says why
    assert r.returncode == 0 and "1 older version not read: DVC remote storage" in r.stdout, r.stdout
    shutil.move(tmp_path / "offline", remote)  # back
    out = json.loads(run_mvc("import-dvc", "--json", cwd=root, check=True).stdout)
    assert out["history_versions"] == 1, out
    git(root, "commit", "-q", "-m", "older versions")
    run_mvc("get", "--rev", "churn@v1.0.0", "model.bin", "-o", str(tmp_path / "v1"), cwd=root, check=True)


def test_the_work_trees_very_bytes_are_taken_when_dvcs_cache_and_remote_lack_them(dvc_repo, tmp_path: Path):
    root, remote, versions = dvc_repo
    md5 = next(line.split()[-1] for line in (root / "model.bin.dvc").read_text().splitlines() if "md5:" in line)
    (root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).unlink()  # a cache wiped, never pushed
    shutil.rmtree(remote)
    out = json.loads(run_mvc("import-dvc", "--json", "--no-history", cwd=root, check=True).stdout)
    assert out["from_worktree"] == 1 and out["fetched"] == 0, out
    git(root, "commit", "-q", "-m", "to mvc")
    (root / "model.bin").unlink()
    run_mvc("checkout", cwd=root, check=True)  # from mvc's cache
    assert (root / "model.bin").read_bytes() == versions["v2"]["model.bin"]
