"""Storing work-tree files in the cache as ``mvc add`` does: one file (linking it to the cache per
``cache.type``), a directory's files, or the files of several directories at once; many files the cache lacks
are stored by forked processes (``mvc.storage.forked``), since the work is system calls with Python between
them that holds the GIL."""

from __future__ import annotations

import contextlib
import functools
import os
import stat as statmod
import time
from array import array
from collections.abc import Callable, Sequence

from mvc import progress as progressmod
from mvc.errors import ObjectMissing
from mvc.objects import manifest as mf
from mvc.repo.repository import Repo, in_quotes, shell_quoted
from mvc.repo.worktree import File, Scanned, fingerprint_of, hash_of, link_oid, link_stat, list_files, look

PARALLEL_FROM = 2000  # files the cache lacks, from which forked processes store them


def store(
    repo: Repo, rel: str, f: File, bar: progressmod.Bar, links: list[str] | None = None
) -> tuple[str, bool | None]:
    """Make sure f's content is in the cache (linking the workspace to it per cache.type, or ``links``: that
    setting read once for a directory's files): (its oid, whether the cache lacked it: True, False, or None when
    the content had to be hashed to know its oid)."""
    if f.oid is None and f.linked and statmod.S_ISLNK(f.st.st_mode) and not link_sound(repo, rel, f, bar):
        detach_edited(repo, f)  # an object edited through its link: the edit becomes a file, stored below
        f.oid = None
    if f.oid and repo.odb.exists(f.oid):
        return f.oid, False
    known = f.oid is not None  # and not in the cache: this stores it
    refuse_dangling(repo, rel, f)
    oid, how, st = repo.odb.add_file(f.full, links or repo.config.link_types, progress=bar.update)
    if how == "hardlink" and os.stat(repo.odb.path(oid)).st_ino != st.st_ino:
        repo.odb.export(oid, f.full, ["hardlink"])
    elif how == "symlink":
        repo.odb.export(oid, f.full, ["symlink"])
    # copy and reflink leave the file as it was (add_file saw it unchanged while it read it); a link changed it
    after = st if how in ("copy", "reflink") else os.lstat(f.full)
    if statmod.S_ISREG(after.st_mode):
        repo.state.put(rel, after, oid)
    elif statmod.S_ISLNK(after.st_mode):  # a link is vouched for by its object's stat (``worktree.look``)
        repo.state.put(rel, link_stat(f.full), oid)
    f.oid = oid
    return oid, True if known else None


def link_sound(repo: Repo, rel: str, f: File, bar: progressmod.Bar) -> bool:
    """Whether f, a symlink into the cache that the state cache does not vouch for (``worktree.look``), links to a
    read-only object that still holds what its name says (hashed, and then f.oid set and recorded): else it
    was edited through the link."""
    named = link_oid(repo, f.full)
    return named is not None and not _writable(f.full) and hash_of(repo, rel, f, bar) == named


def detach_edited(repo: Repo, f: File) -> None:
    """f links to a cache object that was made writable and maybe edited in place (``worktree.look``): its bytes
    become a file of its own at f's path (copied through the link, then renamed over it), and the object goes to
    the cache's quarantine/ (its bytes may no longer be those its name promises; nothing is deleted)."""
    import shutil

    from mvc.storage import tempfiles

    target = os.path.realpath(f.full)
    old = repo.odb.oid_at(target)
    tmp = tempfiles.tmp_name(os.path.dirname(f.full), os.path.basename(f.full))
    try:
        shutil.copyfile(f.full, tmp)
        os.chmod(tmp, 0o666 & ~tempfiles.umask() | (os.stat(target).st_mode & 0o111))
        os.replace(tmp, f.full)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if old is not None and repo.odb.exists(old) and not repo.odb.sound(old):
        repo.odb.quarantine(old)
    f.st, f.linked = os.lstat(f.full), False


def _writable(full: str) -> bool:
    try:
        return bool(os.stat(full).st_mode & 0o222)
    except OSError:
        return False


def refuse_dangling(repo: Repo, rel: str, f: File) -> None:
    if f.linked and statmod.S_ISLNK(f.st.st_mode):
        raise ObjectMissing(f"{rel} links to object {f.oid}, which is not in the cache: {relink_hint(repo, rel)}")


