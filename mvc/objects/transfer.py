"""The transfer engine: moving objects between the local object database and a store.

It works on an ``ODB``, a ``Store`` and a ``Journal``, never on a repository: which objects to move is
the caller's choice (``mvc.repo.remotes``, ``mvc.api.sync``). Small objects go up in packs; objects
come down alone or in ranged reads of packs, each hashed before it enters the cache.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from mvc.errors import CorruptObject, RemoteCorrupt, RemoteNotFound, RemoteObjectMissing, RemoteWrongSize
from mvc.objects import layout
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects import recipe as rc
from mvc.objects.journal import Journal
from mvc.objects.meter import Meter, Recorder
from mvc.objects.odb import ODB
from mvc.storage import fileio
from mvc.storage.fileio import Progress
from mvc.storage.parallel import run_parallel
from mvc.storage.store import LARGE, Store

if TYPE_CHECKING:
    from mvc.objects.chunked import Rebuilder

EXISTS_EACH = 64  # up to this many objects to look for, ask for each; above, maybe list the remote
LIST_PAGE = 1000  # objects per listing request (S3 and most object stores)
# A large object moves in parts held in memory (s3fs: 10 x 50 MiB at once), so only this many move at
# a time, however many jobs run; small objects fill the other jobs meanwhile.
LARGE_AT_ONCE = 2
PACKS_AT_ONCE = 4  # packs are built in memory (up to about pack.TARGET each)
RECORD_EVERY = 1.0  # seconds: packs uploaded are written to the journal at most this often (and at the end)
_arenas = threading.local()  # a pool thread's pack arena (TARGET + OBJECT_MAX bytes), gone with the thread
Packed = list[tuple[str, list[pk.Entry], int]]  # packs put: (name, entries, bytes)


class Transfer:
    """Moves objects between the object database ``odb`` and ``store``, keeping ``journal``'s record of
    the store (under ``key``, its identity) up to date: which objects are there, alone or in packs.

    ``name`` is the remote's name for messages; ``packs`` whether uploads may pack small objects;
    ``chunks`` whether large ones go up as chunks and deltas (docs/FORMAT.md, "Chunked objects").
    """

    def __init__(
        self,
        store: Store,
        odb: ODB,
        journal: Journal,
        key: str,
        *,
        name: str,
        jobs: int | None = None,
        packs: bool = True,
        chunks: bool = True,
    ):
        self.store, self.odb, self.jr, self.key, self.name = store, odb, journal, key, name
        self.jobs = max(1, jobs or store.default_jobs)
        self.packs = packs
        self.chunks = chunks and packs
        self._packs_read = False
        self._reading = threading.Lock()  # held by the thread reading small objects into a pack
        self._marker: bool | None = None  # the layout marker: None until read, then whether it is there
        self.format = 1  # the layout format the marker declares (none: 1)
        self._rebuilder: Rebuilder | None = None
        self.remote_only = False  # chunked objects rebuilt from the remote's bytes alone (verify -r), no cached base
        self.local_versions: dict[str, list[str]] = {}  # {oid: versions in the cache a rebuild may take chunks of}
        self._located: dict[str, tuple[str, pk.Entry]] = {}  # indexes read now (the journal may be read-only)
        self._unlocated: list[tuple[str, list[pk.Entry]]] = []  # recorded since, put in _located when asked
        self._whole_packs: set[str] = set()  # names of the packs listed (format 4: a pack named by an oid is it)
        self.bad_indexes: list[str] = []
        self.damaged: list[str] = []  # what the last download refused as damaged on the remote, said first first
        self.bases_in_cache = False  # deltas may take bases the cache holds whole (its compacted store)
        self.sampled_bases = False  # of several delta bases, the first a sample says pays (ChunkWriter's sampled)
        self.lone = store.copies_ranges  # a large new file may go up as a lone pack (docs/FORMAT.md, "Lone packs")

    def close(self) -> None:
        self.store.close()

    def check_writable(self) -> None:
        """Refuse, before any request, to write to a store that only reads."""
        self.store.refuse_write()

    # -- the layout marker (docs/FORMAT.md, "Layout marker") ------------------------------------
    def check_layout(self, writing: bool = False, fmt: int = layout.FORMAT) -> None:
        """Read the store's layout marker once, refusing a store that is not mvc's or whose format this
        mvc does not know; before the first write, create the marker where there is none, unless the store
        holds what an mvc remote does not (one listing of its root, only then: a store has no marker
        before its first push, or was written before markers existed), and raise it to ``fmt`` where it
        declares less (docs/FORMAT.md: format 2 before the first recipe)."""
        if self._marker is None:
            try:
                data = self.store.get_range(layout.MARKER, 0, layout.MARKER_MAX + 1)
            except (RemoteObjectMissing, RemoteNotFound):
                # no marker: a store from before markers, or an empty one (a directory remote that does not
                # exist yet is made by the first push; reading it fails on the first object, as it did)
                self._marker = False
            else:
                self.format = layout.check_marker(data, f"{self.store.where(layout.MARKER)} (remote {self.name})")
                self._marker = True
        if writing and not self._marker and not self.store.read_only:
            layout.refuse_foreign(
                self.store.names(),
                layout.REMOTE_ENTRIES,
                f"{self.store.url} (remote {self.name})",
                "an mvc remote",
                f"point the remote at an empty location or an mvc remote ('mvc remote modify {self.name} url URL')",
            )
            self._marker, self.format = True, 0  # a marker is written next, as the store holds nothing yet
        if writing and self.format < fmt and not self.store.read_only:
            # the first write, or the first chunked object (before its recipe): an mvc that does not read
            # recipes then refuses the remote instead of finding objects missing
            self.store.put_bytes(layout.MARKER, layout.marker_bytes(fmt))
            self.format = fmt

    def rebuilder(self) -> Rebuilder:
        """Reads the remote's chunked objects (one per transfer: the recipes it read are kept)."""
        if self._rebuilder is None:
            from mvc.objects.chunked import Rebuilder  # here: checkout's start-up does not pay for it

            self._rebuilder = Rebuilder(self.store, None if self.remote_only else self.odb, self.name)
        return self._rebuilder

    # -- where objects are ---------------------------------------------------------------------
    def packs_gone(self, names: set[str]) -> None:
        """Packs the journal placed objects in, found gone (a gc may have rewritten them into others): forgotten,
        and ``packs/`` listed again by the next :meth:`read_packs`."""
        self.jr.forget_packs(self.key, names)
        self._place()
        self._located = {o: at for o, at in self._located.items() if at[0] not in names}
        self._packs_read = False

    def forget_placement(self) -> None:
        """Forget where this command found objects on the remote (packs listed, indexes read): the next question
        is answered by the remote as it is now (a gc deleted from it meanwhile)."""
        self._located.clear()
        self._unlocated.clear()
        self._whole_packs = set()
        self._packs_read = False

    def read_packs(self, recheck: bool = False) -> None:
        """Bring the record of the remote's packs up to date, once per command: one listing of ``packs/``
        (with sizes), then each index not read before, each entry checked against its pack's size. Packs
        gone from the remote are forgotten; a pack whose index is refused is not recorded (its objects
        count as absent, ``bad_indexes`` names it). ``recheck`` (``push --verify-remote``): forget what the
        journal recorded of the remote's packs and read every index again."""
        if self._packs_read and not recheck:
            return
        self.check_layout()
        self._packs_read = True
        sizes = self.store.list_sizes("packs/")
        names = pk.names_in(sizes)
        if self.format >= layout.LONE:  # with or without an index: the index only lists the object's chunks
            self._whole_packs = pk.packs_in(sizes)
        recorded = self.jr.pack_names(self.key)
        if recheck:  # nothing recorded is trusted: every pack is recorded again from its index, or not at all
            self.jr.forget_packs(self.key, recorded)
            self._located.clear()
            self._unlocated.clear()
            recorded = set()
        else:
            self.jr.forget_packs(self.key, recorded - names)

        def read(name: str) -> list[pk.Entry] | str | None:
            rel = pk.index_rel(name)
            try:
                data = self.store.get_range(rel, 0, pk.INDEX_MAX + 1)
                return pk.parse_index(data, self.store.where(rel), sizes[pk.pack_rel(name)])
            except RemoteObjectMissing:
                return None  # deleted since the listing
            except CorruptObject:
                return self.store.where(rel)  # refused whole: its objects count as absent

        found: list[tuple[str, list[pk.Entry]]] = []

        def done(name: str, result: list[pk.Entry] | str | None) -> None:
            if isinstance(result, str):
                self.bad_indexes.append(result)
            elif result is not None:
                found.append((name, result))

        try:
            run_parallel(read, sorted(names - recorded), self.jobs, done)
        finally:
            self._record_packs(found)

    def _record_packs(
        self, packs: list[tuple[str, list[pk.Entry]]], written: Callable[[], object] | None = None
    ) -> None:
        """Record packs on the remote (written: waited for first, see Journal.add_packs)."""
        self.jr.add_packs(self.key, packs, written)
        self._unlocated += packs  # (a push of 100,000 small objects seldom asks where they are: not mapped now)

    def _place(self) -> None:
        """Put the packs recorded since into _located."""
        for name, entries in self._unlocated:
            for e in entries:
                self._located.setdefault(e.oid, (name, e))
        self._unlocated.clear()

    def locate(self, wanted: Iterable[str]) -> dict[str, tuple[str, pk.Entry]]:
        """{oid: (pack name, entry)} for the wanted objects known to be in a pack."""
        wanted = set(wanted)
        self._place()
        found = {o: self._located[o] for o in wanted if o in self._located}
        found.update(self.jr.locate(self.key, wanted - set(found)))
        return found

    def existing(self, wanted: Iterable[str]) -> set[str]:
        """Which of the oids are on the remote, asking as little as the store allows."""
        wanted = set(wanted)
        if not wanted:
            return set()
        self.read_packs()
        found = set(self.locate(wanted)) | {o for o in wanted if self.is_pack(o)}
        rest = wanted - found
        store = self.store
        if not store.cheap_exists and len(rest) > EXISTS_EACH:
            # A listing costs one request per LIST_PAGE objects on the remote; asking costs one per object.
            # One prefix of the 256 tells the remote's size (DVC estimates it the same way).
            estimate = len(store.list("objects/00/")) * 256
            if estimate // LIST_PAGE < len(rest):
                listed = {
                    oids.from_relpath(rel[len("objects/") :])
                    for rel in store.list("objects/")
                    if rel.startswith("objects/")
                }
                if self.format >= layout.CHUNKED:
                    listed |= {
                        oids.from_relpath(rel[len(rc.RECIPES) :])
                        for rel in store.list(rc.RECIPES)
                        if rel.startswith(rc.RECIPES)
                    }
                return found | (rest & listed)
        if store.cheap_exists:
            rels = oids.relpaths(rest, layout.OBJECTS)
            found |= {rels[rel] for rel in store.exist(list(rels))}
            if self.format >= layout.CHUNKED:
                recipes = oids.relpaths((o for o in rest if o not in found), rc.RECIPES)
                found |= {recipes[rel] for rel in store.exist(list(recipes))}
            return found

        def there(o: str) -> bool:
            return store.exists(layout.object_rel(o)) or (self.format >= layout.CHUNKED and store.exists(rc.rel(o)))

        ordered = sorted(rest)
        run_parallel(there, ordered, self.jobs, lambda o, yes: found.add(o) if yes else None)
        return found

    def is_pack(self, oid: str) -> bool:
        """Whether object oid is a pack of the store, listed by the last :meth:`read_packs` (docs/FORMAT.md,
        "Lone packs": on a store of format 4, a pack named by an object's digest is that object, present)."""
        return oids.digest(oid) in self._whole_packs

    def incomplete(self, found: Iterable[str]) -> set[str]:
        """Of these objects on the store, those stored chunked whose recipe is damaged or names a pack that is
        not there, or bytes past its end, or a delta of which has a base the store lacks or holds incomplete
        (``push --verify-remote``: they are pushed again)."""
        if self.format < layout.CHUNKED:
            return set()
        return self.rebuilder().incomplete(found, self.store.list_sizes("packs/"), self.existing)

    # -- moving objects ------------------------------------------------------------------------
    def upload(
        self,
        todo: list[str],
        sizes: dict[str, int],
        meter: Meter,
        recorder: Recorder,
        bases: dict[str, list[str]] | None = None,
    ) -> int:
        """Upload the objects (from the cache, verified on the way out); returns bytes sent. When there
        are enough small ones they go in packs, each pack's index after the pack. Large ones go as chunks
        and deltas (against the versions ``bases`` names for them, tried in order) when the remote takes
        them, each recipe after the packs it names."""
        from mvc.objects.chunked import CHUNK_FROM

        chunking = self.chunks and any(sizes[o] >= CHUNK_FROM for o in todo)
        self.check_layout(writing=True, fmt=layout.CHUNKED if chunking else layout.FORMAT)
        sent = 0
        if self.chunks:
            for oid in bases_first([o for o in todo if sizes[o] >= CHUNK_FROM], bases or {}):
                sent += self._put_chunked(oid, (bases or {}).get(oid, []), meter)
                recorder.add(oid)
                meter.object_done()
            todo = [o for o in todo if sizes[o] < CHUNK_FROM]
        small = {o: sizes[o] for o in todo if sizes[o] < pk.OBJECT_MAX}
        if not self.packs or len(small) < pk.MIN_OBJECTS:
            small = {}
        items: list[tuple[int, Any]] = [(sizes[o], o) for o in todo if o not in small]
        whole = self._whole_cache_packs(small)  # cache packs every object of which goes: sent as they are
        for oids_of in whole.values():
            for o in oids_of:
                del small[o]
        items += [(sum(map(sizes.__getitem__, g)), g) for g in pk.group(small)]
        items += [(sum(map(sizes.__getitem__, g)), (name, g)) for name, g in whole.items()]
        # large first: their parts keep the store busy while the small ones queue behind
        items.sort(key=lambda item: -item[0])
        large = threading.BoundedSemaphore(LARGE_AT_ONCE)
        packing = threading.BoundedSemaphore(PACKS_AT_ONCE)

        def put_alone(oid: str) -> int:
            if not os.access(self.odb.path(oid), os.F_OK):  # in one of the cache's packs (under 1 MiB)
                data = self.odb.read_bytes(oid)
                self.store.put_bytes(layout.object_rel(oid), data)
                meter.update(len(data))
                meter.object_done()
                return len(data)
            n = self.store.put_file(
                self.odb.path(oid),
                layout.object_rel(oid),
                lambda digest: _check_cached(self.odb, oid, digest),
                meter.update,
            )
            meter.object_done()
            return n

        def put(item: tuple[int, Any]) -> tuple[Packed, list[tuple[str, int]]]:
            size, what = item
            if isinstance(what, str):
                with large if size > LARGE else contextlib.nullcontext():
                    return [], [(what, put_alone(what))]
            with packing:
                if isinstance(what, tuple):  # a cache pack, sent whole; else (damaged since) its objects packed
                    name, what = what
                    packs = self._put_cache_pack(name, what, meter)
                    if packs:
                        return packs, []
                packs = self._put_pack(what, meter)
            # an object larger than its size said (sizes may come from pointers) is never packed
            inside = {e.oid for _, entries, _ in packs for e in entries}
            return packs, [(o, put_alone(o)) for o in what if o not in inside]

        went: list[tuple[str, list[pk.Entry]]] = []  # packs uploaded, not yet in the journal
        last = time.monotonic()

        def record() -> None:
            nonlocal last
            self._record_packs(went)
            went.clear()
            last = time.monotonic()

        def done(item: tuple[int, Any], result: tuple[Packed, list[tuple[str, int]]]) -> None:
            nonlocal sent
            packs, alone = result
            # recorded together at most once a second, and at the end: a transaction each costs a disk sync
            went.extend((name, entries) for name, entries, _ in packs)
            if time.monotonic() - last > RECORD_EVERY:
                record()
            for oid, _ in alone:
                recorder.add(oid)
            sent += sum(n for _, _, n in packs) + sum(n for _, n in alone)

        self.store.stopping.clear()
        try:
            run_parallel(put, items, self.jobs, done, self.store.stopping)  # stopping: see S3Store._put_multipart
        finally:
            record()  # what went up, even when the rest failed
        return sent

    def _put_chunked(self, oid: str, bases: list[str], meter: Meter) -> int:
        from mvc.objects.chunked import LONE_FROM
        from mvc.objects.chunkwriter import ChunkWriter

        if self.lone and not bases and os.path.getsize(self.odb.path(oid)) >= LONE_FROM:
            return self._put_lone(oid, meter)
        self.read_packs()  # what the remote holds already: only the rest is sent
        sent = self._complete([b for b in bases if b != oid])
        writer = ChunkWriter(
            self.store,
            self.odb,
            self.rebuilder(),
            self.locate,
            self._record_packs,
            self.jobs,
            present=lambda o: (self.bases_in_cache and self.odb.exists(o)) or o in self.existing([o]),
            sampled=self.sampled_bases,
        )
        recipe, fmt, more = writer.upload(oid, bases, lambda digest: _check_cached(self.odb, oid, digest), meter.update)
        sent += more
        self.check_layout(writing=True, fmt=fmt)  # 2, or 3 for a recipe naming sparse deltas
        self.store.put_bytes(rc.rel(oid), recipe)  # last: the recipe makes the object present
        return sent + len(recipe)

    def _put_lone(self, oid: str, meter: Meter) -> int:
        """A file with no earlier version, to a store that copies in the kernel: one lone pack, the file copied
        whole (verified on the way) under its own digest, and nothing more. Its chunks are listed by the first
        push that takes it as a base (:meth:`_complete`): a push of a new file costs what a whole object's does
        (docs/FORMAT.md, "Lone packs")."""
        self.check_layout(writing=True, fmt=layout.LONE)  # before the pack: an older mvc refuses, not misses it
        n = self.store.put_file(
            self.odb.path(oid),
            pk.whole_rel(oid),
            lambda digest: _check_cached(self.odb, oid, digest),
            meter.update,
        )
        self._whole_packs.add(oids.digest(oid))
        return n

    def _complete(self, bases: list[str]) -> int:
        """List the chunks of the first of bases that is a lone pack here and whole in the cache: its pack's index,
        then its recipe (what a push of it would have written, without copying it again), so that the push that
        follows finds them and sends none of them. Returns the bytes written."""
        from mvc.objects import chunkwriter

        rb = self.rebuilder()
        for b in bases[: chunkwriter.LOCAL_BASES]:
            try:
                if not self.is_pack(b) or not self.odb.exists(b) or rb.recipe(b) is not None:
                    continue
                name, entries, index, r = chunkwriter.describe_whole(
                    self.odb, b, functools.partial(_check_cached, self.odb, b)
                )
            except CorruptObject:
                continue  # a damaged recipe (push --verify-remote mends it), or a cache object quarantined
            recipe = rc.render(r.size, r.bases, r.entries)
            self.store.put_bytes(pk.index_rel(name), index)  # the index, then the recipe, as a push writes them
            self._record_packs([(name, entries)])
            self.store.put_bytes(rc.rel(b), recipe)
            rb.learn(b, r)
            return len(index) + len(recipe)
        return 0

    def _whole_cache_packs(self, small: dict[str, int]) -> dict[str, list[str]]:
        """{cache pack name: its objects} of the cache packs whose every object is among the small objects this
        upload sends (docs/FORMAT.md, "Cache packs": the format of a remote pack and its index, named the same
        way). A large add's packs, pushed next, go as they are: no object read, packed and hashed one by one."""
        if not small or not self.odb.packs.any():
            return {}
        by_pack: dict[str, list[str]] = {}
        for oid, name in self.odb.packs.listed().items():
            by_pack.setdefault(name, []).append(oid)
        return {
            name: sorted(oids_of)
            for name, oids_of in by_pack.items()
            if len(oids_of) >= pk.MIN_OBJECTS and all(map(small.__contains__, oids_of))
        }

    def _put_cache_pack(self, name: str, group: list[str], meter: Meter) -> Packed:
        """Send the cache pack ``name`` (holding exactly the objects of group) as a pack of the store: its bytes
        once they hash to its name, then its index. [] when the pack or its index is no longer as its name and
        words say (damaged, or rewritten by a gc since): the caller packs the group's objects one by one, each
        read and checked."""
        try:
            with open(self.odb.packs.pack_path(name), "rb") as f:
                data = f.read()
            index = self.odb.packs.index_bytes(name)
            entries = pk.parse_index(index, self.odb.packs.index_path(name), len(data))
        except (OSError, CorruptObject):
            return []
        if fileio.hexdigest_bytes(data) != name or sorted(map(operator.itemgetter(0), entries)) != group:
            return []
        self.store.put_bytes(pk.pack_rel(name), data)
        meter.update(len(data))
        self.store.put_bytes(pk.index_rel(name), index)  # the index (checked above) makes the pack visible: last
        meter.objects_done(len(entries))
        return [(name, entries, len(data))]

    def _put_pack(self, group: list[str], meter: Meter) -> Packed:
        """Put the group's objects in packs, each pack before its index: [(name, entries, bytes)]. They are read
        into the thread's arena, which is the pack. Their sizes were a pointer's word: one too large is left to
        the caller to send alone, and a pack is closed at TARGET bytes read."""
        arena: bytearray | None = getattr(_arenas, "pack", None)
        if arena is None or len(arena) != pk.TARGET + pk.OBJECT_MAX:
            arena = _arenas.pack = bytearray(pk.TARGET + pk.OBJECT_MAX)
        view = memoryview(arena)
        packs: Packed = []
        todo = iter(group)
        while True:
            parts: list[tuple[str, memoryview]] = []
            filled = 0
            # one thread reads at a time: threads taking turns at short system calls wait on each other for the
            # GIL (docs/benchmarks.md); the others meanwhile write their packs, which lets the GIL go
            with self._reading:
                for o in todo:
                    n = self.odb.read_into(o, view[filled : filled + pk.OBJECT_MAX])  # None: OBJECT_MAX or larger
                    if n is not None:
                        parts.append((o, view[filled : filled + n]))
                        filled += n
                        if filled >= pk.TARGET:
                            break
            if not parts:
                return packs
            name, packed, index, entries = pk.build_ordered(parts, view[:filled])  # the group is in oid order
            self.store.put_bytes(pk.pack_rel(name), packed)
            meter.update(filled)
            self.store.put_bytes(pk.index_rel(name), index)  # the index makes the pack visible: it goes last
            meter.objects_done(len(parts))
            packs.append((name, entries, filled))

    def download(self, todo: list[str], meter: Meter, sizes: dict[str, int] | None = None) -> tuple[int, list[str]]:
        """Download objects into the cache, each verified before it is placed: those in packs with one
        ranged read per run of neighbours, the others alone. Returns (bytes, oids not on the remote).

        sizes: the expected size of each object, where known (for scheduling large ones)."""
        self.check_layout()
        sizes = sizes or {}
        check_room(self.odb.root, sum(sizes.get(o, 0) for o in set(todo)), self.odb.collect)
        located = self.locate(todo)
        if any(sizes.get(o, 0) < pk.OBJECT_MAX for o in todo if o not in located):  # some may be packed
            self.read_packs()
            located = self.locate(todo)
        got = 0
        absent: list[str] = []
        fetched: list[str] = []
        gone_packs: set[str] = set()
        retry: list[str] = []
        large = threading.BoundedSemaphore(LARGE_AT_ONCE)

        damaged: list[tuple[CorruptObject, list[str]]] = []  # said once the others are in (pull restores the rest)

        def get(item: tuple[str, Any]) -> int | None:
            kind, what = item
            try:
                if kind == "run":
                    return self._get_run(what, meter, large)
                with large if sizes.get(what, 0) > LARGE else contextlib.nullcontext():
                    return self._get_one(what, meter, sizes.get(what) or None)  # (0: not known)
            except CorruptObject as e:
                bad = [what] if kind == "one" else [x.oid for _, x in what if not self.odb.exists(x.oid)]
                damaged.append((e, bad))
                return -1

        def done(item: tuple[str, Any], n: int | None) -> None:
            nonlocal got
            kind, what = item
            run_oids = [e.oid for _, e in what] if kind == "run" else [what]
            if n is None and kind == "run":  # the pack is gone: look for its objects alone
                gone_packs.add(what[0][0])
                retry.extend(run_oids)
            elif n is None:
                absent.append(what)
            elif n >= 0:  # (-1: damaged, said at the end)
                got += n
                fetched.extend(run_oids)

        items: list[tuple[str, Any]] = [("run", r) for r in pk.runs(list(located.values()))]
        items += [("one", o) for o in sorted(set(todo) - set(located), key=lambda o: -sizes.get(o, 0))]
        try:
            run_parallel(get, items, self.jobs, done)
            if retry:  # their pack is gone: packs listed again, else alone
                self.packs_gone(gone_packs)
                n, lost = self.download(retry, meter, sizes)
                got, absent = got + n, absent + lost
            if damaged:
                self.damaged = [o for _, bad in damaged for o in bad]
                raise damaged[0][0]
        finally:
            self.jr.add(self.key, fetched)  # downloaded from it, so it is there
            self.jr.discard(self.key, absent)
        return got, absent

    def _get_one(self, oid: str, meter: Meter, size: int | None = None) -> int | None:
        rel = layout.object_rel(oid)
        tmp = self.odb.tmp_path(oid[-8:])
        sent: int | None = None  # bytes read from the store, when not the object's size
        chunked_first = self.format >= layout.CHUNKED and not pk.packable(size)  # large: most likely chunked
        try:
            got = self.get_chunked(oid, tmp, f"object {oid}", meter.update, size) if chunked_first else None
            try:
                if got is None:
                    digest = self.store.get_file(rel, tmp, meter.update, size)
            except RemoteWrongSize as e:
                raise RemoteWrongSize(f"object {oid}: {e}") from None  # (a caller names its path by the oid)
            except RemoteObjectMissing:
                fileio.remove_quietly(tmp)
                if self.format < layout.CHUNKED or chunked_first:
                    return None
                got = self.get_chunked(oid, tmp, f"object {oid}", meter.update, size)
                if got is None:
                    return None
            if got is not None:
                (digest, sent), rel = got, rc.rel(oid)
                if oids.from_digest(digest) != oid:
                    from mvc.objects.chunked import rebuilt_wrong

                    raise rebuilt_wrong(self.rebuilder(), oid, digest, oid) from None
            if oids.from_digest(digest) != oid:
                raise _corrupt(self.store.where(rel), self.name, digest)
            size = os.path.getsize(tmp) if sent is None else sent
            self.odb.install(tmp, oid)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        meter.object_done()
        return size

    def get_chunked(
        self, oid: str, dest: str, label: str, progress: Progress | None = None, size: int | None = None
    ) -> tuple[str, int] | None:
        """Rebuild object oid from its recipe into the new file dest, or copy it from the pack that is the object
        when the store has one (``Rebuilder.whole_rel``); returns (its hex digest, which the caller compares with
        the oid, bytes read from the store), or None when the remote has neither. size: the object's, where known
        (a recipe of another size is refused)."""
        rb = self.rebuilder()
        whole = rb.get_whole(oid, dest, progress, size)
        if whole is not None:
            return whole
        before = rb.recipe_bytes
        r = rb.recipe(oid, size)
        if r is None and oid in rb.bad_whole:  # a lone pack, corrupt (with a recipe, the recipe names the bad chunk)
            raise _corrupt(self.store.where(pk.whole_rel(oid)), self.name, rb.bad_whole[oid])
        if r is None and oid in rb.wrong_whole:  # a lone pack of another size, and no recipe
            raise rb.wrong_whole[oid]
        if r is None:
            return None
        with fileio.new_file(dest, readable=True) as fd:
            digest, copied, sent = rb.rebuild(oid, r, fd, label, self.jobs, progress, self.local_versions.get(oid, ()))
        if copied and oids.from_digest(digest) != oid:  # chunks not checked one by one: which one is bad?
            rb.check_chunks(r, label)
        return digest, sent + rb.recipe_bytes - before  # its recipe and its bases' (if no other thread read any)

    def _get_run(self, run: list[tuple[str, pk.Entry]], meter: Meter, large: threading.BoundedSemaphore) -> int | None:
        name = run[0][0]
        start, end = run[0][1].offset, run[-1][1].offset + run[-1][1].size
        rel = pk.pack_rel(name)
        with large if end - start > LARGE else contextlib.nullcontext():
            try:
                data = self.store.get_range(rel, start, end)
            except RemoteObjectMissing:
                return None
        bad: RemoteCorrupt | None = None
        for e, chunk, digest in pk.split(data, start, (e for _, e in run)):
            if oids.from_digest(digest) != e.oid:  # the sound entries around it are kept all the same
                bad = bad or RemoteCorrupt(
                    f"object {e.oid} in {self.store.where(rel)} (bytes {e.offset}-{e.offset + e.size}) on remote "
                    f"{self.name} is corrupt (it hashes to xxh128:{digest}); nothing was placed in the cache or "
                    f"workspace for it: mend it with 'mvc verify -r {self.name} --repair' on a machine that has the "
                    "objects of that pack"
                )
                continue
            self.odb.install_bytes(chunk, e.oid)
            meter.object_done()
        meter.update(len(data))
        if bad is not None:
            raise bad
        return len(data)


