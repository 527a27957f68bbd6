"""mvc gc (the local cache) and mvc verify, mvc registry --check (docs/FORMAT.md, "What gc keeps"): what gc
keeps whatever the flags, what it lets go, its refusals; what verify finds, names and repairs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import git, make_file

from mvc.objects import oid as oids


def cache_oids(root: Path) -> set[str]:
    found = set()
    for prefix in (root / ".mvc" / "cache" / "objects").iterdir():
        for entry in prefix.iterdir():
            oid = oids.from_relpath(f"{prefix.name}/{entry.name}")
            if oid:
                found.add(oid)
    return found


def pointer_oid(path: Path) -> str:
    import tomllib

    return tomllib.loads(path.with_name(path.name + ".mvc").read_text())["oid"]


def commit_version(repo: Path, mvc_cli, text: str, name: str = "m.bin", model: str | None = None) -> str:
    (repo / name).write_text(text)
    mvc_cli("add", name, *(["--name", model] if model else []), "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", text[:20])
    return pointer_oid(repo / name)


def add_and_forget(repo: Path, mvc_cli, text: str) -> str:
    """junk.bin added, then its pointer thrown away (unstaged and deleted): its object named by nothing."""
    (repo / "junk.bin").write_text(text)
    mvc_cli("add", "junk.bin", "-q")
    junk = pointer_oid(repo / "junk.bin")
    git(repo, "rm", "-q", "--cached", "junk.bin.mvc")
    os.unlink(repo / "junk.bin.mvc")
    return junk


def gc_json(mvc_cli, *args: str) -> dict:
    return json.loads(mvc_cli("gc", "--json", "-q", *args).stdout)


@pytest.fixture
def history(repo, mvc_cli) -> list[str]:
    """m.bin in four committed versions (oldest first)."""
    return [commit_version(repo, mvc_cli, f"version {i} " * 50) for i in range(4)]


def test_dry_run_deletes_nothing_and_says_what_would_go(repo, mvc_cli, history):
    junk = add_and_forget(repo, mvc_cli, "never committed")
    before = cache_oids(repo)
    r = gc_json(mvc_cli, "--grace", "0")
    assert r["dry_run"] and r["objects"] == 1 and r["groups"][0]["what"] == "not named by any pointer"
    assert cache_oids(repo) == before
    r = gc_json(mvc_cli, "--grace", "0", "--force")
    assert r["objects"] == 1 and cache_oids(repo) == before - {junk}
    assert set(history) <= cache_oids(repo)  # the whole history is kept by default


def test_gc_rev_names_the_versions_it_leaves_out_by_their_commits(repo, mvc_cli, history):
    """--rev keeps one history: the versions only the rest of it names are labelled by their commit, not orphans."""
    junk = add_and_forget(repo, mvc_cli, "junk " * 50)
    commits = git(repo, "rev-list", "-3", "HEAD~1").split()  # versions 2, 1, 0 (version 3 is HEAD's: kept)
    r = gc_json(mvc_cli, "--rev", commits[2], "--grace", "0")
    whats = sorted(g["what"] for g in r["groups"])
    assert whats == sorted(
        [f"m.bin at {c[:10]}, outside --rev's history" for c in commits[:2]] + ["not named by any pointer"]
    ), whats
    assert r["objects"] == 3 and junk in cache_oids(repo)  # a dry run


def test_the_grace_period_keeps_young_objects(repo, mvc_cli, history):
    junk = add_and_forget(repo, mvc_cli, "just added, pointer thrown away")
    r = gc_json(mvc_cli, "--force")  # default grace: 14 days
    assert r["objects"] == 0 and r["young"] == 1 and junk in cache_oids(repo)


def test_keep_last_narrows_history_but_never_the_tips(repo, mvc_cli, history):
    r = gc_json(mvc_cli, "--grace", "0", "--keep-last", "2", "--force")
    assert r["objects"] == 2
    assert cache_oids(repo) >= {history[3], history[2]} and not {history[0], history[1]} & cache_oids(repo)
    assert "m.bin at" in r["groups"][0]["what"]  # named by path and commit
    gc_json(mvc_cli, "--grace", "0", "--keep-last", "0", "--force")
    assert history[3] in cache_oids(repo)  # HEAD's version, and the work tree's


def test_refs_tags_stashes_index_and_worktrees_are_kept(repo, mvc_cli, history, tmp_path):
    base = git(repo, "rev-parse", "HEAD").strip()
    # a branch off an old version, a plain tag, a registry version on a commit no branch holds
    git(repo, "branch", "old", "HEAD~2")
    git(repo, "tag", "-a", "-m", "t", "kept-tag", "HEAD~3")
    side = commit_version(repo, mvc_cli, "only on a registry tag " * 20, model="churn")
    mvc_cli("register", "churn", "-q")
    git(repo, "reset", "-q", "--hard", base)
    # a stash holding a version
    (repo / "m.bin").write_text("stashed version " * 30)
    mvc_cli("add", "m.bin", "-q")
    stashed = pointer_oid(repo / "m.bin")
    git(repo, "stash", "-q")
    # a staged version whose work tree pointer is gone
    (repo / "s.bin").write_text("staged only " * 30)
    mvc_cli("add", "s.bin", "-q")
    staged = pointer_oid(repo / "s.bin")
    os.unlink(repo / "s.bin.mvc")
    os.unlink(repo / "s.bin")
    # another worktree checked out at an older version
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "--detach", str(wt), "HEAD~1")
    gc_json(mvc_cli, "--grace", "0", "--keep-last", "0", "--force")
    left = cache_oids(repo)
    assert {history[3], history[1], history[0], history[2], side, stashed, staged} <= left


def test_a_worktree_on_a_disk_not_mounted_keeps_what_its_index_stages(repo, mvc_cli, history, tmp_path):
    """A linked worktree whose directory is gone (a locked worktree on a disk not mounted): its index, which git
    keeps in the repository until 'git worktree prune', still names what it staged, edited since in its files."""
    usb = tmp_path / "usb"
    git(repo, "worktree", "add", "-q", "-b", "side", str(usb))
    git(repo, "worktree", "lock", "--reason", "on a USB disk", str(usb))
    (usb / "w.bin").write_text("staged in the other worktree " * 20)
    mvc_cli("-C", str(usb), "add", "w.bin", "-q")
    staged = pointer_oid(usb / "w.bin")
    (usb / "w.bin").write_text("edited since " * 20)
    away = tmp_path / "away"
    shutil.move(str(usb), away)  # unmounted
    r = json.loads(mvc_cli("-C", str(repo), "gc", "--json", "-q", "--grace", "0", "--keep-last", "0", "--force").stdout)
    assert staged in cache_oids(repo) and r["objects"] == 3, r  # (versions 0 to 2 go)
    shutil.move(str(away), usb)
    git(repo, "worktree", "unlock", str(usb))
    mvc_cli("-C", str(usb), "checkout", "-q", "--force", "w.bin")
    assert (usb / "w.bin").read_text() == "staged in the other worktree " * 20


def test_a_cache_that_is_a_link_or_a_remote_is_not_collected_as_this_repositorys_own(
    repo, mvc_cli, mvc_error, tmp_path
):
    """A .mvc/cache link (one a collaborator committed, pointing at another project's cache of the user's) is a
    cache elsewhere, as cache.dir set: gc refuses unless --sole-user. One that reaches a remote's directory is
    refused whatever the flags: its objects are for gc -r."""
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    import mvc

    mvc.init(str(other))
    (other / "o.bin").write_text("another project's only copy " * 20)
    mvc_cli("-C", str(other), "add", "o.bin", "-q")
    theirs = pointer_oid(other / "o.bin")
    git(other, "rm", "-q", "--cached", "o.bin.mvc")  # (not named by any pointer of theirs gc could see)
    shutil.rmtree(repo / ".mvc" / "cache", ignore_errors=True)
    os.symlink(other / ".mvc" / "cache", repo / ".mvc" / "cache")
    mvc_error("-C", str(repo), "gc", "--force", "--grace", "0", words=("is a symbolic link", "--sole-user"))
    assert theirs in cache_oids(other)
    r = json.loads(mvc_cli("-C", str(repo), "gc", "--json", "-q", "--grace", "0", "--sole-user").stdout)
    assert r["objects"] == 1 and r["dry_run"]  # the user's word: this repository is its only user
    os.unlink(repo / ".mvc" / "cache")
    remote = tmp_path / "remote"
    mvc_cli("-C", str(repo), "remote", "add", "r", str(remote))
    (repo / "m.bin").write_text("pushed " * 20)
    mvc_cli("-C", str(repo), "add", "m.bin", "-q")
    mvc_cli("-C", str(repo), "push", "-q", "-r", "r")
    mvc_cli("-C", str(repo), "config", "cache.dir", str(remote), "--local")
    mvc_error("-C", str(repo), "gc", "--force", "--sole-user", "--grace", "0", words=("is an mvc remote", "gc -r"))


def test_deprecated_models_are_released_only_when_asked(repo, mvc_cli, history):
    base = git(repo, "rev-parse", "HEAD").strip()
    old = commit_version(repo, mvc_cli, "a model to retire " * 20, name="old.bin", model="old")
    mvc_cli("register", "old", "-q")
    git(repo, "reset", "-q", "--hard", base)  # only the registry tag (and the reflog) hold it now
    mvc_cli("deprecate", "old", "-q")
    gc_json(mvc_cli, "--grace", "0", "--keep-last", "0", "--force")
    assert old in cache_oids(repo)  # deprecated, still kept: no flag
    r = gc_json(mvc_cli, "--grace", "0", "--keep-last", "0", "--drop-deprecated", "--force")
    assert old not in cache_oids(repo) and r["objects"] >= 1


def test_a_cache_set_elsewhere_is_refused_unless_sole_user(repo, mvc_cli, mvc_error, tmp_path):
    mvc_cli("config", "cache.dir", str(tmp_path / "shared-cache"))
    mvc_error("gc", words=("cache.dir", "--sole-user"))
    mvc_cli("gc", "--sole-user")


def test_a_linked_worktree_uses_the_main_cache_as_its_own(repo, mvc_cli, history, tmp_path):
    """git worktree add: the new worktree reads and writes the main work tree's cache (no remote here, nothing
    fetched), and gc there takes it as the repository's own; a worktree with a .mvc/cache of its own keeps it."""
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "--detach", str(wt), "HEAD~2")
    mvc_cli("-C", str(wt), "checkout", "-q")
    assert pointer_oid(wt / "m.bin") == history[1] and (wt / "m.bin").read_text() == "version 1 " * 50
    (wt / "n.bin").write_text("added in the worktree " * 20)
    mvc_cli("-C", str(wt), "add", "n.bin", "-q")
    assert pointer_oid(wt / "n.bin") in cache_oids(repo) and not (wt / ".mvc" / "cache").exists()
    r = json.loads(mvc_cli("-C", str(wt), "gc", "--json", "-q", "--grace", "0", "--keep-last", "0").stdout)
    assert r["objects"] == 2  # a dry run, not refused: the versions no tip or worktree holds (0 and 2)
    mvc_cli("-C", str(wt), "gc", "-q", "--grace", "0", "--keep-last", "0", "--force")
    left = cache_oids(repo)
    assert {history[1], history[3], pointer_oid(wt / "n.bin")} <= left and not {history[0], history[2]} & left
    # a worktree that made a cache of its own before keeps using it
    old = tmp_path / "old"
    git(repo, "worktree", "add", "-q", "--detach", str(old), "HEAD")
    (old / ".mvc" / "cache").mkdir()
    mvc_cli("-C", str(old), "checkout", "-q", ok=False)  # nothing there, and no remote: the file stays missing
    assert not (old / "m.bin").exists()


