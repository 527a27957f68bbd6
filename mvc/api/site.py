"""``mvc ui``: the registry as a static HTML site: what it shows is collected here, drawn by
``mvc.api.site_render``, written to a directory, and served on loopback for a preview.

Collecting costs a fixed number of git processes whatever the registry's size: one ``for-each-ref`` (the
tags), three ``cat-file --batch`` (the config of the commits whose tags do not record the model's path, every
version's pointer at its commit, the config at HEAD), one ``git log --raw`` (the lineage of every model at once).
After an import, the versions and lineage from before it are read through its map as ``mvc log`` reads them.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

from mvc import git as gitmod
from mvc.api import site_render
from mvc.api.registry import describe
from mvc.errors import MvcError, PathError, PointerError, StorageError
from mvc.format import pointer as ptrfmt
from mvc.format.config import CONFIG_PATH
from mvc.format.pointer import SUFFIX
from mvc.format.tags import ASSIGN, DEPRECATE, DEREGISTER, REGISTER, UNASSIGN
from mvc.repo.models import Model, iso_date, load, locate, paths_at

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from mvc.repo.repository import Repo

MARKER = ".mvc-ui"  # a file in every built site: a later build may replace only a directory holding it
ACTIONS = {REGISTER: "register", DEREGISTER: "deregister", ASSIGN: "assign", UNASSIGN: "unassign"}
ACTIONS[DEPRECATE] = "deprecate"


def _git(repo: Repo | None) -> gitmod.Git:
    """Reading needs git alone: any clone, set up for mvc or not, or a bare repository (the remote)."""
    if repo is not None:
        return repo.git
    try:
        return gitmod.Git(gitmod.find_worktree(os.getcwd()))
    except MvcError:
        here = gitmod.Git(os.getcwd())
        if here.run("rev-parse", "--is-bare-repository", check=False).strip() == b"true":
            return here
        raise


# -- collecting -------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """value with TOML's dates and times as ISO strings, so that it can go into JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def _pointer(data: bytes | None, where: str) -> dict[str, Any]:
    """The record of one version: its pointer's fields, [meta], [auto] and other keys (or why not)."""
    if data is None:
        return {"error": f"{where} is missing"}
    try:
        p = ptrfmt.loads(data, where)
    except PointerError as e:
        return {"error": str(e)}
    extra = dict(p.extra)
    auto = getattr(p, "auto", None)  # the pointer format may know [auto] by now; else it is an unknown key
    if auto is None:
        auto = extra.get("auto")
    extra.pop("auto", None)
    return {
        "pointer": {"kind": p.kind, "oid": p.oid, "size": p.size, **({"nfiles": p.nfiles} if p.nfiles else {})},
        "meta": plain(p.meta),
        "auto": plain(auto) if isinstance(auto, dict) else {},
        "extra": plain(extra),
    }


def _events(m: Model, names_of: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every registry event of the model, newest first, with who and when."""
    out = []
    for e in reversed(m.events):
        version = e.version
        if version is None and e.action in (ASSIGN, UNASSIGN):
            names = names_of.get(e.commit) or [e.commit]
            version = names[-1]
        out.append(
            {
                "action": ACTIONS.get(e.action, e.action),
                "tag": e.tag,
                "version": version,
                "stage": e.stage,
                "commit": e.commit,
                "tagger": e.tagger,
                "email": e.email,
                "date": iso_date(e.time, e.offset),
                "time": e.time,
                "message": e.message,
            }
        )
    return out


def _lineage(git: gitmod.Git, paths: dict[str, set[str]], local: Repo | None = None) -> dict[str, list[dict[str, Any]]]:
    """{model name: the commits reachable from HEAD that changed one of its pointers, newest first}, from one
    ``git log``. paths: {tracked path: names of the models it was}. A merge that only brings in a change
    made elsewhere is not listed again (git log shows no diff for it). With the map of an import (local), a
    pointer another tool's file stands for counts as the model's pointer, as in ``mvc log``: the commits that
    changed those files are listed too, and the import's commit (the same pointer, now mvc's) is none."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not paths:
        return found
    fmt = "%x01%H%x00%P%x00%an%x00%ae%x00%aI%x00%B"
    specs = [f":(literal){p}{SUFFIX}" for p in sorted(paths)]
    theirs = _Foreign(git, local, paths) if local is not None else None
    theirs = theirs if theirs is not None and theirs.tools else None  # no import: mvc's pointers alone
    specs += theirs.specs() if theirs is not None else []
    out = git.run(
        "log", "-z", "--no-renames", "--raw", "--no-abbrev", f"--format={fmt}", "HEAD", "--", *specs, check=False
    )
    tokens = out.decode("utf-8", "replace").split("\0")
    i, n = 0, len(tokens)
    while i < n:
        head = tokens[i].lstrip("\n")
        if not head.startswith("\x01") or i + 5 >= n:
            i += 1
            continue
        commit, parents, author, email, date, message = head[1:], *tokens[i + 1 : i + 6]
        i += 6
        pairs: dict[str, tuple[str | None, str | None]] = {}  # tracked path: (old, new pointer blob id)
        other = False  # a file of an imported tool changed
        while i + 1 < n and tokens[i].lstrip("\n").startswith(":"):
            fields, path = tokens[i].split(" "), tokens[i + 1]  # :MODE MODE OLD NEW STATUS, then the path
            i += 2
            if path.endswith(SUFFIX) and path[: -len(SUFFIX)] in paths and len(fields) == 5:
                pairs[path[: -len(SUFFIX)]] = (_blob(fields[2]), _blob(fields[3]))
            else:
                other = True
        if theirs is not None:
            pairs = theirs.changes(commit, next(iter(parents.split()), None), pairs, other)
        changes: dict[str, list[tuple[str, str]]] = {}
        made: dict[str, set[tuple[str, str]]] = {}
        for p, (old, new) in pairs.items():
            if old == new:
                continue
            change = "added" if old is None else "removed" if new is None else "modified"
            for name in paths.get(p, ()):
                changes.setdefault(name, []).append((change, p))
                if new is not None:
                    made.setdefault(name, set()).add((p, new))
        for name, what in changes.items():
            entry: dict[str, Any] = {"commit": commit, "author": author, "email": email, "date": date}
            entry.update(message=message.strip(), changes=_moved(what), _made=made.get(name, set()))
            found.setdefault(name, []).append(entry)
    return found


