"""Directory manifests: one encoding (hence one oid), strict reading of paths and fields."""

from __future__ import annotations

import json
import os

import pytest
import xxhash
from conftest import make_file
from hypothesis import given, settings
from hypothesis import strategies as st

from mvc.errors import CorruptObject
from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf
from mvc.objects import oid as oids

A = "xxh128:" + "a" * 32
B = "xxh128:" + "b" * 32


def test_encoding_is_sorted_compact_and_unique():
    entries = [
        mf.Entry("weights/part-0.bin", B, 1048576),
        mf.Entry("config.json", A, 421),
        mf.Entry("é.bin", A, 0, True),
        mf.Entry("a-b", A, 1),
        mf.Entry("a/b", A, 2),
    ]
    data = mf.dumps(entries)
    assert data.decode() == (
        "mvc-manifest 1\n"
        f'["a-b","{A}",1,false]\n'
        f'["a/b","{A}",2,false]\n'
        f'["config.json","{A}",421,false]\n'
        f'["weights/part-0.bin","{B}",1048576,false]\n'
        f'["é.bin","{A}",0,true]\n'
    )
    assert mf.dumps(list(reversed(entries))) == data  # input order does not matter
    assert mf.loads(data) == sorted(entries, key=lambda e: e.path)


def test_empty_manifest():
    assert mf.dumps([]) == b"mvc-manifest 1\n"
    assert mf.loads(b"mvc-manifest 1\n") == []


def line(path, oid=A, size=1, executable=False):
    return json.dumps([path, oid, size, executable]).encode() + b"\n"


@pytest.mark.parametrize(
    "body",
    [
        line("../evil"),
        line("a/../../evil"),
        line("/etc/passwd"),
        line("C:/x"),
        line("a\\b"),
        line("a/./b"),
        line("./a"),
        line("a//b"),
        line("a/"),
        line(""),
        line("a\0b"),
        line("a\nb"),
        line("a\rb"),
        line(".."),
        line("."),
        line("a", oid="sha256:" + "a" * 32),
        line("a", oid="xxh128:" + "A" * 32),
        line("a", size=-1),
        line("a", size="1"),
        line("a", size=1.5),
        line("a", size=True),
        line("a", executable="yes"),
        line("a") + line("a"),  # duplicate
        line("b") + line("a"),  # out of order
        line("a/b") + line("a-b"),  # '-' comes before '/': sorted by path, not component by component
        line("\U0001f600") + line("\uff5e"),  # code points, not UTF-16 units
        line("a") + line("b") + line("a"),  # a duplicate apart
        line("a") + line("a/b"),  # a path cannot be a file and a directory
        b'["a","' + A.encode() + b'",1]\n',  # too few fields
        b"not json\n",
        b"\n",
        b"42\n",
    ],
)
def test_bad_manifest_is_refused(body):
    with pytest.raises(CorruptObject) as e:
        mf.loads(b"mvc-manifest 1\n" + body, A)
    assert "\n" not in str(e.value) and A in str(e.value)


def test_unknown_manifest_version_is_refused():
    with pytest.raises(CorruptObject, match="upgrade mvc"):
        mf.loads(b"mvc-manifest 2\n")


def test_added_directory_manifest_matches_the_files(repo, mvc_cli):
    """The manifest object mvc stores lists each file with its own oid, size and executable bit."""
    d = repo / "model"
    a = make_file(d / "weights" / "part-0.bin", 5000, seed=1)
    b = make_file(d / "config.json", 42, seed=2)
    run = make_file(d / "run.sh", 7, seed=3)
    run.chmod(0o755)
    mvc_cli("add", "model")
    p = ptrfmt.loads((repo / "model.mvc").read_bytes())
    raw = (repo / ".mvc" / "cache" / "objects" / p.oid[7:9] / p.oid[9:]).read_bytes()
    assert "xxh128:" + xxhash.xxh3_128_hexdigest(raw) == p.oid
    entries = mf.loads(raw, p.oid)

    def oid(f):
        return "xxh128:" + xxhash.xxh3_128_hexdigest(f.read_bytes())

    assert entries == [
        mf.Entry("config.json", oid(b), 42, False),
        mf.Entry("run.sh", oid(run), 7, True),
        mf.Entry("weights/part-0.bin", oid(a), 5000, False),
    ]
    assert (p.kind, p.size, p.nfiles) == ("dir", 5049, 3)
    assert raw == mf.dumps(entries)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
                lambda p: mf.bad_relpath(p) is None
            ),
            st.binary(min_size=16, max_size=16).map(lambda b: "xxh128:" + b.hex()),
            st.integers(0, 2**63 - 1),
            st.booleans(),
        ),
        max_size=20,
        unique_by=lambda t: t[0],
    )
)
def test_oids_of_a_manifest_are_those_loads_reads(rows):
    rows = [r for r in rows if not any(o[0].startswith(r[0] + "/") for o in rows)]
    data = mf.dumps([mf.Entry(*r) for r in rows])
    assert mf.oids_of(data) == {e.oid for e in mf.loads(data)}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400))
def test_oids_of_damaged_bytes_are_valid_oids_or_refused(noise, at):
    good = mf.dumps([mf.Entry("a/b", A, 3, False), mf.Entry("c", B, 4, True)])
    data = good[:at] + noise + good[at:]
    try:
        found = mf.oids_of(data)
    except CorruptObject:
        return
    assert all(oids.is_oid(o) for o in found)


def test_missing_lists_a_busy_fan_out_directory_once_and_answers_as_per_object(tmp_path, monkeypatch):
    from mvc.objects.odb import LIST_FROM, ODB

    odb = ODB(str(tmp_path / "cache"))
    have = [odb.add_bytes(f"object {i}".encode()) for i in range(3)]
    busy = have[0][7:9]  # fake oids in the first object's fan-out directory, enough to list it
    fakes = [f"xxh128:{busy}{i:030x}" for i in range(LIST_FROM + 4)]
    lone = [f"xxh128:{'0f' if busy != '0f' else 'f0'}{i:030x}" for i in range(2)]
    asked = fakes[:5] + have + fakes[5:] + lone
    listed: list[str] = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(os.path.basename(p)) or real(p))
    assert odb.missing(asked) == fakes[:5] + fakes[5:] + lone
    assert listed == [busy]
    assert odb.missing(iter(have)) == []


def test_missing_lists_the_whole_cache_once_for_many_valid_oids(tmp_path, monkeypatch):
    """Past LIST_ALL_FROM valid oids the cache is listed once and kept for the command; an object stored
    since counts as there, and a name that is no oid (a gc's trash, a stray file) is never taken for one."""
    from mvc.objects import odb as odbmod
    from mvc.objects.odb import ODB

    monkeypatch.setattr(odbmod, "LIST_ALL_FROM", 4)
    odb = ODB(str(tmp_path / "cache"))
    have = [odb.add_bytes(f"object {i}".encode()) for i in range(3)]
    fan = os.path.dirname(odb.path(have[0]))
    stray = f"xxh128:{have[0][7:9]}{'0' * 30}"
    open(os.path.join(fan, "0" * 30 + ".gc-1"), "w").close()  # a name that only starts like stray's
    absent = [f"xxh128:{i:032x}" for i in range(3)]
    assert odb.missing(have + absent, valid=True) == absent  # 6 asked: the whole cache listed
    listed: list[str] = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(p) or real(p))
    late = odb.add_bytes(b"stored after the listing")
    assert odb.missing([*have, late, stray, *absent], valid=True) == [stray, *absent]
    assert listed == []  # answered from the listing
    assert sorted(odb.all_oids()) == sorted([*have, late])