def bases_first(oids_: list[str], bases: dict[str, list[str]]) -> list[str]:
    """oids_ reordered so that the versions each is stored against that go up in the same push go first: a
    version's deltas need their base on the store (a push of a history, newest first, would otherwise send
    every version whole)."""
    order: list[str] = []
    going, seen = set(oids_), set()
    for oid in oids_:
        stack = [(oid, False)]
        while stack:
            o, ready = stack.pop()
            if ready:
                order.append(o)
                continue
            if o in seen:
                continue
            seen.add(o)
            stack.append((o, True))
            # its bases, best first: the first pushed first (a cycle --base chose is cut where it closes)
            stack += [(b, False) for b in reversed(bases.get(o, [])) if b in going and b not in seen]
    return order


def _corrupt(where: str, remote: str, digest: str) -> RemoteCorrupt:
    return RemoteCorrupt(
        f"{where} on remote {remote} is corrupt (its content hashes to xxh128:{digest}); nothing was placed in the "
        f"cache or workspace: mend it with 'mvc verify -r {remote} --repair' on a machine that has it"
    )


def _check_cached(odb: ODB, oid: str, digest: str) -> None:
    """Refuse to publish a cache object that does not hash to its oid (it is quarantined)."""
    if oids.from_digest(digest) != oid:
        where = odb.quarantine(oid)
        raise CorruptObject(
            f"cache object {oid} is corrupt (its content hashes to xxh128:{digest}); moved "
            f"to {where}, nothing was pushed for it: re-add the file or fetch it, then push"
        )


