"""What is tracked, read only: ``mvc status`` (each tracked path against its pointer) and ``mvc ls`` (the pointers of
the work tree or of a revision)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mvc import progress as progressmod
from mvc.errors import ConflictedPointer, PathError
from mvc.format import pointer as ptrfmt
from mvc.repo.pathstatus import cached_version, dir_changes, path_status
from mvc.repo.repository import Repo, open_repo
from mvc.repo.selection import load_pointer, refuse_a_model_name, select, user_paths
from mvc.repo.worktree import File


# -- status -----------------------------------------------------------------------------------
def status(
    paths: Iterable[str] = (),
    *,
    files: bool = False,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> list[dict[str, Any]]:
    """Per tracked path: workspace 'ok' | 'modified' | 'missing', cache 'ok' | 'missing'; a pointer a merge left
    unmerged (conflict markers, or a modify/delete conflict) is workspace 'conflicted' (kind, oid, size and cache
    None; "pointer" its file; "unmerged": False when no merge left it so: its markers were committed). ``files``: a
    modified directory's row also says which of its files changed, under "files" ({"added", "removed",
    "modified"}: paths below it; None when the cache lacks its manifest)."""
    repo = open_repo(repo)
    out: list[dict[str, Any]] = []
    try:
        in_dir = "see which of its files changed with 'mvc status {dir} --files'"
        for prel in _selected(repo, user_paths(paths), in_dir):
            rel = Repo.target_of(prel)
            try:
                p = load_pointer(repo, prel)
                if prel in repo.git.unmerged:  # unmerged without markers (modify/delete): conflicted all the same
                    raise ConflictedPointer(prel)
            except ConflictedPointer:  # mid-merge, as git status lists it (or markers committed): the rows go on
                unmerged = prel in repo.git.unmerged
                none = dict.fromkeys(("kind", "oid", "size", "cache"))
                out.append({"path": rel, **none, "workspace": "conflicted", "pointer": prel, "unmerged": unmerged})
                continue
            scanned: dict[str, File] = {}
            found: dict[str, str | None] = {}
            ws, cache = path_status(repo, rel, p, progress, scanned if files else None, found)
            row: dict[str, Any] = {
                "path": rel,
                "kind": p.kind,
                "oid": p.oid,
                "size": p.size,
                "workspace": ws,
                "cache": cache,
            }
            if ws == "modified" and (other := cached_version(repo, p, found.get(rel))) is not None:
                row["other"] = other  # another version the cache holds: git put it back, mvc checkout did not run
            if files and p.kind == "dir" and ws == "modified":
                row["files"] = dir_changes(repo, rel, p, progress, scanned)
            out.append(row)
    finally:
        repo.state.flush()
    return out


def _selected(repo: Repo, paths: list[str], in_dir: str) -> list[str]:
    try:
        return select(repo, paths, repo.git.ls_pointers(), in_dir=in_dir)
    except PathError:
        refuse_a_model_name(repo, paths, "status")
        raise


# -- ls --------------------------------------------------------------------------------------
def describe(prel: str, p: ptrfmt.Pointer) -> dict[str, Any]:
    d: dict[str, Any] = {"path": Repo.target_of(prel), "kind": p.kind, "size": p.size, "oid": p.oid}
    if p.kind == "dir":
        d["nfiles"] = p.nfiles
    if p.meta:
        d["meta"] = p.meta
    return d


def ls(*, rev: str | None = None, repo: Repo | None = None) -> list[dict[str, Any]]:
    """Tracked paths with kind, size and oid, in the work tree or at a revision. At a revision, a path whose DVC or
    git-lfs version there the import could not bring in is listed too, kind, size and oid None, with
    ``not_imported`` (the tool's version id) and ``error`` (why, and the way to import it)."""
    repo = open_repo(repo)
    if rev is None:
        return [describe(prel, load_pointer(repo, prel)) for prel in repo.git.ls_pointers()]
    commit = repo.resolve(rev)
    at_rev = repo.pointers_at_commit(commit)
    rows = [(prel, describe(prel, load_pointer(repo, prel, data))) for prel, data in at_rev.items()]
    return in_order(rows + not_imported(repo, commit, rev, at_rev))


def not_imported(repo: Any, commit: str, rev: str, at_rev: dict[str, bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(PATH.mvc, its row) of each path of ``foreign.unimported_beside``: kind, size and oid None, ``not_imported``
    the tool's version id, ``error`` why (``repo``: a Repo, or a repository read by URL, ``upstream.AsRepo``)."""
    from mvc.repo import foreign

    rows = []
    for path, version in foreign.unimported_beside(repo, commit, at_rev).items():
        error = str(foreign.not_imported(repo, path, rev, version))
        row = {"path": path, "kind": None, "size": None, "oid": None, "not_imported": version, "error": error}
        rows.append((path + ptrfmt.SUFFIX, row))
    return rows


def in_order(rows: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows of ``ls``, by pointer path."""
    return [row for _, row in sorted(rows, key=lambda r: r[0])]
