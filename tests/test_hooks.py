"""Git hooks (issue 5): install/uninstall, then real `git commit`, `push`, `checkout`, `merge`, `pull`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, make_file

from mvc import Repo
from mvc.api import hooks as hooksapi

HOOKS = ("pre-commit", "pre-push", "post-checkout", "post-merge")
ZERO = "0" * 40


def gitp(cwd, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """Run git expecting it may fail: the CompletedProcess (text)."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, input=input)


def hooks_dir(root: Path) -> Path:
    return root / ".git" / "hooks"


def obj(root: Path, oid: str) -> Path:
    return root / ".mvc" / "cache" / "objects" / oid[7:9] / oid[9:]


def oid_of(root: Path, rel: str) -> str:
    from mvc.format import pointer

    return pointer.loads((root / (rel + ".mvc")).read_bytes()).oid


@pytest.fixture
def hooked(repo: Path, mvc_cli) -> Path:
    """The `repo` fixture with mvc's hooks installed."""
    mvc_cli("install-hooks")
    return repo


def user_hook(path: Path, body: str, mode: int = 0o755) -> bytes:
    data = f"#!/bin/sh\n{body}\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return data


# -- install / uninstall --------------------------------------------------------------------------
def test_install_writes_four_hooks_and_is_idempotent(repo, mvc_cli):
    out = mvc_cli("install-hooks").stdout
    for name in HOOKS:
        path = hooks_dir(repo) / name
        assert f"installed {path}" in out
        assert path.stat().st_mode & 0o111 == 0o111
        assert hooksapi.is_mvc_hook(str(path))
        text = path.read_text()
        # the absolute command of this installation, with 'mvc' on PATH as the fallback
        assert hooksapi.mvc_command()[0] in text and "command -v mvc" in text
        assert 'hook "$@"' in text and f"mvc_hook {name}" in text
    again = mvc_cli("install-hooks").stdout
    assert again.count("unchanged") == 4 and "installed" not in again
    mvc_cli("install-hooks", "--uninstall")
    assert not [p for p in hooks_dir(repo).iterdir() if not p.name.endswith(".sample")]


def test_install_needs_mvc_init(gitrepo, mvc_error):
    mvc_error("install-hooks", words=("mvc init",))


def test_existing_hooks_keep_running_and_uninstall_restores_them(hooked, mvc_cli, tmp_path):
    mvc_cli("install-hooks", "--uninstall")
    log = tmp_path / "log"
    pre_commit_body = f'echo "user pre-commit" >> {log}'
    pre_commit = user_hook(hooks_dir(hooked) / "pre-commit", pre_commit_body, 0o750)
    pre_push = user_hook(hooks_dir(hooked) / "pre-push", f'echo "user pre-push $1" >> {log}; cat >> {log}')
    os.symlink("pre-commit", hooks_dir(hooked) / "post-merge")  # a symlinked hook comes back as the same link
    out = mvc_cli("install-hooks").stdout
    assert "pre-commit.mvc-chained" in out
    assert (hooks_dir(hooked) / "pre-commit.mvc-chained").read_bytes() == pre_commit

    make_file(hooked / "model.bin", 1000, seed=1)
    mvc_cli("add", "model.bin")
    git(hooked, "commit", "-q", "-m", "model")
    assert log.read_text() == "user pre-commit\n"

    # mvc's own check still runs after the user's hook…
    make_file(hooked / "model.bin", 1000, seed=2)
    res = gitp(hooked, "commit", "--allow-empty", "-m", "x")
    assert res.returncode == 1 and "mvc add model.bin" in res.stderr
    assert log.read_text() == "user pre-commit\n" * 2
    # …and a user hook that refuses stops the commit before mvc is asked
    user_hook(hooks_dir(hooked) / "pre-commit.mvc-chained", f'echo "user says no" >> {log}; exit 3')
    res = gitp(hooked, "commit", "--allow-empty", "-m", "x")
    assert res.returncode == 1 and "mvc:" not in res.stderr
    user_hook(hooks_dir(hooked) / "pre-commit.mvc-chained", pre_commit_body, 0o750)

    # the user's pre-push hook sees git's arguments and the ref lines on stdin, like mvc's
    mvc_cli("add", "model.bin")
    git(hooked, "commit", "-q", "-m", "v2")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(hooked, "remote", "add", "origin", str(bare))
    res = gitp(hooked, "push", "origin", "main")
    assert res.returncode == 1 and "mvc remote add" in res.stderr  # no mvc remote: stopped
    head = git(hooked, "rev-parse", "HEAD").strip()
    assert f"user pre-push origin\nrefs/heads/main {head} refs/heads/main {ZERO}\n" in log.read_text()

    out = mvc_cli("install-hooks", "--uninstall").stdout
    assert "restored the original" in out
    assert (hooks_dir(hooked) / "pre-commit").read_bytes() == pre_commit
    assert stat.S_IMODE((hooks_dir(hooked) / "pre-commit").stat().st_mode) == 0o750
    assert (hooks_dir(hooked) / "pre-push").read_bytes() == pre_push
    assert os.readlink(hooks_dir(hooked) / "post-merge") == "pre-commit"
    assert not (hooks_dir(hooked) / "post-checkout").exists()
    assert not list(hooks_dir(hooked).glob("*.mvc-chained"))


