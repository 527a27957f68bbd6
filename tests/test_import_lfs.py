"""mvc import-lfs: git-lfs pointers of HEAD become mvc pointers; old revisions stay readable through the map.

With the real git-lfs (Debian's package): a repository tracking *.bin, two committed versions of a model, and a
bare "origin" on the local disk that git-lfs pushes its objects to (git-lfs serves a local path remote with its
standalone file transfer, so 'git lfs fetch' is tested for real, with no server)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import xxhash
from conftest import git
from hypothesis import given
from hypothesis import strategies as st

from mvc.errors import MvcError, PointerError
from mvc.format import lfspointer as lfs

needs_lfs = pytest.mark.skipif(
    shutil.which("git-lfs") is None, reason="git-lfs is not installed (apt-get install git-lfs)"
)

V1 = os.urandom(3000)
V2 = os.urandom(5000)


def oid_of(data: bytes) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def lfs_pointer(data: bytes) -> bytes:
    return lfs.dumps(lfs.LfsPointer(hashlib.sha256(data).hexdigest(), len(data)))


def snapshot(root: Path) -> tuple[str, str, bytes, list[str]]:
    """What all-or-nothing must leave unchanged: the index, git status, the model's bytes, .mvc's files."""
    return (
        git(root, "ls-files", "-s"),
        git(root, "status", "--porcelain", "--ignored"),
        (root / "model.bin").read_bytes(),
        sorted(os.listdir(root / ".mvc")),
    )


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare origin holding two versions of model.bin (v1, then v2) and their git-lfs objects."""
    work = tmp_path / "author"
    work.mkdir()
    git(work, "init", "-q")
    git(work, "lfs", "install", "--local")
    git(work, "lfs", "track", "*.bin")
    (work / "model.bin").write_bytes(V1)
    (work / "README").write_text("hi\n")
    git(work, "add", ".gitattributes", "model.bin", "README")
    git(work, "commit", "-qm", "v1")
    (work / "model.bin").write_bytes(V2)
    git(work, "commit", "-qam", "v2")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")
    assert (bare / "lfs" / "objects").is_dir()
    return bare


