"""``mvc import-lfs``: the git-lfs pointers of the current commit become mvc pointers, history untouched.

All or nothing: every pointer is parsed, every object located (fetched with ``git lfs fetch`` where
``.git/lfs/objects`` lacks it) and its sha256 and size checked before anything is written; objects then enter
the cache, and only then do the work tree, ``.gitattributes``, ``.mvc/imported.toml`` and the index change; a
failure among those writes puts every one of them back (``mvc/repo/rollback.py``). A failed ``--push`` leaves
the import staged and says how to push again. Old revisions stay readable through the map
(``mvc/repo/foreign_lfs.py``)."""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mvc import progress as progressmod
from mvc.api.lfs_objects import Item, lfs_dir, locate, stored, verify
from mvc.errors import (
    GitError,
    MvcError,
    ObjectMissing,
    PathError,
    PointerError,
    RemoteError,
    WorkspaceModified,
)
from mvc.format import lfspointer as lfs
from mvc.format import pointer as ptrfmt
from mvc.format.config import LOCK, MVC_DIR
from mvc.repo import foreign, foreign_lfs
from mvc.repo import ignores as gitignores
from mvc.repo.repository import Repo, in_quotes, open_repo, shell_quoted
from mvc.repo.rollback import Rollback
from mvc.repo.selection import user_paths
from mvc.repo.worktree import link_stat
from mvc.storage import fileio
from mvc.storage.lock import locked

if TYPE_CHECKING:
    from mvc.repo.remotes import Spec

IMPORTED_REL = f"{MVC_DIR}/{lfs.IMPORTED}"
UNIGNORE = "!/" + lfs.IMPORTED  # the line of .mvc/.gitignore that lets git see the map


