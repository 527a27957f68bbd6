"""The store interface every remote backend implements, and the translation of its errors.

A store works on relative, '/'-separated paths below its URL (``objects/ab/cdef…``) and knows
nothing of oids. Every object it writes becomes visible complete or not at all: temp file + rename
on file systems, one PUT or a completed multipart upload on object stores. It hashes what it moves
(xxh3-128, hex) so the caller can refuse a mismatch before anything is placed.

One backend per module: ``directory`` (a directory on this machine), ``generic`` (any fsspec
filesystem; HTTP read-only), ``s3``. ``urls.open_store`` picks one for a URL.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, Literal

from mvc.errors import MvcError, RemoteError, RemoteReadOnly, RemoteWrongSize
from mvc.storage import fileio

Progress = Callable[[int], None]
Check = Callable[[str], None]  # called with the hex digest of the bytes about to be published
LateName = str | Callable[[], str | None]  # a name, or a callable asked for it once the bytes are copied
Wanted = Callable[[], bool]  # asked during a long copy: False calls it off

LARGE = 16 << 20  # objects above this count as large: few move at once (see mvc.objects.transfer)
PART = 50 << 20  # S3 multipart: part size (s3fs's default); objects under two parts go in one PUT
READ_PART = 16 << 20  # S3 downloads: objects above one part come down in ranged GETs of this size …
READ_STREAMS = 8  # … this many at once (bench_read.py --cases parts: 16 MiB beat 4 and 8 MiB on loopback)
MAX_PARTS = 10_000  # S3's limit: parts grow for objects above 488 GiB
DEFAULT_JOBS = {"local": 4, "s3": 16}  # measured on loopback moto: 8-32 saturate it (benchmarks/bench_remote.py)
STREAM_STEP = 8 << 20  # a store that cannot stream a response reads a range for read_stream this much at a time
TMP = "tmp/"  # where stores without atomic uploads build an object before renaming it into place


class Store:
    """One remote. Methods are thread-safe; callers run them from a thread pool."""

    protocol = ""
    read_only = False
    cheap_exists = False  # True when exists() costs no request (a local disk): no listing needed
    copies_ranges = False  # True when copy_range_to copies in the kernel (a local disk)
    default_jobs = 8
    wrap_unknown = True  # errors translate() does not recognise become a generic RemoteError

    def __init__(self, url: str):
        self.url = redact_url(url.rstrip("/") or url)  # for messages: never a password
        # Set (by the transfer's thread pool, on Ctrl-C or another call's failure) to stop the long calls
        # running in other threads: an S3 multipart upload stops sending parts and is aborted.
        self.stopping = threading.Event()

    def where(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def exist(self, rels: list[str]) -> set[str]:
        """Which of rels are there: one :meth:`exists` each here; a local directory lists a busy directory once."""
        return {rel for rel in rels if self.exists(rel)}

    def list(self, prefix: str) -> list[str]:
        """Paths (relative to the store's root) of every object below the directory prefix ('' for all,
        "objects/" or "objects" alike), never the temp files in tmp/; [] when there are none."""
        raise NotImplementedError

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """{path: size in bytes} of every object below the directory prefix, as list() gives the paths: the
        sizes of the same listing (the same requests), never of tmp/."""
        raise NotImplementedError

    def list_times(self, prefix: str) -> dict[str, tuple[int, float | None]]:
        """{path: (size, when it was last written, in seconds since the epoch, or None where the store does not
        say)} of every object below prefix, as list_sizes gives them (``mvc gc -r``'s grace period)."""
        return {rel: (size, None) for rel, size in self.list_sizes(prefix).items()}

    def names(self) -> set[str]:
        """The names directly below the store's root ("objects", "mvc.toml", …: files and directories
        alike, no "/"), as far as one small request tells (object stores: the first page, which holds
        every name of an mvc store); empty when the store's directory does not exist (yet)."""
        raise NotImplementedError

    def put_file(self, src: str, rel: str, check: Check, progress: Progress | None = None) -> int:
        """Publish the local file src at rel; check(digest) runs before it can become visible. Bytes sent."""
        raise NotImplementedError

    def put_bytes(self, rel: str, data: bytes | memoryview) -> None:
        """Publish data (already verified by the caller) at rel, complete or not at all."""
        raise NotImplementedError

    def put_range(self, rel: LateName, src: str, start: int, end: int, wanted: Wanted | None = None) -> None:
        """Publish bytes [start, end) of the local file src (immutable) at rel, complete or not at all. rel may be
        a callable, asked once the bytes are copied, that waits for the name (the caller is still hashing them, and
        verifies them before it names them) or returns None: then nothing is published. wanted, if given, is asked
        during a long copy whether it is still wanted (False: it stops, nothing is published). A store that can
        copy without reading the bytes into memory overrides this."""
        if wanted is not None and not wanted():
            return
        fd = os.open(src, os.O_RDONLY)
        try:
            data = os.pread(fd, end - start, start)
        finally:
            os.close(fd)
        if wanted is not None and not wanted():
            return
        name = rel if isinstance(rel, str) else rel()
        if name is not None:
            self.put_bytes(name, data)

    def get_file(self, rel: str, dest: str, progress: Progress | None = None, size: int | None = None) -> str:
        """Download rel to the new local file dest; returns the hex digest of what was written. ``size``: the
        bytes rel must hold (a pointer's or a manifest's word): a file of another size is refused with
        :meth:`wrong_size` as soon as its size is known, before the rest of it is written (a file on a shared
        remote replaced by a huge or sparse one fills no disk)."""
        raise NotImplementedError

    def wrong_size(self, rel: str, held: int, size: int) -> RemoteWrongSize:
        return RemoteWrongSize(
            f"{self.where(rel)} holds {held} bytes, but the object has {size} (as its pointer or manifest says): "
            "refused before it was downloaded, nothing was placed in the cache or workspace: the file on the remote "
            f"was damaged or replaced (or the pointer is): on a machine that has that version, run 'mvc verify -r "
            f"REMOTE --repair' with REMOTE the remote at {self.url}"
        )

    def copy_range_to(self, rel: str, start: int, end: int, fd: int, at: int) -> int:
        """Copy bytes [start, end) of rel to offset ``at`` of the local file fd without reading them into memory;
        returns the bytes copied (fewer when rel ends first), or -1 when this store cannot (then the caller
        reads the range with :meth:`get_range`). Nothing is checked: the caller hashes what it wrote."""
        return -1

    def read_stream(self, rel: str, start: int, end: int) -> RangeStream:
        """Bytes [start, end) of rel to be read in order, in views of the caller's (one ranged read where the
        store streams a response; here, one of at most STREAM_STEP bytes at a time); RemoteObjectMissing when rel
        is not there, at once or at the first read. Nothing is checked: the caller hashes what it builds."""
        return _Stepped(self, rel, start, end)

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of rel: fewer when it ends before end, b"" when start is at or past its end."""
        raise NotImplementedError

    def get_range_into(self, rel: str, start: int, buf: memoryview) -> int:
        """Bytes [start, start + len(buf)) of rel read into buf; returns how many (fewer when rel ends first). A
        store that can read into memory it is given overrides this (no new memory, no second copy)."""
        data = self.get_range(rel, start, start + len(buf))
        buf[: len(data)] = data
        return len(data)

    def delete(self, rel: str) -> None:
        """Remove rel; one that is not there is no error (as on S3)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def briefly(self) -> contextlib.AbstractContextManager[Any]:
        """A block whose requests (this thread's) are waited for a few seconds at most, not the timeouts of the
        remote: what a command that failed or was interrupted cleans up on its way out. A store whose requests
        cannot hang (a local disk) waits for them as ever."""
        return contextlib.nullcontext()

    def translate(self, e: BaseException, rel: str, writing: bool = False) -> RemoteError | None:
        """The one-line error for an exception the store raised, or None when it is not recognised."""
        return None

    def _errors(self, rel: str, writing: bool = False, local: str | None = None) -> _Translate:
        return _Translate(self, rel, writing, local)

    def refuse_write(self) -> None:
        if self.read_only:
            raise RemoteReadOnly(
                f"{self.url} is read-only ({self.protocol}://): mvc writes (push, gc -r) only to a writable remote "
                "(a directory, s3://, gs://, …): run it on the remote this one serves"
            )


class RangeStream:
    """A range of a store's file read in order (:meth:`Store.read_stream`)."""

    def readinto(self, view: memoryview) -> int:
        """Read into view from where the last read stopped; fewer bytes than it holds only at the end, 0 past it."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of what the stream holds (a descriptor, a connection); it reads nothing more."""


class FileRange(RangeStream):
    """Bytes [start, end) of a file on this machine, read through its descriptor (closed with the stream);
    ``errors``: the context each read runs in (a store's translation of errors), if any."""

    def __init__(self, fd: int, start: int, end: int, errors: Callable[[], Any] | None = None):
        self.fd, self.at, self.end, self.errors = fd, start, end, errors

    def readinto(self, view: memoryview) -> int:
        n = min(len(view), self.end - self.at)
        if n <= 0:
            return 0
        with self.errors() if self.errors is not None else contextlib.nullcontext():
            got = fileio.preadv_all(self.fd, view[:n], self.at)
        self.at += got
        return got

    def read_at(self, at: int, view: memoryview) -> int:
        """Bytes of the file from offset at into view, as many as lie before the range's end: positional (any
        thread, any order; the stream's own place stays where it is)."""
        n = min(len(view), self.end - at)
        if n <= 0:
            return 0
        try:
            return fileio.preadv_all(self.fd, view[:n], at)
        except OSError:
            if self.errors is None:
                raise
            with self.errors():  # (entered only on an error: a window's read costs no context)
                raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Stepped(RangeStream):
    """A range read STREAM_STEP bytes a request (``get_range``), handed out from memory of its own."""

    def __init__(self, store: Store, rel: str, start: int, end: int):
        self.store, self.rel, self.at, self.end = store, rel, start, end
        self.data: bytes | memoryview = b""
        self.used = 0

    def readinto(self, view: memoryview) -> int:
        if self.used == len(self.data):
            n = min(STREAM_STEP, self.end - self.at)
            if n <= 0:
                return 0
            self.data, self.used = memoryview(self.store.get_range(self.rel, self.at, self.at + n)), 0
            self.at += len(self.data)
            if not self.data:
                self.at = self.end
                return 0
        k = min(len(view), len(self.data) - self.used)
        view[:k] = self.data[self.used : self.used + k]
        self.used += k
        return k

    def close(self) -> None:
        self.data, self.used = b"", 0


class _Translate:
    """A store's errors as one line (:meth:`Store.translate`); mvc's own errors pass through.

    local: the file on this machine a download writes; its disk full or its permissions are reported as
    this machine's, never the remote's."""

    def __init__(self, store: Store, rel: str, writing: bool, local: str | None = None):
        self.store, self.rel, self.writing, self.local = store, rel, writing, local

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: object, e: BaseException | None, tb: object) -> Literal[False]:
        if e is None or isinstance(e, MvcError) or not isinstance(e, Exception):
            return False
        if self.local is not None and isinstance(e, OSError):
            mine = fileio.local_error(e, os.path.dirname(self.local) or ".", only_space=e.filename != self.local)
            if mine is not None:
                raise mine from None
        err = self.store.translate(e, self.rel, self.writing)
        if err is None:
            if not self.store.wrap_unknown:
                return False
            err = RemoteError(
                f"{self.store.where(self.rel) if self.rel else self.store.url}: "
                f"{type(e).__name__}: {first_line(e)}: check the remote and retry"
            )
        raise err from None


