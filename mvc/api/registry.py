"""The model registry: versions and stages as annotated git tags in GTO's grammar; lineage and diff.

The registry state is computed from the tags alone, in the order docs/FORMAT.md ("Registry tags")
specifies, which is the order GTO uses. Tags are only ever created, never moved or deleted.
Reading the state runs one ``git for-each-ref`` and no pygit2, so ``mvc registry`` starts fast.
"""

from __future__ import annotations

import os
import re
import time as timemod
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from mvc import git as gitmod
from mvc.errors import ConfigError, MvcError, PathError, PointerError, RegistryError
from mvc.format import tags as tagfmt
from mvc.format.tags import ASSIGN, DEPRECATE, DEREGISTER, REGISTER, UNASSIGN

if TYPE_CHECKING:
    from mvc.api.repo import Repo

CONFIG_PATH = ".mvc/config.toml"
POINTER_SUFFIX = ".mvc"
BUMPS = ("major", "minor", "patch")


# -- the state --------------------------------------------------------------------------------
# Plain classes with __slots__, not dataclasses: a dataclass compiles its methods when its module is
# imported, which every `mvc registry` would pay for.
class Event:
    """One registry tag. ``key`` is its place in the registry order (FORMAT.md): tagger time, GTO's
    event priority, the artifact's counter (-1 without one), then the tag name."""

    __slots__ = (
        "_parsed",
        "action",
        "annotation",
        "artifact",
        "commit",
        "commit_time",
        "counter",
        "email",
        "key",
        "offset",
        "stage",
        "tag",
        "tagger",
        "time",
        "version",
    )

    def __init__(
        self,
        tag: str,
        name: tagfmt.TagName,
        commit: str,
        time: int,
        offset: int,
        commit_time: int,
        tagger: str,
        email: str,
        annotation: str,
    ):
        self.tag, self.action, self.artifact = tag, name.action, name.artifact
        self.version, self.stage, self.counter = name.version, name.stage, name.counter
        self.commit, self.time, self.offset = commit, time, offset
        self.commit_time = commit_time  # of the tagged commit: GTO counts it as an event of the version
        self.tagger, self.email = tagger, email
        self.annotation = annotation  # the raw tag message, parsed only when asked (most never are)
        self.key = (time, tagfmt.PRIORITY[name.action], -1 if name.counter is None else name.counter, tag)
        self._parsed: tuple[str, dict[str, str]] | None = None

    @property
    def message(self) -> str:
        return self._parse()[0]

    @property
    def fields(self) -> dict[str, str]:
        """The mvc-KEY trailers: path, oid, size (none in tags GTO made)."""
        return self._parse()[1]

    def _parse(self) -> tuple[str, dict[str, str]]:
        if self._parsed is None:
            self._parsed = tagfmt.parse_message(self.annotation)
        return self._parsed


class Version:
    __slots__ = ("active", "commit", "event", "name", "registered")

    def __init__(self, name: str, commit: str, registered: bool = False, active: bool = False):
        self.name = name  # "vX.Y.Z"; for a commit assigned a stage but never registered: the commit id
        self.commit = commit
        self.registered = registered  # a registration tag exists (else: a GTO-style unregistered commit)
        self.active = active  # registered and not deregistered since (unregistered commits: always)
        self.event: Event | None = None  # the registration


class VStage:
    __slots__ = ("active", "event", "stage", "version")

    def __init__(self, version: str, stage: str):
        self.version, self.stage = version, stage
        self.active = False  # the version holds the stage
        self.event: Event | None = None  # the latest assignment


