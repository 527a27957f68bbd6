"""Config values of the wrong type or shape are refused up front, with one line naming the key and the fix;
credentials never sit in the committed config, and are never echoed."""

from __future__ import annotations

import sys

import pytest
from conftest import git, make_file
from hypothesis import given
from hypothesis import strategies as st

from mvc.format import config as cfgfmt

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('url = "s3://b/m"\nendpoint_url = 5\n', ("endpoint_url", "string")),
        ('url = "s3://b/m"\nconfig_kwargs = "x"\n', ("config_kwargs", "table")),
        ('url = "s3://b/m"\nclient_kwargs = [1]\n', ("client_kwargs", "table")),
        ('url = "s3://b/m\\u0000x"\n', ("url", "control character")),
        ('url = "/tmp/a\\nb"\n', ("url", "control character")),
        ('url = "s3://b/m"\nendpoint_url = "ftp://host"\n', ("endpoint_url", "http://")),
        ('url = "s3://b/m"\nprofile = true\n', ("profile", "string")),
        ("url = 7\n", ("url",)),
    ],
)
def test_bad_remote_values_are_refused_naming_the_key(repo, mvc_cli, mvc_error, table, words):
    (repo / ".mvc" / "config.toml").write_text(f"[remote.origin]\n{table}")
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    mvc_error("push", words=("remote.origin", *words))
    mvc_error("remote", "list", words=words[:1])


def test_credentials_in_a_committed_url_are_refused_and_not_echoed(repo, mvc_error):
    (repo / ".mvc" / "config.toml").write_text(
        '[remote.origin]\nurl = "s3://b/m"\nendpoint_url = "http://admin:hunter2@127.0.0.1:9/"\n'
    )
    line = mvc_error("push", words=("credentials", "config.local.toml"))
    assert "hunter2" not in line and "admin" not in line


def test_credentials_in_the_local_config_are_allowed_but_masked():
    assert cfgfmt.redact_url("https://user:pw@host:8/x/y") == "https://***@host:8/x/y"
    assert cfgfmt.redact_url("/plain/path") == "/plain/path"
    assert cfgfmt.has_credentials("http://a:b@h/") and not cfgfmt.has_credentials("http://h/a@b")
    deep = {"client_kwargs": {"aws_secret_access_key": "s", "region_name": "eu"}, "token": "t", "url": "http://u:p@h/"}
    assert cfgfmt.masked(deep) == {
        "client_kwargs": {"aws_secret_access_key": "***", "region_name": "eu"},
        "token": "***",
        "url": "http://***@h/",
    }


@pytest.mark.parametrize("word", ["password", "passwd", "api_token", "credentials", "secret_access_key"])
def test_secret_words(word):
    assert cfgfmt.is_secret(f"remote.origin.{word}")


def test_remote_add_refuses_credentials_in_the_committed_config_and_writes_nothing(repo, mvc_cli, mvc_error):
    before = (repo / ".mvc" / "config.toml").read_bytes()
    line = mvc_error("remote", "add", "web", "https://bob:hunter2@example.com/models", words=("credentials", "--local"))
    assert "hunter2" not in line
    assert (repo / ".mvc" / "config.toml").read_bytes() == before
    mvc_cli("remote", "add", "origin", "s3://b/m")
    line = mvc_error(
        "remote", "modify", "origin", "endpoint_url", "http://bob:hunter2@127.0.0.1:9/", words=("credentials",)
    )
    assert "hunter2" not in line
    assert "hunter2" not in (repo / ".mvc" / "config.toml").read_text()


def test_credentials_kept_locally_are_never_shown(repo, mvc_cli):
    out = mvc_cli("remote", "add", "web", "https://bob:hunter2@example.com/models", "--local").output
    assert "hunter2" not in out and "***@example.com" in out
    local = repo / ".mvc" / "config.local.toml"
    local.write_text(
        local.read_text() + '[remote.web.client_kwargs]\naws_secret_access_key = "s3cr3t"\nregion_name = "eu"\n'
    )
    for args in (("remote", "list"), ("remote", "list", "--json")):
        out = mvc_cli(*args).output
        assert "hunter2" not in out and "s3cr3t" not in out and "eu" in out


