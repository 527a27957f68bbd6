"""The state cache: (path, inode, mtime_ns, ctime_ns, size) -> oid in ``.mvc/state.db`` (stdlib sqlite3).

Only a cache: deleting it changes no result, it only makes the next command hash again.

The ctime is in the key because no one can set it: a write whose mtime was put back with ``os.utime``
(same size, same mtime) still moves the ctime, so such a file is hashed again rather than taken for the
content the cache holds, which checkout would then replace.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import cast

from mvc.storage import fileio

# A file modified within this window of being recorded could change again without its mtime
# moving (coarse timestamps), so such entries are not trusted until they are older.
RACY_NS = 1_000_000_000
SCHEMA = 2  # PRAGMA user_version; a database of another version is emptied (1: no ctime_ns)


class StateDB:
    def __init__(self, path: str):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple] = []

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._connect()
            except sqlite3.DatabaseError:
                self._rebuild()
        return self._db  # type: ignore[return-value]

    def _connect(self) -> sqlite3.Connection:
        fileio.refuse_links(self.path, fileio.SQLITE_FILES)
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.OperationalError:  # it cannot be made (a read-only clone): an empty cache for this command
            db = sqlite3.connect(":memory:", isolation_level=None)
            _create(db)
            return db
        # Only a cache: a crash may lose the last writes (the next command hashes again) and a damaged
        # file is rebuilt, so skipping fsync (2-50 ms a command here) costs nothing that matters.
        db.execute("PRAGMA synchronous = OFF")
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA:
            try:
                db.execute("BEGIN IMMEDIATE")
                if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA:  # another process may have done it
                    _create(db)
                db.execute("COMMIT")
            except sqlite3.OperationalError:  # read-only, or locked for too long: an empty cache for this command
                db.close()
                db = sqlite3.connect(":memory:", isolation_level=None)
                _create(db)
        return db

    def _rebuild(self) -> None:
        """A damaged cache is rebuilt empty, never trusted."""
        if self._db is not None:
            self._db.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.unlink(self.path + suffix)
        self._db = self._connect()

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError:  # damage found after opening: start again from empty
            self._rebuild()
            return []

    def get(self, rel: str, st: os.stat_result) -> str | None:
        row = self.row(rel)
        return row[4] if row and row[:4] == key(st) else None

    def row(self, rel: str) -> tuple[int, int, int, int, str] | None:
        """rel's entry, (inode, mtime_ns, ctime_ns, size, oid), or None."""
        rows = self._query("SELECT inode, mtime_ns, ctime_ns, size, oid FROM state WHERE path = ?", (rel,))
        return cast(tuple[int, int, int, int, str], rows[0]) if rows else None

    def under(self, prefix: str) -> dict[str, tuple[int, int, int, int, str]]:
        """Every entry below directory prefix: {relpath: (inode, mtime_ns, ctime_ns, size, oid)}; an entry
        vouches for a file whose :func:`key` is its first four fields."""
        lo = prefix.rstrip("/") + "/"
        hi = lo[:-1] + "0"  # '0' sorts right after '/'
        rows = self._query(
            "SELECT path, inode, mtime_ns, ctime_ns, size, oid FROM state WHERE path >= ? AND path < ?", (lo, hi)
        )
        return {r[0]: r[1:] for r in rows}

    def put(self, rel: str, st: os.stat_result, oid: str) -> None:
        """Remember that the file rel, as st describes it, holds oid, where that is safe (:func:`trusted`).
        st must have been taken before the content was read (or, for a file mvc wrote, after its last write)."""
        if trusted(st):
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:  # a name with undecodable bytes: SQLite text is UTF-8, so not remembered
                return
            self._pending.append((rel, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, oid))

    def put_fields(self, rows: list[tuple[str, Sequence[int], str]]) -> None:
        """:meth:`put` of many files, each (rel, the fields ``forked.stat_fields`` keeps of its stat, oid): what a
        forked add hands back, with no stat_result made again for each (0.1 s for 100,000 files)."""
        racy_from = time.time_ns() - RACY_NS
        self.put_rows([r for r in (row(rel, f, oid, racy_from) for rel, f, oid in rows) if r is not None])

    def put_rows(self, rows: list[tuple]) -> None:
        """Rows :func:`row` made (in a forked add's workers too: bulkadd.scan_add)."""
        self._pending += rows

    def flush(self) -> None:
        if self._pending:
            try:
                db = self.db
                db.execute("BEGIN")
                db.executemany(
                    "INSERT OR REPLACE INTO state (path, inode, mtime_ns, ctime_ns, size, oid) VALUES (?, ?, ?, ?, ?, ?)",
                    self._pending,
                )
                db.execute("COMMIT")
            except sqlite3.OperationalError:
                pass  # read-only or locked for too long: only a cache
            except sqlite3.DatabaseError:
                self._rebuild()
            self._pending.clear()

    # -- tracked directories whose files were last seen unchanged (worktree.fingerprint) -------------------
    def put_dir(self, rel: str, fingerprint: str, oid: str) -> None:
        """Remember that the directory rel, while its files' stats digest to fingerprint, has manifest oid."""
        try:
            db = self.db
            db.execute(
                "CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, fingerprint TEXT, oid TEXT) WITHOUT ROWID"
            )
            db.execute("INSERT OR REPLACE INTO dirs (path, fingerprint, oid) VALUES (?, ?, ?)", (rel, fingerprint, oid))
        except sqlite3.OperationalError:
            pass  # read-only or locked for too long: only a cache
        except sqlite3.DatabaseError:
            self._rebuild()

    def dir_oid(self, rel: str, fingerprint: str) -> str | None:
        """The manifest oid put_dir recorded for rel with this fingerprint, else None."""
        try:
            rows = self.db.execute("SELECT fingerprint, oid FROM dirs WHERE path = ?", (rel,)).fetchall()
        except sqlite3.OperationalError:  # no such table: never recorded
            return None
        except sqlite3.DatabaseError:
            self._rebuild()
            return None
        return rows[0][1] if rows and rows[0][0] == fingerprint else None

    # -- delta bases chosen with 'mvc add --base REV' (docs/FORMAT.md, "Chunked objects") -------------
    # In this database because, like the rest of it, losing them changes no result: only what a push stores.
    def set_base(self, oid: str, base: str) -> None:
        try:
            db = self.db
            db.execute("CREATE TABLE IF NOT EXISTS bases (oid TEXT PRIMARY KEY, base TEXT) WITHOUT ROWID")
            db.execute("INSERT OR REPLACE INTO bases (oid, base) VALUES (?, ?)", (oid, base))
        except sqlite3.OperationalError:
            pass  # read-only or locked for too long: the push falls back to the previous version
        except sqlite3.DatabaseError:
            self._rebuild()

    def base(self, oid: str) -> str | None:
        try:
            rows = self.db.execute("SELECT base FROM bases WHERE oid = ?", (oid,)).fetchall()
        except sqlite3.OperationalError:  # no such table: no base was ever chosen
            return None
        except sqlite3.DatabaseError:
            self._rebuild()
            return None
        return rows[0][0] if rows else None

    # -- pointers 'mvc add' staged (a checkout --rev refuses to drop one no commit holds) ---------------
    # Losing them loses no data either: a checkout --rev then replaces such a pointer as git would.
    def note_added(self, rows: list[tuple[str, str]]) -> None:
        """Remember (pointer relpath, xxh3-128 hex of the bytes add wrote and staged there) for each row."""
        if not rows:
            return
        try:
            db = self.db
            db.execute("CREATE TABLE IF NOT EXISTS added (path TEXT PRIMARY KEY, digest TEXT) WITHOUT ROWID")
            db.executemany("INSERT OR REPLACE INTO added (path, digest) VALUES (?, ?)", rows)
        except sqlite3.OperationalError:
            pass  # read-only or locked for too long: only a safety net
        except sqlite3.DatabaseError:
            self._rebuild()

    def added(self, prel: str) -> str | None:
        """The digest note_added recorded for the pointer prel, else None."""
        try:
            rows = self.db.execute("SELECT digest FROM added WHERE path = ?", (prel,)).fetchall()
        except sqlite3.OperationalError:  # no such table: nothing recorded
            return None
        except sqlite3.DatabaseError:
            self._rebuild()
            return None
        return rows[0][0] if rows else None

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def __del__(self) -> None:
        # sqlite3's connection is in a reference cycle (its statement cache) that only the cyclic collector frees:
        # a Repo a Python API call opened and dropped would hold .mvc/state.db open until a collection, each one
        # a descriptor more in a script that saves a checkpoint per epoch (what was not flushed is only a cache)
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):  # (another thread's connection, or at interpreter exit)
                db.close()


