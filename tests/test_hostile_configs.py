"""The hostile collaborator, part two: a committed .mvc/config.toml and a shared remote's pack indexes crafted
to make mvc write, read or delete outside its rules. Every command and hook either works within the rules or
refuses in one line, with no traceback; a directory that is not mvc's, the user's files outside the
repository, .git/ and the remote's packs are as before (names, sizes, mtimes)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import git, make_file
from test_hostile_paths import state

from mvc.objects import pack


def victim(tmp_path: Path) -> Path:
    """Someone's directory outside the repository, with a day-old tmp/ of files of any name."""
    import os
    import time

    d = tmp_path / "victim"
    for rel in ("notes.txt", "tmp/old.tmp", "tmp/.x.1.2.abcd.tmp", "objects/ab/not-an-object"):
        make_file(d / rel, 100)
    old = time.time() - 3 * 86400
    for p in d.rglob("*"):
        os.utime(p, (old, old))
    return d


COMMANDS: list[tuple[str, ...]] = [
    ("status",),
    ("status", "-r", "origin"),
    ("ls",),
    ("add", "new.bin"),
    ("checkout",),
    ("checkout", "--force"),
    ("get", "m.bin", "-o", "OUT"),
    ("fetch",),
    ("pull",),
    ("push",),
    ("push", "--verify-remote"),
    ("remote", "list"),
    ("log", "m.bin"),
    ("diff", "HEAD~1"),
    ("registry",),
    ("hook", "pre-commit"),
    ("hook", "post-checkout", "HEAD~1", "HEAD", "1"),
    ("hook", "post-merge", "0"),
]


def run_all(repo: Path, mvc_cli, out: Path) -> list[str]:
    """Every command once: each ends in success or in one 'error:' line (hooks: their 'mvc:' lines), no
    traceback. Returns the error lines."""
    errors = []
    for args in COMMANDS:
        args = tuple(str(out) if a == "OUT" else a for a in args)
        make_file(repo / "new.bin", 50, seed=len(errors) + 100)
        r = mvc_cli(*args, ok=False)
        assert "Traceback" not in r.output, (args, r.output)
        lines = [line for line in r.stderr.splitlines() if not line.startswith("mvc: ")]
        if r.exit_code and args[0] != "hook":
            assert len(lines) == 1 and lines[0].startswith("error: "), (args, r.stderr)
            assert "force" not in lines[0] or args[0] == "checkout", (args, lines[0])
            errors.append(lines[0])
    return errors


@pytest.fixture
def shared(repo, mvc_cli, tmp_path):
    """A repository with one committed model and a directory remote holding it."""
    mvc_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default")
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    mvc_cli("push")
    return repo


@pytest.mark.parametrize(
    "crafted",
    [
        '[cache]\ndir = "{victim}"\n',  # point the cache at someone's directory: never swept, never written
        '[cache]\ndir = "{victim}/tmp"\n',
        '[remote.origin]\nurl = "{victim}"\n[core]\nremote = "origin"\n',  # push into someone's directory
        '[remote.origin]\nurl = "{victim}/objects"\n[core]\nremote = "origin"\n',
        '[cache]\ntype = ["hardlink", "rm -rf /"]\n',
        '[hooks]\nmax_size = "-1"\nextensions = 5\n',
        '[models.evil]\npath = ".git/config"\n',
        '[stages]\norder = "prod"\n',
        "[remote]\norigin = 5\n",
        "a = " + "[" * 3000 + "]" * 3000 + "\n",
    ],
    ids=[
        "cache-dir",
        "cache-dir-tmp",
        "remote-url",
        "remote-objects",
        "cache-type",
        "hooks",
        "model-path",
        "stages",
        "remote-table",
        "deep",
    ],
)
def test_a_crafted_committed_config(shared, mvc_cli, tmp_path, crafted):
    repo = shared
    target = victim(tmp_path)
    config = repo / ".mvc" / "config.toml"
    config.write_text(config.read_text() + "\n" + crafted.format(victim=target))
    git(repo, "commit", "-q", "-am", "a collaborator's config")
    before_victim = state(target)
    before_git = state(repo / ".git" / "hooks")
    before_remote = state(tmp_path / "remote")
    run_all(repo, mvc_cli, tmp_path / "out.bin")
    assert state(target) == before_victim  # not one file of it written, swept or deleted
    assert state(repo / ".git" / "hooks") == before_git
    after_remote = state(tmp_path / "remote")
    kept = {k: v for k, v in before_remote.items() if not stat.S_ISDIR(v[0])}  # a directory gains entries
    assert {k: after_remote.get(k) for k in kept} == kept  # the remote only ever gains files
    remote = tmp_path / "remote"
    assert not [k for k in after_remote if Path(k).relative_to(remote).parts[0] == "tmp" and k not in before_remote]


