"""Registry tag names and annotations, in GTO's grammar (see docs/FORMAT.md, "Registry tags").

Readers accept every tag name GTO 1.10 accepts; writers use only the stricter grammar that every
GTO version reads (lowercase names). Pure functions: no git, no I/O.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mvc.errors import RegistryError

REGISTER, DEREGISTER, ASSIGN, UNASSIGN, DEPRECATE, CREATE = (
    "register",
    "deregister",
    "assign",
    "unassign",
    "deprecate",
    "create",
)
# GTO's event priorities: the tie-break between tags with the same tagger time (see FORMAT.md)
PRIORITY = {CREATE: 1, DEPRECATE: 2, REGISTER: 3, DEREGISTER: 4, ASSIGN: 5, UNASSIGN: 6}

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-/_]*[a-zA-Z0-9])?"
_DIRNAME = r"[a-zA-Z0-9\-_./]+"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD = r"[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*"
# semver 2.0 (GTO's regex, with [0-9] where it has \d: Python's \d takes any script's digits, which int() reads,
# so churn@v1.0.\u0663 would be v1.0.3): capturing major, minor, patch, pre-release, build, for _SEMVER_PATTERN
SEMVER = (
    rf"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?(?:\+({_BUILD}))?"
)
_SEMVER_NOGROUPS = (
    rf"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    rf"(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?(?:\+{_BUILD})?"
)
# GTO writes a monorepo artifact "dir/sub:name" as "dir/sub=name" in tag names
_ARTIFACT_IN_TAG = rf"(?:{_DIRNAME}=)?{_NAME}"
_ARTIFACT = rf"(?:{_DIRNAME}:)?{_NAME}"
TAG_RE = re.compile(
    rf"^(?P<artifact>{_ARTIFACT_IN_TAG})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER_NOGROUPS}))(?P<cancel>!?)"
    r"|@(?:(?P<deprecated>deprecated)|(?P<created>created)))"
    r"(?:#(?P<counter>[0-9]+))?$"
)
# Patterns used only now and then stay strings: re compiles them on first use (and caches them),
# so reading the registry pays for compiling TAG_RE alone.
REF_PATTERN = rf"^(?P<artifact>{_ARTIFACT})(?:#(?P<stage>{_NAME})|@(?P<version>latest|greatest|v{_SEMVER_NOGROUPS}))$"
_SEMVER_PATTERN = rf"^v?{SEMVER}$"
# what mvc writes: readable by every GTO release (older ones allow only lowercase, digits, '-', '/')
_STRICT_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9\-/]*[a-z0-9])?$"
_NAME_PATTERN = rf"^{_NAME}$"

TRAILER_PREFIX = "mvc-"
_TRAILER_RE = re.compile(r"^mvc-([a-z][a-z0-9-]*): (.*)$")


class TagName(NamedTuple):
    """What a registry tag name says. ``artifact`` uses ``:`` for GTO's directory separator."""

    artifact: str
    action: str
    version: str | None = None
    stage: str | None = None
    counter: int | None = None


def parse(tag: str) -> TagName | None:
    """The meaning of a tag name (without ``refs/tags/``), or None if it is not a registry tag."""
    m = TAG_RE.match(tag)
    if m is None:
        return None
    cancel = m["cancel"] == "!"
    counter = int(m["counter"]) if m["counter"] is not None else None
    artifact = m["artifact"].replace("=", ":")
    if m["version"]:
        return TagName(artifact, DEREGISTER if cancel else REGISTER, version=m["version"], counter=counter)
    if m["stage"]:
        return TagName(artifact, UNASSIGN if cancel else ASSIGN, stage=m["stage"], counter=counter)
    return TagName(artifact, DEPRECATE if m["deprecated"] else CREATE, counter=counter)


def format(t: TagName) -> str:
    """The tag name for t; the inverse of :func:`parse` for every name mvc writes."""
    art = t.artifact.replace(":", "=")
    body = {
        REGISTER: f"{art}@{t.version}",
        DEREGISTER: f"{art}@{t.version}!",
        ASSIGN: f"{art}#{t.stage}",
        UNASSIGN: f"{art}#{t.stage}!",
        DEPRECATE: f"{art}@deprecated",
        CREATE: f"{art}@created",
    }[t.action]
    return body if t.counter is None else f"{body}#{t.counter}"


class Ref(NamedTuple):
    """A registry revision: ``NAME@vX.Y.Z``, ``NAME#STAGE`` or ``NAME@latest``."""

    name: str
    version: str | None = None  # "vX.Y.Z"
    stage: str | None = None
    latest: bool = False


