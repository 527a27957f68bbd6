"""DVC's files at revisions before ``mvc import-dvc`` (``.dvc`` files, ``dvc.lock`` stages), read as the mvc
pointers the import wrote for their outputs (docs/FORMAT.md, "Imported history"; the hook is ``mvc.repo.foreign``).
The import reads a commit's outputs with ``outs_at`` too and writes the same bytes (``pointer_bytes``), so the
commit that switches a path from DVC to mvc changes nothing in its lineage. For the import: the work tree's outputs
(``worktree_outs``), and DVC's own side, its config, cache and remotes (``Dvc``)."""

from __future__ import annotations

import os
import posixpath
from typing import Any

from mvc.errors import ForeignError, MvcError, PathError, RemoteError, RemoteObjectMissing
from mvc.format import config as cfgfmt
from mvc.format import dvcfile
from mvc.format import pointer as ptrfmt
from mvc.format.config import MVC_DIR
from mvc.format.lfspointer import IMPORTED
from mvc.objects import manifest as mf

SUFFIX = ".dvc"
LOCK, PIPELINE = "dvc.lock", "dvc.yaml"
LINK_MODE = 0o120000  # a symlink's git file mode: never read as a file
SKIP_DIRS = (".git", ".dvc", ".mvc")
SHARED_KEYS = {"endpointurl": "endpoint_url", "region": "region", "profile": "profile"}  # DVC's remote keys: mvc's
IMPORTED_PATH = f"{MVC_DIR}/{IMPORTED}"  # the map, as repo/foreign.py (which loads this module by name) names it


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
    if not repo.git.partial:
        return dict(_listing(repo, repo.git.resolve(commit).tree, True))
    # a repository read by URL: its cache is read with the git binary alone, and lacks blobs until fetched
    out = repo.git.run("ls-tree", "-r", "-z", "--full-tree", commit)
    found = {}
    for entry in out.split(b"\0"):
        head, _, name = entry.partition(b"\t")
        parts = head.decode().split(" ")
        path = name.decode("utf-8", "surrogateescape")
        top = path.partition("/")[0] if "/" in path else None
        dvc_file = is_dvc_file(posixpath.basename(path)) and top not in SKIP_DIRS
        if dvc_file and len(parts) == 3 and parts[1] == "blob" and parts[0] != f"{LINK_MODE:o}":
            found[path] = parts[2]
    repo.git.need_blobs(commit, list(found.values()))
    return found


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
        memo = repo.__dict__["_dvc_map"] = dvcfile.imported(table, f"the dvc table of {IMPORTED_PATH}")
    return memo


def pointers_at(repo: Any, commit: str, table: Any) -> dict[str, bytes]:
    known = _known(repo, table)
    outs = outs_at(repo, commit).values()
    return {o.path + ptrfmt.SUFFIX: pointer_bytes(o, known[o.md5]) for o in outs if o.md5 in known}


def unimported_at(repo: Any, commit: str, table: Any) -> dict[str, str]:
    """{output path: md5} of the DVC outputs at commit whose version the map lacks: in neither DVC's cache nor its
    remote when ``mvc import-dvc`` ran (``history_missing``), so mvc cannot read them there; only at paths the
    import converted (mvc tracks them in the work tree): an output an import of other paths left to DVC is not
    mvc's to read."""
    known = _known(repo, table)
    return {o.path: o.md5 for o in outs_at(repo, commit).values() if o.md5 not in known and repo.tracks(o.path)}


def pointer_of(repo: Any, commit: str, rel: str, table: Any) -> bytes | None:
    """The pointer of rel at commit, or None (``pointers_at``'s, without writing the others)."""
    known = _known(repo, table)
    out = outs_at(repo, commit).get(rel)
    return pointer_bytes(out, known[out.md5]) if out is not None and out.md5 in known else None


