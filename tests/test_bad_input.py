"""Every bad input of the core issue: one clear line on stderr naming the problem and the fix,
exit status != 0, no traceback, and nothing lost (user files, pointers and git's index unchanged)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import xxhash
from conftest import git, make_file, run_mvc

from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf
from mvc.objects.odb import ODB

NOBODY = 65534


def snapshot(root: Path) -> dict[str, object]:
    """Everything a user could lose: each file's bytes and mode, each symlink's target, git's index.

    The cache and state.db are left out: a failed command may have stored objects, which loses nothing."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != ".git"]
        if rel_dir == ".mvc":
            dirnames[:] = []
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel == os.path.join(".mvc", "state.db") or (rel_dir == ".mvc" and name.endswith(".lock")):
                continue  # (mvc's own state: a lock file a command made)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif os.access(full, os.R_OK):
                out[rel] = (stat.S_IMODE(st.st_mode), Path(full).read_bytes())
            else:
                out[rel] = (stat.S_IMODE(st.st_mode), st.st_size)
    if (root / ".git").exists():
        out[".git/index"] = git(root, "-c", "safe.directory=*", "ls-files", "-s", "--others", "--exclude-standard")
    return out


def assert_one_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The subprocess twin of the mvc_error fixture."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    return lines[0]


def obj(repo: Path, oid: str) -> Path:
    return repo / ".mvc" / "cache" / "objects" / oid[7:9] / oid[9:]


def oid_at(path: Path) -> str:
    return ptrfmt.loads(path.with_name(path.name + ".mvc").read_bytes()).oid


ALL_COMMANDS = [
    ("init",),
    ("add", "m.bin"),
    ("status",),
    ("checkout",),
    ("get", "m.bin", "-o", "out.bin"),
    ("ls",),
    ("unprotect", "m.bin"),
    ("config", "cache.type"),
]


# -- where mvc runs -------------------------------------------------------------------------------
@pytest.mark.parametrize("args", ALL_COMMANDS, ids=lambda a: a[0])
def test_not_a_git_repo(tmp_path, monkeypatch, mvc_error, args):
    make_file(tmp_path / "m.bin", 10)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    mvc_error(*args, words=("not inside a git repository", "git init"))
    assert snapshot(tmp_path) == before


def test_bare_git_repo(tmp_path, monkeypatch, mvc_error):
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    monkeypatch.chdir(tmp_path / "bare.git")
    mvc_error("init", words=("bare", "work tree"))
    assert not (tmp_path / "bare.git" / ".mvc").exists()


@pytest.mark.parametrize("args", ALL_COMMANDS[1:], ids=lambda a: a[0])
def test_mvc_init_not_run(gitrepo, mvc_error, args):
    make_file(gitrepo / "m.bin", 10)
    before = snapshot(gitrepo)
    mvc_error(*args, words=("not set up", "mvc init"))
    assert snapshot(gitrepo) == before
    assert not (gitrepo / ".mvc").exists()


# -- paths ------------------------------------------------------------------------------------------
@pytest.fixture
def tracked(repo, mvc_cli):
    """m.bin and d/ tracked and committed."""
    make_file(repo / "m.bin", 1000, seed=1)
    make_file(repo / "d" / "a.bin", 100, seed=2)
    mvc_cli("add", "m.bin", "d")
    git(repo, "commit", "-q", "-m", "models")
    return repo


@pytest.mark.parametrize(
    "cmd", [("add",), ("status",), ("checkout",), ("unprotect",), ("get", "-o", "o.bin")], ids=lambda c: c[0]
)
@pytest.mark.parametrize("where", ["relative", "absolute", "sibling"])
def test_path_outside_the_repo(tracked, tmp_path, mvc_error, cmd, where):
    outside = make_file(tmp_path / "outside.bin", 10)
    make_file(tmp_path / "repo-sibling" / "x.bin", 10)
    path = {"relative": "../outside.bin", "absolute": str(outside), "sibling": "../repo-sibling/x.bin"}[where]
    before, before_out = snapshot(tracked), snapshot(tmp_path / "repo-sibling")
    mvc_error(cmd[0], path, *cmd[1:], words=("outside the repository", "move it inside"))
    assert snapshot(tracked) == before and snapshot(tmp_path / "repo-sibling") == before_out
    assert not (tmp_path / "outside.bin.mvc").exists()


@pytest.mark.parametrize(
    "path, words",
    [
        (".git/config", (".git/", "another path")),
        (".mvc/config.toml", (".mvc/", "another path")),
        (".", ("repository root",)),
        ("m.bin.mvc", ("pointer file", "m.bin")),
        ("d/a.bin", ("inside d", "re-add d")),
    ],
)
def test_paths_mvc_will_not_track(tracked, mvc_error, path, words):
    before = snapshot(tracked)
    mvc_error("add", path, words=words)
    assert snapshot(tracked) == before


def test_dir_containing_a_tracked_path(tracked, mvc_cli, mvc_error):
    make_file(tracked / "outer" / "inner.bin", 10)
    mvc_cli("add", "outer/inner.bin")
    before = snapshot(tracked)
    mvc_error("add", "outer", words=("outer/inner.bin", "tracks on its own"))
    assert snapshot(tracked) == before


