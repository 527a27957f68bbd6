"""Stale temp files (docs/FORMAT.md, "Stale temp files"): what a killed writer left in a tmp/ is
deleted by the next writer, once per process; fresh files (live writers) and directories stay."""

from __future__ import annotations

import time

import pytest

from mvc.storage import fileio


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    monkeypatch.setattr(fileio, "_swept", set())


def test_old_temp_files_go_fresh_ones_stay(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / ".obj.1.tmp").write_bytes(b"left by a killed writer")
    (tmp / "sub").mkdir()
    fileio.sweep_stale(str(tmp), now=time.time())  # nothing is a day old
    assert sorted(p.name for p in tmp.iterdir()) == [".obj.1.tmp", "sub"]
    fileio._swept.clear()
    fileio.sweep_stale(str(tmp), now=time.time() + fileio.STALE + 60)
    assert sorted(p.name for p in tmp.iterdir()) == ["sub"]


def test_once_per_directory_per_process(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    fileio.sweep_stale(str(tmp), now=time.time())
    (tmp / "x").write_bytes(b"x")
    fileio.sweep_stale(str(tmp), now=time.time() + fileio.STALE + 60)  # already swept: not looked at again
    assert (tmp / "x").exists()


def test_missing_directory_is_fine(tmp_path):
    fileio.sweep_stale(str(tmp_path / "nope"))


def test_the_cache_and_directory_remotes_sweep_their_tmp(repo, mvc_cli, tmp_path, monkeypatch):
    from conftest import make_file

    stale = [repo / ".mvc" / "cache" / "tmp" / ".old.tmp", tmp_path / "store" / "tmp" / ".old.tmp"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"stale")
    monkeypatch.setattr(fileio, "STALE", -3600)  # everything counts as stale
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    mvc_cli("push")
    assert not any(p.exists() for p in stale)
