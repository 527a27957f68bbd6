"""A remote on S3 or an S3-compatible server, through s3fs (imported only when the store is opened)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from mvc.errors import RemoteAuthError, RemoteError, RemoteNotFound, RemoteUnreachable
from mvc.storage import fileio, s3calls
from mvc.storage.generic import FsspecStore, unreachable
from mvc.storage.store import (
    DEFAULT_JOBS,
    MAX_PARTS,
    PART,
    READ_PART,
    READ_STREAMS,
    TMP,
    Check,
    Progress,
    first_line,
    not_s3,
    object_size,
    quick_timestamps,
    redact_url,
    s3_code,
    split_url,
)

# Remote keys understood for S3, mapped to s3fs arguments; any other key is passed to s3fs as is.
S3_KEYS = {"access_key_id": "key", "secret_access_key": "secret", "session_token": "token", "profile": "profile"}


_sessions: dict[str, Any] = {}  # botocore sessions by their settings (_session)
_lock = threading.Lock()
BODY_CHUNK = 1 << 20  # bytes of a download held in memory at once, per stream
LIST_PAGE = 1000  # keys a listing request asks for (S3 gives at most 1,000)
LIST_FEW = 16  # a directory with more subdirectories than this is listed by their first character
# S3FileSystem's own parameters; any other option is a botocore session setting (profile, …)
_S3FS_PARAMS = {
    "anon",
    "key",
    "secret",
    "token",
    "use_ssl",
    "requester_pays",
    "version_aware",
    "s3_additional_kwargs",
    "username",
    "password",
    "cache_regions",
    "max_concurrency",
    "fixed_upload_size",
    "default_block_size",
    "default_fill_cache",
    "default_cache_type",
}


def _session(**settings: Any) -> Any:
    """One botocore session per process and settings (a profile), as boto3's default session is: each new one
    loads the S3 service model again (about 0.13 s), which a process that opens several stores (a serving
    process, the hooks, the tests) would pay each time; and each parses S3's times quickly (quick_timestamps).
    Credentials it resolves are refreshed by botocore as they expire. TypeError for a setting it does not take."""
    key = repr(sorted(settings.items()))
    with _lock:
        if key not in _sessions:
            import aiobotocore.session

            session = quick_timestamps(aiobotocore.session.AioSession(**settings))
            s3calls.no_retry_on_timeout(session)
            s3calls.quiet_expect(session)
            _sessions[key] = session
        return _sessions[key]


class S3Store(FsspecStore):
    default_jobs = DEFAULT_JOBS["s3"]
    names_missing_store = True  # NoSuchBucket: no request needed to tell a missing bucket

    def __init__(self, url: str, options: dict[str, Any]):
        import s3fs

        protocol, path = split_url(url)
        self.bucket = path.split("/", 1)[0]
        self.endpoint = redact_url(options["endpoint_url"]) if options.get("endpoint_url") else None
        kw: dict[str, Any] = {}
        client: dict[str, Any] = {}
        for k, v in options.items():
            if k == "endpoint_url":
                client["endpoint_url"] = v
            elif k == "region":
                client["region_name"] = v
            elif k in S3_KEYS:
                kw[S3_KEYS[k]] = v
            else:
                kw[k] = v
        # Fail in seconds, not minutes, when the server is gone (botocore still retries throttling).
        # No S3 checksums unless an operation requires them: every object is hashed by mvc on the way
        # in and out, the CRC costs client CPU per request, and several S3-compatible stores reject
        # botocore's newer default checksum headers. mvc builds the requests itself: no validation.
        config = {
            "connect_timeout": 10,
            "read_timeout": 120,
            "retries": {"max_attempts": 3, "mode": "standard"},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "parameter_validation": False,
        }
        config.update(kw.pop("config_kwargs", {}) or {})
        # a request body the server stopped taking is given up after read_timeout too (s3calls.sent)
        wait: Any = config.get("read_timeout")
        self.read_timeout = float(wait) if wait else None
        client.update(kw.pop("client_kwargs", {}) or {})
        try:  # the options that are not s3fs's are the session's (a profile): one session for each such set
            kw["session"] = _session(**{k: kw.pop(k) for k in set(kw) - _S3FS_PARAMS})
            fs = s3fs.S3FileSystem(client_kwargs=client, config_kwargs=config, skip_instance_cache=True, **kw)
        except TypeError as e:
            raise RemoteError(
                f"{url}: an option of this remote is not understood by s3fs ({e}): remove it with "
                "'mvc remote modify NAME KEY --unset'"
            ) from None
        fs.retries = 1
        super().__init__(url, protocol, fs, path.strip("/"))
        self.atomic_put = True

    def exists(self, rel: str) -> bool:
        bucket, key = self._bucket_key(rel)
        with self._errors(rel):
            try:
                self._run(self.fs._call_s3("head_object", Bucket=bucket, Key=key))
                return True
            except FileNotFoundError:
                return False

    def names(self) -> set[str]:
        """One request: the first page of a listing of the root with "/" as delimiter (an mvc remote has four
        names there at most; a page holds a thousand)."""
        bucket, _, key = self.root.partition("/")
        prefix = key + "/" if key else ""
        with self._errors(""):
            page = self._run(
                self.fs._call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=1000)
            )
        found = [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [o["Key"] for o in page.get("Contents", [])]
        return {n[len(prefix) :].rstrip("/") for n in found} - {""}  # "": a console's "folder" object

    def _bucket_key(self, rel: str) -> tuple[str, str]:
        bucket, _, key = self._path(rel).partition("/")
        return bucket, key

    def _run(self, coro: Any) -> Any:
        return s3calls.run(self.fs.loop, coro)

    def briefly(self) -> Any:
        return s3calls.briefly()

    def _put(self, bucket: str, key: str, data: bytes | memoryview) -> Any:
        """A coroutine of one PUT of data, given up once the server took none of it for read_timeout."""
        return s3calls.sent(
            lambda body: self.fs._call_s3("put_object", Bucket=bucket, Key=key, Body=body), data, self.read_timeout
        )

    def put_bytes(self, rel: str, data: bytes | memoryview) -> None:
        if len(data) >= 2 * PART:  # (never an mvc pack or index) s3fs's own multipart upload
            super().put_bytes(rel, data)
            return
        with self._errors(rel, writing=True):
            self._run(self._put(*self._bucket_key(rel), data))

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        bucket, key = self._bucket_key(rel)

        async def read() -> bytes:
            try:
                out = await self.fs._call_s3("get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
            except Exception as e:
                if s3_code(e) == "InvalidRange":
                    return b""  # starts past the end: as short as a read can be (callers check lengths)
                raise
            body = out["Body"]
            try:
                return bytes(await body.read())
            finally:
                body.close()

        with self._errors(rel):
            return self._run(read())

    def delete(self, rel: str) -> None:
        bucket, key = self._bucket_key(rel)
        with self._errors(rel, writing=True):
            self._run(self.fs._call_s3("delete_object", Bucket=bucket, Key=key))

    def put_file(self, src: str, rel: str, check: Check, progress: Progress | None = None) -> int:
        size = os.path.getsize(src)
        if size >= 2 * PART:
            return self._put_multipart(src, rel, size, check, progress)
        with open(src, "rb") as f:
            data = f.read()
        check(fileio.hexdigest_bytes(data))
        with self._errors(rel, writing=True):
            self._run(self._put(*self._bucket_key(rel), data))
        if progress:
            progress(len(data))
        return len(data)

    def get_file(self, rel: str, dest: str, progress: Progress | None = None, size: int | None = None) -> str:
        """The first READ_PART bytes in one GET, which tells the object's size (checked against ``size`` before
        its body is read); the rest in ranged GETs, READ_STREAMS at once, each written at its offset as it lands
        (memory: READ_STREAMS parts). Then one hash of the file (mmap, from the page cache). A small object costs
        one request, as a plain GET."""
        bucket, key = self._bucket_key(rel)
        with self._errors(rel, local=dest), fileio.new_file(dest) as fd:
            self._run(self._get_parts(bucket, key, fd, progress, lambda n: self._check_size(rel, n, size)))
        return fileio.hash_file(dest)[0]

    def _check_size(self, rel: str, held: int, size: int | None) -> None:
        if size is not None and held != size:
            raise self.wrong_size(rel, held, size)

    async def _get_parts(
        self, bucket: str, key: str, fd: int, progress: Progress | None, check: Callable[[int], None]
    ) -> None:
        import asyncio

        fs = self.fs

        async def part(start: int, end: int | None) -> tuple[dict[str, Any], int]:
            kw = {"Range": f"bytes={start}-{end}"} if end is not None else {}
            try:
                out = await fs._call_s3("get_object", Bucket=bucket, Key=key, **kw)
            except Exception as e:
                if s3_code(e) == "InvalidRange" and start == 0:  # an empty object has no byte 0
                    return await part(0, None)
                raise
            body = out["Body"]
            n = 0
            try:  # written as it arrives, a chunk at a time: never a whole part in memory
                if start == 0:  # the object's size, before a byte of it is written
                    check(object_size(out))
                async for chunk in body.iter_chunks(BODY_CHUNK):
                    os.pwrite(fd, chunk, start + n)
                    n += len(chunk)
                    if progress:
                        progress(len(chunk))
            finally:
                body.close()
            return out, n

        first, got = await part(0, READ_PART - 1)
        total = object_size(first)
        if total <= got:
            return
        fileio.preallocate(fd, total)
        gate = asyncio.Semaphore(READ_STREAMS)

        async def rest(start: int) -> None:
            async with gate:
                end = min(start + READ_PART, total)
                _, n = await part(start, end - 1)
                if n != end - start:
                    raise OSError(f"short read: bytes {start}-{end} of {total} came back as {n}")

        tasks = [asyncio.ensure_future(rest(s)) for s in range(got, total, READ_PART)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _put_multipart(self, src: str, rel: str, size: int, check: Check, progress: Progress | None) -> int:
        """One multipart upload, completed (made visible) only if check passes. check runs outside the
        error translation: what it raises reaches the caller unchanged."""
        bucket, key = self._bucket_key(rel)

        def call(method: str, **kw: Any) -> Any:
            return self._run(self.fs._call_s3(method, Bucket=bucket, Key=key, **kw))

        if self.stopping.is_set():
            raise KeyboardInterrupt  # the transfer is stopping: begin nothing
        with self._errors(rel, writing=True):
            upload = call("create_multipart_upload")["UploadId"]
        # From here on every way out but completion aborts the upload: an error sending a part (every part
        # still in flight is cancelled and awaited first, so none lands after the abort), the check
        # refusing the bytes, a failed completion, the transfer stopping (Ctrl-C, another object's error).
        # Parts of an upload never completed are invisible but billed until aborted; what a killed process
        # leaves open is for the bucket's lifecycle rule (docs/remotes.md).
        try:
            with self._errors(rel, writing=True):
                sent = self._run(self._send_parts(src, bucket, key, upload, size, progress))
            if sent is None:
                raise KeyboardInterrupt  # stopped between parts
            parts, digest = sent
            check(digest)
            with self._errors(rel, writing=True):
                call("complete_multipart_upload", UploadId=upload, MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                with s3calls.briefly():  # not waited for on a server gone silent: the command is ending
                    call("abort_multipart_upload", UploadId=upload)
            except (Exception, KeyboardInterrupt):
                pass  # the server is gone: the lifecycle rule will
            raise
        return size

    async def _send_parts(
        self, src: str, bucket: str, key: str, upload: str, size: int, progress: Progress | None
    ) -> tuple[list[dict[str, Any]], str] | None:
        """Up to max_concurrency parts in flight, each hashed as it is read (the file is read once):
        the parts and the hex digest of the whole, or None when the transfer is stopping. When a part
        fails or the transfer stops, the parts in flight are cancelled and awaited (their errors
        retrieved) before this returns, so no part lands after the caller aborts the upload."""
        import asyncio

        import xxhash

        fs = self.fs
        part_size = max(PART, -(-size // MAX_PARTS))
        hasher = xxhash.xxh3_128()

        async def send(number: int, body: bytes) -> dict[str, Any]:
            out = await s3calls.sent(
                lambda paced: fs._call_s3(
                    "upload_part", Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=paced
                ),
                body,
                self.read_timeout,
            )
            if progress:
                progress(len(body))
            return {"PartNumber": number, "ETag": out["ETag"]}

        parts: list[dict[str, Any]] = []
        with open(src, "rb") as f:
            while not self.stopping.is_set():
                batch: list[asyncio.Task[dict[str, Any]]] = []
                for _ in range(fs.max_concurrency):
                    body = f.read(part_size)
                    if not body:
                        break
                    hasher.update(body)
                    batch.append(asyncio.ensure_future(send(len(parts) + len(batch) + 1, body)))
                if not batch:
                    return parts, hasher.hexdigest()
                try:
                    pending: set[Any] = set(batch)
                    while pending and not self.stopping.is_set():
                        # a short wait: the stop is a thread's Event, looked at between waits
                        done, pending = await asyncio.wait(pending, timeout=0.1, return_when=asyncio.FIRST_EXCEPTION)
                        for task in done:
                            task.result()  # the first part that failed raises here
                    if pending:
                        return None
                    parts += [task.result() for task in batch]
                finally:
                    for task in batch:
                        task.cancel()
                    await asyncio.gather(*batch, return_exceptions=True)
        return None

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        code = s3_code(e)
        endpoint = f" at {self.endpoint}" if self.endpoint else ""
        if code == "NoSuchBucket" or (isinstance(e, FileNotFoundError) and "bucket does not exist" in str(e)):
            return RemoteNotFound(
                f"bucket {self.bucket!r} does not exist{endpoint}: create it "
                f"(e.g. 'aws s3 mb s3://{self.bucket}') or fix the remote URL"
            )
        if isinstance(e, FileNotFoundError) and rel.endswith("/"):  # (s3fs's name for a 404 to a listing)
            return not_s3(endpoint, self.where(rel))
        name = type(e).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"):
            return RemoteAuthError(
                f"no usable AWS credentials for {self.url} ({first_line(e)}): set "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a profile with "
                "'mvc remote modify NAME profile PROFILE'"
            )
        if isinstance(e, PermissionError) or code in (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "ExpiredToken",
            "InvalidToken",
        ):
            return RemoteAuthError(
                f"S3 refused access to {self.where(rel) if rel else self.url}{endpoint} "
                f"({code or first_line(e)}): check the credentials (the remote's access_key_id "
                "and secret_access_key, which win, else the AWS_* variables or the profile) and the bucket's permissions"
            )
        if type(e).__name__ in ("ResponseStreamingError", "IncompleteReadError", "ProtocolError"):
            return RemoteUnreachable(  # cut off mid-response
                f"the connection to the S3 server{endpoint or ' for ' + self.url} broke while "
                f"{self.where(rel) if rel else self.url} was read: check that it is running, then retry"
            )
        if unreachable(e):
            return RemoteUnreachable(
                f"cannot reach the S3 server{endpoint or ' for ' + self.url} "
                f"({first_line(e)}): check that it is running and the endpoint_url, then retry"
            )
        return super().translate(e, rel, writing)

    # -- listings ---------------------------------------------------------------------------------
    def list(self, prefix: str) -> list[str]:
        return sorted(self._listing(prefix, times=False))

    def list_sizes(self, prefix: str) -> dict[str, int]:
        return {rel: size for rel, (size, _) in self._listing(prefix, times=False).items()}

    def list_times(self, prefix: str) -> dict[str, tuple[int, float | None]]:
        return self._listing(prefix, times=True)

    def _listing(self, prefix: str, times: bool) -> dict[str, tuple[int, float | None]]:
        """{rel: (size, LastModified or None)} of every key below prefix, never in ``tmp/``.

        One page first: a small remote is listed in one request. A larger one is walked as the tree its
        keys make, with "/" as delimiter, subdirectories listed at once (jobs at a time); a directory with
        many subdirectories is listed by their first character instead, every key below each: 100,000
        objects under ``objects/ab/`` are 16 listings of about 7 pages each, side by side, rather than 100
        pages one after another (and a server that sorts every key under the prefix for each page, as
        moto does, sorts a 16th as many). Only sizes and times are kept, not s3fs's info dicts."""
        import asyncio

        bucket, _, root = self.root.partition("/")
        top = "/".join(p for p in (root, prefix.strip("/")) if p)
        top = top + "/" if top else ""
        cut = len(root) + 1 if root else 0
        found: dict[str, tuple[int, float | None]] = {}

        def keep(page: dict[str, Any]) -> None:
            for o in page.get("Contents", ()):
                rel = o["Key"][cut:]
                if rel and not rel.endswith("/") and not rel.startswith(TMP):
                    found[rel] = (int(o["Size"]), o["LastModified"].timestamp() if times else None)

        async def pages(sub: str, delimiter: bool, token: str | None = None) -> list[str]:
            """Every page of sub's listing from token on (the first one only, for the opening request)."""
            below: list[str] = []
            kw: dict[str, Any] = {"Bucket": bucket, "Prefix": sub, "MaxKeys": LIST_PAGE}
            if delimiter:
                kw["Delimiter"] = "/"
            while True:
                if token:
                    kw["ContinuationToken"] = token
                page = await self.fs._call_s3("list_objects_v2", **kw)
                keep(page)
                below += [p["Prefix"] for p in page.get("CommonPrefixes", ()) if p["Prefix"][cut:] != TMP]
                token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
                if not token:
                    return below

        async def walk() -> None:
            first = await self.fs._call_s3("list_objects_v2", Bucket=bucket, Prefix=top, MaxKeys=LIST_PAGE)
            if not first.get("IsTruncated"):
                keep(first)
                return
            gate = asyncio.Semaphore(self.default_jobs)

            async def tree(sub: str) -> None:
                async with gate:
                    children = await pages(sub, True)
                groups = sorted({c[: len(sub) + 1] for c in children})
                if len(children) <= LIST_FEW or len(groups) < 2:
                    await asyncio.gather(*map(tree, children))
                else:  # objects/00/ … objects/ff/: 16 listings of objects/0 … objects/f, each of every key below
                    await asyncio.gather(*map(flat, groups))

            async def flat(group: str) -> None:
                async with gate:
                    await pages(group, False)

            await tree(top)

        with self._errors(prefix):
            self._run(walk())
        return found
