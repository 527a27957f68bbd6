"""What the read side says when it cannot do what was asked (QA of the read side, items 6 and 7): objects missing
from a remote are named by the paths they belong to, every path left out is counted, and each fix offered is one
that can be run where the user is (no clone: no 'mvc remote list', no remote NAME the revision lacks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git, make_file


# -- objects missing on the remote: the paths, every one ------------------------------------------------------
@pytest.fixture
def pushed(repo, mvc_cli, tmp_path):
    """big.bin (8 MiB, chunked; two versions, the second a few bytes changed), the directory d and small.bin,
    pushed to the directory remote store; returns the remote's directory."""
    store = tmp_path / "store"
    mvc_cli("remote", "add", "store", str(store), "--default")
    make_file(repo / "big.bin", 8 << 20, seed=1)
    make_file(repo / "d" / "x", 1000, seed=2)
    make_file(repo / "small.bin", 1000, seed=3)
    mvc_cli("add", "big.bin", "d", "small.bin")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    mvc_cli("push")
    with open(repo / "big.bin", "r+b") as f:
        f.seek(100)
        f.write(b"XXXX")
    mvc_cli("add", "big.bin")
    git(repo, "commit", "-q", "-m", "v2")
    mvc_cli("push")
    return store


def clone_of(repo: Path, tmp_path: Path, monkeypatch) -> Path:
    """A fresh clone of repo (an empty cache, no journal), as the current directory."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    return clone


def test_pull_and_fetch_name_every_path_left_out_when_chunks_and_objects_are_gone(
    repo, pushed, mvc_error, tmp_path, monkeypatch
):
    """The QA reproduction: every pack (the chunks of big.bin) and every lone object (d's manifest, its file,
    small.bin) deleted by hand. The error named an oid and none of the three paths."""
    for f in [*(pushed / "packs").glob("*.pack"), *(pushed / "objects").glob("*/*")]:
        f.unlink()
    clone = clone_of(repo, tmp_path, monkeypatch)
    for cmd in ("pull", "fetch"):
        line = mvc_error(
            cmd, words=("big.bin (and 2 more paths: d, small.bin) could not be fetched", "which is not there", "push")
        )
        assert line.index("big.bin") < line.index("xxh128:"), line  # the path first, the oid only after
    assert not (clone / "big.bin").exists() and not (clone / "d").exists() and not (clone / "small.bin").exists()
    mvc_error("fetch", "--rev", "v1", words=("big.bin at v1 (and 2 more paths: d at v1, small.bin at v1)",))


def test_pull_counts_the_paths_it_restored_apart_from_those_it_could_not(
    repo, pushed, mvc_error, tmp_path, monkeypatch
):
    """Only d's manifest and small.bin gone: big.bin is restored, and the error names both other paths (the
    count of "other paths restored" took a directory whose manifest was missing for one restored)."""
    for f in (pushed / "objects").glob("*/*"):
        f.unlink()
    clone = clone_of(repo, tmp_path, monkeypatch)
    line = mvc_error(
        "pull",
        words=("(and 1 more path: small.bin) are not on remote store", "1 other path fetched whole was restored"),
    )
    assert line.startswith("error: the manifest of directory d "), line
    assert (clone / "big.bin").read_bytes() == (repo / "big.bin").read_bytes()
    assert not (clone / "d").exists() and not (clone / "small.bin").exists()


def test_objects_of_one_path_are_counted_as_objects(repo, mvc_cli, mvc_error, tmp_path, monkeypatch):
    """Every object missing belongs to one directory: no other path to list, the objects are counted. What it
    guards is fetch_wanted's fallback to a count of objects when not_fetched names no other path (without it the
    line says one file 'is' missing), and not_fetched leaving the first path out of the others (else '(and 1 more
    path: d)'): breaking either fails it, though the message before not_fetched counted the objects too."""
    store = tmp_path / "store"
    mvc_cli("remote", "add", "store", str(store), "--default")
    for i in range(3):
        make_file(repo / "d" / f"f{i}", 5000 + i, seed=i)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "d")
    mvc_cli("push")
    manifest = min((store / "objects").glob("*/*"), key=lambda p: p.stat().st_size)  # the smallest: the manifest
    for f in (store / "objects").glob("*/*"):
        if f != manifest:
            f.unlink()
    clone_of(repo, tmp_path, monkeypatch)
    line = mvc_error("fetch", words=("of directory d (and 2 more objects) are not on remote store",))
    assert line.startswith("error: d/f") and "more path" not in line, line  # a file of d first, d not again


