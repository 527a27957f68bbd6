"""Looking at the work tree: stat and hash tracked files (trusting the state cache where it vouches for a
file), scan tracked directories and digest their stats (``Walk``, ``fingerprint``); :mod:`mvc.repo.pathstatus`
compares them with a pointer."""

from __future__ import annotations

import os
import stat as statmod
import time
from array import array
from collections.abc import Callable, Iterable, Iterator

from mvc import progress as progressmod
from mvc.errors import MvcError, PathError
from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf
from mvc.objects import oid as oids
from mvc.repo import statedb
from mvc.repo.repository import Repo, quoted
from mvc.repo.selection import load_pointer, not_utf8
from mvc.storage import fileio


# File and _Plan are plain classes, not dataclasses: creating a dataclass costs ~1.5 ms of every
# command's start-up (it compiles its methods), and a File is made per file of a directory.
class File:
    __slots__ = ("foreign", "full", "linked", "oid", "st")

    def __init__(self, full: str, st: os.stat_result, oid: str | None, linked: bool = False, foreign: bool = False):
        self.full = full
        self.st = st
        self.oid = oid  # None: not known yet (must hash), or a symlink that does not point into the cache
        self.linked = linked  # shares the cache object (symlink or read-only hardlink): mode is the object's
        self.foreign = foreign  # a symlink elsewhere, never followed

    @property
    def executable(self) -> bool:
        return bool(self.st.st_mode & 0o100)


def checked(rel: str, files: dict[str, File]) -> dict[str, File]:
    """files, once no file of directory rel is one mvc refuses to record."""
    for sub, f in files.items():
        if f.foreign:
            raise PathError(
                f"{rel}/{sub} is a symlink: a tracked directory holds regular files only; "
                "replace it with the file it names, or remove it"
            )
    check_names(rel, list(files))
    return files


def check_names(rel: str, subs: list[str]) -> None:
    """Refuse a name of directory rel's files that mvc cannot record."""
    if mf.plain_relpaths(subs):
        return  # every name plain: nothing below would refuse one (checked in one pass)
    for sub in subs:
        # refused here, or the manifest would hold a path that every later read refuses
        why = "not valid UTF-8" if not_utf8(sub) else mf.bad_relpath(sub)
        if why is None and ptrfmt.has_control(sub):
            why = "its name has a control character"
        if why and mf.git_owned(sub) == why:
            raise PathError(f"{quoted(rel + '/' + sub)} is git's ({why}): mvc never records it: move it out of {rel}")
        if why:
            raise PathError(f"{quoted(rel + '/' + sub)}: a file name mvc cannot record ({why}): rename it")


def link_oid(repo: Repo, full: str) -> str | None:
    target = os.readlink(full)
    return repo.odb.oid_at(os.path.join(os.path.dirname(full), target))


def link_stat(full: str) -> os.stat_result:
    """The stat of the object the symlink at full links to, as the state cache records it (``look``): settled
    (``fileio.settle``: its ctime later than its mtime) where that can be had, so it is vouched for at once."""
    try:
        fd = os.open(full, os.O_RDONLY)
    except OSError:
        return os.stat(full)
    try:
        return fileio.settle(fd) or os.fstat(fd)
    finally:
        os.close(fd)


def look(
    repo: Repo, rel: str, full: str, st: os.stat_result, known: str | None, rows: dict[str, tuple] | None = None
) -> File:
    """The File at rel (lstat st): ``known``, the oid the state cache gives a regular file for st. A symlink into
    the cache is vouched for by the state cache's row for the object's own stat (``rows``: the rows of rel's
    directory, else asked): root writes a read-only object in place, so the link's name alone proves nothing."""
    if statmod.S_ISLNK(st.st_mode):
        oid = link_oid(repo, full)
        if oid is None:
            return File(full, st, None, foreign=True)
        try:
            target = os.stat(full)
        except OSError:  # a dangling link: its object left the cache
            return File(full, st, oid, linked=True)
        if target.st_mode & 0o222:
            # the object was made writable (chmod through the link), so maybe edited in place: its name proves
            # nothing any more, its bytes are hashed
            return File(full, st, None, linked=True)
        row = (rows.get(rel) if rows is not None else repo.state.row(rel)) or ()
        # unvouched (a write through the link, or a link mvc did not record): hashed, and then recorded
        return File(full, st, oid if row[:4] == statedb.key(target) and row[4] == oid else None, linked=True)
    if not statmod.S_ISREG(st.st_mode):
        raise PathError(
            f"{rel} is not a regular file or directory (a FIFO, socket or device): mvc records files and "
            "directories: move it out of the way or delete it"
        )
    linked = st.st_nlink > 1 and not st.st_mode & 0o222
    return File(full, st, known, linked=linked)


