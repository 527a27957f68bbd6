"""What mvc says about a path it cannot take, and small wording: each message names the actual problem and a
fix that applies (never 'run mvc add' for a path that add refuses or that does not exist); counts agree with
their nouns; no rate measured over nothing; an empty listing says so."""

from __future__ import annotations

import io
import json
import re
import shlex

import pytest
from conftest import ROOT, git, make_file
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture
def tok(repo, mvc_cli):
    """A repository tracking the directory data/tok (two files) and m.bin, then four commits more."""
    make_file(repo / "data" / "tok" / "f1.bin", 100, seed=1)
    make_file(repo / "data" / "tok" / "f2.bin", 100, seed=2)
    make_file(repo / "m.bin", 50, seed=3)
    mvc_cli("add", "data/tok", "m.bin")
    git(repo, "commit", "-q", "-m", "tracked")
    for i in range(4):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"empty {i}")
    return repo


# -- a path inside a tracked directory, or that does not exist ----------------------------------------------
def test_status_of_a_file_inside_a_tracked_directory_names_the_directory(tok, mvc_error):
    for path in ("data/tok/f1.bin", "data/tok/gone.bin"):  # the file may be gone: still the directory's
        line = mvc_error(
            "status", path, words=(f"{path} is part of tracked directory data/tok", "'mvc status data/tok --files'")
        )
        assert "mvc add" not in line


def test_status_of_a_path_that_does_not_exist_says_so(tok, mvc_error):
    for path in ("nope.bin", "nope.bin.mvc", "data/other/x.bin"):
        line = mvc_error("status", path, words=(f"{path} is not tracked by mvc and does not exist", "mvc ls"))
        assert "mvc add" not in line


def test_status_of_an_existing_untracked_file_still_says_add_it(tok, mvc_error):
    make_file(tok / "other.bin", 5)
    mvc_error("status", "other.bin", words=("other.bin is not tracked by mvc", "run 'mvc add other.bin' first"))


def test_other_commands_name_the_directory_too(tok, mvc_error):
    for cmd in ("checkout", "unprotect"):
        line = mvc_error(cmd, "data/tok/f1.bin", words=("part of tracked directory data/tok", "name data/tok instead"))
        assert "mvc add data/tok/f1.bin" not in line
    mvc_error(
        "remove",
        "data/tok/f1.bin",
        words=("part of tracked directory data/tok", "delete it and run 'mvc add data/tok'"),
    )
    assert (tok / "data" / "tok.mvc").is_file()
    for cmd in ("checkout", "unprotect", "remove"):
        line = mvc_error(cmd, "nope.bin", words=("nope.bin is not tracked by mvc and does not exist",))
        assert "mvc add" not in line


def test_checkout_of_a_path_not_tracked_at_rev_says_it_as_get_does(tok, mvc_error, tmp_path):
    """At HEAD~5 nothing is tracked: whether the path exists here says nothing about that revision."""
    for path in ("m.bin", "nope.bin"):
        line = mvc_error("checkout", "--rev", "HEAD~5", path)
        assert line == f"error: {path} is not tracked by mvc at HEAD~5: check the path with \"mvc ls --rev 'HEAD~5'\""
        mvc_error("get", path, "--rev", "HEAD~5", "-o", str(tmp_path / "out"), words=("not tracked by mvc at HEAD~5",))
    line = mvc_error(
        "checkout", "--rev", "HEAD~1", "data/tok/f1.bin", words=("part of tracked directory data/tok at HEAD~1",)
    )
    assert "mvc add" not in line
    assert git(tok, "diff", "--cached", "--name-only") == ""  # nothing staged by the refused checkouts


def test_a_path_with_a_space_is_quoted_in_the_fix(repo, mvc_cli, mvc_error):
    """The fix's command is set off in double quotes where the path in it is in single quotes (single quotes
    around it would read as two quoted words), and pasted into a shell it names the path."""
    make_file(repo / "my data" / "a.bin", 10)
    mvc_cli("add", "my data")
    line = mvc_error("status", "my data/a.bin", words=("part of tracked directory my data",))
    assert pasted(line, "mvc status") == ["mvc", "status", "my data", "--files"], line
    line = mvc_error("remove", "my data/a.bin", words=("part of tracked directory my data",))
    assert pasted(line, "mvc add") == ["mvc", "add", "my data"], line
    make_file(repo / "new file.bin", 10)
    line = mvc_error("status", "new file.bin", words=("run \"mvc add 'new file.bin'\" first",))
    assert pasted(line, "mvc add") == ["mvc", "add", "new file.bin"]
    make_file(repo / "it's.bin", 10)  # both kinds of quote in the command: set off in backquotes
    line = mvc_error("status", "it's.bin", words=("is not tracked by mvc",))
    assert pasted(line, "mvc add") == ["mvc", "add", "it's.bin"], line


