"""The .gitattributes patterns mvc import-lfs reads (``mvc.format.lfspointer.rules``) match what git's own
``git check-attr`` matches: bracket expressions with POSIX classes (``git lfs track "data set/*.pt"`` writes
``data[[:space:]]set/*.pt``), C-quoted patterns, backslash escapes, ranges, negations, ``**``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvc.format import lfspointer as lfs


def git_says(repo: Path, text: bytes, paths: list[str]) -> list[bool]:
    """Which paths git runs the git-lfs filter on, with text as the repository's .gitattributes."""
    (repo / ".gitattributes").write_bytes(text)
    out = subprocess.run(
        ["git", "check-attr", "-z", "--stdin", "filter"],
        cwd=repo,
        input="\0".join(paths).encode() + b"\0",
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    values = {out[i].decode(): out[i + 2] == b"lfs" for i in range(0, len(out) - 2, 3)}
    return [values[p] for p in paths]


@pytest.fixture(scope="module")
def gitdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("attrs")
    subprocess.run(["git", "init", "-q", str(d)], check=True)
    return d


CASES = [
    (b"data[[:space:]]set/*.pt filter=lfs -text\n", ["data set/a 1.pt", "data set/x/y.pt", "dataXset/a.pt"]),
    (b'"quoted dir/*.pt" filter=lfs -text\n', ["quoted dir/a.pt", "quoted dir/b.bin"]),
    (b"My[[:space:]]Models/** filter=lfs -text\n", ["My Models/x/y.bin", "My Models/z", "MyModels/z"]),
    (b"*.[ch]kpt filter=lfs\n", ["a.ckpt", "a.hkpt", "a.dkpt"]),
    (b"[!a]*.bin filter=lfs\n", ["b.bin", "a.bin", "x/b.bin"]),
    (b"[]x].bin filter=lfs\n", ["].bin", "x.bin", "y.bin"]),
    (b"[a-c][[:digit:]].bin filter=lfs\n", ["b1.bin", "d1.bin", "bb.bin"]),
    (b'"a\\303\\251 b.bin" filter=lfs\n', ["a\u00e9 b.bin", "ae b.bin"]),
    (b"with\\*star.bin filter=lfs\n", ["with*star.bin", "withXstar.bin"]),
    (b"[[:upper:][:digit:]]*.safetensors filter=lfs\n", ["A.safetensors", "7x.safetensors", "a.safetensors"]),
]


@pytest.mark.parametrize(("text", "paths"), CASES)
def test_known_patterns_match_as_git_matches_them(gitdir, text, paths):
    rules = lfs.rules(text)
    assert [lfs.lfs_filtered(p, rules) for p in paths] == git_says(gitdir, text, paths)


PIECES = ["a", "b", " ", "/", "*", "**", "?", "[ab]", "[!a]", "[a-c]", "[[:space:]]", "[[:alpha:]]", "\\*", "é"]
NAMES = st.lists(st.sampled_from(["a", "b", "c", " ", "/", "x", "é", "*"]), min_size=1, max_size=8).map("".join)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pattern=st.lists(st.sampled_from(PIECES), min_size=1, max_size=5).map("".join),
    paths=st.lists(NAMES, min_size=1, max_size=8),
)
def test_generated_patterns_match_as_git_matches_them(gitdir, pattern, paths):
    paths = sorted({p.strip("/").replace("//", "/") for p in paths if p.strip("/") and "//" not in p})
    if not paths or pattern.strip() != pattern or " " in pattern:
        return  # (a pattern is one word of its line; spaces go through classes or quotes, below)
    for text in (
        f"{pattern} filter=lfs\n".encode(),
        f'"{pattern.replace(chr(92), chr(92) * 2)}" filter=lfs\n'.encode(),
    ):
        rules = lfs.rules(text)
        assert [lfs.lfs_filtered(p, rules) for p in paths] == git_says(gitdir, text, paths), (text, paths)


def test_the_lfs_attributes_of_a_quoted_pattern_go_with_its_quotes():
    """A converted quoted pattern ("a dir/*.pt", a name with a space) leaves whole; one with other attributes keeps
    its pattern, quotes and all, and those attributes."""
    text = b'"qd x/*.pt" filter=lfs diff=lfs merge=lfs -text\n"keep me" filter=lfs -text eol=lf\n*.bin filter=lfs\n'
    rules = lfs.rules(text)
    assert [r.lfs_only() for r in rules] == [True, False, True]
    assert lfs.strip_lfs(text, {r.line for r in rules}) == b'"keep me" eol=lf\n'