def test_an_unreadable_kept_manifest_stops_gc(repo, mvc_cli, mvc_error):
    d = repo / "d"
    d.mkdir()
    (d / "a.txt").write_text("a")
    mvc_cli("add", "d", "-q")
    moid = pointer_oid(d)
    path = repo / ".mvc" / "cache" / "objects" / oids.to_relpath(moid)
    path.chmod(0o644)
    path.write_bytes(b"garbage")
    mvc_error("gc", "--grace", "0", "--force", words=("manifest", "mvc verify --repair"))


def test_bad_options_are_one_line_errors(repo, mvc_cli, mvc_error):
    mvc_error("gc", "--grace", "soon", words=("grace", "14d"))
    mvc_error("gc", "--grace", "9999999d", words=("at most 6 digits",))
    r = mvc_cli("gc", "--keep-last", "-1", ok=False)  # a usage error, as click gives any out-of-range number
    assert r.exit_code == 2 and "--keep-last" in r.stderr and "Traceback" not in r.output


def test_garbage_pointer_in_history_names_nothing_and_is_reported(repo, mvc_cli, history):
    (repo / "evil.bin.mvc").write_text("this is = = not toml")
    git(repo, "add", "evil.bin.mvc")
    git(repo, "commit", "-q", "-m", "hostile")
    git(repo, "rm", "-q", "evil.bin.mvc")
    git(repo, "commit", "-q", "-m", "gone")
    r = gc_json(mvc_cli, "--grace", "0")
    assert any("evil.bin.mvc" in u for u in r["unreadable"])


