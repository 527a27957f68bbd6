"""Every store backend joins the contract of tests/store_contract.py: one fixture class a backend, then
one line a test class. A new backend adds its fixture class and its line here (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from conftest import http_server
from store_contract import (
    DeleteTests,
    ErrorTests,
    ExistsTests,
    GetTests,
    ListTests,
    LocalDiskTests,
    NamesTests,
    PutTests,
    RangeTests,
    ReadOnlyTests,
    UnreachableTests,
    data_of,
    digest,
)

from mvc.storage.urls import open_store

READS = (GetTests, RangeTests, ListTests, ExistsTests, ErrorTests)


def files_below(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a directory -------------------------------------------------------------------------------------
class DirFixtures:
    """A directory on this machine: DirStore through open_store, as a remote URL that is a plain path."""

    lists_missing_as_empty = True  # the first push makes the directory

    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        root = tmp_path / "store"
        root.mkdir()
        return root

    @pytest.fixture
    def store(self, root: Path):
        return open_store(str(root))

    @pytest.fixture
    def seed(self, root: Path):
        def seed(rel: str, data: bytes) -> None:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)

        return seed

    @pytest.fixture
    def raw(self, root: Path):
        return lambda: files_below(root)

    @pytest.fixture
    def missing_store(self, tmp_path: Path):
        return open_store(str(tmp_path / "no-such-dir"))


class TestDirectory(PutTests, *READS, NamesTests, DeleteTests, LocalDiskTests, DirFixtures):
    """The directory backend (DirStore)."""

    def test_exist_takes_a_dangling_link_for_absent_as_exists_does(self, store, seed, root):
        for i in range(40):
            seed(f"objects/ab/{i:04x}", b"x")
        (root / "objects" / "ab" / "link-ok").symlink_to(root / "objects" / "ab" / "0000")
        (root / "objects" / "ab" / "link-gone").symlink_to(root / "nowhere")
        asked = [f"objects/ab/{i:04x}" for i in range(40)] + ["objects/ab/link-ok", "objects/ab/link-gone"]
        assert not store.exists("objects/ab/link-gone")
        assert store.exist(asked) == {rel for rel in asked if store.exists(rel)} == set(asked[:-1])


# -- S3 on the session's moto server ----------------------------------------------------------------
BUCKET, PREFIX = "contract", "team/models"


@pytest.fixture(scope="session")
def s3_clients(s3_server: str):
    """The store, a store on a missing bucket and a boto3 client, made once: an S3 client costs 0.2 s to
    build, more than a test. They keep no state between tests (s3fs's find never serves from its cache)."""
    import boto3

    return (
        open_store(f"s3://{BUCKET}/{PREFIX}", {"endpoint_url": s3_server}),
        open_store("s3://no-such-bucket/models", {"endpoint_url": s3_server}),
        boto3.client("s3", endpoint_url=s3_server),
    )


class S3Fixtures:
    """S3Store against moto on 127.0.0.1, reset for each test; moto's smallest part is lowered so
    multipart uploads cost kilobytes."""

    lists_missing_as_empty = False  # a push cannot make a bucket

    @pytest.fixture
    def s3(self, s3_clients, s3_endpoint: str, monkeypatch):
        monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 256)
        client = s3_clients[2]
        client.create_bucket(Bucket=BUCKET)
        return client

    @pytest.fixture
    def store(self, s3, s3_clients):
        return s3_clients[0]

    @pytest.fixture
    def seed(self, s3):
        return lambda rel, data: s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{rel}", Body=data)

    @pytest.fixture
    def raw(self, s3):
        def raw() -> set[str]:
            keys = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
            uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
            cut = len(PREFIX) + 1
            return {o["Key"][cut:] for o in keys} | {f"upload:{u['Key'][cut:]}" for u in uploads}

        return raw

    @pytest.fixture
    def missing_store(self, s3_clients, s3_endpoint: str):
        return s3_clients[1]


class PartsTests:
    """An object larger than one download part comes down in ranged GETs, several at once, each written at its
    offset: the file is whole and its digest right (parts made tiny here)."""

    @pytest.mark.parametrize("size", [1024, 1025, 5 * 1024 + 7])
    def test_a_download_in_parts(self, store, seed, tmp_path, monkeypatch, size):
        monkeypatch.setattr(f"{type(store).__module__}.READ_PART", 1024)
        data = data_of(size, seed=9)
        seed("objects/ab/cdef", data)
        seen: list[int] = []
        dest = tmp_path / "dest"
        assert store.get_file("objects/ab/cdef", str(dest), seen.append) == digest(data)
        assert dest.read_bytes() == data and sum(seen) == size


class TestS3(PutTests, *READS, NamesTests, DeleteTests, PartsTests, S3Fixtures):
    """The S3 backend (S3Store). An unreachable S3 server is tested by tests/remote_suite.py."""