def _blob(oid: str) -> str | None:
    """A blob id of git's raw diff, None for the zeros of a side without the file."""
    return None if not oid.strip("0") else oid


class _Foreign:
    """The pointers the files of imported tools (``.dvc`` files, ``dvc.lock``, git-lfs pointers) stand for at the
    commits the lineage lists, read through the map of the import as ``mvc log`` reads them (``repo/foreign.py``)."""

    def __init__(self, git: gitmod.Git, local: Repo, paths: dict[str, set[str]]):
        from mvc.repo import foreign

        self.git, self.local, self.paths, self.foreign = git, local, paths, foreign
        self.tools = foreign.imported(local)
        self.memo: dict[tuple[str, str], str | None] = {}

    def specs(self) -> list[str]:
        """The pathspecs of the files that may stand for a model's pointer."""
        out = []
        if "dvc" in self.tools:
            out += [":(glob)**/*.dvc", ":(glob)**/dvc.lock", ":(glob)**/dvc.yaml"]
        if "lfs" in self.tools:
            out += [":(glob)**/.gitattributes", *(f":(literal){p}" for p in sorted(self.paths))]
        return out

    def blob(self, commit: str | None, path: str) -> str | None:
        """The git blob id of the pointer of path the imported tools' files stand for at commit, or None."""
        if commit is None:
            return None
        if (commit, path) not in self.memo:  # a commit is read as the child of one and the parent of another
            data = self.foreign.pointer_of(self.local, commit, path)
            self.memo[(commit, path)] = gitmod.blob_id(data) if data is not None else None
        return self.memo[(commit, path)]

    def changes(
        self, commit: str, parent: str | None, pairs: dict[str, tuple[str | None, str | None]], other: bool
    ) -> dict[str, tuple[str | None, str | None]]:
        """pairs (the mvc pointers commit changed against its first parent: (old, new) blob ids), each side
        without mvc's pointer read from the imported tools' files (mvc's wins a path); when commit changed one
        of their files (other), every other path too where mvc has no pointer (else it would win on both sides)."""
        out = {p: (old or self.blob(parent, p), new or self.blob(commit, p)) for p, (old, new) in pairs.items()}
        rest = [p for p in self.paths if p not in pairs] if other else []
        mine = self.git.blob_ids(commit, [p + SUFFIX for p in rest]) if rest else {}
        for p in rest:
            if mine[p + SUFFIX] is None:
                out[p] = (self.blob(parent, p), self.blob(commit, p))
        return out


def _moved(changes: list[tuple[str, str]]) -> list[str]:
    """The changes of one model in one commit as text; one path removed and one added is a move (mvc mv)."""
    kinds = sorted(c for c, _ in changes)
    if kinds == ["added", "removed"]:
        old = next(p for c, p in changes if c == "removed")
        new = next(p for c, p in changes if c == "added")
        return [f"moved {old} -> {new}"]
    return sorted(f"{c} {p}" for c, p in changes)


