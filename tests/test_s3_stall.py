"""An S3 server that stops answering in the middle of a download (a frozen process, a network partition): the
read fails after about read_timeout, once, and Ctrl-C or SIGTERM end the command at once, its temp file removed."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import ctrl_c_as_a_terminal_sends_it, git, make_file
from remote_suite import MVC, SMALL_PARTS, S3Backend, drop_cache, one_error_line

SIZE = 40 << 20  # READ_PART (16 MiB) and more: the object comes down in parts, side by side


class FreezingProxy:
    """A TCP relay on 127.0.0.1 in front of the S3 server that freezes, as a server stopped with SIGSTOP does, once
        ``after`` bytes of responses (``upload``: of requests) went through it: nothing more is relayed either way and no connection is closed;
        new connections are accepted (the kernel does that for a stopped process) and never answered. ``after`` 0: frozen
    from the start."""

    def __init__(self, target: str, after: int, upload: bool = False):
        host, port = target.rsplit("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.after, self.got = after, 0
        self.upload = upload  # count the bytes of requests (a push), not of responses
        self.lock = threading.Lock()
        self.frozen = threading.Event()
        if after <= 0:
            self.frozen.set()  # from the start: no request is ever answered
        self.held: list[socket.socket] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.held.append(client)
            if self.frozen.is_set():
                continue
            upstream = socket.create_connection(self.target)
            self.held.append(upstream)
            for src, dst, counted in ((client, upstream, self.upload), (upstream, client, not self.upload)):
                threading.Thread(target=self._pump, args=(src, dst, counted), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if self.frozen.is_set():
                    return  # (the bytes are dropped; both sockets stay open)
                dst.sendall(data)
                if counted:
                    with self.lock:
                        self.got += len(data)
                        if self.got >= self.after:
                            self.frozen.set()
        except OSError:
            pass

    def close(self) -> None:
        self.frozen.set()
        for s in [self.server, *self.held]:
            s.close()


@pytest.fixture
def frozen_get(repo: Path, mvc_cli, s3_endpoint: str, tmp_path: Path, request):
    """A repository whose large file is on S3, committed with its remote reached through a FreezingProxy that
    freezes mid-download (or after ``request.param`` bytes); yields (proxy, the get command's arguments, the
    output path)."""
    backend = S3Backend(s3_endpoint)
    mvc_cli("remote", "add", "s3", backend.url, "--default")
    mvc_cli("remote", "modify", "s3", "endpoint_url", s3_endpoint)
    make_file(repo / "big.bin", SIZE, seed=7)
    mvc_cli("add", "big.bin")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "big")
    mvc_cli("push", "-q")
    proxy = FreezingProxy(s3_endpoint, after=getattr(request, "param", SIZE // 3))
    mvc_cli("remote", "modify", "s3", "endpoint_url", proxy.url)
    git(repo, "commit", "-qam", "through the proxy")
    out = tmp_path / "out" / "big.bin"
    out.parent.mkdir()
    yield proxy, [*MVC, "get", "--repo", str(repo), "big.bin", "-o", str(out), "-q"], out
    proxy.close()


def timed_out(cmd: list[str], proxy) -> float:
    """Seconds cmd took to fail, past the proxy's freeze, with one line saying the server timed out."""
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    assert proxy.frozen.is_set()
    line = one_error_line(proc)
    assert "cannot reach the S3 server" in line and ("timed out" in line or "timeout" in line), line
    return took