def not_s3(endpoint: str, where: str) -> RemoteError:
    """The error for a listing answered "not found", which no S3 server does (it lists nothing, or says
    NoSuchBucket): the endpoint is some other web server."""
    return RemoteError(
        f"the server{endpoint or ' of the remote'} answered the listing of {where} with 'not found', as no S3 server "
        "does: it is not an S3 API endpoint (a port or host mixed up?): fix it with 'mvc remote modify NAME "
        "endpoint_url URL'"
    )


def first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def object_size(response: dict[str, Any]) -> int:
    """The whole object's size, from a GET's response (ranged: its Content-Range; else its Content-Length)."""
    whole = str(response.get("ContentRange") or "").rpartition("/")[2]
    return int(whole) if whole.isdigit() else int(response.get("ContentLength") or 0)


def s3_code(e: BaseException) -> str:
    """The S3 error code of an exception s3fs raised (it keeps botocore's error as the cause)."""
    for err in (e, e.__cause__, e.__context__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
    return ""


def quick_timestamps(session: Any) -> Any:
    """Make a botocore (or aiobotocore) session's clients parse S3's ISO 8601 times with the standard library.
    botocore's own parser (dateutil) costs about 0.14 ms a time here: 14 s of CPU for a listing of 100,000 keys,
    each with its LastModified. Anything else (an HTTP date in a header, a time without a zone) goes to it."""
    import functools

    from botocore.utils import parse_timestamp

    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=functools.partial(parse_time, fallback=parse_timestamp)
    )
    return session


