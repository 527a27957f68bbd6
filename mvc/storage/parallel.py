"""Running store calls on a pool of threads; hashing in file order what they write in pieces."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any


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


class InOrderHash:
    """The xxh3-128 of a file written in pieces by several threads, each piece hashed when those before it
    are (so that a file rebuilt from chunks is not read again to be checked). A piece that arrives early waits, its buffers
    held, while at most ``AHEAD_BYTES`` are; above that its thread waits for the pieces before it."""

    AHEAD_BYTES = 64 << 20

    def __init__(self, pieces: int):
        import xxhash

        self.h = xxhash.xxh3_128()
        self.pieces = pieces
        self.next = 0  # the number of the next piece to hash
        self.early: dict[int, list[bytes | memoryview]] = {}
        self.held = 0
        self.failed = False
        self.cond = threading.Condition()

    def add(self, number: int, parts: list[bytes | memoryview]) -> None:
        """Piece ``number`` (0, 1, … in file order) is written: its bytes are parts."""
        size = sum(len(p) for p in parts)
        with self.cond:
            while self.next != number and self.held + size > self.AHEAD_BYTES and not self.failed:
                self.cond.wait(0.5)
            if self.failed:
                return
            self.early[number] = parts
            self.held += size
            while self.next in self.early:
                done = self.early.pop(self.next)
                for p in done:
                    self.h.update(p)
                    self.held -= len(p)
                self.next += 1
            self.cond.notify_all()

    def abort(self) -> None:
        with self.cond:
            self.failed = True
            self.cond.notify_all()

    def hexdigest(self) -> str:
        if self.next != self.pieces:  # every piece was written, or run_parallel raised
            raise AssertionError("a rebuild ended before every piece was hashed")
        return self.h.hexdigest()
