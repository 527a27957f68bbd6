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
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import git, make_file

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


class RemoteSuite:
    """Mix in with a backend class that provides the ``backend`` fixture."""

    @pytest.fixture
    def origin(self, repo, mvc_cli, backend):
        """The repo with ``origin`` = the backend, as the default remote."""
        configure(mvc_cli, backend, "origin")
        return backend

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
        result = mvc_cli("pull", ok=False)
        line = one_error_line(result)
        assert "corrupt" in line and rel in line
        assert rel not in cache_objects(repo)
        assert not (repo / "model.bin").exists()
        assert not any((cache_dir(repo) / "tmp").glob("*")), "a temp file was left behind"
        # the other objects are unaffected
        mvc_cli("pull", "data")
        assert (repo / "data" / "run.sh").exists()

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
        proc = subprocess.Popen(
            [*MVC, "push", "-j", "1"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
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
        proc = subprocess.Popen(
            [*SMALL_PARTS, "push", "-j", "2"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
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
        rels = origin.rels() - {MARKER}
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
            assert "not on remote origin" in line and "unreadable pack index" in line and pack.index_rel(name) in line
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
        assert origin.rels() - {MARKER} == expected_objects(repo)

    def test_fewer_small_objects_than_a_pack_is_worth_go_alone(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        make_smalls(repo, pack.MIN_OBJECTS - 1)  # one short of a pack (the manifest goes up after them)
        mvc_cli("add", "many")
        mvc_cli("push")
        assert origin.rels() - {MARKER} == expected_objects(repo)

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
        origin.write(MARKER, b"format = 2\n")
        before = origin.rels()
        make_file(repo / "n.bin", 1000, seed=1)
        mvc_cli("add", "n.bin")
        for args in (("push",), ("status", "-r", "origin"), ("fetch",), ("pull",)):
            if args == ("fetch",):
                drop_cache(repo)  # a fetch with everything cached contacts no remote
            result = mvc_cli(*args, ok=False)
            assert result.exit_code != 0, (args, result.output)
            line = one_error_line(result)
            assert MARKER in line and "format 2" in line and "upgrade mvc" in line, line
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