def test_install_refuses_when_the_chained_name_is_taken(repo, mvc_error):
    user_hook(hooks_dir(repo) / "pre-push", "exit 0")
    user_hook(hooks_dir(repo) / "pre-push.mvc-chained", "exit 0")
    mvc_error("install-hooks", words=("pre-push.mvc-chained", "move"))
    assert not (hooks_dir(repo) / "pre-commit").exists()  # nothing half-installed


def test_uninstall_leaves_a_hook_that_replaced_mvcs_alone(hooked, mvc_cli):
    theirs = user_hook(hooks_dir(hooked) / "pre-commit", "exit 0")
    out = mvc_cli("install-hooks", "--uninstall").stdout
    assert "left" in out and "not mvc's hook" in out
    assert (hooks_dir(hooked) / "pre-commit").read_bytes() == theirs
    assert not (hooks_dir(hooked) / "pre-push").exists()


def test_core_hooks_path_is_respected(repo, mvc_cli):
    git(repo, "config", "core.hooksPath", ".githooks")
    out = mvc_cli("install-hooks").stdout
    assert str(repo / ".githooks" / "pre-commit") in out
    assert not (hooks_dir(repo) / "pre-commit").exists()
    make_file(repo / "model.bin", 1000, seed=1)
    mvc_cli("add", "model.bin")
    make_file(repo / "model.bin", 1000, seed=2)  # changed after mvc add: the hook must catch it
    res = gitp(repo, "commit", "-m", "x")
    assert res.returncode == 1 and "mvc add model.bin" in res.stderr


def test_linked_worktree_uses_the_shared_hooks(repo, mvc_cli, monkeypatch, tmp_path):
    make_file(repo / "model.bin", 1000, seed=1)
    mvc_cli("add", "model.bin")
    git(repo, "commit", "-q", "-m", "model")
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(wt))
    monkeypatch.chdir(wt)
    out = mvc_cli("install-hooks").stdout
    assert str(hooks_dir(repo) / "pre-commit") in out  # the common dir's hooks, which git runs for both
    make_file(wt / "model.bin", 1000, seed=3)
    res = gitp(wt, "commit", "--allow-empty", "-m", "x")
    assert res.returncode == 1 and "model.bin differs from its staged pointer" in res.stderr


def test_hooks_fall_back_to_mvc_on_path(repo, tmp_path):
    hooksapi.install(repo=None, command=[str(tmp_path / "gone" / "mvc")])
    make_file(repo / "model.bin", 1000, seed=1)
    subprocess.run([sys.executable, "-m", "mvc", "add", "model.bin"], cwd=repo, check=True, capture_output=True)
    make_file(repo / "model.bin", 1000, seed=2)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    res = subprocess.run(["git", "commit", "-m", "x"], cwd=repo, capture_output=True, text=True, env=env)
    assert res.returncode == 1 and "mvc add model.bin" in res.stderr  # found on PATH
    bare = dict(os.environ, PATH="/usr/bin:/bin")
    res = subprocess.run(["git", "commit", "-m", "x"], cwd=repo, capture_output=True, text=True, env=bare)
    assert res.returncode == 1 and "cannot run the pre-commit hook" in res.stderr and "--no-verify" in res.stderr
    res = subprocess.run(["git", "checkout", "-q", "-b", "b"], cwd=repo, capture_output=True, text=True, env=bare)
    assert res.returncode == 0 and "cannot run the post-checkout hook" in res.stderr  # never fatal


