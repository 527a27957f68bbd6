"""mvc remote add/list/modify/remove/default, remote URLs and protocols, and the journal's file.

Transfers against real stores are in remote_suite.py (run by test_remote_local.py and test_remote_s3.py).
"""

from __future__ import annotations

import io
import json
import sys

import pytest
from conftest import git, make_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def config(repo, local=False):
    path = repo / ".mvc" / ("config.local.toml" if local else "config.toml")
    return tomllib.loads(path.read_text()) if path.exists() else {}


def error_line(mvc_cli, *args):
    result = mvc_cli(*args, ok=False)
    lines = result.stderr.splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- add, list, default, remove -------------------------------------------------------------------
def test_add_list_default_remove(repo, mvc_cli, tmp_path):
    mvc_cli("remote", "add", "origin", "s3://bucket/models", "--default")
    mvc_cli("remote", "add", "backup", str(tmp_path / "store"))
    assert config(repo)["remote"] == {
        "origin": {"url": "s3://bucket/models"},
        "backup": {"url": str(tmp_path / "store")},
    }
    assert config(repo)["core"]["remote"] == "origin"
    rows = json.loads(mvc_cli("remote", "list", "--json").output)
    assert [(r["name"], r["default"], r["scope"]) for r in rows] == [
        ("backup", False, "repo"),
        ("origin", True, "repo"),
    ]
    assert mvc_cli("remote", "default").output.strip() == "origin"
    mvc_cli("remote", "default", "backup")
    assert config(repo)["core"]["remote"] == "backup"
    mvc_cli("remote", "remove", "backup")
    assert "backup" not in config(repo)["remote"]
    assert "remote" not in config(repo).get("core", {})  # the default went with it
    # one remote left: it is the default without saying so
    assert mvc_cli("remote", "default").output.strip() == "origin"


def test_relative_directory_is_stored_relative_to_the_root(repo, mvc_cli, monkeypatch):
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    mvc_cli("remote", "add", "here", "../../store")
    assert config(repo)["remote"]["here"]["url"] == "../store"


def test_add_refusals(repo, mvc_cli):
    mvc_cli("remote", "add", "origin", "/tmp/x")
    assert "exists already" in error_line(mvc_cli, "remote", "add", "origin", "/tmp/y")
    assert "invalid remote name" in error_line(mvc_cli, "remote", "add", "a.b", "/tmp/y")
    line = error_line(mvc_cli, "remote", "add", "weird", "foo://bucket/x")
    assert "unknown protocol 'foo'" in line
    assert "needs a bucket" in error_line(mvc_cli, "remote", "add", "nob", "s3://")
    assert "unknown protocol" in error_line(mvc_cli, "remote", "add", "zip", "zip://x")
    assert "needs a place after 'ftp://'" in error_line(mvc_cli, "remote", "add", "f", "ftp://")  # no host
    assert set(config(repo)["remote"]) == {"origin"}


def test_unknown_remote_and_no_remote(repo, mvc_cli):
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    assert (
        error_line(mvc_cli, "push")
        == "error: no mvc remote configured: add one with 'mvc remote add NAME URL --default'"
    )
    assert "unknown remote 'x' (no remote is configured)" in error_line(mvc_cli, "status", "-r", "x")
    assert "(default)" in mvc_cli("remote", "add", "a", "/tmp/a").stdout  # the first remote: the default by name
    assert "(default)" not in mvc_cli("remote", "add", "b", "/tmp/b").stdout  # a second one changes nothing
    assert mvc_cli("remote", "default").stdout.strip() == "a"
    mvc_cli("remote", "default", "--unset")
    line = error_line(mvc_cli, "fetch")
    assert "no default mvc remote" in line and "a, b" in line
    assert "no default remote" in error_line(mvc_cli, "remote", "default")
    line = error_line(mvc_cli, "push", "-r", "nope")
    assert "unknown remote 'nope'" in line and "mvc remote add nope URL" in line
    line = error_line(mvc_cli, "push", "-r", "/some/dir")
    assert "-r takes a remote's name" in line and "mvc remote add NAME /some/dir" in line
    mvc_cli("remote", "default", "a")
    out = mvc_cli("remote", "remove", "a").stdout
    assert "a was the default remote; the default is now b (the only remote left)" in out
    assert "unknown remote" in error_line(mvc_cli, "remote", "remove", "nope")
    assert "unknown remote" in error_line(mvc_cli, "remote", "modify", "nope", "jobs", "2")


