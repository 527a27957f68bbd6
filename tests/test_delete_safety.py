"""What mvc may delete (docs/FORMAT.md, "Threat model"): only temp files it can prove it made, named in its own
pattern (``.mvc-tmp.…tmp``), in the tmp/ of a store that carries its layout marker. A directory that is
neither empty nor mvc's is refused as a cache or a directory remote, and nothing is written to it.

Stale means a day old: these tests either pass ``now`` a day ahead or make every file count as stale
(``tempfiles.STALE``), since a file's ctime cannot be set back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import make_file
from hypothesis import given
from hypothesis import strategies as st

from mvc.errors import LayoutError
from mvc.objects import layout
from mvc.storage import fileio, tempfiles

DAY_AHEAD = tempfiles.STALE + 60


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    monkeypatch.setattr(tempfiles, "_swept", set())


def mvc_temp(directory: Path, hint: str = "obj") -> Path:
    path = Path(tempfiles.tmp_name(str(directory), hint))
    path.write_bytes(b"left by a killed writer")
    return path


def store_with_tmp(root: Path, marked: bool = True) -> Path:
    tmp = root / "tmp"
    tmp.mkdir(parents=True)
    if marked:
        (root / layout.MARKER).write_bytes(layout.MARKER_BYTES)
    return tmp


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below root with its size and mtime: what 'nothing was written' compares."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in [root, *root.rglob("*")]}


# -- the pattern ---------------------------------------------------------------------------------------
@given(st.text(max_size=80))
def test_every_temp_name_mvc_makes_is_recognised_as_its_own(hint):
    name = os.path.basename(tempfiles.tmp_name("/somewhere", hint))
    assert name.startswith(tempfiles.TMP_PREFIX) and name.endswith(".tmp") and "/" not in name
    assert tempfiles.is_tmp_name(name)


@pytest.mark.parametrize(
    "name",
    [
        ".obj.123.45.0123abcd.tmp",  # the pattern of mvc before the prefix: not provably mvc's
        "notes.tmp",
        ".mvc-tmp.tmp",
        ".mvc-tmp.obj.123.45.0123abcd.tmp.bak",
        ".mvc-tmp.obj.123.45.0123ABCD.tmp",
        ".mvc-tmp.obj.123.45.0123abc.tmp",
        ".mvc-tmp.a/b.123.45.0123abcd.tmp",
        ".mvc-tmp.obj.x.45.0123abcd.tmp",
        "x.mvc-tmp.obj.123.45.0123abcd.tmp",
        ".model.bin.mvc-tmp.123.0123abcd",  # a workspace temp of export (another sweep's, by pid)
    ],
)
def test_other_names_are_not_mvcs(name):
    assert not tempfiles.is_tmp_name(name)


# -- the sweep -----------------------------------------------------------------------------------------
def test_only_mvcs_stale_temp_files_go(tmp_path):
    tmp = store_with_tmp(tmp_path / "store")
    ours = mvc_temp(tmp)
    theirs = [tmp / "notes.txt", tmp / ".obj.1.tmp", tmp / "x.tmp"]
    for p in theirs:
        p.write_bytes(b"someone else's")
    (tmp / "sub").mkdir()
    (tmp / tempfiles.TMP_PREFIX.strip(".")).mkdir()
    os.symlink(theirs[0], tmp / os.path.basename(tempfiles.tmp_name("", "link")))  # mvc's name, not a file of mvc's
    tempfiles.sweep_stale(str(tmp), now=time.time())  # nothing is a day old
    assert ours.exists()
    tempfiles._swept.clear()
    tempfiles.sweep_stale(str(tmp), now=time.time() + DAY_AHEAD)
    assert not ours.exists()
    assert all(p.exists() for p in theirs) and (tmp / "sub").is_dir()
    assert len(list(tmp.iterdir())) == 6  # theirs, two directories, the symlink


def test_no_sweep_where_the_store_has_no_marker(tmp_path):
    """A tmp/ whose parent is not a marked store is not mvc's: even names of mvc's pattern stay."""
    tmp = store_with_tmp(tmp_path / "elsewhere", marked=False)
    ours = mvc_temp(tmp)
    tempfiles.sweep_stale(str(tmp), now=time.time() + DAY_AHEAD)
    assert ours.exists()
    (tmp_path / "elsewhere" / layout.MARKER).mkdir()  # a directory of that name is no marker
    tempfiles.sweep_stale(str(tmp), now=time.time() + DAY_AHEAD)
    assert ours.exists()
    (tmp_path / "elsewhere" / layout.MARKER).rmdir()
    (tmp_path / "elsewhere" / layout.MARKER).write_bytes(layout.MARKER_BYTES)  # marked now: swept
    tempfiles.sweep_stale(str(tmp), now=time.time() + DAY_AHEAD)
    assert not ours.exists()


def test_no_sweep_through_a_symlinked_tmp(tmp_path):
    """A store's tmp/ that is a link (to /tmp, say) leads out of the store: not swept."""
    outside = tmp_path / "outside"
    outside.mkdir()
    ours = mvc_temp(outside)
    root = tmp_path / "store"
    root.mkdir()
    (root / layout.MARKER).write_bytes(layout.MARKER_BYTES)
    os.symlink(outside, root / "tmp")
    tempfiles.sweep_stale(str(root / "tmp"), now=time.time() + DAY_AHEAD)
    assert ours.exists()


def test_once_per_directory_per_process(tmp_path):
    tmp = store_with_tmp(tmp_path / "store")
    tempfiles.sweep_stale(str(tmp), now=time.time())
    ours = mvc_temp(tmp)
    tempfiles.sweep_stale(str(tmp), now=time.time() + DAY_AHEAD)  # already swept: not looked at again
    assert ours.exists()


