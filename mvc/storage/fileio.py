"""Local file primitives: hashing, copy-while-hashing, links, atomic writes.

Every function here works on plain paths and knows nothing of oids' layout or pointers.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat as statmod
import sys
import time
from collections.abc import Callable, Iterator

import xxhash

from mvc.errors import StorageError
from mvc.storage import tempfiles

CHUNK = 64 << 20  # hash slice; big enough that per-call overhead vanishes
MAP_WINDOW = 16 << 20  # hash through mmap one window at a time (resident memory stays below this)
SMALL = 8 << 20  # below this, read/hash/write in one go (no thread, no mmap)
SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_FICLONE = 0x40049409

Progress = Callable[[int], None]


def hexdigest_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


SHRANK = "the file shrank while it was read: run the command again once nothing writes to it"


def hash_mapped(fd: int, size: int, progress: Progress | None, until: Callable[[int], None] | None = None) -> str:
    """One CHUNK-sized window mapped at a time: a mapped page counts in the process's resident memory until
    it is unmapped, so mapping a whole 1 GiB file would show 1 GiB of RSS (a server's memory limit). until(end):
    returns once bytes up to end are there to read (a copy being written)."""
    h = xxhash.xxh3_128()
    for start in range(0, size, MAP_WINDOW):  # a multiple of mmap.ALLOCATIONGRANULARITY
        if until is not None:
            until(min(start + MAP_WINDOW, size))
        elif os.fstat(fd).st_size < min(start + MAP_WINDOW, size):
            # cut short while it is read (a trainer saving to the same path): a read past its end would be SIGBUS
            raise StorageError(SHRANK)
        try:
            m = mmap.mmap(fd, min(MAP_WINDOW, size - start), access=mmap.ACCESS_READ, offset=start)
        except ValueError:  # (shorter than the window by now)
            raise StorageError(SHRANK) from None
        with m, memoryview(m) as part:
            h.update(part)
            if progress:
                progress(len(part))
    return h.hexdigest()


def mapped(fd: int, start: int, end: int) -> memoryview:
    """Bytes [start, end) of the file fd (open for reading), mapped: read from the page cache without a copy.
    The mapping lasts while the view (or a slice of it) does."""
    if start >= end:
        return memoryview(b"")
    base = start - start % mmap.ALLOCATIONGRANULARITY
    m = mmap.mmap(fd, end - base, access=mmap.ACCESS_READ, offset=base)
    return memoryview(m)[start - base :]


def hash_fd(fd: int, size: int, progress: Progress | None = None) -> str:
    if size == 0:
        return hexdigest_bytes(b"")
    if size < SMALL:
        data = os.pread(fd, size, 0)
        if progress:
            progress(len(data))
        return hexdigest_bytes(data)
    return hash_mapped(fd, size, progress)


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


COPY_STEP = 64 << 20  # bytes a copy that may be called off copies between two questions


def copy_range(
    src: int, dst: int, start: int, size: int, wanted: Callable[[], bool] | None = None, step: int | None = None
) -> bool:
    """Copy bytes [start, start + size) of src to the start of the empty file dst, in the kernel; given wanted,
    step bytes (default COPY_STEP) at a time, asking it before each: False calls the copy off (returns False, the
    file short)."""
    preallocate(dst, size)
    step = size if wanted is None else step or COPY_STEP
    off = 0
    while off < size:
        if wanted is not None and not wanted():
            return False
        n = min(step, size - off)
        got = max(0, copy_into(src, dst, start + off, n, off))
        if got < n:  # copy_file_range is unavailable across these filesystems (or src ended): sendfile
            os.lseek(dst, off + got, os.SEEK_SET)
        while got < n:
            k = os.sendfile(dst, src, start + off + got, n - got)
            if k == 0:
                raise StorageError("source file shrank while copying: retry when nothing writes to it")
            got += k
        off += n
    return True


def copy_into(src: int, dst: int, start: int, size: int, at: int) -> int:
    """Copy bytes [start, start + size) of src to offset ``at`` of dst in the kernel (``copy_file_range``);
    returns the bytes copied, fewer when src ends first, or -1 when the kernel cannot copy between these
    files (before any byte was copied: the caller copies them itself)."""
    off = 0
    while off < size:
        try:
            n = os.copy_file_range(src, dst, size - off, start + off, at + off)
        except OSError as e:
            if e.errno in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL) and not off:
                return -1
            raise
        if n == 0:
            break
        off += n
    return off


def _c_library():
    return tempfiles.c_library()


_FALLOC_FL_KEEP_SIZE = 1


def preallocate(fd: int, size: int) -> None:
    """Reserve size bytes of disk for a file about to be written, without changing its size.

    One extent request instead of the allocations a large write makes block group by block group: on the
    ext4 of docs/benchmarks.md a 1 GiB copy took 0.31 s after it against 0.38 s without (``cp`` 0.38 s). Only
    Linux's ``fallocate(2)`` with ``FALLOC_FL_KEEP_SIZE``, never glibc's ``posix_fallocate``, which writes
    zeros where the filesystem cannot. Best effort: any failure (no support, no space yet) is left to the
    write that follows, which reports it.
    """
    if size < SMALL or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = _c_library()
        fallocate = libc.fallocate
        if fallocate.argtypes is None:
            fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, size)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD = -3


def release_large_frees() -> None:
    """Have glibc's malloc serve allocations of 1 MiB and more with their own mappings, returned to the system
    when freed. Work that makes many large temporaries (deltas of 4 MiB tensor pieces) while keeping small
    results otherwise pins freed heap behind them: a fine-tune's push of 1 GiB peaked at 940 MiB resident,
    146 MiB with this. Best effort, Linux with glibc only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        _c_library().mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


_CACHESTAT = {"x86_64": 451, "aarch64": 451, "riscv64": 451}  # syscall numbers (Linux 6.5+)
_cachestat_nr: int | None = None  # this machine's, once known; 0: none
_cachestat: Callable[[int], tuple[int, ...] | None] | None = None


def drop_cached(path: str, size_from: int = SMALL) -> None:
    """Drop the page cache of the file at path, about to be replaced, when none of it is dirty.

    Its pages are freed when the new file takes its name anyway; freed before the new file is written,
    they are what the kernel reuses for it, as when the old file is deleted first. Otherwise the new file
    takes memory from the free pool, which a virtual machine may have handed back to its host (free page
    reporting, a balloon): writing 1 GiB into such memory was 2 to 10 times slower, at random, on the
    machines of docs/benchmarks.md. Dirty pages are left alone (a file written in the last half minute):
    dropping them would start writing out a file about to be deleted. Only on Linux with ``cachestat``
    (6.5+); a symlink, a file below size_from bytes or one with other links (a cache object) is left alone.
    Never fails: it only saves time."""
    global _cachestat, _cachestat_nr
    if _cachestat_nr is None:
        _cachestat_nr = _CACHESTAT.get(os.uname().machine, 0) if sys.platform == "linux" else 0
    number = _cachestat_nr
    if not number:
        return
    try:  # lstat first: most files a directory's checkout writes are new or small
        st = os.lstat(path)
        if not statmod.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size < size_from:
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if _cachestat is None:
            import ctypes

            libc = _c_library()
            stat = (ctypes.c_uint64 * 5)()  # cached, dirty, writeback, evicted, recently evicted (pages)
            whole = (ctypes.c_uint64 * 2)(0, 0)  # offset, length (0: to the end)

            def cachestat(fd: int) -> tuple[int, ...] | None:
                ok = libc.syscall(number, fd, ctypes.byref(whole), ctypes.byref(stat), 0) == 0
                return tuple(stat) if ok else None

            _cachestat = cachestat
        counts = _cachestat(fd)
        if counts is not None and counts[0] and not counts[1] and not counts[2]:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2


def exchange(a: str, b: str) -> bool:
    """Swap the entries at paths a and b in one step (Linux ``renameat2(RENAME_EXCHANGE)``, files or
    directories); False where that cannot be done (another system, no such call, a filesystem without it,
    one of them gone)."""
    if sys.platform != "linux":
        return False
    libc = _c_library()
    if not hasattr(libc, "renameat2"):
        return False
    at_cwd = -100  # AT_FDCWD
    return bool(libc.renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0)


def swap_into(tmp: str, dest: str) -> None:
    """Put the file tmp at dest, as ``os.replace`` does (atomically: dest is the old file or the new one,
    never missing), and delete the file that was there.

    Where dest is a file, the two are swapped (Linux ``renameat2(RENAME_EXCHANGE)``) and the old one then
    deleted under tmp's name: ext4 writes out at once the data of a file renamed over another
    (``auto_da_alloc``, 0.4 s a GiB here, in the rename), not of one swapped with it; written out later,
    as any file, it may be lost in a crash of the next half minute (the cache still holds it). Elsewhere,
    or when swapping is not to be had, ``os.replace``. Errors are those of ``os.replace`` (EXDEV included)."""
    try:
        swap = statmod.S_ISREG(os.lstat(dest).st_mode)
    except OSError:
        swap = False
    if not (swap and exchange(tmp, dest)):
        os.replace(tmp, dest)  # no swapping here (or dest went away meanwhile): os.replace says what is wrong
        return
    try:
        os.unlink(tmp)  # the old file, under tmp's name
    except IsADirectoryError:  # a directory took dest's place meanwhile: put it back, as os.replace would fail
        exchange(tmp, dest)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), tmp, None, dest) from None