# -- modify and secrets ---------------------------------------------------------------------------
def test_modify_keys_and_values(repo, mvc_cli):
    mvc_cli("remote", "add", "origin", "s3://bucket/models")
    mvc_cli("remote", "modify", "origin", "endpoint_url", "http://127.0.0.1:9000")
    mvc_cli("remote", "modify", "origin", "jobs", "32")
    mvc_cli("remote", "modify", "origin", "anon", "true")  # handed to s3fs as a boolean
    assert config(repo)["remote"]["origin"] == {
        "url": "s3://bucket/models",
        "endpoint_url": "http://127.0.0.1:9000",
        "jobs": 32,
        "anon": True,
    }
    assert "positive integer" in error_line(mvc_cli, "remote", "modify", "origin", "jobs", "0")
    assert "http://" in error_line(mvc_cli, "remote", "modify", "origin", "endpoint_url", "localhost:9000")
    assert "remove the remote instead" in error_line(mvc_cli, "remote", "modify", "origin", "url", "--unset")
    assert "invalid key" in error_line(mvc_cli, "remote", "modify", "origin", "a.b", "1")
    mvc_cli("remote", "modify", "origin", "jobs", "--unset")
    assert "jobs" not in config(repo)["remote"]["origin"]
    mvc_cli("remote", "modify", "origin", "url", "s3://other/place")
    assert config(repo)["remote"]["origin"]["url"] == "s3://other/place"


def test_secrets_stay_out_of_the_committed_config(repo, mvc_cli):
    mvc_cli("remote", "add", "origin", "s3://bucket/models")
    for key in ("secret_access_key", "access_key_id", "session_token", "password"):
        line = error_line(mvc_cli, "remote", "modify", "origin", key, "s3cr3t")
        assert "looks like a secret" in line and "--local" in line
    assert config(repo)["remote"]["origin"] == {"url": "s3://bucket/models"}
    mvc_cli("remote", "modify", "origin", "secret_access_key", "s3cr3t", "--local")
    assert config(repo, local=True)["remote"]["origin"] == {"secret_access_key": "s3cr3t"}
    listed = mvc_cli("remote", "list").output
    assert "s3cr3t" not in listed and "secret_access_key=***" in listed
    assert (
        "config.local.toml" in (repo / ".mvc" / ".gitignore").read_text()
        or git(repo, "check-ignore", ".mvc/config.local.toml").strip()
    )
    # through 'mvc config' as well
    assert "looks like a secret" in error_line(mvc_cli, "config", "remote.origin.secret_access_key", "x")


def test_local_remote(repo, mvc_cli, tmp_path):
    mvc_cli("remote", "add", "mine", str(tmp_path / "s"), "--local", "--default")
    assert "remote" not in config(repo)
    assert config(repo, local=True) == {"remote": {"mine": {"url": str(tmp_path / "s")}}, "core": {"remote": "mine"}}
    mvc_cli("remote", "modify", "mine", "jobs", "2")  # a local-only remote stays local
    assert config(repo, local=True)["remote"]["mine"]["jobs"] == 2
    assert "remote" not in config(repo)
    rows = json.loads(mvc_cli("remote", "list", "--json").output)
    assert rows[0]["scope"] == "local" and rows[0]["default"]


# -- protocols ----------------------------------------------------------------------------------------
def test_missing_package_names_it(repo, mvc_cli):
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here")
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "gcs", "gs://bucket/models", "--default")
    assert error_line(mvc_cli, "push") == "error: gs:// remotes need the gcsfs package: pip install gcsfs"


def test_https_is_read_only(repo, mvc_cli):
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "web", "https://example.invalid/models", "--default")
    assert "read-only" in error_line(mvc_cli, "push")