def parse_time(value: Any, fallback: Callable[[Any], Any]) -> Any:
    """value as an aware datetime: ``datetime.fromisoformat`` where it reads one with a zone, else fallback."""
    import datetime  # here: the stores' module is on every command's start-up path

    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return fallback(value)


def split_url(url: str) -> tuple[str, str]:
    """(protocol, path): ``"local"`` for plain paths and ``file://`` URLs."""
    if "://" not in url:
        return "local", url
    protocol, _, rest = url.partition("://")
    protocol = protocol.lower()
    if protocol == "file":  # RFC 8089, as git reads it: percent-escapes decoded, "localhost" the same as none
        from urllib.parse import unquote

        return "local", unquote(rest[len("localhost") :] if rest.startswith("localhost/") else rest)
    if protocol == "local":
        return "local", rest
    return protocol, rest


def _userinfo_end(rest: str) -> int:
    """Where the ``user:password@`` of a URL's part after ``://`` ends (the index of its ``@``), or -1. A password
    may hold a "/" as users write it (an AWS secret key often does), not escaped: a ``user:`` with no "/" before
    an "@" further on counts too (so an "@" in the path of a URL with a port, ``host:8080/a@b``, reads as
    credentials: written ``%40``, it does not)."""
    host = rest.split("/", 1)[0]
    if "@" in host:
        return rest.rfind("@", 0, len(host))
    at = rest.rfind("@")
    user, colon, _ = rest[:at].partition(":") if at > 0 else ("", "", "")
    if not colon or "/" in user or not user or user.startswith("["):
        return -1
    return at


