"""DVC's files at revisions before ``mvc import-dvc`` (``.dvc`` files, ``dvc.lock`` stages), read as the mvc
pointers the import wrote for their outputs (docs/FORMAT.md, "Imported history"; the hook is ``mvc.repo.foreign``).
The import reads a commit's outputs with ``outs_at`` too and writes the same bytes (``pointer_bytes``), so the
commit that switches a path from DVC to mvc changes nothing in its lineage."""

from __future__ import annotations

import posixpath
from typing import Any

from mvc.errors import ForeignError, MvcError
from mvc.format import config as cfgfmt
from mvc.format import dvcfile
from mvc.format import pointer as ptrfmt
from mvc.format.config import MVC_DIR

SUFFIX = ".dvc"
LOCK, PIPELINE = "dvc.lock", "dvc.yaml"
LINK_MODE = 0o120000  # a symlink's git file mode: never read as a file
SKIP_DIRS = (".git", ".dvc", ".mvc")
IMPORTED_PATH = f"{MVC_DIR}/imported.toml"  # the map, as repo/foreign.py (which loads this module by name) names it


def pointer_bytes(out: dvcfile.Out, entry: tuple[str, int, int | None]) -> bytes:
    """The mvc pointer of a DVC output whose content was imported as entry (oid, size, nfiles)."""
    oid, size, nfiles = entry
    p = ptrfmt.Pointer("dir" if out.is_dir else "file", oid, size, nfiles if out.is_dir else None)
    p.meta = {"dvc": out.record}
    return ptrfmt.dumps(p)


def is_dvc_file(name: str) -> bool:
    """Whether a file of this name is one of DVC's that name outputs: ``NAME.dvc``, ``dvc.lock``, ``dvc.yaml``."""
    return (name.endswith(SUFFIX) and name != SUFFIX) or name in (LOCK, PIPELINE)


def _listing(repo: Any, tree: Any, top: bool) -> list[tuple[str, str]]:
    """[(path below tree, blob id)] of DVC's files in tree (``top``: the root's, whose .git/.dvc/.mvc are skipped),
    remembered by tree id: the commits of a history share most of their trees."""
    memo = repo.__dict__.setdefault("_dvc_trees", {})
    key = (tree.id, top)
    if key not in memo:
        found: list[tuple[str, str]] = []
        for entry in tree:
            if entry.type_str == "tree" and not (top and entry.name in SKIP_DIRS):
                below = _listing(repo, repo.git.repo[entry.id], False)
                found += [(f"{entry.name}/{path}", blob) for path, blob in below]
            elif entry.type_str == "blob" and entry.filemode != LINK_MODE and is_dvc_file(entry.name):
                found.append((entry.name, str(entry.id)))
        memo[key] = found
    return memo[key]


def dvc_files_at(repo: Any, commit: str) -> dict[str, str]:
    """{repository-relative path: blob id} of the .dvc files, dvc.lock and dvc.yaml files in commit's tree."""
    return dict(_listing(repo, repo.git.resolve(commit).tree, True))


def outs_of(repo: Any, path: str, blob: str) -> list[dvcfile.Out]:
    """The outputs of the .dvc file at path whose bytes are blob (parsed once per Repo); none if it is damaged."""
    memo = repo.__dict__.setdefault("_dvc_outs", {})
    if (path, blob) not in memo:
        try:
            memo[path, blob] = dvcfile.parse_dvc(repo.git.blob(blob), path)
        except ForeignError:  # an old revision's damaged file: it names nothing mvc can read
            memo[path, blob] = []
    return memo[path, blob]


def lock_outs_of(repo: Any, path: str, blob: str, pipeline: str | None) -> list[dvcfile.Out]:
    """The outputs of the dvc.lock at path whose bytes are blob, read with the dvc.yaml beside it (blob pipeline,
    or None); none if either is damaged. Parsed once per Repo."""
    memo = repo.__dict__.setdefault("_dvc_lock_outs", {})
    if (path, blob, pipeline) not in memo:
        yaml = repo.git.blob(pipeline) if pipeline is not None else None
        try:
            memo[path, blob, pipeline] = dvcfile.lock_outputs(repo.git.blob(blob), path, yaml)
        except ForeignError:
            memo[path, blob, pipeline] = []
    return memo[path, blob, pipeline]


def past_import(repo: Any, commit: str) -> bool:
    """Whether commit's own map has a dvc table: it is the import's commit or a later one. There mvc's pointers
    alone stand for what dvc.lock names (the import keeps dvc.lock: an output mvc removed or moved since stays so)."""
    blob = repo.git.blob_ids(commit, [IMPORTED_PATH])[IMPORTED_PATH]
    if blob is None:
        return False
    memo = repo.__dict__.setdefault("_dvc_past", {})
    if blob not in memo:
        try:
            memo[blob] = "dvc" in cfgfmt.loads(repo.git.blob(blob), IMPORTED_PATH)
        except MvcError:  # a damaged map: an import was committed all the same
            memo[blob] = True
    return bool(memo[blob])


def outs_at(repo: Any, commit: str) -> dict[str, dvcfile.Out]:
    """{output path: its Out} of commit's DVC files, damaged ones skipped: the outputs of its .dvc files, and
    before the import those of its dvc.lock stages that git does not track at commit. A .dvc file wins an output
    a dvc.lock names too (DVC refuses both), of two dvc.lock files the first by path."""
    files = dvc_files_at(repo, commit)
    found: dict[str, dvcfile.Out] = {}
    locks = sorted(p for p in files if posixpath.basename(p) == LOCK)
    if locks and not past_import(repo, commit):
        for path in locks:
            pipeline = files.get(posixpath.join(posixpath.dirname(path), PIPELINE))
            outs = lock_outs_of(repo, path, files[path], pipeline)
            in_git = repo.git.blob_ids(commit, [o.path for o in outs])
            for o in outs:
                if in_git[o.path] is None:
                    found.setdefault(o.path, o)
    for path, blob in files.items():
        if path.endswith(SUFFIX):
            found.update((o.path, o) for o in outs_of(repo, path, blob))
    return found


def _known(repo: Any, table: Any) -> dict[str, tuple[str, int, int | None]]:
    memo = repo.__dict__.get("_dvc_map")
    if memo is None:
        memo = repo.__dict__["_dvc_map"] = dvcfile.imported(table, "the dvc table of .mvc/imported.toml")
    return memo


def pointers_at(repo: Any, commit: str, table: Any) -> dict[str, bytes]:
    known = _known(repo, table)
    outs = outs_at(repo, commit).values()
    return {o.path + ptrfmt.SUFFIX: pointer_bytes(o, known[o.md5]) for o in outs if o.md5 in known}


def pointer_of(repo: Any, commit: str, rel: str, table: Any) -> bytes | None:
    """The pointer of rel at commit, or None (``pointers_at``'s, without writing the others)."""
    known = _known(repo, table)
    out = outs_at(repo, commit).get(rel)
    return pointer_bytes(out, known[out.md5]) if out is not None and out.md5 in known else None