@pytest.mark.parametrize("frozen_get", [0, SIZE // 3], ids=["no-answer", "mid-body"], indirect=True)
def test_a_stalled_download_fails_after_the_read_timeout_once(frozen_get, mvc_cli):
    """read_timeout 3 s: one error line a few seconds after the freeze, not one timeout per attempt (botocore's four)
    and per part after another; nothing is left at OUT. Frozen from the start, the first request waits for an
    answer (botocore retried that); frozen mid-body, the parts' streams wait for their bytes."""
    proxy, get, out = frozen_get
    mvc_cli("config", "remote.s3.config_kwargs.read_timeout", "3")
    git(".", "commit", "-qam", "a short read timeout")
    took = timed_out(get, proxy)
    assert took < 8, f"{took:.1f} s"
    assert list(out.parent.iterdir()) == []


def signalled_when_frozen(cmd: list[str], proxy, sig: int, code: int, wait: float) -> float:
    """Seconds cmd took to end after sig, sent (as a terminal's Ctrl-C finds it) a second after the proxy froze:
    it ended with exit status code and said only "interrupted"."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_as_a_terminal_sends_it
    )
    try:
        assert proxy.frozen.wait(wait), "the command never reached the freeze"
        time.sleep(1)  # every request now waits on the frozen server
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=wait)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == code and err == "interrupted\n", err
    return took


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_end_a_stalled_download_at_once(frozen_get, sig, code):
    """The read timeout stays at its default (120 s): the signal ends the command within a few seconds anyway, with
    its temp file removed."""
    proxy, get, out = frozen_get
    took = signalled_when_frozen(get, proxy, sig, code, 30)
    assert took < 3, f"{took:.1f} s"
    assert list(out.parent.iterdir()) == []


# -- pushes: everything s3fs sends (PUTs, multipart parts, listings, heads) --------------------------------------
PUSHED = 24 << 20  # a large file: chunks in packs of 16 MiB by default; 384 parts of 64 KiB as a whole object


@pytest.fixture(params=["packs", "multipart"])
def frozen_push(repo: Path, mvc_cli, s3_endpoint: str, request):
    """A repository with a large file added, its S3 remote reached through a FreezingProxy that freezes once a third
    of the file went up (in packs, or as the parts of a multipart upload: chunks false, 64 KiB parts); yields
    (proxy, the push command, the S3 backend, a function pointing the remote at the server itself again)."""
    backend = S3Backend(s3_endpoint)
    proxy = FreezingProxy(s3_endpoint, after=PUSHED // 3, upload=True)
    mvc_cli("remote", "add", "s3", backend.url, "--default")
    mvc_cli("remote", "modify", "s3", "endpoint_url", proxy.url)
    if request.param == "multipart":
        mvc_cli("remote", "modify", "s3", "chunks", "false")
    make_file(repo / "big.bin", PUSHED, seed=3)
    mvc_cli("add", "big.bin")
    push = [*(SMALL_PARTS if request.param == "multipart" else MVC), "push", "-q"]
    yield proxy, push, backend, lambda: mvc_cli("remote", "modify", "s3", "endpoint_url", s3_endpoint)
    proxy.close()


def test_a_push_stalled_mid_upload_fails_after_the_read_timeout(frozen_push, mvc_cli):
    """read_timeout 2 s: one error line a few seconds after the freeze (not one timeout per attempt, per request);
    nothing half-written is visible under an object's name, and the next push completes and reads back whole."""
    proxy, push, backend, unproxied = frozen_push
    mvc_cli("config", "remote.s3.config_kwargs.read_timeout", "2", "--local")
    took = timed_out(push, proxy)
    assert took < 10, f"{took:.1f} s"
    assert not [r for r in backend.rels() if r.startswith(("objects/", "recipes/"))]  # the file is not there
    unproxied()
    mvc_cli("push", "-q")
    assert "error" not in mvc_cli("verify", "-r", "s3", "-q").output


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_end_a_stalled_push_at_once(frozen_push, mvc_cli, sig, code):
    """The timeouts stay at their defaults (120 s): the signal ends the push within a few seconds anyway (the
    abort of a multipart upload, which the frozen server never answers, is not waited for); the next push
    completes."""
    proxy, push, _, unproxied = frozen_push
    took = signalled_when_frozen(push, proxy, sig, code, 60)
    assert took < 3, f"{took:.1f} s"
    unproxied()
    mvc_cli("push", "-q")
    assert "error" not in mvc_cli("verify", "-r", "s3", "-q").output


# -- a serving process: mvc.open's read-ahead ---------------------------------------------------------------------
def sockets_to(port: int) -> int:
    """This process's TCP sockets connected to port on 127.0.0.1 (the client ends: the proxy's own have it local)."""
    import os

    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port:
            inodes.add(fields[9])
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # (the listing's own descriptor, closed)
        found += link.startswith("socket:[") and link[8:-1] in inodes
    return found


def test_closing_a_stream_does_not_wait_for_its_stalled_read_ahead(frozen_get, repo):
    """mvc.open from the remote, read timeout at its default (120 s): the first 8 MiB read, the server freezes while
    the next ranges are fetched ahead; closing the stream returns at once, its read-ahead threads ended and no
    connection to the server left open."""
    import threading

    import mvc

    proxy, _, _ = frozen_get
    port = int(proxy.url.rsplit(":", 1)[1])
    drop_cache(repo)  # (else its chunks are read from the cache)
    f = mvc.open("big.bin", remote="s3")
    try:
        assert len(f.read(8 << 20)) == 8 << 20
        assert proxy.frozen.wait(30), "the read-ahead never reached the freeze"
        time.sleep(1)  # every fetch ahead now waits on the frozen server
        assert any(t.name.startswith("mvc-read-ahead") for t in threading.enumerate())
    finally:
        start = time.monotonic()
        f.close()
        took = time.monotonic() - start
    assert took < 2, f"{took:.1f} s"
    assert not [t.name for t in threading.enumerate() if t.name.startswith("mvc-read-ahead")]
    assert sockets_to(port) == 0
