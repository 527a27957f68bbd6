"""What a read without a clone gives back, byte by byte: the Python API (``mvc.open``, a verified stream:
read, read(n), seek, tell; ``read_bytes``, ``get``, ``describe``, ``materialize``), by URL and in a clone,
and every read of an object whose bytes are wrong on the remote (flipped, cut short; alone or in a pack; on
a directory or on S3). The repositories and stores are built as tests/test_read_url.py builds them (one
source repository per module, pushed to a directory store, cloned bare; S3 on moto at 127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import test_read_url as base
import xxhash
from conftest import git
from hypothesis import given
from hypothesis import strategies as st
from test_read_url import BIG, BUCKET, PREFIX, cached_objects, executables, files_under, leftovers, moved_away, oid_of

import mvc
from mvc.errors import CorruptObject, RemoteCorrupt
from mvc.objects import layout
from mvc.objects import oid as oids
from mvc.objects.reader import ReadAhead

world = pytest.fixture(scope="module")(base.build_world)
user_cache = pytest.fixture(autouse=True, name="user_cache")(base.own_user_cache)
loopback_only = pytest.fixture(autouse=True, name="loopback_only")(base.only_loopback)
s3_store, store_file = base.s3_store, base.store_file


# -- the Python API ----------------------------------------------------------------------------------
def test_open_reads_seeks_and_tells(world):
    url = str(world.bare)
    with mvc.open("churn#prod", repo=url) as f:
        assert f.readable() and f.seekable()
        assert f.read() == world.v1
        assert f.tell() == len(world.v1)
    with mvc.open("churn#prod", repo=url) as f:
        parts = []
        while chunk := f.read(7777):
            parts.append(chunk)
        assert b"".join(parts) == world.v1
    with mvc.open("model.bin", repo=url) as f:
        f.seek(1000)
        assert f.read(500) == world.v2[1000:1500] and f.tell() == 1500
        f.seek(-10, os.SEEK_END)
        assert f.read() == world.v2[-10:]
        f.seek(0)
        assert f.read(3) == world.v2[:3]
        f.seek(5, os.SEEK_CUR)
        assert f.read(4) == world.v2[8:12]
    assert mvc.read_bytes("churn@latest", repo=url) == world.v2
    assert mvc.read_bytes("model.bin", repo=url, rev="churn@v0.0.1") == world.v1


def test_open_a_big_object_in_ranges(world):
    """An object of more than two of the stream's reads: skipping ahead, back, and across a read boundary."""
    with mvc.open("big.bin", repo=str(world.bare)) as f:
        for start, n in [((8 << 20) - 5, 10), (BIG - 3, 3), (7, 100), ((16 << 20) + 1, 1 << 20)]:
            f.seek(start)
            assert f.read(n) == world.big[start : start + n], start
        f.seek(0)
        assert f.read() == world.big


def test_open_from_s3(world, s3_endpoint):
    s3_store(s3_endpoint, world.store, big=True)
    url = str(world.bare)
    with mvc.open("churn#prod", repo=url, remote="s3") as f:
        f.seek(100)
        assert f.read(50) == world.v1[100:150]
        f.seek(0)
        assert f.read() == world.v1
    with mvc.open("big.bin", repo=url, remote="s3") as f:
        f.seek((8 << 20) - 2)
        assert f.read(4) == world.big[(8 << 20) - 2 : (8 << 20) + 2]
        f.seek(0)
        assert f.read() == world.big


def test_open_a_directory_is_refused(world):
    with pytest.raises(mvc.errors.PathError, match="directory"):
        mvc.open("data", repo=str(world.bare))


def test_get_and_describe(world, tmp_path):
    url = str(world.bare)
    v1_commit = git(world.src, "rev-parse", "churn@v0.0.1^{commit}").strip()
    r = mvc.get("churn#prod", tmp_path / "m.bin", repo=url)
    assert (tmp_path / "m.bin").read_bytes() == world.v1
    assert r["out"] == str(tmp_path / "m.bin") and r["oid"] == oid_of(world.v1) and r["kind"] == "file"
    d = mvc.describe("churn#prod", repo=url)
    assert d["path"] == "model.bin" and d["kind"] == "file" and d["oid"] == oid_of(world.v1)
    assert d["size"] == len(world.v1) and d["meta"] == {"accuracy": 0.8} and d["commit"] == v1_commit
    assert d["repo"] == url
    d = mvc.describe("data", repo=url, rev="main")
    assert d["kind"] == "dir" and d["size"] == sum(len(b) for b in world.data.values())
    assert not list(tmp_path.joinpath("here").iterdir())  # describe reads no weights
    assert cached_objects(tmp_path / "user-cache") == []


