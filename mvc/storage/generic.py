"""A remote on any fsspec filesystem (gs://, az://, ssh://, memory://, …); http(s):// is read-only.

fsspec is imported only when such a store is opened, never at module import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mvc.errors import RemoteAuthError, RemoteNotFound, RemoteObjectMissing, RemoteUnreachable
from mvc.storage import fileio, tempfiles
from mvc.storage.store import TMP, Check, Progress, RemoteError, Store, first_line, s3_code

# Uploads to these are atomic by themselves (one PUT or a completed multipart upload).
OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "oci", "tos", "tosfs", "hf"}
READ_ONLY = {"http", "https"}
# What botocore and aiohttp raise when a server does not answer (not all of them are ConnectionErrors).
UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ClientConnectionError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "ConnectionTimeoutError",
    "ClientOSError",
}


def unreachable(e: BaseException) -> bool:
    """Whether e (or the error it was raised from) says the server did not answer."""
    return any(
        isinstance(x, (ConnectionError, TimeoutError)) or type(x).__name__ in UNREACHABLE
        for x in (e, e.__cause__)
        if x is not None
    )


def _loop_exception(loop: Any, context: dict[str, Any]) -> None:
    """fsspec's event loop reports here what no caller awaits: aiohttp's request-body writers failing when a
    server goes away mid-request ("Task exception was never retrieved"), sessions left open at exit. The
    request that failed already raised, and mvc says it in one line; the rest would be a traceback on
    stderr. Kept for ``logging`` at debug level."""
    import logging

    logging.getLogger("mvc.storage").debug(
        "fsspec event loop: %s", context.get("message"), exc_info=context.get("exception")
    )


def quiet_loop(fs: Any) -> None:
    """Route what fsspec's event loop (shared by every async filesystem of this process) would print to
    stderr to :func:`_loop_exception` instead; once per loop."""
    loop = getattr(fs, "loop", None) if getattr(fs, "async_impl", False) else None
    if loop is not None and loop.get_exception_handler() is not _loop_exception:
        loop.set_exception_handler(_loop_exception)


_relay: Any = None


def _fsspec_callback(progress: Progress | None) -> Any:
    """An fsspec callback passing byte counts on to progress (s3fs and fsspec report through these)."""
    global _relay
    if _relay is None:
        from fsspec.callbacks import Callback

        class Relay(Callback):
            def __init__(self, progress: Progress | None):
                super().__init__()
                self.progress = progress

            def call(self, hook_name: str | None = None, **kw: Any) -> None:
                pass

            def relative_update(self, inc: int = 1) -> None:
                if self.progress and inc:
                    self.progress(inc)

        _relay = Relay
    return _relay(progress)


class FsspecStore(Store):
    names_missing_store = False  # True where the backend's own errors tell a missing bucket (S3)

    def __init__(self, url: str, protocol: str, fs: Any, root: str):
        super().__init__(url)
        self.protocol, self.fs, self.root = protocol, fs, root.rstrip("/")
        quiet_loop(fs)
        self.read_only = protocol in READ_ONLY
        self.atomic_put = protocol in OBJECT_STORES

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root else rel

    def exists(self, rel: str) -> bool:
        with self._errors(rel):
            return bool(self.fs.exists(self._path(rel)))

    def list(self, prefix: str) -> list[str]:
        return list(self._find(prefix, detail=False))

    def list_sizes(self, prefix: str) -> dict[str, int]:
        found = self._find(prefix, detail=True)
        with self._errors(prefix):
            return {rel: int(info["size"]) for rel, info in self._sized(found).items()}

    def list_times(self, prefix: str) -> dict[str, tuple[int, float | None]]:
        found = self._find(prefix, detail=True)
        with self._errors(prefix):
            return {rel: (int(info["size"]), _written(info)) for rel, info in self._sized(found).items()}

    def _sized(self, found: dict[str, Any]) -> dict[str, Any]:
        """The infos of a listing, each with its size (a backend whose listing lacks them asks for them)."""
        return found

    def _find(self, prefix: str, detail: bool) -> dict[str, Any]:
        """{rel: fsspec info (detail) or None} of every object below prefix, never in tmp/."""
        top = self._path(prefix.rstrip("/")) if prefix else self.root
        with self._errors(prefix):
            try:
                found = self.fs.find(top, detail=True) if detail else dict.fromkeys(self.fs.find(top))
            except FileNotFoundError as e:
                err = self.translate(e, prefix) if self.names_missing_store else None
                if isinstance(err, RemoteNotFound):
                    raise err from None
                found = {}
            # A directory not made yet is an empty remote (the first push makes it); a push cannot make a
            # bucket or a web server's directory, so their absence is said now (fsspec's find is silent).
            cannot_make = (self.read_only or self.atomic_put) and not self.names_missing_store
            if not found and cannot_make and self._store_missing():
                raise self._not_found()
        # only what is below: fsspec's find gives the directory itself when it is empty (http)
        below = self.fs._strip_protocol(top) + "/" if top else ""
        strip = len(self.root) + 1 if self.root else 0
        out = {}
        for f, info in found.items():
            p = self.fs._strip_protocol(f)
            if p.startswith(below) and not p[strip:].startswith(TMP):
                out[p[strip:]] = info
        return out

    def names(self) -> set[str]:
        with self._errors(""):
            try:
                listed = self.fs.ls(self.root, detail=False)
            except FileNotFoundError:
                return set()
        strip = len(self.root) + 1 if self.root else 0
        paths = (self.fs._strip_protocol(p).rstrip("/") for p in listed)
        return {p[strip:] for p in paths if len(p) > strip and "/" not in p[strip:]}

    def put_file(self, src: str, rel: str, check: Check, progress: Progress | None = None) -> int:
        self.refuse_write()
        digest, st = fileio.hash_file(src)
        check(digest)
        self._publish(rel, lambda path: self.fs.put_file(src, path, callback=_fsspec_callback(progress)))
        return st.st_size

    def put_bytes(self, rel: str, data: bytes | memoryview) -> None:
        self.refuse_write()
        data = bytes(data)  # fsspec filesystems take bytes
        self._publish(rel, lambda path: self.fs.pipe_file(path, data))

    def _publish(self, rel: str, send: Callable[[str], Any]) -> None:
        """send(path) writes the whole object at path: rel itself on object stores, else a temp file in
        ``tmp/`` renamed to rel afterwards (and removed if anything fails)."""
        with self._errors(rel, writing=True):
            target = self._path(rel)
            if self.atomic_put:
                send(target)
                return
            tmp = self._path(TMP + os.path.basename(tempfiles.tmp_name("", rel.rsplit("/", 1)[-1])))
            self.fs.makedirs(self._path(TMP.rstrip("/")), exist_ok=True)
            try:
                send(tmp)
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.mv(tmp, target)
            except BaseException:
                try:
                    self.fs.rm_file(tmp)
                except Exception:
                    pass  # never sent, or already renamed: nothing to clean
                raise

    def get_file(self, rel: str, dest: str, progress: Progress | None = None, size: int | None = None) -> str:
        with self._errors(rel, local=dest):
            if size is not None:  # one request more, where the size is promised: asked before the download
                held = self.fs.size(self._path(rel))
                if held is not None and held != size:
                    raise self.wrong_size(rel, held, size)
            self.fs.get_file(self._path(rel), dest, callback=_fsspec_callback(progress))
        return fileio.hash_file(dest)[0]

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""  # nothing to ask for (S3 answers an empty Range with the whole object)
        with self._errors(rel):
            try:
                return bytes(self.fs.cat_file(self._path(rel), start=start, end=end))
            except Exception as e:
                if s3_code(e) == "InvalidRange" or _status(e) == 416:
                    return b""  # starts past the end: as short as a read can be (callers check lengths)
                raise

    def delete(self, rel: str) -> None:
        self.refuse_write()
        with self._errors(rel, writing=True):
            try:
                self.fs.rm_file(self._path(rel))
            except FileNotFoundError:
                pass  # already gone: what delete is for

    def _store_missing(self) -> bool:
        """Whether the remote itself is gone (its directory, or its bucket on object stores): asked only
        after something was not found, to tell a missing object from a missing remote."""
        top = self.root.split("/", 1)[0] if self.atomic_put else self.root
        return bool(top) and not self.fs.exists(top)

    def _not_found(self) -> RemoteError:
        return RemoteNotFound(f"remote {self.url} does not exist: check the remote URL with 'mvc remote list'")

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        where = self.where(rel) if rel else self.url
        if isinstance(e, FileNotFoundError):
            if not writing and not self.names_missing_store:
                try:
                    gone = self._store_missing()
                except Exception:
                    gone = False  # cannot tell: the object is what was not found
                if gone:
                    return self._not_found()
            return RemoteObjectMissing(f"{where} is not on the remote")
        if isinstance(e, PermissionError):
            return RemoteAuthError(
                f"access to {where} was denied ({first_line(e)}): check the credentials and permissions for this remote"
            )
        if unreachable(e):
            return RemoteUnreachable(
                f"cannot reach {self.url} ({first_line(e)}): check the network and the remote URL, then retry"
            )
        return None


class HttpStore(FsspecStore):
    """http(s)://: read-only, and many servers (python's http.server, some static hosts) ignore Range
    requests and send the whole object, which fsspec's cat_file would return as the range."""

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        from fsspec.asyn import sync

        with self._errors(rel):
            return bytes(sync(self.fs.loop, _http_range, self.fs, self._path(rel), start, end))

    def _sized(self, found: dict[str, Any]) -> dict[str, Any]:
        """A listing of links says no sizes: each file's is asked for (HEAD requests, all at once); one deleted
        since the listing is left out, as it is no longer there."""
        unknown = [rel for rel, info in found.items() if (info or {}).get("size") is None]
        if not unknown:
            return found
        from fsspec.asyn import sync

        sizes = sync(self.fs.loop, _http_sizes, self.fs, [self._path(rel) for rel in unknown])
        out = dict(found)
        for rel, size in zip(unknown, sizes, strict=True):
            if isinstance(size, FileNotFoundError):
                del out[rel]
            elif isinstance(size, BaseException):
                raise size
            elif size is None:
                raise RemoteError(
                    f"{self.where(rel)}: the server does not say its size (no Content-Length): serve the remote's "
                    "files as static files, or fetch from another remote"
                )
            else:
                out[rel] = {**(found[rel] or {}), "size": size}
        return out

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        if type(e).__name__ in ("ClientPayloadError", "ContentLengthError", "ServerDisconnectedError"):
            return RemoteUnreachable(  # cut off mid-response (aiohttp's "400" there is no HTTP status)
                f"the connection to {self.url} broke while {self.where(rel) if rel else self.url} was read: check "
                "that the server is running, then retry"
            )
        if _status(e) in (401, 403) and rel.endswith("/"):  # a listing refused: a static host with no index pages
            return RemoteAuthError(
                f"{self.where(rel)}: the server refuses to list it (HTTP {_status(e)}): it serves files but no "
                "directory listing, so packs cannot be found there; on the remote it serves, run 'mvc remote modify "
                "NAME packs false' and push again (objects are then stored alone)"
            )
        return super().translate(e, rel, writing)

    def _store_missing(self) -> bool:
        """Only a 404 (or 410) for the remote's directory and for its layout marker: a server that forbids
        listings (403), or answers every directory with 404 (a static host, a bucket's website), still serves
        files, and a marker it serves says the remote is there."""
        from fsspec.asyn import sync

        gone = (404, 410)
        return sync(self.fs.loop, _http_status, self.fs, self.root + "/") in gone and (
            sync(self.fs.loop, _http_status, self.fs, f"{self.root}/{tempfiles.MARKER}") in gone
        )


