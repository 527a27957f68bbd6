"""Object ids: ``xxh128:<32 hex>``. The only place that maps oids to relative paths and back."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mvc.errors import CorruptObject

ALGO = "xxh128"
_OID_RE = re.compile(r"^xxh128:[0-9a-f]{32}$")
_OIDS_RE = re.compile(r"(?:xxh128:[0-9a-f]{32}\n)*")  # oids joined by newlines, each ending in one
_HEX = frozenset("0123456789abcdef")


def is_oid(value: object) -> bool:
    return isinstance(value, str) and _OID_RE.fullmatch(value) is not None


def from_digest(hexdigest: str) -> str:
    return f"{ALGO}:{hexdigest}"


def digest(oid: str) -> str:
    """``xxh128:abcd…`` -> ``abcd…``: also the name of the pack that is the object (docs/FORMAT.md, "Lone packs")."""
    return oid[len(ALGO) + 1 :]


def to_relpath(oid: str) -> str:
    """``xxh128:abcd…`` -> ``ab/cd…`` (the layout shared by the cache and remotes)."""
    if not is_oid(oid):
        raise CorruptObject(f"invalid object id {oid!r}: expected 'xxh128:' and 32 lowercase hex digits")
    digest = oid[len(ALGO) + 1 :]
    return f"{digest[:2]}/{digest[2:]}"


def relpaths(oids: Iterable[str], prefix: str = "") -> dict[str, str]:
    """{prefix + :func:`to_relpath` (oid): oid} for many oids (a push asks about 100,000 at once: one call, not
    three for each)."""
    oids = list(oids)
    try:
        joined = "\n".join(oids) + "\n"  # (a TypeError: one is not a str)
        valid = _OIDS_RE.fullmatch(joined) is not None  # every one, in one pass
    except TypeError:
        valid = False
    if not valid:
        for oid in oids:
            to_relpath(oid)  # raises for the first that is no oid
    return {f"{prefix}{oid[7:9]}/{oid[9:]}": oid for oid in oids}


def split(oid: str, valid: bool = False) -> tuple[str, str]:
    """``xxh128:abcd…`` -> (``ab``, ``cd…``): the fan-out directory and the name in it (``valid``: the caller
    has checked the oid's form)."""
    if not valid and not is_oid(oid):
        to_relpath(oid)  # raises
    return oid[7:9], oid[9:]


def from_relpath(relpath: str) -> str | None:
    """Strict inverse of :func:`to_relpath`; None for anything that is not an object path."""
    parts = relpath.replace("\\", "/").split("/")
    if len(parts) != 2 or len(parts[0]) != 2 or len(parts[1]) != 30:
        return None
    digest = parts[0] + parts[1]
    if not _HEX.issuperset(digest):
        return None
    return from_digest(digest)
