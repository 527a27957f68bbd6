"""A remote on any fsspec filesystem (gs://, az://, ssh://, memory://, …); http(s):// is read-only.

fsspec is imported only when such a store is opened, never at module import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mvc.errors import RemoteAuthError, RemoteNotFound, RemoteObjectMissing, RemoteUnreachable
from mvc.storage import fileio
from mvc.storage.store import Check, Progress, RemoteError, Store, first_line, s3_code

# Uploads to these are atomic by themselves (one PUT or a completed multipart upload).
OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "oci", "tos", "tosfs", "hf"}
READ_ONLY = {"http", "https"}


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
        digest, st = fileio.hash_file(src)
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
            tmp = self._path(f"tmp/{os.path.basename(fileio.tmp_name('', rel.rsplit('/', 1)[-1]))}")
            self.fs.makedirs(self._path("tmp"), exist_ok=True)
            send(tmp)
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(tmp, target)

    def get_file(self, rel: str, dest: str, progress: Progress | None = None) -> str:
        with self._errors(rel):
            self.fs.get_file(self._path(rel), dest, callback=_fsspec_callback(progress))
        return fileio.hash_file(dest)[0]

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        with self._errors(rel):
            try:
                return bytes(self.fs.cat_file(self._path(rel), start=start, end=end))
            except Exception as e:
                if s3_code(e) == "InvalidRange" or any(
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
                f"access to {where} was denied ({first_line(e)}): check the credentials and permissions for this remote"
            )
        if isinstance(e, (ConnectionError, TimeoutError)):
            return RemoteUnreachable(
                f"cannot reach {self.url} ({first_line(e)}): check the network and the remote URL, then retry"
            )
        return None