def test_reuse_of_an_object_freshens_it(repo, mvc_cli):
    (repo / "x.bin").write_text("x" * 100)
    mvc_cli("add", "x.bin", "-q")
    oid = pointer_oid(repo / "x.bin")
    path = repo / ".mvc" / "cache" / "objects" / oids.to_relpath(oid)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    (repo / "y.bin").write_text("x" * 100)  # same content: the object is found in the cache
    mvc_cli("add", "y.bin", "-q")
    assert path.stat().st_mtime > 1_000_000_000


# -- verify ------------------------------------------------------------------------------------------
@pytest.fixture
def pushed(repo, mvc_cli, history, tmp_path) -> Path:
    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    mvc_cli("push", "-q", "--all-commits")
    return store


def flip(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def test_verify_clean(repo, mvc_cli, pushed):
    r = json.loads(mvc_cli("verify", "--json", "-q").stdout)
    assert r["problems"] == [] and r["cache"]["objects"] >= 4 and r["remote"] == "origin"


def test_a_bit_flip_in_the_cache_is_found_named_and_repaired(repo, mvc_cli, mvc_error, pushed, history):
    flip(repo / ".mvc" / "cache" / "objects" / oids.to_relpath(history[3]))
    result = mvc_cli("verify", "-q", ok=False)
    assert result.exit_code == 1 and "corrupt in cache" in result.stdout and "m.bin" in result.stdout
    assert "mvc verify --repair" in result.stderr
    r = json.loads(mvc_cli("verify", "--json", "-q", "--repair").stdout)
    assert [p["repaired"] for p in r["problems"]] == [True]
    assert mvc_cli("verify", "-q").exit_code == 0
    path = repo / ".mvc" / "cache" / "objects" / oids.to_relpath(history[3])
    assert oids.from_digest(__import__("xxhash").xxh3_128_hexdigest(path.read_bytes())) == history[3]


def test_a_corrupt_object_with_no_good_copy_is_moved_aside_not_deleted(repo, mvc_cli, history):
    path = repo / ".mvc" / "cache" / "objects" / oids.to_relpath(history[3])
    flip(path)
    result = mvc_cli("verify", "--repair", "-q", ok=False)
    assert result.exit_code == 1 and "corrupt in cache" in result.stdout
    assert "moved to the cache's quarantine/" in result.stdout  # says what it did
    assert "--repair" not in result.stderr and "add it again from its source" in result.stderr  # not circular
    assert not path.exists()
    assert any((repo / ".mvc" / "cache" / "quarantine").iterdir())


def test_verify_remote_downloads_and_rehashes(repo, mvc_cli, pushed, history):
    target = next(p for p in pushed.rglob("*") if p.is_file() and p.name == oids.to_relpath(history[1]).split("/")[1])
    flip(target)
    git(repo, "tag", "v1", "HEAD~2")
    result = mvc_cli("verify", "-r", "origin", "--all-tags", "--json", "-q", ok=False)
    r = json.loads(result.stdout)
    bad = {p["oid"]: p for p in r["problems"]}
    assert bad[history[1]]["problem"] == "corrupt on remote"
    assert any("at v1" in n for n in bad[history[1]]["needed_by"])
    assert r["downloaded"] > 0


def test_lost_objects_are_named(repo, mvc_cli, history):
    os.unlink(repo / ".mvc" / "cache" / "objects" / oids.to_relpath(history[3]))
    result = mvc_cli("verify", "--json", "-q", ok=False)
    r = json.loads(result.stdout)
    assert [p["problem"] for p in r["problems"]] == ["not in cache, no remote"]
    assert "m.bin" in r["problems"][0]["needed_by"]


def test_verify_on_s3(repo, mvc_cli, history, s3_endpoint):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="models")
    mvc_cli("remote", "add", "s3", "s3://models/p", "--default")
    mvc_cli("remote", "modify", "s3", "endpoint_url", s3_endpoint)
    mvc_cli("push", "-q")
    flip(repo / ".mvc" / "cache" / "objects" / oids.to_relpath(history[3]))
    r = json.loads(mvc_cli("verify", "-r", "s3", "--repair", "--json", "-q").stdout)
    assert [(p["problem"], p["repaired"]) for p in r["problems"]] == [("corrupt in cache", True)]
    key = "p/objects/" + oids.to_relpath(history[3])
    s3.put_object(Bucket="models", Key=key, Body=b"damaged")
    r = json.loads(mvc_cli("verify", "-r", "s3", "--json", "-q", ok=False).stdout)
    assert [p["problem"] for p in r["problems"]] == ["corrupt on remote"]


