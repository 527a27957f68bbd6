"""Lineage and comparison: ``mvc log`` (the commits that changed a model) and ``mvc diff``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mvc import progress as progressmod
from mvc.errors import ConfigError, MvcError, PathError, PointerError, RegistryError
from mvc.format import config as cfgfmt
from mvc.format import pointer as ptrfmt
from mvc.format import tags as tagfmt
from mvc.format.config import CONFIG_PATH
from mvc.format.pointer import SUFFIX, suggested
from mvc.git import POINTER_GLOB, blob_id
from mvc.repo.models import GTO_FILES, iso_date, load, models_at

if TYPE_CHECKING:
    from mvc.repo.repository import Repo


def _repo(repo: Repo | None) -> Repo:
    from mvc.repo.repository import open_repo  # here: reading the registry needs git alone

    return open_repo(repo)


def log(target: str, *, rev: str | None = "HEAD", repo: Repo | None = None) -> list[dict[str, Any]]:
    """Every commit reachable from rev that changed the model's pointer, newest first.

    target: a model name (followed through renames, as each commit's .mvc/config.toml maps it, and before it
    was named, through the history of the path it was named at) or a path mvc tracks or tracked (followed
    through the renames of its pointer that git detects, as ``mvc mv`` stages them). Each entry: {commit,
    author, email, date, message, change: added | modified | removed | moved, path, names, kind, oid, size,
    meta, versions, stages, also}: ``also``, oldest first, the versions and stages ({commit, versions,
    stages}) registered on later commits that did not change the model and so hold this entry's pointer (a
    release of a code change, say), which the log lists no line for. In a shallow clone, the oldest entry has
    ``history_cut`` True when its commit is one the clone holds without its parents: what came before is not
    there. Refuses a target that is neither.
    """
    repo = _repo(repo)
    git = repo.git
    rev = rev if rev is not None else "HEAD"  # (as every reader takes rev=None)
    if rev == "HEAD" and git.repo.head_is_unborn and _tracked_here(repo, target):
        return []  # tracked, and no commit yet: none changed it
    start = repo.resolve(rev)
    name, path, known = _log_target(repo, target, start)
    configs: dict[tuple[str | None, ...], dict[str, str]] = {(None,) * (1 + len(GTO_FILES)): {}}
    memo: dict[str, tuple[str | None, str | None]] = {}
    mapped: set[str] = set()  # the commits whose config maps the name

    def models_of(commit: str) -> dict[str, str]:
        # the config's names over GTO's (artifacts.yaml, dvc.yaml: commits before 'mvc import-dvc')
        blobs = git.blob_ids(commit, [CONFIG_PATH, *GTO_FILES])
        key = tuple(blobs.values())
        if key not in configs:
            try:
                configs[key] = models_at(git, commit)
            except ConfigError:  # a damaged config in an old commit: that commit has no models
                configs[key] = {}
        return configs[key]

    synthesized: dict[str, bytes] = {}  # {git blob id: bytes} of pointers read from imported tools' files

    def blob_at(commit: str, p: str | None) -> str | None:
        if not p:
            return None
        blob = git.blob_ids(commit, [p + SUFFIX])[p + SUFFIX]
        return blob if blob is not None else _foreign_blob(repo, commit, p, synthesized)

    def state_of(commit: str, child: str | None = None) -> tuple[str | None, str | None]:
        """(path, pointer blob) of the model at commit. A commit whose config does not map the name (one from
        before it was named) and a path's commits take the path of the child they are reached from; a child
        that has the pointer where this commit has none may have renamed it (mvc mv: git mv of PATH.mvc)."""
        if commit in memo:
            return memo[commit]
        p = memo[child][0] if child is not None else path
        if name is not None:
            q = models_of(commit).get(name)
            if q is not None:
                mapped.add(commit)
                memo[commit] = (q, blob_at(commit, q))
                return memo[commit]
        blob = blob_at(commit, p)
        if blob is None and p and child is not None and memo[child][1] is not None:
            older = _renamed_from(repo, commit, child, p)
            if older is not None:
                p, blob = older, blob_at(commit, older)
        memo[commit] = (p, blob)
        return memo[commit]

    state = load(git)

    def names_at(commit: str, p: str | None) -> list[str]:
        if name is not None:
            return [name]
        return sorted(n for n, q in models_of(commit).items() if q == p) if p else []

    tagged = {v.commit for n in ([name] if name is not None else state.models) for v in _versions(state, n)}
    # versions registered on commits that did not change the model: shown with the change they hold
    pending: list[tuple[tuple[str | None, str | None], dict[str, Any]]] = []
    out = []
    for c in git.walk(start):
        p, blob = state_of(c["id"])
        before = [state_of(parent, c["id"]) for parent in c["parents"]]
        if (
            before
            and any(b == (p, blob) for b in before)
            and not _discards(git, c["parents"], before, (p, blob), state_of)
        ):
            if c["id"] in tagged and blob is not None:
                versions, stages = state.marks(c["id"], names_at(c["id"], p))
                if versions or stages:
                    pending.append(((p, blob), {"commit": c["id"], "versions": versions, "stages": stages}))
            continue
        if not before and blob is None:
            continue
        prev = before[0] if before else (None, None)
        if blob is None:
            if prev[1] is None:
                continue  # merged from parents that did not have it either
            change = "removed"
        elif prev[1] is None:
            change = "added"
        elif prev[0] != p:  # the name now maps to another path, or the pointer was renamed
            change = "moved"
        else:
            change = "modified"
        entry: dict[str, Any] = {
            "commit": c["id"],
            "author": c["author"],
            "email": c["email"],
            "date": iso_date(c["time"], c["offset"]),
            "message": c["message"].strip(),
            "change": change,
            "path": p if blob is not None else prev[0],
        }
        names = names_at(c["id"], entry["path"])
        entry["names"] = names
        if blob is not None and blob.startswith(UNIMPORTED):
            from mvc.repo import foreign

            entry["error"] = str(foreign.not_imported(repo, str(p), c["id"][:10], blob[len(UNIMPORTED) :]))
        elif blob is not None:
            assert p is not None
            repo.check_pointer(p + SUFFIX, c["id"][:7])  # a pointer mvc refuses is refused here too
            try:
                data = synthesized[blob] if blob in synthesized else git.blob(blob)
                ptr = ptrfmt.loads(data, f"{p}{SUFFIX} at {c['id'][:7]}")
                entry.update(kind=ptr.kind, oid=ptr.oid, size=ptr.size, meta=ptr.meta)
            except PointerError as e:
                entry["error"] = str(e)
        entry["versions"], entry["stages"] = state.marks(c["id"], names)
        entry["also"] = [later for held, later in pending if held == (p, blob)][::-1]  # oldest first
        pending = [(held, later) for held, later in pending if held != (p, blob)]
        out.append(entry)
    if not known and not mapped:  # a name no commit's config maps, no tag names and no path is
        raise _unknown(repo, target, state)
    if out and out[-1]["commit"] in git.shallow_boundary():  # "added" there may be no more than where the clone ends
        out[-1]["history_cut"] = True
    return out


def _discards(
    git: Any, parents: list[str], before: list[Any], merged: Any, state_of: Callable[[str, str | None], Any]
) -> bool:
    """Whether a merge whose model (``merged``) is another parent's, not its first parent's, threw away a change
    made on the first parent's line since the two forked (a conflict resolved with the other side): the merge is
    then a change of its own, listed, as the model the line holds from there on is not the one listed below it.
    A merge that only brings in the other side's change (the first line left the model alone) is not."""
    if before[0] == merged:
        return False
    for parent, held in zip(parents[1:], before[1:], strict=True):
        if held != merged:
            continue
        base = git.merge_base(parents[0], parent)
        if base is not None and state_of(base, parents[0]) != before[0]:
            return True
    return False