def store_all(repo: Repo, rel: str, files: dict[str, File], bar: progressmod.Bar, links: list[str]) -> None:
    """:func:`store` of every file of directory rel; by forked processes when the cache lacks PARALLEL_FROM of
    them or more (:func:`store_many`)."""
    todo = _lacking(repo, rel, files)
    workers = _workers(len(todo), links)
    if workers > 1:
        store_many(repo, todo, bar, links, workers)
        return
    for label, f in todo:
        store(repo, label, f, bar, links)


def store_dirs(repo: Repo, dirs: dict[str, dict[str, File]], progress: progressmod.Factory) -> set[str]:
    """The files of several directories ({rel: their files, as scan_dir found them}) the cache lacks, stored at
    once by forked processes when together they are PARALLEL_FROM or more (one directory's alone may be fewer);
    returns the directories whose files this stored (none when it did not fork: each is stored on its own)."""
    todo: list[tuple[str, File]] = []
    lacking: set[str] = set()
    for rel, files in dirs.items():
        mine = _lacking(repo, rel, files)
        todo += mine
        if mine:
            lacking.add(rel)
    links = repo.config.link_types
    workers = _workers(len(todo), links)
    if workers < 2:
        return set()
    bar = progress(f"adding {len(dirs)} directories", sum(f.st.st_size for _, f in todo))
    try:
        store_many(repo, todo, bar, links, workers)
    finally:
        bar.close()
    return lacking


def _lacking(repo: Repo, rel: str, files: dict[str, File]) -> list[tuple[str, File]]:
    """[(tracked path, file)] of directory rel's files whose content the cache lacks (or whose oid is unknown)."""
    return [(f"{rel}/{sub}", f) for sub, f in sorted(files.items()) if not (f.oid and repo.odb.exists(f.oid))]


def _workers(n: int, links: list[str]) -> int:
    """How many forked processes store n files: one per CPU from PARALLEL_FROM files, when they are copied or
    reflinked (a link changes the user's file, which a forked process would not tell the state cache); 1: none."""
    from mvc.storage import forked

    return forked.workers_for(n, PARALLEL_FROM) if set(links) <= {"copy", "reflink"} else 1


def store_many(repo: Repo, todo: list[tuple[str, File]], bar: progressmod.Bar, links: list[str], workers: int) -> None:
    """Store the files of todo ([(tracked path, file the cache lacks)]) by ``workers`` forked processes
    (``bulkadd.add_files``)."""
    from mvc.objects import bulkadd

    for label, f in todo:
        refuse_dangling(repo, label, f)
    got = bulkadd.add_files(repo.odb, [f.full for _, f in todo], links, workers, bar.update)
    rows: list[tuple[str, Sequence[int], str]] = []
    isreg = statmod.S_ISREG
    for (label, f), (oid, _, fields) in zip(todo, got, strict=True):
        if isreg(fields[0]):  # (a copy or a reflink leaves the file as add_file saw it)
            rows.append((label, fields, oid))
        f.oid = oid
    repo.state.put_fields(rows)


class Added:
    """A directory :func:`scan_and_store` stored, every file of it a regular file of its own: its manifest's
    entries (in the walk's order), the fingerprint of its files as they were stat'ed (worktree.fingerprint), and
    whether this add stored any of them."""

    __slots__ = ("entries", "fp", "stored")

    def __init__(self, entries: list[mf.Entry], fp: tuple[str, bool] | None, stored: bool):
        self.entries, self.fp, self.stored = entries, fp, stored


