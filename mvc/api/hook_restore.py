"""What post-checkout and post-merge do: bring the workspace in line with the pointers that changed,
through the checkout API without force, fetching what the cache lacks from the default remote. A
pointer whose tracked path mvc never writes is reported as failed, never followed; the others proceed.
"""

from __future__ import annotations

import os
from typing import Any

from mvc import progress as progressmod
from mvc.errors import MvcError, ObjectMissing, RemoteError
from mvc.git import POINTER_GLOB
from mvc.repo.repository import Repo, in_quotes, open_repo, quoted
from mvc.repo.repository import shell_quoted as _q


def _null(sha: str) -> bool:
    return not sha.strip("0")


def _fetch_fix(repo: Repo, verb: str, rel: str) -> str:
    from mvc.repo.remotes import fetch_fix  # not at the top: remotes load the stores

    return fetch_fix(repo, in_quotes(f"mvc {verb} {_q(rel)}"))


def post_checkout(
    prev: str,
    new: str,
    branch: bool = True,
    *,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> list[dict[str, Any]]:
    """After ``git checkout``/``switch`` of a commit (branch is git's flag; file checkouts do nothing)."""
    if not branch:
        return []
    repo = open_repo(repo)
    old = None if _null(prev) else prev
    return sync(repo.git.diff_names(old, new, POINTER_GLOB) if old else None, old, repo=repo, progress=progress)


def post_merge(*, repo: Repo | None = None, progress: progressmod.Factory = progressmod.null) -> list[dict[str, Any]]:
    """After ``git merge``/``pull`` (squash merges too): pointers changed since ORIG_HEAD."""
    repo = open_repo(repo)
    old = repo.git.peel_commits(["ORIG_HEAD"]).get("ORIG_HEAD")
    return sync(repo.git.diff_names(old, None, POINTER_GLOB) if old else None, old, repo=repo, progress=progress)


def sync(
    changes: list[tuple[str, str]] | None,
    old: str | None,
    *,
    repo: Repo,
    progress: progressmod.Factory = progressmod.null,
) -> list[dict[str, Any]]:
    """Make the workspace match the pointers in ``changes`` ((status, pointer relpath); None: every pointer).

    Files are restored through the checkout API without force, so modified content is never replaced
    (reported instead); objects missing from the cache are fetched from the default remote. The file of
    a pointer that is gone is removed only when the cache holds exactly its content. Per path:
    {path, action: restored/unchanged/removed/kept/failed, error?}.
    """
    if changes is None:
        changes = [("A", p) for p in repo.git.ls_pointers()]
    if not changes:
        return []
    refused, kept = [], []
    for status, prel in changes:
        try:
            repo.check_pointer(prel, old if status == "D" else None)
        except MvcError as e:  # never followed; the message names the pointer and the fix
            refused.append({"path": quoted(Repo.target_of(prel)), "action": "failed", "error": str(e)})
            continue
        kept.append((status, prel))
    changes = kept
    present = [p for s, p in changes if s != "D" and os.path.isfile(repo.abs(p))]
    gone = [p for s, p in changes if s == "D"]
    try:
        results = refused + (_remove_stale(repo, gone, old) if gone and old else [])
        results += _restore(repo, [Repo.target_of(p) for p in present], progress)
    finally:
        repo.state.flush()
    return results


def _restore(repo: Repo, rels: list[str], progress: progressmod.Factory) -> list[dict[str, Any]]:
    from mvc.api import checkout as checkoutmod

    if not rels:
        return []
    try:  # one call for the usual case; one per path only to tell failures apart
        done = checkoutmod.checkout([repo.abs(r) for r in rels], repo=repo, progress=progress)
        return [{"path": r["path"], "action": r["action"]} for r in done]
    except MvcError:
        pass
    results, missing = [], []
    for rel in rels:
        try:
            r = checkoutmod.checkout([repo.abs(rel)], repo=repo, progress=progress)[0]
            results.append({"path": rel, "action": r["action"]})
        except ObjectMissing as e:
            if isinstance(e, RemoteError):  # checkout asked the default remote already: it lacks them
                results.append({"path": rel, "action": "failed", "error": str(e)})
            else:
                missing.append(rel)
        except MvcError as e:
            results.append({"path": rel, "action": "failed", "error": str(e)})
    if missing:
        results.extend(_fetch_and_restore(repo, missing, progress))
    return results


def _fetch_and_restore(repo: Repo, rels: list[str], progress: progressmod.Factory) -> list[dict[str, Any]]:
    from mvc.api import checkout as checkoutmod
    from mvc.api import sync
    from mvc.repo.remotes import default_remote

    name = default_remote(repo)
    if name is None:
        why = "its weights are not in the cache: re-add the file with 'mvc add {}' where it exists, or {}"
        return [{"path": r, "action": "failed", "error": why.format(_q(r), _fetch_fix(repo, "pull", r))} for r in rels]
    try:
        sync.fetch([repo.abs(r) for r in rels], remote=name, repo=repo, progress=progress)
    except MvcError:
        pass  # some may have come; each path reports its own outcome below
    results = []
    for rel in rels:
        try:
            r = checkoutmod.checkout([repo.abs(rel)], repo=repo, progress=progress)[0]
            results.append({"path": rel, "action": r["action"]})
        except ObjectMissing:
            results.append(
                {
                    "path": rel,
                    "action": "failed",
                    "error": (
                        f"its weights are neither in the cache nor on the mvc remote {name!r}: push them from the "
                        f"machine that added them ('mvc push'), then run {in_quotes('mvc pull ' + _q(rel))}"
                    ),
                }
            )
        except MvcError as e:
            results.append({"path": rel, "action": "failed", "error": str(e)})
    return results


def _remove_stale(repo: Repo, gone: list[str], old: str) -> list[dict[str, Any]]:
    """Remove the files of pointers the new commit no longer has, when the cache can give them back."""
    from mvc.repo.pathstatus import path_status
    from mvc.repo.selection import load_pointer

    targets = [Repo.target_of(p) for p in repo.git.ls_pointers()]
    old_bytes = repo.git.cat_objects(f"{old}:{p}" for p in gone)
    results = []
    for prel in gone:
        rel = Repo.target_of(prel)
        full = repo.abs(rel)
        if not os.path.lexists(full):
            continue
        if any(t == rel or t.startswith(rel + "/") or rel.startswith(t + "/") for t in targets):
            continue  # another pointer now covers this path: its checkout takes care of it
        data = old_bytes.get(f"{old}:{prel}")
        try:
            if data is None or repo.git.tracked([rel]):
                continue  # git owns the path now
            p = load_pointer(repo, prel, data)
            ws, cache = path_status(repo, rel, p)
        except MvcError:
            ws, cache = "modified", "missing"
        if ws == "ok" and cache == "ok":
            if os.path.isdir(full) and not os.path.islink(full):
                import shutil

                shutil.rmtree(full)
            else:
                os.unlink(full)
            results.append({"path": rel, "action": "removed"})
        else:
            results.append(
                {
                    "path": rel,
                    "action": "kept",
                    "error": (
                        "no longer tracked at this commit, and it differs from the last version mvc stored, so it was "
                        f"left in place: {in_quotes('mvc add ' + _q(rel))} keeps it, or delete it by hand"
                    ),
                }
            )
    return results
