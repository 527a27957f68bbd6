"""What a transfer keeps as it goes, shared by its threads: ``Meter``, the bytes and objects moved, shown by one
progress bar; ``Recorder``, the objects it uploaded, written to the journal in batches."""

from __future__ import annotations

import threading
import time

from mvc import progress as progressmod
from mvc.objects.journal import Journal

JOURNAL_EVERY = 256  # record uploads in the journal at least this often, so an interrupted push keeps them


class Meter:
    """Bytes and objects moved, shared by the worker threads; drives one progress bar."""

    def __init__(self, progress: progressmod.Factory, desc: str, total: int, objects: int):
        self.bar = progress(desc, total)
        self.lock = threading.Lock()
        self.objects, self.total_objects = 0, objects

    def update(self, n: int) -> None:
        with self.lock:
            self.bar.update(n)

    def object_done(self) -> None:
        self.objects_done(1)

    def objects_done(self, n: int) -> None:
        with self.lock:
            self.objects += n
            self.bar.count(self.objects, self.total_objects)

    def close(self) -> None:
        self.bar.close()


class Recorder:
    """Batches journal writes from the main thread; flush() also runs when a transfer fails."""

    def __init__(self, jr: Journal, key: str):
        self.jr, self.key = jr, key
        self.pending: list[str] = []
        self.last = time.monotonic()

    def add(self, oid: str) -> None:
        self.pending.append(oid)
        if len(self.pending) >= JOURNAL_EVERY or time.monotonic() - self.last > 1:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.jr.add(self.key, self.pending)
            self.pending = []
        self.last = time.monotonic()
