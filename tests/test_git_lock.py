"""Another git process holding .git/index.lock: mvc waits for it (saying what it waits for), then stages;
a lock left by a crash is named in a one-line error after the wait."""

from __future__ import annotations

import threading

from conftest import git, make_file


def test_add_waits_for_a_held_index_lock(repo, mvc_cli):
    make_file(repo / "m.bin", 1000)
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")
    threading.Timer(1.2, lock.unlink).start()  # past the half second after which a wait is announced
    result = mvc_cli("add", "m.bin")
    assert "waiting for another git process" in result.stderr and "index.lock" in result.stderr
    assert "m.bin.mvc" in git(repo, "diff", "--cached", "--name-only")


def test_a_stale_index_lock_is_named(repo, mvc_cli, monkeypatch):
    from mvc import git as gitmod

    monkeypatch.setattr(gitmod, "LOCK_WAIT", 0.2)
    make_file(repo / "m.bin", 1000)
    (repo / ".git" / "index.lock").write_bytes(b"")
    result = mvc_cli("add", "m.bin", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    *notices, error = result.stderr.splitlines()  # (a notice if the wait was long enough) then the error
    assert all(n.startswith("mvc: waiting for another git process") for n in notices)
    assert error.startswith("error: ") and "index.lock" in error and "delete that file" in error
