"""What gc does with a store's packs (docs/FORMAT.md, "A remote"): a pack with no live entry goes; a pack
mostly dead is rewritten (its live entries into a new pack, every recipe read naming it pointed at the copies,
then ``packs/<name>.superseded`` beside it); a later gc deletes a superseded pack once its marker is older
than the grace and nothing read that run still needs it there.

:func:`plan` decides from the store's listing, its packs' indexes and the recipes gc read, never from pack
data (a dry run stays cheap); :func:`rewrite` does the rewriting. Both work on a store (through a
``Transfer``: a remote, or the cache's compacted store) and its journal, never on a repository.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mvc.errors import GcRefused
from mvc.objects import oid as oids
from mvc.objects import pack as pk
from mvc.objects import recipe as rc
from mvc.storage.parallel import run_parallel

if TYPE_CHECKING:
    from mvc.objects.chunked import Rebuilder
    from mvc.objects.transfer import Transfer

# A pack is rewritten once at least this share of its bytes is dead. A rewrite reads and writes the live
# rest, so at this share it moves at most as many bytes as it frees (git's geometric repack keeps the same
# bound); a lower share would rewrite a large pack again and again for little, a higher one keep more dead.
DEAD_SHARE = 0.5
SUPERSEDED = ".superseded"


def marker_rel(name: str) -> str:
    """The marker of a pack a rewrite replaced: its content is the replacing pack's name and a newline."""
    return f"packs/{name}{SUPERSEDED}"


class Plan:
    """What gc does with a store's packs. ``files``: what goes, in delete order (rel, size); ``named``: the
    objects of the dead packs (oid, size); ``gone``: the packs deleted (dead, superseded and ripe, or a ``.pack``
    older than the grace without its index that no recipe read names);
    ``rewrite``: the packs to rewrite, ``live`` their live entries, ``frees`` their dead bytes; ``young``: dead
    packs the grace keeps; ``waiting``: superseded packs kept until their marker is older than the grace;
    ``partly``: [packs kept whole with dead entries, their dead bytes]; ``recipes``: those gc read."""

    def __init__(self, recipes: dict[str, rc.Recipe]):
        self.files: list[tuple[str, int]] = []
        self.named: list[tuple[str, int]] = []
        self.gone: list[str] = []
        self.rewrite: list[str] = []
        self.live: dict[str, list[pk.Entry]] = {}
        self.frees = 0
        self.young = 0
        self.waiting = 0
        self.partly = [0, 0]
        self.recipes = recipes

    def delete(self, listing: dict[str, tuple[int, float | None]], *rels: str) -> None:
        self.files += [(rel, listing[rel][0]) for rel in rels if rel in listing]


