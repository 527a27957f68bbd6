"""Progress reporting. The API takes a factory ``progress(desc, total_bytes) -> Bar``; only the CLI draws."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO


class Bar(Protocol):
    def update(self, n: int) -> None: ...
    def count(self, done: int, total: int) -> None: ...  # objects done of total, for transfers
    def close(self) -> None: ...


class _Null:
    def update(self, n: int) -> None:
        pass

    def count(self, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


NULL = _Null()
Factory = Callable[[str, int], Bar]
UNKNOWN = -1  # a total not known when the work starts (files stat'ed as they are read): bytes and rate only
MIN_RATE_SECONDS = 0.25  # a bar shows a rate (and an ETA) once the work has run this long


def null(desc: str, total: int) -> Bar:
    return NULL


def human(n: float) -> str:
    """A size for people: ``512 B``, ``1.5 KiB``, ``2.0 GiB`` (powers of 1024); every size mvc prints."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class TerminalBar:
    """One line redrawn in place at most 10 times a second: bytes, percent, rate, ETA; and objects, once
    count() is called (transfers of many small objects are paced by requests more than by bytes)."""

    def __init__(self, desc: str, total: int, stream: TextIO):
        self.desc, self.total, self.stream = desc, total, stream
        self.done = 0
        self.objects = self.total_objects = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.1 or self.done >= self.total >= 0:
            self.last = now
            self._draw(now)

    def count(self, done: int, total: int) -> None:
        self.objects, self.total_objects = done, total
        self.update(0)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        # no rate (nor ETA) before there is one to tell: nothing moved yet, or too briefly to measure
        speed = f" {human(rate)}/s" if self.done and elapsed >= MIN_RATE_SECONDS else ""
        if self.total == UNKNOWN:
            self.stream.write(f"\r{self.desc}: {human(self.done)}{speed}\x1b[K")
            self.stream.flush()
            return
        pct = 100 * self.done / self.total if self.total else 100
        eta = (self.total - self.done) / rate if rate > 0 and self.total else 0
        objects = ""
        if self.total_objects:
            objects = f" {self.objects}/{self.total_objects} objects"
            if self.objects:  # ETA from objects when bytes say little (tiny files)
                eta = max(eta, elapsed * (self.total_objects - self.objects) / self.objects)
        self.stream.write(
            f"\r{self.desc}:{objects} {pct:5.1f}% {human(self.done)}/{human(self.total)}"
            f"{speed}{f' ETA {eta:4.0f}s' if speed else ''}\x1b[K"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()


MIN_BYTES = 4 << 20  # shorter work finishes before a bar would help


def terminal(quiet: bool = False, stream: TextIO | None = None, min_bytes: int = MIN_BYTES) -> Factory:
    """Bars on stream (stderr) when it is a terminal and not quiet, for work of min_bytes or more
    (transfers pass 0: many small objects take long for their requests, not their bytes)."""
    out = stream or sys.stderr
    if quiet or not out.isatty():
        return null

    def make(desc: str, total: int) -> Bar:
        return TerminalBar(desc, total, out) if total >= min_bytes or total == UNKNOWN else NULL

    return make