# -- pre-commit -----------------------------------------------------------------------------------
def test_clean_commit_passes(hooked, mvc_cli):
    make_file(hooked / "model.bin", 2000, seed=1)
    make_file(hooked / "model" / "a.bin", 300, seed=2)
    mvc_cli("add", "model.bin", "model")
    (hooked / "train.py").write_text("print('hi')\n")
    git(hooked, "add", "train.py")
    res = gitp(hooked, "commit", "-m", "models")
    assert res.returncode == 0 and "mvc:" not in res.stderr


def test_forgotten_mvc_add_stops_the_commit(hooked, mvc_cli):
    make_file(hooked / "model.bin", 2000, seed=1)
    make_file(hooked / "model" / "a.bin", 300, seed=2)
    mvc_cli("add", "model.bin", "model")
    git(hooked, "commit", "-q", "-m", "models")
    make_file(hooked / "model.bin", 2000, seed=3)
    make_file(hooked / "model" / "b.bin", 10, seed=4)
    (hooked / "train.py").write_text("print('hi')\n")
    git(hooked, "add", "train.py")
    res = gitp(hooked, "commit", "-m", "code only")
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("mvc:")]
    assert lines[0].startswith("mvc: model.bin differs from its staged pointer model.bin.mvc")
    assert "mvc add model.bin" in lines[0] and "checkout --force model.bin" in lines[0]
    assert lines[1].startswith("mvc: model differs from its staged pointer model.mvc")
    assert "commit stopped (2 problems)" in lines[2] and "--no-verify" in lines[2]
    assert len(lines) == 3
    mvc_cli("add", "model.bin", "model")
    git(hooked, "commit", "-q", "-m", "retrained")  # fixed: it goes through


def test_an_older_version_in_the_workspace_is_told_to_check_out_first(hooked, mvc_cli):
    """The workspace holds another version the cache has (a pull or merge the workspace did not follow): the fix
    offered first is checkout (nothing is lost), not an add that would commit the old weights."""
    v1 = make_file(hooked / "model.bin", 2000, seed=1).read_bytes()
    mvc_cli("add", "model.bin")
    git(hooked, "commit", "-q", "-m", "v1")
    make_file(hooked / "model.bin", 2000, seed=2)
    mvc_cli("add", "model.bin")
    git(hooked, "commit", "-q", "-m", "v2")
    (hooked / "model.bin").chmod(0o644)
    (hooked / "model.bin").write_bytes(v1)  # back to v1's bytes, as a teammate's pull leaves them without hooks
    (hooked / "train.py").write_text("print('hi')\n")
    git(hooked, "add", "train.py")
    res = gitp(hooked, "commit", "-m", "code")
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("mvc: model.bin"))
    assert res.returncode == 1 and "holds another version than its staged pointer" in line
    assert line.index("mvc checkout model.bin") < line.index("mvc add model.bin") and "--force" not in line
    # a missing workspace file is not a change (a clone that has not fetched the weights)
    (hooked / "model.bin").unlink()
    git(hooked, "commit", "-q", "--allow-empty", "-m", "fine")


