"""Remotes as a repository configures them (``[remote.NAME]`` in .mvc/config.toml and config.local.toml),
the journal of what each holds, and fetching objects into the cache: what both the workspace verbs
(a checkout that fetches what it lacks) and the transfer verbs (``mvc.api.sync``) build on.

Opening a remote imports its store (fsspec, s3fs) only then; reading the configuration imports none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from mvc import progress as progressmod
from mvc.errors import (
    ConfigError,
    CorruptObject,
    LayoutError,
    NoRemote,
    ObjectMissing,
    RemoteError,
    RemoteObjectMissing,
    UnknownRemote,
)
from mvc.format import config as cfgfmt
from mvc.objects.journal import Journal
from mvc.objects.meter import Meter
from mvc.objects.transfer import Transfer
from mvc.repo.repository import Repo, in_quotes, shell_quoted
from mvc.repo.selection import Wanted
from mvc.storage.store import Store
from mvc.storage.urls import check_url, identity, open_store, split_url


class Spec:
    """A configured remote, before anything is imported or contacted. A plain class: checkout imports
    this module on its start-up path (ARCHITECTURE.md, "Start-up rules")."""

    __slots__ = ("base", "caches", "checked", "chunks", "fsync", "jobs", "name", "options", "packs", "url")

    def __init__(
        self,
        name: str,
        url: str,
        options: dict[str, Any],
        jobs: int | None,
        base: str,
        fsync: bool = False,
        packs: bool = True,  # push small objects in packs (reading understands packs either way)
        chunks: bool = True,  # push large objects as chunks and deltas (reading understands them either way)
        caches: tuple[str, ...] = (),  # the repository's cache directories: a directory remote may not be one
    ):
        self.name, self.url, self.options, self.jobs = name, url, options, jobs
        self.base, self.fsync, self.packs, self.chunks = base, fsync, packs, chunks
        self.caches, self.checked = caches, False

    @property
    def key(self) -> str:
        return identity(self.url, self.options.get("endpoint_url"), self.base, self.options.get("profile"))

    @property
    def local_dir(self) -> str | None:
        """The directory of a directory remote (relative to ``base``, ``~`` expanded); None for another kind."""
        protocol, path = split_url(self.url)
        return os.path.join(self.base, os.path.expanduser(path)) if protocol == "local" and path else None

    def open(self, reading: bool = False) -> Store:
        self.check()
        return open_store(self.url, self.options, base=self.base, fsync=self.fsync, reading=reading)

    def check(self) -> None:
        """Refuse a directory remote that is a cache: this repository's (``caches``: it is, contains or lies
        inside one of them, by real paths) or any mvc cache, as its root tells (:func:`layout.cache_at`). A push
        would find the cache's objects "already there" and send nothing, and ``gc -r`` would delete what other
        repositories sharing that cache need. Every verb that uses a remote calls this before anything else
        touches it (once a Spec); a few stats, no request."""
        if self.checked:
            return
        local = self.local_dir
        if local is not None:
            from mvc.objects import layout

            real = os.path.realpath(local)
            why = None
            for cache in sorted({os.path.realpath(c) for c in self.caches}):
                if real == cache:
                    why = "is this repository's cache"
                elif real.startswith(cache.rstrip(os.sep) + os.sep):
                    why = f"lies inside this repository's cache ({cache})"
                elif cache.startswith(real.rstrip(os.sep) + os.sep):
                    why = f"contains this repository's cache ({cache})"
                if why:
                    break
            found = why is None and layout.cache_at(real)
            if found:
                why = "is an mvc cache" if found == real else f"lies inside the mvc cache {found}"
            if why:
                raise LayoutError(
                    f"remote {self.name} ({real}) {why}, not a remote: a push would send nothing and a gc -r would "
                    "delete what other repositories need; nothing was read or written: point the remote at a "
                    f"directory of its own ('mvc remote modify {self.name} url DIR')"
                )
        self.checked = True


def remote_table(repo: Repo) -> dict[str, dict[str, Any]]:
    cfgfmt.remotes(repo.config.shared, cfgfmt.CONFIG, need_url=False)
    cfgfmt.remotes(repo.config.local, cfgfmt.LOCAL, need_url=False)
    return cfgfmt.remotes(repo.config.data, "the config")


def default_remote(repo: Repo) -> str | None:
    """The default remote's name: ``core.remote``, or the only remote; None when none is configured."""
    name = repo.config.get("core.remote")
    if isinstance(name, str) and name:
        return name
    if name is not None:
        raise ConfigError(
            f"core.remote must be a remote's name, not {str(name)[:40]!r}: set it with 'mvc remote default NAME'"
        )
    table = remote_table(repo)
    return next(iter(table)) if len(table) == 1 else None


