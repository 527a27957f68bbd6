"""How a rebuild reads a recipe's entries (docs/FORMAT.md, "Chunked objects"): which entries one ranged read of a
pack takes, which deltas share one read of their base, the pieces the rebuild's threads write, and the runs of
chunks it copies in the kernel. Pure functions of the entries; ``mvc.objects.chunked`` does the reading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mvc.objects import pack as pk
from mvc.objects import recipe as rc

PIECE = 8 << 20  # a rebuild reads about this many bytes of the object into memory per work item
LIGHT_PIECE = 32 << 20  # … and up to this many written through a window (docs/benchmarks.md, "fifth session")
GAP = 1 << 20  # a ranged read of a pack may take this many unneeded bytes to join two runs
RUN_MAX = pk.TARGET + pk.OBJECT_MAX  # bytes one ranged read of a pack takes at most
COPY = 64 << 20  # bytes one kernel copy of a rebuild takes at most: the hash follows one copy behind


def runs(remote: list[rc.Entry], index: list[int]) -> Iterator[list[int]]:
    """Indexes of the entries to read, grouped in runs: one ranged read of one pack each."""
    run: list[int] = []
    pack, start, end = "", 0, 0
    for i, e in zip(index, remote, strict=True):
        if run and e.pack == pack and end <= e.offset <= end + GAP and e.offset + e.stored - start <= RUN_MAX:
            run.append(i)
        else:
            if run:
                yield run
            run, pack, start = [i], e.pack, e.offset
        end = e.offset + e.stored
    if run:
        yield run


def base_runs(
    entries: list[rc.Entry], deltas: list[tuple[int, bytes | memoryview]]
) -> Iterator[list[tuple[int, bytes | memoryview]]]:
    """The deltas (index, bytes) grouped in runs whose base ranges adjoin in one base, read at one depth, up to
    RUN_MAX bytes: each run's base is read once."""
    run: list[tuple[int, bytes | memoryview]] = []
    for i, data in deltas:
        e = entries[i]
        if run:
            first, last = entries[run[0][0]], entries[run[-1][0]]
            if (e.base, e.depth, e.base_offset) == (last.base, last.depth, last.base_offset + last.size) and (
                e.base_offset + e.size - first.base_offset <= RUN_MAX
            ):
                run.append((i, data))
                continue
            yield run
        run = [(i, data)]
    if run:
        yield run


def pieces(r: rc.Recipe, light: Callable[[rc.Entry], bool] | None = None) -> list[tuple[int, int]]:
    """The work items of a rebuild: stretches from entry to entry of about PIECE bytes held in memory, up to
    LIGHT_PIECE bytes when entries are ``light`` (written through a small window, not held: one ranged read of a
    remote per run of them, and a request costs a remote as much as megabytes do)."""
    pieces: list[tuple[int, int]] = []
    start = held = 0
    for e in r.entries:
        end = e.at + e.size
        held += 0 if light is not None and light(e) else e.size
        if held >= PIECE or end - start >= LIGHT_PIECE:
            pieces.append((start, end))
            start, held = end, 0
    return [*pieces, (start, r.size)] if start < r.size or not pieces else pieces


def copies(chunks: list[rc.Entry]) -> list[list[rc.Entry]]:
    """The chunks a rebuild copies in the kernel (in file order), in runs of at most COPY bytes lying one after
    another both in one pack and in the file: across pieces, as large as the packs allow."""
    out: list[list[rc.Entry]] = []
    for e in chunks:
        last = out[-1][-1] if out else None
        follows = last and (e.pack, e.offset, e.at) == (last.pack, last.offset + last.stored, last.at + last.size)
        if follows and e.at + e.size - out[-1][0].at <= COPY:
            out[-1].append(e)
        else:
            out.append([e])
    return out
