"""Every parser of untrusted bytes (a collaborator's commit, a shared bucket) either returns valid data or
raises an MvcError with a one-line message: never another exception, never a traceback. Hypothesis feeds
each of them garbage and near-valid input; CI runs a few thousand examples per parser."""

from __future__ import annotations

import datetime
import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvc.errors import MvcError
from mvc.format import config as cfgfmt
from mvc.format import pointer as ptrfmt
from mvc.format import tags as tagfmt
from mvc.objects import layout
from mvc.objects import manifest as mf
from mvc.objects import pack as pk

MANY = settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
OID = "xxh128:" + "ab" * 16
INT64 = 2**63 - 1

# near-valid TOML documents: the shape of a pointer or config with random keys, values and nesting
toml_scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
    st.booleans(),
    st.floats(allow_nan=False),
    st.just(OID),
    st.sampled_from(["file", "dir"]),
)
# one level of nesting: deeper documents are the deep-nesting tests' job, and cost far more to generate
toml_values = st.one_of(
    toml_scalars,
    st.lists(toml_scalars, max_size=3),
    st.dictionaries(st.sampled_from(["url", "path", "dir", "type", "jobs", "x"]), toml_scalars, max_size=3),
)
keys = st.sampled_from(
    ["format", "kind", "oid", "size", "nfiles", "meta", "auto", "x", "cache", "remote", "core", "models"]
)


def one_line(e: MvcError) -> None:
    assert str(e) and "\n" not in str(e), repr(str(e))


def toml_doc(d: dict) -> bytes:
    import tomli_w

    try:
        return tomli_w.dumps(d).encode()
    except (TypeError, ValueError):
        return b""


def deep(n: int, open_: str, close: str, head: str = "a = ") -> bytes:
    return (head + open_ * n + close * n + "\n").encode()


rows = st.lists(
    st.tuples(
        st.text(max_size=12),
        st.one_of(st.just(OID), st.text(max_size=5)),
        st.integers(min_value=-5, max_value=2**70),
        st.one_of(st.booleans(), st.integers(0, 1)),
    ),
    max_size=6,
)


# -- the checks: what "parses" means for each parser ---------------------------------------------------
def check_pointer(data: bytes) -> None:
    try:
        p = ptrfmt.loads(data, "m.bin.mvc")
    except MvcError as e:
        one_line(e)
        return
    assert p.kind in ("file", "dir") and 0 <= p.size <= INT64
    assert ptrfmt.loads(ptrfmt.dumps(p), "again").to_dict() == p.to_dict()


def check_manifest(data: bytes) -> None:
    try:
        entries = mf.loads(data, OID)
    except MvcError as e:
        one_line(e)
        return
    for e in entries:
        assert mf.bad_relpath(e.path) is None and 0 <= e.size <= INT64
    # read as written: in code point order, no path twice (the one encoding)
    assert all(a.path < b.path for a, b in itertools.pairwise(entries)), entries
    assert mf.loads(mf.dumps(entries), OID) == entries


def check_index(data: bytes) -> None:
    try:
        entries = pk.parse_index(data, "packs/x.idx")
    except MvcError as e:
        one_line(e)
        return
    for e in entries:
        assert 0 <= e.offset <= INT64 and 0 <= e.size <= INT64


def check_config(data: bytes) -> None:
    try:
        d = cfgfmt.loads(data, "config.toml")
        cfgfmt.remotes(d, "config.toml", need_url=False)
        cfgfmt.models(d, "config.toml")
        cfgfmt.stages(d, "config.toml")
    except MvcError as e:
        one_line(e)


def check_marker(data: bytes) -> None:
    try:
        assert layout.check_marker(data, "mvc.toml") in layout.FORMATS
    except MvcError as e:
        one_line(e)


def check_tags(name: str, message: str) -> None:
    t = tagfmt.parse(name)
    if t is not None:
        assert tagfmt.parse(tagfmt.format(t)) == t
    tagfmt.parse_ref(name)
    text, fields = tagfmt.parse_message(message)
    assert isinstance(text, str) and all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


# -- the inputs: each generated example feeds every parser it fits, so each parser sees thousands ------
@MANY
@given(st.binary(max_size=400))
def test_any_bytes(data):
    for check in (check_pointer, check_config, check_marker):
        check(data)
    for check, header in ((check_manifest, mf.HEADER), (check_index, pk.INDEX_HEADER)):
        check(data)
        check(header + data)


