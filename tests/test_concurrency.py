"""Commands at once in one repository (two terminals, a hook and a script): N concurrent `mvc add` all
succeed and all their entries survive: pointers staged, .gitignore entries, [models.NAME] in config.toml."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import git

WORKERS = 8
ROUNDS = 20

# Each worker is one process adding one new file per round through the API (the same code as the CLI);
# a file barrier starts every round in all workers at once, so their writes of the shared files collide.
WORKER = textwrap.dedent(
    """
    import os, sys, time
    import mvc
    w, rounds, workers, named = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    failures = 0
    for r in range(rounds):
        open(f"sync/{r}-{w}", "w").close()
        while len(os.listdir("sync")) < (r + 1) * workers:
            time.sleep(0.001)
        path = f"models/w{w}-r{r}.bin"
        with open(path, "wb") as f:
            f.write(os.urandom(64))
        try:
            mvc.add([path], name=f"m{w}-{r}" if named else None)
        except Exception as e:
            failures += 1
            print(f"round {r}: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1 if failures else 0)
    """
)


@pytest.mark.parametrize("named", [False, True], ids=["add", "add --name"])
def test_concurrent_adds_lose_nothing(repo, named):
    (repo / "models").mkdir()
    (repo / "sync").mkdir()
    (repo / ".git" / "info" / "exclude").write_text("/sync/\n")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(w), str(ROUNDS), str(WORKERS), "1" if named else "0"],
            cwd=repo,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), "".join(errors)
    assert not any("Traceback" in e for e in errors)
    want = {f"w{w}-r{r}.bin" for w in range(WORKERS) for r in range(ROUNDS)}
    ignored = set((repo / "models" / ".gitignore").read_text().split())
    assert ignored == {f"/{n}" for n in want}
    staged = set(git(repo, "diff", "--cached", "--name-only").split())
    assert {f"models/{n}.mvc" for n in want} <= staged
    untracked = git(repo, "status", "--porcelain", "--untracked-files=all").split("\n")
    assert not [line for line in untracked if line.startswith("??")], untracked  # no weights left for git
    if named:
        import tomllib

        models = tomllib.loads((repo / ".mvc" / "config.toml").read_text())["models"]
        assert {n: m["path"] for n, m in models.items()} == {
            f"m{w}-{r}": f"models/w{w}-r{r}.bin" for w in range(WORKERS) for r in range(ROUNDS)
        }


def test_concurrent_register_and_assign_of_one_model_one_wins(repo, mvc_cli):
    from conftest import make_file

    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "v1")
    for args in (("register", "churn", "v1.0.0"), ("assign", "churn", "prod", "--version", "v1.0.0")):
        procs = [
            subprocess.Popen([sys.executable, "-m", "mvc", *args], cwd=repo, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert sorted(p.returncode for p in procs) == [0, 1, 1, 1], errors
        for p, err in zip(procs, errors, strict=True):
            if p.returncode:  # the losers: one clear line each (besides a notice of waiting), nothing half-done
                lines = [line for line in err.splitlines() if not line.startswith("mvc: waiting")]
                assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert set(git(repo, "tag").split()) == {"churn@v1.0.0", "churn#prod#1"}


@pytest.mark.parametrize("what", ["file", "dir"])
def test_a_gc_with_no_grace_waits_for_an_add_between_storing_and_naming(repo, monkeypatch, what):
    """An add has stored an object (or a directory's) but not yet written the pointer that names it when a
    gc --force --grace 0 of the cache starts: without a wait gc reads the pointers first and deletes the object
    the add then names. gc waits for the add (a shared lock of the cache), then keeps what the new pointer needs;
    an add starting while gc reads what it keeps waits for that."""
    import threading

    import mvc
    from mvc.api import gc as gcmod
    from mvc.api import workspace

    if what == "file":
        (repo / "m.bin").write_bytes(b"weights\n" * 1000)
        path = "m.bin"
    else:
        (repo / "d").mkdir()
        for i in range(30):
            (repo / "d" / f"f{i}").write_bytes(f"file {i}\n".encode() * 50)
        path = "d"
    stored, go_on = threading.Event(), threading.Event()
    real = workspace._write_pointer

    def slow_pointer(*args, **kwargs):  # the add, its objects stored, before it names them
        stored.set()
        assert go_on.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(workspace, "_write_pointer", slow_pointer)
    second_waits(lambda: mvc.add([path]), stored, go_on, lambda: gcmod.gc(force=True, grace="0"))
    rows = mvc.status()
    assert [(r["path"], r["workspace"], r["cache"]) for r in rows] == [(path, "ok", "ok")]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "added")
    assert (
        "every version checked can be read back"
        in subprocess.run([sys.executable, "-m", "mvc", "verify"], cwd=repo, capture_output=True, text=True).stdout
    )


def test_two_checkouts_at_once_take_turns(repo, monkeypatch):
    """mvc checkout --rev v1 and --rev v2 of a file and a directory at once (a post-checkout hook's beside a pull):
    the second waits for the first, so each path ends with its pointer and its files of one version, never
    one path's pointer from one and its files, or the other path's, from the other."""
    import threading

    import mvc
    from mvc.api import checkout as checkoutmod

    (repo / "d").mkdir()
    for v in (1, 2):
        (repo / "m.bin").write_bytes(f"model v{v}\n".encode() * 100)
        for i in range(5):
            (repo / "d" / f"f{i}").write_bytes(f"file {i} v{v}\n".encode() * 10)
        mvc.add(["m.bin", "d"])
        git(repo, "commit", "-q", "-m", f"v{v}")
        git(repo, "tag", f"v{v}")
    inside, go_on = threading.Event(), threading.Event()
    real = checkoutmod._apply

    def slow_apply(*args, **kwargs):  # the first checkout, part way through its writes
        if not inside.is_set():
            inside.set()
            assert go_on.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(checkoutmod, "_apply", slow_apply)
    second_waits(
        lambda: mvc.checkout(["m.bin", "d"], rev="v1"), inside, go_on, lambda: mvc.checkout(["m.bin", "d"], rev="v2")
    )
    assert [(r["path"], r["workspace"]) for r in mvc.status()] == [("d", "ok"), ("m.bin", "ok")]
    assert (repo / "m.bin").read_bytes() == b"model v2\n" * 100
    assert (repo / "d" / "f0").read_bytes() == b"file 0 v2\n" * 10


def second_waits(first, inside, go_on, second) -> None:
    """Run first in a thread until it sets the event inside (it then waits for go_on), then second in another:
    second must still be waiting half a second later; then both end, neither failing."""
    import threading
    import time

    errors: list[BaseException] = []

    def run(call) -> None:
        try:
            call()
        except BaseException as e:  # (said by the assertion below)
            errors.append(e)

    a = threading.Thread(target=run, args=(first,))
    a.start()
    assert inside.wait(30)
    b = threading.Thread(target=run, args=(second,))
    b.start()
    time.sleep(0.5)
    assert b.is_alive()  # waiting for the first
    go_on.set()
    a.join(30)
    b.join(30)
    assert not errors, errors


def test_a_lock_file_nobody_can_make_is_gone_without_only_where_that_is_safe(tmp_path):
    """A checkout in a work tree whose .mvc/ this user cannot write (another user's clone, a deploy directory)
    cannot make .mvc/checkout.lock: it goes on without (nobody else writes there either, as on a read-only
    filesystem); a lock mvc needs is still an error that says what to fix."""
    from mvc.errors import StorageError
    from mvc.storage.lock import locked

    missing = tmp_path / "no-such-dir" / "checkout.lock"  # (what a lock file this user cannot create meets)
    ran = []
    with locked(str(missing), "the work tree", needed=False):
        ran.append(1)
    assert ran == [1] and not missing.exists()
    with pytest.raises(StorageError, match="cannot open the lock file"), locked(str(missing), "the work tree"):
        pass


def test_threads_of_one_process_waiting_on_the_lock_are_told_so(tmp_path, capsys, monkeypatch):
    """Two threads of one script waiting on mvc's lock: the notice names this process, not another mvc process."""
    import threading

    from mvc.storage import lock

    monkeypatch.setattr(lock, "NOTICE", 0.05)
    path = str(tmp_path / "lock")
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.locked(path, "the test's file"):
            taken.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    taken.wait(10)
    threading.Timer(0.3, release.set).start()
    with lock.locked(path, "the test's file"):
        pass
    t.join()
    err = capsys.readouterr().err
    assert f"waiting for another thread of this process (pid {os.getpid()}) to finish writing the test's file" in err
    assert "another mvc process" not in err
    with lock.locked(path, "the test's file"):
        pass
    assert lock._holder(path) == "another mvc command"
