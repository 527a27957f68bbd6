"""The registry tag grammar (GTO's), semver precedence and bumps, and the tag annotation format."""

from __future__ import annotations

import pytest

from mvc.errors import RegistryError
from mvc.format import tags as t


@pytest.mark.parametrize(
    "name, want",
    [
        ("churn@v1.2.3", ("churn", t.REGISTER, "v1.2.3", None, None)),
        ("churn@v1.2.3!", ("churn", t.DEREGISTER, "v1.2.3", None, None)),
        ("churn@v1.2.3#4", ("churn", t.REGISTER, "v1.2.3", None, 4)),
        ("churn#prod#3", ("churn", t.ASSIGN, None, "prod", 3)),
        ("churn#prod!#4", ("churn", t.UNASSIGN, None, "prod", 4)),
        ("churn#prod", ("churn", t.ASSIGN, None, "prod", None)),  # GTO's old tags without a counter
        ("churn#prod!", ("churn", t.UNASSIGN, None, "prod", None)),
        ("churn@deprecated", ("churn", t.DEPRECATE, None, None, None)),
        ("churn@deprecated#7", ("churn", t.DEPRECATE, None, None, 7)),
        ("churn@created", ("churn", t.CREATE, None, None, None)),
        ("cv/resnet-50@v1.0.0-rc.1+build.5", ("cv/resnet-50", t.REGISTER, "v1.0.0-rc.1+build.5", None, None)),
        ("models/dir=churn@v1.0.0", ("models/dir:churn", t.REGISTER, "v1.0.0", None, None)),  # GTO monorepo
        ("Churn_X#Prod#2", ("Churn_X", t.ASSIGN, None, "Prod", 2)),  # GTO 1.10 reads these too
    ],
)
def test_parse_and_format_round_trip(name, want):
    parsed = t.parse(name)
    assert (parsed.artifact, parsed.action, parsed.version, parsed.stage, parsed.counter) == want
    assert t.format(parsed) == name


@pytest.mark.parametrize(
    "name",
    [
        "v1.0.0",
        "churn",
        "churn@1.2.3",
        "churn@v1.2",
        "churn@v01.2.3",
        "churn@v1.2.3-",
        "churn#prod#x",
        "churn#prod#",
        "-churn@v1.0.0",
        "churn-@v1.0.0",
        "churn@latest",
        "churn@v1.0.0!!",
        "churn#prod!#2!",
        "ch urn@v1.0.0",
        "churn@deprecated!",
        "churn@v1.0.\u0663",  # an Arabic-Indic 3: Python's \d takes it, and int() reads it as 3
        "churn@v1.0.0-rc.\u0661",
    ],
)
def test_not_registry_tags(name):
    assert t.parse(name) is None


def test_refs():
    assert t.parse_ref("churn#prod") == t.Ref("churn", stage="prod")
    assert t.parse_ref("churn@v1.2.0") == t.Ref("churn", version="v1.2.0")
    assert t.parse_ref("churn@latest") == t.Ref("churn", latest=True)
    assert t.parse_ref("churn@greatest") == t.Ref("churn", latest=True)
    for rev in ("HEAD", "HEAD@{1}", "main@{upstream}", "churn#prod#3", "churn@v1.2", "v1.0"):
        assert t.parse_ref(rev) is None, rev


@pytest.mark.parametrize("name", ["churn", "cv/resnet-50", "a", "m2", "team/cv/detector"])
def test_names_mvc_writes(name):
    assert t.check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "Churn",
        "churn_x",
        "-churn",
        "churn-",
        "churn/",
        "/churn",
        "a//b",
        "",
        "churn.pt",
        "churn@v1",
        "churn#x",
        "dir:churn",
        "ch urn",
    ],
)
def test_names_mvc_refuses(name):
    with pytest.raises(RegistryError, match="invalid model name"):
        t.check_name(name)


def test_versions():
    assert t.check_version("1.2.0") == "v1.2.0"
    assert t.check_version("v2.0.0-rc.1+b7") == "v2.0.0-rc.1+b7"
    for bad in ("1.2", "v1", "v1.2.3.4", "v01.0.0", "version1", "V1.0.0", ""):
        with pytest.raises(RegistryError, match="invalid version"):
            t.check_version(bad)


def test_semver_precedence():
    ordered = [
        "v0.9.9",
        "v1.0.0-alpha",
        "v1.0.0-alpha.1",
        "v1.0.0-alpha.beta",
        "v1.0.0-beta",
        "v1.0.0-beta.2",
        "v1.0.0-beta.11",
        "v1.0.0-rc.1",
        "v1.0.0",
        "v1.0.1",
        "v1.10.0",
        "v2.0.0",
    ]
    assert sorted(ordered, key=t.semver_key) == ordered
    assert t.semver_key("v1.0.0+build.1") == t.semver_key("v1.0.0")


def test_bump():
    assert t.bump("v1.4.2") == "v1.4.3"
    assert t.bump("v1.4.2", "minor") == "v1.5.0"
    assert t.bump("v1.4.2", "major") == "v2.0.0"
    assert t.bump("v1.4.2-rc.1+b3") == "v1.4.3"
    assert t.bump("v0.0.0") == t.FIRST_VERSION


def test_annotation_round_trip():
    text = t.format_message(
        "  Registering churn\r\n#1 line kept \n", {"path": "models/churn.pt", "oid": "xxh128:" + "0" * 32, "size": 12}
    )
    assert text == (
        f"  Registering churn\n#1 line kept\n\nmvc-path: models/churn.pt\nmvc-oid: xxh128:{'0' * 32}\nmvc-size: 12\n"
    )
    assert t.parse_message(text) == (
        "Registering churn\n#1 line kept",
        {"path": "models/churn.pt", "oid": "xxh128:" + "0" * 32, "size": "12"},
    )


def test_gto_plain_messages_have_no_fields():
    assert t.parse_message("Registering artifact churn version v1.0.0\n") == (
        "Registering artifact churn version v1.0.0",
        {},
    )
    assert t.parse_message("subject\n\nbody: not ours\n") == ("subject\n\nbody: not ours", {})
    assert t.parse_message("") == ("", {})


def test_trailers_mvc_never_writes_are_dropped():
    """A collaborator's tag: a path that is not a clean relative one, an oid or a size of another form, is read as
    if the tag did not record it; the rest is kept."""
    for path in ("../x", "/etc/passwd", "a/./b", "a//b", ".git/config", ".mvc/config.toml", "a\\b", "a\x1bb"):
        assert t.parse_message(f"m\n\nmvc-path: {path}\nmvc-kind: file\n")[1] == {"kind": "file"}, path
    for size in ("\u00b2", "\u0663", "-1", "1e3", "12345678901234567890"):
        assert t.parse_message(f"m\n\nmvc-size: {size}\n")[1] == {}, size
    assert t.parse_message("m\n\nmvc-oid: xxh128:ABC\n")[1] == {}


def test_trailer_value_with_a_line_break_is_refused():
    with pytest.raises(RegistryError, match="line break"):
        t.format_message("m", {"path": "a\nb"})
