"""The registry's verbs: register, assign, deprecate, and the registry table.

Versions and stages are annotated git tags in GTO's grammar; tags are only ever created, never moved
or deleted. The state they add up to is ``mvc.repo.models``; lineage and diff are ``mvc.api.lineage``.
"""

from __future__ import annotations

import functools
import os
import time as timemod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mvc import git as gitmod
from mvc.errors import MvcError, RegistryError
from mvc.format import tags as tagfmt
from mvc.format.config import CONFIG_PATH, LOCK
from mvc.format.pointer import check_gate, in_quotes, shell_quoted
from mvc.format.tags import ASSIGN, DEPRECATE, DEREGISTER, REGISTER, UNASSIGN
from mvc.repo.models import Model, Version, find_model, find_version, iso_date, load, locate, model_at
from mvc.storage.lock import locked

if TYPE_CHECKING:
    from mvc.repo.repository import Repo

BUMPS = ("major", "minor", "patch")


# -- helpers ----------------------------------------------------------------------------------
def _serialised(verb: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run a verb that writes tags under the repository's lock: two at once in one repository (a hook and
    a terminal) see each other's tags, so exactly one of them wins and the other fails cleanly."""

    @functools.wraps(verb)
    def run(*args: Any, repo: Repo | None = None, **kw: Any) -> dict[str, Any]:
        repo = _repo(repo)
        with locked(os.path.join(repo.mvc_dir, LOCK), "the registry tags"):
            return verb(*args, repo=repo, **kw)

    return run


def _repo(repo: Repo | None) -> Repo:
    from mvc.repo.repository import open_repo  # here: reading the registry needs git alone

    return open_repo(repo)


def _git(repo: Repo | str | None) -> gitmod.Git:
    """Reading needs only git: works in any git repository, set up for mvc or not (e.g. GTO's), and in
    one read by URL without a clone (repo a git URL: its registry tags are fetched, nothing else)."""
    if isinstance(repo, (str, os.PathLike)):
        from mvc.api.target import is_url, registry_git

        if is_url(repo):
            return registry_git(os.fspath(repo))
        return gitmod.Git(gitmod.find_worktree(os.path.expanduser(os.fspath(repo))))  # a path in a work tree
    if repo is not None:
        return _repo(repo).git
    try:
        return gitmod.Git(gitmod.find_worktree(os.getcwd()))
    except MvcError:
        here = gitmod.Git(os.getcwd())  # a bare repository holds the tags too
        if here.run("rev-parse", "--is-bare-repository", check=False).strip() == b"true":
            return here
        raise


def _maybe_model_at(repo: Repo, name: str, commit: str) -> dict[str, Any] | None:
    try:
        return model_at(repo.git, name, commit, repo)
    except MvcError:
        return None


def _fields(info: dict[str, Any] | None) -> dict[str, Any]:
    return {"path": info["path"], "oid": info["oid"], "size": info["size"]} if info else {}


def _create(
    git: gitmod.Git,
    name: str,
    make: Callable[[int | None], str],
    commit: str,
    message: str,
    info: dict[str, Any] | None,
    *,
    simple: bool = False,
    fallback: bool = True,
    after_commits: bool = False,
) -> str:
    """Create one tag of the model: make(None) is its name without a counter (tried first when simple),
    make(N) with the model's next counter. Its tagger time is after every other tag of the model, so the
    registry order never rests on a tie (FORMAT.md). Another writer taking the name means: retry."""
    text = tagfmt.format_message(message, _fields(info))
    for attempt in range(6):
        m = load(git).models.get(name)
        when = max(int(timemod.time()), (m.last_time() + 1) if m is not None else 0)
        if after_commits and m is not None:  # a deprecation must follow the versions' commits too
            when = max(when, m.last_commit_time() + 1)
        tag = make(None if simple and attempt == 0 else (m.counter if m is not None else 0) + 1)
        if git.create_tag(tag, commit, text, time=when):
            return tag
        if simple and attempt == 0 and not fallback:
            if git.run("cat-file", "-t", f"refs/tags/{tag}", check=False).strip() != b"tag":
                raise RegistryError(
                    f"tag {tag} exists as a lightweight tag, which the registry does not read: delete it ('git tag "
                    f"-d {tag}') or choose another version"
                )
            raise RegistryError(
                f"tag {tag} already exists: tags are never moved; run 'git fetch --tags' "
                "and 'mvc registry' to see the current state"
            )
    raise RegistryError(f"could not create {tag}: other writers keep taking the counter; retry")


