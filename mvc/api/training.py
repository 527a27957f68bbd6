"""``mvc.run``: a training script's record, written into the model's pointer when the script ends well.

The record follows the pointer's ``[meta]`` layout (docs/FORMAT.md): ``training`` {started, ended},
``params``, ``metrics``, ``data`` (name -> {path, oid} of a tracked path, or {url}) and ``artifacts``
(name -> {path, oid, size} of a file stored in the cache). Nothing is written until the block ends
without an exception; then one ``add`` writes the model's pointer with the whole record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date, datetime, timezone
from datetime import time as dtime
from typing import TYPE_CHECKING, Any

from mvc.errors import ConfigError, MetaError, MvcError, ObjectMissing, PathError

if TYPE_CHECKING:
    from mvc.repo.repository import Repo

# the tables a run owns in [meta]: each is replaced by the run's own (an empty one removed)
TABLES = ("training", "params", "metrics", "data", "artifacts")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-/ ]*")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_SCALARS = (str, int, float, bool, datetime, date, dtime)


def run(
    path: str | os.PathLike,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    stage: bool = True,
    repo: Repo | None = None,
) -> Run:
    """A training run that records into the pointer of the model file at path (``with mvc.run(...) as run:``).

    name: the model's registry name (as ``mvc add --name``); params: the first parameters; stage: stage the
    pointer in git, as ``add`` does. The path's rules are checked now, before any training."""
    return Run(path, name=name, params=params, stage=stage, repo=repo)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_key(key: object, what: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise MetaError(
            f"{what} name {key!r} is not allowed: use a string of ASCII letters, digits, '_', '-', '/' or spaces, "
            "without '.' (a dot separates the tables of a key, as in metrics.f1)"
        )
    return key


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (``np.float32(0.9)``, ``arr.mean()``), so that a
    script need not call ``.item()``; anything else as it is."""
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def check_metric(key: str, value: Any) -> int | float:
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetaError(
            f"metric {key!r} is {_shown(value)}: a metric is a number (int or float); record other values with "
            "run.param or run.set"
        )
    return check_value(key, value, "metric")


def check_value(key: str, value: Any, what: str = "param") -> Any:
    """value as TOML stores it (tuples as lists), or MetaError naming key: None and objects TOML has no
    type for are refused; NaN and infinities are kept (TOML writes nan and inf)."""
    value = _plain(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        fix = (
            "a metric is a number TOML holds: pass float(value), or record the exact value as a string with run.param "
            "or run.set"
            if what == "metric"
            else "pass it as a string"
        )
        raise MetaError(f"{what} {key!r} is an integer beyond 64 bits, which TOML cannot store: {fix}")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [check_value(f"{key}[{i}]", v, what) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise MetaError(f"{what} {key!r} has the key {k!r}: the keys of a table are strings")
            out[k] = check_value(f"{key}.{k}", v, what)
        return out
    raise MetaError(
        f"{what} {key!r} is {_shown(value)}, which TOML cannot store: pass a string, number, boolean, date, "
        "list or dict (e.g. str(value))"
    )


def _shown(value: Any) -> str:
    if value is None:
        return "None"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}" if not isinstance(value, (int, float, str)) else text[:40]


class Run:
    """What a training script records; see :func:`run`. ``result`` is ``add``'s result once the block ended
    well (None before, and after an exception)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        stage: bool = True,
        repo: Repo | None = None,
    ):
        from mvc.api.workspace import check_add
        from mvc.repo.repository import open_repo

        self.path = os.fspath(path)
        self.name = name
        self.stage = stage
        self._own = repo is None  # a repository this run opened, it closes
        self.repo = open_repo(repo)
        self.rel = check_add(self.path, name=name, repo=self.repo)
        self.started: str | None = None
        self.ended: str | None = None
        self.record: dict[str, dict[str, Any]] = {t: {} for t in TABLES if t != "training"}
        self.extra: dict[str, Any] = {}
        self.result: dict[str, Any] | None = None
        self._open = True
        if params:
            self.params(params)

    # -- the block ----------------------------------------------------------------------------
    def __enter__(self) -> Run:
        if self.started is not None:
            raise ConfigError(f"the run of {self.rel} has started already: start a new one with mvc.run(...)")
        self._check_open()
        self.started = _now()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        self._open = False
        if kind is not None:  # the script failed: nothing is added, the exception goes on
            if self._own:
                self.repo.close()
            return
        self.ended = _now()
        from mvc.api.workspace import add

        try:
            if not os.path.lexists(self.repo.abs(self.rel)):
                raise PathError(
                    f"the run of {self.rel} ended but {self.rel} was not written: nothing was added; save the model "
                    f"there, then mvc.add({self.path!r}, meta=run.meta()) records this run"
                )
            self._store_artifacts_again()
            self.result = add([self.path], meta=self.meta(), name=self.name, stage=self.stage, repo=self.repo)[0]
        finally:
            if self._own:
                self.repo.close()

    def _store_artifacts_again(self) -> None:
        """An artifact a gc deleted while the run went on (stored hours ago, named by nothing yet) is stored
        again from its file, when that still holds the same bytes; else the error says which one, and how."""
        for key, entry in self.record["artifacts"].items():
            if self.repo.odb.exists(entry["oid"]):
                continue
            try:
                again = _store(self.repo, entry["path"])["oid"]
            except MvcError:
                again = None
            if again != entry["oid"]:
                from mvc.repo.repository import in_quotes, shell_quoted

                raise ObjectMissing(
                    f"artifact {key} ({entry['path']}) of the run of {self.rel} left the cache while the run went on "
                    "(a 'mvc gc' with a short --grace?) and its file no longer holds it: nothing was added; add "
                    f"the model with {in_quotes('mvc add ' + shell_quoted(self.rel))} and record the run again"
                )

    def meta(self) -> list[dict[str, Any]]:
        """The ``meta`` the run passes to ``add``, two tables merged in order: the first removes the run's
        tables (what an earlier add recorded there goes, as add deep-merges), the second holds them complete
        (an empty one left out) and the keys given to :meth:`set`."""
        out: dict[str, Any] = dict(self.extra)
        training = {k: v for k, v in (("started", self.started), ("ended", self.ended)) if v is not None}
        if training:
            out["training"] = training
        for table, values in self.record.items():
            if values:
                out[table] = dict(values)
        return [dict.fromkeys(TABLES), out]

    def _check_open(self) -> None:
        if not self._open:
            raise ConfigError(f"the run of {self.rel} has ended: record values inside the 'with mvc.run(...)' block")

    # -- what a script records ------------------------------------------------------------------
    def param(self, key: str, value: Any) -> None:
        """Record a parameter (any TOML value: string, number, boolean, date, list, dict)."""
        self._check_open()
        self.record["params"][check_key(key, "param")] = check_value(key, value)

    def params(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Record several parameters: a dict, keywords, or both."""
        for k, v in {**(values or {}), **more}.items():
            self.param(k, v)

    def metric(self, key: str, value: float) -> None:
        """Record a metric (a number; NaN and infinities are kept). A later value of the key replaces it."""
        self._check_open()
        self.record["metrics"][check_key(key, "metric")] = check_metric(key, value)

    def metrics(self, values: Mapping[str, float] | None = None, /, **more: float) -> None:
        """Record several metrics: a dict, keywords, or both."""
        for k, v in {**(values or {}), **more}.items():
            self.metric(k, v)

    def set(self, key: str, value: Any) -> None:
        """Record another key of ``[meta]`` (a note, a tag); the run's own tables have their methods."""
        self._check_open()
        check_key(key, "meta")
        if key in TABLES:
            raise MetaError(
                f"meta {key!r} is the run's own table: record into it with run.param, run.metric, run.data or "
                "run.artifact"
            )
        self.extra[key] = check_value(key, value, "meta")

    def data(self, key: str, source: str | os.PathLike) -> dict[str, Any]:
        """Record a data set the model was trained on: a path tracked by mvc (``{path, oid}`` from its
        pointer, refused when the data changed since it was added), or a URL (``{url}``: a user and password in
        it, and the values of query parameters such as ``X-Amz-Signature`` or ``token``, written ``***``: the
        record is committed)."""
        self._check_open()
        check_key(key, "data")
        text = os.fspath(source)
        if _URL.match(text):
            from mvc.storage.store import redact_url  # (the record is committed: no user, password or token)

            entry: dict[str, Any] = {"url": redact_url(text)}
        else:
            entry = _tracked(self.repo, text)
        self.record["data"][key] = entry
        return dict(entry)

    def artifact(self, key: str, path: str | os.PathLike) -> dict[str, Any]:
        """Store a file (a plot, a report) in the cache as it is now and record ``{path, oid, size}``: push
        sends it with the model's pointer and gc keeps it while the pointer is kept."""
        self._check_open()
        check_key(key, "artifact")
        entry = _store(self.repo, os.fspath(path))
        self.record["artifacts"][key] = entry
        return dict(entry)


def _tracked(repo: Repo, path: str) -> dict[str, Any]:
    from mvc.repo.pathstatus import path_status
    from mvc.repo.repository import Repo as RepoClass
    from mvc.repo.repository import in_quotes, shell_quoted
    from mvc.repo.selection import load_pointer

    rel = repo.rel(path)
    prel = RepoClass.pointer_of(rel)
    if not os.path.isfile(repo.abs(prel)):
        raise PathError(
            f"{path} is not tracked by mvc: run {in_quotes('mvc add ' + shell_quoted(path))} first, or record it by URL (e.g. s3://bucket/key)"
        )
    p = load_pointer(repo, prel)
    if path_status(repo, rel, p)[0] == "modified":
        raise PathError(
            f"{path} changed since it was added: run {in_quotes('mvc add ' + shell_quoted(path))} so that the record names the data used"
        )
    return {"path": rel, "oid": p.oid}


def _store(repo: Repo, path: str) -> dict[str, Any]:
    rel = repo.rel(path)
    full = repo.abs(rel)
    if os.path.isdir(full):
        raise PathError(f"{path} is a directory: an artifact is one file ('mvc add' a directory, then run.data)")
    why = repo.untrackable(rel)
    if why is not None:
        raise PathError(f"{path} cannot be an artifact: {why}")
    if not os.path.isfile(full):
        raise PathError(f"{path} does not exist: write the artifact before recording it")
    oid, _how, st = repo.odb.add_file(full, ("reflink", "copy"))
    return {"path": rel, "oid": oid, "size": st.st_size}
