"""metrics: a model's versions side by side; the cells both it and ``registry NAME`` print."""

from __future__ import annotations

import math
from typing import Any

import click

from mvc.cli.common import columns, echo_json, json_option


def keys_option(help: str) -> Any:
    return click.option("--keys", "-k", metavar="K1,K2", help=help)


def split_keys(text: str | None) -> list[str] | None:
    return None if text is None else [k.strip() for k in text.split(",") if k.strip()]


def not_shown(name: str, missing: list[str], params: list[str] | None = None) -> None:
    """A notice on stderr naming the --keys no version of model name records (params: those that are its params,
    shown with --params), so that a typo is not a silently missing column."""
    said = [f"no version of {name} records {', '.join(map(repr, missing))}"] if missing else []
    if params:
        said.append(f"{', '.join(map(repr, params))} {'is a param' if len(params) == 1 else 'are params'} (--params)")
    if said:
        click.echo(f"mvc: not shown: {'; '.join(said)}", err=True)


def cell(value: Any) -> str:
    """A value as a table shows it: numbers compact (4 significant digits), missing ones blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = f"{value:.4g}"
        if "e" in text and 1e-3 <= abs(value) < 1e12:  # 12345.6 reads better as 12346 than 1.235e+04
            text = f"{value:.0f}"
        return text
    if isinstance(value, list):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return str(value)


def _union(rows: list[dict[str, Any]], table: str) -> list[str]:
    """Every key of table in rows, newest version's first: the order the columns take."""
    return list(dict.fromkeys(k for r in rows for k in r[table]))


@click.command()
@click.argument("name")
@keys_option("Only these metrics (and with --params, params), in this order.")
@click.option("--params", "-p", "with_params", is_flag=True, help="Show params too, as params.KEY columns.")
@json_option
def metrics(name: str, keys: str | None, with_params: bool, as_json: bool) -> None:
    """Compare the versions of model NAME: one row per registered version, newest first,
    with its stages and each metric its pointer records ([meta] metrics, as mvc.run writes).

    \b
    The work tree's model comes first, as (work tree), when it is not one of the versions
    (a run not registered yet). A missing value is blank.

    \b
    Example:
      mvc metrics churn
      mvc metrics churn --keys f1,auc --params
      mvc metrics churn --json | jq '.[] | {version, f1: .metrics.f1}'
    """
    from mvc.api.metrics import metrics as table

    asked = split_keys(keys) or []
    rows = table(name, keys=split_keys(keys))
    recorded = {k for r in rows for t in ("metrics", "params") for k in r[t]}
    params = (
        []
        if with_params or as_json
        else [k for k in asked if not any(k in r["metrics"] for r in rows) and k in recorded]
    )
    if rows:
        not_shown(name, [k for k in asked if k not in recorded], params)
    if as_json:
        echo_json(rows)  # (NaN and the infinities as null: echo_json)
        return
    if not rows:
        click.echo(f"{name} has no versions")
        return
    mkeys = split_keys(keys) or _union(rows, "metrics")
    mkeys = [k for k in mkeys if any(k in r["metrics"] for r in rows)]
    pkeys: list[str] = []
    if with_params:
        pkeys = [k for k in split_keys(keys) or _union(rows, "params") if any(k in r["params"] for r in rows)]
    out = [["version", "commit", "date", "stages", *mkeys, *[f"params.{k}" for k in pkeys]]]
    for r in rows:
        if r.get("worktree"):
            head = ["(work tree)", "", "", ""]
        else:
            stages = (", ".join(f"#{s}" for s in r["stages"]) or "-") if r["active"] else "deregistered"
            head = [r["version"], r["commit"][:7], (r["date"] or "")[:10], stages]
        out.append([*head, *[cell(r["metrics"].get(k)) for k in mkeys], *[cell(r["params"].get(k)) for k in pkeys]])
    columns(out)
