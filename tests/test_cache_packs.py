"""Cache packs (docs/FORMAT.md, "Cache packs"): the small files of a large ``mvc add`` stored in packs of the
cache, and every reader of the cache finding them there: status, checkout, get, open, push, verify, gc."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import xxhash
from conftest import git, make_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvc.errors import CorruptObject, ObjectMissing
from mvc.objects import bulkadd, cachepacks
from mvc.objects import pack as pk
from mvc.objects.odb import ODB


def oid_of(data: bytes) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def cache(repo: Path) -> ODB:
    return ODB(str(repo / ".mvc" / "cache"))


@pytest.fixture
def bulk(monkeypatch):
    """mvc (in this process) stores a directory's files by two forked processes from 10 files the cache lacks."""
    monkeypatch.setattr("mvc.repo.storing.PARALLEL_FROM", 10)
    monkeypatch.setattr("mvc.storage.forked.workers_for", lambda n, least, most=8: 2 if n >= least else 1)


def make_dir(root: Path, n: int, seed: int = 0) -> dict[Path, bytes]:
    out = {}
    for i in range(n):
        p = make_file(root / f"d{i % 3}" / f"f{i}.bin", 200 + (i * 37) % 3000, seed=seed * 1000 + i)
        out[p] = p.read_bytes()
    return out


# -- the packs themselves --------------------------------------------------------------------------------
def test_a_pack_is_seen_once_its_index_is_written(tmp_path: Path):
    packs = cachepacks.Packed(str(tmp_path))
    (tmp_path / "tmp").mkdir()
    w = cachepacks.Writer(packs, str(tmp_path / "tmp"))
    blobs = [os.urandom(100 + i) for i in range(5)]
    for b in blobs:
        w.add(oid_of(b), b)
    assert not packs.any() and not (tmp_path / "packs").exists()  # nothing visible before close
    w.close()
    (name,) = w.written
    pack_bytes = (tmp_path / "packs" / f"{name}.pack").read_bytes()
    assert xxhash.xxh3_128_hexdigest(pack_bytes) == name and pack_bytes == b"".join(blobs)
    fresh = cachepacks.Packed(str(tmp_path))
    assert set(fresh.keys()) == {oid_of(b) for b in blobs}
    assert all(fresh.read(oid_of(b)) == b for b in blobs)
    assert os.listdir(tmp_path / "tmp") == []  # the pack's temp was renamed


