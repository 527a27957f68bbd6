"""``mvc gc --user-cache``: what reads without a clone left in the user's cache (docs/FORMAT.md, "The user's
cache") and no read used for the grace period: the copies ``mvc.materialize`` wrote (``models/OID/``), the
objects ``--cache`` kept (``cache/objects/``), and the git metadata of repositories read by URL
(``repos/KEY/``), and the records of ``written/`` whose copy is gone or changed (what ``mvc get --force`` relies
on: a record that still serves is kept). A dry run unless ``force``. Everything else there is fetched again
when a read needs it, so nothing is lost; the journal is kept.

Last use: a materialized copy's and a repository's directory is touched by every read that uses it; an object
of ``cache/`` counts its last access as the file system records it (``relatime``: at most a day late; on a
``noatime`` mount, the time it was written).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat as statmod
import time
from collections.abc import Callable
from typing import Any

from mvc.api.gc import GRACE, parse_grace
from mvc.objects import oid as oids
from mvc.repo import upstream
from mvc.storage import lock, tempfiles

KINDS = ("models", "cache", "repos")


def collect(*, force: bool = False, grace: str = GRACE) -> dict[str, Any]:
    """Returns {"root", "dry_run", "grace", "groups": [{"what", "entries", "bytes"}], "entries", "bytes", "kept"}:
    per kind, what went (or would go) and its bytes; ``kept``: entries used within the grace period."""
    seconds = parse_grace(grace)
    root = upstream.cache_root()
    before = time.time() - seconds
    groups: list[dict[str, Any]] = []
    kept = 0
    for kind, entries in (
        ("materialized copies (models/)", _dirs(os.path.join(root, "models"), oids.is_oid)),
        ("objects kept by --cache (cache/)", _objects(os.path.join(root, "cache"))),
        ("git metadata of repositories read by URL (repos/)", _dirs(os.path.join(root, "repos"), _repo_key)),
        (
            "records of copies mvc get wrote that are gone or changed (written/)",
            _records(os.path.join(root, "written")),
        ),
    ):
        n = size = 0
        for path, used in entries:
            if used >= before:
                kept += 1
                continue
            got = _size(path)
            if force and not _remove(path, before, kind):
                kept += 1
                continue
            n += 1
            size += got
        if n:
            groups.append({"what": kind, "entries": n, "bytes": size})
    return {
        "root": root,
        "dry_run": not force,
        "grace": grace,
        "groups": groups,
        "entries": sum(g["entries"] for g in groups),
        "bytes": sum(g["bytes"] for g in groups),
        "kept": kept,
    }


def _repo_key(name: str) -> bool:
    return len(name) == 20 and all(c in "0123456789abcdef" for c in name)


def _dirs(top: str, ours: Callable[[str], bool]) -> list[tuple[str, float]]:
    """(path, last use) of the directories of top named as mvc names them (``models/OID``, ``repos/KEY``): nothing
    else there is mvc's to delete (MVC_CACHE_DIR may name a directory that holds other things too)."""
    out = []
    with contextlib.suppress(OSError):
        for e in os.scandir(top):
            if not ours(e.name):
                continue
            with contextlib.suppress(OSError):
                st = e.stat(follow_symlinks=False)
                if statmod.S_ISDIR(st.st_mode):
                    out.append((e.path, st.st_mtime))
    return out


def _records(top: str) -> list[tuple[str, float]]:
    """(path, last use) of the records of ``written/`` (named as mvc names them): a record that still serves a
    copy at its OUT counts as used now (kept); a stale one, as of its last write."""
    from mvc.api import outputs

    out: list[tuple[str, float]] = []
    now = time.time()
    with contextlib.suppress(OSError):
        for e in os.scandir(top):
            if len(e.name) != 32 or any(c not in "0123456789abcdef" for c in e.name):
                continue
            with contextlib.suppress(OSError):
                st = e.stat(follow_symlinks=False)
                if statmod.S_ISREG(st.st_mode):
                    out.append((e.path, st.st_mtime if outputs.record_is_stale(e.path) else now))
    return out


def _unrecord(path: str, before: float) -> bool:
    """Delete a stale record under the lock its writers take, unless a get wrote it since it was looked at."""
    try:
        with lock.locked(os.path.join(os.path.dirname(path), "lock"), "the record of copies mvc get wrote"):
            if os.stat(path).st_mtime >= before:
                return False
            os.unlink(path)
    except OSError:
        return False
    return True


def _objects(cache: str) -> list[tuple[str, float]]:
    """(path, last use) of the object files of the cache at ``cache``, named by their oids; none unless it holds
    mvc's layout marker (it is mvc's cache)."""
    from mvc.objects import layout

    out: list[tuple[str, float]] = []
    if not os.path.isfile(os.path.join(cache, layout.MARKER)):
        return out
    with contextlib.suppress(OSError):
        for fan in os.scandir(os.path.join(cache, "objects")):
            if len(fan.name) != 2 or not fan.is_dir(follow_symlinks=False):
                continue
            for e in os.scandir(fan.path):
                if oids.from_relpath(f"{fan.name}/{e.name}") is None:
                    continue
                with contextlib.suppress(OSError):
                    st = e.stat(follow_symlinks=False)
                    if statmod.S_ISREG(st.st_mode):
                        out.append((e.path, max(st.st_mtime, st.st_atime)))
    return out


def _size(path: str) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not statmod.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    for d, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(d, name)).st_size
    return total


def _remove(path: str, before: float, kind: str) -> bool:
    """Delete one entry unless a read used it since it was looked at; a directory is first renamed aside (a
    reader never sees half of it). A repository's is taken under the lock its fetches hold."""
    if kind.startswith("records"):
        return _unrecord(path, before)
    repos = kind.startswith("git")
    try:
        if not os.path.isdir(path):
            os.unlink(path)
            return True
        held = os.path.join(path, "mvc.lock")  # (taken where a fetch made it: making it would date the entry now)
        ctx = lock.locked(held, f"the cache {path}") if repos and os.path.exists(held) else contextlib.nullcontext()
        with ctx:
            if os.stat(path).st_mtime >= before:  # used meanwhile
                return False
            if tempfiles.being_written(path):  # a read writing its copy there now (with --grace 0, say)
                return False
            aside = f"{path}.gc{os.getpid()}"
            os.rename(path, aside)
    except OSError:
        return False
    _rmtree(aside)
    return True


def _rmtree(path: str) -> None:
    def writable(func: Any, p: str, _: Any) -> None:  # a materialized copy is read-only, its directories too
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)

    shutil.rmtree(path, onerror=writable)