def test_describe_in_a_clone_names_the_commit_not_the_revision_typed(world):
    """As by URL: "commit" is the commit's id, whatever named it (HEAD, a branch, a model's stage)."""
    v1_commit = git(world.src, "rev-parse", "churn@v0.0.1^{commit}").strip()
    head = git(world.src, "rev-parse", "HEAD").strip()
    d = mvc.describe("churn#prod", repo=mvc.Repo(str(world.src)))
    assert d["commit"] == v1_commit and d["rev"] == "churn#prod", d
    assert mvc.describe("model.bin", repo=mvc.Repo(str(world.src)), rev="HEAD")["commit"] == head


def test_materialize_once(world, user_cache):
    url = str(world.bare)
    path = Path(mvc.materialize("churn#prod", repo=url))
    assert path.read_bytes() == world.v1
    assert path.name == "model.bin" and user_cache in path.parents
    d = Path(mvc.materialize("data", repo=url))
    assert files_under(d) == world.data and executables(d) == {"run.sh"}
    # served again and never checked again: read-only, so a loader that writes by mistake is refused
    assert all(not p.stat().st_mode & 0o222 for p in [path, *(f for f in d.rglob("*") if f.is_file())])
    with moved_away(world.store):  # the second time, nothing is read from the remote
        assert Path(mvc.materialize("churn#prod", repo=url)) == path
        assert Path(mvc.materialize("churn@v0.0.1", repo=url)) == path
        assert Path(mvc.materialize("data", repo=url)) == d
    assert path.read_bytes() == world.v1


def test_gc_of_the_user_cache_keeps_what_reads_use(world, user_cache, mvc_cli):
    """mvc gc --user-cache: a materialized copy and a repository's git metadata that a read used within the
    grace period are kept (each read marks them used), older ones go with --force, read-only copies included;
    a read afterwards fetches them again."""
    url = str(world.bare)
    path = Path(mvc.materialize("churn#prod", repo=url))
    copy, repos = path.parent, next(p for p in (user_cache / "repos").iterdir() if p.is_dir())
    old = time.time() - 30 * 86400
    for p in (copy, repos):
        os.utime(p, (old, old))
    assert Path(mvc.materialize("churn#prod", repo=url)) == path  # used: both marked
    r = json.loads(mvc_cli("gc", "--user-cache", "--grace", "7d", "--force", "--json").stdout)
    assert r["entries"] == 0 and r["kept"] >= 2 and path.exists()
    data = b"weights"  # an object a get --cache kept, read long ago, in the cache mvc marked as its own
    kept = user_cache / "cache" / "objects" / oids.to_relpath(oids.from_digest(xxhash.xxh3_128_hexdigest(data)))
    kept.parent.mkdir(parents=True)
    kept.write_bytes(data)
    kept.chmod(0o444)
    (user_cache / "cache" / "mvc.toml").write_bytes(layout.marker_bytes(layout.FORMAT))
    foreign = [user_cache / "models" / "my_bert", user_cache / "repos" / "notes"]  # not named as mvc names them
    for d in foreign:
        d.mkdir(parents=True)
        os.utime(d, (old, old))
    for p in (copy, repos, kept):
        os.utime(p, (old, old))
    r = json.loads(mvc_cli("gc", "--user-cache", "--grace", "7d", "--json").stdout)
    assert r["dry_run"] and r["entries"] == 3 and path.exists() and kept.exists()  # a dry run deletes nothing
    out = mvc_cli("gc", "--user-cache", "--grace", "7d", "--force").stdout
    assert "deleted 3 from" in out and not copy.exists() and not repos.exists() and not kept.exists()
    assert all(d.exists() for d in foreign)
    assert [p.name for p in (user_cache / "models").iterdir()] == ["my_bert"]  # nothing of mvc's left aside
    assert Path(mvc.materialize("churn#prod", repo=url)).read_bytes() == world.v1