def hash_of(repo: Repo, rel: str, f: File, bar: progressmod.Bar) -> str | None:
    if f.oid is None and not f.foreign:
        digest, st = fileio.hash_file(f.full, bar.update)
        f.oid = oids.from_digest(digest)
        repo.state.put(rel, st, f.oid)
    return f.oid


STAT_FORKED_FROM = 20_000  # a directory of this many files or more is stat'ed by forked processes


class Walk:
    """(posix subpath, path, lstat) of every non-directory below a directory, in one fixed order: iterate it, or
    ask for its :meth:`fingerprint`. The names are listed here; the files are stat'ed here, or, from
    STAT_FORKED_FROM files, by one forked process per CPU, each taking a run of them (a stat is a system call with
    Python around it, which threads would take turns at): their numbers become stat_results only if iterated, and
    the no-op status, which needs only the fingerprint, never builds 100,000 of them."""

    def __init__(self, full: str, meanwhile: Callable[[], None] | None = None):
        """``meanwhile``: work of the caller's to run while forked processes stat the files (not run without them)."""
        self.subs, self.paths = list_files(full)
        self._stats: list[os.stat_result] | None = None
        self._shares: list[tuple[bytes, bytes, bool, bool]] | None = None
        self._joined: bytes | None = None  # the shares' digested numbers, joined (_digested)
        n = len(self.paths)
        workers = 1
        if n >= STAT_FORKED_FROM:
            from mvc.storage import forked

            workers = forked.workers_for(n, STAT_FORKED_FROM)
        if workers < 2:
            self._stats = [os.lstat(path) for path in self.paths]
            return
        from mvc.storage.forked import map_forked

        step = -(-n // workers)
        racy_from = time.time_ns() - statedb.RACY_NS
        shares = [self.paths[i : i + step] for i in range(0, n, step)]
        self._shares = map_forked(
            lambda paths, _: _stat_share(paths, racy_from), shares, len(shares), meanwhile=meanwhile
        )

    def __iter__(self) -> Iterator[tuple[str, str, os.stat_result]]:
        return zip(self.subs, self.paths, self.stats(), strict=True)

    def stats(self) -> list[os.stat_result]:
        if self._stats is None:
            assert self._shares is not None
            from mvc.storage.forked import stats_from

            self._stats = []
            for _, raw, _, _ in self._shares:
                nums = array("q")
                nums.frombytes(raw)
                self._stats += stats_from(nums)
        return self._stats

    def columns(self) -> tuple[array, array, array, array, array]:
        """(inodes, mtimes, ctimes, sizes, modes) of the files, in the walk's order, from a forked walk's numbers."""
        nums = array("q")
        nums.frombytes(self._digested())
        return nums[0::DIGESTED], nums[1::DIGESTED], nums[2::DIGESTED], nums[3::DIGESTED], nums[4::DIGESTED]

    def _digested(self) -> bytes:
        """The numbers the fingerprint digests, of every file in the walk's order (a forked walk's, joined once)."""
        if self._joined is None:
            assert self._shares is not None
            self._joined = b"".join(share[0] for share in self._shares)
        return self._joined

    @property
    def forked(self) -> bool:
        """Whether forked processes took the stats: the fingerprint's numbers are at hand then."""
        return self._shares is not None

    def fingerprint(self) -> tuple[str, bool] | None:
        """:func:`fingerprint` of the walk."""
        if self._shares is None:
            return fingerprint(zip(self.subs, self.stats(), strict=True))
        if not all(regular for _, _, regular, _ in self._shares):
            return None
        return _digest(self.subs, self._digested()), all(trusted for _, _, _, trusted in self._shares)


def list_files(full: str) -> tuple[list[str], list[str]]:
    """(posix subpaths, paths) of every non-directory below directory full, in the order :class:`Walk` keeps."""
    subs: list[str] = []
    paths: list[str] = []
    stack = [(full, "")]
    while stack:
        d, prefix = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, prefix + e.name + "/"))
                else:
                    subs.append(prefix + e.name)
                    paths.append(e.path)
    return subs, paths