def _result(
    name: str, tag: str, version: str | None, commit: str, info: dict[str, Any] | None, **extra: Any
) -> dict[str, Any]:
    out = {"name": name, "tag": tag, "version": version, "commit": commit}
    if info:
        out.update(path=info["path"], oid=info["oid"], size=info["size"])
    out.update(extra)
    return out


# -- writing ----------------------------------------------------------------------------------
@_serialised
def register(
    name: str,
    version: str | None = None,
    *,
    rev: str | None = None,
    bump: str | None = None,
    message: str | None = None,
    repo: Repo | None = None,
) -> dict[str, Any]:
    """Register the model as it is at rev (default HEAD) as a new version: tag ``NAME@vX.Y.Z``.

    version: semver (``v`` optional); default: the greatest version ever registered, bumped (bump: "major",
    "minor" or "patch", the default), or v0.0.1 for the first one. Returns {name, tag, version, commit, path, oid, size, same_as}: same_as names the latest version before it
    when that holds the same weights (the same oid: a retrained model not added again?), else None.
    """
    repo = _repo(repo)
    tagfmt.check_name(name)
    if version is not None and bump is not None:
        raise RegistryError("pass either a VERSION or a --bump option, not both")
    if bump is not None and bump not in BUMPS:
        raise RegistryError(f"unknown bump {bump!r}: use major, minor or patch")
    commit = repo.resolve(rev if rev is not None else "HEAD")
    info = model_at(repo.git, name, commit, repo)
    m = load(repo.git).models.get(name)
    # versions ever registered or deregistered (unregistered commits GTO assigned are named by commit id)
    known = [v for v in m.versions.values() if v.name.startswith("v")] if m else []
    here = [v for v in known if v.commit == commit]
    if here:
        live = [v.name for v in here if v.active]
        if live:
            raise RegistryError(
                f"{name} is already registered at commit {commit[:7]} as {live[0]}: "
                f"use '{name}@{live[0]}', or register another commit with --rev"
            )
        raise RegistryError(
            f"commit {commit[:7]} holds {name} {here[0].name}, which was deregistered: "
            "commit the model again and register that commit"
        )
    if version is not None:
        version = tagfmt.check_version(version)
        if m is not None and version in m.versions:
            raise RegistryError(
                f"{name}@{version} exists already: choose another version (the latest is {_latest_name(m)})"
            )
    else:
        top = max((v.name for v in known), key=tagfmt.semver_key, default=None)
        version = tagfmt.bump(top or "v0.0.0", bump or "patch")
        taken = {t["name"] for t in repo.git.tags()}  # a lightweight tag is no version, but holds its name
        while f"{name}@{version}" in taken:
            version = tagfmt.bump(version, bump or "patch")
    text = message or f"Registering artifact {name} version {version}"
    tag = _create(
        repo.git,
        name,
        lambda n: tagfmt.format(tagfmt.TagName(name, REGISTER, version=version, counter=n)),
        commit,
        text,
        info,
        simple=True,
        fallback=False,
    )
    return _result(name, tag, version, commit, info, same_as=_same_weights(repo, name, m, info["oid"]))


def _same_weights(repo: Repo, name: str, m: Model | None, oid: str) -> str | None:
    """The latest live version of m when its pointer holds oid too, else None."""
    latest = m.latest() if m is not None else None
    if latest is None:
        return None
    try:
        same = model_at(repo.git, name, latest.commit, repo)["oid"] == oid
    except MvcError:  # its pointer is gone or unreadable there: nothing to compare
        return None
    return latest.name if same else None