# -- reading by URL with no clone: fixes that can be run there ------------------------------------------------
@pytest.fixture
def registered(repo, mvc_cli, tmp_path):
    """churn.bin named churn and registered as churn@v1.0.0 before any remote was added (the README's order), then
    the remote "store" (../store, relative) added and pushed to; returns a bare clone holding the tags."""
    make_file(repo / "churn.bin", 1000, seed=1)
    make_file(repo / "d" / "x", 500, seed=2)
    mvc_cli("add", "churn.bin", "--name", "churn")
    mvc_cli("add", "d")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model")
    mvc_cli("register", "churn", "v1.0.0")
    mvc_cli("remote", "add", "store", "../store")
    git(repo, "commit", "-q", "-am", "remote")
    mvc_cli("push")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    git(repo, "push", "-q", "--tags", str(bare))
    return bare


def test_a_version_whose_config_has_no_remote_offers_a_url_and_names_heads_remotes(
    registered, mvc_cli, mvc_error, tmp_path
):
    """A name is looked up in the version's own config, which has none: only --remote URL is offered, with the
    remote HEAD's config has as the likely URL (a path relative to the repository, made absolute)."""
    out, url = str(tmp_path / "out"), str(registered)
    store = str(tmp_path / "store")  # ../store, relative to the bare repository as to the clone
    line = mvc_error("get", "--repo", url, "churn@v1.0.0", "-o", out, words=("has no mvc remote at churn@v1.0.0",))
    assert "NAME" not in line and "pass --remote URL" in line, line
    assert f"HEAD's config has: store (--remote {store})" in line, line
    line = mvc_error("get", "--repo", url, "churn@v1.0.0", "--remote", "store", "-o", out, words=("no remote 'store'",))
    assert f"store (--remote {store})" in line, line
    mvc_cli("get", "--repo", url, "churn@v1.0.0", "--remote", store, "-o", out)  # the fix works
    assert (tmp_path / "out").read_bytes() == (tmp_path / "repo" / "churn.bin").read_bytes()


def test_a_relative_remote_that_resolves_nowhere_says_pass_remote_not_remote_list(
    registered, mvc_cli, mvc_error, tmp_path
):
    deep = tmp_path / "deep" / "x" / "o.git"
    git(tmp_path, "clone", "-q", "--bare", str(registered), str(deep))  # ../store from there: deep/x/store
    line = mvc_error(
        "get",
        "--repo",
        str(deep),
        "churn.bin",
        "-o",
        str(tmp_path / "out"),
        words=(f"remote directory {tmp_path / 'deep' / 'x' / 'store'} does not exist", "'../store'", "--remote URL"),
    )
    assert "mvc remote" not in line, line
    mvc_cli("get", "--repo", str(deep), "churn.bin", "-o", str(tmp_path / "out"), "--remote", str(tmp_path / "store"))


def test_a_manifest_missing_on_the_remote_says_push_it(registered, mvc_error, tmp_path):
    """A directory whose manifest a remote lacks, read by URL: the message says what to do, as the others do."""
    from mvc.format.pointer import loads
    from mvc.objects.layout import object_rel

    moid = loads((tmp_path / "repo" / "d.mvc").read_bytes(), "d.mvc").oid
    (tmp_path / "store" / object_rel(moid)).unlink()
    for cache in ((), ("--cache",)):
        mvc_error(
            "get",
            "--repo",
            str(registered),
            "d",
            "-o",
            str(tmp_path / "out"),
            *cache,
            words=("the manifest of directory d", "is not on remote store", "push it from where it exists"),
        )
    assert not (tmp_path / "out").exists()


