"""show, mv; and how a record (nested tables, arrays, any string) is printed: never a Python repr, control
characters escaped."""

from __future__ import annotations

from typing import Any

import click

from mvc.cli.common import echo_json, human, json_option, rev_option, safe


@click.command()
@click.argument("ref", metavar="PATH|NAME@VERSION|NAME#STAGE")
@rev_option("Read PATH at this revision (commit, branch, tag, or NAME#STAGE, NAME@latest) instead of the work tree.")
@json_option
def show(ref: str, rev: str | None, as_json: bool) -> None:
    """Show one version's whole record: its pointer, commit, registry names, meta and auto.

    \b
    REF is a tracked path (as in the work tree, or at --rev) or a registry revision:
    NAME@vX.Y.Z, NAME#STAGE, NAME@latest.

    \b
    Example:
      mvc show models/churn.pt
      mvc show churn#prod
      mvc show churn@v1.2.0 --json | jq .meta.metrics
    """
    from mvc.api.show import show as show_record

    d = show_record(ref, rev=rev)
    if as_json:
        echo_json(d)
        return
    rows = [
        ("path", d["path"]),
        ("kind", d["kind"]),
        ("oid", d["oid"]),
        ("size", f"{human(d['size'])} ({d['size']} bytes)"),
    ]
    if "nfiles" in d:
        rows.append(("files", str(d["nfiles"])))
    if "rev" in d:
        rows.append(("rev", d["rev"]))
    if "commit" in d:
        rows += [("commit", d["commit"]), ("author", f"{d['author']} <{d['email']}>"), ("date", d["date"])]
        rows.append(("message", d["message"].splitlines()[0] if d["message"] else ""))
    if d["names"]:
        rows.append(("model", ", ".join(d["names"])))
    if d["versions"]:
        rows.append(("versions", ", ".join(d["versions"])))
    if d["stages"]:
        rows.append(("stages", ", ".join(f"#{s}" for s in d["stages"])))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k.ljust(width)}  {safe(v)}")
    for table in ("meta", "auto", "extra"):
        if d.get(table):
            click.echo(f"{table}:")
            for line in lines(d[table], 1):
                click.echo(line)


@click.command()
@click.argument("old")
@click.argument("new")
def mv(old: str, new: str) -> None:
    """Move a tracked file or directory with its pointer, keeping its record, name and history.

    \b
    Moves the data (a rename, never a copy), 'git mv's the pointer, moves the .gitignore
    entry and points the model names mapping OLD at NEW in .mvc/config.toml; all staged.
    'mvc log NAME' follows the move once it is committed. NEW must not exist; an existing
    directory mvc does not track (or NEW ending in /) means OLD's name inside it.

    \b
    Example:
      mvc mv churn.pt models/churn.pt
      git commit -m "move the churn model"
    """
    from mvc.api.move import mv as move

    r = move(old, new)
    what = "" if r["data"] else " (pointer only: the workspace has no data there)"
    click.echo(f"moved {safe(r['old'])} -> {safe(r['new'])}{what}")
    for n in r["names"]:
        click.echo(f"model {n} now names {safe(r['new'])}")


# -- printing a record --------------------------------------------------------------------------


def scalar(value: Any) -> str:
    """One value on one line: strings as they are (escaped), booleans as TOML writes them, arrays comma-separated,
    tables as {k = v, ...}."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{safe(k)} = {scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return ", ".join(scalar(v) if not isinstance(v, list) else f"[{scalar(v)}]" for v in value)
    if hasattr(value, "isoformat") and not isinstance(value, (int, float)):
        return value.isoformat()
    return safe(str(value))


def lines(table: dict[str, Any], depth: int) -> list[str]:
    """A table as indented ``key: value`` lines, nested tables under their key."""
    pad = "  " * depth
    out = []
    for k, v in table.items():
        if isinstance(v, dict) and v:
            out.append(f"{pad}{safe(k)}:")
            out += lines(v, depth + 1)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            out.append(f"{pad}{safe(k)}:")
            for x in v:
                sub = lines(x, depth + 2) if x else [f"{pad}    (empty)"]
                out.append(f"{pad}  - {sub[0].lstrip()}")
                out += sub[1:]
        else:
            shown = scalar(v) if v != {} and v != [] else "(empty)"
            out.append(f"{pad}{safe(k)}: {shown}")
    return out


def flat(table: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A table as (dotted key, value) pairs, for a one-line listing (``mvc log``)."""
    out: list[tuple[str, str]] = []
    for k, v in table.items():
        if isinstance(v, dict) and v:
            out += flat(v, f"{prefix}{safe(k)}.")
        else:
            out.append((prefix + safe(k), f"[{scalar(v)}]" if isinstance(v, list) else scalar(v)))
    return out