def version_of(repo: Any, commit: str, rel: str, table: Any) -> tuple[bytes | None, str | None]:
    """(``pointer_of``, None), or (None, rel's md5 in ``unimported_at``), or (None, None): one read of commit's
    outputs for both."""
    known = _known(repo, table)
    out = outs_at(repo, commit).get(rel)
    if out is None:
        return None, None
    if out.md5 in known:
        return pointer_bytes(out, known[out.md5]), None
    return None, out.md5 if repo.tracks(rel) else None


def worktree_outs(repo: Any) -> list[tuple[dvcfile.Out, str]]:
    """[(output, the DVC file naming it)] of the work tree's .dvc files and dvc.lock stages (those git tracks; a
    stage's output git tracks is not one), as ``mvc import-dvc`` reads them: a damaged file, an output at a path
    mvc never tracks or named twice is an error."""
    out = repo.git.run("ls-files", "-z").decode("utf-8", "surrogateescape")
    files = [p for p in out.split("\0") if p]
    in_git = set(files)
    found: list[tuple[dvcfile.Out, str]] = []  # (output, the DVC file naming it)
    for path in files:
        base = posixpath.basename(path)
        if path.endswith(SUFFIX) and not path.startswith(".dvc/") and base != SUFFIX:
            found += [(o, path) for o in dvcfile.parse_dvc(_read(repo, path), path)]
        elif base == LOCK:
            yaml_path = posixpath.join(posixpath.dirname(path), PIPELINE)
            yaml = _read(repo, yaml_path) if os.path.exists(repo.abs(yaml_path)) else None
            outs = dvcfile.lock_outputs(_read(repo, path), path, yaml)
            found += [(o, path) for o in outs if o.path not in in_git]
    seen: dict[str, str] = {}
    for o, src in found:
        why = repo.untrackable(o.path)
        if why is not None:
            raise ForeignError(f"output {o.path}: a path mvc never tracks ({why}): move it in DVC first")
        if o.path in seen:
            raise ForeignError(f"output {o.path} is named twice (by {seen[o.path]} and {src}): fix the DVC files")
        seen[o.path] = src
        repo.check_inside(o.path)
    return found


def import_links(repo: Any, files: list[str]) -> list[dict[str, str]]:
    """{dvc_file, url, path, rev} of each of the work tree's .dvc files (files) that ``dvc import`` wrote: the
    repository its output came from, which mvc does not keep (``dvcfile.import_source``)."""
    found = []
    for f in files:
        source = dvcfile.import_source(_read(repo, f), f)
        if source is not None:
            found.append({"dvc_file": f, "url": source[0], "path": source[1], "rev": source[2]})
    return found


def _read(repo: Any, path: str) -> bytes:
    try:
        with open(repo.check_inside(path), "rb") as f:
            return f.read(dvcfile.MAX_LOCK_FILE + 1)
    except FileNotFoundError:
        raise ForeignError(
            f"{path}: tracked by git but missing from the work tree: restore it with 'git checkout'"
        ) from None


