"""``mvc gc -r``, the same tests on every backend (mixed into each backend's remote suite class): what a
remote keeps (every version a ref here or on a git remote needs, delta bases, young objects), what goes
(whole objects, chunk lists, packs with no live entry), its refusals, and that the journal forgets what
went, so a later push sends it again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git, make_file
from remote_suite import oid_of, push_fine_tune, rel_of


def commit(repo: Path, mvc_cli, name: str, data: bytes, message: str) -> str:
    (repo / name).unlink(missing_ok=True)
    (repo / name).write_bytes(data)
    mvc_cli("add", name, "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return oid_of(data)


def gc_json(mvc_cli, *args: str, ok: bool = True) -> dict:
    return json.loads(mvc_cli("gc", "-r", "origin", "--json", "-q", *args, ok=ok).stdout)


class RemoteGcSuite:
    @pytest.fixture
    def shared(self, repo, mvc_cli, origin, tmp_path) -> Path:
        """origin (the backend) holding three versions of m.bin and s.bin of a side branch that is then deleted
        everywhere; a bare git remote holding main."""
        bare = tmp_path / "git-origin.git"
        git(tmp_path, "init", "-q", "--bare", str(bare))
        git(repo, "remote", "add", "gitorigin", str(bare))
        for i in range(3):
            commit(repo, mvc_cli, "m.bin", f"version {i}\n".encode() * 100, f"v{i}")
        git(repo, "push", "-q", "gitorigin", "HEAD:refs/heads/main")
        git(repo, "checkout", "-q", "-b", "side")
        commit(repo, mvc_cli, "s.bin", b"abandoned experiment\n" * 50, "side")
        mvc_cli("push", "-q", "--all-commits")
        git(repo, "checkout", "-q", "-")
        git(repo, "branch", "-q", "-D", "side")
        git(repo, "reflog", "expire", "--expire=now", "--all")
        return bare

    def test_gc_remote_deletes_only_what_nothing_needs(self, repo, mvc_cli, origin, shared):
        abandoned = rel_of(oid_of(b"abandoned experiment\n" * 50))
        before = origin.rels()
        assert abandoned in before
        r = gc_json(mvc_cli, "--grace", "0")
        assert r["dry_run"] and r["objects"] == 1 and origin.rels() == before
        r = gc_json(mvc_cli, "--grace", "0", "--force")
        assert r["objects"] == 1 and origin.rels() - {"gc-stamp"} == before - {abandoned}
        for i in range(3):  # every version in main's history is still there
            assert rel_of(oid_of(f"version {i}\n".encode() * 100)) in origin.rels()
        # the journal forgot it: the same content pushed again is sent again
        commit(repo, mvc_cli, "s2.bin", b"abandoned experiment\n" * 50, "again")
        mvc_cli("push", "-q")
        assert abandoned in origin.rels()

    def test_a_push_running_keeps_what_it_wrote_from_a_gc_with_no_grace(self, repo, mvc_cli, origin, shared):
        """A push writes a lease before its first upload and deletes it when done: a gc -r that starts meanwhile
        keeps everything written after the lease, whatever --grace says (a large file's packs go up before the
        chunk list that names them). A killed push's lease lapses after a day, and gc deletes it."""
        import time

        abandoned = rel_of(oid_of(b"abandoned experiment\n" * 50))
        assert not any(r.startswith("leases/") for r in origin.rels())  # the pushes deleted theirs
        origin.write(f"leases/{int(time.time()) - 5}-0123456789ab", b"mvc push\n")  # a push running now
        time.sleep(1.1)  # (stores date files to the second)
        commit(repo, mvc_cli, "t.bin", b"uploaded by the running push\n" * 40, "t")
        mvc_cli("push", "-q")  # its objects: written after the lease
        git(repo, "reset", "-q", "--hard", "HEAD~1")
        git(repo, "reflog", "expire", "--expire=now", "--all")
        pushed = rel_of(oid_of(b"uploaded by the running push\n" * 40))
        said = mvc_cli("gc", "-r", "origin", "--grace", "0", "-q").stdout
        assert "a push's lease from" in said and "when no push runs, delete" in said and "leases/" in said
        r = gc_json(mvc_cli, "--grace", "0", "--force")
        assert r["lease_since"] is not None and "/leases/" in r["lease"]
        rels = origin.rels()
        assert pushed in rels and abandoned in rels  # both younger than the lease, less a minute: kept
        origin.delete(next(r for r in rels if r.startswith("leases/")))  # the push is done
        assert gc_json(mvc_cli, "--grace", "0", "--force")["lease_since"] is None
        assert pushed not in origin.rels() and abandoned not in origin.rels()

    def test_a_push_that_ends_while_gc_reads_the_refs_keeps_what_it_wrote(
        self, repo, mvc_cli, origin, shared, monkeypatch
    ):
        """A push running when gc -r starts, whose lease is gone by the time gc lists the remote (it ended while gc
        read the refs and the git remotes): what it wrote, before gc's start, is named by nothing in git yet, and
        its lease as gc first saw it keeps it."""
        import time

        from mvc.repo import reach

        lease = f"leases/{int(time.time()) - 5}-0123456789ab"
        origin.write(lease, b"mvc push\n")  # a push running now
        time.sleep(1.1)  # (stores date files to the second)
        commit(repo, mvc_cli, "t.bin", b"uploaded by the running push\n" * 40, "t")
        mvc_cli("push", "-q")  # its objects: written after the lease, before gc starts
        git(repo, "reset", "-q", "--hard", "HEAD~1")
        git(repo, "reflog", "expire", "--expire=now", "--all")
        pushed = rel_of(oid_of(b"uploaded by the running push\n" * 40))
        time.sleep(1.1)
        real = reach.keep_set

        def push_ends(*args, **kwargs):  # while gc reads the refs: the push is done, its lease deleted
            origin.delete(lease)
            return real(*args, **kwargs)

        monkeypatch.setattr(reach, "keep_set", push_ends)
        r = gc_json(mvc_cli, "--grace", "0", "--force")
        assert r["lease_since"] is not None and pushed in origin.rels()

    def test_a_clone_whose_journal_predates_a_gc_sends_what_it_deleted(self, repo, mvc_cli, origin, shared):
        """Another clone pushed an object long ago and names it in a commit no git remote has yet: a gc -r
        deletes it. That clone's journal still says the remote has it; its next push must send it again."""
        import shutil
        import sqlite3

        abandoned = rel_of(oid_of(b"abandoned experiment\n" * 50))
        journal = repo / ".mvc" / "remotes.db"
        shutil.copy(journal, journal.with_suffix(".before"))  # the other clone's record, made before the gc
        gc_json(mvc_cli, "--grace", "0", "--force")
        assert abandoned not in origin.rels() and "gc-stamp" in origin.rels()
        shutil.copy(journal.with_suffix(".before"), journal)
        with sqlite3.connect(journal) as db:  # its last look at the remote's gc stamp: long ago
            db.execute("UPDATE stamps SET checked = 0")
        db.close()
        commit(repo, mvc_cli, "s2.bin", b"abandoned experiment\n" * 50, "the experiment, committed at last")
        mvc_cli("push", "-q")
        assert abandoned in origin.rels()
        before = origin.rels()
        mvc_cli("push", "-q")  # and the journal is trusted again: nothing more
        assert origin.rels() == before

    def test_gc_remote_keeps_young_objects(self, repo, mvc_cli, origin, shared):
        before = origin.rels()
        r = gc_json(mvc_cli, "--force")  # default grace: 14 days
        assert r["objects"] == 0 and r["young"] >= 1 and origin.rels() == before

    def test_gc_remote_keeps_what_a_git_remote_branch_needs(self, repo, mvc_cli, origin, shared):
        git(repo, "checkout", "-q", "-b", "shared-only")
        oid = commit(repo, mvc_cli, "t.bin", b"on the git remote only\n" * 40, "t")
        mvc_cli("push", "-q")
        git(repo, "push", "-q", "gitorigin", "shared-only")
        git(repo, "checkout", "-q", "-")
        git(repo, "branch", "-q", "-D", "shared-only")
        git(repo, "update-ref", "-d", "refs/remotes/gitorigin/shared-only")
        git(repo, "reflog", "expire", "--expire=now", "--all")
        gc_json(mvc_cli, "--grace", "0", "--keep-last", "0", "--force")
        assert rel_of(oid) in origin.rels()

    def test_gc_remote_refusals(self, repo, mvc_cli, mvc_error, origin, shared, tmp_path):
        other = tmp_path / "other"
        git(tmp_path, "clone", "-q", str(shared), str(other))
        git(other, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-q", "--allow-empty", "-m", "unseen")
        git(other, "push", "-q", "origin", "HEAD:refs/heads/unseen")
        before = origin.rels()
        mvc_error("gc", "-r", "origin", "--grace", "0", "--force", words=("not fetched", "git fetch gitorigin"))
        git(repo, "fetch", "-q", "gitorigin")
        origin.write("repos/" + "f" * 40, b"")
        mvc_error("gc", "-r", "origin", "--grace", "0", "--force", words=("another repository", "ffffffffffff"))
        assert origin.rels() == before | {"repos/" + "f" * 40}

    def test_gc_remote_keeps_delta_bases(self, repo, mvc_cli, origin, small_chunks):
        pytest.importorskip("numpy")
        _, v2 = push_fine_tune(repo, mvc_cli)
        mvc_cli("push", "-q", "--all-commits")
        r = gc_json(mvc_cli, "--grace", "0", "--keep-last", "1", "--sole-user", "--force")
        assert r["objects"] == 0  # v1 is no longer a kept version, but v2's deltas are based on it
        import shutil

        shutil.rmtree(repo / ".mvc" / "cache")
        (repo / "model.safetensors").unlink()
        mvc_cli("pull", "-q")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_gc_remote_deletes_dead_packs_whole(self, repo, mvc_cli, origin, tmp_path):
        from mvc.objects import pack

        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "the remote")
        git(repo, "checkout", "-q", "-b", "side")
        for i in range(40):
            make_file(repo / "many" / f"f{i}.txt", 100 + i, seed=i)
        mvc_cli("add", "many", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "many")
        mvc_cli("push", "-q")
        packs = pack.names_in(origin.rels())
        assert packs
        git(repo, "checkout", "-q", "-")
        git(repo, "branch", "-q", "-D", "side")
        git(repo, "reflog", "expire", "--expire=now", "--all")
        r = gc_json(mvc_cli, "--grace", "0", "--force", "--sole-user")
        assert r["packs_deleted"] == len(packs) and not pack.names_in(origin.rels())
        assert not {p for p in origin.rels() if p.startswith("packs/")}

    def test_a_push_names_its_repository_once(self, repo, mvc_cli, origin):
        from mvc.repo.repository import Repo

        commit(repo, mvc_cli, "a.bin", b"a" * 500, "a")
        mvc_cli("push", "-q")
        root = Repo(str(repo)).git.roots()[0]
        assert {r for r in origin.rels() if r.startswith("repos/")} == {f"repos/{root}"}
        assert origin.read(f"repos/{root}") == b""

    def test_a_root_commit_this_clone_holds_is_this_repository(self, repo, mvc_cli, origin):
        """A root commit amended after a push leaves its repos/ name on the remote: this clone still holds
        that commit, so it is this repository's, not another's (a commit it does not hold is refused above)."""
        commit(repo, mvc_cli, "a.bin", b"a" * 500, "first")
        mvc_cli("push", "-q")
        origin.write("repos/" + git(repo, "rev-parse", "HEAD").strip(), b"")  # as the amended root's name
        gc_json(mvc_cli, "--grace", "0", "--force")  # not refused
