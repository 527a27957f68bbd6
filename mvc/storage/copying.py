"""Copying a file into the cache or a directory store and naming it by its bytes: a kernel copy in a thread, the
copy hashed one step behind it (what the object holds is what its name says)."""

from __future__ import annotations

import os
import threading

from mvc.errors import StorageError
from mvc.storage.fileio import MAP_WINDOW, SMALL, Progress, copy_range, hash_mapped, hexdigest_bytes, write_all


def copy_hash_fd(src: int, dst: int, size: int, progress: Progress | None = None) -> str:
    """Copy ``size`` bytes src -> dst and return the hex digest of the bytes dst holds.

    Small files are read once into memory: the bytes hashed are the bytes written. Large ones are copied by the
    kernel in a thread, MAP_WINDOW bytes at a time, while this thread hashes the copy (dst, from the page cache)
    one step behind: the digest is the copy's, so a source written meanwhile (through a shared mapping, which
    need not move its mtime) cannot give an object that does not hash to its name, and the two still run side
    by side (about one ``cp``). A dst open for writing only is hashed from src as the copy reads it."""
    if size < SMALL:
        data = os.pread(src, size, 0)
        if len(data) != size:
            raise StorageError("source file shrank while copying: retry when nothing writes to it")
        write_all(dst, data)
        if progress:
            progress(size)
        return hexdigest_bytes(data)
    import fcntl

    readable = fcntl.fcntl(dst, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR
    failure: list[BaseException] = []
    done = threading.Condition()
    copied = 0  # bytes of dst written so far (all of them once the copy ended, well or not)
    steps = 0

    def step() -> bool:  # asked before each step of the copy: the steps before it are in dst
        nonlocal copied, steps
        with done:
            copied, steps = min(size, steps * MAP_WINDOW), steps + 1
            done.notify()
        return not failure

    def run() -> None:
        nonlocal copied
        try:
            copy_range(src, dst, 0, size, wanted=step if readable else None, step=MAP_WINDOW)
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)
        finally:
            with done:
                copied = size
                done.notify()

    def until(end: int) -> None:
        with done:
            done.wait_for(lambda: copied >= end)
        if failure:  # never map what the copy did not write (a read past the file's end is SIGBUS)
            raise failure[0]

    worker = threading.Thread(target=run, name="mvc-copy", daemon=True)
    worker.start()
    try:
        digest = hash_mapped(dst, size, progress, until) if readable else hash_mapped(src, size, progress)
    except BaseException as e:
        failure.append(e)  # (the copy stops at its next step)
        raise
    finally:
        while worker.is_alive():  # never return (and let the caller close dst) while the copy writes to it
            try:
                worker.join()
            except BaseException as e:  # a second Ctrl-C while waiting: still waited for, then raised
                failure.append(e)
    if failure:
        raise failure[0]
    return digest
