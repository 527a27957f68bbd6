"""Hermetic test environment: temp HOME and git config, real git, a real S3 endpoint on loopback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

# Property tests: no example database in the work tree, no deadline (a loaded 2-core CI machine would make
# timing flaky), and derandomized: CI tries the same thousands of inputs every run, so a run's verdict is
# the code's, not the dice's. HYPOTHESIS_PROFILE=explore draws new inputs each run, to hunt for more.
settings.register_profile("mvc", database=None, deadline=None, max_examples=200, derandomize=True)
settings.register_profile("explore", database=None, deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "mvc"))

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory):
    """Isolate HOME, git config and AWS settings for the whole session (subprocesses inherit it)."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    saved = dict(os.environ)
    for var in list(os.environ):
        if var.startswith(("GIT_", "AWS_", "MVC_")):
            del os.environ[var]
    os.environ.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_TERMINAL_PROMPT": "0",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    import pygit2

    for level in (pygit2.enums.ConfigLevel.GLOBAL, pygit2.enums.ConfigLevel.XDG, pygit2.enums.ConfigLevel.SYSTEM):
        pygit2.settings.search_path[level] = str(home)
    yield home
    os.environ.clear()
    os.environ.update(saved)


def git(cwd: Path | str, *args: str) -> str:
    """Run the real git binary; returns stdout, raises on failure."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def gitrepo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git work tree (no mvc yet), as the current directory."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def repo(gitrepo: Path) -> Path:
    """A git work tree with mvc initialised and one commit, as the current directory."""
    import mvc

    mvc.init(str(gitrepo))
    git(gitrepo, "commit", "-q", "-m", "mvc init")
    return gitrepo


class Cli:
    """Runs the CLI in-process with click's runner; result has exit_code, output, stdout, stderr."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True):
        from mvc.cli import cli

        result = self.runner.invoke(cli, list(args), catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(f"mvc {' '.join(args)} exited {result.exit_code}:\n{result.output}")
        return result


@pytest.fixture
def mvc_cli() -> Cli:
    return Cli()


@pytest.fixture
def mvc_error(mvc_cli: Cli):
    """Run the CLI expecting a user error: exit != 0, exactly one 'error: …' line on stderr, nothing on
    stdout, no traceback (an unexpected exception propagates). Each of ``words`` must appear in the
    line (case-insensitive); returns the line."""

    def run(*args: str, words: tuple[str, ...] = ()) -> str:
        result = mvc_cli(*args, ok=False)
        # notices mvc prints on its way (a warning, waiting for a lock) are not the error
        lines = [line for line in result.stderr.splitlines() if not line.startswith("mvc: ")]
        assert result.exit_code != 0, f"mvc {' '.join(args)} succeeded:\n{result.output}"
        assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line:\n{result.stderr}"
        assert result.stdout == "", result.stdout
        for word in words:
            assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]!r}"
        return lines[0]

    return run


def ctrl_c_as_a_terminal_sends_it() -> None:
    """preexec_fn of a command a test sends SIGINT: its default disposition back. A suite started in the background
    by a shell (a CI script's '&', nohup) inherits SIGINT ignored, and so would the command: Python installs no
    handler for a signal ignored at its start, and the Ctrl-C would be lost."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_mvc(*args: str, cwd: Path | str | None = None, check: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run mvc in a subprocess exactly as a user's shell would."""
    proc = subprocess.run([sys.executable, "-m", "mvc", *args], cwd=cwd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"mvc {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    """Deterministic pseudo-random content of the given size."""
    import random

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


# -- S3: one moto server per session on 127.0.0.1, reset before each test that uses it -------------
@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_endpoint(s3_server: str) -> str:
    """The endpoint URL of a freshly reset S3 server."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{s3_server}/moto-api/reset", method="POST")).read()
    return s3_server


# -- a static web server on 127.0.0.1 (stdlib http.server: listings, no Range support) ------------------
@contextlib.contextmanager
def http_server(directory: Path | str, listings: bool | int = True):
    """Serve directory over HTTP on 127.0.0.1 for the block, without a request log; yields its URL. Without
    listings a directory's URL is a 404, as on a static host or a bucket's website (listings=403: a 403)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def list_directory(self, path):  # type: ignore[no-untyped-def]
            if listings is True:
                return super().list_directory(path)
            self.send_error(404 if listings is False else listings)
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)  # quick shutdown
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def mount_tmpfs(where: Path, size: str) -> bool:
    """A tmpfs of that size at where (made), when this process may mount one (root with the right), for tests of
    a full or read-only file system; False when it may not (the test then skips). Unmount with umount_tmpfs."""
    import shutil

    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def umount_tmpfs(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def small_fs(where: Path, size: str):
    """A tmpfs of that size at where for the block (yielded); the test skips where this process may not mount
    one (a small, full or read-only file system of its own needs root)."""
    if not mount_tmpfs(where, size):
        pytest.skip("needs a file system of its own: root, allowed to mount a tmpfs")
    try:
        yield where
    finally:
        umount_tmpfs(where)


@contextlib.contextmanager
def repo_on_tmpfs(tmp_path: Path, size: str, monkeypatch):
    """A git repository set up for mvc on a tmpfs of that size, as the current directory, for the block; the test
    skips where this process may not mount one. Yields (the tmpfs, the repository)."""
    import mvc

    with small_fs(tmp_path / "fs", size) as fs:
        try:
            repo = fs / "repo"
            repo.mkdir()
            git(repo, "init", "-q")
            monkeypatch.chdir(repo)
            mvc.init(str(repo))
            yield fs, repo
        finally:
            os.chdir(tmp_path)
