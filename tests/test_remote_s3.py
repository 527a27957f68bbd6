from __future__ import annotations

import socket
import subprocess
import sys
import threading

from conftest import make_file
from remote_gc_suite import RemoteGcSuite
from remote_suite import MVC, RemoteSuite, S3Backend, S3Remote, configure, one_error_line, stored


class TestS3(RemoteSuite, RemoteGcSuite, S3Remote):
    pass


class DyingProxy:
    """A TCP relay on 127.0.0.1 in front of the S3 server that dies like a server whose machine went away, once
    ``after`` bytes of requests went through it: every connection is reset, mid-request, and nothing
    answers on its port any more. Unlike stopping moto, this lands inside a request body every time."""

    def __init__(self, target: str, after: int):
        host, port = target.rsplit("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.after, self.sent = after, 0
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.dead = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.dead.is_set():
            try:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.conns += [client, upstream]
            for src, dst, counted in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, counted), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
                if counted:
                    with self.lock:
                        self.sent += len(data)
                        over = self.sent >= self.after
                    if over:
                        self.die()
                        return
        except OSError:
            pass

    def die(self) -> None:
        with self.lock:
            if self.dead.is_set():
                return
            self.dead.set()
            conns = list(self.conns)
        self.server.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.server.close()
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
                c.close()
            except OSError:
                pass


def test_server_dying_mid_request_prints_one_line(repo, mvc_cli, s3_endpoint):
    """What the user sees when the S3 server goes away while a pack's body is on its way: mvc's one error line,
    and nothing is left on the bucket (no pack, no upload open)."""
    for i in range(16):  # one pack of 4 MiB
        make_file(repo / "many" / f"f{i:02d}", 256 << 10, seed=9000 + i)
    mvc_cli("add", "many")
    backend = S3Backend(s3_endpoint)
    proxy = DyingProxy(s3_endpoint, after=1 << 20)
    backend.options = {"endpoint_url": proxy.url}
    configure(mvc_cli, backend, "origin")
    proc = subprocess.run([*MVC, "push", "-q"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert proxy.dead.is_set()
    line = one_error_line(proc)
    assert "cannot reach" in line or "check the remote and retry" in line, line
    assert backend.open_uploads() == set() and not any(r.endswith(".pack") for r in stored(backend))


def test_what_no_one_awaits_on_the_event_loop_stays_off_stderr(tmp_path):
    """aiohttp leaves a task behind when a server closes a connection it was about to write a request to (its
    body writer fails: "Cannot write to closing transport"); when that task is collected, asyncio prints
    "Task exception was never retrieved" and a 20-line traceback, after mvc's one line. Here such a task
    is made on the event loop an opened S3 store uses, and left unretrieved: stderr stays empty."""
    script = """
import asyncio, gc, time
from mvc.storage.urls import open_store
store = open_store("s3://models/x", {"endpoint_url": "http://127.0.0.1:9"})

async def write_bytes():
    raise ConnectionResetError("Cannot write to closing transport")

store.fs.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(write_bytes()))
time.sleep(0.2)
store.fs.loop.call_soon_threadsafe(gc.collect)
time.sleep(0.2)
print("done")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "done\n" and proc.stderr == "", proc.stderr


def test_a_profile_gets_a_session_that_reads_listing_times_quickly(repo, mvc_cli, s3_endpoint, tmp_path, monkeypatch):
    """A remote with a profile works through a session of mvc's (one per profile and process) whose listing
    times are parsed by mvc's parser, as without a profile: dateutil's would cost 14 s of a gc of a remote of
    100,000 objects (docs/benchmarks.md)."""
    from mvc.storage import s3, store

    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[mvc-test]\naws_access_key_id = profiled\naws_secret_access_key = profiled\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    backend = S3Backend(s3_endpoint)
    backend.options = {**backend.options, "profile": "mvc-test"}
    configure(mvc_cli, backend, "origin")
    make_file(repo / "model.bin", 1000, seed=3)
    mvc_cli("add", "model.bin")
    assert "pushed 1 object" in mvc_cli("push").output
    assert "would delete from origin 0 objects" in mvc_cli("gc", "-r", "origin", "--grace", "0").output  # times read
    session = s3._sessions[repr([("profile", "mvc-test")])]
    parser = session.get_component("response_parser_factory")._defaults["timestamp_parser"]
    assert parser.func is store.parse_time


def test_a_push_to_another_server_through_the_environment_is_not_judged_by_the_first(repo, mvc_cli, s3_endpoint):
    """An S3 remote with no endpoint_url of its own goes where AWS_ENDPOINT_URL sends it; the journal was keyed
    without it, so a push to a second, empty server said "nothing to push" and status -r "up to date"."""
    import os

    serve = (  # a server of its own: the servers of one process share moto's state
        "from moto.server import ThreadedMotoServer; import sys; s = ThreadedMotoServer(ip_address='127.0.0.1', "
        "port=0, verbose=False); s.start(); print(s.get_host_and_port()[1], flush=True); sys.stdin.read()"
    )
    second = subprocess.Popen([sys.executable, "-c", serve], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(second.stdout.readline())  # type: ignore[union-attr]
        b = S3Backend(f"http://127.0.0.1:{port}")
        S3Backend(s3_endpoint)  # (makes the bucket on the first)
        mvc_cli("remote", "add", "origin", f"s3://{b.bucket}/{b.prefix}")
        make_file(repo / "model.bin", 1000, seed=4)
        mvc_cli("add", "model.bin")
        env = {**os.environ, "AWS_ENDPOINT_URL": s3_endpoint}
        first = subprocess.run([*MVC, "push"], cwd=repo, env=env, capture_output=True, text=True)
        assert "pushed 1 object" in first.stdout, first.stderr
        env["AWS_ENDPOINT_URL"] = b.endpoint
        again = subprocess.run([*MVC, "push"], cwd=repo, env=env, capture_output=True, text=True)
        assert "pushed 1 object" in again.stdout, (again.stdout, again.stderr)
        assert any(r.startswith("objects/") for r in b.rels())
    finally:
        second.kill()
        second.wait()


def test_an_endpoint_that_is_not_s3_is_named(repo, mvc_cli, tmp_path):
    """endpoint_url pointing at a web server that is not S3 (a port mixed up): its listings come back as 404, which
    an S3 server never answers (it lists nothing, or says NoSuchBucket). push, and get from a machine with no
    copy, said "packs/ is not on the remote" or "not on remote origin"; each now says the endpoint is not S3."""
    from conftest import git, http_server

    (tmp_path / "site").mkdir()
    with http_server(tmp_path / "site") as url:
        mvc_cli("remote", "add", "origin", "s3://bucket/models")
        mvc_cli("remote", "modify", "origin", "endpoint_url", url)
        make_file(repo / "model.bin", 1000, seed=5)
        mvc_cli("add", "model.bin")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "v1")
        for args in (["push"], ["get", "--repo", str(repo), "model.bin", "-o", str(tmp_path / "out.bin")]):
            line = one_error_line(mvc_cli(*args, ok=False))
            assert "not an S3" in line and url in line and "endpoint_url" in line, (args, line)
        assert not (tmp_path / "out.bin").exists()