def plan(
    listing: dict[str, tuple[int, float | None]],
    packs: dict[str, list[pk.Entry]],
    alive: set[str],
    recipes: dict[str, rc.Recipe],
    cutoff: float,
) -> Plan:
    """The plan for a store listed as listing (rel -> (size, write time)) whose packs (each index read and
    accepted this run) hold entries, alive the objects, chunks and deltas kept, recipes those kept (all gc
    read), cutoff the start of the run minus the grace."""
    p = Plan(recipes)
    markers = {rel[len("packs/") : -len(SUPERSEDED)] for rel in listing if _is_marker(rel)}
    named_at: dict[str, list[rc.Entry]] = {}  # pack -> the recipe entries naming it
    for r in recipes.values():
        for e in r.entries:
            named_at.setdefault(e.pack, []).append(e)
    replaced: list[str] = []
    # a pack named by a kept object's digest is that object ("Lone packs"): all of it lives, index or not
    whole = {oids.digest(o) for o in alive}
    for name, entries in sorted(packs.items()):
        if name in whole:
            continue
        live = _live(entries, alive)
        old = _old(listing, pk.pack_rel(name), cutoff) and _old(listing, pk.index_rel(name), cutoff)
        dead = listing.get(pk.pack_rel(name), (0, None))[0] - sum(e.size for e in live)
        if not live and not old:
            p.young += 1
        elif not live:  # the index first: readers stop there
            p.gone.append(name)
            p.delete(listing, pk.index_rel(name), pk.pack_rel(name), marker_rel(name))
            p.named += [(e.oid, e.size) for e in entries]
        elif name in markers:
            replaced.append(name)
        elif old and dead >= DEAD_SHARE * listing[pk.pack_rel(name)][0] and _movable(named_at, name, live):
            _rewrite(p, name, live, dead)
        elif dead > 0:
            p.partly = [p.partly[0] + 1, p.partly[1] + dead]
    moving = set(p.gone) | set(p.rewrite) | set(replaced)
    held = {e.oid for name, entries in packs.items() if name not in moving for e in entries}
    for name in replaced:
        live = _live(packs[name], alive)
        if name not in named_at and all(e.oid in held for e in live):
            if _old(listing, marker_rel(name), cutoff):  # nothing needs it here: the index first, the marker last
                p.gone.append(name)
                p.delete(listing, pk.index_rel(name), pk.pack_rel(name), marker_rel(name))
            else:
                p.waiting += 1
        elif _movable(named_at, name, live):  # a recipe written since names it, or an entry came alive again
            _rewrite(p, name, live, 0)
        else:
            p.waiting += 1
    for name in sorted(markers - set(packs)):
        if pk.index_rel(name) in listing:
            continue  # an index refused (or listed late): not judged
        if pk.pack_rel(name) not in listing:  # its pack is gone
            p.delete(listing, marker_rel(name))
        elif _old(listing, pk.pack_rel(name), cutoff):  # what a gc stopped after deleting its index left
            p.delete(listing, pk.pack_rel(name), marker_rel(name))
    for name in sorted(pk.lone_in(listing) - set(packs) - markers - set(named_at) - whole):
        if _old(listing, pk.pack_rel(name), cutoff):  # a push killed between its pack and the index left it,
            p.gone.append(name)  # or a lone pack no kept version names: the object goes
            p.named.append((oids.from_digest(name), listing[pk.pack_rel(name)][0]))
            p.delete(listing, pk.pack_rel(name))
    return p


def recipes(rb: Rebuilder, kept: set[str]) -> dict[str, rc.Recipe]:
    """The recipes of the kept objects that have one, as gc read them (read once: the rebuilder holds them)."""
    return {oid: r for oid in sorted(kept) if (r := rb.recipe(oid)) is not None}


def _is_marker(rel: str) -> bool:
    return rel.startswith("packs/") and rel.endswith(SUPERSEDED) and pk.is_name(rel[len("packs/") : -len(SUPERSEDED)])


def _old(listing: dict[str, tuple[int, float | None]], rel: str, cutoff: float) -> bool:
    when = listing.get(rel, (0, None))[1]
    return when is not None and when <= cutoff


def _live(entries: list[pk.Entry], alive: set[str]) -> list[pk.Entry]:
    """The live entries of a pack, one per object (an index may list one twice), in the pack's order."""
    seen: dict[str, pk.Entry] = {}
    for e in sorted(entries, key=lambda e: e.offset):
        if e.oid in alive:
            seen.setdefault(e.oid, e)
    return sorted(seen.values(), key=lambda e: e.offset)


def _movable(named_at: dict[str, list[rc.Entry]], name: str, live: list[pk.Entry]) -> bool:
    """Whether every recipe entry naming pack name can point at a copy of its live entries: each names an
    object the index lists there, of the size it stores."""
    sizes = {e.oid: e.size for e in live}
    return all(sizes.get(e.oid) == e.stored for e in named_at.get(name, ()))


def _rewrite(p: Plan, name: str, live: list[pk.Entry], dead: int) -> None:
    p.rewrite.append(name)
    p.live[name] = live
    p.frees += dead