@MANY
@given(st.dictionaries(keys, toml_values, max_size=7))
def test_near_valid_toml(d):
    data = toml_doc(d)
    check_pointer(data)
    check_config(data)
    check_marker(data)


@MANY
@given(
    rows,
    st.lists(
        st.tuples(st.one_of(st.just(OID), st.text(max_size=4)), st.integers(-3, 2**80), st.integers(-3, 2**80)),
        max_size=5,
    ),
)
def test_near_valid_manifests_and_indexes(rs, lines):
    check_manifest(mf.HEADER + b"".join(json.dumps(list(r)).encode() + b"\n" for r in rs))
    check_index(pk.INDEX_HEADER + b"".join(f"{o} {a} {b}\n".encode() for o, a, b in lines))


# manifests in the shape mvc writes, with paths from pieces that bad_relpath refuses or that need escapes
path_parts = st.sampled_from(
    ["a", "b", ".", "..", "", ".git", "GIT~1", ".Git. ", "C:", "g\u200cit", "é", '"', "\\", "\x01"]
)


@MANY
@given(
    st.lists(
        st.tuples(
            st.lists(path_parts, min_size=1, max_size=3).map("/".join),
            st.sampled_from([OID, "xxh128:" + "cd" * 16]),
            st.one_of(st.integers(0, 3), st.integers(10**17, 10**19), st.just(INT64 + 1)),
            st.booleans(),
        ),
        max_size=5,
    ),
    st.sampled_from([b"", b" ", b"\r"]),
    st.booleans(),
)
def test_manifest_read_in_one_pass_as_line_by_line(rows, noise, in_order):
    """The one-pass reading of plain manifests gives what reading each line gives: the same entries, or the
    same error."""
    from unittest.mock import patch

    if in_order:  # (else mostly refused as out of order)
        rows = sorted(rows, key=lambda r: r[0])
    data = mf.HEADER + b"".join(
        f'[{json.dumps(p, ensure_ascii=False)},"{o}",{n},{"true" if x else "false"}]'.encode("utf-8", "surrogatepass")
        + (noise if i == 1 else b"")
        + b"\n"
        for i, (p, o, n, x) in enumerate(rows)
    )

    def read() -> list[mf.Entry] | str:
        try:
            return mf.loads(data, OID)
        except MvcError as e:
            return str(e)

    fast = read()
    with patch.object(mf, "_plain", lambda data: None):
        assert read() == fast


# paths whose code point order is neither that of their UTF-16 units ('\uff5e' before an emoji) nor a sort of their
# components ('a-b' before 'a/b'), nor one ignoring case
order_parts = st.sampled_from(["a", "b", "a-b", "B", "_", "\uff5e", "\U0001f600", "é"])


@MANY
@given(
    st.lists(st.lists(order_parts, min_size=1, max_size=3).map("/".join), min_size=1, max_size=6, unique=True),
    st.data(),
)
def test_manifests_out_of_order_or_repeating_a_path_are_refused(paths, data):
    """Lines in any order, one maybe repeated: read only when strictly in code point order (what dumps writes),
    else refused in one line naming the manifest, by the one-pass reading and line by line alike."""
    from unittest.mock import patch

    paths = [p for p in paths if not any(o.startswith(p + "/") for o in paths)]  # (no file below another)
    lines = [f'[{json.dumps(p, ensure_ascii=False)},"{OID}",1,false]\n'.encode() for p in paths]
    order = data.draw(st.permutations(range(len(paths))))
    if data.draw(st.booleans()):  # a line twice
        order.insert(data.draw(st.integers(0, len(order))), data.draw(st.sampled_from(order)))
    body = mf.HEADER + b"".join(lines[i] for i in order)
    ordered = all(paths[a] < paths[b] for a, b in itertools.pairwise(order))
    for fast in (True, False):
        with patch.object(mf, "_plain", mf._plain if fast else lambda data: None):
            try:
                entries = mf.loads(body, OID)
            except MvcError as e:
                assert not ordered and OID in str(e), str(e)
                one_line(e)
                assert ("duplicate entry" if len(set(order)) < len(order) else "not sorted by path") in str(e)
                continue
            assert ordered and [e.path for e in entries] == sorted(paths) and mf.dumps(entries) == body


def test_plain_manifests_are_read_in_one_pass():
    entries = [mf.Entry(f"d{i % 3}/f{i}.bin", OID, i, i % 2 == 0) for i in range(50)]
    data = mf.dumps(entries)
    assert mf._plain(data) == sorted(entries, key=lambda e: e.path)
    assert mf.loads(data, OID) == sorted(entries, key=lambda e: e.path)