def spec(repo: Repo, name: str | None = None) -> Spec:
    table = remote_table(repo)
    if name is None:
        name = default_remote(repo)
        if name is None:
            if not table:
                raise NoRemote("no mvc remote configured: add one with 'mvc remote add NAME URL --default'")
            raise NoRemote(
                f"no default mvc remote: pass -r NAME (one of {', '.join(sorted(table))}) or set one "
                f"with 'mvc remote default NAME'"
            )
    entry = table.get(name)
    if entry is None:
        known = f"known remotes: {', '.join(sorted(table))}" if table else "no remote is configured"
        if "/" in name or os.sep in name or "://" in name:  # a URL or a path where a remote's name goes
            raise UnknownRemote(
                f"unknown remote {name!r} ({known}): -r takes a remote's name; to use that place, add it with "
                f"'mvc remote add NAME {name}' and pass -r NAME"
            )
        if not name.strip():
            raise UnknownRemote(f"{name!r} is not a remote's name ({known}): pass -r NAME")
        raise UnknownRemote(f"unknown remote {name!r} ({known}): add it with 'mvc remote add {name} URL'")
    options = {k: v for k, v in entry.items() if k not in ("url", "jobs", "packs", "chunks")}
    return Spec(
        name,
        entry["url"],
        options,
        entry.get("jobs"),
        repo.remote_base,
        repo.config.fsync,
        entry.get("packs", True),
        entry.get("chunks", True),
        (repo.odb.root, repo.own_cache, repo.config.cache_dir),
    )


def check_name(name: str) -> None:
    if not cfgfmt.valid_remote_name(name):
        raise RemoteError(
            f"invalid remote name {name!r}: use letters, digits, '-' and '_', beginning with a letter or digit "
            "(e.g. origin, s3-backup)"
        )


def normalize_url(repo: Repo, url: str) -> str:
    """Check the URL; a relative local path is stored relative to the repository root (the main work tree's)."""
    url = url.strip()
    protocol = check_url(url)
    if protocol == "local":
        _refuse_inside_work_tree(repo, os.path.abspath(os.path.expanduser(split_url(url)[1])))
    if protocol == "local" and "://" not in url and not os.path.isabs(os.path.expanduser(url)):
        return os.path.relpath(os.path.abspath(url), repo.remote_base).replace(os.sep, "/")
    return url


def _refuse_inside_work_tree(repo: Repo, path: str) -> None:
    """A directory remote in the work tree (not in .git or .mvc): its files are untracked files, which the next
    'git add -A' commits into git."""
    real, root = os.path.realpath(path), os.path.realpath(repo.root)
    rel = os.path.relpath(real, root)
    if (
        rel in (".", os.pardir)
        or rel.startswith(os.pardir + os.sep)
        or rel.split(os.sep, 1)[0] in (".git", cfgfmt.MVC_DIR)
    ):
        return  # (the work tree itself, or a cache, is refused where every verb checks the remote)
    if repo.git.run("check-ignore", "--", rel.replace(os.sep, "/"), check=False).strip():
        return  # git ignores it (DVC's own quick start keeps its remote so): nothing of it is committed
    raise RemoteError(
        f"{path} is inside the work tree and git does not ignore it: 'git add -A' would commit what a push writes "
        "there; choose a directory outside it, or ignore it in .gitignore"
    )


def config_path(repo: Repo, local: bool) -> str:
    return os.path.join(repo.mvc_dir, cfgfmt.LOCAL if local else cfgfmt.CONFIG)


def validate(repo: Repo) -> None:
    check = Repo(repo.root)
    remote_table(check)


def journal(repo: Repo) -> Journal:
    """The journal of this repository's remotes: ``.mvc/remotes.db``."""
    return Journal(os.path.join(repo.mvc_dir, "remotes.db"))


def open_transfer(repo: Repo, sp: Spec, jr: Journal, jobs: int | None = None, reading: bool = False) -> Transfer:
    """Open the remote sp describes, for moving objects between it and the repository's cache. ``reading``:
    nothing will be written to it (fetch, pull, a checkout's fetch, ``status -r``): S3 then starts faster
    (``mvc.storage.s3read``)."""
    store = sp.open(reading=reading)
    return Transfer(store, repo.odb, jr, sp.key, name=sp.name, jobs=jobs or sp.jobs, packs=sp.packs, chunks=sp.chunks)