def import_lfs(
    paths: Iterable[str] = (),
    *,
    push: bool = False,
    remote: str | None = None,
    fetch: bool = True,
    history: bool = True,
    stage: bool = True,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Convert the git-lfs pointers of HEAD (those under ``paths``, default all) to mvc pointers, their content
    in the cache and the work tree, and stage the change. ``fetch``: run ``git lfs fetch`` for objects
    ``.git/lfs/objects`` lacks. ``history``: also store (and map) the content of the git-lfs pointers of HEAD's
    ancestors, branches and tags at those paths that ``.git/lfs/objects`` holds, so that old revisions can be read. ``push``: then
    push them all to ``remote`` (default: the default remote). Run again, it converts what is new and maps the
    older versions ``.git/lfs/objects`` holds now (``git lfs fetch --all`` since), at the paths mvc tracks too;
    what is imported already is left alone, and what a run with ``stage=False`` left unstaged is staged. A git-lfs
    pointer no filter=lfs line covers is imported when a commit of HEAD's history held that blob under one (a branch
    from before the import, merged after it) or ``paths`` names it exactly. Returns {"imported": [{path, oid, size,
    sha256, source}], "history": {"stored", "missing"}, "attributes": [lines removed], "up_to_date": nothing was
    new, "not_pointers": [files a git-lfs line names that git holds as plain files, left as they are],
    "not_covered": [git-lfs pointers no filter=lfs line covers, left in git], "not_staged": {"remove": [paths to
    'git rm --cached'], "add": [paths to 'git add']} (empty when staged), "staged_now": [paths an earlier run left
    unstaged], "old_commits_track": [the paths converted: commits from before the import track them in git, and a
    checkout of one overwrites their changes not yet added]}."""
    repo = open_repo(repo)
    head = repo.git.run("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).decode().strip()
    if not head:
        raise GitError("there is no commit yet: commit the git-lfs files, then run 'mvc import-lfs'")
    tree = foreign_lfs.Tree(repo, head)
    all_rules = foreign_lfs.rules_of(repo, tree)
    found = foreign_lfs.lfs_files(repo, tree, all_rules)
    plain = foreign_lfs.plain_files(tree, all_rules, found)
    scan = _Scan(repo, head)
    stray = foreign_lfs.uncovered_pointers(repo, tree, all_rules)  # where a pre-import branch's merge leaves them
    was = _were_lfs(tree, stray, scan)
    doc = foreign.read_worktree(repo)  # the map this run adds to: a damaged one is refused before anything is done
    known = lfs.imported(doc, IMPORTED_REL)  # imported before: left alone
    before = "lfs" in doc  # an import ran: its paths are mvc's now
    tracked = sorted(Repo.target_of(p) for p in repo.git.ls_pointers()) if before else []
    chosen, also = _choose(repo, found, stray, was, tracked, before, user_paths(paths))
    found.update(stray)
    done = {p for p in chosen if _imported_already(repo, p, found[p], known)}
    sp = _remote(repo, remote) if push else None
    staged = repo.git.index_blobs(".") if chosen else {}  # (one call, not one a file)
    pending = sorted(p for p in done if p in staged)  # converted by a run that did not stage (--no-stage)
    items = [_check(repo, tree, path, found[path], staged) for path in chosen if path not in done]
    locate(repo, items, fetch)
    have = {it.ptr.sha256 for it in items} | set(known)
    old, missing = _history(scan, {*chosen, *also}, have) if history else ([], 0)
    left = sorted(p for p in stray if p not in chosen)
    if not items and not old and not pending:  # nothing is written, nor pushed
        return {
            "imported": [],
            "history": {"stored": 0, "missing": missing},
            "attributes": [],
            "up_to_date": True,
            "not_pointers": plain,
            "not_covered": left,
            "not_staged": {"remove": [], "add": []},
            "staged_now": [],
            "old_commits_track": [],
        }
    try:
        for it in items + old:  # every object checked before anything is stored or written
            verify(it, progress)
        with repo.odb.adding():  # stored, then named by pointers: a gc of the cache waits
            for it in items + old:
                it.oid = repo.odb.add_file(it.src, repo.config.link_types)[0]  # type: ignore[arg-type]
            with Rollback(repo) as rb:  # from here on, a failure puts every file and the index back
                _save(rb, tree, items, stage)
                removed, unstaged = _convert(repo, tree, all_rules, items, old, stage, done, pending, staged)
    finally:
        repo.state.flush()
    rows = [
        {"path": it.path, "oid": it.oid, "size": it.ptr.size, "sha256": it.ptr.sha256, "source": it.source}
        for it in items
    ]
    out: dict[str, Any] = {"imported": rows, "history": {"stored": len(old), "missing": missing}}
    out.update(not_pointers=plain, not_covered=left, attributes=removed, up_to_date=False, not_staged=unstaged)
    out.update(staged_now=pending if stage else [], old_commits_track=[it.path for it in items])
    if sp is not None:
        out["push"] = _push(repo, items + old, sp, remote, "done and staged" if stage else "done", bool(old), progress)
    return out


class _Scan:
    """The git-lfs pointers of HEAD's history, every branch and every tag (:func:`foreign_lfs.lfs_history`), read
    once, when first asked for."""

    __slots__ = ("_found", "head", "repo")

    def __init__(self, repo: Repo, head: str):
        self.repo, self.head = repo, head
        self._found: dict[tuple[str, str], tuple[str, bytes]] | None = None

    def found(self) -> dict[tuple[str, str], tuple[str, bytes]]:
        if self._found is None:
            commits = self.repo.git.run("rev-list", self.head, "--branches", "--tags", "--").decode().split()
            self._found = foreign_lfs.lfs_history(self.repo, commits)
        return self._found


def _were_lfs(tree: foreign_lfs.Tree, stray: dict[str, bytes], scan: _Scan) -> set[str]:
    """The paths of stray (git-lfs pointers of HEAD no filter=lfs line covers) whose very blob a commit of HEAD's
    history held under a filter=lfs line: git-lfs files (of a branch merged after the import), to import."""
    if not stray:
        return set()
    held = scan.found()
    return {p for p in stray if (p, tree.blobs[p][0]) in held}


def _save(rb: Rollback, tree: foreign_lfs.Tree, items: list[Item], stage: bool) -> None:
    """Everything :func:`_convert` may change, saved to put back: the files replaced (their content is in the cache),
    the pointers and .gitignore files beside them, every .gitattributes, the map, .mvc/.gitignore and the index."""
    rb.move_aside(*(it.path for it in items))
    rb.save(*(Repo.pointer_of(it.path) for it in items), *(gitignores.entry(it.path)[0] for it in items))
    rb.save(*tree.attributes(), IMPORTED_REL, f"{MVC_DIR}/.gitignore")
    if stage:
        rb.save_index()


def _convert(
    repo: Repo,
    tree: foreign_lfs.Tree,
    all_rules: list[lfs.Rule],
    items: list[Item],
    old: list[Item],
    stage: bool,
    done: set[str],
    pending: list[str],
    index: dict[str, str],
) -> tuple[list[str], dict[str, list[str]]]:
    """Write the content, pointers and .gitignore lines, strip .gitattributes (``done``: paths an earlier run
    converted), write the map, and stage it all, with what an earlier run left unstaged (``pending``: converted,
    their git-lfs pointer still in the index). Returns (the .gitattributes lines removed, what is left to stage:
    {"remove": paths to 'git rm --cached', "add": paths to 'git add'}, empty when staged)."""
    for it in items:
        _write(repo, it)
    ignores = gitignores.add_many(repo, [it.path for it in items])
    attrs_changed, removed, attrs_all = _strip_attributes(repo, tree, all_rules, {it.path for it in items} | done)
    if pending:  # their .gitattributes were stripped by that run: staged now, if git still has them somewhere
        attrs_changed += [
            a for a in attrs_all if a not in attrs_changed and (a in index or os.path.lexists(repo.abs(a)))
        ]
    gone = [it.path for it in items] + pending
    to_stage = [Repo.pointer_of(p) for p in gone] + ignores + [gitignores.entry(p)[0] for p in pending]
    to_stage = list(dict.fromkeys(to_stage + attrs_changed + _write_map(repo, items + old)))
    if not stage:
        return removed, {"remove": gone, "add": to_stage}
    with locked(os.path.join(repo.mvc_dir, LOCK), "the git index"):
        if gone:
            repo.git.run("rm", "--cached", "-q", "--ignore-unmatch", "--", *[f":(literal){p}" for p in gone])
        repo.git.run("add", "-f", "--", f":(literal){IMPORTED_REL}")
        repo.git.stage(p for p in to_stage if p != IMPORTED_REL)
    return removed, {"remove": [], "add": []}


def _history(scan: _Scan, chosen: set[str], have: set[str]) -> tuple[list[Item], int]:
    """The distinct contents of the git-lfs pointers at the chosen paths in HEAD's ancestors, that HEAD's do not
    hold already: (those .git/lfs/objects holds, how many it lacks). Pointers that do not parse are skipped:
    their revisions stay git-lfs's."""
    objects = lfs_dir(scan.repo)
    found: dict[str, Item] = {}
    absent: set[str] = set()
    for (path, _), (commit, data) in sorted(scan.found().items()):
        if path not in chosen:
            continue
        try:
            ptr = lfs.loads(data, path)
        except PointerError:
            continue
        if ptr.sha256 in have or ptr.sha256 in found or ptr.sha256 in absent:
            continue
        at = stored(objects, ptr.sha256)
        if os.path.isfile(at):
            it = found[ptr.sha256] = Item(f"{path} at {commit[:12]}", ptr)
            it.src, it.source = at, "lfs"
        else:
            absent.add(ptr.sha256)
    return list(found.values()), len(absent)