class Model:
    def __init__(self, name: str):
        self.name = name
        self.events: list[Event] = []
        self.versions: dict[str, Version] = {}
        self.vstages: dict[tuple[str, str], VStage] = {}
        self.deprecated = False
        self.counter = 0  # the largest counter in any tag of this name (GTO's N)
        self.pointers: dict[str, VStage] = {}  # stage -> the assignment it follows now

    def build(self) -> None:
        self.events.sort(key=lambda e: e.key)
        for e in self.events:  # versions first: an assignment applies to the version registered at its
            if e.action == REGISTER:  # commit, whenever that registration was made (as in GTO)
                v = self.versions.setdefault(e.version, Version(e.version, e.commit))
                v.commit, v.registered, v.active, v.event = e.commit, True, True, e
            elif e.action == DEREGISTER:
                self.versions.setdefault(e.version, Version(e.version, e.commit)).active = False
        by_commit: dict[str, list[str]] = {}
        for v in self.versions.values():
            by_commit.setdefault(v.commit, []).append(v.name)
        for e in self.events:
            if e.action not in (ASSIGN, UNASSIGN):
                continue
            names = by_commit.get(e.commit)
            if not names and e.action == UNASSIGN:
                continue  # GTO: each stage tag on an unregistered commit is a version of its own, never cancelled
            vname = e.commit if not names else names[0] if len(names) == 1 else max(names, key=tagfmt.semver_key)
            if vname not in self.versions:
                self.versions[vname] = Version(vname, e.commit, registered=False, active=True)
            vs = self.vstages.setdefault((vname, e.stage), VStage(vname, e.stage))
            vs.active = e.action == ASSIGN
            if vs.active:
                vs.event = e
        # deprecated while a deprecation is later than every other event, GTO counting each version's
        # commit (its committer time) as one; a later registration or assignment revives the model
        dep = [e.time for e in self.events if e.action == DEPRECATE]
        rest = [t for e in self.events if e.action != DEPRECATE for t in (e.time, e.commit_time)]
        self.deprecated = bool(dep) and max(dep) > max(rest, default=-1)
        # a stage follows its most recent active assignment to a live version; in order of first use
        first = dict.fromkeys(e.stage for e in self.events if e.stage)
        for vs in self.vstages.values():
            if vs.active and self.versions[vs.version].active:
                cur = self.pointers.get(vs.stage)
                if cur is None or vs.event.key > cur.event.key:
                    self.pointers[vs.stage] = vs
        self.pointers = {s: self.pointers[s] for s in first if s in self.pointers}

    def latest(self) -> Version | None:
        """The greatest registered, not deregistered version (semver precedence)."""
        live = [v for v in self.versions.values() if v.registered and v.active]
        return max(live, key=lambda v: (tagfmt.semver_key(v.name), v.event.key)) if live else None

    def stage(self, stage: str) -> VStage | None:
        """The assignment a stage follows now: its most recent active assignment to a live version."""
        return self.pointers.get(stage)

    def stages(self) -> dict[str, VStage]:
        return self.pointers

    def holds(self, version: str, stage: str) -> bool:
        vs = self.vstages.get((version, stage))
        return vs is not None and vs.active

    def path(self) -> str | None:
        """The tracked path recorded by the newest mvc-written tag."""
        return next((e.fields["path"] for e in reversed(self.events) if "path" in e.fields), None)

    def last_time(self) -> int:
        return max((e.time for e in self.events), default=0)

    def last_commit_time(self) -> int:
        return max((e.commit_time for e in self.events if e.action != DEPRECATE), default=0)


class State:
    def __init__(self, models: dict[str, Model]):
        self.models = models

    def get(self, name: str) -> Model | None:
        m = self.models.get(name)
        return m if m is not None and m.events else None

    def stage_names(self) -> list[str]:
        """Every stage in use, in the order stages were first assigned."""
        events = sorted((e for m in self.models.values() for e in m.events if e.stage), key=lambda e: e.key)
        return list(dict.fromkeys(e.stage for e in events))