@pytest.fixture(scope="session")
def s3_readers(s3_server: str):
    return (
        open_store(f"s3://{BUCKET}/{PREFIX}", {"endpoint_url": s3_server}, reading=True),
        open_store("s3://no-such-bucket/models", {"endpoint_url": s3_server}, reading=True),
    )


class S3ReaderFixtures(S3Fixtures):
    """S3Reader (botocore alone, read-only) on the same moto server and bucket as S3Store."""

    @pytest.fixture
    def store(self, s3, s3_readers):
        return s3_readers[0]

    @pytest.fixture
    def missing_store(self, s3_readers, s3_endpoint: str):
        return s3_readers[1]


class TestS3Reader(*READS, NamesTests, ReadOnlyTests, PartsTests, S3ReaderFixtures):
    """The read path's S3 backend (S3Reader): what open_store(..., reading=True) gives for s3://."""

    def test_it_is_the_reader(self, store):
        assert type(store).__name__ == "S3Reader"

    def test_a_range_is_read_from_the_socket_into_the_buffer(self, store, pack, monkeypatch):
        """urllib3 2's readinto reads into bytes of its own, then copies them: a ranged read into a buffer goes
        through http.client's response under it instead, straight from the socket."""
        import urllib3.response

        def copying(*args, **kwargs):
            raise AssertionError("read through urllib3's readinto, which copies")

        monkeypatch.setattr(urllib3.response.HTTPResponse, "readinto", copying)
        for start, size in [(0, 1000), (990, 10), (995, 100)]:
            buf = bytearray(size)
            n = store.get_range_into(pack, start, memoryview(buf))
            assert n == len(self.DATA[start : start + size]) and buf[:n] == self.DATA[start : start + size]

    def test_a_body_without_http_client_under_it_is_read_through_its_own_readinto(self):
        """Where the response under the body is not http.client's (another botocore, another HTTP client), the
        body's own readinto reads it: the same bytes, and the body closed."""
        import io

        from botocore.response import StreamingBody

        from mvc.storage.s3read import _read_into

        raw = io.BytesIO(self.DATA[:700])
        buf = bytearray(1000)
        assert _read_into(StreamingBody(raw, 700), memoryview(buf)) == 700 and buf[:700] == self.DATA[:700]
        assert raw.closed


# -- any fsspec filesystem: memory:// ---------------------------------------------------------------
class MemoryFixtures:
    """FsspecStore on fsspec's memory:// through open_store: each test under a root of its own in the
    process-wide memory filesystem, removed afterwards."""

    lists_missing_as_empty = True  # the first push makes the directory

    @pytest.fixture
    def fs(self):
        import fsspec

        return fsspec.filesystem("memory")

    @pytest.fixture
    def root(self, fs):
        top = f"/mvc-contract-{uuid.uuid4().hex}"
        fs.makedirs(f"{top}/store")
        yield f"{top}/store"
        fs.rm(top, recursive=True)

    @pytest.fixture
    def store(self, root: str):
        return open_store(f"memory:/{root}")

    @pytest.fixture
    def seed(self, fs, root: str):
        return lambda rel, data: fs.pipe_file(f"{root}/{rel}", data)

    @pytest.fixture
    def raw(self, fs, root: str):
        return lambda: {p[len(root) + 1 :] for p in fs.find(root)}

    @pytest.fixture
    def missing_store(self, root: str):
        return open_store(f"memory:/{root}-missing")


class TestMemory(PutTests, *READS, NamesTests, DeleteTests, MemoryFixtures):
    """The generic fsspec backend (FsspecStore), on memory://."""


# -- HTTP, read-only ---------------------------------------------------------------------------------
class HttpFixtures:
    """A directory served by python's http.server on 127.0.0.1 (listings, no Range support): the
    read-only HttpStore through open_store."""

    lists_missing_as_empty = False  # a push cannot make a web server's directory

    @pytest.fixture
    def www(self, tmp_path: Path):
        www = tmp_path / "www"
        (www / "store").mkdir(parents=True)
        with http_server(www) as url:
            yield www, url

    @pytest.fixture
    def store(self, www):
        return open_store(f"{www[1]}/store")

    @pytest.fixture
    def seed(self, www):
        def seed(rel: str, data: bytes) -> None:
            path = www[0] / "store" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return seed

    @pytest.fixture
    def missing_store(self, www):
        return open_store(f"{www[1]}/no-such-dir")

    @pytest.fixture
    def unreachable_store(self):
        return open_store(f"http://127.0.0.1:{free_port()}/store")


class TestHttp(*READS, UnreachableTests, ReadOnlyTests, HttpFixtures):
    """The read-only HTTP backend (HttpStore, an FsspecStore)."""