def _latest_name(m: Model) -> str:
    v = m.latest()
    return v.name if v else "none"


@_serialised
def assign(
    name: str,
    stage: str,
    *,
    version: str | None = None,
    rev: str | None = None,
    message: str | None = None,
    force: bool = False,
    repo: Repo | None = None,
) -> dict[str, Any]:
    """Assign a stage to a version (or to the commit rev, registering it first): tag ``NAME#STAGE#N``.

    Refuses a promotion that breaks the ``[stages]`` rules of .mvc/config.toml unless force.
    Returns {name, tag, stage, version, commit, path, oid, size, registered: the register() result or None}.
    """
    repo = _repo(repo)
    tagfmt.check_name(name)
    tagfmt.check_name(stage, "stage name")
    if version is not None and rev is not None:
        raise RegistryError("pass either --version or --rev, not both")
    m = load(repo.git).get(name)
    v: Version | None = None
    if version is not None:
        if m is None:
            raise RegistryError(f"{name} has no versions yet: register one with 'mvc register {name}'")
        v = find_version(m, version)
        if not v.registered:
            raise RegistryError(
                f"{version} is not a registered version of {name}: register it with "
                f"'mvc register {name} --rev {v.commit[:7]}'"
            )
        if not v.active:
            raise RegistryError(f"{name}@{v.name} was deregistered: assign another version")
        commit = v.commit
    else:
        commit = repo.resolve(rev if rev is not None else "HEAD")
        here = [x for x in m.versions.values() if x.commit == commit and x.registered] if m else []
        live = [x for x in here if x.active]
        if live:
            v = max(live, key=lambda x: tagfmt.semver_key(x.name))
        elif here:
            raise RegistryError(
                f"{name}@{here[0].name} at commit {commit[:7]} was deregistered: assign another version"
            )
    info = model_at(repo.git, name, commit, repo)
    label = v.name if v is not None else f"commit {commit[:7]}"
    if v is not None and m is not None:
        current = m.stage(stage)
        if current is not None and current.version == v.name:
            raise RegistryError(f"{name}#{stage} already points to {v.name}: nothing to do")
    if not force:
        _check_rules(repo, name, m, v.name if v is not None else None, label, stage, info["meta"])
    registered = None
    if v is None:
        registered = register(name, rev=commit, repo=repo)
        label = registered["version"]
    text = message or f"Assigning stage {stage} to artifact {name} version {label}"
    tag = _create(
        repo.git,
        name,
        lambda n: tagfmt.format(tagfmt.TagName(name, ASSIGN, stage=stage, counter=n)),
        commit,
        text,
        info,
    )
    return _result(name, tag, label, commit, info, stage=stage, registered=registered)


def _check_rules(
    repo: Repo, name: str, m: Model | None, version: str | None, label: str, stage: str, meta: dict[str, Any]
) -> None:
    from mvc.format import config as cfgfmt

    order, gates = cfgfmt.stages(repo.config.data, f"{CONFIG_PATH}")
    if order:
        if stage not in order:
            raise RegistryError(
                f"stage {stage!r} is not in the [stages] order ({', '.join(order)}) of "
                f"{CONFIG_PATH}: use one of them, or pass --force"
            )
        i = order.index(stage)
        if i > 0:
            prev = order[i - 1]
            if version is None or m is None or not m.holds(version, prev):
                raise RegistryError(
                    f"{name} {label} is not in stage {prev}, which comes before {stage} in the "
                    f"[stages] order: assign {prev} first, or pass --force"
                )
    for rule in gates.get(stage, []):
        why = check_gate(rule, meta, f"[stages.{stage}] require")
        if why is not None:
            raise RegistryError(
                f"{name} {label} fails the gate of stage {stage} ({rule!r}): {why}; pass --force to assign anyway"
            )