def test_a_name_in_another_unicode_form_is_named_as_it_is_tracked(repo, mvc_cli, mvc_error):
    """A name typed precomposed (NFC) where the file was named with combining marks (NFD, as macOS writes names),
    or the other way round: two names that look alike; the error shows both spellings."""
    import unicodedata

    nfc = "café.bin"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    make_file(repo / nfd, 10)
    make_file(repo / "crème.bin", 10)
    mvc_cli("add", nfd, "crème.bin")
    git(repo, "commit", "-q", "-m", "two")
    words = ("is not tracked by mvc", "another Unicode form", "tracked as cafe\\u0301.bin, typed as café.bin")
    mvc_error("status", nfc, words=words)
    mvc_error("checkout", "--rev", "HEAD", nfc, words=("not tracked by mvc at HEAD", *words[1:]))
    typed = unicodedata.normalize("NFD", "crème.bin")
    mvc_error("status", typed, words=("tracked as crème.bin, typed as cre\\u0300me.bin",))
    line = mvc_error("status", "cafe.bin")  # other letters: not the same name
    assert "Unicode" not in line


def test_a_plain_path_keeps_single_quotes_in_the_fix(repo, mvc_error):
    make_file(repo / "new.bin", 10)
    mvc_error("status", "new.bin", words=("run 'mvc add new.bin' first",))


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30))
def test_a_suggested_command_reads_back_as_its_words_whatever_the_path(path):
    """in_quotes sets the command off so that what lies between its quotes, pasted into a shell, is the command
    with the path as one word (where the path prints: one that does not is in $'...' quoting)."""
    from mvc.format.pointer import in_quotes, shell_quoted

    said = in_quotes(f"mvc add {shell_quoted(path)} --name x")
    assert said[0] == said[-1] and said[0] in "'\"`"
    assert said[0] not in said[1:-1]  # the quotes around it are not in it
    if path.isprintable():
        words = shlex.split(said[1:-1])
        assert words == ["mvc", "add", path if not path.startswith("-") else "./" + path, "--name", "x"]


def test_a_revision_or_a_path_in_a_suggested_command_is_quoted_for_the_shell(repo, mvc_cli, mvc_error, tmp_path):
    """The commands messages suggest with a revision or a path, outside --repo too ('mvc ls --rev REV', 'mvc checkout
    --rev REV', 'mvc remove PATH'): each, pasted into a shell, reads back as its words (a tag with a quote, a path
    with a space)."""
    make_file(repo / "m.bin", 10)
    make_file(repo / "my dir" / "a b.bin", 10)
    mvc_cli("add", "m.bin", "my dir/a b.bin")
    git(repo, "commit", "-q", "-m", "two")
    git(repo, "tag", "it's-v1")
    line = mvc_error("checkout", "--rev", "it's-v1", "nope.bin", words=("nope.bin is not tracked by mvc at it's-v1",))
    assert pasted(line, "mvc ls") == ["mvc", "ls", "--rev", "it's-v1"], line
    out = str(tmp_path / "out")
    line = mvc_error("get", "nope.bin", "--rev", "it's-v1", "-o", out, words=("not tracked by mvc at it's-v1",))
    assert pasted(line, "mvc ls") == ["mvc", "ls", "--rev", "it's-v1"], line
    line = mvc_error("checkout", "it's-v1", words=("is a git revision",))
    assert pasted(line, "mvc checkout") == ["mvc", "checkout", "--rev", "it's-v1"], line
    line = mvc_error("add", "my dir", words=("which mvc tracks on its own",))
    assert pasted(line, "mvc remove") == ["mvc", "remove", "my dir/a b.bin"], line


def pasted(line: str, start: str) -> list[str]:
    """The words of the command a message suggests that begins with start, as a POSIX shell reads them."""
    m = re.search(r"([\"'`])(" + re.escape(start) + r" .*?)\1(?:[ ,;)]|$)", line)
    assert m, line
    return shlex.split(m[2])


# -- mvc ls of nothing ----------------------------------------------------------------------------------------
def test_ls_of_a_revision_without_pointers_says_so_on_stderr(tok, mvc_cli):
    result = mvc_cli("ls", "--rev", "HEAD~5")
    assert result.stdout == ""
    assert result.stderr == "no path tracked by mvc at HEAD~5\n"
    result = mvc_cli("ls", "--rev", "HEAD~5", "--json")
    assert json.loads(result.stdout) == [] and result.stderr == ""
    assert "m.bin" in mvc_cli("ls", "--rev", "HEAD").stdout


def test_ls_with_nothing_tracked_says_so_on_stderr(repo, mvc_cli):
    result = mvc_cli("ls")
    assert result.stdout == "" and result.stderr == "nothing tracked yet: run 'mvc add PATH'\n"
    assert mvc_cli("ls", "--json").stdout.strip() == "[]"


