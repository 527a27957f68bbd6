"""Work spread over forked processes (mvc/storage/forked.py), and `mvc add` of a large directory through it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import git, run_mvc

from mvc.errors import StorageError
from mvc.storage import forked

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


def square(x: int, progress) -> tuple[int, int]:
    progress(x)
    return x * x, os.getpid()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_back_in_order_from_each_worker(workers):
    shown: list[int] = []
    got = forked.map_forked(square, list(range(50)), workers, shown.append)
    assert [r for r, _ in got] == [x * x for x in range(50)]
    assert len({pid for _, pid in got}) == workers and os.getpid() not in {pid for _, pid in got}
    assert sum(shown) == sum(range(50))  # every byte reported, once


def fails_at_2_and_5(x: int, progress) -> int:
    if x in (2, 5):
        raise ValueError(f"item {x} is bad")
    return x


def test_the_first_error_by_item_is_raised_once_every_worker_ended():
    with pytest.raises(ValueError, match="item 2 is bad"):  # worker 0 meets 2, worker 1 meets 5
        forked.map_forked(fails_at_2_and_5, list(range(8)), 2)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no")


def raises_unpicklable(x: int, progress) -> int:
    raise Unpicklable("a lock in it")


def test_an_error_that_does_not_pickle_comes_back_as_its_message():
    with pytest.raises(StorageError, match="a lock in it"):
        forked.map_forked(raises_unpicklable, [1, 2], 2)


def waits_for_a_file(path: str, progress) -> str:
    import time

    for _ in range(2000):  # up to 20 s: the parent's meanwhile writes it
        if os.path.exists(path):
            return "seen"
        time.sleep(0.01)
    return "never"


def test_meanwhile_runs_here_while_the_workers_work(tmp_path):
    """The workers wait for a file that only the parent's meanwhile makes: it runs before their results are read.
    An error there ends the workers (none is left behind) and is raised."""
    flag = tmp_path / "flag"
    got = forked.map_forked(waits_for_a_file, [str(flag)] * 2, 2, meanwhile=flag.touch)
    assert got == ["seen", "seen"]

    def fails() -> None:
        raise ValueError("meanwhile failed")

    import time

    started = time.monotonic()
    with pytest.raises(ValueError, match="meanwhile failed"):
        forked.map_forked(waits_for_a_file, [str(tmp_path / "never")] * 2, 2, meanwhile=fails)
    assert time.monotonic() - started < 10  # the workers were ended, not waited for (they wait up to 20 s)


def dies(x: int, progress) -> int:
    if x == 3:
        os._exit(9)  # no word
    return x


def test_a_worker_that_dies_without_a_word_is_an_error():
    with pytest.raises(StorageError, match="without a word"):
        forked.map_forked(dies, list(range(6)), 2)


def test_no_fork_while_another_thread_runs():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert forked.workers_for(10_000, 100) == 1
    finally:
        stop.set()
        other.join()
    assert forked.workers_for(10, 100) == 1  # too few
    # in a process of its own: this one may run a fixture's threads (the S3 server of the session)
    expected = 1 if len(os.sched_getaffinity(0)) < 2 else min(len(os.sched_getaffinity(0)), 8)
    code = "from mvc.storage import forked; print(forked.workers_for(10_000, 100))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == f"{expected}\n"
    )


def spy_on_forks(tmp_path: Path) -> tuple[Path, Path]:
    """(a directory to put on PYTHONPATH, the file it writes): an mvc run with it notes each map_forked call as
    'ITEMS WORKERS'."""
    calls = tmp_path / "calls"
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(
        "import mvc.storage.forked as f\n"
        "_real = f.map_forked\n"
        "def map_forked(fn, items, workers, progress=None, finish=None, **kw):\n"
        f"    with open({str(calls)!r}, 'a') as out:\n"
        "        out.write(f'{len(items)} {workers}\\n')\n"
        "    return _real(fn, items, workers, progress, finish, **kw)\n"
        "f.map_forked = map_forked\n"
    )
    return spy, calls


def expected_workers() -> int | None:
    cpus = len(os.sched_getaffinity(0))
    return min(cpus, 8) if cpus >= 2 else None


def test_add_of_a_directory_stored_by_forked_processes(tmp_path: Path):
    """mvc add of a directory of more files than PARALLEL_FROM, in a process of its own as a user runs it: the
    pointer and manifest are those an add one file at a time writes (PARALLEL_FROM raised out of reach), every
    file is in the cache with its bytes, and status finds nothing changed."""
    import xxhash

    from mvc.repo.storing import PARALLEL_FROM

    n = PARALLEL_FROM + 100
    spy, calls = spy_on_forks(tmp_path)
    serial = tmp_path / "serial"
    serial.mkdir()
    (serial / "sitecustomize.py").write_text("import mvc.repo.storing as w\nw.PARALLEL_FROM = 10 ** 9\n")
    repos = {}
    for name, path in (("forked", spy), ("one-by-one", serial)):
        env = {**os.environ, "PYTHONPATH": str(path)}
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q")
        run_mvc("init", cwd=repo, check=True)
        for i in range(n):
            sub = repo / "data" / f"d{i % 7}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i}.bin").write_bytes(f"file {i}\n".encode() * (1 + i % 50))
        out = run_mvc("add", "data", cwd=repo, env=env)
        assert out.returncode == 0 and f"{n} files" in out.stdout, out.stderr
        repos[name] = repo
    if expected_workers():  # one forked pass (the first add: stat'ed and stored at once), a run of files a worker
        assert calls.read_text() == f"{expected_workers()} {expected_workers()}\n"
    forked_repo = repos["forked"]
    import tomllib

    pointers = [tomllib.loads((r / "data.mvc").read_text()) for r in repos.values()]
    assert [{k: p[k] for k in ("kind", "oid", "size", "nfiles")} for p in pointers] == [
        {"kind": "dir", "oid": pointers[1]["oid"], "size": pointers[1]["size"], "nfiles": n}
    ] * 2  # (its [auto] record says when each was made)
    from mvc.objects.odb import ODB

    odb = ODB(str(forked_repo / ".mvc" / "cache"))
    assert odb.packs.any() and not list(odb.loose_oids())[1:]  # the files in packs; the manifest alone loose
    for p in (forked_repo / "data").rglob("*.bin"):
        assert odb.read_bytes(f"xxh128:{xxhash.xxh3_128_hexdigest(p.read_bytes())}") == p.read_bytes()
    status = run_mvc("status", cwd=forked_repo, check=True)
    assert "up to date" in status.stdout, status.stdout


def test_several_directories_are_stored_together(tmp_path: Path):
    """mvc add of several directories, each with fewer files than PARALLEL_FROM and together more: their files are
    stored by one forked pass (counted by a spy on map_forked), the pointers are those of an add one file at a
    time, and an add again after the cache lost them says each was stored again, its pointer unchanged."""
    import tomllib

    from mvc.repo.storing import PARALLEL_FROM

    each = PARALLEL_FROM // 2
    spy, calls = spy_on_forks(tmp_path)
    serial = tmp_path / "serial"
    serial.mkdir()
    (serial / "sitecustomize.py").write_text("import mvc.repo.storing as w\nw.PARALLEL_FROM = 10 ** 9\n")
    dirs = ["d0", "d1", "d2"]
    repos = {}
    for name, path in (("forked", spy), ("one-by-one", serial)):
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q")
        run_mvc("init", cwd=repo, check=True)
        for d in dirs:
            for i in range(each):
                (repo / d / "sub").mkdir(parents=True, exist_ok=True)
                (repo / d / ("sub" if i % 3 else "") / f"{d}-{i}.bin").write_bytes(f"{d} {i}\n".encode() * (1 + i % 40))
        out = run_mvc("add", *dirs, cwd=repo, env={**os.environ, "PYTHONPATH": str(path)})
        assert out.returncode == 0, out.stderr
        assert out.stdout.count(f"({each} files") == 3 and out.stdout.count("added ") == 3, out.stdout
        repos[name] = repo
    if expected_workers():  # one forked pass for the three (a run of their files a worker)
        assert calls.read_text() == f"{expected_workers()} {expected_workers()}\n"
    for d in dirs:
        pointers = [tomllib.loads((r / f"{d}.mvc").read_text()) for r in repos.values()]
        assert pointers[0]["oid"] == pointers[1]["oid"] and pointers[0]["nfiles"] == each
    forked_repo = repos["forked"]
    assert run_mvc("status", cwd=forked_repo, check=True).stdout.count("up to date") == 3
    manifests = {tomllib.loads((forked_repo / f"{d}.mvc").read_text())["oid"].split(":")[1] for d in dirs}
    for obj in (forked_repo / ".mvc" / "cache" / "objects").glob("*/*"):  # the files' objects, not the manifests
        if obj.parent.name + obj.name not in manifests:
            obj.unlink()
    shutil.rmtree(forked_repo / ".mvc" / "cache" / "packs")
    out = run_mvc("add", *dirs, cwd=forked_repo, env={**os.environ, "PYTHONPATH": str(spy)})
    assert out.returncode == 0 and out.stdout.count("in the cache, pointer unchanged") == 3, (out.stdout, out.stderr)
    assert run_mvc("verify", cwd=forked_repo).returncode == 0


def test_what_a_failed_or_stopped_worker_left_is_cleared_once_it_is_gone(tmp_path):
    """A worker that fails (or is stopped by the parent's SIGTERM) mid-write leaves its temp file: ended(pids)
    runs once every worker is gone, and tempfiles.remove_of clears exactly those workers' temps."""
    from mvc.storage import tempfiles

    other = Path(tempfiles.tmp_name(str(tmp_path), "pack").replace(f".{os.getpid()}.", ".999999999."))
    other.write_bytes(b"another process's")

    def half_written(x: int, progress) -> int:
        Path(tempfiles.tmp_name(str(tmp_path), "pack")).write_bytes(b"half a pack")
        if x == 3:
            raise StorageError("stopped")
        return x

    with pytest.raises(StorageError, match="stopped"):
        forked.map_forked(half_written, list(range(6)), 2, ended=lambda pids: tempfiles.remove_of(str(tmp_path), pids))
    assert [p.name for p in tmp_path.iterdir()] == [other.name]


def test_workers_end_with_their_parent(tmp_path):
    """kill -9 of the parent (a user stopping an add that fills the disk): its workers end too, not write on."""
    import signal
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from mvc.storage import forked\n"
        f"def work(x, progress):\n    open(os.path.join({str(tmp_path)!r}, str(os.getpid())), 'w').close()\n"
        "    time.sleep(60)\n"
        "forked.map_forked(work, [1, 2], 2)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], cwd=str(Path(__file__).parent.parent))
    deadline = time.time() + 20
    while len([p for p in tmp_path.iterdir() if p.name.isdigit()]) < 2 and time.time() < deadline:
        time.sleep(0.05)
    workers = [int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_running(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(_running(pid) for pid in workers)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
