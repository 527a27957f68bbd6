"""Temp files: the one name pattern mvc gives them (so that a sweep deletes nothing else), the sweep of what
killed writers left, files with no name until they are complete (``O_TMPFILE``), a finished temp given its name
only where nothing is (``put_new``), and the umask new files get. Knows nothing of oids."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat as statmod
import sys
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


_proc_fd: bool | None = None


def open_unnamed(directory: str, mode: int) -> int | None:
    """A file with no name in directory (``O_TMPFILE``), open for reading and writing: written, then given its
    name by link_unnamed, so that a writer killed before that leaves nothing behind, and no name is made, checked
    or renamed per file. None where the kernel, the filesystem or a missing ``/proc`` cannot (then a named temp)."""
    global _proc_fd
    flag = getattr(os, "O_TMPFILE", 0)
    if _proc_fd is None:
        _proc_fd = bool(flag) and os.path.isdir("/proc/self/fd")
    if not _proc_fd:
        return None
    try:
        return os.open(directory, flag | os.O_RDWR, mode)
    except OSError as e:
        # EISDIR: a kernel that predates O_TMPFILE took it for O_DIRECTORY; EOPNOTSUPP, EINVAL: the filesystem
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None
        raise


_root_fd: int | None = None


def link_unnamed(fd: int, dest: str) -> None:
    """Give the unnamed file fd (open_unnamed) the name dest, on the same filesystem. FileExistsError when dest
    exists (it is left as it was), FileNotFoundError when its directory does not."""
    global _root_fd
    if _root_fd is None:
        _root_fd = os.open("/", os.O_RDONLY)
    # a directory fd makes os.link call linkat with AT_SYMLINK_FOLLOW (plain link() would link the /proc entry
    # itself, which fails with EXDEV); the source path is absolute, so which directory does not matter
    os.link(f"/proc/self/fd/{fd}", dest, src_dir_fd=_root_fd)


def unnamed_work(directory: str) -> bool:
    """Whether unnamed files made in directory can be given a name there (a kernel, filesystem or sandbox may
    allow O_TMPFILE and still refuse the link through ``/proc``): one tried, then removed."""
    fd = open_unnamed(directory, 0o600)
    if fd is None:
        return False
    probe = tmp_name(directory, "probe")
    try:
        link_unnamed(fd, probe)
    except OSError:
        return False
    finally:
        os.close(fd)
    os.unlink(probe)
    return True


_libc = None


def c_library():
    """The C library, through ctypes (errno kept): for the system calls Python has no function for."""
    global _libc
    if _libc is None:
        import ctypes  # here: only the commands that need it pay for it (2 ms)

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


_RENAME_NOREPLACE = 1  # renameat2's flag: fail with EEXIST when the new name is taken
# what says the call or the filesystem lacks the flag (not that the name is taken)
_NO_NOREPLACE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)
# what os.link fails with on a filesystem without hard links (FAT, exFAT, some network and FUSE mounts)
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS)


def put_new(tmp: str, dest: str) -> None:
    """Give the finished temp tmp (a file or a directory) the name dest only where nothing is at dest, in one
    step: FileExistsError when something is (tmp is then left as it is, for its writer to remove), so that what
    another writer put at dest since a look at it is never replaced.

    Linux: ``renameat2(RENAME_NOREPLACE)``. Where the call or the filesystem lacks it (another system, NFS, an
    old kernel), a file is hard-linked at dest (which fails on anything there, in one step) and its temp name
    unlinked. A directory (no hard links) and a file on a filesystem without hard links are renamed after a look
    at dest: the only fallback left, which narrows the window to the microseconds between the two calls (and a
    directory's rename fails on anything at dest but an empty directory, so no one's files are lost)."""
    if sys.platform == "linux":
        libc = c_library()
        if hasattr(libc, "renameat2"):
            import ctypes

            at_cwd = -100  # AT_FDCWD
            if libc.renameat2(at_cwd, os.fsencode(tmp), at_cwd, os.fsencode(dest), _RENAME_NOREPLACE) == 0:
                return
            err = ctypes.get_errno()
            if err not in _NO_NOREPLACE:
                raise (FileExistsError if err == errno.EEXIST else OSError)(err, os.strerror(err), tmp, None, dest)
    if not (os.path.isdir(tmp) and not os.path.islink(tmp)):
        try:
            os.link(tmp, dest)
        except OSError as e:
            if e.errno not in _NO_LINKS:
                raise
        else:
            os.unlink(tmp)
            return
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), tmp, None, dest)
    try:
        os.rename(tmp, dest)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), tmp, None, dest) from None
        raise


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


def remove_of(directory: str, pids: list[int]) -> None:
    """Remove the temps in directory that the processes pids made (``tmp_name``'s pid field): processes of this
    one that have ended, whose files nothing else will finish or rename."""
    mine = {str(p) for p in pids}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        parts = entry.name.rsplit(".", 4)
        if is_tmp_name(entry.name) and len(parts) == 5 and parts[1] in mine and not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def being_written(directory: str) -> bool:
    """Whether directory holds a temp file (``tmp_name``'s) of a process that runs on this machine: a writer at
    work there (a directory another collects must then stay)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    for name in names:
        parts = name.rsplit(".", 4) if is_tmp_name(name) else []
        pid = parts[1] if len(parts) == 5 else ""
        if pid.isdigit() and pid.isascii() and not writer_gone(int(pid)):
            return True
    return False


def sweep_dead(directory: str, min_age: float = 0) -> None:
    """Remove the temps a killed writer left in directory: names ``tmp_name`` makes whose pid runs
    no more on this machine (and, with ``min_age``, not modified for that many seconds: a directory another
    machine or container writes too, whose pids this one cannot see). Nothing else there is touched; a temp
    directory (mvc get) goes with its content."""
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
        if min_age:
            try:
                st = entry.stat(follow_symlinks=False)
                # a hard-linked temp (a link mode's, the user's inode) keeps its source's old mtime: its ctime says
                linked = st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False)
                used = max(st.st_mtime, st.st_ctime) if linked else st.st_mtime
                if used > time.time() - min_age:
                    continue
            except OSError:
                continue
        if entry.is_dir(follow_symlinks=False):
            import shutil  # here, not at the top: it loads bz2 and lzma (mvc/api/checkout.py)

            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


class WorkTemps:
    """Where the temp file goes from which a rename places a file of the work tree: in ``work_tmp`` (a directory
    mvc owns, ``work_marker`` the file beside it that shows so; None: none) when that is on the destination's
    filesystem, else beside the destination. Named by tmp_name either way. The first use of a directory in each
    process removes the temps there whose writer (the pid in the name, on this machine) is gone, and, in
    ``work_tmp``, stale ones (sweep_stale)."""

    def __init__(self, work_tmp: str | None, work_marker: str = ""):
        self.work_tmp = work_tmp
        self.work_marker = work_marker
        self._work_dev: int | None = None  # its filesystem, once it is set up
        self._beside: set[str] = set()  # directories whose temps go beside their files (swept once each)
        self._exdev: set[str] = set()  # directories a rename from work_tmp cannot reach (another mount)
        self._near: set[str] = set()  # directories on work_tmp's filesystem

    def unreachable(self, directory: str) -> None:
        """A rename from work_tmp into directory failed (another mount of the same filesystem): beside it."""
        self._exdev.add(directory)
        self._near.discard(directory)

    def temp_for(self, directory: str, name: str) -> str:
        """A fresh temp path from which a rename can place ``directory/name``."""
        if self.work_tmp is not None and self._work_dev is None:
            try:
                if os.path.islink(self.work_tmp):  # (a commit's, say): never written through, nor swept
                    raise NotADirectoryError(self.work_tmp)
                os.makedirs(self.work_tmp, exist_ok=True)
                sweep_dead(self.work_tmp)
                if self.work_marker:
                    sweep_stale(self.work_tmp, marker=self.work_marker)
                self._work_dev = os.stat(self.work_tmp).st_dev
            except OSError:  # no work_tmp to be had: beside the files, as a last resort
                self.work_tmp = None
        if self.work_tmp is not None and directory not in self._exdev:
            if directory in self._near:
                return tmp_name(self.work_tmp, name)
            try:
                near = os.stat(directory).st_dev == self._work_dev
            except OSError:
                near = False  # the caller's open() will say what is wrong with it
            if near:
                self._near.add(directory)
                return tmp_name(self.work_tmp, name)
        if directory not in self._beside:
            self._beside.add(directory)
            sweep_dead(directory)
        return tmp_name(directory, name)
