"""Rough edges a new user hit: a closed pipe, ``-C`` and output paths, remote commands that did not stage
their config, checkouts of a revision that staged pointers without a word, missing-object errors that
named an oid and a fix that did not apply, the registry's empty and single-model views and ``-q``, and
``mvc add`` calling a refilled cache "unchanged"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import git, make_file

import mvc
from mvc.objects import manifest as mf
from mvc.repo.selection import load_pointer


def staged(repo: Path) -> list[str]:
    return git(repo, "diff", "--cached", "--name-only").split()


def drop_object(repo: Path, path: str) -> str:
    """Delete from the cache the object of a tracked file (or of a directory's file, 'dir/sub'); its oid."""
    r = mvc.Repo(str(repo))
    top = next(t for t in (path, os.path.dirname(path)) if (repo / (t + ".mvc")).exists())
    p = load_pointer(r, top + ".mvc")
    oid = p.oid
    if p.kind == "dir":
        sub = path[len(top) + 1 :]
        oid = next(e.oid for e in mf.loads(r.odb.read_bytes(p.oid), p.oid) if e.path == sub)
    obj = Path(r.odb.path(oid))
    obj.chmod(0o644)
    obj.unlink()
    return oid


# -- 1. a closed pipe ends the output quietly -------------------------------------------------------------
def test_a_closed_pipe_ends_the_output_quietly_with_141(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    # one line of the log longer than a pipe holds: the write is still going when the reader leaves
    mvc_cli("add", "m.bin", "--meta", "note=" + "x" * 4_000_000)  # far past a pipe's 64 KiB, even a loaded one
    git(repo, "commit", "-q", "-m", "big meta")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvc", "log", "m.bin"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read()
    assert proc.wait() == 141
    assert first.startswith(b"commit ")
    assert err == b"", err  # no "error: Broken pipe", no traceback, no "Exception ignored"

    # --help prints before any command runs: a reader gone from the start ends it the same way
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mvc", "--help"], stdout=w, stderr=subprocess.PIPE)
    finally:
        os.close(w)
    _, err = proc.communicate()
    assert (proc.returncode, err) == (141, b"")


# -- 2. -C: tracked paths are the repository's, output paths the user's ----------------------------------
def test_dash_c_keeps_output_paths_where_the_command_was_typed(repo, mvc_cli, tmp_path, monkeypatch):
    make_file(repo / "models" / "m.bin", 100, seed=1)
    mvc_cli("add", "models/m.bin")
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    out = mvc_cli("-C", str(repo), "get", "models/m.bin", "-o", "m-copy.bin").stdout
    assert (here / "m-copy.bin").read_bytes() == (repo / "models" / "m.bin").read_bytes()
    assert not (repo / "m-copy.bin").exists() and str(here / "m-copy.bin") in out

    # a relative directory given as a remote's URL is the user's too; it is stored relative to the root
    (here / "store").mkdir()
    monkeypatch.chdir(here)
    mvc_cli("-C", str(repo), "remote", "add", "nas", "store")
    assert mvc.Repo(str(repo)).config.get("remote.nas.url") == os.path.relpath(here / "store", repo)


# -- 3. mvc remote stages .mvc/config.toml as init and add stage theirs ----------------------------------
def test_remote_commands_stage_the_shared_config(repo, mvc_cli, tmp_path):
    out = mvc_cli("remote", "add", "origin", str(tmp_path / "store")).stdout
    assert "staged; commit it" in out
    assert staged(repo) == [".mvc/config.toml"]
    git(repo, "commit", "-q", "-m", "remote")
    for args in (
        ("remote", "default", "--unset"),  # the first remote was made the default by name
        ("remote", "default", "origin"),
        ("remote", "modify", "origin", "jobs", "3"),
        ("remote", "remove", "origin"),
    ):
        assert "(.mvc/config.toml staged)" in mvc_cli(*args).stdout
        assert staged(repo) == [".mvc/config.toml"], args
        git(repo, "commit", "-q", "-m", " ".join(args))

    # --local writes the git-ignored file: nothing to stage; --no-stage leaves the index alone
    mvc_cli("remote", "add", "mine", str(tmp_path / "mine"), "--local")
    assert staged(repo) == []
    out = mvc_cli("remote", "add", "backup", str(tmp_path / "b"), "--no-stage").stdout
    assert "staged" not in out and "commit it" in out
    assert staged(repo) == [] and git(repo, "diff", "--name-only").split() == [".mvc/config.toml"]


# -- 4. a checkout of a revision says what it staged ------------------------------------------------------
def test_checkout_of_a_revision_says_what_it_staged_and_how_to_undo_it(repo, mvc_cli):
    make_file(repo / "model.pt", 1000, seed=1)
    mvc_cli("add", "model.pt", "--name", "churn")
    git(repo, "commit", "-q", "-m", "v1")
    mvc_cli("assign", "churn", "prod", "-q")
    make_file(repo / "model.pt", 1200, seed=2)
    mvc_cli("add", "model.pt")
    git(repo, "commit", "-q", "-m", "v2")
    v2 = (repo / "model.pt").read_bytes()

    out = mvc_cli("checkout", "churn#prod").stdout
    assert "staged model.pt.mvc as of churn#prod: 'mvc checkout --rev HEAD model.pt' undoes it" in out
    assert staged(repo) == ["model.pt.mvc"]
    out = mvc_cli("checkout", "--rev", "HEAD", "model.pt").stdout  # the undo it names
    assert "staged model.pt.mvc as of HEAD (as committed in HEAD)" in out
    assert staged(repo) == [] and (repo / "model.pt").read_bytes() == v2
    assert "staged" not in mvc_cli("checkout", "--rev", "HEAD", "model.pt").stdout  # nothing changed

    # a pointer HEAD does not have: unstaging it is the undo
    make_file(repo / "old.bin", 10, seed=3)
    mvc_cli("add", "old.bin")
    git(repo, "commit", "-q", "-m", "old")
    git(repo, "tag", "with-old")
    mvc_cli("remove", "old.bin")
    git(repo, "commit", "-q", "-m", "no old")
    out = mvc_cli("checkout", "--rev", "with-old", "old.bin").stdout
    assert "staged old.bin.mvc as of with-old: 'git rm --cached old.bin.mvc' unstages it" in out


def test_checkout_of_a_git_revision_as_git_takes_one_says_how_mvc_takes_it(repo, mvc_cli, mvc_error):
    """``mvc checkout HEAD~1`` (as ``git checkout HEAD~1``) said "HEAD~1 is not tracked by mvc: run 'mvc add
    HEAD~1' first"; it now names --rev. A file of that name in the work tree stays a path."""
    make_file(repo / "model.pt", 1000, seed=1)
    mvc_cli("add", "model.pt")
    git(repo, "commit", "-q", "-m", "v1")
    make_file(repo / "model.pt", 1200, seed=2)
    mvc_cli("add", "model.pt")
    git(repo, "commit", "-q", "-m", "v2")
    mvc_error("checkout", "HEAD~1", words=("HEAD~1 is a git revision", "\"mvc checkout --rev 'HEAD~1'\""))
    git(repo, "branch", "v1", "HEAD~1")
    mvc_error("checkout", "v1", words=("v1 is a git revision", "'mvc checkout PATH --rev v1'"))
    make_file(repo / "v1", 10)  # a file, untracked: the old advice applies
    mvc_error("checkout", "v1", words=("v1 is not tracked by mvc", "mvc add v1"))
    mvc_error("checkout", "nothing-here", words=("nothing-here is not tracked by mvc",))
    mvc_cli("checkout", "--rev", "HEAD~1")  # what it says to run
    assert (repo / "model.pt").stat().st_size == 1000


# -- 5. a missing object is named by its path, with a fix that applies ------------------------------------
def test_missing_object_without_a_remote_names_the_path_and_says_add_a_remote(repo, mvc_cli, mvc_error):
    make_file(repo / "models" / "churn.pt", 100, seed=1)
    make_file(repo / "data" / "tokenizer" / "vocab.json", 50, seed=2)
    make_file(repo / "data" / "tokenizer" / "merges.txt", 60, seed=3)
    mvc_cli("add", "models/churn.pt", "data/tokenizer")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    drop_object(repo, "models/churn.pt")
    (repo / "models" / "churn.pt").unlink()
    line = mvc_error(
        "checkout",
        "models/churn.pt",
        words=("models/churn.pt", "mvc remote add NAME URL --default", "mvc add models/churn.pt"),
    )
    assert "mvc fetch" not in line
    mvc_error(
        "get", "models/churn.pt", "--rev", "v1", "-o", "out.pt", words=("models/churn.pt at v1", "mvc remote add")
    )

    drop_object(repo, "data/tokenizer/vocab.json")
    (repo / "data" / "tokenizer" / "vocab.json").unlink()
    mvc_error(
        "checkout",
        "data/tokenizer",
        words=("data/tokenizer/vocab.json of directory data/tokenizer", "mvc add data/tokenizer", "mvc remote add"),
    )

    # the pre-commit hook, for a new pointer whose weights are gone
    make_file(repo / "new.bin", 10, seed=4)
    mvc_cli("add", "new.bin")
    drop_object(repo, "new.bin")
    res = mvc_cli("hook", "pre-commit", ok=False)
    assert res.exit_code == 1
    for word in ("new.bin.mvc names weights", "'mvc add new.bin' with the file in place", "mvc remote add NAME URL"):
        assert word in res.stderr, res.stderr
    assert "if they are on a remote" not in res.stderr

    # remotes, none the default: make the one that holds it the default
    mvc_cli("remote", "add", "a", "../a", "--no-stage")  # the first: the default by name
    mvc_cli("remote", "add", "b", "../b", "--no-stage")
    mvc_cli("remote", "default", "--unset", "--no-stage")
    mvc_error("checkout", "models/churn.pt", words=("models/churn.pt", "mvc remote default NAME", "remotes: a, b"))


def test_missing_object_with_a_remote_names_the_path_and_says_push_it(repo, mvc_cli, mvc_error, tmp_path):
    (tmp_path / "store").mkdir()
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    make_file(repo / "models" / "churn.pt", 100, seed=1)
    make_file(repo / "data" / "tokenizer" / "vocab.json", 50, seed=2)
    mvc_cli("add", "models/churn.pt", "data/tokenizer")
    git(repo, "commit", "-q", "-m", "v1")
    drop_object(repo, "models/churn.pt")
    (repo / "models" / "churn.pt").unlink()
    for args in (("checkout",), ("fetch",), ("pull",)):
        line = mvc_error(*args, words=("models/churn.pt is not on remote origin", "push it from where it exists"))
        assert "churn.pt.mvc" not in line
    drop_object(repo, "data/tokenizer/vocab.json")
    (repo / "data" / "tokenizer" / "vocab.json").unlink()
    mvc_error(
        "checkout", "data/tokenizer", words=("data/tokenizer/vocab.json of directory data/tokenizer", "not on remote")
    )
    mvc_error("push", "models", words=("models/churn.pt", "could not be pushed to origin", "mvc add models/churn.pt"))


# -- 6. the registry: all deprecated, one model, -q ------------------------------------------------------
def test_registry_says_when_every_model_is_deprecated_and_shows_one_model(repo, mvc_cli, mvc_error):
    assert "no registered models yet" in mvc_cli("registry").stdout
    make_file(repo / "models" / "churn.pt", 100, seed=1)
    mvc_cli("add", "models/churn.pt", "--name", "churn")
    git(repo, "commit", "-q", "-m", "v1")
    assert mvc_cli("register", "churn", "-q").stdout == ""  # -q: not even the result lines
    assert mvc_cli("assign", "churn", "prod", "-q").stdout == ""
    make_file(repo / "models" / "churn.pt", 120, seed=2)
    mvc_cli("add", "models/churn.pt")
    git(repo, "commit", "-q", "-m", "v2")
    mvc_cli("register", "churn", "-q")
    mvc_cli("assign", "churn", "dev", "-q")
    assert "churn@v0.0.2" in git(repo, "tag").split()

    lines = mvc_cli("registry", "churn").stdout.splitlines()
    assert lines[0] == "model churn (models/churn.pt), latest v0.0.2"
    assert lines[1].split() == ["version", "commit", "date", "stages"]
    assert lines[2].split()[0] == "v0.0.2" and lines[2].split()[-1] == "#dev"
    assert lines[3].split()[0] == "v0.0.1" and lines[3].split()[-1] == "#prod"
    m = json.loads(mvc_cli("registry", "churn", "--json").stdout)
    assert m.pop("metric_keys") == [] and all(v.pop("metrics") == {} for v in m["versions"])  # none recorded
    assert m == json.loads(mvc_cli("registry", "--json").stdout)[0]
    assert [v["version"] for v in m["versions"]] == ["v0.0.2", "v0.0.1"]
    mvc_error("registry", "nope", words=("no model named 'nope'", "models: churn", "mvc registry"))

    assert mvc_cli("deprecate", "churn", "v0.0.1", "-q").stdout == ""
    assert "deregistered" in mvc_cli("registry", "churn").stdout
    mvc_cli("deprecate", "churn", "-q")
    assert mvc_cli("registry").stdout == (
        "no active models: 1 model is deprecated ('mvc registry --deprecated' shows them)\n"
    )
    assert "deprecated" in mvc_cli("registry", "churn").stdout.splitlines()[0]
    assert "Print nothing on success" in mvc_cli("register", "--help").stdout


# -- 7. mvc add says when it filled the cache ------------------------------------------------------------
def test_add_after_cache_dir_changed_says_it_stored_the_content(repo, mvc_cli, tmp_path):
    make_file(repo / "m.bin", 100, seed=1)
    make_file(repo / "d" / "a.bin", 10, seed=2)
    mvc_cli("add", "m.bin", "d")
    mvc_cli("config", "cache.dir", str(tmp_path / "other"), "--local")
    out = mvc_cli("add", "m.bin", "d").stdout.splitlines()
    assert out[0].startswith("stored m.bin in the cache, pointer unchanged (100 B, ")
    assert out[1].startswith("stored d in the cache, pointer unchanged (1 file, 10 B, ")
    assert mvc_cli("status").stdout == "d: up to date\nm.bin: up to date\n"
    out = mvc_cli("add", "m.bin", "d").stdout.splitlines()
    assert out[0].startswith("unchanged m.bin") and out[1].startswith("unchanged d")

    # the state cache gone too: the files are hashed again, and still told apart from an unchanged add
    (repo / ".mvc" / "state.db").unlink()
    mvc_cli("config", "cache.dir", str(tmp_path / "third"), "--local")
    out = mvc_cli("add", "m.bin", "d").stdout.splitlines()
    assert out[0].startswith("stored m.bin") and out[1].startswith("stored d")
    (repo / ".mvc" / "state.db").unlink()
    out = mvc_cli("add", "m.bin", "d").stdout.splitlines()
    assert out[0].startswith("unchanged m.bin") and out[1].startswith("unchanged d")
