"""The hostile collaborator: pointers and manifests crafted with the real git binary so that following them
would write into .git/ or .mvc/, replace a file git reads itself, or split a .gitignore line. Every command
and hook that reads pointers refuses them in one line (never suggesting --force, which changes nothing
here), and nothing is written or deleted: .git/, .mvc/, the work tree and the remote are as before, file
names, sizes and mtimes alike (mvc's own databases, state.db and remotes.db, may change)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import git, make_file, run_mvc
from hypothesis import given
from hypothesis import strategies as st

from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf
from mvc.objects.odb import ODB
from mvc.repo.repository import quoted

PAYLOAD = b"#!/bin/sh\necho planted by a pointer\n"


def state(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and directory below roots: (type, size, mtime_ns); mvc's local databases (state.db,
    remotes.db) and lock files left out, and so the mtime of .mvc/ where they are made."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                if name.startswith(("state.db", "remotes.db")) or name in ("checkout.lock", "gc.lock"):
                    continue
                st = os.lstat(full)
                is_dir = stat.S_ISDIR(st.st_mode)
                mtime = 0 if is_dir and name == ".mvc" else st.st_mtime_ns
                out[full] = (stat.S_IFMT(st.st_mode), 0 if is_dir else st.st_size, mtime)
    return out


# -- the rule itself, fed garbage and near-misses --------------------------------------------------
parts = st.one_of(
    st.sampled_from([".git", ".GIT", ".git.", ".git ", "git~1", ".g\u200cit", ".mvc", ".MVC", "..", ".", ""]),
    st.sampled_from([".gitignore", ".GitAttributes", ".gitmodules:x", "gitmod~1", "a\nb", "x\ry", "d\x7f"]),
    st.sampled_from(["gi7eba~1", "GI250A~2", "gi7d29~9.", "gitatt~3"]),  # NTFS short names of git's files
    st.text(max_size=8),
)


@given(st.lists(parts, min_size=1, max_size=4))
def test_the_rule_on_any_path(components):
    """bad_target answers for any text (never raises), and what it lets through has none of the components
    a filesystem could take for .git or .mvc, no file git reads itself and no control character."""
    rel = "/".join(components)
    why = ptrfmt.bad_target(rel)
    assert why is None or isinstance(why, str)
    if why is None:
        names = [mf.fold(c) for c in rel.split("/")]
        assert not ptrfmt.has_control(rel) and names[0] != ".mvc"
        assert not {".git", "git~1"} & set(names) and names[-1] not in mf.GIT_FILES
        assert not (names[-1][6:7] == "~" and names[-1][7:8].isdigit() and names[-1][:6] in mf._GIT_SHORT)
        assert not {".", "..", ""} & set(rel.split("/"))  # (':' alone is a name on POSIX, folded or not)


def blob(repo: Path, data: bytes) -> str:
    return (
        subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )


def craft_commit(repo: Path, files: dict[str, bytes], parent: str = "HEAD") -> str:
    """A commit of parent's tree plus files, built with 'git mktree' (which, unlike the index, takes any
    name: a '.git' component included) and 'git commit-tree'."""
    root: dict = {}
    listing = subprocess.run(["git", "ls-tree", "-r", "-z", parent], cwd=repo, capture_output=True, check=True)
    for rec in listing.stdout.decode().split("\0"):
        if rec:
            meta, path = rec.split("\t", 1)
            mode, _, sha = meta.split(" ")
            *dirs, name = path.split("/")
            node = root
            for d in dirs:
                node = node.setdefault(d, {})
            node[name] = (mode, sha)
    for path, data in files.items():
        *dirs, name = path.split("/")
        node = root
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = ("100644", blob(repo, data))

    def mktree(node: dict) -> str:
        lines = []
        for name, v in node.items():
            if isinstance(v, dict):
                lines.append(f"040000 tree {mktree(v)}\t{name}")
            else:
                lines.append(f"{v[0]} blob {v[1]}\t{name}")
        out = subprocess.run(
            ["git", "mktree", "-z"], cwd=repo, input="\0".join(lines).encode() + b"\0", capture_output=True, check=True
        )
        return out.stdout.decode().strip()

    return git(repo, "commit-tree", mktree(root), "-p", parent, "-m", "hostile").strip()


def models_config(repo: Path, target: str) -> bytes:
    """.mvc/config.toml naming the hostile target as model 'evil' (log, registry revisions)."""
    text = (repo / ".mvc" / "config.toml").read_text()
    return (text + f"\n[models.evil]\npath = {json.dumps(target)}\n").encode()


def file_pointer(oid: str, size: int) -> bytes:
    return ptrfmt.dumps(ptrfmt.Pointer("file", oid, size))


@pytest.fixture
def base(repo, mvc_cli, tmp_path):
    """A repository with a default remote and the payload in its cache, so only the path rules stop it."""
    mvc_cli("remote", "add", "origin", str(tmp_path / "remote"), "--default")
    git(repo, "commit", "-q", "-m", "remote")
    oid = ODB(str(repo / ".mvc" / "cache")).add_bytes(PAYLOAD)
    return repo, oid


# tracked path -> the pointer crafted for it; each is committed through git's index
IN_THE_INDEX = {
    "cache": ".mvc/cache",
    "local-config": ".mvc/config.local.toml",
    "dotgit": ".git",
    "submodule-gitfile": "sub/.git",
    "gitignore": ".gitignore",
    "newline": "a\nb",
    "pointer": "m.bin.mvc",  # a pointer's pointer: its tracked path is a file git tracks
}
# other spellings of the same paths (filesystems that ignore case, NTFS, HFS+) and the rest of the rule
ALIASES = [".GIT", ".MVC/cache", ".git. ", "GIT~1", ".g\u200cit", "sub/.gitattributes"]
ALIASES += [".GitModules", "gitmod~1", "x\r", "tab\there", "del\x7f"]


def commands(target: str, rev: str, out: str) -> list[tuple[str, ...]]:
    return [
        ("status",),
        ("status", target),
        ("status", "-r", "origin"),
        ("ls",),
        ("ls", "--rev", rev),
        ("checkout",),
        ("checkout", "--force"),
        ("checkout", "--rev", rev),
        ("checkout", "--rev", rev, "--force"),
        ("checkout", "evil@v1.0.0"),
        ("get", target, "-o", out),
        ("get", target, "--rev", rev, "-o", out),
        ("get", "evil@v1.0.0", "-o", out),
        ("pull",),
        ("pull", "--force"),
        ("fetch",),
        ("push",),
        ("push", "--all-commits"),
        ("log", "evil"),
        ("diff",),
        ("diff", "HEAD~1", rev),
        ("unprotect", target),
        ("remove", target),
    ]


def refused(mvc_error, args: tuple[str, ...]) -> None:
    line = mvc_error(*args)
    assert "force" not in line, line
    assert any(w in line for w in ("a path mvc never writes", "which mvc never tracks", "is invalid")), line


def post_checkout_reports(mvc_cli, *args: str) -> None:
    """post-checkout (args: git's PREV NEW) or post-merge (args: "post-merge") reports the pointer in
    'mvc: ' lines and never fails git (docs/hooks.md)."""
    r = mvc_cli("hook", *(args if args == ("post-merge",) else ("post-checkout", *args, "1")), ok=False)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "a path mvc never writes" in r.stderr or "is invalid" in r.stderr, r.stderr
    assert all(line.startswith("mvc: ") for line in r.stderr.splitlines()), r.stderr
    assert "force" not in r.stderr


def pre_push_stops(mvc_cli, repo: Path, ref: str) -> None:
    """pre-push refuses to upload for the pushed commits and stops the push: exit 1 (docs/hooks.md)."""
    from mvc.cli import cli

    sha = git(repo, "rev-parse", ref).strip()
    lines = f"refs/heads/{ref} {sha} refs/heads/{ref} {'0' * 40}\n"
    r = mvc_cli.runner.invoke(cli, ["hook", "pre-push", "origin", "/nowhere"], input=lines, catch_exceptions=False)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.stderr.startswith("mvc: git push stopped: ") and "a path mvc never writes" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1 and "force" not in r.stderr


def pre_commit_stops(mvc_cli) -> None:
    """pre-commit names the problem in 'mvc: ' lines and stops the commit: exit 1 (docs/hooks.md)."""
    r = mvc_cli("hook", "pre-commit", ok=False)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "a path mvc never writes" in r.stderr or "is invalid" in r.stderr, r.stderr
    assert all(line.startswith("mvc: ") for line in r.stderr.splitlines()), r.stderr
    assert "commit stopped" in r.stderr.splitlines()[-1]


@pytest.mark.parametrize("target", IN_THE_INDEX.values(), ids=IN_THE_INDEX.keys())
def test_pointer_to_a_path_mvc_never_writes(base, mvc_cli, mvc_error, tmp_path, target):
    repo, oid = base
    pointer = repo / (target + ".mvc")
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_bytes(file_pointer(oid, len(PAYLOAD)))
    (repo / ".mvc" / "config.toml").write_bytes(models_config(repo, target))
    git(repo, "add", "-f", "--", str(pointer), ".mvc/config.toml")
    pre_commit_stops(mvc_cli)
    git(repo, "commit", "-q", "-m", "hostile")
    git(repo, "tag", "-a", "evil@v1.0.0", "-m", "register")
    git(repo, "update-ref", "ORIG_HEAD", "HEAD~1")  # as a merge that brought the pointer leaves it
    out = tmp_path / "out"
    before = state(repo, tmp_path / "remote")
    for args in commands(target, "HEAD", str(out)):
        if target.endswith(".mvc"):  # named by the user or a model: read as the pointer of m.bin, never tracked
            line = mvc_error(*args)
            assert "not tracked" in line or "a path mvc never writes" in line, line
        else:
            refused(mvc_error, args)
        assert state(repo, tmp_path / "remote") == before, args
    post_checkout_reports(mvc_cli, git(repo, "rev-parse", "HEAD~1").strip(), "HEAD")
    post_checkout_reports(mvc_cli, "post-merge")
    pre_commit_stops(mvc_cli)  # committed already: refused all the same
    pre_push_stops(mvc_cli, repo, "main")
    assert state(repo, tmp_path / "remote") == before
    assert not out.exists() and not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_other_spellings_of_those_paths(base, mvc_cli, mvc_error):
    """Each alias committed beside the others: the commands that name it refuse it, naming it."""
    repo, oid = base
    for target in ALIASES:
        pointer = repo / (target + ".mvc")
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.write_bytes(file_pointer(oid, len(PAYLOAD)))
        git(repo, "add", "-f", "--", str(pointer))
    git(repo, "commit", "-q", "-m", "hostile")
    before = state(repo)
    for target in ALIASES:
        for args in (("status", target), ("checkout", "--force", target), ("get", target, "--rev", "HEAD", "-o", "o")):
            line = mvc_error(*args, words=("a path mvc never writes", "git rm -f"))
            assert "force" not in line
            assert f"pointer {quoted(target + '.mvc')} " in line  # named, one line however it is spelt
    assert state(repo) == before


def test_pointer_into_a_git_directory_at_a_revision(base, mvc_cli, mvc_error, tmp_path):
    """A tree git itself refuses to check out: only revisions carry it (--rev, registry, push, log, diff)."""
    repo, oid = base
    target = "sub/.git/hooks/pre-commit"
    commit = craft_commit(
        repo, {target + ".mvc": file_pointer(oid, len(PAYLOAD)), ".mvc/config.toml": models_config(repo, target)}
    )
    git(repo, "update-ref", "refs/heads/evil", commit)
    git(repo, "tag", "-a", "evil@v1.0.0", "-m", "register", commit)
    (repo / "sub" / ".git" / "hooks").mkdir(parents=True)  # a nested repository, where the payload would go
    out = tmp_path / "out"
    before = state(repo, tmp_path / "remote")
    for args in [
        ("ls", "--rev", "evil"),
        ("checkout", "--rev", "evil"),
        ("checkout", "--rev", "evil", "--force"),
        ("checkout", "evil@v1.0.0"),
        ("get", target, "--rev", "evil", "-o", str(out)),
        ("get", "evil@v1.0.0", "-o", str(out)),
        ("pull", "--rev", "evil"),
        ("fetch", "--rev", "evil"),
        ("push", "--rev", "evil"),
        ("push", "--all-branches"),
        ("push", "--all-commits"),
        ("log", "evil", "--rev", "evil"),
        ("diff", "HEAD", "evil"),
    ]:
        refused(mvc_error, args)
        assert state(repo, tmp_path / "remote") == before, args
    post_checkout_reports(mvc_cli, "HEAD", "evil")
    pre_push_stops(mvc_cli, repo, "evil")
    assert state(repo, tmp_path / "remote") == before
    assert not out.exists() and not (repo / "sub" / ".git" / "hooks" / "pre-commit").exists()


@pytest.mark.parametrize("entry", [".git/config", "sub/.git/hooks/post-checkout", ".GIT/HEAD", "x/.Git./config"])
def test_manifest_entry_mvc_never_writes(base, mvc_cli, mvc_error, tmp_path, entry):
    """A directory whose manifest (stored under its true oid) lists git's files: refused as a corrupt manifest."""
    repo, oid = base
    odb = ODB(str(repo / ".mvc" / "cache"))
    moid = odb.add_bytes(mf.dumps([mf.Entry(entry, oid, len(PAYLOAD)), mf.Entry("ok.bin", oid, len(PAYLOAD))]))
    (repo / "d.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("dir", moid, 2 * len(PAYLOAD), nfiles=2)))
    (repo / ".mvc" / "config.toml").write_bytes(models_config(repo, "d"))
    git(repo, "add", "d.mvc", ".mvc/config.toml")
    pre_commit_stops(mvc_cli)
    git(repo, "commit", "-q", "-m", "hostile")
    git(repo, "tag", "-a", "evil@v1.0.0", "-m", "register")
    out = tmp_path / "out"
    before = state(repo, tmp_path / "remote")
    reads_no_manifest = {"ls", "log", "diff", "unprotect", "remove"}
    for args in commands("d", "HEAD", str(out)):
        if args[0] in reads_no_manifest:
            continue
        line = mvc_error(*args, words=(moid, "is invalid", "re-add the directory"))
        assert "force" not in line
        assert state(repo, tmp_path / "remote") == before, args
    post_checkout_reports(mvc_cli, git(repo, "rev-parse", "HEAD~1").strip(), "HEAD")
    assert state(repo, tmp_path / "remote") == before
    assert not out.exists() and not (repo / "d").exists()
    assert (repo / ".mvc" / "cache" / "objects" / moid[7:9] / moid[9:]).exists()  # hashes right: not quarantined


# -- the same rule for what 'mvc add' is given -----------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [".gitignore", "sub/.gitattributes", "sub/.GITMODULES", ".GIT/x.bin", "sub/.git/x.bin", "GIT~1", ".git. /x.bin"],
)
def test_add_refuses_git_paths(repo, mvc_error, path):
    make_file(repo / path, 10)
    before = state(repo)
    line = mvc_error("add", path, words=(path, "never tracks", "choose another path"))
    assert "force" not in line
    assert state(repo) == before


def test_git_files_inside_a_tracked_directory_are_ordinary_files(repo, mvc_cli):
    """A model directory as Hugging Face ships it holds a .gitattributes: git ignores the whole directory, so
    it never reads that file, and the directory adds and checks out like any other."""
    make_file(repo / "llama" / "model.bin", 100)
    (repo / "llama" / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (repo / "llama" / "sub" / ".gitignore").parent.mkdir()
    (repo / "llama" / "sub" / ".gitignore").write_text("*.tmp\n")
    mvc_cli("add", "llama")
    git(repo, "commit", "-q", "-m", "llama")
    import shutil

    shutil.rmtree(repo / "llama")
    mvc_cli("checkout", "llama")
    assert (repo / "llama" / ".gitattributes").read_text().startswith("*.bin filter=lfs")
    assert (repo / "llama" / "sub" / ".gitignore").read_text() == "*.tmp\n"
    assert "llama" not in git(repo, "status", "--porcelain")


def test_add_refuses_a_nested_repository_in_a_directory(repo, mvc_error):
    make_file(repo / "d" / "a.bin", 10)
    git(repo / "d", "init", "-q", "inner")
    before = state(repo)
    mvc_error("add", "d", words=("d/inner/.git/", "git's", "move it out of d"))
    assert state(repo) == before


def test_checkout_never_deletes_a_repository_inside_a_tracked_directory(repo, mvc_cli, mvc_error):
    make_file(repo / "d" / "a.bin", 10)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "d")
    git(repo / "d", "init", "-q", "inner")  # someone's clone in there: extra files a checkout would remove
    before = state(repo)
    for args in (("checkout", "--force"), ("checkout", "d", "--force"), ("checkout", "--rev", "HEAD", "--force")):
        line = mvc_error(*args, words=("d/inner/.git/", "never deletes", "move it out of d"))
        assert "force" not in line
    assert state(repo) == before


# -- control characters: a newline in a name made two .gitignore lines -----------------------------
@pytest.mark.parametrize("name", ["new\nline.bin", "cr\rline.bin", "tab\tline.bin", "del\x7fline.bin"])
@pytest.mark.parametrize("where", ["file", "in a directory"])
def test_name_with_a_control_character_is_refused(repo, mvc_error, name, where):
    (repo / ".gitignore").write_text("/other.bin\n")
    make_file(repo / "line.bin", 10, seed=1)  # what the second .gitignore line would have ignored
    make_file(repo / ("d/" + name if where == "in a directory" else name), 10, seed=2)
    git(repo, "add", ".gitignore", "line.bin")
    git(repo, "commit", "-q", "-m", "files")
    porcelain = git(repo, "status", "--porcelain", "-z")  # first: git status refreshes the index
    before = state(repo)
    if where == "file":
        mvc_error("add", name, words=(quoted(name), "control character", "rename it"))
    else:
        mvc_error("add", "d", words=(quoted("d/" + name), "control character", "rename it"))
    assert state(repo) == before
    assert git(repo, "status", "--porcelain", "-z") == porcelain
    assert (repo / ".gitignore").read_text() == "/other.bin\n"
    weird = name if where == "file" else "d/" + name
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "-z", "--stdin"], cwd=repo, input=f"line.bin\0{weird}\0".encode()
    )
    assert ignored.returncode == 1  # neither is ignored: the weights are not hidden, nor anything else