def test_missing_directory_is_fine(tmp_path):
    tempfiles.sweep_stale(str(tmp_path / "nope"))
    (tmp_path / layout.MARKER).write_bytes(layout.MARKER_BYTES)
    tempfiles.sweep_stale(str(tmp_path / "nope"))


def test_the_cache_and_directory_remotes_sweep_their_tmp(repo, mvc_cli, tmp_path, monkeypatch):
    cache_tmp = store_with_tmp(repo / ".mvc" / "cache")
    remote_tmp = store_with_tmp(tmp_path / "store")
    stale = [mvc_temp(cache_tmp), mvc_temp(remote_tmp)]
    kept = [cache_tmp / "notes.txt", remote_tmp / ".obj.1.tmp"]
    for p in kept:
        p.write_bytes(b"not mvc's")
    monkeypatch.setattr(tempfiles, "STALE", -3600)  # everything counts as stale
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    mvc_cli("push")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


# -- refusing a directory that is not mvc's ------------------------------------------------------------
def someone_elses(root: Path) -> Path:
    """A directory in use by something else, with a tmp/ of its own holding old files (one even named in
    mvc's pattern): what cache.dir = "/" would meet in /tmp."""
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "report.txt").write_text("keep me")
    tmp = root / "tmp"
    tmp.mkdir()
    (tmp / "session.lock").write_text("keep me")
    mvc_temp(tmp)
    return root


def test_a_cache_dir_that_is_not_mvcs_is_refused(repo, mvc_cli, mvc_error, tmp_path, monkeypatch):
    other = someone_elses(tmp_path / "home")
    before = snapshot(other)
    mvc_cli("config", "cache.dir", str(other), "--local")
    monkeypatch.setattr(tempfiles, "STALE", -3600)  # everything counts as stale
    make_file(repo / "m.bin", 1000)
    line = mvc_error(
        "add", "m.bin", words=(str(other), "not empty and not an mvc cache", "'docs'", "point cache.dir at an empty")
    )
    assert "nothing was written" in line
    assert snapshot(other) == before  # no marker, no temp file, nothing swept
    mvc_cli("status")  # reading is no write: nothing to refuse
    mvc_cli("config", "cache.dir", str(tmp_path / "new-cache"), "--local")  # the fix the error names works
    mvc_cli("add", "m.bin")
    assert (tmp_path / "new-cache" / layout.MARKER).read_bytes() == layout.MARKER_BYTES
    assert snapshot(other) == before


@pytest.mark.parametrize("entries", [[], ["objects"], ["objects", "tmp", "quarantine"]])
def test_an_empty_cache_dir_or_one_from_before_markers_is_used(repo, mvc_cli, tmp_path, entries):
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in entries:
        (cache / name).mkdir()
    mvc_cli("config", "cache.dir", str(cache), "--local")
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    assert (cache / layout.MARKER).read_bytes() == layout.MARKER_BYTES
    assert len(list((cache / "objects").glob("*/*"))) == 1


def test_a_directory_remote_that_is_not_mvcs_is_refused(repo, mvc_cli, tmp_path, monkeypatch):
    other = someone_elses(tmp_path / "share")
    before = snapshot(other)
    monkeypatch.setattr(tempfiles, "STALE", -3600)
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(other), "--default")
    result = mvc_cli("push", ok=False)
    (line,) = result.stderr.splitlines()
    assert result.exit_code == 1 and line.startswith("error: "), result.output
    for words in (str(other), "not empty and not an mvc remote", "'docs'", "point the remote at an empty location"):
        assert words in line, line
    assert snapshot(other) == before
    mvc_cli("remote", "modify", "origin", "url", str(tmp_path / "new-store"))  # the fix the error names works
    assert "pushed 1 object" in mvc_cli("push").output
    assert snapshot(other) == before


def test_the_judgement_allows_what_mvc_writes_there():
    for names in (
        [],
        ["objects", "tmp", "quarantine", "mvc.toml"],
        [os.path.basename(tempfiles.tmp_name("", "mvc.toml"))],
    ):
        layout.refuse_foreign(names, layout.CACHE_ENTRIES, "/c", "an mvc cache", "fix")
    layout.refuse_foreign(["objects", "packs", "tmp", "mvc.toml"], layout.REMOTE_ENTRIES, "/r", "an mvc remote", "fix")
    for names, allowed in (
        (["packs"], layout.CACHE_ENTRIES),
        (["quarantine"], layout.REMOTE_ENTRIES),
        ([".obj.1.tmp"], layout.CACHE_ENTRIES),
    ):
        with pytest.raises(LayoutError) as e:
            layout.refuse_foreign(names, allowed, "/x", "an mvc store", "fix it")
        assert "\n" not in str(e.value) and names[0] in str(e.value) and str(e.value).endswith("fix it")


# -- a pack index is trusted only as far as its pack's size ---------------------------------------------
@given(st.lists(st.binary(max_size=50), min_size=1, max_size=8), st.integers(min_value=0, max_value=400))
def test_an_index_listing_bytes_past_its_pack_is_refused_whole(blobs, size):
    from mvc.errors import CorruptObject
    from mvc.objects import oid as oids
    from mvc.objects import pack

    _, data, index, entries = pack.build([(oids.from_digest(fileio.hexdigest_bytes(b)), b) for b in set(blobs)])
    fits = all(e.offset + e.size <= size for e in entries)
    try:
        assert pack.parse_index(index, "packs/p.idx", size) == entries and fits
    except CorruptObject as e:
        assert not fits and "past the end of its pack" in str(e) and "packs/p.idx" in str(e)
    assert pack.parse_index(index, "packs/p.idx", len(data)) == entries
