"""``mvc verify -r REMOTE --repair`` mends the remote (mvc.objects.mend): a damaged copy there of an object the
cache holds sound is rewritten from the cache, an object stored alone, a lone pack, or a pack of small objects
made again from its index; what cannot be made again (the cache lacks a pack's other objects, a chunked object)
is named with the reason and the way to fix it by hand. Directory remotes and S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git

from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.storage import fileio


def track(repo: Path, mvc_cli, files: dict[str, bytes]) -> dict[str, str]:
    """The files written, added and committed; {name: oid}."""
    for name, data in files.items():
        (repo / name).write_bytes(data)
    mvc_cli("add", *files, "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    return {name: oids.from_digest(fileio.hexdigest_bytes(data)) for name, data in files.items()}


def flip(path: Path, at: int | None = None) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 1
    path.write_bytes(bytes(data))


def verify(mvc_cli, *args: str, ok: bool = True):
    result = mvc_cli("verify", "-r", "origin", "--json", "-q", *args, ok=ok)
    return result, json.loads(result.stdout)


def test_an_object_stored_alone_is_rewritten_from_the_cache(repo, mvc_cli, tmp_path):
    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    oid = track(repo, mvc_cli, {"m.bin": b"weights " * 4000})["m.bin"]
    mvc_cli("push", "-q")
    target = store / "objects" / oids.to_relpath(oid)
    flip(target)
    result = mvc_cli("verify", "-r", "origin", "-q", ok=False)
    assert "corrupt on remote" in result.stdout and "mvc verify -r origin --repair" in result.stderr
    result, r = verify(mvc_cli, "--repair")
    assert result.exit_code == 0
    assert [(p["problem"], p["repaired"], p["remote_file"]) for p in r["problems"]] == [
        ("corrupt on remote", True, "objects/" + oids.to_relpath(oid))
    ]
    assert oids.from_digest(fileio.hexdigest_bytes(target.read_bytes())) == oid
    assert verify(mvc_cli)[1]["problems"] == []
    flip(target)
    text = mvc_cli("verify", "-r", "origin", "--repair", "-q").stdout
    assert "rewritten there from the cache: objects/" in text and "every version checked can be read back" in text


def test_a_pack_of_small_objects_is_made_again_from_its_index(repo, mvc_cli, tmp_path):
    """Twenty small files go up in one pack; a flipped byte in it is mended by making the pack again from the
    cache's copies of all twenty, which hashes to the pack's name; every file then reads back."""
    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    files = {f"f{i:02}.bin": f"small file {i} ".encode() * (50 + i) for i in range(20)}
    track(repo, mvc_cli, files)
    mvc_cli("push", "-q")
    packs = list((store / "packs").glob("*.pack"))
    assert len(packs) == 1
    flip(packs[0])
    _, r = verify(mvc_cli, "--repair")
    assert r["problems"] and all(p["repaired"] for p in r["problems"])
    assert {p["remote_file"] for p in r["problems"]} == {pk.pack_rel(packs[0].stem)}
    assert fileio.hexdigest_bytes(packs[0].read_bytes()) == packs[0].stem
    assert verify(mvc_cli)[1]["problems"] == []


def test_a_pack_the_cache_cannot_make_again_is_named_with_the_fix(repo, mvc_cli, tmp_path):
    """The cache lacks one of the pack's objects (its pointer was dropped since): the pack is left as it is, the
    problem says why, and the hint says how to mend it by hand."""
    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    files = {f"f{i:02}.bin": f"small file {i} ".encode() * (50 + i) for i in range(20)}
    names = track(repo, mvc_cli, files)
    mvc_cli("push", "-q")
    gone = names["f19.bin"]
    git(repo, "rm", "-q", "f19.bin.mvc")
    git(repo, "commit", "-q", "-m", "drop f19")
    (repo / ".mvc" / "cache" / "objects" / oids.to_relpath(gone)).unlink()
    mvc_cli("gc", "--grace", "0", "--force", "-q", "--rev", "HEAD")  # (the cache forgets it wherever it was)
    pack = next((store / "packs").glob("*.pack"))
    flip(pack)
    result, r = verify(mvc_cli, "--repair", "--rev", "HEAD", ok=False)
    assert result.exit_code == 1
    assert r["problems"] and all(not p["repaired"] for p in r["problems"])
    assert all(p["remote_file"].startswith("not rewritten: the cache lacks") for p in r["problems"])
    assert "push --verify-remote" in result.stderr
    assert fileio.hexdigest_bytes(pack.read_bytes()) != pack.stem  # left as it was


def test_an_object_on_s3_is_rewritten_from_the_cache(repo, mvc_cli, s3_endpoint):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="mend")
    mvc_cli("remote", "add", "origin", "s3://mend/p", "--default")
    mvc_cli("remote", "modify", "origin", "endpoint_url", s3_endpoint)
    data = b"s3 weights " * 3000
    oid = track(repo, mvc_cli, {"m.bin": data})["m.bin"]
    mvc_cli("push", "-q")
    key = "p/objects/" + oids.to_relpath(oid)
    s3.put_object(Bucket="mend", Key=key, Body=b"damaged")
    assert [p["problem"] for p in verify(mvc_cli, ok=False)[1]["problems"]] == ["corrupt on remote"]
    _, r = verify(mvc_cli, "--repair")
    assert [(p["repaired"], p["remote_file"]) for p in r["problems"]] == [(True, "objects/" + oids.to_relpath(oid))]
    assert s3.get_object(Bucket="mend", Key=key)["Body"].read() == data


def test_a_chunked_object_is_published_whole_as_its_lone_pack(repo, mvc_cli, tmp_path, monkeypatch):
    """A file stored as chunks, one of them damaged: its chunks cannot be made again from the cache (which keeps
    whole files), so the file goes whole as its lone pack, which readers take before its recipe."""
    from mvc.objects import pack

    monkeypatch.setattr("mvc.objects.chunked.CHUNK_FROM", 1 << 20)
    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    data = bytes(range(256)) * (12 << 10)  # 3 MiB
    oid = track(repo, mvc_cli, {"big.bin": data})["big.bin"]
    mvc_cli("push", "-q")
    assert list((store / "recipes").rglob("*")) and not (store / "objects").exists()
    whole = store / pack.whole_rel(oid)
    chunk_packs = [p for p in (store / "packs").glob("*.pack") if p != whole]
    whole.unlink(missing_ok=True)  # (a lone pack, if the push wrote one: the chunks are what is read then)
    flip(chunk_packs[0])
    assert [p["problem"] for p in verify(mvc_cli, ok=False)[1]["problems"]] == ["corrupt on remote"]
    _, r = verify(mvc_cli, "--repair")
    assert [(p["repaired"], p["remote_file"]) for p in r["problems"]] == [(True, pack.whole_rel(oid))]
    assert whole.read_bytes() == data
    assert verify(mvc_cli)[1]["problems"] == []  # read back from the remote: whole, from its lone pack


def test_a_remote_that_refuses_writes_gets_a_report_not_an_abort(repo, mvc_cli, tmp_path, monkeypatch):
    """verify -r origin --repair by a user who may read the remote but not write it: the damaged copy is named,
    with why it was not rewritten, in the report; nothing else stops."""
    from mvc.storage.directory import DirStore

    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    oid = track(repo, mvc_cli, {"m.bin": b"weights " * 4000, "n.bin": b"other " * 5000})["m.bin"]
    mvc_cli("push", "-q")
    flip(store / "objects" / oids.to_relpath(oid))

    def refused(self, src, rel, check, progress=None):
        with self._errors(rel, writing=True):
            raise PermissionError(13, "Permission denied", str(self._full(rel)))

    monkeypatch.setattr(DirStore, "put_file", refused)
    result, r = verify(mvc_cli, "--repair", ok=False)
    assert result.exit_code == 1
    [p] = r["problems"]
    assert not p["repaired"] and p["remote_file"].startswith("not rewritten: permission denied"), p


def test_a_version_the_cache_holds_compacted_is_rewritten_and_stays_compacted(repo, mvc_cli, tmp_path):
    from remote_suite import fine_tune, model_tensors, write_model

    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    mvc_cli("remote", "modify", "origin", "chunks", "false")  # large objects stored alone: objects/xx/...
    tensors = model_tensors(11, n=3, elements=1 << 20)
    first = write_model(repo / "model.safetensors", tensors)
    mvc_cli("add", "model.safetensors", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v0")
    commit0 = git(repo, "rev-parse", "HEAD").strip()
    write_model(repo / "model.safetensors", fine_tune(tensors, 12, share=0.02))
    mvc_cli("add", "model.safetensors", "-q")
    git(repo, "commit", "-q", "-am", "v1")
    mvc_cli("push", "--all-commits", "-q")
    mvc_cli("gc", "--compact", "--force", "--grace", "0", "-q")
    oid0 = oids.from_digest(fileio.hexdigest_bytes(first))
    loose = repo / ".mvc" / "cache" / "objects" / oids.to_relpath(oid0)
    assert not loose.exists()  # compacted
    flip(store / "objects" / oids.to_relpath(oid0))
    _, r = verify(mvc_cli, "--repair", "--rev", commit0)
    assert [(p["repaired"], p["remote_file"]) for p in r["problems"]] == [(True, "objects/" + oids.to_relpath(oid0))]
    assert (store / "objects" / oids.to_relpath(oid0)).read_bytes() == first and not loose.exists()