def fetch_wanted(
    repo: Repo, sp: Spec, wanted: Wanted, jobs: int | None, progress: progressmod.Factory
) -> dict[str, Any]:
    sp.check()  # a cache as the remote is refused even when the cache already holds everything
    result: dict[str, Any] = {"remote": sp.name, "downloaded": 0, "bytes": 0, "present": 0}
    need_manifests = [m for m in wanted.manifests if not repo.odb.exists(m)]
    remote: Transfer | None = None
    absent: list[str] = []
    damage: list[tuple[CorruptObject, str | None]] = []  # (what a download refused, the object it names)

    def download(todo: list[str], meter: Meter, sizes: dict[str, int] | None = None) -> None:
        assert remote is not None
        try:  # a damaged object is said once the others are in, and those of the next step too
            got, gone = remote.download(todo, meter, sizes)
        except CorruptObject as e:
            damage.append((e, next(iter(remote.damaged), None)))
            return
        result["downloaded"] += len(todo) - len(gone)
        result["bytes"] += got
        absent.extend(gone)

    jr = journal(repo)
    try:
        if need_manifests:
            remote = open_transfer(repo, sp, jr, jobs, reading=True)
            download(need_manifests, Meter(progressmod.null, "", 0, 0))
        for moid in wanted.manifests:
            if repo.odb.exists(moid):
                wanted.read_manifest(repo, moid)
        todo = [o for o in wanted.files if not repo.odb.exists(o)]
        result["present"] = len(wanted.files) + len(wanted.manifests) - len(todo) - len(need_manifests)
        if todo:
            if remote is None:
                remote = open_transfer(repo, sp, jr, jobs, reading=True)
            meter = Meter(progress, f"fetching from {sp.name}", sum(wanted.files[o][1] for o in todo), len(todo))
            remote.local_versions = _local_versions(repo, wanted, todo)
            try:
                download(todo, meter, {o: wanted.files[o][1] for o in todo})
            finally:
                meter.close()
    finally:
        if remote is not None:
            remote.close()
        jr.close()
    if damage:
        e, oid = damage[0]
        first, more = not_fetched(repo, wanted, oid)
        if not first:
            raise e
        raise type(e)(f"{first}{more} could not be fetched: {e}; the rest was fetched") from None
    if absent:
        first_oid = absent[0]
        first, more = not_fetched(repo, wanted, first_oid)
        if not more and len(absent) > 1:
            more = f" (and {len(absent) - 1} more object{'s' if len(absent) > 2 else ''})"
        verb = "are" if more else "is"
        what = f"{wanted.label(first_oid)}{more} {verb} not on remote {sp.name} (object {first_oid})"
        if remote is not None and remote.bad_indexes:  # the objects are likely in the pack it indexes
            raise RemoteObjectMissing(
                f"{what} as far as can be read: its pack index {remote.bad_indexes[0]} is damaged: run "
                "'mvc push --verify-remote' where the objects are, which writes it again; the rest was fetched"
            )
        raise RemoteObjectMissing(
            f"{what}: push it from where it exists ('mvc push' there), or fetch it from another remote with "
            "'mvc fetch -r NAME'; the rest was fetched"
        )
    return result


SHOWN_PATHS = 5  # the paths a message lists, the others counted


def not_fetched(repo: Repo, wanted: Wanted, oid: str | None) -> tuple[str, str]:
    """How a fetch's error names what it left out: the tracked path (with its revision) of object oid, and
    " (and N more paths: a, b)" for the other paths whose objects the cache does not all hold now ("" when none)."""
    lacking = set(repo.odb.missing(list(wanted.files) + list(wanted.manifests)))
    if oid is not None:
        lacking.add(oid)
    paths: dict[str, None] = {}
    covered: set[str] = set()
    first = ""
    for label, o in wanted.named:
        inside = {e.oid for e in wanted.entries.get(o, ())}
        if o in lacking or inside & lacking:
            paths.setdefault(label)
            covered |= {o} | inside
            if oid is not None and not first and (o == oid or oid in inside):
                first = label
    for o in sorted(lacking - covered):  # named by no pointer (a checkout's fetch): its tracked path, if known
        if o in wanted.paths:
            paths.setdefault(wanted.paths[o])
    if not first:
        first = (wanted.paths.get(oid) or wanted.label(oid)) if oid is not None else next(iter(paths), "")
    others = [p for p in paths if p != first]
    if not others:
        return first, ""
    listed = ", ".join(others[:SHOWN_PATHS]) + (", …" if len(others) > SHOWN_PATHS else "")
    return first, f" (and {len(others)} more path{'s' if len(others) > 1 else ''}: {listed})"


def _local_versions(repo: Repo, wanted: Wanted, todo: list[str]) -> dict[str, list[str]]:
    """{oid: earlier versions of its tracked path (a directory's file: of its path in that directory) that the cache
    holds} for the large files among todo: a chunked object's rebuild takes the chunks it can from them."""
    from mvc.objects.chunked import CHUNK_FROM

    large = {o: wanted.paths[o] for o in todo if wanted.files[o][1] >= CHUNK_FROM and o in wanted.paths}
    if not large:
        return {}
    from mvc.repo.bases import bases_for, inside

    return bases_for(repo, large, inside(wanted, large))