def test_a_model_name_given_as_a_path_says_how_to_name_a_version(registered, mvc_error, tmp_path):
    url = str(registered)
    line = mvc_error("get", "--repo", url, "churn", "-o", str(tmp_path / "out"), words=("churn is not tracked",))
    assert "churn is a model: use churn@latest or churn#STAGE" in line, line
    assert f"'mvc registry churn --repo {url}'" in line, line
    line = mvc_error("get", "--repo", url, "nothing", "-o", str(tmp_path / "out"), words=("nothing is not tracked",))
    assert "is a model" not in line and f"'mvc ls --repo {url}'" in line, line


def test_a_model_name_given_as_a_path_here_says_how_to_name_a_version(registered, repo, mvc_error, tmp_path):
    """In the clone too (docs/cli.md, "mvc get"): a model's name alone is told to name one of its versions, by
    mvc get and by the Python readers; a file of that name here is a path as ever."""
    import mvc

    out = str(tmp_path / "out")
    line = mvc_error("get", "churn", "-o", out, words=("churn is not tracked",))
    assert "churn is a model: use churn@latest or churn#STAGE" in line and "'mvc registry churn'" in line, line
    with pytest.raises(mvc.errors.PathError, match="churn is a model"):
        mvc.read_bytes("churn")
    line = mvc_error("get", "nothing", "-o", out, words=("nothing is not tracked",))
    assert "is a model" not in line, line
    (repo / "churn").write_bytes(b"mine")
    line = mvc_error("get", "churn", "-o", out, words=("churn is not tracked",))
    assert "is a model" not in line and "'mvc add churn'" in line, line


def test_a_model_name_given_to_checkout_or_status_says_how_to_name_it(registered, repo, mvc_error):
    """mvc checkout churn and mvc status churn (a registered model's name where a path goes) say that churn is a
    model, as mvc get does, not that it does not exist: checkout names a version to give (docs/cli.md), status,
    which takes paths alone, the model's path."""
    for args in (("checkout", "churn"), ("status", "churn")):
        line = mvc_error(*args, words=("churn is not tracked", "churn is a model", "'mvc registry churn'"))
        assert "does not exist" not in line, line
    mvc_error("checkout", "churn", words=("use churn@latest or churn#STAGE ('mvc checkout churn@latest'",))
    mvc_error("status", "churn", words=("its path is churn.bin: 'mvc status churn.bin'",))
    for args in (("checkout", "nothing"), ("status", "nothing")):
        line = mvc_error(*args, words=("nothing is not tracked",))
        assert "is a model" not in line, line


def test_a_suggested_command_reading_by_url_pastes_into_a_shell(registered, mvc_error, tmp_path):
    """A URL (here a path) with a space, or a quote, is shell-quoted in the commands the errors suggest: each one,
    pasted into a shell as it is printed, runs."""
    import re
    import shutil
    import subprocess
    import sys

    out, at = str(tmp_path / "out"), registered
    for name in ("team models.git", "the team's models.git"):
        odd = tmp_path / name
        at = shutil.move(at, odd)
        lines = [
            mvc_error("get", "--repo", str(odd), "churn", "-o", out, words=("is a model",)),
            mvc_error("get", "--repo", str(odd), "nothing", "-o", out, words=("not tracked",)),
            mvc_error("get", "--repo", str(odd), "nothing", "--rev", "HEAD", "-o", out, words=("not tracked",)),
            mvc_error("get", "--repo", str(odd), "churn@v9", "-o", out, words=("no version or stage",)),
            mvc_error("get", "--repo", str(odd), "churn@v7.0.0", "-o", out, words=("has no version",)),
            mvc_error("registry", "fraud", "--repo", str(odd), words=("no model named",)),
        ]
        for line in lines:
            # set off in double quotes, or in backquotes where it holds a quote of each kind
            commands = re.findall(r'"(mvc [^"]*--repo[^"]*)"|`(mvc [^`]*--repo[^`]*)`', line)
            assert commands, line
            for command in ("".join(c) for c in commands):
                shell = f'mvc() {{ "{sys.executable}" -m mvc "$@"; }}; {command}'
                r = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, cwd=tmp_path)
                assert r.returncode == 0, (command, r.stderr)