def test_a_writer_closes_a_pack_at_its_target_size(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(pk, "TARGET", 1000)
    packs = cachepacks.Packed(str(tmp_path))
    (tmp_path / "tmp").mkdir()
    w = cachepacks.Writer(packs, str(tmp_path / "tmp"))
    blobs = [os.urandom(400) for _ in range(7)]
    for b in blobs:
        w.add(oid_of(b), b)
    w.close()
    assert len(w.written) == 3  # 3 + 3 + 1 objects
    packs.refresh()
    assert set(packs.keys()) == {oid_of(b) for b in blobs}


def test_a_damaged_index_is_set_aside(tmp_path: Path):
    """An index that does not parse (here: it names bytes past its pack's end) is moved to quarantine/ by the
    first reader: its objects are missing to every later reader too, membership included, so a fetch stores them
    again."""
    packs = cachepacks.Packed(str(tmp_path))
    (tmp_path / "tmp").mkdir()
    w = cachepacks.Writer(packs, str(tmp_path / "tmp"))
    w.add(oid_of(b"x" * 10), b"x" * 10)
    w.add(oid_of(b"y" * 10), b"y" * 10)
    w.close()
    (name,) = w.written
    intact = cachepacks.Writer(packs, str(tmp_path / "tmp"))
    intact.add(oid_of(b"z" * 10), b"z" * 10)
    intact.close()
    index = tmp_path / "packs" / f"{name}.idx"
    index.chmod(0o644)
    index.write_bytes(  # the first line right, the second past the pack's end
        pk.INDEX_HEADER + f"{oid_of(b'x' * 10)} 0 10\n{oid_of(b'y' * 10)} 10 999\n".encode()
    )
    fresh = cachepacks.Packed(str(tmp_path))
    assert fresh.has(oid_of(b"y" * 10))  # the words alone, before anything is read
    assert fresh.find(oid_of(b"x" * 10)) is None and fresh.read(oid_of(b"y" * 10)) is None
    assert not index.exists() and (tmp_path / "packs" / f"{name}.pack").exists()  # gc's, after the grace
    (aside,) = os.listdir(tmp_path / "quarantine")
    assert aside.startswith(f"{name}.idx.")
    assert not fresh.has(oid_of(b"x" * 10)) and not ODB(str(tmp_path)).exists(oid_of(b"y" * 10))
    with pytest.raises(ObjectMissing):
        ODB(str(tmp_path)).read_bytes(oid_of(b"x" * 10))
    assert cachepacks.Packed(str(tmp_path)).find(oid_of(b"x" * 10)) is None  # nothing else moved, nothing raises
    assert os.listdir(tmp_path / "quarantine") == [aside]
    assert fresh.read(oid_of(b"z" * 10)) == b"z" * 10  # the other pack's index parses: it stays


def test_the_cache_lists_no_word_of_a_damaged_index_that_is_no_oid(tmp_path: Path):
    packs = cachepacks.Packed(str(tmp_path))
    (tmp_path / "tmp").mkdir()
    w = cachepacks.Writer(packs, str(tmp_path / "tmp"))
    blobs = [b"a" * 10, b"b" * 10]
    for b in blobs:
        w.add(oid_of(b), b)
    w.close()
    index = tmp_path / "packs" / f"{w.written[0]}.idx"
    index.chmod(0o644)
    index.write_bytes(index.read_bytes()[:-20])  # the last line cut inside its oid
    assert list(ODB(str(tmp_path)).all_oids()) == [oid_of(blobs[0])]


# -- storing many files --------------------------------------------------------------------------------
def test_many_small_files_go_to_packs_and_every_reader_finds_them(tmp_path: Path):
    files = make_dir(tmp_path / "src", 60)
    big = make_file(tmp_path / "src" / "big.bin", pk.OBJECT_MAX, seed=5)  # 1 MiB: an object file of its own
    files[big] = big.read_bytes()
    odb = ODB(str(tmp_path / "cache"))
    srcs = sorted(files)
    got = bulkadd.add_files(odb, [str(p) for p in srcs], ["reflink", "copy"], 2)
    assert [g[0] for g in got] == [oid_of(files[p]) for p in srcs]
    assert list(odb.loose_oids()) == [oid_of(files[big])]
    assert (tmp_path / "cache" / "mvc.toml").read_text().endswith("format = 5\n")
    assert len(os.listdir(tmp_path / "cache" / "packs")) == 4  # a pack and its index from each process
    fresh = ODB(str(tmp_path / "cache"))
    assert set(fresh.all_oids()) == {oid_of(d) for d in files.values()}
    assert fresh.missing([oid_of(d) for d in files.values()] + [oid_of(b"no")]) == [oid_of(b"no")]
    for data in files.values():
        oid = oid_of(data)
        assert fresh.exists(oid) and fresh.size(oid) == len(data)
        assert fresh.read_bytes(oid) == data
        buf = memoryview(bytearray(len(data) + 1))
        assert fresh.read_into(oid, buf) == len(data) and bytes(buf[: len(data)]) == data
        fresh.verify(oid)
    out = tmp_path / "out.bin"
    some = next(p for p in srcs if p != big)
    how, st = fresh.place(oid_of(files[some]), str(out), ["hardlink", "copy"], executable=False)
    assert how == "copy" and out.read_bytes() == files[some] and st is not None
    assert not out.samefile(some)


def test_files_the_cache_holds_are_not_stored_again(tmp_path: Path):
    files = make_dir(tmp_path / "src", 30)
    odb = ODB(str(tmp_path / "cache"))
    bulkadd.add_files(odb, [str(p) for p in files], ["copy"], 2)
    before = sorted(os.listdir(tmp_path / "cache" / "packs"))
    (tmp_path / "src" / "dup.bin").write_bytes(next(iter(files.values())))  # same bytes as one stored
    again = ODB(str(tmp_path / "cache"))
    got = bulkadd.add_files(again, [str(tmp_path / "src" / "dup.bin"), *map(str, files)], ["copy"], 2)
    assert again.placed == 0 and len(got) == 31
    assert sorted(os.listdir(tmp_path / "cache" / "packs")) == before


def test_a_file_the_cache_holds_loose_is_not_packed_again_and_the_rest_are(tmp_path: Path):
    """A worker asks the disk about a loose object only where its fan-out directory is there (listed before the
    workers start): every answer is the one odb.exists gives."""
    files = make_dir(tmp_path / "src", 30)
    odb = ODB(str(tmp_path / "cache"))
    loose = sorted(files)[:3]
    for p in loose:
        odb.add_bytes(files[p])  # loose objects, three fan-out directories
    again = ODB(str(tmp_path / "cache"))
    got = bulkadd.add_files(again, [str(p) for p in sorted(files)], ["copy"], 2)
    assert [g[0] for g in got] == [oid_of(files[p]) for p in sorted(files)]
    assert again.placed == 27
    packed = {e.oid for name in again.packs.all() for e in again.packs.all()[name][0]}
    assert packed == {oid_of(files[p]) for p in sorted(files)[3:]}
    assert sorted(again.loose_oids()) == sorted(oid_of(files[p]) for p in loose)


def test_a_link_mode_stores_object_files(tmp_path: Path):
    files = make_dir(tmp_path / "src", 20)
    odb = ODB(str(tmp_path / "cache"))
    bulkadd.add_files(odb, [str(p) for p in files], ["reflink"], 2)  # no copy allowed: no pack
    assert not (tmp_path / "cache" / "packs").exists() or not os.listdir(tmp_path / "cache" / "packs")


def test_a_corrupt_packed_object_is_refused_then_stored_again(tmp_path: Path):
    files = make_dir(tmp_path / "src", 20)
    odb = ODB(str(tmp_path / "cache"))
    bulkadd.add_files(odb, [str(p) for p in files], ["copy"], 1)
    (name,) = [n[:-5] for n in os.listdir(tmp_path / "cache" / "packs") if n.endswith(".pack")]
    victim = sorted(files)[3]
    oid = oid_of(files[victim])
    _, offset, size = odb.packs.find(oid)
    pack = tmp_path / "cache" / "packs" / f"{name}.pack"
    pack.chmod(0o644)
    data = bytearray(pack.read_bytes())
    data[offset] ^= 0xFF
    pack.write_bytes(bytes(data))
    fresh = ODB(str(tmp_path / "cache"))
    with pytest.raises(CorruptObject, match=oid):
        fresh.read_bytes(oid)
    assert not ODB(str(tmp_path / "cache")).exists(oid)  # its index forgot it; the others stay
    quarantined = os.listdir(tmp_path / "cache" / "quarantine")
    assert len(quarantined) == 1 and len((tmp_path / "cache" / "quarantine" / quarantined[0]).read_bytes()) == size
    others = [oid_of(d) for p, d in files.items() if p != victim]
    assert all(ODB(str(tmp_path / "cache")).read_bytes(o) for o in others)
    again = ODB(str(tmp_path / "cache"))
    assert again.add_file(str(victim))[0] == oid  # stored again, as an object file
    assert again.read_bytes(oid) == files[victim] and oid in set(again.loose_oids())
    with pytest.raises(ObjectMissing):
        ODB(str(tmp_path / "cache")).read_bytes(oid_of(b"never stored"))


def test_a_corrupt_packed_copy_is_set_aside_not_the_good_object_file(tmp_path: Path):
    files = make_dir(tmp_path / "src", 12)
    odb = ODB(str(tmp_path / "cache"))
    bulkadd.add_files(odb, [str(p) for p in files], ["copy"], 1)
    victim = sorted(files)[2]
    oid = oid_of(files[victim])
    loose = Path(odb.path(oid))  # a second copy, as an object file (what an install of a fetched object makes)
    loose.parent.mkdir(parents=True, exist_ok=True)
    loose.write_bytes(files[victim])
    name, offset, _ = odb.packs.find(oid)
    pack = tmp_path / "cache" / "packs" / f"{name}.pack"
    pack.chmod(0o644)
    with open(pack, "r+b") as f:
        f.seek(offset)
        f.write(bytes([files[victim][0] ^ 0xFF]))
    with pytest.raises(CorruptObject):
        ODB(str(tmp_path / "cache")).read_bytes(oid)  # the pack's copy, read first
    assert loose.read_bytes() == files[victim]  # the good file stays
    again = ODB(str(tmp_path / "cache"))
    assert again.packs.find(oid) is None and again.read_bytes(oid) == files[victim]


# -- through the CLI -----------------------------------------------------------------------------------
def test_add_status_and_checkout(repo: Path, mvc_cli, bulk):
    files = make_dir(repo / "data", 40)
    out = mvc_cli("add", "data").output
    assert "40 files" in out
    assert cache(repo).packs.any()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    assert "up to date" in mvc_cli("status").output
    shutil.rmtree(repo / "data")
    mvc_cli("checkout", "data")
    for p, data in files.items():
        assert p.read_bytes() == data
    assert "up to date" in mvc_cli("status").output
    one = sorted(files)[0]
    from mvc.objects import reader

    assert reader.cache_source(cache(repo), oid_of(files[one]))(5, 50) == files[one][5:50]  # what mvc.open reads


def test_a_first_add_stats_and_stores_in_one_pass_as_a_scan_then_a_store_would(
    repo: Path, tmp_path: Path, mvc_cli, mvc_error, bulk, monkeypatch
):
    """The first add of a large directory stats and stores its files in one forked pass (storing.scan_and_store):
    the same manifest and state rows as a scan then a store, a name mvc refuses stops it before anything is
    stored, a symlink out of the directory is refused, and the next status trusts the fingerprint it recorded."""
    import sqlite3

    from mvc.repo import storing

    make_dir(repo / "data", 40)
    passes: list[int] = []
    real = storing.scan_and_store
    monkeypatch.setattr(storing, "scan_and_store", lambda *a: passes.append(1) or real(*a))
    (repo / "data" / "bad\x01name").write_bytes(b"x")
    assert "control character" in mvc_error("add", "data")
    assert passes == [1] and not (repo / ".mvc" / "cache" / "packs").exists()  # refused before storing
    (repo / "data" / "bad\x01name").unlink()
    (repo / "data" / "out").symlink_to(tmp_path)
    assert "is a symlink: a tracked directory holds regular files only" in mvc_error("add", "data")
    (repo / "data" / "out").unlink()
    os.mkfifo(repo / "data" / "pipe")  # opened without waiting for a writer, and refused
    assert "not a regular file" in mvc_error("add", "data")
    (repo / "data" / "pipe").unlink()
    make_dir(repo / "linked", 12, seed=3)  # a second directory, one of its files a read-only hardlink pair
    (repo / "linked" / "x.bin").write_bytes(b"x" * 99)
    (repo / "linked" / "x.bin").chmod(0o555)
    os.link(repo / "linked" / "x.bin", repo / "linked" / "y.bin")
    for p in [*(repo / "data").rglob("*"), *(repo / "linked").rglob("*")]:
        if p.is_file():
            os.utime(p, (time.time() - 3600,) * 2)  # an hour old: their stats are trusted
    added = []
    for how in ("one pass", "a scan, then a store"):
        if how != "one pass":
            (repo / "data.mvc").unlink()
            (repo / "linked.mvc").unlink()
            shutil.rmtree(repo / ".mvc" / "cache")
            (repo / ".mvc" / "state.db").unlink()
            monkeypatch.setattr(storing, "scan_and_store", lambda *a: None)
        out = mvc_cli("add", "data", "linked").output
        assert "40 files" in out and "14 files" in out
        with sqlite3.connect(repo / ".mvc" / "state.db") as db:
            rows = sorted(db.execute("SELECT * FROM state"))
            dirs = sorted(db.execute("SELECT * FROM dirs"))
        db.close()
        pointers = [(repo / f"{d}.mvc").read_text().split("[auto]")[0] for d in ("data", "linked")]
        added.append((pointers, rows, dirs))
        assert mvc_cli("status").output.count("up to date") == 2
    assert len(passes) == 4 and len(added[0][1]) == 54 and len(added[0][2]) == 1  # (linked: no fingerprint)
    assert added[0] == added[1]


def test_a_re_add_in_one_pass_reads_only_what_changed(repo: Path, tmp_path: Path, mvc_cli, bulk, monkeypatch):
    """A re-add of a large directory in one forked pass stats every file and reads only those the state cache does
    not vouch for (or whose object the cache lost); its pointer is the one a scan, then a store, writes."""
    from mvc.objects import bulkadd
    from mvc.repo import storing

    files = make_dir(repo / "data", 30)
    for p in files:
        os.utime(p, (time.time() - 3600,) * 2)  # an hour old: the state cache vouches for them
    mvc_cli("add", "data")
    read = tmp_path / "read"
    real = bulkadd._add_packed

    def spy(odb, src, *a, **k):  # (in the forked workers: what they read goes to a file)
        with open(read, "a") as out:
            out.write(os.path.basename(src) + "\n")
        return real(odb, src, *a, **k)

    monkeypatch.setattr(bulkadd, "_add_packed", spy)
    edited = sorted(files)[4]
    edited.write_bytes(b"changed")
    assert "added data" in mvc_cli("add", "data").output
    assert read.read_text().split() == [edited.name]
    one_pass = (repo / "data.mvc").read_text().split("[auto]")[0]
    (repo / "data.mvc").unlink()
    (repo / ".mvc" / "state.db").unlink()
    monkeypatch.setattr(storing, "scan_and_store", lambda *a, **k: None)
    mvc_cli("add", "data")
    assert (repo / "data.mvc").read_text().split("[auto]")[0] == one_pass


def test_a_first_add_records_the_same_models_as_a_scan_then_a_store(repo: Path, mvc_cli, bulk, monkeypatch):
    """The one-pass add asks the record's first question (is this file one of the formats read?) of each file while
    it holds its bytes, and the record then opens only the others: the [auto] model table is the same as when the
    record opens every file itself."""
    import tomllib

    from mvc.repo import storing

    make_dir(repo / "data", 30)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (repo / "data" / "small.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    (repo / "data" / "named.onnx").write_bytes(b"not onnx at all")  # a format by its suffix, refused by its reader
    (repo / "data" / "pickled.bin").write_bytes(b"\x80\x04K\x01.")
    models = []
    for how in ("one pass", "a scan, then a store"):
        if how != "one pass":
            (repo / "data.mvc").unlink()
            shutil.rmtree(repo / ".mvc" / "cache")
            (repo / ".mvc" / "state.db").unlink()
            monkeypatch.setattr(storing, "scan_and_store", lambda *a: None)
        mvc_cli("add", "data")
        models.append(tomllib.loads((repo / "data.mvc").read_text())["auto"]["model"])
    assert set(models[0]["files"]) >= {"small.safetensors", "named.onnx", "pickled.bin"}
    assert models[0] == models[1]


def test_a_link_mode_links_to_an_object_file_when_the_content_is_also_packed(repo: Path, mvc_cli, bulk):
    """Content a large add packed, added again under cache.type hardlink: the file becomes a link to an object file
    (a pack cannot be linked to), and a checkout links too."""
    files = make_dir(repo / "data", 20)
    mvc_cli("add", "data")
    mvc_cli("config", "cache.type", "hardlink")
    same = repo / "same.bin"
    data = next(iter(files.values()))
    same.write_bytes(data)
    mvc_cli("add", "same.bin")
    obj = cache(repo).path(oid_of(data))
    assert os.path.samefile(same, obj) and cache(repo).packs.has(oid_of(data))
    same.unlink()
    mvc_cli("checkout", "same.bin")
    assert os.path.samefile(same, obj) and same.read_bytes() == data


def test_verify_reads_every_packed_object(repo: Path, mvc_cli, bulk):
    files = make_dir(repo / "data", 30)
    mvc_cli("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    report = json.loads(mvc_cli("verify", "--json").output)
    assert report["cache"]["objects"] == 31 and not report["cache"]["corrupt"]  # 30 files and the manifest
    odb = cache(repo)
    victim = sorted(files)[7]
    oid = oid_of(files[victim])
    name, offset, _ = odb.packs.find(oid)
    pack = repo / ".mvc" / "cache" / "packs" / f"{name}.pack"
    pack.chmod(0o644)
    with open(pack, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" if files[victim][:1] != b"\0" else b"\1")
    result = mvc_cli("verify", "--json", ok=False)
    assert result.exit_code != 0
    report = json.loads(result.stdout)
    assert report["cache"]["corrupt"] == [oid]
    assert any(p["oid"] == oid and p["needed_by"] for p in report["problems"])


def pushed_dir(repo: Path, remote: Path, mvc_cli) -> dict[Path, bytes]:
    """data/ (20 files) added into cache packs, committed and pushed to the directory remote origin."""
    files = make_dir(repo / "data", 20)
    mvc_cli("remote", "add", "origin", str(remote))
    mvc_cli("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    mvc_cli("push")
    return files


def test_a_damaged_index_costs_one_fetch(repo: Path, tmp_path: Path, mvc_cli, mvc_error, bulk):
    """A cache pack's index damaged after an add: the checkout that meets it names the fix, and the fetch it names
    downloads the files again (the damaged index no longer counts them present)."""
    files = pushed_dir(repo, tmp_path / "remote", mvc_cli)
    for index in (repo / ".mvc" / "cache" / "packs").glob("*.idx"):
        index.chmod(0o644)
        index.write_bytes(index.read_bytes()[:-20])  # cut short in its last line
    shutil.rmtree(repo / "data")
    mvc_error("checkout", "data", words=("fetch",))
    mvc_cli("fetch")
    mvc_cli("checkout", "data")
    assert all(p.read_bytes() == data for p, data in files.items())
    assert "up to date" in mvc_cli("status").output


def test_verify_reports_a_damaged_index_and_repair_replaces_what_it_listed(repo: Path, tmp_path: Path, mvc_cli, bulk):
    """verify counts every object a damaged index lists as corrupt in the cache, and writes nothing; --repair moves
    the index to quarantine/ and stores each of those objects again from the remote."""
    files = pushed_dir(repo, tmp_path / "remote", mvc_cli)
    packs_dir = repo / ".mvc" / "cache" / "packs"
    index = sorted(packs_dir.glob("*.idx"))[0]
    entries = pk.parse_index(index.read_bytes(), str(index), (packs_dir / f"{index.stem}.pack").stat().st_size)
    entries[-1] = entries[-1]._replace(size=1 << 30)  # past the pack's end: the whole index is refused
    index.chmod(0o644)
    index.write_bytes(pk.render_index(entries))
    listed = {e.oid for e in entries}
    result = mvc_cli("verify", "--json", ok=False)
    assert result.exit_code != 0
    report = json.loads(result.stdout)
    assert set(report["cache"]["corrupt"]) == listed
    assert {p["oid"] for p in report["problems"] if p["problem"] == "corrupt in cache"} == listed
    assert index.exists() and not (repo / ".mvc" / "cache" / "quarantine").exists()  # nothing written
    report = json.loads(mvc_cli("verify", "--repair", "--json").stdout)
    assert {p["oid"] for p in report["problems"] if p["repaired"]} == listed
    assert not index.exists() and len(os.listdir(repo / ".mvc" / "cache" / "quarantine")) == 1
    assert not json.loads(mvc_cli("verify", "--json").stdout)["problems"]
    shutil.rmtree(repo / "data")
    mvc_cli("checkout", "data")
    assert all(p.read_bytes() == data for p, data in files.items())


def test_gc_deletes_a_pack_no_version_needs_and_keeps_one_that_is_needed(repo: Path, mvc_cli, bulk):
    old = make_dir(repo / "old", 20, seed=1)
    kept = make_dir(repo / "kept", 20, seed=2)
    mvc_cli("add", "old")
    mvc_cli("add", "kept")
    before = {n for n in os.listdir(repo / ".mvc" / "cache" / "packs") if n.endswith(".pack")}
    assert len(before) == 4  # two processes for each add
    git(repo, "rm", "-q", "-f", "old.mvc")  # never committed: nothing keeps old/ but the grace
    dry = json.loads(mvc_cli("gc", "--grace", "0", "--json").output)
    assert dry["dry_run"] and dry["objects"] == 21  # old/'s 20 files and its manifest
    assert {n for n in os.listdir(repo / ".mvc" / "cache" / "packs") if n.endswith(".pack")} == before
    young = json.loads(mvc_cli("gc", "--json").output)  # the default grace: everything is young
    assert young["objects"] == 0  # the packs and the manifest are younger than the grace
    done = json.loads(mvc_cli("gc", "--grace", "0", "--force", "--json").output)
    assert done["objects"] == 21
    left = cache(repo)
    assert len([n for n in os.listdir(repo / ".mvc" / "cache" / "packs") if n.endswith(".pack")]) == 2
    assert all(left.read_bytes(oid_of(d)) == d for d in kept.values())
    assert not any(left.exists(oid_of(d)) for d in old.values())
    assert "up to date" in mvc_cli("status", "kept").output


def commit_two_versions(repo: Path, mvc_cli, changed: int) -> dict[Path, bytes]:
    """data/ of 20 files added and committed (two packs of 10: a process each), then the first ``changed`` files
    (in name order) rewritten, added and committed: v1's files as they were."""
    files = make_dir(repo / "data", 20)
    mvc_cli("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    for p in sorted(files)[:changed]:
        p.write_bytes(os.urandom(100))
    mvc_cli("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v2")
    return files


def pack_names(repo: Path) -> set[str]:
    return {n for n in os.listdir(repo / ".mvc" / "cache" / "packs") if n.endswith(".pack")}


def test_gc_rewrites_a_cache_pack_mostly_dead_and_keeps_one_mostly_alive(repo: Path, mvc_cli, bulk):
    files = commit_two_versions(repo, mvc_cli, 14)  # v1's 14 objects dead at --keep-last 1, in both packs
    v1 = pack_names(repo)
    dry = json.loads(mvc_cli("gc", "--grace", "0", "--keep-last", "1", "--json").output)
    by_pack = {}
    odb = cache(repo)
    for p, data in files.items():
        by_pack.setdefault(odb.packs.find(oid_of(data))[0], []).append(p)
    dead_bytes = {n: sum(len(files[p]) for p in ps if p in sorted(files)[:14]) for n, ps in by_pack.items()}
    sizes = {n: sum(len(files[p]) for p in ps) for n, ps in by_pack.items()}
    thin = {n for n in by_pack if 2 * dead_bytes[n] >= sizes[n]}
    assert thin and pack_names(repo) >= v1  # a dry run rewrites nothing
    done = json.loads(mvc_cli("gc", "--grace", "0", "--keep-last", "1", "--force", "--json").output)
    assert done["objects"] == dry["objects"] and done["packed_kept"] == dry["packed_kept"]
    dead = set(sorted(files)[:14])
    assert done["packed_kept"] == sum(len(dead.intersection(by_pack[n])) for n in by_pack if n not in thin)
    left = pack_names(repo)
    assert not {f"{n}.pack" for n in thin} & left  # the old packs gone, their live objects copied out
    again = cache(repo)
    for p in sorted(files)[14:]:
        assert again.read_bytes(oid_of(files[p])) == files[p]
    assert "up to date" in mvc_cli("status").output


def test_gc_keeps_a_cache_pack_with_one_needed_object_and_rewrites_it(repo: Path, mvc_cli, bulk):
    files = commit_two_versions(repo, mvc_cli, 19)
    first = sorted(files)[19]
    report = json.loads(mvc_cli("gc", "--grace", "0", "--keep-last", "1", "--force", "--json").output)
    # the pack without the last file goes whole, with v1's manifest; the other's 9 dead go in its rewrite
    assert report["packed_kept"] == 0 and report["objects"] == 20
    assert len(pack_names(repo)) == 2 + 1  # v2's two, and the rewrite holding one object
    assert cache(repo).read_bytes(oid_of(files[first])) == files[first]
    assert "stay in cache packs" not in mvc_cli("gc", "--grace", "0", "--keep-last", "1").output


def test_a_gc_killed_after_renaming_a_pack_puts_it_back(repo: Path, mvc_cli, bulk):
    files = make_dir(repo / "data", 20)
    mvc_cli("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    packs = repo / ".mvc" / "cache" / "packs"
    name = sorted(n for n in os.listdir(packs) if n.endswith(".pack"))[0]
    os.rename(packs / name, packs / f"{name}.gc-999999999")  # a gc's process, gone, left it renamed aside
    assert not all(cache(repo).exists(oid_of(d)) for d in files.values())
    mvc_cli("gc", "--grace", "0", "--force")  # puts it back first, then keeps it: committed
    assert (packs / name).exists()
    assert all(cache(repo).read_bytes(oid_of(d)) == d for d in files.values())


def test_gc_deletes_a_pack_a_killed_add_left_without_its_index(repo: Path, mvc_cli, bulk):
    make_dir(repo / "data", 20)
    mvc_cli("add", "data")
    packs = repo / ".mvc" / "cache" / "packs"
    stray = packs / ("0" * 32 + ".pack")
    stray.write_bytes(b"half a pack")
    assert json.loads(mvc_cli("gc", "--grace", "0", "--force", "--json").output)["dry_run"] is False
    assert not stray.exists()
    assert len([n for n in os.listdir(packs) if n.endswith(".idx")]) == 2


def test_an_older_cache_format_reader_is_refused(repo: Path, mvc_cli, bulk, monkeypatch):
    make_dir(repo / "data", 20)
    mvc_cli("add", "data")
    from mvc.objects import layout

    monkeypatch.setattr(layout, "FORMATS", (1, 2, 3, 4))  # an mvc from before cache packs
    result = mvc_cli("status", ok=False)
    assert result.exit_code != 0 and "format 5" in result.stderr and "upgrade mvc" in result.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.binary(max_size=300), lines=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80)), max_size=4))
def test_any_index_bytes_never_yield_bytes_outside_the_pack(tmp_path: Path, index: bytes, lines):
    """An index is read as whatever bytes it holds (damaged, or hostile): nothing raises, and an object read through
    it is either refused (None) or bytes of its pack that the caller then hashes."""
    packs_dir = tmp_path / "packs"
    shutil.rmtree(packs_dir, ignore_errors=True)
    packs_dir.mkdir()
    pack = b"0123456789" * 5
    name = xxhash.xxh3_128_hexdigest(pack)
    (packs_dir / f"{name}.pack").write_bytes(pack)
    oid = oid_of(pack[:10])
    text = pk.INDEX_HEADER + "".join(f"{oid} {o} {s}\n" for o, s in lines).encode() + index
    (packs_dir / f"{name}.idx").write_bytes(text)
    packs = cachepacks.Packed(str(tmp_path))
    assert isinstance(set(packs.keys()), set)
    found = packs.find(oid)
    data = packs.read(oid)
    if found is not None:
        _, offset, size = found
        assert offset + size <= len(pack) and data == pack[offset : offset + size]
    else:
        assert data is None


def test_gc_leaves_a_cache_pack_mostly_alive_as_it_is(repo: Path, mvc_cli, bulk):
    files = commit_two_versions(repo, mvc_cli, 2)  # one dead object in each pack of 10
    before = pack_names(repo)
    report = json.loads(mvc_cli("gc", "--grace", "0", "--keep-last", "1", "--force", "--json").output)
    assert report["packed_kept"] == 2 and report["objects"] == 1  # v1's manifest alone goes
    assert pack_names(repo) == before
    assert all(cache(repo).exists(oid_of(d)) for d in files.values())
    assert (
        "2 object(s) no version needs stay in cache packs" in mvc_cli("gc", "--grace", "0", "--keep-last", "1").output
    )


def test_a_push_sends_a_cache_pack_whole_when_every_object_of_it_goes(repo: Path, tmp_path: Path, mvc_cli, bulk):
    """A large add's packs are pushed as they are (the same name and bytes on the remote: no object read and
    packed again one by one), and a clone with an empty cache reads every file from them. A cache pack damaged
    since its add is not sent: its objects are read one by one, and the damaged one is refused."""
    remote = tmp_path / "remote"
    files = make_dir(repo / "data", 60)
    mvc_cli("remote", "add", "origin", str(remote))
    mvc_cli("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    mine = {n.removesuffix(".pack") for n in pack_names(repo)}
    assert len(mine) == 2  # one a worker, each of about 30 objects
    mvc_cli("push")
    sent = {p.name for p in (remote / "packs").iterdir()}
    assert {f"{n}.pack" for n in mine} | {f"{n}.idx" for n in mine} <= sent
    alone = [p for p in (remote / "objects").rglob("*") if p.is_file()]
    assert len(alone) == 1  # the directory's manifest (written after the packs); no packed file sent again
    for n in mine:
        assert (remote / "packs" / f"{n}.pack").read_bytes() == (
            repo / ".mvc" / "cache" / "packs" / f"{n}.pack"
        ).read_bytes()
    shutil.rmtree(repo / ".mvc" / "cache")
    shutil.rmtree(repo / "data")
    mvc_cli("pull")
    assert all(p.read_bytes() == data for p, data in files.items())

    # a pack whose bytes changed after the add: not sent as it is
    make_dir(repo / "more", 60, seed=7)
    mvc_cli("add", "more")
    bad = sorted({n.removesuffix(".pack") for n in pack_names(repo)} - mine)[0]
    path = repo / ".mvc" / "cache" / "packs" / f"{bad}.pack"
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    result = mvc_cli("push", ok=False)
    assert f"{bad}.pack" not in {p.name for p in (remote / "packs").iterdir()}
    assert result.exit_code != 0 and "corrupt" in result.output.lower()


def test_a_cache_pack_pushed_whole_to_s3_reads_back(repo: Path, mvc_cli, bulk, s3_endpoint):
    """The same on S3: the cache packs are the remote's packs (one PUT each, then the index), and an empty cache
    pulls every file back from them."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="models")
    mvc_cli("remote", "add", "s3", "s3://models/p", "--default")
    mvc_cli("remote", "modify", "s3", "endpoint_url", s3_endpoint)
    files = make_dir(repo / "data", 60)
    mvc_cli("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    mine = {n.removesuffix(".pack") for n in pack_names(repo)}
    mvc_cli("push", "-q")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="p/")["Contents"]}
    assert {f"p/packs/{n}.pack" for n in mine} | {f"p/packs/{n}.idx" for n in mine} <= keys
    assert len([k for k in keys if k.startswith("p/objects/")]) == 1  # the manifest alone
    for n in mine:
        body = s3.get_object(Bucket="models", Key=f"p/packs/{n}.pack")["Body"].read()
        assert body == (repo / ".mvc" / "cache" / "packs" / f"{n}.pack").read_bytes()
    shutil.rmtree(repo / ".mvc" / "cache")
    shutil.rmtree(repo / "data")
    mvc_cli("pull", "-q")
    assert all(p.read_bytes() == data for p, data in files.items())