def fetch_objects(
    repo: Repo,
    wanted_oids: Iterable[str] | dict[str, int],
    *,
    remote: str | None = None,
    jobs: int | None = None,
    progress: progressmod.Factory = progressmod.null,
    labels: dict[str, str] | None = None,
    paths: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Download these objects (as they are: a manifest's entries are not followed) into the cache.
    A dict gives each object's expected size, for the progress bar and scheduling; ``labels`` how an
    error names each object (its tracked path; default: the oid); ``paths`` the tracked path of each, where
    known (earlier versions of a large file give its rebuild the chunks they share)."""
    sp = spec(repo, remote)
    sizes = wanted_oids if isinstance(wanted_oids, dict) else dict.fromkeys(wanted_oids, 0)
    labels = labels or {}
    wanted = Wanted()
    for oid, size in sizes.items():
        wanted.files.setdefault(oid, (labels.get(oid, oid), size))
    wanted.paths.update(paths or {})
    return fetch_wanted(repo, sp, wanted, jobs, progress)


def ensure_objects(
    repo: Repo,
    needed: dict[str, int],
    progress: progressmod.Factory = progressmod.null,
    labels: dict[str, tuple[str, str]] | None = None,
) -> None:
    """Raise ObjectMissing unless every oid is in the cache, fetching missing ones from the default remote.
    needed: {oid: size} (size 0 where unknown; sizes only feed the progress bar). labels: {oid: (how a
    message names it, the tracked path to re-add)}, e.g. ``("data/tok/a.json of directory data/tok",
    "data/tok")``; without one, a message names the oid."""
    missing = repo.odb.missing(sorted(needed))
    if not missing:
        return
    labels = labels or {}
    from mvc.repo import compact

    rebuilt = compact.expand(repo, missing, progress, {o: labels[o][0] for o in missing if o in labels})
    missing = [o for o in missing if o not in rebuilt]
    if not missing:
        return
    name = default_remote(repo)
    if name is not None:
        # raises, naming the remote and the path, for what it lacks
        fetch_objects(
            repo,
            {o: needed[o] for o in missing},
            progress=progress,
            labels={o: labels[o][0] for o in missing if o in labels},
            paths={o: labels[o][1] for o in missing if o in labels and labels[o][1]},
        )
        missing = repo.odb.missing(missing)
        if not missing:
            return
    first = missing[0]
    what, path = labels.get(first, (f"object {first}", ""))
    what += f" (object {first})" if first in labels else ""
    if len(missing) > 1:
        what += f" and {len(missing) - 1} more object{'s' if len(missing) > 2 else ''}"
    what += " are" if len(missing) > 1 else " is"
    if name is None:
        readd = in_quotes(f"mvc add {shell_quoted(path)}") if path else "'mvc add PATH'"
        raise ObjectMissing(
            f"{what} not in the cache: re-add it with {readd} where the file exists, "
            f"or {fetch_fix(repo, 'run this again')}"
        )
    raise ObjectMissing(  # only when the object vanished again between the fetch and this check
        f"{what} not in the cache although remote {name} sent it: run 'mvc fetch' (or 'mvc pull') again"
    )


def fetch_fix(repo: Repo, then: str) -> str:
    """The message's fix for weights missing from the cache that a remote may hold, as the remotes are
    configured; ``then`` is what to run once one can serve them (e.g. "'mvc fetch model.pt'")."""
    name = default_remote(repo)
    if name is not None:
        return f"{then} if remote {name} has them"
    table = remote_table(repo)
    if table:
        return (
            "make the remote that holds them the default with 'mvc remote default NAME' "
            f"(remotes: {', '.join(sorted(table))}), then {then}"
        )
    return (
        "add the remote that holds them with 'mvc remote add NAME URL --default' (no mvc remote is configured), "
        f"then {then}"
    )


def mark_user(repo: Repo, sp: Spec, remote: Transfer, jr: Journal, recheck: bool = False) -> None:
    """Say on the remote that this repository pushes to it (``repos/ROOT``, ROOT its first root commit), once
    per remote and journal (recheck: look again, as ``push --verify-remote`` does): ``mvc gc -r`` refuses a
    remote that other repositories use too."""
    from mvc.objects import layout

    roots = repo.git.roots()
    if not roots:
        return
    tag = f"repo:{roots[0]}"
    if not recheck and jr.known(sp.key, [tag]):
        return
    rel = layout.REPOS + roots[0]
    if not remote.store.exists(rel):
        remote.store.put_bytes(rel, b"")
    jr.add(sp.key, [tag])


def forget_user_mark(repo: Repo, sp: Spec, jr: Journal) -> None:
    """Forget that this repository's ``repos/ROOT`` is on the remote (the remote lost objects: maybe that too),
    so that the next push writes it again."""
    roots = repo.git.roots()
    if roots:
        jr.discard(sp.key, [f"repo:{roots[0]}"])