# query parameters whose value is a secret, by a word of their name: X-Amz-Signature, X-Amz-Security-Token, sig, …
_QUERY_SECRETS = {"sig", "signature", "token", "key", "apikey", "credential", "secret", "password", "auth", "sas"}


def _secret_name(name: str) -> bool:
    return any(w in _QUERY_SECRETS for w in name.lower().replace("_", "-").split("-"))


def _secret_query(url: str) -> bool:
    query = url.partition("?")[2]
    return any(_secret_name(item.partition("=")[0]) for item in query.split("&") if "=" in item)


def has_credentials(url: str) -> bool:
    """Whether a URL carries a user name or password (``scheme://user:pw@host/…``), or a query parameter that
    looks secret (a signed URL's ``X-Amz-Signature``, a ``token``)."""
    _, sep, rest = url.partition("://")
    return bool(sep) and (_userinfo_end(rest) >= 0 or _secret_query(url))


def redact_url(url: str) -> str:
    """The URL with any user:password@ replaced by ***@, and the values of secret-looking query parameters by ***,
    for messages, listings and records."""
    scheme, sep, rest = url.partition("://")
    at = _userinfo_end(rest) if sep else -1
    url = url if at < 0 else f"{scheme}{sep}***{rest[at:]}"
    head, q, query = url.partition("?")
    if not q or not _secret_query(url):
        return url
    items = [
        f"{i.partition('=')[0]}=***" if "=" in i and _secret_name(i.partition("=")[0]) else i for i in query.split("&")
    ]
    return f"{head}?{'&'.join(items)}"
