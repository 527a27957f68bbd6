"""What a read names, resolved: a reference (a tracked path at a revision, or a registry revision) in this
repository or in a git repository read by URL with no clone (``mvc.repo.upstream``), and the remote its
weights are read from. The verbs that read (``mvc.api.read``) and the registry's readers build on it.

A repository read by URL is untrusted input as a clone's is: its pointers and config are parsed strictly
and a pointer path mvc never tracks is refused. Its config chooses the remote the weights come from, with
this machine's credentials; ``remote`` (``--remote``) overrides it for a server that must not trust it.
"""

from __future__ import annotations

import os
from typing import Any

from mvc.errors import (
    ConfigError,
    MvcError,
    NoRemote,
    PathError,
    PointerError,
    RegistryError,
    UnknownRemote,
)
from mvc.format import config as cfgfmt
from mvc.format import pointer as ptrfmt
from mvc.format import tags as tagfmt
from mvc.repo.repository import Repo, open_repo

RepoArg = Repo | str | os.PathLike | None
URL_FIX = "pick another revision, or have the pointer fixed in that repository"
PASS_REMOTE = "pass --remote URL (in Python: remote=URL)"  # the CLI's words and the API's: both raise these
OPTIONS = ("--repo", "--rev")  # the options of the commands messages suggest, written as they are


class Target:
    """A resolved reference: the pointer, where it was read, and how to reach its remote."""

    __slots__ = ("commit", "config", "executable", "path", "pointer", "repo", "shown", "sub", "up", "within")

    def __init__(self, path: str, pointer: ptrfmt.Pointer, shown: str, commit: str | None):
        self.path, self.pointer, self.shown, self.commit = path, pointer, shown, commit
        self.repo: Repo | None = None
        self.up: Any = None  # an upstream.Upstream when read by URL
        self.config: dict[str, Any] = {}  # .mvc/config.toml at the revision (URL reads)
        self.sub = ""  # a file of this directory the reference named, not yet looked up (resolve's inside)
        self.within = ""  # the tracked directory this file is part of (a Target made by one_file)
        self.executable = False  # such a file's mode in its manifest

    @property
    def label(self) -> str:
        where = f" in {self.up.shown}" if self.up is not None else ""
        return f"{self.path}{f' at {self.shown}' if self.shown else ''}{where}"

    def label_of(self, sub: str) -> str:
        """How an error names the file sub of this directory ("" for the model itself)."""
        if not sub:
            return self.label
        at = f" at {self.shown}" if self.shown else ""
        where = f" in {self.up.shown}" if self.up is not None else ""
        return f"{self.path}/{sub}{at}{where}"

    def describe(self) -> dict[str, Any]:
        p = self.pointer
        d: dict[str, Any] = {"path": self.path, "kind": p.kind, "oid": p.oid, "size": p.size, "meta": p.meta}
        if self.commit:
            d["commit"] = self.commit
        if self.shown:
            d["rev"] = self.shown
        if self.up is not None:
            d["repo"] = self.up.shown
        if self.within:
            d["within"] = self.within
        return d

    def one_file(self, sub: str, oid: str, size: int, executable: bool) -> Target:
        """The file sub of this directory (its oid, size and mode from the manifest), as a Target of its own."""
        t = Target(f"{self.path}/{sub}", ptrfmt.Pointer("file", oid, size), self.shown, self.commit)
        t.repo, t.up, t.config, t.within, t.executable = self.repo, self.up, self.config, self.path, executable
        return t


class ByUrl(str):
    """A repo= read by URL whatever it names: the CLI's --repo, a URL or a path to a bare or normal repository
    (docs/cli.md), whose work tree, if it has one, is never read nor written."""

    __slots__ = ()


def is_url(repo: RepoArg) -> bool:
    """Whether repo= names a repository read by URL, with no clone: a URL, a path to a bare repository or to a
    clone whose .mvc/ was never checked out (as here_as_url reads the current directory), a path that is not
    here, or a ``ByUrl``. A path in a work tree names that work tree, as it does for every verb (docs/api.md)."""
    if isinstance(repo, ByUrl):
        return True
    if not isinstance(repo, (str, os.PathLike)):
        return False
    from mvc import git as gitmod

    text = os.fspath(repo)
    path = os.path.abspath(os.path.expanduser(text))
    if "://" in text or not os.path.exists(path):
        return True  # (no such path here: git says what it is, as for any URL)
    where = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        gitmod.find_worktree(where)
    except MvcError:
        return True  # a bare repository, or no repository (git says so, as for any URL)
    return here_as_url(where) is not None


