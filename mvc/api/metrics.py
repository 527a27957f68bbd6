"""Versions side by side: each registered version of a model, its stages, and the metrics and params its
pointer records (``[meta] metrics`` and ``params``, as ``mvc.run`` writes them), read at its commit."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mvc.api import registry as regapi
from mvc.errors import MvcError, RegistryError
from mvc.repo.models import load, model_at

if TYPE_CHECKING:
    from mvc import git as gitmod
    from mvc.repo.repository import Repo

SHOWN = 3  # metrics `mvc registry NAME` shows without --keys: the first ones of the latest version


def metrics(
    name: str, *, keys: list[str] | None = None, worktree: bool = True, repo: Repo | str | None = None
) -> list[dict[str, Any]]:
    """Every registered version of model name, newest first (by semver), as
    ``{version, commit, date, stages, active, metrics, params}``: its stages now (``active`` False for a
    deregistered one) and the metrics and params of its pointer at its commit (``error`` instead when that
    pointer cannot be read). With worktree, the work tree's pointer of the model comes first, as
    ``version: None, worktree: True``, when it records a model or meta no listed version has. keys: only
    these metrics and params (refused when no version records any of them). A name neither the registry nor the
    work tree knows is refused."""
    this = _local(repo) if not isinstance(repo, str) else None  # its map reads versions from before an import
    local = this if worktree else None
    rows: list[dict[str, Any]] = []
    try:
        git, m = _describe(name, repo)
    except RegistryError:
        if local is None or name not in _local_models(local):
            raise
        m = None
    if m is not None:
        for v in m["versions"]:
            row = {
                "version": v["version"],
                "commit": v["commit"],
                "date": v.get("date"),
                "stages": v["stages"],
                "active": v["active"],
            }
            rows.append(_with_meta(row, _read(git, name, v["commit"], this)))
    if local is not None:
        here = _worktree_pointer(local, name)
        if here is not None and ("error" in here or all(r.get("_seen") != _seen(here) for r in rows)):
            rows.insert(
                0,
                _with_meta(
                    {"version": None, "commit": None, "date": None, "stages": [], "active": True, "worktree": True},
                    here,
                ),
            )
    if keys and rows:
        _refuse_unknown(name, keys, _keys(rows, "metrics"), _keys(rows, "params"))
    for r in rows:
        r.pop("_seen", None)
        if keys is not None:
            r["metrics"] = {k: r["metrics"][k] for k in keys if k in r["metrics"]}
            r["params"] = {k: r["params"][k] for k in keys if k in r["params"]}
    return rows


def model(name: str, *, keys: list[str] | None = None, repo: Repo | str | None = None) -> dict[str, Any]:
    """``mvc registry NAME``: the model as ``registry.model`` describes it, each version with ``metrics``:
    the values of ``metric_keys`` (keys, or the first SHOWN metrics of the latest version, else of the newest one
    that records some; of keys, those some version records: none is refused) its pointer records,
    and its ``oid`` and ``size`` read from that pointer where its tag does not record them (GTO's)."""
    git, m = _describe(name, repo)
    this = _local(repo) if not isinstance(repo, str) else None  # its map reads versions from before an import
    found = {v["commit"]: _read(git, name, v["commit"], this) for v in m["versions"]}
    if keys is None:  # the latest version's, else (its pointer unreadable, or with no metrics) the newest that has some
        latest = m["latest"]["commit"] if m["latest"] else None
        order = [latest, *(v["commit"] for v in m["versions"])] if latest else [v["commit"] for v in m["versions"]]
        tables = ((found.get(c) or {}).get("meta", {}).get("metrics") for c in order)
        table = next((t for t in tables if isinstance(t, dict) and t), None)
        keys = list(table)[:SHOWN] if table else []
    else:  # a key no version records is no column (the CLI says so); none recorded is refused
        known = _keys([{"metrics": _table(found[v["commit"]], "metrics")} for v in m["versions"]], "metrics")
        if keys and m["versions"]:
            _refuse_unknown(name, keys, known, [])
        keys = [k for k in keys if k in known]
    m["metric_keys"] = keys
    for v in m["versions"]:
        values = _table(found[v["commit"]], "metrics")
        v["metrics"] = {k: values[k] for k in keys if k in values}
        if "oid" not in v and "oid" in found[v["commit"]]:  # a tag without mvc's fields (GTO's): the pointer's
            v["oid"], v["size"] = found[v["commit"]]["oid"], found[v["commit"]]["size"]
    return m


def _keys(rows: list[dict[str, Any]], table: str) -> list[str]:
    """Every key of table (``metrics``, ``params``) in rows, in order of first appearance."""
    return list(dict.fromkeys(k for r in rows for k in r[table]))


def _refuse_unknown(name: str, keys: list[str], metric_keys: list[str], param_keys: list[str]) -> None:
    """Refuse keys when no version records any of them: a typo would otherwise show an empty table."""
    if any(k in metric_keys or k in param_keys for k in keys):
        return
    recorded = [f"metrics {', '.join(metric_keys)}"] if metric_keys else []
    recorded += [f"params {', '.join(param_keys)}"] if param_keys else []
    fix = f"it records {'; '.join(recorded)}: pick --keys from those" if recorded else "none records any metrics"
    raise RegistryError(f"no version of {name} records {', '.join(map(repr, keys))}: {fix}")


def _describe(name: str, repo: Repo | str | None) -> tuple[gitmod.Git, dict[str, Any]]:
    """(the git the registry is read from, the model as ``registry.model`` describes it): tags read once."""
    git = regapi._git(repo)
    m = load(git).get(name)
    if m is None:
        regapi.model(name, repo=repo)  # the error naming the models the registry knows
        raise RegistryError(f"no model named {name!r} in the registry: see the models with 'mvc registry'")
    return git, regapi.described(git, [m], repo)[0]


def _read(git: gitmod.Git, name: str, commit: str, repo: Repo | None) -> dict[str, Any]:
    """{oid, size, meta} of the model's pointer at commit, or {error} (one git read per version). repo: this
    repository, whose map of an import reads a version from before it (None: mvc's pointers alone)."""
    try:
        info = model_at(git, name, commit, repo)
    except MvcError as e:
        return {"error": str(e)}
    return {"oid": info["oid"], "size": info["size"], "meta": info["meta"]}


def _table(found: dict[str, Any], table: str) -> dict[str, Any]:
    value = found.get("meta", {}).get(table)
    return dict(value) if isinstance(value, dict) else {}


def _with_meta(row: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    row["metrics"] = _table(found, "metrics")
    row["params"] = _table(found, "params")
    if "error" in found:
        row["error"] = found["error"]
    else:
        row["_seen"] = _seen(found)
    return row


def _seen(found: dict[str, Any]) -> tuple[str, str]:
    """What tells two pointers' records apart: repr, since a NaN metric equals no other, not even its copy."""
    return found["oid"], repr(found["meta"])


def _local(repo: Repo | None) -> Repo | None:
    """This repository, when mvc is set up in it (the metrics of a clone without it come from tags alone)."""
    from mvc.repo.repository import open_repo

    try:
        return open_repo(repo)
    except MvcError:
        return None


def _local_models(repo: Repo) -> dict[str, str]:
    from mvc.format import config as cfgfmt

    return cfgfmt.models(repo.config.shared)


def _worktree_pointer(repo: Repo, name: str) -> dict[str, Any] | None:
    from mvc.repo.repository import Repo as RepoClass
    from mvc.repo.selection import load_pointer

    path = _local_models(repo).get(name)
    if path is None or not os.path.isfile(repo.abs(RepoClass.pointer_of(path))):
        return None
    try:
        p = load_pointer(repo, RepoClass.pointer_of(path))
    except MvcError as e:
        return {"error": str(e)}
    return {"oid": p.oid, "meta": p.meta}