def _stat_share(paths: list[str], racy_from: int) -> tuple[bytes, bytes, bool, bool]:
    """In a forked process: the lstat of each path as (the numbers :func:`fingerprint` digests, the fields of each
    stat_result, whether every one is a regular file of its own, whether the state cache may trust every one)."""
    fields = array("q")
    keep = fields.extend
    for st in map(os.lstat, paths):  # stat_fields(st), written out: the call cost a third of this loop
        keep((*st[:10], st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns))  # type: ignore[arg-type]  # ([7:10]: ints)
    digested, regular, trusted = digested_fields(fields, racy_from)
    return digested.tobytes(), fields.tobytes(), regular, trusted


def digested_fields(fields: array, racy_from: int) -> tuple[array, bool, bool]:
    """What :func:`_digested` computes, from the stat fields of files one after another (``forked.stat_fields``
    of each)."""
    from mvc.storage.forked import STAT_FIELDS as W

    # Here as columns of the fields a worker hands back anyway (array slices): 0.02 s for 50,000 files against
    # 0.04 s for _digested's loop over stat_results; without those fields to hand (a walk in one process),
    # building them costs more than the loop saves, so the two stay (tests/test_status.py holds both to one
    # definition).
    mode, nlink, ino, size = fields[0::W], fields[3::W], fields[1::W], fields[6::W]
    mtime, ctime = fields[11::W], fields[12::W]
    digested = array("q", bytes(8 * DIGESTED * len(mode)))
    for i, column in enumerate((ino, mtime, ctime, size, mode)):
        digested[i::DIGESTED] = column
    regular = all(m & 0o170000 == statmod.S_IFREG and (n <= 1 or m & 0o222) for m, n in zip(mode, nlink, strict=True))
    trusted = not any(c <= m and m > racy_from for m, c in zip(mtime, ctime, strict=True))
    return digested, regular, trusted


DIGESTED = 5  # the numbers of each file's stat a fingerprint digests


def _digested(stats: Iterable[os.stat_result], racy_from: int) -> tuple[array, bool, bool]:
    """What a fingerprint digests of each file's stat (inode, times, size, mode), whether every file is a regular
    file of its own, and whether the state cache may trust every one (none changed within RACY_NS of racy_from).
    (``_stat_share`` computes the same from stat fields.)"""
    nums = array("q")
    add = nums.extend
    isreg = statmod.S_ISREG
    regular = trusted = True
    for st in stats:  # once per file of every status: kept to what it needs
        mode, mtime, ctime = st.st_mode, st.st_mtime_ns, st.st_ctime_ns
        if not isreg(mode) or (st.st_nlink > 1 and not mode & 0o222):
            regular = False
        if ctime <= mtime and mtime > racy_from:
            trusted = False
        add((st.st_ino, mtime, ctime, st.st_size, mode))
    return nums, regular, trusted


class Scanned(dict[str, File]):
    """What :func:`scan_dir` found: {posix subpath: File}, in the walk's order, and the walk (when scan_dir made
    it), whose fingerprint is then at hand; or that fingerprint itself (``fp``, when whoever stat'ed the files
    digested their numbers)."""

    walk: Walk | None = None
    fp: tuple[str, bool] | None = None
    digested = False  # fp holds the fingerprint (None there: a file that is not a regular file of its own)

    def take_fingerprint(self, fields: array, racy_from: int) -> None:
        """Digest the files' stat fields (``forked.stat_fields`` of each, one after another, in this order)."""
        self.fp = fingerprint_of(list(self), fields, racy_from)
        self.digested = True


