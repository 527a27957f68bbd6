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
from mvc.format.pointer import SUFFIX
from mvc.git import blob_id
from mvc.repo.models import GTO_FILES, iso_date, load, models_at

if TYPE_CHECKING:
    from mvc.repo.repository import Repo


def _repo(repo: Repo | None) -> Repo:
    from mvc.repo.repository import open_repo  # here: reading the registry needs git alone

    return open_repo(repo)


def log(target: str, *, rev: str = "HEAD", repo: Repo | None = None) -> list[dict[str, Any]]:
    """Every commit reachable from rev that changed the model's pointer, newest first.

    target: a model name (followed through renames, as each commit's .mvc/config.toml maps it) or a
    tracked path (followed by its name when one model name maps it now, else through its pointer's renames). Each entry: {commit, author, email, date, message, change: added | modified |
    removed | moved, path, names, kind, oid, size, meta, versions, stages, also}: ``also``, oldest first, the
    versions and stages ({commit, versions, stages}) registered on later commits that did not change the model
    and so hold this entry's pointer (a release of a code change, say), which the log lists no line for.
    """
    repo = _repo(repo)
    git = repo.git
    name, path = _log_target(repo, target)
    configs: dict[tuple[str | None, ...], dict[str, str]] = {(None,) * (1 + len(GTO_FILES)): {}}
    memo: dict[str, tuple[str | None, str | None]] = {}

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

    moves = _moves(repo, rev, path) if name is None and path else []

    def path_at(commit: str) -> str | None:
        """The tracked path at commit, through the moves of its pointer (mvc mv: git mv of PATH.mvc)."""
        p = path
        for older, before in moves:  # newest first: a commit before a move had the path from before it
            if commit in older:
                p = before
        return p

    def state_of(commit: str) -> tuple[str | None, str | None]:
        if commit not in memo:
            p = models_of(commit).get(name) if name is not None else path_at(commit)
            blob = git.blob_ids(commit, [p + SUFFIX])[p + SUFFIX] if p else None
            if p and blob is None:
                blob = _foreign_blob(repo, commit, p, synthesized)
            memo[commit] = (p, blob)
        return memo[commit]

    state = load(git)

    def names_at(commit: str) -> list[str]:
        return [name] if name is not None else sorted(n for n, q in models_of(commit).items() if q == path)

    tagged = {v.commit for n in ([name] if name is not None else state.models) for v in _versions(state, n)}
    # versions registered on commits that did not change the model: shown with the change they hold
    pending: list[tuple[tuple[str | None, str | None], dict[str, Any]]] = []
    out = []
    for c in git.walk(repo.resolve(rev)):
        p, blob = state_of(c["id"])
        before = [state_of(parent) for parent in c["parents"]]
        if before and any(b == (p, blob) for b in before):
            if c["id"] in tagged and blob is not None:
                versions, stages = state.marks(c["id"], names_at(c["id"]))
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
        elif prev[0] != p:  # the name now maps to another path
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
        names = names_at(c["id"])
        entry["names"] = names
        if blob is not None:
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
    return out


def _versions(state: Any, name: str) -> list[Any]:
    m = state.get(name)
    return list(m.versions.values()) if m is not None else []


def _moves(repo: Repo, rev: str, path: str) -> list[tuple[set[str], str]]:
    """[(the commits before it, the path before it)] of each rename of path's pointer in rev's history, newest
    first (git's rename detection, as ``git log --follow`` sees ``mvc mv``)."""
    out = repo.git.run(
        "log", "--follow", "-M", "--name-status", "--format=%x00%H", rev, "--", path + SUFFIX, check=False
    )
    found: list[tuple[set[str], str]] = []
    commit = ""
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("\0"):
            commit = line[1:]
        elif line.startswith("R") and commit:
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].endswith(SUFFIX):
                older = repo.git.run("rev-list", commit + "^", "--", check=False).decode().split()
                found.append((set(older), parts[1][: -len(SUFFIX)]))
    return found


