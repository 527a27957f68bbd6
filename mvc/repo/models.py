"""The registry's state model: models, versions and stages computed from the annotated git tags alone,
in the order docs/FORMAT.md ("Registry tags") specifies, which is the order GTO uses.

The verbs that change it (``mvc.api.registry``) import this module, never the other way round.
Reading runs one ``git for-each-ref`` and no pygit2, so ``mvc registry`` starts fast.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from mvc import git as gitmod
from mvc.errors import ConfigError, MvcError, RegistryError
from mvc.format import config as cfgfmt
from mvc.format import pointer as ptrfmt
from mvc.format import tags as tagfmt
from mvc.format.pointer import in_quotes, shell_quoted
from mvc.format.tags import ASSIGN, DEPRECATE, DEREGISTER, REGISTER, UNASSIGN

CONFIG_PATH = cfgfmt.CONFIG_PATH


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


def _key(e: Event | None) -> tuple:
    return e.key if e is not None else ()


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
            if (
                e.action == REGISTER and e.version is not None
            ):  # commit, whenever that registration was made (as in GTO)
                v = self.versions.setdefault(e.version, Version(e.version, e.commit))
                v.commit, v.registered, v.active, v.event = e.commit, True, True, e
            elif e.action == DEREGISTER and e.version is not None:
                self.versions.setdefault(e.version, Version(e.version, e.commit)).active = False
        by_commit: dict[str, list[str]] = {}
        for v in self.versions.values():
            by_commit.setdefault(v.commit, []).append(v.name)
        for e in self.events:
            if e.action not in (ASSIGN, UNASSIGN) or e.stage is None:
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
        first = dict.fromkeys(e.stage for e in self.events if e.stage is not None)
        for vs in self.vstages.values():
            if vs.active and self.versions[vs.version].active:
                cur = self.pointers.get(vs.stage)
                if cur is None or _key(vs.event) > _key(cur.event):
                    self.pointers[vs.stage] = vs
        self.pointers = {s: self.pointers[s] for s in first if s in self.pointers}

    def latest(self) -> Version | None:
        """The greatest registered, not deregistered version (semver precedence)."""
        live = [v for v in self.versions.values() if v.registered and v.active]
        return max(live, key=lambda v: (tagfmt.semver_key(v.name), _key(v.event))) if live else None

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


class Registry:
    """Every model of the repository, built from its tags by :func:`load`."""

    def __init__(self, models: dict[str, Model]):
        self.models = models

    def get(self, name: str) -> Model | None:
        m = self.models.get(name)
        return m if m is not None and m.events else None

    def names(self) -> set[str]:
        """The models the tags make (those :meth:`get` finds)."""
        return {name for name, m in self.models.items() if m.events}

    def marks(self, commit: str, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """The live versions of the models ``names`` registered on commit (by semver), and the stages that point
        to one of them now."""
        versions: list[str] = []
        stages: list[str] = []
        for n in names:
            m = self.get(n)
            if m is None:
                continue
            versions += [v.name for v in m.versions.values() if v.commit == commit and v.registered and v.active]
            stages += [s for s, vs in m.stages().items() if m.versions[vs.version].commit == commit]
        return sorted(versions, key=tagfmt.semver_key), stages

    def stage_names(self) -> list[str]:
        """Every stage in use, in the order stages were first assigned."""
        events = sorted((e for m in self.models.values() for e in m.events if e.stage), key=lambda e: e.key)
        return list(dict.fromkeys(e.stage for e in events if e.stage is not None))


def load(git: gitmod.Git) -> Registry:
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
    return Registry(models)


def iso_date(t: int, offset: int) -> str:
    """A git timestamp and its offset (minutes) as ISO 8601."""
    return datetime.fromtimestamp(t, timezone(timedelta(minutes=offset))).isoformat()


def find_model(state: Registry, name: str) -> Model:
    m = state.get(name)
    if m is None:
        raise RegistryError(
            f"no model named {name!r} in the registry: register it with 'mvc register {name}' (see 'mvc registry')"
        )
    return m


def find_version(m: Model, text: str) -> Version:
    v = m.versions.get(text)  # also a commit id, for GTO's stage tags on unregistered commits
    if v is None:
        v = m.versions.get(tagfmt.check_version(text))
    if v is None:
        known = ", ".join(sorted((x.name for x in m.versions.values() if x.registered), key=tagfmt.semver_key))
        raise RegistryError(
            f"{m.name} has no version {text}: known versions are {known or 'none'} (see 'mvc registry')"
        )
    return v


GTO_FILES = ("dvc.yaml", "artifacts.yaml")  # where GTO finds an artifact's path (the second wins)


def models_at(git: gitmod.Git, commit: str) -> dict[str, str]:
    """{model name: path} as recorded in .mvc/config.toml at commit, over GTO's names there (``artifacts.yaml``,
    ``dvc.yaml``'s ``artifacts:``), so that GTO's tags of commits before ``mvc import-dvc`` resolve."""
    blobs = git.blob_ids(commit, [CONFIG_PATH, *GTO_FILES])
    return _names({path: git.blob(blob) for path, blob in blobs.items() if blob is not None}, commit)


def _names(texts: dict[str, bytes | None], commit: str) -> dict[str, str]:
    """{model name: path} from the bytes of a commit's .mvc/config.toml and GTO's files (None: absent)."""
    found: dict[str, str] = {}
    for path in GTO_FILES:
        gto = texts.get(path)
        if gto is not None:
            from mvc.errors import ForeignError
            from mvc.format import dvcfile

            try:
                found.update(dvcfile.gto_artifacts(gto, path, path == "dvc.yaml"))
            except ForeignError:  # a damaged file of another tool names no model
                pass
    data, where = texts.get(CONFIG_PATH), f"{CONFIG_PATH} at {commit[:7]}"
    if data is not None:
        found.update(cfgfmt.models(cfgfmt.loads(data, where), where))
    return found


def paths_at(git: gitmod.Git, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """{(model name, commit or HEAD): its path there as :func:`models_at` maps it, or None}, for any number of
    commits in one ``git cat-file`` (a commit whose config is damaged maps no name, as in ``mvc log``)."""
    wanted = list(dict.fromkeys(wanted))
    files = (CONFIG_PATH, *GTO_FILES)
    blobs = git.cat_objects(f"{c}:{f}" for _, c in wanted for f in files)
    parsed: dict[tuple[bytes | None, ...], dict[str, str]] = {}
    found: dict[tuple[str, str], str | None] = {}
    for n, c in wanted:
        texts = tuple(blobs.get(f"{c}:{f}") for f in files)
        if texts not in parsed:  # most commits share their config
            try:
                parsed[texts] = _names(dict(zip(files, texts, strict=True)), c)
            except ConfigError:
                parsed[texts] = {}
        found[(n, c)] = parsed[texts].get(n)
    return found


def locate(
    git: gitmod.Git, models: Iterable[Model], repo: Any = None, every: bool = False
) -> tuple[dict[str, str | None], dict[tuple[str, str], dict[str, Any]]]:
    """({model name: its path}, {(model name, version): {path, data: its pointer's bytes or None, oid?, size?}}) of
    the registered versions, read as :func:`model_at` reads one, in two ``git cat-file`` whatever their number: a
    path its tag does not record is its commit's mapping; a pointer is read when every, or when its tag records no
    oid (GTO's; oid and size are then the pointer's), mvc's or, through the map of an import, another tool's (repo:
    the local Repo, or a function opening it, called at the first such read). A model's path: its newest tag's."""
    models = list(models)
    versions = [(m.name, v, v.event.fields) for m in models for v in m.versions.values() if v.registered and v.event]
    ask = [(n, v.commit) for n, v, fields in versions if "path" not in fields]
    for m in models:
        for e in reversed(m.events):  # the tags newer than the newest recording the path, else HEAD too
            if "path" in e.fields:
                break
            ask.append((m.name, e.commit))
        else:
            ask.append((m.name, "HEAD"))
    mapped = paths_at(git, ask)
    paths: dict[str, str | None] = {}
    for m in models:
        newest = (e.fields.get("path") or mapped.get((m.name, e.commit)) for e in reversed(m.events))
        paths[m.name] = next((p for p in newest if p), None) or mapped.get((m.name, "HEAD"))
    found: dict[tuple[str, str], dict[str, Any]] = {
        (n, v.name): {"path": f.get("path") or mapped.get((n, v.commit)), "data": None} for n, v, f in versions
    }
    reads = [(v, f, found[(n, v.name)]) for n, v, f in versions if every or "oid" not in f]
    # cat-file --batch reads a name a line: a path with a line break (mvc never tracks one) is not read
    reads = [(v, f, at) for v, f, at in reads if at["path"] and not {"\n", "\r"} & set(at["path"])]
    blobs = git.cat_objects(f"{v.commit}:{at['path']}{ptrfmt.SUFFIX}" for v, _, at in reads)
    for v, fields, at in reads:
        at["data"] = blobs.get(f"{v.commit}:{at['path']}{ptrfmt.SUFFIX}")
        if at["data"] is None and repo is not None:
            try:
                repo = repo() if callable(repo) else repo
            except MvcError:  # not set up for mvc: no map of an import
                repo = None
            at["data"] = _imported(repo, v.commit, at["path"])
        if at["data"] is not None and "oid" not in fields:
            try:
                p = ptrfmt.loads(at["data"], f"{at['path']}{ptrfmt.SUFFIX} at {v.commit[:7]}")
            except MvcError:  # damaged: no oid to show (the site's page of the version says why)
                continue
            at.update(oid=p.oid, size=p.size)
    return paths, found


def model_at(git: gitmod.Git, name: str, commit: str, repo: Any = None) -> dict[str, Any]:
    """{path, kind, oid, size, meta} of the model name at commit; refuses if it is not tracked there. ``repo``: the
    local repository (a ``Repo``: ``repository.py`` imports this module), whose map of an import reads the .dvc file
    or git-lfs pointer of a commit from before it as its mvc pointer (``foreign.py``); None (a registry read by
    URL): mvc's pointers alone."""
    path = models_at(git, commit).get(name)
    if path is None:
        raise RegistryError(
            f"{name} is not a model at commit {commit[:7]}: name its file with "
            f"'mvc add PATH --name {name}' and commit, or pick another --rev"
        )
    prel = path + ptrfmt.SUFFIX
    blob = git.blob_ids(commit, [prel])[prel]
    data = git.blob(blob) if blob is not None else _imported(repo, commit, path)
    if data is None:
        raise RegistryError(
            f"{path} (model {name}) is not tracked by mvc at commit {commit[:7]}: run "
            f"{in_quotes('mvc add ' + shell_quoted(path) + ' --name ' + str(name))} and commit, or pick another --rev"
        )
    p = ptrfmt.loads(data, f"{prel} at {commit[:7]}")
    return {"path": path, "kind": p.kind, "oid": p.oid, "size": p.size, "meta": p.meta}


def _imported(repo: Any, commit: str, path: str) -> bytes | None:
    """The pointer another tool's file at path stands for at commit, through the map of an import, or None."""
    from mvc.repo import foreign

    return foreign.pointer_of(repo, commit, path) if repo is not None else None


def resolve_ref(git: gitmod.Git, text: str) -> str | None:
    """The commit a registry revision names (``NAME@vX.Y.Z``, ``NAME#STAGE``, ``NAME@latest``), or None
    when text is not one or names no model in the registry (then it is left to git)."""
    ref = tagfmt.parse_ref(text)
    if ref is None:
        exact = _exact_tag(git, text)
        return exact[1] if exact is not None else None
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
        v = find_version(m, ref.version)
        if not v.active:
            raise RegistryError(
                f"{m.name}@{v.name} was deregistered: to read it anyway, give the model's path with its commit "
                f"({ptrfmt.suggested('mvc get {} --rev {}', m.path() or 'PATH', v.commit[:10])})"
            )
        return v.commit
    if ref.stage is None:
        return None
    vs = m.stage(ref.stage)
    if vs is None:
        held = ", ".join(m.stages()) or "none"
        raise RegistryError(
            f"stage {ref.stage} of {m.name} points to no version (stages in use: {held}): "
            f"assign one with 'mvc assign {m.name} {ref.stage}'"
        )
    return m.versions[vs.version].commit


def _exact_tag(git: gitmod.Git, text: str) -> tuple[str, str] | None:
    """(model name, commit) of the registry tag named exactly text when it has a counter (GTO's
    ``churn#prod#3``, a stage as its third assignment left it; ``churn@v1.0.0#1``), else None."""
    t = tagfmt.parse(text)
    if t is None or t.counter is None or t.action not in (tagfmt.REGISTER, tagfmt.ASSIGN):
        return None
    m = load(git).get(t.artifact)
    e = next((e for e in m.events if e.tag == text), None) if m is not None else None
    return (t.artifact, e.commit) if e is not None else None


def unknown_ref(text: str, names: Collection[str]) -> str | None:
    """Why text (no tracked path) names no registry revision though it looks like one: a model of ``names`` (the
    registry's) and what is no version or stage (``churn@v9``, ``churn@1.2.0``), or a model not among them."""
    ref = tagfmt.parse_ref(text)
    if ref is not None:
        if ref.name in names:
            return None
        return (
            f"{text}: no model named {ref.name!r} in this repository's tags (see 'mvc registry'); a shallow or "
            "single-branch clone may lack them: run 'git fetch --tags', or read it with 'mvc get --repo URL'"
        )
    for sep in ("@", "#"):
        name, found, rest = text.partition(sep)
        if found and name in names:
            return (
                f"{text}: {rest!r} is no version or stage of model {name}: write {name}@vX.Y.Z (e.g. {name}@v1.0.0), "
                f"{name}@latest or {name}#STAGE (see 'mvc registry')"
            )
    return None


def model_ref(git: gitmod.Git, text: str) -> tuple[str, str] | None:
    """(tracked path, commit) for a registry revision used in place of a path (``mvc checkout churn#prod``),
    or None when text is not a registry revision of a known model."""
    ref = tagfmt.parse_ref(text)
    exact = _exact_tag(git, text) if ref is None else None
    if ref is None and exact is None:
        return None
    name = ref.name if ref is not None else exact[0]  # type: ignore[index]
    commit = resolve_ref(git, text)
    if commit is None:
        return None
    path = models_at(git, commit).get(name)
    if path is None:
        m = load(git).get(name)
        path = (
            next((e.fields["path"] for e in reversed(m.events) if e.commit == commit and "path" in e.fields), None)
            if m
            else None
        )
    if path is None:
        table = name if name.isascii() and name.replace("-", "").replace("_", "").isalnum() else f'"{name}"'
        raise RegistryError(
            f"{name} has no path at commit {commit[:7]}: its .mvc/config.toml has no [models.{table}]; use "
            f"{ptrfmt.suggested('mvc get PATH --rev {}', commit[:10])}"
        )
    return path, commit