def fingerprint_of(subs: list[str], fields: array, racy_from: int) -> tuple[str, bool] | None:
    """:func:`fingerprint` of files named subs (in the walk's order) whose stat fields (``forked.stat_fields`` of
    each, one after another) are fields, taken after racy_from (time_ns() - RACY_NS then)."""
    nums, regular, trusted = digested_fields(fields, racy_from)
    return (_digest(subs, nums.tobytes()), trusted) if regular else None


def scan_dir(
    repo: Repo,
    rel: str,
    full: str,
    walked: Iterable[tuple[str, str, os.stat_result]] | None = None,
    lenient: bool = False,
) -> Scanned:
    """Every file below a tracked directory (as Walk(full) finds them, or walked when given): {posix
    subpath: File}, oids from the state cache. lenient: a FIFO, socket or device there is a File that is never
    read (foreign), not an error (a status that lists what changed)."""
    known = repo.state.under(rel)
    found = Scanned()
    if walked is None:
        walked = found.walk = Walk(full)
    base = rel + "/"
    isreg = statmod.S_ISREG
    # the loop body runs once per file of every status / re-add: kept to the few operations it needs
    for sub, path, st in walked:
        row = known.get(base + sub) if known else None  # (a first add: nothing to look up)
        oid = row[4] if row and row[:4] == (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size) else None
        if isreg(st.st_mode):  # what look decides for a regular file
            found[sub] = File(path, st, oid, st.st_nlink > 1 and not st.st_mode & 0o222)
        elif lenient and not statmod.S_ISLNK(st.st_mode):
            found[sub] = File(path, st, None, foreign=True)
        else:
            found[sub] = look(repo, base + sub, path, st, oid, known)
    return found


def fingerprint(stats: Iterable[tuple[str, os.stat_result]]) -> tuple[str, bool] | None:
    """A digest of a directory's files as lstat shows them (names, inodes, times, sizes, modes, in walk
    order), and whether the state cache could trust every one of them (statedb.trusted); None when one is
    not a regular file of its own (a symlink, or a hardlink into the cache), whose content its stat does
    not vouch for. The state cache maps a fingerprint to the manifest it was seen to make (put_dir), so a
    no-op status of 100,000 files costs one walk: no lookup per file, no manifest to rebuild."""
    names: list[str] = []

    def named() -> Iterator[os.stat_result]:
        for sub, st in stats:
            names.append(sub)
            yield st

    nums, regular, trusted = _digested(named(), time.time_ns() - statedb.RACY_NS)
    if not regular:
        return None
    return _digest(names, nums.tobytes()), trusted


def _digest(names: list[str], nums: bytes) -> str:
    return fileio.hexdigest_bytes("\0".join(names).encode("utf-8", "surrogateescape") + b"\0" + nums)


def remember_dir(repo: Repo, rel: str, files: dict[str, File], oid: str) -> None:
    """After files (as scanned) were seen to make manifest oid: record their fingerprint for the next status."""
    remember(repo, rel, fingerprint_of_files(files), oid)


def remember(repo: Repo, rel: str, fp: tuple[str, bool] | None, oid: str) -> None:
    """Record that directory rel's files, while their fingerprint is fp, make manifest oid (when fp may be trusted)."""
    if fp is not None and fp[1]:
        repo.state.put_dir(rel, fp[0], oid)


def fingerprint_of_files(files: dict[str, File]) -> tuple[str, bool] | None:
    """:func:`fingerprint` of files as scanned (taken from the walk or the stat fields when at hand)."""
    walk = files.walk if isinstance(files, Scanned) else None
    if walk is not None and walk.forked:  # its numbers digested already, in the same order
        return walk.fingerprint()
    if isinstance(files, Scanned) and files.digested:
        return files.fp
    return fingerprint((sub, f.st) for sub, f in files.items())


