"""What the Python API holds once a call has returned, in a long-lived process (a training loop saving a checkpoint
per epoch, a server reading models): no descriptor of .mvc/state.db, of a journal of remotes, or of a cache object
is left to the cyclic garbage collector (sqlite3's connections are in a reference cycle), and a closed stream holds
nothing open even while the caller keeps it."""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import git, make_file

import mvc


def open_files() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # (the listing's own descriptor, closed by now)
            pass
    return out


@contextmanager
def no_collector() -> Iterator[Callable[[], list[str]]]:
    """Gives the files opened since, still open; what is freed only by the cyclic collector stays, as between two
    collections of a busy process."""
    gc.collect()
    before = Counter(open_files())
    gc.disable()
    try:
        yield lambda: sorted((Counter(open_files()) - before).elements())
    finally:
        gc.enable()


@pytest.fixture
def pushed(repo: Path, tmp_path: Path, mvc_cli) -> Path:
    """A repository with a model committed, registered and pushed to a directory remote."""
    mvc_cli("remote", "add", "store", str(tmp_path / "store"), "--default")
    make_file(repo / "model.bin", 300_000, seed=1)
    mvc.add("model.bin", name="churn")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    mvc.register("churn")
    mvc.push()
    return repo


def test_verbs_that_open_the_repository_leave_no_state_db_open(pushed: Path):
    mvc.status()
    with no_collector() as still_open:
        for i in range(3):
            make_file(pushed / "model.bin", 1000, seed=10 + i)
            mvc.add("model.bin", meta={"epoch": i})
            mvc.status()
            mvc.checkout()
            mvc.diff()
            with mvc.run("model.bin") as run:
                run.metric("loss", 1.0 / (i + 1))
        assert still_open() == []


def test_a_closed_stream_holds_nothing_open_while_it_is_kept(pushed: Path):
    kept = []
    with no_collector() as still_open:
        for _ in range(3):
            with mvc.open("model.bin") as f:  # from the cache
                f.read(10)
            kept.append(f)
        assert still_open() == []
        for _ in range(3):
            with mvc.open("churn@latest", repo=f"file://{pushed}") as f:  # by URL, from the store
                f.read(10)
            kept.append(f)
        assert still_open() == []
    with pytest.raises(ValueError):
        kept[0].read(1)


def test_reads_by_url_leave_no_journal_open(pushed: Path, tmp_path: Path):
    data = (pushed / "model.bin").read_bytes()
    make_file(pushed / "other.bin", 1000, seed=2)
    mvc.add("other.bin")
    git(pushed, "commit", "-q", "-am", "other")
    mvc.push()
    # kept in the user's cache, which makes the user's journal: the reads below then open it, from the store
    mvc.get("other.bin", str(tmp_path / "other.bin"), repo=f"file://{pushed}", cache=True)
    assert (Path.home() / ".cache" / "mvc" / "remotes.db").exists()
    with no_collector() as still_open:
        for _ in range(3):
            assert mvc.read_bytes("churn@latest", repo=f"file://{pushed}") == data
            mvc.get("churn@latest", str(tmp_path / "out.bin"), repo=f"file://{pushed}", force=True)
        assert still_open() == []