def rewrite(t: Transfer, p: Plan) -> None:
    """Rewrite the packs of plan p: for each, its live entries read (ranged reads of runs, each checked
    against its oid: a corrupt one refuses, naming the pack, before any recipe or marker is written and
    before gc deletes anything) into a new pack, pack then index, recorded in the journal; then every recipe
    read that names one of them, pointed at the copies; then the markers. Killed at any point, every recipe
    names packs that are there: the old ones stay until a later gc."""
    moved: dict[str, tuple[str, dict[str, pk.Entry]]] = {}  # old pack -> (new pack, its entries by oid)
    for name in p.rewrite:
        new, entries = _copy(t, name, p.live[name])
        t.jr.add_packs(t.key, [(new, entries)])
        moved[name] = (new, {e.oid: e for e in entries})
        if new in p.gone:  # the very bytes of a pack this run was to delete: it stays
            p.gone.remove(new)
            p.files = [f for f in p.files if not f[0].startswith(f"packs/{new}.")]
    todo = [(oid, r) for oid, r in sorted(p.recipes.items()) if any(e.pack in moved for e in r.entries)]
    run_parallel(lambda item: _put_recipe(t, item[0], item[1], moved), todo, t.jobs)
    for name, (new, _) in moved.items():
        t.store.put_bytes(marker_rel(name), f"{new}\n".encode())


def _copy(t: Transfer, name: str, live: list[pk.Entry]) -> tuple[str, list[pk.Entry]]:
    """The live entries of pack name copied into a new pack (content addressed, in the old pack's order):
    (its name, its entries)."""
    rel = pk.pack_rel(name)
    got: dict[int, tuple[str, bytes]] = {}

    def read(run: list[tuple[str, pk.Entry]]) -> list[tuple[pk.Entry, bytes]]:
        start, end = run[0][1].offset, run[-1][1].offset + run[-1][1].size
        data = t.store.get_range(rel, start, end)
        out = []
        for e, chunk, digest in pk.split(data, start, (e for _, e in run)):
            if oids.from_digest(digest) != e.oid:
                raise GcRefused(
                    f"object {e.oid} in {t.store.where(rel)} (bytes {e.offset}-{e.offset + e.size}) is corrupt or "
                    f"cut short (it hashes to xxh128:{digest}), so gc cannot rewrite that pack; nothing was deleted: "
                    "delete that pack and its .idx, then run 'mvc push --verify-remote' from a machine that has its objects"
                )
            out.append((e, chunk))
        return out

    def done(_: object, out: list[tuple[pk.Entry, bytes]]) -> None:
        for e, chunk in out:
            got[e.offset] = (e.oid, chunk)

    run_parallel(read, pk.runs([(name, e) for e in live]), t.jobs, done)
    new, data, index, entries = pk.build_ordered([got[offset] for offset in sorted(got)])
    t.store.put_bytes(pk.pack_rel(new), data)
    t.store.put_bytes(pk.index_rel(new), index)  # the index makes the pack visible: it goes last
    return new, entries


def _put_recipe(t: Transfer, oid: str, r: rc.Recipe, moved: dict[str, tuple[str, dict[str, pk.Entry]]]) -> None:
    """Write recipe r of object oid again, its entries in moved packs pointed at their copies. Checked first:
    the new recipe parses back to the same size, bases and entries, each at the same place in the object, with
    only its pack and offset changed, where the copy holds its oid at the size it stores."""
    entries = [_moved(e, moved) for e in r.entries]
    data = rc.render(r.size, r.bases, entries)
    if rc.parse(data, t.store.where(rc.rel(oid)), oid) != (r.size, r.bases, entries):
        raise AssertionError(f"the rewritten recipe of {oid} does not parse back as written")
    t.store.put_bytes(rc.rel(oid), data)


def _moved(e: rc.Entry, moved: dict[str, tuple[str, dict[str, pk.Entry]]]) -> rc.Entry:
    if e.pack not in moved:
        return e
    new, where = moved[e.pack]
    copy = where[e.oid]
    if copy.size != e.stored:
        raise AssertionError("plan() moves only packs whose copies fit every recipe naming them")
    return e._replace(pack=new, offset=copy.offset)