def test_registry_check(repo, mvc_cli, mvc_error, tmp_path):
    oid = commit_version(repo, mvc_cli, "registered weights " * 20, model="churn")
    mvc_cli("register", "churn", "-q")
    rows = json.loads(mvc_cli("registry", "--check", "--json").stdout)
    assert [(r["model"], r["state"]) for r in rows] == [("churn", "ok")]
    os.unlink(repo / ".mvc" / "cache" / "objects" / oids.to_relpath(oid))
    result = mvc_cli("registry", "--check", ok=False)
    assert result.exit_code == 1 and "missing 1 object" in result.stdout and "churn@v" in result.stderr


def test_registry_check_of_a_named_remote_says_what_others_can_fetch(repo, mvc_cli, tmp_path):
    commit_version(repo, mvc_cli, "registered weights " * 20, model="churn")
    mvc_cli("register", "churn", "-q")
    mvc_cli("remote", "add", "store", str(tmp_path / "store"))
    mvc_cli("push", "-q")
    assert [r["state"] for r in json.loads(mvc_cli("registry", "--check", "-r", "store", "--json").stdout)] == ["ok"]
    commit_version(repo, mvc_cli, "newer weights, never pushed " * 20, model="churn")
    mvc_cli("register", "churn", "-q")
    assert [r["state"] for r in json.loads(mvc_cli("registry", "--check", "--json").stdout)] == ["ok", "ok"]
    rows = json.loads(mvc_cli("registry", "--check", "-r", "store", "--json", ok=False).stdout)
    assert [r["state"] for r in rows] == ["missing", "ok"]  # the newer one is in this cache, not on store


def test_registry_check_lists_versions_newest_first(repo, mvc_cli):
    for version in ("v0.0.2", "v0.0.10", "v0.0.1", "v1.0.0-rc.1", "v0.0.3"):  # tagged in no order
        commit_version(repo, mvc_cli, f"weights {version} " * 20, model="churn")
        mvc_cli("register", "churn", version, "-q")
    rows = json.loads(mvc_cli("registry", "--check", "--json").stdout)
    assert [r["version"] for r in rows] == ["v1.0.0-rc.1", "v0.0.10", "v0.0.3", "v0.0.2", "v0.0.1"]
    lines = mvc_cli("registry", "--check").stdout.splitlines()
    assert [line.split()[1] for line in lines[1:]] == [r["version"] for r in rows]


def test_an_unparsable_pointer_at_a_registry_tag_is_reported(repo, mvc_cli):
    (repo / "evil.bin.mvc").write_text("[[[")
    git(repo, "add", "evil.bin.mvc")
    git(repo, "commit", "-q", "-m", "hostile")
    git(repo, "tag", "-a", "-m", "x", "evil@v1.0.0")
    git(repo, "rm", "-q", "evil.bin.mvc")
    git(repo, "commit", "-q", "-m", "gone")
    result = mvc_cli("verify", "-q", ok=False)
    assert result.exit_code == 1 and "unreadable pointer: evil.bin.mvc at evil@v1.0.0" in result.stdout


