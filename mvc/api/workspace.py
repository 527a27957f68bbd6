"""The local workflow's writers: init, add. Status and ls are ``mvc.api.listing``; checkout is
``mvc.api.checkout``."""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mvc import progress as progressmod
from mvc.api import record
from mvc.errors import MvcError, ObjectMissing, PathError, PointerError
from mvc.format import pointer as ptrfmt
from mvc.format.config import CONFIG, LOCK, MVC_DIR
from mvc.format.pointer import suggested
from mvc.objects import manifest as mf
from mvc.objects import oid as oids
from mvc.repo import ignores as gitignores
from mvc.repo import storing, worktree
from mvc.repo.repository import Repo, exclude_local_state, open_repo, quoted, refuse_linked, shell_quoted
from mvc.repo.selection import artifacts, check_case, check_is_pointer, load_pointer, not_utf8, user_paths
from mvc.repo.worktree import File, entries_of, look, scan_dir, total
from mvc.storage import fileio
from mvc.storage.lock import locked

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
!/imported.toml
"""


# -- init -------------------------------------------------------------------------------------
def init(path: str | None = None, *, stage: bool = True) -> dict[str, Any]:
    """Set up mvc in the git work tree containing path (default: cwd). Idempotent."""
    from mvc import git as gitmod

    root = gitmod.discover(path or os.getcwd())
    mvc_dir = os.path.join(root, MVC_DIR)
    refuse_linked(mvc_dir)
    created = not os.path.isdir(mvc_dir)
    os.makedirs(mvc_dir, exist_ok=True)
    config = os.path.join(mvc_dir, CONFIG)
    if not os.path.exists(config):
        fileio.atomic_write(config, CONFIG_TEMPLATE.encode())
    ignore = os.path.join(mvc_dir, ".gitignore")
    if os.path.islink(ignore) or not os.path.exists(ignore) or gitignores.read_text(ignore) != MVC_GITIGNORE:
        fileio.atomic_write(ignore, MVC_GITIGNORE.encode())  # (a link is replaced, never followed)
    exclude_local_state(root, gitmod.Git(root))
    if stage:
        gitmod.Git(root).stage([f"{MVC_DIR}/{CONFIG}", f"{MVC_DIR}/.gitignore"])
    return {"root": root, "created": created}


# -- add --------------------------------------------------------------------------------------
def add(
    paths: Iterable[str],
    *,
    meta: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None = None,
    stage: bool = True,
    name: str | None = None,
    base: str | None = None,
    auto: bool | None = None,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> list[dict[str, Any]]:
    """Store files/directories in the cache and write their pointers. ``meta``: a table deep-merged into each
    pointer's [meta] (or tables, merged in order); None removes a key (docs/FORMAT.md, "The record").
    ``auto``: record [auto] of a new version (default: config ``core.auto_record``, true).
    ``name``: the model name of the (single) path, recorded as ``[models.NAME] path`` in .mvc/config.toml.
    ``base``: a revision whose version of each path a push stores the new one as deltas against (by
    default the previous version; docs/remotes.md, "Large files travel as chunks and deltas")."""
    repo = open_repo(repo)
    paths = user_paths(paths)
    if not paths:
        raise PathError("nothing to add: name the files or directories to track, e.g. 'mvc add model.pt'")
    if name is not None:
        from mvc.format.tags import check_name

        check_name(name)
        if len(paths) != 1:
            one = ptrfmt.in_quotes(f"mvc add {shell_quoted(paths[0])} --name {name}")
            raise PathError(f"--name names one model: add its path alone, e.g. {one}")
    rels = [repo.rel(p) for p in paths]
    existing = repo.git.ls_pointers()
    tracked_targets = {Repo.target_of(p) for p in existing}
    for rel, shown in zip(rels, paths, strict=False):
        _check_addable(repo, rel, shown, tracked_targets)
    check_case(repo, rels, paths, tracked_targets)
    in_git = repo.git.tracked(rels)
    if in_git:
        rel = next(r for r in rels if any(g == r or g.startswith(r + "/") for g in in_git))
        flag = " -r" if os.path.isdir(repo.abs(rel)) else ""
        rm, add = (
            ptrfmt.in_quotes(c) for c in (f"git rm{flag} --cached {shell_quoted(rel)}", f"mvc add {shell_quoted(rel)}")
        )
        raise PathError(f"{rel} is already tracked by git: run {rm} and then {add}")
    based = _bases_at(repo, base, rels) if base is not None else {}
    gitignores.check(repo, rels)
    layers = record.layers(meta)  # checked before anything is stored
    recorder = record.Auto(repo) if (repo.config.auto_record if auto is None else auto) else None
    results, to_stage = [], []
    # stored, then named by pointers: a gc of the cache waits meanwhile (ODB.adding)
    with repo.odb.adding():
        try:
            dirs = {rel: repo.abs(rel) for rel in rels if statmod.S_ISDIR(os.lstat(repo.abs(rel)).st_mode)}
            fused = storing.scan_and_store(
                repo, dirs, progress, worktree.check_names
            )  # a first add of many files: one pass
            scanned: dict[str, dict[str, File]] = {}
            stored_ahead: set[str] = set()
            if fused is not None:
                stored_now = repo.odb.stored_now
                for rel, got in fused.items():
                    if isinstance(got, storing.Added):
                        stored_ahead.update([rel] if got.stored else [])
                        continue
                    scanned[rel] = worktree.checked(rel, got)  # (a symlink out of the directory: seen once stat'ed)
                    if any(stored_now(f.oid or "") for f in got.values()):
                        stored_ahead.add(rel)
            else:
                scanned = _scan_dirs(repo, rels)  # several directories: every name checked, their files stored at once
                stored_ahead = storing.store_dirs(repo, scanned, progress) if scanned else set()
            for rel in rels:
                ahead: tuple[dict[str, File], bool] | storing.Added | None = None
                pre = fused.get(rel) if fused is not None else None
                if isinstance(pre, storing.Added):
                    ahead = pre
                elif rel in scanned:
                    ahead = (scanned[rel], rel in stored_ahead)
                res = _add_one(repo, rel, layers, recorder, progress, ahead)
                if rel in based:
                    _set_bases(repo, res, based[rel])
                results.append(res)
                to_stage.append(Repo.pointer_of(rel))
                ignore = gitignores.add(repo, rel)
                if ignore:
                    to_stage.append(ignore)
        finally:
            repo.state.flush()
    if name is not None:
        results[0]["name"] = name
        results[0]["named"], results[0]["renamed_from"] = _name_model(repo, name, rels[0])
        to_stage.append(f"{MVC_DIR}/{CONFIG}")
    if stage:
        # mvc processes take turns at the index through the lock (no git index.lock collisions among them)
        with locked(os.path.join(repo.mvc_dir, LOCK), "the git index"):
            repo.git.stage(dict.fromkeys(to_stage))
        _note_added(repo, [Repo.pointer_of(r["path"]) for r in results if r["changed"]])
    return results


def _note_added(repo: Repo, prels: list[str]) -> None:
    """Remember the pointers this add staged (checkout --rev refuses to drop one that no commit holds)."""
    from mvc.storage.fileio import hexdigest_bytes

    rows = []
    for prel in prels:
        try:
            with open(repo.abs(prel), "rb") as f:
                rows.append((prel, hexdigest_bytes(f.read())))
        except OSError:
            continue
    repo.state.note_added(rows)


def _bases_at(repo: Repo, rev: str, rels: list[str]) -> dict[str, str | dict[str, str]]:
    """{relpath: the object of its file version at rev, or of a directory: {path in it: object} at rev},
    refusing a path rev does not hold. A directory's manifest at rev comes from the cache, or the default remote."""
    at = repo.pointers_at(rev)
    found: dict[str, str | dict[str, str]] = {}
    for rel in rels:
        data = at.get(Repo.pointer_of(rel))
        p = ptrfmt.loads(data, f"{Repo.pointer_of(rel)} at {rev}") if data is not None else None
        kind = "dir" if os.path.isdir(repo.abs(rel)) else "file"
        if p is None or p.kind != kind:
            raise PathError(
                f"{rev} has no {'directory' if kind == 'dir' else 'file'} version of {rel} to store it against: "
                "name a revision where 'mvc ls --rev REV' lists it, or leave out --base"
            )
        if kind == "file":
            found[rel] = p.oid
            continue
        from mvc.repo.remotes import ensure_objects

        ensure_objects(repo, {p.oid: 0}, labels={p.oid: (f"the manifest of directory {rel} at {rev}", rel)})
        found[rel] = {e.path: e.oid for e in mf.loads(repo.odb.read_bytes(p.oid), p.oid)}
    return found