def test_any_fsspec_filesystem(repo, mvc_cli):
    """The generic fsspec store (here fsspec's in-memory filesystem): tmp + move, verified round trip."""
    import fsspec

    import mvc

    mem = fsspec.filesystem("memory")
    make_file(repo / "m.bin", 5000, seed=1)
    make_file(repo / "d" / "a.bin", 300, seed=2)
    make_file(repo / "d" / "b" / "c.bin", 301, seed=3)
    mvc_cli("add", "m.bin", "d")
    mvc_cli("remote", "add", "mem", "memory://mvc-test/store", "--default")
    try:
        r = mvc.push()
        assert (r["uploaded"], r["present"]) == (4, 0)
        found = mem.find("/mvc-test/store/objects")
        assert len(found) == 4 and not mem.find("/mvc-test/store/tmp")
        import shutil

        shutil.rmtree(repo / ".mvc" / "cache")
        (repo / "m.bin").unlink()
        shutil.rmtree(repo / "d")
        res = mvc.pull()
        assert res["downloaded"] == 4
        assert (repo / "m.bin").read_bytes() == make_file(repo.parent / "x", 5000, seed=1).read_bytes()
        assert (repo / "d" / "b" / "c.bin").stat().st_size == 301
        assert mvc.push()["uploaded"] == 0
    finally:
        mem.rm("/mvc-test", recursive=True)


# -- the journal, the API, progress --------------------------------------------------------------------
def test_damaged_journal_is_rebuilt(repo, mvc_cli, tmp_path):
    make_file(repo / "m.bin", 100)
    mvc_cli("add", "m.bin")
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    (repo / ".mvc" / "remotes.db").write_bytes(b"not a database" * 100)
    assert "pushed 1 object" in mvc_cli("push").output
    assert "nothing to push" in mvc_cli("push").output


def test_nothing_tracked_is_nothing_to_push(repo, mvc_cli, tmp_path):
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    assert "nothing to push" in mvc_cli("push").output
    assert "nothing to fetch" in mvc_cli("fetch").output
    assert not (tmp_path / "store").exists()


def test_untracked_path(repo, mvc_cli, tmp_path):
    mvc_cli("remote", "add", "origin", str(tmp_path / "store"), "--default")
    make_file(repo / "m.bin", 100)
    line = error_line(mvc_cli, "push", "m.bin")
    assert "not tracked by mvc" in line


def test_api_is_exported():
    import mvc
    from mvc.api import sync as remote

    assert mvc.push is remote.push and mvc.fetch is remote.fetch and mvc.pull is remote.pull


def test_objects_for_lists_files_manifests_and_entries(repo, mvc_cli):
    from mvc.format import pointer
    from mvc.repo.repository import Repo
    from mvc.repo.selection import objects_for

    make_file(repo / "m.bin", 100, seed=1)
    make_file(repo / "d" / "a", 10, seed=2)
    make_file(repo / "d" / "b", 11, seed=3)
    mvc_cli("add", "m.bin", "d")
    pointers = {p: (repo / p).read_bytes() for p in ("m.bin.mvc", "d.mvc")}
    found = objects_for(Repo(str(repo)), pointers)
    assert len(found) == 4
    assert pointer.loads(pointers["d.mvc"]).oid in found


def test_transfer_bar_shows_objects():
    from mvc.progress import TerminalBar

    out = io.StringIO()
    bar = TerminalBar("pushing to origin", 8192, out)
    bar.update(4096)
    bar._draw(bar.start + 1)
    assert "objects" not in out.getvalue()  # until count() is called: a bar of bytes
    bar.count(1, 2)
    bar._draw(bar.start + 1)
    assert "pushing to origin: 1/2 objects" in out.getvalue() and "4.0 KiB/8.0 KiB" in out.getvalue()
    bar.close()


def test_a_bar_of_unknown_size_shows_bytes_and_rate_only():
    """The first add of many files reads each one as it learns its size: its bar has no total to show."""
    from mvc import progress
    from mvc.progress import TerminalBar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    bar = progress.terminal(stream=out)("adding data", progress.UNKNOWN)
    assert isinstance(bar, TerminalBar)  # drawn, though no total says the work is large
    bar.update(3 << 20)
    bar._draw(bar.start + 1)
    assert "adding data: 3.0 MiB 3.0 MiB/s" in out.getvalue() and "%" not in out.getvalue()
    bar.close()


