"""`mvc add`: files and directories into the cache, pointers, .gitignore, git's index, --meta."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import xxhash
from conftest import git, make_file

import mvc
from mvc.format import pointer as ptrfmt


def oid_of(data: bytes) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def obj(repo, oid):
    return repo / ".mvc" / "cache" / "objects" / oid[7:9] / oid[9:]


def staged(repo) -> list[str]:
    return [p for p in git(repo, "diff", "--cached", "--name-only", "-z").split("\0") if p]


def test_add_file(repo, mvc_cli):
    data = make_file(repo / "model.bin", 3000, seed=1).read_bytes()
    out = mvc_cli("add", "model.bin").stdout
    oid = oid_of(data)
    assert out == f"added model.bin (2.9 KiB, {oid[7:19]})\n"
    text = (repo / "model.bin.mvc").read_text()  # then [auto], what add recorded (tests/test_record.py)
    assert text.startswith(f'format = 1\nkind = "file"\noid = "{oid}"\nsize = 3000\n\n[auto]\n')
    assert obj(repo, oid).read_bytes() == data
    assert stat.S_IMODE(obj(repo, oid).stat().st_mode) == 0o444
    assert (repo / "model.bin").read_bytes() == data  # the user's file is left as it was
    assert (repo / ".gitignore").read_text() == "/model.bin\n"
    assert not list((repo / ".mvc" / "cache" / "tmp").iterdir())


def test_pointer_and_gitignore_are_staged_in_the_real_index(repo, mvc_cli):
    make_file(repo / "model.bin", 100)
    mvc_cli("add", "model.bin")
    assert staged(repo) == [".gitignore", "model.bin.mvc"]
    # the model itself is ignored, never staged, and a plain 'git add -A' does not pick it up
    git(repo, "add", "-A")
    assert staged(repo) == [".gitignore", "model.bin.mvc"]
    git(repo, "commit", "-q", "-m", "model")
    assert git(repo, "status", "--porcelain", "--ignored", "--", "*.bin*").split() == ["!!", "model.bin"]
    # the index holds exactly the bytes on disk
    assert git(repo, "show", ":model.bin.mvc") == (repo / "model.bin.mvc").read_text()


def test_no_stage_writes_but_does_not_stage(repo, mvc_cli):
    make_file(repo / "model.bin", 100)
    mvc_cli("add", "model.bin", "--no-stage")
    assert (repo / "model.bin.mvc").is_file() and (repo / ".gitignore").is_file()
    assert staged(repo) == []
    assert git(repo, "status", "--porcelain").splitlines() == ["?? .gitignore", "?? model.bin.mvc"]


def test_a_directory_whose_files_git_ignores_says_which_lines_give_them_back(repo, mvc_cli, mvc_error):
    """DVC's usual '/models/*' (with '!/models/*.dvc'): git refuses to stage the pointer and .gitignore mvc wrote;
    the error names the ignoring line and the two lines to add, and mvc add run again then stages them."""
    (repo / ".gitignore").write_text("/models/*\n!/models/*.dvc\n")
    make_file(repo / "models" / "m.bin", 1000, seed=3)
    mvc_error(
        "add",
        "models/m.bin",
        words=("models/m.bin.mvc", ".gitignore:1 '/models/*'", "'!/models/*.mvc' and '!/models/.gitignore'"),
    )
    with (repo / ".gitignore").open("a") as f:
        f.write("!/models/*.mvc\n!/models/.gitignore\n")
    mvc_cli("add", "models/m.bin")
    staged = git(repo, "diff", "--cached", "--name-only").split()
    assert "models/m.bin.mvc" in staged and "models/.gitignore" in staged, staged


def test_lines_giving_back_what_a_nested_gitignore_ignores_are_relative_to_its_directory(repo, mvc_cli, mvc_error):
    """models/.gitignore ignores everything but DVC's files: the '!' lines go in that file, written relative to its
    directory ('!/*.mvc', not '!/models/*.mvc', which there would name models/models/*.mvc)."""
    (repo / "models").mkdir()
    (repo / "models" / ".gitignore").write_text("*\n!*.dvc\n")
    make_file(repo / "models" / "m.bin", 1000, seed=3)
    line = mvc_error("add", "models/m.bin", words=("models/.gitignore:1 '*'", "'!/*.mvc' and '!/.gitignore'"))
    assert "'!/models/" not in line, line
    with (repo / "models" / ".gitignore").open("a") as f:
        f.write("!/*.mvc\n!/.gitignore\n")
    mvc_cli("add", "models/m.bin")
    staged = git(repo, "diff", "--cached", "--name-only").split()
    assert "models/m.bin.mvc" in staged and "models/.gitignore" in staged, staged


def test_lines_giving_back_what_an_excludes_file_ignores_are_from_the_root(repo, tmp_path, mvc_error):
    """core.excludesFile named .gitignore, outside the work tree: its lines are read from the work tree's root."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ".gitignore").write_text("/models/*\n")
    git(repo, "config", "core.excludesFile", "../elsewhere/.gitignore")
    make_file(repo / "models" / "m.bin", 1000, seed=3)
    mvc_error("add", "models/m.bin", words=("'!/models/*.mvc' and '!/models/.gitignore' to ../elsewhere/.gitignore",))


def test_a_whole_directory_git_ignores_says_to_ignore_its_files_instead(repo, mvc_cli, mvc_error):
    """'/models/' ignores the directory itself: git never looks inside it, so no '!' line takes a file back; the
    error says to make the line ignore the directory's files first (as import-dvc's up-front check does)."""
    (repo / ".gitignore").write_text("/models/\n")
    make_file(repo / "models" / "m.bin", 1000, seed=3)
    mvc_error(
        "add",
        "models/m.bin",
        words=("make that line ignore the files in the directory ('/models/*')", "'!/models/*.mvc' and "),
    )
    (repo / ".gitignore").write_text("/models/*\n!/models/*.mvc\n!/models/.gitignore\n")
    mvc_cli("add", "models/m.bin")
    assert "models/m.bin.mvc" in git(repo, "diff", "--cached", "--name-only").split()


def test_gitignore_entry_is_written_once(repo, mvc_cli):
    (repo / ".gitignore").write_text("*.log")  # existing content without a final newline is kept
    make_file(repo / "model.bin", 100, seed=1)
    mvc_cli("add", "model.bin")
    make_file(repo / "model.bin", 200, seed=2)
    mvc_cli("add", "model.bin")
    mvc_cli("add", "model.bin")
    make_file(repo / "other.bin", 10)
    mvc_cli("add", "other.bin")
    assert (repo / ".gitignore").read_text() == "*.log\n/model.bin\n/other.bin\n"


def test_add_in_subdirectory_uses_the_gitignore_beside_it(repo, mvc_cli, monkeypatch):
    make_file(repo / "models" / "churn" / "model.bin", 100)
    monkeypatch.chdir(repo / "models")
    mvc_cli("add", "churn/model.bin")
    assert (repo / "models" / "churn" / "model.bin.mvc").is_file()
    assert (repo / "models" / "churn" / ".gitignore").read_text() == "/model.bin\n"
    assert not (repo / ".gitignore").exists()
    assert staged(repo) == ["models/churn/.gitignore", "models/churn/model.bin.mvc"]


@pytest.mark.parametrize(
    "name", ["my model [v1].bin", "#weights", "!important", "star*.bin", "ünï cødé.bin", "trailing "]
)
def test_awkward_names_are_ignored_exactly(repo, mvc_cli, name):
    make_file(repo / name, 10)
    make_file(repo / "my model 1.bin", 10)  # would match a bracket pattern written unescaped
    mvc_cli("add", name)
    assert subprocess.run(["git", "check-ignore", "-q", name], cwd=repo).returncode == 0
    assert subprocess.run(["git", "check-ignore", "-q", "my model 1.bin"], cwd=repo).returncode == 1
    assert staged(repo) == sorted([".gitignore", name + ".mvc"])


def test_add_directory(repo, mvc_cli):
    d = repo / "model"
    files = {"config.json": 42, "weights/part-0.bin": 5000, "weights/part-1.bin": 5000, "empty": 0}
    for i, (sub, size) in enumerate(files.items()):
        make_file(d / sub, size, seed=i)
    (d / "weights" / "part-1.bin").write_bytes((d / "weights" / "part-0.bin").read_bytes())  # duplicate content
    (d / "nothing-here").mkdir()  # empty directories are not recorded
    out = mvc_cli("add", "model").stdout
    p = ptrfmt.loads((repo / "model.mvc").read_bytes())
    assert out == f"added model (4 files, 9.8 KiB, {p.oid[7:19]})\n"
    assert (p.kind, p.size, p.nfiles) == ("dir", 10042, 4)
    for sub in files:
        data = (d / sub).read_bytes()
        assert obj(repo, oid_of(data)).read_bytes() == data
    assert len(list((repo / ".mvc" / "cache" / "objects").glob("*/*"))) == 4  # 3 distinct files + manifest
    assert (repo / ".gitignore").read_text() == "/model\n"
    assert staged(repo) == [".gitignore", "model.mvc"]