def _remote(repo: Repo, remote: str | None) -> Spec:
    """The remote --push goes to, read before anything is written: one not configured is refused then."""
    from mvc.repo.remotes import spec

    return spec(repo, remote)


def _push(
    repo: Repo,
    items: list[Item],
    sp: Spec,
    remote: str | None,
    state: str,
    history: bool,
    progress: progressmod.Factory,
) -> dict[str, Any]:
    """Push the imported objects, those of old revisions too (which no pointer of the work tree names), to the
    remote sp. The import is done by then (its state: "done and staged"): a failed push says so, and how to push
    again, rather than undo it (the objects are in the cache; another import would hash them all again)."""
    from mvc.api import sync
    from mvc.repo.remotes import journal
    from mvc.repo.selection import Wanted

    wanted = Wanted()
    for it in items:
        wanted.add_pointer(it.path, ptrfmt.Pointer("file", it.oid, it.ptr.size))
    try:
        jr = journal(repo)
        try:
            return sync._push(repo, sp, wanted, jr, None, False, progress)
        finally:
            jr.close()
    except (MvcError, OSError) as e:  # a directory remote's OSError too (a file where its directory should be)
        why = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) else str(e)
        to = f" -r {shell_quoted(remote)}" if remote else ""
        again = f"'mvc push{to}' and 'mvc push{to} --all-commits'" if history else f"'mvc push{to}'"
        raise RemoteError(
            f"the import is {state}, but its push failed ({why}): once that is fixed, run {again}"
        ) from None


