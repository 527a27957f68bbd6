"""git-lfs pointers in a commit's tree: which files are git-lfs pointers (a ``filter=lfs`` line of the
``.gitattributes`` files of that commit names them, and their blob parses as one), and, for the reads of old
revisions (``mvc/repo/foreign.py``), the mvc pointers they were imported as (docs/FORMAT.md, "Imported
history"). Those of a whole history (the import's scan, the pre-push hook) are found in one pass
(:func:`lfs_history`), not a ``git ls-tree`` per commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from mvc.errors import PointerError
from mvc.format import config as cfgfmt
from mvc.format import lfspointer as lfs
from mvc.format import pointer as ptrfmt
from mvc.format.config import MVC_DIR
from mvc.repo import foreign

if TYPE_CHECKING:  # not imported: repository.py calls foreign.py, which calls this module
    from mvc.repo.repository import Repo

ATTRIBUTES = ".gitattributes"
REGULAR = ("100644", "100755")  # the modes of a file's blob (not a symlink, not a submodule)


class Tree:
    """A commit's blobs as ``git ls-tree -r -l`` lists them: {path: (blob id, size)}, regular files only."""

    __slots__ = ("blobs", "commit")

    def __init__(self, repo: Repo, commit: str):
        self.commit = commit
        out = repo.git.run("ls-tree", "-r", "-l", "-z", "--full-tree", commit)
        self.blobs: dict[str, tuple[str, int]] = {}
        for rec in out.split(b"\0"):
            meta, _, path = rec.partition(b"\t")
            parts = meta.split()
            if len(parts) == 4 and parts[1] == b"blob" and parts[0] in (b"100644", b"100755") and parts[3].isdigit():
                self.blobs[path.decode("utf-8", "surrogateescape")] = (parts[2].decode(), int(parts[3]))

    def attributes(self) -> dict[str, str]:
        """{path: blob id} of the tree's .gitattributes files."""
        return {p: bid for p, (bid, _) in self.blobs.items() if _is_attributes(p)}


def _is_attributes(path: str) -> bool:
    return path.rpartition("/")[2] == ATTRIBUTES


def _rules(attributes: dict[str, str], texts: dict[str, bytes | None]) -> list[lfs.Rule]:
    """The filter lines of .gitattributes files ({path: blob id}, their texts by blob id), shallower files first
    (deeper ones win)."""
    out: list[lfs.Rule] = []
    for p in sorted(attributes, key=lambda p: (p.count("/"), p)):
        out += lfs.rules(texts.get(attributes[p]) or b"", p.rpartition("/")[0])
    return out


def rules_of(repo: Repo, tree: Tree) -> list[lfs.Rule]:
    """The filter lines of every .gitattributes in the tree, shallower files first (deeper ones win)."""
    attributes = tree.attributes()
    repo.git.need_blobs(tree.commit, list(attributes.values()))  # (read by URL: fetched first)
    return _rules(attributes, repo.git.cat_objects(attributes.values()))


def _covered(path: str, all_rules: list[lfs.Rule]) -> bool:
    return not _is_attributes(path) and lfs.lfs_filtered(path, all_rules)


def plain_files(tree: Tree, all_rules: list[lfs.Rule], pointers: dict[str, bytes]) -> list[str]:
    """The files a git-lfs filter line names that git holds as plain blobs, not pointers (committed where git-lfs
    was not installed): not imported, and said so."""
    return sorted(p for p in tree.blobs if p not in pointers and _covered(p, all_rules))


def lfs_files(repo: Repo, tree: Tree, all_rules: list[lfs.Rule]) -> dict[str, bytes]:
    """{path: blob bytes} of the small blobs the git-lfs filter covers (pointers, valid or not, to parse)."""
    return _small_pointers(repo, tree, lambda p: _covered(p, all_rules))


def uncovered_pointers(repo: Repo, tree: Tree, all_rules: list[lfs.Rule]) -> dict[str, bytes]:
    """{path: blob bytes} of the small blobs no git-lfs filter covers that parse, strictly, as git-lfs pointers: what
    a branch from before ``mvc import-lfs``, merged after it, brings (its file, under a line the import removed)."""
    found = _small_pointers(repo, tree, lambda p: not _is_attributes(p) and not lfs.lfs_filtered(p, all_rules))
    out = {}
    for p, b in found.items():
        try:
            lfs.loads(b, p)
        except PointerError:
            continue
        out[p] = b
    return out


def _small_pointers(repo: Repo, tree: Tree, keep: Callable[[str], bool]) -> dict[str, bytes]:
    """{path: blob bytes} of tree's blobs small enough to be git-lfs pointers, at the paths keep takes, that look
    like one (one git process reads them all)."""
    small = {p: bid for p, (bid, size) in tree.blobs.items() if size < lfs.MAX_POINTER and keep(p)}
    repo.git.need_blobs(tree.commit, list(small.values()))  # (read by URL: fetched first)
    data = repo.git.cat_objects(small.values())
    return {p: b for p, bid in small.items() if (b := data.get(bid)) is not None and lfs.looks_like(b)}


