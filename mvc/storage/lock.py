"""An advisory lock between mvc processes, for the read-modify-writes of files several commands share
(``.gitignore`` files, ``.mvc/config.toml``): two commands at once must both keep their entries.

``flock`` on a lock file: the kernel drops it when its holder exits, kill -9 included, so a crash never
leaves a stale lock behind. Taking a free lock costs an open and a system call (tens of µs).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import time
from collections.abc import Iterator

from mvc.errors import StorageError

WAIT = 60.0  # seconds to wait for another mvc command before giving up
NOTICE = 0.5  # seconds of waiting after which the wait is announced on stderr
_local = threading.local()  # .held: {lock file: how deep} that this thread holds: taking one again nests freely
_ours: dict[str, int] = {}  # lock file -> how many threads of this process hold it (a wait names its holder)
_ours_lock = threading.Lock()


@contextlib.contextmanager
def locked(
    path: str, what: str, wait: float = WAIT, shared: bool = False, doing: str = "writing", needed: bool = True
) -> Iterator[None]:
    """Hold the lock file at path (created if needed) for the block; another process holding it is waited
    for (saying so once on stderr, naming ``what`` it protects) for up to ``wait`` seconds. Reentrant
    within a thread (a verb holding it may call another that takes it); another thread of the process waits
    as another process does (``flock`` locks an open file, and each taker opens its own). ``shared``: held
    beside other shared holders, waited for only by (and waiting only for) an exclusive one. ``doing``: what
    the holder waited for does to ``what``, as the wait's notice says it. ``needed`` False: a lock file this user
    can neither make nor open (a work tree of another user's) is gone without, as on a read-only filesystem."""
    _held: dict[str, int] | None = getattr(_local, "held", None)
    if _held is None:
        _held = _local.held = {}
    if _held.get(path):
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    import fcntl

    nofollow = getattr(os, "O_NOFOLLOW", 0)  # a lock file is mvc's own: a symlink there (a commit's?) is refused
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | nofollow | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StorageError(
                f"{path} is a symlink, where mvc keeps a lock file (a commit's? 'git ls-files .mvc' shows): mvc "
                "never opens it: remove it ('git rm --cached' it too if git tracks it), then retry"
            ) from None
        if e.errno == errno.EROFS or (not needed and not os.path.exists(path)):
            # a read-only filesystem (a cache baked into an image): no one writes there; nor (not needed) where this
            # user may not make the file
            _held[path] = 1
            try:
                yield
            finally:
                del _held[path]
            return
        try:  # a lock file this user may not write (another's cache it may read): flock needs no write access
            fd = os.open(path, os.O_RDONLY | nofollow | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            raise StorageError(
                f"cannot open the lock file {path}: {e.strerror}: check the permissions of its directory"
            ) from None
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            start = time.monotonic()
            said = False
            while True:
                time.sleep(0.005)  # a holder keeps it for milliseconds: poll often, a free lock is taken at once
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - start
                    if waited > NOTICE and not said:  # a wait someone would notice: say what it is for
                        sys.stderr.write(f"mvc: waiting for {_holder(path)} to finish {doing} {what}\n")
                        said = True
                    if waited > wait:
                        raise StorageError(
                            f"{_holder(path)} has held {path} for {wait:g} s while {doing} {what}: "
                            "wait for it to finish (or stop it), then retry"
                        ) from None
        except OSError as e:  # a filesystem that locks nothing (an NFS mount without locks, say)
            raise StorageError(
                f"cannot lock {path} ({e.strerror}): put it on a filesystem that supports flock, or set "
                "MVC_CACHE_DIR to one"
            ) from None
        _held[path] = 1
        with _ours_lock:
            _ours[path] = _ours.get(path, 0) + 1
        try:
            yield
        finally:
            del _held[path]
            with _ours_lock:
                _ours[path] -= 1
                if not _ours[path]:
                    del _ours[path]
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(path: str) -> str:
    """Who a wait for the lock at path waits for, as its notice names it: several threads of one process (a
    script's) wait for each other as processes do."""
    with _ours_lock:
        if _ours.get(path):
            return f"another thread of this process (pid {os.getpid()})"
    return "another mvc command"