def load(git: gitmod.Git) -> State:
    """The registry state from every tag in the repository (loose and packed)."""
    models: dict[str, Model] = {}
    for t in git.tags():
        parsed = tagfmt.parse(t["name"])
        if parsed is None:
            continue
        m = models.get(parsed.artifact)
        if m is None:
            m = models[parsed.artifact] = Model(parsed.artifact)
        if parsed.counter is not None:  # GTO counts every tag of the name, even lightweight ones
            m.counter = max(m.counter, parsed.counter)
        if not t["annotated"] or parsed.action == tagfmt.CREATE or t["target_type"] != "commit":
            continue
        m.events.append(
            Event(
                t["name"],
                parsed,
                t["target"],
                t["time"],
                t["offset"],
                t["commit_time"],
                t["tagger"],
                t["email"],
                t["message"],
            )
        )
    for m in models.values():
        m.build()
    return State(models)


# -- helpers ----------------------------------------------------------------------------------
def _repo(repo: Repo | None) -> Repo:
    from mvc.api.repo import Repo

    return repo if repo is not None else Repo.find()


def _git(repo: Repo | None) -> gitmod.Git:
    """Reading needs only git: works in any git repository, set up for mvc or not (e.g. GTO's)."""
    return repo.git if repo is not None else gitmod.Git(gitmod.find_worktree(os.getcwd()))


def _date(t: int, offset: int) -> str:
    return datetime.fromtimestamp(t, timezone(timedelta(minutes=offset))).isoformat()


def _model(state: State, name: str) -> Model:
    m = state.get(name)
    if m is None:
        raise RegistryError(
            f"no model named {name!r} in the registry: register it with 'mvc register {name}' (see 'mvc registry')"
        )
    return m


def _version(m: Model, text: str) -> Version:
    v = m.versions.get(text)  # also a commit id, for GTO's stage tags on unregistered commits
    if v is None:
        v = m.versions.get(tagfmt.check_version(text))
    if v is None:
        known = ", ".join(sorted((x.name for x in m.versions.values() if x.registered), key=tagfmt.semver_key))
        raise RegistryError(
            f"{m.name} has no version {text}: known versions are {known or 'none'} (see 'mvc registry')"
        )
    return v


def models_at(git: gitmod.Git, commit: str) -> dict[str, str]:
    """{model name: path} as recorded in .mvc/config.toml at commit."""
    from mvc.format import config as cfgfmt

    blob = git.blob_ids(commit, [CONFIG_PATH])[CONFIG_PATH]
    if blob is None:
        return {}
    return cfgfmt.models(
        cfgfmt.loads(git.blob(blob), f"{CONFIG_PATH} at {commit[:7]}"), f"{CONFIG_PATH} at {commit[:7]}"
    )


def model_at(git: gitmod.Git, name: str, commit: str) -> dict[str, Any]:
    """{path, kind, oid, size, meta} of the model name at commit; refuses if it is not tracked there."""
    from mvc.format import pointer as ptrfmt

    path = models_at(git, commit).get(name)
    if path is None:
        raise RegistryError(
            f"{name} is not a model at commit {commit[:7]}: name its file with "
            f"'mvc add PATH --name {name}' and commit, or pick another --rev"
        )
    prel = path + POINTER_SUFFIX
    blob = git.blob_ids(commit, [prel])[prel]
    if blob is None:
        raise RegistryError(
            f"{path} (model {name}) is not tracked by mvc at commit {commit[:7]}: run "
            f"'mvc add {path} --name {name}' and commit, or pick another --rev"
        )
    p = ptrfmt.loads(git.blob(blob), f"{prel} at {commit[:7]}")
    return {"path": path, "kind": p.kind, "oid": p.oid, "size": p.size, "meta": p.meta}