# -- cache.dir and git's directory where the work tree holds them ---------------------------------
def test_pointer_into_a_cache_configured_inside_the_work_tree(repo, mvc_cli, mvc_error, tmp_path):
    (repo / ".mvc" / "config.local.toml").write_text('[cache]\ndir = "../data/cache"\n')
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    oid = ptrfmt.loads((repo / "m.bin.mvc").read_bytes()).oid
    for target in ("data/cache/objects", "data"):  # lies in the cache, contains it
        (repo / (target + ".mvc")).parent.mkdir(parents=True, exist_ok=True)
        (repo / (target + ".mvc")).write_bytes(file_pointer(oid, 10))
    before = state(repo)
    for args in (("status",), ("checkout", "--force"), ("checkout", "data", "--force")):
        mvc_error(*args, words=("data/cache/", "never writes", "git rm -f"))
    assert state(repo) == before
    make_file(repo / "data" / "cache" / "x.bin", 10)
    mvc_error("add", "data/cache/x.bin", words=("data/cache/", "never tracks"))
    mvc_error("add", "data/cache", words=("data/cache/", "never tracks"))


def test_pointer_into_a_separate_git_dir_inside_the_work_tree(tmp_path, monkeypatch, mvc_cli, mvc_error):
    root = tmp_path / "r"
    git(tmp_path, "init", "-q", f"--separate-git-dir={root / 'gd'}", str(root))
    monkeypatch.chdir(root)
    mvc_cli("init")
    oid = ODB(str(root / ".mvc" / "cache")).add_bytes(PAYLOAD)
    (root / "gd" / "hooks" / "pre-commit.mvc").write_bytes(file_pointer(oid, len(PAYLOAD)))
    git(root, "add", "gd/hooks/pre-commit.mvc")  # git takes it: only .git is its own name
    before = state(root)
    for args in (("status",), ("checkout", "--force"), ("ls",)):
        mvc_error(*args, words=("gd/hooks/pre-commit", "gd/", "never writes"))
    assert state(root) == before and not (root / "gd" / "hooks" / "pre-commit").exists()


