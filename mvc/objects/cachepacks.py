"""Packs in the local cache (docs/FORMAT.md, "Cache packs"): the small objects of a large ``mvc add``, written
one after another into ``<cache>/packs/<name>.pack`` with an index ``<name>.idx`` beside it, in the packs'
format of a remote (:mod:`mvc.objects.pack`), instead of one file each. Storing 100,000 small files then
creates a few dozen files, not 100,000.

A pack is visible once its index is: the pack is renamed into place first, its index after. Nothing here
trusts a pack: the cache hashes every object it reads from one (:class:`mvc.objects.odb.ODB`). This module
knows packs and their indexes, never which objects anyone needs (gc decides that).
"""

from __future__ import annotations

import os
from collections.abc import Callable, KeysView
from typing import BinaryIO

import xxhash

from mvc.errors import CorruptObject
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.storage import fileio, tempfiles

DIR = "packs"  # below the cache's root
TRASH = ".gc-"  # what mvc gc is deleting: objects/ab/cdef….gc-PID, packs/<name>.pack.gc-PID (docs/FORMAT.md)
FLUSH = 4 << 20  # a writer's buffer goes to its temp file at this size


class Packed:
    """What a cache knows of its packs, read from their indexes on first use and again by :meth:`refresh`: which
    objects they hold (the first word of each line of each index: one ``split`` of its text, no line parsed, so a
    status of 100,000 packed files pays tens of milliseconds), and, for a pack an object is read from, its whole
    index parsed and checked (:func:`pack.parse_index`, against the pack's size). An index that does not parse is
    moved to ``quarantine/``: its objects read as missing from then on, to every command, as a lost object does (a
    fetch or an add stores them again; gc deletes the pack, then without an index, after the grace). With
    ``repair`` off (``mvc verify`` without ``--repair``, which writes nothing) it is only hidden from this
    process. Either way ``damaged`` holds what such indexes listed."""

    def __init__(self, root: str):
        self.dir = os.path.join(root, DIR)
        self._where: dict[str, str] | None = None  # oid -> name of a pack whose index lists it
        self._parsed: dict[str, dict[str, pk.Entry] | None] = {}  # name -> its entries (None: does not parse)
        self._touched: set[str] = set()  # packs this process touched
        self._fds: dict[str, int] = {}  # packs this process read from: open until it ends
        self.repair = True  # an index that does not parse is moved to quarantine/ (else hidden from this process)
        self.damaged: set[str] = set()  # the words of every index found not to parse (the oids it listed)

    def _map(self) -> dict[str, str]:
        if self._where is None:
            self._where = {}
            self._read_new()
        return self._where

    def _read_new(self) -> None:
        assert self._where is not None
        try:
            names = os.listdir(self.dir)
        except (FileNotFoundError, NotADirectoryError):
            return
        known = set(self._where.values())
        for name in names:
            stem = name[:-4]
            if not name.endswith(".idx") or stem in known or not pk.is_name(stem) or f"{stem}.pack" not in names:
                continue
            try:
                with open(self.index_path(stem), "rb") as f:
                    words = _read_index(f).decode("ascii", "replace").split()
            except OSError:
                continue
            # [header, version, oid, offset, size, oid, …]; a word out of place is no oid anyone asks about
            self._where.update(dict.fromkeys(words[2::3], stem))

    def _entries(self, name: str) -> list[pk.Entry]:
        size = os.stat(self.pack_path(name)).st_size
        return pk.parse_index(self.index_bytes(name), self.index_path(name), size)

    def refresh(self) -> None:
        """Read the indexes written since (by forked workers, or another process)."""
        if self._where is not None:
            self._read_new()

    def any(self) -> bool:
        return bool(self._map())

    def has(self, oid: str) -> bool:
        return oid in self._map()

    def find(self, oid: str) -> tuple[str, int, int] | None:
        """(pack name, offset, size) of oid, or None (no pack has it, or its pack's index does not parse)."""
        name = self._map().get(oid)
        if name is None:
            return None
        if name not in self._parsed:
            try:
                self._parsed[name] = {e.oid: e for e in self._entries(name)}
            except OSError:  # gone (a gc took the pack), or not for this user to read
                self._parsed[name] = None
            except CorruptObject:
                self._damaged(name)
                return None
        entries = self._parsed[name]
        e = entries.get(oid) if entries is not None else None
        return None if e is None else (name, e.offset, e.size)

    def _damaged(self, name: str) -> None:
        """Pack ``name``'s index does not parse. mvc writes an index whole and renames it into place, so it was
        damaged after (a disk, a crash without fsync, a hand). Its pack is hidden from this process, and with
        ``repair`` its index is moved to ``quarantine/``: what it lists is read as missing from now on, by every
        later command too, so that a fetch stores it again. Where this user may not move it, the pack stays
        hidden from this process only.

        Whatever damaged one index may have damaged others: every other index is parsed now too (a few tenths of a
        second for 100,000 objects, once), and those that do not parse go the same way, so that the one fetch a
        reader's error asks for finds every object they listed missing."""
        where = self._map()
        damaged = [name]
        for other in sorted(set(where.values()) - {name} - set(self._parsed)):
            try:
                self._parsed[other] = {e.oid: e for e in self._entries(other)}
            except CorruptObject:
                damaged.append(other)
            except OSError:
                continue
        for stem in damaged:
            self._parsed[stem] = None
            self.damaged.update(oid for oid, at in where.items() if at == stem)
        if not self.repair:
            return
        qdir = os.path.join(os.path.dirname(self.dir), "quarantine")
        moved = False
        for stem in damaged:
            try:
                os.makedirs(qdir, exist_ok=True)
                os.replace(self.index_path(stem), os.path.join(qdir, f"{stem}.idx.{os.urandom(3).hex()}"))
            except FileNotFoundError:  # set aside by another process meanwhile
                moved = True
            except OSError:
                continue
            else:
                moved = True
        if moved:
            self.forget()

    def listed(self) -> dict[str, str]:
        """{oid: the name of a pack whose index lists it} (an index's words, unparsed: see the class)."""
        return self._map()

    def index_bytes(self, name: str) -> bytes:
        """The index file of pack name, at most INDEX_MAX + 1 bytes (parse_index refuses more)."""
        with open(self.index_path(name), "rb") as f:
            return _read_index(f)

    def keys(self) -> KeysView[str]:
        """The objects the packs hold, as a view (no copy)."""
        return self._map().keys()

    def pack_path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.pack")

    def index_path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.idx")

    def locate(self, oid: str) -> tuple[int, int, int] | None:
        """(an fd of the pack holding oid, its offset there, its size), or None when no pack has it. The fd is the
        process's, kept open for every later read of that pack (a pack's name is its bytes' digest, so an fd stays
        right for it whatever gc does): a push of 100,000 packed objects opens each pack once."""
        at = self.find(oid)
        if at is None:
            return None
        name, offset, size = at
        fd = self._fds.get(name)
        if fd is None:
            try:
                fd = self._fds[name] = os.open(self.pack_path(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:  # a gc took the pack since the index was read
                self.forget()
                return None
        return fd, offset, size

    def read(self, oid: str) -> bytes | None:
        """oid's bytes as its pack holds them (unchecked: the caller hashes them), or None when no pack has it."""
        at = self.locate(oid)
        return None if at is None else os.pread(at[0], at[2], at[1])

    def touch(self, oid: str) -> bool:
        """Mark oid's pack as just used (its mtime now, what a gc's grace reads); False when no pack has it. A pack
        is touched once a process: the 100,000 objects of a directory's pointer then cost one ``utime`` a pack
        (all before the pointer is written, as the protocol asks: "What gc keeps")."""
        name = self._map().get(oid)
        if name is None or name in self._touched:
            return name is not None
        try:
            os.utime(self.pack_path(name))
        except FileNotFoundError:  # a gc is taking it: the writer stores the object again
            self.forget()
            return False
        except OSError:  # a cache this user may not write: no gc of theirs deletes there either
            pass
        self._touched.add(name)
        return True

    def forget(self) -> None:
        """Drop what this process knows of the packs (one is gone, or being deleted): read again on next use."""
        self._where = None
        self._parsed = {}
        self._touched = set()

    def all(self) -> dict[str, tuple[list[pk.Entry], os.stat_result]]:
        """Every complete pack: {name: (its entries, its pack file's lstat)}, read now (gc's view)."""
        out: dict[str, tuple[list[pk.Entry], os.stat_result]] = {}
        try:
            names = os.listdir(self.dir)
        except (FileNotFoundError, NotADirectoryError):
            return out
        for name in names:
            stem = name[:-4]
            if name.endswith(".idx") and pk.is_name(stem):
                try:
                    out[stem] = (self._entries(stem), os.lstat(self.pack_path(stem)))
                except (OSError, CorruptObject):
                    continue
        return out

    def drop(self, oid: str) -> None:
        """Remove oid from the index of its pack (it is corrupt there): the index is rewritten without it, through a
        temp file and a rename; the pack's bytes stay until gc deletes the pack."""
        at = self.find(oid)
        if at is None:
            return
        name = at[0]
        try:
            entries = [e for e in self._entries(name) if e.oid != oid]
        except (OSError, CorruptObject):
            entries = []
        fileio.atomic_write(self.index_path(name), pk.render_index(entries), mode=0o444)
        self.forget()


class Writer:
    """Objects appended to a pack being written, in the order given; :meth:`close` publishes it (pack, then index).
    A pack is also closed at ``pk.TARGET`` bytes; the next add starts another."""

    def __init__(self, packs: Packed, tmp_dir: str, fsync: bool = False):
        self.packs = packs
        self.tmp_dir = tmp_dir
        self.fsync = fsync
        self.written: list[str] = []  # names of the packs published
        self._fd: int | None = None
        self._tmp = ""
        self._held: set[str] = set()  # every object this writer stored, in any of its packs
        self._start()

    def _start(self) -> None:
        self._entries: list[pk.Entry] = []
        self._size = 0
        self._buf = bytearray()
        self._hash = xxhash.xxh3_128()

    def holds(self, oid: str) -> bool:
        return oid in self._held

    def add(self, oid: str, data: bytes) -> None:
        """Append data, which the caller has hashed to oid."""
        if self._fd is None:
            self._tmp = tempfiles.tmp_name(self.tmp_dir, "pack")
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        self._entries.append(tuple.__new__(pk.Entry, (oid, self._size, len(data))))  # (no Python call: 100,000 adds)
        self._held.add(oid)
        self._size += len(data)
        self._buf += data
        if len(self._buf) >= FLUSH:
            self._flush()
        if self._size >= pk.TARGET:
            self.close()

    def _flush(self) -> None:
        assert self._fd is not None
        self._hash.update(self._buf)  # hashed as written, a buffer at a time (not once per object)
        fileio.write_all(self._fd, memoryview(self._buf))
        self._buf.clear()

    def discard(self) -> None:
        """Drop the pack being written (its temp file), after a failure: nothing of it is published."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmp:
            fileio.remove_quietly(self._tmp)
        self._start()

    def close(self) -> None:
        """Publish the pack being written, if any: the pack renamed into place, then its index."""
        if self._fd is None:
            return
        try:
            self._flush()
            if self.fsync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None
        name = self._hash.hexdigest()
        os.makedirs(self.packs.dir, exist_ok=True)
        os.replace(self._tmp, self.packs.pack_path(name))  # the same bytes if it was there: same name
        # (atomic_write syncs the directory after the index with fsync, so the pack's rename is durable too)
        fileio.atomic_write(self.packs.index_path(name), pk.render_index(self._entries), fsync=self.fsync, mode=0o444)
        self.written.append(name)
        self._start()


def _in_use(st: os.stat_result, cutoff: float) -> bool:
    return max(st.st_mtime, st.st_ctime) > cutoff  # written or touched since the cutoff


def collect(
    packs: Packed, needed: set[str], cutoff: float, force: bool, tmp_dir: str, fsync: bool = False
) -> tuple[list[tuple[str, int]], int]:
    """gc of the cache's packs, those untouched since cutoff: a pack none of whose objects is needed goes whole; one
    whose unneeded objects are half its bytes or more is rewritten (its needed objects, each checked, into a new
    pack, then the old one deleted); the rest stay as they are. With force, it is done. Returns ((oid, size) of each
    object that goes, or went; the number of unneeded objects that stay in packs beside needed ones)."""
    went: list[tuple[str, int]] = []
    stay = 0
    for name, (entries, st) in sorted(packs.all().items()):
        dead = [e for e in entries if e.oid not in needed]
        whole = len(dead) == len(entries)
        if not dead or _in_use(st, cutoff) or not (whole or 2 * sum(e.size for e in dead) >= st.st_size):
            stay += 0 if whole else len(dead)  # (a whole pack younger than the grace is young, not kept)
            continue
        if not force or ((whole or _rewrite(packs, name, needed, tmp_dir, fsync)) and delete(packs, name, cutoff)):
            went += [(e.oid, e.size) for e in dead]
        else:
            stay += 0 if whole else len(dead)
    return went, stay


def _rewrite(packs: Packed, name: str, needed: set[str], tmp_dir: str, fsync: bool) -> bool:
    """Copy the needed objects of pack name into a new pack (published, pack then index), each checked against its
    oid first; False, writing nothing, when one does not match (the pack stays for verify to name)."""
    parts = []
    fd = os.open(packs.pack_path(name), os.O_RDONLY)
    try:
        for e in packs._entries(name):
            if e.oid in needed:
                data = os.pread(fd, e.size, e.offset)
                if oids.from_digest(fileio.hexdigest_bytes(data)) != e.oid:
                    return False
                parts.append((e.oid, data))
    finally:
        os.close(fd)
    os.makedirs(tmp_dir, exist_ok=True)  # (a cache with packs has its marker)
    writer = Writer(packs, tmp_dir, fsync)
    try:
        for oid, data in parts:
            writer.add(oid, data)
        writer.close()
    except BaseException:  # a full disk, Ctrl-C: no temp pack left in tmp/ (swept only when a day old)
        writer.discard()
        raise
    packs.forget()
    return True


def delete(packs: Packed, name: str, cutoff: float) -> bool:
    """Delete a pack gc found doomed unless a writer touched it since (:meth:`Packed.touch`): renamed aside first (a
    writer touching it from then on finds it gone and stores its object again), its mtime checked there, then its
    index and it removed; or it is renamed back. Whether it went."""
    path = packs.pack_path(name)
    trash = f"{path}{TRASH}{os.getpid()}"
    try:
        if _in_use(os.lstat(path), cutoff):
            return False
        os.rename(path, trash)
    except FileNotFoundError:
        return False
    packs.forget()
    if os.lstat(trash).st_mtime > cutoff:  # (the rename moved its ctime)
        os.rename(trash, path)
        return False
    fileio.remove_quietly(packs.index_path(name))
    os.unlink(trash)
    return True


def remove_orphans(packs: Packed, cutoff: float) -> None:
    """Delete what a killed writer left in packs/, untouched since cutoff: a pack whose index never came, an index
    whose pack is gone (a killed gc), a temp file of an index."""
    for path in _orphans(packs, cutoff):
        fileio.remove_quietly(path)


def _orphans(packs: Packed, cutoff: float) -> list[str]:
    try:
        names = set(os.listdir(packs.dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for n in sorted(names):
        stem, _, ext = n.rpartition(".")
        lone = (ext == "pack" and f"{stem}.idx" not in names) or (ext == "idx" and f"{stem}.pack" not in names)
        if (lone and pk.is_name(stem)) or tempfiles.is_tmp_name(n):
            path = os.path.join(packs.dir, n)
            try:
                if not _in_use(os.lstat(path), cutoff):
                    out.append(path)
            except FileNotFoundError:
                continue
    return out


def restore_trash(packs: Packed) -> int:
    """Put back the packs a gc killed part way left renamed for deletion (``<name>.pack.gc-PID``, its process gone),
    to be judged again. Returns how many."""
    return put_back(packs.dir, lambda name: name.endswith(".pack") and pk.is_name(name[:-5]))


def put_back(directory: str, valid: Callable[[str], bool]) -> int:
    """Rename back what a gc killed part way left renamed for deletion in directory (``NAME.gc-PID``, its process
    gone, NAME one that ``valid`` accepts). Returns how many."""
    n = 0
    try:
        entries = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        name, sep, pid = entry.partition(TRASH)
        if not sep or not (pid.isascii() and pid.isdigit()) or not valid(name):
            continue
        if int(pid) != os.getpid() and not tempfiles.writer_gone(int(pid)):
            continue  # a gc running now
        try:
            os.rename(os.path.join(directory, entry), os.path.join(directory, name))
            n += 1
        except OSError:
            pass
    return n


def _read_index(f: BinaryIO) -> bytes:
    """An index file, at most INDEX_MAX + 1 bytes: as many as it holds asked for, not the bound (a read of n bytes
    reserves n first, and 64 MiB per index read fails a push under a memory limit where the indexes are 50 KiB)."""
    return f.read(min(os.fstat(f.fileno()).st_size, pk.INDEX_MAX) + 1)
