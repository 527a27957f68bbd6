"""Running store calls on a pool of threads."""

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
