"""The git-lfs objects ``mvc import-lfs`` stores: found in ``.git/lfs/objects``, the work tree (where git-lfs
smudged them) or what ``git lfs fetch`` brings, and checked against their pointer's sha256 and size. An object
none of them holds is refused with git-lfs's own reason (the LFS server lacks it, say) and the way forward."""

from __future__ import annotations

import hashlib
import os

from mvc import progress as progressmod
from mvc.errors import CorruptObject, GitError, ObjectMissing
from mvc.format import lfspointer as lfs
from mvc.repo.repository import Repo, in_quotes, shell_quoted
from mvc.storage import fileio

# what git-lfs says of an object its server does not have (the file transfer's, then the batch API's words)
_NOT_ON_SERVER = ("missing object", "does not exist", "not found", "[404]")


class Item:
    """A git-lfs pointer to import (at HEAD, or a version of older revisions) and where its content is."""

    __slots__ = ("oid", "path", "ptr", "source", "src")

    def __init__(self, path: str, ptr: lfs.LfsPointer):
        self.path, self.ptr = path, ptr
        self.src: str | None = None  # the file holding the content, once located
        self.source = ""  # where it came from: "lfs" (.git/lfs/objects), "worktree", "fetched"
        self.oid = ""


def lfs_dir(repo: Repo) -> str:
    common = repo.git.run("rev-parse", "--git-common-dir").decode().strip()
    return os.path.join(repo.root, common, "lfs", "objects")


def stored(objects: str, sha: str) -> str:
    return os.path.join(objects, sha[:2], sha[2:4], sha)


def locate(repo: Repo, items: list[Item], fetch: bool) -> None:
    """Point each item at a file that should hold its content: git-lfs's store first, then the work tree,
    then what ``git lfs fetch`` brings. Refuses (one line) when an item's content is in none of them."""
    objects = lfs_dir(repo)
    for it in items:
        at = stored(objects, it.ptr.sha256)
        if os.path.isfile(at) and os.path.getsize(at) == it.ptr.size:
            it.src, it.source = at, "lfs"
    missing = [it for it in items if it.src is None]
    said = ""  # what 'git lfs fetch' printed on stderr, when it failed
    installed = True
    if missing and fetch:
        import shutil

        installed = shutil.which("git-lfs") is not None
        if installed:
            # the include list is a comma-separated list of patterns: escape what they would read as special
            include = ",".join("".join("\\" + c if c in "*?[]\\," else c for c in it.path) for it in missing)
            try:
                repo.git.run("lfs", "fetch", f"--include={include}", "--exclude=")
            except GitError as e:
                said = getattr(e, "stderr", "") or str(e)
        for it in missing:
            at = stored(objects, it.ptr.sha256)
            if os.path.isfile(at):
                it.src, it.source = at, "fetched"
    lacking = [it for it in items if it.src is None]
    if lacking:
        raise ObjectMissing(_why_missing(lacking, fetch, installed, said, len(items)))


def _why_missing(lacking: list[Item], fetch: bool, installed: bool, said: str, total: int) -> str:
    """The one line that refuses the import: the first object missing, git-lfs's reason, the way forward."""
    it = lacking[0]
    more = f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else ""
    what = f"{it.path}{more}: the git-lfs object sha256:{it.ptr.sha256} is not in .git/lfs/objects"
    if not fetch:
        return (
            f"{what} and it was not fetched (--no-fetch): run the import without --no-fetch, or 'git lfs fetch' first"
        )
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    reason = next((line for line in lines if it.ptr.sha256 in line), "").replace(
        it.ptr.sha256, it.ptr.sha256[:12] + "…"
    )
    if reason and any(w in reason.lower() for w in _NOT_ON_SERVER):
        paths = " ".join(shell_quoted(x.path) for x in lacking)
        others = (
            "import the other files with 'mvc import-lfs PATH...' (leaving these to git-lfs), or "
            if total > len(lacking)
            else ""
        )
        return (
            f"{what} and the LFS server does not have it ('git lfs fetch' says: {reason[:200]}): {others}remove "
            f"or replace the pointer ({in_quotes('git rm ' + paths)}, then commit) and run the import again"
        )
    if reason or lines:
        return (
            f"{what} and 'git lfs fetch' could not get it (it says: {(reason or lines[-1])[:200]}): fix that (check "
            "'git lfs env' and the lfs remote), then retry"
        )
    if not installed:
        return f"{what} and git-lfs is not installed to fetch it: install git-lfs, then retry"
    return f"{what} and 'git lfs fetch' did not bring it: check 'git lfs env' and the lfs remote, then retry"


def verify(it: Item, progress: progressmod.Factory) -> None:
    """Refuse an item whose content does not hash to its pointer's sha256 and size."""
    assert it.src is not None
    h = hashlib.sha256()
    n = 0
    bar = progress(f"checking {it.path}", it.ptr.size)
    try:
        with open(it.src, "rb") as fh:
            while chunk := fh.read(fileio.CHUNK if it.ptr.size > fileio.SMALL else fileio.SMALL):
                h.update(chunk)
                n += len(chunk)
                bar.update(len(chunk))
    finally:
        bar.close()
    if n != it.ptr.size or h.hexdigest() != it.ptr.sha256:
        where = "the work tree file" if it.source == "worktree" else it.src
        raise CorruptObject(
            f"{it.path}: {where} does not match its git-lfs pointer (sha256 {it.ptr.sha256[:12]}…, {it.ptr.size} "
            f"bytes): delete it and run 'git lfs fetch' again"
        )
