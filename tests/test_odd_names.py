"""Odd names and file types a user's tree holds: a file of the user's named ``*.mvc`` (never deleted as if it
were a pointer), names ``mvc mv`` must refuse as ``mvc add`` does, names printed where a newline could forge a
line, a name that is also a registry revision."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import git, make_file

import mvc


# -- a file of the user's whose name ends in .mvc ----------------------------------------------------------
def test_remove_never_deletes_a_file_that_is_not_a_pointer(repo: Path, mvc_error):
    (repo / "notes.mvc").write_text("my important notes\n")
    line = mvc_error("remove", "notes", words=("notes.mvc is not an mvc pointer", "rename it"))
    assert "deletes only its own pointers" in line
    assert (repo / "notes.mvc").read_text() == "my important notes\n"
    line = mvc_error("status", words=("notes.mvc", "rename it if it is a file of yours"))


def test_add_of_a_directory_holding_a_user_file_named_mvc_says_rename_it(repo: Path, mvc_cli, mvc_error):
    make_file(repo / "d" / "a.bin", 10)
    (repo / "d" / "x.mvc").write_text("z\n")
    line = mvc_error("add", "d", words=("d/x.mvc is not an mvc pointer", "rename it"))
    assert "mvc remove" not in line
    mvc_error("remove", "d/x", words=("not an mvc pointer",))
    assert (repo / "d" / "x.mvc").read_text() == "z\n"
    (repo / "d" / "x.mvc").rename(repo / "d" / "x.mvc.txt")
    mvc_cli("add", "d")


def test_remove_still_deletes_its_own_pointers(repo: Path, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    mvc_cli("remove", "m.bin")
    assert not (repo / "m.bin.mvc").exists() and (repo / "m.bin").exists()


# -- names mvc prints: one line each, whatever they hold ----------------------------------------------------
def test_mv_refuses_names_add_refuses(repo: Path, mvc_cli, mvc_error):
    import os

    make_file(repo / "e.bin", 5)
    mvc_cli("add", "e.bin")
    git(repo, "commit", "-q", "-m", "e")
    mvc_error("mv", "e.bin", os.fsdecode(b"bad\xff"), words=("not a valid UTF-8 name",))
    mvc_error("mv", "e.bin", "n\nl", words=("$'n\\x0al' has a control character",))
    assert (repo / "e.bin.mvc").exists() and git(repo, "diff", "--cached", "--name-only") == ""
    mvc_cli("status")  # still usable


def test_names_in_a_directory_cannot_forge_lines(repo: Path, mvc_cli, mvc_error):
    make_file(repo / "d" / "a.bin", 10)
    make_file(repo / "d" / "b.bin", 10, seed=1)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "d")
    forged = "x\n    modified:  d:a.bin"
    (repo / "d" / forged).write_text("evil\n")
    (repo / "d" / "\x1b[31mRED").write_text("esc\n")
    out = mvc_cli("status", "--files").stdout
    assert "\x1b" not in out and not any(line.startswith("    modified:  d:a.bin") for line in out.splitlines())
    assert "$'d/x\\x0a    modified:  d:a.bin'" in out and "$'d/\\x1b[31mRED'" in out
    (repo / "d" / forged).unlink()
    (repo / "d" / "\x1b[31mRED").unlink()
    (repo / "d" / "b\nc.bin").write_text("mine, not added\n")  # a file checkout would remove: not in the cache
    line = mvc_error("checkout", "d", words=("has changes that are not in the cache",))
    assert "$'d/b\\x0ac.bin'" in line
    out = mvc_cli("checkout", "--force", "d").stdout
    assert "kept the replaced content of $'d/b\\x0ac.bin' in the cache as" in out
    assert not (repo / "d" / "b\nc.bin").exists()


def file_named_as_a_version(repo: Path, mvc_cli, name: str) -> None:
    """A tracked file named NAME@v1.0.0 beside model NAME (model.bin) registered as v1.0.0."""
    (repo / f"{name}@v1.0.0").write_text("the file\n")
    (repo / "model.bin").write_text("the model\n")
    mvc_cli("add", f"{name}@v1.0.0", "model.bin")
    mvc_cli("add", "model.bin", "--name", name)
    git(repo, "commit", "-q", "-m", "two")
    mvc_cli("register", name, "v1.0.0")


def test_a_path_named_as_a_registry_revision_is_never_picked_silently(repo: Path, mvc_cli, mvc_error, tmp_path):
    file_named_as_a_version(repo, mvc_cli, "at")
    for cmd in (("get", "at@v1.0.0", "-o", str(tmp_path / "o")), ("show", "at@v1.0.0"), ("checkout", "at@v1.0.0")):
        mvc_error(*cmd, words=("names both a path here and a registry revision", "./at@v1.0.0"))
    mvc_cli("get", "./at@v1.0.0", "-o", str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "the file\n"
    assert mvc.describe("at@v1.0.0", repo=f"file://{repo}")["path"] == "model.bin"  # by URL: the registry's
    with pytest.raises(mvc.errors.PathError, match="names both a path here and a registry revision"):
        mvc.describe("at@v1.0.0", repo=str(repo))  # a path in the work tree: that work tree, as the CLI reads it


# -- file types -------------------------------------------------------------------------------------------
def test_a_tracked_empty_directory_is_restored(repo: Path, mvc_cli, tmp_path, monkeypatch):
    (repo / "e").mkdir()
    mvc_cli("add", "e")
    git(repo, "commit", "-q", "-m", "e")
    (repo / "e").rmdir()
    assert "missing from workspace" in mvc_cli("status").stdout
    assert "restored e" in mvc_cli("checkout").stdout
    assert (repo / "e").is_dir() and "up to date" in mvc_cli("status").stdout
    assert "restored" not in mvc_cli("checkout").stdout
    mvc_cli("remote", "add", "o", str(tmp_path / "store"), "--default")
    git(repo, "commit", "-q", "-m", "remote")
    mvc_cli("push")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    mvc_cli("pull")
    assert (clone / "e").is_dir()


def test_a_files_execute_bit_is_recorded_and_restored(repo: Path, mvc_cli, tmp_path, monkeypatch):
    """A self-executing model (a llamafile) or a wrapper script keeps its execute bit: mvc add records it in the
    pointer, checkout, pull and get restore it, and status says a file that lost it is modified."""
    import os
    import stat

    from mvc.format import pointer as ptrfmt

    run = repo / "m.llamafile"
    run.write_text("#!/bin/sh\necho run\n")
    run.chmod(0o755)
    make_file(repo / "w.bin", 10)
    mvc_cli("add", "m.llamafile", "w.bin")
    assert ptrfmt.loads((repo / "m.llamafile.mvc").read_bytes()).executable
    assert b"executable" not in (repo / "w.bin.mvc").read_bytes()  # written only when set
    mvc_cli("remote", "add", "o", str(tmp_path / "store"), "--default")
    git(repo, "commit", "-q", "-m", "m")
    mvc_cli("push")
    run.chmod(0o644)
    assert "m.llamafile: modified" in mvc_cli("status").stdout
    mvc_cli("checkout")
    assert os.stat(run).st_mode & stat.S_IXUSR and "m.llamafile: up to date" in mvc_cli("status").stdout
    mvc_cli("get", "m.llamafile", "-o", str(tmp_path / "got"))
    assert os.stat(tmp_path / "got").st_mode & stat.S_IXUSR
    mvc_cli("get", "--repo", str(repo), "m.llamafile", "-o", str(tmp_path / "by-url"))
    assert os.stat(tmp_path / "by-url").st_mode & stat.S_IXUSR
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    mvc_cli("pull")
    assert os.stat(clone / "m.llamafile").st_mode & stat.S_IXUSR
    assert not os.stat(clone / "w.bin").st_mode & stat.S_IXUSR


def test_a_pointers_executable_is_a_file_pointers_bool():
    import pytest

    from mvc.errors import PointerError
    from mvc.format import pointer as ptrfmt

    base = 'format = 1\nkind = "{k}"\noid = "xxh128:{z}"\nsize = 3\n{extra}'
    z = "0" * 32
    assert ptrfmt.loads(base.format(k="file", z=z, extra="executable = true\n")).executable
    assert not ptrfmt.loads(base.format(k="file", z=z, extra="executable = false\n")).executable
    for k, extra in (
        ("file", 'executable = "yes"\n'),
        ("file", "executable = 1\n"),
        ("dir", "executable = true\nnfiles = 1\n"),
    ):
        with pytest.raises(PointerError, match="executable must be true or false"):
            ptrfmt.loads(base.format(k=k, z=z, extra=extra))


def test_a_large_file_or_a_link_named_mvc_is_refused_unread(repo: Path, mvc_error, tmp_path):
    import os

    big = repo / "huge.mvc"
    with open(big, "wb") as f:
        f.truncate(3 << 30)  # sparse: 3 GiB that must never be read whole
    mvc_error("remove", "huge", words=("huge.mvc is not an mvc pointer",))
    assert big.stat().st_size == 3 << 30
    target = tmp_path / "elsewhere.bin"
    target.write_text("x")
    os.symlink(target, repo / "link.mvc")
    mvc_error("remove", "link", words=("link.mvc is not an mvc pointer",))
    assert (repo / "link.mvc").is_symlink() and target.read_text() == "x"


def test_a_repo_given_from_elsewhere_sees_an_ambiguous_name_in_its_root(repo: Path, mvc_cli, tmp_path, monkeypatch):
    import pytest

    from mvc.errors import PathError

    file_named_as_a_version(repo, mvc_cli, "dd")
    r = mvc.Repo(str(repo))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PathError, match="names both a path here and a registry revision"):
        mvc.describe("dd@v1.0.0", repo=r)
    assert mvc.read_bytes("./dd@v1.0.0", repo=r) == b"the file\n"


def test_a_tracked_path_beyond_a_symlink_inside_the_repository_is_never_written(repo: Path, mvc_cli, mvc_error):
    """p replaced by a symlink to q (inside the repository): checkout of p/model wrote q/model through it."""
    import os

    (repo / "p").mkdir()
    (repo / "q").mkdir()
    (repo / "p" / "model").write_text("P\n")
    (repo / "q" / "model").write_text("Q\n")
    mvc_cli("add", "p/model", "q/model")
    git(repo, "commit", "-q", "-m", "v")
    (repo / "p").rename(repo / "p_old")
    os.symlink("q", repo / "p")
    mvc_error("checkout", "--rev", "HEAD", "--force", words=("beyond a symlink inside the repository",))
    assert (repo / "q" / "model").read_text() == "Q\n"


def test_a_fifo_in_a_tracked_directory_is_listed_and_a_backslash_named(repo: Path, mvc_cli, mvc_error):
    import os

    make_file(repo / "d" / "a.bin", 10)
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "d")
    os.mkfifo(repo / "d" / "pipe")
    assert mvc_cli("status", "--files").stdout.splitlines() == ["d: modified", "    added:     d/pipe"]
    (repo / "back\\slash").write_text("x")
    line = mvc_error("add", "back\\slash", words=("a backslash in the name",))
    assert "absolute" not in line


# -- a name that begins with a dash, in the commands messages suggest -----------------------------------------
def test_a_suggested_command_never_reads_a_dashed_name_as_an_option(repo: Path, mvc_cli):
    """The undo checkout --rev prints for a file named --force is a checkout of that file alone: pasted, it
    must not be 'mvc checkout --rev HEAD --force', a forced checkout of every path that drops another
    path's added, uncommitted version."""
    for name, seed in (("--force", 1), ("-rf", 2), ("other.bin", 3)):
        make_file(repo / name, 100, seed=seed)
    mvc_cli("add", "--", "--force", "-rf", "other.bin")
    git(repo, "commit", "-q", "-m", "v1")
    for name, seed in (("--force", 4), ("-rf", 5)):
        make_file(repo / name, 200, seed=seed)
    mvc_cli("add", "--", "--force", "-rf")
    git(repo, "commit", "-q", "-m", "v2")
    make_file(repo / "other.bin", 300, seed=6)
    mvc_cli("add", "other.bin")  # added, not committed
    newer = (repo / "other.bin").read_bytes()

    out = mvc_cli("checkout", "--rev", "HEAD~1", "--", "--force", "-rf").stdout
    assert "'mvc checkout --rev HEAD ./--force' undoes it" in out
    assert "'mvc checkout --rev HEAD ./-rf' undoes it" in out
    mvc_cli("checkout", "--rev", "HEAD", "./--force")  # the undo, pasted
    mvc_cli("checkout", "--rev", "HEAD", "./-rf")
    assert (repo / "other.bin").read_bytes() == newer  # the other path's new version is untouched
    assert len((repo / "--force").read_bytes()) == 200 and len((repo / "-rf").read_bytes()) == 200
    assert "other.bin" in git(repo, "diff", "--cached", "--name-only")