def test_a_refused_value_is_not_left_in_the_file(repo, mvc_cli, mvc_error):
    mvc_cli("remote", "add", "origin", "s3://b/m")
    before = (repo / ".mvc" / "config.toml").read_bytes()
    mvc_error("remote", "modify", "origin", "url", "s3://")
    assert (repo / ".mvc" / "config.toml").read_bytes() == before


def test_a_host_based_fsspec_url_is_read_from_the_url_and_a_dead_host_is_one_line(repo, mvc_cli):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "f", f"ftp://bob:hunter2@127.0.0.1:{port}/models", "--default", "--local")
    result = mvc_cli("push", ok=False)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("mvc: ")]
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach ftp://***@127.0.0.1:") and "hunter2" not in result.stderr


def test_store_messages_never_show_a_password(repo, mvc_cli):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "s3", "s3://bucket/models", "--default")
    local = repo / ".mvc" / "config.local.toml"
    local.write_text(
        f'[remote.s3]\nendpoint_url = "http://bob:hunter2@127.0.0.1:{port}/"\n'
        "[remote.s3.config_kwargs.retries]\nmax_attempts = 1\n"
    )
    result = mvc_cli("push", ok=False)
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "hunter2" not in result.stderr


@pytest.mark.parametrize(
    ("table", "args", "key"),
    [('[core]\nfsync = "no"\n', ("add", "m.bin"), "core.fsync"), ("[core]\nremote = 5\n", ("push",), "core.remote")],
)
def test_core_values_of_the_wrong_type_are_refused(repo, mvc_error, table, args, key):
    make_file(repo / "m.bin", 100)
    (repo / ".mvc" / "config.toml").write_text(table)
    mvc_error(*args, words=(key,))


# -- typed settings: refused when set, one line when read, defaults shown, unknown keys named -------------
def _config_files(repo):
    mvc = repo / ".mvc"
    return {p: (mvc / p).read_bytes() if (mvc / p).exists() else None for p in ("config.toml", "config.local.toml")}


BAD_VALUES = [
    ("hooks.max_size", "lots", ("size", "10MB")),
    ("hooks.max_size", "10XB", ("size",)),
    ("hooks.max_size", "9" * 400, ("size",)),  # a float of it is endless: the hook would crash on it
    ("hooks.max_size", "1.5.0MB", ("size",)),
    ("hooks.extensions", ".pt,\x01x", ("extensions",)),
    ("core.auto_record", "maybe", ("true or false",)),
    ("core.fsync", "1", ("true or false",)),
    ("core.remote", "a/b", ("remote's name",)),
    ("core.remote", "nowhere", ("unknown remote", "mvc remote add")),
    ("cache.type", "reflink,nope", ("reflink",)),
    ("cache.dir", "a\nb", ("path",)),
    ("remote.origin.jobs", "many", ("positive integer",)),
    ("remote.origin.packs", "maybe", ("true or false",)),
    ("remote.s3.endpoint_url", "ftp://h/", ("http://",)),
    ("remote.origin.typo", "1", ("unknown key", "jobs")),
    ("remote.origin", "x", ("remote.NAME.KEY",)),
    ("hooks.max_szie", "1MB", ("unknown config key", "did you mean hooks.max_size")),
]


@pytest.mark.parametrize(("key", "value", "words"), BAD_VALUES, ids=[f"{k}={v[:12]!r}" for k, v, _ in BAD_VALUES])
def test_a_bad_value_is_refused_with_an_example_and_nothing_is_written(repo, mvc_cli, mvc_error, key, value, words):
    mvc_cli("remote", "add", "origin", str(repo.parent / "store"))
    mvc_cli("remote", "add", "s3", "s3://bucket/models")
    before = _config_files(repo)
    for local in ((), ("--local",)):
        line = mvc_error("config", key, value, *local, words=(key.split(".")[-1], *words))
        assert "e.g. " in line or "known keys" in line or "mvc remote add" in line, line
        assert _config_files(repo) == before


