"""Local file primitives: hashing, copy-while-hashing, links, atomic writes.

Every function here works on plain paths and knows nothing of oids' layout or pointers.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat as statmod
import threading
import time
from collections.abc import Callable, Iterator

import xxhash

from mvc.errors import StorageError

CHUNK = 64 << 20  # hash slice; big enough that per-call overhead vanishes
SMALL = 8 << 20  # below this, read/hash/write in one go (no thread, no mmap)
SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_FICLONE = 0x40049409

Progress = Callable[[int], None]


def hexdigest_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def _hash_mapped(fd: int, size: int, progress: Progress | None) -> str:
    h = xxhash.xxh3_128()
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m, memoryview(m) as view:
        for start in range(0, size, CHUNK):
            with view[start : start + CHUNK] as part:
                h.update(part)
                if progress:
                    progress(len(part))
    return h.hexdigest()


def hash_fd(fd: int, size: int, progress: Progress | None = None) -> str:
    if size == 0:
        return hexdigest_bytes(b"")
    if size < SMALL:
        data = os.pread(fd, size, 0)
        if progress:
            progress(len(data))
        return hexdigest_bytes(data)
    return _hash_mapped(fd, size, progress)


def hash_file(path: str, progress: Progress | None = None) -> tuple[str, os.stat_result]:
    """Hex xxh3-128 of a file and the stat taken before reading it."""
    with _open_read(path) as fd:
        st = os.fstat(fd)
        return hash_fd(fd, st.st_size, progress), st


@contextlib.contextmanager
def _open_read(path: str) -> Iterator[int]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise StorageError(f"{path}: no such file: check the path") from None
    except PermissionError:
        raise StorageError(f"{path}: permission denied: make it readable (chmod u+r)") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _kernel_copy(src: int, dst: int, size: int) -> None:
    off = 0
    try:
        while off < size:
            n = os.copy_file_range(src, dst, size - off, off, off)
            if n == 0:
                break
            off += n
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL) or off:
            raise
    while off < size:  # fallback when copy_file_range is unavailable across these filesystems
        n = os.sendfile(dst, src, off, size - off)
        if n == 0:
            raise StorageError("source file shrank while copying: retry when nothing writes to it")
        off += n


def copy_hash_fd(src: int, dst: int, size: int, progress: Progress | None = None) -> str:
    """Copy ``size`` bytes src -> dst and return their hex digest.

    Small files are read once into memory. Large ones are copied by the kernel in a thread while
    this thread hashes the same pages through mmap: the disk is read once and the two run in
    parallel, so the whole costs about one ``cp``.
    """
    if size < SMALL:
        data = os.pread(src, size, 0)
        if len(data) != size:
            raise StorageError("source file shrank while copying: retry when nothing writes to it")
        write_all(dst, data)
        if progress:
            progress(size)
        return hexdigest_bytes(data)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _kernel_copy(src, dst, size)
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)

    worker = threading.Thread(target=run, name="mvc-copy", daemon=True)
    worker.start()
    try:
        digest = _hash_mapped(src, size, progress)
    finally:
        worker.join()
    if failure:
        raise failure[0]
    return digest


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def reflink_fd(src: int, dst: int) -> bool:
    """Clone src into dst sharing extents (btrfs, xfs, …); False where unsupported."""
    import fcntl

    try:
        fcntl.ioctl(dst, _FICLONE, src)
        return True
    except OSError:
        return False


# Every temp file mvc makes with tmp_name is named ``.mvc-tmp.<hint>.<pid>.<thread>.<8 hex digits>.tmp``: the
# sweep deletes nothing else (docs/FORMAT.md, "Threat model").
TMP_PREFIX = ".mvc-tmp."
MARKER = "mvc.toml"  # the layout marker of a store (mvc.objects.layout): its tmp/ is swept only where it is
_HINT_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_tmp_pattern = None


def tmp_name(directory: str, hint: str = "") -> str:
    """A fresh temp file name in directory, in the one pattern mvc recognises as its own (is_tmp_name)."""
    safe = "".join(c if c in _HINT_OK else "_" for c in hint[:40])
    name = f"{TMP_PREFIX}{safe}.{os.getpid()}.{threading.get_ident() % 100000}.{os.urandom(4).hex()}.tmp"
    return os.path.join(directory, name)


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


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, fsync: bool = False, mode: int | None = None) -> None:
    """Write data to path through a temp file in the same directory and a rename."""
    directory = os.path.dirname(path) or "."
    tmp = tmp_name(directory, os.path.basename(path))
    try:
        with space_errors(path):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
            try:
                write_all(fd, data)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    if fsync:
        fsync_dir(directory)


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


@contextlib.contextmanager
def space_errors(what: str) -> Iterator[None]:
    """Turn disk-full and permission errors into one clear line."""
    try:
        yield
    except OSError as e:
        err = local_error(e, what)
        if err is None:
            raise
        raise err from None


def local_error(e: OSError, what: str, only_space: bool = False) -> StorageError | None:
    """The one-line error for a full disk (or, unless only_space, a refused write) while writing what on
    this machine; None for other errors."""
    if e.errno in SPACE_ERRNOS:
        return StorageError(f"no space left writing {what}: free some space (or move cache.dir) and retry")
    if not only_space and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot write {what}: {e.strerror}: check permissions")
    return None
