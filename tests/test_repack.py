"""``mvc gc -r REMOTE --force`` rewrites packs that are mostly dead (docs/FORMAT.md, "A remote"): the live
entries into a new pack, the recipes naming the old one pointed at the copies, a ``.superseded`` marker;
a later gc deletes the old pack once the marker is older than the grace. Run on a directory remote and on
S3 (moto), and on the cache's compacted store."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from conftest import git, make_file
from remote_suite import (
    LocalRemote,
    S3Remote,
    WithOrigin,
    fresh_clone,
    model_tensors,
    oid_of,
    recipe_of,
    recipe_rel,
    write_model,
)

import mvc
from mvc.objects import pack
from mvc.objects.repack import marker_rel


def gc_json(mvc_cli, *args: str) -> dict:
    return json.loads(mvc_cli("gc", "-r", "origin", "--json", "-q", *args).stdout)


def commit(repo: Path, mvc_cli, message: str, *paths: str) -> None:
    mvc_cli("add", *paths, "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def pulled_fresh(repo: Path, mvc_cli) -> bytes:
    """model.safetensors as a fresh clone of repo pulls it from the remote alone."""
    fresh_clone(repo)
    (repo / "model.safetensors").unlink()
    mvc_cli("pull", "-q")
    return (repo / "model.safetensors").read_bytes()


def snapshot(backend) -> dict[str, bytes]:
    return {rel: backend.read(rel) for rel in backend.rels()}


def index_of(backend, name: str) -> list[pack.Entry]:
    return pack.parse_index(backend.read(pack.index_rel(name)), name)


class RepackSuite(WithOrigin):
    @pytest.fixture
    def small(self, repo, mvc_cli, origin) -> dict[str, bytes]:
        """many/ committed with 40 small files, then with 10 of them, both pushed at once: one pack holds the
        40 files. Returns the 10 that stay {name: bytes}; ``--keep-last 1`` leaves the pack 3/4 dead."""
        for i in range(40):
            make_file(repo / "many" / f"f{i:02d}.bin", 1000 + 10 * i, seed=i)
        commit(repo, mvc_cli, "40 files", "many")
        for i in range(10, 40):
            (repo / "many" / f"f{i:02d}.bin").unlink()
        commit(repo, mvc_cli, "10 of them", "many")
        mvc_cli("push", "-q", "--all-commits")
        return {p.name: p.read_bytes() for p in (repo / "many").iterdir()}

    @pytest.fixture
    def retrained(self, repo, mvc_cli, origin, monkeypatch) -> tuple[bytes, bytes]:
        """model.safetensors v1 (4 tensors), then v2 with 3 of them retrained from scratch (stored as new
        chunks: no delta against v1, so nothing keeps v1 once ``--keep-last 1`` drops it), each pushed
        chunked: v1's pack is 3/4 dead. Returns (v1, v2)."""
        pytest.importorskip("numpy")
        monkeypatch.setattr("mvc.objects.chunked.CHUNK_FROM", 1 << 20)
        tensors = model_tensors(20, n=4, elements=1 << 19)
        v1 = write_model(repo / "model.safetensors", tensors)
        commit(repo, mvc_cli, "v1", "model.safetensors")
        mvc_cli("push", "-q")
        v2 = write_model(repo / "model.safetensors", tensors[:1] + model_tensors(21, n=3, elements=1 << 19))
        commit(repo, mvc_cli, "v2", "model.safetensors")
        mvc_cli("push", "-q")
        assert all(e.kind == "c" for e in recipe_of(origin, oid_of(v2)).entries)
        return v1, v2

    def test_a_mostly_dead_pack_is_rewritten_and_goes_after_the_grace(self, repo, mvc_cli, origin, small):
        (old,) = pack.names_in(origin.rels())
        before = snapshot(origin)
        time.sleep(3.5)  # the pack older than the grace of 3 s below, the marker gc writes younger
        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "3s")
        assert r["dry_run"] and r["packs_rewritten"] == 1 and r["rewrite_frees"] > 0.7 * len(before[pack.pack_rel(old)])
        out = mvc_cli("gc", "-r", "origin", "--keep-last", "1", "--grace", "3s", "-q").stdout
        assert "would rewrite 1 mostly dead pack(s)" in out and "run it again with --force" in out
        assert snapshot(origin) == before  # a dry run writes nothing

        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "3s", "--force")
        assert r["packs_rewritten"] == 1 and r["packs_deleted"] == 0
        (new,) = pack.names_in(origin.rels()) - {old}
        assert old in pack.names_in(origin.rels())  # not in the same run: a reader may have just read its index
        assert origin.read(marker_rel(old)) == f"{new}\n".encode()
        assert {e.oid for e in index_of(origin, new)} == {oid_of(data) for data in small.values()}

        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "3s", "--force")  # the marker is younger than 3 s
        assert r["packs_superseded"] == 1 and r["packs_deleted"] == 0 and old in pack.names_in(origin.rels())

        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")
        assert r["packs_deleted"] == 1 and r["packs_rewritten"] == 0
        rels = origin.rels()
        assert pack.names_in(rels) == {new} and not {pack.pack_rel(old), pack.index_rel(old), marker_rel(old)} & rels
        assert sum(len(data) for data in snapshot(origin).values()) < sum(len(data) for data in before.values())

        fresh_clone(repo)
        shutil.rmtree(repo / "many")
        mvc_cli("pull", "-q")
        assert {p.name: p.read_bytes() for p in (repo / "many").iterdir()} == small

    def test_a_corrupt_live_entry_refuses_deleting_nothing(self, repo, mvc_cli, mvc_error, origin, small):
        (old,) = pack.names_in(origin.rels())
        live = next(e for e in index_of(origin, old) if e.oid == oid_of(small["f00.bin"]))
        data = bytearray(origin.read(pack.pack_rel(old)))
        data[live.offset + 5] ^= 0xFF
        origin.write(pack.pack_rel(old), bytes(data))
        before = snapshot(origin)
        mvc_error(
            "gc", "-r", "origin", "--keep-last", "1", "--grace", "0", "--force", words=(old, "nothing was deleted")
        )
        assert snapshot(origin) == before

    def test_a_chunk_pack_mostly_dead_is_rewritten_with_the_recipes_naming_it(self, repo, mvc_cli, origin, retrained):
        v1, v2 = retrained
        recipe = recipe_of(origin, oid_of(v2))
        (old,) = {e.pack for e in recipe.entries} & {e.pack for e in recipe_of(origin, oid_of(v1)).entries}

        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")
        assert r["packs_rewritten"] == 1 and old in pack.names_in(origin.rels())
        new = origin.read(marker_rel(old)).decode().strip()
        again = recipe_of(origin, oid_of(v2))
        assert old not in {e.pack for e in again.entries} and new in {e.pack for e in again.entries}
        assert [e._replace(pack="", offset=0) for e in again.entries] == [
            e._replace(pack="", offset=0) for e in recipe.entries
        ]

        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")
        assert r["packs_deleted"] == 1 and old not in pack.names_in(origin.rels())
        assert pulled_fresh(repo, mvc_cli) == v2

    def test_stopped_after_the_new_pack_everything_stays_readable(self, repo, mvc_cli, origin, retrained, monkeypatch):
        _, v2 = retrained
        before = pack.names_in(origin.rels())

        def killed(*args: object) -> None:
            raise KeyboardInterrupt

        with monkeypatch.context() as m:
            m.setattr("mvc.objects.repack._put_recipe", killed)
            stopped = mvc_cli("gc", "-r", "origin", "--keep-last", "1", "--grace", "0", "--force", "-q", ok=False)
        assert stopped.exit_code == 130  # Ctrl-C, as a kill would stop it: between the new pack and the recipes
        rels = origin.rels()
        assert before < pack.names_in(rels) and not any(rel.endswith(".superseded") for rel in rels)
        assert pulled_fresh(repo, mvc_cli) == v2

        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")  # the next run finishes the job
        assert r["packs_rewritten"] == 1
        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")
        assert r["packs_deleted"] == 1 and not any(rel.endswith(".superseded") for rel in origin.rels())
        assert pulled_fresh(repo, mvc_cli) == v2

    def test_a_recipe_written_since_naming_the_old_pack_is_pointed_at_a_copy_again(
        self, repo, mvc_cli, origin, retrained
    ):
        """A push that rewrote a recipe from its journal (which still locates chunks in the old pack) after
        the rewrite: the old pack stays while a recipe names it, and the next run points that one at a copy."""
        _, v2 = retrained
        rel = recipe_rel(oid_of(v2))
        written_before = origin.read(rel)
        gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")
        (old,) = [r[len("packs/") : -len(".superseded")] for r in origin.rels() if r.endswith(".superseded")]
        origin.write(rel, written_before)

        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")
        assert r["packs_deleted"] == 0 and r["packs_rewritten"] == 1 and old in pack.names_in(origin.rels())
        assert old not in {e.pack for e in recipe_of(origin, oid_of(v2)).entries}
        r = gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")
        assert r["packs_deleted"] == 1 and old not in pack.names_in(origin.rels())
        assert pulled_fresh(repo, mvc_cli) == v2

    def test_a_marker_whose_pack_is_gone_is_deleted(self, repo, mvc_cli, origin, small):
        origin.write(marker_rel("0" * 32), b"1" * 32 + b"\n")
        assert gc_json(mvc_cli, "--grace", "0")["files"] == 1  # a dry run says so
        gc_json(mvc_cli, "--grace", "0", "--force")
        assert marker_rel("0" * 32) not in origin.rels()

    def test_a_pack_left_without_its_index_goes_after_the_grace(self, repo, mvc_cli, origin, small):
        """What a push killed between a pack and its index leaves: no reader can use it, no recipe names it."""
        (live,) = pack.names_in(origin.rels())
        orphan = "0" * 32
        origin.write(pack.pack_rel(orphan), b"bytes a killed push left" * 100)
        r = gc_json(mvc_cli, "--grace", "1h")
        assert r["files"] == 0 and pack.pack_rel(orphan) in origin.rels()  # younger than the grace: kept
        time.sleep(1.1)  # S3 dates writes to the second
        r = gc_json(mvc_cli, "--grace", "0")
        assert r["dry_run"] and r["files"] == 1 and pack.pack_rel(orphan) in origin.rels()
        r = gc_json(mvc_cli, "--grace", "0", "--force")
        assert r["packs_deleted"] == 1 and pack.pack_rel(orphan) not in origin.rels()
        assert pack.names_in(origin.rels()) == {live}
        fresh_clone(repo)
        shutil.rmtree(repo / "many")
        mvc_cli("pull", "-q")
        assert {p.name: p.read_bytes() for p in (repo / "many").iterdir()} == small

    def test_a_pack_a_kept_recipe_names_stays_without_its_index(self, repo, mvc_cli, origin, retrained):
        _, v2 = retrained
        named = {e.pack for e in recipe_of(origin, oid_of(v2)).entries}
        lost = sorted(named)[0]
        origin.delete(pack.index_rel(lost))
        time.sleep(1.1)
        r = gc_json(mvc_cli, "--grace", "0", "--force")
        assert pack.pack_rel(lost) in origin.rels() and r["packs_deleted"] == 0
        assert pulled_fresh(repo, mvc_cli) == v2  # the recipe's offsets read it

    def test_a_clone_whose_journal_places_objects_in_the_deleted_pack_finds_them_in_the_new_one(
        self, repo, mvc_cli, origin
    ):
        """Another clone read the old pack's index before gc rewrote it: once a later gc deleted it, that clone's
        fetch finds the pack gone, lists packs/ again and reads the objects from the new pack (not only alone,
        where they are not)."""
        names = [f"f{i:02d}.bin" for i in range(20)]
        for i, name in enumerate(names):
            make_file(repo / name, 30_000, seed=i)
        commit(repo, mvc_cli, "v1", *names)
        for i, name in enumerate(names[5:]):
            (repo / name).unlink()
            make_file(repo / name, 300, seed=100 + i)
        commit(repo, mvc_cli, "v2: 15 of 20 files small now", *names)
        mvc_cli("push", "-q", "--all-commits")
        kept = {name: (repo / name).read_bytes() for name in names}
        journal = repo / ".mvc" / "remotes.db"
        shutil.copy(journal, journal.with_suffix(".other"))  # the other clone's: the old pack only
        assert gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")["packs_rewritten"] == 1
        assert gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")["packs_deleted"] == 1
        fresh_clone(repo)
        shutil.copy(journal.with_suffix(".other"), journal)
        for name in names:
            (repo / name).unlink()
        mvc_cli("pull", "-q")
        assert {name: (repo / name).read_bytes() for name in names} == kept