def test_pointer_updated_but_not_staged(hooked, mvc_cli):
    make_file(hooked / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(hooked, "commit", "-q", "-m", "v1")
    make_file(hooked / "model.bin", 2000, seed=2)
    mvc_cli("add", "model.bin", "--no-stage")
    res = gitp(hooked, "commit", "--allow-empty", "-m", "x")
    assert res.returncode == 1 and "git add model.bin.mvc" in res.stderr
    # `git commit -a` stages it into a temporary index (GIT_INDEX_FILE): the hook must read that one
    res = gitp(hooked, "commit", "-a", "-m", "v2")
    assert res.returncode == 0, res.stderr


def test_pointer_to_weights_missing_from_the_cache_stops_the_commit(hooked, mvc_cli):
    make_file(hooked / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    obj(hooked, oid_of(hooked, "model.bin")).unlink()
    res = gitp(hooked, "commit", "-m", "x")
    assert res.returncode == 1
    assert "model.bin.mvc names weights" in res.stderr and "not in the cache" in res.stderr
    assert "mvc add model.bin" in res.stderr
    mvc_cli("add", "model.bin")  # stores it again
    git(hooked, "commit", "-q", "-m", "x")
    # an unchanged pointer whose weights are elsewhere (not fetched here) does not stop other commits
    obj(hooked, oid_of(hooked, "model.bin")).unlink()
    (hooked / "model.bin").unlink()
    (hooked / "README").write_text("hi\n")
    git(hooked, "add", "README")
    git(hooked, "commit", "-q", "-m", "readme")


def test_weights_and_large_binaries_in_git_stop_the_commit(hooked, mvc_cli):
    (hooked / ".mvc" / "config.toml").write_text(
        '[cache]\ntype = ["reflink", "copy"]\n\n[hooks]\nmax_size = "1KB"\nallow = ["fixtures/*"]\n'
    )
    make_file(hooked / "weights.safetensors", 100, seed=1)
    make_file(hooked / "blob.dat", 3000, seed=2)
    (hooked / "blob.dat").write_bytes(b"\0" + (hooked / "blob.dat").read_bytes())
    (hooked / "big.csv").write_text("a,b\n" * 2000)  # large but text: fine
    make_file(hooked / "fixtures" / "tiny.pt", 50, seed=3)  # allowed by the glob
    make_file(hooked / "small.dat", 500, seed=4)
    git(hooked, "add", "-A")
    res = gitp(hooked, "commit", "-m", "x")
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("mvc:")]
    assert lines[0] == (
        "mvc: weights.safetensors is a weights file (.safetensors) staged into git itself: "
        "run 'git rm --cached weights.safetensors' and 'mvc add weights.safetensors' "
        "(or list it in [hooks] allow in .mvc/config.toml)"
    )
    assert lines[1].startswith(
        "mvc: blob.dat is a 3.0 kB binary file staged into git itself (hooks.max_size is 1.0 kB)"
    )
    assert "mvc add blob.dat" in lines[1]
    assert len(lines) == 3
    git(hooked, "rm", "-q", "--cached", "weights.safetensors", "blob.dat")
    git(hooked, "commit", "-q", "-m", "x")


def test_extensions_and_size_are_configurable(hooked):
    (hooked / ".mvc" / "config.toml").write_text('[hooks]\nmax_size = 0\nextensions = ["npz"]\n')
    make_file(hooked / "a.npz", 10, seed=1)
    make_file(hooked / "b.pt", 100_000, seed=2)  # no longer a weights extension, and no size limit
    git(hooked, "add", "a.npz", "b.pt")
    res = gitp(hooked, "commit", "-m", "x")
    assert res.returncode == 1 and "a.npz is a weights file (.npz)" in res.stderr and "b.pt" not in res.stderr


def test_bad_hooks_config_is_one_line(hooked):
    (hooked / ".mvc" / "config.toml").write_text('[hooks]\nmax_size = "ten"\n')
    (hooked / "x.txt").write_text("x\n")
    git(hooked, "add", "x.txt")
    res = gitp(hooked, "commit", "-m", "x")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "mvc: git commit stopped: hooks.max_size in .mvc/config.toml must be a size like 10MB or 512KiB "
        "(0: no limit), not 'ten': fix it with 'mvc config hooks.max_size 10MB' or drop it with "
        "'mvc config hooks.max_size --unset'"
    ]


