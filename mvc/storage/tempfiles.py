"""Temp files: the one name pattern mvc gives them (so that a sweep deletes nothing else), the sweep of what
killed writers left, and the umask new files get. Knows nothing of oids."""

from __future__ import annotations

import contextlib
import itertools
import os
import stat as statmod
import threading
import time

# Every temp file mvc makes with tmp_name is named ``.mvc-tmp.<hint>.<pid>.<thread>.<8 hex digits>.tmp``: the
# sweep deletes nothing else (docs/FORMAT.md, "Threat model").
TMP_PREFIX = ".mvc-tmp."
MARKER = "mvc.toml"  # the layout marker of a store (mvc.objects.layout): its tmp/ is swept only where it is
_HINT_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_tmp_pattern = None


_pid = os.getpid()
_serial = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _forked() -> None:
    global _pid, _serial
    _pid = os.getpid()
    _serial = itertools.count(int.from_bytes(os.urandom(4), "big"))


os.register_at_fork(after_in_child=_forked)


def tmp_name(directory: str, hint: str = "") -> str:
    """A fresh temp file name in directory, in the one pattern mvc recognises as its own (is_tmp_name): the
    process id, the thread, and a counter from a random start (no system call per name)."""
    safe = "".join(c if c in _HINT_OK else "_" for c in hint[:40])
    name = f"{TMP_PREFIX}{safe}.{_pid}.{threading.get_ident() % 100000}.{next(_serial) & 0xFFFFFFFF:08x}.tmp"
    return os.path.join(directory, name)


_umask: int | None = None


def umask() -> int:
    """The process's umask (read from /proc, never set: setting it to read it races with other threads); 0o077,
    the strictest usual one, where it cannot be read."""
    global _umask
    if _umask is None:
        _umask = 0o077
        with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status", "rb") as f:
            _umask = int(next(line for line in f if line.startswith(b"Umask:")).split()[1], 8)
    return _umask


def is_tmp_name(name: str) -> bool:
    """Whether a file name is one tmp_name makes (and so one a writer of mvc's created)."""
    global _tmp_pattern
    if not name.startswith(TMP_PREFIX):
        return False
    if _tmp_pattern is None:
        import re

        _tmp_pattern = re.compile(r"\.mvc-tmp\.[A-Za-z0-9_.-]{0,40}\.[0-9]{1,10}\.[0-9]{1,5}\.[0-9a-f]{8}\.tmp")
    return _tmp_pattern.fullmatch(name) is not None


STALE = 24 * 3600  # a temp file untouched this long belongs to a writer that died
_swept: set[str] = set()


def sweep_stale(directory: str, now: float | None = None, *, marker: str = MARKER) -> None:
    """Delete what killed writers left in a store's tmp/: files named by tmp_name, neither modified nor
    linked for STALE seconds. Only in a tmp/ that is a real directory (not a symlink) whose parent, the
    store's root, holds the layout marker ``marker``: a directory that is not mvc's is never touched,
    whatever it holds. Once per directory per process (one lstat each until the marker is there);
    live writers keep their files fresh."""
    if directory in _swept:
        return
    root = os.path.dirname(os.path.abspath(directory))
    try:
        if not statmod.S_ISREG(os.lstat(os.path.join(root, marker)).st_mode):
            return
        if not statmod.S_ISDIR(os.lstat(directory).st_mode):
            return
    except OSError:
        return  # no marker (yet), or no tmp/: nothing of mvc's to sweep
    _swept.add(directory)
    limit = (time.time() if now is None else now) - STALE
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not is_tmp_name(entry.name):
            continue
        with contextlib.suppress(OSError):
            st = entry.stat(follow_symlinks=False)
            # ctime too: a hard link made just now to an old file keeps the file's old mtime
            if statmod.S_ISREG(st.st_mode) and max(st.st_mtime, st.st_ctime) < limit:
                os.unlink(entry.path)


def writer_gone(pid: int) -> bool:
    """Whether no process pid runs on this machine (Windows: never known, so never gone)."""
    if os.name == "nt" or pid == os.getpid():
        return False  # on Windows os.kill(pid, 0) would send CTRL_C_EVENT
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def sweep_dead(directory: str) -> None:
    """Remove the temps a killed writer left in directory: names ``tmp_name`` makes whose pid runs
    no more on this machine. Nothing else there is touched; a temp directory (mvc get) goes with its content."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not is_tmp_name(entry.name):
            continue
        parts = entry.name.rsplit(".", 4)  # tmp_name: .mvc-tmp.<hint>.<pid>.<thread>.<hex>.tmp
        pid = parts[1] if len(parts) == 5 else ""
        if not (pid.isdigit() and pid.isascii()) or not writer_gone(int(pid)):
            continue
        if entry.is_dir(follow_symlinks=False):
            import shutil  # here, not at the top: it loads bz2 and lzma (mvc/api/checkout.py)

            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