def _also(git: gitmod.Git, d: dict[str, Any], pointers: dict[tuple[str, str], bytes | None]) -> None:
    """Each version registered on a commit the lineage does not list (it did not change the model) goes, as
    ``also``, under the lineage entry of the commit that wrote its pointer: the one entry that wrote those bytes
    (a git blob id) at that path, or when several did (a change undone), the last one before it (``git log
    -1``). pointers: {(commit, path): the bytes of its pointer there}."""
    by_commit = {c["commit"]: c for c in d["lineage"]}
    made = {c["commit"]: c.pop("_made") for c in d["lineage"]}
    for c in d["lineage"]:
        c["also"] = []
    for v in d["versions"]:
        data = pointers.get((v["commit"], v["path"])) if v.get("path") else None
        if v["commit"] in by_commit or data is None:
            continue
        wrote = [c for c, pairs in made.items() if (v["path"], gitmod.blob_id(data)) in pairs]
        if len(wrote) > 1:
            spec = f":(literal){v['path']}{SUFFIX}"
            wrote = [git.run("log", "-1", "--format=%H", v["commit"], "--", spec, check=False).decode().strip()]
        if wrote and wrote[0] in by_commit:
            by_commit[wrote[0]]["also"].append({"version": v["version"], "commit": v["commit"]})


def _metrics(versions: list[dict[str, Any]]) -> dict[str, list[tuple[str, float]]]:
    """{metric: [(version, value)], oldest version first} from ``meta.metrics``; a model none of whose
    versions has that table charts its top-level numeric [meta] values (``mvc add --meta accuracy=0.9``)."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")

    nested = any(isinstance(v.get("meta", {}).get("metrics"), dict) for v in versions)
    series: dict[str, list[tuple[str, float]]] = {}
    for v in reversed(versions):
        meta = v.get("meta", {})
        table = meta.get("metrics") if nested else meta
        if not isinstance(table, dict):
            continue
        for k, x in table.items():
            if number(x):
                series.setdefault(k, []).append((v["version"], float(x)))
    return dict(sorted(series.items()))


def collect(*, repo: Repo | None = None) -> dict[str, Any]:
    """Everything the site shows: {title, generated, models: [registry()'s model, with each version's whole
    record (pointer, meta, auto) in its entry, plus events, lineage, metrics, last_change]}."""
    git = _git(repo)
    local = _local(repo, git)  # its map of an import reads the versions and lineage from before the import
    state = load(git)
    known = [m for _, m in sorted(state.models.items()) if m.events]
    # each version's path (its tag's, or its commit's config's) and pointer, as 'mvc show' reads them
    located = locate(git, known, local, every=True)
    has_head = _has_head(git)
    head_models = paths_at(git, [(m.name, "HEAD") for m in known]) if has_head else {}
    paths: dict[str, set[str]] = {}
    pointers: dict[tuple[str, str], bytes | None] = {}
    out = []
    for m in known:
        d = describe(m, located)
        names_of: dict[str, list[str]] = {}
        for v in d["versions"]:
            names_of.setdefault(v["commit"], []).append(v["version"])
            at = located[1][(m.name, v["version"])]
            p = v["path"] = at["path"]
            if p is None:
                v["error"] = (
                    f"{m.name} has no path at commit {v['commit'][:7]}: neither its tag nor that commit's "
                    f"{CONFIG_PATH} names one"
                )
                continue
            paths.setdefault(p, set()).add(m.name)
            pointers[(v["commit"], p)] = at["data"]
            v.update(_pointer(at["data"], f"{p}{SUFFIX} at {v['commit'][:7]}"))
            ptr = v.get("pointer")
            if ptr and (v.get("oid", ptr["oid"]), v.get("size", ptr["size"])) != (ptr["oid"], ptr["size"]):
                # a tag moved by hand (git tag -f) keeps its old trailers: the pointer it names is the version
                v["warning"] = (
                    f"its tag records {v.get('oid', ptr['oid'])} ({v.get('size', ptr['size'])} bytes), but "
                    f"{p}{SUFFIX} at {v['commit'][:7]} holds {ptr['oid']} ({ptr['size']} bytes): the tag was moved "
                    "or written by hand; the pointer's is shown"
                )
                v["oid"], v["size"] = ptr["oid"], ptr["size"]
        if d["path"]:
            paths.setdefault(d["path"], set()).add(m.name)
        now = head_models.get((m.name, "HEAD"))
        if now:  # where the model is now, if it moved since its latest version
            paths.setdefault(now, set()).add(m.name)
        d["events"] = _events(m, names_of)
        d["metrics"] = _metrics(d["versions"])
        out.append(d)
    lineage = _lineage(git, paths, local) if out and has_head else {}
    for d in out:
        d["lineage"] = lineage.get(d["name"], [])
        _also(git, d, pointers)
        dates = [e["date"] for e in d["events"][:1]] + [c["date"] for c in d["lineage"][:1]]
        d["last_change"] = max(dates, key=_stamp) if dates else None
    root = git.root.rstrip("/")
    title = os.path.basename(root[: -len("/.git")] if root.endswith("/.git") else root) or "registry"
    now = dt.datetime.now(dt.timezone.utc).astimezone().replace(microsecond=0).isoformat()
    return {"title": title, "generated": now, "models": out}


def _local(repo: Repo | None, git: gitmod.Git) -> Repo | None:
    """The repository when mvc is set up in it (a bare one or a clone without 'mvc init': None)."""
    from mvc.repo.repository import Repo as RepoClass

    if repo is not None:
        return repo
    try:
        return RepoClass(git.root)
    except MvcError:
        return None


def _has_head(git: gitmod.Git) -> bool:
    return bool(git.run("rev-parse", "--verify", "-q", "HEAD", check=False).strip())


def _stamp(date: str) -> float:
    return dt.datetime.fromisoformat(date).timestamp()


# -- writing ----------------------------------------------------------------------------------
def _check_out(out: str) -> None:
    """out may take a site: new, empty, or a site a previous build wrote. Refuses a directory holding anything
    else, so that a typo in -o never deletes someone's files."""
    if os.path.isdir(out):
        entries = os.listdir(out)
        if entries and MARKER not in entries:
            raise PathError(
                f"{out} is not empty and holds no site of 'mvc ui build': choose a new or empty directory with -o"
            )
    elif os.path.lexists(out):
        raise PathError(f"{out} exists and is not a directory: choose another path with -o")


