"""The local object cache: ``<cache.dir>/objects/ab/cdef…``, immutable, read-only files.

Objects enter through a temp file in ``<cache.dir>/tmp`` and a rename (or, where the filesystem allows, an
unnamed temp file there and a link), so no partial object is ever visible under its final name. Every object
leaving the cache is hashed on the way out; one whose content does not match its oid is moved to
``quarantine/`` and reported, never used.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
from collections.abc import Iterable, Iterator

from mvc.errors import CorruptObject, ObjectMissing, PointerError, StorageError
from mvc.objects import cachepacks, layout
from mvc.objects import oid as oids
from mvc.storage import copying, fileio, tempfiles
from mvc.storage.fileio import Progress

LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
GC_WAIT = 3600.0  # seconds an add waits for a gc reading what it keeps, and a gc for the adds running
READONLY = 0o444
LIST_FROM = 16  # ODB.missing lists a fan-out directory once it is asked about this many of its objects
LIST_ALL_FROM = 4096  # or (valid oids) once this many were asked in all: the whole cache listed, kept for the command
TRASH = cachepacks.TRASH  # an object mvc gc is deleting: objects/ab/cdef….gc-PID (docs/FORMAT.md, "What gc keeps")


class ODB:
    def __init__(self, root: str, *, fsync: bool = False, work_tmp: str | None = None, work_marker: str = ""):
        self.root = os.path.abspath(root)
        self.objects_dir = os.path.join(self.root, "objects")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.fsync = fsync
        self._marked = self._check_marker()
        self.work_temps = tempfiles.WorkTemps(work_tmp, work_marker)  # where export's temps go
        self._no_reflink: set[int] = set()  # devices of sources a reflink into this cache failed from
        self._fans: set[str] = set()  # fan-out directories (objects/ab) this process made or found
        self._born_readonly = False  # temps created with mode READONLY get it whole (the umask clears no r bit)
        self._asked = 0  # valid oids ODB.missing was asked about (a read-only command's bulk checks)
        self._listing: set[str] | None = None  # every object, once listed for them
        self._tmp_ready = False  # tmp/ made (and swept) by this process
        self._adding: contextlib.ExitStack | None = None  # the gc lock an add holds (:meth:`adding`)
        # objects this process stored as copies of their own, or as the user's file it then symlinks to (one link)
        self._copied: set[str] = set()
        self._no_unnamed: bool | None = None  # whether the cache's tmp/ makes no unnamed files (None: not tried)
        self.placed = 0  # objects this ODB stored that the cache lacked (not those found there and freshened)
        self.packs = cachepacks.Packed(self.root)  # small objects a large add stored in packs
        self.collect = "mvc gc --force"  # what frees this cache of what nothing needs (the user's cache: its own)

    def _check_marker(self) -> bool:
        """Refuse a cache whose layout marker names a format this mvc does not know; True if it has one.
        A cache without a marker (new, or written before markers existed) gets one on its first write,
        unless it holds what an mvc cache does not (:meth:`_mark`). One open(): the no-op commands pay
        nothing more."""
        path = os.path.join(self.root, layout.MARKER)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # unreadable: the first write reports what is wrong with the directory
        try:
            data = os.read(fd, layout.MARKER_MAX + 1)
        finally:
            os.close(fd)
        layout.check_marker(data, path)
        return True

    def _mark(self) -> None:
        """Before the first write to a cache without a marker: refuse a directory that is not empty and not
        an mvc cache (writing nothing to it), else create the root and its marker."""
        if self._marked:
            return
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            names = []
        if layout.MARKER not in names:  # else another mvc wrote it since this cache was opened
            layout.refuse_foreign(
                names,
                layout.CACHE_ENTRIES,
                self.root,
                "an mvc cache",
                "point cache.dir at an empty directory or an mvc cache ('mvc config cache.dir DIR')",
            )
            with fileio.space_errors(f"the cache ({self.root})"):
                os.makedirs(self.root, exist_ok=True)
                fileio.atomic_write(os.path.join(self.root, layout.MARKER), layout.MARKER_BYTES, fsync=self.fsync)
        if self._adding is not None:  # a cache an add found without a marker: locked before its first object
            self._adding.enter_context(self._gc_lock(shared=True))
        self._marked = True

    # -- layout -----------------------------------------------------------------------------
    def path(self, oid: str) -> str:
        # not os.path.join: this runs once per file of a directory, and join costs more than the stat
        return self.objects_dir + os.sep + oids.to_relpath(oid)

    def oid_at(self, path: str) -> str | None:
        """The oid of a path inside this cache's objects dir (e.g. a symlink target), else None."""
        rel = os.path.relpath(os.path.abspath(path), self.objects_dir)
        if rel.startswith(".."):
            return None
        return oids.from_relpath(rel)

    def exists(self, oid: str) -> bool:
        # access(F_OK) answers like os.path.exists in half the time (no stat result to build)
        return self.packs.has(oid) or os.access(self.path(oid), os.F_OK)  # (a dict lookup first)

    def missing(self, oids_: Iterable[str], valid: bool = False) -> list[str]:
        """The oids the cache lacks, in order, a busy fan-out directory listed once (``valid``: forms checked).
        Once LIST_ALL_FROM valid oids were asked about, the whole cache is listed and kept for the command:
        a status of 100 directories of 1,000 files then costs one listing and a set lookup per object."""
        want = list(oids_)
        if valid:
            self._asked += len(want)
            if self._listing is None and self._asked > LIST_ALL_FROM:
                self._listing = set(self._names())
                self._listing.update(self.packs.keys())
            if self._listing is not None:
                listing = self._listing
                if listing.issuperset(want):  # the usual answer, found without a Python step per object
                    return []
                return [o for o in want if o not in listing]
        groups: dict[str, list[tuple[str, str]]] = {}
        for o in want:
            fan, name = oids.split(o, valid)
            groups.setdefault(fan, []).append((o, name))
        lacking: set[str] = set()
        for fan, group in groups.items():
            if len(group) < LIST_FROM:
                lacking.update(o for o, _ in group if not self.exists(o))
                continue
            try:
                names = set(os.listdir(self.objects_dir + os.sep + fan))
            except (FileNotFoundError, NotADirectoryError):
                names = set()
            lacking.update(o for o, name in group if name not in names)
        if lacking and self.packs.any():
            lacking = {o for o in lacking if not self.packs.has(o)}
        return [o for o in want if o in lacking]

    def _names(self) -> list[str]:
        """Every name in the fan-out directories as an oid would spell it, unchecked: a name that is no oid never
        equals one asked about."""
        found: list[str] = []
        if os.path.isdir(self.objects_dir):
            for prefix in os.scandir(self.objects_dir):
                if prefix.is_dir(follow_symlinks=False):
                    head = f"{oids.ALGO}:{prefix.name}"
                    found += [head + name for name in os.listdir(prefix.path)]
        return found

    def all_oids(self) -> Iterator[str]:
        """Every object, loose or in a pack (only names that are oids: a damaged index's words may be anything)."""
        return iter(sorted(oid for oid in {*self._names(), *self.packs.keys()} if oids.is_oid(oid)))

    def loose_oids(self) -> Iterator[str]:
        """The objects stored one file each (``objects/ab/cdef…``)."""
        return (oid for oid in self._names() if oids.is_oid(oid))

    def size(self, oid: str) -> int:
        """The size of object oid (ObjectMissing when the cache lacks it)."""
        try:
            return os.lstat(self.path(oid)).st_size
        except FileNotFoundError:
            at = self.packs.find(oid)
            if at is None:
                raise ObjectMissing(f"object {oid} is not in the cache: run 'mvc fetch' or re-add the file") from None
            return at[2]

    def _tmp(self, hint: str = "obj") -> str:
        self._prepare()
        return tempfiles.tmp_name(self.tmp_dir, hint)

    @contextlib.contextmanager
    def adding(self) -> Iterator[None]:
        """Held by a command while it stores objects and then writes the pointers that name them (``mvc add``,
        the imports): a ``gc --force`` of this cache waits for it before it reads its clock and the pointers,
        and it waits for that gc to have read them (docs/FORMAT.md, "Concurrent writers"). Others' adds go on
        at once (a shared ``flock`` of the cache's ``gc.lock``). A cache not made yet is locked as the first
        write makes it (:meth:`_mark`): a command refused before it writes leaves no cache behind."""
        if self._adding is not None:  # (nested: held already)
            yield
            return
        self._adding = contextlib.ExitStack()
        try:
            if os.path.isfile(os.path.join(self.root, layout.MARKER)):
                self._adding.enter_context(self._gc_lock(shared=True))
            yield
        finally:
            stack, self._adding = self._adding, None
            stack.close()

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """Held by ``gc --force`` from before it reads its clock until it has read what it keeps: no add is
        then between storing an object and naming it (:meth:`adding`)."""
        with self._gc_lock(shared=False):
            yield

    @contextlib.contextmanager
    def _gc_lock(self, shared: bool) -> Iterator[None]:
        from mvc.storage.lock import locked

        if not os.path.isfile(os.path.join(self.root, layout.MARKER)):
            yield  # no cache yet: nothing to collect (an add locks it as its first write makes it)
            return
        # (a link there, a commit's, is refused by locked; a cache this user may not write and that has no lock
        # file yet, another's, goes without: no writer of it to wait for)
        doing = "reading what to keep of" if shared else "adding to"
        with locked(os.path.join(self.root, layout.GC_LOCK), "the cache", GC_WAIT, shared, doing, needed=False):
            yield

    def _prepare(self) -> None:
        if not self._tmp_ready:  # once a process: adding 100,000 files asks for 100,000 temp files
            self._mark()  # first: nothing is written to a directory that is not mvc's
            layout.write_ignore(self.root, self.fsync)  # before any object: git ignores a cache in a work tree
            fileio.refuse_links(self.tmp_dir)  # (a commit's link at .mvc/cache/tmp: temps written elsewhere)
            os.makedirs(self.tmp_dir, exist_ok=True)
            tempfiles.sweep_stale(self.tmp_dir, marker=layout.MARKER)
            self._born_readonly = tempfiles.umask() & READONLY == 0
            self._tmp_ready = True

    def _unnamed(self, link_types: Iterable[str]) -> int | None:
        """An unnamed temp file in tmp/ for a copy or reflink (a link needs the name), or None: then a named one."""
        if self._no_unnamed or any(t in ("hardlink", "symlink") for t in link_types):
            return None
        self._prepare()
        if self._no_unnamed is None:  # once a process: one made and linked, or named temps from then on
            self._no_unnamed = not tempfiles.unnamed_work(self.tmp_dir)
            if self._no_unnamed:
                return None
        out = tempfiles.open_unnamed(self.tmp_dir, READONLY)
        self._no_unnamed = out is None
        return out

    def _install(
        self,
        tmp: str | int,
        oid: str,
        durable: bool = False,
        *,
        readonly: bool = False,
        copied: bool = False,
        moved: bool = False,
    ) -> None:
        """Make tmp read-only (unless it was made so: ``readonly``) and rename it to the object's path (a
        no-op if it is already there); tmp an unnamed temp file's fd (``_unnamed``): linked there instead.
        ``moved``: tmp is the user's file, about to be symlinked to: freshened here (its mtime may be old, and a
        gc running before the pointer names it would take it for garbage), and counted as stored now.

        With core.fsync, or ``durable`` (the cache is about to hold the only copy), the data and the
        directory entry are synced before the object counts as stored.
        """
        dest = self.path(oid)
        durable = durable or self.fsync
        # there already: freshened, ours dropped (else a gc took it just now: ours is installed)
        if isinstance(tmp, str) and os.path.exists(dest) and self.freshen(oid):
            fileio.remove_quietly(tmp)
            return
        # a copy of an object a pack holds: ours dropped (an unnamed temp on close); a link needs the object file
        if copied and self.packs.has(oid) and self.packs.touch(oid):
            if isinstance(tmp, str):
                fileio.remove_quietly(tmp)
            return
        if moved and isinstance(tmp, str):
            os.utime(tmp)
        if not readonly:
            os.chmod(tmp, READONLY)
        if durable:
            os.fsync(tmp) if isinstance(tmp, int) else fileio.fsync_path(tmp)
        fan = os.path.dirname(dest)
        if fan not in self._fans:  # made (or found) once a process
            os.makedirs(fan, exist_ok=True)
            self._fans.add(fan)
        place = os.replace if isinstance(tmp, str) else tempfiles.link_unnamed  # a link fails on an object there
        for _ in range(2):
            try:
                place(tmp, dest)  # type: ignore[arg-type]
                break
            except FileNotFoundError:  # a gc dropped the fan-out directory it emptied
                os.makedirs(fan, exist_ok=True)
            except FileExistsError:  # (unnamed) there already, freshened; else a gc took it just now: ours goes in
                if self.freshen(oid):
                    return
        else:
            place(tmp, dest)  # type: ignore[arg-type]  # a second race lost: its error, as it is
        if self._listing is not None:  # a listing kept for missing() stays true to this one
            self._listing.add(oid)
        self.placed += 1
        if copied or moved:
            self._copied.add(oid)
        if durable:
            fileio.fsync_dir(os.path.dirname(dest))

    def tmp_path(self, hint: str = "obj") -> str:
        """A fresh temp file name in ``tmp/``, on the objects' filesystem (for :meth:`install`)."""
        return self._tmp(hint)

    def install(self, tmp: str, oid: str) -> None:
        """Place tmp, a complete file the caller has verified hashes to oid, as object oid."""
        self._install(tmp, oid)

    # -- writing ----------------------------------------------------------------------------
    def add_bytes(self, data: bytes) -> str:
        oid = oids.from_digest(fileio.hexdigest_bytes(data))
        self.install_bytes(data, oid)
        return oid

    def freshen(self, oid: str) -> bool:
        """Mark object oid as just used (its mtime set to now): a writer about to point to an object does this,
        so that a gc running meanwhile keeps it (docs/FORMAT.md, "What gc keeps"). False when the object is
        not there (then the writer stores it again, or fails). A cache that refuses it (read-only, another
        user's) counts as freshened: no gc of this user deletes there. An object with another hard link (a
        workspace file linked to it: cache.type hardlink) is in use, which gc sees: its mtime, the workspace
        file's too, is left alone, or the state cache would count the file changed."""
        if self.packs.has(oid) and self.packs.touch(oid):  # in a cache pack: the pack touched (once a process)
            return True
        path = self.path(oid)
        try:
            # one this process stored itself (a copy) has no other link: one system call, not two
            if oid not in self._copied and os.lstat(path).st_nlink > 1:
                return True
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            pass
        return True

    def install_bytes(self, data: bytes, oid: str) -> None:
        """Store data, which the caller has verified hashes to oid, as object oid."""
        if not (self.exists(oid) and self.freshen(oid)):
            tmp = self._tmp()
            with fileio.space_errors(f"the cache ({self.root})"):
                try:
                    fileio.atomic_write(tmp, data)
                    self._install(tmp, oid)
                except BaseException:
                    fileio.remove_quietly(tmp)
                    raise

    def add_file(
        self,
        src: str,
        link_types: Iterable[str] = ("copy",),
        *,
        progress: Progress | None = None,
        durable: bool = False,
    ) -> tuple[str, str, os.stat_result]:
        """Store the file at src; returns (oid, how it was stored, stat of src before reading).

        ``hardlink``/``symlink`` store the user's inode itself (made read-only); the caller then
        links the workspace to the object. ``reflink``/``copy`` leave the user's file untouched.
        """
        fd = fileio.open_source(src)
        tmp = ""
        unnamed = None
        try:
            st = os.fstat(fd)
            if not statmod.S_ISREG(st.st_mode):
                raise StorageError(f"{src}: not a regular file: mvc tracks files and directories")
            with fileio.space_errors(f"the cache ({self.root})"):
                try:
                    unnamed = self._unnamed(link_types)
                    if unnamed is None:
                        tmp = self._tmp(os.path.basename(src))
                    oid, how = self._store(fd, st, src, tmp, link_types, progress, unnamed)
                    after = os.fstat(fd)
                    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                        raise changed_while_added(src)
                    copied = how in ("copy", "reflink")
                    into = tmp if unnamed is None else unnamed
                    readonly = self._born_readonly and copied
                    self._install(into, oid, durable, readonly=readonly, copied=copied, moved=how == "symlink")
                except BaseException:
                    if tmp:
                        fileio.remove_quietly(tmp)
                    raise
                finally:
                    if unnamed is not None:
                        os.close(unnamed)
        finally:
            os.close(fd)
        return oid, how, st

    def stored_many(self, oids_: list[str]) -> None:
        """Note objects stored for this ODB by other processes (forked workers' copies), as :meth:`_install` notes
        its own (one call for the 100,000 objects of a large add)."""
        self.placed += len(oids_)
        self._copied.update(oids_)
        if self._listing is not None:
            self._listing.update(oids_)

    def stored_now(self, oid: str) -> bool:
        """Whether this process stored oid as a copy or as the user's file symlinked to (or was told a forked worker
        did): an object stored fresh by this command, which needs no freshening before a pointer names it."""
        return oid in self._copied

    def mark_packs(self) -> None:
        """Before the first cache pack: tmp/ made, and the cache's layout marker says a format that has packs (an mvc
        that does not know them refuses the cache rather than find its objects missing)."""
        self._prepare()
        path = os.path.join(self.root, layout.MARKER)
        try:
            with open(path, "rb") as f:
                fmt = layout.check_marker(f.read(layout.MARKER_MAX + 1), path)
        except FileNotFoundError:
            fmt = 0
        if fmt < layout.CACHE_PACKS:
            with fileio.space_errors(f"the cache ({self.root})"):
                fileio.atomic_write(path, layout.marker_bytes(layout.CACHE_PACKS), fsync=self.fsync)

    def _store(self, fd: int, st: os.stat_result, src: str, tmp: str, link_types, progress, given: int | None):
        """Store fd's bytes into the temp file: ``given`` (unnamed, open), else the one named tmp, made here."""
        out: int | None = given  # the temp, once open: a reflink that fails leaves it empty for the copy
        try:
            for how in link_types:
                if how == "reflink" and st.st_dev not in self._no_reflink:
                    if out is None:
                        out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, READONLY)  # the fd may write
                    if fileio.reflink_fd(fd, out):
                        return oids.from_digest(fileio.hash_fd(out, st.st_size, progress)), how
                    self._no_reflink.add(st.st_dev)  # this filesystem pair cannot: not asked again per file
                elif how in ("hardlink", "symlink"):
                    digest = fileio.hash_fd(fd, st.st_size, progress)
                    oid = oids.from_digest(digest)
                    if os.access(self.path(oid), os.F_OK):  # an object file to link to (not one in a pack)
                        return oid, how
                    if out is not None:  # the link needs the name
                        os.close(out)
                        out = None
                        os.unlink(tmp)
                    # the user's inode becomes the object (symlinked back later), unless another name links it too (a
                    # file outside the repository): made read-only, and an edit there corrupting the cache
                    if st.st_nlink == 1 and fileio.link(src, tmp, "hardlink"):
                        return oid, how
            if out is None:
                out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, READONLY)
            return oids.from_digest(copying.copy_hash_fd(fd, out, st.st_size, progress)), "copy"
        finally:
            if out is not None and out != given:
                os.close(out)

    # -- reading ----------------------------------------------------------------------------
    def _open_loose(self, oid: str) -> int | None:
        """An fd of the loose object, or None when it is not stored loose (it may be in a pack)."""
        try:
            return os.open(self.path(oid), os.O_RDONLY)
        except FileNotFoundError:
            return None

    def _packed_bytes(self, oid: str) -> bytes:
        """oid's bytes from the pack that holds it, checked (ObjectMissing when no pack does)."""
        data = self.packs.read(oid)
        if data is None:
            self.packs.refresh()  # written since this process read the indexes?
            data = self.packs.read(oid)
        if data is None:
            raise ObjectMissing(f"object {oid} is not in the cache: run 'mvc fetch' or re-add the file")
        self._check(oid, fileio.hexdigest_bytes(data), packed=True)
        return data

    def read_bytes(self, oid: str) -> bytes:
        # in a pack (found there first, a dict lookup), else its file (else a pack written since, or missing)
        fd = self._open_loose(oid) if self.packs.find(oid) is None else None
        if fd is None:
            return self._packed_bytes(oid)
        try:
            data = os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
        self._check(oid, fileio.hexdigest_bytes(data))
        return data

    def read_into(self, oid: str, buf: memoryview) -> int | None:
        """Read the object into the start of buf and check it: its size. None, with buf's bytes undefined, when
        the object does not fit in buf less one byte (a caller that took a pointer's word for the size learns the
        truth here: one open, one read, one close, and no memory of its own)."""
        at = self.packs.locate(oid) if self.packs.has(oid) else None
        if at is not None:  # read where its pack holds it: no open, no copy
            pack, offset, size = at
            if size >= len(buf):
                return None
            n = os.preadv(pack, [buf[:size]], offset)
        else:
            fd = self._open_loose(oid)
            if fd is None:
                self._packed_bytes(oid)  # raises ObjectMissing (or finds a pack written since)
                return self.read_into(oid, buf)
            try:
                n = os.preadv(fd, [buf], 0)
            finally:
                os.close(fd)
            if n >= len(buf):
                return None
        self._check(oid, fileio.hexdigest_bytes(buf[:n]), packed=at is not None)
        return n

    def verify(self, oid: str, progress: Progress | None = None) -> None:
        fd = self._open_loose(oid) if self.packs.find(oid) is None else None
        if fd is None:
            n = len(self._packed_bytes(oid))
            if progress is not None:
                progress(n)
            return
        try:
            digest = fileio.hash_fd(fd, os.fstat(fd).st_size, progress)
        finally:
            os.close(fd)
        self._check(oid, digest)

    def sound(self, oid: str) -> bool:
        """Whether the object's own file (not a pack's copy) hashes to oid; False when it has none. Moves nothing."""
        try:
            return oids.from_digest(fileio.hash_file(self.path(oid))[0]) == oid
        except (OSError, StorageError):  # (no file: hash_file says so as a StorageError)
            return False

    def holds_sound(self, oid: str) -> bool:
        """Whether the cache's copy of oid (its own file, else a pack's) hashes to oid. Moves nothing."""
        return self.sound_size(oid) is not None

    def sound_size(self, oid: str) -> int | None:
        """The size of a copy of oid in the cache that hashes to oid (its own file, else a pack's); None when it
        holds none. Moves nothing."""
        if self.sound(oid):
            return os.lstat(self.path(oid)).st_size
        data = self.packs.read(oid)
        return len(data) if data is not None and oids.from_digest(fileio.hexdigest_bytes(data)) == oid else None

    def _check(self, oid: str, digest: str, packed: bool = False) -> None:
        if oids.from_digest(digest) != oid:
            where = self.quarantine(oid, packed)
            raise CorruptObject(
                f"cache object {oid} is corrupt (its content hashes to xxh128:{digest}); moved to {where}: "
                "run 'mvc fetch' or re-add the file to restore it"
            )

    def quarantine(self, oid: str, packed: bool = False) -> str:
        """Move the object aside (its file; or, ``packed``, or when it has no file, its copy in a pack: those bytes
        copied aside and the pack's index made to forget it). Returns where it went."""
        self._mark()  # a write like any other: never in a directory that is not mvc's
        layout.write_ignore(self.root, self.fsync)
        qdir = os.path.join(self.root, "quarantine")
        fileio.refuse_links(qdir)
        os.makedirs(qdir, exist_ok=True)
        dest = os.path.join(qdir, oid.replace(":", "-") + "." + os.urandom(3).hex())
        try:
            if not packed:
                os.replace(self.path(oid), dest)
                return dest
        except FileNotFoundError:
            pass
        data = self.packs.read(oid)
        if data is not None:
            fileio.atomic_write(dest, data)
            self.packs.drop(oid)
        return dest

    def export(
        self,
        oid: str,
        dest: str,
        link_types: Iterable[str] = ("copy",),
        *,
        executable: bool = False,
        progress: Progress | None = None,
        claim: tuple[int, str] | None = None,
    ) -> str:
        """Write object oid to dest (temp file, verified, renamed into place). Returns the link type used.
        ``claim``: (the size a pointer or manifest gives the object, how it names it): an object, verified, of
        another size is not placed (:func:`belied`), and stays in the cache (its bytes are sound; the claim is
        wrong).

        The temp file is made by :meth:`temp_for`: in ``work_tmp`` (``.mvc/tmp``, which git ignores and
        mvc sweeps) on dest's filesystem, else beside dest. A killed writer so never leaves a file that
        ``git status`` shows, except in that fallback, which the next export into the directory removes.
        dest's parent must exist; whatever is at dest (a file or a symlink, never followed) is replaced.
        """
        return self._place(oid, dest, link_types, executable, progress, False, claim)[0]

    def place(
        self,
        oid: str,
        dest: str,
        link_types: Iterable[str] = ("copy",),
        *,
        executable: bool = False,
        progress: Progress | None = None,
        claim: tuple[int, str] | None = None,
    ) -> tuple[str, os.stat_result | None]:
        """:meth:`export`, and dest's lstat when it shows dest as written, holding oid's bytes, with a ctime
        later than its mtime (``fileio.settle``), so that any write since or later shows in its mtime: what
        the state cache may record at once. None where that cannot be vouched for (a symlink, say)."""
        return self._place(oid, dest, link_types, executable, progress, True, claim)

    def _place(
        self, oid, dest, link_types, executable, progress, settle, claim=None
    ) -> tuple[str, os.stat_result | None]:
        src = self.path(oid)
        directory = os.path.dirname(dest) or "."
        name = os.path.basename(dest)
        fd = self._open_loose(oid)  # an object file first: the link modes need one
        if fd is None:  # in a pack: copied out (it holds only objects under 1 MiB)
            fd = self._unpacked(oid)
            link_types = ("copy",)
        try:
            size = os.fstat(fd).st_size
            with fileio.space_errors(dest):
                tmp = self.temp_for(directory, name)
                try:
                    how, written = self._export(oid, fd, size, src, tmp, link_types, executable, progress, settle)
                    if claim is not None and claim[0] != size:  # (after the export verified the bytes: sound)
                        raise belied(claim[1], claim[0], oid, size)
                    # a large file swapped with the one it replaces: not written out by ext4 in the rename (a
                    # crash in the next half minute may leave it empty; the cache holds it). With core.fsync
                    # it is synced first, then renamed, and the directory synced: durable when this returns.
                    put = fileio.swap_into if size >= fileio.SMALL else os.replace
                    if self.fsync:
                        fileio.fsync_path(tmp)
                    try:
                        put(tmp, dest)
                    except OSError as e:
                        if e.errno != errno.EXDEV:
                            raise
                        # another mount of the same filesystem (a bind mount: same st_dev, no rename across)
                        fileio.remove_quietly(tmp)
                        self.work_temps.unreachable(directory)
                        tmp = self.temp_for(directory, name)
                        how, written = self._export(oid, fd, size, src, tmp, link_types, executable, None, settle)
                        put(tmp, dest)
                except BaseException:
                    fileio.remove_quietly(tmp)
                    raise
        finally:
            os.close(fd)
        if self.fsync:
            fileio.fsync_dir(directory)
        if written is None:
            return how, None
        st = os.lstat(dest)
        # the file written, and no write since: any would have moved the mtime past the settled ctime
        same = (st.st_ino, st.st_mtime_ns, st.st_size) == (written.st_ino, written.st_mtime_ns, written.st_size)
        return how, st if same and statmod.S_ISREG(st.st_mode) else None

    def _unpacked(self, oid: str) -> int:
        """An fd of an unnamed, unlinked file (a memfd) holding packed object oid's bytes, checked: what
        :meth:`_place` copies from as from a loose object (and checks again on the way out)."""
        data = self._packed_bytes(oid)
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("mvc-object", os.MFD_CLOEXEC)
        else:  # a temp file in tmp/, unlinked at once
            path = self._tmp("unpacked")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.unlink(path)
        fileio.write_all(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def temp_for(self, directory: str, name: str) -> str:
        """A fresh temp path from which a rename can place ``directory/name`` (``tempfiles.WorkTemps``)."""
        return self.work_temps.temp_for(directory, name)

    def _export(
        self, oid, fd, size, src, tmp, link_types, executable, progress, settle
    ) -> tuple[str, os.stat_result | None]:
        """Write tmp, verified; (the link type used, tmp's settled stat when settle asks for it and it can be
        had; for a hard link, the object's own stat)."""
        mode = 0o777 if executable else 0o666
        for how in link_types:
            if how == "reflink":
                out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
                try:
                    ok = fileio.reflink_fd(fd, out)
                    if ok:
                        self._check(oid, fileio.hash_fd(out, size, progress))
                        return how, fileio.settle(out) if settle else None
                finally:
                    os.close(out)
                os.unlink(tmp)
            elif how in ("hardlink", "symlink"):
                self._check(oid, fileio.hash_fd(fd, size, progress))
                if fileio.link(src, tmp, how):
                    # a hard link is the object itself: immutable, read-only, its bytes just verified
                    return how, os.lstat(tmp) if settle and how == "hardlink" else None
        out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
        try:
            digest = copying.copy_hash_fd(fd, out, size, progress)
            self._check(oid, digest)
            return "copy", fileio.settle(out) if settle else None
        finally:
            os.close(out)


def belied(what: str, size: int, oid: str, held: int) -> PointerError:
    """The error for a pointer or a manifest entry (``what``: how the error names it) that gives an object a size
    the object's own sound bytes belie: the claim is damaged (a hostile commit's), not the cache."""
    return PointerError(
        f"{what} gives size {size}, but its object {oid} in the cache holds {held} bytes (and hashes right): the "
        "pointer or its directory's manifest is damaged; nothing was written: restore it with git ('git log -p' of "
        "the pointer), or re-add the path from a good copy"
    )


def changed_while_added(src: str) -> StorageError:
    """The error for a file whose size or mtime moved while it was read to be stored."""
    return StorageError(f"{src} changed while it was being added: retry when nothing writes to it")
