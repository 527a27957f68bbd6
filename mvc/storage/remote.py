"""Remote stores: a local directory, S3 (s3fs) and any other fsspec filesystem, behind one interface.

A store works on relative, '/'-separated paths below its URL (``objects/ab/cdef…``) and knows
nothing of oids. Every object it writes becomes visible complete or not at all: temp file + rename
on file systems, one PUT or a completed multipart upload on object stores. It hashes what it moves
(xxh3-128, hex) so the caller can refuse a mismatch before anything is placed.

fsspec and s3fs are imported only when a store is opened, never at module import.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from typing import Any

from mvc.errors import CorruptObject, ObjectMissing, RemoteError
from mvc.storage import local

Progress = Callable[[int], None]
Check = Callable[[str], None]  # called with the hex digest of the bytes about to be published

# The package to pip install for a protocol; fsspec's own hint is used for the others.
PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "ssh": "paramiko",
    "sftp": "paramiko",
    "http": "aiohttp",
    "https": "aiohttp",
    "hf": "huggingface_hub",
    "oss": "ossfs",
    "webdav": "webdav4",
    "smb": "smbprotocol",
}
# Uploads to these are atomic by themselves (one PUT or a completed multipart upload).
OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "oci", "tos", "tosfs", "hf"}
READ_ONLY = {"http", "https"}
# Wrappers and archives: not a place to keep objects.
NOT_STORES = {
    "blockcache",
    "cached",
    "filecache",
    "simplecache",
    "data",
    "dir",
    "generic",
    "reference",
    "tar",
    "zip",
    "libarchive",
    "async_wrapper",
    "asyncwrapper",
    "git",
    "github",
    "gist",
    "dvc",
}
LARGE = 16 << 20  # objects above this count as large: few move at once (see mvc.api.remote)
PART = 50 << 20  # S3 multipart: part size (s3fs's default); objects under two parts go in one PUT
MAX_PARTS = 10_000  # S3's limit: parts grow for objects above 488 GiB
DEFAULT_JOBS = {"local": 4, "s3": 16}  # measured on loopback moto: 8-32 saturate it (benchmarks/bench_remote.py)


class RemoteNotFound(RemoteError):
    """The bucket or directory of the remote does not exist."""


class RemoteAuthError(RemoteError):
    """Missing or rejected credentials."""


class RemoteUnreachable(RemoteError):
    """The server did not answer (down, wrong endpoint, network)."""


class RemoteProtocolError(RemoteError):
    """Unknown protocol, or its fsspec package is not installed."""


class RemoteReadOnly(RemoteError):
    pass


class RemoteObjectMissing(RemoteError, ObjectMissing):
    """An object is not on the remote."""


class RemoteCorrupt(RemoteError, CorruptObject):
    """An object on the remote does not hash to its oid."""


def split_url(url: str) -> tuple[str, str]:
    """(protocol, path): ``"local"`` for plain paths and ``file://`` URLs."""
    if "://" not in url:
        return "local", url
    protocol, _, rest = url.partition("://")
    protocol = protocol.lower()
    if protocol in ("file", "local"):
        return "local", rest
    return protocol, rest


def check_url(url: str) -> str:
    """Refuse a URL no store can serve; returns its protocol. Imports fsspec only for other protocols."""
    protocol, path = split_url(url)
    if protocol == "local":
        if not path:
            raise RemoteProtocolError("empty remote path: give a directory, e.g. /mnt/models or file:///mnt/models")
        return protocol
    if protocol in ("s3", "s3a"):
        if not path.split("/", 1)[0]:
            raise RemoteProtocolError(f"{url}: an S3 URL needs a bucket: use s3://BUCKET[/PREFIX]")
        return protocol
    from fsspec.registry import known_implementations, registry

    if protocol in NOT_STORES or (protocol not in known_implementations and protocol not in registry):
        raise RemoteProtocolError(
            f"{url}: unknown protocol {protocol!r}: use a directory, s3://, gs://, az://, "
            "ssh:// or another fsspec protocol"
        )
    return protocol