# -- git settings of repositories made elsewhere ------------------------------------------------------------
def test_a_name_that_differs_only_in_case_is_refused_where_git_ignores_case(repo: Path, mvc_cli, mvc_error):
    """With core.ignorecase (a repository copied from macOS) git stages MODEL.BIN.mvc as the tracked
    Model.bin.mvc, or not at all: the add said "added" and the version never reached a commit."""
    make_file(repo / "Model.bin", 100, seed=1)
    make_file(repo / "Dir" / "a.bin", 100, seed=2)
    mvc_cli("add", "Model.bin", "Dir/a.bin")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "config", "core.ignorecase", "true")
    make_file(repo / "MODEL.BIN", 100, seed=3)
    make_file(repo / "dir" / "b.bin", 100, seed=4)
    mvc_error("add", "MODEL.BIN", words=("MODEL.BIN differs only in case from Model.bin", "core.ignorecase"))
    mvc_error("add", "dir/b.bin", words=("differs only in case from Dir", "core.ignorecase"))
    assert not (repo / "MODEL.BIN.mvc").exists() and git(repo, "status", "--porcelain", "--", ".gitignore") == ""
    git(repo, "config", "core.ignorecase", "false")  # where git tells them apart, both are tracked
    mvc_cli("add", "MODEL.BIN")
    assert "MODEL.BIN.mvc" in git(repo, "diff", "--cached", "--name-only")


