"""Mending a remote: a damaged copy of an object rewritten there from the local cache's sound one (``mvc verify
-r REMOTE --repair``).

Only a file whose name proves its bytes is rewritten, so that no reader can be handed anything else: an object
stored alone (named by its oid), a lone pack (named by the object's digest), or a pack of small objects, rebuilt
whole from its index and the cache's copies of every object in it and published only if it hashes to its name.
A chunked object's chunks and deltas are not (they are cut from versions, not kept in the cache): the object is
published whole as its lone pack (named by its digest), which readers take before its recipe. The new file
replaces the old one as every upload does, complete or not at all; nothing is deleted.
"""

from __future__ import annotations

import os

from mvc.errors import CorruptObject, ObjectMissing, RemoteCorrupt, RemoteObjectMissing
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects import reader
from mvc.objects.odb import ODB
from mvc.objects.transfer import Transfer
from mvc.storage import fileio


def mend(remote: Transfer, odb: ODB, oid: str, size: int | None = None) -> tuple[str, str]:
    """Rewrite remote's copy of object oid from the cache, which holds it sound (the caller re-hashed it). Returns
    (the remote's file rewritten, "") or ("", why it was not)."""
    rb = remote.rebuilder()
    if oid in rb.bad_whole or oid in rb.wrong_whole:  # the lone pack that is the object, found damaged by a read
        _put(remote, odb, oid, pk.whole_rel(oid))
        rb.rewritten_whole(oid)
        return pk.whole_rel(oid), ""
    try:
        where = reader.locate(remote, oid, size)
    except RemoteObjectMissing:
        return "", "it is not on the remote"
    except CorruptObject as e:  # (a damaged recipe or pack index, found while looking)
        return "", str(e)
    if where.chunked:  # its chunks and deltas are cut from versions the cache does not keep: the object goes whole,
        # as its lone pack, which readers take before its recipe (what other versions share stays as it is)
        from mvc.objects import layout

        remote.check_layout(writing=True, fmt=layout.LONE)
        _put(remote, odb, oid, pk.whole_rel(oid))
        rb.rewritten_whole(oid)
        return pk.whole_rel(oid), ""
    if not where.packed:  # stored alone, or the lone pack that is the object
        _put(remote, odb, oid, where.rel)
        return where.rel, ""
    name = where.rel[len("packs/") : -len(".pack")]
    data, why = _rebuilt_pack(remote, odb, name)
    if data is None:
        return "", why
    remote.store.put_bytes(where.rel, data)
    return where.rel, ""


def _put(remote: Transfer, odb: ODB, oid: str, rel: str) -> None:
    """The cache's copy of oid published at rel, hashed on its way there."""

    def check(digest: str) -> None:
        if oids.from_digest(digest) != oid:  # changed since it was re-hashed: nothing is published
            raise CorruptObject(f"cache object {oid} changed while it was sent: run 'mvc verify --repair' again")

    path = odb.path(oid)
    if os.access(path, os.F_OK):
        remote.store.put_file(path, rel, check)
        return
    data = odb.read_bytes(oid)  # in one of the cache's packs (under 1 MiB)
    check(fileio.hexdigest_bytes(data))
    remote.store.put_bytes(rel, data)


def _rebuilt_pack(remote: Transfer, odb: ODB, name: str) -> tuple[bytes | None, str]:
    """Pack name's bytes made again from its index and the cache's copies of its objects, if that hashes to its
    name; else (None, why not)."""
    try:
        index = remote.store.get_range(pk.index_rel(name), 0, pk.INDEX_MAX + 1)
        entries = sorted(pk.parse_index(index, remote.store.where(pk.index_rel(name))), key=lambda e: e.offset)
    except (RemoteObjectMissing, RemoteCorrupt, CorruptObject) as err:
        return None, f"the index of its pack cannot be read ({err})"
    parts: list[bytes] = []
    at = 0
    for e in entries:
        if e.offset != at:
            return None, f"its pack {name} has bytes no object of its index covers"
        try:
            data = odb.read_bytes(e.oid)
        except (ObjectMissing, CorruptObject, OSError):
            return None, f"the cache lacks {e.oid}, which shares its pack {name}"
        if len(data) != e.size or oids.from_digest(fileio.hexdigest_bytes(data)) != e.oid:
            return None, f"the cache's copy of {e.oid}, which shares its pack {name}, is not sound"
        parts.append(data)
        at += e.size
    whole = b"".join(parts)
    if fileio.hexdigest_bytes(whole) != name:
        return None, f"its pack {name} was not made from its objects alone, and cannot be made again"
    return whole, ""
