"""mvc import-dvc against repositories the real DVC built (the ``dvc-test`` extra: ``pip install -e '.[dvc-test]'``):
every version of a file, a directory and a stage output read back byte for byte after the import, old ones through
the .dvc files and dvc.lock stages of old commits; DVC's local and S3 remotes; GTO tags; refused inputs change
nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, make_file, run_mvc

DVC = shutil.which("dvc", path=os.path.dirname(sys.executable)) or shutil.which("dvc")
if DVC is None:
    print("tests/test_import_dvc.py: skipped: the dvc binary is not installed (pip install -e '.[dvc-test]')")
pytestmark = pytest.mark.skipif(DVC is None, reason="dvc is not installed: pip install -e '.[dvc-test]'")


def dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(cwd.parent / "dvc-site")}
    proc = subprocess.run([DVC, *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def build(root: Path, remote: str, *, endpoint: str | None = None, stage: bool = True) -> dict[str, dict[str, bytes]]:
    """A DVC repository with two commits (tag churn@v1.0.0 on the first) and a DVC remote holding both versions;
    returns {version: {path: bytes}}."""
    root.mkdir()
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    dvc(root, "remote", "add", "-d", "storage", remote)
    if endpoint:
        dvc(root, "remote", "modify", "storage", "endpointurl", endpoint)
        dvc(root, "remote", "modify", "--local", "storage", "access_key_id", "testing")
        dvc(root, "remote", "modify", "--local", "storage", "secret_access_key", "testing")
    (root / "artifacts.yaml").write_text("churn:\n  path: model.bin\n  type: model\n")
    versions = {}
    for v in (1, 2):
        make_file(root / "model.bin", 50_000 + v, seed=v)
        make_file(root / "data" / "a.txt", 1000, seed=10 + v)
        make_file(root / "data" / "sub" / "b.bin", 2000, seed=20)
        if v == 2:
            make_file(root / "data" / "c.bin", 300, seed=30)
        dvc(root, "add", "-q", "model.bin", "data")
        if stage:
            if v == 1:
                dvc(
                    root,
                    "stage",
                    "add",
                    "-q",
                    "-n",
                    "train",
                    "-d",
                    "model.bin",
                    "-o",
                    "out.bin",
                    "cp model.bin out.bin",
                )
            dvc(root, "repro", "-q")
        if v == 1:
            (root / "model.bin.dvc").write_text(
                (root / "model.bin.dvc").read_text() + "desc: the churn model\nmeta:\n  owner: ana\n"
            )
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"version {v}")
        if v == 1:
            git(root, "tag", "-a", "churn@v1.0.0", "-m", "Registering artifact churn version v1.0.0")
        versions[f"v{v}"] = {
            str(p.relative_to(root)): p.read_bytes()
            for p in [root / "model.bin", *sorted((root / "data").rglob("*")), *([root / "out.bin"] if stage else [])]
            if p.is_file()
        }
    dvc(root, "push", "-q")
    return versions


def files_of(root: Path) -> dict[str, bytes]:
    found = {"model.bin": (root / "model.bin").read_bytes()}
    found.update({str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "data").rglob("*")) if p.is_file()})
    if (root / "out.bin").exists():
        found["out.bin"] = (root / "out.bin").read_bytes()
    return found


def state(root: Path) -> tuple[str, str, bytes | None]:
    """What a refused import must leave as it was: the index, the work tree's status, the map."""
    imported = root / ".mvc" / "imported.toml"
    return (
        git(root, "ls-files", "-s"),
        git(root, "status", "--porcelain", "--untracked-files=all"),
        imported.read_bytes() if imported.exists() else None,
    )


@pytest.fixture
def dvc_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "repo"
    remote = tmp_path / "dvc-remote"
    versions = build(root, str(remote))
    monkeypatch.chdir(root)
    run_mvc("init", cwd=root, check=True)
    git(root, "commit", "-q", "-m", "mvc init")
    return root, remote, versions