def _set_bases(repo: Repo, res: dict[str, Any], base: str | dict[str, str]) -> None:
    """Record the delta bases --base chose for what add just stored: a file's version at the revision, or for
    each file of a directory the one at its path in that directory there (none for a file new since)."""
    if isinstance(base, str):
        if res["kind"] == "file" and res["oid"] != base:
            repo.state.set_base(res["oid"], base)
        return
    if res["kind"] != "dir":
        return
    for e in mf.loads(repo.odb.read_bytes(res["oid"]), res["oid"]):
        b = base.get(e.path)
        if b is not None and b != e.oid:
            repo.state.set_base(e.oid, b)


def check_add(path: str, *, name: str | None = None, repo: Repo | None = None) -> str:
    """What ``add([path], name=name)`` refuses whatever the file holds, checked before the file exists (for
    ``mvc.save``, which writes it): the name, the path's rules, what mvc and git track. Returns the relpath."""
    repo = open_repo(repo)
    if name is not None:
        from mvc.format.tags import check_name

        check_name(name)
    rel = repo.rel(path)
    tracked_targets = {Repo.target_of(p) for p in repo.git.ls_pointers()}
    _check_addable(repo, rel, path, tracked_targets, exists=False)
    if repo.git.tracked([rel]):
        raise PathError(f"{rel} is already tracked by git: run 'git rm --cached {rel}' and then save again")
    return rel