Ref = str | os.PathLike | Target  # a Target: resolved already (one resolution for describe, then open)


def resolve(ref: Ref, *, repo: RepoArg = None, rev: str | None = None, inside: bool = False) -> Target:
    """What ref names: a tracked path (as of rev, default the work tree, or HEAD of a URL), or a registry
    revision (``NAME@v1.2.3``, ``NAME@latest``, ``NAME#STAGE``). A Target is returned as it is.
    inside: a path inside a tracked directory names that directory's Target with ``sub`` set (the file's
    path in it, which the reader looks up in the manifest), where it is otherwise refused."""
    if isinstance(ref, Target):
        return ref
    ref = os.fspath(ref)
    if not ref:
        raise PathError("'' is not a path or a model revision: name a tracked path, or NAME@vX.Y.Z")
    text = ref
    if is_url(repo):
        return _resolve_url(ref, os.fspath(repo), rev, inside)  # type: ignore[arg-type]
    from mvc.repo.selection import model_refs, pointer_for, refuse_a_model_name

    if repo is None:
        here = here_as_url()
        if here is not None:
            return _resolve_url(ref, here, rev, inside)
    r = open_repo(repo)
    # a serving process elsewhere names a path of the Repo it gives from that Repo's root
    base = r.root if repo is not None and not os.path.isabs(ref) and not _inside(os.getcwd(), r.root) else ""
    refs = model_refs(r, [ref], rev, base)
    shown = rev
    sub = ""
    if refs:
        shown, ref, rev = refs[0][0], r.abs(refs[0][1]), refs[0][2]
    elif base:
        ref = r.abs(ref)
    if not refs and inside:
        top = _tracked_above(r, r.rel(ref), rev)
        if top is not None:
            ref, sub = r.abs(top), r.rel(ref)[len(top) + 1 :]
    try:
        prel, p = pointer_for(r, ref, rev)
    except PathError:
        if not refs and not sub and rev is None:
            refuse_a_model_name(r, [text], "get", base)
        raise
    t = Target(Repo.target_of(prel), p, shown or "", r.resolve(rev) if rev else None)  # (the commit's id)
    t.repo, t.sub = r, sub
    return t


def _inside(path: str, root: str) -> bool:
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
    return rel != os.pardir and not rel.startswith(os.pardir + os.sep)


def _above(rel: str) -> list[str]:
    """The directories rel lies in, the deepest first ("a/b/c" -> ["a/b", "a"])."""
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _tracked_above(r: Repo, rel: str, rev: str | None) -> str | None:
    """The tracked path (in the work tree, or at rev) that rel lies inside, when rel itself is not tracked."""
    if rel.endswith(ptrfmt.SUFFIX) or "/" not in rel:
        return None
    above = _above(rel)
    if rev is None:
        if os.path.isfile(r.abs(Repo.pointer_of(rel))):
            return None
        return next((a for a in above if os.path.isfile(r.abs(Repo.pointer_of(a)))), None)
    at = r.pointers_at(rev)
    if Repo.pointer_of(rel) in at:
        return None
    return next((a for a in above if Repo.pointer_of(a) in at), None)


def here_as_url(start: str | None = None) -> str | None:
    """The git repository the directory start (default: the current one) is in, to be read as by URL, when it has
    no work tree mvc could use: a bare repository, or a clone whose .mvc/ was never checked out
    (``--no-checkout``) while its HEAD has one. None otherwise (for the current directory, the usual case costs
    one stat; a directory given is asked of git first, since a bare repository may lie inside a work tree)."""
    from mvc import git as gitmod
    from mvc.format.config import MVC_DIR

    where = start or os.getcwd()
    try:
        top = gitmod.find_worktree(where)
    except MvcError:
        top = None
    mvc_here = top is not None and os.path.isdir(os.path.join(top, MVC_DIR))
    if mvc_here and start is None:
        return None
    g = gitmod.Git(where)
    out = g.run("rev-parse", "--is-bare-repository", "--absolute-git-dir", check=False).decode().split()
    if len(out) != 2:
        return None  # not in a git repository: open_repo says so
    bare, gitdir = out
    if bare == "true":
        return gitdir
    if mvc_here:
        return None
    has = g.run("rev-parse", "--verify", "--quiet", f"HEAD:{cfgfmt.CONFIG_PATH}", check=False).strip()
    return top if has and top is not None else None


