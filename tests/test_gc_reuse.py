"""A push that reuses objects already on the remote, and an ``mvc gc -r`` of a teammate's clone in between
(docs/FORMAT.md, "What gc keeps"): the objects an abandoned push left long ago are garbage to every git ref,
so gc deletes them; the new version that reuses them must still be whole on the remote once it is published.
The push sends them again when a gc ran while it pushed, and the pre-push hook reads the gc stamp afresh, so
a gc between ``mvc push`` and ``git push`` is caught before the commit is published."""

from __future__ import annotations

import os
import subprocess

from conftest import git, make_file, run_mvc


def teammate_setup(repo, mvc_cli, tmp_path):
    """origin (a bare git repository) and store (the default mvc remote) of repo, and a teammate's clone."""
    origin, store = tmp_path / "origin.git", tmp_path / "store"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    mvc_cli("remote", "add", "store", str(store), "--default")
    git(repo, "commit", "-q", "-am", "remote")
    git(repo, "push", "-q", "origin", "HEAD:main")
    teammate = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(origin), str(teammate))
    return origin, store, teammate


def gc_as_the_push_starts(monkeypatch, teammate) -> None:
    """The teammate's gc -r --grace 0 runs once the push counted what is there, before it takes its lease."""
    from mvc.api import sync

    real = sync._lease

    def gc_first(remote):
        gc = run_mvc("gc", "-r", "store", "--force", "--grace", "0", "-q", cwd=teammate)
        assert gc.returncode == 0 and "deleted from store" in gc.stdout, gc.stdout + gc.stderr
        return real(remote)

    monkeypatch.setattr(sync, "_lease", gc_first)


def published_and_pulled(repo, origin, tmp_path):
    git(repo, "push", "-q", "origin", "HEAD:main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return run_mvc("pull", "-q", cwd=clone)


def abandoned_then_reused(repo, mvc_cli) -> None:
    """data/ pushed and its pointer never committed (an abandoned push), then a version of data/ that reuses 19
    of its 20 files, committed."""
    for i in range(20):
        make_file(repo / "data" / f"f{i:02}", 3000, seed=i)
    mvc_cli("add", "data", "-q")
    mvc_cli("push", "-q")
    git(repo, "rm", "-q", "--cached", "data.mvc")
    os.unlink(repo / "data.mvc")
    make_file(repo / "data" / "f00", 3000, seed=100)
    mvc_cli("add", "data", "-q")
    git(repo, "commit", "-q", "-m", "data")


def test_a_gc_between_push_and_git_push_does_not_publish_a_broken_version(repo, mvc_cli, tmp_path):
    origin, _store, teammate = teammate_setup(repo, mvc_cli, tmp_path)
    abandoned_then_reused(repo, mvc_cli)
    mvc_cli("push", "-q")
    # the teammate collects the remote: nothing in git names data/'s files yet
    gc = run_mvc("gc", "-r", "store", "--force", "--grace", "0", "-q", cwd=teammate)  # (a directory's ctime: now)
    assert gc.returncode == 0, gc.stderr
    assert "deleted from store 2" in gc.stdout, gc.stdout  # (the pack's 20 files counted too)
    # the commit is published through the hook: it sends them again
    mvc_cli("install-hooks")
    pushed = subprocess.run(["git", "push", "origin", "HEAD:main"], cwd=repo, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    pulled = run_mvc("pull", "-q", cwd=clone)
    assert pulled.returncode == 0, pulled.stderr
    for i in range(20):
        assert (clone / "data" / f"f{i:02}").read_bytes() == (repo / "data" / f"f{i:02}").read_bytes()


def test_a_gc_while_the_push_runs_makes_it_send_the_reused_objects_again(repo, mvc_cli, tmp_path, monkeypatch):
    """The teammate's gc runs after the push counted the abandoned push's files as there (here: just before it
    takes its lease, so gc deletes them): at its end the push finds the gc stamp changed, asks again, and sends
    what is gone."""
    origin, _store, teammate = teammate_setup(repo, mvc_cli, tmp_path)
    abandoned_then_reused(repo, mvc_cli)
    gc_as_the_push_starts(monkeypatch, teammate)
    mvc_cli("push", "-q")
    pulled = published_and_pulled(repo, origin, tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert all((tmp_path / "clone" / "data" / f"f{i:02}").exists() for i in range(20))


def test_what_this_push_learnt_of_the_packs_is_asked_again(repo, mvc_cli, tmp_path, monkeypatch):
    """The push read the pack index itself (a journal that does not know it: a fresh clone's): after the gc it
    does not take its own memory of where the reused files were for an answer."""
    origin, _store, teammate = teammate_setup(repo, mvc_cli, tmp_path)
    abandoned_then_reused(repo, mvc_cli)
    os.unlink(repo / ".mvc" / "remotes.db")
    gc_as_the_push_starts(monkeypatch, teammate)
    mvc_cli("push", "-q")
    pulled = published_and_pulled(repo, origin, tmp_path)
    assert pulled.returncode == 0, pulled.stderr


def test_a_manifest_the_journal_knew_goes_up_again_after_its_files(repo, mvc_cli, tmp_path, monkeypatch):
    """The same directory as the abandoned push (its manifest known to the journal, so not read) and a new file:
    the gc takes the manifest and its files; the push reads the manifest from the cache and sends its files,
    then it, never the manifest alone."""
    origin, _store, teammate = teammate_setup(repo, mvc_cli, tmp_path)
    for i in range(20):
        make_file(repo / "data" / f"f{i:02}", 3000, seed=i)
    mvc_cli("add", "data", "-q")
    mvc_cli("push", "-q")
    make_file(repo / "other.bin", 5000, seed=7)
    mvc_cli("add", "other.bin", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data and other")
    gc_as_the_push_starts(monkeypatch, teammate)
    mvc_cli("push", "-q")
    pulled = published_and_pulled(repo, origin, tmp_path)
    assert pulled.returncode == 0, pulled.stderr