def _name_model(repo: Repo, name: str, rel: str) -> tuple[bool, str | None]:
    """Map the model name to rel in .mvc/config.toml; returns (whether the config changed, the path the name
    named before, if another)."""
    from mvc.format import config as cfgfmt

    before = cfgfmt.models(repo.config.shared).get(name)
    if before != rel:
        cfgfmt.write_value(os.path.join(repo.mvc_dir, CONFIG), f"models.{name}.path", rel)
    return before != rel, before if before not in (None, rel) else None


def _check_addable(repo: Repo, rel: str, shown: str, tracked_targets: set[str], exists: bool = True) -> None:
    full = repo.abs(rel)
    if rel == ".":
        raise PathError("cannot add the repository root: add the model files or directories inside it")
    if rel.endswith(ptrfmt.SUFFIX):
        if rel.rpartition("/")[2] == ptrfmt.SUFFIX or os.path.isdir(full):
            raise PathError(f"{shown}: mvc tracks no name ending in {ptrfmt.SUFFIX}, its pointers' suffix: rename it")
        raise PathError(f"{shown} is a pointer file: add the path it tracks, {shown[:-4]}")
    if not_utf8(rel):
        raise PathError(f"{quoted(shown)} is not a valid UTF-8 name: rename it")
    if ptrfmt.has_control(rel):  # a newline would make two .gitignore lines: the weights reach git
        raise PathError(f"{quoted(shown)} has a control character in its name, which .gitignore cannot hold: rename it")
    why = repo.untrackable(rel)
    if why is not None:
        raise PathError(f"{shown}: mvc never tracks this path ({why}): choose another path")
    if len(os.fsencode(os.path.basename(full))) + len(ptrfmt.SUFFIX) > 255:
        raise PathError(f"{shown}: its pointer's name would be longer than 255 bytes: choose a shorter name")
    if os.path.isdir(full + ptrfmt.SUFFIX):
        raise PathError(f"{shown}{ptrfmt.SUFFIX} is a directory, where {shown}'s pointer goes: move it away")
    if exists and not os.path.lexists(full):
        if len(os.fsencode(full)) >= 4096:
            raise PathError(f"{shown}: the path is longer than this system allows: work nearer the repository's root")
        raise PathError(f"{shown}: no such file or directory: check the path")
    if exists and not os.access(full, os.R_OK):
        raise PathError(f"{shown}: permission denied: make it readable (chmod u+r)")
    for t in tracked_targets:
        if rel.startswith(t + "/"):
            raise PathError(f"{shown} is inside {t}, which mvc already tracks: re-add {t} instead")
        if t.startswith(rel + "/"):
            check_is_pointer(repo, Repo.pointer_of(t), f"so {shown} cannot be added as it is")
            raise PathError(
                f"{shown} contains {t}, which mvc tracks on its own: "
                f"run {suggested('mvc remove {}', t)} first, or add a different directory"
            )