def lfs_history(repo: Repo, commits: Iterable[str]) -> dict[tuple[str, str], tuple[str, bytes]]:
    """{(path, blob id): (a commit that has it, blob bytes)} of what :func:`lfs_files` finds in the trees of all
    commits, in a few git processes whatever their number: one ``git log`` lists what each commit changed against
    its first parent, and only the changed files are looked at; a commit is listed whole (``git ls-tree``) only
    when that cannot tell: its first parent is not among commits (a root, the oldest of a range), or it changed a
    .gitattributes (its rules may now cover files it did not change). Exact: a file a commit did not change is
    in its first parent's tree, under the same rules."""
    changes = _changes(repo, list(dict.fromkeys(commits)))
    parent = {c: p for c, p, _ in changes}
    whole = {
        c: Tree(repo, c) for c, p, changed in changes if p not in parent or any(_is_attributes(f[0]) for f in changed)
    }
    texts = repo.git.cat_objects({bid for t in whole.values() for bid in t.attributes().values()})
    rules = {c: _rules(t.attributes(), texts) for c, t in whole.items()}
    found = {
        (p, bid): c
        for c, t in whole.items()
        for p, (bid, size) in t.blobs.items()
        if size < lfs.MAX_POINTER and _covered(p, rules[c])
    }
    unsized = _changed_covered(changes, _anchors(parent, whole), rules, found)
    sizes = repo.git.object_sizes(bid for _, bid in unsized)
    found.update({k: c for k, c in unsized.items() if (sizes.get(k[1]) or lfs.MAX_POINTER) < lfs.MAX_POINTER})
    data = repo.git.cat_objects(bid for _, bid in found)
    return {k: (c, b) for k, c in found.items() if (b := data.get(k[1])) is not None and lfs.looks_like(b)}


def _changed_covered(
    changes: list[tuple[str, str | None, list[tuple[str, str, str]]]],
    anchor: dict[str, str],
    rules: dict[str, list[lfs.Rule]],
    found: dict[tuple[str, str], str],
) -> dict[tuple[str, str], str]:
    """{(path, blob id): commit} of the files the commits not listed whole changed that the git-lfs filter covers
    (under the rules of their anchor, :func:`_anchors`) and found does not hold yet."""
    covered: dict[tuple[str, str], bool] = {}  # (path, anchor) -> _covered: one path changes in many commits
    out: dict[tuple[str, str], str] = {}
    for c, _, changed in changes:
        a = anchor[c]
        if a == c:  # listed whole
            continue
        for path, bid, mode in changed:
            if mode not in REGULAR or (path, bid) in found or (path, bid) in out:
                continue
            hit = covered.get((path, a))
            if hit is None:
                hit = covered[(path, a)] = _covered(path, rules[a])
            if hit:
                out[(path, bid)] = c
    return out


def _changes(repo: Repo, commits: list[str]) -> list[tuple[str, str | None, list[tuple[str, str, str]]]]:
    """(commit, first parent or None, [(path, new blob id, new mode)]) of each commit's change against its first
    parent (a deleted file has mode 000000), from one ``git log``."""
    if not commits:
        return []
    out = repo.git.run(
        *("log", "--stdin", "--no-walk=unsorted", "--no-show-signature", "--format=%x01%H %P"),
        *("--raw", "-z", "--no-abbrev", "--no-renames", "--diff-merges=first-parent"),
        input="".join(c + "\n" for c in commits).encode(),
    )
    found: list[tuple[str, str | None, list[tuple[str, str, str]]]] = []
    fields = out.split(b"\0")
    i = 0
    while i < len(fields):  # a header "\x01<commit> <parents>", then ":<modes> <blobs> <status>" and path pairs
        field = fields[i].lstrip(b"\n")
        i += 1
        if field.startswith(b"\x01"):
            ids = field[1:].decode().split()
            found.append((ids[0], ids[1] if len(ids) > 1 else None, []))
        elif field.startswith(b":") and found and i < len(fields):
            meta = field[1:].decode().split(" ")
            found[-1][2].append((fields[i].decode("utf-8", "surrogateescape"), meta[3], meta[1]))
            i += 1
    return found


def _anchors(parent: dict[str, str | None], whole: dict[str, Tree]) -> dict[str, str]:
    """{commit: the commit listed whole whose .gitattributes it has}: itself, or its nearest first-parent ancestor
    listed whole (the commits between changed no .gitattributes)."""
    anchor = {c: c for c in whole}
    for c in parent:
        chain = []
        at: str | None = c
        while at not in anchor:
            assert at is not None  # a commit without a first parent among commits is listed whole
            chain.append(at)
            at = parent[at]
        for x in chain:
            anchor[x] = anchor[at]
    return anchor


