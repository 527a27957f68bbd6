"""The real `pre-commit` tool running this repo's .pre-commit-hooks.yaml (issue 5).

pre-commit takes hooks from a git repository at a revision, so each test commits a copy of the mvc
source tree into a repo of its own and points a project's .pre-commit-config.yaml at it.

- ``language: system`` (overridden in the project's config) runs the hooks with the ``mvc`` of this
  venv: no install, no network; it checks the manifest's ids, stages and entries end to end.
- ``language: python`` (as published) makes pre-commit build mvc from that repo with pip and install it
  into an environment of its own, whose ``mvc`` console script the hooks then run. To stay offline and
  fast, pip gets no index and no dependencies (PIP_NO_INDEX, PIP_NO_DEPS, no build isolation: virtualenv
  seeds setuptools), and the hooks find click, xxhash, … in this venv through PYTHONPATH; mvc itself is
  the copy pip installed. Resolving the dependencies from PyPI is what `pip install -e .` already does in
  .ci/run; a full online install (about a minute here) was checked by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, git, make_file

MANIFEST = ROOT / ".pre-commit-hooks.yaml"
FIXED = {
    "GIT_AUTHOR_NAME": "mvc",
    "GIT_AUTHOR_EMAIL": "mvc@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "mvc",
    "GIT_COMMITTER_EMAIL": "mvc@example.com",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}


def hooks_repo(dest: Path) -> str:
    """Commit a copy of the mvc source (package, pyproject, hooks manifest) at dest; its commit id,
    the same for the same source (fixed author and dates)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ROOT / "mvc", dest / "mvc", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", ".pre-commit-hooks.yaml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, dest / name)
    if not (dest / "README.md").exists():
        (dest / "README.md").write_text("mvc\n")
    env = dict(os.environ, **FIXED)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "mvc hooks"]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True)
    return git(dest, "rev-parse", "HEAD").strip()


def config(repo_url: str, rev: str, *, system: bool) -> str:
    lang = "\n        language: system" if system else ""
    return f"""\
default_install_hook_types: [pre-commit, pre-push, post-checkout, post-merge]
repos:
  - repo: {repo_url}
    rev: {rev}
    hooks:
      - id: mvc-check{lang}
      - id: mvc-push{lang}
      - id: mvc-checkout{lang}
"""


def pre_commit(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=cwd, env=env, capture_output=True, text=True)