@MANY
@given(st.text(max_size=80), st.text(max_size=400))
def test_tag_names_and_messages(name, message):
    check_tags(name, message)


def test_deep_nesting_and_huge_numbers():
    for data in (deep(5000, "[", "]"), deep(5000, "{a=", "}", "x = "), ("a" + ".a" * 5000 + " = 1\n").encode()):
        check_pointer(data)
        check_config(data)
        check_marker(data)
    check_pointer(b"format = 1\nkind = 'file'\noid = '" + OID.encode() + b"'\nsize = 99999999999999999999999\n")
    check_manifest(mf.HEADER + b"[" * 100000 + b"]" * 100000 + b"\n")
    check_manifest(mf.HEADER + b'["' + b"[" * 100000 + b"\n")
    check_index(pk.INDEX_HEADER + f"{OID} {2**64} 1\n".encode())


# -- files of other tools that mvc import-dvc / import-lfs read (untrusted) ---------------------------------
MD5 = "0123456789abcdef0123456789abcdef"
DVC_LIKE = [
    f"outs:\n- md5: {MD5}\n  size: 3\n  path: m.bin\n".encode(),
    f"outs:\n- md5: {MD5}.dir\n  nfiles: 2\n  path: d\nmeta:\n  a: 1\n".encode(),
    f"schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: m.bin\n      md5: {MD5}\n      size: 3\n".encode(),
    b"stages:\n  train:\n    wdir: work\n    outs:\n    - m.bin\n    - x.json:\n        cache: false\n"
    b"  each:\n    foreach: [1, 2]\n    do:\n      wdir: ../w\n      outs: [o]\n",
    json.dumps([{"md5": MD5, "relpath": "a/b"}]).encode(),
    f"frozen: true\ndeps:\n- path: m.bin\n  repo:\n    url: ../r\n    rev_lock: {MD5}\nouts:\n- md5: {MD5}\n  path: m\n".encode(),
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 12\n",
]


def check_foreign(data: bytes) -> None:
    from mvc.errors import MvcError
    from mvc.format import dvcfile, lfspointer

    for parse in (
        lambda: dvcfile.parse_dvc(data, "m.bin.dvc"),
        lambda: dvcfile.import_source(data, "m.bin.dvc"),
        lambda: dvcfile.parse_lock(data, "dvc.lock"),
        lambda: dvcfile.parse_dir(data, MD5 + ".dir", "the .dir of d"),
        lambda: dvcfile.stages(data, "d/dvc.yaml"),
        lambda: dvcfile.lock_outputs(data, "d/dvc.lock", data),
        lambda: dvcfile.lock_outputs(DVC_LIKE[2], "d/dvc.lock", data),
        lambda: lfspointer.loads(data, "m.bin"),
        lambda: lfspointer.rules(data),
    ):
        try:
            parse()
        except MvcError as e:
            assert "\n" not in str(e)


@MANY
@given(st.sampled_from(DVC_LIKE), st.binary(max_size=40), st.integers(0, 400), st.integers(0, 40))
def test_dvc_and_lfs_files_near_valid(base, noise, at, cut):
    check_foreign(base[:at] + noise + base[at + cut :])


@MANY
@given(st.binary(max_size=600))
def test_dvc_and_lfs_files_of_random_bytes(data):
    check_foreign(data)


dvc_names = st.text(alphabet="abw._", min_size=1, max_size=6)


@MANY
@given(st.lists(st.sampled_from(["", ".", "..", "../..", "w", "w/x", "./w", "w/..", "${item}"]), max_size=3), dvc_names)
def test_dvc_lock_outputs_lie_below_their_stage_wdir(wdirs, out):
    """Each dvc.lock output is at its stage's wdir (from dvc.yaml, relative to the lock's directory) joined with
    its path, inside the repository; anything else is refused with one line."""
    import posixpath

    from mvc.format import dvcfile

    yaml = "stages:\n" + "".join(f"  s{i}:\n    wdir: '{w}'\n    cmd: x\n" for i, w in enumerate(wdirs))
    lock = "schema: '2.0'\nstages:\n" + "".join(
        f"  s{i}:\n    outs:\n    - path: {out}\n      md5: {MD5}\n" for i in range(len(wdirs))
    )
    try:
        outs = dvcfile.lock_outputs(lock.encode(), "d/dvc.lock", yaml.encode())
    except MvcError as e:
        assert "\n" not in str(e)
        return
    assert [o.path for o in outs] == [posixpath.normpath(posixpath.join("d", w, out)) for w in wdirs]
    assert all(o.path != ".." and not o.path.startswith("../") and "${" not in o.path for o in outs)