def _versions(state: Any, name: str) -> list[Any]:
    m = state.get(name)
    return list(m.versions.values()) if m is not None else []


def _renamed_from(repo: Repo, parent: str, child: str, path: str) -> str | None:
    """The path whose pointer child renamed to path's (git's rename detection, as ``git log --follow`` sees
    ``mvc mv``), or None."""
    # diff-tree, plumbing: no user setting (diff.relative, color, external diffs) changes what it prints
    out = repo.git.run(
        "diff-tree",
        "-r",
        "-z",
        "-M",
        "--name-status",
        "--diff-filter=R",
        parent,
        child,
        "--",
        POINTER_GLOB,
        check=False,
    )
    fields = out.decode("utf-8", "replace").split("\0")
    for i in range(0, len(fields) - 2, 3):  # R<score>, old, new
        if fields[i].startswith("R") and fields[i + 2] == path + SUFFIX and fields[i + 1].endswith(SUFFIX):
            return fields[i + 1][: -len(SUFFIX)]
    return None


UNIMPORTED = "unimported "  # (+ the tool's version id) the state of a path whose version the import lacks


def _foreign_blob(repo: Repo, commit: str, rel: str, synthesized: dict[str, bytes]) -> str | None:
    """The git blob id of the pointer of rel read from an imported tool's file at commit (a .dvc file before
    'mvc import-dvc'), or None: the import wrote the same bytes, so the switch is no change in the lineage."""
    from mvc.repo import foreign

    if not foreign.imported(repo):
        return None
    data, version = foreign.version_of(repo, commit, rel)
    if data is None:  # a version the import could not bring in is there all the same: not a removal
        return None if version is None else UNIMPORTED + version
    blob = blob_id(data)
    synthesized[blob] = data
    return blob