def imported_doc(repo: Repo) -> dict[str, Any]:
    """The whole of ``.mvc/imported.toml`` in the work tree, every importer's tables ({} before any import)."""
    raw = foreign.read_bytes(repo)
    return {} if raw is None else cfgfmt.loads(raw, f"{MVC_DIR}/{lfs.IMPORTED}")


def imported_map(repo: Repo) -> dict[str, tuple[str, int]]:
    """{sha256: (oid, size)} of the ``[lfs.sha256]`` table of ``.mvc/imported.toml``."""
    return lfs.imported(imported_doc(repo), f"{MVC_DIR}/{lfs.IMPORTED}")


def pointers_at(repo: Repo, commit: str, table: dict[str, Any] | None = None) -> dict[str, bytes]:
    """{PATH.mvc: mvc pointer bytes} for each git-lfs pointer in commit's tree whose content the map names
    (with the same size). Pointers that do not parse, paths mvc never tracks and content never imported are
    left out: they are not versions mvc can read. ``table``: the map's ``lfs`` table as ``foreign.py`` read it
    (default: read from the work tree's ``.mvc/imported.toml``)."""
    known = _known(repo, table)
    found = {}
    for path, data in _lfs_files_at(repo, commit, known).items():
        mine = _as_mvc(repo, path, data, known)
        if mine is not None:
            found[path + ptrfmt.SUFFIX] = mine
    return found


def unimported_at(repo: Repo, commit: str, table: dict[str, Any] | None = None) -> dict[str, str]:
    """{path: "sha256:…"} of the git-lfs pointers in commit's tree whose content the map lacks ('mvc import-lfs'
    ran while .git/lfs/objects did not hold it), at paths the import converted (an mvc pointer is there in the work
    tree; a path left to git-lfs is not mvc's to read): mvc cannot read those versions, and says why."""
    known = _known(repo, table)
    found = {}
    for path, data in _lfs_files_at(repo, commit, known).items():
        version = _unimported(repo, path, data, known)
        if version is not None:
            found[path] = version
    return found


def version_of(
    repo: Repo, commit: str, rel: str, table: dict[str, Any] | None = None
) -> tuple[bytes | None, str | None]:
    """(rel's pointer in :func:`pointers_at`, None), or (None, its version in :func:`unimported_at`), or (None,
    None): one read of commit's tree for both."""
    known = _known(repo, table)
    data = _lfs_files_at(repo, commit, known).get(rel)
    if data is None:
        return None, None
    mine = _as_mvc(repo, rel, data, known)
    return (mine, None) if mine is not None else (None, _unimported(repo, rel, data, known))


def _unimported(repo: Repo, path: str, data: bytes, known: dict[str, tuple[str, int]]) -> str | None:
    """ "sha256:…" of the git-lfs pointer data at path when the map lacks its content and mvc tracks path now."""
    try:
        p = lfs.loads(data, path)
    except PointerError:
        return None
    if p.sha256 not in known and repo.tracks(path):
        return f"sha256:{p.sha256}"
    return None


def _lfs_files_at(repo: Repo, commit: str, known: dict[str, tuple[str, int]]) -> dict[str, bytes]:
    """:func:`lfs_files` of commit's tree; none before any import, or where no filter=lfs line is."""
    if not known:
        return {}
    tree = Tree(repo, commit)
    all_rules = rules_of(repo, tree)
    return lfs_files(repo, tree, all_rules) if any(r.lfs for r in all_rules) else {}


def pointer_versions(
    repo: Repo, commits: Iterable[str], table: dict[str, Any] | None = None
) -> list[tuple[str, str, bytes]]:
    """(commit, PATH.mvc, mvc pointer bytes) of each git-lfs pointer :func:`pointers_at` would read in the trees of
    commits, each distinct one once, with a commit that has it; in one pass (:func:`lfs_history`)."""
    known = _known(repo, table)
    if not known:
        return []
    found: dict[tuple[str, bytes], str] = {}
    for (path, _), (commit, data) in lfs_history(repo, commits).items():
        mine = _as_mvc(repo, path, data, known)
        if mine is not None:
            found.setdefault((path + ptrfmt.SUFFIX, mine), commit)
    return [(commit, prel, data) for (prel, data), commit in found.items()]


def _known(repo: Repo, table: dict[str, Any] | None) -> dict[str, tuple[str, int]]:
    return imported_map(repo) if table is None else lfs.imported({"lfs": table}, f"{MVC_DIR}/{lfs.IMPORTED}")


def _as_mvc(repo: Repo, path: str, data: bytes, known: dict[str, tuple[str, int]]) -> bytes | None:
    """The mvc pointer the git-lfs pointer data at path reads as, or None: it does not parse, its content was
    never imported (or has another size), or mvc never tracks its path."""
    try:
        p = lfs.loads(data, path)
    except PointerError:
        return None
    hit = known.get(p.sha256)
    if hit is None or hit[1] != p.size or repo.untrackable(path) is not None:
        return None
    return ptrfmt.dumps(ptrfmt.Pointer("file", hit[0], hit[1], None))
