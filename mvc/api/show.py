"""``mvc show``: one version's whole record (pointer, commit, registry names, ``[meta]``, ``[auto]``), for a tracked
path or a registry revision, resolved as every reader resolves them (``mvc.api.target``)."""

from __future__ import annotations

import os
from typing import Any

from mvc.errors import ConfigError, PathError
from mvc.repo.repository import Repo


def show(ref: str | os.PathLike, *, rev: str | None = None, repo: Repo | None = None) -> dict[str, Any]:
    """One version's whole record: {path, kind, oid, size, nfiles?, rev?, commit?, author?, email?, date?,
    message?, names, versions, stages, meta, auto, extra?}. ref: a tracked path (the work tree, or at rev) or
    a registry revision (``churn@v1.2.0``, ``churn#prod``, ``churn@latest``); dates and times become strings."""
    from mvc.api.target import resolve
    from mvc.format import config as cfgfmt
    from mvc.repo import models

    try:
        t = resolve(ref, repo=repo, rev=rev)
    except PathError:  # a model's name alone: the version its path holds in the work tree (or at rev)
        from mvc.repo.repository import open_repo

        r = open_repo(repo)
        path = cfgfmt.models(r.config.shared).get(os.fspath(ref))
        if path is None:
            raise
        t = resolve(r.abs(path), repo=r, rev=rev)
    p = t.pointer
    out: dict[str, Any] = {"path": t.path, "kind": p.kind, "oid": p.oid, "size": p.size}
    if p.kind == "dir":
        out["nfiles"] = p.nfiles
    if t.shown:
        out["rev"] = t.shown
    git = t.repo.git if t.repo is not None else getattr(t.up, "git", None)
    names: list[str] = []
    versions: list[str] = []
    stages: list[str] = []
    if t.commit and git is not None:
        # t.commit is the revision as given (a path --rev churn#prod): the registry's forms are the Repo's to read
        commit = t.repo.resolve(t.commit) if t.repo is not None else str(git.resolve(t.commit).id)
        c = next(iter(git.walk(commit)))
        out.update(commit=commit, author=c["author"], email=c["email"], message=c["message"].strip())
        out["date"] = models.iso_date(c["time"], c["offset"])
        try:
            names = sorted(n for n, q in models.models_at(git, commit).items() if q == t.path)
        except ConfigError:  # a damaged config at that commit: no names
            names = []
        versions, stages = models.load(git).marks(commit, names)
    elif t.repo is not None:
        names = sorted(n for n, q in cfgfmt.models(t.repo.config.shared).items() if q == t.path)
    from mvc.format.tags import semver_key

    out.update(names=names, versions=sorted(versions, key=semver_key), stages=stages)
    out["meta"] = plain(p.meta)
    out["auto"] = plain(p.auto)
    if p.extra:
        out["extra"] = plain(p.extra)
    return out


def plain(value: Any) -> Any:
    """value as JSON holds it: TOML's dates and times become ISO-8601 strings."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "isoformat") and not isinstance(value, (str, int, float)):
        return value.isoformat()
    return value
