"""A directory remote served read-only over HTTP (python's http.server on 127.0.0.1: a directory
listing, no range requests): fetch finds packs through the listing and reads them, whole or in part."""

from __future__ import annotations

import pytest
from conftest import http_server, make_file
from remote_suite import cache_objects, drop_cache, expected_objects, make_smalls, oid_of, rel_of


@pytest.fixture
def served(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    with http_server(store) as url:
        yield store, url


def test_fetch_over_http_reads_packs_and_lone_objects(repo, mvc_cli, served):
    store, url = served
    make_smalls(repo, 30)
    make_file(repo / "model.bin", 2 << 20, seed=3)  # stored alone
    mvc_cli("add", "many", "model.bin")
    mvc_cli("remote", "add", "dir", str(store))
    mvc_cli("push", "-r", "dir")
    assert list((store / "packs").glob("*.idx"))
    mvc_cli("remote", "add", "web", url, "--default")
    drop_cache(repo)
    (repo / ".mvc" / "remotes.db").unlink()
    out = mvc_cli("fetch").output
    want = expected_objects(repo)
    assert f"fetched {len(want)} objects" in out
    assert cache_objects(repo) == want


def test_fetch_of_a_few_objects_from_a_pack_over_http(repo, mvc_cli, served):
    """The server sends a whole pack for a ranged read: only the range asked for may be taken from it."""
    store, url = served
    smalls = make_smalls(repo, 20)
    mvc_cli("add", *[str(p.relative_to(repo)) for p in smalls])
    mvc_cli("remote", "add", "dir", str(store))
    mvc_cli("push", "-r", "dir")
    mvc_cli("remote", "add", "web", url, "--default")
    drop_cache(repo)
    (repo / ".mvc" / "remotes.db").unlink()
    some = sorted(smalls)[7:9]  # from the middle of the pack
    mvc_cli("fetch", *[str(p.relative_to(repo)) for p in some])
    assert cache_objects(repo) == {rel_of(oid_of(p.read_bytes())) for p in some}


def test_a_static_host_without_listings_serves_a_remote_pushed_without_packs(repo, mvc_cli, tmp_path):
    """docs/remotes.md: push with packs false for a host with no directory listing. One that answers a directory's
    URL with 404 was called "does not exist" although it served mvc.toml and the objects."""
    store = tmp_path / "store"
    make_file(repo / "model.bin", 2 << 20, seed=3)
    make_file(repo / "small.bin", 1000, seed=4)
    mvc_cli("add", "model.bin", "small.bin")
    mvc_cli("remote", "add", "dir", str(store))
    mvc_cli("remote", "modify", "dir", "packs", "false")
    mvc_cli("push", "-r", "dir")
    with http_server(store, listings=False) as url:
        mvc_cli("remote", "add", "web", url, "--default")
        drop_cache(repo)
        (repo / ".mvc" / "remotes.db").unlink()
        assert "fetched 2 objects" in mvc_cli("fetch").output
        assert cache_objects(repo) == expected_objects(repo)


def test_a_host_that_forbids_listings_is_told_to_take_packs_false(repo, mvc_cli, tmp_path):
    store = tmp_path / "store"
    make_smalls(repo, 20)
    mvc_cli("add", "many")
    mvc_cli("remote", "add", "dir", str(store))
    mvc_cli("push", "-r", "dir")
    with http_server(store, listings=403) as url:
        mvc_cli("remote", "add", "web", url, "--default")
        drop_cache(repo)
        (repo / ".mvc" / "remotes.db").unlink()
        result = mvc_cli("fetch", ok=False)
        lines = result.stderr.splitlines()
        assert result.exit_code == 1 and len(lines) == 1, result.stderr
        assert "refuses to list it (HTTP 403)" in lines[0] and "packs false" in lines[0]


def test_a_response_cut_short_is_said_as_a_broken_connection(repo, mvc_cli, tmp_path):
    """aiohttp's ClientPayloadError ("… <ContentLengthError: 400 …>", no HTTP status) was shown raw."""
    import functools
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    store = tmp_path / "store"
    make_file(repo / "model.bin", 2 << 20, seed=3)
    mvc_cli("add", "model.bin")
    mvc_cli("remote", "add", "dir", str(store))
    mvc_cli("push", "-r", "dir")

    class Short(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def copyfile(self, source, outputfile) -> None:  # half the body, then the connection closes
            if self.path.endswith(".toml"):
                shutil.copyfileobj(source, outputfile)
                return
            outputfile.write(source.read(1 << 20))
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Short, directory=str(store)))
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    try:
        mvc_cli("remote", "add", "web", f"http://127.0.0.1:{server.server_address[1]}", "--default")
        drop_cache(repo)
        (repo / ".mvc" / "remotes.db").unlink()
        result = mvc_cli("fetch", ok=False)
        lines = result.stderr.splitlines()
        assert result.exit_code == 1 and len(lines) == 1, result.stderr
        assert "broke while" in lines[0] and "ClientPayloadError" not in lines[0], lines[0]
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_answering_every_path_with_a_page_is_named_not_the_manifest(repo, mvc_cli, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    make_file(repo / "d" / "a.bin", 1000, seed=1)
    mvc_cli("add", "d")

    class Page(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            body = b"<html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return body  # type: ignore[return-value]

        def do_GET(self) -> None:
            self.wfile.write(self.do_HEAD())  # type: ignore[func-returns-value]

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    try:
        drop_cache(repo)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = mvc_cli("get", "d/a.bin", "--remote", url, "-o", str(tmp_path / "out"), ok=False)
        lines = result.stderr.splitlines()
        assert result.exit_code != 0 and len(lines) == 1, result.stderr
        assert "verify --repair" not in lines[0] and ("remote's URL" in lines[0] or "layout marker" in lines[0]), lines
    finally:
        server.shutdown()
        server.server_close()
