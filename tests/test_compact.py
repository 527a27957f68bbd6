"""``mvc gc --compact``: versions of large files the work tree does not hold kept as chunks and deltas in the
cache's compacted store, rebuilt whole (and checked) by whatever needs them; gc keeps what kept versions need
and drops the rest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import git
from remote_suite import fine_tune, model_tensors, write_model
from remote_suite import oid_of as oid_of_bytes

import mvc

VERSIONS = 6


def cache_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / ".mvc" / "cache").rglob("*") if p.is_file())


def oid_of(repo: Path, path: str = "model.safetensors") -> str:
    import tomllib

    return tomllib.loads((repo / f"{path}.mvc").read_text())["oid"]


@pytest.fixture
def history(repo, mvc_cli) -> list[tuple[str, bytes, str]]:
    """VERSIONS commits of model.safetensors (6 MiB of bf16), each a small fine-tune of the last:
    [(commit, bytes, oid)], the last one checked out."""
    tensors = model_tensors(7, n=3, elements=1 << 20)
    out = []
    for i in range(VERSIONS):
        if i:
            tensors = fine_tune(tensors, 100 + i)
        data = write_model(repo / "model.safetensors", tensors)
        mvc_cli("add", "model.safetensors", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"v{i}")
        out.append((git(repo, "rev-parse", "HEAD").strip(), data, oid_of(repo)))
    return out


def compact(mvc_cli, *args: str) -> dict:
    return json.loads(mvc_cli("gc", "--compact", "--json", "-q", *args).stdout)


def test_dry_run_names_the_old_versions_and_changes_nothing(repo, mvc_cli, history):
    before = cache_bytes(repo)
    r = compact(mvc_cli)
    assert r["compact"]["dry_run"] and r["compact"]["objects"] == VERSIONS - 1
    assert {v["oid"] for v in r["compact"]["versions"]} == {oid for _, _, oid in history[:-1]}
    assert cache_bytes(repo) == before


def test_compaction_shrinks_the_cache_and_every_version_comes_back(repo, mvc_cli, history):
    whole = cache_bytes(repo)
    r = compact(mvc_cli, "--force")["compact"]
    assert r["objects"] == VERSIONS - 1 and r["freed"] == (VERSIONS - 1) * len(history[0][1])
    after = cache_bytes(repo)
    assert after < whole / 2, (after, whole)  # deltas of small fine-tunes: far less than the versions whole
    assert mvc_cli("status").stdout == "model.safetensors: up to date\n"
    for commit, data, _ in history:  # each old version rebuilt (and checked) into the work tree
        git(repo, "checkout", "-q", commit)
        mvc_cli("checkout", "-q")
        assert (repo / "model.safetensors").read_bytes() == data
    assert compact(mvc_cli, "--force")["compact"]["objects"] == VERSIONS - 1  # rebuilt ones compacted again
    assert mvc_cli("verify").exit_code == 0


@pytest.mark.parametrize("tracked", ["model.safetensors", "ckpt"])
def test_compaction_after_each_new_version_keeps_every_old_one(repo, mvc_cli, tmp_path, tracked):
    """Compacted after every new version: each time the version that was the work tree's, already the base of
    older compacted ones, becomes deltas on the new one, so chains grow one hop a round, until a version more
    than MAX_DEPTH hops down is compacted again against the work tree's; every version still comes back byte for
    byte, and verify agrees. The same for the file of a tracked directory (beside a small config.json: the base
    is the work tree's file at the same path in the directory)."""
    from mvc.api import compact as api
    from mvc.objects import recipe as rc
    from mvc.repo import compact as compactmod

    model = repo / ("model.safetensors" if tracked == "model.safetensors" else "ckpt/model.safetensors")
    if tracked == "ckpt":
        model.parent.mkdir()
        (model.parent / "config.json").write_text("{}\n")
    tensors = model_tensors(9, n=3, elements=1 << 20)
    kept = []
    rebased = 0
    for i in range(8):
        if i:
            tensors = fine_tune(tensors, 200 + i, share=0.02)
        data = write_model(model, tensors)
        mvc_cli("add", tracked, "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"v{i}")
        git(repo, "tag", f"v{i}")
        kept.append(data)
        if i:
            r = compact(mvc_cli, "--force", "--grace", "0")["compact"]
            assert r["objects"] == 1
            rebased += r["rebased"]
            store = mvc.Repo(str(repo))
            memo: dict[str, int] = {}
            assert max(api._hops(store, o, memo) for o in compactmod.all_held(store)) <= rc.MAX_DEPTH  # bounded
    assert rebased > 0
    # seven old versions whole: 7 sizes; as deltas of 2% fine-tunes (rebased ones included), far less
    assert _store_bytes(repo) < len(kept[0]) / 2, (_store_bytes(repo), len(kept[0]))
    for i, data in enumerate(kept):
        mvc_cli("get", tracked, "--rev", f"v{i}", "-o", str(tmp_path / f"v{i}"), "-q")
        got = tmp_path / f"v{i}" / "model.safetensors" if tracked == "ckpt" else tmp_path / f"v{i}"
        assert got.read_bytes() == data
    assert mvc_cli("verify", "--all-tags").exit_code == 0


def _store_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / ".mvc" / "cache" / "compact").rglob("*") if p.is_file())