def _resolve_url(ref: str, url: str, rev: str | None, inside: bool = False) -> Target:
    from mvc.repo import models, upstream

    up = upstream.Upstream(url)
    parsed = tagfmt.parse_ref(ref) if rev is None and ("@" in ref or "#" in ref) else None
    if parsed is not None:
        names = up.registry_tags(parsed.name)
        if not names:
            known = up.model_names()
            listed = f"models there: {', '.join(known[:10])}" if known else "it has no registered models"
            raise RegistryError(f"no model named {parsed.name!r} in {up.shown} ({listed}): check the name")
        up.sync_tags(names)
        _prefetch(up, ref)
        try:
            found = models.model_ref(up, ref)
        except RegistryError as e:
            said = str(e).replace("'mvc registry'", _with_repo("mvc registry", up))
            raise RegistryError(f"{up.shown}: {said}") from None
        if found is None:
            raise RegistryError(f"{ref} names no version in {up.shown}: see {_with_repo('mvc registry', up)}")
        path, commit = found
        shown = ref
    else:
        path = ref.replace(os.sep, "/").removeprefix("./").rstrip("/")
        if path.endswith(ptrfmt.SUFFIX):
            path = Repo.target_of(path)
        commit = up.commit(rev)
        shown = rev or "HEAD"
    why = ptrfmt.bad_target(path)
    if why is not None:
        raise PointerError(f"{path} in {up.shown} is a path mvc never reads ({why}): pick another path or revision")
    prel = path + ptrfmt.SUFFIX
    blobs = up.blob_ids(commit, [prel, cfgfmt.CONFIG_PATH])  # both in one fetch, where blobs are filtered
    blob = blobs[prel]
    sub = ""
    if blob is None and inside and parsed is None and "/" in path:
        above = _above(path)
        ids = up.blob_ids(commit, [a + ptrfmt.SUFFIX for a in above])  # one fetch for every level
        top = next((a for a in above if ids[a + ptrfmt.SUFFIX] is not None), None)
        if top is not None:
            path, sub, prel, blob = top, path[len(top) + 1 :], top + ptrfmt.SUFFIX, ids[top + ptrfmt.SUFFIX]
    if blob is None:
        names = up.model_names() if parsed is None and rev is None else []
        why = models.unknown_ref(ref, names) if names else None
        if why is not None:
            raise RegistryError(why.replace("'mvc registry'", _with_repo("mvc registry", up)))
        fix = _with_repo("mvc ls", up, *(() if rev is None else ("--rev", rev)))
        if ref in names:  # a model's name, given as GTO and MLflow users name a model, not one of its versions
            fix = (
                f"{ref} is a model: use {ref}@latest or {ref}#STAGE (its versions and stages: "
                f"{_with_repo('mvc registry', up, ref)}), or list the paths with {fix}"
            )
        else:
            fix = f"list what is with {fix}"
        raise PathError(f"{path} is not tracked by mvc at {shown} in {up.shown}: {fix}")
    where = f"{prel} at {shown} in {up.shown}"
    t = Target(path, ptrfmt.loads(up.blob(blob), where, URL_FIX), shown, commit)
    t.up, t.sub = up, sub
    cfg = blobs[cfgfmt.CONFIG_PATH]
    if cfg is not None:
        t.config = cfgfmt.loads(up.blob(cfg), f"{cfgfmt.CONFIG_PATH} at {shown} in {up.shown}")
    return t


