"""Reading a model version from anywhere: ``get``, ``open``, ``read_bytes``, ``describe``, ``materialize``.

``repo`` is this repository (None, a ``Repo``, or a path in its work tree) or a git URL (``file://``, ssh,
https, a path to a bare repository or to a clone whose .mvc/ was never checked out; ``target.is_url``): then
nothing is cloned (``mvc.repo.upstream`` fetches the few git objects a
revision needs into the user's cache) and the weights come straight from the remote that
``.mvc/config.toml`` names at that revision, or from ``remote`` (a URL, or a remote's name), which a
server that must not trust the repository's config passes. Credentials come from this machine only
(its environment, ``~/.aws``, …): a committed config cannot hold secrets (docs/config.md).

Every byte is checked against the pointer's oid: a file is written to a temp file, hashed, then
renamed; a stream raises before it returns the last byte of a wrong object. With a URL, no cache copy
is kept unless ``cache=True`` (the user's cache, ``~/.cache/mvc/cache``), so a server holds one copy.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from typing import Any, TypeVar

from mvc import progress as progressmod
from mvc.api import outputs
from mvc.api.target import Ref, RepoArg, Target, here_as_url, local_odb, open_remote, resolve
from mvc.errors import CorruptObject, PathError, RemoteCorrupt, RemoteObjectMissing, StorageError
from mvc.objects import manifest as mf
from mvc.objects import pack as pk
from mvc.objects.odb import belied

MANIFEST_MAX = 1 << 30  # read no more of a manifest than this (one of 1,000,000 files is about 150 MB)
DEFAULT_JOBS = 8  # files of a directory written at once when no remote says otherwise
PUSH_IT = "push it from where it exists, or pass --remote URL of a remote that has it (in Python: remote=URL)"


# -- reading ----------------------------------------------------------------------------------
def describe(ref: Ref, *, repo: RepoArg = None, rev: str | None = None) -> dict[str, Any]:
    """{path, kind, oid, size, meta, commit?, rev?, repo?, within?} of what ref names; reads no weights (a
    file inside a tracked directory: that directory's manifest, from the cache or the default remote)."""
    return target_of(ref, repo=repo, rev=rev).describe()


def target_of(ref: Ref, *, repo: RepoArg = None, rev: str | None = None, remote: str | None = None) -> Target:
    """What ref names, as ``resolve`` says, where a path may also name one file inside a tracked directory:
    then that file (``within`` its directory), its oid and size read from the directory's manifest."""
    t = resolve(ref, repo=repo, rev=rev, inside=True)
    if not t.sub:
        return t
    label = f"the manifest of directory {t.label}"
    if t.pointer.kind != "dir":
        raise PathError(f"{t.label} is a file, so {t.path}/{t.sub} names nothing: check the path")
    if remote is not None:
        _check_remote(t, remote)
    odb = t.repo.odb if t.repo is not None else None
    with _Remote(t, remote, odb) as lazy:
        entries = mf.loads(_small_object(t, lazy, odb, t.pointer.oid, label), t.pointer.oid)
    for e in entries:
        if e.path == t.sub:
            return t.one_file(e.path, e.oid, e.size, e.executable)
    below = t.sub + "/"
    if any(e.path.startswith(below) for e in entries):
        raise PathError(
            f"{t.path}/{t.sub} is a directory inside tracked directory {t.label}: get {t.path} whole, or one file of it"
        )
    raise PathError(f"{t.path}/{t.sub} is not in tracked directory {t.label} ({len(entries)} files): check the path")


_T = TypeVar("_T")


def open(ref: Ref, *, repo: RepoArg = None, rev: str | None = None, remote: str | None = None) -> io.BufferedReader:
    """A binary file object over the model's bytes (readable, seekable), read from the cache when it holds
    them, else streamed from the remote in ranged reads. Raises ``CorruptObject`` before returning the
    last byte of an object that does not hash to its oid (``RemoteCorrupt``: the remote's copy, wrong or short)."""
    from mvc.objects import reader

    t = target_of(ref, repo=repo, rev=rev, remote=remote)
    p = t.pointer
    if p.kind != "file":
        raise PathError(f"{t.label} is a directory: use mvc.get or mvc.materialize for a local copy")
    if remote is not None and not t.within:
        _check_remote(t, remote)  # (as get and materialize do; target_of checked it for a file of a directory)
    odb = local_odb(t) if remote is None else None
    if odb is not None and t.repo is not None and not odb.exists(p.oid):
        _expand(t, [p.oid])
    if odb is not None and odb.exists(p.oid):
        if odb.size(p.oid) != p.size:  # the claim is wrong, not the cache, when a sound copy belies it
            held = odb.sound_size(p.oid)
            if held is not None and held != p.size:
                raise belied(t.label, p.size, p.oid, held)
        raw = reader.VerifiedReader(
            p.oid,
            p.size,
            reader.cache_source(odb, p.oid),
            t.label,
            reader.LOCAL_READ,
            # (as get does: the next read goes to the remote); never a sound object (a size claimed wrong)
            on_corrupt=lambda: None if odb.holds_sound(p.oid) else odb.quarantine(p.oid),
        )
        return reader.open_stream(raw, reader.LOCAL_READ)
    remote_ = open_remote(t, remote, odb)
    try:
        where = reader.locate(remote_, p.oid, p.size)
    except RemoteObjectMissing:
        remote_.close()
        raise RemoteObjectMissing(
            f"{t.label} (object {p.oid}) is not on remote {remote_.name}: push it from where it exists"
        ) from None
    ahead = reader.ReadAhead(reader.remote_source(remote_, where, t.label, p.size), p.size)

    def close() -> None:
        ahead.close()
        remote_.close()

    source = "" if where.chunked else f"{remote_.store.where(where.rel)} on remote {remote_.name}"
    raw = reader.VerifiedReader(p.oid, p.size, ahead, t.label, closer=close, source=source, corrupt=RemoteCorrupt)
    return reader.open_stream(raw, reader.READ)


def read_bytes(ref: Ref, *, repo: RepoArg = None, rev: str | None = None, remote: str | None = None) -> bytes:
    """The model's bytes, verified (see :func:`open`): when the cache's copy is corrupt (moved aside by the
    read), read once more, from the remote."""
    t = target_of(ref, repo=repo, rev=rev, remote=remote)
    # read(size): one buffer, filled in place (read() would gather pieces and join them: twice the model in memory)
    return read_twice(t, remote, lambda f: f.read(t.pointer.size) + f.read())


def read_twice(t: Target, remote: str | None, use: Callable[[io.BufferedReader], _T]) -> _T:
    """use(a stream of t's bytes), again on a new stream when the first read found the cache's copy corrupt and
    moved it aside (the second then reads from the remote); a remote's corrupt copy is raised at once."""
    for last in (False, True):
        try:
            with open(t, remote=remote) as f:
                return use(f)
        except CorruptObject as e:
            odb = local_odb(t) if remote is None else None
            if last or odb is None or isinstance(e, RemoteCorrupt) or odb.exists(t.pointer.oid):
                raise  # (read from the remote, or the cache could not move its copy aside)
    raise AssertionError("unreachable")


def get(
    ref: Ref,
    out: str | os.PathLike | None = None,
    *,
    repo: RepoArg = None,
    rev: str | None = None,
    remote: str | None = None,
    force: bool = False,
    cache: bool = False,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Write the model (a file or a directory) to out (default: its file name, here), verified, atomically;
    the work tree is never touched. From this repository, objects the cache lacks are fetched into it; by
    URL or with ``remote``, they go straight to out, and into the user's cache only with ``cache``."""
    if repo is None and not isinstance(ref, Target):
        repo = here_as_url()  # a bare repository, a --no-checkout clone: read as by URL
    t = target_of(ref, repo=repo, rev=rev, remote=remote)  # its errors name a missing model, not a missing path
    if t.repo is not None and remote is None and not t.within:
        from mvc.api import repoget
        from mvc.format.pointer import SUFFIX

        out = outputs.resolve_out(os.fspath(out), _name(t.path)) if out is not None else _default_out(t.path)
        resolved = (t.path + SUFFIX, t.pointer, t.shown or None)  # read once, not again by repoget.get
        return repoget.get(t.path, out, force=force, repo=t.repo, progress=progress, resolved=resolved)
    p = t.pointer
    out = outputs.resolve_out(os.fspath(out), _name(t.path)) if out is not None else _default_out(t.path)
    outputs.check(out, p.kind, force, t.repo.root if t.repo is not None else None)
    if remote is not None and not t.within:
        _check_remote(t, remote)  # (target_of checked it for a file of a directory)
    from mvc.objects.transfer import check_room

    # said before a byte is read, or a directory made (a size may be absurd); no gc frees OUT's file system
    check_room(os.path.dirname(out), p.size, None)
    made = outputs.make_dirs(os.path.dirname(out))
    try:
        for last in (False, True):
            odb = local_odb(t)
            held = p.kind == "file" and odb.exists(p.oid)  # in the user's cache from an earlier --cache: no request
            if not (t.repo is not None or cache or held):
                odb = None  # straight from the remote to out: a server keeps one copy
            try:
                with _Remote(t, remote, odb) as remote_:
                    _write(t, remote_, odb, out, progress, remember=True, force=force)
                break
            except CorruptObject as e:
                # the cache's copy, moved aside by the read: the remote's is read, as read_bytes does (not after
                # the remote's copy, nor when the cache could not move its copy aside: it would be read again)
                if last or odb is None or isinstance(e, RemoteCorrupt) or (p.kind == "file" and odb.exists(p.oid)):
                    raise
    except BaseException:
        outputs.unmake(made)  # a failed get leaves nothing behind, not even the directories it made
        raise
    return {"path": t.path, "out": out, "kind": p.kind, "oid": p.oid, "size": p.size, "rev": t.shown}


def _check_remote(t: Target, remote: str) -> None:
    """Refuse a --remote that names nothing before anything is read, also when the cache holds the object (a
    typo in a deployment's config would otherwise surface only on a machine with an empty cache)."""
    from mvc.api.target import spec_for
    from mvc.errors import RemoteNotFound
    from mvc.storage.urls import check_url

    sp = spec_for(t, remote)  # an unknown remote name: refused here
    check_url(sp.url)  # (an unknown protocol: refused there)
    path = sp.local_dir
    if path is not None and not os.path.isdir(path):
        raise RemoteNotFound(f"remote directory {path} does not exist: check --remote (in Python: remote=)")


class _Remote:
    """The remote a read uses, opened on first need: a read the cache serves makes no request."""

    def __init__(self, t: Target, name: str | None, odb: Any):
        self.t, self.name, self.odb = t, name, odb
        self.transfer: Any = None

    def __call__(self) -> Any:
        if self.transfer is None:
            self.transfer = open_remote(self.t, self.name, self.odb)
        return self.transfer

    @property
    def jobs(self) -> int:
        return self.transfer.jobs if self.transfer is not None else DEFAULT_JOBS

    def __enter__(self) -> _Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.transfer is not None:
            self.transfer.close()


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _default_out(path: str) -> str:
    return os.path.abspath(_name(path))


def _write(
    t: Target,
    remote: _Remote,
    odb: Any,
    out: str,
    progress: progressmod.Factory,
    remember: bool = False,
    read_only: bool = False,
    force: bool = True,
) -> None:
    """Write t to out through a temp path beside it: from odb (fetched into it first) when given, else
    straight from the remote. remember: a directory written is remembered as mvc's copy (``outputs``);
    read_only: its files are made read-only before it is put at out; force: a directory another writer put
    at out meanwhile is replaced (else PathError)."""
    from mvc.storage import tempfiles

    p = t.pointer
    parent = os.path.dirname(out)
    if p.kind == "file":
        files = [("", p.oid, p.size, t.executable or p.executable)]
    else:
        entries = mf.loads(_small_object(t, remote, odb, p.oid, f"the manifest of directory {t.label}"), p.oid)
        files = [(e.path, e.oid, e.size, e.executable) for e in entries]
    if odb is not None:
        _fetch_into(odb, remote, t, files, progress)
    tempfiles.sweep_dead(parent, min_age=3600)  # what killed gets left here (an hour old: OUT may be shared)
    tmp = tempfiles.tmp_name(parent, os.path.basename(out))
    from mvc.objects.meter import Meter

    bar = Meter(progress, f"writing {out}", sum(f[2] for f in files), len(files))  # updates from threads
    from mvc.storage import fileio

    try:
        jobs = []
        with fileio.space_errors(parent):  # (as a file that cannot be written there: StorageError)
            if p.kind == "dir":
                os.mkdir(tmp)
            for sub, oid, size, executable in files:
                target = os.path.join(tmp, *sub.split("/")) if sub else tmp
                if sub:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                jobs.append((oid, target, executable, t.label_of(sub), size))
        located: dict[str, Any] | None = None
        from mvc.objects import reader

        if odb is None and len(jobs) > 1:
            # where each object is, found here, once: the worker threads then never touch the journal
            if any(pk.packable(size) for *_, size in jobs):
                remote().read_packs()
            located = remote().locate([oid for oid, _, _, _, _ in jobs])

        def one(job: tuple[str, str, bool, str, int]) -> None:
            oid, target, executable, label, size = job
            if odb is not None:
                claim = (size, label)
                odb.export(oid, target, ("reflink", "copy"), executable=executable, progress=bar.update, claim=claim)
                return
            try:
                if located is None:
                    reader.download(remote(), oid, target, label, bar.update, size=size)
                else:
                    reader.download(
                        remote(), oid, target, label, bar.update, located.get(oid), searched=True, size=size
                    )
            except RemoteObjectMissing:
                raise RemoteObjectMissing(
                    f"{label} (object {oid}) is not on remote {remote().name}: {PUSH_IT}"
                ) from None
            if executable:
                os.chmod(target, os.stat(target).st_mode | 0o111)

        from mvc.storage.parallel import run_parallel

        if len(jobs) == 1:
            one(jobs[0])
        else:
            run_parallel(one, jobs, remote.jobs)
        if read_only:
            for sub, *_ in files:
                target = os.path.join(tmp, *sub.split("/")) if sub else tmp
                os.chmod(target, os.stat(target).st_mode & ~0o222)
        if remember and p.kind == "dir":
            outputs.remember(tmp, out)
        outputs.put(tmp, out, force)
    except BaseException:
        outputs.remove(tmp)
        raise
    finally:
        bar.close()


def _fetch_into(odb: Any, lazy: _Remote, t: Target, files: list[tuple[str, str, int, bool]], progress: Any) -> None:
    from mvc.objects.meter import Meter

    todo = [oid for _, oid, _, _ in files if not odb.exists(oid)]
    if todo and t.repo is not None:
        rebuilt = set(_expand(t, todo))
        todo = [o for o in todo if o not in rebuilt]
    if not todo:
        return
    remote = lazy()
    sizes = {oid: size for _, oid, size, _ in files}
    meter = Meter(progress, f"fetching from {remote.name}", sum(sizes[o] for o in todo), len(todo))
    try:
        _, absent = remote.download(sorted(set(todo)), meter, sizes)
    except CorruptObject as e:
        bad = next((sub for sub, oid, _, _ in files if oid in str(e)), None)
        if bad is None:
            raise
        raise type(e)(f"{t.label_of(bad)} is corrupt: {e}") from None
    finally:
        meter.close()
    if absent:
        raise RemoteObjectMissing(
            f"{t.label}: object {absent[0]} is not on remote {remote.name}: push it from where it exists"
        )


def _expand(t: Target, todo: list[str]) -> list[str]:
    """Rebuild into the repository's cache what it holds compacted of these objects (mvc gc --compact)."""
    from mvc.repo import compact

    assert t.repo is not None
    return compact.expand(t.repo, todo, labels=dict.fromkeys(todo, t.label))


def _small_object(t: Target, lazy: _Remote, odb: Any, oid: str, label: str) -> bytes:
    """A small object (a manifest), verified, from odb or the remote."""
    from mvc.objects import reader

    if odb is not None and odb.exists(oid):
        return odb.read_bytes(oid)
    remote = lazy()
    try:
        where = reader.locate(remote, oid)
    except RemoteObjectMissing:
        raise RemoteObjectMissing(f"{label} (object {oid}) is not on remote {remote.name}: {PUSH_IT}") from None
    data = reader.remote_source(remote, where)(0, where.size if where.size is not None else MANIFEST_MAX)
    try:
        reader.check(data, oid, label)
    except CorruptObject:  # what the remote sent: the remote's to name (a server that answers every path with a page?)
        raise RemoteCorrupt(
            f"{label} (object {oid}) as remote {remote.name} sends it does not match its oid: check the remote's URL "
            "('mvc remote list'; a web server may answer every path with a page), or mend its copy with 'mvc push "
            "--verify-remote' where the model is"
        ) from None
    if odb is not None:
        odb.install_bytes(data, oid)  # kept (--cache): the next read needs no remote for it
    return data


def materialize(ref: Ref, *, repo: RepoArg = None, rev: str | None = None, remote: str | None = None) -> str:
    """A local path to a verified copy of the model (a file or a directory) that stays, for loaders that
    need a path (``from_pretrained``): ``~/.cache/mvc/models/OID/NAME``, written once per object."""
    from mvc.repo import upstream

    t = target_of(ref, repo=repo, rev=rev, remote=remote)
    dest = os.path.join(upstream.cache_root(), "models", t.pointer.oid, t.path.rsplit("/", 1)[-1])
    if remote is not None and not t.within:  # (target_of checked it for a file of a directory)
        _check_remote(t, remote)
    if os.path.lexists(dest):
        with contextlib.suppress(OSError):  # used now: 'mvc gc --user-cache' keeps it (a read-only cache: as it is)
            os.utime(os.path.dirname(dest))
        if os.path.lexists(dest):  # (not taken by a gc between the look and the mark: then written again below)
            return dest
    odb = t.repo.odb if t.repo is not None else None
    for again in (False, True):
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot write the user's cache {os.path.dirname(os.path.dirname(dest))} ({e.strerror}): set "
                "MVC_CACHE_DIR to a writable directory (a read-only cache serves only what it already holds)"
            ) from None
        try:
            with _Remote(t, remote, odb) as remote_:
                # read-only: served again, never checked again; a copy another process put there first is kept (a
                # loader may be reading it)
                _write(t, remote_, odb, dest, progressmod.null, read_only=True, force=False)
        except PathError:
            if os.path.lexists(dest):
                return dest
            raise
        except FileNotFoundError as e:
            if again or os.path.isdir(os.path.dirname(dest)):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(dest))  # (empty: made above)
                raise StorageError(
                    f"{e.filename or dest} went while the copy was written (another process removed it: a 'mvc gc "
                    "--user-cache' with a short --grace?): retry"
                ) from None
            continue  # models/OID/ taken by a 'mvc gc --user-cache' as the copy began: made again, written again
        except BaseException:
            try:
                os.rmdir(os.path.dirname(dest))  # the empty models/OID/ made above
            except OSError:
                pass
            raise
        break
    return dest