# -- checkout --rev: weights first, then each path's pointer -----------------------------------------
def test_checkout_rev_failing_part_way_leaves_each_path_at_one_version(repo, mvc_cli, mvc_error):
    """b.bin's old weights are corrupt in the cache: a.bin is at the old version, pointer and weights; b.bin
    keeps the new one, pointer and weights, in the work tree and in git's index alike."""
    old = {n: make_file(repo / n, 1000, seed=i).read_bytes() for i, n in enumerate(("a.bin", "b.bin"))}
    mvc_cli("add", "a.bin", "b.bin")
    git(repo, "commit", "-q", "-m", "old")
    old_pointers = {n: (repo / f"{n}.mvc").read_bytes() for n in old}
    new = {n: make_file(repo / n, 1000, seed=10 + i).read_bytes() for i, n in enumerate(old)}
    mvc_cli("add", "a.bin", "b.bin")
    git(repo, "commit", "-q", "-m", "new")
    new_pointers = {n: (repo / f"{n}.mvc").read_bytes() for n in old}
    b_old = repo / ".mvc" / "cache" / "objects" / ptrfmt.loads(old_pointers["b.bin"]).oid[7:9]
    b_old = b_old / ptrfmt.loads(old_pointers["b.bin"]).oid[9:]
    b_old.chmod(0o644)
    b_old.write_bytes(bytes(1000))  # same size, wrong content: found only while it is copied out
    mvc_error("checkout", "--rev", "HEAD~1", words=("corrupt",))
    assert (repo / "a.bin").read_bytes() == old["a.bin"] and (repo / "a.bin.mvc").read_bytes() == old_pointers["a.bin"]
    assert (repo / "b.bin").read_bytes() == new["b.bin"] and (repo / "b.bin.mvc").read_bytes() == new_pointers["b.bin"]
    assert git(repo, "show", ":a.bin.mvc").encode() == old_pointers["a.bin"]
    assert git(repo, "show", ":b.bin.mvc").encode() == new_pointers["b.bin"]
    assert mvc_cli("status").stdout == "a.bin: up to date\nb.bin: up to date\n"