def _log_target(repo: Repo, target: str, start: str) -> tuple[str | None, str | None, bool]:
    """(model name, its path now or None, known) or (None, tracked path, True) for mvc log's argument; known is
    False for a name that only an old commit's config may map (the walk finds out)."""
    current = cfgfmt.models(repo.config.shared, CONFIG_PATH)
    if target in current:
        if current[target] != target and os.path.lexists(repo.abs(target + SUFFIX)):
            import sys  # a notice, as git's "refname is ambiguous": the model wins, the path has its spelling

            log = suggested("mvc log {}", "./" + target)
            sys.stderr.write(f"mvc: {target} is also a tracked path: its own lineage is {log}\n")
        return target, current[target], True
    rel = repo.rel(target)
    if rel.endswith(SUFFIX):
        rel = rel[: -len(SUFFIX)]
    if os.path.lexists(repo.abs(rel + SUFFIX)):  # tracked now (committed or not)
        return None, rel, True
    if tagfmt.is_name(target) and load(repo.git).get(target) is not None:
        return target, None, True
    if rel != "." and repo.git.run("log", "-1", "--format=%H", start, "--", f":(literal){rel}{SUFFIX}", check=False):
        return None, rel, True  # tracked in the past: its removal, and what came before
    if tagfmt.is_name(target):
        return target, None, False  # maybe a model that existed only in the past
    raise _unknown(repo, target, load(repo.git))


def _unknown(repo: Repo, target: str, state: Any) -> PathError:
    known = sorted(set(cfgfmt.models(repo.config.shared, CONFIG_PATH)) | state.names())
    shown = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
    listed = f" (models: {shown})" if known else " (no models are named yet)"
    shown_target = ptrfmt.quoted(target) or "''"  # an empty name, as the shell takes it
    return PathError(
        f"{shown_target} is neither a model name nor a tracked path{listed}: see the tracked paths with 'mvc ls'"
    )


# -- diff -------------------------------------------------------------------------------------
def _side(repo: Repo, rev: str | None) -> tuple[dict[str, Any], dict[str, str], dict[str, tuple[str, str]]]:
    """({tracked path: pointer}, {model name: path}, {tracked path: (its tool's version id, the error saying it is a
    version the import could not bring in)}) at rev, or in the work tree when rev is None."""
    if rev is None:
        pointers = {}
        for prel in repo.git.ls_pointers():
            repo.check_pointer(prel)
            with open(repo.check_inside(prel), "rb") as f:
                pointers[prel[: -len(SUFFIX)]] = ptrfmt.loads(f.read(), prel)
        return pointers, cfgfmt.models(repo.config.shared, CONFIG_PATH), {}
    from mvc.repo import foreign

    commit = repo.resolve(rev)
    pointers = {}
    at_rev = repo.pointers_at_commit(commit)
    for prel, data in at_rev.items():
        repo.check_pointer(prel, rev)
        pointers[prel[: -len(SUFFIX)]] = ptrfmt.loads(data, f"{prel} at {rev}")
    missing = foreign.unimported_beside(repo, commit, at_rev)
    unread = {p: (v, str(foreign.not_imported(repo, p, rev, v))) for p, v in missing.items()}
    try:
        names = models_at(repo.git, commit)
    except ConfigError:
        names = {}
    return pointers, names, unread