def test_get_and_open_rebuild_a_compacted_version(repo, mvc_cli, history, tmp_path):
    import mvc

    compact(mvc_cli, "--force")
    first_commit, first, _ = history[0]
    out = tmp_path / "old.safetensors"
    mvc_cli("get", "model.safetensors", "--rev", first_commit, "-o", str(out))
    assert out.read_bytes() == first
    with mvc.open("model.safetensors", rev=history[1][0]) as f:
        assert f.read() == history[1][1]


def test_push_sends_a_compacted_version_whole_to_a_remote_that_lacks_it(repo, mvc_cli, history, tmp_path):
    compact(mvc_cli, "--force")
    mvc_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default")
    git(repo, "checkout", "-q", history[0][0])
    mvc_cli("push")
    objects = cache_dir_objects(repo)
    assert history[0][2].split(":")[1][2:] in objects  # rebuilt whole to be sent; the work tree's: it stays
    before = cache_dir_objects(repo)
    mvc_cli("push", "--all-commits", "-r", "origin")  # the other old versions: sent, then compacted again
    assert cache_dir_objects(repo) == before
    fresh = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(fresh))
    os.chdir(fresh)
    git(fresh, "checkout", "-q", history[0][0])
    mvc_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default")
    mvc_cli("pull", "-q")
    assert (fresh / "model.safetensors").read_bytes() == history[0][1]


def cache_dir_objects(repo: Path) -> set[str]:
    return {p.name for p in (repo / ".mvc" / "cache" / "objects").rglob("*") if p.is_file()}


def test_gc_keeps_what_kept_compacted_versions_need_and_drops_the_rest(repo, mvc_cli, history):
    compact(mvc_cli, "--force")
    # every version but the last two leaves the history: their compacted copies go, the others still rebuild
    git(repo, "checkout", "-q", "--orphan", "fresh")
    git(repo, "commit", "-q", "-m", "only the last")
    for branch in git(repo, "branch", "--format=%(refname:short)").split():
        if branch != "fresh":
            git(repo, "branch", "-q", "-D", branch)
    git(repo, "reflog", "expire", "--expire=now", "--all")
    r = json.loads(mvc_cli("gc", "--force", "--grace", "0", "--json", "-q").stdout)
    assert r["compacted_files"] > 0
    assert mvc_cli("verify").exit_code == 0
    assert (repo / "model.safetensors").read_bytes() == history[-1][1]


def test_a_damaged_compacted_version_is_refused_never_written(repo, mvc_cli, mvc_error, history):
    compact(mvc_cli, "--force")
    packs = sorted((repo / ".mvc" / "cache" / "compact" / "packs").rglob("*.pack"))
    assert packs
    for p in packs:
        p.chmod(0o644)
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    git(repo, "checkout", "-q", history[0][0])
    before = (repo / "model.safetensors").read_bytes()
    line = mvc_error("checkout")
    assert "model.safetensors" in line
    assert (repo / "model.safetensors").read_bytes() == before


def test_nothing_small_or_checked_out_is_compacted(repo, mvc_cli):
    (repo / "small.bin").write_bytes(b"x" * 1000)
    mvc_cli("add", "small.bin")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "s1")
    (repo / "small.bin").write_bytes(b"y" * 1000)
    mvc_cli("add", "small.bin")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "s2")
    assert compact(mvc_cli, "--force")["compact"]["objects"] == 0


def test_verify_rebuilds_compacted_versions_and_names_a_damaged_one(repo, mvc_cli, history):
    compact(mvc_cli, "--force")
    ok = json.loads(mvc_cli("verify", "--json", "--all-tags").stdout)
    assert ok["cache"]["objects"] >= VERSIONS and not ok["cache"]["corrupt"]
    recipes = sorted((repo / ".mvc" / "cache" / "compact" / "recipes").rglob("*"))
    victim = next(p for p in recipes if p.is_file())
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes().replace(b"size ", b"size 1", 1))
    r = mvc_cli("verify", "--json", ok=False)
    assert r.exit_code != 0
    bad = json.loads(r.stdout)["cache"]["corrupt"]
    assert bad == ["xxh128:" + victim.parent.name + victim.name]