def test_a_refused_size_leaves_the_pre_commit_hook_working(repo, mvc_cli, mvc_error):
    mvc_cli("install-hooks")
    mvc_error("config", "hooks.max_size", "lots", words=("hooks.max_size", "10MB", "mvc config"))
    (repo / "notes.txt").write_text("x\n")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "notes")  # the hook runs, and lets it through


def test_the_python_setter_refuses_too(repo):
    from mvc.api import config as cfg
    from mvc.errors import ConfigError

    before = _config_files(repo)
    with pytest.raises(ConfigError, match=r"hooks\.max_size takes a size"):
        cfg.set("hooks.max_size", "lots")
    with pytest.raises(ConfigError, match="unknown config key"):
        cfg.set("nope", "1")
    assert _config_files(repo) == before
    cfg.set("hooks.max_size", " 512KiB ")
    assert cfg.get("hooks.max_size") == "512KiB"


GOOD_VALUES = [
    ("hooks.max_size", "20MB", "20MB", "20MB"),
    ("hooks.max_size", "0", "0", "0"),
    ("hooks.max_size", "1.5GiB", "1.5GiB", "1.5GiB"),
    ("hooks.extensions", ".npz, .pt", [".npz", ".pt"], ".npz,.pt"),
    ("hooks.allow", "tests/data/*", ["tests/data/*"], "tests/data/*"),
    ("hooks.allow", "", [], ""),
    ("core.auto_record", "FALSE", False, "false"),
    ("core.fsync", "true", True, "true"),
    ("cache.type", "copy", ["copy"], "copy"),
    ("cache.dir", "../elsewhere", "../elsewhere", "../elsewhere"),
]


@pytest.mark.parametrize(("key", "value", "stored", "shown"), GOOD_VALUES)
def test_good_values_are_written_typed_and_read_back(repo, mvc_cli, key, value, stored, shown):
    mvc_cli("config", key, value)
    table, name = key.split(".")
    assert cfgfmt.read(str(repo / ".mvc" / "config.toml"))[table][name] == stored
    assert mvc_cli("config", key).stdout == shown + "\n"


def test_core_remote_names_a_configured_remote(repo, mvc_cli):
    mvc_cli("remote", "add", "origin", str(repo.parent / "store"))
    mvc_cli("config", "core.remote", "origin")
    assert mvc_cli("config", "core.remote").stdout == "origin\n"


READ_BAD = [
    ('[hooks]\nmax_size = "lots"\n', "hooks.max_size", ("hook", "pre-commit")),
    ('[hooks]\nmax_size = "' + "9" * 400 + '"\n', "hooks.max_size", ("hook", "pre-commit")),
    ("[hooks]\nmax_size = -1\n", "hooks.max_size", ("hook", "pre-commit")),
    ('[hooks]\nextensions = ".pt"\n', "hooks.extensions", ("hook", "pre-commit")),
    ("[hooks]\nallow = [1]\n", "hooks.allow", ("hook", "pre-commit")),
    ("hooks = 5\n", "hooks", ("hook", "pre-commit")),
    ('[core]\nfsync = "no"\n', "core.fsync", ("status",)),
    ("[core]\nauto_record = 3\n", "core.auto_record", ("add", "m.bin")),
    ("[core]\nremote = 5\n", "core.remote", ("push",)),
    ("core = 5\n", "core", ("status",)),
    ('[cache]\ndir = "a\\u0000b"\n', "cache.dir", ("status",)),
    ("[cache]\ntype = 5\n", "cache.type", ("add", "m.bin")),
    ("[cache]\ntype = []\n", "cache.type", ("add", "m.bin")),
]


