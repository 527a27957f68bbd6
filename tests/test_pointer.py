"""Pointer files: one canonical encoding, any valid TOML read, unknown keys kept, versions refused."""

from __future__ import annotations

import pytest
from conftest import git, make_file

from mvc.errors import PointerError
from mvc.format import pointer as ptrfmt

OID = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"
OID2 = "xxh128:00112233445566778899aabbccddeeff"

# Keys sorted at every level, plain keys before tables, tomli-w layout (docs/FORMAT.md).
SAMPLE = """\
alpha = 1
format = 1
kind = "file"
oid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"
size = 20000000
zeta = "x"

[meta]
accuracy = 0.93
author = "me"
tags = [
    "b",
    "a",
]

[meta.zz]
a = "x"
b = 1

[table]
a = [
    1,
    2,
]
b = 1
"""


def sample() -> ptrfmt.Pointer:
    # built in a deliberately unsorted order
    return ptrfmt.Pointer(
        "file",
        OID,
        20000000,
        meta={"zz": {"b": 1, "a": "x"}, "tags": ["b", "a"], "author": "me", "accuracy": 0.93},
        extra={"zeta": "x", "table": {"b": 1, "a": [1, 2]}, "alpha": 1},
    )


def test_canonical_encoding_is_byte_exact():
    assert ptrfmt.dumps(sample()).decode() == SAMPLE


def test_dir_pointer_encoding():
    p = ptrfmt.Pointer("dir", OID, 5, nfiles=2)
    assert ptrfmt.dumps(p) == (
        b'format = 1\nkind = "dir"\nnfiles = 2\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 5\n'
    )


def test_file_pointer_has_no_nfiles_and_no_empty_meta():
    assert ptrfmt.dumps(ptrfmt.Pointer("file", OID, 0)) == (
        b'format = 1\nkind = "file"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 0\n'
    )


@pytest.mark.parametrize(
    "text",
    [
        SAMPLE,
        'format = 1\nkind = "dir"\nnfiles = 0\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 0\n',
        'format = 1\nkind = "file"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 3\n'
        'when = 2024-01-02 03:04:05+00:00\n\n[meta]\n"key with space" = "ünïcode"\n',
    ],
)
def test_dumps_loads_is_identity_on_canonical_input(text):
    assert ptrfmt.dumps(ptrfmt.loads(text.encode())).decode() == text


def test_non_canonical_valid_toml_is_read():
    text = """
# a hand-written pointer: comments, odd order, inline and dotted tables, literal strings
size = 20_000_000
oid = 'xxh128:eb579b0020857ed8fbbe9ed2bff95286'
kind     =     "file"
table = { b = 1, a = [1, 2] }
format = 1
zeta = "x"
alpha = 0x1

[meta]
zz.b = 1
zz.a = "x"
author = "me"
tags = ['b', 'a']
accuracy = 9.3e-1
"""
    p = ptrfmt.loads(text.encode())
    assert (p.kind, p.oid, p.size, p.nfiles) == ("file", OID, 20000000, None)
    assert p.meta == {"tags": ["b", "a"], "author": "me", "accuracy": 0.93, "zz": {"a": "x", "b": 1}}
    assert p.extra == {"table": {"a": [1, 2], "b": 1}, "zeta": "x", "alpha": 1}
    # same content, so the same single encoding
    assert ptrfmt.dumps(p).decode() == SAMPLE


VALID = 'kind = "file"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 1\n'


@pytest.mark.parametrize(
    "text, words",
    [
        (VALID, ("format", "unknown")),  # missing
        ("format = 2\n" + VALID, ("newer", "upgrade mvc")),
        ("format = 99\n" + VALID, ("newer", "upgrade mvc")),
        ("format = 0\n" + VALID, ("unknown",)),
        ("format = -1\n" + VALID, ("unknown",)),
        ('format = "1"\n' + VALID, ("unknown",)),
        ("format = 1.0\n" + VALID, ("unknown",)),
        ("format = true\n" + VALID, ("unknown",)),
    ],
)
def test_unknown_or_missing_format_version_is_refused(text, words):
    with pytest.raises(PointerError) as e:
        ptrfmt.loads(text.encode(), "m.bin.mvc")
    msg = str(e.value)
    assert "m.bin.mvc" in msg and "\n" not in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"not toml at all ][",
        b"format = 1\nformat = 1\n",  # duplicate key is invalid TOML
        b"\xff\xfe format = 1",  # not UTF-8
        b'format = 1\nkind = "blob"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 1\n',
        b'format = 1\nkind = "file"\noid = "sha256:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 1\n',
        b'format = 1\nkind = "file"\noid = "xxh128:EB579B0020857ED8FBBE9ED2BFF95286"\nsize = 1\n',
        b'format = 1\nkind = "file"\noid = "xxh128:eb579b00"\nsize = 1\n',
        b'format = 1\nkind = "file"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = -1\n',
        b'format = 1\nkind = "file"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = "1"\n',
        b'format = 1\nkind = "file"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = true\n',
        b'format = 1\nkind = "file"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\n',
        b'format = 1\nkind = "file"\nnfiles = 2\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 1\n',
        b'format = 1\nkind = "dir"\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 1\n',
        b'format = 1\nkind = "dir"\nnfiles = -2\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 1\n',
        b'format = 1\nkind = "file"\nmeta = 3\noid = "xxh128:eb579b0020857ed8fbbe9ed2bff95286"\nsize = 1\n',
    ],
)
def test_broken_pointer_is_refused_in_one_line(text):
    with pytest.raises(PointerError) as e:
        ptrfmt.loads(text, "m.bin.mvc")
    msg = str(e.value)
    assert msg.startswith("m.bin.mvc: ") and "\n" not in msg
    assert "git checkout -- m.bin.mvc" in msg  # the fix