def _choose(
    repo: Repo,
    found: dict[str, bytes],
    stray: dict[str, bytes],
    was: set[str],
    tracked: list[str],
    before: bool,
    paths: list[str],
) -> tuple[list[str], list[str]]:
    """(The git-lfs pointers of HEAD to import, the paths mvc tracks whose older git-lfs versions a run after an
    import (``before``) maps too): all, or those at or under the paths given. Of the pointers no filter=lfs line
    covers (stray), those that were git-lfs files in a commit of HEAD's history (was), and those named exactly."""
    if not found and not stray and not before:
        raise PathError(
            "HEAD has no git-lfs pointers (no file a 'filter=lfs' line of .gitattributes names): nothing to import"
        )
    if not paths:
        return sorted({*found, *was}), tracked
    chosen: set[str] = set()
    also: set[str] = set()
    for p in paths:
        rel = repo.rel(p)
        under = [f for f in {*found, *was} if rel == "." or f == rel or f.startswith(rel + "/")]
        hits = under + ([rel] if rel in stray else [])
        more = [f for f in tracked if rel == "." or f == rel or f.startswith(rel + "/")]
        if not hits and not more:
            raise PathError(f"{p}: no git-lfs pointer at HEAD is there: check the path with 'git lfs ls-files'")
        chosen.update(hits)
        also.update(more)
    return sorted(chosen), sorted(also)


def _imported_already(repo: Repo, path: str, data: bytes, known: dict[str, tuple[str, int]]) -> bool:
    """Whether an earlier run converted the git-lfs pointer data at path (staged, not committed yet): the map
    names its content and PATH.mvc is a pointer (that one, or a version 'mvc add' recorded since: mvc's)."""
    prel = Repo.pointer_of(path)
    if not os.path.isfile(repo.abs(prel)):
        return False
    try:
        theirs = lfs.loads(data, path)
        with open(repo.abs(prel), "rb") as fh:
            ptrfmt.loads(fh.read(), prel)
    except MvcError:  # refused with its own error below (_check)
        return False
    return theirs.sha256 in known


def _left_by_a_killed_import(repo: Repo, prel: str, ptr: lfs.LfsPointer) -> bool:
    """Whether the pointer file at prel is one an import wrote and did not get to stage (killed part way): a
    regular file git's index does not hold, a pointer of a file of the git-lfs pointer's size with nothing but
    what an import writes (no record, no [auto]). Written again by this run."""
    full = repo.abs(prel)
    try:
        if not os.path.isfile(full) or os.path.islink(full) or os.path.getsize(full) > 4096:
            return False
        with open(full, "rb") as fh:
            p = ptrfmt.loads(fh.read(), prel)
    except (OSError, MvcError):
        return False
    if p.kind != "file" or p.size != ptr.size or p.meta or p.auto:
        return False
    return not repo.git.tracked([prel])


def _check(repo: Repo, tree: foreign_lfs.Tree, path: str, data: bytes, index: dict[str, str]) -> Item:
    """Parse the pointer at path and refuse what importing it would break (before anything is written)."""
    ptr = lfs.loads(data, f"{path} at HEAD")
    why = repo.untrackable(path)
    if why is not None:
        raise PathError(f"{path}: a git-lfs pointer at a path mvc never tracks ({why}): move it with 'git mv' first")
    full = repo.check_inside(path)
    prel = Repo.pointer_of(path)
    if prel in tree.blobs or (os.path.lexists(repo.abs(prel)) and not _left_by_a_killed_import(repo, prel, ptr)):
        raise PathError(f"{path}: {prel} already exists: remove it, or leave {path} to git-lfs")
    staged = index.get(path)
    if staged != tree.blobs[path][0]:
        raise WorkspaceModified(
            f"{path} has staged changes: commit them (or {in_quotes('git restore --staged ' + shell_quoted(path))})"
        )
    it = Item(path, ptr)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return it
    if not statmod.S_ISREG(st.st_mode):
        raise WorkspaceModified(
            f"{path} is not a regular file in the work tree: restore it with "
            f"{in_quotes('git checkout -- ' + shell_quoted(path))}"
        )
    if st.st_size == len(data) and _read(full) == data:
        return it  # the pointer itself: git-lfs never smudged it
    if st.st_size != ptr.size:
        raise WorkspaceModified(
            f"{path} has changes not committed: commit them or {in_quotes('git checkout -- ' + shell_quoted(path))}"
        )
    it.src, it.source = full, "worktree"  # the content, if its sha256 agrees (checked with the others)
    return it


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(lfs.MAX_POINTER)


