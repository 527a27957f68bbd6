"""Whether a tracked path is what its pointer says (``path_status``) and, for a directory, which of its files are
not (``dir_changes``): the work tree looked at through :mod:`mvc.repo.worktree`, and judged without reading the
pointer's manifest where that is cheaper (the fingerprint of the files' stats, then the hash of the manifest the
files make)."""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Callable

from mvc import progress as progressmod
from mvc.errors import MvcError, PathError, StorageError
from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf
from mvc.objects import oid as oids
from mvc.repo.repository import Repo
from mvc.repo.selection import not_utf8
from mvc.repo.worktree import File, Walk, entries_of, hash_of, look, remember, remember_dir, scan_dir, total
from mvc.storage import fileio


def dir_cached(repo: Repo, oid: str) -> bool:
    """Whether the cache holds the manifest oid and every object it names."""
    return repo.odb.exists(oid) and not repo.odb.missing(mf.oids_of(repo.odb.read_bytes(oid), oid), valid=True)


HASH_FIRST = 64 << 20  # status hashes a directory's changed files up to this many bytes before it reads the manifest


def manifest_entries(repo: Repo, p: ptrfmt.Pointer) -> dict[str, mf.Entry] | None:
    """A dir pointer's entries, or None when its manifest is not in the cache."""
    if not repo.odb.exists(p.oid):
        return None
    return {e.path: e for e in mf.loads(repo.odb.read_bytes(p.oid), p.oid)}


def path_status(
    repo: Repo,
    rel: str,
    p: ptrfmt.Pointer,
    progress: progressmod.Factory = progressmod.null,
    scanned: dict[str, File] | None = None,
    found: dict[str, str | None] | None = None,
) -> tuple[str, str]:
    """(workspace, cache) of the tracked path rel against pointer p, which may come from the work tree,
    the git index or a revision: workspace 'ok' | 'modified' | 'missing', cache 'ok' | 'missing'. ``scanned``:
    where a directory's files go when they had to be scanned (with the oids hashed meanwhile), for
    :func:`dir_changes` (the state cache's new rows are not readable before it is flushed). ``found``: where the oid
    of a modified file goes as far as it is known (the state cache's, or hashed meanwhile; None: not known), for
    :func:`cached_version`, so that the file is not looked at twice."""
    full = repo.check_inside(rel)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        st = None
    if p.kind == "dir" and st is not None and statmod.S_ISDIR(st.st_mode):
        # The no-op case, fastest: the files' stats are those last seen to make the pointer's manifest.
        # whether the cache holds the directory: asked while forked processes stat its files, when they do
        cached: list[bool] = []

        def ask() -> None:
            try:
                cached.append(dir_cached(repo, p.oid))
            except MvcError:  # (a damaged manifest): asked again where the answer is needed, to raise there
                pass

        def held() -> str:
            return "ok" if (cached[0] if cached else dir_cached(repo, p.oid)) else "missing"

        walked = Walk(full, ask)
        fp = walked.fingerprint()
        if fp is not None and repo.state.dir_oid(rel, fp[0]) == p.oid:
            return "ok", held()
        if fp is not None and walked.forked and scanned is None:
            got = _status_columns(repo, rel, p, walked, fp, held, progress)
            if got is not None:
                return got
        try:
            files = scan_dir(repo, rel, full, walked)
        except PathError:  # it holds what no manifest records (a FIFO, a name git owns): not what was added
            return "modified", held()
        if scanned is not None:
            scanned.update(files)
        todo = total(files.values())
        # a name no manifest can record, or a linked file, is judged against the manifest (_status_dir)
        if todo > HASH_FIRST or any(f.linked for f in files.values()) or any(map(not_utf8, files)):
            return _status_dir(repo, rel, p, files, progress)
        # Every file known from the state cache (the no-op case), or a few small ones not (the everyday edit),
        # hashed: if the manifest they make hashes to the pointer's oid, it *is* the manifest, and else the
        # directory is modified; either way the manifest is never read and parsed (100,000 entries: 0.5 s).
        bar = progress(f"checking {rel}", todo)
        try:
            for sub, f in files.items():
                hash_of(repo, f"{rel}/{sub}", f, bar)
        except (OSError, StorageError):  # unreadable, or gone: a change the manifest may show without reading it
            return _status_dir(repo, rel, p, files, progress)
        finally:
            bar.close()
        return _judged(repo, p, entries_of(repo, rel, files), held, lambda: remember_dir(repo, rel, files, p.oid))
    if p.kind == "dir":
        want = manifest_entries(repo, p)
        cache = "ok" if want is not None and not repo.odb.missing({e.oid for e in want.values()}) else "missing"
    else:
        cache = "ok" if repo.odb.exists(p.oid) else "missing"
    if st is None:
        return "missing", cache
    if p.kind == "dir" or not (statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode)):
        return "modified", cache
    if st.st_size != p.size and not statmod.S_ISLNK(st.st_mode):
        if found is not None:  # (the state cache is asked only for cached_version)
            found[rel] = repo.state.get(rel, st)
        return "modified", cache
    f = look(repo, rel, full, st, repo.state.get(rel, st))
    if p.executable and not f.linked and not f.executable:  # lost the execute bit the pointer records
        if found is not None:
            found[rel] = f.oid
        return "modified", cache
    bar = progress(f"checking {rel}", total([f]))
    try:
        oid = hash_of(repo, rel, f, bar)
    finally:
        bar.close()
    if oid == p.oid:
        return "ok", cache
    if found is not None:
        found[rel] = oid
    return "modified", cache