def total(files: Iterable[File]) -> int:
    return sum(f.st.st_size for f in files if f.oid is None and not f.foreign)


def old_manifest(repo: Repo, rel: str) -> dict[str, mf.Entry]:
    """The entries of the directory's current pointer, when its manifest is at hand."""
    try:
        p = load_pointer(repo, Repo.pointer_of(rel))
        if p.kind == "dir" and repo.odb.exists(p.oid):
            return {e.path: e for e in mf.loads(repo.odb.read_bytes(p.oid), p.oid)}
    except (OSError, MvcError):
        pass
    return {}


def entries_of(repo: Repo, rel: str, files: dict[str, File]) -> list[mf.Entry]:
    if not any(f.linked for f in files.values()):  # (nearly always: the loop below, once per file, kept short)
        new, entry = tuple.__new__, mf.Entry  # (Entry's own __new__ is a Python call)
        return [new(entry, (sub, f.oid or "", f.st.st_size, bool(f.st.st_mode & 0o100))) for sub, f in files.items()]
    old = old_manifest(repo, rel)
    out = []
    for sub, f in files.items():
        prev = old.get(sub)
        executable = prev.executable if f.linked and prev else (f.executable and not f.linked)
        size = os.stat(f.full).st_size if f.linked else f.st.st_size
        out.append(mf.Entry(sub, f.oid or "", size, executable))
    return out


def check_checkout_room(
    repo: Repo, rel: str, full: str, writes: list[tuple[str, int, str]], removals: list[str]
) -> None:
    """Refuse, before the first of a directory's files is replaced, a checkout its file system has no room for
    (writes: (path, size, oid) of the files written in this order; removals: the files removed first). Each new
    file is written beside the one it replaces, then renamed over it: the room needed is the most that is in use at
    once, step by step, after what the removals free. A link takes no room; a reflink may not, which one attempt
    tells. One file needs no check: written beside the old one and renamed, it is all or nothing anyway."""
    from mvc.errors import StorageError

    types = repo.config.link_types
    if len(writes) < 2 or types[0] in ("hardlink", "symlink"):
        return
    from mvc.objects.transfer import free_space

    room = free_space(full)
    if room is None:
        return
    d, free = room
    if sum(_blocks(size) for _, size, _ in writes) <= free:
        return  # room for every new file at once: what they replace needs no stat
    grown = peak = 0
    for target, size, _ in writes:
        peak = max(peak, grown + _blocks(size))
        grown += _blocks(size) - _held(target)
    peak -= sum(_held(f) for f in removals)
    if peak <= free or (types[0] == "reflink" and _reflinks(repo, d, [oid for _, _, oid in writes])):
        return
    raise StorageError(
        f"not enough disk space to check out {quoted(rel)}: it needs up to {progressmod.human(peak)}, and its "
        f"file system has {progressmod.human(free)} free: free some space there, then retry (nothing was changed)"
    )


def _blocks(size: int) -> int:
    return -(-size // 4096) * 4096  # what a file of size takes, in 4 KiB blocks


def _held(path: str) -> int:
    """The room removing or replacing the file at path frees (none when another name links it)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_blocks * 512 if statmod.S_ISREG(st.st_mode) and st.st_nlink == 1 else 0


def _reflinks(repo: Repo, directory: str, oids_: list[str]) -> bool:
    """Whether a cache object can be cloned into directory (sharing its blocks, taking no room), tried on an
    unnamed file there that vanishes when closed."""
    from mvc.storage import tempfiles

    src = next((repo.odb.path(o) for o in oids_ if os.path.isfile(repo.odb.path(o))), None)
    out = tempfiles.open_unnamed(directory, 0o600) if src is not None else None
    if out is None:
        return False
    try:
        fd = os.open(src, os.O_RDONLY)  # type: ignore[arg-type]
        try:
            return fileio.reflink_fd(fd, out)
        finally:
            os.close(fd)
    finally:
        os.close(out)
