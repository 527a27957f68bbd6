"""Where a remote is, and what is said when it is not there: a relative URL means the same place from every
worktree of a repository; a directory remote this repository pushed to before that is gone (a share not
mounted) is refused, never made again; a bucket gone, or a response cut off, is said in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import git, make_file

import mvc


def test_a_linked_worktree_pushes_where_the_main_work_tree_does(repo: Path, mvc_cli, tmp_path, monkeypatch):
    store = repo.parent / "store"
    make_file(repo / "m.bin", 100, seed=1)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", "../store", "--default")  # relative: stored relative to the root
    git(repo, "commit", "-q", "-m", "m")
    mvc_cli("push")
    wt = tmp_path / "deeper" / "wt"
    git(repo, "worktree", "add", "-q", "-b", "exp", str(wt))
    monkeypatch.chdir(wt)
    make_file(wt / "m.bin", 100, seed=2)
    mvc_cli("add", "m.bin")
    git(wt, "commit", "-q", "-m", "exp")
    assert "pushed 1 object" in mvc_cli("push").stdout
    assert not (wt.parent / "store").exists() and not (tmp_path / "deeper" / "store").exists()
    assert len(list((store / "objects").glob("*/*"))) == 2  # both versions where the main work tree pushes
    mvc_cli("remote", "add", "second", "../../second")  # typed in the worktree, meant from where it is typed
    mvc_cli("push", "-r", "second")
    assert (tmp_path / "second" / "objects").is_dir()


def test_a_directory_remote_pushed_to_before_and_now_gone_is_refused(repo: Path, mvc_cli, mvc_error, tmp_path):
    store = tmp_path / "nas" / "models"
    make_file(repo / "a.bin", 100, seed=1)
    mvc_cli("add", "a.bin")
    mvc_cli("remote", "add", "nas", str(store), "--default")
    git(repo, "commit", "-q", "-m", "a")
    mvc_cli("push")  # a first push makes the directory
    away = tmp_path / "away"
    shutil.move(str(tmp_path / "nas"), away)  # not mounted
    out = mvc_cli("push").stdout  # nothing new: the journal answers, and says the directory is not there
    assert "nothing to push" in out and f"its directory {store} does not exist now: mount it" in out, out
    from mvc.api import sync

    assert sync.push()["root_missing"] == str(store)
    make_file(repo / "b.bin", 100, seed=2)
    mvc_cli("add", "b.bin")
    mvc_error("push", words=("does not exist, though this repository pushed there before", "mount it"))
    assert not (tmp_path / "nas").exists()
    from mvc.errors import RemoteNotFound

    with pytest.raises(RemoteNotFound, match="pushed there before"):
        sync.push(fresh_stamp=True)  # as the pre-push hook pushes: its look at the remote's gc stamp finds no root
    assert not (tmp_path / "nas").exists()
    shutil.move(str(away), tmp_path / "nas")
    assert "pushed 1 object" in mvc_cli("push").stdout
    assert "root_missing" not in sync.push()


def test_a_bucket_gone_is_said_by_the_next_push_that_looks(repo: Path, mvc_cli, mvc_error, s3_endpoint):
    """A bucket deleted (or a server that lost everything): the push that reads the gc stamp sees it is gone and
    says so, where it said 'nothing to push' from its journal."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="models")
    make_file(repo / "m.bin", 100, seed=3)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "s3", "s3://models/team", "--default")
    mvc_cli("remote", "modify", "s3", "endpoint_url", s3_endpoint)
    git(repo, "commit", "-q", "-m", "m")
    mvc_cli("push")
    for o in s3.list_objects_v2(Bucket="models").get("Contents", []):
        s3.delete_object(Bucket="models", Key=o["Key"])
    s3.delete_bucket(Bucket="models")
    from mvc.api import sync
    from mvc.errors import RemoteError

    with pytest.raises(RemoteError, match="models"):
        sync.push(fresh_stamp=True)  # the pre-push hook's push


@pytest.mark.parametrize("reading", [True, False], ids=["reader", "store"])
def test_a_response_cut_off_is_said_as_a_broken_connection(repo: Path, mvc_cli, s3_endpoint, reading):
    """botocore's ResponseStreamingError (the server gone mid-read) is one line naming the file and the fix."""
    from botocore.exceptions import ResponseStreamingError

    from mvc.errors import RemoteUnreachable
    from mvc.repo import remotes

    mvc_cli("remote", "add", "s3", "s3://models/team", "--default")
    mvc_cli("remote", "modify", "s3", "endpoint_url", s3_endpoint)
    store = remotes.spec(mvc.Repo(str(repo)), "s3").open(reading=reading)
    err = store.translate(
        ResponseStreamingError(error="Connection broken: IncompleteRead(3 bytes read)"), "packs/p.pack"
    )
    assert isinstance(err, RemoteUnreachable)
    assert "broke while s3://models/team/packs/p.pack was read" in str(err) and "retry" in str(err)