def parse_ref(text: str) -> Ref | None:
    m = re.match(REF_PATTERN, text)
    if m is None:
        return None
    v = m["version"]
    if v in ("latest", "greatest"):
        return Ref(m["artifact"], latest=True)
    return Ref(m["artifact"], version=v, stage=m["stage"])


def is_name(text: str) -> bool:
    """Whether GTO would read text as an artifact or stage name."""
    return re.match(_NAME_PATTERN, text) is not None


def check_names(name: str, stage: str | None = None) -> None:
    """check_name of a model's name, and of a stage's when given."""
    check_name(name)
    if stage is not None:
        check_name(stage, "stage name")


def check_name(name: str, what: str = "model name") -> str:
    """Refuse a name mvc would not write (see the strict grammar in FORMAT.md)."""
    if not re.match(_STRICT_NAME_PATTERN, name) or "//" in name:
        example = "prod or staging" if "stage" in what else "churn or cv/resnet-50"
        raise RegistryError(
            f"invalid {what} {name!r}: use lowercase letters, digits, '-' and '/'-separated "
            f"parts, starting and ending with a letter or digit (e.g. {example})"
        )
    return name


# -- semantic versions ------------------------------------------------------------------------
def check_version(text: str) -> str:
    """A semver 2.0 version as GTO names it (``v1.2.3``); a missing ``v`` is added."""
    if not re.match(_SEMVER_PATTERN, text):
        raise RegistryError(f"invalid version {text!r}: use semantic versioning, e.g. v1.2.0 or v2.0.0-rc.1")
    return text if text.startswith("v") else "v" + text


def _parts(version: str) -> tuple[int, int, int, str | None]:
    # string operations, not _SEMVER_PATTERN: versions read from tags were checked by TAG_RE already
    try:
        core, _, pre = version.lstrip("v").partition("+")[0].partition("-")
        major, minor, patch = (int(x) for x in core.split("."))
    except ValueError:
        raise RegistryError(f"invalid version {version!r}: use semantic versioning, e.g. v1.2.0") from None
    return major, minor, patch, pre or None


def semver_key(version: str) -> tuple:
    """Sort key giving semver 2.0 precedence (build metadata ignored)."""
    major, minor, patch, pre = _parts(version)
    if pre is None:
        return (major, minor, patch, (1,))
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, (0, ids))


def bump(version: str, part: str = "patch") -> str:
    """The next version: bumping drops pre-release and build parts, as python-semver (GTO) does."""
    major, minor, patch, _pre = _parts(version)
    if part == "major":
        return f"v{major + 1}.0.0"
    if part == "minor":
        return f"v{major}.{minor + 1}.0"
    return f"v{major}.{minor}.{patch + 1}"


FIRST_VERSION = "v0.0.1"


# -- annotations ------------------------------------------------------------------------------
def format_message(message: str, fields: dict[str, object]) -> str:
    """The tag annotation: the message, a blank line, then one ``mvc-KEY: VALUE`` line per field."""
    text = "\n".join(line.rstrip() for line in message.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    text = text.strip("\n")
    trailers = "\n".join(f"{TRAILER_PREFIX}{k}: {v}" for k, v in fields.items() if v is not None)
    for k, v in fields.items():
        if v is not None and ("\n" in str(v) or "\r" in str(v)):
            raise RegistryError(f"the {k} {v!r} contains a line break: rename it")
    return f"{text}\n\n{trailers}\n" if trailers else f"{text}\n"


def parse_message(text: str) -> tuple[str, dict[str, str]]:
    """(message, {field: value}) from an annotation; GTO's plain messages give no fields. A tag is anyone's
    (a collaborator pushes it): a path, oid or size field that is not one mvc writes is dropped, as if the tag
    did not record it (the pointer at its commit says it then)."""
    text = text.replace("\r\n", "\n").strip("\n")
    if TRAILER_PREFIX not in text:
        return text.strip(), {}
    head, sep, last = text.rpartition("\n\n")
    lines = last.split("\n")
    matches = [_TRAILER_RE.match(line) for line in lines]
    if not all(matches):
        return text.strip(), {}
    fields = {m[1]: m[2] for m in matches if m}
    for key, ok in (("path", _clean_path), ("oid", _is_oid), ("size", _is_size)):
        if key in fields and not ok(fields[key]):
            del fields[key]
    return (head.strip() if sep else ""), fields


_SIZE_RE = re.compile(r"[0-9]{1,19}")


def _clean_path(path: str) -> bool:
    """A path a pointer may track (the rules of docs/FORMAT.md, "Pointer files": ``pointer.bad_target``)."""
    from mvc.format.pointer import bad_target

    return bad_target(path) is None


def _is_oid(value: str) -> bool:
    from mvc.objects import oid as oids

    return oids.is_oid(value)


def _is_size(value: str) -> bool:
    return _SIZE_RE.fullmatch(value) is not None