def test_import_reads_every_version_from_the_cache_alone(dvc_repo, tmp_path: Path):
    root, remote, versions = dvc_repo
    shutil.move(remote, tmp_path / "moved-away")  # nothing may be fetched: DVC's cache holds everything
    r = run_mvc("import-dvc", "--json", cwd=root, check=True)
    import json

    out = json.loads(r.stdout)
    assert out["paths"] == ["data", "model.bin", "out.bin"] and out["fetched"] == 0
    assert out["history_versions"] == 2 and out["history_missing"] == []
    staged = git(root, "diff", "--cached", "--name-status")
    assert "D\tmodel.bin.dvc" in staged and "D\tdata.dvc" in staged
    assert "A\tmodel.bin.mvc" in staged and "A\tout.bin.mvc" in staged and "A\t.mvc/imported.toml" in staged
    assert not (root / "model.bin.dvc").exists() and (root / "dvc.lock").exists()
    pointer = (root / "model.bin.mvc").read_text()
    assert "[meta.dvc]" in pointer and 'md5 = "' in pointer
    config = (root / ".mvc" / "config.toml").read_text()
    assert "[remote.storage]" in config and 'path = "model.bin"' in config
    git(root, "commit", "-q", "-m", "import from DVC")

    # the new versions, then the old ones through the .dvc files of the first commit
    shutil.rmtree(root / "data")
    for f in ("model.bin", "out.bin"):
        (root / f).unlink()
    run_mvc("checkout", cwd=root, check=True)
    assert files_of(root) == versions["v2"]
    v1 = git(root, "rev-parse", "churn@v1.0.0^{commit}").strip()
    r = run_mvc("checkout", "--rev", v1, "model.bin", "data", cwd=root)
    assert r.returncode == 0, r.stderr
    got = files_of(root)
    got.pop("out.bin", None)
    want = dict(versions["v1"])
    want.pop("out.bin")
    assert got == want
    git(root, "checkout", "-q", "HEAD", "--", ".")
    run_mvc("checkout", "--force", cwd=root, check=True)

    # a GTO tag of a commit before the import resolves through the foreign pointer
    run_mvc("get", "churn@v1.0.0", "-o", str(tmp_path / "churn-v1"), cwd=root, check=True)
    assert (tmp_path / "churn-v1").read_bytes() == versions["v1"]["model.bin"]
    # mvc log: two versions, and the import changed nothing
    log = json.loads(run_mvc("log", "model.bin", "--json", cwd=root, check=True).stdout)
    assert [e["change"] for e in log] == ["modified", "added"]
    assert log[1]["meta"]["dvc"]["desc"] == "the churn model" and "v1.0.0" in log[1]["versions"]

    # push to the remote DVC's became (its URL + /mvc), then pull into an empty cache
    shutil.move(tmp_path / "moved-away", remote)
    run_mvc("push", "--all-commits", cwd=root, check=True)
    assert (remote / "mvc" / "mvc.toml").exists() and (remote / "files").is_dir()
    shutil.rmtree(root / ".mvc" / "cache")
    shutil.rmtree(root / "data")
    run_mvc("pull", cwd=root, check=True)
    assert files_of(root) == versions["v2"]
    r = run_mvc("get", "model.bin", "--rev", v1, "-o", str(tmp_path / "old"), cwd=root)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "old").read_bytes() == versions["v1"]["model.bin"]


