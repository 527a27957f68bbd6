"""Every command has --help (and -h) with an example, and a section in docs/cli.md naming its options.

These tests fail when a new command, sub-command or option is added without help or docs.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mvc.cli import COMMANDS, cli

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def walk() -> list[tuple[str, click.Command]]:
    """(full name, command) for every command and sub-command, e.g. ('hook pre-commit', …)."""
    ctx = click.Context(cli, info_name="mvc")
    out = []

    def visit(prefix: str, cmd: click.Command) -> None:
        out.append((prefix, cmd))
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                visit(f"{prefix} {sub}", cmd.get_command(ctx, sub))

    for name in sorted(COMMANDS):
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, f"COMMANDS[{name!r}] = {COMMANDS[name]!r} does not load"
        visit(name, cmd)
    return out


ALL = walk()


def help_of(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), prog_name="mvc", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def sections() -> dict[str, str]:
    """{'add': text of '## mvc add' up to the next heading of that level or higher, …}."""
    text = DOCS.read_text()
    found: dict[str, str] = {}
    heads = list(re.finditer(r"^(#{2,4}) mvc ([a-z][a-z0-9 -]*?)\s*$", text, re.M))
    for i, m in enumerate(heads):
        level = len(m.group(1))
        end = next((h.start() for h in heads[i + 1 :] if len(h.group(1)) <= level), len(text))
        found[m.group(2)] = text[m.end() : end]
    return found


@pytest.mark.parametrize("name, cmd", ALL, ids=[n for n, _ in ALL])
def test_help_is_there_and_h_works(name, cmd):
    assert (cmd.help or "").strip(), f"mvc {name} has no docstring (its --help)"
    long = help_of(*name.split(), "--help")
    assert long.startswith(f"Usage: mvc {name}"), long
    first = cmd.help.strip().splitlines()[0].strip()
    assert first[:40] in long
    assert help_of(*name.split(), "-h") == long


@pytest.mark.parametrize("name, cmd", ALL, ids=[n for n, _ in ALL])
def test_help_has_an_example(name, cmd):
    if isinstance(cmd, click.Group) and not cmd.help:
        pytest.skip("a group without its own text")
    assert "Example" in cmd.help, f"mvc {name}: add an 'Example:' block to the docstring"


def test_top_level_help_lists_every_command():
    out = help_of("--help")
    for name, cmd in ALL:
        if " " not in name and not cmd.hidden:  # hidden: internal commands such as 'mvc hook'
            assert re.search(rf"^  {re.escape(name)}\s", out, re.M), name
    assert help_of("-h") == out


@pytest.mark.parametrize("name, cmd", ALL, ids=[n for n, _ in ALL])
def test_documented_in_cli_md(name, cmd):
    docs = sections()
    assert name in docs, f"docs/cli.md has no section '## mvc {name}' (sub-commands: '### mvc {name}')"
    body = docs[name]
    assert "```" in body, f"docs/cli.md: the section of mvc {name} needs a usage/example block"
    for param in cmd.params:
        if isinstance(param, click.Option) and "--help" not in param.opts:
            flag = max(param.opts, key=len)
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", body), (
                f"docs/cli.md: the section of mvc {name} does not mention its option {flag}"
            )


def test_cli_md_documents_no_command_that_does_not_exist():
    names = {n for n, _ in ALL}
    stale = [n for n in sections() if n not in names]
    assert not stale, f"docs/cli.md documents commands mvc does not have: {stale}"
