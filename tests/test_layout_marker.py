"""The layout marker (docs/FORMAT.md, "Layout marker"): mvc.toml at the root of the cache, written on first
use, checked before anything else there is trusted; an unknown format is refused, naming the upgrade."""

from __future__ import annotations

import pytest
from conftest import make_file
from hypothesis import given
from hypothesis import strategies as st

from mvc.errors import LayoutError
from mvc.objects import layout


def test_the_first_add_writes_the_cache_marker(repo, mvc_cli):
    marker = repo / ".mvc" / "cache" / "mvc.toml"
    assert not marker.exists()
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    assert marker.read_bytes() == layout.MARKER_BYTES
    assert layout.check_marker(marker.read_bytes(), str(marker)) == 1


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"format = 6\n", ("format 6", "upgrade mvc")),
        (b"format = 'one'\n", ("not an mvc store",)),
        (b"\x00\xff garbage", ("not an mvc layout marker",)),
        (b"[other]\nx = 1\n", ("no integer 'format'",)),
    ],
)
def test_a_cache_with_an_unknown_marker_is_refused(repo, mvc_cli, mvc_error, content, words):
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    marker = repo / ".mvc" / "cache" / "mvc.toml"
    marker.write_bytes(content)
    make_file(repo / "n.bin", 1000, seed=1)
    before = sorted(p.name for p in (repo / ".mvc" / "cache" / "objects").rglob("*"))
    line = mvc_error("add", "n.bin", words=("mvc.toml", *words))
    assert "Traceback" not in line
    assert sorted(p.name for p in (repo / ".mvc" / "cache" / "objects").rglob("*")) == before
    mvc_error("status", words=("mvc.toml",))
    assert marker.read_bytes() == content  # never rewritten


def test_a_cache_from_before_markers_gets_one(repo, mvc_cli):
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    marker = repo / ".mvc" / "cache" / "mvc.toml"
    marker.unlink()
    mvc_cli("status")  # reading does not write
    assert not marker.exists()
    make_file(repo / "n.bin", 1000, seed=1)
    mvc_cli("add", "n.bin")
    assert marker.read_bytes() == layout.MARKER_BYTES


@given(st.binary(max_size=300))
def test_any_marker_bytes_parse_or_raise_layout_error(data):
    try:
        assert layout.check_marker(data, "mvc.toml") == layout.FORMAT
    except LayoutError as e:
        assert "\n" not in str(e)


@given(st.text(max_size=200))
def test_any_marker_text_parses_or_raises_layout_error(text):
    try:
        layout.check_marker(text.encode("utf-8", "surrogatepass"), "mvc.toml")
    except LayoutError:
        pass