def free_space(path: str) -> tuple[str, int] | None:
    """(the deepest existing directory of path, the bytes free to this user on its file system), or None where
    that cannot be asked (no statvfs: Windows; then a write says it when the disk fills)."""
    d = path
    while not os.path.isdir(d) and os.path.dirname(d) != d:
        d = os.path.dirname(d)
    try:
        st = os.statvfs(d)
    except (OSError, AttributeError):
        return None
    return d, st.f_bavail * st.f_frsize


def check_room(root: str, need: int, collect: str | None = "mvc gc --force") -> None:
    """Refuse a download of need bytes into the cache at root when its filesystem has less free space: said at
    once, not when the disk fills (and a pointer whose size is absurd, a hostile one's, is refused before a byte)."""
    from mvc.errors import StorageError
    from mvc.progress import human

    room = free_space(root)
    if room is not None and need > room[1]:
        where, free = room
        unwritable = _unwritable(where)
        if unwritable:  # no room because no file can go there at all: the place is what is wrong, not its space
            setting = "MVC_CACHE_DIR" if collect and "--user-cache" in collect else "cache.dir"
            fix = "choose another output path" if collect is None else f"set {setting} to a directory you can write to"
            raise StorageError(f"cannot write to {where} ({unwritable}): {fix}")
        gc = f" ('{collect}' deletes what nothing needs)" if collect else ""  # (gc frees no other file system)
        raise StorageError(
            f"not enough disk space to fetch {human(need)} into {root} ({human(free)} free): free some space{gc}, "
            "then retry"
        )


def _unwritable(d: str) -> str:
    """Why no file can be written in directory d ("": it may be): a file system with no blocks (``/proc``, ``/sys``:
    statvfs says 0 free), a read-only one, or no permission."""
    try:
        if os.statvfs(d).f_blocks == 0:
            return "a pseudo file system, as /proc and /sys are, that holds no files"
    except (OSError, AttributeError):
        pass
    if not os.access(d, os.W_OK):
        return "not writable by this user, or a read-only file system"
    return ""
