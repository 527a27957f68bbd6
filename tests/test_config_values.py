"""Config values of the wrong type or shape are refused up front, with one line naming the key and the fix;
credentials never sit in the committed config, and are never echoed."""

from __future__ import annotations

import pytest
from conftest import make_file

from mvc.format import config as cfgfmt


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