def test_gc_of_the_user_cache_leaves_a_copy_being_written_and_a_read_whose_copy_it_took_writes_again(
    world, user_cache, mvc_cli, monkeypatch
):
    """A materialize writing its copy into models/OID/ while 'mvc gc --user-cache --grace 0 --force' runs: gc
    leaves a directory holding a live writer's temp file; and a read whose directory a gc took just before its
    temp file was made writes it again, never failing with a raw error."""
    from mvc.storage import tempfiles

    url = str(world.bare)
    path = Path(mvc.materialize("churn#prod", repo=url))
    copy = path.parent
    old = time.time() - 30 * 86400
    busy = copy / Path(tempfiles.tmp_name(str(copy), "model.bin")).name  # this process's, so alive
    copy.chmod(0o755)
    busy.write_bytes(b"half a copy")
    os.utime(copy, (old, old))
    r = json.loads(mvc_cli("gc", "--user-cache", "--grace", "0", "--force", "--json").stdout)
    assert path.exists() and busy.exists() and r["kept"] >= 1
    busy.unlink()
    mvc_cli("gc", "--user-cache", "--grace", "0", "--force")
    assert not copy.exists()
    from mvc.api import read

    real, taken = read._write, []

    def gc_first(t, remote, odb, dest, *args, **kwargs):  # a gc takes models/OID/ as the copy begins
        if not taken:
            taken.append(dest)
            shutil.rmtree(os.path.dirname(dest))
        return real(t, remote, odb, dest, *args, **kwargs)

    monkeypatch.setattr(read, "_write", gc_first)
    assert Path(mvc.materialize("churn#prod", repo=url)).read_bytes() == world.v1 and taken


def test_gc_of_the_user_cache_drops_records_of_copies_gone_or_changed(world, user_cache, mvc_cli, mvc_error, tmp_path):
    """written/ remembers the directories mvc get wrote (what --force may replace): a record whose copy is gone or
    was changed since goes with gc --user-cache once older than the grace; one whose copy is as written stays."""
    url = str(world.bare)
    copies = [tmp_path / name for name in ("kept", "gone", "changed")]
    for d in copies:
        mvc_cli("get", "--repo", url, "data", "-o", str(d))
    records = sorted((user_cache / "written").glob("?" * 32))
    assert len(records) == 3
    shutil.rmtree(copies[1])
    (copies[2] / "mine.txt").write_text("my notes\n")
    old = time.time() - 30 * 86400
    for p in records:
        os.utime(p, (old, old))
    r = json.loads(mvc_cli("gc", "--user-cache", "--grace", "7d", "--json").stdout)
    assert r["dry_run"] and r["entries"] == 2 and len(list((user_cache / "written").glob("?" * 32))) == 3
    mvc_cli("gc", "--user-cache", "--grace", "7d", "--force")
    assert len(list((user_cache / "written").glob("?" * 32))) == 1
    mvc_cli("get", "--repo", url, "data", "-o", str(copies[0]), "--force")  # its record kept: still replaced
    mvc_error("get", "--repo", url, "data", "-o", str(copies[2]), "--force", words=("did not write",))
    assert (copies[2] / "mine.txt").read_text() == "my notes\n"
    fresh = tmp_path / "fresh"
    mvc_cli("get", "--repo", url, "data", "-o", str(fresh))
    shutil.rmtree(fresh)
    r = json.loads(mvc_cli("gc", "--user-cache", "--grace", "7d", "--force", "--json").stdout)
    assert r["entries"] == 0  # a record younger than the grace stays: a get may be about to put its copy there


def test_gc_of_the_user_cache_refuses_repository_options(mvc_error):
    assert "--user-cache takes only" in mvc_error("gc", "--user-cache", "--keep-last", "2")


@pytest.fixture
def clone(world, tmp_path, monkeypatch) -> Path:
    """A plain clone of the source, its cache empty, as the current directory."""
    work = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(world.src), str(work))
    monkeypatch.chdir(work)
    return work


def test_read_bytes_from_the_cache_holds_the_model_once(world, clone, mvc_cli):
    """read_bytes of a 17 MiB object from the cache fills one buffer: its peak is the model's size, not twice."""
    import tracemalloc

    mvc_cli("fetch", "big.bin")
    tracemalloc.start()
    try:
        data = mvc.read_bytes("big.bin")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data == world.big and peak < 1.4 * BIG, peak / BIG


