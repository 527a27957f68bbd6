"""Reading chunked objects without a clone (docs/FORMAT.md, "Chunked objects"): ``mvc get --repo BARE PATH -o OUT``
and ``mvc.open(PATH, repo=BARE)`` (read to the end, seek around, ``read_bytes``) of a version stored as chunks
and of one stored as deltas against it, from a directory remote and from S3 (moto on 127.0.0.1), and what a
damaged chunk or delta does to each read.

One source repository per module, as tests/test_read_url.py builds its own: v1 (a safetensors model of 12 MiB,
tagged v1) and v2 (a fine-tune of it, tagged v2) pushed to a directory store with CHUNK_FROM lowered to 1 MiB
(reading does not depend on it), cloned bare. S3 tests mirror the store into a bucket of their own (the
moto server is reset before each). Every test has its own user cache.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import test_read_url as base
from conftest import Cli, git
from remote_suite import fine_tune, model_tensors, recipe_rel, write_model
from test_read_url import BUCKET, PREFIX, cached_objects, leftovers, oid_of

import mvc
from mvc.errors import CorruptObject
from mvc.objects import delta, pack
from mvc.objects import recipe as rc

PATH = "model.safetensors"


def build(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> SimpleNamespace:
    top = tmp_path_factory.mktemp("chunked-world")
    src, store = top / "src", top / "store"
    src.mkdir()
    cli = Cli()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(src)
        mp.setenv("MVC_CACHE_DIR", str(top / "build-cache"))
        mp.setattr("mvc.objects.chunked.CHUNK_FROM", 1 << 20)
        git(src, "init", "-q")
        mvc.init(str(src))
        cli("remote", "add", "store", str(store), "--default")
        cli("remote", "add", "s3", f"s3://{BUCKET}/{PREFIX}")
        cli("remote", "modify", "s3", "endpoint_url", s3_server)
        tensors = model_tensors(70, n=3, elements=2 << 20)  # 12 MiB: two of a stream's 8 MiB reads
        v1 = write_model(src / PATH, tensors, meta={"epoch": "1"})
        cli("add", PATH)
        git(src, "add", "-A")
        git(src, "commit", "-q", "-m", "v1")
        git(src, "tag", "v1")
        cli("push")
        v2 = write_model(src / PATH, fine_tune(tensors, 71), meta={"epoch": "2"})
        cli("add", PATH)
        git(src, "commit", "-q", "-m", "v2")
        git(src, "tag", "v2")
        cli("push")
    r1 = rc.parse((store / recipe_rel(oid_of(v1))).read_bytes(), "v1", oid_of(v1))
    r2 = rc.parse((store / recipe_rel(oid_of(v2))).read_bytes(), "v2", oid_of(v2))
    assert {e.kind for e in r1.entries} == {"c"} and "d" in {e.kind for e in r2.entries}
    assert not (store / "objects").exists()  # nothing stored whole: every read below rebuilds
    bare = top / "bare.git"
    git(top, "clone", "-q", "--bare", str(src), str(bare))
    git(bare, "config", "uploadpack.allowFilter", "true")
    return SimpleNamespace(top=top, src=src, store=store, bare=bare, v1=v1, v2=v2, recipes={"v1": r1, "v2": r2})


world = pytest.fixture(scope="module")(build)
user_cache = pytest.fixture(autouse=True, name="user_cache")(base.own_user_cache)
loopback_only = pytest.fixture(autouse=True, name="loopback_only")(base.only_loopback)


def mirror(endpoint: str, store: Path) -> None:
    """The bucket the repository's s3 remote names, holding what the directory store holds."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    for p in store.rglob("*"):
        rel = p.relative_to(store).as_posix()
        if p.is_file() and not rel.startswith("tmp/"):
            s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{rel}", Body=p.read_bytes())


def remote_for(request, world, store: str, directory: Path | None = None) -> str | None:
    """The remote a read names: None (the repository's default, the directory store), a directory, or the
    repository's s3 remote (by name) after mirroring the directory into it."""
    if store == "s3":
        mirror(request.getfixturevalue("s3_endpoint"), directory or world.store)
        return "s3"
    return None if directory is None else str(directory)


def remote_args(remote: str | None) -> tuple[str, ...]:
    return () if remote is None else ("--remote", remote)


