"""Running store calls on a pool of threads; hashing a file that they write in pieces, behind the writes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from mvc.storage import fileio
from mvc.storage.fileio import Progress


def run_parallel(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    jobs: int,
    done: Callable[[Any, Any], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Call fn on every item with up to ``jobs`` threads; done(item, result) runs in this thread.

    The first error stops new work and is raised here once the running calls end; Ctrl-C likewise. Then
    ``stop`` is set, before the wait, so that long calls watching it (a store's ``stopping``) end early.
    Workers hand their results over a SimpleQueue, whose put never blocks: a Ctrl-C landing in this
    thread while it waits cannot leave a lock held that a worker then needs (it could with
    concurrent.futures.wait, whose waiter a worker must lock to report, and the process hung).
    """
    import queue
    from concurrent.futures import ThreadPoolExecutor

    results: queue.SimpleQueue = queue.SimpleQueue()

    def call(item: Any) -> None:
        try:
            results.put((item, True, fn(item)))
        except BaseException as e:  # handed to the calling thread, raised there
            results.put((item, False, e))

    items = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mvc-remote") as pool:
        running = 0
        try:
            for item in items:
                pool.submit(call, item)
                running += 1
                if running >= jobs * 2:
                    break
            while running:
                item, ok, value = results.get()
                running -= 1
                if not ok:
                    raise value
                if done is not None:
                    done(item, value)
                nxt = next(items, None)
                if nxt is not None:
                    pool.submit(call, nxt)
                    running += 1
        except BaseException:
            if stop is not None:
                stop.set()
            pool.shutdown(wait=False, cancel_futures=True)  # queued items never start
            raise


class HashBehind:
    """The xxh3-128 of a file that several threads write in pieces, read back (mapped, from the page cache) by a
    thread of its own up to the first write still to come: no piece is held in memory for it, so a writer
    reuses its buffers at once."""

    def __init__(self, fd: int, size: int, starts: list[int], progress: Progress | None):
        import xxhash

        self.fd, self.size, self.progress = fd, size, progress
        self.pending = sorted(starts)  # where each write still to come starts
        self.cond = threading.Condition()
        self.h = xxhash.xxh3_128()
        self.at = 0

    def done(self, start: int) -> None:
        """The write that starts at ``start`` is in the file."""
        with self.cond:
            self.pending.remove(start)
            self.cond.notify_all()

    def run(self, stop: threading.Event) -> None:
        while self.at < self.size and not stop.is_set():
            with self.cond:
                while self.pending and self.pending[0] <= self.at and not stop.is_set():
                    self.cond.wait(0.5)  # stop is set without a notify
                whole = self.pending[0] if self.pending else self.size
            for start in range(self.at, whole, fileio.MAP_WINDOW):
                end = min(whole, start + fileio.MAP_WINDOW)
                self.h.update(fileio.mapped(self.fd, start, end))
                if self.progress:
                    self.progress(end - start)
            self.at = whole

    def hexdigest(self) -> str:
        if self.at != self.size:  # every piece was written and read, or run_parallel raised
            raise AssertionError("a rebuild ended before the whole file was hashed")
        return self.h.hexdigest()
