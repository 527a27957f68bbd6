"""The remote test suite, written once and run against every backend (as fsspec/s3fs do).

A backend joins it by providing a ``backend`` fixture (and, if it can, ``stoppable``) that returns an
object with this interface::

    name, url, options      the remote to configure ({"endpoint_url": ...} for S3)
    rels()                  relative paths of the files on the remote (objects/ab/cdef…, packs/…), not tmp/
    read(rel) / write(rel, data) / delete(rel)
    stop() / start()        make the remote unreachable and back, its config unchanged
    open_uploads()          writes begun and never finished nor cleaned up (S3: multipart uploads; else tmp/)
    can_stop_mid_push       whether stop() may be called while a push runs (a server going away)
    missing()               (url, options) of a store that does not exist
    reject_credentials()    context manager in which the store refuses our credentials (or None)
    private                 why mvc in another process cannot see the store ("" when it can)

Everything is real: git, the CLI, the store (a directory, S3 on a moto server on 127.0.0.1, or fsspec's
memory://, which lives in this process only).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ctrl_c_as_a_terminal_sends_it, git, make_file

MVC = [sys.executable, "-m", "mvc"]
# mvc with S3 multipart parts of 64 KiB instead of 50 MiB (objects of 128 KiB and more go in parts)
SMALL_PARTS = [
    sys.executable,
    "-c",
    "import sys; import mvc.storage.s3 as s3; s3.PART = 64 << 10; from mvc.cli import main; sys.argv[0] = 'mvc'; main()",
]
MARKER = "mvc.toml"  # the layout marker every store mvc writes holds at its root (docs/FORMAT.md)


def needs_other_processes(backend) -> None:
    """Skip a test that runs mvc in another process when that process cannot see the store."""
    if backend.private:
        pytest.skip(backend.private)


def oid_of(data: bytes) -> str:
    import xxhash

    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def rel_of(oid: str) -> str:
    digest = oid.split(":", 1)[1]
    return f"objects/{digest[:2]}/{digest[2:]}"


def cache_dir(repo: Path) -> Path:
    return repo / ".mvc" / "cache"


def cache_objects(repo: Path) -> set[str]:
    objects = cache_dir(repo) / "objects"
    return {f"objects/{p.parent.name}/{p.name}" for p in objects.glob("*/*")} if objects.exists() else set()


def drop_cache(repo: Path) -> None:
    import shutil

    shutil.rmtree(cache_dir(repo), ignore_errors=True)


def one_error_line(result) -> str:
    lines = result.stderr.splitlines() if hasattr(result, "stderr") else []
    assert result.exit_code != 0 if hasattr(result, "exit_code") else result.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return lines[0]


def stored(backend) -> set[str]:
    """Object paths the remote holds, alone or in a complete pack: what a reader can fetch."""
    from mvc.objects import pack

    rels = backend.rels()
    out = {r for r in rels if r.startswith("objects/")}
    for name in pack.names_in(rels):
        out |= {rel_of(e.oid) for e in pack.parse_index(backend.read(pack.index_rel(name)), name)}
    return out


def read_stored(backend, rel: str) -> bytes:
    """The bytes of an object on the remote, alone or from its pack."""
    from mvc.objects import pack

    rels = backend.rels()
    if rel in rels:
        return backend.read(rel)
    for name in pack.names_in(rels):
        for e in pack.parse_index(backend.read(pack.index_rel(name)), name):
            if rel_of(e.oid) == rel:
                return backend.read(pack.pack_rel(name))[e.offset : e.offset + e.size]
    raise KeyError(rel)


def contents(backend) -> set[str]:
    """What the remote holds, but the files naming the repositories that push to it (``repos/``)."""
    return {rel for rel in backend.rels() if not rel.startswith("repos/")}


def expected_objects(repo: Path) -> set[str]:
    """Object paths the work tree's pointers need (file objects, manifests, entries)."""
    from mvc.repo.repository import Repo
    from mvc.repo.selection import objects_for

    r = Repo(str(repo))
    pointers = {p: (repo / p).read_bytes() for p in r.git.ls_pointers()}
    return {rel_of(o) for o in objects_for(r, pointers)}


def make_models(repo: Path, nsmall: int = 5) -> None:
    """model.bin (a file) and data/ (a directory with a nested and an executable file)."""
    make_file(repo / "model.bin", 300_000, seed=1)
    for i in range(nsmall):
        make_file(repo / "data" / f"part-{i}.bin", 2000 + i, seed=10 + i)
    make_file(repo / "data" / "sub" / "nested.txt", 100, seed=99)
    run = repo / "data" / "run.sh"
    run.write_text("#!/bin/sh\necho hi\n")
    run.chmod(0o755)