def _create(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE IF EXISTS state")
    db.execute("DROP TABLE IF EXISTS bases")
    db.execute("DROP TABLE IF EXISTS dirs")
    db.execute("DROP TABLE IF EXISTS added")
    db.execute(
        "CREATE TABLE state (path TEXT PRIMARY KEY, inode INTEGER, mtime_ns INTEGER, "
        "size INTEGER, oid TEXT, ctime_ns INTEGER) WITHOUT ROWID"
    )
    db.execute(f"PRAGMA user_version = {SCHEMA}")


def key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What a state entry compares with a file's stat: (inode, mtime_ns, ctime_ns, size)."""
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def row(rel: str, f: Sequence[int], oid: str, racy_from: int) -> tuple | None:
    """The row :meth:`StateDB.put` keeps of file rel, whose stat ``forked.stat_fields`` took apart as f (ino at 1,
    size at 6, mtime_ns and ctime_ns at 11 and 12), when :func:`trusted` (racy_from: time_ns() - RACY_NS) and
    rel is text SQLite holds; else None."""
    if not (f[12] > f[11] or f[11] < racy_from):
        return None
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # a name with undecodable bytes: SQLite text is UTF-8, so not remembered
        return None
    return (rel, f[1], f[11], f[12], f[6], oid)


def trusted(st: os.stat_result) -> bool:
    """Whether a later write to the file st describes is sure to change its key (so the entry may be kept).

    Timestamps are coarse: a write in the same tick as the one st shows leaves the mtime as it is. That
    cannot be told apart unless the mtime is more than RACY_NS old, or the ctime is later than the mtime:
    something changed the file's metadata (a rename, a chmod, a utime: what checkout does to a file it
    wrote) after its last write, and a write stamps mtime and ctime with its own time, never earlier.
    """
    return st.st_ctime_ns > st.st_mtime_ns or time.time_ns() - st.st_mtime_ns > RACY_NS