async def _http_range(fs: Any, url: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of url: the server's 206 answer, or the slice of a whole body it sent instead."""
    session = await fs.set_session()
    kw = dict(fs.kwargs)
    headers = {**kw.pop("headers", {}), "Range": f"bytes={start}-{end - 1}"}
    async with session.get(fs.encode_url(url), headers=headers, **kw) as r:
        if r.status == 416:
            return b""  # starts past the end
        fs._raise_not_found_for_status(r, url)
        if r.status == 206:
            return bytes(await r.read())
        out = bytearray()
        skip = start
        async for chunk in r.content.iter_chunked(1 << 20):
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            out += chunk[skip : skip + end - start - len(out)]
            skip = 0
            if len(out) >= end - start:
                break  # the rest is not wanted: leave it unread
        return bytes(out)


async def _http_sizes(fs: Any, urls: list[str]) -> list[Any]:
    """The size of each url (None when the server does not say), or the error asking for it raised."""
    import asyncio

    infos = await asyncio.gather(*(fs._info(u) for u in urls), return_exceptions=True)
    return [i if isinstance(i, BaseException) else i.get("size") for i in infos]


async def _http_status(fs: Any, url: str) -> int:
    session = await fs.set_session()
    async with session.head(fs.encode_url(url), allow_redirects=True, **fs.kwargs) as r:
        return int(r.status)


def _status(e: BaseException) -> int | None:
    """The HTTP status an fsspec error carries (aiohttp keeps it on the error or its cause)."""
    for x in (e, e.__cause__, e.__context__):
        status = getattr(x, "status", None)
        if isinstance(status, int):
            return status
    return None


def _written(info: dict[str, Any]) -> float | None:
    """When an fsspec listing entry was last written (S3's LastModified, a local or memory file's mtime or
    creation time), in seconds since the epoch; None where the backend does not say."""
    for key in ("LastModified", "last_modified", "mtime", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None