def scan_and_store(
    repo: Repo, dirs: dict[str, str], progress: progressmod.Factory, check: Callable[[str, list[str]], None]
) -> dict[str, Added | Scanned] | None:
    """The add of large directories ({rel: its path}; the files copied or reflinked): their files stat'ed and
    stored in one pass by forked processes, once ``check(rel, names)`` passed each directory's names, each
    process handing back what the state cache, the manifest and the fingerprint need (bulkadd.scan_add); a file
    the state cache vouches for, whose object the cache holds, is stat'ed and not read. A scan first (the stats
    taken by forked processes, or here), then the files the cache lacks stored by other forked processes, and
    every file looked at here again, cost 1.0-1.5 s more at 100,000 files (docs/benchmarks.md). Returns, of each
    directory, an :class:`Added`, or, for one holding a file that is not a regular file of its own (a symlink, a
    hardlink into the cache), what scan_dir would (the files, their oids known); None where this does not apply
    (fewer than PARALLEL_FROM files together, a link mode): then the caller scans and stores as for any add."""
    from mvc.objects import bulkadd
    from mvc.repo import statedb
    from mvc.storage.forked import STAT_FIELDS as W

    links = repo.config.link_types
    if not dirs or not set(links) <= {"copy", "reflink"}:
        return None
    listed = {rel: list_files(full) for rel, full in dirs.items()}
    paths = [path for _, in_dir in listed.values() for path in in_dir]
    workers = _workers(len(paths), links)
    if workers < 2:
        return None
    for rel, (subs, _) in listed.items():
        check(rel, subs)
    labels = [f"{rel}/{sub}" for rel, (subs, _) in listed.items() for sub in subs]
    racy_from = time.time_ns() - statedb.RACY_NS
    # (the sizes are known only as the files are read)
    bar = progress(
        f"adding {next(iter(dirs))}" if len(dirs) == 1 else f"adding {len(dirs)} directories", progressmod.UNKNOWN
    )
    try:
        row = functools.partial(statedb.row, racy_from=racy_from)
        known: dict[str, tuple[int, int, int, int, str]] = {}
        for rel in dirs:
            known.update(repo.state.under(rel))
        shares = bulkadd.scan_add(repo.odb, paths, labels, links, workers, row, bar.update, known)
    finally:
        bar.close()
    found: list[str | None] = []
    fields = array("q")
    stored: set[str] = set()
    for share in shares:
        found += share.oids
        fields.frombytes(share.fields)
        stored.update(share.stored)
        repo.state.put_rows(share.rows)
    out: dict[str, Added | Scanned] = {}
    at = 0
    for rel, (subs, in_dir) in listed.items():
        end = at + len(subs)
        oids_ = found[at:end]
        nums = fields[at * W : end * W]
        modes, nlinks = nums[0::W], nums[3::W]
        if None in oids_ or any(n > 1 and not m & 0o222 for m, n in zip(modes, nlinks, strict=True)):
            out[rel] = _scanned(repo, rel, subs, in_dir, oids_, nums, racy_from, links)
        else:
            entry, new = mf.Entry, tuple.__new__
            execs = [bool(m & 0o100) for m in modes]
            entries = [new(entry, e) for e in zip(subs, oids_, nums[6::W], execs, strict=True)]
            out[rel] = Added(entries, fingerprint_of(subs, nums, racy_from), any(o in stored for o in oids_))
        at = end
    return out


def _scanned(
    repo: Repo,
    rel: str,
    subs: list[str],
    paths: list[str],
    found: list[str | None],
    nums: array,
    racy_from: int,
    links: list[str],
) -> Scanned:
    """What scan_dir would find of a directory scan_add stored, where some file is not a regular file of its own:
    its files, looked at one by one (symlinks as scan_dir looks at them)."""
    from mvc.storage.forked import STAT_FIELDS as W
    from mvc.storage.forked import stat_from

    files = Scanned()
    base = rel + "/"
    rows: dict[str, tuple] | None = None  # the state cache's rows of the directory, read at its first link
    for i, (sub, path, oid) in enumerate(zip(subs, paths, found, strict=True)):
        st = stat_from(nums[i * W : (i + 1) * W])
        if oid is None:
            if rows is None and statmod.S_ISLNK(st.st_mode):
                rows = repo.state.under(rel)
            f = files[sub] = look(repo, base + sub, path, st, None, rows)
            if not f.foreign:
                store(repo, base + sub, f, progressmod.NULL, links)  # a link into the cache: its object must be there
        else:
            files[sub] = File(path, st, oid, st.st_nlink > 1 and not st.st_mode & 0o222)
    files.take_fingerprint(nums, racy_from)
    return files


def relink_hint(repo: Repo, rel: str) -> str:
    """The fix for a workspace link into the cache whose object is gone, as the remotes are configured."""
    from mvc.repo.remotes import fetch_fix  # not at the top: remotes load the stores

    fetch = in_quotes(f"mvc fetch {shell_quoted(rel)}")
    return f"replace the link with the real file and re-add it, or {fetch_fix(repo, fetch)}"
