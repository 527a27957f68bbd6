"""Lone packs (docs/FORMAT.md, "Lone packs"): on a directory remote, a large file with no earlier version is
pushed as one pack named by its digest, uncut, with no index and no recipe. Every reader reads it, a push and
``--verify-remote`` count it present, an mvc that does not know layout format 4 refuses the remote, the push of
the next version lists its chunks (index, then recipe) and sends only what changed, and gc keeps it while a kept
version names it and deletes it (the journal forgetting it) once none does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git
from remote_suite import (
    MARKER,
    SMALL_CHUNK_FROM,
    LocalRemote,
    WithOrigin,
    cache_dir,
    cache_objects,
    contents,
    fine_tune,
    fresh_clone,
    model_tensors,
    oid_of,
    one_error_line,
    recipe_of,
    recipe_rel,
    rel_of,
    sent_bytes,
    spy_windows,
    write_model,
)


def digest(data: bytes) -> str:
    return oid_of(data).split(":", 1)[1]


def commit_model(repo: Path, mvc_cli, tensors: list, message: str, name: str = "model.safetensors") -> bytes:
    data = write_model(repo / name, tensors)
    mvc_cli("add", name)
    git(repo, "commit", "-q", "-m", message)
    return data


class TestLonePacks(WithOrigin, LocalRemote):
    @pytest.fixture(autouse=True)
    def lone(self, monkeypatch) -> None:
        """mvc (in this process) chunks files of 1 MiB and more, and pushes new ones of that size as lone packs."""
        monkeypatch.setattr("mvc.objects.chunked.CHUNK_FROM", SMALL_CHUNK_FROM)
        monkeypatch.setattr("mvc.objects.chunked.LONE_FROM", SMALL_CHUNK_FROM)

    def test_a_new_file_is_one_lone_pack_every_reader_reads(self, repo, mvc_cli, origin):
        from mvc.objects import layout, pack

        v1 = commit_model(repo, mvc_cli, model_tensors(60, n=3, elements=1 << 19), "v1")
        assert f"pushed 1 object ({len(v1) / (1 << 20):.1f} MiB)" in mvc_cli("push").output
        assert contents(origin) == {MARKER, pack.pack_rel(digest(v1))}  # no index, no recipe, not cut
        assert origin.read(pack.pack_rel(digest(v1))) == v1
        assert origin.read(MARKER) == layout.marker_bytes(layout.LONE)  # raised before the pack
        assert "nothing to push" in mvc_cli("push").output
        assert "nothing to push" in mvc_cli("push", "--verify-remote").output  # the listing of packs/ finds it
        fresh_clone(repo)
        assert "not fetched from origin" in mvc_cli("status", "-r", "origin").output  # there: a fetch gets it
        assert "nothing to push" in mvc_cli("push").output  # a journal that never saw it: the listing says so

        (repo / "model.safetensors").unlink()
        assert "fetched 1 object" in mvc_cli("pull").output
        assert (repo / "model.safetensors").read_bytes() == v1
        assert cache_objects(repo) == {rel_of(oid_of(v1))}
        fresh_clone(repo)
        mvc_cli("get", "model.safetensors", "-o", str(repo.parent / "copy"))
        assert (repo.parent / "copy").read_bytes() == v1
        fresh_clone(repo)  # verify -r downloads it and hashes it (nothing in the cache)
        report = json.loads(mvc_cli("verify", "-r", "origin", "--json", "-q").stdout)
        assert report["problems"] == [] and report["downloaded"] == len(v1), report

        import mvc

        with mvc.open("model.safetensors", repo=str(repo), remote="origin") as f:
            assert f.read() == v1

    @staticmethod
    def damaged_lone_pack(repo, mvc_cli, origin, seed: int) -> bytes:
        """v1 committed and pushed as a lone pack, then a bit of that pack flipped on the remote; v1's bytes."""
        from mvc.objects import pack

        v1 = commit_model(repo, mvc_cli, model_tensors(seed, n=3, elements=1 << 19), "v1")
        mvc_cli("push")
        bad = bytearray(v1)
        bad[len(bad) // 2] ^= 1
        origin.write(pack.pack_rel(digest(v1)), bytes(bad))
        return v1

    def test_a_corrupt_lone_pack_is_refused(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        v1 = self.damaged_lone_pack(repo, mvc_cli, origin, 61)
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        line = one_error_line(mvc_cli("pull", ok=False))
        assert "corrupt" in line and pack.pack_rel(digest(v1)) in line, line
        assert not (repo / "model.safetensors").exists() and rel_of(oid_of(v1)) not in cache_objects(repo)

    def test_verify_repair_rewrites_a_corrupt_lone_pack_from_the_cache(self, repo, mvc_cli, origin):
        from mvc.objects import pack

        v1 = self.damaged_lone_pack(repo, mvc_cli, origin, 71)
        report = json.loads(mvc_cli("verify", "-r", "origin", "--repair", "--json", "-q").stdout)
        assert [(p["repaired"], p["remote_file"]) for p in report["problems"]] == [(True, pack.pack_rel(digest(v1)))]
        assert origin.read(pack.pack_rel(digest(v1))) == v1

    def test_an_mvc_that_does_not_read_format_4_refuses_the_remote(self, repo, mvc_cli, origin, monkeypatch):
        from mvc.objects import layout

        commit_model(repo, mvc_cli, model_tensors(62, n=3, elements=1 << 19), "v1")
        mvc_cli("push")
        monkeypatch.setattr(layout, "FORMATS", (1, 2, 3))
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        line = one_error_line(mvc_cli("pull", ok=False))
        assert MARKER in line and "format 4" in line and "upgrade mvc" in line, line
        assert not (repo / "model.safetensors").exists()

    def test_the_next_version_lists_its_chunks_and_sends_what_changed(self, repo, mvc_cli, origin):
        """v2 is v1 with 4 KiB changed: its push writes v1's index and recipe (v1's pack stays as it was) and
        sends a chunk or two; a clone holding v1 fetches little of v2; both rebuild in a fresh clone."""
        from mvc.objects import pack

        tensors = model_tensors(63, n=3, elements=1 << 20)  # 6 MiB
        v1 = commit_model(repo, mvc_cli, tensors, "v1")
        mvc_cli("push")
        tensors[1][300_000:302_048] ^= 0x5A5A
        v2 = commit_model(repo, mvc_cli, tensors, "v2")
        assert sent_bytes(mvc_cli("push").output) < len(v2) // 20
        name = digest(v1)
        assert {pack.index_rel(name), recipe_rel(oid_of(v1))} <= contents(origin)
        assert origin.read(pack.pack_rel(name)) == v1
        r1 = recipe_of(origin, oid_of(v1))
        assert {e.pack for e in r1.entries} == {name} and all(e.offset == e.at for e in r1.entries)
        r2 = recipe_of(origin, oid_of(v2))
        assert sum(e.size for e in r2.entries if e.pack == name) > len(v2) * 0.9  # v1's chunks, where they are
        entries = pack.parse_index(origin.read(pack.index_rel(name)), name, len(v1))
        assert {e.oid for e in entries} == {e.oid for e in r1.entries}

        fresh_clone(repo)  # a clone that fetched v1 before v2 was pushed
        mvc_cli("fetch", "--rev", "HEAD~1")
        (repo / "model.safetensors").unlink()
        out = mvc_cli("pull").output
        assert "fetched 1 object" in out and sent_bytes(out) < len(v2) // 20, out
        assert (repo / "model.safetensors").read_bytes() == v2
        fresh_clone(repo)
        mvc_cli("fetch", "--rev", "HEAD~1", "--rev", "HEAD")
        assert cache_objects(repo) == {rel_of(oid_of(v1)), rel_of(oid_of(v2))}
        assert (cache_dir(repo) / rel_of(oid_of(v1))).read_bytes() == v1

    def test_a_fine_tune_of_a_lone_pack_is_stored_as_deltas(self, repo, mvc_cli, origin):
        base = model_tensors(64, n=3, elements=1 << 19)
        v1 = commit_model(repo, mvc_cli, base, "v1")
        mvc_cli("push")
        before = {rel: len(origin.read(rel)) for rel in contents(origin)}
        v2 = commit_model(repo, mvc_cli, fine_tune(base, 65), "v2")
        mvc_cli("push")
        grown = sum(len(origin.read(rel)) for rel in contents(origin) - set(before))
        assert grown < len(v2) * 0.3, (grown, len(v2))
        deltas = [e for e in recipe_of(origin, oid_of(v2)).entries if e.kind == "d"]
        assert deltas and {e.base for e in deltas} == {oid_of(v1)}
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2

    def test_a_light_fine_tune_is_sparse_deltas_on_the_lone_pack(self, repo, mvc_cli, origin, monkeypatch):
        """A fine-tune that moves 1 % of its values is stored as sparse deltas on the lone pack of v1; a clone
        rebuilds it to v2's exact bytes, reading v1's bytes from that pack (no copy of v1 at hand) or from its
        cache (v1 fetched first: then only the deltas are downloaded), either way through a small window, each
        delta at a time (``Rebuilder._patch_run``)."""
        from mvc.objects import delta

        base = model_tensors(67, n=3, elements=1 << 19)
        commit_model(repo, mvc_cli, base, "v1")
        mvc_cli("push")
        v2 = commit_model(repo, mvc_cli, fine_tune(base, 68, share=0.01), "v2")
        mvc_cli("push")
        deltas = [e for e in recipe_of(origin, oid_of(v2)).entries if e.kind == "d"]
        assert deltas and {e.codec for e in deltas} == {delta.ZS}
        windowed = spy_windows(monkeypatch)
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2
        assert sorted(windowed) == sorted(e.size for e in deltas)
        fresh_clone(repo)
        mvc_cli("fetch", "--rev", "HEAD~1")
        (repo / "model.safetensors").unlink()
        windowed.clear()
        out = mvc_cli("pull").output
        assert sent_bytes(out) < len(v2) // 10, out  # the deltas, not v1's bytes again
        assert (repo / "model.safetensors").read_bytes() == v2
        assert sorted(windowed) == sorted(e.size for e in deltas)

    def test_a_cut_short_base_of_sparse_deltas_is_refused(self, repo, mvc_cli, origin):
        """v1's lone pack cut short after v2's sparse deltas were pushed on it: the pull says in one line that it
        is cut short and how to mend it, and leaves no file and nothing in the cache."""
        from mvc.objects import pack

        base = model_tensors(71, n=3, elements=1 << 19)
        v1 = commit_model(repo, mvc_cli, base, "v1")
        mvc_cli("push")
        v2 = commit_model(repo, mvc_cli, fine_tune(base, 72, share=0.01), "v2")
        mvc_cli("push")
        origin.write(pack.pack_rel(digest(v1)), v1[: len(v1) // 2])
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        line = one_error_line(mvc_cli("pull", ok=False))
        assert oid_of(v1) in line and "cut short" in line and "verify -r origin --repair" in line, line
        assert line.count("nothing was written") == 1, line
        assert not (repo / "model.safetensors").exists() and rel_of(oid_of(v2)) not in cache_objects(repo)

    def test_a_corrupt_base_of_sparse_deltas_is_refused(self, repo, mvc_cli, origin):
        """v1's lone pack damaged after v2's sparse deltas were pushed on it: the rebuilt v2 does not hash to
        its oid, and the pull says so in one line naming v1, leaving no file and nothing in the cache."""
        from mvc.objects import pack

        base = model_tensors(69, n=3, elements=1 << 19)
        v1 = commit_model(repo, mvc_cli, base, "v1")
        mvc_cli("push")
        v2 = commit_model(repo, mvc_cli, fine_tune(base, 70, share=0.01), "v2")
        mvc_cli("push")
        bad = bytearray(v1)
        bad[len(bad) // 2] ^= 0x10
        origin.write(pack.pack_rel(digest(v1)), bytes(bad))
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        line = one_error_line(mvc_cli("pull", ok=False))
        assert "corrupt" in line and oid_of(v1) in line, line
        assert not (repo / "model.safetensors").exists() and rel_of(oid_of(v2)) not in cache_objects(repo)

    def test_a_rotten_cache_copy_is_not_described(self, repo, mvc_cli, origin):
        """v1's copy in the cache rotted after its push: v2's push does not describe v1 from it (it is
        quarantined) and stores v2 whole in chunks; both still rebuild from the remote."""
        from mvc.objects import pack

        tensors = model_tensors(66, n=3, elements=1 << 19)
        v1 = commit_model(repo, mvc_cli, tensors, "v1")
        mvc_cli("push")
        rotten = bytearray(v1)
        rotten[len(v1) // 3] ^= 0xFF
        path = cache_dir(repo) / rel_of(oid_of(v1))
        path.chmod(0o644)
        path.write_bytes(bytes(rotten))
        tensors[2][1000:3048] ^= 0x0101
        v2 = commit_model(repo, mvc_cli, tensors, "v2")
        mvc_cli("push")
        assert recipe_rel(oid_of(v1)) not in contents(origin) and pack.index_rel(digest(v1)) not in contents(origin)
        fresh_clone(repo)
        (repo / "model.safetensors").unlink()
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v2
        git(repo, "checkout", "-q", "HEAD~1")
        mvc_cli("pull")
        assert (repo / "model.safetensors").read_bytes() == v1

    def test_gc_keeps_a_kept_lone_pack_and_deletes_a_dead_one(self, repo, mvc_cli, origin, tmp_path):
        from mvc.objects import pack

        bare = tmp_path / "git-origin.git"
        git(tmp_path, "init", "-q", "--bare", str(bare))
        git(repo, "remote", "add", "gitorigin", str(bare))
        kept = commit_model(repo, mvc_cli, model_tensors(67, n=3, elements=1 << 19), "v1")
        git(repo, "push", "-q", "gitorigin", "HEAD:refs/heads/main")
        git(repo, "checkout", "-q", "-b", "side")
        dead = commit_model(repo, mvc_cli, model_tensors(68, n=3, elements=1 << 19), "side", "other.safetensors")
        mvc_cli("push", "-q", "--all-commits")
        git(repo, "checkout", "-q", "-")
        git(repo, "branch", "-q", "-D", "side")
        git(repo, "reflog", "expire", "--expire=now", "--all")
        assert {pack.pack_rel(digest(kept)), pack.pack_rel(digest(dead))} <= contents(origin)

        # the dead one with an index a push stopped before the recipe left, the kept one without
        dead_index = pack.render_index([pack.Entry(oid_of(dead[:1000]), 0, 1000)])
        origin.write(pack.index_rel(digest(dead)), dead_index)
        r = json.loads(mvc_cli("gc", "-r", "origin", "--json", "-q", "--grace", "0").stdout)
        assert r["dry_run"] and r["packs_deleted"] == 1 and r["bytes"] == len(dead) + len(dead_index)
        r = json.loads(mvc_cli("gc", "-r", "origin", "--json", "-q", "--grace", "0", "--force").stdout)
        assert r["packs_deleted"] == 1 and r["bytes"] == len(dead) + len(dead_index)
        assert not {pack.pack_rel(digest(dead)), pack.index_rel(digest(dead))} & contents(origin)
        assert origin.read(pack.pack_rel(digest(kept))) == kept
        # still kept with an index a push stopped before the recipe left: no recipe names its entries
        index = pack.render_index([pack.Entry(oid_of(kept[:1000]), 0, 1000)])
        origin.write(pack.index_rel(digest(kept)), index)
        r = json.loads(mvc_cli("gc", "-r", "origin", "--json", "-q", "--grace", "0", "--force").stdout)
        assert r["packs_deleted"] == 0 and origin.read(pack.pack_rel(digest(kept))) == kept
        # the journal forgot the dead one: the same file pushed again is sent again
        write_model(repo / "again.safetensors", model_tensors(68, n=3, elements=1 << 19))
        mvc_cli("add", "again.safetensors")
        git(repo, "commit", "-q", "-m", "again")
        assert "pushed 1 object" in mvc_cli("push").output
        assert origin.read(pack.pack_rel(digest(dead))) == dead