def test_add_works_where_git_refuses_lf_files_under_autocrlf_and_safecrlf(repo: Path, mvc_cli):
    """core.autocrlf=true with core.safecrlf=true: git refuses to stage a file with LF endings, which every
    pointer and .gitignore mvc writes has; the add stopped half way, and again on every rerun."""
    git(repo, "config", "core.autocrlf", "true")
    git(repo, "config", "core.safecrlf", "true")
    make_file(repo / "sub" / "m.bin", 100)
    mvc_cli("add", "sub/m.bin")
    assert set(git(repo, "diff", "--cached", "--name-only").split()) >= {"sub/m.bin.mvc", "sub/.gitignore"}
    git(repo, "commit", "-q", "-m", "m")
    assert mvc_cli("status").stdout.strip() == "sub/m.bin: up to date"


def test_a_pointer_whose_path_is_too_long_here_is_an_error_never_skipped(
    tmp_path: Path, repo: Path, mvc_cli, mvc_error
):
    """A clone placed deeper than the original holds a pointer whose absolute path passes PATH_MAX: status
    said "nothing tracked yet" and pull "nothing to fetch", exit 0, and the model was never restored."""
    rel = "/".join(["d" * 200] * 19 + ["e" * 150, "m.bin"])
    make_file(repo / rel, 100)
    mvc_cli("remote", "add", "o", str(tmp_path / "store"), "--default")
    mvc_cli("add", rel)
    git(repo, "commit", "-q", "-m", "deep")
    mvc_cli("push", "-q")
    clone = tmp_path / ("c" * 150)
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    os.chdir(clone)
    for args in (("status",), ("pull",), ("ls",)):
        mvc_error(*args, words=("longer than this system allows", "shorter path"))