def _add_one(
    repo: Repo,
    rel: str,
    layers: list[dict[str, Any]],
    recorder: record.Auto | None,
    progress: progressmod.Factory,
    ahead: tuple[dict[str, File], bool] | storing.Added | None = None,
) -> dict[str, Any]:
    full = repo.abs(rel)
    st = os.lstat(full)
    entries: list[mf.Entry] | None = None  # a directory's, as its manifest lists them
    executable: bool | None = False
    if statmod.S_ISDIR(st.st_mode):
        oid, entries, stored = _add_dir(repo, rel, full, progress, ahead)
        size, nfiles, kind = sum(e.size for e in entries), len(entries), "dir"
    else:
        f = look(repo, rel, full, st, repo.state.get(rel, st) if statmod.S_ISREG(st.st_mode) else None)
        if f.foreign:
            raise PathError(f"{rel} is a symlink: mvc tracks files and directories, add the real path")
        had = _cached_before(repo, rel) if f.oid is None else None
        bar = progress(f"adding {rel}", st.st_size)
        try:
            oid, new = storing.store(repo, rel, f, bar)
        finally:
            bar.close()
        stored = new if new is not None else oid != had
        size, nfiles, kind = (os.stat(full).st_size, None, "file")
        # the owner's execute bit, as the file had it (a link's mode is the object's: the pointer's kept)
        executable = None if f.linked else bool(st.st_mode & 0o100)
    changed = _write_pointer(repo, rel, kind, oid, size, nfiles, layers, recorder, entries, executable)
    if kind == "file" and changed and os.path.islink(full):  # its object's stat, freshened: what vouches for it
        repo.state.put(rel, worktree.link_stat(full), oid)
    return {
        "path": rel,
        "kind": kind,
        "oid": oid,
        "size": size,
        "nfiles": nfiles,
        "changed": changed,
        "stored": stored,
    }


def _cached_before(repo: Repo, rel: str) -> str | None:
    """The oid of the file's current pointer when the cache holds it (before the file is hashed, so that
    an unchanged pointer can tell whether this add stored its content)."""
    try:
        p = load_pointer(repo, Repo.pointer_of(rel))
    except (OSError, MvcError):
        return None
    return p.oid if p.kind == "file" and repo.odb.exists(p.oid) else None


def _scan_dirs(repo: Repo, rels: list[str]) -> dict[str, dict[str, File]]:
    """{rel: its files, scanned and checked} of the directories among rels, when there are several (their
    files are then stored together: ``storing.store_dirs``); empty otherwise."""
    dirs = [rel for rel in rels if statmod.S_ISDIR(os.lstat(repo.abs(rel)).st_mode)]
    return {rel: worktree.checked(rel, scan_dir(repo, rel, repo.abs(rel))) for rel in dirs} if len(dirs) > 1 else {}


def _add_dir(
    repo: Repo,
    rel: str,
    full: str,
    progress: progressmod.Factory,
    ahead: tuple[dict[str, File], bool] | storing.Added | None = None,
) -> tuple[str, list[mf.Entry], bool]:
    """ahead: the directory's files as ``_scan_dirs`` found them, and whether ``storing.store_dirs`` stored any; or
    what ``storing.scan_and_store`` stored of it."""
    if isinstance(ahead, storing.Added):
        entries, stored, fp = ahead.entries, ahead.stored, ahead.fp
    else:
        files = worktree.checked(rel, scan_dir(repo, rel, full)) if ahead is None else ahead[0]
        placed = repo.odb.placed  # objects the cache lacked, stored since: whether this add stored anything
        bar = progress(f"adding {rel}", total(files.values()))
        links = repo.config.link_types
        try:
            if ahead is None or not ahead[1]:  # (what was stored ahead, was stored whole: nothing left to ask)
                storing.store_all(repo, rel, files, bar, links)
        finally:
            bar.close()
        stored = repo.odb.placed > placed or (ahead is not None and ahead[1])
        entries = entries_of(repo, rel, files)
        fp = worktree.fingerprint_of_files(files)
    data = mf.dumps(entries)
    oid = oids.from_digest(fileio.hexdigest_bytes(data))
    if not repo.odb.exists(oid):
        repo.odb.install_bytes(data, oid)
        stored = True
    worktree.remember(repo, rel, fp, oid)  # for the next status
    return oid, entries, stored