def interruptible(args: list[str], cwd: Path) -> subprocess.Popen:
    """A command started to be sent Ctrl-C (SIGINT) by the test, its output kept."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_a_terminal_sends_it,
    )


class WithOrigin:
    """Mix in with a backend class that provides the ``backend`` fixture: ``origin``."""

    @pytest.fixture
    def origin(self, repo, mvc_cli, backend):
        """The repo with ``origin`` = the backend, as the default remote."""
        configure(mvc_cli, backend, "origin")
        return backend


class RemoteSuite(WithOrigin):
    """Mix in with a backend class that provides the ``backend`` fixture."""

    @pytest.fixture
    def small_chunks(self, monkeypatch) -> int:
        """mvc (in this process) chunks files of SMALL_CHUNK_FROM bytes and more."""
        monkeypatch.setattr("mvc.objects.chunked.CHUNK_FROM", SMALL_CHUNK_FROM)
        return SMALL_CHUNK_FROM

    # -- round trips ------------------------------------------------------------------------------
    def test_round_trip_files_and_directories(self, repo, mvc_cli, origin):
        make_models(repo)
        before = {
            p: p.read_bytes()
            for p in repo.rglob("*")
            if p.is_file()
            and ".git" not in p.parts
            and ".mvc" not in p.parts
            and p.suffix != ".mvc"
            and p.name != ".gitignore"
        }
        mvc_cli("add", "model.bin", "data")
        git(repo, "commit", "-q", "-m", "models")
        out = mvc_cli("push").output
        want = expected_objects(repo)
        assert f"pushed {len(want)} objects" in out
        assert stored(origin) == want
        for rel in want:  # the layout of FORMAT.md: objects/ab/cdef…, content hashes to its name
            assert rel_of(oid_of(read_stored(origin, rel))) == rel

        drop_cache(repo)
        for p in before:
            p.unlink()
        out = mvc_cli("pull").output
        assert f"fetched {len(want)} objects" in out
        for p, data in before.items():
            assert p.read_bytes() == data, p
        assert os.access(repo / "data" / "run.sh", os.X_OK)
        assert cache_objects(repo) == want
        assert "nothing to fetch" in mvc_cli("fetch").output

    def test_fetch_does_not_touch_the_workspace(self, repo, mvc_cli, origin):
        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        mvc_cli("push")
        drop_cache(repo)
        (repo / "model.bin").unlink()
        mvc_cli("fetch", "model.bin")
        assert not (repo / "model.bin").exists()
        assert cache_objects(repo) == {rel_of(oid_of(make_file_bytes(300_000, 1)))}

    def test_partial_push_then_the_rest(self, repo, mvc_cli, origin):
        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        assert "pushed 1 object " in mvc_cli("push", "model.bin").output
        assert len(stored(origin)) == 1
        out = mvc_cli("push").output
        want = expected_objects(repo)
        assert f"pushed {len(want) - 1} objects" in out and "1 already there" in out
        assert stored(origin) == want

    def test_push_by_revision(self, repo, mvc_cli, origin):
        model = make_file(repo / "model.bin", 5000, seed=1)
        v1 = model.read_bytes()
        mvc_cli("add", "model.bin")
        git(repo, "commit", "-q", "-m", "v1")
        git(repo, "tag", "v1")
        make_file(model, 6000, seed=2)
        v2 = model.read_bytes()
        mvc_cli("add", "model.bin")
        git(repo, "commit", "-q", "-m", "v2")
        git(repo, "checkout", "-q", "-b", "side")
        make_file(model, 7000, seed=3)
        v3 = model.read_bytes()
        mvc_cli("add", "model.bin")
        git(repo, "commit", "-q", "-m", "v3")

        mvc_cli("push", "--rev", "v1")
        assert stored(origin) == {rel_of(oid_of(v1))}
        mvc_cli("push", "--all-branches")
        assert stored(origin) == {rel_of(oid_of(v)) for v in (v1, v2, v3)}
        # a fresh clone gets any revision back from the remote
        drop_cache(repo)
        mvc_cli("fetch", "--rev", "v1", "--rev", "main")
        assert cache_objects(repo) == {rel_of(oid_of(v)) for v in (v1, v2)}
        mvc_cli("pull", "--rev", "v1", "--force")
        assert model.read_bytes() == v1

    def test_all_tags_and_all_commits(self, repo, mvc_cli, origin):
        model = repo / "model.bin"
        datas = []
        for i in range(3):
            make_file(model, 1000 + i, seed=i)
            datas.append(model.read_bytes())
            mvc_cli("add", "model.bin")
            git(repo, "commit", "-q", "-m", f"v{i}")
            if i == 0:
                git(repo, "tag", "-a", "first", "-m", "annotated")
        mvc_cli("push", "--all-tags")
        assert stored(origin) == {rel_of(oid_of(datas[0]))}
        mvc_cli("push", "--all-commits")
        assert stored(origin) == {rel_of(oid_of(d)) for d in datas}

    def test_large_object_in_parts_verified_before_it_is_visible(self, repo, mvc_cli, origin, monkeypatch):
        from mvc.storage import s3

        monkeypatch.setattr(s3, "PART", 5 << 20)  # S3's smallest part: a 12 MiB object goes in 3 parts
        mvc_cli("remote", "modify", "origin", "chunks", "false")  # whole objects: the parts are what is tested
        big = make_file(repo / "big.bin", 12 << 20, seed=7)
        data = big.read_bytes()
        mvc_cli("add", "big.bin")
        rel = rel_of(oid_of(data))
        cached = cache_dir(repo) / rel
        os.chmod(cached, 0o644)
        with open(cached, "r+b") as f:  # bit rot in the cache, in the last part
            f.seek(len(data) - 10)
            f.write(b"X")
        line = one_error_line(mvc_cli("push", ok=False))
        assert "corrupt" in line and "quarantine" in line
        assert stored(origin) == set()  # not even a partial object
        cached.unlink(missing_ok=True)
        mvc_cli("add", "big.bin")  # the workspace still has the good bytes
        assert "pushed 1 object" in mvc_cli("push").output
        assert origin.read(rel) == data
        drop_cache(repo)
        big.unlink()
        mvc_cli("pull")
        assert big.read_bytes() == data

    # -- the journal -------------------------------------------------------------------------------
    def test_nothing_to_push_asks_nothing(self, repo, mvc_cli, stoppable):
        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        configure(mvc_cli, stoppable, "origin")
        mvc_cli("push")
        stoppable.stop()
        try:
            # nothing may reach the store: it is gone (server stopped, directory moved away)
            assert "nothing to push" in mvc_cli("push").output
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys, mvc.api.sync as r; r.push();"
                    "print(sorted(m for m in ('s3fs', 'fsspec', 'botocore') if m in sys.modules))",
                ],
                cwd=repo,
                capture_output=True,
                text=True,
            )
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.strip() == "[]"
        finally:
            stoppable.start()
        assert stored(stoppable) == expected_objects(repo)

    def test_verify_remote_reuploads_what_was_deleted(self, repo, mvc_cli, origin):
        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        mvc_cli("push")
        gone = rel_of(oid_of((repo / "data" / "part-0.bin").read_bytes()))
        origin.delete(gone)
        assert "nothing to push" in mvc_cli("push").output  # the journal cannot know
        out = mvc_cli("push", "--verify-remote").output
        assert "pushed 1 object " in out
        assert stored(origin) == expected_objects(repo)

    def test_journal_follows_the_url_not_the_name(self, repo, mvc_cli, stoppable):
        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        configure(mvc_cli, stoppable, "origin")
        mvc_cli("push")
        mvc_cli("remote", "remove", "origin")
        configure(mvc_cli, stoppable, "renamed")
        stoppable.stop()
        try:
            assert "nothing to push" in mvc_cli("push").output
        finally:
            stoppable.start()

    def test_a_remote_emptied_by_hand_is_pushed_to_again(self, repo, mvc_cli, origin):
        """Every file of the remote deleted (no gc, so no gc stamp): once the journal's look at the remote is
        old, a push sees the layout marker gone, forgets what the journal says is there, and sends it all."""
        import sqlite3

        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        mvc_cli("push")
        before = origin.rels()
        for rel in before:
            origin.delete(rel)
        assert "nothing to push" in mvc_cli("push").output  # checked a moment ago: the journal is trusted
        with sqlite3.connect(repo / ".mvc" / "remotes.db") as db:
            db.execute("UPDATE stamps SET checked = 0")  # that look was long ago
        db.close()
        mvc_cli("push")
        assert origin.rels() == before

    # -- damage and failures -----------------------------------------------------------------------
    def test_corrupt_object_on_remote_is_refused(self, repo, mvc_cli, origin):
        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        mvc_cli("push")
        data = (repo / "model.bin").read_bytes()
        rel = rel_of(oid_of(data))
        origin.write(rel, data[:-1] + bytes([data[-1] ^ 1]))
        drop_cache(repo)
        (repo / "model.bin").unlink()
        (repo / "data").rename(repo / "data-aside")
        result = mvc_cli("pull", ok=False)
        line = one_error_line(result)
        assert "corrupt" in line and rel in line and "1 other path fetched whole was restored" in line, line
        assert rel not in cache_objects(repo)
        assert not (repo / "model.bin").exists()
        assert not any((cache_dir(repo) / "tmp").glob("*")), "a temp file was left behind"
        # the other objects are unaffected: restored by that pull, as git-lfs and DVC do
        assert (repo / "data" / "run.sh").exists()
        mvc_cli("pull", "data")

    @pytest.mark.parametrize("how", ["longer", "shorter"])
    def test_an_object_of_another_size_on_the_remote_is_refused_before_it_is_downloaded(
        self, repo, mvc_cli, origin, monkeypatch, how
    ):
        """A file on a shared remote replaced by a much larger one (or a shorter one): its size is compared with
        the pointer's before its bytes are written anywhere (only the first part on S3), by pull and get."""
        make_file(repo / "model.bin", 5000, seed=7)
        mvc_cli("add", "model.bin")
        git(repo, "commit", "-q", "-m", "m")
        mvc_cli("push")
        data = (repo / "model.bin").read_bytes()
        rel = rel_of(oid_of(data))
        origin.write(rel, data * 400 if how == "longer" else data[:100])
        written: list[int] = []
        real = os.pwrite
        monkeypatch.setattr(os, "pwrite", lambda fd, b, at: written.append(len(b)) or real(fd, b, at))
        drop_cache(repo)
        (repo / "model.bin").unlink()
        held = 5000 * 400 if how == "longer" else 100
        line = one_error_line(mvc_cli("pull", ok=False))
        assert f"holds {held} bytes, but the object has 5000" in line and rel in line, line
        assert "refused before it was downloaded" in line and "--repair" in line, line
        assert not (repo / "model.bin").exists() and rel not in cache_objects(repo)
        assert sum(written) < 100_000  # (a GET's first part at most)
        for args in (("get", "model.bin", "-o", str(repo.parent / "out")),):
            assert f"holds {held} bytes" in one_error_line(mvc_cli(*args, ok=False))
        assert not (repo.parent / "out").exists()

    def test_object_missing_from_remote(self, repo, mvc_cli, origin):
        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        mvc_cli("push")
        origin.delete(rel_of(oid_of((repo / "model.bin").read_bytes())))
        drop_cache(repo)
        line = one_error_line(mvc_cli("fetch", ok=False))
        assert "model.bin" in line and "not on remote origin" in line
        assert cache_objects(repo) == expected_objects(repo) - {rel_of(oid_of((repo / "model.bin").read_bytes()))}

    def test_object_missing_everywhere_is_reported_after_pushing_the_rest(self, repo, mvc_cli, origin):
        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        lost = rel_of(oid_of((repo / "model.bin").read_bytes()))
        os.chmod(cache_dir(repo) / lost, 0o644)
        (cache_dir(repo) / lost).unlink()
        line = one_error_line(mvc_cli("push", ok=False))
        assert "model.bin" in line and "neither in the cache nor on the remote" in line
        assert stored(origin) == expected_objects(repo) - {lost}

    def test_missing_store(self, repo, mvc_cli, backend):
        url, options = backend.missing()
        make_models(repo)
        mvc_cli("add", "model.bin")
        mvc_cli("remote", "add", "nowhere", url, "--default")
        for key, value in options.items():
            mvc_cli("remote", "modify", "nowhere", key, value)
        drop_cache(repo)
        line = one_error_line(mvc_cli("fetch", ok=False))
        assert "does not exist" in line

    def test_rejected_credentials(self, repo, mvc_cli, origin):
        reject = origin.reject_credentials()
        if reject is None:
            pytest.skip(f"{origin.name} has no credentials to reject")
        make_models(repo)
        mvc_cli("add", "model.bin")
        with reject:
            line = one_error_line(mvc_cli("push", ok=False))
        assert "credentials" in line
        if origin.name == "S3":  # the remote's own keys are named first: they win over the environment
            assert "access_key_id" in line

    def test_unreachable_remote(self, repo, mvc_cli, stoppable):
        if not stoppable.can_stop_mid_push:
            pytest.skip(f"{stoppable.name} has no server to stop")
        make_models(repo)
        mvc_cli("add", "model.bin")
        configure(mvc_cli, stoppable, "origin")
        stoppable.stop()
        try:
            line = one_error_line(mvc_cli("push", ok=False))
            assert "cannot reach" in line
        finally:
            stoppable.start()
        assert "pushed 1 object" in mvc_cli("push").output

    def test_server_stopped_mid_push(self, repo, mvc_cli, stoppable):
        if not stoppable.can_stop_mid_push:
            pytest.skip(f"{stoppable.name} has no server to stop")
        for i in range(80):
            make_file(repo / "many" / f"f{i:03d}", 512, seed=1000 + i)
        mvc_cli("add", "many")
        configure(mvc_cli, stoppable, "origin")
        mvc_cli("remote", "modify", "origin", "packs", "false")  # one object at a time, to stop between them
        want = expected_objects(repo)
        result = {}

        def push():
            result["r"] = mvc_cli("push", "-j", "4", ok=False)

        worker = threading.Thread(target=push)
        worker.start()
        deadline = time.monotonic() + 60
        while len(stored(stoppable)) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        stoppable.stop()
        try:
            worker.join(120)
            assert not worker.is_alive()
            line = one_error_line(result["r"])
            assert "cannot reach" in line
        finally:
            stoppable.start()
        partial = stored(stoppable)
        assert partial < want
        manifest = next(r for r in want if stoppable_manifest(repo) == r)
        assert manifest not in partial  # entries go first: no manifest before all its entries
        out = mvc_cli("push").output
        assert "pushed" in out
        assert stored(stoppable) == want
        for rel in want:
            assert rel_of(oid_of(read_stored(stoppable, rel))) == rel

    def test_killed_push_is_resumed(self, repo, mvc_cli, origin):
        needs_other_processes(origin)
        for i in range(80):
            make_file(repo / "many" / f"f{i:03d}", 1024, seed=2000 + i)
        mvc_cli("add", "many")
        mvc_cli("remote", "modify", "origin", "packs", "false")  # one object at a time, to kill between them
        want = expected_objects(repo)
        proc = subprocess.Popen([*MVC, "push", "-j", "2"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(stored(origin)) < 10 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        partial = stored(origin)
        assert partial <= want
        for rel in partial:  # whatever is visible is complete
            assert rel_of(oid_of(read_stored(origin, rel))) == rel
        out = mvc_cli("push").output
        assert "pushed" in out or "nothing to push" in out
        assert stored(origin) == want
        drop_cache(repo)
        mvc_cli("fetch")
        assert cache_objects(repo) == want

    def test_ctrl_c_during_push(self, repo, mvc_cli, origin):
        needs_other_processes(origin)
        for i in range(120):
            make_file(repo / "many" / f"f{i:03d}", 1024, seed=4000 + i)
        mvc_cli("add", "many")
        mvc_cli("remote", "modify", "origin", "packs", "false")
        proc = interruptible([*MVC, "push", "-j", "1"], repo)
        deadline = time.monotonic() + 60
        while len(stored(origin)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:  # (a fast store may have finished first)
            assert proc.returncode == 130 and err.strip() == "interrupted", err
        want = expected_objects(repo)
        assert stored(origin) <= want
        manifest = stoppable_manifest(repo)
        if manifest in stored(origin):
            assert stored(origin) == want
        mvc_cli("push")
        assert stored(origin) == want

    def test_ctrl_c_during_a_push_of_large_objects_leaves_nothing_open(self, repo, mvc_cli, origin, monkeypatch):
        """On S3 each object goes up as a multipart upload (64 KiB parts here): Ctrl-C aborts those in flight,
        so none is left open (billed) on the bucket; on a directory no temp file is left in tmp/."""
        needs_other_processes(origin)
        if isinstance(origin, S3Backend):
            monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 1024)  # moto runs in this process
        for i in range(4):
            make_file(repo / "big" / f"b{i}.bin", 2 << 20, seed=7000 + i)
        mvc_cli("add", "big")
        proc = interruptible([*SMALL_PARTS, "push", "-j", "2"], repo)
        deadline = time.monotonic() + 60
        while not origin.open_uploads() and not stored(origin) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        if proc.returncode != 0:  # (a fast store may have finished first)
            assert proc.returncode == 130 and err.strip() == "interrupted", err
        assert origin.open_uploads() == set()
        want = expected_objects(repo)
        for rel in stored(origin):  # whatever is visible is complete
            assert rel in want and rel_of(oid_of(read_stored(origin, rel))) == rel
        mvc_cli("push")
        assert stored(origin) == want and origin.open_uploads() == set()

    def test_concurrent_pushes_from_two_processes(self, repo, mvc_cli, origin):
        needs_other_processes(origin)
        for i in range(30):
            make_file(repo / "many" / f"f{i:03d}", 2048, seed=3000 + i)
        make_file(repo / "model.bin", 200_000, seed=5)
        mvc_cli("add", "many", "model.bin")
        procs = [
            subprocess.Popen([*MVC, "push", "-q"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        for p in procs:
            _out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        want = expected_objects(repo)
        assert stored(origin) == want
        for rel in want:
            assert rel_of(oid_of(read_stored(origin, rel))) == rel
        assert "nothing to push" in mvc_cli("push").output

    # -- packs --------------------------------------------------------------------------------------
    def test_small_objects_travel_in_packs(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        smalls = make_smalls(repo, 40)
        make_file(repo / "big.bin", pack.OBJECT_MAX + 1, seed=8)  # not small: stored alone
        mvc_cli("add", "many", "big.bin")
        out = mvc_cli("push").output
        want = expected_objects(repo)
        assert f"pushed {len(want)} objects" in out
        rels = contents(origin) - {MARKER}
        names = pack.names_in(rels)
        assert len(names) == 1 and rels == {
            pack.pack_rel(*names),
            pack.index_rel(*names),
            rel_of(oid_of((repo / "big.bin").read_bytes())),
            stoppable_manifest(repo),
        }
        (name,) = names
        assert oid_of(origin.read(pack.pack_rel(name))) == f"xxh128:{name}"  # named by its content
        assert stored(origin) == want
        for rel in want:
            assert rel_of(oid_of(read_stored(origin, rel))) == rel

        drop_cache(repo)
        import shutil

        shutil.rmtree(repo / "many")
        assert f"fetched {len(want)} objects" in mvc_cli("pull").output
        for p, data in smalls.items():
            assert p.read_bytes() == data
        assert cache_objects(repo) == want

    def test_objects_in_cache_packs_are_pushed_and_fetched(self, repo, mvc_cli, origin, monkeypatch):
        """A cache whose small objects a large add stored in cache packs (docs/FORMAT.md, "Cache packs") pushes
        them as any others: alone when they are few, in packs when many; a pull into an empty cache gets them."""
        monkeypatch.setattr("mvc.repo.storing.PARALLEL_FROM", 3)
        monkeypatch.setattr("mvc.storage.forked.workers_for", lambda n, least, most=8: 2 if n >= least else 1)
        few = {
            p: p.read_bytes() for p in (make_file(repo / "few" / f"f{i}.bin", 500 + i, seed=70 + i) for i in range(4))
        }
        smalls = make_smalls(repo, 40)
        mvc_cli("add", "few", "many")
        from mvc.objects.odb import ODB

        assert len(ODB(str(cache_dir(repo))).packs.keys()) == 44 and not [
            o for o in cache_objects(repo) if rel_of(oid_of((repo / "few" / "f0.bin").read_bytes())) == o
        ]
        assert "pushed 5 objects" in mvc_cli("push", "few").output  # fewer than a pack is worth: alone
        assert rel_of(oid_of(few[repo / "few" / "f0.bin"])) in contents(origin)
        mvc_cli("push")
        want = expected_objects(repo)
        assert stored(origin) == want
        drop_cache(repo)
        shutil.rmtree(repo / "many")
        shutil.rmtree(repo / "few")
        mvc_cli("pull")
        for p, data in {**few, **smalls}.items():
            assert p.read_bytes() == data

    def test_pointers_that_understate_sizes_cannot_grow_a_pack(self, repo, mvc_cli, origin, monkeypatch):
        """Push takes a pointer's word for a small object's size (no stat of each): a pointer that lies gets no
        object of OBJECT_MAX bytes or more into a pack, and no pack past TARGET bytes read."""
        from mvc.format import pointer as ptrfmt
        from mvc.objects import pack

        monkeypatch.setattr(pack, "TARGET", 8 << 10)
        smalls = make_smalls(repo, 20)  # about 1.3 KiB each: honest sizes would make about four packs
        make_file(repo / "many" / "big.bin", pack.OBJECT_MAX + 1, seed=9)
        files = [*sorted(smalls), repo / "many" / "big.bin"]
        mvc_cli("add", *[str(p.relative_to(repo)) for p in files])  # file pointers, each with its size
        for p in files:
            ptr = p.with_name(p.name + ".mvc")
            parsed = ptrfmt.loads(ptr.read_bytes())
            parsed.size = 1  # every size understated: one group by the pointers' word
            ptr.write_bytes(ptrfmt.dumps(parsed))
        # the cache holds each object whole: a pointer its object belies is refused, nothing pushed
        line = one_error_line(mvc_cli("push", ok=False))
        assert "gives size 1, but its object" in line and "the pointer is damaged" in line
        assert contents(origin) - {MARKER} == set()
        # objects in cache packs are not stat'ed one by one: push takes the pointers' word, and packs stay bounded
        from mvc.objects.odb import ODB

        monkeypatch.setattr(ODB, "sound", lambda self, oid: False)  # (as for an object it cannot judge)
        assert f"pushed {len(files)} objects" in mvc_cli("push").output
        rels = contents(origin) - {MARKER}
        big = rel_of(oid_of((repo / "many" / "big.bin").read_bytes()))
        assert big in rels  # alone, never in a pack
        names = pack.names_in(rels)
        assert len(names) >= 3
        packed = set()
        for name in names:
            data = origin.read(pack.pack_rel(name))
            entries = pack.parse_index(origin.read(pack.index_rel(name)), name, len(data))
            assert len(data) < pack.TARGET + pack.OBJECT_MAX
            packed |= {e.oid for e in entries}
        assert packed == {oid_of(data) for data in smalls.values()}
        drop_cache(repo)
        # the object stored alone is refused by the size its pointer gives, before it is downloaded; the packed
        # ones come by their index's sizes
        line = one_error_line(mvc_cli("fetch", ok=False))
        assert f"holds {pack.OBJECT_MAX + 1} bytes, but the object has 1" in line and big in line, line
        assert cache_objects(repo) == expected_objects(repo) - {big}

    def test_fetch_of_a_few_objects_from_a_pack(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        smalls = make_smalls(repo, 20)
        mvc_cli("add", *[str(p.relative_to(repo)) for p in smalls])  # twenty file pointers
        mvc_cli("push")
        assert len(pack.names_in(origin.rels())) == 1
        drop_cache(repo)
        (repo / ".mvc" / "remotes.db").unlink()  # a fresh journal knows nothing of the remote's packs
        some = sorted(smalls)[3:5]
        mvc_cli("fetch", *[str(p.relative_to(repo)) for p in some])
        assert cache_objects(repo) == {rel_of(oid_of(p.read_bytes())) for p in some}
        mvc_cli("fetch")
        assert cache_objects(repo) == expected_objects(repo)

    def test_corrupt_object_in_a_pack_is_refused(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        name = push_one_pack(repo, mvc_cli, origin)
        entries = pack.parse_index(origin.read(pack.index_rel(name)), name)
        victim = entries[5]
        data = bytearray(origin.read(pack.pack_rel(name)))
        data[victim.offset + 7] ^= 1
        origin.write(pack.pack_rel(name), bytes(data))
        drop_cache(repo)
        import shutil

        shutil.rmtree(repo / "many")
        line = one_error_line(mvc_cli("pull", ok=False))
        assert "corrupt" in line and pack.pack_rel(name) in line and victim.oid in line
        assert rel_of(victim.oid) not in cache_objects(repo)
        assert not (repo / "many").exists()
        assert not any((cache_dir(repo) / "tmp").glob("*")), "a temp file was left behind"

    def test_damaged_pack_index_is_skipped_with_a_clear_error(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        name = push_one_pack(repo, mvc_cli, origin)
        for garbage in (
            b"not an index\n",
            pack.INDEX_HEADER + b"xxh128:00 0 -1\n",
            pack.INDEX_HEADER + b"../../etc/passwd 0 4\n",
        ):
            origin.write(pack.index_rel(name), garbage)
            drop_cache(repo)
            (repo / ".mvc" / "remotes.db").unlink()
            line = one_error_line(mvc_cli("fetch", ok=False))
            assert "not on remote origin" in line and "is damaged" in line and pack.index_rel(name) in line
            assert "mvc push --verify-remote" in line
            assert cache_objects(repo) == {stoppable_manifest(repo)}  # the manifest is stored alone

    def test_index_pointing_outside_its_pack_is_refused(self, repo, mvc_cli, origin):
        """An index that places an object past its pack's end (as the listing sizes it) is refused whole:
        none of its objects counts as there, and the error names the index."""
        from mvc.objects import pack

        name = push_one_pack(repo, mvc_cli, origin)
        entries = pack.parse_index(origin.read(pack.index_rel(name)), name)
        lines = [f"{e.oid} {e.offset + (10 << 20) if i == 0 else e.offset} {e.size}\n" for i, e in enumerate(entries)]
        origin.write(pack.index_rel(name), pack.INDEX_HEADER + "".join(lines).encode())
        drop_cache(repo)
        (repo / ".mvc" / "remotes.db").unlink()
        line = one_error_line(mvc_cli("fetch", ok=False))
        assert "not on remote origin" in line and "(and 19 more" in line and pack.index_rel(name) in line, line
        assert cache_objects(repo) == {stoppable_manifest(repo)}  # nothing from the refused pack

    @pytest.mark.parametrize("journal", ["fresh", "from before the check", "recorded, --verify-remote"])
    def test_a_pack_shorter_than_its_index_does_not_stop_a_push(self, repo, mvc_cli, origin, journal):
        """A pack cut short (or an index listing bytes its pack does not hold): no push skips its objects on
        the index's word (a journal from before the check forgets the packs it recorded unchecked), and
        --verify-remote re-checks the packs the journal recorded; the objects go up again and a
        teammate's fetch works."""
        import sqlite3

        from mvc.objects import pack

        smalls = make_smalls(repo, 20)
        mvc_cli("add", *[str(p.relative_to(repo)) for p in smalls])  # twenty file pointers: all in one pack
        mvc_cli("push")
        (name,) = pack.names_in(origin.rels())
        data = origin.read(pack.pack_rel(name))
        origin.write(pack.pack_rel(name), data[: len(data) // 2])
        db = repo / ".mvc" / "remotes.db"
        args = ["push"]
        if journal == "fresh":
            db.unlink()
        elif journal == "from before the check":  # written by an mvc that did not check indexes against packs
            with sqlite3.connect(db) as c:
                c.execute("PRAGMA user_version = 0")
            c.close()
        else:
            assert "nothing to push" in mvc_cli("push").output  # the journal vouches: no request made
            args.append("--verify-remote")
        out = mvc_cli(*args).output
        assert "pushed 20 objects" in out, out
        assert pack.names_in(origin.rels()) == {name}  # the same objects: the same pack, whole again
        assert stored(origin) == expected_objects(repo)
        drop_cache(repo)
        db.unlink()
        mvc_cli("fetch")
        assert cache_objects(repo) == expected_objects(repo)

    def test_pack_without_its_index_is_ignored_and_pushed_again(self, repo, mvc_cli, origin):
        """What a push killed between a pack and its index leaves: the pack is invisible."""
        from mvc.objects import pack

        name = push_one_pack(repo, mvc_cli, origin)
        origin.delete(pack.index_rel(name))
        assert stored(origin) == {stoppable_manifest(repo)}
        (repo / ".mvc" / "remotes.db").unlink()
        assert "pushed 20 objects" in mvc_cli("push").output  # the same objects: the same pack, rewritten
        assert pack.names_in(origin.rels()) == {name}
        assert stored(origin) == expected_objects(repo)

    def test_a_new_journal_finds_packed_objects_without_pushing_them(self, repo, mvc_cli, origin):
        make_smalls(repo, 20)
        mvc_cli("add", "many")
        mvc_cli("push")
        before = origin.rels()
        (repo / ".mvc" / "remotes.db").unlink()
        out = mvc_cli("push").output
        assert "pushed 0 objects" in out or "nothing to push" in out, out
        assert origin.rels() == before
        assert "nothing to push" in mvc_cli("push").output  # and the journal now knows

    def test_pack_deleted_from_the_remote(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        name = push_one_pack(repo, mvc_cli, origin)
        origin.delete(pack.pack_rel(name))
        origin.delete(pack.index_rel(name))
        drop_cache(repo)
        line = one_error_line(mvc_cli("fetch", ok=False))  # the journal still places them in the pack
        assert "not on remote origin" in line and "(and 19 more" in line  # "more)" or "more objects)"
        mvc_cli("add", "many")  # the workspace still has them
        assert "nothing to push" in mvc_cli("push").output  # the journal vouches for the manifest, so its entries
        assert "pushed 20 objects" in mvc_cli("push", "--verify-remote").output
        assert stored(origin) == expected_objects(repo)

    def test_packs_false_stores_every_object_alone(self, repo, mvc_cli, origin):
        make_smalls(repo, 20)
        mvc_cli("add", "many")
        mvc_cli("remote", "modify", "origin", "packs", "false")
        mvc_cli("push")
        assert contents(origin) - {MARKER} == expected_objects(repo)

    def test_fewer_small_objects_than_a_pack_is_worth_go_alone(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        make_smalls(repo, pack.MIN_OBJECTS - 1)  # one short of a pack (the manifest goes up after them)
        mvc_cli("add", "many")
        mvc_cli("push")
        assert contents(origin) - {MARKER} == expected_objects(repo)

    def test_killed_push_of_packs_is_resumed(self, repo, mvc_cli, origin):
        needs_other_processes(origin)
        from mvc.objects import pack

        size = pack.OBJECT_MAX - 4096
        n = 3 * pack.TARGET // size + 2  # four packs
        for i in range(n):
            make_file(repo / "many" / f"f{i:03d}", size, seed=6000 + i)
        mvc_cli("add", "many")
        want = expected_objects(repo)
        proc = subprocess.Popen([*MVC, "push", "-j", "1"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while (
            not any(r.endswith(".pack") for r in origin.rels()) and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        partial = stored(origin)
        assert partial <= want and stoppable_manifest(repo) not in partial
        for rel in partial:  # whatever a reader finds is complete
            assert rel_of(oid_of(read_stored(origin, rel))) == rel
        mvc_cli("push")
        assert stored(origin) == want
        drop_cache(repo)
        mvc_cli("fetch")
        assert cache_objects(repo) == want

    # -- the rest of mvc uses the default remote ---------------------------------------------------
    # -- the layout marker (docs/FORMAT.md, "Layout marker") ----------------------------------------
    def test_the_first_push_writes_the_layout_marker(self, repo, mvc_cli, origin):
        from mvc.objects import layout

        make_file(repo / "m.bin", 1000)
        mvc_cli("add", "m.bin")
        assert MARKER not in origin.rels()
        mvc_cli("push")
        assert origin.read(MARKER) == layout.MARKER_BYTES
        make_file(repo / "n.bin", 1000, seed=1)
        mvc_cli("add", "n.bin")
        origin.write(MARKER, b"format = 1\n# kept as it is\n")
        mvc_cli("push")
        assert origin.read(MARKER) == b"format = 1\n# kept as it is\n"  # never rewritten

    def test_a_remote_with_a_newer_layout_is_refused(self, repo, mvc_cli, origin):
        make_file(repo / "m.bin", 1000)
        mvc_cli("add", "m.bin")
        mvc_cli("push")
        origin.write(MARKER, b"format = 6\n")
        before = origin.rels()
        make_file(repo / "n.bin", 1000, seed=1)
        mvc_cli("add", "n.bin")
        for args in (("push",), ("status", "-r", "origin"), ("fetch",), ("pull",)):
            if args == ("fetch",):
                drop_cache(repo)  # a fetch with everything cached contacts no remote
            result = mvc_cli(*args, ok=False)
            assert result.exit_code != 0, (args, result.output)
            line = one_error_line(result)
            assert MARKER in line and "format 6" in line and "upgrade mvc" in line, line
        assert origin.rels() == before  # nothing written to a refused store

    def test_a_store_that_is_not_mvcs_is_refused(self, repo, mvc_cli, origin):
        origin.write(MARKER, b"\x00 not toml")
        make_file(repo / "m.bin", 1000)
        mvc_cli("add", "m.bin")
        line = one_error_line(mvc_cli("push", ok=False))
        assert "not an mvc" in line, line
        assert origin.rels() == {MARKER}

    def test_a_location_holding_other_things_is_refused(self, repo, mvc_cli, origin):
        """No marker, and something mvc never writes at the root: not mvc's. Nothing is written to it (no
        marker, no tmp/), and the error names the place and the fix."""
        origin.write("notes.txt", b"someone else's")
        origin.write("objects/ab/cdef", b"looks like an object")
        make_file(repo / "m.bin", 1000)
        mvc_cli("add", "m.bin")
        line = one_error_line(mvc_cli("push", ok=False))
        for words in ("not empty and not an mvc remote", "notes.txt", "point the remote at an empty location"):
            assert words in line, line
        assert origin.rels() == {"notes.txt", "objects/ab/cdef"}
        assert origin.open_uploads() == set()
        origin.delete("notes.txt")  # what is left is what a remote from before markers holds
        mvc_cli("push")
        assert MARKER in origin.rels() and stored(origin) == expected_objects(repo) | {"objects/ab/cdef"}

    def test_a_remote_from_before_markers_is_used_as_it_is(self, repo, mvc_cli, origin):
        make_smalls(repo, 20)
        make_file(repo / "m.bin", 1000)
        mvc_cli("add", "many", "m.bin")
        mvc_cli("push")
        origin.delete(MARKER)  # objects/ and packs/ only: as mvc wrote remotes before markers
        make_file(repo / "n.bin", 1000, seed=1)
        mvc_cli("add", "n.bin")
        assert "pushed 1 object" in mvc_cli("push").output
        assert MARKER in origin.rels() and stored(origin) == expected_objects(repo)

    def test_checkout_and_get_fetch_what_the_cache_lacks(self, repo, mvc_cli, origin):
        make_models(repo)
        model = (repo / "model.bin").read_bytes()
        mvc_cli("add", "model.bin", "data")
        git(repo, "commit", "-q", "-m", "models")
        mvc_cli("push")
        drop_cache(repo)
        mvc_cli("get", "model.bin", "-o", str(repo.parent / "copy.bin"))
        assert (repo.parent / "copy.bin").read_bytes() == model
        mvc_cli("get", "data", "-o", str(repo.parent / "data-copy"))
        assert (repo.parent / "data-copy" / "sub" / "nested.txt").exists()
        drop_cache(repo)
        (repo / "model.bin").unlink()
        import shutil

        shutil.rmtree(repo / "data")
        mvc_cli("checkout")
        assert (repo / "model.bin").read_bytes() == model
        assert (repo / "data" / "sub" / "nested.txt").exists()

    def test_status_remote(self, repo, mvc_cli, origin):
        import json

        make_models(repo)
        mvc_cli("add", "model.bin", "data")
        out = mvc_cli("status", "-r", "origin").output
        assert "model.bin: not pushed to origin (1 object)" in out
        assert f"data: not pushed to origin ({len(expected_objects(repo)) - 1} objects)" in out
        mvc_cli("push")
        assert mvc_cli("status", "-r", "origin").output.splitlines() == ["data: up to date", "model.bin: up to date"]
        drop_cache(repo)
        rows = {r["path"]: r for r in json.loads(mvc_cli("status", "-r", "origin", "--json").output)}
        assert rows["model.bin"]["remote"] == {
            "path": "model.bin",
            "remote": "origin",
            "not_pushed": 0,
            "not_fetched": 1,
            "missing": 0,
        }
        assert "not fetched from origin" in mvc_cli("status", "-r", "origin").output

    # -- chunked objects (docs/FORMAT.md, "Chunked objects") ----------------------------------------
    # Files of CHUNK_FROM (16 MiB) and more go up as chunks and deltas in packs plus a recipe. The round trip
    # uses a real 17 MiB model; the other tests lower CHUNK_FROM (``small_chunks``) so that models of a few
    # MiB are chunked, the chunker's 64 KiB average unchanged.
    def test_chunked_round_trip(self, repo, mvc_cli, origin):
        from mvc.objects import layout, pack

        data = write_model(repo / "model.safetensors", model_tensors(1, n=4, elements=(17 << 20) // 8))
        assert len(data) > 17 << 20
        oid = oid_of(data)
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v1")
        assert "pushed 1 object (17.0 MiB)" in mvc_cli("push").output
        rels = contents(origin)
        r = recipe_of(origin, oid)
        assert r.size == len(data) and r.bases == [] and {e.kind for e in r.entries} == {"c"}
        names = pack.names_in(rels)
        assert rels == {MARKER, recipe_rel(oid)} | {pack.pack_rel(n) for n in names} | {
            pack.index_rel(n) for n in names
        }
        # 16 MiB a pack; on a directory, a new file's chunks are one pack, the file itself (kernel copies), named
        # by its own digest
        assert {e.pack for e in r.entries} == names and len(names) == (1 if isinstance(origin, LocalBackend) else 2)
        if isinstance(origin, LocalBackend):
            assert names == {oid.split(":")[1]} and origin.read(pack.pack_rel(oid.split(":")[1])) == data
        assert not origin.open_uploads()
        assert not any(rel.startswith("objects/") for rel in rels)  # not stored whole
        assert origin.read(MARKER) == layout.marker_bytes(2)
        assert rebuilt(origin, r) == data  # the recipe, read as FORMAT.md says, gives the file
        assert "nothing to push" in mvc_cli("push").output
        assert "nothing to push" in mvc_cli("push", "--verify-remote").output  # a recipe makes it present
        assert mvc_cli("status", "-r", "origin").output.splitlines() == ["model.safetensors: up to date"]

        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        assert "fetched 1 object (17.0 MiB)" in mvc_cli("pull").output
        assert (repo / "model.safetensors").read_bytes() == data
        assert cache_objects(repo) == {rel_of(oid)}
        assert not any((cache_dir(repo) / "tmp").glob("*"))

    def test_a_new_file_sharing_chunks_with_another_stores_only_its_own(self, repo, mvc_cli, origin, small_chunks):
        """A new file (no earlier version) whose tensors another file on the remote has: the whole-file copy a
        directory remote starts for a new file is dropped (nothing left in tmp/), and only its new chunks are
        stored."""
        shared = model_tensors(50, n=3, elements=1 << 19)
        a = write_model(repo / "a.safetensors", shared)
        mvc_cli("add", "a.safetensors")
        git(repo, "commit", "-q", "-m", "a")
        mvc_cli("push")
        before = {rel: len(origin.read(rel)) for rel in contents(origin)}
        b = write_model(repo / "b.safetensors", [*shared, *model_tensors(51, n=1, elements=1 << 18)])
        mvc_cli("add", "b.safetensors")
        git(repo, "commit", "-q", "-m", "b")
        assert "pushed 1 object" in mvc_cli("push").output
        grown = sum(len(origin.read(rel)) for rel in contents(origin) - set(before))
        assert grown < (len(b) - len(a)) * 1.2 + (200 << 10)  # the new tensor, the header, the recipe and index
        assert not origin.open_uploads()
        fresh_clone(repo)
        for name in ("a.safetensors", "b.safetensors"):
            (repo / name).unlink()
        mvc_cli("pull")
        assert (repo / "a.safetensors").read_bytes() == a and (repo / "b.safetensors").read_bytes() == b

    def test_only_files_of_chunk_from_bytes_and_more_are_chunked(self, repo, mvc_cli, origin, small_chunks):
        for name, size in (("below.bin", small_chunks - 1), ("at.bin", small_chunks)):
            make_file(repo / name, size, seed=size)
        mvc_cli("add", "below.bin", "at.bin")
        mvc_cli("push")
        below, at = (oid_of((repo / n).read_bytes()) for n in ("below.bin", "at.bin"))
        assert rel_of(below) in origin.rels() and recipe_rel(below) not in origin.rels()
        assert recipe_rel(at) in origin.rels() and rel_of(at) not in origin.rels()
        fresh_clone(repo)
        mvc_cli("fetch")
        assert cache_objects(repo) == {rel_of(below), rel_of(at)}

    def test_a_clone_holding_v1_fetches_little_of_v2(self, repo, mvc_cli, origin, small_chunks):
        """v2 is v1 with 4 KiB changed: its push sends a chunk or two, and a clone that has v1 rebuilds v2 from
        its own chunks and a ranged read or two, even once the packs of v1's chunks are gone from the remote."""
        from mvc.objects import pack

        tensors = model_tensors(2, n=3, elements=1 << 20)  # 6 MiB
        v1 = write_model(repo / "model.safetensors", tensors)
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v1")
        mvc_cli("push")
        v1_packs = pack.names_in(origin.rels())
        tensors[1][300_000:302_048] ^= 0x5A5A  # 4 KiB inside the second tensor
        v2 = write_model(repo / "model.safetensors", tensors)
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v2")
        assert sent_bytes(mvc_cli("push").output) < len(v2) // 20
        assert len(pack.names_in(origin.rels()) - v1_packs) == 1  # the changed chunks, in one new pack

        fresh_clone(repo)  # another clone, which fetched v1 before v2 was pushed
        mvc_cli("fetch", "--rev", "HEAD~1")
        assert cache_objects(repo) == {rel_of(oid_of(v1))}
        (repo / "model.safetensors").unlink()
        out = mvc_cli("pull").output
        assert "fetched 1 object" in out and sent_bytes(out) < len(v2) // 20, out
        assert (repo / "model.safetensors").read_bytes() == v2
        # the proof that v1's chunks came from the cache: without the packs that hold them, v2 still rebuilds
        for name in v1_packs:
            origin.delete(pack.pack_rel(name))
            origin.delete(pack.index_rel(name))
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        line = one_error_line(mvc_cli("pull", ok=False))  # a clone without v1 needs them
        assert any(pack.pack_rel(n) in line for n in v1_packs), line
        fresh_clone(repo)
        install_in_cache(repo, v1)
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_fine_tune_is_stored_as_deltas(self, repo, mvc_cli, origin, small_chunks):
        v1, v2, grown, r = pushed_on_v1(repo, mvc_cli, origin, model_tensors(3, n=3, elements=1 << 19), 4)
        assert grown < len(v2) * 0.3, (grown, len(v2))
        deltas = [e for e in r.entries if e.kind == "d"]
        assert sum(e.size for e in deltas) == 3 * (1 << 20)  # every tensor, the header aside
        assert {(e.base, e.lane, e.depth, e.codec) for e in deltas} == {(oid_of(v1), 2, 1, "zd")}
        assert oid_of(v1) in r.bases
        assert rebuilt(origin, r, {oid_of(v1): v1}) == v2
        assert b"format = 2" in origin.read(MARKER)  # dense deltas only: an mvc that reads format 2 reads them

        fresh_clone(repo)
        mvc_cli("get", "model.safetensors", "-o", str(repo.parent / "copy"))
        assert (repo.parent / "copy").read_bytes() == v2
        drop_cache(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")  # v1 is not in the cache either: the bases of v2's deltas come from v1's chunks
        assert (repo / "model.safetensors").read_bytes() == v2
        assert cache_objects(repo) == {rel_of(oid_of(v2))}
        mvc_cli("fetch", "--rev", "HEAD~1")
        assert (cache_dir(repo) / rel_of(oid_of(v1))).read_bytes() == v1

    def test_a_light_fine_tune_is_stored_as_sparse_deltas(self, repo, mvc_cli, origin, small_chunks, monkeypatch):
        """A fine-tune that leaves most values as they were (about 1 % of bf16 values move at relative updates
        of 1e-3) is stored as sparse deltas, under layout format 3, and read back by every path."""
        from mvc.objects import layout

        v1, v2, grown, r = pushed_on_v1(repo, mvc_cli, origin, model_tensors(7, n=3, elements=1 << 19), 8, 0.01)
        assert grown < len(v2) * 0.03, (grown, len(v2))
        deltas = [e for e in r.entries if e.kind == "d"]
        assert sum(e.size for e in deltas) == 3 * (1 << 20)
        assert {(e.base, e.codec) for e in deltas} == {(oid_of(v1), "zs")}
        assert rebuilt(origin, r, {oid_of(v1): v1}) == v2
        assert layout.check_marker(origin.read(MARKER), "marker") == layout.SPARSE  # raised before the recipe

        windowed = spy_windows(monkeypatch)
        fresh_clone(repo)
        mvc_cli("get", "model.safetensors", "-o", str(repo.parent / "copy"))
        assert (repo.parent / "copy").read_bytes() == v2
        drop_cache(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2
        assert sum(windowed) == 2 * sum(e.size for e in deltas)  # each read patched as v1's chunks came, twice

        # an mvc that reads layout formats 1 and 2 only refuses the remote, naming the upgrade, and writes nothing
        monkeypatch.setattr(layout, "FORMATS", (1, 2))
        drop_cache(repo)
        (repo / "model.safetensors").unlink()
        line = one_error_line(mvc_cli("pull", ok=False))
        assert MARKER in line and "format 3" in line and "upgrade mvc" in line, line
        assert not (repo / "model.safetensors").exists()

    def test_no_deltas_against_a_version_the_remote_lacks(self, repo, mvc_cli, origin, small_chunks):
        """v1 was committed but never pushed: v2 cannot be based on it, or no clone could rebuild v2."""
        base = model_tensors(5, n=2, elements=1 << 19)
        write_model(repo / "model.safetensors", base)
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v1")
        v2 = write_model(repo / "model.safetensors", fine_tune(base, 6))
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v2")
        mvc_cli("push")
        assert {e.kind for e in recipe_of(origin, oid_of(v2)).entries} == {"c"}
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_history_pushed_at_once_is_stored_as_deltas(self, repo, mvc_cli, origin, small_chunks):
        """Three fine-tunes committed, then pushed by one --all-commits (newest first): each version goes up after
        the one it is stored against, so each but the first is deltas, and a fresh clone reads every one back."""
        tensors = model_tensors(9, n=2, elements=1 << 19)
        versions = []
        for seed in (1, 2, 3):
            tensors = fine_tune(tensors, seed, 0.01) if versions else tensors
            versions.append(write_model(repo / "model.safetensors", tensors))
            mvc_cli("add", "model.safetensors")
            git(repo, "commit", "-q", "-m", f"v{seed}")
        mvc_cli("push", "--all-commits")
        v1, v2, v3 = versions
        assert {(e.kind, e.base) for e in recipe_of(origin, oid_of(v2)).entries if e.kind == "d"} == {("d", oid_of(v1))}
        assert {(e.kind, e.base) for e in recipe_of(origin, oid_of(v3)).entries if e.kind == "d"} == {("d", oid_of(v2))}
        assert sum(len(origin.read(rel)) for rel in origin.rels()) < len(v1) * 1.2
        fresh_clone(repo)
        for rev, data in zip(("HEAD~2", "HEAD~1", "HEAD"), versions, strict=True):
            out = repo.parent / f"copy-{rev}"
            mvc_cli("get", "model.safetensors", "--rev", rev, "-o", str(out))
            assert out.read_bytes() == data

    # damage: each gives one error line naming what is damaged, and writes nothing to the workspace or cache
    def test_flipped_byte_in_a_chunk_is_refused(self, repo, mvc_cli, origin, small_chunks):
        from mvc.objects import pack

        v1, _ = push_v1(repo, mvc_cli)
        r = recipe_of(origin, oid_of(v1))
        victim = r.entries[len(r.entries) // 2]
        data = bytearray(origin.read(pack.pack_rel(victim.pack)))
        data[victim.offset + 7] ^= 1
        origin.write(pack.pack_rel(victim.pack), bytes(data))
        line = pull_fails(repo, mvc_cli, oid_of(v1))
        assert "corrupt" in line and pack.pack_rel(victim.pack) in line and victim.oid in line, line

    def test_recipe_naming_a_pack_that_is_gone(self, repo, mvc_cli, origin, small_chunks):
        from mvc.objects import pack

        v1, _ = push_v1(repo, mvc_cli)
        (name,) = {e.pack for e in recipe_of(origin, oid_of(v1)).entries}
        origin.delete(pack.pack_rel(name))
        origin.delete(pack.index_rel(name))
        line = pull_fails(repo, mvc_cli, oid_of(v1))
        assert pack.pack_rel(name) in line and "not there" in line, line

    def test_recipe_entry_past_its_packs_end(self, repo, mvc_cli, origin, small_chunks):
        from mvc.objects import pack

        v1, _ = push_v1(repo, mvc_cli, one_pack=False)
        oid = oid_of(v1)
        r = recipe_of(origin, oid)
        size = len(origin.read(pack.pack_rel(r.entries[-1].pack)))
        last = r.entries[-1]._replace(offset=size + (4 << 20))  # wholly past the end: a ranged read of nothing
        origin.write(recipe_rel(oid), render(r, [*r.entries[:-1], last]))
        line = pull_fails(repo, mvc_cli, oid)
        assert pack.pack_rel(last.pack) in line and "cut short" in line, line
        middle = r.entries[-1]._replace(offset=size - 10)  # partly past the end
        origin.write(recipe_rel(oid), render(r, [*r.entries[:-1], middle]))
        line = pull_fails(repo, mvc_cli, oid)
        assert pack.pack_rel(last.pack) in line and "cut short" in line, line

    def test_garbage_recipe_is_refused(self, repo, mvc_cli, origin, small_chunks):
        v1, _ = push_v1(repo, mvc_cli, one_pack=False)
        for garbage in (
            b"",
            b"\x00\xff" * 50,
            b"mvc-chunks 1\nsize 12\n",
            b"mvc-chunks 1\nsize 1\nc xxh128:00 1 x 0\n",
        ):
            origin.write(recipe_rel(oid_of(v1)), garbage)
            line = pull_fails(repo, mvc_cli, oid_of(v1))
            assert recipe_rel(oid_of(v1)) in line, (garbage, line)

    def test_recipe_of_another_object_is_refused(self, repo, mvc_cli, origin, small_chunks):
        """v1's recipe (sound chunks, the same size) copied over v2's: the rebuilt bytes are v1's, which the hash
        of the whole object refuses before anything is placed."""
        v1, v2 = push_fine_tune(repo, mvc_cli)
        origin.write(recipe_rel(oid_of(v2)), origin.read(recipe_rel(oid_of(v1))))
        held = repo.parent / "held"
        shutil.copytree(cache_dir(repo), held)
        line = pull_fails(repo, mvc_cli, oid_of(v2))
        assert "corrupt" in line and recipe_rel(oid_of(v2)) in line, line
        # the fix it names mends the remote where a cache holds v2 (a push finds the recipe sound: sends nothing)
        assert "'mvc verify -r origin --repair --all-tags' on a machine whose cache holds them" in line, line
        drop_cache(repo)
        shutil.copytree(held, cache_dir(repo))
        mvc_cli("verify", "-r", "origin", "--repair", "--all-tags", ok=False)  # exit 1: it found v2 corrupt there
        fresh_clone(repo)
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_delta_that_does_not_decode_names_the_fix_that_mends_it(self, repo, mvc_cli, origin, small_chunks):
        """v2's chunk list crafted to one delta, named by its hash, whose frame declares another size: refused with
        one line naming verify --repair (the chunk list parses and its pack is there: a push sends nothing), which
        mends the remote from a cache that holds v2."""
        from mvc.objects import delta, pack

        v1, v2 = push_fine_tune(repo, mvc_cli)
        bad = delta.encode(v1[:4096], v2[:4096], 2)  # a sound frame of 4 KiB, for a delta of all of v2
        name, data, index, entries = pack.build([(oid_of(bad), bad)])
        origin.write(pack.pack_rel(name), data)
        origin.write(pack.index_rel(name), index)
        entry = recipe_entry("d", oid_of(bad), 0, len(v2), name, entries[0].offset, len(bad), 2, 1, oid_of(v1), 0)
        origin.write(recipe_rel(oid_of(v2)), render_parts(len(v2), [], [entry]))
        held = repo.parent / "held"
        shutil.copytree(cache_dir(repo), held)
        line = pull_fails(repo, mvc_cli, oid_of(v2))
        assert "'mvc verify -r origin --repair --all-tags' on a machine whose cache holds it" in line, line
        assert "nothing to push" in mvc_cli("push", "--verify-remote").output  # what a push makes of it
        drop_cache(repo)
        shutil.copytree(held, cache_dir(repo))
        mvc_cli("verify", "-r", "origin", "--repair", "--all-tags", ok=False)
        fresh_clone(repo)
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_lone_pack_of_another_size_is_refused_before_it_is_copied(self, repo, mvc_cli, origin, small_chunks):
        """The pack that is a new file, replaced on the remote by a longer one: not copied whole (its size is
        refused first); its chunk list reads the ranges it names there, each checked, as for a pack that hashes
        wrong; without a chunk list, refused by its size."""
        from mvc.objects import pack

        v1, _ = push_v1(repo, mvc_cli)
        rel = pack.pack_rel(oid_of(v1)[len("xxh128:") :])
        assert origin.read(rel) == v1
        origin.write(rel, v1 + bytes(1 << 20))
        fresh_clone(repo)
        (repo / "model.safetensors").unlink(missing_ok=True)
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v1
        origin.delete(recipe_rel(oid_of(v1)))
        line = pull_fails(repo, mvc_cli, oid_of(v1))
        assert f"holds {len(v1) + (1 << 20)} bytes, but the object has {len(v1)}" in line and rel in line, line

    def test_a_damaged_chunk_of_a_deltas_base_is_named_with_the_base(self, repo, mvc_cli, origin, small_chunks):
        """A flipped byte in a chunk of v1 on the remote, read as the base of v2's deltas: the error names the pack,
        v1 (the version to push again) and v2 (the one being read)."""
        v1, v2 = push_fine_tune(repo, mvc_cli, one_pack=False)
        rel = flip_in_largest_chunk(origin, oid_of(v1))
        line = pull_fails(repo, mvc_cli, oid_of(v2))
        assert f"through its deltas' base {oid_of(v1)}" in line and "verify -r origin --repair" in line, line
        assert rel in line and oid_of(v1)[7:19] in line and oid_of(v2)[7:19] in line, line

    def test_a_damaged_chunk_under_sparse_deltas_is_named_with_the_base(
        self, repo, mvc_cli, origin, small_chunks, monkeypatch
    ):
        """v2's sparse deltas are patched onto v1's bytes as they come from v1's packs, a window at a time, not
        checked chunk by chunk: a flipped byte there makes the rebuilt file fail its hash, and the pull then names
        the damaged chunk's pack and v1, writing nothing."""
        v1, v2, _, r = pushed_on_v1(repo, mvc_cli, origin, model_tensors(9, n=3, elements=1 << 19), 10, 0.01)
        assert {e.codec for e in r.entries if e.kind == "d"} == {"zs"}
        rel = flip_in_largest_chunk(origin, oid_of(v1))
        windowed = spy_windows(monkeypatch)
        line = pull_fails(repo, mvc_cli, oid_of(v2))
        assert windowed, "the base was read through the window"
        assert f"through its deltas' base {oid_of(v1)}" in line and "verify -r origin --repair" in line, line
        assert rel in line and oid_of(v2)[7:19] in line, line

    def test_get_by_url_rebuilds_sparse_deltas_through_the_window(
        self, repo, mvc_cli, origin, small_chunks, monkeypatch, tmp_path
    ):
        """``mvc get --repo`` (no clone: on S3 the botocore reader, its response bodies read into the window)
        rebuilds v2 and v1 exactly, v2's sparse deltas patched as v1's bytes stream in."""
        tensors = model_tensors(17, n=3, elements=1 << 19)
        tensors[2] = tensors[0].copy()  # (v1's pack is not v1: its chunks are read in stretches)
        v1, v2, _, r = pushed_on_v1(repo, mvc_cli, origin, tensors, 18, 0.01)
        git(repo, "tag", "v1", "HEAD~1")
        windowed = spy_windows(monkeypatch)
        for rev, want in (("HEAD", v2), ("v1", v1)):
            out = tmp_path / f"{rev}.safetensors"
            mvc_cli("get", "--repo", str(repo), "model.safetensors", "--rev", rev, "-o", str(out))
            assert out.read_bytes() == want, rev
        assert sum(windowed) == sum(e.size for e in r.entries if e.kind == "d")

    def test_a_rotten_cache_copy_under_sparse_deltas_is_read_around(self, repo, mvc_cli, origin, small_chunks):
        """v1's copy in the cache has rotted: the rebuild of v2 moves it aside, then reads v1's bytes from the
        remote, none from the file it moved (v1 is read through its chunk list: its pack is not v1)."""
        tensors = model_tensors(11, n=3, elements=1 << 19)
        tensors[2] = tensors[0].copy()
        v1, v2, _, _ = pushed_on_v1(repo, mvc_cli, origin, tensors, 12, 0.01)
        fresh_clone(repo)
        rotten = bytearray(v1)
        rotten[len(v1) // 2] ^= 0x40
        install_in_cache(repo, bytes(rotten), oid_of(v1))
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_sparse_deltas_read_the_pack_that_is_their_base(self, repo, mvc_cli, origin, small_chunks):
        """v1's chunks made one pack that is v1 itself: v2's sparse deltas read their base from it, on every store,
        not through v1's chunk list (here damaged, which does not matter)."""
        from mvc.objects import pack

        v1, v2, _, _ = pushed_on_v1(repo, mvc_cli, origin, model_tensors(13, n=3, elements=1 << 19), 14, 0.01)
        assert pack.pack_rel(oid_of(v1).split(":", 1)[1]) in origin.rels()
        origin.write(recipe_rel(oid_of(v1)), b"mvc garbage\n")
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    @pytest.mark.parametrize("one_pack", [True, False])
    def test_a_pack_cut_short_under_sparse_deltas_is_named(self, repo, mvc_cli, origin, small_chunks, one_pack):
        """The pack holding v1's bytes cut short (v1 itself, or a pack of its chunks): the pull names that pack and
        v1 and says to mend it from a cache that holds v1, not to push v2 again."""
        from mvc.objects import pack

        tensors = model_tensors(15, n=3, elements=1 << 19)
        if not one_pack:
            tensors[2] = tensors[0].copy()
        v1, v2, _, _ = pushed_on_v1(repo, mvc_cli, origin, tensors, 16, 0.01)
        r1 = recipe_of(origin, oid_of(v1))
        last = max(r1.entries, key=lambda e: e.offset + e.stored)
        rel = pack.pack_rel(last.pack)
        origin.write(rel, origin.read(rel)[: last.offset + last.stored // 2])
        line = pull_fails(repo, mvc_cli, oid_of(v2))
        assert rel in line and "cut short" in line and "verify -r origin --repair" in line, line
        assert f"through its deltas' base {oid_of(v1)}" in line, line

    def test_delta_whose_base_is_gone(self, repo, mvc_cli, origin, small_chunks):
        v1, v2 = push_fine_tune(repo, mvc_cli, one_pack=False)
        origin.delete(recipe_rel(oid_of(v1)))  # v1 is gone from the remote (its chunks stay, unnamed)
        line = pull_fails(repo, mvc_cli, oid_of(v2))
        assert oid_of(v1) in line and "not there" in line, line

    @pytest.mark.parametrize("one_pack", [False, True])
    def test_verify_remote_pushes_again_a_version_whose_deltas_base_is_gone(
        self, repo, mvc_cli, origin, small_chunks, one_pack
    ):
        """v1 deleted on the remote (its recipe, or the lone pack that is the file): v2's own recipe and packs are
        all there, but no reader without v1 could rebuild it. The journal cannot know; --verify-remote follows
        the deltas to their base, and pushes v2 again, now readable alone."""
        from mvc.objects import pack

        v1, v2 = push_fine_tune(repo, mvc_cli, one_pack=one_pack)
        assert {e.kind for e in recipe_of(origin, oid_of(v2)).entries} >= {"d"}
        if one_pack:
            origin.delete(pack.pack_rel(oid_of(v1)[len("xxh128:") :]))
        origin.delete(recipe_rel(oid_of(v1)))
        assert "nothing to push" in mvc_cli("push").output
        assert "pushed 1 object" in mvc_cli("push", "--verify-remote").output
        assert "nothing to push" in mvc_cli("push", "--verify-remote").output
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_the_pack_that_is_a_file_is_read_whole(self, repo, mvc_cli, origin, small_chunks):
        """A new file's one pack is the file (named by its digest): pull reads it there, for the file itself and
        as the base of a fine-tune's deltas, with no recipe; a flipped byte in it is refused, nothing placed."""
        from mvc.objects import pack

        v1, v2 = push_fine_tune(repo, mvc_cli)
        rel = pack.pack_rel(oid_of(v1)[len("xxh128:") :])
        assert origin.read(rel) == v1
        origin.delete(recipe_rel(oid_of(v1)))  # not needed by either read below
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")  # v2: deltas on v1, read from its pack
        assert (repo / "model.safetensors").read_bytes() == v2
        git(repo, "checkout", "-q", "HEAD~1")
        mvc_cli("pull")  # v1, copied from its pack
        assert (repo / "model.safetensors").read_bytes() == v1
        git(repo, "checkout", "-q", "-")

        bad = bytearray(v1)
        bad[len(bad) // 2] ^= 1
        origin.write(rel, bytes(bad))
        line = pull_fails(repo, mvc_cli, oid_of(v2))  # its base's bytes are wrong: the rebuilt file's hash says so
        assert oid_of(v2) in line and oid_of(v1) in line and "corrupt" in line, line

    def test_verify_r_reads_a_deltas_base_from_the_remote(self, repo, mvc_cli, origin, small_chunks):
        """verify -r rebuilds a delta version from the remote's bytes alone, its base's too (the cache holds the base
        sound: read from there, a damaged base on the remote went unseen, and a fresh clone could not pull)."""
        from mvc.objects import pack

        v1, _ = push_fine_tune(repo, mvc_cli)
        bad = bytearray(v1)
        bad[len(bad) // 2] ^= 1
        origin.write(pack.pack_rel(oid_of(v1)[len("xxh128:") :]), bytes(bad))  # the base's one pack
        r = mvc_cli("verify", "-r", "origin", "--rev", "HEAD", ok=False)
        assert r.exit_code == 1 and "corrupt on remote" in r.stdout, r.output

    def test_a_cycle_of_deltas_is_refused(self, repo, mvc_cli, origin, small_chunks):
        """Two recipes crafted on the store whose deltas are based on each other: the depth rule ends the
        chain at once, however deep each says it is."""
        from mvc.objects import delta, pack

        v1, v2 = push_fine_tune(repo, mvc_cli)
        o1, o2 = oid_of(v1), oid_of(v2)
        for rel in (pack.pack_rel(o1[len("xxh128:") :]), pack.index_rel(o1[len("xxh128:") :])):
            origin.delete(rel)  # v1's one pack, which is v1 itself: a reader would take it whole, no cycle
        d1, d2 = delta.encode(v1, v2, 2), delta.encode(v2, v1, 2)  # v1 from v2, v2 from v1
        name, data, index, entries = pack.build([(oid_of(d1), d1), (oid_of(d2), d2)])
        origin.write(pack.pack_rel(name), data)
        origin.write(pack.index_rel(name), index)
        at = {e.oid: e.offset for e in entries}
        for depth1, depth2 in ((1, 1), (2, 1), (4, 4)):
            for oid, d, depth, base in ((o1, d1, depth1, o2), (o2, d2, depth2, o1)):
                entry = recipe_entry("d", oid_of(d), 0, len(v1), name, at[oid_of(d)], len(d), 2, depth, base, 0)
                origin.write(recipe_rel(oid), render_parts(len(v1), [], [entry]))
            line = pull_fails(repo, mvc_cli, o2)
            assert "cycle" in line, (depth1, depth2, line)

    def test_deltas_that_each_read_a_little_of_a_large_delta_are_bounded(
        self, repo, mvc_cli, origin, small_chunks, monkeypatch
    ):
        """Crafted on the store: Y, one delta over all of v1; X, many one-byte deltas each based on another byte of
        Y. Every X delta decodes Y's whole delta again and reads all of v1 for it: without a bound, a file of N bytes
        costs N times v1. The reads of bases are bounded by the object's size (BASE_READS times it, plus
        BASE_SLACK, made small here): refused with one line, nothing placed, by pull and by a stream."""
        import mvc
        from mvc.format import pointer as ptrfmt
        from mvc.objects import chunked, delta, pack

        v1, _ = push_fine_tune(repo, mvc_cli)
        y = bytes(b ^ 1 for b in v1)
        dy, dx = delta.encode(y, v1, 1), delta.encode(b"\x01", b"\x01", 1)
        name, data, index, entries = pack.build([(oid_of(dy), dy), (oid_of(dx), dx)])
        origin.write(pack.pack_rel(name), data)
        origin.write(pack.index_rel(name), index)
        at = {e.oid: e.offset for e in entries}
        oy = oid_of(y)
        origin.write(
            recipe_rel(oy),
            render_parts(
                len(y),
                [],
                [recipe_entry("d", oid_of(dy), 0, len(y), name, at[oid_of(dy)], len(dy), 1, 1, oid_of(v1), 0)],
            ),
        )
        n = 64
        x = bytes(y[(2 * k) % len(y)] for k in range(n))
        xs = [
            recipe_entry("d", oid_of(dx), k, 1, name, at[oid_of(dx)], len(dx), 1, 2, oy, (2 * k) % len(y))
            for k in range(n)
        ]
        origin.write(recipe_rel(oid_of(x)), render_parts(n, [], xs))
        (repo / "x.bin.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("file", oid_of(x), n)))
        git(repo, "add", "x.bin.mvc")
        git(repo, "commit", "-q", "-m", "x")
        monkeypatch.setattr(chunked, "BASE_SLACK", len(v1) * 3)
        fresh_clone(repo)
        (repo / "x.bin").unlink(missing_ok=True)
        line = one_error_line(mvc_cli("pull", "x.bin", ok=False))
        assert "read more than" in line and "of their bases" in line and oid_of(x) in line, line
        assert not (repo / "x.bin").exists()
        with pytest.raises(mvc.errors.RemoteCorrupt, match="of their bases"):
            mvc.read_bytes("x.bin")

    def test_a_stream_of_a_delta_version_reads_it_again_and_again(
        self, repo, mvc_cli, origin, small_chunks, monkeypatch
    ):
        """The bound on the reads of bases is each read's, not the stream's: a loader that reads a sound delta
        version many times through one handle (an epoch loop, seeks) is never taken for a crafted chain."""
        import mvc
        from mvc.objects import chunked

        _, v2 = push_fine_tune(repo, mvc_cli)
        fresh_clone(repo)
        (repo / "model.safetensors").unlink(missing_ok=True)
        monkeypatch.setattr(chunked, "BASE_SLACK", 0)
        with mvc.open("model.safetensors") as f:
            for _ in range(40):
                f.seek(0)
                assert f.read() == v2

    def test_killed_chunked_push_leaves_a_readable_remote(self, repo, mvc_cli, origin, small_chunks):
        """kill -9 part way through a chunked push (packs of 256 KiB here, so there are many): what was pushed
        before still fetches, the killed object is absent or complete, and a push again completes it without
        sending the packs that were complete."""
        from mvc.objects import pack

        needs_other_processes(origin)
        v1, _ = push_v1(repo, mvc_cli)
        v2 = write_model(repo / "model.safetensors", model_tensors(7, n=4, elements=1 << 19))  # 4 MiB, all new
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v2")
        before = pack.names_in(origin.rels())
        proc = subprocess.Popen(
            [*CHUNKED_SLOWLY, "push", "-j", "1"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while len(pack.names_in(origin.rels()) - before) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate()
        done = pack.names_in(origin.rels()) - before
        assert done, f"no pack was pushed before the kill: nothing was tested ({err.decode()})"
        complete = recipe_rel(oid_of(v2)) in origin.rels()
        fresh_clone(repo)
        mvc_cli("fetch", "--rev", "HEAD~1")  # what was pushed before reads as before
        assert (cache_dir(repo) / rel_of(oid_of(v1))).read_bytes() == v1
        if complete:  # (a fast store may have finished first)
            mvc_cli("fetch")
            assert (cache_dir(repo) / rel_of(oid_of(v2))).read_bytes() == v2
        else:
            line = one_error_line(mvc_cli("fetch", ok=False))
            assert "not on remote origin" in line, line
        mvc_cli("add", "model.safetensors")  # (a fresh clone's cache lacks it)
        out = mvc_cli("push").output
        if not complete:
            assert sent_bytes(out) < len(v2) - len(done) * (200 << 10), out  # the complete packs are not sent again
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_chunks_false_keeps_whole_objects_then_a_chunked_push_raises_the_format(
        self, repo, mvc_cli, origin, small_chunks
    ):
        from mvc.objects import layout

        mvc_cli("remote", "modify", "origin", "chunks", "false")
        base = model_tensors(8, n=2, elements=1 << 19)
        v1 = write_model(repo / "model.safetensors", base)
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v1")
        mvc_cli("push")
        assert contents(origin) == {MARKER, rel_of(oid_of(v1))}
        assert origin.read(MARKER) == layout.marker_bytes(1)
        assert origin.read(rel_of(oid_of(v1))) == v1

        mvc_cli("remote", "modify", "origin", "--unset", "chunks")
        v2 = write_model(repo / "model.safetensors", fine_tune(base, 9))
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v2")
        mvc_cli("push")
        assert origin.read(MARKER) == layout.marker_bytes(2)
        deltas = [e for e in recipe_of(origin, oid_of(v2)).entries if e.kind == "d"]
        assert deltas and {(e.base, e.depth) for e in deltas} == {(oid_of(v1), 1)}  # based on the whole object
        assert origin.read(rel_of(oid_of(v1))) == v1  # left as it was

        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2
        mvc_cli("fetch", "--rev", "HEAD~1")
        assert (cache_dir(repo) / rel_of(oid_of(v1))).read_bytes() == v1

    def test_add_base_chooses_the_delta_base(self, repo, mvc_cli, origin, small_chunks):
        """v3 is fine-tuned from v1, not from v2 (an unrelated model): ``mvc add --base`` says so, and the push
        stores v3 as deltas against v1."""
        base = model_tensors(10, n=2, elements=1 << 19)
        versions = [base, model_tensors(11, n=2, elements=1 << 19)]
        datas = []
        for i, tensors in enumerate(versions):
            datas.append(write_model(repo / "model.safetensors", tensors))
            mvc_cli("add", "model.safetensors")
            git(repo, "commit", "-q", "-m", f"v{i + 1}")
            mvc_cli("push")
        before = origin.rels()
        v3 = write_model(repo / "model.safetensors", fine_tune(base, 12))
        mvc_cli("add", "model.safetensors", "--base", "HEAD~1")
        git(repo, "commit", "-q", "-m", "v3")
        mvc_cli("push")
        r = recipe_of(origin, oid_of(v3))
        deltas = [e for e in r.entries if e.kind == "d"]
        assert deltas and {e.base for e in deltas} == {oid_of(datas[0])}
        assert sum(e.size for e in deltas) == 2 * (1 << 20)
        assert sum(len(origin.read(rel)) for rel in origin.rels() - before) < len(v3) * 0.3
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v3

    def test_without_add_base_the_previous_version_is_the_base(self, repo, mvc_cli, origin, small_chunks):
        """The same three versions without --base: v3 is based on v2, where a delta does not pay: chunks."""
        base = model_tensors(10, n=2, elements=1 << 19)
        for i, tensors in enumerate([base, model_tensors(11, n=2, elements=1 << 19), fine_tune(base, 12)]):
            data = write_model(repo / "model.safetensors", tensors)
            mvc_cli("add", "model.safetensors")
            git(repo, "commit", "-q", "-m", f"v{i + 1}")
            mvc_cli("push")
        assert {e.kind for e in recipe_of(origin, oid_of(data)).entries} == {"c"}

    def test_the_shards_of_a_tracked_directory_are_stored_as_deltas(self, repo, mvc_cli, origin, small_chunks):
        """A sharded checkpoint tracked as one directory (``mvc add llm``): each shard of a fine-tune goes up as
        deltas against the shard at the same path in the directory's previous version; a fresh clone's pull and
        get rebuild it."""
        names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
        base = {n: model_tensors(40 + i, n=2, elements=1 << 19) for i, n in enumerate(names)}
        v1 = {n: write_model(repo / "llm" / n, base[n]) for n in names}
        mvc_cli("add", "llm")
        git(repo, "commit", "-q", "-m", "v1")
        mvc_cli("push")
        before = origin.rels()
        v2 = {n: write_model(repo / "llm" / n, fine_tune(base[n], 50 + i)) for i, n in enumerate(names)}
        mvc_cli("add", "llm")
        git(repo, "commit", "-q", "-m", "v2")
        out = mvc_cli("push").output
        total = sum(len(d) for d in v2.values())
        assert "pushed 3 objects" in out and sent_bytes(out) < total * 0.3, (out, total)
        assert sum(len(origin.read(rel)) for rel in origin.rels() - before) < total * 0.3
        for n in names:
            deltas = [e for e in recipe_of(origin, oid_of(v2[n])).entries if e.kind == "d"]
            assert deltas and {e.base for e in deltas} == {oid_of(v1[n])}, n

        fresh_clone(repo)
        mvc_cli("get", "llm", "-o", str(repo.parent / "copy"))
        assert {n: (repo.parent / "copy" / n).read_bytes() for n in names} == v2
        drop_cache(repo)
        for n in names:
            (repo / "llm" / n).unlink()
        mvc_cli("pull")
        assert {n: (repo / "llm" / n).read_bytes() for n in names} == v2

        tuned = fine_tune(base[names[0]], 50)
        tuned[1][300_000:302_048] ^= 0x5A5A  # v3: 4 KiB of the first shard changed
        v3 = write_model(repo / "llm" / names[0], tuned)
        assert v3 != v2[names[0]]
        mvc_cli("add", "llm")
        git(repo, "commit", "-q", "-m", "v3")
        mvc_cli("push")
        fresh_clone(repo)  # a clone that holds v2 rebuilds v3 from the chunks of the shard at the same path
        mvc_cli("fetch", "--rev", "HEAD~1")
        out = mvc_cli("fetch").output
        assert "fetched 2 objects" in out and sent_bytes(out) < len(v3) // 20, out
        assert (cache_dir(repo) / rel_of(oid_of(v3))).read_bytes() == v3

    def test_verify_remote_pushes_again_what_a_recipe_lacks(self, repo, mvc_cli, origin, small_chunks):
        """A pack that a recipe names is deleted on the remote: the journal cannot know, --verify-remote does."""
        from mvc.objects import pack

        v1, _ = push_v1(repo, mvc_cli)
        (name,) = {e.pack for e in recipe_of(origin, oid_of(v1)).entries}
        origin.delete(pack.pack_rel(name))
        origin.delete(pack.index_rel(name))
        assert "nothing to push" in mvc_cli("push").output
        assert "pushed 1 object" in mvc_cli("push", "--verify-remote").output
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v1

    def test_a_chain_of_fine_tunes_stays_within_the_delta_depth(self, repo, mvc_cli, origin, small_chunks):
        """Each version a fine-tune of the one before, pushed one at a time: deltas of deltas, 1 to 4 deep, never
        deeper; once the previous two versions are 4 deep, a version is based further down their chain (not sent
        whole), so that every version after the first costs a small share of the file; a fresh clone rebuilds the
        last one."""
        tensors = model_tensors(30, n=2, elements=1 << 19)
        depths, sent, grown = [], [], []
        held = 0
        for i in range(8):
            data = write_model(repo / "model.safetensors", tensors)
            mvc_cli("add", "model.safetensors")
            git(repo, "commit", "-q", "-m", f"v{i + 1}")
            sent.append(sent_bytes(mvc_cli("push").output))
            grown.append(sum(len(origin.read(rel)) for rel in origin.rels()) - held)
            held += grown[-1]
            entries = recipe_of(origin, oid_of(data)).entries
            depths.append(max(e.depth for e in entries))
            if i:  # every tensor as deltas: the only chunk is the header's
                assert sum(e.size for e in entries if e.kind == "c") < 1 << 10, (i, depths)
            tensors = fine_tune(tensors, 31 + i, share=0.01)  # a light fine-tune: about 1 % of values move
        assert depths[:5] == [0, 1, 2, 3, 4] and max(depths) == 4, depths
        assert all(n < len(data) / 10 for n in sent[1:] + grown[1:]), (sent, grown, len(data))
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == data

    def test_a_deep_chain_walks_past_a_version_the_cache_lacks(self, repo, mvc_cli, origin, small_chunks):
        """v5 and v6 are 4 deep, both based on v4, which the pusher's cache no longer holds: v7 is based on v3,
        further down their chain (3 deltas deep), and a fresh clone rebuilds it."""
        tensors = model_tensors(32, n=1, elements=1 << 19)
        oids = []
        for i in range(7):
            data = write_model(repo / "model.safetensors", tensors)
            oids.append(oid_of(data))
            mvc_cli("add", "model.safetensors")
            git(repo, "commit", "-q", "-m", f"v{i + 1}")
            if i == 6:
                (cache_dir(repo) / rel_of(oids[3])).unlink()
            sent = sent_bytes(mvc_cli("push").output)
            tensors = fine_tune(tensors, 33 + i, share=0.01)
        r = recipe_of(origin, oids[6])
        assert {e.base for e in r.entries if e.kind == "d"} == {oids[2]}
        assert max(e.depth for e in r.entries) == 3 and sent < len(data) / 10
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == data

    def test_repeated_chunks_and_several_large_files_in_one_push(self, repo, mvc_cli, origin, small_chunks):
        """A model whose tensors repeat (zeros, a tiled block: one chunk many times over), a plain large file and
        a directory holding a chunked file, pushed at once: each is stored once and rebuilds, the directory's
        manifest with it."""
        import numpy as np

        zeros = np.zeros(1 << 19, np.uint16)
        tiled = np.tile(model_tensors(40, n=1, elements=1 << 14)[0], 32)  # 32 KiB, 32 times
        repeated = write_model(repo / "model.safetensors", [zeros, tiled, zeros])
        plain = make_file(repo / "plain.bin", (3 << 20) // 2, seed=41).read_bytes()
        inner = write_model(repo / "ckpt" / "model.safetensors", model_tensors(42, n=2, elements=1 << 19))
        make_file(repo / "ckpt" / "config.json", 300, seed=43)
        mvc_cli("add", "model.safetensors", "plain.bin", "ckpt")
        git(repo, "commit", "-q", "-m", "three")
        assert "pushed 5 objects" in mvc_cli("push").output
        r = recipe_of(origin, oid_of(repeated))
        assert len({e.oid for e in r.entries}) < len(r.entries) // 4  # each repeated chunk is stored once
        assert not origin.open_uploads()  # (a directory's copy of the whole file, begun, is dropped)
        assert sum(len(origin.read(rel)) for rel in origin.rels()) < len(repeated) // 4 + len(plain) + len(inner) * 1.1
        assert {recipe_rel(oid_of(d)) for d in (repeated, plain, inner)} <= origin.rels()
        fresh_clone(repo)
        shutil.rmtree(repo / "ckpt")
        for name in ("model.safetensors", "plain.bin"):
            (repo / name).unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == repeated
        assert (repo / "plain.bin").read_bytes() == plain
        assert (repo / "ckpt" / "model.safetensors").read_bytes() == inner
        assert cache_objects(repo) == expected_objects(repo)

    def test_a_corrupt_chunk_in_the_readers_cache_is_not_reused(self, repo, mvc_cli, origin, small_chunks):
        """The clone holds v1 with bit rot: v2's chunks that v1 has are hashed before they are taken from it, so
        the bad one is read from the remote instead."""
        tensors = model_tensors(50, n=3, elements=1 << 19)
        v1 = write_model(repo / "model.safetensors", tensors)
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v1")
        mvc_cli("push")
        tensors[2][1000:3048] ^= 0x0101
        v2 = write_model(repo / "model.safetensors", tensors)
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v2")
        mvc_cli("push")
        fresh_clone(repo)
        damaged = bytearray(v1)
        damaged[len(v1) // 3] ^= 0xFF  # inside the first tensor, which v2 shares
        install_in_cache(repo, bytes(damaged), oid_of(v1))
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_corrupt_base_in_the_pushers_cache_is_not_published(self, repo, mvc_cli, origin, small_chunks):
        v1, tensors = push_v1(repo, mvc_cli)
        cached = cache_dir(repo) / rel_of(oid_of(v1))
        cached.chmod(0o644)
        with open(cached, "r+b") as f:  # bit rot in the cache, inside a tensor
            f.seek(len(v1) // 2)
            f.write(b"\x11")
        v2 = write_model(repo / "model.safetensors", fine_tune(tensors, 60))
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v2")
        if mvc_cli("push", ok=False).exit_code != 0:  # refused: right, if nothing was published
            assert recipe_rel(oid_of(v2)) not in origin.rels()
            return
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")  # fails: the recipe rebuilds v2 against the good v1, from a delta against the bad one
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_corrupt_base_in_the_readers_cache_does_not_stop_a_fetch(self, repo, mvc_cli, origin, small_chunks):
        v1, v2 = push_fine_tune(repo, mvc_cli)
        fresh_clone(repo)
        damaged = bytearray(v1)
        damaged[len(v1) // 2] ^= 0x11
        install_in_cache(repo, bytes(damaged), oid_of(v1))
        (repo / "model.safetensors").unlink()
        result = mvc_cli("pull", ok=False)
        assert result.exit_code == 0, result.output
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_fresh_journal_finds_chunked_objects_by_lookup_and_by_listing(
        self, repo, mvc_cli, origin, small_chunks, monkeypatch
    ):
        """A recipe makes its object present: asked for one by one, or found in a listing of recipes/ (what a
        store without cheap lookups does for many unknown objects; forced here)."""
        push_v1(repo, mvc_cli)
        for each in (64, 0):  # ask for each; list the remote
            monkeypatch.setattr("mvc.objects.transfer.EXISTS_EACH", each)
            (repo / ".mvc" / "remotes.db").unlink()
            assert mvc_cli("status", "-r", "origin").output.splitlines() == ["model.safetensors: up to date"]
            (repo / ".mvc" / "remotes.db").unlink()
            assert "nothing to push" in mvc_cli("push").output

    def test_pushing_a_lost_base_again_does_not_make_a_cycle(self, repo, mvc_cli, origin, small_chunks):
        """v2 is deltas against v1; v1's pack is lost. The fix the errors name, pushing again from a machine that
        has the files, makes both readable again."""
        from mvc.objects import pack

        v1, v2 = push_fine_tune(repo, mvc_cli)
        for name in {e.pack for e in recipe_of(origin, oid_of(v1)).entries}:
            origin.delete(pack.pack_rel(name))
        mvc_cli("push", "--all-commits", "--verify-remote")
        fresh_clone(repo)
        mvc_cli("fetch", "--rev", "HEAD~1")
        assert (cache_dir(repo) / rel_of(oid_of(v1))).read_bytes() == v1
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_corrupt_whole_base_on_the_remote_is_named(self, repo, mvc_cli, origin, small_chunks):
        mvc_cli("remote", "modify", "origin", "chunks", "false")
        v1, tensors = push_v1(repo, mvc_cli)  # stored whole
        mvc_cli("remote", "modify", "origin", "--unset", "chunks")
        v2 = write_model(repo / "model.safetensors", fine_tune(tensors, 80))
        mvc_cli("add", "model.safetensors")
        git(repo, "commit", "-q", "-m", "v2")
        mvc_cli("push")
        assert "d" in {e.kind for e in recipe_of(origin, oid_of(v2)).entries}
        damaged = bytearray(v1)
        damaged[len(v1) // 2] ^= 0x11
        origin.write(rel_of(oid_of(v1)), bytes(damaged))
        line = pull_fails(repo, mvc_cli, oid_of(v2))
        assert rel_of(oid_of(v1)) in line or oid_of(v1) in line, line

    def test_a_delta_claiming_a_terabyte_is_one_error_line(self, repo, mvc_cli, origin, small_chunks):
        import zstandard

        from mvc.objects import pack

        _, v2 = push_fine_tune(repo, mvc_cli)
        r = recipe_of(origin, oid_of(v2))
        z = zstandard.ZstdCompressor(level=3).compressobj(size=1 << 40)
        bomb = z.compress(bytes(10)) + z.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)  # a header, one block
        name, data, index, _ = pack.build([(oid_of(bomb), bomb)])
        origin.write(pack.pack_rel(name), data)
        origin.write(pack.index_rel(name), index)
        i = next(i for i, e in enumerate(r.entries) if e.kind == "d")
        entries = list(r.entries)
        entries[i] = entries[i]._replace(oid=oid_of(bomb), pack=name, offset=0, stored=len(bomb))
        origin.write(recipe_rel(oid_of(v2)), render(r, entries))
        try:
            line = pull_fails(repo, mvc_cli, oid_of(v2))
        except MemoryError:
            pytest.fail("MemoryError")
        assert oid_of(bomb) in line, line


def configure(mvc_cli, backend, name: str) -> None:
    mvc_cli("remote", "add", name, backend.url, "--default")
    for key, value in backend.options.items():
        mvc_cli("remote", "modify", name, key, value)
    if getattr(backend, "local_toml", ""):  # tables `mvc remote modify` cannot write (cwd is the repo)
        with open(".mvc/config.local.toml", "a") as f:
            f.write(backend.local_toml.format(name=name))


def make_smalls(repo: Path, n: int) -> dict[Path, bytes]:
    """many/ with n small files of different sizes: {path: bytes}."""
    return {
        p: p.read_bytes()
        for p in (make_file(repo / "many" / f"s{i:03d}.bin", 1000 + 37 * i, seed=500 + i) for i in range(n))
    }


def push_one_pack(repo: Path, mvc_cli, backend) -> str:
    """many/ of 20 small files, added and pushed: one pack (its name) and the manifest alone."""
    from mvc.objects import pack

    make_smalls(repo, 20)
    mvc_cli("add", "many")
    mvc_cli("push")
    (name,) = pack.names_in(backend.rels())
    return name


def make_file_bytes(size: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


def stoppable_manifest(repo: Path) -> str:
    from mvc.format import pointer

    return rel_of(pointer.loads((repo / "many.mvc").read_bytes()).oid)


# -- chunked objects ----------------------------------------------------------------------------------
SMALL_CHUNK_FROM = 1 << 20  # what ``small_chunks`` lowers mvc.objects.chunked.CHUNK_FROM to (from 16 MiB)
# mvc chunking files of 1 MiB and more, in packs of 256 KiB, each pack built 50 ms slower: a chunked push of
# a few MiB then lasts long enough to be killed part way
CHUNKED_SLOWLY = [
    sys.executable,
    "-c",
    "import sys, time; import mvc.objects.chunked as c, mvc.objects.pack as p; c.CHUNK_FROM = 1 << 20; "
    "p.TARGET = 256 << 10; build = p.build; p.build = lambda *a, **k: (time.sleep(0.05), build(*a, **k))[1]; "
    "from mvc.cli import main; sys.argv[0] = 'mvc'; main()",
]


def model_tensors(seed: int, n: int, elements: int) -> list:
    """n bf16 tensors (numpy uint16 arrays of their bit patterns) of trained-weight-like values."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        f = rng.standard_normal(elements, dtype=np.float32) * np.float32(0.02)
        out.append((f.view(np.uint32) >> 16).astype(np.uint16))
    return out


def pushed_on_v1(repo: Path, mvc_cli, origin, base: list, seed: int, share: float = 1.0) -> tuple:
    """Commit and push a model of the base tensors (v1), then of a fine-tune of them (v2): (v1's bytes, v2's, what
    v2's push added to the remote, v2's recipe there)."""
    v1 = write_model(repo / "model.safetensors", base)
    mvc_cli("add", "model.safetensors")
    git(repo, "commit", "-q", "-m", "v1")
    mvc_cli("push")
    before = origin.rels()
    v2 = write_model(repo / "model.safetensors", fine_tune(base, seed, share))
    mvc_cli("add", "model.safetensors")
    git(repo, "commit", "-q", "-m", "v2")
    mvc_cli("push")
    grown = sum(len(origin.read(rel)) for rel in origin.rels() - before)
    return v1, v2, grown, recipe_of(origin, oid_of(v2))


def fine_tune(tensors: list, seed: int, share: float = 1.0) -> list:
    """Every value (or about ``share`` of them, spread over every chunk) moved by one or two units in its last
    place (a relative change of about 1e-2 to 1e-3 in bf16): no chunk is shared with the base, each tensor's
    delta is small."""
    import numpy as np

    rng = np.random.default_rng(seed)
    steps = np.array([-2, -1, 1, 2])
    moved = [rng.random(t.size) < share for t in tensors]
    return [
        (t.astype(np.int32) + rng.choice(steps, t.size) * m).astype(np.uint16)
        for t, m in zip(tensors, moved, strict=True)
    ]


def model_bytes(tensors: list, meta: dict | None = None) -> bytes:
    """A safetensors file of the tensors (BF16, layerN.weight), its header padded to 8 bytes."""
    import json
    import struct

    header: dict = {"__metadata__": meta} if meta else {}
    offset = 0
    for i, t in enumerate(tensors):
        header[f"layer{i}.weight"] = {"dtype": "BF16", "shape": [t.size], "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t.tobytes() for t in tensors)


def write_model(path: Path, tensors: list, meta: dict | None = None) -> bytes:
    data = model_bytes(tensors, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # (a checked-out file may be a read-only link to the cache)
    path.write_bytes(data)
    return data


def recipe_rel(oid: str) -> str:
    digest = oid.split(":", 1)[1]
    return f"recipes/{digest[:2]}/{digest[2:]}"


def recipe_of(backend, oid: str):
    from mvc.objects import recipe

    return recipe.parse(backend.read(recipe_rel(oid)), recipe_rel(oid), oid)


def recipe_entry(*fields):
    from mvc.objects import recipe

    return recipe.Entry(*fields)


def render_parts(size: int, bases: list[str], entries: list) -> bytes:
    from mvc.objects import recipe

    return recipe.render(size, bases, entries)


def render(r, entries: list) -> bytes:
    return render_parts(r.size, r.bases, entries)


def rebuilt(backend, r, bases: dict[str, bytes] | None = None) -> bytes:
    """The bytes a recipe gives, read as docs/FORMAT.md says (deltas against the base bytes given), each
    chunk and delta checked against its oid: an independent reader of what mvc wrote."""
    from mvc.objects import delta, pack

    packs: dict[str, bytes] = {}
    out = []
    for e in r.entries:
        if e.pack not in packs:
            packs[e.pack] = backend.read(pack.pack_rel(e.pack))
        stored = packs[e.pack][e.offset : e.offset + e.stored]
        assert oid_of(stored) == e.oid
        if e.kind == "c":
            out.append(stored)
        else:
            base = (bases or {})[e.base][e.base_offset : e.base_offset + e.size]
            out.append(delta.decode(stored, base, e.lane, e.oid, None, e.codec))
        assert len(out[-1]) == e.size
    return b"".join(out)


def fresh_clone(repo: Path) -> None:
    """Make the repository look like a fresh clone of itself: no cache, no journal, no state."""
    drop_cache(repo)
    for name in ("remotes.db", "state.db"):
        (repo / ".mvc" / name).unlink(missing_ok=True)


def install_in_cache(repo: Path, data: bytes, oid: str = "") -> None:
    """Put an object in the cache as mvc does (objects/ab/cdef…, read-only): a version the clone holds (under
    another oid than its own: a cache object with bit rot)."""
    path = cache_dir(repo) / rel_of(oid or oid_of(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o444)


def sent_bytes(output: str) -> float:
    """The bytes in 'pushed 1 object (1.2 MiB) to …' or 'fetched 1 object (…) from …'."""
    import re

    m = re.search(r"(?:pushed|fetched) \d+ objects? \(([\d.]+) (B|KiB|MiB|GiB)\)", output)
    assert m, output
    return float(m.group(1)) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]


def push_v1(repo: Path, mvc_cli, one_pack: bool = True) -> tuple[bytes, list]:
    """model.safetensors (3 tensors, 3 MiB) added, committed and pushed chunked: (its bytes, its tensors).
    Its chunks are all new, so they make one pack that is the file itself, which readers take whole; with
    ``one_pack`` False, the last tensor repeats the first, so the pack is not the file and every read goes
    through the recipe (for tests of damaged recipes)."""
    tensors = model_tensors(20, n=3, elements=1 << 19)
    if not one_pack:
        tensors[2] = tensors[0].copy()
    data = write_model(repo / "model.safetensors", tensors)
    mvc_cli("add", "model.safetensors")
    git(repo, "commit", "-q", "-m", "v1")
    mvc_cli("push")
    return data, tensors


def push_fine_tune(repo: Path, mvc_cli, one_pack: bool = True) -> tuple[bytes, bytes]:
    """push_v1, then a fine-tune of it committed and pushed as deltas: (v1, v2)."""
    v1, tensors = push_v1(repo, mvc_cli, one_pack)
    v2 = write_model(repo / "model.safetensors", fine_tune(tensors, 21))
    mvc_cli("add", "model.safetensors")
    git(repo, "commit", "-q", "-m", "v2")
    mvc_cli("push")
    return v1, v2


def flip_in_largest_chunk(origin, oid: str) -> str:
    """Flip a bit in the middle of the largest chunk of object oid on the remote; returns its pack's name."""
    from mvc.objects import pack

    e = max(recipe_of(origin, oid).entries, key=lambda e: e.size)
    rel = pack.pack_rel(e.pack)
    bad = bytearray(origin.read(rel))
    bad[e.offset + e.stored // 2] ^= 1
    origin.write(rel, bytes(bad))
    return rel


def spy_windows(monkeypatch) -> list[int]:
    """The sizes of the deltas rebuilt through a window from now on, by one thread or two taking turns
    (``Rebuilder._patch_run``)."""
    from mvc.objects import chunked

    windowed: list[int] = []
    real = chunked.Rebuilder._patch_run

    def spy(self, run, *a, **k):
        done = real(self, run, *a, **k)
        if done:
            windowed.extend(e.size for e in run)
        return done

    monkeypatch.setattr(chunked.Rebuilder, "_patch_run", spy)
    return windowed


def pull_fails(repo: Path, mvc_cli, oid: str) -> str:
    """In a fresh clone, mvc pull of model.safetensors fails with one error line (returned), writing nothing:
    no workspace file, no cache object, no temp file."""
    fresh_clone(repo)
    (repo / "model.safetensors").unlink(missing_ok=True)
    line = one_error_line(mvc_cli("pull", ok=False))
    assert not (repo / "model.safetensors").exists()
    assert rel_of(oid) not in cache_objects(repo)
    for tmp in (cache_dir(repo) / "tmp", repo / ".mvc" / "tmp"):
        assert not (tmp.is_dir() and any(tmp.iterdir())), f"left in {tmp}: {list(tmp.iterdir())}"
    return line


# -- backends ---------------------------------------------------------------------------------------
class LocalBackend:
    name = "local directory"
    can_stop_mid_push = False
    private = ""

    def __init__(self, root: Path):
        self.root = root
        self.url = str(root)
        self.options: dict[str, str] = {}

    def rels(self) -> set[str]:
        return {
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and p.relative_to(self.root).parts[0] != "tmp"
        }

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink()

    def open_uploads(self) -> set[str]:
        """Writes begun and never finished or cleaned: temp files in tmp/."""
        tmp = self.root / "tmp"
        return {p.name for p in tmp.iterdir()} if tmp.is_dir() else set()

    def stop(self) -> None:
        self.root.rename(self.root.with_name(self.root.name + ".away"))

    def start(self) -> None:
        assert not self.root.exists(), "something wrote to the remote while it was away"
        self.root.with_name(self.root.name + ".away").rename(self.root)

    def missing(self) -> tuple[str, dict[str, str]]:
        return str(self.root.parent / "no-such-dir"), {}

    def reject_credentials(self):
        return None  # a directory has no credentials; permissions are not enforced for root in CI


class LocalRemote:
    @pytest.fixture
    def backend(self, tmp_path):
        return LocalBackend(tmp_path / "store")

    @pytest.fixture
    def stoppable(self, backend):
        return backend


class S3Backend:
    name = "S3"
    bucket = "models"
    prefix = "team/project"
    private = ""
    # These tests stop the server on purpose: botocore's three attempts with backoff would make each such
    # test wait about 2.6 s per request to learn what one attempt tells. The retry is botocore's own.
    local_toml = "\n[remote.{name}.config_kwargs.retries]\nmax_attempts = 1\n"

    def __init__(self, endpoint: str, server=None):
        import boto3

        self.endpoint = endpoint
        self.server = server
        self.can_stop_mid_push = server is not None
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self.options = {"endpoint_url": endpoint}
        self.s3 = boto3.client("s3", endpoint_url=endpoint)
        self.s3.create_bucket(Bucket=self.bucket)

    def rels(self) -> set[str]:
        found = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + "/"):
            found |= {o["Key"][len(self.prefix) + 1 :] for o in page.get("Contents", [])}
        return found

    def read(self, rel: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}")["Body"].read()

    def write(self, rel: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}", Body=data)

    def delete(self, rel: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}")

    def open_uploads(self) -> set[str]:
        """Multipart uploads begun and neither completed nor aborted (their parts are billed)."""
        uploads = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return {u["Key"] for u in uploads}

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        _, port = self.server.get_host_and_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()  # moto's state lives in this process: the objects are still there

    def missing(self) -> tuple[str, dict[str, str]]:
        return "s3://no-such-bucket/models", {"endpoint_url": self.endpoint}

    def reject_credentials(self):
        """moto checks credentials only when told to: then our fake keys are unknown to it (403)."""
        import contextlib

        import moto.settings

        @contextlib.contextmanager
        def rejecting():
            saved = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
            moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
            try:
                yield
            finally:
                moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = saved

        return rejecting()


class S3Remote:
    @pytest.fixture
    def backend(self, s3_endpoint):
        return S3Backend(s3_endpoint)

    @pytest.fixture
    def stoppable(self, s3_endpoint):
        """A server of its own (sharing moto's state with the session's), so the test may stop it."""
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        backend = S3Backend(f"http://{host}:{port}", server)
        yield backend
        backend.server.stop()


class MemoryBackend:
    """fsspec's memory:// through the generic store (FsspecStore), under a root of this test's own."""

    name = "memory://"
    can_stop_mid_push = False
    private = "memory:// is visible only inside this process"

    def __init__(self, top: str):
        import fsspec

        self.fs = fsspec.filesystem("memory")
        self.top = top
        self.root = f"{top}/store"
        self.url = f"memory:/{self.root}"
        self.options: dict[str, str] = {}

    def rels(self) -> set[str]:
        found = (p[len(self.root) + 1 :] for p in self.fs.find(self.root))
        return {r for r in found if not r.startswith("tmp/")}

    def read(self, rel: str) -> bytes:
        return bytes(self.fs.cat_file(f"{self.root}/{rel}"))

    def write(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{rel}", data)

    def delete(self, rel: str) -> None:
        self.fs.rm_file(f"{self.root}/{rel}")

    def open_uploads(self) -> set[str]:
        return {p for p in self.fs.find(self.root) if p.startswith(f"{self.root}/tmp/")}

    def _move(self, src: str, dst: str) -> None:
        """Rename a tree of the memory filesystem (its files and its directories)."""
        fs = self.fs
        for key in [k for k in fs.store if k.startswith(src + "/")]:
            fs.store[dst + key[len(src) :]] = fs.store.pop(key)
        fs.pseudo_dirs[:] = [dst + d[len(src) :] if d == src or d.startswith(src + "/") else d for d in fs.pseudo_dirs]

    def stop(self) -> None:
        self._move(self.root, self.root + ".away")

    def start(self) -> None:
        assert not self.fs.find(self.root), "something wrote to the remote while it was away"
        self._move(self.root + ".away", self.root)

    def missing(self) -> tuple[str, dict[str, str]]:
        return f"memory:/{self.top}/no-such-dir", {}

    def reject_credentials(self):
        return None  # memory:// has no credentials

    def close(self) -> None:
        if self.fs.exists(self.top):
            self.fs.rm(self.top, recursive=True)


class MemoryRemote:
    @pytest.fixture
    def backend(self):
        import uuid

        backend = MemoryBackend(f"/mvc-suite-{uuid.uuid4().hex}")
        yield backend
        backend.close()

    @pytest.fixture
    def stoppable(self, backend):
        return backend
