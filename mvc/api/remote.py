"""Remotes: their config, push / fetch / pull, the journal of objects known to be on each remote, and
what ``mvc status -r`` adds.

Order on a remote (docs/FORMAT.md, "Remote layout"): file objects and directory entries first, their
manifest after them, so a manifest on a remote means its entries are there too; pointers reach git
after the objects they name (the user's ``git push``, or the pre-push hook, comes last).

"Nothing to push" is decided from the journal alone: no request, and s3fs/fsspec are not imported.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mvc import progress as progressmod
from mvc.api.repo import Repo
from mvc.errors import ConfigError, CorruptObject, ObjectMissing, PathError, RemoteError
from mvc.format import config as cfgfmt
from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.storage import remote as storage

EXISTS_EACH = 64  # up to this many objects to look for, ask for each; above, maybe list the remote
LIST_PAGE = 1000  # objects per listing request (S3 and most object stores)
JOURNAL_EVERY = 256  # record uploads in the journal at least this often, so an interrupted push keeps them
# A large object moves in parts held in memory (s3fs: 10 x 50 MiB at once), so only this many move at
# a time, however many jobs run; small objects fill the other jobs meanwhile.
LARGE_AT_ONCE = 2
PACKS_AT_ONCE = 4  # packs are built in memory (up to about pack.TARGET each)


class UnknownRemote(RemoteError, ConfigError):
    pass


class NoRemote(RemoteError, ConfigError):
    pass


def _open(repo: Repo | None) -> Repo:
    return repo if repo is not None else Repo.find()


def _rel(oid: str) -> str:
    return "objects/" + oids.to_relpath(oid)


# -- configuration ----------------------------------------------------------------------------------
@dataclass
class Spec:
    """A configured remote, before anything is imported or contacted."""

    name: str
    url: str
    options: dict[str, Any]
    jobs: int | None
    base: str
    fsync: bool = False
    packs: bool = True  # push small objects in packs (reading understands packs either way)

    @property
    def key(self) -> str:
        return storage.identity(self.url, self.options.get("endpoint_url"), self.base)

    def open(self) -> storage.Store:
        return storage.open_store(self.url, self.options, base=self.base, fsync=self.fsync)


def _table(repo: Repo) -> dict[str, dict[str, Any]]:
    cfgfmt.remotes(repo.config.shared, cfgfmt.CONFIG, need_url=False)
    cfgfmt.remotes(repo.config.local, cfgfmt.LOCAL, need_url=False)
    return cfgfmt.remotes(repo.config.data, "the config")


def default_remote(repo: Repo) -> str | None:
    """The default remote's name: ``core.remote``, or the only remote; None when none is configured."""
    name = repo.config.get("core.remote")
    if isinstance(name, str) and name:
        return name
    table = _table(repo)
    return next(iter(table)) if len(table) == 1 else None


def spec(repo: Repo, name: str | None = None) -> Spec:
    table = _table(repo)
    if name is None:
        name = default_remote(repo)
        if name is None:
            if not table:
                raise NoRemote("no mvc remote configured: add one with 'mvc remote add NAME URL --default'")
            raise NoRemote(
                f"no default mvc remote: pass -r NAME (one of {', '.join(sorted(table))}) or set one "
                f"with 'mvc remote default NAME'"
            )
    entry = table.get(name)
    if entry is None:
        known = f"known remotes: {', '.join(sorted(table))}" if table else "no remote is configured"
        raise UnknownRemote(f"unknown remote {name!r} ({known}): add it with 'mvc remote add {name} URL'")
    options = {k: v for k, v in entry.items() if k not in ("url", "jobs", "packs")}
    return Spec(name, entry["url"], options, entry.get("jobs"), repo.root, repo.config.fsync, entry.get("packs", True))


def _check_name(name: str) -> None:
    if not cfgfmt.valid_remote_name(name):
        raise RemoteError(f"invalid remote name {name!r}: use letters, digits, '-' and '_' (e.g. origin, s3-backup)")


def _normalize_url(repo: Repo, url: str) -> str:
    """Check the URL; a relative local path is stored relative to the repository root."""
    url = url.strip()
    protocol = storage.check_url(url)
    if protocol == "local" and "://" not in url and not os.path.isabs(os.path.expanduser(url)):
        return os.path.relpath(os.path.abspath(url), repo.root).replace(os.sep, "/")
    return url


def _config_path(repo: Repo, local: bool) -> str:
    return os.path.join(repo.mvc_dir, cfgfmt.LOCAL if local else cfgfmt.CONFIG)


def _validate(repo: Repo) -> None:
    check = Repo(repo.root)
    _table(check)