def _prefetch(up: Any, ref: str) -> None:
    """Fetch the config and the pointer the tags name for ref in one request (where blobs are filtered),
    before model_ref reads them one by one. Only a guess to save a round trip: what is read is checked."""
    from mvc.repo import models

    try:
        commit = models.resolve_ref(up, ref)
        parsed = tagfmt.parse_ref(ref)
        m = models.load(up).get(parsed.name) if commit and parsed else None
    except MvcError:
        return  # model_ref says what is wrong
    if commit is None or m is None:
        return
    paths = [e.fields["path"] for e in reversed(m.events) if e.commit == commit and "path" in e.fields]
    guess = paths[0] if paths else m.path()
    want = [cfgfmt.CONFIG_PATH] + ([guess + ptrfmt.SUFFIX] if guess and ptrfmt.bad_target(guess) is None else [])
    up.blob_ids(commit, want)


# -- the remote a read uses -------------------------------------------------------------------
def spec_for(t: Target, remote: str | None) -> Any:
    """The remote to read t's objects from: ``remote`` (a URL, or a remote's name), else the default remote
    of the repository as configured (at the revision, for a URL)."""
    from mvc.repo import remotes

    looks_like_url = remote is not None and ("://" in remote or "/" in remote or os.sep in remote)
    if remote is not None and looks_like_url:
        from mvc.storage.store import redact_url

        return remotes.Spec(redact_url(remote), remote, {}, None, os.getcwd(), packs=False)
    if t.up is None:
        assert t.repo is not None
        return remotes.spec(t.repo, remote)
    where = f"{cfgfmt.CONFIG_PATH} at {t.shown} in {t.up.shown}"
    table = cfgfmt.remotes(t.config, where)
    name = remote
    if name is None:
        core = t.config.get("core", {})
        name = core.get("remote") if isinstance(core, dict) else None
        if name is None and len(table) == 1:
            name = next(iter(table))
        if name is None and table:  # several, none the default: a name is looked up in this config
            raise NoRemote(
                f"{t.up.shown} has no default mvc remote at {t.shown} (remotes there: {', '.join(sorted(table))}): "
                "pass --remote NAME or URL (in Python: remote=)"
            )
        if name is None:  # (a name would be looked up in this same config: only a URL can help)
            raise NoRemote(f"{t.up.shown} has no mvc remote at {t.shown}: {PASS_REMOTE}{_at_head(t)}")
    entry = table.get(name)
    if entry is None:
        known = ", ".join(sorted(table)) or "none"
        hint = _at_head(t) if not table else ""
        raise UnknownRemote(f"{t.up.shown} has no remote {name!r} at {t.shown} (remotes: {known}): {PASS_REMOTE}{hint}")
    from mvc.repo import upstream
    from mvc.storage.store import split_url

    url = entry["url"]
    protocol, path = split_url(url)
    base = upstream.local_path(t.up.url)  # the real URL: a path has no password
    if protocol == "local" and not os.path.isabs(os.path.expanduser(path)) and base is None:
        raise ConfigError(
            f"remote {name} of {t.up.shown} is the relative path {url!r}, which means nothing on this machine: "
            f"{PASS_REMOTE}"
        )
    options = {k: v for k, v in entry.items() if k not in ("url", "jobs", "packs", "chunks")}
    return remotes.Spec(
        name,
        url,
        options,
        entry.get("jobs"),
        base or os.getcwd(),
        packs=entry.get("packs", True),
        chunks=entry.get("chunks", True),
    )


def _at_head(t: Target) -> str:
    """For a revision of a repository read by URL whose config has no remote: the remotes its HEAD's config
    has, each as --remote would take it (the likely answer: a remote added after the version was tagged); ""
    when HEAD is that revision, has none, or cannot be read."""
    from mvc.repo import upstream
    from mvc.storage.store import redact_url, split_url

    try:
        head = t.up.commit(None)
        blob = t.up.blob_ids(head, [cfgfmt.CONFIG_PATH])[cfgfmt.CONFIG_PATH] if head != t.commit else None
        if blob is None:
            return ""
        where = f"{cfgfmt.CONFIG_PATH} at HEAD in {t.up.shown}"
        table = cfgfmt.remotes(cfgfmt.loads(t.up.blob(blob), where), where)
    except MvcError:
        return ""
    base = upstream.local_path(t.up.url)
    shown = []
    for name, entry in sorted(table.items()):
        protocol, path = split_url(entry["url"])
        url = redact_url(entry["url"])
        if protocol == "local":  # as --remote takes it, from wherever the command runs
            path = os.path.expanduser(path)
            if not os.path.isabs(path) and base is None:
                continue  # relative to a clone of a repository on another machine: no place here
            url = os.path.normpath(os.path.join(base or "", path))
        shown.append(f"{name} (--remote {ptrfmt.shell_quoted(url)})")
    return f"; likely a remote HEAD's config has: {', '.join(shown)}" if shown else ""


