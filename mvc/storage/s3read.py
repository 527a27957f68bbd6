"""Reading an S3 remote with botocore alone: what ``mvc get --repo``, ``mvc.open`` and ``mvc.load`` use.

A serving process starting cold pays for its imports: s3fs brings aiobotocore, aiohttp and asyncio (about
0.35 s here, and 0.12 s more to make its client), where botocore's own client costs about 0.27 s in all.
Reads need no event loop: ranged GETs from a few threads share one client (botocore clients are
thread-safe). Writing stays with :class:`mvc.storage.s3.S3Store`; this store refuses it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from mvc.errors import RemoteAuthError, RemoteError, RemoteNotFound, RemoteObjectMissing, RemoteUnreachable
from mvc.storage import fileio
from mvc.storage.store import (
    READ_PART,
    READ_STREAMS,
    Progress,
    RangeStream,
    Store,
    first_line,
    not_s3,
    object_size,
    quick_timestamps,
    redact_url,
    s3_code,
    split_url,
)

# remote keys this store understands; a remote with any other key is read through s3fs (S3Store)
KEYS = {
    "endpoint_url",
    "region",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "profile",
    "anon",
    "config_kwargs",  # botocore Config settings (retries, timeouts), as s3fs takes them
    "client_kwargs",  # create_client arguments, as s3fs takes them
}
BODY_CHUNK = 1 << 20  # bytes of a response held in memory at once
_sessions: dict[str | None, Any] = {}
_lock = threading.Lock()


def understands(options: dict[str, Any]) -> bool:
    return set(options) <= KEYS


def _session(profile: str | None) -> Any:
    """One botocore session per profile and process: a new session loads the S3 model again (0.1 s)."""
    with _lock:
        s = _sessions.get(profile)
        if s is None:
            import botocore.session

            s = botocore.session.get_session() if profile is None else botocore.session.Session(profile=profile)
            _sessions[profile] = quick_timestamps(s)
        return s


class S3Reader(Store):
    protocol = "s3"
    read_only = True
    default_jobs = READ_STREAMS

    def __init__(self, url: str, options: dict[str, Any]):
        super().__init__(url)
        _, path = split_url(url)
        self.bucket, _, prefix = path.strip("/").partition("/")
        self.prefix = prefix.strip("/")
        self.endpoint = redact_url(options["endpoint_url"]) if options.get("endpoint_url") else None
        from botocore.config import Config

        extra: dict[str, Any] = {}
        if options.get("anon"):
            from botocore import UNSIGNED

            extra["signature_version"] = UNSIGNED
        settings: dict[str, Any] = {
            "connect_timeout": 10,
            "read_timeout": 120,
            "retries": {"max_attempts": 3, "mode": "standard"},
            "max_pool_connections": 2 * READ_STREAMS,
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "parameter_validation": False,
            **extra,
        }
        settings.update(options.get("config_kwargs") or {})
        client: dict[str, Any] = {
            "region_name": options.get("region"),
            "endpoint_url": options.get("endpoint_url"),
            "aws_access_key_id": options.get("access_key_id"),
            "aws_secret_access_key": options.get("secret_access_key"),
            "aws_session_token": options.get("session_token"),
        }
        client.update(options.get("client_kwargs") or {})
        try:
            self.client = _session(options.get("profile")).create_client("s3", config=Config(**settings), **client)
        except Exception as e:
            raise self.translate(e, "") or RemoteError(f"{self.url}: {first_line(e)}") from None
        _abortable(self.client)

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    # -- reading ----------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        with self._errors(rel):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
                return True
            except Exception as e:
                if _missing(e):
                    return False
                raise

    def _range_body(self, rel: str, start: int, end: int) -> Any:
        """The response body of a GET of bytes [start, end) of rel; None when it starts past the end."""
        try:
            out = self.client.get_object(Bucket=self.bucket, Key=self._key(rel), Range=f"bytes={start}-{end - 1}")
        except Exception as e:
            if s3_code(e) == "InvalidRange":
                return None
            raise
        return out["Body"]

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        with self._errors(rel):
            body = self._range_body(rel, start, end)
            return b"" if body is None else body.read()

    def get_range_into(self, rel: str, start: int, buf: memoryview) -> int:
        """The range's response body read straight into buf (no bytes object of its own, no second copy)."""
        if not len(buf):
            return 0
        with self._errors(rel):
            body = self._range_body(rel, start, start + len(buf))
            return 0 if body is None else _read_into(body, buf)

    def read_stream(self, rel: str, start: int, end: int) -> RangeStream:
        """One GET of the range, its body read as the caller asks (into the caller's views, as get_range_into)."""
        body = None
        if end > start:
            with self._errors(rel):
                body = self._range_body(rel, start, end)
        return _BodyRange(body, lambda: self._errors(rel))

    def get_file(self, rel: str, dest: str, progress: Progress | None = None, size: int | None = None) -> str:
        """The first READ_PART bytes in one GET, which tells the size (checked against ``size`` before its body is
        read); the rest in ranged GETs from READ_STREAMS threads, each written at its offset (memory:
        READ_STREAMS parts); then one hash of the file (mmap, from the page cache)."""
        key = self._key(rel)
        with self._errors(rel, local=dest), fileio.new_file(dest) as fd:
            try:
                first = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{READ_PART - 1}")
            except Exception as e:
                if s3_code(e) != "InvalidRange":
                    raise
                first = self.client.get_object(Bucket=self.bucket, Key=key)  # empty: no byte 0
            total = object_size(first)
            if size is not None and total != size:
                first["Body"].close()
                raise self.wrong_size(rel, total, size)
            got = _write_body(first["Body"], fd, 0, progress)
            if total > got:
                fileio.preallocate(fd, total)
                self._rest(key, fd, got, total, progress)
        return fileio.hash_file(dest)[0]

    def _rest(self, key: str, fd: int, start: int, total: int, progress: Progress | None) -> None:
        from mvc.storage.parallel import run_parallel

        def part(offset: int) -> int:
            end = min(offset + READ_PART, total)
            body = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{end - 1}")["Body"]
            got = _write_body(body, fd, offset, progress)
            if got != end - offset:
                raise OSError(f"short read: bytes {offset}-{end} of {total} came back as {got}")
            return got

        self.stopping.clear()
        run_parallel(part, list(range(start, total, READ_PART)), READ_STREAMS, None, self.stopping)

    def list(self, prefix: str) -> list[str]:
        return sorted(self.list_sizes(prefix))

    def list_sizes(self, prefix: str) -> dict[str, int]:
        base = self._key(prefix.strip("/") + "/") if prefix.strip("/") else (self.prefix + "/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        found: dict[str, int] = {}
        with self._errors(prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                for o in page.get("Contents", []):
                    rel = o["Key"][cut:]
                    if rel and not rel.startswith("tmp/") and not rel.endswith("/"):
                        found[rel] = int(o["Size"])
        return found

    def names(self) -> set[str]:
        prefix = self.prefix + "/" if self.prefix else ""
        with self._errors(""):
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, Delimiter="/", MaxKeys=1000)
        found = [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [o["Key"] for o in page.get("Contents", [])]
        return {n[len(prefix) :].rstrip("/") for n in found} - {""}

    # -- writing: refused (S3Store writes) -----------------------------------------------------
    def put_file(self, src: str, rel: str, check: Any, progress: Progress | None = None) -> int:
        self.refuse_write()
        return 0

    def put_bytes(self, rel: str, data: bytes | memoryview) -> None:
        self.refuse_write()

    def delete(self, rel: str) -> None:
        self.refuse_write()

    def close(self) -> None:
        self.client.close()

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        code = s3_code(e)
        endpoint = f" at {self.endpoint}" if self.endpoint else ""
        where = self.where(rel) if rel else self.url
        if code == "NoSuchBucket":
            return RemoteNotFound(
                f"bucket {self.bucket!r} does not exist{endpoint}: create it "
                f"(e.g. 'aws s3 mb s3://{self.bucket}') or fix the remote URL"
            )
        if _missing(e):
            return not_s3(endpoint, where) if rel.endswith("/") else RemoteObjectMissing(f"{where} does not exist")
        name = type(e).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"):
            return RemoteAuthError(
                f"no usable AWS credentials for {self.url} ({first_line(e)}): set "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            )
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken"):
            return RemoteAuthError(
                f"S3 refused access to {where}{endpoint} ({code}): check the credentials (the remote's access_key_id "
                "and secret_access_key, which win, else the AWS_* variables or the profile) and the bucket's permissions"
            )
        from mvc.storage.generic import unreachable

        if name in ("ResponseStreamingError", "IncompleteReadError", "ProtocolError"):  # cut off mid-response
            return RemoteUnreachable(
                f"the connection to the S3 server{endpoint or ' for ' + self.url} broke while {where} was read: "
                "check that it is running, then retry"
            )
        if unreachable(e) or name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            return RemoteUnreachable(
                f"cannot reach the S3 server{endpoint or ' for ' + self.url} "
                f"({first_line(e)}): check that it is running and the endpoint_url, then retry"
            )
        if name == "ValueError" or "Invalid endpoint" in str(e):
            return RemoteError(f"{self.url}: {first_line(e)}: fix the remote's endpoint_url")
        return None


def _abortable(client: Any) -> None:
    """Make client's requests end at once when the run their thread works for stops (parallel.watch), and a read
    timeout end a request rather than start it again. A server that accepted a request and then went silent (a
    frozen process, a partition) would otherwise hold each worker read_timeout per attempt: four attempts by
    default (max_attempts counts retries), one thread after another, before Ctrl-C or the error were seen."""
    from botocore.exceptions import ReadTimeoutError

    def no_retry(caught_exception: BaseException | None = None, **kw: Any) -> bool | None:
        return False if isinstance(caught_exception, ReadTimeoutError) else None  # (False: no handler retries)

    client.meta.events.register_first("needs-retry.s3", no_retry)
    # the classes of the connection pools of botocore's urllib3 session, which makes them on first use
    classes = getattr(getattr(client._endpoint, "http_session", None), "_pool_classes_by_scheme", None)
    if isinstance(classes, dict) and set(classes) == {"http", "https"}:
        classes.update(_POOLS or _pools())


_POOLS: dict[str, Any] = {}


def _pools() -> dict[str, Any]:
    from botocore.awsrequest import (
        AWSHTTPConnection,
        AWSHTTPConnectionPool,
        AWSHTTPSConnection,
        AWSHTTPSConnectionPool,
    )

    from mvc.storage import parallel

    class Abortable:
        """A connection that a halt of its user's run aborts (its socket shut down, which wakes the thread blocked
        on it) and that then sends nothing more. KeyboardInterrupt, as in S3Store: botocore retries any Exception,
        sleeping between attempts, and the run that stopped discards what its workers raise after."""

        sock: Any
        halts: tuple[Any, ...] = ()
        live: Any = None  # the socket: http.client lets go of sock when a response says it closes the connection

        def connect(self) -> None:
            super().connect()  # type: ignore[misc]
            self.live = self.sock
            if parallel.halted(self.halts):
                self.abort()
                raise KeyboardInterrupt

        def request(self, *args: Any, **kw: Any) -> Any:
            self.halts = parallel.halts()
            if parallel.halted(self.halts):
                raise KeyboardInterrupt
            if self.halts:
                parallel.watch(self)
            return super().request(*args, **kw)  # type: ignore[misc]

        def getresponse(self, *args: Any, **kw: Any) -> Any:
            try:
                return super().getresponse(*args, **kw)  # type: ignore[misc]
            except Exception:
                if parallel.halted(self.halts):
                    raise KeyboardInterrupt from None
                raise

        def abort(self) -> None:
            import socket

            sock = self.live
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # closed meanwhile

    class Conn(Abortable, AWSHTTPConnection):
        pass

    class SConn(Abortable, AWSHTTPSConnection):
        pass

    class Pool(AWSHTTPConnectionPool):
        ConnectionCls = Conn

    class SPool(AWSHTTPSConnectionPool):
        ConnectionCls = SConn

    _POOLS.update(http=Pool, https=SPool)
    return _POOLS


def _read_into(body: Any, buf: memoryview) -> int:
    """A response body read into buf (at most len(buf) bytes)."""
    stream = _BodyRange(body, contextlib.nullcontext)
    try:
        return stream.readinto(buf)
    finally:
        stream.close()


class _BodyRange(RangeStream):
    """A response body read into the caller's views (none: an empty range). urllib3 2's readinto reads into new
    bytes of its own, then copies them: http.client's response under it reads the socket straight into the view,
    when it is there. ``errors``: the context each read runs in (the store's translation)."""

    def __init__(self, body: Any, errors: Callable[[], Any]):
        self.body, self.errors = body, errors
        raw: Any = getattr(body, "_raw_stream", None)
        fp: Any = getattr(raw, "_fp", None)
        self.straight = hasattr(fp, "readinto") and hasattr(fp, "isclosed") and hasattr(raw, "release_conn")
        self.read: Callable[[memoryview], int] = fp.readinto if self.straight else getattr(body, "readinto", _empty)
        self.fp, self.raw = fp, raw

    def readinto(self, view: memoryview) -> int:
        if self.body is None:
            return 0
        got = 0
        with self.errors():
            while got < len(view):
                n = self.read(view[got:])
                if not n:
                    break
                got += n
        return got

    def close(self) -> None:
        if self.body is None:
            return
        try:
            if self.straight and self.fp.isclosed():  # all read: the connection goes back to the pool
                self.raw.release_conn()
        finally:
            self.body.close()
            self.body = None


def _empty(view: memoryview) -> int:
    return 0


def _write_body(body: Any, fd: int, offset: int, progress: Progress | None) -> int:
    """Write a response body at offset as it arrives, BODY_CHUNK at a time (never a whole part in memory)."""
    n = 0
    try:
        for chunk in body.iter_chunks(BODY_CHUNK):
            os.pwrite(fd, chunk, offset + n)
            n += len(chunk)
            if progress:
                progress(len(chunk))
    finally:
        body.close()
    return n


def _missing(e: BaseException) -> bool:
    code = s3_code(e)
    return code in ("NoSuchKey", "404", "NotFound")