def test_the_config_table_a_message_names_is_written_as_toml_writes_it(repo: Path, mvc_cli, mvc_error):
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    git(repo, "tag", "-a", "dir=name@v0.0.1", "-m", "r", "HEAD")  # GTO's spelling of the name dir:name
    line = mvc_error("get", "dir:name@v0.0.1", "-o", "out.bin", words=("has no path",))
    assert '[models."dir:name"]' in line


def test_gitignore_lines_are_read_as_git_reads_them(repo: Path, mvc_cli):
    """git splits a .gitignore at LF alone and drops a CR before it: a CRLF checkout's lines were never
    removed by remove and mv, and a name holding U+2028 or U+0085 got one more line at each version."""
    for name in ("a.bin", "b.bin"):
        make_file(repo / name, 10)
    mvc_cli("add", "a.bin", "b.bin")
    gi = repo / ".gitignore"
    gi.write_bytes(gi.read_bytes().replace(b"\n", b"\r\n"))  # as core.autocrlf=true checks it out
    make_file(repo / "c.bin", 10)
    mvc_cli("add", "c.bin")
    assert gi.read_bytes() == b"/a.bin\r\n/b.bin\r\n/c.bin\r\n"  # its style kept
    mvc_cli("remove", "a.bin")
    mvc_cli("mv", "b.bin", "d.bin")
    assert gi.read_bytes() == b"/c.bin\r\n/d.bin\r\n"

    odd = ["ls\u2028sep.bin", "nel\u0085x.bin"]
    for seed in (1, 2, 3):
        for name in odd:
            make_file(repo / name, 10, seed=seed)
        mvc_cli("add", *odd)
    text = gi.read_bytes().decode()
    assert [text.count(f"/{n}\r\n") for n in odd] == [1, 1]
    mvc_cli("remove", *odd)
    assert gi.read_bytes() == b"/c.bin\r\n/d.bin\r\n"


