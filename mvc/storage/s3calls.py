"""The requests :class:`mvc.storage.s3.S3Store` sends through s3fs's event loop, each one bounded.

aiohttp bounds the wait for a response's bytes (``read_timeout``) and for a connection (``connect_timeout``), but
not the sending of a request's body: a server that stops reading it (a frozen process, a partition) holds a PUT
forever, and fsspec's ``sync`` neither lets Ctrl-C nor a halt of the thread's run call it off. Here a body is
handed to aiohttp in pieces it takes as it sends them, and a request none of whose bytes was taken for
``read_timeout`` is cancelled; the calling thread waits in short steps and cancels its request when the main
thread is interrupted or its run halts (:mod:`mvc.storage.parallel`).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mvc.storage import parallel

STEP = 0.1  # seconds between the calling thread's looks at its run's halts
BRIEF = 1.0  # seconds a cleanup request (an abort, a lease deleted on the way out) is waited for at most

_brief = threading.local()  # .on: this thread is on its way out (briefly)


def quiet_expect(session: Any) -> None:
    """botocore asks the server to accept a file's body before it is sent (``Expect: 100-continue``): one round
    trip more for each PUT, which mvc's bytes bodies never paid; the Paced bodies do not either."""

    def drop(request: Any, **kw: Any) -> None:  # (as sent: the header is never signed)
        if "Expect" in request.headers:
            del request.headers["Expect"]

    session.register("before-send.s3", drop)


def no_retry_on_timeout(session: Any) -> None:
    """A read timeout ends the request rather than starting it again (botocore's three attempts): the server went
    silent, and the command says so after read_timeout, not three times that."""
    from botocore.exceptions import ReadTimeoutError

    def no_retry(caught_exception: BaseException | None = None, **kw: Any) -> bool | None:
        return False if isinstance(caught_exception, ReadTimeoutError) else None

    session.register("needs-retry.s3", no_retry)


class Paced(io.BytesIO):
    """A request body whose reads say when its bytes were last taken: aiohttp reads it a piece (64 KiB) at a time,
    each once the one before left its buffer, so a body whose reads stop is one the server stopped taking."""

    def __init__(self, data: bytes | memoryview):
        super().__init__(data)
        self.last = time.monotonic()

    def read(self, size: int | None = -1) -> bytes:
        self.last = time.monotonic()
        return super().read(size)


async def sent(call: Callable[[Paced], Awaitable[Any]], data: bytes | memoryview, timeout: float | None) -> Any:
    """call(body) with body the Paced bytes of data, cancelled once no byte of it was taken for ``timeout`` seconds
    (then TimeoutError; None: never); what follows its last byte (the response) is bounded by aiohttp's
    ``read_timeout`` as well."""
    import asyncio

    body = Paced(data)
    if not timeout:
        return await call(body)
    task = asyncio.ensure_future(call(body))
    try:
        while True:
            left = body.last + timeout - time.monotonic()
            if left <= 0 and not task.done():
                raise TimeoutError(f"timed out sending the request: the server took no byte of it for {timeout:g} s")
            done, _ = await asyncio.wait({task}, timeout=max(left, 0.01))
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def run(loop: Any, coro: Awaitable[Any]) -> Any:
    """The result of coro run on loop (fsspec's), waited for in steps: Ctrl-C (SIGTERM) in this thread or a halt of
    the run this thread works for cancels it (KeyboardInterrupt, as a halted connection of s3read's). In
    :func:`briefly`, given up (TimeoutError) after BRIEF seconds, halted or not."""
    import asyncio

    brief = getattr(_brief, "on", False)
    halts = () if brief else parallel.halts()  # (a cleanup is tried when the run halted: that is its time)
    if parallel.halted(halts):
        getattr(coro, "close", lambda: None)()
        raise KeyboardInterrupt
    future: Any = asyncio.run_coroutine_threadsafe(coro, loop)  # type: ignore[arg-type]
    until = time.monotonic() + BRIEF if brief else None
    try:
        while True:
            try:
                return future.result(STEP)
            except TimeoutError:
                if future.done():
                    raise  # the request's own (a body not taken)
                if parallel.halted(halts):
                    raise KeyboardInterrupt from None
                if until is not None and time.monotonic() > until:
                    raise TimeoutError(f"no answer within {BRIEF:g} s, on the way out") from None
    finally:
        if not future.done():
            future.cancel()  # (the task is cancelled in the loop: its connection closed)


class briefly:
    """Requests of this thread (:func:`run`) are waited for BRIEF seconds at most in the block: what a command that
    failed or was interrupted cleans up on its way out (an upload aborted, its lease deleted) is tried, not waited
    for on a server that stopped answering."""

    def __enter__(self) -> None:
        self.was = getattr(_brief, "on", False)
        _brief.on = True

    def __exit__(self, *exc: object) -> None:
        _brief.on = self.was
