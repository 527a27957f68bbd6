"""`mvc init` (repository set-up) and `mvc config` (get, set, --local, --unset, secrets)."""

from __future__ import annotations

import sys

import pytest
from conftest import git, make_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def ignored(root, path) -> bool:
    """Whether git ignores path (exit 0 of check-ignore means ignored)."""
    import subprocess

    return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=root).returncode == 0


# -- init ---------------------------------------------------------------------------------------
def test_init_creates_config_and_stages_it(gitrepo, mvc_cli):
    out = mvc_cli("init").stdout
    assert out == f"Initialized mvc in {gitrepo}\n"
    assert tomllib.loads((gitrepo / ".mvc" / "config.toml").read_text()) == {"cache": {"type": ["reflink", "copy"]}}
    staged = git(gitrepo, "diff", "--cached", "--name-only").split()
    assert staged == [".mvc/.gitignore", ".mvc/config.toml"]
    git(gitrepo, "commit", "-q", "-m", "mvc init")
    assert git(gitrepo, "ls-files").split() == [".mvc/.gitignore", ".mvc/config.toml"]
    assert git(gitrepo, "status", "--porcelain") == ""


def test_init_is_idempotent(gitrepo, mvc_cli):
    mvc_cli("init")
    git(gitrepo, "commit", "-q", "-m", "init")
    mvc_cli("config", "cache.type", "hardlink,copy")
    git(gitrepo, "commit", "-q", "-am", "hardlink")
    make_file(gitrepo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    before = {p: p.read_bytes() for p in (gitrepo / ".mvc").iterdir() if p.is_file()}
    out = mvc_cli("init").stdout
    assert out == f"mvc is already set up in {gitrepo}\n"
    assert {p: p.read_bytes() for p in (gitrepo / ".mvc").iterdir() if p.is_file()} == before
    assert git(gitrepo, "diff", "--cached", "--name-only").split() == [".gitignore", "m.bin.mvc"]
    assert mvc_cli("status").stdout == "m.bin: up to date\n"


def test_init_from_a_subfolder_sets_up_the_top(gitrepo, mvc_cli, monkeypatch):
    sub = gitrepo / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    mvc_cli("init")
    assert (gitrepo / ".mvc" / "config.toml").is_file()
    assert not (sub / ".mvc").exists()
    # and the other commands find it from the subfolder too
    make_file(sub / "m.bin", 10)
    mvc_cli("add", "m.bin")
    assert (sub / "m.bin.mvc").is_file()
    assert mvc_cli("ls", "--json").stdout.count('"a/b/m.bin"') == 1


def test_init_no_stage(gitrepo, mvc_cli):
    mvc_cli("init", "--no-stage")
    assert (gitrepo / ".mvc" / "config.toml").is_file()
    assert git(gitrepo, "diff", "--cached", "--name-only") == ""


def test_mvc_gitignore_keeps_local_state_out_of_git(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")  # creates the cache and state.db
    mvc_cli("config", "cache.type", "copy", "--local")
    mvc_dir = repo / ".mvc"
    assert (mvc_dir / "cache" / "objects").is_dir() and (mvc_dir / "state.db").is_file()
    for path in (
        ".mvc/cache",
        ".mvc/cache/objects/ab/cdef",
        ".mvc/state.db",
        ".mvc/config.local.toml",
        ".mvc/cache/tmp/x.tmp",
    ):
        assert ignored(repo, path), path
    for path in (".mvc/config.toml", ".mvc/.gitignore"):
        assert not ignored(repo, path), path
    # what git would commit from .mvc/: only the shared config and the ignore file
    git(repo, "add", "-A", ".mvc")
    assert git(repo, "ls-files", ".mvc").split() == [".mvc/.gitignore", ".mvc/config.toml"]


def test_init_outside_git_is_refused(tmp_path, monkeypatch, mvc_error):
    monkeypatch.chdir(tmp_path)
    mvc_error("init", words=("not inside a git repository", "git init"))
    assert not (tmp_path / ".mvc").exists()


# -- config -------------------------------------------------------------------------------------
def test_config_defaults(repo, mvc_cli):
    assert mvc_cli("config", "cache.type").stdout == "reflink,copy\n"
    assert mvc_cli("config", "cache.dir").stdout == "cache\n"
    assert mvc_cli("config", "core.fsync").stdout == "false\n"


def test_config_set_writes_the_committed_file(repo, mvc_cli):
    mvc_cli("config", "cache.type", "hardlink, copy")
    mvc_cli("config", "core.fsync", "TRUE")
    data = tomllib.loads((repo / ".mvc" / "config.toml").read_text())
    assert data["cache"]["type"] == ["hardlink", "copy"] and data["core"]["fsync"] is True
    assert mvc_cli("config", "cache.type").stdout == "hardlink,copy\n"
    assert mvc_cli("config", "core.fsync").stdout == "true\n"
    assert not (repo / ".mvc" / "config.local.toml").exists()
    assert git(repo, "status", "--porcelain").split() == ["M", ".mvc/config.toml"]


def test_config_local_overrides_and_unset(repo, mvc_cli):
    mvc_cli("config", "cache.type", "hardlink,copy")
    mvc_cli("config", "cache.type", "symlink", "--local")
    assert mvc_cli("config", "cache.type").stdout == "symlink\n"
    assert tomllib.loads((repo / ".mvc" / "config.local.toml").read_text()) == {"cache": {"type": ["symlink"]}}
    mvc_cli("config", "cache.type", "--unset", "--local")
    assert mvc_cli("config", "cache.type").stdout == "hardlink,copy\n"
    mvc_cli("config", "cache.type", "--unset")
    assert mvc_cli("config", "cache.type").stdout == "reflink,copy\n"  # back to the default


def test_cache_dir_is_used_and_can_be_shared(repo, tmp_path, mvc_cli, monkeypatch):
    shared = tmp_path / "shared-cache"
    mvc_cli("config", "cache.dir", str(shared), "--local")
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    assert len(list((shared / "objects").glob("*/*"))) == 1
    assert not (repo / ".mvc" / "cache").exists()
    # a clone using the same cache restores the file without having added it
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    monkeypatch.chdir(other)
    mvc_cli("config", "cache.dir", str(shared), "--local")
    assert mvc_cli("status").stdout == "m.bin: missing from workspace\n"
    mvc_cli("checkout")
    assert (other / "m.bin").read_bytes() == (repo / "m.bin").read_bytes()


def test_relative_cache_dir_is_relative_to_mvc_dir(repo, mvc_cli):
    mvc_cli("config", "cache.dir", "../../elsewhere", "--local")
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    assert (repo.parent / "elsewhere" / "objects").is_dir()


@pytest.mark.parametrize(
    "key",
    [
        "remote.origin.secret_access_key",
        "remote.s3.password",
        "remote.x.token",
        "remote.x.access_key_id",
        "remote.x.API_KEY",
    ],
)
def test_secret_like_key_refused_in_committed_file(repo, mvc_cli, mvc_error, key):
    config = repo / ".mvc" / "config.toml"
    before = config.read_bytes()
    mvc_error("config", key, "hunter2", words=("secret", "--local"))
    assert config.read_bytes() == before
    mvc_cli("config", key, "hunter2", "--local")
    assert mvc_cli("config", key).stdout == "hunter2\n"
    assert b"hunter2" not in config.read_bytes()
    assert b"hunter2" in (repo / ".mvc" / "config.local.toml").read_bytes()


@pytest.mark.parametrize(
    "args, words",
    [
        (("cache.type", "foo"), ("cache.type", "reflink")),
        (("cache.type", ","), ("cache.type",)),
        (("cache.dir", ""), ("cache.dir",)),
        (("core.fsync", "maybe"), ("true or false",)),
        (("nope.x", "1"), ("unknown config key", "cache.type")),
        (("cache.type", "copy", "--unset"), ("--unset",)),
        (("remote.x.url",), ("not set", "mvc config remote.x.url VALUE")),
    ],
)
def test_bad_config_is_refused_and_not_written(repo, mvc_cli, mvc_error, args, words):
    config = repo / ".mvc" / "config.toml"
    before = config.read_bytes()
    mvc_error("config", *args, words=words)
    mvc_error("config", *args, "--local", words=words[:1])
    assert config.read_bytes() == before
    assert not (repo / ".mvc" / "config.local.toml").exists()
    assert mvc_cli("config", "cache.type").stdout == "reflink,copy\n"  # the repo still works


def test_garbage_config_file_is_one_clear_line(repo, mvc_error):
    (repo / ".mvc" / "config.toml").write_text("[cache\n")
    mvc_error("status", words=("config.toml", "not valid TOML", "fix"))


def test_hooks_and_default_remote_keys_can_be_set(repo, mvc_cli):
    mvc_cli("config", "hooks.max_size", "20MB")
    mvc_cli("config", "hooks.extensions", ".pt,.onnx")
    assert mvc_cli("config", "hooks.extensions").output.strip() == ".pt,.onnx"
    from mvc.format.config import read

    data = read(str(repo / ".mvc" / "config.toml"))
    assert data["hooks"] == {"max_size": "20MB", "extensions": [".pt", ".onnx"]}