def _write_pointer(
    repo: Repo,
    rel: str,
    kind: str,
    oid: str,
    size: int,
    nfiles: int | None,
    layers: list[dict[str, Any]],
    recorder: record.Auto | None,
    entries: list[mf.Entry] | None = None,
    executable: bool | None = False,
) -> bool:
    """Write rel's pointer (its meta merged with layers); executable None: as the pointer there says. Returns
    whether its bytes changed."""
    prel = Repo.pointer_of(rel)
    full = repo.abs(prel)
    old_bytes = None
    before: tuple[str, str] | None = None  # (kind, oid) of the pointer replaced
    if os.path.lexists(full):
        try:
            p = load_pointer(repo, prel)
        except PointerError as e:
            raise PointerError(
                f"{e}; or delete {prel} and run {ptrfmt.in_quotes('mvc add ' + shell_quoted(rel))} again"
            ) from None
        with open(full, "rb") as fh:
            old_bytes = fh.read()
        before = (p.kind, p.oid)
        had = {a[2] for a in artifacts(p.meta)}  # (kept by the pointer replaced: not freshened again)
        p.kind, p.oid, p.size, p.nfiles = kind, oid, size, nfiles
    else:
        p = ptrfmt.Pointer(kind, oid, size, nfiles)
        had = set()
    if executable is not None or kind != "file":
        p.executable = bool(executable) and kind == "file"
    for layer in layers:
        p.meta = record.apply(p.meta, layer)
    if before is None or before[1] != oid:  # a new version: an [auto] kept would describe the one before
        p.auto = recorder.of(rel, kind, oid, entries) if recorder is not None else {}
    data = ptrfmt.dumps(p)
    if data == old_bytes:
        return False
    _freshen(repo, rel, kind, oid, before, entries, [a[2] for a in artifacts(p.meta) if a[2] not in had])
    fileio.atomic_write(full, data)
    return True


def _freshen(
    repo: Repo,
    rel: str,
    kind: str,
    oid: str,
    before: tuple[str, str] | None,
    entries: list[mf.Entry] | None,
    more: Sequence[str] = (),
) -> None:
    """Before a pointer names objects (anew): mark them used, so that a gc running meanwhile keeps them
    (docs/FORMAT.md, "What gc keeps"); one that is gone already is an error, not a dangling pointer. Of a
    directory (``entries``: its manifest's, when the caller has them), the entries the pointer it replaces named
    already are not (that pointer kept them). ``more``: other objects the pointer names (a training run's
    artifacts, stored when it recorded them, maybe hours ago)."""
    todo = [oid, *more]
    if kind == "dir":
        had: set[str] = set()
        if before is not None and before[0] == "dir" and repo.odb.exists(before[1]):
            try:
                had = mf.oids_of(repo.odb.read_bytes(before[1]), before[1])
            except MvcError:
                had = set()
        now = (
            dict.fromkeys(e.oid for e in entries) if entries is not None else mf.oids_of(repo.odb.read_bytes(oid), oid)
        )
        stored_now = repo.odb.stored_now  # written by this add: as fresh as can be (100,000 calls saved)
        todo += [o for o in now if o not in had and not stored_now(o)]
    for o in todo:
        if repo.odb.freshen(o):
            continue
        if o in more:
            raise ObjectMissing(
                f"{rel}: its record names artifact {o}, which left the cache since it was stored (a 'mvc gc' ran?): "
                "store it again (run.artifact) before the pointer is written"
            )
        raise ObjectMissing(
            f"{rel}: object {o} left the cache while it was being added (a 'mvc gc' ran?): run {ptrfmt.in_quotes('mvc add ' + shell_quoted(rel))} again"
        )