def add(name: str, url: str, *, default: bool = False, local: bool = False, repo: Repo | None = None) -> dict[str, Any]:
    """Add remote NAME at URL to .mvc/config.toml (config.local.toml with ``local``)."""
    repo = _open(repo)
    _check_name(name)
    if name in _table(repo):
        raise RemoteError(
            f"remote {name!r} exists already: change it with 'mvc remote modify {name} url URL' "
            f"or remove it with 'mvc remote remove {name}'"
        )
    url = _normalize_url(repo, url)
    path = _config_path(repo, local)
    cfgfmt.write_value(path, f"remote.{name}.url", url)
    if default:
        cfgfmt.write_value(path, "core.remote", name)
    _validate(repo)
    return {"name": name, "url": url, "default": default, "local": local}


def remotes(*, repo: Repo | None = None) -> list[dict[str, Any]]:
    """Configured remotes: name, url, whether it is the default, where it is configured, its other keys
    (secret values hidden)."""
    repo = _open(repo)
    table = _table(repo)
    default = default_remote(repo)
    shared = repo.config.shared.get("remote", {})
    out = []
    for name in sorted(table):
        entry = table[name]
        options = {k: ("***" if cfgfmt.is_secret(k) else v) for k, v in sorted(entry.items()) if k != "url"}
        out.append(
            {
                "name": name,
                "url": entry["url"],
                "default": name == default,
                "scope": "repo" if name in shared else "local",
                "options": options,
            }
        )
    return out


def remove(name: str, *, repo: Repo | None = None) -> None:
    """Remove remote NAME from both config files (and unset it as the default)."""
    repo = _open(repo)
    if name not in _table(repo):
        spec(repo, name)  # raises the unknown-remote error
    for local in (False, True):
        path = _config_path(repo, local)
        data = cfgfmt.read(path)
        if name in data.get("remote", {}):
            cfgfmt.write_value(path, f"remote.{name}", None)
        if data.get("core", {}).get("remote") == name:
            cfgfmt.write_value(path, "core.remote", None)


def _parse_value(name: str, key: str, text: str) -> Any:
    kind = cfgfmt.REMOTE_KEYS.get(key)
    if kind is int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise RemoteError(f"{key} takes a positive integer, not {text!r}: e.g. 'mvc remote modify {name} {key} 8'")
        return value
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise RemoteError(f"{key} takes true or false, not {text!r}: e.g. 'mvc remote modify {name} {key} false'")
        return text.lower() == "true"
    if key == "endpoint_url" and not text.startswith(("http://", "https://")):
        raise RemoteError(f"endpoint_url must start with http:// or https://, not {text!r}")
    if kind is None:  # handed to the fsspec filesystem: give it booleans and numbers, not strings
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        try:
            return int(text)
        except ValueError:
            return text
    return text


def modify(name: str, key: str, value: str | None, *, local: bool = False, repo: Repo | None = None) -> None:
    """Set (value None: remove) KEY of remote NAME. Secret-like keys only go to config.local.toml."""
    repo = _open(repo)
    table = _table(repo)
    if name not in table:
        spec(repo, name)
    if not key or not all(c.isalnum() or c == "_" for c in key):
        raise RemoteError(
            f"invalid key {key!r}: use letters, digits and '_' (e.g. endpoint_url, profile, region, jobs)"
        )
    if value is None:
        if key == "url":
            raise RemoteError(f"a remote needs its url: remove the remote instead with 'mvc remote remove {name}'")
        for loc in (False, True):
            cfgfmt.write_value(_config_path(repo, loc), f"remote.{name}.{key}", None)
        return
    parsed = _normalize_url(repo, value) if key == "url" else _parse_value(name, key, value)
    local_only = name not in repo.config.shared.get("remote", {})
    if cfgfmt.is_secret(key) and not local and not local_only:
        raise RemoteError(
            f"{key} looks like a secret: it would be committed with .mvc/config.toml; "
            f"pass --local to keep it in .mvc/config.local.toml on this machine"
        )
    cfgfmt.write_value(_config_path(repo, local or local_only), f"remote.{name}.{key}", parsed)
    _validate(repo)


def set_default(name: str | None, *, local: bool = False, repo: Repo | None = None) -> None:
    """Make NAME the default remote (``core.remote``); None unsets it."""
    repo = _open(repo)
    if name is not None:
        spec(repo, name)
        local = local or name not in repo.config.shared.get("remote", {})
        cfgfmt.write_value(_config_path(repo, local), "core.remote", name)
    else:
        for loc in (False, True):
            cfgfmt.write_value(_config_path(repo, loc), "core.remote", None)