# -- temps of a killed checkout: in .mvc/tmp, never in the work tree -------------------------------
def test_killed_checkout_leaves_the_work_tree_clean(repo, mvc_cli):
    (repo / ".mvc" / "config.local.toml").write_text('[cache]\ntype = ["copy"]\n')  # a copy takes a while
    block = os.urandom(1 << 20)
    with open(repo / "big.bin", "wb") as f:
        for _ in range(200):
            f.write(block)
    mvc_cli("add", "big.bin")
    git(repo, "commit", "-q", "-m", "big")
    (repo / "big.bin").unlink()
    porcelain = git(repo, "status", "--porcelain", "--ignored=no")
    tmp = repo / ".mvc" / "tmp"
    proc = subprocess.Popen([sys.executable, "-m", "mvc", "checkout", "-q"], cwd=repo)
    deadline = time.monotonic() + 20
    while not (tmp.is_dir() and any(tmp.iterdir())) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert proc.poll() is None, "checkout ended before a temp file showed in .mvc/tmp"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = list(tmp.iterdir())
    assert len(left) == 1 and ".mvc-tmp." in left[0].name, left  # killed mid-copy, its temp is here
    assert git(repo, "status", "--porcelain", "--ignored=no") == porcelain  # and nothing new for git
    assert sorted(p.name for p in repo.iterdir()) == [".git", ".gitignore", ".mvc", "big.bin.mvc"]
    assert run_mvc("checkout", "-q", cwd=repo).returncode == 0  # the next command removes it
    assert list(tmp.iterdir()) == []
    assert mvc_cli("status").stdout == "big.bin: up to date\n"