def cached_version(repo: Repo, p: ptrfmt.Pointer, oid: str | None) -> str | None:
    """oid, the version of a file the workspace holds as :func:`path_status` found it (its ``found``: the state
    cache's, or hashed then; nothing more is read), when it is not p's but one the cache holds: git put it back (a
    reset, a rebase, a stash) and mvc checkout did not run. None otherwise."""
    return oid if p.kind == "file" and oid is not None and oid != p.oid and repo.odb.exists(oid) else None


def _status_columns(
    repo: Repo,
    rel: str,
    p: ptrfmt.Pointer,
    walked: Walk,
    fp: tuple[str, bool],
    held: Callable[[], str],
    progress: progressmod.Factory,
) -> tuple[str, str] | None:
    """path_status of a directory of regular files whose numbers forked processes took (``walked``) but whose
    fingerprint the state cache does not know, judged from those numbers: the files the state cache vouches
    for are not made File objects; the others are hashed, and the manifest they all make compared with the
    pointer's oid by its hash, as path_status does. None when path_status must scan the directory instead:
    more than HASH_FIRST bytes to hash, a name no manifest can record, or a file to hash that cannot be read or
    is no longer a regular file of its own."""
    ino, mtime, ctime, size, mode = walked.columns()
    known = repo.state.under(rel)
    base = rel + "/"
    got: list[str | None] = []
    todo: list[int] = []
    for i, (sub, a, b, c, d) in enumerate(zip(walked.subs, ino, mtime, ctime, size, strict=True)):
        row = known.get(base + sub)
        if row is not None and row[0] == a and row[1] == b and row[2] == c and row[3] == d:
            got.append(row[4])
        else:
            got.append(None)
            todo.append(i)
    if sum(size[i] for i in todo) > HASH_FIRST or any(not_utf8(walked.subs[i]) for i in todo):
        return None
    bar = progress(f"checking {rel}", sum(size[i] for i in todo))
    try:
        for i in todo:
            st = os.lstat(walked.paths[i])
            if not statmod.S_ISREG(st.st_mode) or (st.st_nlink > 1 and not st.st_mode & 0o222):
                return None  # (no longer a regular file of its own)
            f = File(walked.paths[i], st, None)
            got[i] = hash_of(repo, base + walked.subs[i], f, bar)
            size[i], mode[i] = f.st.st_size, f.st.st_mode
    except (OSError, StorageError):  # unreadable, or gone: path_status reads the manifest
        return None
    finally:
        bar.close()
    new, entry = tuple.__new__, mf.Entry
    entries = [
        new(entry, (sub, oid, n, bool(m & 0o100))) for sub, oid, n, m in zip(walked.subs, got, size, mode, strict=True)
    ]

    def keep() -> None:
        if not todo:  # the state cache's rows hold the walk's numbers: the fingerprint is theirs
            remember(repo, rel, fp, p.oid)

    return _judged(repo, p, entries, held, keep)