def _write_tree(root: str, pages: dict[str, str]) -> None:
    made: set[str] = set()
    for rel, text in pages.items():
        full = os.path.join(root, *rel.split("/"))
        parent = os.path.dirname(full)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(root, MARKER), "w", encoding="utf-8") as f:
        f.write("written by 'mvc ui build': the next build into this directory replaces it all\n")


def _write(out: str, pages: dict[str, str]) -> None:
    """The site written to a new directory beside out, then renamed into its place (the previous site renamed
    away first, then deleted): a web server serving out never shows half a site, and no file is rewritten in
    place or created just after as many were deleted, both several times slower on some file systems (ext4
    flushes a truncated file on close; without a journal it steps past recently freed inodes). Where no
    directory can be made beside out (or out is a mount point), the site is written into out itself."""
    import shutil
    import tempfile

    from mvc.storage.tempfiles import umask

    _check_out(out)
    parent = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(parent, exist_ok=True)
        new = tempfile.mkdtemp(prefix=".mvc-ui-new-", dir=parent)
    except PermissionError:
        new = None
    if new is not None:
        try:
            os.chmod(new, 0o777 & ~umask())
            _write_tree(new, pages)
            if not os.path.isdir(out):
                os.rename(new, out)
                return
            old = tempfile.mkdtemp(prefix=".mvc-ui-old-", dir=parent)
            try:
                os.rename(out, old + "/site")
            except OSError:  # a mount point, or out not ours to move: write into it below
                os.rmdir(old)
            else:
                os.rename(new, out)
                shutil.rmtree(old, ignore_errors=True)
                return
        finally:
            if os.path.isdir(new):
                shutil.rmtree(new, ignore_errors=True)
    for entry in os.listdir(out) if os.path.isdir(out) else ():
        full = os.path.join(out, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)
    os.makedirs(out, exist_ok=True)
    _write_tree(out, pages)


def build(out: str, *, repo: Repo | None = None) -> dict[str, Any]:
    """Write the registry's static site into the directory out (created; a site built there before is
    replaced). Returns {dir, index, models, versions, pages}."""
    site = collect(repo=repo)
    pages = site_render.render(site)
    try:
        _write(out, pages)
    except OSError as e:
        raise StorageError(
            f"cannot write the site to {out}: {e.strerror or e}: choose a writable directory with -o"
        ) from None
    return {
        "dir": os.path.abspath(out),
        "index": os.path.join(os.path.abspath(out), "index.html"),
        "models": len(site["models"]),
        "versions": sum(len(m["versions"]) for m in site["models"]),
        "pages": len(pages),
    }


def serve(directory: str, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server of directory on 127.0.0.1 only (port 0: any free one), serving in a daemon thread;
    its address is ``server.server_address``. Stop it with ``shutdown()`` and ``server_close()``."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=directory))
    except OSError as e:
        raise StorageError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}: pick another --port") from None
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    return server
