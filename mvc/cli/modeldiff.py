"""The text of ``mvc diff --model``: a summary line, then a line per tensor or file that changed."""

from __future__ import annotations

import math
from typing import Any

import click

from mvc.cli.common import human, safe, short

MARKS = {"added": "+", "removed": "-", "reshaped": "!", "changed": "~", "unknown": "?", "unchanged": "="}


def echo(r: dict[str, Any]) -> None:
    a, b = r["a"], r["b"]
    click.echo(f"--- {_side(a)}")
    click.echo(f"+++ {_side(b)}")
    if r["kind"] not in ("file", "dir"):
        click.echo(f"  a {a['kind']} became a {b['kind']}")
        return
    if r["kind"] == "file":
        if "tensors" in r:
            _tensors(r, "")
        else:
            click.echo("  same content" if r["same"] else f"  content differs ({_sizes(a['size'], b['size'])})")
        return
    c = r["counts"]
    click.echo(f"  files: {c['added']} added, {c['removed']} removed, {c['changed']} changed, {c['unchanged']} same")
    for f in r["files"]:
        x, y = f["a"], f["b"]
        size = human(y["size"]) if x is None else human(x["size"]) if y is None else _sizes(x["size"], y["size"])
        click.echo(f"{MARKS[f['change']]} {safe(f['path'])}  {size}")
        if "tensors" in f:
            _tensors(f, "    ")


def _side(d: dict[str, Any]) -> str:
    at = d["ref"] if d["ref"] != d["path"] else "(work tree)"
    return f"{safe(at)}  {safe(d['path'])}  {d['kind']}  {human(d['size'])}  {short(d['oid'])}"


def _sizes(a: int, b: int) -> str:
    return human(a) if a == b else f"{human(a)} -> {human(b)}"


def _tensors(r: dict[str, Any], indent: str) -> None:
    c = r["counts"]
    said = ", ".join(f"{c[k]} {k}" for k in ("added", "removed", "reshaped", "changed", "unknown") if c[k])
    click.echo(f"{indent}  tensors: {said or 'none changed'}, {c['unchanged']} unchanged")
    for t in r["tensors"]:
        change = t["change"]
        if change == "unchanged":
            continue
        line = f"{indent}{MARKS[change]} {safe(t['name'])}"
        if change == "added":
            line += f"  {_layout(t['b'])}"
        elif change == "removed":
            line += f"  {_layout(t['a'])}"
        elif change == "reshaped":
            line += f"  {_layout(t['a'])} -> {_layout(t['b'])}"
        elif change == "changed":
            if "max_abs" in t:
                top = t["max_abs"]
                line += f"  max |Δ| {top:.4g}" if isinstance(top, float) else f"  max |Δ| {top}"
            if t.get("elements_changed") is not None:
                line += f"  ({t['elements_changed']} of {math.prod(t['a']['shape'])} elements)"
        else:
            line += f"  {_layout(t['a'])}"
        click.echo(line)
    if c["unknown"]:
        click.echo(f"{indent}  ? unknown: a version is not in the cache; --fetch fetches it and compares every tensor")
    for k, (x, y) in r["metadata_changes"].items():
        click.echo(f"{indent}  metadata {safe(k)}: {safe(_show(x))} -> {safe(_show(y))}")


def _layout(t: dict[str, Any]) -> str:
    return f"{safe(t['dtype'])} [{', '.join(str(n) for n in t['shape'])}]"


def _show(v: str | None) -> str:
    return "(none)" if v is None else v