def test_import_fetches_from_dvcs_s3_remote_and_keeps_credentials_local(tmp_path, monkeypatch, s3_endpoint):
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="dvc")
    root = tmp_path / "repo"
    versions = build(root, "s3://dvc/store", endpoint=s3_endpoint, stage=False)
    shutil.rmtree(root / ".dvc" / "cache")
    monkeypatch.chdir(root)
    run_mvc("init", cwd=root, check=True)
    r = run_mvc("import-dvc", "--push", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "fetched" in r.stdout and "pushed" in r.stdout
    shared = (root / ".mvc" / "config.toml").read_text()
    local = (root / ".mvc" / "config.local.toml").read_text()
    assert "s3://dvc/store/mvc" in shared and s3_endpoint in shared
    assert "testing" not in shared and "secret_access_key" in local
    git(root, "commit", "-q", "-m", "import")
    shutil.rmtree(root / ".mvc" / "cache")
    shutil.rmtree(root / "data")
    (root / "model.bin").unlink()
    run_mvc("pull", cwd=root, check=True)
    assert files_of(root) == versions["v2"]


BAD = {
    "unknown field": ("model.bin.dvc", "outs:\n- md5: {md5}\n  size: 1\n  path: model.bin\n  bogus: 1\n", "bogus"),
    "escaping path": ("model.bin.dvc", "outs:\n- md5: {md5}\n  path: ../model.bin\n", "escapes"),
    "into .git": ("model.bin.dvc", "outs:\n- md5: {md5}\n  path: .git/config\n", "never tracks"),
    "into .mvc": ("model.bin.dvc", "outs:\n- md5: {md5}\n  path: .mvc/config.local.toml\n", "never tracks"),
    "bad md5": ("model.bin.dvc", "outs:\n- md5: zz\n  path: model.bin\n", "md5"),
    "not yaml": ("model.bin.dvc", "outs: [\n", "yaml"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_dvc_files_are_refused_and_nothing_changes(dvc_repo, case):
    root, _, _ = dvc_repo
    name, text, word = BAD[case]
    md5 = "0" * 32
    (root / name).write_text(text.format(md5=md5))
    before = state(root)
    r = run_mvc("import-dvc", cwd=root)
    assert r.returncode != 0 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and word.lower() in lines[0].lower(), r.stderr
    assert name in lines[0]
    assert state(root) == before and not (root / "model.bin.mvc").exists()


@pytest.mark.parametrize(
    "failure, words",
    [
        ("map", ("imported.toml", "not valid toml")),  # after every pointer and .gitignore line is written
        ("index", ("git add failed", "clean filter")),  # staging: 'git rm --cached' had removed the .dvc files
    ],
)
def test_a_failure_while_writing_puts_everything_back(dvc_repo, failure, words):
    """A write that fails half way (a damaged map of an earlier import; pointers git refuses to stage) leaves the
    work tree, the .dvc files, the config, the map and the index as they were: import-dvc is all or nothing."""
    root, _, _ = dvc_repo
    if failure == "map":
        (root / ".mvc" / "imported.toml").write_text("format = 1\n[dvc.md5\n")
    else:  # (an ignored pointer is refused before anything is written: test_import_dvc_reasons.py)
        (root / ".git" / "info" / "attributes").write_text("*.mvc filter=broken\n")
        git(root, "config", "filter.broken.clean", "false")
        git(root, "config", "filter.broken.required", "true")
    watched = [".mvc/config.toml", ".mvc/.gitignore", ".mvc/imported.toml", ".gitignore", "model.bin.dvc"]
    files = {rel: (root / rel).read_bytes() if (root / rel).exists() else None for rel in watched}
    before = state(root), git(root, "diff", "--cached", "--binary"), files_of(root)
    r = run_mvc("import-dvc", cwd=root)
    assert r.returncode != 0 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0].lower() for w in words), r.stderr
    assert (state(root), git(root, "diff", "--cached", "--binary"), files_of(root)) == before
    assert {rel: (root / rel).read_bytes() if (root / rel).exists() else None for rel in watched} == files
    assert not [p for p in root.glob("*.mvc") if p.is_file()]


def test_an_output_of_dvc_import_says_the_link_to_its_repository_goes(dvc_repo, tmp_path: Path):
    """A .dvc file 'dvc import' wrote names the repository its output came from (deps: repo: url, rev_lock), which
    'dvc update' follows: the import takes the version and says, per such file, that the link is not kept."""
    import json

    root, _, _ = dvc_repo
    src = tmp_path / "their repo"
    build(src, str(tmp_path / "their-remote"), stage=False)
    locked = git(src, "rev-parse", "HEAD").strip()
    dvc(root, "import", str(src), "model.bin", "-o", "theirs.bin")
    git(root, "add", "theirs.bin.dvc", ".gitignore")
    git(root, "commit", "-q", "-m", "dvc import of their model")
    theirs = (root / "theirs.bin").read_bytes()

    r = run_mvc("import-dvc", cwd=root, check=True)
    said = [line for line in r.stdout.splitlines() if "dvc import" in line]
    assert said == [
        f"theirs.bin.dvc: 'dvc import' of model.bin from {src}@{locked}: mvc keeps this version, not that link "
        "(no 'dvc update': take a newer version from there and 'mvc add' it)"
    ], r.stdout
    assert (root / "theirs.bin.mvc").exists() and not (root / "theirs.bin.dvc").exists()
    git(root, "reset", "-q", "--hard")  # the import undone: again, as JSON

    out = json.loads(run_mvc("import-dvc", "--json", cwd=root, check=True).stdout)
    assert out["dvc_imports"] == [{"dvc_file": "theirs.bin.dvc", "url": str(src), "path": "model.bin", "rev": locked}]
    assert "theirs.bin" in out["paths"] and "theirs.bin.dvc" in out["dvc_files"]
    run_mvc("get", "theirs.bin", "-o", str(tmp_path / "got"), cwd=root, check=True)
    assert (tmp_path / "got").read_bytes() == theirs


def test_an_md5_mismatch_in_dvcs_cache_is_refused(dvc_repo):
    root, remote, _ = dvc_repo
    md5 = next(line.split()[-1] for line in (root / "model.bin.dvc").read_text().splitlines() if "md5:" in line)
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    os.chmod(cached, 0o644)
    cached.write_bytes(b"damaged")
    shutil.rmtree(remote)
    for name in ("model.bin", "out.bin"):  # (the work tree's own bytes would do: 'dvc repro' copied model.bin)
        (root / name).write_bytes(b"retrained")
    before = state(root)
    r = run_mvc("import-dvc", cwd=root)
    assert r.returncode != 0 and "does not match its md5" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert state(root) == before and not (root / "data.mvc").exists()


def test_an_object_missing_everywhere_is_refused(dvc_repo):
    root, remote, _ = dvc_repo
    shutil.rmtree(root / ".dvc" / "cache")
    shutil.rmtree(remote)
    for name in ("model.bin", "out.bin"):  # (the work tree's own bytes would do: 'dvc repro' copied model.bin)
        (root / name).write_bytes(b"retrained")
    before = state(root)
    r = run_mvc("import-dvc", cwd=root)
    assert r.returncode != 0 and "dvc" in r.stderr.lower(), r.stderr
    assert state(root) == before


PIPELINE = """stages:
  train:
    cmd: {py} -c "import shutil; shutil.copy('data.txt', 'model.bin'); shutil.copy('v.json', 'metrics.json')"
    deps: [data.txt]
    outs: [model.bin]
    metrics:
    - metrics.json:
        cache: false
  pack:
    wdir: sub
    cmd: {py} -c "open('pack.bin', 'wb').write(open('../data.txt', 'rb').read() * 3)"
    deps: [../data.txt]
    outs: [pack.bin]
"""


def test_dvc_lock_outputs_of_old_commits_read_as_pointers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two versions of two stage outputs (one in a stage with a wdir) from 'dvc repro'; after the import, the old
    ones read back through the dvc.lock of their commit, and the import is no change in their lineage."""
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    (root / "dvc.yaml").write_text(PIPELINE.format(py=sys.executable))
    versions, commits = {}, {}
    for v in (1, 2):
        make_file(root / "data.txt", 3000 + v, seed=v)
        (root / "v.json").write_text(f'{{"v": {v}}}')
        dvc(root, "repro", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"version {v}")
        versions[v] = {p: (root / p).read_bytes() for p in ("model.bin", "sub/pack.bin")}
        commits[v] = git(root, "rev-parse", "HEAD").strip()
    assert versions[1] != versions[2]
    monkeypatch.chdir(root)
    run_mvc("init", cwd=root, check=True)
    git(root, "commit", "-q", "-m", "mvc init")
    import json

    out = json.loads(run_mvc("import-dvc", "--json", cwd=root, check=True).stdout)
    assert out["paths"] == ["model.bin", "sub/pack.bin"] and out["history_versions"] == 2, out
    assert not (root / "metrics.json.mvc").exists() and (root / "dvc.lock").exists()
    git(root, "commit", "-q", "-m", "import from DVC")
    shutil.rmtree(root / ".dvc" / "cache")  # mvc's cache holds the old versions now

    for p in ("model.bin", "sub/pack.bin"):
        (root / p).unlink()
    r = run_mvc("checkout", "--rev", commits[1], "model.bin", "sub/pack.bin", cwd=root)
    assert r.returncode == 0, r.stderr
    assert {p: (root / p).read_bytes() for p in versions[1]} == versions[1]
    r = run_mvc("get", "sub/pack.bin", "--rev", commits[1], "-o", str(tmp_path / "pack-v1"), cwd=root)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pack-v1").read_bytes() == versions[1]["sub/pack.bin"]
    git(root, "checkout", "-q", "HEAD", "--", ".")
    run_mvc("checkout", "--force", cwd=root, check=True)
    assert {p: (root / p).read_bytes() for p in versions[2]} == versions[2]

    for p in ("model.bin", "sub/pack.bin"):
        log = json.loads(run_mvc("log", p, "--json", cwd=root, check=True).stdout)
        assert [(e["commit"], e["change"]) for e in log] == [(commits[2], "modified"), (commits[1], "added")]
        assert log[0]["meta"]["dvc"]["stage"] == ("train" if p == "model.bin" else "pack")

    # after the import, dvc.lock (which stays) is not read: a path mvc stops tracking is gone from then on
    run_mvc("remove", "sub/pack.bin", cwd=root, check=True)
    git(root, "commit", "-q", "-m", "drop the pack")
    log = json.loads(run_mvc("log", "sub/pack.bin", "--json", cwd=root, check=True).stdout)
    assert [e["change"] for e in log] == ["removed", "modified", "added"]
    listed = json.loads(run_mvc("ls", "--rev", "HEAD", "--json", cwd=root, check=True).stdout)
    assert [e["path"] for e in listed] == ["model.bin"]

    # the import once more: the kept dvc.lock still names both outputs, and mvc's pointers win (model.bin is
    # tracked, sub/pack.bin was removed with mvc): nothing new, exit 0, nothing changed
    before = state(root)
    r = run_mvc("import-dvc", cwd=root)
    assert r.returncode == 0 and r.stdout.startswith("nothing new to import") and r.stderr == "", r.stderr
    assert state(root) == before and not (root / "sub" / "pack.bin.mvc").exists()


def test_a_dvc_file_wins_an_output_a_dvc_lock_names_too(tmp_path: Path):
    """Hand-written DVC files at one commit (what DVC itself refuses): the .dvc file's output stands; an output
    git tracks and a damaged dvc.lock name nothing; a commit past the import reads no dvc.lock."""
    from mvc.repo import foreign_dvc
    from mvc.repo.repository import Repo

    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    git(root, "init", "-q")
    run_mvc("init", cwd=root, check=True)
    md5 = {c: c * 32 for c in "abcd"}
    (root / "x.bin.dvc").write_text(f"outs:\n- md5: {md5['a']}\n  path: x.bin\n")
    (root / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  s:\n    outs:\n"
        + "".join(
            f"    - path: {p}\n      md5: {md5[c]}\n" for p, c in (("x.bin", "b"), ("y.bin", "c"), ("g.txt", "d"))
        )
    )
    (root / "g.txt").write_text("tracked by git")
    (root / "sub" / "dvc.lock").write_text("schema: '2.0'\nstages: [\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "dvc files")
    repo = Repo(str(root))
    outs = foreign_dvc.outs_at(repo, repo.resolve("HEAD"))
    assert {p: o.md5 for p, o in outs.items()} == {"x.bin": md5["a"], "y.bin": md5["c"]}

    (root / ".mvc" / "imported.toml").write_text(f'format = 1\n[dvc.md5.{md5["c"]}]\noid = "xxh128:{"0" * 32}"\n')
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the import")
    repo = Repo(str(root))
    assert set(foreign_dvc.outs_at(repo, repo.resolve("HEAD"))) == {"x.bin"}