# -- through the CLI: re-adding rewrites the pointer and keeps what it does not know -----------------
HAND_WRITTEN = """\
# written by a future tool
future_flag = true
format = 1
kind = "file"
oid = "{oid}"
size = {size}

[meta]
accuracy = 0.5
owner = "team-a"
[meta.train]
epochs = 3

[provenance]
dataset = "s3://bucket/data"
steps = [1, 2]
"""


def test_unknown_keys_survive_re_add(repo, mvc_cli):
    model = make_file(repo / "model.bin", 300, seed=1)
    mvc_cli("add", "model.bin")
    old = ptrfmt.loads((repo / "model.bin.mvc").read_bytes())
    (repo / "model.bin.mvc").write_text(HAND_WRITTEN.format(oid=old.oid, size=old.size))
    make_file(model, 400, seed=2)
    mvc_cli("add", "model.bin", "--meta", "accuracy=0.75", "--meta", "epochs=5")
    p = ptrfmt.loads((repo / "model.bin.mvc").read_bytes())
    assert p.oid != old.oid and p.size == 400
    assert p.extra == {"future_flag": True, "provenance": {"dataset": "s3://bucket/data", "steps": [1, 2]}}
    assert p.meta == {"accuracy": 0.75, "owner": "team-a", "train": {"epochs": 3}, "epochs": 5}
    # and the file on disk is the canonical encoding of that content
    assert (repo / "model.bin.mvc").read_bytes() == ptrfmt.dumps(p)


def test_unknown_keys_survive_re_add_of_a_directory(repo, mvc_cli):
    make_file(repo / "d" / "a.bin", 10, seed=1)
    mvc_cli("add", "d", "--no-auto")  # no table yet, so the top-level key below is one
    pointer = repo / "d.mvc"
    pointer.write_text(pointer.read_text() + "zzz = [1]\n\n[extra_table]\nx = 1\n")
    make_file(repo / "d" / "b.bin", 10, seed=2)
    mvc_cli("add", "d")
    p = ptrfmt.loads(pointer.read_bytes())
    assert (p.nfiles, p.extra) == (2, {"zzz": [1], "extra_table": {"x": 1}})


def test_meta_key_removed_with_empty_value_others_kept(repo, mvc_cli):
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin", "-m", "a=1", "-m", "b=two", "-m", "c=true")
    mvc_cli("add", "m.bin", "-m", "a=")
    assert ptrfmt.loads((repo / "m.bin.mvc").read_bytes()).meta == {"b": "two", "c": True}


def test_unchanged_re_add_leaves_pointer_bytes_alone(repo, mvc_cli):
    """Re-adding unchanged content rewrites nothing: git sees no change at all."""
    make_file(repo / "m.bin", 10)
    mvc_cli("add", "m.bin")
    git(repo, "commit", "-q", "-m", "m")
    out = mvc_cli("add", "m.bin").stdout
    assert out.startswith("unchanged m.bin")
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    "text, value",
    [
        ("12", 12),
        ("-3", -3),
        ("0.93", 0.93),
        ("1.5e-3", 0.0015),
        ("1e-3", 0.001),
        ("true", True),
        ("false", False),
        ("0e12", "0e12"),
        ("1_000", "1_000"),
        ("007", "007"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("True", "True"),
        ("abc", "abc"),
        ("", ""),
    ],
)
def test_meta_values_keep_what_is_not_a_plain_number(text, value):
    from mvc.format.pointer import parse_meta_value

    got = parse_meta_value(text)
    assert got == value and type(got) is type(value)


def test_oid_with_a_trailing_newline_is_refused():
    text = 'format = 1\nkind = "file"\noid = "xxh128:' + "0" * 32 + '\\n"\nsize = 1\n'
    with pytest.raises(PointerError, match="bad oid"):
        ptrfmt.loads(text, "m.bin.mvc")