def test_merge_commit_does_not_recheck_what_the_merged_branch_brings(hooked, mvc_cli):
    make_file(hooked / "other.bin", 1000, seed=1)
    mvc_cli("add", "other.bin")
    (hooked / "conflict.txt").write_text("base\n")
    git(hooked, "add", "conflict.txt")
    git(hooked, "commit", "-q", "-m", "base")
    git(hooked, "checkout", "-q", "-b", "feat")
    make_file(hooked / "model.bin", 1000, seed=2)
    mvc_cli("add", "model.bin")
    (hooked / "conflict.txt").write_text("feat\n")
    git(hooked, "commit", "-q", "-am", "feat")
    feat_oid = oid_of(hooked, "model.bin")
    git(hooked, "checkout", "-q", "main")
    (hooked / "conflict.txt").write_text("main\n")
    git(hooked, "commit", "-q", "-am", "main")
    # as if feat came from a colleague whose weights this machine has not fetched
    obj(hooked, feat_oid).unlink()
    assert gitp(hooked, "merge", "feat").returncode != 0  # the conflict
    (hooked / "conflict.txt").write_text("merged\n")
    git(hooked, "add", "conflict.txt")
    res = gitp(hooked, "commit", "--no-edit")
    assert res.returncode == 0, res.stderr


def test_pre_commit_in_a_repo_without_mvc_does_nothing(gitrepo, tmp_path):
    path = gitrepo / ".git" / "hooks" / "pre-commit"
    path.write_bytes(hooksapi.hook_script("pre-commit"))
    path.chmod(0o755)
    make_file(gitrepo / "w.pt", 10, seed=1)
    git(gitrepo, "add", "w.pt")
    git(gitrepo, "commit", "-q", "-m", "no mvc here")


# -- post-checkout / post-merge (weights in the local cache) ---------------------------------------
@pytest.fixture
def history(hooked, mvc_cli):
    """model.bin v1 (branch old) and v2 (main), v2 checked out."""
    make_file(hooked / "model.bin", 3000, seed=1)
    make_file(hooked / "model" / "a.bin", 300, seed=2)
    mvc_cli("add", "model.bin", "model")
    git(hooked, "commit", "-q", "-m", "v1")
    git(hooked, "branch", "old")
    v1 = (hooked / "model.bin").read_bytes(), (hooked / "model" / "a.bin").read_bytes()
    make_file(hooked / "model.bin", 4000, seed=3)
    make_file(hooked / "model" / "a.bin", 300, seed=4)
    mvc_cli("add", "model.bin", "model")
    git(hooked, "commit", "-q", "-m", "v2")
    v2 = (hooked / "model.bin").read_bytes(), (hooked / "model" / "a.bin").read_bytes()
    return hooked, v1, v2


def contents(root: Path) -> tuple[bytes, bytes]:
    return (root / "model.bin").read_bytes(), (root / "model" / "a.bin").read_bytes()


def test_checkout_of_an_old_commit_restores_old_weights(history):
    root, v1, v2 = history
    res = gitp(root, "checkout", "-q", "HEAD~1")
    assert res.returncode == 0
    assert contents(root) == v1
    assert "mvc: restored model.bin" in res.stderr and "mvc: restored model" in res.stderr
    git(root, "switch", "-q", "main")
    assert contents(root) == v2
    git(root, "checkout", "-q", "old")
    assert contents(root) == v1


def test_file_checkouts_are_left_to_mvc_checkout(history):
    root, _v1, v2 = history
    res = gitp(root, "checkout", "old", "--", "model.bin.mvc")  # flag 0: not a branch checkout
    assert res.returncode == 0 and "mvc:" not in res.stderr
    assert contents(root) == v2


def test_checkout_never_replaces_unsaved_work(history):
    root, v1, _v2 = history
    (root / "model.bin").write_bytes(b"precious, not added")
    res = gitp(root, "checkout", "-q", "old")
    assert res.returncode == 0  # reported, never fatal to git
    assert (root / "model.bin").read_bytes() == b"precious, not added"
    assert "model.bin" in res.stderr and "not in the cache" in res.stderr and "mvc add" in res.stderr
    assert (root / "model" / "a.bin").read_bytes() == v1[1]  # the others are still brought in line


