"""A git repository read by its URL, without a clone (``--repo URL``, ``repo=URL``).

Each call resolves what it needs with as little git traffic as works: one ``git ls-remote`` (names and
ids of every branch and tag), then a shallow (depth 1), blob-filtered fetch of only the tags or commit
asked for, into a bare repository in the user's cache (``~/.cache/mvc/repos/KEY``), then the few blobs
read (``.mvc/config.toml`` and pointers) in one more fetch. Later calls reuse that cache: an object is
fetched once; refs are checked against ``ls-remote`` on every call (a stage may have moved since).

The git binary does the transport: paths, ``file://``, ssh and https, with git's own credential
helpers. It never prompts (``GIT_TERMINAL_PROMPT=0``): a missing credential is an error, not a hang.
The cache is only ever read through the git binary, never libgit2, which cannot fetch the blobs a
partial clone left out; every id read was named by the remote, so the cache cannot be led astray by
names alone (objects are addressed by their hashes).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

from mvc import git as gitmod
from mvc.errors import GitError, UpstreamError
from mvc.format import tags as tagfmt
from mvc.format.pointer import SUFFIX, bad_target
from mvc.storage import lock

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
# fetches that only add objects: no maintenance, no FETCH_HEAD, no tags followed, no submodules
_FETCH = (
    "-c",
    "maintenance.auto=false",
    "-c",
    "gc.auto=0",
    "-c",
    "fetch.negotiationAlgorithm=noop",
    "fetch",
    "--quiet",
    "--no-tags",
    "--no-write-fetch-head",
    "--recurse-submodules=no",
    "--filter=blob:none",
)


def cache_root() -> str:
    """Where mvc keeps what it fetched for this user: ``$MVC_CACHE_DIR``, else ``$XDG_CACHE_HOME/mvc``,
    else ``~/.cache/mvc``."""
    d = os.environ.get("MVC_CACHE_DIR")
    if d:
        return os.path.abspath(os.path.expanduser(d))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "mvc")


def normalize(url: str) -> str:
    """A local path as an absolute path (git reads it relative to where it runs); URLs as given."""
    url = url.strip()
    if any(ord(c) < 32 or c == "\x7f" for c in url):
        raise UpstreamError(f"the --repo URL {url!r} holds a control character: check it")
    if not url:
        raise UpstreamError("the --repo URL is empty: give a git URL (a path, file://, ssh or https)")
    if "://" in url or re.match(r"^[^/\\]+@[^/:]+:", url):  # scp-like ssh: user@host:path
        return url
    return os.path.abspath(os.path.expanduser(url))


def local_path(url: str) -> str | None:
    """The directory a local repository URL names, or None for a network URL."""
    if url.startswith("file://"):
        return url[len("file://") :]
    return url if "://" not in url and os.path.isabs(url) else None


class Upstream(gitmod.Git):
    """The per-user cache of one git repository, read by URL. Used where a ``Git`` is (the registry's
    state model reads tags and blobs through it); call :meth:`sync_tags` or :meth:`commit` first."""

    partial = True

    def __init__(self, url: str, root: str | None = None):
        from mvc.storage.fileio import hexdigest_bytes
        from mvc.storage.store import redact_url

        self.url = normalize(url)
        self.shown = redact_url(self.url)  # for messages: never a password
        # one cache for one repository however it is named: a path and its file:// URL alike
        keyed = os.path.normpath(local) if (local := local_path(self.url)) else self.url
        key = hexdigest_bytes(keyed.encode("utf-8", "surrogateescape"))[:20]
        self.top = os.path.join(root or cache_root(), "repos")
        super().__init__(os.path.join(self.top, key))
        self.env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
        for var in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"):
            self.env.pop(var, None)  # a hook's environment must not redirect the cache's git
        # The URL is given to each fetch on its command line, never written into the cache's config: a URL
        # may carry a token (https://user:token@host/…), which has no place on disk.
        self._origin = ("-c", f"remote.origin.url={self.url}")
        self._refs: dict[str, str] | None = None
        self._tags: list[dict[str, Any]] | None = None
        self._entries: dict[tuple[str, str], str | None] = {}  # (commit, path) -> blob id, as ls-tree said
        self._present: set[str] = set()  # blob ids known to be in the cache
        self._data: dict[str, bytes] = {}  # blobs read
        self._made = os.path.isdir(os.path.join(self.root, "objects"))

    def _ensure(self) -> None:
        """Create the cache repository on first need (after ls-remote answered: a mistyped URL makes none)."""
        if self._made:
            return
        with lock.locked(os.path.join(self.top, "lock"), "the cache of git repositories"):
            if not os.path.isdir(os.path.join(self.root, "objects")):  # another process may have made it
                import shutil

                tmp = f"{self.root}.tmp{os.getpid()}"
                if os.path.isdir(tmp):  # left by a killed process of the same pid: ours, half made
                    shutil.rmtree(tmp)
                top = gitmod.Git(self.top)
                top.env = self.env
                try:
                    top.run("init", "--quiet", "--bare", tmp)
                    # the remote as `git remote add` and two `git config` would write it (one process, not four),
                    # without its URL (see __init__)
                    with open(os.path.join(tmp, "config"), "a", encoding="utf-8") as f:
                        f.write(
                            '[remote "origin"]\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n'
                            "\tpromisor = true\n\tpartialclonefilter = blob:none\n"
                        )
                    os.rename(tmp, self.root)
                except BaseException:  # a full disk, Ctrl-C: nothing half made is left in the cache
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
        self._made = True

    def _top(self) -> gitmod.Git:
        try:
            os.makedirs(self.top, exist_ok=True)
        except OSError as e:
            raise UpstreamError(
                f"cannot create the cache directory {self.top} ({e.strerror}): set MVC_CACHE_DIR to a "
                "writable directory"
            ) from None
        top = gitmod.Git(self.top)
        top.env = self.env
        return top

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold mvc's lock on this cache (every git write to it happens under it), first removing the lock files
        of git's that a process killed while it held ours left there (``shallow.lock``, a ref's ``.lock``):
        no live git can be writing here, and git would refuse every later fetch."""
        self._ensure()
        with lock.locked(os.path.join(self.root, "mvc.lock"), f"the cache of {self.shown}"):
            for d, dirs, names in os.walk(self.root):
                if d == self.root:
                    dirs[:] = [x for x in dirs if x == "refs"]  # and the top's own: shallow.lock, packed-refs.lock
                for name in names:
                    if name.endswith(".lock") and name != "mvc.lock":
                        with contextlib.suppress(OSError):
                            os.unlink(os.path.join(d, name))
            yield

    def _fail(self, e: GitError, doing: str) -> UpstreamError:
        lines = [line.strip() for line in e.stderr.splitlines() if line.strip()]
        fatal = [line.split(": ", 1)[-1] for line in lines if line.startswith(("fatal:", "error:"))]
        said = fatal[0] if fatal else str(e).split(": ", 1)[-1]
        said = " ".join(said.replace(self.url, self.shown).split())  # git's tabs and runs of spaces: one line
        if "dubious ownership" in e.stderr:
            return UpstreamError(
                f"cannot {doing} {self.shown}: git refuses it, another user owns it (dubious ownership); if you "
                "trust it, add it with 'git config --global --add safe.directory PATH' (the path git names)"
            )
        if self.top in said and ("Read-only file system" in said or "Permission denied" in said):
            return UpstreamError(
                f"cannot write the user's cache {self.top} (git: {said}): set MVC_CACHE_DIR to a writable "
                "directory (a read-only cache serves only what it already holds)"
            )
        return UpstreamError(
            f"cannot {doing} {self.shown} (git: {said}): check the URL and your access to it "
            "(ssh key, credential helper, token), then retry"
        )

    # -- refs ---------------------------------------------------------------------------------
    def refs(self) -> dict[str, str]:
        """{ref name: object id} as the repository has them now (``HEAD``, ``refs/heads/…``, ``refs/tags/…``,
        and ``refs/tags/…^{}`` for what an annotated tag peels to); one ``git ls-remote`` per instance."""
        if self._refs is None:
            top = self._top()
            try:
                out = top.run("ls-remote", "--", self.url)
            except GitError as e:
                raise self._fail(e, "read the git repository") from None
            refs: dict[str, str] = {}
            for line in out.decode("utf-8", "surrogateescape").splitlines():
                oid, _, name = line.partition("\t")
                if _HEX40.match(oid) and name:
                    refs[name] = oid
            self._refs = refs
            if self._made:  # used now: 'mvc gc --user-cache' keeps it (a read-only cache: as it is)
                with contextlib.suppress(OSError):
                    os.utime(self.root)
        return self._refs

    def registry_tags(self, model: str | None = None) -> list[str]:
        """Names of the registry tags (of one model, or all) the repository holds now."""
        found = []
        for ref in self.refs():
            if ref.startswith("refs/tags/") and not ref.endswith("^{}"):
                name = ref[len("refs/tags/") :]
                parsed = tagfmt.parse(name)
                if parsed is not None and (model is None or parsed.artifact == model):
                    found.append(name)
        return found

    def model_names(self) -> list[str]:
        return sorted({p.artifact for t in self.registry_tags() if (p := tagfmt.parse(t)) is not None})

    def sync_tags(self, names: list[str]) -> None:
        """Make the cache's tags what the repository holds: the tags named are fetched where the cache lacks
        them or has another id (tag objects, their commits and trees: no history, no blobs); tags the
        repository no longer has are deleted (GTO deletes tags)."""
        remote = {r[len("refs/tags/") :]: o for r, o in self.refs().items() if r.startswith("refs/tags/")}
        self._tags = None
        self._ensure()
        with self._lock():
            local = self._local_tags()
            stale = [t for t, o in local.items() if remote.get(t) != o]
            if stale:
                self.run("update-ref", "--stdin", input="".join(f"delete refs/tags/{t}\n" for t in stale).encode())
            want = [t for t in names if t in remote and (local.get(t) != remote[t] or t in stale)]
            if want:
                self._fetch([f"+refs/tags/{t}:refs/tags/{t}" for t in want])

    def tags(self) -> list[dict[str, Any]]:
        """As Git.tags, read once per instance after the last sync (the registry is read several times)."""
        if self._tags is None:
            self._tags = super().tags()
        return self._tags

    def _local_tags(self) -> dict[str, str]:
        self._ensure()
        out = self.run("for-each-ref", "--format=%(objectname) %(refname)", "refs/tags")
        found = {}
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            oid, _, ref = line.partition(" ")
            found[ref[len("refs/tags/") :]] = oid
        return found

    def _fetch(self, specs: list[str], depth: bool = True) -> None:
        args = [*self._origin, *_FETCH, "--depth=1"] if depth else [*self._origin, *_FETCH]
        try:
            self.run(*args, "origin", *specs)
        except GitError as e:
            raise self._fail(e, "fetch from") from None

    # -- revisions ----------------------------------------------------------------------------
    def commit(self, rev: str | None) -> str:
        """The commit id rev names in the repository (default: its HEAD), its commit and tree fetched.
        rev: a branch, a tag, a full commit id; anything else (``main~2``, a short id) costs a fetch
        of the branches' history (no blobs) to be resolved."""
        refs = self.refs()
        name = rev or "HEAD"
        for ref in (name, f"refs/heads/{name}", f"refs/tags/{name}") if not name.startswith("refs/") else (name,):
            if ref in refs:
                oid = refs.get(ref + "^{}", refs[ref])
                self._have_commit(oid, ref)
                return oid
        if rev is not None and _HEX40.match(rev.lower()):
            self._have_commit(rev.lower(), None)
            return rev.lower()
        if rev is None:
            raise UpstreamError(f"{self.shown} has no commits: push to it first (or pass --rev of a commit it has)")
        with self._lock():
            self._fetch(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], depth=False)
            if os.path.exists(os.path.join(self.root, "shallow")):
                try:
                    self.run(*self._origin, *_FETCH, "--unshallow", "origin")
                except GitError:
                    pass  # complete already
        out = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
        oid = out.decode().strip()
        if not _HEX40.match(oid):
            raise UpstreamError(
                f"unknown revision {rev!r} in {self.shown}: give a branch, a tag or a commit id (see 'git ls-remote URL')"
            )
        return oid

    def _have_commit(self, oid: str, ref: str | None) -> None:
        """Fetch the commit (with its tree, depth 1, no blobs) unless the cache holds it, and keep a ref to
        it (``refs/mvc/…``) so that git never collects it."""
        keep = f"refs/mvc/commits/{oid}"
        self._ensure()
        out = self.run("for-each-ref", "--format=%(objectname)", keep)
        if out.strip():
            return
        with self._lock():
            # by name where there is one: servers need not serve an id no ref names
            try:
                self._fetch([f"+{ref or oid}:{keep}"])
            except UpstreamError:
                if ref is not None:
                    raise
                raise UpstreamError(
                    f"unknown revision {oid} in {self.shown}: no branch or tag of it holds that commit (or the "
                    "server does not serve commits by id): give a branch or a tag"
                ) from None
            if ref is not None and ref.startswith("refs/tags/"):  # kept as the commit it peels to
                self.run("update-ref", keep, oid)

    # -- reading trees and blobs (overrides: the git binary, fetching missing blobs at once) ----
    def resolve(self, rev: str) -> _Commit:
        return _Commit(self.commit(rev))

    def blob_ids(self, commit: str, paths: list[str] | tuple[str, ...] | set[str]) -> dict[str, str | None]:  # type: ignore[override]
        if commit == "HEAD":  # the repository's, as a clone's HEAD is
            commit = self.commit(None)
        paths = list(paths)
        todo = [p for p in paths if (commit, p) not in self._entries]
        if todo:
            for p in todo:
                self._entries[(commit, p)] = None
            out = self.run("ls-tree", "-z", "--full-tree", commit, "--", *[f":(literal){p}" for p in todo])
            for entry in out.split(b"\0"):
                head, _, path = entry.partition(b"\t")
                mode, kind, oid = [*head.decode().split(" "), "", "", ""][:3]
                p = path.decode("utf-8", "surrogateescape")
                if p in todo and kind == "blob" and mode != "120000":
                    self._entries[(commit, p)] = oid
        found = {p: self._entries[(commit, p)] for p in paths}
        self.need_blobs(commit, [b for b in found.values() if b])
        return found

    def need_blobs(self, commit: str, blobs: list[str]) -> None:
        """Fetch, in one request, those of commit's blobs the cache lacks (the server honoured the filter)."""
        blobs = [b for b in blobs if b not in self._present]
        if not blobs:
            return
        out = self.run("rev-list", "--objects", "--no-walk", "--missing=print", commit)
        missing = {line[1:41] for line in out.decode().splitlines() if line.startswith("?")}
        todo = sorted(set(blobs) & missing)
        if todo:
            with self._lock():
                try:
                    self.run(*self._origin, *_FETCH, "origin", *todo)
                except GitError as e:
                    raise self._fail(e, "fetch from") from None
        self._present.update(blobs)

    def blob(self, blob_id: str) -> bytes:
        data = self._data.get(blob_id)
        if data is None:
            data = self.cat_objects([blob_id]).get(blob_id)
            if data is None:
                raise UpstreamError(f"{self.shown} did not send git object {blob_id}: retry")
            self._data[blob_id] = data
        return data

    def pointers_at(self, rev: str | None) -> dict[str, bytes]:
        """{pointer path: bytes} at rev (default: the repository's HEAD)."""
        commit = self.commit(rev)
        out = self.run("ls-tree", "-r", "-z", "--full-tree", commit)
        ids: dict[str, str] = {}
        for entry in out.split(b"\0"):
            head, _, path = entry.partition(b"\t")
            parts = head.decode().split(" ")
            p = path.decode("utf-8", "surrogateescape")
            if len(parts) == 3 and parts[1] == "blob" and parts[0] != "120000" and p.endswith(SUFFIX):
                ids[p] = parts[2]
        self.need_blobs(commit, list(ids.values()))
        data = self.cat_objects(ids.values())
        return {p: data[b] or b"" for p, b in ids.items()}


class _Commit:
    """What ``Git.resolve`` gives its callers: an object with the commit's ``id``."""

    __slots__ = ("id",)

    def __init__(self, oid: str):
        self.id = oid


class AsRepo:
    """The repository at a URL as ``repo/foreign.py`` reads a ``Repo``: other tools' files at its old revisions,
    through the map of imported content at its HEAD. It has no work tree: the paths mvc tracks are those of HEAD's
    pointers."""

    def __init__(self, up: Upstream):
        self.git = up
        self.mvc_dir: str | None = None  # (no work tree: no import staged and not committed)
        self._tracked: set[str] | None = None

    def untrackable(self, rel: str) -> str | None:
        return bad_target(rel)

    def tracks(self, rel: str) -> bool:
        if self._tracked is None:
            out = self.git.run("ls-tree", "-r", "-z", "--name-only", "--full-tree", self.git.commit(None))
            names = (p.decode("utf-8", "surrogateescape") for p in out.split(b"\0"))
            self._tracked = {p for p in names if p.endswith(SUFFIX)}
        return bad_target(rel) is None and rel + SUFFIX in self._tracked
