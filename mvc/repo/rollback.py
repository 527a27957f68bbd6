"""All or nothing for a verb that changes many files of the work tree and git's index (``mvc import-lfs``,
``mvc import-dvc``): what it may change is put aside or saved before the first write, and put back as it was
when a write fails.

Large files (weights) are renamed aside, beside themselves (the same filesystem), and renamed back: no copy, and
the inode, mode and times git's index recorded come back with them. Small files (pointers, ``.gitignore``,
``.gitattributes``, the map) are saved as bytes and mode, absent ones as absent. The index is saved as bytes and
written back under git's own lock (``index.lock``). Process death is not covered: a file renamed aside then stays
under a temp name (``tempfiles.tmp_name``, swept once its writer is gone); what replaced it is in the cache.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import TYPE_CHECKING

from mvc.errors import StorageError
from mvc.storage import fileio, tempfiles

if TYPE_CHECKING:
    from mvc.repo.repository import Repo


class Rollback:
    """A context manager: an exception in the block puts back every file saved and the index, then goes on (the
    original error, or a :class:`StorageError` naming what could not be put back); success drops the copies."""

    def __init__(self, repo: Repo):
        self.repo = repo
        self._saved: dict[str, tuple[bytes, int] | None] = {}  # relpath -> (bytes, mode), None: absent
        self._aside: dict[str, str | None] = {}  # relpath -> the temp path holding it, None: absent
        self._index: tuple[str, bytes | None] | None = None

    def save(self, *rels: str) -> None:
        """Remember the small files at rels (each once, before its first write), or that they are absent."""
        for rel in rels:
            if rel in self._saved or rel in self._aside:
                continue
            full = self.repo.abs(rel)
            try:
                with open(full, "rb") as fh:
                    self._saved[rel] = (fh.read(), os.fstat(fh.fileno()).st_mode & 0o7777)
            except FileNotFoundError:
                self._saved[rel] = None

    def move_aside(self, *rels: str) -> None:
        """Rename the files at rels out of the way (their writer then creates them anew), to rename back."""
        swept: set[str] = set()
        for rel in rels:
            if rel in self._aside or rel in self._saved:
                continue
            full = self.repo.abs(rel)
            if os.path.dirname(full) not in swept:  # what a killed run put aside there (its content is in the cache)
                swept.add(os.path.dirname(full))
                tempfiles.sweep_dead(os.path.dirname(full))
            tmp = tempfiles.tmp_name(os.path.dirname(full), "aside")
            try:
                os.rename(full, tmp)
            except FileNotFoundError:
                self._aside[rel] = None
            else:
                self._aside[rel] = tmp

    def save_index(self) -> None:
        """Remember git's index as it is."""
        rel = self.repo.git.run("rev-parse", "--git-path", "index").decode("utf-8", "surrogateescape").strip()
        path = os.path.join(self.repo.root, rel)
        self._index = (path, _read(path))

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            for tmp in self._aside.values():
                if tmp is not None:
                    fileio.remove_quietly(tmp)
            return
        failed = self._put_back()
        if failed:
            what = exc if isinstance(exc, Exception) else "interrupted"
            raise StorageError(f"{what}; and putting back what was changed failed: {failed}") from None

    def _put_back(self) -> str:
        """Put every file and the index back; returns what could not be (the first, and how many more), or ""."""
        failed = []
        for rel, tmp in self._aside.items():
            try:
                if tmp is None:
                    _unlink(self.repo.abs(rel))
                else:
                    os.replace(tmp, self.repo.abs(rel))
            except OSError as e:
                failed.append(f"{rel} ({e.strerror}; it is in {tmp})" if tmp else f"{rel} ({e.strerror})")
        for rel, before in self._saved.items():
            full = self.repo.abs(rel)
            try:
                if before is None:
                    _unlink(full)
                elif _read(full) != before[0]:
                    fileio.atomic_write(full, before[0])
                    os.chmod(full, before[1])
            except OSError as e:
                failed.append(f"{rel} ({e.strerror}): restore it with 'git checkout -- {rel}'")
        if self._index is not None:
            try:
                _put_index(*self._index)
            except OSError as e:
                failed.append(f"git's index ({e.strerror}): check it with 'git status'")
        return failed[0] + (f" and {len(failed) - 1} more" if len(failed) > 1 else "") if failed else ""


def _unlink(path: str) -> None:
    if os.path.lexists(path):
        os.unlink(path)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _put_index(path: str, before: bytes | None) -> None:
    """Write the index back as git does: through ``index.lock``, taken exclusively, then renamed."""
    if _read(path) == before:
        return
    if before is None:
        os.unlink(path)
        return
    lock = path + ".lock"
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        fileio.write_all(fd, before)
    finally:
        os.close(fd)
    try:
        os.replace(lock, path)
    except BaseException:
        fileio.remove_quietly(lock)
        raise