# -- bytes of another encoding ---------------------------------------------------------------------------------
def _registered_then_changed(repo: Path, mvc_cli) -> None:
    """Model churn (m.bin) registered as v0.0.1, then a second version committed, not registered."""
    make_file(repo / "m.bin", 100, seed=1)
    mvc_cli("add", "m.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "v1")
    mvc_cli("register", "churn", "-q")
    make_file(repo / "m.bin", 100, seed=2)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "v2")


def test_a_tag_written_in_another_encoding_is_shown_not_a_traceback(repo: Path, tmp_path: Path, mvc_cli):
    """A teammate's registry tag whose message or tagger is latin-1: ui build died writing the page, and
    registry --json put out a lone surrogate."""
    _registered_then_changed(repo, mvc_cli)
    git(repo, "tag", "-a", "churn@v0.0.2", "-m", "caf\udce9", "HEAD")  # the byte 0xe9 (latin-1 é)
    env = {**os.environ, "GIT_COMMITTER_NAME": "Jos\udce9"}
    subprocess.run(["git", "tag", "-a", "churn#prod#1", "-m", "x", "HEAD~1"], cwd=repo, env=env, check=True)
    mvc_cli("ui", "build", "-o", str(tmp_path / "site"))
    assert any("caf\ufffd" in p.read_text() for p in (tmp_path / "site").rglob("*.html"))
    out = mvc_cli("registry", "churn", "--json").stdout
    assert "\\udc" not in out and ("caf\\ufffd" in out or "caf\ufffd" in out)


