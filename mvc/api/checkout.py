"""Getting weights out of the cache into the work tree: ``checkout`` (make the work tree match its pointers, or
a revision's; ``mvc.api.repoget`` writes a version anywhere else).

Rule for the user's files: a workspace file is only replaced or deleted when its current content
is in the cache (so it can always be got back); otherwise the command refuses, and with
``force`` it first stores that content in the cache (synced to disk) and reports its oid.
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
from collections.abc import Iterable
from typing import Any

from mvc import progress as progressmod
from mvc.errors import ConflictedPointer, MvcError, PathError, PointerError, WorkspaceModified
from mvc.format import pointer as ptrfmt
from mvc.format.config import LOCK
from mvc.objects import manifest as mf
from mvc.repo import ignores as gitignores
from mvc.repo.remotes import ensure_objects
from mvc.repo.repository import Repo, open_repo, quoted
from mvc.repo.selection import load_pointer, model_refs, refuse_a_model_name, select, user_paths
from mvc.repo.statedb import trusted
from mvc.repo.worktree import File, check_checkout_room, hash_of, link_stat, look, scan_dir, total
from mvc.storage import fileio, tempfiles
from mvc.storage.lock import locked

CHECKOUT_LOCK = "checkout.lock"  # .mvc/checkout.lock: held by a checkout from its plan to its last write
CHECKOUT_WAIT = 3600.0  # seconds a checkout waits for another in the same work tree


class _Plan:
    def __init__(self, rel: str, full: str, pointer: ptrfmt.Pointer):
        self.rel = rel
        self.full = full
        self.pointer = pointer
        self.writes: list[tuple[str, str, bool]] = []  # (full path, oid, executable)
        self.sizes: dict[str, int] = {}  # oid -> size of what writes need (for a fetch's progress)
        # (full path, executable, its oid if the state cache may record it, its stat when it was hashed)
        self.chmods: list[tuple[str, bool, str | None, os.stat_result]] = []
        self.removals: list[str] = []  # workspace files whose content is in the cache
        self.unsafe: list[tuple[str, str]] = []  # (relpath, full) not in the cache
        self.clear_dir = False  # a directory stands where the file goes
        self.make_dir = False  # a tracked directory with no files (its manifest empty) is missing: made
        self.placed = False  # every file of writes is in place
        # {path, oid} of the user's files stored before they were replaced (a link replaced: oid None, "link")
        self.kept: list[dict[str, str | None]] = []


def checkout(
    paths: Iterable[str] = (),
    *,
    rev: str | None = None,
    force: bool = False,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> list[dict[str, Any]]:
    """Make workspace files match their pointers (restoring the pointers as of ``rev`` first).
    A path may be a registry revision (``churn#prod``, ``churn@v1.2.0``): that model's path at that revision."""
    repo = open_repo(repo)
    paths = user_paths(paths)
    refs = model_refs(repo, paths, rev)
    if refs:
        done: list[dict[str, Any]] = []
        for commit in dict.fromkeys(c for _, _, c in refs):
            rows = checkout(
                [repo.abs(p) for _, p, c in refs if c == commit], rev=commit, force=force, repo=repo, progress=progress
            )
            named = {p: text for text, p, c in refs if c == commit}
            for row in rows:
                if row.get("staged"):
                    row["rev"] = named.get(row["path"], commit)
            done += rows
        return done
    # one checkout at a time in a work tree (a post-checkout hook's beside a pull, say): two that interleave
    # would leave one path's pointer from one version and its files, or another path's, from the other
    lock = os.path.join(repo.mvc_dir, CHECKOUT_LOCK)  # (one this user cannot make: no other writer of it either)
    with locked(lock, "the work tree", CHECKOUT_WAIT, doing="checking out", needed=False):
        return _checkout(repo, paths, rev, force, progress)


def _checkout(
    repo: Repo, paths: list[str], rev: str | None, force: bool, progress: progressmod.Factory
) -> list[dict[str, Any]]:
    plans: list[_Plan] = []
    try:
        at_commit: str | None = None
        if rev is not None:
            at_commit = repo.resolve(rev)
            at_rev = repo.pointers_at_commit(at_commit)
            _refuse_unimported(repo, at_commit, rev, paths)
            chosen = select(repo, paths, sorted(at_rev), rev)
            for prel in chosen:
                repo.check_inside(prel)
            dirty = repo.git.unstaged([p for p in chosen if os.path.exists(repo.abs(p))])
            if dirty and not force:
                _raise_if_conflicted(repo, dirty[0])  # mid-merge: the conflict's own fix, not 'git add' of markers
                raise WorkspaceModified(
                    f"{quoted(dirty[0])} has changes not staged in git: stage them with "
                    f"{ptrfmt.suggested('git add {}', dirty[0])}, or pass --force to replace it"
                )
            if not force:
                _refuse_uncommitted(repo, chosen, at_commit, rev)
            gitignores.check(repo, [Repo.target_of(p) for p in chosen])  # before anything is written
        else:
            at_rev = {}
            try:
                chosen = select(repo, paths, repo.git.ls_pointers())
            except PathError:
                refuse_a_model_name(repo, paths, "checkout")
                _refuse_a_revision(repo, paths)
                raise
        # plan from REV's pointers before git touches them, so a refused checkout changes nothing
        plans = [_plan(repo, prel, progress, at_rev.get(prel), rev) for prel in chosen]
        unsafe = [u for plan in plans for u in plan.unsafe]
        if unsafe and not force:
            rel = unsafe[0][0]
            more = f" (and {len(unsafe) - 1} more)" if len(unsafe) > 1 else ""
            raise WorkspaceModified(
                f"{quoted(rel)}{more} has changes that are not in the cache: run 'mvc add' to keep "
                "them, or 'mvc checkout --force' to replace them (their content is kept in the cache)"
            )
        ensure_objects(
            repo,
            {oid: size for plan in plans for oid, size in plan.sizes.items()},
            progress,
            {oid: label for plan in plans for oid, label in _labels(repo, plan).items()},
        )
        if at_commit is None:
            rows = [_apply(repo, plan, progress) for plan in plans]
            for row in rows:  # a commit without its .gitignore lines: 'git add -A' would then commit the weights
                if row["action"] == "restored":
                    try:
                        gitignores.add(repo, row["path"])
                    except MvcError as e:  # (a .gitignore mvc may not write: a link, say) the weights are in place
                        row["not_ignored"] = str(e)  # and git sees them: said
            return rows
        rows, staged = _apply_at(repo, at_commit, chosen, plans, progress)
        if staged:
            head = _head_blobs(repo, sorted(staged))
            for row in rows:
                prel = Repo.pointer_of(row["path"])
                if prel in staged:
                    was = head.get(prel)
                    row.update(
                        staged=prel,
                        rev=rev,
                        head="absent" if was is None else "same" if was == staged[prel] else "differs",
                    )
        return rows
    except BaseException:
        _say_kept([k for plan in plans for k in plan.kept])
        raise
    finally:
        repo.state.flush()


def _say_kept(kept: list[dict[str, str | None]]) -> None:
    """On stderr, the oids of the user's files a failed or interrupted checkout --force stored and then replaced or
    removed: nothing else names them, and a gc after the grace period would take them."""
    import sys

    for k in kept:
        if k["oid"] is not None:
            sys.stderr.write(f"mvc: kept the replaced content of {quoted(str(k['path']))} in the cache as {k['oid']}\n")


def _refuse_uncommitted(repo: Repo, chosen: list[str], at_commit: str, rev: str) -> None:
    """Refuse to replace a pointer ``mvc add`` staged and nobody committed: nothing else names it, so it would be
    lost to the user and, after the grace period, to gc. What a checkout staged (from a commit) goes freely."""
    from mvc.storage.fileio import hexdigest_bytes

    wanted = set(chosen)
    staged = {path: blob for letter, _, blob, path in repo.git.staged_diff() if letter in "AM" and path in wanted}
    added = {prel: d for prel in staged if (d := repo.state.added(prel)) is not None}
    if not added:
        return
    at = repo.git.blob_ids(at_commit, sorted(added))
    data = repo.git.cat_objects([staged[prel] for prel in added if at.get(prel) != staged[prel]])
    for prel, digest in sorted(added.items()):
        blob = data.get(staged[prel])
        if blob is None or hexdigest_bytes(blob) != digest or staged[prel] in repo.git.blobs_in_history(prel):
            continue  # not what add staged, or a commit holds it after all (the same bytes added again)
        raise WorkspaceModified(
            f"{prel} holds a version staged and not committed (an 'mvc add' since the last commit), which "
            f"checking out {rev} would drop: commit it first, or pass --force to replace it"
        )


def _labels(repo: Repo, plan: _Plan) -> dict[str, tuple[str, str]]:
    """{oid: (how an error names it, the tracked path)} for what the plan writes."""
    if plan.pointer.kind == "file":
        return {oid: (plan.rel, plan.rel) for _, oid, _ in plan.writes}
    top = plan.full + os.sep
    return {
        oid: (f"{plan.rel}/{target[len(top) :].replace(os.sep, '/')} of directory {plan.rel}", plan.rel)
        for target, oid, _ in plan.writes
    }


def _apply_at(
    repo: Repo, commit: str, chosen: list[str], plans: list[_Plan], progress: progressmod.Factory
) -> tuple[list[dict[str, Any]], dict[str, str | None]]:
    """Write REV's weights, and restore each path's pointer as of commit (``git checkout REV -- PATH``, which
    stages it, as git does) only after its weights are in place: a failure part way (disk full, a corrupt
    object) leaves every path with its pointer and its weights of one version. Returns the rows and
    {pointer: its blob id in the index now} of the pointers whose staged content changed."""
    from mvc.git import POINTER_GLOB

    before = repo.git.index_blobs(POINTER_GLOB)
    # a pointer read from another tool's file at commit (a .dvc file before 'mvc import-dvc') is not in git
    in_git = repo.git.blob_ids(commit, chosen)
    # paths whose weights are REV's already: their pointers in one git call
    idle = [prel for prel, plan in zip(chosen, plans, strict=True) if not _changes(plan)]
    _restore_pointers(repo, commit, idle, plans, chosen, in_git)
    rows = []
    for prel, plan in zip(chosen, plans, strict=True):
        restored = False
        try:
            rows.append(_apply(repo, plan, progress))
            if _changes(plan):
                _restore_pointers(repo, commit, [prel], plans, chosen, in_git)
                restored = True
        except KeyboardInterrupt:  # Ctrl-C once its weights are REV's: its pointer too, before stopping
            if plan.placed and not restored and _changes(plan):
                _restore_pointers(repo, commit, [prel], plans, chosen, in_git)
            raise
    # a pointer brought back from a commit (after 'mvc remove', say) gets its .gitignore line too, staged as the
    # pointer is: without it a 'git add -A' would commit the weights
    ignored = sorted({gitignores.add(repo, Repo.target_of(p)) for p in chosen})
    with locked(os.path.join(repo.mvc_dir, LOCK), "the git index"):
        repo.git.stage(ignored)
    after = repo.git.index_blobs(POINTER_GLOB)
    return rows, {p: after.get(p) for p in chosen if before.get(p) != after.get(p)}


def _restore_pointers(
    repo: Repo, commit: str, prels: list[str], plans: list[_Plan], chosen: list[str], in_git: dict[str, str | None]
) -> None:
    """``git checkout commit -- prels``; a pointer git does not hold there (read from a .dvc file) is written as
    read and staged, as git's checkout stages the others."""
    repo.git.checkout_paths(commit, [p for p in prels if in_git.get(p)])
    foreign = [p for p in prels if not in_git.get(p)]
    for prel in foreign:
        plan = plans[chosen.index(prel)]
        fileio.atomic_write(repo.abs(prel), ptrfmt.dumps(plan.pointer))
    if foreign:
        repo.git.stage(foreign)


def _changes(plan: _Plan) -> bool:
    return bool(plan.writes or plan.removals or plan.chmods or plan.unsafe or plan.clear_dir)


def _head_blobs(repo: Repo, prels: list[str]) -> dict[str, str | None]:
    """{pointer: its blob id in HEAD's tree, or None} (all None on a branch without commits)."""
    try:
        return repo.git.blob_ids(repo.resolve("HEAD"), prels)
    except MvcError:
        return {}


def _plan(
    repo: Repo, prel: str, progress: progressmod.Factory, data: bytes | None = None, rev: str | None = None
) -> _Plan:
    p = load_pointer(repo, prel, data, rev)
    rel = Repo.target_of(prel)
    full = repo.check_inside(rel)
    plan = _Plan(rel, full, p)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        st = None
    if p.kind == "file":
        if st is not None and statmod.S_ISDIR(st.st_mode):
            _plan_removals(repo, rel, scan_dir(repo, rel, full), plan, progress)
            plan.clear_dir = True
            st = None
        if st is None:
            plan.writes.append((full, p.oid, p.executable))
            plan.sizes[p.oid] = p.size
            return plan
        f = look(repo, rel, full, st, repo.state.get(rel, st) if statmod.S_ISREG(st.st_mode) else None)
        bar = progress(f"checking {rel}", total([f]))
        try:
            cur = hash_of(repo, rel, f, bar)
        finally:
            bar.close()
        if cur != p.oid:
            _judge(repo, rel, full, cur, plan)
            plan.writes.append((full, p.oid, p.executable))
            plan.sizes[p.oid] = p.size
        elif p.executable and not f.linked and not f.executable:  # the bit the pointer records (never taken away)
            plan.chmods.append((full, True, cur if trusted(f.st) else None, f.st))
        return plan
    # a directory
    ensure_objects(repo, {p.oid: 0}, progress, {p.oid: (f"the manifest of directory {rel}", rel)})
    want = {e.path: e for e in mf.loads(repo.odb.read_bytes(p.oid), p.oid)}
    if st is not None and not statmod.S_ISDIR(st.st_mode):
        f = look(repo, rel, full, st, repo.state.get(rel, st) if statmod.S_ISREG(st.st_mode) else None)
        _judge(repo, rel, full, hash_of(repo, rel, f, progressmod.NULL), plan)
        plan.removals.append(full)
        files: dict[str, File] = {}
    else:
        files = scan_dir(repo, rel, full) if st is not None else {}
    plan.make_dir = not want and (st is None or not statmod.S_ISDIR(st.st_mode))
    extra = {sub: f for sub, f in files.items() if sub not in want}
    _plan_removals(repo, rel, extra, plan, progress)
    bar = progress(f"checking {rel}", total(f for sub, f in files.items() if sub in want))
    try:
        for sub, e in sorted(want.items()):
            target = os.path.join(full, *sub.split("/"))
            cur_f = files.get(sub)
            if cur_f is None:
                plan.writes.append((target, e.oid, e.executable))
                plan.sizes[e.oid] = e.size
                continue
            cur = hash_of(repo, f"{rel}/{sub}", cur_f, bar)
            if cur != e.oid:
                _judge(repo, f"{rel}/{sub}", cur_f.full, cur, plan)
                plan.writes.append((target, e.oid, e.executable))
                plan.sizes[e.oid] = e.size
            elif not cur_f.linked and cur_f.executable != e.executable:
                plan.chmods.append((target, e.executable, cur if trusted(cur_f.st) else None, cur_f.st))
    finally:
        bar.close()
    return plan


def _plan_removals(repo: Repo, rel: str, files: dict[str, File], plan: _Plan, progress: progressmod.Factory) -> None:
    for sub in files:
        why = mf.git_owned(sub)
        if why:  # e.g. a repository cloned into the tracked directory: never mvc's to delete, --force or not
            raise PathError(
                f"{quoted(rel + '/' + sub)} is in the tracked directory {quoted(rel)} but is git's ({why}): "
                f"mvc never deletes it: move it out of {quoted(rel)}, then retry"
            )
    bar = progress(f"checking {rel}", total(files.values()))
    try:
        for sub, f in files.items():
            _judge(repo, f"{rel}/{sub}", f.full, hash_of(repo, f"{rel}/{sub}", f, bar), plan)
            plan.removals.append(f.full)
    finally:
        bar.close()


def _judge(repo: Repo, rel: str, full: str, cur: str | None, plan: _Plan) -> None:
    """Note a workspace file about to be replaced whose content the cache does not hold."""
    if cur is None or not repo.odb.exists(cur):
        plan.unsafe.append((rel, full))


def _apply(repo: Repo, plan: _Plan, progress: progressmod.Factory) -> dict[str, Any]:
    # before anything is stored, removed or replaced: a directory is never left at two versions
    check_checkout_room(
        repo, plan.rel, plan.full, [(t, plan.sizes.get(o, 0), o) for t, o, _ in plan.writes], plan.removals
    )
    kept = plan.kept
    for rel, full in plan.unsafe:
        if os.path.islink(full):  # replacing the link loses no data, but the link itself goes: said, with its target
            with contextlib.suppress(OSError):
                kept.append({"path": rel, "oid": None, "link": os.readlink(full)})
            continue
        if not os.path.isfile(full):
            continue
        bar = progress(f"keeping {rel}", os.path.getsize(full))
        try:
            oid, _, _ = repo.odb.add_file(full, ("copy",), progress=bar.update, durable=True)
        finally:
            bar.close()
        kept.append({"path": rel, "oid": oid})
    for full in plan.removals:
        if os.path.lexists(full):
            os.unlink(full)
    if plan.pointer.kind == "dir":
        _prune_emptied(plan)
    if plan.clear_dir and os.path.isdir(plan.full) and not os.path.islink(plan.full):
        import shutil  # here, not at the top: it loads bz2/lzma, 4 ms of every command's start-up

        shutil.rmtree(plan.full)  # only directories are left: every file was removed above
    if plan.pointer.kind == "dir":
        _prune_blocking_dirs(plan)
    total = sum(repo.odb.size(oid) for _, oid, _ in plan.writes)
    bar = progress(f"checking out {plan.rel}", total)
    link_types = repo.config.link_types
    try:
        for target, oid, executable in plan.writes:
            repo.check_inside(_rel(repo, target))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fileio.drop_cached(target)  # the file it replaces: its memory is then what the new one reuses
            # the stat of the file as written: the state cache vouches for it at once, so the next switch
            # need not hash it (and any write to it since shows in its mtime)
            claim = (plan.sizes[oid], _rel(repo, target))
            _, st = repo.odb.place(oid, target, link_types, executable=executable, progress=bar.update, claim=claim)
            if st is None and os.path.islink(target):  # a link is vouched for by its object's stat (worktree.look)
                st = link_stat(target)
            if st is not None:
                repo.state.put(_rel(repo, target), st, oid)
        plan.placed = True
    finally:
        bar.close()
    for target, executable, known, was in plan.chmods:
        st = os.stat(target)
        os.chmod(target, (st.st_mode | 0o111 & ~tempfiles.umask()) if executable else st.st_mode & ~0o111)
        # a chmod moves the ctime: record the file again, if nothing can have written to it since it was hashed
        if known is not None and (st.st_ino, st.st_mtime_ns, st.st_size) == (was.st_ino, was.st_mtime_ns, was.st_size):
            repo.state.put(_rel(repo, target), os.stat(target), known)
    if plan.make_dir:
        repo.check_inside(plan.rel)
        os.makedirs(plan.full, exist_ok=True)
    action = "restored" if plan.writes or plan.removals or plan.chmods or plan.make_dir else "unchanged"
    return {"path": plan.rel, "kind": plan.pointer.kind, "oid": plan.pointer.oid, "action": action, "kept": kept}


def _rel(repo: Repo, full: str) -> str:
    return os.path.relpath(full, repo.root).replace(os.sep, "/")


def _prune_emptied(plan: _Plan) -> None:
    """Remove the directories inside a tracked dir that its removed files left empty, as git does."""
    top = plan.full
    for full in plan.removals:
        d = os.path.dirname(full)
        while d.startswith(top + os.sep):
            try:
                os.rmdir(d)
            except OSError:  # not empty (or gone): so are its parents
                break
            d = os.path.dirname(d)


def _prune_blocking_dirs(plan: _Plan) -> None:
    """Remove directories left empty where a file of the manifest has to go."""
    for target, _, _ in plan.writes:
        if os.path.isdir(target) and not os.path.islink(target):
            for dirpath, _, _ in os.walk(target, topdown=False):
                os.rmdir(dirpath)


def _refuse_unimported(repo: Repo, commit: str, rev: str, paths: list[str]) -> None:
    """Refuse, before anything is written, a checkout of REV that would leave a path at another version than REV's:
    one whose DVC or git-lfs version there the import could not bring in (all paths, or one of those named)."""
    from mvc.repo import foreign

    if not foreign.imported(repo):
        return
    missing = foreign.unimported_at(repo, commit)
    rels = [repo.rel(p) for p in paths]
    for path, version in sorted(missing.items()):
        if not rels or any(path == r or path.startswith(r.rstrip("/") + "/") or r == "." for r in rels):
            raise foreign.not_imported(repo, path, rev, version)


def _refuse_a_revision(repo: Repo, paths: list[str]) -> None:
    """A path that is no file here but a git revision (``mvc checkout HEAD~1``, as git checkout takes one):
    the error says how mvc takes it."""
    for p in paths:
        if os.path.lexists(p) or os.path.lexists(p + ptrfmt.SUFFIX):
            continue
        try:
            repo.git.resolve(p)
        except MvcError:
            continue
        raise PathError(
            f"{quoted(p)} is a git revision, not a tracked path: restore the models as of it with "
            f"{ptrfmt.suggested('mvc checkout --rev {}', p)} (one of them: "
            f"{ptrfmt.suggested('mvc checkout PATH --rev {}', p)})"
        )


def _raise_if_conflicted(repo: Repo, prel: str) -> None:
    try:
        load_pointer(repo, prel)
    except ConflictedPointer:
        raise
    except PointerError:
        pass  # (another problem: said where the pointer is read for the checkout)