def test_a_crafted_pack_index_on_the_shared_remote(shared, mvc_cli, tmp_path):
    """An index that lists an object the pack does not hold (past its end, or with bytes of another oid):
    no command trusts it, takes those bytes into the cache, or skips pushing the object for it."""
    repo = shared
    remote = tmp_path / "remote"
    for i in range(20):
        make_file(repo / "many" / f"s{i:02d}.bin", 1000 + i, seed=i)
    mvc_cli("add", "many")
    git(repo, "commit", "-q", "-m", "many")
    mvc_cli("push")
    (name,) = pack.names_in(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file())
    idx = remote / pack.index_rel(name)
    lines = idx.read_bytes().split(b"\n")
    oid, offset, size = lines[1].split(b" ")
    lines[1] = b" ".join([oid, offset, str(int(size) + 10**6).encode()])  # runs past the pack's end
    idx.chmod(0o644)
    idx.write_bytes(b"\n".join(lines))
    for p in (repo / ".mvc" / "cache").rglob("*"):  # a fresh machine: nothing cached, no journal
        if p.is_file():
            p.chmod(0o644)
    import shutil

    shutil.rmtree(repo / ".mvc" / "cache")
    (repo / ".mvc" / "remotes.db").unlink(missing_ok=True)
    before_remote_packs = state(remote / "packs")
    errors = run_all(repo, mvc_cli, tmp_path / "out.bin")
    assert any(pack.index_rel(name) in e or name in e for e in errors), errors
    for p in (repo / ".mvc" / "cache" / "objects").rglob("*"):
        if p.is_file():  # whatever a command took into the cache hashes to its name
            from mvc.storage import fileio

            assert "xxh128:" + p.parent.name + p.name == "xxh128:" + fileio.hash_file(str(p))[0]
    after = state(remote / "packs")
    assert set(before_remote_packs) <= set(after)  # the packs are never deleted, the index never trusted


@pytest.mark.parametrize("name", ["config.toml", "config.local.toml"])
def test_a_config_that_is_a_link_is_never_followed(repo, mvc_cli, mvc_error, tmp_path, name):
    """A committed .mvc/config.toml linking to a TOML file outside: every command refuses it, and none copies
    the file it names into the repository."""
    outside = tmp_path / "outside" / "settings.toml"
    outside.parent.mkdir()
    outside.write_text('[server]\nhost = "db.internal"\npassword = "SECRET"\n')
    link = repo / ".mvc" / name
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    local = ("--local",) if name == "config.local.toml" else ()
    for args in (("status",), ("remote", "add", "team", str(tmp_path / "r")), ("config", *local, "core.fsync", "true")):
        mvc_error(*args, words=(name, "symbolic link"))
    assert link.is_symlink() and "SECRET" in outside.read_text()
    assert "SECRET" not in git(repo, "diff", "--cached") + git(repo, "diff")


def test_an_imported_map_that_is_a_link_is_never_followed(repo, mvc_cli, mvc_error, tmp_path):
    """A committed .mvc/imported.toml linking to a TOML file of the user's outside (with the map's format line):
    the readers refuse it, and an import does not copy that file into the map it stages."""
    import shutil

    outside = tmp_path / "outside" / "creds.toml"
    outside.parent.mkdir()
    outside.write_text('format = 1\n[registry]\ntoken = "SECRET"\n')
    (repo / ".mvc" / "imported.toml").symlink_to(outside)
    mvc_error("ls", "--rev", "HEAD", words=("imported.toml is a symbolic link", "git rm --cached"))
    if shutil.which("git-lfs") is not None:
        git(repo, "lfs", "install", "--local")
        git(repo, "lfs", "track", "*.bin")
        (repo / "w.bin").write_bytes(b"weights" * 100)
        git(repo, "add", ".gitattributes", "w.bin")
        git(repo, "commit", "-qm", "lfs")
        mvc_error("import-lfs", words=("imported.toml is a symbolic link",))
    assert (repo / ".mvc" / "imported.toml").is_symlink() and "SECRET" in outside.read_text()
    assert "SECRET" not in git(repo, "diff", "--cached") + git(repo, "diff")


def test_an_imported_map_without_a_format_is_said_damaged_not_newer(repo, mvc_error):
    (repo / ".mvc" / "imported.toml").write_text('[lfs.sha256]\n"ab" = { oid = "xxh128:00", size = 1 }\n')
    mvc_error("ls", "--rev", "HEAD", words=("no format number", "damaged or not mvc's", "git checkout"))