def test_an_argument_mvc_would_write_in_another_encoding_is_refused_before_anything_is_written(
    repo: Path, tmp_path: Path, mvc_cli, mvc_error
):
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin", "--name", "m")
    git(repo, "commit", "-q", "-m", "v1")
    config = (repo / ".mvc" / "config.toml").read_bytes()
    bad = "x\udcfe"
    mvc_error("remote", "add", "o", str(tmp_path / bad), words=("URL is not valid Unicode", "UTF-8"))
    mvc_cli("remote", "add", "ok", str(tmp_path / "ok"))
    config = (repo / ".mvc" / "config.toml").read_bytes()
    mvc_error("remote", "modify", "ok", "url", str(tmp_path / bad), words=("VALUE is not valid Unicode",))
    mvc_error("config", "cache.dir", str(tmp_path / bad), words=("not valid Unicode",))
    assert (repo / ".mvc" / "config.toml").read_bytes() == config
    for args in (("register", "m"), ("assign", "m", "prod"), ("deprecate", "m")):
        mvc_error(*args, "-m", "release " + bad, words=("-m is not valid Unicode",))
    assert git(repo, "tag") == ""  # assign registers first: not even that tag


def test_a_lightweight_tag_named_like_the_next_version_is_stepped_over(repo: Path, mvc_cli, mvc_error):
    """The registry ignores lightweight tags, so the bump kept choosing the name git already held, and
    register and assign failed every time, sending the user to commands that do not show that tag."""
    _registered_then_changed(repo, mvc_cli)
    git(repo, "tag", "churn@v0.0.2")  # lightweight
    assert "churn@v0.0.3" in mvc_cli("register", "churn").stdout
    make_file(repo / "m.bin", 100, seed=3)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "v3")
    git(repo, "tag", "churn@v0.0.5")
    mvc_error("register", "churn", "v0.0.5", words=("lightweight tag", "git tag -d churn@v0.0.5"))


def test_an_absolute_path_through_a_symlink_above_the_repository_is_inside_it(repo: Path, tmp_path: Path, mvc_cli):
    """ "$(pwd)/model.bin" where pwd went through a link to the repository (macOS's /tmp, a linked home):
    refused as outside the repository, which git accepts. A link inside the repository is still refused."""
    link = tmp_path / "link"
    link.symlink_to(repo)
    make_file(repo / "model.bin", 100)
    os.chdir(link)
    mvc_cli("add", str(link / "model.bin"))
    assert (repo / "model.bin.mvc").exists()
    assert mvc_cli("status", str(link / "model.bin")).stdout.startswith("model.bin: ")
    (repo / "inner").symlink_to(repo)
    result = mvc_cli("add", str(link / "inner" / "model.bin"), ok=False)
    assert result.exit_code != 0 and "symlink" in result.stderr


def test_log_of_a_word_that_is_a_model_and_a_path_says_how_to_reach_the_path(repo: Path, mvc_cli):
    make_file(repo / "churn.pt", 100, seed=1)
    mvc_cli("add", "churn.pt", "--name", "churn")
    git(repo, "commit", "-q", "-m", "model")
    make_file(repo / "churn", 333, seed=2)
    mvc_cli("add", "churn")
    git(repo, "commit", "-q", "-m", "a file named churn")
    result = mvc_cli("log", "churn")
    assert "churn.pt" in result.stdout and "'mvc log ./churn'" in result.stderr
    result = mvc_cli("log", "./churn")
    assert "333 B" in result.stdout and "churn.pt" not in result.stdout and result.stderr == ""


def test_a_branch_named_like_a_registry_revision_is_named_in_a_notice(repo: Path, mvc_cli):
    make_file(repo / "m.bin", 100, seed=1)
    mvc_cli("add", "m.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "v1")
    mvc_cli("assign", "churn", "prod", "-q")
    make_file(repo / "m.bin", 200, seed=2)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "branch", "churn#prod/wip")  # a branch below the name: no notice
    assert mvc_cli("ls", "--rev", "churn#prod").stderr == ""
    git(repo, "branch", "-D", "churn#prod/wip")
    git(repo, "branch", "churn#prod")
    result = mvc_cli("ls", "--rev", "churn#prod")
    assert "100 B" in result.stdout and "refs/heads/churn#prod" in result.stderr
    result = mvc_cli("ls", "--rev", "refs/heads/churn#prod")
    assert "200 B" in result.stdout and result.stderr == ""