def clone(origin: Path, dest: Path, smudge: bool, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone of origin with mvc set up, as the current directory. smudge: git-lfs fetched the objects and
    wrote the content in the work tree; else the work tree holds the pointers and .git/lfs has nothing."""
    git(origin.parent, "clone", "-q", str(origin), str(dest))
    git(dest, "lfs", "install", "--local")
    if smudge:  # every version, as 'git lfs fetch --all' leaves a clone
        git(dest, "lfs", "fetch", "--all")
        git(dest, "lfs", "checkout")
    monkeypatch.chdir(dest)
    import mvc

    mvc.init(str(dest))
    git(dest, "commit", "-qm", "mvc init")
    return dest


@pytest.fixture
def lfs_repo(origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clone(origin, tmp_path / "repo", True, monkeypatch)


# -- the import ------------------------------------------------------------------------------------
@needs_lfs
def test_import_converts_head_and_keeps_old_revisions_readable(lfs_repo: Path, mvc_cli, tmp_path: Path):
    root = lfs_repo
    assert (root / "model.bin").read_bytes() == V2  # smudged by git-lfs
    out = mvc_cli("import-lfs").stdout
    assert "imported model.bin" in out and "from lfs" in out and "1 older version" in out
    assert (root / "model.bin").read_bytes() == V2
    import mvc

    assert mvc.ls()[0]["oid"] == oid_of(V2)
    staged = git(root, "diff", "--cached", "--name-status").split("\n")
    # .gitattributes held the one git-lfs line alone: it goes, rather than stay behind empty
    assert {"D\tmodel.bin", "A\tmodel.bin.mvc", "D\t.gitattributes", "A\t.mvc/imported.toml"} <= set(staged)
    assert not (root / ".gitattributes").exists()
    assert "/model.bin" in (root / ".gitignore").read_text()
    assert "!/imported.toml" in (root / ".mvc" / ".gitignore").read_text()
    mapped = lfs.imported(__import__("tomllib").loads((root / ".mvc" / "imported.toml").read_text()))
    assert mapped == {
        hashlib.sha256(V1).hexdigest(): (oid_of(V1), len(V1)),
        hashlib.sha256(V2).hexdigest(): (oid_of(V2), len(V2)),
    }
    git(root, "commit", "-qm", "to mvc")
    assert git(root, "status", "--porcelain") == ""

    # old revisions: the reader foreign.py calls, directly
    from mvc.format import pointer as ptrfmt
    from mvc.repo import foreign_lfs
    from mvc.repo.repository import Repo

    repo = Repo(str(root))
    first = git(root, "rev-list", "--max-parents=0", "HEAD").strip()
    at_v1 = foreign_lfs.pointers_at(repo, first)
    assert list(at_v1) == ["model.bin.mvc"]
    p = ptrfmt.loads(at_v1["model.bin.mvc"])
    assert (p.kind, p.oid, p.size) == ("file", oid_of(V1), len(V1))
    assert repo.odb.read_bytes(p.oid) == V1
    assert foreign_lfs.pointers_at(repo, "HEAD~1")["model.bin.mvc"] == ptrfmt.dumps(
        ptrfmt.Pointer("file", oid_of(V2), len(V2))
    )
    assert foreign_lfs.pointers_at(repo, "HEAD") == {}  # HEAD has no git-lfs pointer any more

    # and through the commands, where foreign.py reads them (every version compared byte for byte)
    mvc_cli("get", "model.bin", "--rev", first, "-o", str(tmp_path / "v1.bin"))
    assert (tmp_path / "v1.bin").read_bytes() == V1
    mvc_cli("get", "model.bin", "--rev", "HEAD~1", "-o", str(tmp_path / "v2.bin"))
    assert (tmp_path / "v2.bin").read_bytes() == V2


@needs_lfs
def test_versions_of_branches_and_tags_are_imported_too(origin: Path, tmp_path: Path, monkeypatch, mvc_cli):
    """A branch's retrain (its object fetched with the rest) is read through the map after the import, as
    import-dvc reads every branch and tag: not only HEAD's history."""
    work = tmp_path / "author"
    git(work, "checkout", "-q", "-b", "exp")
    exp = os.urandom(4000)
    (work / "model.bin").write_bytes(exp)
    git(work, "commit", "-qam", "exp: retrain")
    git(work, "push", "-q", "origin", "exp")
    root = clone(origin, tmp_path / "repo", True, monkeypatch)
    git(root, "branch", "-q", "exp", "origin/exp")
    mvc_cli("import-lfs")
    git(root, "commit", "-qm", "to mvc")
    mvc_cli("get", "model.bin", "--rev", "exp", "-o", str(tmp_path / "exp.bin"))
    assert (tmp_path / "exp.bin").read_bytes() == exp


@needs_lfs
def test_checkout_of_an_old_revision_writes_its_git_lfs_version(lfs_repo: Path, mvc_cli):
    root = lfs_repo
    mvc_cli("import-lfs")
    git(root, "commit", "-qm", "to mvc")
    first = git(root, "rev-list", "--max-parents=0", "HEAD").strip()
    r = mvc_cli("checkout", "--rev", first, "model.bin", ok=False)
    if r.exit_code != 0 and "did not match any file" in r.output:
        # checkout --rev restores the pointer with 'git checkout REV -- PATH.mvc', which an old revision lacks
        pytest.xfail("mvc/api/checkout.py does not yet write a foreign pointer of an old revision (import-dvc's work)")
    assert r.exit_code == 0, r.output
    assert (root / "model.bin").read_bytes() == V1
    mvc_cli("checkout", "--rev", "HEAD", "model.bin")
    assert (root / "model.bin").read_bytes() == V2


@needs_lfs
def test_objects_fetched_with_git_lfs_and_push_pull_round_trip(origin, tmp_path, monkeypatch, mvc_cli):
    root = clone(origin, tmp_path / "repo", False, monkeypatch)
    assert (root / "model.bin").read_bytes() == lfs_pointer(V2)  # not smudged
    assert not (root / ".git" / "lfs" / "objects").exists()
    store = tmp_path / "store"
    mvc_cli("remote", "add", "store", str(store), "--default")
    out = mvc_cli("import-lfs", "--push").stdout
    assert "from fetched" in out and "pushed" in out
    assert (root / "model.bin").read_bytes() == V2
    git(root, "commit", "-qm", "to mvc")
    # the cache lost: everything comes back from the mvc remote
    shutil.rmtree(root / ".mvc" / "cache")
    (root / "model.bin").unlink()
    mvc_cli("pull")
    assert (root / "model.bin").read_bytes() == V2


@needs_lfs
def test_old_versions_are_pushed_and_read_back_from_the_remote(lfs_repo, tmp_path, mvc_cli):
    root = lfs_repo
    mvc_cli("remote", "add", "store", str(tmp_path / "store"), "--default")
    mvc_cli("import-lfs", "--push")
    _first_version_reads_back_from_the_remote(root, tmp_path, mvc_cli)


def _first_version_reads_back_from_the_remote(root: Path, tmp_path: Path, mvc_cli) -> None:
    """The import committed and the cache emptied, the root commit's git-lfs version comes from the remote alone."""
    git(root, "commit", "-qm", "to mvc")
    shutil.rmtree(root / ".mvc" / "cache")
    first = git(root, "rev-list", "--max-parents=0", "HEAD").strip()
    mvc_cli("get", "model.bin", "--rev", first, "-o", str(tmp_path / "v1.bin"))
    assert (tmp_path / "v1.bin").read_bytes() == V1


@needs_lfs
def test_import_keeps_other_tables_of_the_map_and_other_patterns(lfs_repo: Path, mvc_cli):
    root = lfs_repo
    # a *.dat pattern whose file was committed before it was tracked (a plain blob): the line must stay
    (root / ".gitattributes").write_text(
        (root / ".gitattributes").read_text() + "*.dat filter=lfs diff=lfs merge=lfs -text\n"
    )
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=root, input=b"raw\n", capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )
    git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},raw.dat")
    git(root, "add", ".gitattributes")
    git(root, "commit", "-qm", "dat")
    git(root, "checkout", "--", "raw.dat")
    (root / ".mvc" / "imported.toml").write_text(
        'format = 1\n\n[dvc.md5]\n"' + "a" * 32 + '" = {oid = "xxh128:' + "b" * 32 + '", size = 3}\n'
    )
    mvc_cli("import-lfs")
    text = (root / ".mvc" / "imported.toml").read_text()
    assert text.startswith("format = 1")
    doc = __import__("tomllib").loads(text)
    assert doc["dvc"] == {"md5": {"a" * 32: {"oid": "xxh128:" + "b" * 32, "size": 3}}}
    assert len(lfs.imported(doc)) == 2
    attrs = (root / ".gitattributes").read_text()
    assert "*.bin" not in attrs and "*.dat filter=lfs" in attrs
    assert "raw.dat" in git(root, "ls-files")