class TestLocal(RepackSuite, LocalRemote):
    pass


class TestS3(RepackSuite, S3Remote):
    pass


def test_the_compacted_store_rewrites_its_packs_too(repo, mvc_cli, monkeypatch):
    """v0 compacted, then v1 (v0 with 3 of 4 tensors retrained) compacted naming v0's pack for the tensor they
    share; once v0 leaves the history its pack is 3/4 dead: rewritten, then deleted by the next gc."""
    pytest.importorskip("numpy")
    tensors = model_tensors(30, n=4, elements=1 << 20)
    versions = [
        tensors,
        tensors[:1] + model_tensors(31, n=3, elements=1 << 20),
        model_tensors(32, n=4, elements=1 << 20),
    ]
    commits = []
    for i, v in enumerate(versions):
        data = write_model(repo / "model.safetensors", v)
        commit(repo, mvc_cli, f"v{i}", "model.safetensors")
        commits.append((git(repo, "rev-parse", "HEAD").strip(), data))
        if i:
            mvc_cli("gc", "--compact", "--force", "-q")
    packs = repo / ".mvc" / "cache" / "compact" / "packs"
    mvc_cli("gc", "--keep-last", "2", "--grace", "0", "--force", "-q")
    (marker,) = packs.glob("*.superseded")
    old = marker.name.split(".")[0]
    assert (packs / f"{old}.pack").exists() and (packs / f"{marker.read_text().strip()}.idx").exists()
    mvc_cli("gc", "--keep-last", "2", "--grace", "0", "--force", "-q")
    assert not list(packs.glob(f"{old}.*"))
    git(repo, "checkout", "-q", commits[1][0])
    mvc_cli("checkout", "-q")
    assert (repo / "model.safetensors").read_bytes() == commits[1][1]