def test_temps_beside_the_destination_when_mvc_tmp_is_on_another_filesystem(tmp_path):
    """The fallback: a temp beside the file, in mvc's temp pattern, removed by the next export into that
    directory once its writer is gone; nothing else there is touched."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem (/dev/shm)")
    work_tmp = shm / f"mvc-test-{os.getpid()}"
    try:
        odb = ODB(str(tmp_path / "cache"), work_tmp=str(work_tmp))
        oid = odb.add_bytes(PAYLOAD)
        dest = tmp_path / "out"
        dest.mkdir()
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        dead, alive = int(gone.stdout), os.getppid()
        names = [f".mvc-tmp.m.bin.{dead}.1.0123abcd.tmp", f".mvc-tmp.m.bin.{alive}.1.0123abcd.tmp", ".m.bin.1.tmp"]
        for name in names:
            (dest / name).write_bytes(b"left")
        odb.export(oid, str(dest / "m.bin"))
        assert (dest / "m.bin").read_bytes() == PAYLOAD
        assert sorted(p.name for p in dest.iterdir()) == sorted(["m.bin", *names[1:]])
        assert not any(work_tmp.iterdir())
    finally:
        import shutil

        shutil.rmtree(work_tmp, ignore_errors=True)


@pytest.mark.parametrize("command", ["add", "remove", "mv"])
def test_a_committed_gitignore_link_is_never_followed(repo, mvc_cli, mvc_error, tmp_path, command):
    """A collaborator commits ``models/.gitignore`` as a link to a file outside (``~/.aws/credentials``):
    mvc neither reads it nor copies it into the repository; the command is refused and nothing is staged."""
    secret = tmp_path / "outside" / "credentials"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key = SECRET\n")
    (repo / "models").mkdir()
    (repo / "models" / "m.bin").write_bytes(b"m" * 100)
    if command != "add":
        mvc_cli("add", "models/m.bin")
        git(repo, "commit", "-q", "-m", "m")
    link = repo / "models" / ".gitignore"
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(secret, link.parent))
    git(repo, "add", "models/.gitignore")
    git(repo, "commit", "-q", "-m", "the collaborator's link")
    args = {
        "add": ("add", "models/m.bin"),
        "remove": ("remove", "models/m.bin"),
        "mv": ("mv", "models/m.bin", "models/n.bin"),
    }
    mvc_error(*args[command], words=("symbolic link", ".gitignore"))
    assert link.is_symlink() and secret.read_text() == "aws_secret_access_key = SECRET\n"
    assert "SECRET" not in git(repo, "diff", "--cached")
    # refused before anything changed
    assert sorted(p.name for p in (repo / "models").iterdir()) == sorted(
        [".gitignore", "m.bin"] + (["m.bin.mvc"] if command != "add" else [])
    )
    assert git(repo, "status", "--short", "--untracked-files=no") == ""


def test_a_checkout_beside_a_gitignore_link_says_the_weights_are_not_ignored(repo, mvc_cli, tmp_path):
    """The weights are restored (the link is neither read nor written), with a warning: git sees them."""
    secret = tmp_path / "outside" / "credentials"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key = SECRET\n")
    (repo / "models").mkdir()
    (repo / "models" / "m.bin").write_bytes(b"m" * 100)
    mvc_cli("add", "models/m.bin")
    git(repo, "commit", "-q", "-m", "m")
    link = repo / "models" / ".gitignore"
    link.unlink()
    link.symlink_to(os.path.relpath(secret, link.parent))
    (repo / "models" / "m.bin").unlink()
    r = mvc_cli("checkout")
    assert (repo / "models" / "m.bin").read_bytes() == b"m" * 100
    assert "warning: models/m.bin is not ignored by git" in r.stderr and "symbolic link" in r.stderr, r.stderr
    assert secret.read_text() == "aws_secret_access_key = SECRET\n"


def test_a_pointer_inside_a_tracked_directory_is_refused(base, mvc_cli, mvc_error):
    """Pointers do not nest: a file pointer committed inside a tracked directory would have two pointers
    write the same bytes; every command refuses it, naming both, and changes nothing."""
    repo, oid = base
    make_file(repo / "data" / "a.bin", 3000)
    mvc_cli("add", "data")
    git(repo, "commit", "-q", "-m", "data")
    (repo / "data" / "x.bin.mvc").write_bytes(file_pointer(oid, len(PAYLOAD)))
    git(repo, "add", "-f", "data/x.bin.mvc")
    git(repo, "commit", "-q", "-m", "hostile")
    before = state(repo)
    for args in [
        ("status",),
        ("checkout",),
        ("checkout", "--force"),
        ("checkout", "--rev", "HEAD", "--force"),
        ("pull",),
    ]:
        mvc_error(*args, words=("data/x.bin.mvc", "inside tracked directory", "do not nest"))
        assert state(repo) == before, args


def linked_gitignore(repo, mvc_cli, tmp_path, removed: bool) -> None:
    """models/m.bin tracked, committed; (removed: then untracked); its .gitignore a committed link to a file of
    the user's elsewhere (tmp_path/secret)."""
    (repo / "models").mkdir()
    (repo / "models" / "m.bin").write_bytes(b"m" * 100)
    mvc_cli("add", "models/m.bin")
    if removed:
        git(repo, "commit", "-q", "-m", "m")
        mvc_cli("remove", "models/m.bin")
    (repo / "models" / ".gitignore").unlink()
    (tmp_path / "secret").write_text("SECRET\n")
    (repo / "models" / ".gitignore").symlink_to(tmp_path / "secret")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the link")