# -- refusals: one line naming the file, nothing changed -------------------------------------------------
@needs_lfs
def test_missing_object_is_refused_and_nothing_changes(origin, tmp_path, monkeypatch, mvc_error):
    root = clone(origin, tmp_path / "repo", False, monkeypatch)
    git(root, "config", "lfs.url", str(tmp_path / "nowhere"))
    before = snapshot(root)
    mvc_error("import-lfs", words=("model.bin", "sha256:" + hashlib.sha256(V2).hexdigest(), "git lfs fetch"))
    assert snapshot(root) == before
    mvc_error("import-lfs", "--no-fetch", words=("model.bin", "--no-fetch", "run the import without --no-fetch"))
    assert snapshot(root) == before


@needs_lfs
def test_corrupt_object_is_refused_and_nothing_changes(lfs_repo: Path, mvc_error):
    root = lfs_repo
    sha = hashlib.sha256(V2).hexdigest()
    stored = root / ".git" / "lfs" / "objects" / sha[:2] / sha[2:4] / sha
    stored.chmod(0o644)
    stored.write_bytes(b"x" * len(V2))  # same size, other bytes
    before = snapshot(root)
    mvc_error("import-lfs", words=("model.bin", "does not match"))
    assert snapshot(root) == before
    assert not (root / ".mvc" / "imported.toml").exists()


def _commit_blob(root: Path, path: str, data: bytes) -> None:
    blob = (
        subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=root, input=data, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    git(root, "commit", "-qm", f"add {path}")
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}  # its object is nowhere: the pointer stays in the work tree
    subprocess.run(["git", "checkout", "--", path], cwd=root, check=True, env=env, capture_output=True)


@needs_lfs
@pytest.mark.parametrize(
    "path, data, words",
    [
        ("bad.bin", b"version https://git-lfs.github.com/spec/v1\noid sha256:xyz\nsize 3\n", ("bad.bin", "sha256")),
        (
            "bad.bin",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize -1\n",
            ("bad.bin", "size"),
        ),
        (".mvc/evil.bin", lfs_pointer(b"evil"), (".mvc/evil.bin", "never tracks")),
        ("sub/.gitattributes.bin", lfs_pointer(b"x"), ()),  # a fine name: refused only as a missing object
    ],
)
def test_bad_pointers_are_refused_and_nothing_changes(lfs_repo: Path, mvc_error, path, data, words):
    root = lfs_repo
    (root / Path(path).parent).mkdir(exist_ok=True)
    _commit_blob(root, path, data)
    before = snapshot(root)
    line = mvc_error("import-lfs", "--no-fetch", words=words)
    assert path in line
    assert snapshot(root) == before