# -- the journal ------------------------------------------------------------------------------------
class Journal:
    """Objects known to be on each remote: ``.mvc/remotes.db`` (SQLite), keyed by the remote's identity
    (resolved URL and endpoint), so a renamed remote keeps its record and a re-pointed one does not.

    Only ever an optimisation: an object is recorded after the remote confirmed it (upload done,
    seen in a listing, downloaded from it); ``--verify-remote`` re-checks and corrects the record.
    """

    def __init__(self, path: str):
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not os.path.exists(self.path):
                return None
            try:
                self._db = self._open()
            except sqlite3.DatabaseError:  # damaged: rebuilt, never trusted
                for suffix in ("", "-journal", "-wal", "-shm"):
                    if os.path.exists(self.path + suffix):
                        os.unlink(self.path + suffix)
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
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
        return db

    def _remote_id(self, db: sqlite3.Connection, key: str, create: bool) -> int | None:
        row = db.execute("SELECT id FROM remotes WHERE key = ?", (key,)).fetchone()
        if row is None and create:
            db.execute("INSERT OR IGNORE INTO remotes (key) VALUES (?)", (key,))
            row = db.execute("SELECT id FROM remotes WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _select(self, key: str, wanted: Iterable[str], sql: str) -> list[tuple[Any, ...]]:
        """Rows of sql (over the temp table ``wanted`` and ``?`` = the remote's id); [] when unreadable."""
        wanted = list(wanted)
        db = self._connect(create=False)
        if not wanted or db is None:
            return []
        try:
            rid = self._remote_id(db, key, create=False)
            if rid is None:
                return []
            db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (oid TEXT PRIMARY KEY) WITHOUT ROWID")
            db.execute("BEGIN")
            db.execute("DELETE FROM wanted")
            db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((o,) for o in wanted))
            rows = db.execute(sql, (rid,)).fetchall()
            db.execute("COMMIT")
            return rows
        except sqlite3.OperationalError:
            if db.in_transaction:
                db.execute("ROLLBACK")
            return []  # locked for a minute or read-only: ask the remote instead

    def known(self, key: str, wanted: Iterable[str]) -> set[str]:
        """Which of wanted the journal records as present on the remote."""
        rows = self._select(key, wanted, "SELECT w.oid FROM wanted w JOIN present p ON p.remote = ? AND p.oid = w.oid")
        return {r[0] for r in rows}

    def locate(self, key: str, wanted: Iterable[str]) -> dict[str, tuple[str, pk.Entry]]:
        """{oid: (pack name, entry)} for those of wanted recorded in one of the remote's packs."""
        rows = self._select(
            key,
            wanted,
            "SELECT w.oid, p.pack, p.offset, p.size FROM wanted w JOIN packed p ON p.remote = ? AND p.oid = w.oid",
        )
        return {oid: (name, pk.Entry(oid, offset, size)) for oid, name, offset, size in rows}

    def pack_names(self, key: str) -> set[str]:
        db = self._connect(create=False)
        if db is None:
            return set()
        try:
            return {
                r[0]
                for r in db.execute(
                    "SELECT p.name FROM packs p JOIN remotes r ON r.id = p.remote WHERE r.key = ?", (key,)
                )
            }
        except sqlite3.OperationalError:
            return set()

    def add_pack(self, key: str, name: str, entries: list[pk.Entry]) -> None:
        """Record a pack read from (or written to) the remote: its entries are present there."""

        def write(db: sqlite3.Connection, rid: int) -> None:
            db.execute("INSERT OR IGNORE INTO packs VALUES (?, ?)", (rid, name))
            db.executemany(
                "INSERT OR IGNORE INTO packed VALUES (?, ?, ?, ?, ?)",
                ((rid, e.oid, name, e.offset, e.size) for e in entries),
            )
            db.executemany("INSERT OR IGNORE INTO present VALUES (?, ?)", ((rid, e.oid) for e in entries))

        self._transaction(key, write)

    def forget_packs(self, key: str, names: Iterable[str]) -> None:
        """Packs gone from the remote: forget them, and the objects no other pack holds."""
        names = sorted(names)
        if not names:
            return

        def write(db: sqlite3.Connection, rid: int) -> None:
            for name in names:
                db.execute("DELETE FROM packs WHERE remote = ? AND name = ?", (rid, name))
                db.execute(
                    "DELETE FROM present WHERE remote = ?1 AND oid IN (SELECT oid FROM packed WHERE "
                    "remote = ?1 AND pack = ?2) AND oid NOT IN (SELECT oid FROM packed WHERE remote = ?1 "
                    "AND pack != ?2)",
                    (rid, name),
                )
                db.execute("DELETE FROM packed WHERE remote = ? AND pack = ?", (rid, name))

        self._transaction(key, write)

    def _transaction(self, key: str, write: Callable[[sqlite3.Connection, int], None]) -> None:
        try:
            db = self._connect(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            rid = self._remote_id(db, key, create=True)
            assert rid is not None
            write(db, rid)
            db.execute("COMMIT")
        except sqlite3.OperationalError:
            if self._db is not None and self._db.in_transaction:
                self._db.execute("ROLLBACK")
            # not recorded: the next command asks the remote again, which is only slower

    def _write(self, key: str, sql: str, items: Iterable[str]) -> None:
        items = list(items)
        if items:
            self._transaction(key, lambda db, rid: db.executemany(sql, ((rid, o) for o in items)))

    def add(self, key: str, oids_: Iterable[str]) -> None:
        self._write(key, "INSERT OR IGNORE INTO present VALUES (?, ?)", oids_)

    def discard(self, key: str, oids_: Iterable[str]) -> None:
        self._write(key, "DELETE FROM present WHERE remote = ? AND oid = ?", oids_)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def journal(repo: Repo) -> Journal:
    return Journal(os.path.join(repo.mvc_dir, "remotes.db"))


# -- which objects --------------------------------------------------------------------------------
@dataclass
class _Wanted:
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # oid -> (label, size)
    manifests: dict[str, str] = field(default_factory=dict)  # manifest oid -> label
    entries: dict[str, list[mf.Entry]] = field(default_factory=dict)  # manifest oid -> its entries, when read

    def add_pointer(self, label: str, p: ptrfmt.Pointer) -> None:
        if p.kind == "file":
            self.files.setdefault(p.oid, (label, p.size))
        else:
            self.manifests.setdefault(p.oid, label)

    def read_manifest(self, repo: Repo, moid: str) -> list[mf.Entry]:
        entries = mf.loads(repo.odb.read_bytes(moid), moid)
        self.entries[moid] = entries
        prel, at, rev = self.manifests[moid].partition(" at ")
        for e in entries:
            self.files.setdefault(e.oid, (f"{Repo.target_of(prel)}/{e.path}{at}{rev}", e.size))
        return entries


def _pointers(
    repo: Repo,
    paths: Iterable[str],
    revs: Iterable[str] | None,
    all_branches: bool = False,
    all_tags: bool = False,
    all_commits: bool = False,
) -> dict[str, ptrfmt.Pointer]:
    """{label: pointer} selected by paths in the work tree, or in the given revisions when any."""
    from mvc.api.workspace import _matches, _paths, load_pointer

    shown = _paths(paths)
    rels = [repo.rel(p) for p in shown]
    commits: dict[str, str] = {}
    for rev in revs or ():
        commits.setdefault(repo.resolve(rev), rev)
    if all_branches:
        for name, commit in sorted(repo.git.ref_commits("refs/heads").items()):
            commits.setdefault(commit, name)
    if all_tags:
        for name, commit in sorted(repo.git.ref_commits("refs/tags").items()):
            commits.setdefault(commit, name)
    if all_commits:
        for commit in repo.git.all_commits():
            commits.setdefault(commit, commit[:12])
    found: dict[str, ptrfmt.Pointer] = {}
    matched: list[str] = []
    if not (revs or all_branches or all_tags or all_commits):
        for prel in repo.git.ls_pointers():
            if not rels or _matches(prel, rels):
                found[prel] = load_pointer(repo, prel)
                matched.append(prel)
    elif commits:
        for commit, prel, data in repo.git.pointer_blobs(commits).values():
            if not rels or _matches(prel, rels):
                found[f"{prel} at {commits[commit]}"] = ptrfmt.loads(data, f"{prel} at {commits[commit]}")
                matched.append(prel)
    for r, p in zip(rels, shown):
        if not any(_matches(m, [r]) for m in matched):
            where = " in the selected revisions" if commits else ""
            raise PathError(f"{p} is not tracked by mvc{where}: check the path with 'mvc ls'")
    return found


def objects_for(repo: Repo, pointers: dict[str, bytes]) -> set[str]:
    """Every object the pointers need: file oids, manifest oids and (for manifests in the cache) their entries."""
    wanted = _Wanted()
    for label, data in pointers.items():
        wanted.add_pointer(label, ptrfmt.loads(data, label))
    for moid in list(wanted.manifests):
        if repo.odb.exists(moid):
            wanted.read_manifest(repo, moid)
    return set(wanted.files) | set(wanted.manifests)


# -- transfers ------------------------------------------------------------------------------------
class _Meter:
    """Bytes and objects moved, shared by the worker threads; drives one progress bar."""

    def __init__(self, progress: progressmod.Factory, desc: str, total: int, objects: int):
        self.bar = progress(desc, total)
        self.lock = threading.Lock()
        self.objects, self.total_objects = 0, objects

    def update(self, n: int) -> None:
        with self.lock:
            self.bar.update(n)

    def object_done(self) -> None:
        with self.lock:
            self.objects += 1
            self.bar.count(self.objects, self.total_objects)

    def close(self) -> None:
        self.bar.close()


class _Recorder:
    """Batches journal writes from the main thread; flush() also runs when a transfer fails."""

    def __init__(self, jr: Journal, key: str):
        self.jr, self.key = jr, key
        self.pending: list[str] = []
        self.last = time.monotonic()

    def add(self, oid: str) -> None:
        self.pending.append(oid)
        if len(self.pending) >= JOURNAL_EVERY or time.monotonic() - self.last > 1:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.jr.add(self.key, self.pending)
            self.pending = []
        self.last = time.monotonic()


def _jobs(jobs: int | None, sp: Spec, store: storage.Store) -> int:
    return max(1, jobs or sp.jobs or store.default_jobs)


class _Remote:
    """An open store and the journal's record of it: which objects are there, alone or in packs."""

    def __init__(self, sp: Spec, jr: Journal, jobs: int | None):
        self.sp, self.jr, self.key = sp, jr, sp.key
        self.store = sp.open()
        self.jobs = _jobs(jobs, sp, self.store)
        self._packs_read = False
        self._located: dict[str, tuple[str, pk.Entry]] = {}  # indexes read now (the journal may be read-only)
        self.bad_indexes: list[str] = []

    def close(self) -> None:
        self.store.close()

    # -- where objects are ---------------------------------------------------------------------
    def read_packs(self) -> None:
        """Bring the record of the remote's packs up to date, once per command: one listing of
        ``packs/``, then each index not read before. Packs gone from the remote are forgotten."""
        if self._packs_read:
            return
        self._packs_read = True
        names = pk.names_in(self.store.list("packs/"))
        recorded = self.jr.pack_names(self.key)
        self.jr.forget_packs(self.key, recorded - names)

        def read(name: str) -> list[pk.Entry] | None:
            rel = pk.index_rel(name)
            try:
                return pk.parse_index(self.store.get_range(rel, 0, pk.INDEX_MAX + 1), self.store.where(rel))
            except storage.RemoteObjectMissing:
                return None  # deleted since the listing
            except CorruptObject:
                self.bad_indexes.append(self.store.where(rel))  # its objects count as absent
                return None

        def done(name: str, entries: list[pk.Entry] | None) -> None:
            if entries is not None:
                self._record_pack(name, entries)

        storage.run_parallel(read, sorted(names - recorded), self.jobs, done)

    def _record_pack(self, name: str, entries: list[pk.Entry]) -> None:
        self.jr.add_pack(self.key, name, entries)
        for e in entries:
            self._located.setdefault(e.oid, (name, e))

    def locate(self, wanted: Iterable[str]) -> dict[str, tuple[str, pk.Entry]]:
        """{oid: (pack name, entry)} for the wanted objects known to be in a pack."""
        wanted = set(wanted)
        found = {o: self._located[o] for o in wanted if o in self._located}
        found.update(self.jr.locate(self.key, wanted - set(found)))
        return found

    def existing(self, wanted: Iterable[str]) -> set[str]:
        """Which of the oids are on the remote, asking as little as the store allows."""
        wanted = set(wanted)
        if not wanted:
            return set()
        self.read_packs()
        found = set(self.locate(wanted))
        rest = wanted - found
        store = self.store
        if not store.cheap_exists and len(rest) > EXISTS_EACH:
            # A listing costs one request per LIST_PAGE objects on the remote; asking costs one per object.
            # One prefix of the 256 tells the remote's size (DVC estimates it the same way).
            estimate = len(store.list("objects/00/")) * 256
            if estimate // LIST_PAGE < len(rest):
                listed = {
                    oids.from_relpath(rel[len("objects/") :])
                    for rel in store.list("objects/")
                    if rel.startswith("objects/")
                }
                return found | (rest & listed)
        ordered = sorted(rest)
        if store.cheap_exists:
            return found | {o for o in ordered if store.exists(_rel(o))}
        storage.run_parallel(
            lambda o: store.exists(_rel(o)), ordered, self.jobs, lambda o, there: found.add(o) if there else None
        )
        return found

    # -- moving objects ------------------------------------------------------------------------
    def upload(self, repo: Repo, todo: list[str], sizes: dict[str, int], meter: _Meter, recorder: _Recorder) -> int:
        """Upload the objects (from the cache, verified on the way out); returns bytes sent. When there
        are enough small ones they go in packs, each pack's index after the pack."""
        small = {o: sizes[o] for o in todo if sizes[o] < pk.OBJECT_MAX}
        if not self.sp.packs or len(small) < pk.MIN_OBJECTS:
            small = {}
        items: list[tuple[int, Any]] = [(sum(sizes[o] for o in g), g) for g in pk.group(small)]
        items += [(sizes[o], o) for o in todo if o not in small]
        # large first: their parts keep the store busy while the small ones queue behind
        items.sort(key=lambda item: -item[0])
        large = threading.BoundedSemaphore(LARGE_AT_ONCE)
        packing = threading.BoundedSemaphore(PACKS_AT_ONCE)
        sent = 0

        def put(item: tuple[int, Any]) -> Any:
            size, what = item
            if isinstance(what, list):
                with packing:
                    return self._put_pack(repo, what, meter)
            with large if size > storage.LARGE else contextlib.nullcontext():
                n = self.store.put_file(
                    repo.odb.path(what), _rel(what), lambda digest: _check_cached(repo, what, digest), meter.update
                )
            meter.object_done()
            return n

        def done(item: tuple[int, Any], result: Any) -> None:
            nonlocal sent
            if isinstance(item[1], list):
                name, entries, n = result
                self._record_pack(name, entries)
            else:
                n = result
                recorder.add(item[1])
            sent += n

        storage.run_parallel(put, items, self.jobs, done)
        return sent

    def _put_pack(self, repo: Repo, group: list[str], meter: _Meter) -> tuple[str, list[pk.Entry], int]:
        name, data, index, entries = pk.build([(o, repo.odb.read_bytes(o)) for o in group])
        self.store.put_bytes(pk.pack_rel(name), data)
        meter.update(len(data))
        self.store.put_bytes(pk.index_rel(name), index)  # the index makes the pack visible: it goes last
        for _ in group:
            meter.object_done()
        return name, entries, len(data)

    def download(
        self, repo: Repo, todo: list[str], meter: _Meter, sizes: dict[str, int] | None = None
    ) -> tuple[int, list[str]]:
        """Download objects into the cache, each verified before it is placed: those in packs with one
        ranged read per run of neighbours, the others alone. Returns (bytes, oids not on the remote).

        sizes: the expected size of each object, where known (for scheduling large ones)."""
        sizes = sizes or {}
        located = self.locate(todo)
        if len(located) < len(todo):
            self.read_packs()
            located = self.locate(todo)
        got = 0
        absent: list[str] = []
        fetched: list[str] = []
        gone_packs: set[str] = set()
        retry: list[str] = []
        large = threading.BoundedSemaphore(LARGE_AT_ONCE)

        def get(item: tuple[str, Any]) -> int | None:
            kind, what = item
            if kind == "run":
                return self._get_run(repo, what, meter, large)
            with large if sizes.get(what, 0) > storage.LARGE else contextlib.nullcontext():
                return self._get_one(repo, what, meter)

        def done(item: tuple[str, Any], n: int | None) -> None:
            nonlocal got
            kind, what = item
            run_oids = [e.oid for _, e in what] if kind == "run" else [what]
            if n is None and kind == "run":  # the pack is gone: look for its objects alone
                gone_packs.add(what[0][0])
                retry.extend(run_oids)
            elif n is None:
                absent.append(what)
            else:
                got += n
                fetched.extend(run_oids)

        items = [("run", r) for r in pk.runs(list(located.values()))]
        items += [("one", o) for o in sorted(set(todo) - set(located), key=lambda o: -sizes.get(o, 0))]
        try:
            storage.run_parallel(get, items, self.jobs, done)
            if retry:
                self.jr.forget_packs(self.key, gone_packs)
                storage.run_parallel(get, [("one", o) for o in retry], self.jobs, done)
        finally:
            self.jr.add(self.key, fetched)  # downloaded from it, so it is there
            self.jr.discard(self.key, absent)
        return got, absent

    def _get_one(self, repo: Repo, oid: str, meter: _Meter) -> int | None:
        rel = _rel(oid)
        tmp = repo.odb.tmp_path(oid[-8:])
        try:
            try:
                digest = self.store.get_file(rel, tmp, meter.update)
            except storage.RemoteObjectMissing:
                return None
            if oids.from_digest(digest) != oid:
                raise storage.RemoteCorrupt(
                    f"{self.store.where(rel)} on remote {self.sp.name} is corrupt (its content hashes to "
                    f"xxh128:{digest}); nothing was placed in the cache or workspace: delete it on the remote and "
                    "push it again from a machine that has it"
                )
            size = os.path.getsize(tmp)
            repo.odb.install(tmp, oid)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        meter.object_done()
        return size

    def _get_run(
        self, repo: Repo, run: list[tuple[str, pk.Entry]], meter: _Meter, large: threading.BoundedSemaphore
    ) -> int | None:
        name = run[0][0]
        start, end = run[0][1].offset, run[-1][1].offset + run[-1][1].size
        rel = pk.pack_rel(name)
        with large if end - start > storage.LARGE else contextlib.nullcontext():
            try:
                data = self.store.get_range(rel, start, end)
            except storage.RemoteObjectMissing:
                return None
        for e, chunk, digest in pk.split(data, start, (e for _, e in run)):
            if oids.from_digest(digest) != e.oid:
                raise storage.RemoteCorrupt(
                    f"object {e.oid} in {self.store.where(rel)} (bytes {e.offset}-{e.offset + e.size}) on remote "
                    f"{self.sp.name} is corrupt (it hashes to xxh128:{digest}); nothing was placed in the cache or "
                    f"workspace: delete that pack and its .idx on the remote, then push again from a machine that "
                    "has its objects"
                )
            repo.odb.install_bytes(chunk, e.oid)
            meter.object_done()
        meter.update(len(data))
        return len(data)


def _check_cached(repo: Repo, oid: str, digest: str) -> None:
    """Refuse to publish a cache object that does not hash to its oid (it is quarantined)."""
    if oids.from_digest(digest) != oid:
        where = repo.odb.quarantine(oid)
        raise CorruptObject(
            f"cache object {oid} is corrupt (its content hashes to xxh128:{digest}); moved "
            f"to {where}, nothing was pushed for it: re-add the file or fetch it, then push"
        )


def push(
    paths: Iterable[str] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    revs: Iterable[str] | None = None,
    all_branches: bool = False,
    all_tags: bool = False,
    all_commits: bool = False,
    verify_remote: bool = False,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Upload the objects the selected pointers need that the remote lacks (entries before manifests).

    Pointers: those of the work tree (filtered by paths), or of ``revs`` / every branch / tag / commit
    instead. Returns {"remote", "uploaded", "bytes", "present"}. Raises ObjectMissing, after pushing
    the rest, when objects are neither in the cache nor on the remote.
    """
    repo = _open(repo)
    sp = spec(repo, remote)
    revs = list(revs or [])
    selected = _pointers(repo, paths, revs, all_branches, all_tags, all_commits)
    wanted = _Wanted()
    for label, p in selected.items():
        wanted.add_pointer(label, p)
    jr = journal(repo)
    try:
        return _push(repo, sp, wanted, jr, jobs, verify_remote, progress)
    finally:
        jr.close()


def _push(
    repo: Repo, sp: Spec, wanted: _Wanted, jr: Journal, jobs: int | None, verify: bool, progress: progressmod.Factory
) -> dict[str, Any]:
    known = set() if verify else jr.known(sp.key, list(wanted.files) + list(wanted.manifests))
    unread: list[str] = []  # manifests neither in the cache nor known on the remote
    for moid in list(wanted.manifests):
        if moid in known:
            continue  # on the remote, so are its entries (they are pushed first)
        if repo.odb.exists(moid):
            wanted.read_manifest(repo, moid)
        else:
            unread.append(moid)
    if not verify:
        entry_oids = {e.oid for es in wanted.entries.values() for e in es} - known
        known |= jr.known(sp.key, entry_oids)
    everything = set(wanted.files) | set(wanted.manifests)
    candidates = everything - known
    result = {"remote": sp.name, "uploaded": 0, "bytes": 0, "present": len(everything & known)}
    if not candidates:
        return result  # decided from the journal alone: no request

    remote = _Remote(sp, jr, jobs)
    try:
        there = remote.existing(candidates)
        jr.add(sp.key, there)
        if verify:
            jr.discard(sp.key, candidates - there)
        for moid in unread:
            if moid in there:
                if verify:  # check its entries too: bring the manifest into the cache to read it
                    remote.download(repo, [moid], _Meter(progressmod.null, "", 0, 1))
                    entries = wanted.read_manifest(repo, moid)
                    there |= remote.existing({e.oid for e in entries} - there - known)
        on_remote = known | there
        missing: list[str] = []
        files = []
        for oid in wanted.files:
            if oid in on_remote:
                continue
            (files if repo.odb.exists(oid) else missing).append(oid)
        recorder = _Recorder(jr, sp.key)
        manifests_todo = [m for m in wanted.manifests if m not in on_remote and repo.odb.exists(m)]
        missing += [m for m in wanted.manifests if m not in on_remote and not repo.odb.exists(m)]
        sizes = {o: os.path.getsize(repo.odb.path(o)) for o in files + manifests_todo}  # stat each once
        meter = _Meter(
            progress, f"pushing to {sp.name}", sum(sizes[o] for o in files), len(files) + len(manifests_todo)
        )
        try:
            sent = remote.upload(repo, files, sizes, meter, recorder)
            recorder.flush()
            uploaded = set(files)
            # a manifest goes up only when every entry it lists is on the remote
            ready = [
                m
                for m in manifests_todo
                if all(e.oid in on_remote or e.oid in uploaded for e in wanted.entries.get(m, []))
            ]
            blocked = [m for m in manifests_todo if m not in ready]
            sent += remote.upload(repo, ready, sizes, meter, recorder)
        finally:
            recorder.flush()
            meter.close()
    finally:
        remote.close()
    result.update(uploaded=len(files) + len(ready), bytes=sent, present=len(everything & on_remote))
    if missing or blocked:
        first = (missing or blocked)[0]
        label = wanted.files.get(first, (wanted.manifests.get(first, "?"), 0))[0]
        count = len(missing) + len(blocked)
        raise ObjectMissing(
            f"{count} object{'s' if count > 1 else ''} could not be pushed to {sp.name}: {first} "
            f"({label}) is neither in the cache nor on the remote; the rest was pushed: fetch it "
            "from where it exists (or re-add the file) and push again"
        )
    return result


def _fetch(repo: Repo, sp: Spec, wanted: _Wanted, jobs: int | None, progress: progressmod.Factory) -> dict[str, Any]:
    result = {"remote": sp.name, "downloaded": 0, "bytes": 0, "present": 0}
    need_manifests = [m for m in wanted.manifests if not repo.odb.exists(m)]
    remote: _Remote | None = None
    absent: list[str] = []
    jr = journal(repo)
    try:
        if need_manifests:
            remote = _Remote(sp, jr, jobs)
            got, gone = remote.download(repo, need_manifests, _Meter(progressmod.null, "", 0, 0))
            result["downloaded"] += len(need_manifests) - len(gone)
            result["bytes"] += got
            absent += gone
        for moid in wanted.manifests:
            if repo.odb.exists(moid):
                wanted.read_manifest(repo, moid)
        todo = [o for o in wanted.files if not repo.odb.exists(o)]
        result["present"] = len(wanted.files) + len(wanted.manifests) - len(todo) - len(need_manifests)
        if todo:
            if remote is None:
                remote = _Remote(sp, jr, jobs)
            meter = _Meter(progress, f"fetching from {sp.name}", sum(wanted.files[o][1] for o in todo), len(todo))
            try:
                got, gone = remote.download(repo, todo, meter, {o: wanted.files[o][1] for o in todo})
            finally:
                meter.close()
            result["downloaded"] += len(todo) - len(gone)
            result["bytes"] += got
            absent += gone
    finally:
        if remote is not None:
            remote.close()
        jr.close()
    if absent:
        first = absent[0]
        label = wanted.files.get(first, (wanted.manifests.get(first, first), 0))[0]
        what = f"{first} ({label})" if label != first else first
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        bad = f"; unreadable pack index {remote.bad_indexes[0]} was skipped" if remote and remote.bad_indexes else ""
        raise storage.RemoteObjectMissing(
            f"object {what}{more} is not on remote {sp.name}{bad}: push it from a machine that has it; "
            "the rest was fetched"
        )
    return result


def fetch(
    paths: Iterable[str] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    revs: Iterable[str] | None = None,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Download into the cache the objects the selected pointers need (manifests first, then their entries).

    Every object is hashed and placed only if it matches its oid. Returns {"remote", "downloaded",
    "bytes", "present"}.
    """
    repo = _open(repo)
    sp = spec(repo, remote)
    wanted = _Wanted()
    for label, p in _pointers(repo, paths, list(revs or [])).items():
        wanted.add_pointer(label, p)
    return _fetch(repo, sp, wanted, jobs, progress)


def fetch_objects(
    repo: Repo,
    wanted_oids: Iterable[str] | dict[str, int],
    *,
    remote: str | None = None,
    jobs: int | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Download these objects (as they are: a manifest's entries are not followed) into the cache.
    A dict gives each object's expected size, for the progress bar and scheduling."""
    sp = spec(repo, remote)
    sizes = wanted_oids if isinstance(wanted_oids, dict) else dict.fromkeys(wanted_oids, 0)
    wanted = _Wanted()
    for oid, size in sizes.items():
        wanted.files.setdefault(oid, (oid, size))
    return _fetch(repo, sp, wanted, jobs, progress)


def pull(
    paths: Iterable[str] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    rev: str | None = None,
    force: bool = False,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """fetch, then checkout: the fetch result plus "checkout", the rows of :func:`mvc.api.workspace.checkout`."""
    from mvc.api import workspace

    repo = _open(repo)
    result = fetch(paths, remote=remote, jobs=jobs, revs=[rev] if rev else None, repo=repo, progress=progress)
    result["checkout"] = workspace.checkout(paths, rev=rev, force=force, repo=repo, progress=progress)
    return result


# -- status -------------------------------------------------------------------------------------------
def status(
    paths: Iterable[str] = (), *, remote: str | None = None, jobs: int | None = None, repo: Repo | None = None
) -> list[dict[str, Any]]:
    """Per tracked path of the work tree: how many of its objects are not pushed (in the cache, not on
    the remote), not fetched (on the remote, not in the cache) and missing from both.

    Objects the journal does not know are looked up on the remote (and recorded when found).
    """
    repo = _open(repo)
    sp = spec(repo, remote)
    selected = _pointers(repo, paths, None)
    per_path: dict[str, set[str]] = {}
    wanted = _Wanted()
    for label, p in selected.items():
        wanted.add_pointer(label, p)
        objs = {p.oid}
        if p.kind == "dir" and repo.odb.exists(p.oid):
            objs |= {e.oid for e in wanted.read_manifest(repo, p.oid)}
        per_path[label] = objs
    everything = set().union(*per_path.values()) if per_path else set()
    jr = journal(repo)
    try:
        on_remote = jr.known(sp.key, everything)
        unknown = everything - on_remote
        if unknown:
            remote = _Remote(sp, jr, jobs)
            try:
                there = remote.existing(unknown)
            finally:
                remote.close()
            jr.add(sp.key, there)
            on_remote |= there
    finally:
        jr.close()
    rows = []
    for label, objs in per_path.items():
        cached = {o for o in objs if repo.odb.exists(o)}
        rows.append(
            {
                "path": Repo.target_of(label),
                "remote": sp.name,
                "not_pushed": len(cached - on_remote),
                "not_fetched": len((objs - cached) & on_remote),
                "missing": len(objs - cached - on_remote),
            }
        )
    return rows