def test_a_corrupt_manifest_stops_gc_every_time_and_verify_moves_nothing(repo, mvc_cli, mvc_error):
    d = repo / "d"
    d.mkdir()
    for i in range(3):
        (d / f"f{i}.txt").write_text(f"file {i}")
    mvc_cli("add", "d", "-q")
    moid = pointer_oid(d)
    path = repo / ".mvc" / "cache" / "objects" / oids.to_relpath(moid)
    flip(path)
    before = cache_oids(repo)
    mvc_cli("verify", "-q", ok=False)
    assert path.exists() and cache_oids(repo) == before  # verify reads; it moves nothing
    for _ in range(2):
        mvc_error("gc", "--grace", "0", "--force", words=("manifest", "mvc fetch"))
    assert cache_oids(repo) == before
    from mvc.repo.repository import Repo

    Repo(str(repo)).odb.quarantine(moid)  # as a read by another command would
    mvc_error("gc", "--grace", "0", "--force", words=("manifest",))
    assert cache_oids(repo) == before - {moid}


def test_drop_deprecated_alone_releases_a_model_only_its_tag_held(repo, mvc_cli):
    git(repo, "checkout", "-q", "-b", "side")
    old = commit_version(repo, mvc_cli, "a model to retire " * 20, name="old.bin", model="old")
    mvc_cli("register", "old", "-q")
    git(repo, "checkout", "-q", "-")
    git(repo, "branch", "-q", "-D", "side")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    mvc_cli("deprecate", "old", "-q")
    gc_json(mvc_cli, "--grace", "0", "--force")
    assert old in cache_oids(repo)
    r = gc_json(mvc_cli, "--grace", "0", "--drop-deprecated", "--force")
    assert old not in cache_oids(repo) and r["objects"] == 1
    # verify does not check a deprecated model's tags by default (its weights may be let go, as here); --all-tags does
    assert mvc_cli("verify", "-q").exit_code == 0
    assert mvc_cli("verify", "-q", "--all-tags", ok=False).exit_code == 1


def test_a_young_chunk_list_keeps_the_old_packs_it_names(repo, mvc_cli, tmp_path, monkeypatch):
    """A version pushed chunked but not yet in git (its recipe young) keeps its chunks, however old their
    packs are."""
    from remote_suite import SMALL_CHUNK_FROM, model_tensors, write_model

    monkeypatch.setattr("mvc.objects.chunked.CHUNK_FROM", SMALL_CHUNK_FROM)
    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "remote")
    git(repo, "checkout", "-q", "-b", "unpushed")
    write_model(repo / "model.safetensors", model_tensors(3, n=2, elements=1 << 19))
    mvc_cli("add", "model.safetensors", "-q")
    git(repo, "commit", "-q", "-m", "v1")
    mvc_cli("push", "-q")
    git(repo, "checkout", "-q", "-")
    git(repo, "branch", "-q", "-D", "unpushed")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    packs = list((store / "packs").iterdir())
    assert packs
    r = json.loads(mvc_cli("gc", "-r", "origin", "--grace", "1h", "--force", "--json", "-q").stdout)
    assert r["packs_deleted"] == 0 and all(p.exists() for p in packs)
    # a directory remote's files cannot be made old (a rename sets their ctime), so the rule itself: the
    # chunks a young recipe names are alive though no kept version needs its object
    from mvc.api.gc import _recipe_closure
    from mvc.objects.chunked import Rebuilder
    from mvc.objects.recipe import parse
    from mvc.storage.directory import DirStore

    (rel,) = [p.relative_to(store).as_posix() for p in (store / "recipes").rglob("*") if p.is_file()]
    oid = "xxh128:" + rel.split("/", 1)[1].replace("/", "")
    recipe = parse((store / rel).read_bytes(), rel, oid)
    rb = Rebuilder(DirStore(str(store), str(store)), None, "origin")
    chunks, damaged = _recipe_closure(rb, set(), {oid}, {oid})
    assert chunks == {e.oid for e in recipe.entries} and not damaged
    assert _recipe_closure(rb, set(), {oid}, set())[0] == set()  # old and unneeded: nothing alive


def test_registry_check_refusals(repo, mvc_cli, mvc_error):
    commit_version(repo, mvc_cli, "registered " * 20, model="churn")
    mvc_cli("register", "churn", "-q")
    mvc_error("registry", "nosuch", "--check", words=("nosuch",))
    for args in (["--check", "--deprecated"], ["-r", "origin"]):
        assert mvc_cli("registry", *args, ok=False).exit_code == 2


def test_a_killed_gc_leaves_whole_objects_and_the_next_one_finishes(repo, mvc_cli, history):
    """kill -9 of a gc part way: every object is whole, in place or renamed aside; nothing a later command
    trips over; the next gc puts back what was aside and finishes."""
    import subprocess
    import sys
    import time

    from mvc.objects.odb import ODB, TRASH

    odb = ODB(str(repo / ".mvc" / "cache"))
    junk = {odb.add_bytes(f"junk {i}".encode() * 20) for i in range(20000)}
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    aside = odb.path(sorted(junk)[0])
    os.rename(aside, f"{aside}{TRASH}{gone.pid}")  # as a gc killed between its rename and its unlink leaves
    proc = subprocess.Popen([sys.executable, "-m", "mvc", "gc", "--grace", "0", "--force", "-q"], cwd=repo)
    first = repo / ".mvc" / "cache" / "objects" / sorted({o.split(":")[1][:2] for o in junk})[0]
    n = len(os.listdir(first))
    deadline = time.monotonic() + 60
    while proc.poll() is None and len(os.listdir(first)) >= n and time.monotonic() < deadline:
        time.sleep(0.002)  # until the deletions have begun
    proc.kill()
    proc.wait()
    interrupted = bool(junk & cache_oids(repo))
    assert json.loads(mvc_cli("verify", "--json", "-q").stdout)["problems"] == []
    assert mvc_cli("status").stdout == "m.bin: up to date\n"
    r = gc_json(mvc_cli, "--grace", "0", "--force")
    left = list((repo / ".mvc" / "cache" / "objects").rglob(f"*{TRASH}*"))
    assert left == [] and not junk & cache_oids(repo) and set(history) <= cache_oids(repo)
    assert r["objects"] >= 1 and interrupted  # the kill landed part way