@needs_lfs
def test_local_changes_and_an_existing_pointer_are_refused(lfs_repo: Path, mvc_error):
    root = lfs_repo
    (root / "model.bin").write_bytes(b"edited")
    mvc_error("import-lfs", words=("model.bin", "changes"))
    (root / "model.bin").write_bytes(V2)
    (root / "model.bin.mvc").write_text("x")
    mvc_error("import-lfs", words=("model.bin.mvc", "already exists"))


# -- versions from before the import: the registry and the pre-push hook read them too --------------------------
def _gto_version_before_the_import(root: Path) -> str:
    """A commit (tagged model@v1.0.0 as GTO tags, the path named by artifacts.yaml) holding V1 in git-lfs, then V2
    again on top; returns the tagged commit."""
    (root / "artifacts.yaml").write_text("model:\n  path: model.bin\n  type: model\n")
    (root / "model.bin").write_bytes(V1)
    git(root, "add", "artifacts.yaml", "model.bin")
    git(root, "commit", "-qm", "back to v1, named for GTO")
    git(root, "tag", "-a", "model@v1.0.0", "-m", "Registering artifact model version v1.0.0")
    tagged = git(root, "rev-parse", "HEAD").strip()
    (root / "model.bin").write_bytes(V2)
    git(root, "commit", "-qam", "v2 again")
    return tagged


@needs_lfs
def test_registry_reads_a_gto_version_from_before_the_import(lfs_repo: Path, mvc_cli):
    root = lfs_repo
    tagged = _gto_version_before_the_import(root)
    mvc_cli("import-lfs")
    git(root, "commit", "-qm", "to mvc")
    mvc_cli("register", "model", "v2.0.0")  # an mvc version, at HEAD: its tag records oid and size
    import json

    versions = {v["version"]: v for v in json.loads(mvc_cli("registry", "model", "--json").stdout)["versions"]}
    assert (versions["v1.0.0"]["commit"], versions["v1.0.0"]["oid"], versions["v1.0.0"]["size"]) == (
        tagged,
        oid_of(V1),
        len(V1),
    )
    assert (versions["v2.0.0"]["oid"], versions["v2.0.0"]["size"]) == (oid_of(V2), len(V2))
    checked = json.loads(mvc_cli("registry", "model", "--check", "--json").stdout)
    assert {(r["version"], r["state"]) for r in checked} == {("v1.0.0", "ok"), ("v2.0.0", "ok")}
    # registering a commit from before the import reads its git-lfs pointer as well
    import mvc

    out = mvc.register("model", "v1.1.0", rev="HEAD~1")  # 'v2 again', the last commit before the import
    assert (out["oid"], out["size"]) == (oid_of(V2), len(V2))