STORES = ["directory", "s3"]
VERSIONS = ["v1", "v2"]  # chunks; deltas against v1


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("version", VERSIONS)
def test_get_by_url(world, mvc_cli, user_cache, tmp_path, request, store, version):
    remote = remote_for(request, world, store)
    out = tmp_path / "out.safetensors"
    r = mvc_cli("get", "--repo", str(world.bare), PATH, "--rev", version, "-o", str(out), *remote_args(remote))
    assert r.stdout.startswith(f"wrote {out} ("), r.stdout
    assert out.read_bytes() == getattr(world, version)
    assert cached_objects(user_cache) == []  # no copy kept without --cache
    assert leftovers(tmp_path, {"here", "user-cache", "out.safetensors"}) == []


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("version", VERSIONS)
def test_open_reads_seeks_and_read_bytes(world, tmp_path, request, store, version):
    remote = remote_for(request, world, store)
    data = getattr(world, version)
    url = str(world.bare)
    with mvc.open(PATH, repo=url, rev=version, remote=remote) as f:
        assert f.readable() and f.seekable()
        assert f.read() == data and f.tell() == len(data)
        rng = random.Random(version)
        spots = [(0, 8), ((8 << 20) - 5, 10), (len(data) - 3, 3), (len(data) - 1, 10), (len(data), 5)]
        spots += [(rng.randrange(len(data)), rng.randrange(1, 400_000)) for _ in range(12)]
        for start, n in spots:  # forwards, backwards, across entries, across the stream's 8 MiB reads
            f.seek(start)
            assert f.read(n) == data[start : start + n], (start, n)
            assert f.tell() == min(start + n, len(data))
        f.seek(-10, io.SEEK_END)
        assert f.read() == data[-10:]
        f.seek(0)
        n = int.from_bytes(f.read(8), "little")  # what a safetensors loader does first
        assert json.loads(f.read(n))["__metadata__"] == {"epoch": version[1:]}
        f.seek(5, io.SEEK_CUR)
        assert f.read(4) == data[8 + n + 5 : 8 + n + 9]
    with mvc.open(PATH, repo=url, rev=version, remote=remote) as f:
        parts = []
        while piece := f.read(777_777):
            parts.append(piece)
        assert b"".join(parts) == data
    assert mvc.read_bytes(PATH, repo=url, rev=version, remote=remote) == data