_SETTLE_WAITS = (0.0, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512)


def settle(fd: int) -> os.stat_result | None:
    """fstat of the file fd, a file this process has just written, once its ctime is later than its mtime;
    None where that cannot be had (no ``utime`` on a file descriptor, or the clock did not move for a second).

    A write stamps mtime and ctime with the time of the write, so once the ctime is later than the mtime,
    any later write to the file changes its mtime, even within the same timestamp tick (the state cache
    may then trust it at once). The ctime is moved by setting the mtime to its own value."""
    st = os.fstat(fd)
    if st.st_ctime_ns > st.st_mtime_ns:
        return st
    if os.utime not in os.supports_fd:
        return None
    # The first try is enough where the kernel stamps a change after an fstat finer than its tick (Linux 6.13+,
    # multigrain timestamps; 0.03 ms here); elsewhere a tick of the clock has to pass first.
    for wait in _SETTLE_WAITS:
        if wait:
            time.sleep(wait)
        try:
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        except OSError:  # a filesystem that keeps no times, say: the file is only not vouched for
            return None
        now = os.fstat(fd)
        if now.st_ctime_ns > now.st_mtime_ns == st.st_mtime_ns:
            return now
    return None


# The most one write call hands the kernel. On Linux 6.x a larger write fills the page cache with larger folios,
# whose allocation stalls in memory compaction once free memory is fragmented: on the machine of
# docs/benchmarks.md, 1 GiB written in 8 MiB calls took 0.25-3.7 s, in 1 MiB calls 0.22-0.41 s (a kernel copy,
# which writes pipe-sized pieces, 0.32-0.35 s).
WRITE_MAX = 1 << 20


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:WRITE_MAX]) :]


