"""A remote that is a directory on this machine (or a mounted share)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from typing import Any

from mvc.errors import RemoteAuthError, RemoteCorrupt, RemoteError, RemoteNotFound, RemoteObjectMissing
from mvc.storage import copying, fileio, tempfiles
from mvc.storage.store import DEFAULT_JOBS, TMP, Check, FileRange, LateName, Progress, RangeStream, Store, Wanted
from mvc.storage.tempfiles import MARKER

LIST_FROM = 16  # exist(): asked about this many names of one directory, it is listed once


class DirStore(Store):
    protocol = "local"
    cheap_exists = True
    copies_ranges = True
    wrap_unknown = False
    default_jobs = DEFAULT_JOBS["local"]

    def __init__(self, url: str, root: str, *, fsync: bool = False):
        super().__init__(url)
        self.root = os.path.abspath(root)
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.fsync = fsync

    def _full(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def where(self, rel: str) -> str:
        return self._full(rel)

    def exists(self, rel: str) -> bool:
        return os.path.exists(self._full(rel))

    def exist(self, rels: list[str]) -> set[str]:
        groups: dict[str, list[str]] = {}
        for rel in rels:
            groups.setdefault(rel.rpartition("/")[0], []).append(rel)
        found: set[str] = set()
        for parent, group in groups.items():
            if len(group) < LIST_FROM:
                found.update(rel for rel in group if self.exists(rel))
                continue
            names: set[str] = set()
            links: set[str] = set()  # answered as exists() does: a link counts only if what it names is there
            try:
                with os.scandir(self._full(parent)) as entries:
                    for e in entries:
                        (links if e.is_symlink() else names).add(e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue  # a fan-out directory no push made yet: none of them
            except OSError:
                found.update(rel for rel in group if self.exists(rel))
                continue
            for rel in group:
                name = rel.rpartition("/")[2]
                if name in names or (name in links and self.exists(rel)):
                    found.add(rel)
        return found

    def list(self, prefix: str) -> list[str]:
        return [rel for rel, _ in self._walk(prefix)]

    def list_sizes(self, prefix: str) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._errors(prefix):
            for rel, full in self._walk(prefix):
                try:
                    out[rel] = os.stat(full).st_size
                except FileNotFoundError:
                    pass  # deleted since the listing: not there
        return out

    def list_times(self, prefix: str) -> dict[str, tuple[int, float | None]]:
        out: dict[str, tuple[int, float | None]] = {}
        with self._errors(prefix):
            for rel, full in self._walk(prefix):
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                out[rel] = (st.st_size, max(st.st_mtime, st.st_ctime))  # a rename (publish) moves ctime
        return out

    def _walk(self, prefix: str) -> Sequence[tuple[str, str]]:
        """(rel, full path) of every file below prefix, never in tmp/."""
        top = self._full(prefix) if prefix else self.root
        out: list[tuple[str, str]] = []

        def fail(e: OSError) -> None:
            if not isinstance(e, (FileNotFoundError, NotADirectoryError)):  # nothing there is an empty listing
                raise e

        with self._errors(prefix):
            for dirpath, dirs, names in os.walk(top, onerror=fail):
                rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                if rel_dir == ".":
                    dirs[:] = [d for d in dirs if d + "/" != TMP]  # half-written objects, not objects
                out.extend((f"{rel_dir}/{f}" if rel_dir != "." else f, os.path.join(dirpath, f)) for f in names)
        return [(rel, full) for rel, full in out if not rel.startswith(TMP)]

    def names(self) -> set[str]:
        with self._errors(""):
            try:
                return set(os.listdir(self.root))
            except (FileNotFoundError, NotADirectoryError):
                return set()

    def put_file(self, src: str, rel: str, check: Check, progress: Progress | None = None) -> int:
        def fill(fd: int, out: int) -> int:
            size = os.fstat(fd).st_size
            digest = copying.copy_hash_fd(fd, out, size, progress)
            check(digest)
            return size

        return self._publish(rel, lambda tmp: self._copy(src, tmp, fill))

    def _copy(self, src: str, tmp: str, fill: Callable[[int, int], Any]) -> Any:
        """fill(src fd, tmp fd) writes the new temp file from the file src; then it is synced, if so set."""
        fd = os.open(src, os.O_RDONLY)
        try:
            # write-only: a network or FUSE mount may refuse a file read and written at once; what is copied here
            # is an object of the cache (immutable), so its own bytes are hashed as they are read
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                result = fill(fd, out)
                if self.fsync:
                    os.fsync(out)
            finally:
                os.close(out)
        finally:
            os.close(fd)
        return result

    def put_bytes(self, rel: str, data: bytes | memoryview) -> None:
        def write(tmp: str) -> None:
            # not fileio.atomic_write: its errors name the temp file and the cache, not this remote
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                fileio.write_all(out, data)
                if self.fsync:
                    os.fsync(out)
            finally:
                os.close(out)

        self._publish(rel, write)

    def put_range(self, rel: LateName, src: str, start: int, end: int, wanted: Wanted | None = None) -> None:
        """A kernel copy of the range (a new file's chunks are one run of it): no byte passes through Python."""
        copied = [False]

        def fill(tmp: str) -> None:
            copied[0] = self._copy(src, tmp, lambda fd, out: fileio.copy_range(fd, out, start, end - start, wanted))

        def name() -> str | None:  # a copy called off is not published, and its name not asked for
            return None if not copied[0] else rel if isinstance(rel, str) else rel()

        self._publish(name, fill, rel if isinstance(rel, str) else "packs/")

    def _publish(self, rel: LateName, write: Callable[[str], Any], shown: str = "") -> Any:
        """write(tmp) fills a new temp file in tmp/; it is then made read-only and renamed to rel (a callable:
        asked for the name then, None to drop the temp file; see Store.put_range). shown: rel, in errors."""
        shown = rel if isinstance(rel, str) else shown
        with self._errors(shown, writing=True):
            os.makedirs(self.tmp_dir, exist_ok=True)
            tempfiles.sweep_stale(self.tmp_dir, marker=MARKER)  # only once the remote holds its marker
            tmp = tempfiles.tmp_name(self.tmp_dir, os.path.basename(shown) or "pack")
            try:
                result = write(tmp)
                name = rel if isinstance(rel, str) else rel()
                if name is None:
                    fileio.remove_quietly(tmp)
                    return None
                dest = self._full(name)
                os.chmod(tmp, 0o444)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(tmp, dest)  # identical content from a concurrent pusher is replaced harmlessly
                if self.fsync:
                    fileio.fsync_dir(os.path.dirname(dest))
            except BaseException:
                fileio.remove_quietly(tmp)
                raise
        return result

    def _open(self, rel: str) -> int:
        """A descriptor of the regular file rel (a FIFO planted there would block a read for ever: refused)."""
        try:
            fd = os.open(self._full(rel), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise RemoteCorrupt(
                    f"{self.where(rel)} is not a regular file: the remote is damaged; nothing was read from it"
                )
            return fd
        except FileNotFoundError:
            if not os.path.isdir(self.root):
                raise RemoteNotFound(
                    f"remote directory {self.root} does not exist: check the remote URL with 'mvc remote list'"
                ) from None
            raise RemoteObjectMissing(f"{self.where(rel)} is not on the remote") from None

    def read_stream(self, rel: str, start: int, end: int) -> RangeStream:
        with self._errors(rel, writing=False):
            fd = self._open(rel)
        return FileRange(fd, start, end, lambda: self._errors(rel, writing=False))

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        with self._errors(rel, writing=False):
            fd = self._open(rel)
            try:
                end = min(end, os.fstat(fd).st_size)  # no buffer larger than what is there
                return os.pread(fd, max(0, end - start), start)
            finally:
                os.close(fd)

    def get_range_into(self, rel: str, start: int, buf: memoryview) -> int:
        with self._errors(rel, writing=False):
            fd = self._open(rel)
            try:
                return fileio.preadv_all(fd, buf, start)
            finally:
                os.close(fd)

    def get_file(self, rel: str, dest: str, progress: Progress | None = None, size: int | None = None) -> str:
        with self._errors(rel, local=dest):
            fd = self._open(rel)
            try:
                held = os.fstat(fd).st_size
                if size is not None and held != size:
                    raise self.wrong_size(rel, held, size)
                out = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    return copying.copy_hash_fd(fd, out, held, progress)
                finally:
                    os.close(out)
            finally:
                os.close(fd)

    def copy_range_to(self, rel: str, start: int, end: int, fd: int, at: int) -> int:
        with self._errors(rel, writing=False):
            src = self._open(rel)
            try:
                return fileio.copy_into(src, fd, start, end - start, at)
            finally:
                os.close(src)

    def delete(self, rel: str) -> None:
        with self._errors(rel, writing=True):
            try:
                os.unlink(self._full(rel))
            except FileNotFoundError:
                pass  # already gone: what delete is for

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        """Full disk and permissions as one line naming the remote and the object, never the temp file
        the error came from; other OSErrors (the cache side's) pass through."""
        if not isinstance(e, OSError):
            return None
        what = "writing to" if writing else "reading from"
        where = f"remote {self.url} ({rel})" if rel else f"remote {self.url}"
        if e.errno == errno.EFBIG:
            return RemoteError(
                f"a file too large {what} {where} (its file system's largest, or ulimit -f): raise the limit"
            )
        if e.errno in fileio.SPACE_ERRNOS:
            return RemoteError(f"no space left {what} {where}: free space there and retry")
        if e.errno == errno.EROFS:
            return RemoteAuthError(
                f"{where} is on a read-only file system: mount it read-write, or push to another remote"
            )
        if e.errno in (errno.EACCES, errno.EPERM):
            return RemoteAuthError(
                f"permission denied {what} {where}: give this user access to {self.root} (owner, mode) and retry"
            )
        return None