def test_a_read_without_a_clone_finds_objects_a_gc_moved_to_a_new_pack(repo, mvc_cli, tmp_path, monkeypatch):
    """``mvc get --repo URL`` and ``mvc.open`` (no clone, no cache: the user's journal) after its journal placed the
    objects in a pack that a gc then rewrote and deleted: the read lists packs/ again and takes them from the new
    pack, for one file and for a directory's files."""
    remote = tmp_path / "remote"
    mvc_cli("remote", "add", "origin", str(remote), "--default")
    for i in range(40):
        make_file(repo / "many" / f"f{i:02d}.bin", 1000 + 10 * i, seed=i)
    one = make_file(repo / "one.bin", 1500, seed=99).read_bytes()
    commit(repo, mvc_cli, "40 files", "many", "one.bin")
    for i in range(10, 40):
        (repo / "many" / f"f{i:02d}.bin").unlink()
    commit(repo, mvc_cli, "10 of them", "many")
    mvc_cli("push", "-q", "--all-commits")
    many = {p.name: p.read_bytes() for p in (repo / "many").iterdir()}
    (old,) = pack.names_in({str(p.relative_to(remote)) for p in remote.rglob("*")})

    monkeypatch.setenv("MVC_CACHE_DIR", str(tmp_path / "user-cache"))  # the reader's journal is its own
    mvc_cli("get", "-q", "--repo", str(repo), "one.bin", "-o", str(tmp_path / "a"))
    mvc_cli("get", "-q", "--repo", str(repo), "many", "-o", str(tmp_path / "d"))
    assert gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")["packs_rewritten"] == 1
    assert gc_json(mvc_cli, "--keep-last", "1", "--grace", "0", "--force")["packs_deleted"] == 1
    assert not (remote / pack.pack_rel(old)).exists()

    with mvc.open("one.bin", repo=str(repo)) as f:  # streamed: ranged reads where the journal places it
        assert f.read() == one
    mvc_cli("get", "-q", "--repo", str(repo), "one.bin", "-o", str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == one
    mvc_cli("get", "-q", "--repo", str(repo), "many", "-o", str(tmp_path / "d2"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "d2").iterdir()} == many
