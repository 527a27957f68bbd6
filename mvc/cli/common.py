"""Options and output helpers shared by the commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from mvc import progress as progressmod

# ctx.meta key: the directory the command was typed in, when -C changed it
START_DIR = "mvc.start_dir"


def quiet_option(f: Callable) -> Callable:
    return click.option("-q", "--quiet", is_flag=True, help="No progress output.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def rev_option(help: str = "Git revision (commit, branch, tag).") -> Callable:
    return click.option("--rev", "-r", "rev", metavar="REV", help=help)


def repo_option(f: Callable) -> Callable:
    return click.option(
        "--repo",
        metavar="URL",
        help="Read the git repository at URL (a path, file://, ssh or https) without a clone.",
    )(f)


def bars(quiet: bool) -> progressmod.Factory:
    return progressmod.terminal(quiet)


def echo_json(data: Any) -> None:
    """data as JSON, strict: TOML's dates and times as ISO-8601 strings, NaN and the infinities (a diverged run's
    metrics) as null, which every parser reads (jq refuses Python's NaN)."""
    import json  # only --json output needs it: every command loads this module

    click.echo(json.dumps(_strict(data), indent=2, sort_keys=True, allow_nan=False))


def _strict(value: Any) -> Any:
    import datetime as dt
    import math

    if isinstance(value, str):
        return _escaped(value) if not value.isascii() else value
    if isinstance(value, dict):
        return {_strict(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def _escaped(text: str) -> str:
    """A name holding bytes that are not UTF-8 (kept as lone surrogates, which strict JSON parsers refuse and
    jq turns into U+FFFD) with each such byte written ``\\xNN``, as the text output shows it: mvc refuses a
    backslash in the names it tracks, so the escape cannot be mistaken for a name's own characters."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


def safe(text: str) -> str:
    """text with control and other unprintable characters escaped (\\n, \\x1b, \\u202e): one line, no terminal
    escapes (a collaborator's commit message, metadata key or value, metric name)."""
    if text.isprintable():
        return text
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = []
    for c in text:
        if c.isprintable():
            out.append(c)
        elif c in named:
            out.append(named[c])
        else:
            n = ord(c)
            n = n - 0xDC00 if 0xDC80 <= n <= 0xDCFF else n  # a byte that is not UTF-8: that byte
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
    return "".join(out)


def columns(table: list[list[str]]) -> None:
    """Rows of cells in aligned columns, every cell escaped (:func:`safe`)."""
    table = [[safe(c) for c in row] for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def human(n: int) -> str:
    return progressmod.human(n)


def short(oid: str) -> str:
    return oid.split(":", 1)[-1][:12]


def user_path(path: str) -> str:
    """A path naming the user's own file outside the tracked set (``mvc get -o OUT``): relative to the
    directory the command was typed in, also under ``-C`` (tracked paths are relative to ``-C PATH``)."""
    start = start_dir()
    return os.path.join(start, path) if start and not os.path.isabs(path) else path


def start_dir() -> str | None:
    """The directory the command was typed in when ``-C`` moved the process, else None."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(START_DIR) if ctx is not None else None


def unicode_only(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback for text mvc writes where others read it as UTF-8 (a tag's message, a remote's URL, a
    config value): an argument in another encoding (its bytes kept as surrogates) is refused before anything
    is written, in one line."""
    from mvc.errors import ConfigError

    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            name = param.opts[0] if param.param_type_name == "option" else (param.name or "value").upper()
            raise ConfigError(f"{name} is not valid Unicode (bytes of another encoding?): write it in UTF-8") from None
    return value


def user_url(url: str) -> str:
    """A remote's URL: a relative directory (no ``://``) is one of the user's paths (see user_path). It is
    passed on relative to the current directory, so that the API still stores it relative to the root."""
    expanded = os.path.expanduser(url.strip())
    if "://" in url or not expanded or os.path.isabs(expanded):
        return url
    there = user_path(expanded)
    return url if there == expanded else os.path.relpath(there)


def shown_path(path: str) -> str:
    """A path of the work tree for a line of output: in the shell's $'...' quoting when something in it does not
    print (a byte that is not UTF-8, a newline, a terminal escape): it cannot forge a line, and pasted names it."""
    from mvc.repo.repository import quoted

    return quoted(path)  # (a byte that is not UTF-8 as $'…\xff', which pasted names that file)


def echo_checkout(rows: list[dict[str, Any]]) -> None:
    """What checkout (and pull) did per path; with --rev, which pointers it staged and how to undo that."""
    from mvc.repo.repository import in_quotes, shell_quoted

    for r in rows:
        for k in r["kept"]:
            # a removed file's name may hold bytes that are not UTF-8, or a newline: shown escaped
            if k["oid"] is None:  # a symbolic link replaced: what it pointed at is untouched
                click.echo(f"replaced the link {shown_path(k['path'])} (to {shown_path(k['link'])})")
            else:
                click.echo(f"kept the replaced content of {shown_path(k['path'])} in the cache as {k['oid']}")
        if r["action"] != "unchanged":
            click.echo(f"restored {shown_path(r['path'])} ({short(r['oid'])})")
        if r.get("not_ignored"):  # git sees the weights: 'git add -A' would commit them
            click.echo(f"warning: {shown_path(r['path'])} is not ignored by git: {r['not_ignored']}", err=True)
    for r in rows:
        if r.get("staged"):
            if r["head"] == "same":  # back to what HEAD has: nothing to undo
                click.echo(f"staged {r['staged']} as of {r['rev']} (as committed in HEAD)")
                continue
            if r["head"] == "differs":
                undo = in_quotes(f"mvc checkout --rev HEAD {shell_quoted(r['path'])}") + " undoes it"
            else:  # HEAD has no such pointer: nothing to go back to
                undo = in_quotes(f"git rm --cached {shell_quoted(r['staged'])}") + " unstages it"
            click.echo(f"staged {r['staged']} as of {r['rev']}: {undo}")
