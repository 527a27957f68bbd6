"""Which earlier version a large file is pushed as deltas against (docs/FORMAT.md, "Chunked objects").

By default the previous version of the same tracked path: the newest commit reachable from HEAD whose
pointer at that path names another object the cache holds. ``mvc add --base REV`` records another
choice in the state cache, which comes first.
"""

from __future__ import annotations

from mvc.errors import MvcError
from mvc.format import pointer as ptrfmt
from mvc.format.pointer import SUFFIX
from mvc.repo.repository import Repo

HISTORY = 32  # commits of a path's history looked through for its previous version
MAX_BASES = 2


def previous(repo: Repo, path: str, oid: str, rev: str = "HEAD") -> list[str]:
    """Objects of versions of the tracked file path older than oid's (newest first) that the cache holds:
    from the commit before the newest one whose pointer names oid, or from rev when none does (oid is a
    version not committed yet). Never a newer version: deltas of an old version against its successor
    could close a cycle with the successor's own deltas."""
    prel = path + SUFFIX
    if "\n" in prel:  # cat-file --batch reads one name a line
        return []
    try:
        commits = repo.git.rev_list([rev], paths=[prel], limit=HISTORY)
        # one git cat-file for all of them (no pygit2 to load: a push of a new file looks here first);
        # a tree or a symlink at the path is no pointer and fails to parse
        blobs = repo.git.cat_objects(f"{commit}:{prel}" for commit in commits)
    except MvcError:
        return []
    versions: list[str] = []
    for commit in commits:
        data = blobs.get(f"{commit}:{prel}")
        if data is None:
            continue
        try:
            p = ptrfmt.loads(data, f"{prel} at {commit[:12]}")
        except MvcError:
            continue
        if p.kind == "file":
            versions.append(p.oid)
    if oid in versions:
        versions = versions[versions.index(oid) + 1 :]
    found: list[str] = []
    for v in versions:
        if v != oid and v not in found and repo.odb.exists(v):
            found.append(v)
            if len(found) >= MAX_BASES:
                break
    return found


def bases_for(repo: Repo, files: dict[str, str]) -> dict[str, list[str]]:
    """{oid: the versions to try as its delta base, best first} for files {oid: tracked path}."""
    out: dict[str, list[str]] = {}
    for oid, path in files.items():
        chosen = repo.state.base(oid)
        found = [chosen] if chosen and chosen != oid and repo.odb.exists(chosen) else []
        found += [b for b in previous(repo, path, oid) if b not in found]
        if found:
            out[oid] = found
    return out