# -- the times of an S3 listing: read by the standard library, as botocore's own parser reads them ----------------
@settings(max_examples=500)
@given(
    when=st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2200, 1, 1)),
    style=st.sampled_from(["%Y-%m-%dT%H:%M:%S.000Z", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f+00:00"]),
)
def test_listing_times_parse_as_botocore_parses_them(when, style):
    from botocore.utils import parse_timestamp

    from mvc.storage.store import parse_time

    text = when.strftime(style)
    assert parse_time(text, parse_timestamp) == parse_timestamp(text)


@given(
    text=st.text(max_size=40) | st.sampled_from(["Wed, 02 Dec 2026 18:10:57 GMT", "2026-12-02T18:10:57", "1764699057"])
)
def test_anything_else_goes_to_botocores_parser(text):
    """A string the standard library cannot read with a zone (an HTTP date, a time without a zone, garbage) is
    botocore's to read or refuse, exactly as before."""
    from botocore.utils import parse_timestamp

    from mvc.storage.store import parse_time

    def theirs(value):
        try:
            return parse_timestamp(value)
        except Exception as e:  # whatever botocore raises, parse_time raises too
            return type(e)

    def ours(value):
        try:
            return parse_time(value, parse_timestamp)
        except Exception as e:
            return type(e)

    assert ours(text) == theirs(text)


# a remote's listing of packs/: names mvc writes, near misses, and anything a shared bucket may hold
_NAMES = st.sampled_from(["a" * 32, "b" * 32, "0123456789abcdef" * 2, "A" * 32, "a" * 31, "", "x"])
listing_rels = st.lists(
    st.one_of(
        st.builds(lambda n, ext: f"packs/{n}{ext}", _NAMES, st.sampled_from([".pack", ".idx", ".superseded", ""])),
        st.builds(lambda n: f"packs/sub/{n}.pack", _NAMES),
        st.text(max_size=40),
    ),
    max_size=12,
)


@MANY
@given(listing_rels)
def test_a_listing_of_packs_gives_complete_and_lone_names_apart(rels):
    complete, lone = pk.names_in(rels), pk.lone_in(rels)
    assert not complete & lone
    for name in complete | lone:
        assert pk.is_name(name) and pk.pack_rel(name) in rels
    assert all(pk.index_rel(name) in rels for name in complete)
    assert not any(pk.index_rel(name) in rels for name in lone)
    assert (
        complete | lone
        == pk.packs_in(rels)
        == {
            rel[len("packs/") : -len(".pack")]
            for rel in rels
            if rel.startswith("packs/") and rel.endswith(".pack") and pk.is_name(rel[len("packs/") : -len(".pack")])
        }
    )


name_parts = st.one_of(
    path_parts,
    st.sampled_from([" a", "a ", "a b", "a.", ".a", "\n", "a\nb", "GIT", "x-y_z+1", "\udcff", "\x7f", ":", "~"]),
    st.text(max_size=4),
)


@MANY
@given(st.lists(st.lists(name_parts, min_size=1, max_size=3).map("/".join), max_size=4))
def test_names_found_plain_in_one_pass_are_each_accepted(paths):
    """A directory's names that plain_relpaths passes in one pass are names bad_relpath accepts one by one, UTF-8,
    with no control character (what an add checks of each): the pass only ever spares those checks."""
    if mf.plain_relpaths(paths):
        for p in paths:
            assert mf.bad_relpath(p) is None and not ptrfmt.has_control(p)
            p.encode("utf-8")


near_oids = st.one_of(
    st.just(OID),
    st.text(alphabet="0123456789abcdefx:h\n", min_size=0, max_size=40).map(lambda t: "xxh128:" + t),
    st.sampled_from(["xxh128:" + "ab" * 16 + "\n", "xxh128:" + "AB" * 16, "sha256:" + "ab" * 16, ""]),
    st.integers(),
)


@MANY
@given(st.lists(near_oids, max_size=5))
def test_oids_checked_in_one_pass_as_one_by_one(values):
    """relpaths checks every oid at once: it maps exactly the lists to_relpath takes one by one, and refuses the
    others with the same error."""
    from mvc.objects import oid as oids

    def each():
        try:
            return {f"objects/{oids.to_relpath(v)}": v for v in values}
        except MvcError as e:
            return str(e)

    try:
        got = oids.relpaths(values, "objects/")
    except MvcError as e:
        got = str(e)
    assert got == each()