def test_open_in_a_clone_from_the_remote_then_the_cache(world, clone, mvc_cli):
    assert mvc.read_bytes("model.bin") == world.v2  # the cache is empty: streamed from the remote
    with mvc.open("churn#prod") as f:
        assert f.read() == world.v1
    assert not list((clone / ".mvc").glob("cache/objects/*/*"))  # a stream keeps no copy
    mvc_cli("fetch", "model.bin")
    with moved_away(world.store), mvc.open("model.bin") as f:  # from the cache now
        f.seek(10)
        assert f.read(10) == world.v2[10:20]
        f.seek(0)
        assert f.read() == world.v2
    (obj,) = (clone / ".mvc").glob("cache/objects/*/*")
    obj.chmod(0o644)
    obj.unlink()
    assert mvc.read_bytes("model.bin") == world.v2  # from the remote again
    assert mvc.read_bytes("model.bin", repo=mvc.Repo(str(clone))) == world.v2


def test_a_corrupt_cache_copy_is_moved_aside_and_read_from_the_remote(world, clone, mvc_cli):
    """The cache's copy of model.bin rotted: read_bytes and load move it to quarantine/ (as get does) and read
    the remote's; a stream raises at its end, having moved it aside, so the next read is sound."""
    mvc_cli("fetch", "model.bin")
    (obj,) = (clone / ".mvc").glob("cache/objects/*/*")

    def rot() -> None:
        obj.chmod(0o644)
        data = bytearray(world.v2)
        data[len(data) // 2] ^= 1
        obj.write_bytes(bytes(data))

    rot()
    assert mvc.read_bytes("model.bin") == world.v2
    assert not obj.exists() and list((clone / ".mvc" / "cache" / "quarantine").iterdir())
    mvc_cli("fetch", "model.bin")
    rot()
    with pytest.raises(CorruptObject), mvc.open("model.bin") as f:
        f.read()
    assert not obj.exists()
    assert mvc.read_bytes("model.bin") == world.v2


def test_a_remote_that_names_nothing_is_refused_by_every_read(world, user_cache, tmp_path):
    """remote= a directory that does not exist: open, read_bytes and load say so as get and materialize do, not
    that the object is missing from it."""
    from mvc.errors import RemoteNotFound

    url, nowhere = str(world.bare), str(tmp_path / "nowhere")
    for read in (mvc.open, mvc.read_bytes, mvc.load, mvc.get, mvc.materialize):
        with pytest.raises(RemoteNotFound, match="does not exist"):
            read("model.bin", repo=url, remote=nowhere)


def test_get_in_a_clone_keeps_its_own_cache(world, clone, mvc_cli, user_cache, tmp_path):
    """Without --repo, get fills the repository's cache, never the user's."""
    mvc_cli("get", "churn#prod", "-o", str(tmp_path / "m.bin"))
    assert (tmp_path / "m.bin").read_bytes() == world.v1
    assert len(list((clone / ".mvc").glob("cache/objects/*/*"))) == 1
    assert cached_objects(user_cache) == []


def test_python_errors_are_mvc_errors(world, tmp_path):
    url = str(world.bare)
    for call in (
        lambda: mvc.read_bytes("nope#prod", repo=url),
        lambda: mvc.describe("churn#staging", repo=url),
        lambda: mvc.open("model.bin", repo=url, rev="nosuch"),
        lambda: mvc.materialize("other.bin", repo=url),
        lambda: mvc.get("model.bin", tmp_path / "x", repo=str(tmp_path / "nowhere")),
    ):
        with pytest.raises(mvc.errors.MvcError):
            call()


@pytest.mark.parametrize("store", ["directory", "s3"])
def test_empty_file(world, mvc_cli, tmp_path, request, store):
    remote = None
    if store == "s3":
        s3_store(request.getfixturevalue("s3_endpoint"), world.store)
        remote = "s3"
    out = tmp_path / "e.bin"
    mvc_cli("get", "--repo", str(world.bare), "empty.bin", "-o", str(out), *(["--remote", remote] if remote else []))
    assert out.read_bytes() == b""
    with mvc.open("empty.bin", repo=str(world.bare), remote=remote) as f:
        assert f.read() == b"" and f.tell() == 0
    assert Path(mvc.materialize("empty.bin", repo=str(world.bare), remote=remote)).read_bytes() == b""


# -- corruption --------------------------------------------------------------------------------------
def where_in(store: Path, oid: str) -> tuple[Path, int, int]:
    """(file, offset, size) of the object on the directory store: alone, or its slice of a pack."""
    from mvc.objects import pack

    alone = store_file(store, oid)
    if alone.exists():
        return alone, 0, alone.stat().st_size
    for idx in (store / "packs").glob("*.idx"):
        for e in pack.parse_index(idx.read_bytes(), str(idx)):
            if e.oid == oid:
                return idx.with_suffix(".pack"), e.offset, e.size
    raise KeyError(oid)


def damaged(world, tmp_path: Path, oid: str, how: str, at: float = 0.5) -> Path:
    """A copy of the store whose object oid has one byte flipped (at that fraction of it) or, alone, lost its end."""
    store = tmp_path / "damaged-store"
    shutil.copytree(world.store, store)
    path, offset, size = where_in(store, oid)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[offset + int(size * at)] ^= 0xFF
    else:
        assert offset == 0 and how == "truncate"
        del data[size // 2 :]
    path.write_bytes(bytes(data))
    return store


def to_s3(s3, world, store: Path) -> None:
    """The damaged files of store over the bucket's copies."""
    for p in store.rglob("*"):
        rel = p.relative_to(store).as_posix()
        if p.is_file() and rel.startswith(("objects/", "packs/")):
            orig = world.store / rel
            if not orig.exists() or orig.read_bytes() != p.read_bytes():
                s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{rel}", Body=p.read_bytes())


CASES = {  # ref -> what it reads
    "model.bin": "v2",  # alone on the store
    "churn#prod": "v1",  # in the pack with data/'s files
}


@pytest.mark.parametrize(
    ("ref", "how", "at", "store_kind"),
    [
        ("model.bin", "flip", 0.5, "directory"),
        ("model.bin", "flip", 0.99, "directory"),
        ("model.bin", "truncate", 0.5, "directory"),
        ("churn#prod", "flip", 0.5, "directory"),  # in a pack: ranged reads of the pack
        ("model.bin", "flip", 0.5, "s3"),
        ("model.bin", "truncate", 0.5, "s3"),
        ("churn#prod", "flip", 0.5, "s3"),
    ],
)
def test_stream_of_a_corrupt_object(world, tmp_path, request, ref, how, at, store_kind):
    """A stream raises CorruptObject before it returns the last byte, however it got there; what was read
    before the end is not checked (by design: a reader that stops early gets no verdict). The remote's copy:
    RemoteCorrupt, as get raises (docs/api.md), also for one cut short."""
    data = getattr(world, CASES[ref])
    store = damaged(world, tmp_path, oid_of(data), how, at)
    url, remote = str(world.bare), str(store)
    if store_kind == "s3":
        to_s3(s3_store(request.getfixturevalue("s3_endpoint"), world.store), world, store)
        remote = "s3"
    with mvc.open(ref, repo=url, remote=remote) as f, pytest.raises(RemoteCorrupt, match=r"model\.bin"):
        f.read()
    with mvc.open(ref, repo=url, remote=remote) as f, pytest.raises(RemoteCorrupt):
        while f.read(4096):
            pass
    with mvc.open(ref, repo=url, remote=remote) as f:
        f.seek(len(data) - 1)  # the middle skipped: it is read and hashed before the last byte is returned
        with pytest.raises(RemoteCorrupt):
            f.read(1)
    with mvc.open(ref, repo=url, remote=remote) as f:
        f.seek(-100, os.SEEK_END)
        with pytest.raises(RemoteCorrupt):
            f.read()
    with pytest.raises(RemoteCorrupt):
        mvc.read_bytes(ref, repo=url, remote=remote)


def test_stream_read_in_part_is_not_checked(world, tmp_path):
    """The designed limit of a verified stream: a byte flipped near the start of a big object comes back
    from a read of the first half without an error (the stream cannot know yet); the end raises."""
    store = damaged(world, tmp_path, oid_of(world.big), "flip", at=0.001)
    flipped = int(BIG * 0.001)
    with mvc.open("big.bin", repo=str(world.bare), remote=str(store)) as f:
        half = f.read(BIG // 2)
        assert len(half) == BIG // 2 and half[flipped] != world.big[flipped]
        assert half[:flipped] == world.big[:flipped]
        with pytest.raises(CorruptObject):
            f.read()
    with mvc.open("big.bin", repo=str(world.bare), remote=str(store)) as f:
        f.seek(BIG // 2)
        assert f.read(1000) == world.big[BIG // 2 : BIG // 2 + 1000]  # skipped ahead, away from the end
        f.seek(BIG - 10)
        with pytest.raises(CorruptObject):
            f.read(10)


@pytest.mark.parametrize("store_kind", ["directory", "s3"])
@pytest.mark.parametrize(
    ("ref", "how"),
    # (a pack cut short is a pack whose index no longer matches it: its objects count as missing, not corrupt)
    [("model.bin", "flip"), ("model.bin", "truncate"), ("churn#prod", "flip")],
)
def test_corrupt_object_get_fails_and_writes_nothing(world, mvc_error, tmp_path, request, store_kind, how, ref):
    data = getattr(world, CASES[ref])
    store = damaged(world, tmp_path, oid_of(data), how)
    remote = str(store)
    if store_kind == "s3":
        s3 = s3_store(request.getfixturevalue("s3_endpoint"), world.store)
        to_s3(s3, world, store)
        remote = "s3"
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    out = outdir / "m.bin"
    line = mvc_error("get", "--repo", str(world.bare), ref, "-o", str(out), "--remote", remote, words=("model.bin",))
    # (a file cut short on the remote is refused by its size before it is downloaded)
    assert "corrupt" in line or "truncated" in line or "holds 150500 bytes, but the object has 301000" in line, line
    assert list(outdir.iterdir()) == []
    out.write_bytes(b"mine")  # --force over a file: the file stays as it was
    mvc_error("get", "--repo", str(world.bare), ref, "-o", str(out), "--remote", remote, "--force")
    assert [p.name for p in outdir.iterdir()] == ["m.bin"] and out.read_bytes() == b"mine"
    with pytest.raises(RemoteCorrupt):  # the same class from every reader
        mvc.read_bytes(ref, repo=str(world.bare), remote=remote)
    with pytest.raises(RemoteCorrupt):
        mvc.materialize(ref, repo=str(world.bare), remote=remote)
    with pytest.raises(RemoteCorrupt):
        mvc.get(ref, str(out), repo=str(world.bare), remote=remote, force=True)
    assert not (tmp_path / "user-cache" / "models" / oid_of(data)).exists() or not list(
        (tmp_path / "user-cache" / "models" / oid_of(data)).iterdir()
    )


def test_corrupt_object_with_cache_is_not_kept(world, mvc_error, user_cache, tmp_path):
    store = damaged(world, tmp_path, oid_of(world.v2), "flip")
    out = tmp_path / "m.bin"
    mvc_error("get", "--repo", str(world.bare), "model.bin", "-o", str(out), "--remote", str(store), "--cache")
    assert not out.exists() and oid_of(world.v2)[7:] not in cached_objects(user_cache)
    mvc.get("model.bin", out, repo=str(world.bare), cache=True)  # the good remote: a good copy
    assert out.read_bytes() == world.v2


@pytest.mark.parametrize("cache", [False, True])
def test_corrupt_file_in_a_directory(world, mvc_error, user_cache, tmp_path, cache):
    name = "part-03.bin"
    store = damaged(world, tmp_path, oid_of(world.data[name]), "flip")
    out = tmp_path / "d"
    args = ("get", "--repo", str(world.bare), "data", "-o", str(out), "--remote", str(store))
    line = mvc_error(*args, *(["--cache"] if cache else []), words=(f"data/{name}",))
    assert "corrupt" in line, line
    assert not out.exists() and leftovers(tmp_path, {"here", "user-cache", "damaged-store"}) == []
    assert oid_of(world.data[name])[7:] not in cached_objects(user_cache)


# -- the read-ahead under a stream from a remote ------------------------------------------------------
@given(
    size=st.integers(0, 300),
    reads=st.lists(st.tuples(st.integers(0, 320), st.integers(0, 80)), max_size=20),
    chunk=st.integers(1, 64),
    depth=st.integers(1, 4),
)
def test_read_ahead_returns_what_a_direct_read_would(size, reads, chunk, depth):
    """Any pattern of reads (forward, backward, past the end) gets exactly the bytes of the object, however
    the chunks and the fetches ahead fall."""
    data = bytes(i % 251 for i in range(size))
    ahead = ReadAhead(lambda a, b: data[a:b], size, chunk=chunk, depth=depth)
    try:
        for start, n in reads:
            assert ahead(start, start + n) == data[start : start + n]
    finally:
        ahead.close()
