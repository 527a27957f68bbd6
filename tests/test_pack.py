"""The pack format (docs/FORMAT.md, "Packs"): building, naming, parsing untrusted indexes, reading plans."""

from __future__ import annotations

import random

import pytest
import xxhash

from mvc.errors import CorruptObject
from mvc.objects import pack


def oid(data: bytes) -> str:
    return "xxh128:" + xxhash.xxh3_128_hexdigest(data)


def objects(n: int, seed: int = 1) -> list[tuple[str, bytes]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        data = rnd.randbytes(rnd.randrange(0, 3000))
        out.append((oid(data), data))
    return out


def test_build_is_canonical_and_named_by_its_bytes():
    objs = objects(50)
    name, data, index, entries = pack.build(objs)
    assert name == xxhash.xxh3_128_hexdigest(data)
    assert pack.build(list(reversed(objs))) == (name, data, index, entries)  # order does not matter
    assert index.startswith(pack.INDEX_HEADER) and index.endswith(b"\n")
    assert pack.parse_index(index, "x") == entries
    assert [e.oid for e in entries] == sorted(o for o, _ in objs)
    for e in entries:
        assert oid(data[e.offset : e.offset + e.size]) == e.oid


def test_split_hashes_each_entry():
    objs = objects(10)
    _, data, _, entries = pack.build(objs)
    start = entries[2].offset
    got = list(pack.split(data[start : entries[6].offset], start, entries[2:6]))
    assert [(e, oid(chunk)) for e, chunk, _ in got] == [(e, e.oid) for e in entries[2:6]]
    assert all("xxh128:" + digest == e.oid for e, _, digest in got)
    # cut short: the last entry's bytes are short and fail their hash
    *_, (last, chunk, digest) = pack.split(data[start : entries[6].offset - 1], start, entries[2:6])
    assert "xxh128:" + digest != last.oid and len(chunk) == last.size - 1


@pytest.mark.parametrize(
    "index",
    [
        b"",
        b"mvc-pack-index 2\n",
        pack.INDEX_HEADER + b"xxh128:" + b"0" * 32 + b" 0 4",  # no final newline
        pack.INDEX_HEADER + b"xxh128:" + b"0" * 32 + b" 0\n",
        pack.INDEX_HEADER + b"xxh128:" + b"0" * 32 + b" -1 4\n",
        pack.INDEX_HEADER + b"xxh128:" + b"0" * 32 + b" 0 4.5\n",
        pack.INDEX_HEADER + b"xxh128:" + b"A" * 32 + b" 0 4\n",
        pack.INDEX_HEADER + b"sha256:" + b"0" * 32 + b" 0 4\n",
        pack.INDEX_HEADER + b"../../x 0 4\n",
        pack.INDEX_HEADER + b"xxh128:" + b"0" * 32 + b"  0 4\n",
        pack.INDEX_HEADER + "xxh128:{} \u0663 4\n".format("0" * 32).encode(),  # a non-ASCII digit
        pack.INDEX_HEADER + b"\xff\xfe\n",
    ],
)
def test_bad_indexes_are_refused(index):
    with pytest.raises(CorruptObject, match="where"):
        pack.parse_index(index, "where")


def test_oversized_index_is_refused_unparsed():
    with pytest.raises(CorruptObject, match="larger than"):
        pack.parse_index(pack.INDEX_HEADER + b" " * pack.INDEX_MAX, "where")


def test_names_in_needs_both_files_in_packs():
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    rels = [
        f"packs/{a}.pack",
        f"packs/{a}.idx",
        f"packs/{b}.pack",
        f"packs/{c}.idx",
        "packs/zz.pack",
        "packs/zz.idx",
        f"objects/{a}.pack",
        f"objects/{a}.idx",
        f"packs/sub/{b}.idx",
        f"packs/{a.upper()}.idx",
    ]
    assert pack.names_in(rels) == {a}


def test_group_fills_packs_in_oid_order(monkeypatch):
    monkeypatch.setattr(pack, "TARGET", 10_000)
    sizes = {o: len(d) for o, d in objects(100, seed=3)}
    groups = pack.group(sizes)
    assert [o for g in groups for o in g] == sorted(sizes)
    assert all(sum(sizes[o] for o in g) >= 10_000 for g in groups[:-1])
    assert all(sum(sizes[o] for o in g[:-1]) < 10_000 for g in groups)
    assert pack.group(dict(reversed(list(sizes.items())))) == groups


def test_runs_merge_neighbours_of_one_pack():
    E = pack.Entry
    entries = [
        ("p", E("xxh128:" + "1" * 32, 0, 10)),
        ("p", E("xxh128:" + "2" * 32, 10, 10)),
        ("p", E("xxh128:" + "3" * 32, 5000, 10)),  # a hole larger than gap: a new run
        ("q", E("xxh128:" + "4" * 32, 20, 10)),
        ("p", E("xxh128:" + "5" * 32, 5010, 10_000)),
    ]  # would make the run larger than most
    runs = pack.runs(entries, gap=100, most=5000)
    assert [[e.oid[7] for _, e in r] for r in runs] == [["1", "2"], ["3"], ["5"], ["4"]]
    overlapping = [("p", E("xxh128:" + "1" * 32, 0, 10)), ("p", E("xxh128:" + "2" * 32, 5, 10))]
    assert len(pack.runs(overlapping)) == 2  # never one read for overlapping entries