def _maybe_model_at(git: gitmod.Git, name: str, commit: str) -> dict[str, Any] | None:
    try:
        return model_at(git, name, commit)
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

    version: semver (``v`` optional); default: the greatest version ever registered, bumped (bump:
    "major", "minor" or "patch", the default), or v0.0.1 for the first one.
    Returns {name, tag, version, commit, path, oid, size}.
    """
    repo = _repo(repo)
    tagfmt.check_name(name)
    if version is not None and bump is not None:
        raise RegistryError("pass either a VERSION or a --bump option, not both")
    if bump is not None and bump not in BUMPS:
        raise RegistryError(f"unknown bump {bump!r}: use major, minor or patch")
    commit = repo.resolve(rev or "HEAD")
    info = model_at(repo.git, name, commit)
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
    return _result(name, tag, version, commit, info)


def _latest_name(m: Model) -> str:
    v = m.latest()
    return v.name if v else "none"


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
        v = _version(m, version)
        if not v.registered:
            raise RegistryError(
                f"{version} is not a registered version of {name}: register it with "
                f"'mvc register {name} --rev {v.commit[:7]}'"
            )
        if not v.active:
            raise RegistryError(f"{name}@{v.name} was deregistered: assign another version")
        commit = v.commit
    else:
        commit = repo.resolve(rev or "HEAD")
        here = [x for x in m.versions.values() if x.commit == commit and x.registered] if m else []
        live = [x for x in here if x.active]
        if live:
            v = max(live, key=lambda x: tagfmt.semver_key(x.name))
        elif here:
            raise RegistryError(
                f"{name}@{here[0].name} at commit {commit[:7]} was deregistered: assign another version"
            )
    info = model_at(repo.git, name, commit)
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


_RULE_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")


def _meta_value(meta: dict[str, Any], key: str) -> tuple[bool, Any]:
    if key in meta:
        return True, meta[key]
    node: Any = meta
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_gate(rule: str, meta: dict[str, Any], where: str = "[stages] require") -> str | None:
    """None if meta passes the rule ``KEY OP VALUE``, else why not."""
    from mvc.format.pointer import parse_meta_value

    m = _RULE_RE.match(rule)
    if m is None:
        raise ConfigError(f'{where}: cannot read the rule {rule!r}: write KEY OP VALUE, e.g. "accuracy >= 0.9"')
    key, op, text = m.groups()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        want: Any = text[1:-1]
    else:
        want = parse_meta_value(text)
    found, have = _meta_value(meta, key)
    if not found:
        return f"the model has no meta {key} (set it with 'mvc add PATH --meta {key}=VALUE')"
    number = (int, float)
    if op in ("==", "!="):
        same = have == want and isinstance(have, bool) == isinstance(want, bool)
        return None if same == (op == "==") else f"{key} is {have!r}"
    if not (isinstance(have, number) and isinstance(want, number)) or isinstance(have, bool) or isinstance(want, bool):
        return f"{key} is {have!r}, which cannot be compared with {want!r}"
    ok = {">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want}[op]
    return None if ok else f"{key} is {have!r}"


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
    repo = _repo(repo)
    if stage is not None and version is None:
        raise RegistryError("name the version whose stage to cancel: mvc deprecate NAME VERSION STAGE")
    m = _model(load(repo.git), name)
    if stage is not None:
        v = _version(m, version)
        if not v.registered:
            raise RegistryError(
                f"commit {v.commit[:7]} is not a registered version of {name}, and GTO ignores "
                f"cancelling its stages: register it first ('mvc register {name} --rev "
                f"{v.commit[:10]}'), then cancel"
            )
        if not m.holds(v.name, stage):
            raise RegistryError(f"{name} {v.name} is not in stage {stage}: nothing to cancel (see 'mvc registry')")
        info = _maybe_model_at(repo.git, name, v.commit)
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
        v = _version(m, version)
        if not v.registered:
            raise RegistryError(f"{v.name} is not a registered version of {name}: nothing to deregister")
        if not v.active:
            raise RegistryError(f"{name}@{v.name} was deregistered already")
        info = _maybe_model_at(repo.git, name, v.commit)
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
        raise RegistryError(f"{name} is deprecated already: register a new version to bring it back")
    commit = m.events[-1].commit  # as GTO: the commit of the model's latest event
    info = _maybe_model_at(repo.git, name, commit)
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
def _describe_version(m: Model, v: Version) -> dict[str, Any]:
    e = v.event
    d: dict[str, Any] = {
        "version": v.name,
        "commit": v.commit,
        "registered": v.registered,
        "active": v.active,
        "stages": sorted(s for s, vs in m.pointers.items() if vs.version == v.name),
    }
    if e is not None:
        d.update(tag=e.tag, tagger=e.tagger, email=e.email, date=_date(e.time, e.offset), message=e.message)
        if "oid" in e.fields:
            d["oid"] = e.fields["oid"]
        if e.fields.get("size", "").isdigit():
            d["size"] = int(e.fields["size"])
    return d


def describe(m: Model) -> dict[str, Any]:
    latest = m.latest()
    stages = {}
    for s, vs in m.stages().items():
        e = vs.event
        stages[s] = {
            "version": vs.version,
            "commit": m.versions[vs.version].commit,
            "tag": e.tag,
            "date": _date(e.time, e.offset),
        }
    versions = sorted(
        (v for v in m.versions.values() if v.registered), key=lambda v: tagfmt.semver_key(v.name), reverse=True
    )
    return {
        "name": m.name,
        "path": m.path(),
        "deprecated": m.deprecated,
        "latest": {"version": latest.name, "commit": latest.commit} if latest else None,
        "stages": stages,
        "versions": [_describe_version(m, v) for v in versions],
    }


def registry(*, deprecated: bool = False, repo: Repo | None = None) -> list[dict[str, Any]]:
    """Every model in the registry (deprecated ones only with deprecated=True), from the tags alone:
    {name, path, deprecated, latest: {version, commit} | None, stages: {stage: {version, commit, tag, date}},
    versions: [{version, commit, registered, active, stages, tag, tagger, email, date, message, oid?, size?}]}."""
    return table(deprecated=deprecated, repo=repo)["models"]


def table(*, deprecated: bool = False, repo: Repo | None = None) -> dict[str, Any]:
    """{"models": what registry() returns, "stages": every stage in use, in the order first assigned}."""
    state = load(_git(repo))
    models = [describe(m) for name, m in sorted(state.models.items()) if m.events and (deprecated or not m.deprecated)]
    return {"models": models, "stages": state.stage_names()}


def resolve_ref(git: gitmod.Git, text: str) -> str | None:
    """The commit a registry revision names (``NAME@vX.Y.Z``, ``NAME#STAGE``, ``NAME@latest``), or None
    when text is not one or names no model in the registry (then it is left to git)."""
    ref = tagfmt.parse_ref(text)
    if ref is None:
        return None
    m = load(git).get(ref.name)
    if m is None:
        return None
    if m.deprecated:
        raise RegistryError(
            f"{m.name} is deprecated: to read it anyway, pass the commit of the version "
            "you want (see 'mvc registry --deprecated --json')"
        )
    if ref.latest:
        v = m.latest()
        if v is None:
            raise RegistryError(f"{m.name} has no registered version: register one with 'mvc register {m.name}'")
        return v.commit
    if ref.version is not None:
        v = _version(m, ref.version)
        if not v.active:
            raise RegistryError(
                f"{m.name}@{v.name} was deregistered: to read it anyway, pass its commit {v.commit[:10]}"
            )
        return v.commit
    vs = m.stage(ref.stage)
    if vs is None:
        raise RegistryError(
            f"stage {ref.stage} of {m.name} points to no version: assign one with 'mvc assign {m.name} {ref.stage}'"
        )
    return m.versions[vs.version].commit


def model_ref(repo: Repo, text: str) -> tuple[str, str] | None:
    """(tracked path, commit) for a registry revision used in place of a path (``mvc checkout churn#prod``),
    or None when text is not a registry revision of a known model."""
    ref = tagfmt.parse_ref(text)
    if ref is None:
        return None
    commit = resolve_ref(repo.git, text)
    if commit is None:
        return None
    path = models_at(repo.git, commit).get(ref.name)
    if path is None:
        m = load(repo.git).get(ref.name)
        path = (
            next((e.fields["path"] for e in reversed(m.events) if e.commit == commit and "path" in e.fields), None)
            if m
            else None
        )
    if path is None:
        raise RegistryError(
            f"{ref.name} has no path at commit {commit[:7]}: its .mvc/config.toml has no "
            f"[models.{ref.name}]; use 'mvc get PATH --rev {commit[:10]}'"
        )
    return path, commit


# -- lineage ----------------------------------------------------------------------------------
def log(target: str, *, rev: str = "HEAD", repo: Repo | None = None) -> list[dict[str, Any]]:
    """Every commit reachable from rev that changed the model's pointer, newest first.

    target: a model name (followed through renames, as each commit's .mvc/config.toml maps it) or a
    tracked path. Each entry: {commit, author, email, date, message, change: added | modified |
    removed | moved, path, names, kind, oid, size, meta, versions, stages}.
    """
    from mvc.format import config as cfgfmt
    from mvc.format import pointer as ptrfmt

    repo = _repo(repo)
    git = repo.git
    name, path = _log_target(repo, target)
    configs: dict[str | None, dict[str, str]] = {None: {}}
    memo: dict[str, tuple[str | None, str | None]] = {}

    def models_of(commit: str) -> dict[str, str]:
        blob = git.blob_ids(commit, [CONFIG_PATH])[CONFIG_PATH]
        if blob not in configs:
            try:
                configs[blob] = cfgfmt.models(cfgfmt.loads(git.blob(blob), CONFIG_PATH))
            except ConfigError:  # a damaged config in an old commit: that commit has no models
                configs[blob] = {}
        return configs[blob]

    def state_of(commit: str) -> tuple[str | None, str | None]:
        if commit not in memo:
            p = models_of(commit).get(name) if name is not None else path
            memo[commit] = (p, git.blob_ids(commit, [p + POINTER_SUFFIX])[p + POINTER_SUFFIX] if p else None)
        return memo[commit]

    state = load(git)
    out = []
    for c in git.walk(repo.resolve(rev)):
        p, blob = state_of(c["id"])
        before = [state_of(parent) for parent in c["parents"]]
        if before and any(b == (p, blob) for b in before):
            continue
        if not before and blob is None:
            continue
        prev = before[0] if before else (None, None)
        if blob is None:
            if prev[1] is None:
                continue  # merged from parents that did not have it either
            change = "removed"
        elif prev[1] is None:
            change = "added"
        elif prev[0] != p:  # the name now maps to another path
            change = "moved"
        else:
            change = "modified"
        entry: dict[str, Any] = {
            "commit": c["id"],
            "author": c["author"],
            "email": c["email"],
            "date": _date(c["time"], c["offset"]),
            "message": c["message"].strip(),
            "change": change,
            "path": p if blob is not None else prev[0],
        }
        names = [name] if name is not None else sorted(n for n, q in models_of(c["id"]).items() if q == path)
        entry["names"] = names
        if blob is not None:
            try:
                ptr = ptrfmt.loads(git.blob(blob), f"{p}{POINTER_SUFFIX} at {c['id'][:7]}")
                entry.update(kind=ptr.kind, oid=ptr.oid, size=ptr.size, meta=ptr.meta)
            except PointerError as e:
                entry["error"] = str(e)
        versions, stages = [], []
        for n in names:
            m = state.get(n)
            if m is None:
                continue
            versions += [v.name for v in m.versions.values() if v.commit == c["id"] and v.registered and v.active]
            stages += [s for s, vs in m.stages().items() if m.versions[vs.version].commit == c["id"]]
        entry["versions"] = sorted(versions, key=tagfmt.semver_key)
        entry["stages"] = stages
        out.append(entry)
    return out


def _log_target(repo: Repo, target: str) -> tuple[str | None, str | None]:
    """(model name, None) or (None, tracked path) for mvc log's argument."""
    from mvc.format import config as cfgfmt

    current = cfgfmt.models(repo.config.shared, CONFIG_PATH)
    if target in current:
        return target, None
    rel = repo.rel(target)
    if rel.endswith(POINTER_SUFFIX):
        rel = rel[: -len(POINTER_SUFFIX)]
    if os.path.lexists(repo.abs(rel + POINTER_SUFFIX)) or os.path.lexists(repo.abs(rel)):
        return None, rel
    if tagfmt.is_name(target) and load(repo.git).get(target) is not None:
        return target, None
    try:
        head = repo.resolve("HEAD")
    except MvcError:
        head = None
    if head and repo.git.blob_ids(head, [rel + POINTER_SUFFIX])[rel + POINTER_SUFFIX]:
        return None, rel
    if tagfmt.is_name(target):
        return target, None  # maybe a model that existed only in the past
    raise PathError(f"{target} is neither a model name nor a tracked path: see 'mvc registry' and 'mvc ls'")


# -- diff -------------------------------------------------------------------------------------
def _side(repo: Repo, rev: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """({tracked path: pointer}, {model name: path}) at rev, or in the work tree when rev is None."""
    from mvc.format import config as cfgfmt
    from mvc.format import pointer as ptrfmt

    if rev is None:
        pointers = {}
        for prel in repo.git.ls_pointers():
            with open(repo.check_inside(prel), "rb") as f:
                pointers[prel[: -len(POINTER_SUFFIX)]] = ptrfmt.loads(f.read(), prel)
        return pointers, cfgfmt.models(repo.config.shared, CONFIG_PATH)
    commit = repo.resolve(rev)
    pointers = {
        prel[: -len(POINTER_SUFFIX)]: ptrfmt.loads(data, f"{prel} at {rev}")
        for prel, data in repo.git.pointers_at(commit).items()
    }
    try:
        names = models_at(repo.git, commit)
    except ConfigError:
        names = {}
    return pointers, names


def _flat(meta: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def diff(rev_a: str | None = None, rev_b: str | None = None, *, repo: Repo | None = None) -> list[dict[str, Any]]:
    """Models added, removed, modified or moved between rev_a (default HEAD) and rev_b (default: the
    work tree). Each: {change, path, old_path?, names, old: {kind, oid, size, meta} | None, new: … | None,
    size_change, meta_changes: {key: [old, new]}}."""
    repo = _repo(repo)
    if rev_a is None and rev_b is not None:
        raise RegistryError("name the first revision too: mvc diff REV_A REV_B")
    old, old_names = _side(repo, rev_a or "HEAD")
    new, new_names = _side(repo, rev_b)

    def names_of(path: str) -> list[str]:
        return sorted({n for n, p in old_names.items() if p == path} | {n for n, p in new_names.items() if p == path})

    def info(p: Any) -> dict[str, Any]:
        return {"kind": p.kind, "oid": p.oid, "size": p.size, "meta": p.meta}

    out = []
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    moves = {}
    for n, p in new_names.items():
        q = old_names.get(n)
        if q is not None and q != p and p in added and q in removed:
            moves[p] = q
    for path in sorted(set(old) | set(new)):
        if path in moves.values():
            continue
        a_path = moves.get(path, path)
        a, b = old.get(a_path), new.get(path)
        if a is not None and b is not None and info(a) == info(b) and a_path == path:
            continue
        entry: dict[str, Any] = {
            "path": path,
            "names": names_of(path) if a_path == path else sorted(set(names_of(path)) | set(names_of(a_path))),
            "old": info(a) if a else None,
            "new": info(b) if b else None,
        }
        if a is None:
            entry["change"] = "added"
        elif b is None:
            entry["change"] = "removed"
        elif a_path != path:
            entry["change"] = "moved"
            entry["old_path"] = a_path
        else:
            entry["change"] = "modified"
        entry["size_change"] = (b.size if b else 0) - (a.size if a else 0)
        fa, fb = _flat(a.meta) if a else {}, _flat(b.meta) if b else {}
        entry["meta_changes"] = {k: [fa.get(k), fb.get(k)] for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}
        out.append(entry)
    return out