@pytest.mark.parametrize("local", [False, True], ids=["committed", "local"])
@pytest.mark.parametrize(("toml", "key", "command"), READ_BAD, ids=[r[0][:24] for r in READ_BAD])
def test_a_bad_value_in_a_file_is_one_line_naming_the_key_the_file_and_a_fix_that_works(
    repo, mvc_cli, mvc_error, toml, key, command, local
):
    import re

    name = "config.local.toml" if local else "config.toml"
    path = repo / ".mvc" / name
    path.write_text(toml)
    make_file(repo / "m.bin", 100)
    (repo / "notes.txt").write_text("x\n")
    git(repo, "add", "notes.txt")
    result = mvc_cli(*command, ok=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1, result.stderr
    assert key in lines[0] and f".mvc/{name}" in lines[0] and "Traceback" not in result.output, lines[0]
    setting = key if "." in key else None
    if setting is None:  # a table that is not one: fixed in the file
        assert "table" in lines[0]
        return
    mvc_error("config", key, words=(key, name))  # reading it says the same
    fix = re.search(r"fix it with 'mvc config ([^']*)'", lines[0])
    assert fix is not None, lines[0]
    args = fix.group(1).replace('"', "").split()
    if key == "core.remote":
        mvc_cli("remote", "add", "origin", str(repo.parent / "store"))
    mvc_cli("config", *args)  # the fix it names works, though the config could not be read
    mvc_cli("status")


def test_every_setting_with_a_default_reads_as_its_default(repo, mvc_cli, mvc_error):
    from mvc.api import config as cfg

    (repo / ".mvc" / "config.toml").write_text("")
    for key in cfgfmt.SETTINGS:
        table, name = key.split(".")
        default = cfgfmt.DEFAULTS.get(table, {}).get(name)
        if default is None:
            mvc_error("config", key, words=("is not set", f"mvc config {key} VALUE"))
        else:
            shown = default if isinstance(default, str) else cfg.render(default)
            assert mvc_cli("config", key).stdout == shown + "\n", key
            cfgfmt.check_value(key, default, "DEFAULTS")
    assert mvc_cli("config", "hooks.max_size").stdout == "10MB\n"
    assert mvc_cli("config", "hooks.extensions").stdout.startswith(".pt,.pth,")


def test_the_hook_defaults_are_the_ones_the_hook_uses():
    from mvc.api import hook_actions

    hooks = cfgfmt.DEFAULTS["hooks"]
    assert hooks["max_size"] == hook_actions.DEFAULT_MAX_SIZE
    assert hooks["extensions"] == list(hook_actions.DEFAULT_EXTENSIONS)
    assert hooks["allow"] == []


def test_docs_list_every_setting_with_its_default():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    for key in cfgfmt.SETTINGS:
        assert f"| `{key}` |" in text, key


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("hooks.max_szie", ("unknown config key", "did you mean hooks.max_size", "hooks.allow")),
        ("nope.x", ("unknown config key", "cache.type", "remote.NAME.KEY")),
        ("cachedir", ("unknown config key", "did you mean cache.dir")),
    ],
)
def test_reading_an_unknown_key_says_it_is_unknown(repo, mvc_error, key, words):
    (repo / ".mvc" / "config.toml").write_text("")
    line = mvc_error("config", key, words=words)
    assert "not set" not in line


def test_reading_a_key_of_a_users_table_that_is_not_there_is_not_set(repo, mvc_cli, mvc_error):
    mvc_error("config", "remote.x.url", words=("not set",))
    mvc_error("config", "models.m.path", words=("not set",))
    mvc_cli("remote", "add", "origin", str(repo.parent / "store"))
    assert mvc_cli("config", "remote.origin.url").stdout == f"{repo.parent / 'store'}\n"


# -- remote keys: an unknown key is named as such, secrets stay refused -----------------------------------
def test_an_unknown_remote_key_is_unknown_not_a_secret(repo, mvc_cli, mvc_error):
    mvc_cli("remote", "add", "origin", str(repo.parent / "store"))
    mvc_cli("remote", "add", "s3", "s3://bucket/models")
    before = _config_files(repo)
    for local in ((), ("--local",)):
        line = mvc_error("remote", "modify", "origin", "typo_key", "1", *local, words=("unknown key", "typo_key"))
        assert "looks like a secret" not in line and "known keys are chunks, jobs, packs, url" in line
        line = mvc_error("remote", "modify", "s3", "typo_key", "1", *local, words=("unknown key", "endpoint_url"))
        assert "looks like a secret" not in line
    mvc_error("remote", "modify", "origin", "jbos", "8", words=("unknown key", "did you mean jobs"))
    mvc_error("remote", "modify", "s3", "endpoint_urll", "http://h/", words=("did you mean endpoint_url",))
    mvc_error("config", "remote.origin.typo", "1", words=("unknown key", "jobs"))
    assert _config_files(repo) == before
    for key in ("secret_access_key", "access_key_id", "session_token", "password"):  # S3's real secrets
        mvc_error("remote", "modify", "s3", key, "s3cr3t", words=("looks like a secret", "--local"))
    assert _config_files(repo) == before
    mvc_cli("remote", "modify", "s3", "secret_access_key", "s3cr3t", "--local")
    mvc_cli("remote", "modify", "s3", "anon", "true")
    mvc_cli("remote", "modify", "origin", "typo_key", "--unset")  # removing one is always allowed