@_serialised
def deprecate(
    name: str,
    version: str | None = None,
    stage: str | None = None,
    *,
    message: str | None = None,
    repo: Repo | None = None,
) -> dict[str, Any]:
    """Cancel: with version and stage, the stage's assignment to that version (``NAME#STAGE!#N``);
    with version, the version (``NAME@vX.Y.Z!``); with neither, the whole model (``NAME@deprecated``).

    Returns {name, tag, version, stage, commit, action}.
    """
    tagfmt.check_names(name, stage)  # (as register and assign: a fix then names a command that can work)
    repo = _repo(repo)
    if stage is not None and version is None:
        raise RegistryError("name the version whose stage to cancel: mvc deprecate NAME VERSION STAGE")
    m = find_model(load(repo.git), name)
    if stage is not None and version is not None:
        v = find_version(m, version)
        if not v.registered:
            raise RegistryError(
                f"commit {v.commit[:7]} is not a registered version of {name}, and GTO ignores "
                f"cancelling its stages: register it first ('mvc register {name} --rev "
                f"{v.commit[:10]}'), then cancel"
            )
        if not m.holds(v.name, stage):
            raise RegistryError(f"{name} {v.name} is not in stage {stage}: nothing to cancel (see 'mvc registry')")
        info = _maybe_model_at(repo, name, v.commit)
        text = message or f"Unassigning stage '{stage}' to artifact '{name}' version '{v.name}'"
        tag = _create(
            repo.git,
            name,
            lambda n: tagfmt.format(tagfmt.TagName(name, UNASSIGN, stage=stage, counter=n)),
            v.commit,
            text,
            info,
        )
        return _result(name, tag, v.name, v.commit, info, stage=stage, action="unassign")
    if version is not None:
        v = find_version(m, version)
        if not v.registered:
            raise RegistryError(f"{v.name} is not a registered version of {name}: nothing to deregister")
        if not v.active:
            raise RegistryError(f"{name}@{v.name} was deregistered already")
        info = _maybe_model_at(repo, name, v.commit)
        text = message or f"Deregistering artifact {name} version {v.name}"
        tag = _create(
            repo.git,
            name,
            lambda n: tagfmt.format(tagfmt.TagName(name, DEREGISTER, version=v.name, counter=n)),
            v.commit,
            text,
            info,
            simple=True,
        )
        return _result(name, tag, v.name, v.commit, info, stage=None, action="deregister")
    if m.deprecated:
        raise RegistryError(
            f"{name} is deprecated already: any later registry tag brings it back (register a version, or assign a "
            "stage)"
        )
    commit = m.events[-1].commit  # as GTO: the commit of the model's latest event
    info = _maybe_model_at(repo, name, commit)
    text = message or f"Deprecating artifact '{name}'"
    tag = _create(
        repo.git,
        name,
        lambda n: tagfmt.format(tagfmt.TagName(name, DEPRECATE, counter=n)),
        commit,
        text,
        info,
        simple=True,
        after_commits=True,
    )
    return _result(name, tag, None, commit, info, stage=None, action="deprecate")


# -- reading ----------------------------------------------------------------------------------
def _describe_version(m: Model, v: Version, at: dict[str, Any] | None = None) -> dict[str, Any]:
    e = v.event
    d: dict[str, Any] = {
        "version": v.name,
        "commit": v.commit,
        "registered": v.registered,
        "active": v.active,
        "stages": sorted(s for s, vs in m.pointers.items() if vs.version == v.name),
    }
    if e is not None:
        d.update(tag=e.tag, tagger=e.tagger, email=e.email, date=iso_date(e.time, e.offset), message=e.message)
        if "oid" in e.fields:
            d["oid"] = e.fields["oid"]
        if "size" in e.fields:  # (digits: tags.parse_message drops any other)
            d["size"] = int(e.fields["size"])
    if at is not None:  # where models.locate found it: the oid and size of a tag that records none (GTO's)
        d.update({k: at[k] for k in ("oid", "size") if k in at})
    return d