@needs_lfs
def test_pre_push_hook_pushes_the_versions_of_commits_from_before_the_import(lfs_repo, tmp_path, mvc_cli):
    root = lfs_repo
    _gto_version_before_the_import(root)
    store = tmp_path / "store"
    mvc_cli("remote", "add", "store", str(store), "--default")
    mvc_cli("install-hooks")
    mvc_cli("import-lfs")  # no --push: the hook pushes what the pushed commits need
    git(root, "commit", "-qm", "to mvc")
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "init", "-q", "--bare", str(mirror))
    git(root, "remote", "add", "mirror", str(mirror))
    res = subprocess.run(["git", "push", "-q", "mirror", "main"], cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for data in (V1, V2):  # V1: only the commits from before the import name it
        oid = oid_of(data)
        assert (store / "objects" / oid[7:9] / oid[9:]).is_file()


# -- the history scan: one pass, the same answer as listing every commit ---------------------------------------
def _commit(root: Path, files: dict[str, bytes | None], message: str) -> str:
    for path, data in files.items():
        if data is None:
            (root / path).unlink()
        else:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


def test_history_scan_agrees_with_listing_every_commit(repo: Path):
    """lfs_history reads each commit's change against its first parent; what it finds must be what listing every
    commit's tree finds: across .gitattributes changes (a pointer committed before its pattern was tracked, one
    committed after it was untracked), a deeper .gitattributes, merges, a deletion, and for a range of commits."""
    root = repo  # no git-lfs filter is configured here: the pointers are committed as written

    def p(n: int) -> bytes:
        return lfs_pointer(b"version %d" % n)

    _commit(root, {".gitattributes": b"*.bin filter=lfs\n", "a.bin": p(1), "notes.txt": b"x"}, "a.bin")
    _commit(root, {"b.dat": p(2)}, "b.dat, not tracked yet")
    _commit(root, {".gitattributes": b"*.bin filter=lfs\n*.dat filter=lfs\n"}, "*.dat tracked: b.dat is one now")
    git(root, "checkout", "-q", "-b", "side", "HEAD~2")
    _commit(root, {"sub/.gitattributes": b"*.pt filter=lfs\n", "sub/m.pt": p(3)}, "a deeper .gitattributes")
    _commit(root, {"a.bin": p(4), "big.bin": os.urandom(3000)}, "big.bin: covered, but no pointer")
    git(root, "checkout", "-q", "-b", "other", "main")
    _commit(root, {"c.bin": p(5)}, "c.bin on a branch")
    git(root, "checkout", "-q", "main")
    _commit(root, {"a.bin": p(6)}, "a.bin again")
    git(root, "merge", "-q", "--no-edit", "-X", "ours", "side")  # its change against main: sub/.gitattributes
    git(root, "merge", "-q", "--no-edit", "other")  # its change against main: c.bin alone
    _commit(root, {".gitattributes": b"*.dat filter=lfs\n", "a.bin": p(7)}, "*.bin untracked: a.bin is a plain file")
    _commit(root, {"b.dat": None}, "b.dat deleted")
    from mvc.repo import foreign_lfs
    from mvc.repo.repository import Repo

    r = Repo(str(root))

    def listed(commits: list[str]) -> set[tuple[str, bytes]]:
        found = set()
        for c in commits:
            tree = foreign_lfs.Tree(r, c)
            found |= set(foreign_lfs.lfs_files(r, tree, foreign_lfs.rules_of(r, tree)).items())
        return found

    for spec in (["--all"], ["main", "--not", "side"], ["HEAD~1", "--not", "other~1"], ["side"]):
        commits = git(root, "rev-list", *spec).split()
        scanned = foreign_lfs.lfs_history(r, commits)
        assert {(path, data) for (path, _), (_, data) in scanned.items()} == listed(commits), spec
        for (path, _), (commit, data) in scanned.items():  # the commit given holds it
            assert (path, data) in listed([commit])
    everything = {data for (_, data) in listed(git(root, "rev-list", "--all").split())}
    assert everything == {p(n) for n in (1, 2, 3, 4, 5, 6)}  # not big.bin, nor a.bin once untracked


# -- all or nothing while writing: a failure half way puts every file and the index back --------------------------
KEPT_IN_MVC = (".gitignore", "config.toml", "imported.toml")  # .mvc's committed files (not its cache or databases)


def tree_state(root: Path) -> tuple[dict[str, bytes], str, str, list[str]]:
    """Byte for byte: every file of the work tree (.git and .mvc's own stores aside), the index, what it stages
    against HEAD and git's view of the work tree (a temp file left behind shows there)."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if rel != ".mvc" and (rel != "." or d != ".git")]
        for name in filenames:
            if rel != ".mvc" or name in KEPT_IN_MVC:
                files[os.path.normpath(os.path.join(rel, name))] = Path(dirpath, name).read_bytes()
    status = git(root, "status", "--porcelain", "--ignored", "--untracked-files=all").splitlines()
    return (
        files,
        git(root, "ls-files", "-s"),
        git(root, "diff", "--cached", "--binary"),
        [line for line in status if not line.startswith("!! .mvc/")],  # the cache and its databases may grow
    )


def _two_lfs_files(root: Path) -> None:
    """model.bin (at the root, converted first) and sub/b.bin, both git-lfs files with their objects stored."""
    (root / "sub").mkdir()
    (root / "sub" / "b.bin").write_bytes(V1[:1000])
    git(root, "add", "sub/b.bin")
    git(root, "commit", "-qm", "sub/b.bin")


@pytest.fixture
def immutable():
    """chattr +i on the files given (root cannot write them either), undone at the end; skips where the
    filesystem or the user cannot."""
    done: list[Path] = []

    def make(path: Path) -> None:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
            pytest.skip("chattr +i is not available here (ext4 or xfs, as root)")
        done.append(path)

    yield make
    for path in done:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@needs_lfs
@pytest.mark.parametrize(
    "failure, words",
    [
        ("unreadable", ("sub/.gitignore", "directory")),  # cannot be saved: after the models were moved aside
        ("immutable", ("sub/.gitignore",)),  # sub/b.bin's .gitignore line: after model.bin is converted
        ("map", ("imported.toml", "not valid toml")),  # after every file and .gitattributes are written
        # staging: 'git rm --cached' changed the index
        ("index", ("is ignored by git", ".git/info/exclude", "model.bin.mvc")),
    ],
)
def test_a_failure_while_writing_puts_everything_back(lfs_repo: Path, mvc_error, immutable, failure, words):
    root = lfs_repo
    _two_lfs_files(root)
    if failure == "unreadable":
        (root / "sub" / ".gitignore").mkdir()
    elif failure == "immutable":
        (root / "sub" / ".gitignore").write_text("*.log\n")
        immutable(root / "sub" / ".gitignore")
    elif failure == "map":
        (root / ".mvc" / "imported.toml").write_text("format = 1\n[lfs.sha256\n")  # an earlier import, damaged
    else:
        (root / ".git" / "info" / "exclude").write_text("*.mvc\n")  # 'git add' refuses the pointers
    before = tree_state(root)
    assert b"filter=lfs" in before[0][".gitattributes"] and before[0]["model.bin"] == V2
    mvc_error("import-lfs", words=words)
    after = tree_state(root)
    assert sorted(after[0]) == sorted(before[0])
    assert [k for k in after[0] if after[0][k] != before[0][k]] == []
    assert after[1:] == before[1:]
    assert os.stat(root / "model.bin").st_nlink == 1  # the user's own file, not a link to the cache


@needs_lfs
def test_a_failed_push_leaves_the_import_staged_and_says_how_to_push_again(lfs_repo, tmp_path, mvc_cli, mvc_error):
    root = lfs_repo
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the remote's directory should be\n")
    mvc_cli("remote", "add", "store", str(blocker / "store"), "--default")
    line = mvc_error("import-lfs", "--push", words=("import is done and staged", "push failed", "mvc push"))
    assert "'mvc push' and 'mvc push --all-commits'" in line
    staged = git(root, "diff", "--cached", "--name-status")
    assert "A\tmodel.bin.mvc" in staged and "A\t.mvc/imported.toml" in staged
    assert (root / "model.bin").read_bytes() == V2
    # the remote fixed, the two commands the error names push everything: old revisions read back from it alone
    blocker.unlink()
    blocker.mkdir()
    mvc_cli("push")
    mvc_cli("push", "--all-commits")
    _first_version_reads_back_from_the_remote(root, tmp_path, mvc_cli)


@needs_lfs
def test_push_to_a_remote_not_configured_is_refused_before_anything_is_written(lfs_repo: Path, mvc_error):
    root = lfs_repo
    before = tree_state(root)
    mvc_error("import-lfs", "--push", "-r", "nowhere", words=("nowhere",))
    assert tree_state(root) == before


def test_no_lfs_pointers_is_an_error(repo: Path, mvc_error):
    mvc_error("import-lfs", words=("no git-lfs pointers",))


# -- the parsers -----------------------------------------------------------------------------------------
def test_pointer_round_trip_and_refusals():
    p = lfs.LfsPointer("ab" * 32, 12345)
    assert lfs.loads(lfs.dumps(p)) == p
    legacy = b"version https://hawser.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 1\n"
    assert lfs.loads(legacy).size == 1
    for bad in (
        lfs.dumps(p).rstrip(b"\n"),
        lfs.dumps(p).replace(b"version", b"versio"),
        b"oid sha256:" + b"ab" * 32 + b"\nversion https://git-lfs.github.com/spec/v1\nsize 1\n",
        lfs.dumps(p).replace(b"size 12345", b"size 012345"),
        lfs.dumps(p) + b"ext-0-foo sha256:" + b"ab" * 32 + b"\n",
        lfs.dumps(p).replace(b"ab", b"AB"),
        b"x" * 2000,
    ):
        with pytest.raises(PointerError):
            lfs.loads(bad)


@given(st.binary(max_size=300))
def test_pointer_parser_garbage(data):
    try:
        p = lfs.loads(data)
    except MvcError as e:
        assert "\n" not in str(e)
        return
    assert len(p.sha256) == 64 and p.size >= 0


@given(
    st.lists(
        st.sampled_from(
            [
                b"version https://git-lfs.github.com/spec/v1",
                b"oid sha256:" + b"ab" * 32,
                b"size 10",
                b"size 99999999999999999999",
                b"x-key value",
                b"ext-0-a sha256:" + b"cd" * 32,
                b"",
                b"oid sha1:abc",
                b"version  https://git-lfs.github.com/spec/v1",
            ]
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_pointer_parser_near_valid(lines, final_newline):
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    try:
        p = lfs.loads(data)
    except MvcError:
        return
    assert lfs.loads(lfs.dumps(p)) == p


@given(st.binary(max_size=300), st.text(max_size=30))
def test_attributes_parser_garbage(text, path):
    for r in lfs.rules(text, "sub"):
        r.matches(path)
        r.lfs_only()
    lfs.strip_lfs(text, {"*.bin filter=lfs"})


@given(
    st.dictionaries(
        st.text(max_size=70),
        st.one_of(
            st.integers(),
            st.text(),
            st.dictionaries(
                st.sampled_from(["oid", "size"]),
                st.one_of(st.integers(min_value=-1, max_value=2**64), st.just("xxh128:" + "a" * 32)),
            ),
        ),
    )
)
def test_map_parser_garbage(table):
    try:
        out = lfs.imported({"lfs": {"sha256": table}})
    except MvcError as e:
        assert "\n" not in str(e)
        return
    for sha, (oid, size) in out.items():
        assert len(sha) == 64 and oid.startswith("xxh128:") and size >= 0


PATTERNS = ["*.bin", "/top.bin", "models/*.pt", "**/deep/*.bin", "a/**", "data/**/x.bin", "[ab]*.dat", "?.bin", "*.BIN"]
PATHS = [
    "m.bin",
    "d/m.bin",
    "top.bin",
    "d/top.bin",
    "models/a.pt",
    "x/models/a.pt",
    "deep/q.bin",
    "a/deep/q.bin",
    "a/b/c",
    "data/x.bin",
    "data/1/2/x.bin",
    "a.dat",
    "c.dat",
    "d/b.dat",
    "x.bin",
    "xy.bin",
    "M.BIN",
]


def test_attribute_matching_agrees_with_git(gitrepo: Path):
    """The matcher against git's own (git check-attr), pattern by pattern, at the root and in a subdirectory."""
    for base in ("", "d"):
        for pattern in PATTERNS:
            attrs = gitrepo / base / ".gitattributes"
            attrs.parent.mkdir(exist_ok=True)
            attrs.write_text(f"{pattern} filter=lfs\n")
            rules = lfs.rules(attrs.read_bytes(), base)
            out = git(gitrepo, "check-attr", "filter", "--", *PATHS)
            theirs = {line.split(": ")[0] for line in out.splitlines() if line.endswith(": lfs")}
            ours = {p for p in PATHS if lfs.lfs_filtered(p, rules)}
            assert ours == theirs, (base, pattern)
            attrs.unlink()


def test_strip_keeps_other_attributes():
    text = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text eol=lf\n*.txt text\n"
    out = lfs.strip_lfs(
        text, {"*.bin filter=lfs diff=lfs merge=lfs -text", "*.pt filter=lfs diff=lfs merge=lfs -text eol=lf"}
    )
    assert out == b"*.pt eol=lf\n*.txt text\n"


def test_the_gitignore_lines_of_many_files_are_written_once(tmp_path):
    """ignores.add_many: every line a directory's files need, added to its .gitignore in one write, existing lines
    kept once, another directory's in its own file."""
    import mvc
    from mvc.repo import ignores

    git(tmp_path, "init", "-q")
    mvc.init(str(tmp_path))
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    (tmp_path / "d" / ".gitignore").write_text("/keep.me\n/f1.bin")
    repo = mvc.Repo(str(tmp_path))
    got = ignores.add_many(repo, ["d/f1.bin", "d/f2.bin", "d/f2.bin", "e/x y.bin", "top.bin"])
    assert got == ["d/.gitignore", "e/.gitignore", ".gitignore"]
    assert (tmp_path / "d" / ".gitignore").read_text() == "/keep.me\n/f1.bin\n/f2.bin\n"
    assert (tmp_path / "e" / ".gitignore").read_text() == ignores.entry("e/x y.bin")[1] + "\n"
    assert ignores.add_many(repo, ["d/f1.bin"]) == ["d/.gitignore"]


@needs_lfs
def test_a_plain_file_a_git_lfs_line_names_is_said_and_left_in_git(lfs_repo: Path, mvc_cli):
    """A file committed where git-lfs was not installed: a git-lfs line names it, but git holds its bytes, not a
    pointer. The import converts the pointers, and says the plain file stays in git, and how to move it."""
    root = lfs_repo
    _commit_blob(root, "raw.bin", os.urandom(3000))
    out = mvc_cli("import-lfs").stdout
    assert "imported model.bin" in out and "left in git: 1 file" in out and "raw.bin" in out, out
    assert "git lfs migrate import" in out


@needs_lfs
def test_a_gitattributes_with_other_content_stays(lfs_repo: Path, mvc_cli):
    root = lfs_repo
    (root / ".gitattributes").write_text("# models\n" + (root / ".gitattributes").read_text())
    git(root, "commit", "-qam", "a comment")
    mvc_cli("import-lfs")
    assert (root / ".gitattributes").read_text() == "# models\n"
    assert "M\t.gitattributes" in git(root, "diff", "--cached", "--name-status")


# -- what the import leaves to the user ------------------------------------------------------------------------
@needs_lfs
def test_the_import_says_a_checkout_of_an_old_commit_overwrites_changes_and_how_not_to(lfs_repo: Path, mvc_cli):
    """Commits from before the import track the path in git, and git overwrites an ignored file without a word:
    the import says so, and the way it names keeps a change not yet added."""
    root = lfs_repo
    assert json.loads(mvc_cli("import-lfs", "--json").stdout)["old_commits_track"] == ["model.bin"]
    git(root, "commit", "-qm", "to mvc")
    (root / "model.bin").write_bytes(b"retrained, not added")
    r = subprocess.run(["git", "checkout", "--no-overwrite-ignore", "HEAD~1"], cwd=root, capture_output=True)
    assert r.returncode != 0 and (root / "model.bin").read_bytes() == b"retrained, not added"


@needs_lfs
def test_no_stage_prints_the_commands_that_stage_it(lfs_repo: Path, mvc_cli):
    """After --no-stage the weights are at a path git still tracks: 'git add -A' would commit them. The import
    prints the commands that stage it instead (paths quoted for the shell, pathspec characters read literally)."""
    root = lfs_repo
    name = "my model [1].bin"
    (root / name).write_bytes(V1)
    git(root, "add", name)
    git(root, "commit", "-qm", "a second model")
    out = mvc_cli("import-lfs", "--no-stage").stdout
    assert "git add -A" in out and "would commit the weights" in out, out
    note = [line for line in out.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "git checkout --no-overwrite-ignore" in note[0] and "'mvc add'" in note[0], out
    commands = [line.strip() for line in out.splitlines() if line.startswith("  git ")]
    assert commands[0] == "git --literal-pathspecs rm --cached -q -- model.bin 'my model [1].bin'", commands
    assert git(root, "diff", "--cached", "--name-only") == ""  # nothing staged
    for command in commands:
        subprocess.run(command, shell=True, cwd=root, check=True)
    assert git(root, "diff", "--name-only") == git(root, "ls-files", "--others", "--exclude-standard") == ""
    staged = set(git(root, "diff", "--cached", "--name-status").splitlines())
    assert {"D\tmodel.bin", f"D\t{name}", "A\tmodel.bin.mvc", f"A\t{name}.mvc", "D\t.gitattributes"} <= staged
    assert "A\t.mvc/imported.toml" in staged


@needs_lfs
def test_an_object_the_lfs_server_lacks_says_so_and_the_way_forward(origin, tmp_path, monkeypatch, mvc_error, mvc_cli):
    root = clone(origin, tmp_path / "repo", False, monkeypatch)
    sha = hashlib.sha256(V2).hexdigest()
    (origin / "lfs" / "objects" / sha[:2] / sha[2:4] / sha).unlink()  # the server lost it
    (root / "other.bin").write_bytes(V1)  # a file whose object is here
    git(root, "add", "other.bin")
    git(root, "commit", "-qm", "other")
    before = snapshot(root)
    line = mvc_error("import-lfs", "--no-history")
    for words in ("model.bin", "sha256:" + sha, "the LFS server does not have it", "remote missing object"):
        assert words in line, line
    assert "mvc import-lfs PATH" in line and "'git rm model.bin'" in line and "install" not in line, line
    assert snapshot(root) == before
    assert "imported other.bin" in mvc_cli("import-lfs", "other.bin").stdout