def test_gc_interleaved_with_adds_never_loses_a_committed_version(repo, mvc_cli):
    """One process adds and commits (amending, so each earlier version becomes garbage at once, and cycling
    through three contents, so garbage is wanted again) while another runs gc --grace 0 --force in a loop:
    afterwards every version that a commit names is in the cache."""
    import subprocess
    import sys

    git(repo, "config", "core.logAllRefUpdates", "false")  # no reflog: amended versions are garbage at once
    (repo / "m.bin").write_text("start")
    mvc_cli("add", "m.bin", "-q")
    git(repo, "commit", "-q", "-m", "start")
    writer = """
import subprocess, sys
for i in range(40):
    open("m.bin", "w").write("content %d " % (i % 3) * 50)
    while subprocess.run([sys.executable, "-m", "mvc", "add", "m.bin", "-q"]).returncode:
        pass  # the object left the cache under it: add again, as the error says
    subprocess.run(["git", "commit", "-q", "-a", "--amend", "-m", "v%d" % i], check=True)
"""
    collector = """
import subprocess, sys
for _ in range(25):
    subprocess.run([sys.executable, "-m", "mvc", "gc", "--grace", "0", "--force", "-q"], check=True)
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for code in (writer, collector)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
    for commit in git(repo, "rev-list", "--all").split():
        for line in git(repo, "ls-tree", "-r", "--name-only", commit).split():
            if line.endswith(".mvc"):
                import tomllib

                oid = tomllib.loads(git(repo, "show", f"{commit}:{line}"))["oid"]
                assert oid in cache_oids(repo), (commit, line)
    assert json.loads(mvc_cli("verify", "--json", "-q").stdout)["problems"] == []


@pytest.mark.parametrize("keep_last", [None, "0", "1"])
@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("where", ["cache", "remote"])
def test_a_registered_version_survives_every_combination_of_flags(repo, mvc_cli, tmp_path, keep_last, rev, drop, where):
    """A version a live registry tag names (and one a stage points to) is kept whatever gc is told, on the
    cache and on a remote, though no branch holds it any more."""
    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "remote")
    base = git(repo, "rev-parse", "HEAD").strip()
    registered = commit_version(repo, mvc_cli, "registered weights " * 30, model="churn")
    mvc_cli("register", "churn", "-q")
    staged = commit_version(repo, mvc_cli, "prod weights " * 30, model="churn")
    mvc_cli("assign", "churn", "prod", "-q")
    mvc_cli("push", "-q", "--all-commits")
    git(repo, "reset", "-q", "--hard", base)
    git(repo, "reflog", "expire", "--expire=now", "--all")
    args = ["--grace", "0", "--force", "--json", "-q", "--sole-user"]
    args += ["--keep-last", keep_last] if keep_last else []
    args += ["--rev", "HEAD"] if rev else []
    args += ["--drop-deprecated"] if drop else []
    args += ["-r", "origin"] if where == "remote" else []
    mvc_cli("gc", *args)
    if where == "cache":
        assert {registered, staged} <= cache_oids(repo)
    else:
        rels = {p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()}
        assert {"objects/" + oids.to_relpath(o) for o in (registered, staged)} <= rels


def test_verify_without_r_asks_the_remote_and_downloads_nothing(repo, mvc_cli, pushed, history):
    """Objects the cache lacks must be on the default remote: asked, not downloaded (-r REMOTE downloads)."""
    shutil.rmtree(repo / ".mvc" / "cache")
    r = json.loads(mvc_cli("verify", "--json", "-q").stdout)
    assert r["problems"] == [] and r["downloaded"] == 0
    r = json.loads(mvc_cli("verify", "-r", "origin", "--json", "-q").stdout)
    assert r["problems"] == [] and r["downloaded"] > 0


def pushed_to_a_directory(repo, mvc_cli, tmp_path) -> Path:
    """m.bin added, committed and pushed to the directory remote origin (returned)."""
    store = tmp_path / "store"
    make_file(repo / "m.bin", 1000, seed=7)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(store), "--default")
    git(repo, "commit", "-q", "-m", "m")
    mvc_cli("push")
    return store


def test_an_object_the_remote_lost_is_pushed_again_after_verify(repo, mvc_cli, mvc_error, tmp_path):
    """A remote that lost an object the journal says was pushed: verify -r names it and forgets it, and a plain
    push then sends it again (it said 'nothing to push')."""
    store = pushed_to_a_directory(repo, mvc_cli, tmp_path)
    for f in (store / "objects").glob("*/*"):
        f.unlink()
    assert "nothing to push" in mvc_cli("push").stdout  # the journal still says it is there
    r = mvc_cli("verify", "-r", "origin", ok=False)
    assert r.exit_code == 1 and "not on remote: " in r.stdout
    assert "this machine has it: run 'mvc push -r origin' to send it again" in r.stderr
    assert "pushed 1 object" in mvc_cli("push").stdout
    assert mvc_cli("verify", "-r", "origin").exit_code == 0


def suggested_pushes(mvc_cli, *verify_args: str) -> list[str]:
    """verify -r origin fails on what origin lacks; the commands its error says to run, run; returns them."""
    import re
    import shlex

    r = mvc_cli("verify", "-r", "origin", "-q", *verify_args, ok=False)
    assert r.exit_code == 1 and "not on remote: " in r.stdout, r.output
    commands = re.findall(r"'(mvc [^']*)'|\"(mvc [^\"]*)\"", r.stderr.partition("this machine has it: ")[2])
    commands = [a or b for a, b in commands]
    for command in commands:
        mvc_cli(*shlex.split(command)[1:])
    assert mvc_cli("verify", "-r", "origin", "-q", *verify_args).exit_code == 0
    return commands


def test_verify_names_the_push_that_sends_what_only_a_branch_or_tag_names(repo, mvc_cli, tmp_path):
    """A plain push sends the work tree's versions: one that only another branch or a tag names takes --rev."""
    commit_version(repo, mvc_cli, "main " * 50)
    git(repo, "checkout", "-q", "-b", "exp")
    commit_version(repo, mvc_cli, "exp " * 50)
    git(repo, "checkout", "-q", "main")
    mvc_cli("checkout", "-q")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default", "--local")
    assert suggested_pushes(mvc_cli) == ["mvc push -r origin", "mvc push -r origin --rev exp"]
    git(repo, "checkout", "-q", "-b", "tagged")  # a registered version no branch holds any more
    commit_version(repo, mvc_cli, "tagged " * 50, model="m")
    mvc_cli("register", "m", "-q")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "tagged")
    mvc_cli("checkout", "-q")
    assert suggested_pushes(mvc_cli) == ["mvc push -r origin --rev m@v0.0.1"]
    for branch in ("a", "b"):  # several: every branch and tag
        git(repo, "checkout", "-q", "-b", branch, "main")
        commit_version(repo, mvc_cli, f"{branch} " * 50)
    git(repo, "checkout", "-q", "main")
    mvc_cli("checkout", "-q")
    assert suggested_pushes(mvc_cli) == ["mvc push -r origin --all-branches --all-tags"]
    for branch in ("c", "d"):  # verify --rev: those revisions
        git(repo, "checkout", "-q", "-b", branch, "main")
        commit_version(repo, mvc_cli, f"{branch} " * 50)
    git(repo, "checkout", "-q", "main")
    mvc_cli("checkout", "-q")
    assert suggested_pushes(mvc_cli, "--rev", "c", "--rev", "d") == ["mvc push -r origin --rev c --rev d"]


