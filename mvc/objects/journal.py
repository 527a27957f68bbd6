"""The journal: which objects each remote is known to hold (``.mvc/remotes.db``, stdlib sqlite3)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from mvc.errors import StorageError
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.storage import fileio

VERSION = 1  # PRAGMA user_version: 1 = every pack recorded had its index checked against the pack's size
_json_rows: bool | None = None  # whether this SQLite reads JSON (json_each, ->>): asked once


def _reads_json(db: sqlite3.Connection) -> bool:
    """Whether rows can be handed to this SQLite as one JSON array. sqlite3 lets go of the GIL for each row of an
    ``executemany`` and then waits to take it back from a push's threads: 100,000 rows took 2.2 s of a push that
    way (docs/benchmarks.md); one statement reading a JSON array lets go once."""
    global _json_rows
    if _json_rows is None:
        try:
            _json_rows = db.execute("SELECT value ->> 0 FROM json_each('[[7]]')").fetchone() == (7,)
        except sqlite3.OperationalError:  # built without JSON, or older than 3.38
            _json_rows = False
    return _json_rows


def _pack_row(entries: list[pk.Entry]) -> tuple[bytes, bytes] | None:
    """A pack's entries as table ``pack_entries`` holds them: the digests of their oids, 16 bytes each, and their
    (offset, size) pairs as little-endian 64-bit integers, in the entries' order. None when an entry is not an
    xxh128 oid or its numbers do not fit (such a pack is not recorded: its objects are asked about again)."""
    try:
        digests = b"".join(bytes.fromhex(e.oid[7:]) for e in entries)
        places = array("q", [n for e in entries for n in (e.offset, e.size)])
    except (ValueError, OverflowError):
        return None
    if len(digests) != 16 * len(entries) or any(not e.oid.startswith("xxh128:") for e in entries):
        return None
    if places.itemsize != 8:  # pragma: no cover  (a C long long of another width)
        return None
    if sys.byteorder != "little":  # pragma: no cover
        places.byteswap()
    return digests, places.tobytes()


def _pack_oids(digests: object) -> list[str] | None:
    """The oids of a ``pack_entries`` row, in its order; None for a row of another shape (then not trusted)."""
    if not isinstance(digests, bytes) or len(digests) % 16:
        return None
    text = digests.hex()
    return ["xxh128:" + text[i : i + 32] for i in range(0, len(text), 32)]


def _pack_places(places: object, n: int) -> array | None:
    """The (offset, size) numbers of a ``pack_entries`` row of n oids; None for a row of another shape."""
    if not isinstance(places, bytes) or len(places) != 16 * n:
        return None
    nums = array("q")
    nums.frombytes(places)
    if sys.byteorder != "little":  # pragma: no cover
        nums.byteswap()
    return nums


def _upgrade(db: sqlite3.Connection) -> None:
    """A journal written before pack indexes were checked against their packs' sizes: forget its packs and
    the objects it knew only from them (the next command that needs them reads the indexes again, checked)."""
    try:
        db.execute("BEGIN IMMEDIATE")
        if db.execute("PRAGMA user_version").fetchone()[0] >= VERSION:  # another process was first
            db.execute("COMMIT")
            return
        db.execute(
            "DELETE FROM present WHERE EXISTS (SELECT 1 FROM packed k WHERE k.remote = present.remote "
            "AND k.oid = present.oid)"
        )
        db.execute("DELETE FROM packed")
        db.execute("DELETE FROM packs")
        db.execute("DELETE FROM pack_entries")
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except sqlite3.OperationalError:  # read-only or locked: left as it is; another command upgrades it
        if db.in_transaction:
            db.execute("ROLLBACK")


class Journal:
    """Objects known to be on each remote: ``.mvc/remotes.db`` (SQLite), keyed by the remote's identity
    (resolved URL and endpoint), so a renamed remote keeps its record and a re-pointed one does not.

    Only ever an optimisation: an object is recorded after the remote confirmed it (upload done,
    seen in a listing, downloaded from it); ``--verify-remote`` re-checks and corrects the record.
    """

    def __init__(self, path: str):
        self.path = path
        self._db: sqlite3.Connection | None = None
        # remotes with nothing recorded when first asked, until this journal records something for them: asked
        # again per segment of a large file, SQLite would give up the GIL each time and wait for it back behind
        # the threads cutting the file (3-5 ms a call). Another process's records meanwhile are missed (which
        # only means pushing what is there already) until pack_names sees them.
        self._bare: set[str] = set()
        # per remote key: (PRAGMA data_version when read, {oid: (pack name, its place in the pack's row)}, {pack
        # name: (its oids, their offsets and sizes)}) of table pack_entries; read again once another connection
        # wrote the journal (data_version changed) or this one did (dropped)
        self._maps: dict[str, tuple[int, dict[str, tuple[str, int]], dict[str, tuple[list[str], array]]]] = {}

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not os.path.exists(self.path):
                return None
            try:
                try:
                    self._db = self._open()
                except sqlite3.OperationalError:
                    raise  # the disk (full, read-only), not the file: said below, nothing deleted
                except sqlite3.DatabaseError:  # damaged: rebuilt, never trusted
                    for suffix in ("", "-journal", "-wal", "-shm"):
                        if os.path.exists(self.path + suffix):
                            os.unlink(self.path + suffix)
                    self._db = self._open()
            except sqlite3.OperationalError as e:
                fix = (
                    "another mvc process holds it: retry when it is done"
                    if "locked" in str(e)
                    else "free some space, or make its directory writable, and retry"
                )
                raise StorageError(f"cannot write the journal of remotes {self.path} ({e}): {fix}") from None
        return self._db

    def _open(self) -> sqlite3.Connection:
        fileio.refuse_links(self.path, fileio.SQLITE_FILES)
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        db.execute("CREATE TABLE IF NOT EXISTS remotes (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS present (remote INTEGER NOT NULL, oid TEXT NOT NULL, "
            "PRIMARY KEY (remote, oid)) WITHOUT ROWID"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS packs (remote INTEGER NOT NULL, name TEXT NOT NULL, "
            "PRIMARY KEY (remote, name)) WITHOUT ROWID"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS packed (remote INTEGER NOT NULL, oid TEXT NOT NULL, "
            "pack TEXT NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL, "
            "PRIMARY KEY (remote, oid, pack)) WITHOUT ROWID"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS pack_entries (remote INTEGER NOT NULL, name TEXT NOT NULL, "
            "oids BLOB NOT NULL, places BLOB NOT NULL, PRIMARY KEY (remote, name)) WITHOUT ROWID"
        )
        db.execute("CREATE TABLE IF NOT EXISTS stamps (remote INTEGER PRIMARY KEY, stamp TEXT, checked REAL NOT NULL)")
        if db.execute("PRAGMA user_version").fetchone()[0] < VERSION:
            _upgrade(db)
        return db

    def _remote_id(self, db: sqlite3.Connection, key: str, create: bool) -> int | None:
        row = db.execute("SELECT id FROM remotes WHERE key = ?", (key,)).fetchone()
        if row is None and create:
            db.execute("INSERT OR IGNORE INTO remotes (key) VALUES (?)", (key,))
            row = db.execute("SELECT id FROM remotes WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _select(self, key: str, wanted: list[str], sql: str) -> list[tuple[Any, ...]]:
        """Rows of sql (over the temp table ``wanted`` and ``?`` = the remote's id); [] when unreadable, or when
        tables ``present`` and ``packed`` hold nothing for the remote (then no table of 100,000 rows is filled)."""
        if not wanted or key in self._bare:
            return []
        db = self._connect(create=False)
        if db is None:
            return []
        try:
            rid = self._remote_id(db, key, create=False)
            if (
                rid is None
                or not db.execute(
                    "SELECT EXISTS (SELECT 1 FROM present WHERE remote = ?1) OR EXISTS (SELECT 1 FROM packed WHERE remote = ?1)",
                    (rid,),
                ).fetchone()[0]
            ):
                packed = (
                    rid is not None
                    and db.execute("SELECT EXISTS (SELECT 1 FROM pack_entries WHERE remote = ?)", (rid,)).fetchone()[0]
                )
                if not packed:
                    self._bare.add(key)  # nothing recorded for this remote (a first push)
                return []
            db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (oid TEXT PRIMARY KEY) WITHOUT ROWID")
            db.execute("BEGIN")
            db.execute("DELETE FROM wanted")
            ordered = sorted(wanted)  # the table's order: neighbouring rows
            if _reads_json(db):
                import json

                db.execute("INSERT OR IGNORE INTO wanted SELECT value FROM json_each(?)", (json.dumps(ordered),))
            else:
                db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((o,) for o in ordered))
            rows = db.execute(sql, (rid,)).fetchall()
            db.execute("COMMIT")
            return rows
        except sqlite3.OperationalError:
            if db.in_transaction:
                db.execute("ROLLBACK")
            return []  # locked for a minute or read-only: ask the remote instead

    def _recorded(
        self, key: str, fresh: bool = False
    ) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[list[str], array]]]:
        """The packs of table ``pack_entries`` recorded for the remote: {oid: (pack name, its place in the pack's
        row)} and {pack name: (its oids, their offsets and sizes)}; a row of another shape is passed over (its
        objects are asked about again). ``fresh``: read even for a remote found bare before."""
        if key in self._bare and not fresh:
            return {}, {}
        db = self._connect(create=False)
        if db is None:
            return {}, {}
        try:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            got = self._maps.get(key)
            if got is not None and got[0] == version:
                return got[1], got[2]
            rid = self._remote_id(db, key, create=False)
            rows = (
                db.execute("SELECT name, oids, places FROM pack_entries WHERE remote = ?", (rid,)).fetchall()
                if rid is not None
                else []
            )
        except sqlite3.OperationalError:
            return {}, {}
        where: dict[str, tuple[str, int]] = {}
        packs: dict[str, tuple[list[str], array]] = {}
        for name, digests, nums in rows:
            found = _pack_oids(digests)
            places = _pack_places(nums, len(found)) if found is not None else None
            if found is None or places is None or not isinstance(name, str):
                continue
            packs[name] = (found, places)
            where.update({o: (name, i) for i, o in enumerate(found)})
        self._maps[key] = (version, where, packs)
        return where, packs

    def known(self, key: str, wanted: Iterable[str]) -> set[str]:
        """Which of wanted the journal records as present on the remote: alone, or in a pack it records."""
        wanted = list(wanted)
        rows = self._select(
            key,
            wanted,
            "SELECT w.oid FROM wanted w WHERE EXISTS (SELECT 1 FROM present p WHERE p.remote = ?1 AND p.oid = w.oid) "
            "OR EXISTS (SELECT 1 FROM packed k WHERE k.remote = ?1 AND k.oid = w.oid)",
        )
        found = {r[0] for r in rows}
        if len(found) < len(wanted):
            where, _ = self._recorded(key)
            if where:
                found.update(o for o in wanted if o in where)
        return found

    def locate(self, key: str, wanted: Iterable[str]) -> dict[str, tuple[str, pk.Entry]]:
        """{oid: (pack name, entry)} for those of wanted recorded in one of the remote's packs."""
        wanted = list(wanted)
        rows = self._select(
            key,
            wanted,
            "SELECT w.oid, p.pack, p.offset, p.size FROM wanted w JOIN packed p ON p.remote = ? AND p.oid = w.oid",
        )
        found = {oid: (name, pk.Entry(oid, offset, size)) for oid, name, offset, size in rows}
        if len(found) < len(wanted):
            where, packs = self._recorded(key)
            for o in wanted:
                at = where.get(o)
                if at is not None and o not in found:
                    name, i = at
                    places = packs[name][1]
                    found[o] = (name, pk.Entry(o, places[2 * i], places[2 * i + 1]))
        return found

    def pack_names(self, key: str) -> set[str]:
        db = self._connect(create=False)
        if db is None:
            return set()
        try:
            names = {
                r[0]
                for r in db.execute(
                    "SELECT p.name FROM packs p JOIN remotes r ON r.id = p.remote WHERE r.key = ?", (key,)
                )
            }
        except sqlite3.OperationalError:
            return set()
        names |= set(self._recorded(key, fresh=True)[1])  # (a row of another shape names no pack: read again)
        if names:  # another process recorded packs meanwhile: their objects are known now (a caller that sees
            self._bare.discard(key)  # these names does not read their indexes again)
        return names

    def pack_entries(self, key: str) -> dict[str, list[pk.Entry]]:
        """{pack name: its entries} of every pack recorded for the remote."""
        db = self._connect(create=False)
        if db is None:
            return {}
        found: dict[str, list[pk.Entry]] = {name: [] for name in self.pack_names(key)}
        try:
            rows = db.execute(
                "SELECT p.pack, p.oid, p.offset, p.size FROM packed p JOIN remotes r ON r.id = p.remote WHERE r.key = ?",
                (key,),
            )
            for name, oid, offset, size in rows:
                found.setdefault(name, []).append(pk.Entry(oid, offset, size))
        except sqlite3.OperationalError:
            return {}
        for name, (oids_of, places) in self._recorded(key)[1].items():
            found[name] = [pk.Entry(o, places[2 * i], places[2 * i + 1]) for i, o in enumerate(oids_of)]
        return found

    def add_pack(self, key: str, name: str, entries: list[pk.Entry]) -> None:
        """Record a pack read from (or written to) the remote: its entries are present there."""
        self.add_packs(key, [(name, entries)])

    def add_packs(
        self, key: str, packs: list[tuple[str, list[pk.Entry]]], written: Callable[[], object] | None = None
    ) -> None:
        """Record packs read from (or written to) the remote, in one transaction (one disk sync, not one each):
        a row of table ``pack_entries`` each, its entries in two blobs (a row per entry cost 4-5 µs each: 0.5 s of
        a push of 100,000 small files, docs/benchmarks.md).

        written: waited for before the transaction commits, the rows written meanwhile (a push records the packs
        it is still uploading, and they count once they are there); what it raises rolls them back and goes on."""
        if not packs:
            if written is not None:
                written()
            return

        rows = [(name, entries, _pack_row(entries)) for name, entries in packs]

        def write(db: sqlite3.Connection, rid: int) -> None:
            for name, _, row in rows:
                if row is not None:
                    db.execute("INSERT OR REPLACE INTO pack_entries VALUES (?, ?, ?, ?)", (rid, name, *row))

        kept = self._maps.get(key)
        self._transaction(key, write, written)
        if kept is not None:  # what this process read of the table, with these rows added (not all read again)
            _, where, known = kept
            for name, entries, row in rows:
                if row is not None:
                    oids_of = [e.oid for e in entries]
                    known[name] = (oids_of, _pack_places(row[1], len(oids_of)) or array("q"))
                    where.update({o: (name, i) for i, o in enumerate(oids_of)})
            self._maps[key] = kept

    def forget_packs(self, key: str, names: Iterable[str]) -> None:
        """Packs gone from the remote: forget them, the objects no other pack holds, and the object each one's name
        is the digest of (a pack named by an object's digest is that object: docs/FORMAT.md, "Lone packs")."""
        names = sorted(names)
        if not names:
            return

        def write(db: sqlite3.Connection, rid: int) -> None:
            gone: set[str] = set()  # objects of the forgotten packs of table pack_entries
            for name in names:
                db.execute("DELETE FROM packs WHERE remote = ? AND name = ?", (rid, name))
                db.execute(
                    "DELETE FROM present WHERE remote = ?1 AND oid IN (SELECT oid FROM packed WHERE "
                    "remote = ?1 AND pack = ?2) AND oid NOT IN (SELECT oid FROM packed WHERE remote = ?1 "
                    "AND pack != ?2)",
                    (rid, name),
                )
                db.execute("DELETE FROM packed WHERE remote = ? AND pack = ?", (rid, name))
                db.execute("DELETE FROM present WHERE remote = ? AND oid = ?", (rid, oids.from_digest(name)))
                for (digests,) in db.execute(
                    "SELECT oids FROM pack_entries WHERE remote = ? AND name = ?", (rid, name)
                ).fetchall():
                    gone.update(_pack_oids(digests) or ())
                db.execute("DELETE FROM pack_entries WHERE remote = ? AND name = ?", (rid, name))
            if gone:  # recorded alone too (downloaded from the pack): forgotten, unless another pack holds them
                for (digests,) in db.execute("SELECT oids FROM pack_entries WHERE remote = ?", (rid,)).fetchall():
                    gone.difference_update(_pack_oids(digests) or ())
                db.executemany(
                    "DELETE FROM present WHERE remote = ?1 AND oid = ?2 AND NOT EXISTS (SELECT 1 FROM packed "
                    "WHERE remote = ?1 AND oid = ?2)",
                    [(rid, o) for o in sorted(gone)],
                )

        self._transaction(key, write)

    def _transaction(
        self,
        key: str,
        write: Callable[[sqlite3.Connection, int], object],
        before_commit: Callable[[], object] | None = None,
    ) -> None:
        """write(db, remote id) in one transaction; before_commit() is called once, in it or (when the journal
        cannot be written) without it, and what it raises rolls the transaction back and is raised."""
        self._bare.discard(key)
        self._maps.pop(key, None)  # read again after this write (data_version does not change for its own)
        waited = before_commit is None
        try:
            db = self._connect(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            rid = self._remote_id(db, key, create=True)
            assert rid is not None
            write(db, rid)
            if before_commit is not None:
                waited = True
                try:
                    before_commit()
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            db.execute("COMMIT")
        except sqlite3.OperationalError:
            if self._db is not None and self._db.in_transaction:
                self._db.execute("ROLLBACK")
            # not recorded: the next command asks the remote again, which is only slower
        if not waited:
            assert before_commit is not None
            before_commit()

    def _write(self, key: str, sql: str, items: Iterable[str]) -> None:
        items = list(items)
        if items:
            self._transaction(key, lambda db, rid: db.executemany(sql, ((rid, o) for o in items)))

    def add(self, key: str, oids_: Iterable[str]) -> None:
        self._write(key, "INSERT OR IGNORE INTO present VALUES (?, ?)", oids_)

    def discard(self, key: str, oids_: Iterable[str]) -> None:
        self._write(key, "DELETE FROM present WHERE remote = ? AND oid = ?", oids_)

    # -- the remote's gc stamp (docs/FORMAT.md, "A remote": what a push trusts after a gc) ----------------
    def stamp(self, key: str) -> tuple[str | None, float]:
        """(the remote's gc stamp when this record of it was last checked good (None: no gc seen), when that
        was (0: never))."""
        db = self._connect(create=False)
        if db is None:
            return None, 0.0
        try:
            rid = self._remote_id(db, key, create=False)
            row = db.execute("SELECT stamp, checked FROM stamps WHERE remote = ?", (rid,)).fetchone() if rid else None
        except sqlite3.OperationalError:
            return None, 0.0
        return (row[0], row[1]) if row else (None, 0.0)

    def set_stamp(self, key: str, stamp: str | None, when: float, restart: bool = False) -> None:
        """The record is good under the remote's gc stamp ``stamp``, checked at ``when``; ``restart``: a gc ran
        on the remote since the record was made, so everything it holds is forgotten first (the next command
        asks the remote again)."""

        def write(db: sqlite3.Connection, rid: int) -> None:
            if restart:
                for table in ("present", "packed", "packs", "pack_entries"):
                    db.execute(f"DELETE FROM {table} WHERE remote = ?", (rid,))
            db.execute("INSERT OR REPLACE INTO stamps VALUES (?, ?, ?)", (rid, stamp, when))

        self._transaction(key, write)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __del__(self) -> None:
        # sqlite3's connection is in a reference cycle (its statement cache) that only the cyclic collector frees:
        # each read by URL opens a journal, which would hold remotes.db open until a collection
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):  # (at interpreter exit)
                db.close()