def test_checkout_rev_refuses_a_linked_gitignore_before_it_writes(repo, mvc_cli, mvc_error, tmp_path):
    linked_gitignore(repo, mvc_cli, tmp_path, removed=True)
    before = state(repo)
    mvc_error("checkout", "--rev", "HEAD~1", "models/m.bin", words=("symbolic link",))
    assert state(repo) == before and "m.bin.mvc" not in git(repo, "diff", "--cached", "--name-only")


def test_a_plain_checkout_beside_a_linked_gitignore_restores_and_writes_nothing_through_it(repo, mvc_cli, tmp_path):
    """A plain checkout restores the weights of a path whose .gitignore (a commit's) is a symlink: the missing
    line is not written through the link, and the checkout still succeeds (the weights are what was asked)."""
    linked_gitignore(repo, mvc_cli, tmp_path, removed=False)
    (repo / "models" / "m.bin").unlink()
    mvc_cli("checkout")
    assert (repo / "models" / "m.bin").read_bytes() == b"m" * 100
    assert (tmp_path / "secret").read_text() == "SECRET\n"


def test_a_manifest_entry_whose_size_its_cached_object_belies_moves_nothing(repo, mvc_cli, mvc_error, tmp_path):
    """A collaborator's directory pointer whose manifest (an object that hashes right) gives one of the user's own
    cached objects a wrong size: every read refuses it as a damaged claim, naming both sizes; the sound object is
    never moved to quarantine/, and nothing is written."""
    import mvc
    from mvc.errors import PointerError
    from mvc.format import pointer as ptrfmt
    from mvc.objects import manifest as mf
    from mvc.objects import oid as oids
    from mvc.storage import fileio

    (repo / "tok").mkdir()
    (repo / "tok" / "a.txt").write_bytes(b"hello\n")
    mvc_cli("add", "tok")
    git(repo, "commit", "-q", "-m", "tok")
    hello = oids.from_digest(fileio.hexdigest_bytes(b"hello\n"))
    obj = repo / ".mvc" / "cache" / "objects" / hello[7:9] / hello[9:]
    assert obj.exists()
    for size in (3, 2**50):
        data = mf.dumps([mf.Entry("a.txt", hello, size)])
        moid = oids.from_digest(fileio.hexdigest_bytes(data))
        mvc.Repo(str(repo)).odb.install_bytes(data, moid)
        (repo / "evil.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("dir", moid, size, 1)))
        with pytest.raises(PointerError, match=f"gives size {size}, but its object {hello}"):
            mvc.read_bytes("evil/a.txt")
        with pytest.raises(PointerError, match="holds 6 bytes"), mvc.open("evil/a.txt") as f:
            f.read()
        for args in (
            ("get", "evil/a.txt", "-o", str(tmp_path / "one")),
            ("get", "evil", "-o", str(tmp_path / "dir")),
            ("checkout", "evil"),
        ):
            # (a petabyte is also refused as more than the disk holds, where that is asked first)
            mvc_error(*args, words=(f"gives size {size}", "holds 6 bytes", "damaged") if size == 3 else ())
        assert obj.read_bytes() == b"hello\n" and not (repo / ".mvc" / "cache" / "quarantine").exists()
        assert (
            not (tmp_path / "one").exists()
            and not (tmp_path / "dir").exists()
            and not (repo / "evil" / "a.txt").exists()
        )
    assert mvc_cli("status", "tok").stdout == "tok: up to date\n"


@pytest.mark.parametrize(
    "name", [".mvc/state.db", ".mvc/state.db-wal", ".mvc/remotes.db", ".mvc/lock", ".mvc/tmp", ".mvc/cache/tmp"]
)
def test_a_committed_link_where_mvc_keeps_its_own_files_is_never_written_through(repo, mvc_cli, tmp_path, name):
    """A collaborator force-adds a symlink inside .mvc/ (the state cache, the journal of remotes, the lock, the
    temp directories): a clone's commands write nothing where it points (no tables created in another database,
    no temp file, no lock file), refusing with the fix, or (the work tree's tmp/) writing their temps elsewhere."""
    import shutil
    import sqlite3

    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "victim.db"
    with sqlite3.connect(target) as db:
        db.execute("PRAGMA user_version = 7")
        db.execute("CREATE TABLE mine (x)")
    db.close()
    before = target.read_bytes()
    (repo / "m.bin").write_bytes(b"weights\n" * 100)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    git(repo, "commit", "-q", "-m", "m")
    link = repo / name
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    link.unlink(missing_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):  # (what a link replaces: the real files mvc made)
        if name.startswith(".mvc/state.db"):
            (repo / f".mvc/state.db{suffix}").unlink(missing_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside if name.endswith("tmp") else target)
    (repo / "m.bin").unlink()
    for args in (("checkout",), ("status",), ("push",)):
        r = mvc_cli(*args, ok=False)
        if r.exit_code:
            assert "is a symlink" in r.stderr and "git rm --cached" in r.stderr, r.stderr
    assert target.read_bytes() == before
    assert sorted(p.name for p in outside.iterdir()) == ["victim.db"]