def test_gc_r_deletes_nothing_when_a_push_began_after_it_listed(repo, mvc_cli, mvc_error, tmp_path, monkeypatch):
    """A push that starts while gc -r reads the remote may reuse what gc is about to delete and end first: gc sees
    its lease appear before the first delete, and deletes nothing."""
    from mvc.objects import repack

    store = tmp_path / "store"
    mvc_cli("remote", "add", "origin", str(store), "--default")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "remote")
    git(repo, "checkout", "-q", "-b", "dropped")
    make_file(repo / "old.bin", 1000, seed=1)
    mvc_cli("add", "old.bin")
    git(repo, "commit", "-q", "-m", "old")
    mvc_cli("push")
    git(repo, "checkout", "-q", "-")
    git(repo, "branch", "-q", "-D", "dropped")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    before = sorted(p.relative_to(store).as_posix() for p in (store / "objects").rglob("*") if p.is_file())
    real = repack.plan

    def plan(*a, **kw):  # a teammate's push begins now, after gc's listing
        (store / "leases").mkdir(exist_ok=True)
        (store / "leases" / "9999999999-teammate").write_text("push\n")
        return real(*a, **kw)

    monkeypatch.setattr(repack, "plan", plan)
    mvc_error("gc", "-r", "origin", "--grace", "0", "--force", words=("began while gc read it", "nothing was deleted"))
    after = sorted(p.relative_to(store).as_posix() for p in (store / "objects").rglob("*") if p.is_file())
    assert after == before and before


def test_a_remote_that_lost_this_repositorys_mark_gets_it_again(repo, mvc_cli, tmp_path):
    """repos/ROOT tells another repository's gc -r that this one uses the remote: once the remote lost it (and
    objects), verify -r forgets it was written and the next push writes it again; push --verify-remote too."""
    store = pushed_to_a_directory(repo, mvc_cli, tmp_path)
    (mark,) = (store / "repos").iterdir()
    for gone in (store / "repos", store / "objects"):
        shutil.rmtree(gone)
    assert mvc_cli("verify", "-r", "origin", ok=False).exit_code == 1
    mvc_cli("push")
    assert (store / "repos" / mark.name).exists()
    (store / "repos" / mark.name).unlink()
    mvc_cli("push", "--verify-remote")
    assert (store / "repos" / mark.name).exists()


def test_verify_lists_a_hundred_problems_then_counts_the_rest(repo, mvc_cli, tmp_path):
    store = tmp_path / "store"
    for i in range(130):
        (repo / "d").mkdir(exist_ok=True)
        (repo / "d" / f"f{i:03}").write_text(f"file {i}\n")
    mvc_cli("add", "d")
    mvc_cli("remote", "add", "origin", str(store), "--default")
    git(repo, "commit", "-q", "-m", "d")
    mvc_cli("push")
    for sub in ("packs", "objects"):
        shutil.rmtree(store / sub, ignore_errors=True)
    (store / "objects").mkdir()
    r = mvc_cli("verify", "-r", "origin", ok=False)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("not on remote")]
    assert len(lines) == 100 and "... and 31 more problems (--json lists every one)" in r.stdout, r.stdout[-300:]
    assert len(json.loads(mvc_cli("verify", "-r", "origin", "--json", ok=False).stdout)["problems"]) == 131