def test_packs_is_a_boolean_read_by_mvc(repo, mvc_cli):
    from mvc.repo import remotes
    from mvc.repo.repository import Repo

    mvc_cli("remote", "add", "origin", "s3://bucket/models", "--default")
    assert remotes.spec(Repo(str(repo))).packs is True
    mvc_cli("remote", "modify", "origin", "packs", "FALSE")
    assert config(repo)["remote"]["origin"]["packs"] is False
    sp = remotes.spec(Repo(str(repo)))
    assert sp.packs is False and "packs" not in sp.options  # not handed to s3fs
    assert "true or false" in error_line(mvc_cli, "remote", "modify", "origin", "packs", "maybe")
    (repo / ".mvc" / "config.toml").write_text('[remote.origin]\nurl = "s3://bucket/models"\npacks = "no"\n')
    assert "packs must be true or false" in error_line(mvc_cli, "remote", "list")


# -- secrets that do not look like the usual ones ------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@models/team",  # a secret key with "/"
        "https://alice:pa/ss@127.0.0.1:1/store",
        "https://deploy:2024/Winter@127.0.0.1:1/store",  # a password whose first part is digits: no port
    ],
)
def test_a_password_holding_a_slash_is_a_credential(repo, mvc_cli, url):
    from mvc.storage.store import has_credentials, redact_url

    assert has_credentials(url) and not any(w in redact_url(url) for w in ("pa/ss", "K7MDENG", "Winter"))
    line = error_line(mvc_cli, "remote", "add", "t", url)
    assert not any(w in line for w in ("pa/ss", "K7MDENG", "Winter"))
    if url.startswith("s3://"):  # S3 takes no credentials from a URL, anywhere
        assert "an S3 URL carries no user or password" in line and "access_key_id" in line
        return
    assert "credentials" in line
    mvc_cli("remote", "add", "t", url, "--local")
    out = mvc_cli("remote", "list").stdout + mvc_cli("remote", "list", "--json").stdout
    assert not any(w in out for w in ("pa/ss", "K7MDENG", "Winter")) and "***@" in out


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/user@example/models",
        "s3://bucket/a:b@c",
        "/srv/a@b",
        "http://[::1]:8080/x@y",
    ],
)
def test_an_at_sign_in_a_path_is_no_credential(url):
    from mvc.storage.store import has_credentials, redact_url

    assert not has_credentials(url) and redact_url(url) == url


def test_options_that_carry_credentials_stay_on_this_machine(repo, mvc_cli):
    mvc_cli("remote", "add", "web", "http://127.0.0.1:1/store")
    for key, value in (
        ("remote.web.client_kwargs.headers.Authorization", "Bearer SECRET-JWT"),
        ("remote.web.headers.X-Api-Key", "SECRET-HEADER"),
        ("remote.web.passphrase", "SECRET-PASSPHRASE"),
        ("remote.web.connection_string", "AccountName=a;AccountKey=SECRET=="),
    ):
        line = error_line(mvc_cli, "config", key, value)
        assert "looks like a secret" in line and "SECRET" not in line
        mvc_cli("config", key, value, "--local")
    out = mvc_cli("remote", "list").stdout
    assert "SECRET" not in out, out
    assert "SECRET" not in (repo / ".mvc" / "config.toml").read_text()
    mvc_cli("remote", "add", "keystore", "http://127.0.0.1:1/other")  # a remote's name may hold "key"
    mvc_cli("config", "remote.keystore.packs", "false")


def test_an_s3_url_with_an_empty_part_is_refused(repo, mvc_cli):
    """s3fs wrote keys beginning "/" for s3://bucket//prefix, where botocore's reads never look."""
    line = error_line(mvc_cli, "remote", "add", "o", "s3://bucket//team")
    assert "empty part (//)" in line and "s3://BUCKET/PREFIX" in line
    mvc_cli("remote", "add", "o", "s3://bucket/team/")