def test_a_filesystem_that_takes_any_keyword_gets_any_key(repo, mvc_cli, mvc_error):
    from mvc.api.remote_config import known_keys

    assert known_keys("memory://x/y") is None and known_keys("/tmp/x") == {"url", "jobs", "packs", "chunks"}
    mvc_cli("remote", "add", "mem", "memory://mvc-test/keys")
    mvc_cli("remote", "modify", "mem", "some_option", "true")
    assert cfgfmt.read(str(repo / ".mvc" / "config.toml"))["remote"]["mem"]["some_option"] is True
    mvc_error("remote", "modify", "mem", "api_token", "t", words=("looks like a secret",))


# -- the parsers, fed garbage -----------------------------------------------------------------------------
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["10MB", "0", "1e3", "٣MB", "512KiB", " 1 kb ", "copy", "reflink", "origin", "true"]),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@given(
    st.sampled_from(sorted(cfgfmt.SETTINGS)),
    st.one_of(st.text(max_size=60), st.from_regex(r"\s*[0-9.]{1,400}\s*[kKmMgGtT]?[iI]?[bB]?\s*", fullmatch=True)),
)
def test_any_text_parses_to_a_valid_value_or_is_one_line(key, text):
    import tomli_w

    from mvc.errors import ConfigError

    try:
        value = cfgfmt.parse_value(key, text)
    except ConfigError as e:
        assert "\n" not in str(e) and key in str(e)
        return
    cfgfmt.check_value(key, value, "x")  # what is written reads back as valid
    assert tomllib.loads(tomli_w.dumps({"v": value}))["v"] == value


@given(st.sampled_from(sorted(cfgfmt.SETTINGS)), toml_values)
def test_any_value_read_is_valid_or_one_line(key, value):
    from mvc.errors import ConfigError

    try:
        cfgfmt.check_value(key, value, ".mvc/config.toml")
    except ConfigError as e:
        assert "\n" not in str(e) and key in str(e) and "mvc config" in str(e)


@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(r"\s*[0-9]{1,400}(\.[0-9]{1,30})?\s*[kKmMgGtT]?[iI]?[bB]?\s*", fullmatch=True),
    )
)
def test_a_size_is_what_the_hook_reads_or_refused(text):
    """What the config accepts as hooks.max_size, the pre-commit hook reads to the same number (never
    overflowing); what it refuses is refused whole."""
    from mvc.api import hook_actions

    n = cfgfmt.size_bytes(text)
    if n is not None:
        assert n >= 0 and hook_actions.parse_size(text) == n


@given(st.dictionaries(st.sampled_from(["cache", "core", "hooks", "remote", "x"]), toml_values, max_size=4))
def test_a_config_file_of_any_shape_reads_each_setting_or_one_line(tmp_path_factory, data):
    import tomli_w

    from mvc.errors import ConfigError

    d = tmp_path_factory.mktemp("cfg")
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):
        return
    (d / "config.toml").write_text(text)
    config = cfgfmt.Config(str(d))
    for key in cfgfmt.SETTINGS:
        try:
            value = config.get(key)
        except ConfigError as e:
            assert "\n" not in str(e) and ".mvc/config.toml" in str(e)
        else:
            assert value is None or cfgfmt.SETTINGS[key].valid(value)
