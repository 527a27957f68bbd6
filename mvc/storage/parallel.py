"""Running store calls on a pool of threads, and calling off the network reads of a run that stops; hashing a
file that they write in pieces, behind the writes; two threads taking turns."""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from mvc.errors import WorkStopped
from mvc.storage import fileio
from mvc.storage.fileio import Progress

_END = object()  # (run_parallel: no more items)
_scope = threading.local()  # .halts: the halt events of the runs this thread works for, outermost first
_watched: weakref.WeakSet[Any] = weakref.WeakSet()  # what _abort may call off (watch)
_watch_lock = threading.Lock()


def halts() -> tuple[threading.Event, ...]:
    """The halt events of the run_parallel calls this thread works for (none: the main thread's own calls)."""
    return getattr(_scope, "halts", ())


def halted(events: tuple[threading.Event, ...]) -> bool:
    return any(e.is_set() for e in events)


def watch(conn: Any) -> None:
    """conn (a network connection: ``halts``, set by its user, and ``abort()``) is aborted when one of its halts is
    set. A worker blocked on a server that stopped answering mid-response cannot be interrupted otherwise: only
    the main thread gets Ctrl-C, and the run waits for its workers, which waited up to the read timeout."""
    with _watch_lock:
        _watched.add(conn)


def within(events: tuple[threading.Event, ...], fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in this thread as a worker of a run whose halts are ``events`` (a pool of the caller's own, as
    run_parallel's workers are): :func:`call_off` of one of them calls off its network reads."""
    saved = halts()
    _scope.halts = events
    try:
        return fn(*args)
    finally:
        _scope.halts = saved


def call_off(halt: threading.Event) -> None:
    """Set halt and abort the connections of the work it halts (:func:`watch`): a worker waiting on a server that
    stopped answering ends at once."""
    halt.set()
    _abort(halt)


def _abort(halt: threading.Event) -> None:
    with _watch_lock:
        conns = list(_watched)
    for conn in conns:
        if halt in conn.halts:
            conn.abort()


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
    Network connections its workers use (``watch``) are aborted then: a worker waiting on a stalled server ends
    at once rather than after the read timeout. Workers hand their results over a SimpleQueue, whose put never blocks: a Ctrl-C landing in this
    thread while it waits cannot leave a lock held that a worker then needs (it could with
    concurrent.futures.wait, whose waiter a worker must lock to report, and the process hung). Plain threads,
    not concurrent.futures: its import (with logging's) costs a command 3 ms.
    """
    import queue

    results: queue.SimpleQueue = queue.SimpleQueue()
    todo: queue.SimpleQueue = queue.SimpleQueue()
    halt = threading.Event()
    threads: list[threading.Thread] = []
    jobs = max(1, jobs)
    running = 0
    scope = (*halts(), halt)  # (a worker of a run inside a worker of another: either one's halt calls it off)

    def work() -> None:
        _scope.halts = scope
        while (item := todo.get()) is not _END:
            if halt.is_set():
                continue  # queued items never start
            try:
                results.put((item, True, fn(item)))
            except BaseException as e:  # handed to the calling thread, raised there
                results.put((item, False, e))

    def submit(item: Any) -> None:
        nonlocal running
        todo.put(item)
        running += 1
        if len(threads) < min(jobs, running):
            thread = threading.Thread(target=work, name=f"mvc-remote_{len(threads)}")
            threads.append(thread)  # (listed first: a Ctrl-C landing in start() still sends it its _END)
            thread.start()

    items = iter(items)
    try:
        for item in items:
            submit(item)
            if running >= jobs * 2:
                break
        while running:
            item, ok, value = results.get()
            running -= 1
            if not ok:
                raise value
            if done is not None:
                done(item, value)
            nxt = next(items, _END)
            if nxt is not _END:
                submit(nxt)
    except BaseException:
        if stop is not None:
            stop.set()
        halt.set()
        _abort(halt)
        raise
    finally:
        for _ in threads:
            todo.put(_END)
        for thread in threads:
            if thread.ident is not None:  # (a start that a Ctrl-C cut short before the thread ran: none)
                thread.join()  # the running calls end


class HashBehind:
    """The xxh3-128 of a file that several threads write in pieces, read back (mapped, from the page cache) by a
    thread of its own up to the first write still to come: no piece is held in memory for it, so a writer
    reuses its buffers at once. A writer that is at the front hands its bytes over instead (:meth:`feed`),
    hashed while they are still in its core's cache: no read back."""

    def __init__(self, fd: int, size: int, starts: list[int], progress: Progress | None):
        import xxhash

        self.fd, self.size, self.progress = fd, size, progress
        self.pending = sorted(starts)  # where each write still to come starts
        self.cond = threading.Condition()  # held while the hash grows, by either path
        self.h = xxhash.xxh3_128()
        self.at = 0  # bytes hashed

    def done(self, start: int) -> None:
        """The write that starts at ``start`` is in the file."""
        with self.cond:
            self.pending.remove(start)
            self.cond.notify_all()

    def feed(self, view: memoryview, at: int, start: int, clear: bool = False) -> bool:
        """Hash view, bytes [at, at + len(view)) of the file, now, if nothing before them is left to hash
        (the bytes need not be in the file yet); False, with nothing done, otherwise: they are read back once
        their write is done. The caller writes the piece that starts at ``start`` (a write still to come), in
        order; at its first bytes (``at`` is ``start``, or ``clear``: the piece's bytes before ``at`` are in the
        file) it hashes what lies written before them."""
        with self.cond:
            if (
                self.at < at
                and (at == start or clear)
                and bisect.bisect_left(self.pending, at) == (at != start)  # no write before but the piece's own
                and self.pending[0] == start
            ):
                self._hash_to(at)  # every write before these bytes is in the file
            if self.at != at:
                return False
            self.h.update(view)
            self.at += len(view)
        if self.progress:
            self.progress(len(view))
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self.cond:
                while self.at < self.size and self.pending and self.pending[0] <= self.at and not stop.is_set():
                    self.cond.wait(0.5)  # stop is set without a notify
                if self.at >= self.size or stop.is_set():
                    return
                self._hash_to(min(self.pending[0] if self.pending else self.size, self.at + fileio.MAP_WINDOW))

    def _hash_to(self, end: int) -> None:
        """Read back and hash bytes [at, end) of the file (the lock held)."""
        start = self.at
        while self.at < end:
            step = min(end, self.at + fileio.MAP_WINDOW)
            self.h.update(fileio.mapped(self.fd, self.at, step))
            self.at = step
        if self.progress and end > start:
            self.progress(end - start)

    def hexdigest(self) -> str:
        if self.at != self.size:  # every piece was written and read, or run_parallel raised
            raise AssertionError("a rebuild ended before the whole file was hashed")
        return self.h.hexdigest()


class Turns:
    """Two threads taking turns in order: turn i is thread i % 2's. :meth:`wait` for yours, :meth:`done` when it
    ends; once ``failed`` is set (by a thread that raised) or ``stop`` (the work was called off), a wait raises
    WorkStopped instead of waiting on."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.go = (threading.Lock(), threading.Lock())
        self.go[1].acquire()
        self.failed = threading.Event()
        self.stop = stop

    def wait(self, i: int) -> None:
        while not self.go[i % 2].acquire(timeout=0.05):
            if self.failed.is_set() or (self.stop is not None and self.stop.is_set()):
                raise WorkStopped("the other thread failed, or the work was called off")

    def done(self, i: int) -> None:
        self.go[1 - i % 2].release()


class Helper:
    """A thread of its own that runs one call at a time for the thread that owns it: the other half of work split
    in two. :meth:`result` waits for the call and raises what it raised."""

    def __init__(self) -> None:
        import queue

        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        self.halts = halts()  # its owner's: a halt of the owner's run calls off the helper's reads too
        self.thread = threading.Thread(target=self._run, name="mvc-helper", daemon=True)
        self.thread.start()

    def start(self, fn: Callable[[], None]) -> None:
        self.calls.put(fn)

    def result(self) -> None:
        error = self.results.get()
        if error is not None:
            raise error

    def close(self) -> None:
        self.calls.put(None)
        self.thread.join()

    def _run(self) -> None:
        _scope.halts = self.halts
        while (fn := self.calls.get()) is not None:
            try:
                fn()
                self.results.put(None)
            except BaseException as e:  # raised in the owner's thread
                self.results.put(e)
