"""The layout of an object store (the cache, or a remote): where an object, a pack and the layout
marker live below its root, and the marker itself (docs/FORMAT.md, "Layout marker").

Every store mvc writes holds ``mvc.toml`` at its root, ``format = 1``. A reader checks it before it
trusts anything else there, and refuses a format it does not know, naming the upgrade.
"""

from __future__ import annotations

import sys

from mvc.errors import LayoutError
from mvc.objects import oid as oids

OBJECTS = "objects/"
MARKER = "mvc.toml"
FORMAT = 1
MARKER_BYTES = b"# mvc object store layout (docs/FORMAT.md); do not edit\nformat = 1\n"
MARKER_MAX = 4096  # a marker is a few bytes: a bigger one is not mvc's


def object_rel(oid: str) -> str:
    """Where object oid lives below a store's root: ``objects/ab/cdef…``."""
    return OBJECTS + oids.to_relpath(oid)


def check_marker(data: bytes, where: str) -> int:
    """The layout format that a marker's bytes declare; refuses a marker that is not mvc's or whose
    format this version of mvc does not know."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        if len(data) > MARKER_MAX:
            raise ValueError("too large")
        doc = tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise LayoutError(
            f"{where} is not an mvc layout marker: this is not an mvc store; point mvc at another location"
        ) from None
    fmt = doc.get("format")
    if type(fmt) is not int:
        raise LayoutError(f"{where} has no integer 'format': this is not an mvc store; point mvc at another location")
    if fmt != FORMAT:
        raise LayoutError(
            f"{where} says layout format {fmt}, which this mvc does not know (it reads format {FORMAT}): "
            "upgrade mvc (pip install -U mvc)"
        )
    return fmt