def preadv_all(fd: int, buf: memoryview, offset: int) -> int:
    """Read from offset until buf is full or the file ends; returns the bytes read."""
    got = 0
    while got < len(buf):
        n = os.preadv(fd, [buf[got:]], offset + got)
        if not n:
            break
        got += n
    return got


def pwritev_all(fd: int, buffers: list[bytes | memoryview], offset: int) -> None:
    """Write the buffers one after another from offset, without joining them first (WRITE_MAX bytes a call)."""
    views = [memoryview(b) for b in buffers if len(b)]
    while views:
        batch, room = [], WRITE_MAX
        for v in views[:512]:  # IOV_MAX is 1024 on Linux
            batch.append(v[:room])
            room -= len(batch[-1])
            if not room:
                break
        n = os.pwritev(fd, batch, offset)
        offset += n
        while n and views:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0] = views[0][n:]
                n = 0


def reflink_fd(src: int, dst: int) -> bool:
    """Clone src into dst sharing extents (btrfs, xfs, …); False where unsupported."""
    import fcntl

    try:
        fcntl.ioctl(dst, _FICLONE, src)
        return True
    except OSError:
        return False


def fsync_path(path: str) -> None:
    """fsync a file or a directory by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: str) -> None:
    fsync_path(directory)


@contextlib.contextmanager
def new_file(path: str, readable: bool = False) -> Iterator[int]:
    """A new file at path (never one that exists), open for writing (and reading); removed again if the block
    fails, so nothing half-written is left where a caller looks."""
    fd = os.open(path, (os.O_RDWR if readable else os.O_WRONLY) | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        yield fd
    except BaseException:
        remove_quietly(path)
        raise
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, fsync: bool = False, mode: int | None = None) -> None:
    """Write data to path through a temp file in the same directory and a rename."""
    directory = os.path.dirname(path) or "."
    tmp = tempfiles.tmp_name(directory, os.path.basename(path))
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


SQLITE_FILES = ("", "-journal", "-wal", "-shm")  # a database's file and those SQLite makes beside it


def refuse_links(path: str, suffixes: tuple[str, ...] = ("",)) -> None:
    """Refuse to open mvc's own file at path (and path + each suffix) where it is a symlink: one in ``.mvc/`` that
    a commit put there (``git add -f``) would make mvc write, or SQLite create tables, wherever it points."""
    for suffix in suffixes:
        if os.path.islink(path + suffix):
            raise StorageError(
                f"{path + suffix} is a symlink, where mvc keeps a file of its own (a commit's? 'git ls-files .mvc' "
                "shows): mvc never writes through it: remove it ('git rm --cached' it too if git tracks it), then "
                "retry"
            )


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
    if e.errno == errno.EFBIG:  # room enough, but a file too large: ulimit -f, or FAT32's 4 GiB
        return StorageError(
            f"a file too large for the file system of {what}, or for this shell's file-size limit (ulimit -f): "
            "raise the limit, or use a file system that holds larger files"
        )
    if e.errno in SPACE_ERRNOS:
        move = " (or move cache.dir)" if "cache" in what else ""  # (moving the cache frees no room elsewhere)
        return StorageError(f"no space left writing {what}: free some space{move} and retry")
    if not only_space and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot write {what}: {e.strerror}: check permissions")
    return None


def link(src: str, dest: str, how: str) -> bool:
    """Make dest a hard or symbolic link to src; False where this filesystem or cache cannot."""
    try:
        (os.link if how == "hardlink" else os.symlink)(src, dest)
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP):
            return False
        raise
    return True


def open_source(path: str) -> int:
    """Open a user's file to read it into the cache (never through a symlink); StorageError says what is wrong."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise StorageError(f"{path}: no such file: check the path") from None
    except PermissionError:
        raise StorageError(f"{path}: permission denied: make it readable (chmod u+r)") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StorageError(f"{path}: is a symlink: add the file it points to instead") from None
        raise