def gitp(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def commit_models(repo: Path, mvc_cli, env: dict[str, str]) -> tuple[bytes, bytes]:
    """model.bin v1 (branch old) and v2 (main), committed through the installed hooks."""
    out = []
    for seed, msg in ((1, "v1"), (2, "v2")):
        make_file(repo / "model.bin", 2000, seed=seed)
        mvc_cli("add", "model.bin")
        res = gitp(repo, "commit", "-q", "-m", msg, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        out.append((repo / "model.bin").read_bytes())
        if msg == "v1":
            git(repo, "branch", "old")
    return out[0], out[1]


def setup_framework(repo: Path, src: Path, env: dict[str, str], *, system: bool) -> None:
    """Point the project at the hooks repo and `pre-commit install`; the config is staged, not committed
    (each run of the pre-commit tool costs about a second here, so the tests make few commits)."""
    rev = hooks_repo(src)
    (repo / ".pre-commit-config.yaml").write_text(config(str(src), rev, system=system))
    git(repo, "add", ".pre-commit-config.yaml", ".mvc/config.toml")
    res = pre_commit(repo, "install-hooks", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    res = pre_commit(repo, "install", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("pre-commit", "pre-push", "post-checkout", "post-merge"):
        assert (repo / ".git" / "hooks" / name).is_file()


def system_env(tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PRE_COMMIT_HOME=str(tmp_path / "pc-home"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )


def test_manifest_is_valid():
    from pre_commit.clientlib import load_manifest

    hooks = {h["id"]: h for h in load_manifest(str(MANIFEST))}
    assert set(hooks) == {"mvc-check", "mvc-push", "mvc-checkout"}
    assert hooks["mvc-check"]["stages"] == ["pre-commit"] and hooks["mvc-check"]["entry"] == "mvc hook pre-commit"
    assert hooks["mvc-push"]["stages"] == ["pre-push"]
    assert hooks["mvc-checkout"]["stages"] == ["post-checkout", "post-merge"]
    assert all(h["language"] == "python" and not h["pass_filenames"] and h["always_run"] for h in hooks.values())


def test_framework_runs_every_hook_with_language_system(repo, mvc_cli, tmp_path):
    env = system_env(tmp_path)
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    store = tmp_path / "store"
    mvc_cli("remote", "add", "store", str(store), "--default")
    setup_framework(repo, tmp_path / "mvc-src", env, system=True)
    v1, v2 = commit_models(repo, mvc_cli, env)

    # pre-commit: a model changed after `mvc add` stops the commit, with mvc's line in pre-commit's report
    make_file(repo / "model.bin", 2000, seed=3)
    res = gitp(repo, "commit", "--allow-empty", "-m", "x", env=env)
    assert res.returncode == 1
    out = res.stdout + res.stderr  # git passes the hook's output through to stderr
    assert "mvc check" in out and "Failed" in out
    assert "mvc: model.bin differs from its staged pointer model.bin.mvc" in out
    mvc_cli("add", "model.bin")
    res = gitp(repo, "commit", "-m", "v3", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    v3 = (repo / "model.bin").read_bytes()

    # pre-push: the framework passes the pushed ref in PRE_COMMIT_* variables, not on stdin
    res = gitp(repo, "push", "origin", "main", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    from mvc.format import pointer

    for rev in ("main", "main~1", "old"):  # every pushed commit's weights
        oid = pointer.loads(git(repo, "show", f"{rev}:model.bin.mvc")).oid
        assert (store / "objects" / oid[7:9] / oid[9:]).is_file()
    store.rename(tmp_path / "away")  # unreachable now; nothing new is pushed: no request, no failure
    store.write_text("x")
    res = gitp(repo, "push", "origin", "main:refs/heads/copy", env=env)
    assert res.returncode == 0, res.stdout + res.stderr

    # post-checkout, then post-merge
    res = gitp(repo, "checkout", "-q", "old", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (repo / "model.bin").read_bytes() == v1
    res = gitp(repo, "checkout", "-q", "-b", "merging", "main~1", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (repo / "model.bin").read_bytes() == v2
    res = gitp(repo, "merge", "-q", "--no-edit", "main", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (repo / "model.bin").read_bytes() == v3


def test_framework_installs_mvc_with_language_python(repo, mvc_cli, tmp_path):
    import sysconfig

    home = tmp_path / "pc-home"
    # pip builds and installs mvc from the hooks repo into pre-commit's own environment, offline: no
    # index, no dependencies, no build isolation (setuptools is seeded into the env by virtualenv)...
    install_env = dict(
        os.environ, PRE_COMMIT_HOME=str(home), PIP_NO_INDEX="1", PIP_NO_DEPS="1", PIP_NO_BUILD_ISOLATION="0"
    )  # pip reads this negative flag's env var inverted
    setup_framework(repo, tmp_path / "mvc-src", install_env, system=False)
    # ...and the hooks find mvc's dependencies in this venv's site-packages, after the env's own
    deps = sysconfig.get_paths()["purelib"]
    env = dict(os.environ, PRE_COMMIT_HOME=str(home), PYTHONPATH=deps)
    (env_python,) = home.glob("repo*/py_env-*/bin/python")
    where = subprocess.run(
        [str(env_python), "-c", "import mvc, click; print(mvc.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(home))  # the copy pip installed from the hooks repo, not this checkout
    assert (env_python.parent / "mvc").is_file()  # the console script the manifest's entries call

    v1, _v2 = commit_models(repo, mvc_cli, env)
    (repo / "weights.pt").write_bytes(b"\0" * 10)
    git(repo, "add", "weights.pt")
    res = gitp(repo, "commit", "-m", "oops", env=env)
    assert res.returncode == 1
    assert "mvc: weights.pt is a weights file (.pt) staged into git itself" in res.stdout + res.stderr
    git(repo, "rm", "-q", "--cached", "weights.pt")
    res = gitp(repo, "checkout", "-q", "old", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (repo / "model.bin").read_bytes() == v1