def test_files_of_pointers_the_commit_lacks_are_removed_only_when_cached(history, mvc_cli):
    root, _v1, _v2 = history
    make_file(root / "extra.bin", 500, seed=9)
    make_file(root / "scratch.bin", 500, seed=10)
    mvc_cli("add", "extra.bin", "scratch.bin")
    git(root, "commit", "-q", "-m", "extra")
    make_file(root / "scratch.bin", 500, seed=11)  # changed, never added
    res = gitp(root, "checkout", "-q", "old")
    assert not (root / "extra.bin").exists()
    assert "removed extra.bin" in res.stderr
    assert (root / "scratch.bin").exists() and "scratch.bin: no longer tracked" in res.stderr
    (root / "scratch.bin").unlink()
    git(root, "checkout", "-q", "main")
    assert (root / "extra.bin").exists() and (root / "scratch.bin").exists()  # back from the cache


def test_merge_brings_new_weights(history, mvc_cli):
    root, _v1, v2 = history
    git(root, "checkout", "-q", "-b", "feat")
    make_file(root / "model.bin", 5000, seed=5)
    make_file(root / "new.bin", 100, seed=6)
    mvc_cli("add", "model.bin", "new.bin")
    git(root, "commit", "-q", "-m", "feat")
    v3 = (root / "model.bin").read_bytes()
    git(root, "checkout", "-q", "main")
    assert contents(root) == v2 and not (root / "new.bin").exists()
    res = gitp(root, "merge", "-q", "--no-edit", "feat")
    assert res.returncode == 0
    assert (root / "model.bin").read_bytes() == v3 and (root / "new.bin").exists()
    assert "mvc: restored model.bin" in res.stderr
    # squash merges too
    git(root, "reset", "-q", "--hard", "HEAD@{1}")
    subprocess.run([sys.executable, "-m", "mvc", "checkout"], cwd=root, check=True, capture_output=True)
    assert contents(root) == v2
    res = gitp(root, "merge", "--squash", "feat")
    assert res.returncode == 0 and (root / "model.bin").read_bytes() == v3


def test_post_hooks_report_missing_weights_without_a_remote(history):
    root, _v1, v2 = history
    v2_oid = oid_of(root, "model.bin")
    git(root, "checkout", "-q", "old")
    obj(root, v2_oid).unlink()
    res = gitp(root, "checkout", "-q", "main")
    assert res.returncode == 0
    assert "model.bin: its weights are not in the cache" in res.stderr and "no mvc remote is configured" in res.stderr
    assert (root / "model" / "a.bin").read_bytes() == v2[1]


def test_hook_commands_need_gits_arguments(repo, mvc_cli):
    res = mvc_cli("hook", "pre-push", ok=False)
    assert res.exit_code == 2 and "REMOTE URL" in res.output
    res = mvc_cli("hook", "post-checkout", ok=False)
    assert res.exit_code == 2
    assert "hook" not in mvc_cli("--help").stdout.split("Commands:")[1].split()  # hidden from --help