def _write(repo: Repo, it: Item) -> None:
    """The content at the path and its pointer (its .gitignore line: the caller's, for all at once). The pointer
    has no ``[auto]``: the import is a conversion, not a new version, and its bytes are those an old revision's
    git-lfs pointer reads as (docs/FORMAT.md), so the import's commit is no change in ``mvc log``."""
    full = repo.abs(it.path)
    _how, st = repo.odb.place(it.oid, full, repo.config.link_types)
    if not repo.odb.freshen(it.oid):
        raise ObjectMissing(f"{it.path}: object {it.oid} left the cache while it was imported: run the import again")
    if st is None and os.path.islink(full):  # a link is vouched for by its object's stat (as freshened)
        st = link_stat(full)
    if st is not None:
        repo.state.put(it.path, st, it.oid)
    p = ptrfmt.Pointer("file", it.oid, it.ptr.size, None)
    fileio.atomic_write(repo.abs(Repo.pointer_of(it.path)), ptrfmt.dumps(p))


def _strip_attributes(
    repo: Repo, tree: foreign_lfs.Tree, all_rules: list[lfs.Rule], converted: set[str]
) -> tuple[list[str], list[str], list[str]]:
    """Remove the git-lfs attributes of the lines whose every matched file was converted; keep the others. A file
    left with nothing but blank lines is deleted (the index then loses it too). Returns (the .gitattributes
    relpaths changed, the lines removed, every .gitattributes relpath such a line is in)."""
    drop: dict[str, set[str]] = {}
    for r in all_rules:
        if not r.lfs:
            continue
        matched = [p for p in tree.blobs if r.matches(p)]
        if matched and all(p in converted for p in matched):
            drop.setdefault(f"{r.base}/{foreign_lfs.ATTRIBUTES}" if r.base else foreign_lfs.ATTRIBUTES, set()).add(
                r.line
            )
    changed, removed = [], []
    for rel, lines in sorted(drop.items()):
        full = repo.abs(rel)
        try:
            with open(full, "rb") as fh:
                text = fh.read()
        except FileNotFoundError:
            continue
        new = lfs.strip_lfs(text, lines)
        if new != text:
            if new.strip():
                fileio.atomic_write(full, new)
            else:
                os.unlink(full)
            changed.append(rel)
            removed += [f"{rel}: {line}" for line in sorted(lines)]
    return changed, removed, sorted(drop)


def _write_map(repo: Repo, items: list[Item]) -> list[str]:
    """Merge the imported content into .mvc/imported.toml (other tables, another importer's, kept), and make
    sure .mvc/.gitignore lets git see it. Returns the relpaths to stage."""
    import tomli_w

    path = os.path.join(repo.mvc_dir, lfs.IMPORTED)
    out = [IMPORTED_REL]
    with locked(os.path.join(repo.mvc_dir, LOCK), IMPORTED_REL):
        raw = foreign.read_bytes(repo)  # (a link there refused, not followed)
        doc: dict[str, Any] = {} if raw is None else foreign.parse(raw, IMPORTED_REL)  # (and a format unknown)
        doc = {"format": foreign.FORMAT, **doc}
        table = lfs.imported(doc, IMPORTED_REL)
        for it in items:
            table[it.ptr.sha256] = (it.oid, it.ptr.size)
        rest = {k: v for k, v in doc.get("lfs", {}).items() if k != "sha256"}
        doc = {k: v for k, v in doc.items() if k != "lfs"} | ({"lfs": rest} if rest else {})
        # one line an entry (an inline table), as docs/FORMAT.md shows: tomli_w would write a table each
        lines = [f'"{s}" = {{ oid = "{o}", size = {n} }}\n' for s, (o, n) in sorted(table.items())]
        fileio.atomic_write(path, (tomli_w.dumps(doc) + "\n[lfs.sha256]\n" + "".join(lines)).encode())
        ignore = os.path.join(repo.mvc_dir, ".gitignore")
        text = gitignores.read_text(ignore)
        if text and UNIGNORE not in gitignores.lines(text):
            fileio.atomic_write(ignore, (text.rstrip("\n") + "\n" + UNIGNORE + "\n").encode())
            out.append(f"{MVC_DIR}/.gitignore")
    return out