def test_a_version_with_no_base_is_compacted_with_its_recipe(repo, mvc_cli, monkeypatch):
    """A directory store takes a large file with no earlier version as a lone pack (docs/FORMAT.md, "Lone
    packs"); the compacted store never does: what it holds is what has a recipe there, so a version stored
    that way would be found nowhere once its whole copy went."""
    monkeypatch.setattr("mvc.objects.chunked.LONE_FROM", 1 << 20)
    data = write_model(repo / "gone.safetensors", model_tensors(9, n=3, elements=1 << 20))
    mvc_cli("add", "gone.safetensors", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "gone")
    oid = oid_of(repo, "gone.safetensors")
    git(repo, "rm", "-q", "gone.safetensors.mvc")
    (repo / "gone.safetensors").unlink()
    git(repo, "commit", "-q", "-m", "removed")
    r = compact(mvc_cli, "--force")["compact"]
    assert r["objects"] == 1 and r["freed"] == len(data)
    digest = oid.split(":", 1)[1]
    root = repo / ".mvc" / "cache" / "compact"
    assert (root / "recipes" / digest[:2] / digest[2:]).is_file()
    assert not (root / "packs" / f"{digest}.pack").exists() or (root / "packs" / f"{digest}.idx").exists()
    git(repo, "checkout", "-q", "HEAD~1")
    mvc_cli("checkout", "-q")
    assert (repo / "gone.safetensors").read_bytes() == data
    assert mvc_cli("verify").exit_code == 0


def directory_versions(repo: Path, mvc_cli, retrain_last: bool) -> list[tuple[str, bytes]]:
    """Four commits of directory ckpt (a small config.json before model.safetensors, 6 MiB of bf16), each a small
    fine-tune of the last, but the fourth retrained (new random values) when retrain_last: [(commit, model bytes)],
    the fourth checked out."""
    tensors = model_tensors(11, n=3, elements=1 << 20)
    out = []
    for i in range(4):
        if i == 3 and retrain_last:
            tensors = model_tensors(12, n=3, elements=1 << 20)
        elif i:
            tensors = fine_tune(tensors, 300 + i)
        (repo / "ckpt").mkdir(exist_ok=True)
        (repo / "ckpt" / "config.json").write_text(f'{{"step": {i}}}\n')
        data = write_model(repo / "ckpt" / "model.safetensors", tensors)
        mvc_cli("add", "ckpt", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"v{i}")
        out.append((git(repo, "rev-parse", "HEAD").strip(), data))
    return out


def comes_back(repo: Path, mvc_cli, versions: list[tuple[str, bytes]]) -> None:
    for commit, data in versions:
        git(repo, "checkout", "-q", commit)
        mvc_cli("checkout", "-q")
        assert (repo / "ckpt" / "model.safetensors").read_bytes() == data
    assert mvc_cli("verify").exit_code == 0


def test_a_directory_file_is_compacted_against_the_work_tree_version_at_its_path(repo, mvc_cli):
    """The base tried first for a file of a tracked directory is the work tree's file at the same path in that
    directory (ckpt/model.safetensors), not another of its files."""
    versions = directory_versions(repo, mvc_cli, retrain_last=False)
    r = compact(mvc_cli, "--force")["compact"]
    size = len(versions[0][1])
    assert r["objects"] == 3 and r["freed"] == 3 * size
    assert r["stored"] < size, (r["stored"], size)  # three deltas against the work tree's version (whole: 3 sizes)
    comes_back(repo, mvc_cli, versions)


def test_a_directory_file_is_compacted_against_its_older_versions(repo, mvc_cli):
    """The work tree's version retrained (nothing in common): each old version of a file of a tracked directory
    is stored as deltas against the version before it, as a push would, not as chunks whole."""
    versions = directory_versions(repo, mvc_cli, retrain_last=True)
    r = compact(mvc_cli, "--force")["compact"]
    size = len(versions[0][1])
    assert r["objects"] == 3 and r["freed"] == 3 * size
    # the oldest has nothing older: its chunks, then two small deltas (each version whole: 3 sizes)
    assert r["stored"] < size * 1.5, (r["stored"], size)
    oids = [oid_of_bytes(data) for _, data in versions]
    assert delta_bases(repo, oids[0]) == set()
    assert delta_bases(repo, oids[1]) == {oids[0]} and delta_bases(repo, oids[2]) == {oids[1]}
    comes_back(repo, mvc_cli, versions)


def delta_bases(repo: Path, oid: str) -> set[str]:
    """The versions the deltas of compacted version oid are made against."""
    from mvc.objects import recipe as rc

    path = repo / ".mvc" / "cache" / "compact" / rc.rel(oid)
    return {e.base for e in rc.parse(path.read_bytes(), str(path), oid).entries if e.kind == "d"}