# -- pre-push and remotes ---------------------------------------------------------------------------
@pytest.fixture
def pushable(hooked, mvc_cli, tmp_path):
    """hooked + a bare git remote 'origin' + a local-directory mvc remote 'store' (default)."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(hooked, "remote", "add", "origin", str(bare))
    store = tmp_path / "store"
    mvc_cli("remote", "add", "store", str(store), "--default")
    git(hooked, "add", ".mvc/config.toml")
    git(hooked, "commit", "-q", "-m", "mvc remote")
    return hooked, bare, store


def on_remote(store: Path, oid: str) -> bool:
    return (store / "objects" / oid[7:9] / oid[9:]).is_file()


def remote_refs(bare: Path) -> str:
    return git(bare, "for-each-ref", "--format=%(refname)")


def test_push_uploads_the_weights_before_git_sends_the_commits(pushable, mvc_cli):
    root, bare, store = pushable
    make_file(root / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(root, "commit", "-q", "-m", "v1")
    v1 = oid_of(root, "model.bin")
    make_file(root / "model.bin", 2000, seed=2)
    mvc_cli("add", "model.bin")
    git(root, "commit", "-q", "-m", "v2")
    v2 = oid_of(root, "model.bin")
    res = gitp(root, "push", "-q", "origin", "main")
    assert res.returncode == 0, res.stderr
    assert on_remote(store, v1) and on_remote(store, v2)  # every pushed commit's weights, not only the tip's
    assert "uploaded 2 object(s)" in res.stderr
    assert "refs/heads/main" in remote_refs(bare)


def test_nothing_new_to_push_contacts_no_mvc_remote(pushable, mvc_cli, tmp_path):
    root, _bare, store = pushable
    make_file(root / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(root, "commit", "-q", "-m", "v1")
    git(root, "push", "-q", "origin", "main")
    # from now on any request to the mvc remote would fail
    store.rename(tmp_path / "store-away")
    store.write_text("not a directory")
    (root / "README").write_text("docs\n")
    git(root, "add", "README")
    git(root, "commit", "-q", "-m", "docs only")
    res = gitp(root, "push", "-q", "origin", "main", "main:refs/heads/copy")
    assert res.returncode == 0, res.stderr
    assert "mvc:" not in res.stderr
    # a second git remote lacks every commit: the journal says the weights are on the mvc remote already
    backup = tmp_path / "backup.git"
    git(tmp_path, "init", "-q", "--bare", str(backup))
    git(root, "remote", "add", "backup", str(backup))
    res = gitp(root, "push", "-q", "backup", "main")
    assert res.returncode == 0, res.stderr
    assert "already on mvc remote 'store'" in res.stderr
    # deleting a branch pushes nothing
    assert gitp(root, "push", "-q", "origin", ":copy").returncode == 0


def test_push_stops_when_the_mvc_remote_is_unreachable(pushable, mvc_cli, tmp_path):
    root, bare, _store = pushable
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    mvc_cli("remote", "add", "broken", str(blocker / "store"), "--default")  # below a regular file
    make_file(root / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(root, "commit", "-q", "-am", "v1")
    res = gitp(root, "push", "origin", "main")
    assert res.returncode != 0
    mvc_lines = [ln for ln in res.stderr.splitlines() if ln.startswith("mvc:")]
    assert len(mvc_lines) == 1 and mvc_lines[0].startswith("mvc: git push stopped: "), res.stderr
    assert "a-file/store" in mvc_lines[0]
    assert "refs/heads/main" not in remote_refs(bare)  # git sent nothing


def test_push_stops_when_s3_is_unreachable(pushable, mvc_cli):
    import socket

    root, bare, _store = pushable
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mvc_cli("remote", "add", "s3", "s3://bucket/models", "--default")
    mvc_cli("remote", "modify", "s3", "endpoint_url", f"http://127.0.0.1:{port}")
    with open(root / ".mvc" / "config.local.toml", "a") as f:  # one attempt: botocore's retries add ~2.6 s
        f.write("\n[remote.s3.config_kwargs.retries]\nmax_attempts = 1\n")
    make_file(root / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(root, "commit", "-q", "-am", "v1")
    res = gitp(root, "push", "origin", "main")
    assert res.returncode != 0 and "mvc: git push stopped: " in res.stderr
    assert "refs/heads/main" not in remote_refs(bare)


def test_push_without_an_mvc_remote(hooked, mvc_cli, tmp_path):
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(hooked, "remote", "add", "origin", str(bare))
    assert gitp(hooked, "push", "-q", "origin", "main").returncode == 0  # no models: nothing to say
    make_file(hooked / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(hooked, "commit", "-q", "-m", "v1")
    res = gitp(hooked, "push", "-q", "origin", "main")
    assert res.returncode != 0
    assert "no default mvc remote is configured" in res.stderr and "mvc remote add NAME URL --default" in res.stderr


def test_pre_push_reads_gits_ref_lines(pushable, mvc_cli):
    root, bare, store = pushable
    make_file(root / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(root, "commit", "-q", "-m", "v1")
    git(root, "tag", "-a", "-m", "release", "v1")
    head = git(root, "rev-parse", "HEAD").strip()
    tag = git(root, "rev-parse", "v1").strip()
    lines = f"refs/tags/v1 {tag} refs/tags/v1 {ZERO}\n"
    res = subprocess.run(
        [sys.executable, "-m", "mvc", "hook", "pre-push", "origin", str(bare)],
        cwd=root,
        input=lines,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert on_remote(store, oid_of(root, "model.bin"))  # an annotated tag is peeled to its commit
    res = subprocess.run(
        [sys.executable, "-m", "mvc", "hook", "pre-push", "origin", str(bare)],
        cwd=root,
        input=f"refs/heads/main {head} refs/heads/main {head}\n",
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and res.stderr == ""  # the remote has it: nothing to do
    res = subprocess.run(
        [sys.executable, "-m", "mvc", "hook", "pre-push", "origin", str(bare)],
        cwd=root,
        input="garbage\n",
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "unexpected pre-push input line" in res.stderr


def test_clone_pull_and_checkout_fetch_from_the_mvc_remote(pushable, mvc_cli, tmp_path, monkeypatch):
    root, bare, _store = pushable
    make_file(root / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(root, "commit", "-q", "-m", "v1")
    v1 = (root / "model.bin").read_bytes()
    git(root, "push", "-q", "origin", "main")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    monkeypatch.chdir(clone)
    mvc_cli("install-hooks")
    assert not (clone / "model.bin").exists()

    monkeypatch.chdir(root)
    make_file(root / "model.bin", 3000, seed=2)
    make_file(root / "extra" / "x.bin", 300, seed=3)
    mvc_cli("add", "model.bin", "extra")
    git(root, "commit", "-q", "-m", "v2")
    v2 = (root / "model.bin").read_bytes()
    git(root, "push", "-q", "origin", "main")

    res = gitp(clone, "pull", "-q", "--no-rebase", "origin", "main")  # post-merge: fetch and restore
    assert res.returncode == 0, res.stderr
    assert (clone / "model.bin").read_bytes() == v2
    assert (clone / "extra" / "x.bin").read_bytes() == (root / "extra" / "x.bin").read_bytes()
    res = gitp(clone, "checkout", "-q", "HEAD~1")  # post-checkout: v1 is not in the clone's cache yet
    assert res.returncode == 0, res.stderr
    assert (clone / "model.bin").read_bytes() == v1


def test_checkout_reports_weights_the_remote_lacks(pushable, mvc_cli, tmp_path):
    root, bare, store = pushable
    make_file(root / "model.bin", 2000, seed=1)
    mvc_cli("add", "model.bin")
    git(root, "commit", "-q", "-m", "v1")
    git(root, "push", "-q", "--no-verify", "origin", "main")  # the weights never reach the mvc remote
    store.mkdir()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-checkout", str(bare), str(clone))
    git(clone, "checkout", "-q", "main")  # no hooks yet: a plain checkout
    hooksapi.install(repo=Repo(str(clone)))
    git(clone, "checkout", "-q", "-b", "other", "HEAD~1")
    res = gitp(clone, "checkout", "-q", "main")
    assert res.returncode == 0
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("mvc: model.bin: "))
    assert "not on remote store" in line and "push it" in line


def test_install_over_the_pre_commit_frameworks_hooks_says_mvcs_would_run_twice(repo, mvc_cli):
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "pre-commit").write_text("#!/usr/bin/env bash\n# File generated by pre-commit: https://pre-commit.com\n")
    (hooks / "pre-commit").chmod(0o755)
    (repo / ".pre-commit-config.yaml").write_text("repos:\n- repo: x\n  rev: v1\n  hooks:\n  - id: mvc-check\n")
    r = mvc_cli("install-hooks")
    assert "run twice" in r.stderr and "pre-commit" in r.stderr and len(r.stderr.splitlines()) == 1
    (repo / ".pre-commit-config.yaml").write_text("repos:\n- repo: x\n  hooks:\n  - id: mvc-push\n")  # any of them
    mvc_cli("install-hooks", "--uninstall")
    assert "run twice" in mvc_cli("install-hooks").stderr
    (repo / ".pre-commit-config.yaml").write_text("repos: []\n")  # the framework runs no mvc hook: nothing said
    mvc_cli("install-hooks", "--uninstall")
    assert "run twice" not in mvc_cli("install-hooks").stderr