def test_add_through_a_symlinked_directory_out_of_the_repo(repo, tmp_path, mvc_error):
    make_file(tmp_path / "elsewhere" / "w.bin", 10)
    (repo / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    before = snapshot(repo)
    mvc_error("add", "link/w.bin", words=("outside the repository through a symlink", "remove the symlink"))
    assert snapshot(repo) == before and not (tmp_path / "elsewhere" / "w.bin.mvc").exists()


@pytest.mark.parametrize("args", [("nope.bin",), ("m.bin", "nope.bin"), ("nope.bin", "m.bin")])
def test_missing_path(repo, mvc_error, args):
    make_file(repo / "m.bin", 10)
    before = snapshot(repo)
    mvc_error("add", *args, words=("nope.bin", "no such file", "check the path"))
    assert snapshot(repo) == before  # m.bin was not added either: paths are checked first


def test_missing_path_for_other_commands(tracked, mvc_error):
    before = snapshot(tracked)
    for args in (("status", "nope.bin"), ("checkout", "nope.bin"), ("unprotect", "nope.bin")):
        line = mvc_error(*args, words=("nope.bin", "not tracked", "does not exist", "mvc ls"))
        assert "mvc add" not in line  # nothing there to add
    mvc_error("get", "nope.bin", "-o", "o.bin", words=("nope.bin", "not tracked"))
    assert snapshot(tracked) == before


def test_symlink_file_is_not_added(repo, tmp_path, mvc_error):
    make_file(tmp_path / "real.bin", 10)
    (repo / "m.bin").symlink_to(tmp_path / "real.bin")
    before = snapshot(repo)
    mvc_error("add", "m.bin", words=("symlink", "real path"))
    assert snapshot(repo) == before


def test_symlink_inside_directory_is_not_added(repo, tmp_path, mvc_error):
    make_file(repo / "d" / "a.bin", 10)
    make_file(tmp_path / "real.bin", 10)
    (repo / "d" / "link.bin").symlink_to(tmp_path / "real.bin")
    before = snapshot(repo)
    mvc_error("add", "d", words=("d/link.bin", "symlink", "replace it"))
    assert snapshot(repo) == before


# -- names mvc cannot record: refused when adding, never a traceback later ------------------------
@pytest.mark.parametrize("name", ["back\\slash.bin", "new\nline.bin", "cr\rhere.bin"], ids=["backslash", "LF", "CR"])
def test_file_name_a_manifest_cannot_hold(repo, mvc_error, name):
    make_file(repo / "d" / "ok.bin", 10)
    make_file(repo / "d" / name, 10)
    before = snapshot(repo)
    mvc_error("add", "d", words=("a file name mvc cannot record", "rename it"))
    assert snapshot(repo) == before


def test_undecodable_file_name_in_a_directory(repo, mvc_error):
    make_file(repo / "d" / "ok.bin", 10)
    with open(os.path.join(os.fsencode(repo / "d"), b"bad\xffname.bin"), "wb") as f:
        f.write(b"x")
    before = snapshot(repo)
    mvc_error("add", "d", words=("not valid UTF-8", "rename it"))
    assert snapshot(repo) == before


def test_undecodable_top_level_name(repo, mvc_error):
    with open(os.path.join(os.fsencode(repo), b"bad\xffname.bin"), "wb") as f:
        f.write(b"x")
    before = snapshot(repo)
    mvc_error("add", os.fsdecode(b"bad\xffname.bin"), words=("not a valid UTF-8 name", "rename it"))
    assert snapshot(repo) == before


def test_undecodable_extra_file_in_a_tracked_directory(repo, mvc_cli, mvc_error):
    make_file(repo / "d" / "ok.bin", 10)
    mvc_cli("add", "d")
    with open(os.path.join(os.fsencode(repo / "d"), b"bad\xffname.bin"), "wb") as f:
        f.write(b"unsaved")
    assert mvc_cli("status").stdout == "d: modified\n"
    mvc_error("checkout", words=("not in the cache", "--force"))
    r = mvc_cli("checkout", "--force")
    assert "kept the replaced content of $'d/bad\\xffname.bin'" in r.stdout  # (pasted, it names that file)
    assert os.listdir(repo / "d") == ["ok.bin"]
    assert mvc_cli("status").stdout == "d: up to date\n"


def test_hostile_pointer_with_undecodable_path(repo, mvc_error):
    pointer = ptrfmt.dumps(ptrfmt.Pointer("file", "xxh128:" + "0" * 32, 1))
    with open(os.path.join(os.fsencode(repo), b"bad\xffname.bin.mvc"), "wb") as f:
        f.write(pointer)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hostile")
    before = snapshot(repo)
    for args in (("status",), ("ls",), ("ls", "--rev", "HEAD"), ("checkout",), ("checkout", "--rev", "HEAD")):
        mvc_error(*args, words=("must be valid UTF-8", "git mv"))
    assert snapshot(repo) == before


# -- unreadable paths: root reads anything, so mvc runs as an unprivileged user -------------------
@pytest.fixture
def unprivileged():
    """(a repo the unprivileged user owns, a function running mvc as that user in it).

    As root, chmod 000 does not stop reads; so mvc runs in a subprocess as uid/gid 65534. Its repo
    lives in a fresh world-traversable temp dir, since pytest's own temp root is private to root."""
    user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}
    base = Path(tempfile.mkdtemp(prefix="mvc-test-"))
    try:
        base.chmod(0o755)
        yield from _unprivileged_repo(base, user)
    finally:
        for dirpath, _, _ in os.walk(base):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(base)


def _unprivileged_repo(base: Path, user: dict):
    home = base / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = T\n\temail = t@example.com\n[init]\n\tdefaultBranch = main\n")
    env = dict(
        os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_GLOBAL=str(home / ".gitconfig")
    )
    root = base / "repo"
    root.mkdir()
    python = _interpreter(env, user)
    if python is None:
        pytest.skip("no Python interpreter with mvc's dependencies that an unprivileged user may run")

    def run(*args: str) -> subprocess.CompletedProcess:
        if user:
            for dirpath, dirnames, filenames in os.walk(base):
                for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                    os.lchown(name, NOBODY, NOBODY)
        return subprocess.run([python, "-m", "mvc", *args], cwd=root, env=env, capture_output=True, text=True, **user)

    subprocess.run(["git", "init", "-q"], cwd=root, env=env, check=True)
    assert run("init").returncode == 0
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=root, env=env, check=True, **user)
    probe = root / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    if user:
        os.lchown(probe, NOBODY, NOBODY)
    readable = subprocess.run(["cat", str(probe)], capture_output=True, **user).returncode == 0
    probe.unlink()
    if readable:
        pytest.skip("chmod 000 does not stop reads here")
    yield root, run


