"""Work spread over forked processes: for many small, independent jobs of a single command whose every step
holds the GIL between system calls (storing 100,000 small files), where threads only take turns.

A forked worker runs only the function it is given, on the items it is given, and leaves with ``os._exit``:
no handler, buffer or connection of the parent's is run, flushed or closed twice. Results and the first error
come back pickled through a pipe; progress (bytes done) through a shared page of counters.
"""

from __future__ import annotations

import mmap
import os
import pickle
import selectors
import signal
import struct
from collections.abc import Callable, Sequence
from typing import Any, cast

from mvc.errors import StorageError
from mvc.storage.fileio import Progress

SLOT = 8  # bytes of a worker's progress counter
PROGRESS_STEP = 1 << 20  # a worker's counter is written when it has done this many bytes more (and at its end)


def workers_for(n: int, least: int, most: int = 8) -> int:
    """How many processes to fork for n jobs: 1 (none: do them here) below ``least`` jobs, off Linux, while
    another thread runs (a library user's: a fork copies this thread alone, and any lock another
    holds stays held in the copy), or on one CPU; else one per CPU, at most ``most``."""
    import sys
    import threading

    # Linux only: elsewhere (macOS) a forked copy of a process that loaded system frameworks may crash
    if n < least or not sys.platform.startswith("linux") or threading.active_count() > 1:
        return 1
    return max(1, min(cpus(), most))


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


STAT_FIELDS = 13  # the numbers of a stat_result that stat_fields keeps


def stat_fields(st: os.stat_result) -> tuple[int, ...]:
    """The numbers of st that :func:`stat_from` makes it again from: what a worker hands back for a file's stat (a
    stat_result pickles at 8 µs each way; thirteen integers, or an array of them, at a fraction)."""
    return (*cast(tuple[int, ...], st[:10]), st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)  # (whole seconds there)


_NS = 10**9


def stat_from(fields: Sequence[int]) -> os.stat_result:
    """The stat_result stat_fields took apart, its float times as os.lstat makes them from the ns ones (written
    out: a generator over the three cost a third of the call, which a walk or add makes once per file)."""
    a, m, c = fields[10], fields[11], fields[12]
    return os.stat_result(
        (*fields[:10], a // _NS + a % _NS * 1e-9, m // _NS + m % _NS * 1e-9, c // _NS + c % _NS * 1e-9, a, m, c)
    )


def stats_from(nums: Sequence[int]) -> list[os.stat_result]:
    """The stat_results of consecutive runs of STAT_FIELDS numbers (an array of a worker's stat fields)."""
    it = iter(list(nums))
    return [stat_from(f) for f in zip(*[it] * STAT_FIELDS, strict=False)]


def map_forked(
    fn: Callable[[Any, Progress], Any],
    items: Sequence[Any],
    workers: int,
    progress: Progress | None = None,
    finish: Callable[[], None] | None = None,
    meanwhile: Callable[[], None] | None = None,
    ended: Callable[[list[int]], None] | None = None,
) -> list[Any]:
    """[fn(item, progress) for item in items], computed by ``workers`` forked processes (worker k takes items k,
    k + workers, …), in the items' order; each worker calls ``finish`` after its last item (an error there is
    that worker's error, as if its last item raised it). The first error a worker meets (in its own order) is raised here,
    as it was raised there, once every worker has ended; a worker that dies without a word raises
    StorageError. ``meanwhile`` runs here while the workers work (before their results are read: a worker whose
    pipe is full waits for it); an error there ends the workers and is raised. The caller's process must have no
    other thread running (a fork copies only this one). ``ended(pids)``: once every worker is gone, however the
    work ended (what a worker ended by a signal left, its temp files, is cleared there). A worker ends when this
    process does, killed or not (``PR_SET_PDEATHSIG``): none writes on for a command the user stopped."""
    counters = mmap.mmap(-1, SLOT * workers)  # shared with the workers: bytes each has done
    pids: dict[int, int] = {}  # read end of its pipe -> pid
    parent = os.getpid()
    try:
        for k in range(workers):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(r)
                _end_with(parent)
                _work(fn, items, k, workers, w, counters, finish)  # never returns
            os.close(w)
            pids[r] = pid
        if meanwhile is not None:
            meanwhile()
        payloads = _gather(pids, counters, progress)
    finally:
        for r, pid in pids.items():  # interrupted: the workers go too
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(r)
        counters.close()
        if ended is not None and pids:
            ended(list(pids.values()))
    results: list[Any] = [None] * len(items)
    first: tuple[int, BaseException] | None = None
    for k, data in enumerate(payloads):
        if not data:
            raise StorageError("a process storing files ended without a word (killed?): run the command again")
        got, failed_at, error = pickle.loads(data)
        if error is None:
            results[k::workers] = got
        elif first is None or failed_at < first[0]:
            first = (failed_at, error)
    if first is not None:
        raise first[1]
    return results


def _end_with(parent: int) -> None:
    """Have the kernel end this worker when its parent does (Linux's PR_SET_PDEATHSIG), or end it now if the
    parent is gone already. The parent's SIGTERM ends it at once (the CLI's own handler, inherited, would have it
    hand back a result through a pipe nobody reads any more)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _work(
    fn: Callable[[Any, Progress], Any],
    items: Sequence[Any],
    k: int,
    step: int,
    w: int,
    counters: mmap.mmap,
    finish: Callable[[], None] | None,
) -> None:
    at = k * SLOT
    total = shown = 0

    def progress(n: int) -> None:
        nonlocal total, shown
        total += n
        if total - shown >= PROGRESS_STEP:  # (once per file of 100,000 small ones, the write was 3 % of the work)
            shown = total
            counters[at : at + SLOT] = struct.pack("<q", total)

    code = 0
    try:
        got: list[Any] = []
        failed_at, error = -1, None
        for i in range(k, len(items), step):
            try:
                got.append(fn(items[i], progress))
            except BaseException as e:  # the first: raised by the parent
                failed_at, error = i, e
                break
        if error is None and finish is not None:
            try:
                finish()
            except BaseException as e:
                failed_at, error = len(items) - 1, e
        counters[at : at + SLOT] = struct.pack("<q", total)  # all of it, before the parent hears the end
        try:
            payload = pickle.dumps((got, failed_at, error))
        except Exception as e:  # what does not pickle: its message
            why = str(error) if error is not None else f"a result could not be handed back ({e})"
            payload = pickle.dumps(([], max(failed_at, k), StorageError(why)))
        view = memoryview(payload)
        while view:
            view = view[os.write(w, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _gather(pids: dict[int, int], counters: mmap.mmap, progress: Progress | None) -> list[bytes]:
    """Every worker's payload, in worker order, read as it comes (a worker blocks on a full pipe otherwise)."""
    order = list(pids)
    chunks: dict[int, list[bytes]] = {r: [] for r in order}
    shown = 0
    with selectors.DefaultSelector() as sel:
        for r in order:
            sel.register(r, selectors.EVENT_READ)
        open_ = set(order)
        while open_:
            for key, _ in sel.select(0.1):
                data = os.read(key.fd, 1 << 20)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
                    open_.discard(key.fd)
            if progress is not None:
                done = sum(struct.unpack_from("<q", counters, i * SLOT)[0] for i in range(len(order)))
                if done > shown:
                    progress(done - shown)
                    shown = done
    return [b"".join(chunks[r]) for r in order]