def test_json_shows_a_name_that_is_not_utf8_as_valid_text(repo: Path, mvc_cli):
    import json

    make_file(repo / "data" / "a.bin", 10)
    mvc_cli("add", "data")
    git(repo, "commit", "-q", "-m", "d")
    make_file(Path(os.fsdecode(os.path.join(os.fsencode(repo), b"data", b"bad\xff"))), 10)
    out = mvc_cli("status", "--files", "--json").stdout
    out.encode("utf-8")  # no lone surrogate: every strict parser reads it
    assert "bad\\\\xff" in out and json.loads(out)


def test_names_the_system_cannot_hold_are_refused_naming_the_path_and_the_fix(repo: Path, mvc_error):
    long = "a" * 252  # its pointer, NAME.mvc, would be 256 bytes
    make_file(repo / long, 10)
    line = mvc_error("add", long, words=("longer than 255 bytes", "shorter name"))
    assert ".mvc-tmp." not in line and "disk and permissions" not in line
    make_file(repo / "x.bin", 10)
    (repo / "x.bin.mvc").mkdir()
    mvc_error("add", "x.bin", words=("x.bin.mvc is a directory", "move it away"))
    os.chdir(repo)
    for _ in range(21):  # one step at a time: the whole path is longer than the system takes at once
        os.mkdir("d" * 200)
        os.chdir("d" * 200)
    Path("m.bin").write_bytes(b"x" * 10)
    for _ in range(6):
        os.chdir("..")
    rel = "/".join(["d" * 200] * 6 + ["m.bin"])  # relative: fine; from here, absolute: past PATH_MAX
    mvc_error("add", rel, words=("longer than this system allows",))


def test_names_are_shown_in_shell_quoting_when_something_in_them_does_not_print(repo: Path, mvc_cli, mvc_error):
    """C1 controls (U+009B is a terminal's CSI) were printed raw; a byte that is not UTF-8 as Python's b'...'."""
    name = "c1\u009b31mred.bin"
    make_file(repo / name, 10)
    out = mvc_cli("add", name).stdout
    assert "\u009b" not in out and "$'c1\\u009b31mred.bin'" in out
    assert "$'c1\\u009b31mred.bin'" in mvc_cli("status").stdout
    bad = os.fsdecode(b"n\xff.bin")
    make_file(repo / bad, 10)
    line = mvc_error("add", bad, words=("$'n\\xff.bin' is not a valid UTF-8 name",))
    assert "b'" not in line


def test_an_output_path_with_a_newline_keeps_each_message_on_one_line(repo: Path, tmp_path: Path, mvc_cli, mvc_error):
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    out = str(tmp_path / "new\nline")
    said = mvc_cli("get", "m.bin", "-o", out).stdout
    assert said.count("\n") == 1 and "$'" in said
    mvc_error("get", "m.bin", "-o", out, words=("new\\nline already exists",))


def test_a_file_url_is_read_as_git_reads_it(repo: Path, tmp_path: Path, mvc_cli):
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    (tmp_path / "my store").mkdir()
    mvc_cli("remote", "add", "a", f"file://{tmp_path}/my%20store")
    mvc_cli("remote", "add", "b", f"file://localhost{tmp_path}/my%20store")
    mvc_cli("push", "-q", "-r", "a")
    assert mvc_cli("push", "-r", "b").stdout.startswith("nothing to push")
    assert any((tmp_path / "my store").iterdir()) and not (tmp_path / "my%20store").exists()


def test_a_name_ending_in_the_pointer_suffix_that_is_no_pointer_is_told_to_be_renamed(repo: Path, mvc_cli, mvc_error):
    (repo / "sub").mkdir()
    (repo / "sub" / ".mvc").write_text("x\n")
    (repo / "d.mvc").mkdir()
    (repo / "d.mvc" / "f").write_text("x\n")
    for path in ("sub/.mvc", "d.mvc"):
        line = mvc_error("add", path, words=("mvc tracks no name ending in .mvc", "rename it"))
        assert "pointer file" not in line
    assert mvc_cli("init", "-q").stdout == ""