def user_odb() -> Any:
    from mvc.objects.odb import ODB
    from mvc.repo import upstream

    odb = ODB(os.path.join(upstream.cache_root(), "cache"))
    odb.collect = "mvc gc --user-cache --force"
    return odb


def open_remote(t: Target, remote: str | None, odb: Any = None) -> Any:
    """The remote t's weights are read from (see spec_for), for moving objects into odb (default: the cache
    a read looks in first, local_odb)."""
    from mvc.objects.journal import Journal
    from mvc.objects.transfer import Transfer
    from mvc.repo import remotes, upstream

    sp = spec_for(t, remote)
    path = sp.local_dir
    if t.up is not None and sp.url != remote and path is not None and not os.path.isdir(path):
        from mvc.errors import RemoteNotFound

        # (with no clone, 'mvc remote list' and 'mvc remote modify', which the store's own message offers, cannot run)
        raise RemoteNotFound(
            f"remote directory {ptrfmt.quoted(os.path.normpath(path))} does not exist ({sp.name} = {sp.url!r} in the config of "
            f"{t.up.shown} at {t.shown}): {PASS_REMOTE}"
        )
    if t.repo is not None and sp.url != remote:
        jr = remotes.journal(t.repo)
    else:
        jr = Journal(os.path.join(upstream.cache_root(), "remotes.db"))
    store = sp.open(reading=True)
    return Transfer(
        store, odb or local_odb(t), jr, sp.key, name=sp.name, jobs=sp.jobs, packs=sp.packs, chunks=sp.chunks
    )


def local_odb(t: Target) -> Any:
    """The cache a read looks in first: this repository's, or the user's for a repository read by URL."""
    return t.repo.odb if t.repo is not None else user_odb()


# -- listing a repository by URL --------------------------------------------------------------
def ls_url(url: str, rev: str | None = None) -> list[dict[str, Any]]:
    """Tracked paths at rev (default HEAD) of the repository at url, as ``mvc ls`` lists them: at a revision before
    ``mvc import-dvc``/``import-lfs``, the other tool's files read through HEAD's map as ``mvc ls --rev`` reads them
    in a clone, a version the import could not bring in listed as such."""
    from mvc.api import listing
    from mvc.repo import foreign, upstream

    up = upstream.Upstream(url)
    shown = rev or "HEAD"
    commit = up.commit(rev)
    view = upstream.AsRepo(up)
    at_rev = foreign.all_pointers_at(view, commit)
    rows = []
    for prel, data in at_rev.items():
        why = ptrfmt.bad_target(Repo.target_of(prel))
        if why is not None:
            raise PointerError(
                f"pointer {prel} in {up.shown} tracks a path mvc never reads ({why}): pick another --rev"
            )
        rows.append((prel, listing.describe(prel, ptrfmt.loads(data, f"{prel} at {shown} in {up.shown}", URL_FIX))))
    return listing.in_order(rows + listing.not_imported(view, commit, shown, at_rev))


def _with_repo(command: str, up: Any, *args: str) -> str:
    """A command a message suggests, reading the repository of up by URL: its URL and args quoted for the shell,
    the whole set off in quotes (``in_quotes``), ready to paste."""
    words = [*args, "--repo", up.shown]
    return ptrfmt.in_quotes(" ".join([command, *(w if w in OPTIONS else ptrfmt.shell_quoted(w) for w in words)]))


def registry_git(url: str) -> Any:
    """The upstream of url with every registry tag fetched: what the registry's readers take as their git."""
    from mvc.repo import upstream

    up = upstream.Upstream(url)
    up.sync_tags(up.registry_tags())
    return up