def _judged(
    repo: Repo, p: ptrfmt.Pointer, entries: list[mf.Entry], held: Callable[[], str], keep: Callable[[], None]
) -> tuple[str, str]:
    """(workspace, cache) of a directory whose files make the manifest entries: modified unless that manifest
    hashes to the pointer's oid, so that it is never read; when it does, ``keep`` records what was seen, and the
    cache holds the directory when it holds the manifest and every object the entries name."""
    if oids.from_digest(fileio.hexdigest_bytes(mf.dumps(entries))) != p.oid:
        return "modified", held()
    keep()
    present = repo.odb.exists(p.oid) and not repo.odb.missing({e.oid for e in entries if e.oid})
    return "ok", "ok" if present else "missing"


def _status_dir(
    repo: Repo, rel: str, p: ptrfmt.Pointer, files: dict[str, File], progress: progressmod.Factory
) -> tuple[str, str]:
    want = manifest_entries(repo, p)
    cache = "ok" if want is not None and not repo.odb.missing({e.oid for e in want.values()}) else "missing"
    if want is not None and files.keys() != want.keys():
        return "modified", cache
    bar = progress(f"checking {rel}", total(files.values()))
    try:
        for sub, f in files.items():
            if want is not None and not f.linked and f.st.st_size != want[sub].size:
                return "modified", cache
            if f.oid is None:  # not in the state cache
                hash_of(repo, f"{rel}/{sub}", f, bar)
    finally:
        bar.close()
    if want is not None:
        same = all(
            f.oid == want[sub].oid and (f.linked or f.executable == want[sub].executable) for sub, f in files.items()
        )
    else:
        same = oids.from_digest(fileio.hexdigest_bytes(mf.dumps(entries_of(repo, rel, files)))) == p.oid
    if same and not any(f.linked for f in files.values()):
        remember_dir(repo, rel, files, p.oid)
    return ("ok" if same else "modified"), cache


def dir_changes(
    repo: Repo,
    rel: str,
    p: ptrfmt.Pointer,
    progress: progressmod.Factory = progressmod.null,
    files: dict[str, File] | None = None,
) -> dict[str, list[str]] | None:
    """The files of tracked directory rel that differ from its pointer p's manifest: {"added", "removed",
    "modified"}, each a sorted list of paths below rel; None when the cache lacks the manifest. ``files``: the
    directory as :func:`path_status` scanned it (else it is scanned here). A file of the manifest's size is
    hashed unless its oid is known (the scan's, or the state cache's); one of another size is modified unread."""
    want = manifest_entries(repo, p)
    if want is None:
        return None
    if not files:
        full = repo.check_inside(rel)
        files = scan_dir(repo, rel, full, lenient=True) if os.path.isdir(full) else {}
    same_size = {sub: f for sub, f in files.items() if sub in want and (f.linked or f.st.st_size == want[sub].size)}
    bar = progress(f"checking {rel}", total(same_size.values()))
    try:
        for sub, f in same_size.items():
            hash_of(repo, f"{rel}/{sub}", f, bar)
    finally:
        bar.close()
    modified = [
        sub
        for sub in files.keys() & want.keys()
        if sub not in same_size
        or same_size[sub].oid != want[sub].oid
        or (not same_size[sub].linked and same_size[sub].executable != want[sub].executable)
    ]
    return {
        "added": sorted(files.keys() - want.keys()),
        "removed": sorted(want.keys() - files.keys()),
        "modified": sorted(modified),
    }
