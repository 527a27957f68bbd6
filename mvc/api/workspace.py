"""The local workflow: init, add, status, checkout, get, ls, unprotect.

Rule for the user's files: a workspace file is only replaced or deleted when its current content
is in the cache (so it can always be got back); otherwise the command refuses, and with
``force`` it first stores that content in the cache (synced to disk) and reports its oid.
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterable
from typing import Any

from mvc import progress as progressmod
from mvc.api.repo import MVC_DIR, Repo
from mvc.errors import MvcError, ObjectMissing, PathError, PointerError, WorkspaceModified
from mvc.format import pointer as ptrfmt
from mvc.format.config import CONFIG
from mvc.objects import manifest as mf
from mvc.objects import oid as oids
from mvc.storage import local

CONFIG_TEMPLATE = """\
# mvc repository config, committed with the repo. Settings for this machine only (and secrets)
# go in .mvc/config.local.toml, which git ignores. See docs/config.md.
[cache]
type = ["reflink", "copy"]
"""
MVC_GITIGNORE = """\
# Everything here is local state (cache, state.db, config.local.toml, …) except the shared config.
/*
!/.gitignore
!/config.toml
"""


def _open(repo: Repo | None) -> Repo:
    return repo if repo is not None else Repo.find()


def _paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Accept one path or many (so ``mvc.add("model.pt")`` does what it says)."""
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


# -- init -------------------------------------------------------------------------------------
def init(path: str | None = None, *, stage: bool = True) -> dict[str, Any]:
    """Set up mvc in the git work tree containing path (default: cwd). Idempotent."""
    from mvc import git as gitmod

    root = gitmod.discover(path or os.getcwd())
    mvc_dir = os.path.join(root, MVC_DIR)
    created = not os.path.isdir(mvc_dir)
    os.makedirs(mvc_dir, exist_ok=True)
    config = os.path.join(mvc_dir, CONFIG)
    if not os.path.exists(config):
        local.atomic_write(config, CONFIG_TEMPLATE.encode())
    ignore = os.path.join(mvc_dir, ".gitignore")
    if not os.path.exists(ignore) or open(ignore, "rb").read() != MVC_GITIGNORE.encode():
        local.atomic_write(ignore, MVC_GITIGNORE.encode())
    if stage:
        gitmod.Git(root).stage([f"{MVC_DIR}/{CONFIG}", f"{MVC_DIR}/.gitignore"])
    return {"root": root, "created": created}


# -- selecting pointers -----------------------------------------------------------------------
def _matches(prel: str, rels: list[str]) -> bool:
    target = Repo.target_of(prel)
    return any(r == "." or r in (prel, target) or prel.startswith(r.rstrip("/") + "/") for r in rels)


def _select(repo: Repo, paths: Iterable[str], available: Iterable[str]) -> list[str]:
    """Pointer relpaths among available that the user's paths name (all when paths is empty)."""
    available = list(available)
    rels = [repo.rel(p) for p in paths]
    if not rels:
        return available
    chosen = [p for p in available if _matches(p, rels)]
    for r, shown in zip(rels, paths):
        if not any(_matches(p, [r]) for p in chosen):
            raise PathError(f"{shown} is not tracked by mvc: run 'mvc add {shown}' first")
    return chosen


def _not_utf8(path: str) -> bool:
    """Names from the filesystem or git may hold undecodable bytes; manifests and state.db are UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def load_pointer(repo: Repo, prel: str, data: bytes | None = None) -> ptrfmt.Pointer:
    if _not_utf8(prel):
        raise PointerError(f"{os.fsencode(prel)!r}: a pointer's path must be valid UTF-8: rename it with 'git mv'")
    if data is None:
        full = repo.check_inside(prel)
        if os.path.islink(full):
            raise PointerError(f"{prel} is a symlink: pointer files must be regular files; replace it with the file")
        with open(full, "rb") as f:
            data = f.read()
    return ptrfmt.loads(data, prel)


# -- looking at the workspace -----------------------------------------------------------------
# _File and _Plan are plain classes, not dataclasses: creating a dataclass costs ~1.5 ms of every
# command's start-up (it compiles its methods), and a _File is made per file of a directory.
class _File:
    __slots__ = ("foreign", "full", "linked", "oid", "st")

    def __init__(self, full: str, st: os.stat_result, oid: str | None, linked: bool = False, foreign: bool = False):
        self.full = full
        self.st = st
        self.oid = oid  # None: not known yet (must hash), or a symlink that does not point into the cache
        self.linked = linked  # shares the cache object (symlink or read-only hardlink): mode is the object's
        self.foreign = foreign  # a symlink elsewhere, never followed

    @property
    def executable(self) -> bool:
        return bool(self.st.st_mode & 0o100)


def _link_oid(repo: Repo, full: str) -> str | None:
    target = os.readlink(full)
    return repo.odb.oid_at(os.path.join(os.path.dirname(full), target))


def _look(repo: Repo, rel: str, full: str, st: os.stat_result, known: str | None) -> _File:
    if statmod.S_ISLNK(st.st_mode):
        oid = _link_oid(repo, full)
        return _File(full, st, oid, linked=oid is not None, foreign=oid is None)
    if not statmod.S_ISREG(st.st_mode):
        raise PathError(f"{rel} is not a regular file or directory: mvc tracks files and directories")
    linked = st.st_nlink > 1 and not st.st_mode & 0o222
    return _File(full, st, known, linked=linked)


def _hash(repo: Repo, rel: str, f: _File, bar: progressmod.Bar) -> str | None:
    if f.oid is None and not f.foreign:
        digest, st = local.hash_file(f.full, bar.update)
        f.oid = oids.from_digest(digest)
        repo.state.put(rel, st, f.oid)
    return f.oid


def _scan_dir(repo: Repo, rel: str, full: str) -> dict[str, _File]:
    """Every file below a tracked directory: {posix subpath: _File}, oids from the state cache."""
    known = repo.state.under(rel)
    found: dict[str, _File] = {}
    stack = [(full, "")]
    base = rel + "/"
    isreg = statmod.S_ISREG
    # the loop body runs once per file of every status / re-add: kept to the few operations it needs
    while stack:
        d, prefix = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                sub = prefix + e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, sub + "/"))
                    continue
                st = e.stat(follow_symlinks=False)
                row = known.get(base + sub)
                oid = row[3] if row and row[:3] == (st.st_ino, st.st_mtime_ns, st.st_size) else None
                if isreg(st.st_mode):  # what _look decides for a regular file
                    found[sub] = _File(e.path, st, oid, st.st_nlink > 1 and not st.st_mode & 0o222)
                else:
                    found[sub] = _look(repo, base + sub, e.path, st, oid)
    return found


def _total(files: Iterable[_File]) -> int:
    return sum(f.st.st_size for f in files if f.oid is None and not f.foreign)


# -- add --------------------------------------------------------------------------------------
def add(
    paths: Iterable[str],
    *,
    meta: dict[str, Any] | None = None,
    stage: bool = True,
    name: str | None = None,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> list[dict[str, Any]]:
    """Store files/directories in the cache and write their pointers. ``meta`` values of None remove keys.
    ``name``: the model name of the (single) path, recorded as ``[models.NAME] path`` in .mvc/config.toml."""
    repo = _open(repo)
    paths = _paths(paths)
    if not paths:
        raise PathError("nothing to add: name the files or directories to track, e.g. 'mvc add model.pt'")
    if name is not None:
        from mvc.format.tags import check_name

        check_name(name)
        if len(paths) != 1:
            raise PathError(f"--name names one model: add its path alone, e.g. 'mvc add {paths[0]} --name {name}'")
    rels = [repo.rel(p) for p in paths]
    existing = repo.git.ls_pointers()
    tracked_targets = {Repo.target_of(p) for p in existing}
    for rel, shown in zip(rels, paths):
        _check_addable(repo, rel, shown, tracked_targets)
    in_git = repo.git.tracked(rels)
    if in_git:
        rel = next(r for r in rels if any(g == r or g.startswith(r + "/") for g in in_git))
        flag = " -r" if os.path.isdir(repo.abs(rel)) else ""
        raise PathError(f"{rel} is already tracked by git: run 'git rm{flag} --cached {rel}' and then 'mvc add {rel}'")
    results, to_stage = [], []
    try:
        for rel in rels:
            res = _add_one(repo, rel, meta or {}, progress)
            results.append(res)
            to_stage.append(Repo.pointer_of(rel))
            ignore = _ignore(repo, rel)
            if ignore:
                to_stage.append(ignore)
    finally:
        repo.state.flush()
    if name is not None:
        results[0]["name"] = name
        results[0]["renamed_from"] = _name_model(repo, name, rels[0])
        to_stage.append(f"{MVC_DIR}/{CONFIG}")
    if stage:
        repo.git.stage(dict.fromkeys(to_stage))
    return results


def _name_model(repo: Repo, name: str, rel: str) -> str | None:
    """Map the model name to rel in .mvc/config.toml; returns the path it named before, if another."""
    from mvc.format import config as cfgfmt

    before = cfgfmt.models(repo.config.shared).get(name)
    if before != rel:
        cfgfmt.write_value(os.path.join(repo.mvc_dir, CONFIG), f"models.{name}.path", rel)
    return before if before not in (None, rel) else None


def _check_addable(repo: Repo, rel: str, shown: str, tracked_targets: set[str]) -> None:
    full = repo.abs(rel)
    if rel == ".":
        raise PathError("cannot add the repository root: add the model files or directories inside it")
    if rel.endswith(ptrfmt.SUFFIX):
        raise PathError(f"{shown} is a pointer file: add the path it tracks, {shown[:-4]}")
    if _not_utf8(rel):
        raise PathError(f"{os.fsencode(shown)!r} is not a valid UTF-8 name: rename it")
    if not os.path.lexists(full):
        raise PathError(f"{shown}: no such file or directory: check the path")
    if not os.access(full, os.R_OK):
        raise PathError(f"{shown}: permission denied: make it readable (chmod u+r)")
    for t in tracked_targets:
        if rel.startswith(t + "/"):
            raise PathError(f"{shown} is inside {t}, which mvc already tracks: re-add {t} instead")
        if t.startswith(rel + "/"):
            raise PathError(
                f"{shown} contains {t}, which mvc tracks on its own: "
                f"run 'mvc remove {t}' first, or add a different directory"
            )


def _add_one(repo: Repo, rel: str, meta: dict[str, Any], progress: progressmod.Factory) -> dict[str, Any]:
    full = repo.abs(rel)
    st = os.lstat(full)
    if statmod.S_ISDIR(st.st_mode):
        oid, size, nfiles = _add_dir(repo, rel, full, progress)
        kind = "dir"
    else:
        f = _look(repo, rel, full, st, repo.state.get(rel, st) if statmod.S_ISREG(st.st_mode) else None)
        if f.foreign:
            raise PathError(f"{rel} is a symlink: mvc tracks files and directories, add the real path")
        bar = progress(f"adding {rel}", st.st_size)
        try:
            oid = _store(repo, rel, f, bar)
        finally:
            bar.close()
        size, nfiles, kind = (os.stat(full).st_size, None, "file")
    changed = _write_pointer(repo, rel, kind, oid, size, nfiles, meta)
    return {"path": rel, "kind": kind, "oid": oid, "size": size, "nfiles": nfiles, "changed": changed}


def _store(repo: Repo, rel: str, f: _File, bar: progressmod.Bar) -> str:
    """Make sure f's content is in the cache (linking the workspace to it per cache.type); its oid."""
    if f.oid and repo.odb.exists(f.oid):
        return f.oid
    if f.linked and statmod.S_ISLNK(f.st.st_mode):
        raise ObjectMissing(
            f"{rel} links to object {f.oid}, which is not in the cache: "
            "run 'mvc fetch' or 'mvc checkout --force' to restore it"
        )
    oid, how, st = repo.odb.add_file(f.full, repo.config.link_types, progress=bar.update)
    if how == "hardlink" and os.stat(repo.odb.path(oid)).st_ino != st.st_ino:
        repo.odb.export(oid, f.full, ["hardlink"])
    elif how == "symlink":
        repo.odb.export(oid, f.full, ["symlink"])
    after = os.lstat(f.full)
    if statmod.S_ISREG(after.st_mode):
        repo.state.put(rel, after, oid)
    f.oid = oid
    return oid


def _old_manifest(repo: Repo, rel: str) -> dict[str, mf.Entry]:
    """The entries of the directory's current pointer, when its manifest is at hand."""
    try:
        p = load_pointer(repo, Repo.pointer_of(rel))
        if p.kind == "dir" and repo.odb.exists(p.oid):
            return {e.path: e for e in mf.loads(repo.odb.read_bytes(p.oid), p.oid)}
    except (OSError, MvcError):
        pass
    return {}


def _entries(repo: Repo, rel: str, files: dict[str, _File]) -> list[mf.Entry]:
    old = _old_manifest(repo, rel) if any(f.linked for f in files.values()) else {}
    out = []
    for sub, f in files.items():
        prev = old.get(sub)
        executable = prev.executable if f.linked and prev else (f.executable and not f.linked)
        size = os.stat(f.full).st_size if f.linked else f.st.st_size
        out.append(mf.Entry(sub, f.oid or "", size, executable))
    return out


def _add_dir(repo: Repo, rel: str, full: str, progress: progressmod.Factory) -> tuple[str, int, int]:
    files = _scan_dir(repo, rel, full)
    for sub, f in files.items():
        if f.foreign:
            raise PathError(
                f"{rel}/{sub} is a symlink out of the directory: mvc tracks regular files; "
                "replace it with the file or remove it"
            )
        # refused here, or the manifest would hold a path that every later read refuses
        why = "not valid UTF-8" if _not_utf8(sub) else mf.bad_relpath(sub)
        if why:
            raise PathError(f"{os.fsencode(rel + '/' + sub)!r}: a file name mvc cannot record ({why}): rename it")
    bar = progress(f"adding {rel}", _total(files.values()))
    try:
        for sub, f in sorted(files.items()):
            _store(repo, f"{rel}/{sub}", f, bar)
    finally:
        bar.close()
    entries = _entries(repo, rel, files)
    oid = repo.odb.add_bytes(mf.dumps(entries))
    return oid, sum(e.size for e in entries), len(entries)


def _write_pointer(
    repo: Repo, rel: str, kind: str, oid: str, size: int, nfiles: int | None, meta: dict[str, Any]
) -> bool:
    prel = Repo.pointer_of(rel)
    full = repo.abs(prel)
    old_bytes = None
    if os.path.lexists(full):
        try:
            p = load_pointer(repo, prel)
        except PointerError as e:
            raise PointerError(f"{e}; or delete {prel} and run 'mvc add {rel}' again") from None
        with open(full, "rb") as fh:
            old_bytes = fh.read()
        p.kind, p.oid, p.size, p.nfiles = kind, oid, size, nfiles
    else:
        p = ptrfmt.Pointer(kind, oid, size, nfiles)
    for k, v in meta.items():
        if v is None:
            p.meta.pop(k, None)
        else:
            p.meta[k] = v
    data = ptrfmt.dumps(p)
    if data == old_bytes:
        return False
    local.atomic_write(full, data)
    return True


def _gitignore_pattern(name: str) -> str:
    out = "".join("\\" + c if c in "[]*?\\" else c for c in name)
    if out[0] in "#!":
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return "/" + out


def _ignore_entry(rel: str) -> tuple[str, str]:
    """(relpath of the .gitignore beside rel, the pattern that ignores rel there)."""
    parent, _, name = rel.rpartition("/")
    return (f"{parent}/.gitignore" if parent else ".gitignore"), _gitignore_pattern(name)


def _ignore(repo: Repo, rel: str) -> str:
    """Add the tracked path to the .gitignore beside it (once); returns that .gitignore's relpath."""
    gi_rel, pattern = _ignore_entry(rel)
    full = repo.abs(gi_rel)
    try:
        with open(full, "rb") as fh:
            text = fh.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        text = ""
    if pattern not in text.splitlines():
        if text and not text.endswith("\n"):
            text += "\n"
        local.atomic_write(full, (text + pattern + "\n").encode("utf-8", "surrogateescape"))
    return gi_rel


# -- status -----------------------------------------------------------------------------------
def status(
    paths: Iterable[str] = (), *, repo: Repo | None = None, progress: progressmod.Factory = progressmod.null
) -> list[dict[str, Any]]:
    """Per tracked path: workspace 'ok' | 'modified' | 'missing', cache 'ok' | 'missing'."""
    repo = _open(repo)
    out = []
    try:
        for prel in _select(repo, _paths(paths), repo.git.ls_pointers()):
            p = load_pointer(repo, prel)
            rel = Repo.target_of(prel)
            ws, cache = path_status(repo, rel, p, progress)
            out.append({"path": rel, "kind": p.kind, "oid": p.oid, "size": p.size, "workspace": ws, "cache": cache})
    finally:
        repo.state.flush()
    return out


def _want(repo: Repo, p: ptrfmt.Pointer) -> dict[str, mf.Entry] | None:
    """A dir pointer's entries, or None when its manifest is not in the cache."""
    if not repo.odb.exists(p.oid):
        return None
    return {e.path: e for e in mf.loads(repo.odb.read_bytes(p.oid), p.oid)}


def path_status(
    repo: Repo, rel: str, p: ptrfmt.Pointer, progress: progressmod.Factory = progressmod.null
) -> tuple[str, str]:
    """(workspace, cache) of the tracked path rel against pointer p, which may come from the work tree,
    the git index or a revision: workspace 'ok' | 'modified' | 'missing', cache 'ok' | 'missing'."""
    full = repo.check_inside(rel)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        st = None
    if p.kind == "dir" and st is not None and statmod.S_ISDIR(st.st_mode):
        files = _scan_dir(repo, rel, full)
        if all(f.oid and not f.linked for f in files.values()):
            # The no-op case: every file known from the state cache. If the manifest they make hashes
            # to the pointer's oid, it *is* the manifest: no need to read and parse it from the cache.
            if oids.from_digest(local.hexdigest_bytes(mf.dumps(_entries(repo, rel, files)))) == p.oid:
                present = repo.odb.exists(p.oid) and not repo.odb.missing({f.oid for f in files.values()})
                return "ok", "ok" if present else "missing"
        return _status_dir(repo, rel, p, files, progress)
    if p.kind == "dir":
        want = _want(repo, p)
        cache = "ok" if want is not None and not repo.odb.missing({e.oid for e in want.values()}) else "missing"
    else:
        cache = "ok" if repo.odb.exists(p.oid) else "missing"
    if st is None:
        return "missing", cache
    if p.kind == "dir" or not (statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode)):
        return "modified", cache
    if st.st_size != p.size and not statmod.S_ISLNK(st.st_mode):
        return "modified", cache
    f = _look(repo, rel, full, st, repo.state.get(rel, st))
    bar = progress(f"checking {rel}", _total([f]))
    try:
        return ("ok" if _hash(repo, rel, f, bar) == p.oid else "modified"), cache
    finally:
        bar.close()


def _status_dir(
    repo: Repo, rel: str, p: ptrfmt.Pointer, files: dict[str, _File], progress: progressmod.Factory
) -> tuple[str, str]:
    want = _want(repo, p)
    cache = "ok" if want is not None and not repo.odb.missing({e.oid for e in want.values()}) else "missing"
    if want is not None and files.keys() != want.keys():
        return "modified", cache
    bar = progress(f"checking {rel}", _total(files.values()))
    try:
        for sub, f in files.items():
            if want is not None and not f.linked and f.st.st_size != want[sub].size:
                return "modified", cache
            if f.oid is None:  # not in the state cache
                _hash(repo, f"{rel}/{sub}", f, bar)
    finally:
        bar.close()
    if want is not None:
        same = all(
            f.oid == want[sub].oid and (f.linked or f.executable == want[sub].executable) for sub, f in files.items()
        )
    else:
        same = oids.from_digest(local.hexdigest_bytes(mf.dumps(_entries(repo, rel, files)))) == p.oid
    return ("ok" if same else "modified"), cache


# -- checkout ---------------------------------------------------------------------------------
class _Plan:
    def __init__(self, rel: str, full: str, pointer: ptrfmt.Pointer):
        self.rel = rel
        self.full = full
        self.pointer = pointer
        self.writes: list[tuple[str, str, bool]] = []  # (full path, oid, executable)
        self.sizes: dict[str, int] = {}  # oid -> size of what writes need (for a fetch's progress)
        self.chmods: list[tuple[str, bool]] = []
        self.removals: list[str] = []  # workspace files whose content is in the cache
        self.unsafe: list[tuple[str, str]] = []  # (relpath, full) not in the cache
        self.clear_dir = False  # a directory stands where the file goes


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
    repo = _open(repo)
    paths = _paths(paths)
    refs = _model_refs(repo, paths, rev)
    if refs:
        done: list[dict[str, Any]] = []
        for commit in dict.fromkeys(c for _, c in refs):
            done += checkout(
                [repo.abs(p) for p, c in refs if c == commit], rev=commit, force=force, repo=repo, progress=progress
            )
        return done
    try:
        if rev is not None:
            at_rev = repo.pointers_at(rev)
            chosen = _select(repo, paths, sorted(at_rev))
            for prel in chosen:
                repo.check_inside(prel)
            dirty = repo.git.unstaged([p for p in chosen if os.path.exists(repo.abs(p))])
            if dirty and not force:
                raise WorkspaceModified(
                    f"{dirty[0]} has changes not staged in git: stage them with "
                    f"'git add {dirty[0]}', or pass --force to replace it"
                )
        else:
            at_rev = {}
            chosen = _select(repo, paths, repo.git.ls_pointers())
        # plan from REV's pointers before git touches them, so a refused checkout changes nothing
        plans = [_plan(repo, prel, progress, at_rev.get(prel)) for prel in chosen]
        unsafe = [u for plan in plans for u in plan.unsafe]
        if unsafe and not force:
            rel = unsafe[0][0]
            more = f" (and {len(unsafe) - 1} more)" if len(unsafe) > 1 else ""
            raise WorkspaceModified(
                f"{rel}{more} has changes that are not in the cache: run 'mvc add' to keep "
                "them, or 'mvc checkout --force' to replace them (their content is kept in the cache)"
            )
        ensure_objects(repo, {oid: size for plan in plans for oid, size in plan.sizes.items()}, progress)
        if rev is not None:
            repo.git.checkout_paths(repo.resolve(rev), chosen)
        return [_apply(repo, plan, progress) for plan in plans]
    finally:
        repo.state.flush()


def ensure_objects(repo: Repo, needed: dict[str, int], progress: progressmod.Factory = progressmod.null) -> None:
    """Raise ObjectMissing unless every oid is in the cache, fetching missing ones from the default remote.
    needed: {oid: size} (size 0 where unknown; sizes only feed the progress bar)."""
    missing = repo.odb.missing(sorted(needed))
    if missing:
        from mvc.api import remote

        if remote.default_remote(repo) is not None:
            # raises, naming the remote, for what it lacks
            remote.fetch_objects(repo, {o: needed[o] for o in missing}, progress=progress)
            missing = repo.odb.missing(missing)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ObjectMissing(f"object {missing[0]}{more} not in the cache: run 'mvc fetch' (or 'mvc pull')")


def _plan(repo: Repo, prel: str, progress: progressmod.Factory, data: bytes | None = None) -> _Plan:
    p = load_pointer(repo, prel, data)
    rel = Repo.target_of(prel)
    full = repo.check_inside(rel)
    plan = _Plan(rel, full, p)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        st = None
    if p.kind == "file":
        if st is not None and statmod.S_ISDIR(st.st_mode):
            _plan_removals(repo, rel, _scan_dir(repo, rel, full), plan, progress)
            plan.clear_dir = True
            st = None
        if st is None:
            plan.writes.append((full, p.oid, False))
            plan.sizes[p.oid] = p.size
            return plan
        f = _look(repo, rel, full, st, repo.state.get(rel, st) if statmod.S_ISREG(st.st_mode) else None)
        bar = progress(f"checking {rel}", _total([f]))
        try:
            cur = _hash(repo, rel, f, bar)
        finally:
            bar.close()
        if cur != p.oid:
            _judge(repo, rel, full, cur, plan)
            plan.writes.append((full, p.oid, False))
            plan.sizes[p.oid] = p.size
        return plan
    # a directory
    ensure_objects(repo, {p.oid: 0}, progress)
    want = {e.path: e for e in mf.loads(repo.odb.read_bytes(p.oid), p.oid)}
    if st is not None and not statmod.S_ISDIR(st.st_mode):
        f = _look(repo, rel, full, st, repo.state.get(rel, st) if statmod.S_ISREG(st.st_mode) else None)
        _judge(repo, rel, full, _hash(repo, rel, f, progressmod.NULL), plan)
        plan.removals.append(full)
        files: dict[str, _File] = {}
    else:
        files = _scan_dir(repo, rel, full) if st is not None else {}
    extra = {sub: f for sub, f in files.items() if sub not in want}
    _plan_removals(repo, rel, extra, plan, progress)
    bar = progress(f"checking {rel}", _total(f for sub, f in files.items() if sub in want))
    try:
        for sub, e in sorted(want.items()):
            target = os.path.join(full, *sub.split("/"))
            f = files.get(sub)
            if f is None:
                plan.writes.append((target, e.oid, e.executable))
                plan.sizes[e.oid] = e.size
                continue
            cur = _hash(repo, f"{rel}/{sub}", f, bar)
            if cur != e.oid:
                _judge(repo, f"{rel}/{sub}", f.full, cur, plan)
                plan.writes.append((target, e.oid, e.executable))
                plan.sizes[e.oid] = e.size
            elif not f.linked and f.executable != e.executable:
                plan.chmods.append((target, e.executable))
    finally:
        bar.close()
    return plan


def _plan_removals(repo: Repo, rel: str, files: dict[str, _File], plan: _Plan, progress: progressmod.Factory) -> None:
    bar = progress(f"checking {rel}", _total(files.values()))
    try:
        for sub, f in files.items():
            _judge(repo, f"{rel}/{sub}", f.full, _hash(repo, f"{rel}/{sub}", f, bar), plan)
            plan.removals.append(f.full)
    finally:
        bar.close()


def _judge(repo: Repo, rel: str, full: str, cur: str | None, plan: _Plan) -> None:
    """Note a workspace file about to be replaced whose content the cache does not hold."""
    if cur is None or not repo.odb.exists(cur):
        plan.unsafe.append((rel, full))


def _apply(repo: Repo, plan: _Plan, progress: progressmod.Factory) -> dict[str, Any]:
    kept = []
    for rel, full in plan.unsafe:
        if os.path.islink(full) or not os.path.isfile(full):
            continue  # a symlink elsewhere: replacing the link loses no data
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
    total = sum(os.path.getsize(repo.odb.path(oid)) for _, oid, _ in plan.writes)
    bar = progress(f"checking out {plan.rel}", total)
    link_types = repo.config.link_types
    try:
        for target, oid, executable in plan.writes:
            repo.check_inside(os.path.relpath(target, repo.root).replace(os.sep, "/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            repo.odb.export(oid, target, link_types, executable=executable, progress=bar.update)
            st = os.lstat(target)
            if statmod.S_ISREG(st.st_mode):
                repo.state.put(os.path.relpath(target, repo.root).replace(os.sep, "/"), st, oid)
    finally:
        bar.close()
    for target, executable in plan.chmods:
        mode = os.stat(target).st_mode
        os.chmod(target, (mode | 0o111 & ~_umask()) if executable else mode & ~0o111)
    action = "restored" if plan.writes or plan.removals or plan.chmods else "unchanged"
    return {"path": plan.rel, "kind": plan.pointer.kind, "oid": plan.pointer.oid, "action": action, "kept": kept}


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- get, ls, unprotect -----------------------------------------------------------------------
def _model_refs(repo: Repo, paths: list[str], rev: str | None) -> list[tuple[str, str]]:
    """[(model path, commit)] when paths are registry revisions rather than paths, else []."""
    maybe = [
        p for p in paths if ("@" in p or "#" in p) and not os.path.lexists(p) and not os.path.lexists(p + ptrfmt.SUFFIX)
    ]
    if not maybe:
        return []
    from mvc.api import registry

    refs = [(p, registry.model_ref(repo, p)) for p in maybe]
    found = [(p, r) for p, r in refs if r is not None]
    if not found:
        return []
    if len(found) != len(paths):
        other = next(p for p in paths if p not in dict(found))
        raise PathError(
            f"{other} is not a model revision like {found[0][0]}: give paths and model revisions in separate commands"
        )
    if rev is not None:
        raise PathError(f"{found[0][0]} names a revision already: drop --rev {rev}")
    return [r for _, r in found]


def _pointer_for(repo: Repo, path: str, rev: str | None) -> tuple[str, ptrfmt.Pointer]:
    rel = repo.rel(path)
    prel = rel if rel.endswith(ptrfmt.SUFFIX) else Repo.pointer_of(rel)
    if rev is None:
        if not os.path.isfile(repo.abs(prel)):
            raise PathError(f"{path} is not tracked by mvc: run 'mvc add {path}' first")
        return prel, load_pointer(repo, prel)
    at_rev = repo.pointers_at(rev)
    if prel not in at_rev:
        raise PathError(f"{path} is not tracked by mvc at {rev}: check the path with 'mvc ls --rev {rev}'")
    return prel, load_pointer(repo, prel, at_rev[prel])


def get(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    rev: str | None = None,
    force: bool = False,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Write the tracked path as of rev to out, touching neither the work tree nor the pointers.
    path may be a registry revision (``churn@v1.2.0``, ``churn#prod``): that model's path at that revision."""
    repo = _open(repo)
    path = os.fspath(path)
    refs = _model_refs(repo, [path], rev)
    if refs:
        path, rev = repo.abs(refs[0][0]), refs[0][1]
    prel, p = _pointer_for(repo, path, rev)
    out = os.path.abspath(out)
    if os.path.lexists(out) and not force:
        raise PathError(f"{out} already exists: choose another output path or pass --force to replace it")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    ensure_objects(repo, {p.oid: p.size if p.kind == "file" else 0}, progress)  # before the bar: a fetch draws its own
    entries = mf.loads(repo.odb.read_bytes(p.oid), p.oid) if p.kind == "dir" else []
    ensure_objects(repo, {e.oid: e.size for e in entries}, progress)
    bar = progress(f"writing {out}", p.size)
    try:
        if p.kind == "file":
            repo.odb.export(p.oid, out, ("reflink", "copy"), progress=bar.update)
        else:
            import shutil  # not at the top: see _apply

            tmp = local.tmp_name(parent, os.path.basename(out))
            try:
                os.mkdir(tmp)
                for e in entries:
                    target = os.path.join(tmp, *e.path.split("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    repo.odb.export(e.oid, target, ("reflink", "copy"), executable=e.executable, progress=bar.update)
                if os.path.lexists(out):
                    aside = local.tmp_name(parent, "old")
                    os.rename(out, aside)
                    os.rename(tmp, out)
                    (shutil.rmtree if os.path.isdir(aside) and not os.path.islink(aside) else os.unlink)(aside)
                else:
                    os.rename(tmp, out)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    finally:
        bar.close()
    return {"path": Repo.target_of(prel), "out": out, "kind": p.kind, "oid": p.oid, "size": p.size}


def describe(prel: str, p: ptrfmt.Pointer) -> dict[str, Any]:
    d: dict[str, Any] = {"path": Repo.target_of(prel), "kind": p.kind, "size": p.size, "oid": p.oid}
    if p.kind == "dir":
        d["nfiles"] = p.nfiles
    if p.meta:
        d["meta"] = p.meta
    return d


def ls(*, rev: str | None = None, repo: Repo | None = None) -> list[dict[str, Any]]:
    """Tracked paths with kind, size and oid, in the work tree or at a revision."""
    repo = _open(repo)
    if rev is None:
        return [describe(prel, load_pointer(repo, prel)) for prel in repo.git.ls_pointers()]
    at_rev = repo.pointers_at(rev)
    return [describe(prel, load_pointer(repo, prel, data)) for prel, data in sorted(at_rev.items())]


def unprotect(
    paths: Iterable[str], *, repo: Repo | None = None, progress: progressmod.Factory = progressmod.null
) -> list[str]:
    """Replace cache links (hardlink/symlink) by writable copies so the files can be edited in place."""
    repo = _open(repo)
    paths = _paths(paths)
    if not paths:
        raise PathError("name the tracked files or directories to unprotect, e.g. 'mvc unprotect model.pt'")
    done = []
    for prel in _select(repo, paths, repo.git.ls_pointers()):
        rel = Repo.target_of(prel)
        full = repo.check_inside(rel)
        if not os.path.lexists(full):
            continue
        executable: dict[str, bool] = {}
        if os.path.isdir(full) and not os.path.islink(full):
            files = {f"{rel}/{sub}": f for sub, f in _scan_dir(repo, rel, full).items()}
            executable = {f"{rel}/{sub}": e.executable for sub, e in _old_manifest(repo, rel).items()}
        else:
            files = {rel: _look(repo, rel, full, os.lstat(full), None)}
        for frel, f in files.items():
            if not f.linked:
                continue
            oid = f.oid if statmod.S_ISLNK(f.st.st_mode) else _hash(repo, frel, f, progressmod.NULL)
            bar = progress(f"unprotecting {frel}", os.path.getsize(f.full))
            try:
                repo.odb.export(oid, f.full, ("copy",), executable=executable.get(frel, False), progress=bar.update)
            finally:
                bar.close()
            done.append(frel)
    repo.state.flush()
    return done


def remove(paths: Iterable[str], *, stage: bool = True, repo: Repo | None = None) -> list[str]:
    """Stop tracking paths: delete their pointers and .gitignore entries; files and cache stay."""
    repo = _open(repo)
    paths = _paths(paths)
    if not paths:
        raise PathError("name the tracked paths to stop tracking, e.g. 'mvc remove model.pt'")
    chosen = _select(repo, paths, repo.git.ls_pointers())
    ignores = []
    for prel in chosen:
        rel = Repo.target_of(prel)
        os.unlink(repo.check_inside(prel))
        gi_rel, pattern = _ignore_entry(rel)
        full = repo.abs(gi_rel)
        if os.path.exists(full):
            with open(full, "rb") as fh:
                lines = fh.read().decode("utf-8", "surrogateescape").splitlines(keepends=True)
            kept = [line for line in lines if line.rstrip("\n") != pattern]
            if kept != lines:
                local.atomic_write(full, "".join(kept).encode("utf-8", "surrogateescape"))
                ignores.append(gi_rel)
    if stage and chosen:
        repo.git.run("rm", "--cached", "-q", "--ignore-unmatch", "--", *[f":(literal){p}" for p in chosen])
        repo.git.stage(dict.fromkeys(ignores))
    return [Repo.target_of(p) for p in chosen]