def damage(world, tmp_path: Path, version: str) -> tuple[Path, rc.Entry]:
    """A copy of the store in which the last chunk (v1) or the last delta (v2) of version has a flipped byte."""
    copy = tmp_path / "damaged-store"
    shutil.copytree(world.store, copy)
    kind = "c" if version == "v1" else "d"
    victim = [e for e in world.recipes[version].entries if e.kind == kind][-1]
    path = copy / pack.pack_rel(victim.pack)
    data = bytearray(path.read_bytes())
    data[victim.offset + victim.stored // 2] ^= 0x40
    path.unlink()
    path.write_bytes(bytes(data))
    return copy, victim


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("version", VERSIONS)
def test_damaged_chunk_or_delta_is_refused(world, mvc_error, user_cache, tmp_path, request, store, version):
    """A flipped byte in the last chunk (v1) or the last delta (v2): get fails with one line naming the pack and
    writes no OUT; a stream serves the bytes before it and raises before it returns any byte of it."""
    copy, victim = damage(world, tmp_path, version)
    remote = remote_for(request, world, store, copy)
    out = tmp_path / "out.safetensors"
    args = ("get", "--repo", str(world.bare), PATH, "--rev", version, "-o", str(out), *remote_args(remote))
    mvc_error(*args, words=(pack.pack_rel(victim.pack), "corrupt"))
    assert not out.exists()
    assert leftovers(tmp_path, {"here", "user-cache", "damaged-store"}) == []
    mvc_error(*args, "--cache", words=(pack.pack_rel(victim.pack),))
    assert not out.exists() and oid_of(getattr(world, version))[7:] not in cached_objects(user_cache)
    assert leftovers(tmp_path, {"here", "user-cache", "damaged-store"}) == []

    got = 0
    stream = mvc.open(PATH, repo=str(world.bare), rev=version, remote=remote)
    with stream as f, pytest.raises(CorruptObject, match=pack.pack_rel(victim.pack)):
        while piece := f.read(1 << 20):
            got += len(piece)
    assert 0 < got <= victim.at  # the bytes before the damaged entry's read, none of it or after it
    with pytest.raises(CorruptObject):
        mvc.read_bytes(PATH, repo=str(world.bare), rev=version, remote=remote)


def test_a_recipe_of_another_object_is_refused(world, tmp_path):
    """v1's recipe copied over v2's: the same size, sound chunks, the wrong bytes (the stream's hash of the
    whole object refuses it before the last byte); a recipe with another size is refused at once."""
    copy = tmp_path / "swapped"
    shutil.copytree(world.store, copy)
    rel2 = copy / recipe_rel(oid_of(world.v2))
    rel2.unlink()
    shutil.copy(copy / recipe_rel(oid_of(world.v1)), rel2)
    stream = mvc.open(PATH, repo=str(world.bare), rev="v2", remote=str(copy))
    with stream as f, pytest.raises(CorruptObject):
        f.read()
    r1 = world.recipes["v1"]
    shorter = rc.render(r1.size - r1.entries[-1].size, r1.bases, r1.entries[:-1])
    rel2.unlink()
    rel2.write_bytes(shorter)
    with pytest.raises(CorruptObject):  # refused by its size line, before a byte is read
        mvc.open(PATH, repo=str(world.bare), rev="v2", remote=str(copy)).close()
    out = tmp_path / "out"
    with pytest.raises(CorruptObject):
        mvc.get(PATH, out, repo=str(world.bare), rev="v2", remote=str(copy))
    assert not out.exists()


def test_a_cycle_of_deltas_is_refused(world, mvc_error, tmp_path):
    """v1's chunk list replaced by one whose deltas are based on v2, whose own are based on v1: the read of
    either stops at the cycle with one line that says so, and writes nothing."""
    copy = tmp_path / "cycle"
    shutil.copytree(world.store, copy)
    v1, v2 = oid_of(world.v1), oid_of(world.v2)
    text = (copy / recipe_rel(v2)).read_bytes().replace(v1.encode(), v2.encode())
    (copy / recipe_rel(v1)).chmod(0o644)
    (copy / recipe_rel(v1)).write_bytes(text)
    for whole in (copy / pack.pack_rel(v1.split(":")[1]), copy / pack.index_rel(v1.split(":")[1])):
        whole.unlink(missing_ok=True)  # (v1's chunks, one pack in file order: v1 itself, read so first)
    for version in ("v1", "v2"):
        out = tmp_path / f"{version}.out"
        line = mvc_error(
            "get", "--repo", str(world.bare), PATH, "--rev", version, "--remote", str(copy), "-o", str(out)
        )
        assert "cycle" in line and "push --verify-remote" in line, line
        assert not out.exists()


def test_a_cached_base_serves_a_delta_version(world, mvc_cli, user_cache, tmp_path):
    """With --cache, v1 kept in the user cache is the base v2's deltas are decoded against: v2 reads even once v1
    is gone from the remote."""
    copy = tmp_path / "store-copy"
    shutil.copytree(world.store, copy)
    read = ("get", "--repo", str(world.bare), PATH, "--remote", str(copy), "--cache")
    mvc_cli(*read, "--rev", "v1", "-o", str(tmp_path / "a"))
    assert cached_objects(user_cache) == [oid_of(world.v1)[7:]]
    (copy / recipe_rel(oid_of(world.v1))).unlink()
    out = tmp_path / "b"
    mvc_cli(*read, "--rev", "v2", "-o", str(out))
    assert out.read_bytes() == world.v2


@pytest.mark.parametrize("compiled", [False, True])
def test_deltas_are_read_without_numpy(world, tmp_path, compiled):
    """Reading needs no numpy (mvc[deltas] is for writers): the pure-int decoder gives the same bytes, and so
    does the compiled one (mvc.objects._patch, built at install where a C compiler was at hand), which spares a
    get numpy's import."""
    if compiled and delta._native() is None:
        pytest.skip("mvc.objects._patch was not compiled at install")
    blocked = "'numpy'" if compiled else "'numpy', 'mvc.objects._patch'"
    script = (
        f"import sys; sys.modules.update(dict.fromkeys([{blocked}])); from mvc.objects import delta; "
        f"assert not delta.fast() and (delta._native() is not None) == {compiled}; "
        "from mvc.cli import main; sys.argv[0] = 'mvc'; main()"
    )
    out = tmp_path / "out.safetensors"
    proc = subprocess.run(
        [sys.executable, "-c", script, "get", "--repo", str(world.bare), PATH, "--rev", "v2", "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == world.v2