def describe(m: Model, located: tuple[dict[str, Any], dict[tuple[str, str], Any]] | None = None) -> dict[str, Any]:
    """The model as registry() lists it, with what ``models.locate`` found (else the paths its tags record)."""
    latest = m.latest()
    stages = {}
    for s, vs in m.stages().items():
        e = vs.event
        if e is None:  # a stage follows an assignment: never without one
            continue
        stages[s] = {
            "version": vs.version,
            "commit": m.versions[vs.version].commit,
            "tag": e.tag,
            "date": iso_date(e.time, e.offset),
        }
    versions = sorted(
        (v for v in m.versions.values() if v.registered), key=lambda v: tagfmt.semver_key(v.name), reverse=True
    )
    return {
        "name": m.name,
        "path": m.path() if located is None else located[0].get(m.name),
        "deprecated": m.deprecated,
        "latest": {"version": latest.name, "commit": latest.commit} if latest else None,
        "stages": stages,
        "versions": [_describe_version(m, v, located[1].get((m.name, v.name)) if located else None) for v in versions],
    }


def described(git: gitmod.Git, models: list[Model], repo: Repo | str | None) -> list[dict[str, Any]]:
    """describe() of each model, what their tags do not record read at their commits (by URL: the tags alone)."""
    located = locate(git, models, lambda: _repo(repo)) if not isinstance(repo, str) else None
    return [describe(m, located) for m in models]


def registry(*, deprecated: bool = False, repo: Repo | str | None = None) -> list[dict[str, Any]]:
    """Every model in the registry (deprecated ones only with deprecated=True), from its tags (``models.locate``):
    {name, path, deprecated, latest: {version, commit} | None, stages: {stage: {version, commit, tag, date}},
    versions: [{version, commit, registered, active, stages, tag, tagger, email, date, message, oid?, size?}]}."""
    return table(deprecated=deprecated, repo=repo)["models"]


def table(*, deprecated: bool = False, repo: Repo | str | None = None) -> dict[str, Any]:
    """{"models": what registry() returns, "stages": every stage in use, in the ``[stages] order`` of this
    repository's config where it sets one, the others (and all, read by URL) in the order first assigned,
    "hidden": how many deprecated models were left out}."""
    git = _git(repo)
    state = load(git)
    known = [m for _, m in sorted(state.models.items()) if m.events]
    models = described(git, [m for m in known if deprecated or not m.deprecated], repo)
    stages = state.stage_names()
    order = _stage_order(repo) if not isinstance(repo, (str, os.PathLike)) else []
    stages = [s for s in order if s in stages] + [s for s in stages if s not in order]
    return {"models": models, "stages": stages, "hidden": len(known) - len(models)}


def _stage_order(repo: Repo | None) -> list[str]:
    """The ``[stages] order`` of this repository's config; none where mvc is not set up (a GTO repository) or the
    table is broken (``mvc assign`` says how)."""
    from mvc.format import config as cfgfmt

    try:
        return cfgfmt.stages(_repo(repo).config.data, CONFIG_PATH)[0]
    except MvcError:
        return []


def model(name: str, *, repo: Repo | str | None = None) -> dict[str, Any]:
    """One model of the registry, deprecated or not, as registry() describes each (what
    ``mvc registry NAME --json`` prints). Refuses a name the registry does not know."""
    state = load(git := _git(repo))
    m = state.get(name)
    if m is None:
        known = sorted(n for n, x in state.models.items() if x.events)
        shown = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
        listed = f" (models: {shown})" if known else " (it has no models yet)"
        where = f" --repo {shell_quoted(getattr(git, 'shown', repo))}" if isinstance(repo, str) else ""
        raise RegistryError(
            f"no model named {name!r} in the registry{listed}: see the models with {in_quotes('mvc registry' + where)}"
        )
    return described(git, [m], repo)[0]
