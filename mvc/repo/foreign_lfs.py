"""git-lfs pointers in a commit's tree: which files are git-lfs pointers (a ``filter=lfs`` line of the
``.gitattributes`` files of that commit names them, and their blob parses as one), and, for the reads of old
revisions (``mvc/repo/foreign.py``), the mvc pointers they were imported as (docs/FORMAT.md, "Imported
history")."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mvc.errors import PointerError
from mvc.format import config as cfgfmt
from mvc.format import lfspointer as lfs
from mvc.format import pointer as ptrfmt
from mvc.format.config import MVC_DIR

if TYPE_CHECKING:  # not imported: repository.py calls foreign.py, which calls this module
    from mvc.repo.repository import Repo

ATTRIBUTES = ".gitattributes"


class Tree:
    """A commit's blobs as ``git ls-tree -r -l`` lists them: {path: (blob id, size)}, regular files only."""

    __slots__ = ("blobs",)

    def __init__(self, repo: Repo, commit: str):
        out = repo.git.run("ls-tree", "-r", "-l", "-z", "--full-tree", commit)
        self.blobs: dict[str, tuple[str, int]] = {}
        for rec in out.split(b"\0"):
            meta, _, path = rec.partition(b"\t")
            parts = meta.split()
            if len(parts) == 4 and parts[1] == b"blob" and parts[0] in (b"100644", b"100755") and parts[3].isdigit():
                self.blobs[path.decode("utf-8", "surrogateescape")] = (parts[2].decode(), int(parts[3]))


def rules_of(repo: Repo, tree: Tree) -> list[lfs.Rule]:
    """The filter lines of every .gitattributes in the tree, shallower files first (deeper ones win)."""
    names = sorted((p for p in tree.blobs if p.rpartition("/")[2] == ATTRIBUTES), key=lambda p: p.count("/"))
    texts = repo.git.cat_objects(tree.blobs[p][0] for p in names)
    out: list[lfs.Rule] = []
    for p in names:
        out += lfs.rules(texts.get(tree.blobs[p][0]) or b"", p.rpartition("/")[0])
    return out


def lfs_files(repo: Repo, tree: Tree, all_rules: list[lfs.Rule]) -> dict[str, bytes]:
    """{path: blob bytes} of the small blobs the git-lfs filter covers (pointers, valid or not, to parse)."""
    small = {
        p: bid
        for p, (bid, size) in tree.blobs.items()
        if size < lfs.MAX_POINTER and p.rpartition("/")[2] != ATTRIBUTES and lfs.lfs_filtered(p, all_rules)
    }
    data = repo.git.cat_objects(small.values())
    return {p: b for p, bid in small.items() if (b := data.get(bid)) is not None and lfs.looks_like(b)}


def imported_doc(repo: Repo) -> dict[str, Any]:
    """The whole of ``.mvc/imported.toml`` in the work tree, every importer's tables ({} before any import)."""
    try:
        with open(os.path.join(repo.mvc_dir, lfs.IMPORTED), "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return {}
    return cfgfmt.loads(raw, f"{MVC_DIR}/{lfs.IMPORTED}")


def imported_map(repo: Repo) -> dict[str, tuple[str, int]]:
    """{sha256: (oid, size)} of the ``[lfs.sha256]`` table of ``.mvc/imported.toml``."""
    return lfs.imported(imported_doc(repo), f"{MVC_DIR}/{lfs.IMPORTED}")


def pointers_at(repo: Repo, commit: str, table: dict[str, Any] | None = None) -> dict[str, bytes]:
    """{PATH.mvc: mvc pointer bytes} for each git-lfs pointer in commit's tree whose content the map names
    (with the same size). Pointers that do not parse, paths mvc never tracks and content never imported are
    left out: they are not versions mvc can read. ``table``: the map's ``lfs`` table as ``foreign.py`` read it
    (default: read from the work tree's ``.mvc/imported.toml``)."""
    where = f"{MVC_DIR}/{lfs.IMPORTED}"
    known = imported_map(repo) if table is None else lfs.imported({"lfs": table}, where)
    if not known:
        return {}
    tree = Tree(repo, commit)
    all_rules = rules_of(repo, tree)
    if not any(r.lfs for r in all_rules):
        return {}
    found = {}
    for path, data in lfs_files(repo, tree, all_rules).items():
        try:
            p = lfs.loads(data, path)
        except PointerError:
            continue
        hit = known.get(p.sha256)
        if hit is None or hit[1] != p.size or repo.untrackable(path) is not None:
            continue
        found[path + ptrfmt.SUFFIX] = ptrfmt.dumps(ptrfmt.Pointer("file", hit[0], hit[1], None))
    return found