class Dvc:
    """DVC's side: its config, cache directory and remotes, and where each object is."""

    def __init__(self, repo: Any, remote: str | None):
        self.repo = repo
        self.dir = os.path.join(repo.root, ".dvc")
        if not os.path.isdir(self.dir):
            raise PathError(f"{repo.root} has no .dvc/ directory: run 'mvc import-dvc' in a DVC repository")
        cfg: dict[str, dict[str, str]] = {}
        self.local: dict[str, dict[str, str]] = {}
        for name, into in (("config", cfg), ("config.local", self.local)):
            try:
                with open(os.path.join(self.dir, name), encoding="utf-8") as f:
                    into.update(dvcfile.parse_config(f.read(), f".dvc/{name}"))
            except FileNotFoundError:
                pass
            except UnicodeDecodeError:
                raise ForeignError(f".dvc/{name}: not UTF-8 text: fix the file") from None
        self.shared = cfg
        merged = {k: {**cfg.get(k, {}), **self.local.get(k, {})} for k in {*cfg, *self.local}}
        cache = merged.get("cache", {}).get("dir")
        self.cache = os.path.normpath(os.path.join(self.dir, cache)) if cache else os.path.join(self.dir, "cache")
        self.remotes = {k.split(" ", 1)[1]: v for k, v in merged.items() if k.startswith("remote ") and "url" in v}
        self.default = remote or merged.get("core", {}).get("remote")
        if remote is not None and remote not in self.remotes:
            raise ForeignError(f"DVC has no remote {remote!r}: see 'dvc remote list'")
        self._store: Any = None
        self._broken: RemoteError | None = None

    def cached(self, md5: str, legacy: bool) -> str | None:
        """The DVC cache file of md5 (3.x: files/md5/ab/cdef…; 2.x: ab/cdef…), or None."""
        rel = f"{md5[:2]}/{md5[2:]}"
        spots = [os.path.join(self.cache, "files", "md5", rel), os.path.join(self.cache, rel)]
        for path in spots[::-1] if legacy else spots:
            if os.path.isfile(path):
                return path
        return None

    def replace_links(self, o: dvcfile.Out, oid: str) -> None:
        """The work tree's files of output o that are symlinks into DVC's cache (DVC's ``cache.type`` symlink) replaced
        by mvc's copies (per mvc's cache.type): the same bytes (their md5s were checked), no longer depending on a
        cache mvc does not keep, nor seen by status as links it did not make."""
        top = self.repo.abs(o.path)
        cache = os.path.realpath(self.cache) + os.sep
        if o.is_dir:
            if not os.path.isdir(top) or os.path.islink(top):
                return
            files = [
                (os.path.join(top, *e.path.split("/")), e.oid, e.executable)
                for e in mf.loads(self.repo.odb.read_bytes(oid), oid)
            ]
        else:
            files = [(top, oid, False)]
        for full, foid, executable in files:
            if os.path.islink(full) and os.path.realpath(full).startswith(cache):
                _, st = self.repo.odb.place(foid, full, self.repo.config.link_types, executable=executable)
                if st is not None:
                    self.repo.state.put(os.path.relpath(full, self.repo.root).replace(os.sep, "/"), st, foid)

    def fetch(self, md5: str, legacy: bool, dest: str) -> None:
        """Download md5 from the DVC remote to dest (unchecked: the caller checks the md5)."""
        if self.default is None or self.default not in self.remotes:
            raise ForeignError(
                f"object {md5} is in neither DVC's cache ({self.cache}) nor a DVC remote (none is the default): "
                "run 'dvc pull' or pass --dvc-remote NAME"
            )
        if self._broken is not None:  # unreachable, say: not tried again for every object
            raise self._broken
        rel = f"{md5[:2]}/{md5[2:]}"
        tries = [rel, f"files/md5/{rel}"] if legacy else [f"files/md5/{rel}", rel]
        for i, key in enumerate(tries):
            try:
                self._open().get_file(key, dest)
                return
            except RemoteObjectMissing:
                if i == len(tries) - 1:
                    raise ForeignError(
                        f"object {md5} is in neither DVC's cache nor DVC remote {self.default} "
                        f"({cfgfmt.redact_url(self.remotes[self.default]['url'])}): run 'dvc push' where it is"
                    ) from None
            except RemoteError as e:  # the store's words name mvc's remotes: this one is DVC's, mvc has none yet
                said = str(e).replace("'mvc remote ", "'dvc remote ")
                self._broken = type(e)(f"DVC remote {self.default}: {said}")
                raise self._broken from None

    def _open(self) -> Any:
        if self._store is None:
            from mvc.storage.urls import open_store

            assert self.default is not None
            entry = self.remotes[self.default]
            options = {SHARED_KEYS[k]: v for k, v in entry.items() if k in SHARED_KEYS}
            options.update(
                {k: v for k, v in entry.items() if k in ("access_key_id", "secret_access_key", "session_token")}
            )
            self._store = open_store(entry["url"], options, base=self.dir, reading=True)
        return self._store