_INTERPRETERS: dict[bool, str | None] = {}


def _interpreter(env: dict, user: dict) -> str | None:
    """A Python the unprivileged user can run, importing mvc and its dependencies from this environment.

    The venv's interpreter may live under a private directory (e.g. pyenv under /root); the system's
    interpreter of the same minor version can load the same site-packages through PYTHONPATH."""
    import site

    import mvc

    env["PYTHONPATH"] = os.pathsep.join([*site.getsitepackages(), str(Path(mvc.__file__).resolve().parents[1])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if bool(user) in _INTERPRETERS:
        return _INTERPRETERS[bool(user)]
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for cand in dict.fromkeys(
        [sys.executable, os.path.realpath(sys.executable), f"/usr/bin/{name}", f"/usr/local/bin/{name}"]
    ):
        try:
            probe = subprocess.run(
                [cand, "-c", "import mvc.cli, mvc.api.workspace, mvc.api.checkout, pygit2, xxhash, tomli_w"],
                cwd="/",
                env=env,
                capture_output=True,
                **user,
            )
        except OSError:
            continue
        if probe.returncode == 0:
            _INTERPRETERS[bool(user)] = cand
            return cand
    _INTERPRETERS[bool(user)] = None
    return None


def test_unreadable_file(unprivileged):
    root, run = unprivileged
    f = make_file(root / "m.bin", 1000)
    data = f.read_bytes()
    f.chmod(0)
    before = snapshot(root)
    assert_one_line(run("add", "m.bin"), "m.bin", "permission denied", "chmod u+r")
    assert snapshot(root) == before
    f.chmod(0o644)
    assert f.read_bytes() == data


def test_unreadable_directory(unprivileged):
    root, run = unprivileged
    make_file(root / "d" / "a.bin", 10)
    (root / "d").chmod(0)
    before = snapshot(root)
    assert_one_line(run("add", "d"), "d", "permission denied", "chmod")
    assert snapshot(root) == before


def test_unreadable_file_inside_directory(unprivileged):
    root, run = unprivileged
    make_file(root / "d" / "a.bin", 10, seed=1)
    make_file(root / "d" / "b.bin", 10, seed=2).chmod(0)
    before = snapshot(root)
    assert_one_line(run("add", "d"), "d/b.bin", "permission denied", "chmod u+r")
    assert snapshot(root) == before
    assert not (root / "d.mvc").exists()


def test_unreadable_file_added_to_a_tracked_directory_is_a_change(unprivileged):
    """status sees the new file in the directory's listing: it need not read it to say the directory changed."""
    root, run = unprivileged
    make_file(root / "d" / "a.bin", 10, seed=1)
    assert run("add", "d").returncode == 0
    make_file(root / "d" / "b.bin", 10, seed=2).chmod(0)
    r = run("status")
    assert r.returncode == 0 and r.stdout == "d: modified\n", r.stderr


def test_tracked_file_made_unreadable(unprivileged):
    root, run = unprivileged
    make_file(root / "m.bin", 10)
    assert run("add", "m.bin").returncode == 0
    (root / "m.bin").chmod(0)
    os.utime(root / "m.bin", ns=(1, 1))  # a new mtime: the state cache no longer vouches for it, so mvc must read it
    before = snapshot(root)
    assert_one_line(run("status"), "m.bin", "permission denied")
    assert_one_line(run("add", "m.bin"), "m.bin", "permission denied")
    assert_one_line(run("checkout"), "m.bin", "permission denied")
    assert snapshot(root) == before


# -- pointers that try to leave the repository ----------------------------------------------------
def test_pointer_reached_through_a_symlinked_directory(repo, mvc_cli, mvc_error, tmp_path):
    """sub/ is replaced by a symlink to a directory outside the repo that holds a pointer."""
    make_file(repo / "sub" / "m.bin", 100)
    mvc_cli("add", "sub/m.bin")
    git(repo, "commit", "-q", "-m", "m")
    outside = tmp_path / "outside"
    shutil.move(repo / "sub", outside)
    (outside / "m.bin").unlink()
    (repo / "sub").symlink_to(outside, target_is_directory=True)
    before, before_out = snapshot(repo), snapshot(outside)
    for args in (
        ("checkout",),
        ("checkout", "--force"),
        ("checkout", "--rev", "HEAD"),
        ("status",),
        ("ls",),
        ("get", "sub/m.bin", "-o", str(tmp_path / "o.bin")),
        ("add", "sub/m.bin"),
        ("unprotect", "sub/m.bin"),
    ):
        mvc_error(*args, words=("outside the repository through a symlink",))
    assert not (outside / "m.bin").exists() and not (tmp_path / "o.bin").exists()
    assert snapshot(repo) == before and snapshot(outside) == before_out


def craft_dir_pointer(repo: Path, entry_path: str, content: bytes = b"evil payload") -> str:
    """A dir pointer whose manifest (stored under its true oid) lists entry_path: only the path check stops it."""
    odb = ODB(str(repo / ".mvc" / "cache"))
    foid = odb.add_bytes(content)
    manifest = mf.dumps([mf.Entry(entry_path, foid, len(content))])
    moid = odb.add_bytes(manifest)
    assert obj(repo, moid).read_bytes() == manifest
    assert moid == "xxh128:" + xxhash.xxh3_128_hexdigest(manifest)
    (repo / "d.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("dir", moid, len(content), nfiles=1)))
    return moid


@pytest.mark.parametrize("entry", ["../evil.bin", "x/../../evil.bin", "ABS"])
def test_manifest_entry_escaping_the_directory(repo, mvc_cli, mvc_error, tmp_path, entry):
    target = tmp_path / "evil.bin"  # where '../evil.bin' would land if followed from repo/
    entry = str(target) if entry == "ABS" else entry.replace("evil.bin", "../evil.bin", 1)
    moid = craft_dir_pointer(repo, entry)
    git(repo, "add", "d.mvc")
    git(repo, "commit", "-q", "-m", "hostile")
    before = snapshot(repo)
    for args in (
        ("checkout",),
        ("checkout", "d", "--force"),
        ("checkout", "--rev", "HEAD"),
        ("status",),
        ("get", "d", "-o", str(tmp_path / "out" / "d")),
        ("get", "d", "--rev", "HEAD", "-o", "o"),
    ):
        mvc_error(*args, words=(moid, "invalid", "re-add the directory"))
    assert not target.exists() and not (repo / "evil.bin").exists() and not (repo.parent / "evil.bin").exists()
    assert not (repo / "d").exists() and not (tmp_path / "out" / "d").exists() and not (repo / "o").exists()
    assert snapshot(repo) == before
    assert obj(repo, moid).exists()  # not corrupt (it hashes right), so not quarantined


def test_symlinked_subdirectory_inside_a_tracked_dir_is_never_written_through(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "d" / "sub" / "b.bin", 100, seed=1)
    mvc_cli("add", "d")
    want = (repo / "d" / "sub" / "b.bin").read_bytes()
    shutil.rmtree(repo / "d" / "sub")
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "d" / "sub").symlink_to(outside, target_is_directory=True)
    mvc_error("checkout", words=("d/sub", "--force"))
    mvc_cli("checkout", "--force")
    assert list(outside.iterdir()) == []
    assert not (repo / "d" / "sub").is_symlink() and (repo / "d" / "sub" / "b.bin").read_bytes() == want


def test_tracked_directory_replaced_by_a_symlink_is_not_followed(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "d" / "a.bin", 100, seed=1)
    mvc_cli("add", "d")
    want = (repo / "d" / "a.bin").read_bytes()
    shutil.rmtree(repo / "d")
    outside = tmp_path / "outside"
    make_file(outside / "a.bin", 5, seed=2)
    theirs = snapshot(outside)
    (repo / "d").symlink_to(outside, target_is_directory=True)
    assert mvc_cli("status").stdout == "d: modified\n"
    mvc_error("checkout", words=("d", "--force"))
    mvc_cli("checkout", "--force")
    assert snapshot(outside) == theirs
    assert not (repo / "d").is_symlink() and (repo / "d" / "a.bin").read_bytes() == want


def test_pointer_file_that_is_a_symlink(tracked, mvc_error, tmp_path):
    real = tmp_path / "real.mvc"
    real.write_bytes((tracked / "m.bin.mvc").read_bytes())
    (tracked / "m.bin.mvc").unlink()
    (tracked / "m.bin.mvc").symlink_to(real)
    (tracked / "m.bin").unlink()
    before = snapshot(tracked)
    for args in (
        ("status",),
        ("checkout",),
        ("checkout", "m.bin"),
        ("ls",),
        ("get", "m.bin", "-o", "o.bin"),
        ("add", "m.bin"),
    ):
        if args[0] == "add":
            make_file(tracked / "m.bin", 10, seed=5)
            before = snapshot(tracked)
        mvc_error(*args, words=("m.bin.mvc", "symlink"))
    assert snapshot(tracked) == before
    assert real.read_bytes() == (tracked / "m.bin.mvc").read_bytes()


# -- broken pointers --------------------------------------------------------------------------------
GARBAGE = {
    "garbage TOML": (b"this is [[ not toml", ("not a valid pointer file", "git checkout -- m.bin.mvc")),
    "binary": (b"\x00\xff\xfe\x00garbage", ("not a valid pointer file", "git checkout -- m.bin.mvc")),
    "newer format": (
        b'format = 2\nkind = "file"\noid = "xxh128:' + b"0" * 32 + b'"\nsize = 1\n',
        ("format 2", "upgrade mvc"),
    ),
    "unknown format": (
        b'format = "one"\nkind = "file"\noid = "xxh128:' + b"0" * 32 + b'"\nsize = 1\n',
        ("unknown pointer format", "git checkout -- m.bin.mvc"),
    ),
    "no format": (
        b'kind = "file"\noid = "xxh128:' + b"0" * 32 + b'"\nsize = 1\n',
        ("missing or unknown pointer format", "git checkout -- m.bin.mvc"),
    ),
    "bad oid": (b'format = 1\nkind = "file"\noid = "md5:abc"\nsize = 1\n', ("bad oid", "git checkout -- m.bin.mvc")),
}


@pytest.mark.parametrize("kind", GARBAGE)
def test_broken_pointer_in_the_work_tree(tracked, mvc_error, tmp_path, kind):
    data, words = GARBAGE[kind]
    (tracked / "m.bin.mvc").write_bytes(data)
    before = snapshot(tracked)
    for args in (("status",), ("checkout",), ("checkout", "--force"), ("ls",), ("get", "m.bin", "-o", "o.bin")):
        mvc_error(*args, words=("m.bin.mvc", *words))
    # re-adding does not overwrite a pointer it cannot read; it says how to start over
    line = mvc_error("add", "m.bin", words=("m.bin.mvc", *words))
    assert "delete m.bin.mvc" in line
    assert snapshot(tracked) == before


@pytest.mark.parametrize("kind", GARBAGE)
def test_broken_pointer_at_a_revision(tracked, mvc_error, kind):
    data, words = GARBAGE[kind]
    (tracked / "m.bin.mvc").write_bytes(data)
    git(tracked, "commit", "-q", "-am", "broken pointer")
    (tracked / "m.bin.mvc").write_bytes(git(tracked, "show", "HEAD~1:m.bin.mvc").encode())
    git(tracked, "add", "m.bin.mvc")
    before = snapshot(tracked)
    for args in (("ls", "--rev", "HEAD"), ("checkout", "--rev", "HEAD"), ("get", "m.bin", "--rev", "HEAD", "-o", "o")):
        mvc_error(*args, words=("m.bin.mvc", *words))
    assert snapshot(tracked) == before
    assert not (tracked / "o").exists()


# -- corrupt cache objects --------------------------------------------------------------------------
def corrupt(path: Path) -> bytes:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    path.chmod(0o444)
    return bytes(data)


def quarantined(repo: Path) -> list[bytes]:
    q = repo / ".mvc" / "cache" / "quarantine"
    return [p.read_bytes() for p in q.iterdir()] if q.is_dir() else []


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*.tmp") if ".git" not in p.parts]


@pytest.mark.parametrize("cache_type", ["copy", "reflink,copy", "hardlink", "symlink"])
@pytest.mark.parametrize("cmd", ["checkout", "get"])
def test_corrupt_file_object(repo, mvc_cli, mvc_error, tmp_path, cache_type, cmd):
    mvc_cli("config", "cache.type", cache_type)
    good = make_file(repo / "m.bin", 5000, seed=1).read_bytes()
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    oid = oid_at(repo / "m.bin")
    (repo / "m.bin").unlink()
    bad = corrupt(obj(repo, oid))
    before = snapshot(repo)
    args = ("checkout",) if cmd == "checkout" else ("get", "m.bin", "-o", str(tmp_path / "out.bin"))
    mvc_error(*args, words=(oid, "corrupt", "quarantine", "re-add"))
    assert not (repo / "m.bin").exists() and not (repo / "m.bin").is_symlink()
    assert not (tmp_path / "out.bin").exists()
    assert snapshot(repo) == before and no_temp_files(repo) and no_temp_files(tmp_path)
    assert not obj(repo, oid).exists() and quarantined(repo) == [bad]
    assert mvc_cli("status").stdout == "m.bin: missing from workspace, missing from cache\n"
    # a good copy can be stored again, and then everything works
    (repo / "m.bin").write_bytes(good)
    mvc_cli("add", "m.bin")
    (repo / "m.bin").unlink()
    mvc_cli("checkout")
    assert (repo / "m.bin").read_bytes() == good


def test_corrupt_large_object(repo, mvc_cli, mvc_error):
    """Above the in-memory threshold the copy runs in a thread while the hash is computed: same rules."""
    make_file(repo / "m.bin", (8 << 20) + 4096, seed=1)
    mvc_cli("add", "m.bin")
    oid = oid_at(repo / "m.bin")
    (repo / "m.bin").unlink()
    corrupt(obj(repo, oid))
    mvc_error("checkout", words=(oid, "corrupt"))
    assert not (repo / "m.bin").exists() and no_temp_files(repo)
    assert len(quarantined(repo)) == 1


def test_corrupt_object_in_a_directory(repo, mvc_cli, mvc_error):
    make_file(repo / "d" / "a.bin", 100, seed=1)
    make_file(repo / "d" / "b.bin", 100, seed=2)
    mvc_cli("add", "d")
    boid = "xxh128:" + xxhash.xxh3_128_hexdigest((repo / "d" / "b.bin").read_bytes())
    shutil.rmtree(repo / "d")
    corrupt(obj(repo, boid))
    mvc_error("checkout", words=(boid, "corrupt"))
    assert not (repo / "d" / "b.bin").exists() and no_temp_files(repo)
    assert len(quarantined(repo)) == 1


def test_corrupt_manifest(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "d" / "a.bin", 100, seed=1)
    mvc_cli("add", "d")
    moid = oid_at(repo / "d")
    shutil.rmtree(repo / "d")
    corrupt(obj(repo, moid))
    mvc_error("checkout", words=(moid, "corrupt"))
    assert not (repo / "d").exists() and len(quarantined(repo)) == 1
    mvc_error("get", "d", "-o", str(tmp_path / "o"), words=(moid, "not in the cache"))
    assert not (tmp_path / "o").exists()


def test_truncated_object(repo, mvc_cli, mvc_error):
    make_file(repo / "m.bin", 5000, seed=1)
    mvc_cli("add", "m.bin")
    oid = oid_at(repo / "m.bin")
    (repo / "m.bin").unlink()
    o = obj(repo, oid)
    o.chmod(0o644)
    o.write_bytes(o.read_bytes()[:100])
    mvc_error("checkout", words=(oid, "corrupt"))
    assert not (repo / "m.bin").exists()


# -- git already tracks it ------------------------------------------------------------------------
def test_path_git_already_tracks(repo, mvc_error):
    make_file(repo / "m.bin", 10)
    git(repo, "add", "m.bin")
    before = snapshot(repo)
    mvc_error("add", "m.bin", words=("m.bin", "already tracked by git", "git rm --cached m.bin", "mvc add m.bin"))
    assert snapshot(repo) == before


def test_directory_git_already_tracks(repo, mvc_error):
    make_file(repo / "d" / "sub" / "a.bin", 10)
    git(repo, "add", "d")
    git(repo, "commit", "-q", "-m", "d")
    before = snapshot(repo)
    mvc_error("add", "d", words=("already tracked by git", "git rm -r --cached d"))
    assert snapshot(repo) == before


def test_following_the_git_rm_advice_works(repo, mvc_cli, mvc_error):
    make_file(repo / "m.bin", 10)
    git(repo, "add", "m.bin")
    git(repo, "commit", "-q", "-m", "m in git")
    mvc_error("add", "m.bin", words=("git rm --cached m.bin",))
    git(repo, "rm", "-q", "--cached", "m.bin")
    mvc_cli("add", "m.bin")
    assert git(repo, "diff", "--cached", "--name-status").split() == ["A", ".gitignore", "D", "m.bin", "A", "m.bin.mvc"]


# -- disk full while adding -----------------------------------------------------------------------
def small_disk() -> None:
    """In the child: writes past 1 MiB fail with EFBIG, as a write to a full disk fails with ENOSPC, and what is
    left must be the same (SIGXFSZ would kill instead); the message names the file-size limit."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


@pytest.mark.parametrize("size", [4 << 20, (8 << 20) + 1], ids=["4MiB", "8MiB+1"])
@pytest.mark.parametrize("target", ["file", "dir"])
def test_disk_full_while_adding(repo, size, target):
    big = make_file(repo / ("d/big.bin" if target == "dir" else "big.bin"), size, seed=3)
    if target == "dir":
        make_file(repo / "d" / "small.bin", 100, seed=4)
    data = big.read_bytes()
    before = snapshot(repo)
    proc = run_mvc("add", (target == "dir" and "d") or "big.bin", cwd=repo, preexec_fn=small_disk)
    assert_one_line(proc, "too large", "ulimit -f")  # (the disk's own ENOSPC: tests/test_resource_limits.py)
    assert big.read_bytes() == data
    assert snapshot(repo) == before
    tmp = repo / ".mvc" / "cache" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []
    objects = repo / ".mvc" / "cache" / "objects"
    assert not any(p.stat().st_size == size for p in objects.glob("*/*"))
    # with room again, the same command succeeds
    assert run_mvc("add", (target == "dir" and "d") or "big.bin", cwd=repo).returncode == 0


@pytest.mark.parametrize("case", ["restore", "force over unsaved work"])
def test_disk_full_while_checking_out(repo, mvc_cli, case):
    """No partial file appears, and content that --force was about to keep is never lost."""
    good = make_file(repo / "big.bin", 4 << 20, seed=3).read_bytes()
    mvc_cli("add", "big.bin")
    git(repo, "commit", "-q", "-m", "big")
    if case == "restore":
        (repo / "big.bin").unlink()
        args: tuple[str, ...] = ("checkout",)
    else:
        make_file(repo / "big.bin", 4 << 20, seed=4)
        args = ("checkout", "--force")
    before = snapshot(repo)
    assert_one_line(run_mvc(*args, cwd=repo, preexec_fn=small_disk), "too large", "ulimit -f")
    assert snapshot(repo) == before and no_temp_files(repo)
    assert list((repo / ".mvc" / "cache" / "tmp").iterdir()) == []
    assert run_mvc(*args, cwd=repo).returncode == 0
    assert (repo / "big.bin").read_bytes() == good


def test_a_pointer_in_a_merge_conflict_says_how_to_resolve_it(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "m.pt", 2000, seed=1)
    make_file(repo / "other.pt", 1000, seed=9)
    mvc_cli("add", "m.pt", "other.pt")

    def theirs():
        make_file(repo / "m.pt", 2000, seed=2)
        mvc_cli("add", "m.pt")

    merge_that_conflicts(repo, mvc_cli, theirs)
    for args in (("ls",), ("checkout",), ("checkout", "--rev", "HEAD", "m.pt"), ("remove", "m.pt")):
        mvc_error(*args, words=("merge conflict", "git checkout --ours m.pt.mvc", "git add m.pt.mvc"))
    # status lists the conflict beside the other paths, as git status does, and says how to resolve it
    (tmp_path / "rem").mkdir()
    mvc_cli("remote", "add", "o", str(tmp_path / "rem"))
    for args in (("status",), ("status", "-r", "o"), ("status", "m.pt")):
        out = mvc_cli(*args).stdout.splitlines()
        assert out[0].startswith("m.pt: conflicted: a merge left its pointer unmerged")
        assert "git checkout --ours m.pt.mvc" in out[0] and "mvc checkout m.pt" in out[0]
        assert out[1:] == (
            [] if "m.pt" in args else ["other.pt: " + ("not pushed to o (1 object)" if "o" in args else "up to date")]
        )
    rows = json.loads(mvc_cli("status", "--json").stdout)
    assert [(r["path"], r["workspace"], r.get("pointer")) for r in rows] == [
        ("m.pt", "conflicted", "m.pt.mvc"),
        ("other.pt", "ok", None),
    ]
    assert rows[0]["unmerged"] is True
    git(repo, "checkout", "--theirs", "m.pt.mvc")  # what the error says, then mvc checkout
    git(repo, "add", "m.pt.mvc")
    mvc_cli("checkout", "--force")
    assert (repo / "m.pt").read_bytes() == make_file(repo / "x.bin", 2000, seed=2).read_bytes()


def test_a_pointer_whose_size_its_object_belies_is_refused_as_damaged(repo, mvc_cli, mvc_error, tmp_path):
    from mvc.format import pointer as ptrfmt

    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    p = ptrfmt.loads((repo / "m.bin.mvc").read_bytes())
    (repo / "m.bin.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("file", p.oid, 2**62)))
    for args in (("status",), ("checkout", "--force"), ("get", "m.bin", "-o", str(tmp_path / "o"))):
        mvc_error(*args, words=("m.bin.mvc gives size", "holds 1000 bytes", "the pointer is damaged"))
    assert not (tmp_path / "o").exists()


def test_a_pointer_whose_size_a_packed_object_belies_is_refused_too(repo, mvc_cli, mvc_error, monkeypatch):
    """The object a hostile pointer names lies in one of the cache's packs (a directory added in bulk): its index
    gives the size, and the pointer that says otherwise is refused as for a loose object."""
    from mvc.format import pointer as ptrfmt
    from mvc.objects import oid as oids

    monkeypatch.setattr("mvc.repo.storing.PARALLEL_FROM", 10)  # (a bulk add, into cache packs, from 10 files)
    # (forked also while another test's S3 server thread runs in this process)
    monkeypatch.setattr("mvc.storage.forked.workers_for", lambda n, least, most=8: 2 if n >= least else 1)
    for i in range(12):
        make_file(repo / "data" / f"f{i:02}", 500 + i, seed=i)
    mvc_cli("add", "data")
    assert list((repo / ".mvc" / "cache" / "packs").glob("*.pack"))
    oid = oids.from_digest(xxhash.xxh3_128_hexdigest((repo / "data" / "f03").read_bytes()))
    (repo / "x.bin.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("file", oid, 7)))
    mvc_error("status", "x.bin", words=("x.bin.mvc gives size 7", "holds 503 bytes", "the pointer is damaged"))


def test_a_bare_repository_is_named_as_such(tmp_path, mvc_error, monkeypatch):
    """Commands that need a work tree, run in a bare repository (or below it): one line that says it is bare and
    what to do, not 'run git init'."""
    bare = tmp_path / "models.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    for where in (bare, bare / "refs"):
        monkeypatch.chdir(where)
        for args in (("status",), ("log", "churn"), ("diff",)):
            line = mvc_error(*args, words=("bare git repository", "git clone"))
            assert "git init" not in line


def test_a_repo_opened_below_its_root_names_the_root(repo):
    import mvc
    from mvc.errors import NotInitialized

    (repo / "models").mkdir()
    with pytest.raises(NotInitialized, match="is not the repository's root") as e:
        mvc.Repo(str(repo / "models"))
    assert "mvc init" not in str(e.value) and str(repo) in str(e.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a repository another user owns takes root")
def test_a_repository_another_user_owns_says_safe_directory(gitrepo, mvc_error):
    """git refuses a repository another user owns (a bind mount in a container): one line with git's fix."""
    for p in [gitrepo, *gitrepo.rglob("*")]:
        os.lchown(p, 65534, 65534)
    mvc_error("init", words=("another user owns it", f"safe.directory {gitrepo}"))
    assert not (gitrepo / ".mvc").exists()


def test_repo_that_names_nothing_is_refused_not_the_current_one(repo, tmp_path):
    """repo= a missing directory, or a URL given to a verb that works in a clone, was looked for from the current
    directory up: the current repository answered in its place."""
    import mvc
    from mvc.errors import PathError

    for bad in ("no/such/dir", str(tmp_path / "gone"), "https://example.com/x.git", "git@github.com:acme/m.git"):
        with pytest.raises(PathError, match="repo="):
            mvc.ls(repo=bad)
        with pytest.raises(PathError, match="repo="):
            mvc.status(repo=bad)
    with pytest.raises(TypeError, match="repo must be"):
        mvc.ls(repo=5)
    assert mvc.ls(repo=str(repo)) == mvc.ls()


def test_an_empty_path_is_refused_not_taken_for_all(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(tmp_path / "s"), "--default")
    for cmd in ("remove", "checkout", "status", "unprotect", "push", "fetch"):
        mvc_error(cmd, "", words=("'' is not a path",))
    assert (repo / "m.bin.mvc").exists()


def test_force_never_replaces_a_device_or_a_fifo(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    fifo = tmp_path / "ff"
    os.mkfifo(fifo)
    mvc_error("get", "m.bin", "-o", str(fifo), "--force", words=("is a FIFO, not a file",))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    mvc_error("get", "m.bin", "-o", os.devnull, "--force", words=("is a device",))
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_unset_local_default_leaves_the_shared_one(repo, mvc_cli, mvc_error, tmp_path):
    mvc_cli("remote", "add", "origin", str(tmp_path / "s"), "--default")
    git(repo, "commit", "-q", "-m", "remote")
    mvc_cli("remote", "add", "mine", str(tmp_path / "m"), "--local")
    mvc_cli("remote", "default", "mine", "--local")
    mvc_cli("remote", "default", "--unset", "--local")
    assert mvc_cli("remote", "default").stdout.strip() == "origin"
    assert git(repo, "diff", "--cached", "--name-only") == ""
    assert mvc_cli("remote", "default", "--unset", "origin", ok=False).exit_code == 2


def test_revs_and_jobs_as_the_api_takes_them(repo, mvc_cli, tmp_path):
    """revs="HEAD" is one revision (it was four letters); jobs must be 1 or more, in the API as on the CLI."""
    import mvc
    from mvc.errors import PathError

    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(tmp_path / "s"), "--default")
    git(repo, "commit", "-q", "-m", "m")
    assert mvc.push(revs="HEAD")["uploaded"] >= 1
    assert mvc.verify(revs="HEAD")["problems"] == []
    assert mvc.gc(revs="HEAD")["dry_run"]
    for bad in (0, -1, "abc", 1.5, True):
        with pytest.raises(PathError, match="jobs must be"):
            mvc.push(jobs=bad)
    with pytest.raises(PathError, match="a revision is a non-empty string"):
        mvc.gc(revs=[""])
    for cmd in (("gc", "-j", "0"), ("verify", "-j", "-1"), ("gc", "-r", "origin", "-j", "0")):
        assert mvc_cli(*cmd, ok=False).exit_code == 2


def test_register_refuses_two_bumps_and_an_empty_rev(repo, mvc_cli, mvc_error):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "m")
    assert mvc_cli("register", "churn", "--bump-major", "--bump-minor", ok=False).exit_code == 2
    mvc_error("register", "churn", "--rev", "", words=("''",))
    mvc_cli("register", "churn", "--bump-minor")
    assert git(repo, "tag").split() == ["churn@v0.1.0"]


def test_a_repository_with_no_commit_yet(gitrepo, mvc_cli, mvc_error):
    """log of a path tracked but never committed: no commit changed it; a revision there: none exists yet."""
    import mvc

    mvc.init(str(gitrepo))
    make_file(gitrepo / "m.bin", 10)
    mvc_cli("add", "m.bin", "--name", "churn")
    assert mvc_cli("log", "m.bin").stdout == "no commit changed m.bin\n"
    assert mvc_cli("log", "churn").stdout == "no commit changed churn\n"
    mvc_error("ls", "--rev", "HEAD", words=("HEAD names no commit", "git commit"))
    mvc_error("log", "nope.bin", words=("names no commit",))


def test_python_values_the_api_takes(repo, mvc_cli, mvc_error):
    """Values natural in Python, taken as the CLI's text would be, or refused with mvc's error, not an
    AttributeError from inside."""
    from pathlib import Path

    import mvc
    from mvc.api import config as cfgapi
    from mvc.errors import ConfigError, PathError

    cfgapi.set("core.fsync", True)
    assert cfgapi.get("core.fsync") is True
    cfgapi.set("cache.type", ["reflink", "copy"])
    with pytest.raises(ConfigError, match="a value is a string"):
        cfgapi.set("core.fsync", object())
    make_file(repo / "m.bin", 10)
    mvc.add(b"m.bin")
    mvc_cli("add", "m.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "m")
    assert mvc.gc(grace=0)["dry_run"] and mvc.gc(grace=14 * 86400)["dry_run"] and mvc.gc(grace=0.5)["dry_run"]
    with pytest.raises(PathError, match="not a duration"):
        mvc.gc(grace=None)
    assert mvc.log("churn", rev=None)[0]["path"] == "m.bin"
    assert mvc.registry(repo=Path(repo)) == mvc.registry()
    assert mvc.diff_models(Path("m.bin"))["same"] is True  # the pointer's version against HEAD's
    mvc_error("diff", "--tensors", "HEAD", "HEAD", words=("HEAD is a revision", "HEAD:PATH"))


def tiny_files() -> None:
    """In the child: no file may grow past 2,000 bytes (git's index, a new sqlite database): a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))


def test_a_git_write_error_is_said_at_once_not_taken_for_a_held_lock(repo, mvc_cli):
    """git failing to write its index (a full disk) names index.lock in its error: that is not another process
    holding the lock, so mvc neither waits 30 s nor tells the user to delete a file that is not there."""
    for i in range(100):
        (repo / f"g{i}").write_text(f"{i}\n")
    git(repo, "add", ".")
    make_file(repo / "d" / "a.bin", 3)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "d")
    (repo / "d" / "a.bin").write_bytes(b"new")
    proc = run_mvc("add", "d", cwd=repo, preexec_fn=tiny_files)
    assert_one_line(proc, "git add failed", "write error")
    assert "waiting for another git process" not in proc.stderr and "has been held" not in proc.stderr


def test_a_journal_that_cannot_be_written_is_one_line(repo, mvc_cli, tmp_path):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    git(repo, "commit", "-q", "-m", "m")
    assert not (repo / ".mvc" / "remotes.db").exists()
    proc = run_mvc("push", cwd=repo, preexec_fn=tiny_files)
    assert_one_line(proc, "remotes.db", "free some space")
    assert run_mvc("push", cwd=repo).returncode == 0


def test_a_held_index_lock_is_waited_for_in_any_language(repo, mvc_cli):
    """git's messages are read in English whatever the user's locale (a translated 'File exists' was a failure)."""
    import threading
    import time

    make_file(repo / "m.bin", 10)
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")
    threading.Thread(target=lambda: (time.sleep(1.0), lock.unlink()), daemon=True).start()
    proc = run_mvc("add", "m.bin", cwd=repo, env={**os.environ, "LANGUAGE": "de", "LC_ALL": "C.UTF-8"})
    assert proc.returncode == 0, proc.stderr
    assert "m.bin.mvc" in git(repo, "diff", "--cached", "--name-only")


def test_messages_for_empty_or_root_names(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin", "--name", "churn")
    mvc_cli("remote", "add", "origin", str(tmp_path / "s"), "--default")
    git(repo, "commit", "-q", "-m", "m")
    line = mvc_error("show", ".", words=("repository's root", "mvc ls"))
    assert "mvc add" not in line
    mvc_error("get", "", "-o", str(tmp_path / "o"), words=("'' is not a path",))
    line = mvc_error("push", "-r", "", words=("'' is not a remote's name", "known remotes: origin"))
    assert "remote add" not in line
    line = mvc_error("deprecate", "a b", words=("model name",))
    assert "mvc register a b" not in line
    mvc_error("deprecate", "churn", "v0.0.1", "", words=("stage name",))


def test_a_failed_get_removes_the_directories_it_made(repo, mvc_cli, tmp_path):
    make_file(repo / "m.bin", 10_000)
    mvc_cli("add", "m.bin")
    out = tmp_path / "new" / "deeper" / "m.bin"
    proc = run_mvc("get", "m.bin", "-o", str(out), cwd=repo, preexec_fn=tiny_files)
    assert_one_line(proc, "too large")
    assert not (tmp_path / "new").exists()
    assert run_mvc("get", "m.bin", "-o", str(out), cwd=repo).returncode == 0 and out.stat().st_size == 10_000


def test_sigterm_ends_a_command_as_ctrl_c_does(repo, mvc_cli, tmp_path):
    """SIGTERM (a CI timeout, docker stop) raises in the command as Ctrl-C does, so its cleanup runs: exit 143."""
    import time

    mvc_cli("remote", "add", "origin", str(tmp_path / "s"), "--default")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvc", "hook", "pre-push", "origin", str(tmp_path / "s")],
        cwd=repo,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # started, and waiting for git's ref lines
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "interrupted" in err and "Traceback" not in err


def test_a_pointer_a_modify_delete_conflict_left_unmerged_is_conflicted(repo, mvc_cli):
    """One side changed the model, the other stopped tracking it: git leaves the pointer unmerged with no markers
    (status UD). mvc status says conflicted, not up to date."""
    make_file(repo / "m.pt", 2000, seed=1)
    mvc_cli("add", "m.pt")
    merge_that_conflicts(repo, mvc_cli, lambda: mvc_cli("remove", "m.pt"))
    out = mvc_cli("status").stdout
    assert out.startswith("m.pt: conflicted: a merge left its pointer unmerged") and "git rm m.pt.mvc" in out, out
    assert json.loads(mvc_cli("status", "--json").stdout)[0]["workspace"] == "conflicted"


def merge_that_conflicts(repo, mvc_cli, theirs) -> None:
    """What is added so far committed; on a branch, theirs() changes m.pt, committed; on main, m.pt changed
    another way, committed; then git merge of the branch, which conflicts on m.pt.mvc."""
    git(repo, "commit", "-q", "-m", "1")
    git(repo, "checkout", "-q", "-b", "theirs")
    theirs()
    git(repo, "commit", "-q", "-am", "theirs")
    git(repo, "checkout", "-q", "main")
    mvc_cli("checkout")
    make_file(repo / "m.pt", 2000, seed=3)
    mvc_cli("add", "m.pt")
    git(repo, "commit", "-q", "-m", "main")
    assert subprocess.run(["git", "merge", "-q", "theirs"], cwd=repo, capture_output=True).returncode != 0
