"""Which earlier version a large file is pushed as deltas against (docs/FORMAT.md, "Chunked objects").

By default the previous version of the same tracked path: the newest commit reachable from HEAD whose
pointer at that path names another object the cache holds; for a file of a tracked directory, the object
at the same relative path in an earlier manifest of that directory. ``mvc add --base REV`` records another
choice in the state cache, which comes first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mvc.errors import MvcError
from mvc.format import pointer as ptrfmt
from mvc.format.pointer import SUFFIX
from mvc.objects import manifest as mf
from mvc.repo.repository import Repo

if TYPE_CHECKING:
    from mvc.repo.selection import Wanted

HISTORY = 32  # commits of a path's history looked through for its previous version
MAX_BASES = 2


class _History:
    """The pointers of one tracked path in the commits that touched it (newest first), read once: one
    ``git rev-list`` and one ``git cat-file``; a directory's manifests parsed once each, from the cache only."""

    def __init__(self, repo: Repo, path: str, rev: str) -> None:
        self.repo = repo
        self.pointers: list[ptrfmt.Pointer] = []
        self._manifests: dict[str, dict[str, str] | None] = {}
        prel = path + SUFFIX
        if "\n" in prel:  # cat-file --batch reads one name a line
            return
        try:
            commits = repo.git.rev_list([rev], paths=[prel], limit=HISTORY)
            # one git cat-file for all of them (no pygit2 to load: a push of a new file looks here first);
            # a tree or a symlink at the path is no pointer and fails to parse
            blobs = repo.git.cat_objects(f"{commit}:{prel}" for commit in commits)
        except MvcError:
            return
        for commit in commits:
            data = blobs.get(f"{commit}:{prel}")
            if data is None:
                continue
            try:
                self.pointers.append(ptrfmt.loads(data, f"{prel} at {commit[:12]}"))
            except MvcError:
                continue

    def files(self) -> list[str]:
        """The objects of the path's file versions, newest first."""
        return [p.oid for p in self.pointers if p.kind == "file"]

    def manifests(self) -> list[dict[str, str]]:
        """{relative path: object} of each directory version whose manifest the cache holds, newest first
        (a manifest the cache lacks is passed over: never fetched for this)."""
        out = []
        for p in self.pointers:
            if p.kind != "dir":
                continue
            if p.oid not in self._manifests:
                try:
                    entries = mf.loads(self.repo.odb.read_bytes(p.oid), p.oid) if self.repo.odb.exists(p.oid) else None
                except (MvcError, OSError):
                    entries = None
                self._manifests[p.oid] = {e.path: e.oid for e in entries} if entries is not None else None
            m = self._manifests[p.oid]
            if m is not None:
                out.append(m)
        return out

    def inside(self, oid: str, rel: str | None) -> list[str | None]:
        """The objects at relative path rel (None: where the newest manifest holding oid has it) in the
        directory's versions, newest first (None where a version has no file there)."""
        manifests = self.manifests()
        if rel is None:
            rel = next((r for m in manifests for r, o in m.items() if o == oid), None)
            if rel is None:
                return []
        return [m.get(rel) for m in manifests]


def _older(repo: Repo, versions: list[str | None], oid: str) -> list[str]:
    """Of versions (newest first), those older than oid's that the cache holds: after the newest that is oid,
    or all when none is (oid is a version not committed yet). Never a newer version: deltas of an old version
    against its successor could close a cycle with the successor's own deltas."""
    if oid in versions:
        versions = versions[versions.index(oid) + 1 :]
    found: list[str] = []
    for v in versions:
        if v is not None and v != oid and v not in found and repo.odb.exists(v):
            found.append(v)
            if len(found) >= MAX_BASES:
                break
    return found


def previous(repo: Repo, path: str, oid: str, rev: str = "HEAD") -> list[str]:
    """Objects of versions of the tracked file path older than oid's (newest first) that the cache holds:
    from the commit before the newest one whose pointer names oid, or from rev when none does (oid is a
    version not committed yet)."""
    return _older(repo, list(_History(repo, path, rev).files()), oid)


def bases_for(repo: Repo, files: dict[str, str], inside: dict[str, str] | None = None) -> dict[str, list[str]]:
    """{oid: the versions to try as its delta base, best first} for files {oid: tracked path}. ``inside``:
    {oid: its relative path in the directory files[oid] names} for files of a tracked directory, where known
    (otherwise where the newest earlier manifest of that directory holding it has it)."""
    inside = inside or {}
    histories: dict[str, _History] = {}  # one history read per tracked path, however many of its files
    out: dict[str, list[str]] = {}
    for oid, path in files.items():
        chosen = repo.state.base(oid)
        found = [chosen] if chosen and chosen != oid and repo.odb.exists(chosen) else []
        h = histories.get(path)
        if h is None:
            h = histories[path] = _History(repo, path, "HEAD")
        versions: list[str | None] = list(h.files())
        in_dir = bool(h.pointers) and h.pointers[0].kind == "dir" and oid not in versions
        if oid in inside or in_dir:
            versions = h.inside(oid, inside.get(oid))
        found += [b for b in _older(repo, versions, oid) if b not in found]
        if found:
            out[oid] = found
    return out


def inside(wanted: Wanted, oids: Iterable[str]) -> dict[str, str]:
    """{oid: its relative path in the directory ``wanted.paths`` gives it} for those of oids that are files of a
    tracked directory whose manifest ``wanted`` read (``bases_for``'s ``inside``)."""
    want = {o: wanted.paths[o] for o in oids if o in wanted.paths}
    out: dict[str, str] = {}
    for moid, entries in wanted.entries.items():
        top = Repo.target_of(wanted.manifests[moid].partition(" at ")[0])
        for e in entries:
            if e.oid not in out and want.get(e.oid) == top:
                out[e.oid] = e.path
    return out
