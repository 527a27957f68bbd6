"""The contract of ``mvc.storage.store.Store``, written once and joined by every backend, the way fsspec's
abstract tests are (s3fs's tests/derived/s3fs_test.py): a backend's test class mixes the classes below
with a fixture class of its own (tests/test_store_contract.py) that provides::

    store                    a Store on an existing, empty remote
    seed(rel, data)          place bytes at rel behind the store's back (tmp/ leftovers included)
    raw()                    everything on the remote behind the store's back: tmp/ files, and on S3
                             uploads begun but never completed ("upload:KEY")
    missing_store            a Store whose directory or bucket does not exist
    unreachable_store        (for UnreachableTests) a Store on a port nothing answers
    lists_missing_as_empty   class attribute: True where a push makes a missing remote (a directory, a
                             memory:// path), so a listing of one is []; False where it cannot (an S3
                             bucket, a web server's directory), so the listing says it is missing

Writable backends also join NamesTests (what tells a location holding other things from an mvc store).
Read-only backends (http://) join only the read classes (errors included) and ReadOnlyTests. Everything is real storage:
the one simulated failure is LocalDiskTests' full disk.
"""

from __future__ import annotations

import errno
import os
import random
import time
from collections.abc import Callable

import pytest
import xxhash

from mvc.errors import (
    MvcError,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RemoteObjectMissing,
    RemoteReadOnly,
    RemoteUnreachable,
    StorageError,
)
from mvc.storage.parallel import run_parallel