def test_add_directory_of_one_file(repo, mvc_cli):
    make_file(repo / "d" / "only.bin", 10)
    out = mvc_cli("add", "d").stdout
    assert out.startswith("added d (1 file, 10 B, ")


def test_add_several_paths_at_once(repo, mvc_cli):
    make_file(repo / "a.bin", 10, seed=1)
    make_file(repo / "d" / "b.bin", 10, seed=2)
    mvc_cli("add", "a.bin", "d")
    assert [r["path"] for r in json.loads(mvc_cli("ls", "--json").stdout)] == ["a.bin", "d"]
    assert staged(repo) == [".gitignore", "a.bin.mvc", "d.mvc"]


def test_add_absolute_path_inside_repo(repo, mvc_cli):
    make_file(repo / "a.bin", 10)
    mvc_cli("add", str(repo / "a.bin"))
    assert (repo / "a.bin.mvc").is_file()


def test_meta_values_are_typed(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli(
        "add",
        "m.bin",
        "--meta",
        "accuracy=0.93",
        "-m",
        "epochs=12",
        "-m",
        "final=true",
        "-m",
        "name=churn v2",
        "-m",
        "eq=a=b",
        "-m",
        "nan=nan",
        "-m",
        "lr=1e-3",
        "-m",
        "neg=-4",
    )
    meta = ptrfmt.loads((repo / "m.bin.mvc").read_bytes()).meta
    assert meta == {
        "accuracy": 0.93,
        "epochs": 12,
        "final": True,
        "name": "churn v2",
        "eq": "a=b",
        "nan": "nan",
        "lr": 0.001,
        "neg": -4,
    }
    assert isinstance(meta["accuracy"], float) and isinstance(meta["epochs"], int)


def test_meta_changes_with_same_content(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin", "-m", "stage=dev")
    git(repo, "commit", "-q", "-m", "m")
    out = mvc_cli("add", "m.bin", "-m", "stage=prod").stdout
    assert out.startswith("added m.bin")  # the pointer changed
    assert ptrfmt.loads((repo / "m.bin.mvc").read_bytes()).meta == {"stage": "prod"}
    assert staged(repo) == ["m.bin.mvc"]


def test_bad_meta_is_a_usage_error(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    r = mvc_cli("add", "m.bin", "--meta", "novalue", ok=False)
    assert r.exit_code == 2 and "KEY=VALUE" in r.stderr
    assert not (repo / "m.bin.mvc").exists()


def test_re_add_after_change(repo, mvc_cli):
    make_file(repo / "m.bin", 100, seed=1)
    mvc_cli("add", "m.bin")
    first = ptrfmt.loads((repo / "m.bin.mvc").read_bytes()).oid
    data = make_file(repo / "m.bin", 120, seed=2).read_bytes()
    assert mvc_cli("add", "m.bin").stdout.startswith("added m.bin (120 B")
    p = ptrfmt.loads((repo / "m.bin.mvc").read_bytes())
    assert (p.oid, p.size) == (oid_of(data), 120)
    assert obj(repo, first).is_file()  # the old version stays in the cache


def test_executable_bit_recorded_for_files_in_dirs(repo, mvc_cli):
    make_file(repo / "d" / "run.sh", 10, seed=1).chmod(0o755)
    make_file(repo / "d" / "data.bin", 10, seed=2).chmod(0o644)
    mvc_cli("add", "d")
    from mvc.objects import manifest as mf

    p = ptrfmt.loads((repo / "d.mvc").read_bytes())
    entries = {e.path: e.executable for e in mf.loads(obj(repo, p.oid).read_bytes())}
    assert entries == {"run.sh": True, "data.bin": False}
    assert os.access(repo / "d" / "run.sh", os.X_OK)


def test_python_api_add_returns_plain_data(repo):
    make_file(repo / "m.bin", 10)
    res = mvc.add(["m.bin"], meta={"a": 1})
    oid = ptrfmt.loads((repo / "m.bin.mvc").read_bytes()).oid
    assert res == [
        {"path": "m.bin", "kind": "file", "oid": oid, "size": 10, "nfiles": None, "changed": True, "stored": True}
    ]
    json.dumps(res)


def test_add_does_not_touch_other_pointers(repo, mvc_cli):
    make_file(repo / "a.bin", 10, seed=1)
    make_file(repo / "b.bin", 10, seed=2)
    mvc_cli("add", "a.bin", "b.bin")
    git(repo, "commit", "-q", "-m", "ab")
    make_file(repo / "a.bin", 11, seed=3)
    mvc_cli("add", "a.bin")
    assert staged(repo) == ["a.bin.mvc"]


# -- how objects enter the cache: an unnamed temp file (O_TMPFILE) linked at its name, else a named one ------
def _cache_state(root):
    objects = root / "objects"
    return {
        str(p.relative_to(objects)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(objects.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("unnamed", ["yes", "no", "link refused"])
def test_objects_enter_whole_and_read_only_with_and_without_unnamed_temps(tmp_path, monkeypatch, unnamed):
    import errno

    from mvc.objects.odb import ODB
    from mvc.storage import tempfiles

    if unnamed == "no":  # as on a kernel or filesystem without O_TMPFILE
        monkeypatch.setattr(tempfiles, "_proc_fd", False)
    if unnamed == "link refused":  # as in a sandbox that allows O_TMPFILE but not the link through /proc

        def refused(fd: int, dest: str) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link", dest)

        monkeypatch.setattr(tempfiles, "link_unnamed", refused)
    src = tmp_path / "src"
    src.mkdir()
    sizes = [0, 1, 3000, 5 << 20]  # the last one past fileio.SMALL: copied in the kernel while it is hashed
    for i, size in enumerate(sizes):
        make_file(src / f"f{i}", size, seed=i)
    odb = ODB(str(tmp_path / "cache"))
    got = [odb.add_file(str(src / f"f{i}"), ("reflink", "copy")) for i in range(len(sizes))]
    for i, (oid, how, _) in enumerate(got):
        assert how in ("reflink", "copy")
        assert oid == oid_of((src / f"f{i}").read_bytes())
    state = _cache_state(tmp_path / "cache")
    assert sorted(state) == sorted(f"{o[7:9]}/{o[9:]}" for o, _, _ in got)
    assert {mode for _, mode in state.values()} == {0o444}
    assert not list((tmp_path / "cache" / "tmp").iterdir())  # no temp left behind either way


def test_an_object_already_cached_is_freshened_not_replaced(tmp_path):
    from mvc.objects.odb import ODB

    make_file(tmp_path / "a", 3000, seed=7)
    make_file(tmp_path / "b", 3000, seed=7)  # the same bytes
    odb = ODB(str(tmp_path / "cache"))
    oid = odb.add_file(str(tmp_path / "a"))[0]
    path = odb.path(oid)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    ino = os.stat(path).st_ino
    assert ODB(str(tmp_path / "cache")).add_file(str(tmp_path / "b"))[0] == oid  # another process: a link that fails
    assert os.stat(path).st_ino == ino and os.stat(path).st_mtime > 1_000_000_000  # freshened, the same file
    assert not list((tmp_path / "cache" / "tmp").iterdir())


def test_an_object_gc_removed_with_its_directory_meanwhile_is_stored_again(tmp_path):
    import shutil

    from mvc.objects.odb import ODB

    make_file(tmp_path / "a", 3000, seed=8)
    odb = ODB(str(tmp_path / "cache"))
    oid = odb.add_file(str(tmp_path / "a"))[0]
    shutil.rmtree(os.path.dirname(odb.path(oid)))  # what a gc does to a fan-out directory it emptied
    assert odb.add_file(str(tmp_path / "a"))[0] == oid  # this ODB made that directory once: made again
    assert Path(odb.path(oid)).read_bytes() == (tmp_path / "a").read_bytes()


def test_add_with_core_fsync_stores_objects_whole(repo, mvc_cli):
    mvc_cli("config", "core.fsync", "true")
    data = make_file(repo / "model.bin", 3000, seed=9).read_bytes()
    mvc_cli("add", "model.bin")
    assert obj(repo, oid_of(data)).read_bytes() == data
    assert not list((repo / ".mvc" / "cache" / "tmp").iterdir())