def test_a_directory_remote_inside_the_work_tree_is_refused(repo, mvc_cli, tmp_path):
    """A push fills it with untracked files, which the next 'git add -A' commits into git."""
    line = error_line(mvc_cli, "remote", "add", "inside", "./mvc-store")
    assert "inside the work tree" in line and "outside" in line
    error_line(mvc_cli, "remote", "add", "hidden", "..hidden")  # inside too, though its name begins with ..
    (repo / ".gitignore").write_text("/dvcstore\n")  # DVC's quick start: a remote git ignores
    mvc_cli("remote", "add", "ignored", "dvcstore")
    line = error_line(mvc_cli, "remote", "add", "nas", "file://nas/models")  # a host, read as a relative path
    assert "takes no host" in line and "file:///PATH" in line
    mvc_cli("remote", "add", "ok", str(tmp_path / "outside"))
    error_line(mvc_cli, "remote", "modify", "ok", "url", "sub/store")
    line = error_line(mvc_cli, "remote", "add", "--", "-x", str(tmp_path / "x"))
    assert "beginning with a letter or digit" in line


def test_a_signed_query_in_a_remote_url_is_a_credential(repo, mvc_cli):
    url = "https://127.0.0.1:1/models?X-Amz-Signature=SIGSECRET&token=TOKSECRET&v=2"
    line = error_line(mvc_cli, "remote", "add", "q", url)
    assert "credentials" in line and "SECRET" not in line
    mvc_cli("remote", "add", "q", url, "--local")
    out = mvc_cli("remote", "list").stdout
    assert "SECRET" not in out and "X-Amz-Signature=***&token=***&v=2" in out


def test_modify_points_nested_keys_to_config_and_drops_a_local_url_override(repo, mvc_cli, tmp_path):
    mvc_cli("remote", "add", "o", str(tmp_path / "shared"))
    line = error_line(mvc_cli, "remote", "modify", "o", "config_kwargs.s3.addressing_style", "path")
    assert "mvc config remote.o.config_kwargs.s3.addressing_style VALUE" in line
    mvc_cli("remote", "modify", "o", "url", str(tmp_path / "mine"), "--local")
    assert "mine" in mvc_cli("remote", "list").stdout
    mvc_cli("remote", "modify", "o", "url", "--unset", "--local")
    out = mvc_cli("remote", "list").stdout
    assert "shared" in out and "mine" not in out
    error_line(mvc_cli, "remote", "modify", "o", "url", "--unset")  # the shared URL stays: remove the remote


def test_a_region_that_is_no_region_is_refused_when_set(repo, mvc_cli):
    mvc_cli("remote", "add", "o", "s3://bucket/team")
    line = error_line(mvc_cli, "remote", "modify", "o", "region", "eu west 1")
    assert "is not a region's name" in line and "eu-west-1" in line
    mvc_cli("remote", "modify", "o", "region", "eu-west-1")


@pytest.mark.parametrize(
    "key",
    ["preferred_auth", "gss_auth", "client_kwargs.skip_auto_headers", "client_kwargs.headers.User-Agent", "profile"],
)
def test_options_that_only_look_like_secrets_may_be_shared(key):
    from mvc.format.config import is_secret

    assert not is_secret(key)


@pytest.mark.parametrize("query", ["author=a", "design=b", "keywords=c", "tokenizer=d", "versionId=3"])
def test_query_parameters_that_only_look_like_secrets_are_kept(query):
    from mvc.storage.store import has_credentials, redact_url

    url = f"https://h.example/x.csv?{query}"
    assert not has_credentials(url) and redact_url(url) == url


def test_the_journal_keeps_two_stores_apart_that_differ_only_in_their_user():
    """abfs://CONTAINER@ACCOUNT: the container is where a user name would be; redacted alike, two containers
    shared one journal key, and a push to the second was skipped as "already there"."""
    from mvc.storage.urls import identity

    a, b = identity("abfs://c1@acct/models"), identity("abfs://c2@acct/models")
    assert a != b and "c1" not in a and "c2" not in b