PART = 1 << 10  # S3 multipart part size in these tests: 2 KiB and up go in parts
SIZES = [0, 1000, 5 * PART + 7]  # empty, one PUT, multipart on S3 (six parts)


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def digest(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def one_line(e: BaseException) -> str:
    """Every error a store raises is an MvcError of one line (the CLI prints it as 'error: …')."""
    assert isinstance(e, MvcError), f"{type(e).__name__}: {e}"
    text = str(e)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


def source(tmp_path, data: bytes, name: str = "src") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


class Recorder:
    """A check callback that records the digests it is given, and optionally refuses."""

    def __init__(self, refuse: BaseException | None = None, before: Callable[[], None] | None = None):
        self.seen: list[str] = []
        self.refuse, self.before = refuse, before

    def __call__(self, digest: str) -> None:
        self.seen.append(digest)
        if self.before:
            self.before()
        if self.refuse:
            raise self.refuse


class Refused(Exception):
    """What a check raises: it must reach the caller as it is, not as a remote error."""


# -- writes ------------------------------------------------------------------------------------------
class PutTests:
    """put_file and put_bytes publish an object complete or not at all; put_file's check sees the digest
    before anything is visible, and a check that raises leaves nothing behind."""

    @pytest.fixture(autouse=True)
    def small_parts(self, monkeypatch):
        """Multipart uploads of small objects, so the multipart path costs kilobytes (S3 only uses it)."""
        monkeypatch.setattr("mvc.storage.s3.PART", PART)

    @pytest.mark.parametrize("size", SIZES)
    def test_put_file_publishes_the_bytes(self, store, tmp_path, size):
        data = data_of(size, seed=1)
        check = Recorder()
        assert store.put_file(source(tmp_path, data), "objects/ab/cdef", check) == size
        assert check.seen == [digest(data)]
        assert store.exists("objects/ab/cdef")
        assert store.get_range("objects/ab/cdef", 0, size + 1) == data
        assert store.list("") == ["objects/ab/cdef"]

    @pytest.mark.parametrize("size", SIZES)
    def test_check_runs_before_the_object_is_visible(self, store, tmp_path, size):
        rel = "objects/ab/cdef"

        def invisible() -> None:
            assert not store.exists(rel)
            assert store.list("") == []

        check = Recorder(before=invisible)
        store.put_file(source(tmp_path, data_of(size, seed=2)), rel, check)
        assert len(check.seen) == 1 and store.exists(rel)

    @pytest.mark.parametrize("size", SIZES)
    def test_refused_check_leaves_nothing(self, store, raw, tmp_path, size):
        refusal = Refused("cache object is corrupt")
        with pytest.raises(Refused) as e:
            store.put_file(source(tmp_path, data_of(size, seed=3)), "objects/ab/cdef", Recorder(refuse=refusal))
        assert e.value is refusal  # the check's own error, not a remote error made of it
        assert not store.exists("objects/ab/cdef")
        assert store.list("") == []
        assert raw() == set()  # no temp file, no upload left open

    def test_put_file_reports_progress(self, store, tmp_path):
        for size in (1000, 5 * PART + 7):
            sent: list[int] = []
            store.put_file(source(tmp_path, data_of(size)), f"objects/ab/{size}", Recorder(), sent.append)
            assert sum(sent) == size

    @pytest.mark.parametrize("size", [0, 1000])
    def test_put_bytes_publishes_the_bytes(self, store, raw, size):
        data = data_of(size, seed=4)
        store.put_bytes("packs/p.pack", data)
        assert store.get_range("packs/p.pack", 0, size + 1) == data
        assert store.list("packs/") == ["packs/p.pack"]
        assert raw() == {"packs/p.pack"}

    @pytest.mark.parametrize("size", [0, 1000, 9 << 20])
    def test_put_range_publishes_that_range_only(self, store, raw, tmp_path, size):
        data = data_of(size + 300, seed=5)
        src = source(tmp_path, data)
        store.put_range("packs/r.pack", src, 100, 100 + size)
        assert store.get_range("packs/r.pack", 0, size + 400) == data[100 : 100 + size]
        assert raw() == {"packs/r.pack"}

    def test_put_range_named_once_copied(self, store, raw, tmp_path):
        """put_range's name may come late, from a callable asked once the bytes are copied (a push names a new
        file's pack when it has hashed the file); a callable that says None publishes nothing, leaves nothing."""
        data = data_of(5000, seed=6)
        src = source(tmp_path, data)
        asked: list[str] = []

        def late() -> str:
            asked.append("now")
            assert store.list("") == []  # not published before it is named
            return "packs/l.pack"

        store.put_range(late, src, 0, 5000)
        assert asked == ["now"]
        assert store.get_range("packs/l.pack", 0, 6000) == data
        store.put_range(lambda: None, src, 10, 4000)
        assert raw() == {"packs/l.pack"}

    def test_put_range_called_off_publishes_nothing(self, store, raw, tmp_path, monkeypatch):
        """put_range asks ``wanted`` during a long copy (a store copying in steps, between them); once it says
        False, nothing is published and nothing is left, and the name is not asked for."""
        monkeypatch.setattr("mvc.storage.fileio.COPY_STEP", 1000)
        src = source(tmp_path, data_of(5000, seed=7))
        asked: list[int] = []

        def wanted() -> bool:
            asked.append(1)
            return len(asked) < 2  # (a store copying in steps asks before each; others, before and after reading)

        def name() -> str:
            raise AssertionError("a copy called off is not named")

        store.put_range(name, src, 0, 5000, wanted)
        assert asked and raw() == set() and store.list("") == []
        store.put_range("packs/w.pack", src, 0, 5000, lambda: True)
        assert store.get_range("packs/w.pack", 0, 6000) == data_of(5000, seed=7)

    def test_put_replaces_what_is_there(self, store, tmp_path):
        """A pack pushed again, or an object two pushers publish at once, replaces the one there."""
        store.put_bytes("packs/p.idx", b"old index")
        store.put_bytes("packs/p.idx", b"new index")
        store.put_file(source(tmp_path, b"first"), "objects/ab/cdef", Recorder())
        store.put_file(source(tmp_path, b"second"), "objects/ab/cdef", Recorder())
        assert store.get_range("packs/p.idx", 0, 100) == b"new index"
        assert store.get_range("objects/ab/cdef", 0, 100) == b"second"
        assert sorted(store.list("")) == ["objects/ab/cdef", "packs/p.idx"]

    def test_puts_from_many_threads(self, store, tmp_path):
        """Transfers call a store from a pool of threads."""
        blobs = {f"objects/{i:02x}/{i:030x}": data_of(100 + i, seed=i) for i in range(16)}
        for rel, data in blobs.items():
            (tmp_path / rel.replace("/", "_")).write_bytes(data)

        def put(rel: str) -> int:
            if rel.endswith("1"):
                store.put_bytes(rel, blobs[rel])
                return len(blobs[rel])
            return store.put_file(str(tmp_path / rel.replace("/", "_")), rel, Recorder())

        run_parallel(put, sorted(blobs), jobs=8)
        assert sorted(store.list("objects/")) == sorted(blobs)
        for rel, data in blobs.items():
            assert store.get_range(rel, 0, 1000) == data

    def test_a_writable_store_says_so(self, store):
        assert not store.read_only

    @pytest.mark.parametrize("size", SIZES)
    def test_a_stopping_transfer_leaves_nothing(self, store, raw, tmp_path, size):
        """Ctrl-C (or another object's failure) sets ``stopping``: a put that gives up (an S3 multipart
        upload, between its parts) raises KeyboardInterrupt and leaves nothing, not even an upload left
        open; one sent in one go ends complete. Once stopping, a multipart upload does not begin."""
        rel = "objects/ab/cdef"
        src = source(tmp_path, data_of(size, seed=8))
        for when in ("while sending", "before"):
            if when == "before":
                store.stopping.set()
            try:
                store.put_file(src, rel, Recorder(), lambda n: store.stopping.set())
                stopped = False
            except KeyboardInterrupt:
                stopped = True
            finally:
                store.stopping.clear()
            assert raw() == (set() if stopped else {rel}), when
            assert store.exists(rel) is not stopped
            store.delete(rel)


# -- reads -------------------------------------------------------------------------------------------
class GetTests:
    """get_file writes a new local file and returns the xxh3-128 hex digest of what it wrote."""

    @pytest.mark.parametrize("size", [0, 3000])
    def test_get_file_returns_the_digest_of_what_it_wrote(self, store, seed, tmp_path, size):
        data = data_of(size, seed=5)
        seed("objects/ab/cdef", data)
        dest = tmp_path / "dest"
        assert store.get_file("objects/ab/cdef", str(dest)) == digest(data)
        assert dest.read_bytes() == data

    def test_get_file_reports_progress(self, store, seed, tmp_path):
        seed("objects/ab/cdef", data_of(3000))
        got: list[int] = []
        store.get_file("objects/ab/cdef", str(tmp_path / "dest"), got.append)
        assert sum(got) == 3000

    def test_get_file_of_a_missing_object(self, store, seed, tmp_path):
        seed("objects/ab/other", b"x")
        dest = tmp_path / "dest"
        with pytest.raises(RemoteObjectMissing) as e:
            store.get_file("objects/ab/cdef", str(dest))
        assert "objects/ab/cdef" in one_line(e.value)
        assert not dest.exists()


class RangeTests:
    """get_range returns bytes [start, end): fewer when end passes the end of the object, b"" when start is
    at or past it, and b"" for an empty range."""

    DATA = data_of(1000, seed=6)

    @pytest.fixture
    def pack(self, seed) -> str:
        seed("packs/p.pack", self.DATA)
        return "packs/p.pack"

    def test_range_inside(self, store, pack):
        for start, end in [(0, 1000), (0, 10), (5, 15), (990, 1000), (500, 501)]:
            assert store.get_range(pack, start, end) == self.DATA[start:end], (start, end)

    def test_range_past_the_end_is_short(self, store, pack):
        for start, end in [(0, 5000), (995, 1100), (999, 1000 + (1 << 20))]:
            assert store.get_range(pack, start, end) == self.DATA[start:], (start, end)

    def test_range_at_or_past_the_end_or_empty_is_nothing(self, store, pack):
        for start, end in [(1000, 1010), (1500, 2000), (5, 5), (0, 0)]:
            assert store.get_range(pack, start, end) == b"", (start, end)

    def test_range_of_an_empty_object(self, store, seed):
        seed("packs/empty.idx", b"")
        assert store.get_range("packs/empty.idx", 0, 4096) == b""

    def test_range_of_a_missing_object(self, store, pack):
        with pytest.raises(RemoteObjectMissing) as e:
            store.get_range("packs/q.pack", 0, 10)
        assert "packs/q.pack" in one_line(e.value)

    def test_range_into_a_buffer(self, store, pack):
        """get_range_into reads what get_range gives into the caller's buffer, and says how much."""
        for start, size in [(0, 1000), (5, 10), (990, 10), (995, 100), (1000, 10), (1500, 8), (3, 0)]:
            buf = bytearray(b"\xee" * (size + 4))
            n = store.get_range_into(pack, start, memoryview(buf)[2 : 2 + size])
            want = self.DATA[start : start + size]
            assert n == len(want) and buf[2 : 2 + n] == want, (start, size)
            assert buf[:2] == b"\xee\xee" and buf[2 + size :] == b"\xee\xee"  # nothing outside it
        with pytest.raises(RemoteObjectMissing):
            store.get_range_into("packs/q.pack", 0, memoryview(bytearray(10)))


class ListTests:
    """list(prefix) gives the paths (from the store's root) of the objects below a directory, with or
    without its trailing slash; [] when there are none; never the temp files in tmp/."""

    RELS = ("mvc.toml", "objects/ab/c1", "objects/ab/c2", "objects/cd/e3", "packs/p.idx", "packs/p.pack")

    @pytest.fixture
    def filled(self, seed) -> None:
        for i, rel in enumerate(self.RELS):
            seed(rel, data_of(10 + i, seed=i))

    @pytest.mark.usefixtures("filled")
    def test_list_gives_paths_below_the_prefix(self, store):
        for prefix, want in [
            ("", self.RELS),
            ("objects/", self.RELS[1:4]),
            ("objects", self.RELS[1:4]),
            ("objects/ab/", self.RELS[1:3]),
            ("packs/", self.RELS[4:]),
        ]:
            assert sorted(store.list(prefix)) == list(want), prefix

    @pytest.mark.usefixtures("filled")
    def test_list_of_a_prefix_with_nothing(self, store):
        for prefix in ["objects/zz/", "nothing/", "nothing"]:
            assert store.list(prefix) == [], prefix

    def test_list_of_an_empty_store(self, store):
        assert store.list("") == []
        assert store.list("packs/") == []

    @pytest.mark.usefixtures("filled")
    def test_list_never_shows_temp_files(self, store, seed):
        """What a killed writer left in tmp/ is not an object."""
        seed("tmp/.mvc-tmp.c1.1234.5678.0123abcd.tmp", b"half an object")
        assert sorted(store.list("")) == list(self.RELS)
        assert store.list("tmp/") == []
        assert sorted(store.list_sizes("")) == list(self.RELS)

    @pytest.mark.usefixtures("filled")
    def test_list_sizes_gives_the_size_of_each_path(self, store):
        """The sizes a pack index is checked against (docs/FORMAT.md, "Packs"): the same paths as list."""
        sizes = {rel: 10 + i for i, rel in enumerate(self.RELS)}
        for prefix in ["", "objects/", "objects", "packs/", "objects/zz/", "nothing/"]:
            want = {rel: n for rel, n in sizes.items() if rel.startswith(prefix.rstrip("/") + "/" if prefix else "")}
            assert store.list_sizes(prefix) == want, prefix

    @pytest.mark.usefixtures("filled")
    @pytest.mark.parametrize("few", [1, 16])
    def test_a_listing_of_many_pages(self, store, seed, monkeypatch, few):
        """A store that lists page by page (S3: a walk of the key tree once the first page is full, a directory
        of more than `few` subdirectories listed by their first characters) gives the same paths, sizes and
        times as in one page; pages made tiny here."""
        monkeypatch.setattr(f"{type(store).__module__}.LIST_PAGE", 2, raising=False)
        monkeypatch.setattr(f"{type(store).__module__}.LIST_FEW", few, raising=False)
        seed("tmp/.mvc-tmp.c1.1234.5678.0123abcd.tmp", b"half an object")
        seed("objects/ab/c3", b"")
        seed("repos/deep/er/still", b"xyz")
        sizes = {rel: 10 + i for i, rel in enumerate(self.RELS)} | {"objects/ab/c3": 0, "repos/deep/er/still": 3}
        assert store.list_sizes("") == sizes
        assert sorted(store.list("")) == sorted(sizes)
        assert store.list_sizes("objects/") == {rel: n for rel, n in sizes.items() if rel.startswith("objects/")}
        timed = store.list_times("")
        assert {rel: size for rel, (size, _) in timed.items()} == sizes
        if any(when is not None for _, when in timed.values()):  # a store that dates files dates them all
            assert all(abs(when - time.time()) < 3600 for _, when in timed.values())

    def test_list_sizes_of_an_empty_store_and_an_empty_object(self, store, seed):
        assert store.list_sizes("packs/") == {}
        seed("packs/p.pack", b"")
        assert store.list_sizes("packs/") == {"packs/p.pack": 0}


class NamesTests:
    """names() gives the names directly below the store's root, files and directories alike: what tells an
    mvc store without a marker (objects, packs, tmp) from a location holding other things."""

    def test_names_of_an_empty_store(self, store):
        assert store.names() == set()

    def test_names_below_the_root(self, store, seed):
        for rel in ("mvc.toml", "objects/ab/c1", "packs/p.idx", "tmp/.mvc-tmp.x.1.2.0123abcd.tmp", "notes.txt"):
            seed(rel, b"x")
        assert store.names() == {"mvc.toml", "objects", "packs", "tmp", "notes.txt"}

    def test_names_of_a_missing_store(self, missing_store):
        if self.lists_missing_as_empty:  # type: ignore[attr-defined]  # the fixture class says
            assert missing_store.names() == set()
            return
        with pytest.raises(RemoteNotFound) as e:
            missing_store.names()
        assert "does not exist" in one_line(e.value)


class ExistsTests:
    """exists tells whether an object is there; on a store that does not exist it is False (a push then
    makes the store, or says it is missing)."""

    def test_exists(self, store, seed):
        seed("objects/ab/cdef", b"x")
        seed("objects/ab/empty", b"")
        assert store.exists("objects/ab/cdef")
        assert store.exists("objects/ab/empty")
        assert not store.exists("objects/ab/cdee")
        assert not store.exists("objects/zz/cdef")

    def test_exists_on_a_missing_store(self, missing_store):
        assert not missing_store.exists("objects/ab/cdef")
        assert missing_store.exist(["objects/ab/cdef"] * 20) == set()

    def test_exist_answers_as_exists_does_for_many_names_at_once(self, store, seed):
        """exist(rels): a directory asked about many of its names may be listed once; the answer is the same."""
        there = [f"objects/ab/{i:04x}" for i in range(0, 40, 2)] + ["objects/cd/0001", "packs/p.idx"]
        for rel in there:
            seed(rel, b"x")
        asked = [f"objects/ab/{i:04x}" for i in range(40)] + ["objects/cd/0001", "objects/cd/0002", "objects/zz/0001"]
        asked += [f"objects/ee/{i:04x}" for i in range(30)] + ["packs/p.idx", "packs/q.idx"]  # a directory not there
        assert store.exist(asked) == {rel for rel in asked if store.exists(rel)} == set(there)
        assert store.exist([]) == set()


class DeleteTests:
    """delete removes one object; deleting one that is not there is no error, as on S3."""

    def test_delete_removes_the_object_only(self, store, seed):
        seed("objects/ab/cdef", b"x")
        seed("objects/ab/cdee", b"y")
        store.delete("objects/ab/cdef")
        assert not store.exists("objects/ab/cdef")
        assert store.list("") == ["objects/ab/cdee"]
        with pytest.raises(RemoteObjectMissing):
            store.get_range("objects/ab/cdef", 0, 1)

    def test_delete_of_a_missing_object(self, store, seed):
        seed("objects/ab/cdee", b"y")
        store.delete("objects/ab/cdef")
        store.delete("objects/zz/cdef")
        assert store.list("") == ["objects/ab/cdee"]


# -- errors ------------------------------------------------------------------------------------------
class ErrorTests:
    """A missing object is RemoteObjectMissing; a missing directory or bucket is RemoteNotFound (for a
    listing, only where a push cannot make it); every error is an MvcError of one line."""

    def test_a_missing_store(self, missing_store, tmp_path):
        for read in (
            lambda: missing_store.get_file("objects/ab/cdef", str(tmp_path / "dest")),
            lambda: missing_store.get_range("packs/p.idx", 0, 100),
        ):
            with pytest.raises(RemoteNotFound) as e:
                read()
            assert "does not exist" in one_line(e.value)
        assert not (tmp_path / "dest").exists()

    def test_listing_a_missing_store(self, missing_store):
        if self.lists_missing_as_empty:  # type: ignore[attr-defined]  # the fixture class says
            assert missing_store.list("packs/") == []
            return
        with pytest.raises(RemoteNotFound) as e:
            missing_store.list("packs/")
        assert "does not exist" in one_line(e.value)


class UnreachableTests:
    """A server that does not answer is RemoteUnreachable, in one line. (S3's is tested by
    tests/remote_suite.py, where botocore's retries are paid once, not here.)"""

    def test_an_unreachable_store(self, unreachable_store, tmp_path):
        for read in (
            lambda: unreachable_store.get_file("objects/ab/cdef", str(tmp_path / "dest")),
            lambda: unreachable_store.get_range("packs/p.idx", 0, 100),
            lambda: unreachable_store.list("packs/"),
        ):
            with pytest.raises(RemoteUnreachable) as e:
                read()
            assert "cannot reach" in one_line(e.value)


class ReadOnlyTests:
    """A read-only store (http://) refuses every write with RemoteReadOnly, before reading or sending
    anything, and changes nothing."""

    def test_writes_are_refused(self, store, seed, tmp_path):
        seed("objects/ab/cdef", b"x")
        check = Recorder()
        for write in (
            lambda: store.put_file(source(tmp_path, b"data"), "objects/ab/0000", check),
            lambda: store.put_bytes("packs/p.pack", b"data"),
            lambda: store.delete("objects/ab/cdef"),
        ):
            with pytest.raises(RemoteReadOnly) as e:
                write()
            assert "read-only" in one_line(e.value)
        assert check.seen == []
        assert store.list("") == ["objects/ab/cdef"]

    def test_a_read_only_store_says_so(self, store):
        assert store.read_only


class LocalDiskTests:
    """A store on this machine's file system: a full disk or a refused write names the remote and the
    object the user knows (never a temp file, never "None") and a fix that applies; a full disk on the
    download's side is this machine's, not the remote's.

    The one simulated failure of the suite: a real full disk cannot be made hermetically in-process, so
    the kernel's error is raised from os.write (and os.open) for files below one directory only."""

    def test_full_disk_and_refused_writes_name_the_remote_object(self, store, seed, tmp_path, monkeypatch):
        failing = {"below": "", "errno": 0}
        real_write, real_open = os.write, os.open

        def hit(path) -> bool:
            return bool(failing["below"]) and isinstance(path, str) and path.startswith(failing["below"])

        def write(fd: int, data) -> int:
            if hit(os.readlink(f"/proc/self/fd/{fd}")) and failing["errno"] in (errno.ENOSPC, errno.EDQUOT):
                raise OSError(failing["errno"], os.strerror(failing["errno"]))  # as the kernel: no file name
            return real_write(fd, data)

        def open_(path, flags, *args, **kw) -> int:
            if hit(os.path.abspath(os.fspath(path))) and failing["errno"] == errno.EACCES and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)  # names the temp file
            return real_open(path, flags, *args, **kw)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "open", open_)
        src = source(tmp_path, data_of(3000))
        rel = "objects/ab/cdef0123"
        for code, cls, words in (
            (errno.ENOSPC, RemoteError, ("no space left writing to remote", "free space there")),
            (errno.EDQUOT, RemoteError, ("no space left writing to remote", "free space there")),
            (errno.EACCES, RemoteAuthError, ("permission denied writing to remote",)),
        ):
            failing.update(below=store.root, errno=code)
            for put in (lambda: store.put_file(src, rel, Recorder()), lambda: store.put_bytes(rel, b"data")):
                with pytest.raises(cls) as e:
                    put()
                line = one_line(e.value)
                for word in (*words, store.url, rel):
                    assert word in line, line
                assert "tmp" not in line.replace(str(tmp_path), "") and "None" not in line, line
            failing.update(below="")
            assert store.list("") == [] and os.listdir(os.path.join(store.root, "tmp")) == []

        seed(rel, b"data")
        local = tmp_path / "cache"
        local.mkdir()
        failing.update(below=str(local), errno=errno.ENOSPC)
        with pytest.raises(StorageError) as e:  # this machine's disk, not the remote's
            store.get_file(rel, str(local / ".dest.tmp"))
        line = one_line(e.value)
        assert "no space left writing" in line and str(local) in line and "remote" not in line, line