def _foreign_blob(repo: Repo, commit: str, rel: str, synthesized: dict[str, bytes]) -> str | None:
    """The git blob id of the pointer of rel read from an imported tool's file at commit (a .dvc file before
    'mvc import-dvc'), or None: the import wrote the same bytes, so the switch is no change in the lineage."""
    from mvc.repo import foreign

    if not foreign.imported(repo):
        return None
    data = foreign.pointer_of(repo, commit, rel)
    if data is None:
        return None
    blob = blob_id(data)
    synthesized[blob] = data
    return blob


def _log_target(repo: Repo, target: str) -> tuple[str | None, str | None]:
    """(model name, None) or (None, tracked path) for mvc log's argument."""
    current = cfgfmt.models(repo.config.shared, CONFIG_PATH)
    if target in current:
        return target, None
    rel = repo.rel(target)
    if rel.endswith(SUFFIX):
        rel = rel[: -len(SUFFIX)]
    named = [n for n, q in current.items() if q == rel]
    if len(named) == 1:  # a named model's path: followed by its name, so through moves ('mvc mv')
        return named[0], None
    if os.path.lexists(repo.abs(rel + SUFFIX)) or os.path.lexists(repo.abs(rel)):
        return None, rel
    if tagfmt.is_name(target) and load(repo.git).get(target) is not None:
        return target, None
    try:
        head = repo.resolve("HEAD")
    except MvcError:
        head = None
    if head and repo.git.blob_ids(head, [rel + SUFFIX])[rel + SUFFIX]:
        return None, rel
    if tagfmt.is_name(target):
        return target, None  # maybe a model that existed only in the past
    raise PathError(f"{target} is neither a model name nor a tracked path: see 'mvc registry' and 'mvc ls'")


# -- diff -------------------------------------------------------------------------------------
def _side(repo: Repo, rev: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """({tracked path: pointer}, {model name: path}) at rev, or in the work tree when rev is None."""
    if rev is None:
        pointers = {}
        for prel in repo.git.ls_pointers():
            repo.check_pointer(prel)
            with open(repo.check_inside(prel), "rb") as f:
                pointers[prel[: -len(SUFFIX)]] = ptrfmt.loads(f.read(), prel)
        return pointers, cfgfmt.models(repo.config.shared, CONFIG_PATH)
    commit = repo.resolve(rev)
    pointers = {}
    for prel, data in repo.pointers_at_commit(commit).items():
        repo.check_pointer(prel, rev)
        pointers[prel[: -len(SUFFIX)]] = ptrfmt.loads(data, f"{prel} at {rev}")
    try:
        names = models_at(repo.git, commit)
    except ConfigError:
        names = {}
    return pointers, names


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
    'unadded' (``mvc add`` records it)."""
    repo = _repo(repo)
    if rev_a is None and rev_b is not None:
        raise RegistryError("name the first revision too: mvc diff REV_A REV_B")
    old, old_names = _side(repo, rev_a or "HEAD")
    new, new_names = _side(repo, rev_b)

    def names_of(path: str) -> list[str]:
        return sorted({n for n, p in old_names.items() if p == path} | {n for n, p in new_names.items() if p == path})

    def info(p: Any) -> dict[str, Any]:
        return {"kind": p.kind, "oid": p.oid, "size": p.size, "meta": p.meta}

    out = []
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    moves = {}
    for n, p in new_names.items():
        q = old_names.get(n)
        if q is not None and q != p and p in added and q in removed:
            moves[p] = q
    for path in sorted(set(old) | set(new)):
        if path in moves.values():
            continue
        a_path = moves.get(path, path)
        a, b = old.get(a_path), new.get(path)
        if a is not None and b is not None and info(a) == info(b) and a_path == path:
            continue
        entry: dict[str, Any] = {
            "path": path,
            "names": names_of(path) if a_path == path else sorted(set(names_of(path)) | set(names_of(a_path))),
            "old": info(a) if a else None,
            "new": info(b) if b else None,
        }
        if a is None:
            entry["change"] = "added"
        elif b is None:
            entry["change"] = "removed"
        elif a_path != path:
            entry["change"] = "moved"
            entry["old_path"] = a_path
        else:
            entry["change"] = "modified"
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