def _flat(meta: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def diff(
    rev_a: str | None = None,
    rev_b: str | None = None,
    *,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> list[dict[str, Any]]:
    """Models added, removed, modified or moved between rev_a (default HEAD) and rev_b (default: the
    work tree). Each: {change, path, old_path?, names, old: {kind, oid, size, meta} | None, new: … | None,
    size_change, meta_changes: {key: [old, new]}}. Against the work tree, each row of a path tracked there
    also has workspace: 'ok' | 'modified' | 'missing' (its file or directory against its pointer, as
    ``mvc status`` says), and a path whose pointer did not change but whose data did is listed as change
    'unadded' (``mvc add`` records it). A side whose version of a path an import could not bring in (a DVC or
    git-lfs version absent everywhere when it ran) is None all the same, and the row says so: not_imported
    ({"old" and/or "new": the tool's version id}), error (why, and the way to import it), size_change None."""
    repo = _repo(repo)
    if rev_a is None and rev_b is not None:
        raise RegistryError("name the first revision too: mvc diff REV_A REV_B")
    old, old_names, old_unread = _side(repo, rev_a or "HEAD")
    new, new_names, new_unread = _side(repo, rev_b)

    def names_of(path: str) -> list[str]:
        return sorted({n for n, p in old_names.items() if p == path} | {n for n, p in new_names.items() if p == path})

    def info(p: Any) -> dict[str, Any]:
        return {"kind": p.kind, "oid": p.oid, "size": p.size, "meta": p.meta}

    out = []
    old_paths, new_paths = set(old) | set(old_unread), set(new) | set(new_unread)
    added = sorted(set(new) - old_paths)
    removed = sorted(set(old) - new_paths)
    moves = {}
    for n, p in new_names.items():
        q = old_names.get(n)
        if q is not None and q != p and p in added and q in removed:
            moves[p] = q
    for path in sorted(old_paths | new_paths):
        if path in moves.values():
            continue
        a_path = moves.get(path, path)
        a, b = old.get(a_path), new.get(path)
        if a is not None and b is not None and info(a) == info(b) and a_path == path:
            continue
        unread = {side: found[path] for side, found in (("old", old_unread), ("new", new_unread)) if path in found}
        if unread and old_unread.get(path) == new_unread.get(path):
            continue  # the same version not imported on both sides: no change
        entry: dict[str, Any] = {
            "path": path,
            "names": names_of(path) if a_path == path else sorted(set(names_of(path)) | set(names_of(a_path))),
            "old": info(a) if a else None,
            "new": info(b) if b else None,
        }
        if a is None and "old" not in unread:
            entry["change"] = "added"
        elif b is None and "new" not in unread:
            entry["change"] = "removed"
        elif a_path != path:
            entry["change"] = "moved"
            entry["old_path"] = a_path
        else:
            entry["change"] = "modified"
        if unread:  # a version no one can compare: its size and meta unknown, said as log and checkout say it
            entry["not_imported"] = {side: version for side, (version, _) in unread.items()}
            entry["error"] = "; ".join(error for _, error in unread.values())
            entry["size_change"] = None
            entry["meta_changes"] = {}
            out.append(entry)
            continue
        entry["size_change"] = (b.size if b else 0) - (a.size if a else 0)
        fa, fb = _flat(a.meta) if a else {}, _flat(b.meta) if b else {}
        entry["meta_changes"] = {k: [fa.get(k), fb.get(k)] for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}
        out.append(entry)
    if rev_b is None:
        _workspace(repo, new, out, names_of, info, progress)
    return out


def _workspace(
    repo: Repo,
    pointers: dict[str, Any],
    rows: list[dict[str, Any]],
    names_of: Callable[[str], list[str]],
    info: Callable[[Any], dict[str, Any]],
    progress: progressmod.Factory,
) -> None:
    """Give each row of a path tracked in the work tree its data's state there, and add an 'unadded' row for
    each path whose pointer is the same on both sides but whose data changed (the order of rows: by path)."""
    from mvc.repo.pathstatus import path_status

    listed = {r["path"]: r for r in rows if r["new"] is not None}
    try:
        for path, p in pointers.items():
            ws, _ = path_status(repo, path, p, progress)
            if path in listed:
                listed[path]["workspace"] = ws
            elif ws == "modified":
                rows.append(
                    {
                        "path": path,
                        "names": names_of(path),
                        "old": info(p),
                        "new": info(p),
                        "change": "unadded",
                        "size_change": 0,
                        "meta_changes": {},
                        "workspace": ws,
                    }
                )
    finally:
        repo.state.flush()
    rows.sort(key=lambda r: r["path"])


def _tracked_here(repo: Repo, target: str) -> bool:
    """Whether target is a model name the work tree's config maps, or a path its pointers track."""
    from mvc.repo.repository import Repo

    if target in cfgfmt.models(repo.config.shared):
        return True
    try:
        return os.path.isfile(repo.abs(Repo.pointer_of(repo.rel(target))))
    except MvcError:
        return False
