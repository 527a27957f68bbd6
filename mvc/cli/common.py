"""Options and output helpers shared by the commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mvc import progress as progressmod


def quiet_option(f: Callable) -> Callable:
    return click.option("-q", "--quiet", is_flag=True, help="No progress output.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def rev_option(help: str = "Git revision (commit, branch, tag).") -> Callable:
    return click.option("--rev", "-r", "rev", metavar="REV", help=help)


def bars(quiet: bool) -> progressmod.Factory:
    return progressmod.terminal(quiet)


def echo_json(data: Any) -> None:
    import json  # only --json output needs it: every command loads this module

    click.echo(json.dumps(data, indent=2, sort_keys=True))


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def short(oid: str) -> str:
    return oid.split(":", 1)[-1][:12]
