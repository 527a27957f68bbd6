"""Odd names and file types a user's tree holds: a file of the user's named ``*.mvc`` (never deleted as if it
were a pointer), names ``mvc mv`` must refuse as ``mvc add`` does, names printed where a newline could forge a
line, a name that is also a registry revision."""

from __future__ import annotations

from pathlib import Path

from conftest import git, make_file


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