@pytest.mark.parametrize("remote", [False, True])
def test_verify_says_a_manifest_that_hashes_right_but_does_not_parse(repo, mvc_cli, tmp_path, remote):
    """A collaborator's directory pointer whose manifest (an object that hashes to its oid) gives a size no mvc
    reads: status and gc refuse it, so verify must not say every version can be read back; its fix is the
    pointer's (git), not a fetch or a repair."""
    import mvc
    from mvc.format import pointer as ptrfmt
    from mvc.objects import oid as oids
    from mvc.storage import fileio

    (repo / "a.txt").write_bytes(b"hello\n")
    mvc_cli("add", "a.txt")
    hello = ptrfmt.loads((repo / "a.txt.mvc").read_bytes()).oid
    data = b'{"path":"a.txt","oid":"' + hello.encode() + b'","size":-6}\n'
    moid = oids.from_digest(fileio.hexdigest_bytes(data))
    mvc.Repo(str(repo)).odb.install_bytes(data, moid)
    (repo / "evil.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("dir", moid, 6, 1)))
    args: tuple[str, ...] = ("verify",)
    if remote:
        mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
        mvc_cli("push", "a.txt")
        args = ("verify", "-r", "origin")
    r = mvc_cli(*args, ok=False)
    (line,) = r.stderr.splitlines()
    assert r.exit_code == 1 and "invalid manifest: evil" in line and "restore the pointer with git" in line, line
    assert "--repair" not in line and "push it" not in line
    rows = json.loads(mvc_cli(*args, "--json", ok=False).stdout)["problems"]
    assert [(r["oid"], r["problem"]) for r in rows] == [(moid, "invalid manifest")]
    (repo / "evil.mvc").unlink()
    mvc_cli(*args)


def test_verify_says_how_to_mend_a_pointer_that_does_not_parse(repo, mvc_cli):
    (repo / "bad.bin.mvc").write_text("format = 1\nkind = 'file'\n")
    r = mvc_cli("verify", ok=False)
    assert r.exit_code == 1 and "cannot be read" in r.stderr and "git rm" in r.stderr, r.stderr
    (repo / "bad.bin.mvc").unlink()
    make_file(repo / "f.bin", 10)
    mvc_cli("add", "f.bin", "-q")  # its pointer, copied to a path mvc never tracks: refused for its path
    (repo / "x.mvc.mvc").write_text((repo / "f.bin.mvc").read_text())
    r = mvc_cli("verify", ok=False)
    assert "a path mvc never tracks" in r.stderr and "does not parse" not in r.stderr + r.stdout, r.stderr


def test_verify_reads_a_manifest_it_fetched_back_from_quarantine(repo, mvc_cli, tmp_path):
    """A manifest another command moved to quarantine/: verify fetches it back from the remote, reads it, and
    checks the directory's files (an invalid manifest is only one whose sound bytes do not parse)."""
    import mvc
    from mvc.format import pointer as ptrfmt

    (repo / "d").mkdir()
    (repo / "d" / "a.bin").write_bytes(b"a" * 100)
    (repo / "d" / "b.bin").write_bytes(b"b" * 100)
    mvc_cli("add", "d")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    mvc_cli("push")
    moid = ptrfmt.loads((repo / "d.mvc").read_bytes()).oid
    mvc.Repo(str(repo)).odb.quarantine(moid)
    r = json.loads(mvc_cli("verify", "--json").stdout)
    assert r["problems"] == [] and r["objects"] == 3


def test_gc_json_keys_and_keep_last_help_are_as_docs_cli_md_says(repo, mvc_cli, pushed):
    """docs/cli.md lists the keys of 'mvc gc --json' (local, and which ones -r drops and adds) as gc prints them, and
    --keep-last's help says what the docs and the code do: the versions at the tips count first."""
    import re

    from conftest import ROOT

    doc = (ROOT / "docs" / "cli.md").read_text()
    gc = doc[doc.index("## mvc gc") : doc.index("## mvc verify")]
    row = next(line for line in gc.splitlines() if line.startswith("| `--json` |"))
    top = re.sub(r"\[\{[^]]*\}\]", "", re.match(r"\| `--json` \| Print `\{(.*?)\}`:", row)[1])
    local = set(re.findall(r'"(\w+)"', top))
    assert set(gc_json(mvc_cli)) == local
    clause = row[row.index("With `-r`") : row.index("`objects` then counts")]
    head, _, tail = clause.partition("and also")
    dropped, added = set(re.findall(r'"(\w+)"', head)), set(re.findall(r'"(\w+)"', tail))
    assert set(gc_json(mvc_cli, "-r", "origin")) == (local - dropped) | added, (dropped, added)

    said = " ".join(mvc_cli("gc", "--help").stdout.split())
    assert "the N newest versions" not in said and "the versions at the tips count first" in said, said
    table = next(line for line in gc.splitlines() if line.startswith("| `--keep-last N` |"))
    assert "the versions at the tips count first" in table