def identity(url: str, endpoint_url: str | None = None, base: str = ".") -> str:
    """What makes two remotes the same store (for the journal): the resolved URL and endpoint."""
    protocol, path = split_url(url)
    if protocol == "local":
        return "file://" + os.path.realpath(os.path.join(base, os.path.expanduser(path)))
    key = f"{protocol}://{path.strip('/')}"
    return f"{key} @ {endpoint_url.rstrip('/')}" if endpoint_url else key


class Store:
    """One remote. Methods are thread-safe; callers run them from a thread pool."""

    protocol = ""
    read_only = False
    cheap_exists = False  # True when exists() costs no request (a local disk): no listing needed
    default_jobs = 8
    wrap_unknown = True  # errors translate() does not recognise become a generic RemoteError

    def __init__(self, url: str):
        self.url = url.rstrip("/") or url

    def where(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """Relative paths of every object below prefix ('' for all)."""
        raise NotImplementedError

    def put_file(self, src: str, rel: str, check: Check, progress: Progress | None = None) -> int:
        """Publish the local file src at rel; check(digest) runs before it can become visible. Bytes sent."""
        raise NotImplementedError

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Publish data (already verified by the caller) at rel, complete or not at all."""
        raise NotImplementedError

    def get_file(self, rel: str, dest: str, progress: Progress | None = None) -> str:
        """Download rel to the new local file dest; returns the hex digest of what was written."""
        raise NotImplementedError

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of rel (fewer if it is shorter)."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        """The one-line error for an exception the store raised, or None when it is not recognised."""
        return None

    def _errors(self, rel: str, writing: bool = False) -> _Translate:
        return _Translate(self, rel, writing)

    def _refuse_write(self) -> None:
        if self.read_only:
            raise RemoteReadOnly(
                f"{self.url} is read-only ({self.protocol}://): push to a writable remote "
                "(a directory, s3://, gs://, …)"
            )


# -- a directory on this machine (or a mounted share) -------------------------------------------
class LocalStore(Store):
    protocol = "local"
    cheap_exists = True
    wrap_unknown = False
    default_jobs = DEFAULT_JOBS["local"]

    def __init__(self, url: str, root: str, *, fsync: bool = False):
        super().__init__(url)
        self.root = os.path.abspath(root)
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.fsync = fsync

    def _full(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def where(self, rel: str) -> str:
        return self._full(rel)

    def exists(self, rel: str) -> bool:
        return os.path.exists(self._full(rel))

    def list(self, prefix: str) -> list[str]:
        top = self._full(prefix) if prefix else self.root
        out = []
        for dirpath, _, files in os.walk(top):
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            out.extend(f"{rel_dir}/{f}" if rel_dir != "." else f for f in files)
        return out

    def put_file(self, src: str, rel: str, check: Check, progress: Progress | None = None) -> int:
        def write(tmp: str) -> int:
            fd = os.open(src, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    digest = local.copy_hash_fd(fd, out, size, progress)
                    if self.fsync:
                        os.fsync(out)
                finally:
                    os.close(out)
            finally:
                os.close(fd)
            check(digest)
            return size

        return self._publish(rel, write)

    def put_bytes(self, rel: str, data: bytes) -> None:
        self._publish(rel, lambda tmp: local.atomic_write(tmp, data, fsync=self.fsync))

    def _publish(self, rel: str, write: Callable[[str], Any]) -> Any:
        """write(tmp) fills a new temp file in tmp/; it is then made read-only and renamed to rel."""
        dest = self._full(rel)
        with self._errors(rel, writing=True):
            os.makedirs(self.tmp_dir, exist_ok=True)
            local.sweep_stale(self.tmp_dir)
            tmp = local.tmp_name(self.tmp_dir, os.path.basename(rel))
            try:
                result = write(tmp)
                os.chmod(tmp, 0o444)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(tmp, dest)  # identical content from a concurrent pusher is replaced harmlessly
                if self.fsync:
                    local.fsync_dir(os.path.dirname(dest))
            except BaseException:
                local.remove_quietly(tmp)
                raise
        return result

    def _open(self, rel: str) -> int:
        try:
            return os.open(self._full(rel), os.O_RDONLY)
        except FileNotFoundError:
            if not os.path.isdir(self.root):
                raise RemoteNotFound(
                    f"remote directory {self.root} does not exist: check the remote URL with 'mvc remote list'"
                ) from None
            raise RemoteObjectMissing(f"{self.where(rel)} is not on the remote") from None

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        with self._errors(rel, writing=False):
            fd = self._open(rel)
            try:
                end = min(end, os.fstat(fd).st_size)  # no buffer larger than what is there
                return os.pread(fd, max(0, end - start), start)
            finally:
                os.close(fd)

    def get_file(self, rel: str, dest: str, progress: Progress | None = None) -> str:
        with self._errors(rel, writing=False):
            fd = self._open(rel)
            try:
                out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    return local.copy_hash_fd(fd, out, os.fstat(fd).st_size, progress)
                finally:
                    os.close(out)
            finally:
                os.close(fd)

    def delete(self, rel: str) -> None:
        local.remove_quietly(self._full(rel))

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        """Full disk and permissions as one clear line; other OSErrors (the cache side's) pass through."""
        if not isinstance(e, OSError):
            return None
        what = "writing to" if writing else "reading from"
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return RemoteError(f"no space left {what} the remote ({e.filename}): free space there and retry")
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return RemoteAuthError(f"permission denied {what} the remote ({e.filename}): check its permissions")
        return None


# -- any fsspec filesystem ----------------------------------------------------------------------
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
    def __init__(self, url: str, protocol: str, fs: Any, root: str):
        super().__init__(url)
        self.protocol, self.fs, self.root = protocol, fs, root.rstrip("/")
        self.read_only = protocol in READ_ONLY
        self.atomic_put = protocol in OBJECT_STORES

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root else rel

    def exists(self, rel: str) -> bool:
        with self._errors(rel):
            return bool(self.fs.exists(self._path(rel)))

    def list(self, prefix: str) -> list[str]:
        top = self._path(prefix.rstrip("/")) if prefix else self.root
        with self._errors(prefix):
            try:
                found = self.fs.find(top)
            except FileNotFoundError as e:
                if isinstance(self.translate(e, prefix), RemoteNotFound):
                    raise
                return []
        strip = len(self.root) + 1 if self.root else 0
        return [p[strip:] for p in (self.fs._strip_protocol(f) for f in found)]

    def put_file(self, src: str, rel: str, check: Check, progress: Progress | None = None) -> int:
        self._refuse_write()
        digest, st = local.hash_file(src)
        check(digest)
        self._publish(rel, lambda path: self.fs.put_file(src, path, callback=_fsspec_callback(progress)))
        return st.st_size

    def put_bytes(self, rel: str, data: bytes) -> None:
        self._refuse_write()
        self._publish(rel, lambda path: self.fs.pipe_file(path, data))

    def _publish(self, rel: str, send: Callable[[str], Any]) -> None:
        """send(path) writes the whole object at path: rel itself on object stores, else a temp file in
        ``tmp/`` renamed to rel afterwards."""
        with self._errors(rel):
            target = self._path(rel)
            if self.atomic_put:
                send(target)
                return
            tmp = self._path(f"tmp/{os.path.basename(local.tmp_name('', rel.rsplit('/', 1)[-1]))}")
            self.fs.makedirs(self._path("tmp"), exist_ok=True)
            send(tmp)
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(tmp, target)

    def get_file(self, rel: str, dest: str, progress: Progress | None = None) -> str:
        with self._errors(rel):
            self.fs.get_file(self._path(rel), dest, callback=_fsspec_callback(progress))
        return local.hash_file(dest)[0]

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        with self._errors(rel):
            try:
                return bytes(self.fs.cat_file(self._path(rel), start=start, end=end))
            except Exception as e:
                if _s3_code(e) == "InvalidRange" or any(
                    getattr(x, "status", None) == 416 for x in (e, e.__cause__, e.__context__)
                ):
                    return b""  # starts past the end: as short as a read can be (callers check lengths)
                raise

    def delete(self, rel: str) -> None:
        with self._errors(rel):
            self.fs.rm_file(self._path(rel))

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        where = self.where(rel) if rel else self.url
        if isinstance(e, FileNotFoundError):
            return RemoteObjectMissing(f"{where} is not on the remote")
        if isinstance(e, PermissionError):
            return RemoteAuthError(
                f"access to {where} was denied ({_first_line(e)}): check the credentials "
                "and permissions for this remote"
            )
        if isinstance(e, (ConnectionError, TimeoutError)):
            return RemoteUnreachable(
                f"cannot reach {self.url} ({_first_line(e)}): check the network and the remote URL, then retry"
            )
        return None


class _Translate:
    """A store's errors as one line (:meth:`Store.translate`); mvc's own errors pass through."""

    def __init__(self, store: Store, rel: str, writing: bool):
        self.store, self.rel, self.writing = store, rel, writing

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ, e, tb) -> bool:
        if e is None or isinstance(e, (RemoteError, CorruptObject)) or not isinstance(e, Exception):
            return False
        err = self.store.translate(e, self.rel, self.writing)
        if err is None:
            if not self.store.wrap_unknown:
                return False
            err = RemoteError(
                f"{self.store.where(self.rel) if self.rel else self.store.url}: "
                f"{type(e).__name__}: {_first_line(e)}: check the remote and retry"
            )
        raise err from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


# -- S3 -------------------------------------------------------------------------------------------
# Remote keys understood for S3, mapped to s3fs arguments; any other key is passed to s3fs as is.
S3_KEYS = {"access_key_id": "key", "secret_access_key": "secret", "session_token": "token", "profile": "profile"}


class S3Store(FsspecStore):
    default_jobs = DEFAULT_JOBS["s3"]

    def __init__(self, url: str, options: dict[str, Any]):
        import s3fs

        protocol, path = split_url(url)
        self.bucket = path.split("/", 1)[0]
        self.endpoint = options.get("endpoint_url")
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
        client.update(kw.pop("client_kwargs", {}) or {})
        try:
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
                self.fs.call_s3("head_object", Bucket=bucket, Key=key)
                return True
            except FileNotFoundError:
                return False

    def _bucket_key(self, rel: str) -> tuple[str, str]:
        bucket, _, key = self._path(rel).partition("/")
        return bucket, key

    def put_file(self, src: str, rel: str, check: Check, progress: Progress | None = None) -> int:
        size = os.path.getsize(src)
        if size >= 2 * PART:
            with self._errors(rel):
                from fsspec.asyn import sync

                return sync(self.fs.loop, self._put_multipart, src, rel, size, check, progress)
        with open(src, "rb") as f:
            data = f.read()
        check(local.hexdigest_bytes(data))
        with self._errors(rel):
            self.fs.pipe_file(self._path(rel), data)
        if progress:
            progress(len(data))
        return len(data)

    async def _put_multipart(self, src: str, rel: str, size: int, check: Check, progress: Progress | None) -> int:
        """One multipart upload, up to max_concurrency parts in flight, hashing each part as it is read:
        the file is read once, and the upload is completed (made visible) only if check passes."""
        import asyncio

        import xxhash

        fs = self.fs
        bucket, key = self._bucket_key(rel)
        part_size = max(PART, -(-size // MAX_PARTS))
        upload = (await fs._call_s3("create_multipart_upload", Bucket=bucket, Key=key))["UploadId"]
        hasher = xxhash.xxh3_128()

        async def send(number: int, body: bytes) -> dict[str, Any]:
            out = await fs._call_s3(
                "upload_part", Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
            )
            if progress:
                progress(len(body))
            return {"PartNumber": number, "ETag": out["ETag"]}

        parts: list[dict[str, Any]] = []
        try:
            with open(src, "rb") as f:
                while True:
                    batch = []
                    for _ in range(fs.max_concurrency):
                        body = f.read(part_size)
                        if not body:
                            break
                        hasher.update(body)
                        batch.append(send(len(parts) + len(batch) + 1, body))
                    if not batch:
                        break
                    parts += await asyncio.gather(*batch)
            check(hasher.hexdigest())
            await fs._call_s3(
                "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:  # parts of an upload never completed are invisible; this frees them now
                await fs._call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload)
            except Exception:
                pass
            raise
        return size

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        code = _s3_code(e)
        endpoint = f" at {self.endpoint}" if self.endpoint else ""
        if code == "NoSuchBucket" or (isinstance(e, FileNotFoundError) and "bucket does not exist" in str(e)):
            return RemoteNotFound(
                f"bucket {self.bucket!r} does not exist{endpoint}: create it "
                f"(e.g. 'aws s3 mb s3://{self.bucket}') or fix the remote URL"
            )
        name = type(e).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"):
            return RemoteAuthError(
                f"no usable AWS credentials for {self.url} ({_first_line(e)}): set "
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
                f"({code or _first_line(e)}): check the credentials (AWS_* variables, "
                "profile) and the bucket's permissions"
            )
        if name in (
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ConnectionClosedError",
            "ClientConnectorError",
            "ServerDisconnectedError",
            "ClientOSError",
        ) or isinstance(e, (ConnectionError, TimeoutError)):
            return RemoteUnreachable(
                f"cannot reach the S3 server{endpoint or ' for ' + self.url} "
                f"({_first_line(e)}): check that it is running and the endpoint_url, then retry"
            )
        return super().translate(e, rel, writing)


def _s3_code(e: BaseException) -> str:
    """The S3 error code of an exception s3fs raised (it keeps botocore's error as the cause)."""
    for err in (e, e.__cause__, e.__context__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
    return ""


# -- opening --------------------------------------------------------------------------------------
def open_store(url: str, options: dict[str, Any] | None = None, *, base: str = ".", fsync: bool = False) -> Store:
    """The store for a remote URL; relative local paths are relative to base."""
    options = dict(options or {})
    protocol = check_url(url)
    if protocol == "local":
        _, path = split_url(url)
        return LocalStore(url, os.path.join(base, os.path.expanduser(path)), fsync=fsync)
    try:
        if protocol in ("s3", "s3a"):
            return S3Store(url, options)
        import fsspec

        fs = fsspec.filesystem(protocol, **options)
    except ImportError as e:
        raise RemoteProtocolError(_missing_package(protocol, e)) from None
    except TypeError as e:
        raise RemoteError(
            f"{url}: an option of this remote is not understood by the {protocol} filesystem "
            f"({e}): remove it with 'mvc remote modify NAME KEY --unset'"
        ) from None
    return FsspecStore(url, protocol, fs, fs._strip_protocol(url))


def _missing_package(protocol: str, e: ImportError) -> str:
    package = PACKAGES.get(protocol)
    if package is None:
        from fsspec.registry import known_implementations

        hint = known_implementations.get(protocol, {}).get("err") or str(e)
        return f"{protocol}:// remotes need a package that is not installed ({hint})"
    return f"{protocol}:// remotes need the {package} package: pip install {package}"


def run_parallel(
    fn: Callable[[Any], Any], items: Iterable[Any], jobs: int, done: Callable[[Any, Any], None] | None = None
) -> None:
    """Call fn on every item with up to ``jobs`` threads; done(item, result) runs in this thread.

    The first error stops new work and is raised here once the running calls end; Ctrl-C likewise.
    Workers hand their results over a SimpleQueue, whose put never blocks: a Ctrl-C landing in this
    thread while it waits cannot leave a lock held that a worker then needs (it could with
    concurrent.futures.wait, whose waiter a worker must lock to report, and the process hung).
    """
    import queue
    from concurrent.futures import ThreadPoolExecutor

    results: queue.SimpleQueue = queue.SimpleQueue()

    def call(item: Any) -> None:
        try:
            results.put((item, True, fn(item)))
        except BaseException as e:  # handed to the calling thread, raised there
            results.put((item, False, e))

    items = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mvc-remote") as pool:
        running = 0
        try:
            for item in items:
                pool.submit(call, item)
                running += 1
                if running >= jobs * 2:
                    break
            while running:
                item, ok, value = results.get()
                running -= 1
                if not ok:
                    raise value
                if done is not None:
                    done(item, value)
                nxt = next(items, None)
                if nxt is not None:
                    pool.submit(call, nxt)
                    running += 1
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # queued items never start
            raise