def test_ls_by_url_of_a_revision_without_pointers(tok, mvc_cli, tmp_path):
    git(tok, "tag", "empty", "HEAD~5")
    result = mvc_cli("ls", "--repo", str(tok), "--rev", "empty")
    assert result.stdout == "" and result.stderr == f"no path tracked by mvc at empty of {tok}\n"


# -- counts and rates -------------------------------------------------------------------------------------------
def test_ui_build_counts_one_model_and_one_version_in_the_singular(repo, mvc_cli, tmp_path):
    make_file(repo / "churn.bin", 10)
    mvc_cli("add", "churn.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "churn")
    mvc_cli("register", "churn")
    out = mvc_cli("ui", "build", "-o", str(tmp_path / "site")).stdout
    assert "(1 model, 1 version)" in out, out


def test_verify_of_a_tiny_cache_shows_no_rate_and_counts_in_the_singular(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin", "--no-stage")  # unstaged: one pointer, the work tree's (a staged one counts twice)
    out = mvc_cli("verify", "-q").stdout
    assert re.search(r"^cache: 1 object, 10 B re-hashed in \d+\.\d\d s$", out, re.M), out
    assert "checked 1 object for 1 pointer (no remote)" in out, out
    assert "/s" not in out


def test_verify_shows_a_measured_rate_with_a_unit(repo, mvc_cli, monkeypatch):
    from mvc.api import verify

    def report(**_):
        cache = {"objects": 3, "bytes": 3 << 30, "seconds": 1.5, "corrupt": []}
        return {"cache": cache, "pointers": 2, "objects": 3, "remote": None, "problems": [], "unreadable": []}

    monkeypatch.setattr(verify, "verify", report)
    out = mvc_cli("verify", "-q").stdout
    assert out.splitlines()[:2] == [
        "cache: 3 objects, 3.0 GiB re-hashed in 1.50 s (2.0 GiB/s)",
        "checked 3 objects for 2 pointers (no remote)",
    ]


def test_a_bar_shows_no_rate_before_it_can_measure_one():
    from mvc.progress import MIN_RATE_SECONDS, UNKNOWN, TerminalBar

    out = io.StringIO()
    bar = TerminalBar("pushing to origin", 100, out)
    bar.count(0, 3)  # drawn at once, nothing moved yet
    bar.update(100)  # done, a moment later
    bar._draw(bar.start + MIN_RATE_SECONDS / 10)
    assert "/s" not in out.getvalue() and "ETA" not in out.getvalue(), out.getvalue()
    assert "100 B/100 B" in out.getvalue()
    bar._draw(bar.start + 1)
    assert "100 B/s ETA" in out.getvalue()
    out = io.StringIO()
    bar = TerminalBar("adding data", UNKNOWN, out)
    bar.update(0)
    bar._draw(bar.start + 1)
    assert out.getvalue().endswith("adding data: 0 B\x1b[K"), repr(out.getvalue())


# -- README's command table against the commands ----------------------------------------------------------------
def _help(*args: str) -> str:
    from click.testing import CliRunner

    from mvc.cli import cli

    result = CliRunner().invoke(cli, [*args, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def _has(help_text: str, option: str) -> bool:
    return re.search(rf"(^|[ ,]){re.escape(option)}\b", help_text, re.M) is not None


def test_readme_command_table_lists_every_command_with_options_that_exist():
    """Every command of ``mvc --help`` has a row, no row names a command that does not exist, and every option
    a row shows is one the command's own --help lists."""
    from mvc.cli import COMMANDS

    section = (ROOT / "README.md").read_text().split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    cells = [line.split(" | ", 1)[0] for line in section.splitlines() if line.startswith("| `mvc ")]
    spans = [span for cell in cells for span in re.findall(r"`(mvc [^`]+)`", cell)]
    visible = set(COMMANDS) - {"hook"}  # hook: what the installed git hooks run, hidden from --help
    named = {span.split()[1] for span in spans}
    assert named == visible, (sorted(named - visible), sorted(visible - named))
    listed = _help()
    for name in visible:
        assert re.search(rf"^  {re.escape(name)} ", listed, re.M), name
    for span in spans:
        words = span.split()
        if words[1] in ("remote", "ui"):  # groups: their subcommands, each one's options
            subs = words[2].rstrip(",").split("/") if len(words) > 2 else []
            group = _help(words[1])
            for sub in subs:
                assert re.search(rf"^  {re.escape(sub)} ", group, re.M), (span, sub)
            helps = [_help(words[1], sub) for sub in subs]
        else:
            helps = [_help(words[1])]
        for option in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", span):
            assert any(_has(h, option) for h in helps), (span, option)


def test_a_transfer_of_a_file_inside_a_tracked_directory_names_the_directory(repo, mvc_cli, mvc_error, tmp_path):
    make_file(repo / "data" / "sub" / "g1.bin", 100)
    mvc_cli("add", "data")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"))
    for cmd in ("push", "fetch", "pull"):
        mvc_error(cmd, "data/sub/g1.bin", words=("part of tracked directory", "data", "moves whole"))
