#!/usr/bin/env python3
"""Issue 11 speed targets, the read path (``mvc get --repo URL``, ``mvc.open(…, repo=URL)``: no clone), in one
run against one moto S3 server on 127.0.0.1 (its own process) and a directory remote:

1. cold start: ``mvc get --repo BARE churn#prod -o OUT`` of a 1 KiB model from S3, whole process, with an
   empty user cache (``MVC_CACHE_DIR``) each run (target <= 0.6 s); the same with the cache kept; beside
   them ``python -c pass``, ``python -c "import mvc.cli"``, ``git ls-remote BARE``, ``git clone --depth 1``
   of BARE and a raw botocore script (client + one GET of the same key): the floors. Then where the time
   goes: in-process phase timings, ``python -X importtime`` and ``python -m cProfile`` of one cold run;
2. throughput: ``mvc get --repo BARE big.bin -o OUT`` of a 1 GiB object from S3 vs s3fs ``get`` and boto3
   ``download_file`` of the same object (target <= 1.0 x the better one); the same read with READ_PART of
   4, 8, 16 MiB and READ_STREAMS of 4, 8, 16 (a driver sets them, then calls ``mvc.api.read.get``); from a
   directory remote vs ``cp`` of the remote's object file (target <= 1.2 x);
3. memory: peak RSS of those ``mvc get`` processes and of a process reading ``mvc.open("big.bin",
   repo=BARE)`` to the end in 8 MiB reads (target <= 200 MiB each).

    .venv/bin/python benchmarks/bench_read.py --size 64M --runs 1            # smoke run, 1-2 minutes
    .venv/bin/python benchmarks/bench_read.py --runs 5 --json /tmp/read.json  # 1 GiB, the targets

Every timing is a whole process as a user types it, with its CPU seconds (``wait4``) and peak RSS (GNU
``time -f %M`` where /usr/bin/time exists); cases are interleaved run by run (who goes first rotates) and
medians compared.

The moto server is patched (unless ``--stock-moto``) so that a ranged GET reads only its range: moto 5
builds the whole object in memory for every GET and then slices it, so an 8 MiB part of a 1 GiB object
costs as much server time as the whole object, which S3 does not do and which would make the part size
measure moto (``--stock-moto`` shows it). See docs/benchmarks.md, "Issue 11: the read path".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUCKET, PREFIX = "bench", "m"
SMALL = 1024  # the cold-start model: 1 KiB
PROFILE_RUNS = 9  # runs of each mode of the in-process timeline
MIB = 1 << 20
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None  # GNU time, for the peak RSS
TARGETS = {"cold": 0.6, "s3_ratio": 1.0, "dir_ratio": 1.2, "rss_mib": 200}

# The S3 server: moto's ThreadedMotoServer on 127.0.0.1, port 0; prints its port, serves until stdin closes.
# Its request log (werkzeug's) goes to stderr, which the benchmark sends to a file to count requests.
SERVER = r"""
import re, sys, threading
ranged = sys.argv[1] == "ranged"
if ranged:
    # A ranged GET reads its range only. moto's get_object returns key.value (the whole object, read from
    # its spooled temp file) and key_response slices it afterwards; here key.value is, for the GET of a
    # plain "bytes=A-B" / "bytes=A-" range, a view whose slice reads just those bytes.
    from moto.s3 import models, responses
    local = threading.local()
    whole = models.FakeKey.value

    class Slice:
        def __init__(self, key):
            self.key = key
        def __len__(self):
            return self.key.size
        def __bool__(self):
            return True
        def __getitem__(self, s):
            k = self.key
            with k.lock:
                k._value_buffer.seek(s.start)
                return k._value_buffer.read(max(0, min(s.stop, k.size) - s.start))

    def value(self):
        return Slice(self) if getattr(local, "ranged", False) else whole.fget(self)

    models.FakeKey.value = property(value, whole.fset)
    get_object = responses.S3Response.get_object
    RANGE = re.compile(r"bytes=(\d+)-(\d*)$")

    def ranged_get_object(self):
        m = RANGE.match(self.headers.get("range") or "")
        local.ranged = bool(m) and (not m.group(2) or int(m.group(2)) >= int(m.group(1))) and (
            "partNumber" not in self.querystring)
        try:
            return get_object(self)
        finally:
            local.ranged = False

    responses.S3Response.get_object = ranged_get_object
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""

# The S3 floor of a cold start: a botocore client and one GET of the same key, written to a file.
RAW_BOTOCORE = r"""
import sys
import botocore.session
endpoint, bucket, key, out = sys.argv[1:5]
client = botocore.session.get_session().create_client("s3", endpoint_url=endpoint)
body = client.get_object(Bucket=bucket, Key=key)["Body"]
with open(out, "xb") as f:
    for chunk in body.iter_chunks(1 << 20):
        f.write(chunk)
"""

S3FS_GET = r"""
import sys, s3fs
endpoint, path, out = sys.argv[1:4]
s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True).get(path, out)
"""

BOTO3_GET = r"""
import sys, boto3
endpoint, bucket, key, out = sys.argv[1:5]
boto3.client("s3", endpoint_url=endpoint).download_file(bucket, key, out)
"""

# mvc.api.read.get with the S3 reader's part size and streams set first (no environment variable sets them)
PART_DRIVER = r"""
import sys
from mvc.storage import s3read
part, streams, ref, repo, out = sys.argv[1:6]
s3read.READ_PART = int(part) << 20
s3read.READ_STREAMS = s3read.S3Reader.default_jobs = int(streams)
from mvc.api import read
read.get(ref, out, repo=repo)
"""

OPEN_READ = r"""
import sys, mvc
ref, repo, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
with mvc.open(ref, repo=repo) as f:
    while True:
        b = f.read(8 << 20)
        if not b:
            break
        n += len(b)
if n != size:
    raise SystemExit(f"read {n} bytes, expected {size}")
"""

# One `mvc get` in-process, timed: when each git process, the prewarm thread, the S3 client and the download
# started and ended (seconds after the interpreter reached this script). argv[1]: "prewarm" (as mvc runs),
# "noprewarm" (botocore imported when the client is made), "freeze" (as mvc runs, then gc.freeze() before the
# interpreter exits: its final collections then skip every object, which is what they cost).
PHASES = r"""
import gc, json, sys, time
t0 = time.perf_counter()
import mvc.cli
events = [["import mvc.cli", 0.0, time.perf_counter() - t0]]
from mvc import git as gitmod
from mvc.objects import reader
from mvc.storage import s3read

def wrap(owner, name, label):
    f = getattr(owner, name)
    def timed(*a, **k):
        t = time.perf_counter() - t0
        try:
            return f(*a, **k)
        finally:
            events.append([label(a) if callable(label) else label, t, time.perf_counter() - t0])
    setattr(owner, name, timed)

wrap(gitmod, "_run_git", lambda a: "git " + next((x for x in a[0] if not x.startswith("-") and "=" not in x), "?"))
wrap(s3read, "_warm", "prewarm thread: import botocore + session")
wrap(s3read.S3Reader, "__init__", "S3 client (waits for the session)")
wrap(reader, "download", "download + verify")
if sys.argv[1] == "noprewarm":
    s3read.prewarm = lambda: None
mode = sys.argv[1]
sys.argv = ["mvc", *sys.argv[2:]]
try:
    mvc.cli.main()
except SystemExit as e:
    if e.code:
        raise
print(json.dumps({"in_process": time.perf_counter() - t0, "events": events}), flush=True)
if mode == "freeze":
    gc.freeze()
"""


def fail(msg: str) -> None:
    raise SystemExit(f"bench_read: {msg}")


class Result:
    __slots__ = ("cpu", "out", "rss_kib", "wall")

    def __init__(self, wall: float, cpu: float, rss_kib: int, out: str):
        self.wall, self.cpu, self.rss_kib, self.out = wall, cpu, rss_kib, out


def run(cmd: list[str], env: dict[str, str], cwd: str) -> Result:
    """cmd as a whole process: wall seconds, CPU seconds (user + sys, from wait4) and peak RSS.

    The peak RSS is GNU time's (%M, the largest of the process and the processes it waited for): wait4's
    own ru_maxrss of a child of this process counts this process's RSS, recorded when the child execs."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as rss:
        timed = [TIME, "-f", "%M", "-o", rss.name, *cmd] if TIME else cmd
        t = time.perf_counter()
        p = subprocess.Popen(timed, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        p.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if code != 0:
            fail(f"{' '.join(cmd)} (in {cwd}) exited {code}: {(err.read().decode(errors='replace') + text)[-2000:]}")
        peak = int(rss.read().split()[-1]) if TIME else ru.ru_maxrss
    return Result(dt, ru.ru_utime + ru.ru_stime, peak, text)


def git(*args: str, cwd: str, env: dict[str, str]) -> str:
    return run(["git", *args], env, cwd).out


def warm(*paths: str) -> None:
    """Read files into the page cache (this guest pages out what was not touched for a minute)."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(8 << 20):
                pass


def make_big(path: str, size: int, seed: int) -> None:
    block = bytearray(random.Random(seed).randbytes(8 << 20))
    with open(path, "wb") as f:
        for i, off in enumerate(range(0, size, len(block))):
            block[:8] = i.to_bytes(8, "little")
            f.write(block[: min(len(block), size - off)])


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def rm(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


class Server:
    def __init__(self, workdir: str, env: dict[str, str], ranged: bool):
        self.log_path = os.path.join(workdir, "moto.log")
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (kept open for the server's life, closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, "ranged" if ranged else "stock"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.strip().isdigit():
            with open(self.log_path, errors="replace") as f:
                fail(f"the moto server did not start: {f.read()[-2000:]}")
        self.endpoint = f"http://127.0.0.1:{int(line)}"
        urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=5).read()

    def requests(self) -> list[str]:
        """The request lines the server has logged (werkzeug colours some: match ' HTTP/1.1')."""
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return [line.decode(errors="replace") for line in f if b" HTTP/1.1" in line]

    def stop(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()
        self.log.close()


def request_names(lines: list[str]) -> list[str]:
    """'GET /bench/m/objects/ab/…' from the server's log lines, the key shortened."""
    out = []
    for line in lines:
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # werkzeug's colours
        start = line.find('"')
        req = line[start + 1 :].split(" HTTP/1.1")[0]
        method, _, path = req.partition(" ")
        path = path.split("?")[0]
        if "/objects/" in path:
            path = path.split("/objects/")[0] + "/objects/…"
        out.append(f"{method} {path}")
    return out


def add_run_args(ap: argparse.ArgumentParser, keep_help: str = "keep the temp dir", code: bool = False) -> None:
    """The options every benchmark takes: --json, --workdir, --keep, and (code) --code."""
    if code:
        ap.add_argument(
            "--code",
            help="a tree holding mvc/ to run (through PYTHONPATH); default: a copy of this checkout's mvc/ taken when "
            "the run starts, so that edits made to the checkout during the run do not mix two states of the code",
        )
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--workdir", help="where to put the data (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help=keep_help)


def leave(base: str, keep: bool, server: Any = None, say: Callable[[str], object] = print) -> None:
    """The end of a run: the S3 server stopped, base kept (and said) or deleted."""
    if server is not None:
        server.stop()
    if keep:
        say(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


def isolated_env(base: str, aws: bool = True, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment a benchmark runs mvc and git in: HOME (with a git identity) and mvc's user cache in base,
    none of the caller's GIT_* variables or system git config; with aws, moto's test credentials and none of
    the caller's AWS settings; the variables in drop removed too."""
    home = os.path.join(base, "home")
    os.makedirs(home)
    with open(os.path.join(home, ".gitconfig"), "w") as f:
        f.write("[user]\n\tname = bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("GIT_")}
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1", MVC_CACHE_DIR=os.path.join(base, "user-cache"))
    if aws:
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            NO_PROXY="127.0.0.1,localhost",
        )
        drop = ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", *drop)
    for k in ("XDG_CACHE_HOME", *drop):
        env.pop(k, None)
    return env


def machine() -> dict[str, str]:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True).stdout.splitlines()
    return {
        "node": platform.node(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "tmp_filesystem": fs[-1].split()[1] if len(fs) > 1 else "?",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip(),
    }


def tree_state() -> str:
    """HEAD of the repository this script is in, and a digest of mvc/'s sources as they are now (the working
    tree, uncommitted changes included): the figures are of that code."""
    import hashlib

    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(os.path.join(ROOT, "mvc"))):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                h.update(name.encode())
                with open(os.path.join(d, name), "rb") as f:
                    h.update(f.read())
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "mvc"], capture_output=True, text=True)
    return f"{head.stdout.strip()}{' + uncommitted changes in mvc/' if dirty.stdout.strip() else ''}, mvc/*.py sha256 {h.hexdigest()[:12]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G", help="size of the big object (default 1G; e.g. 64M for a quick run)")
    ap.add_argument("--runs", type=int, default=5, help="interleaved runs of each big-object case (median)")
    ap.add_argument("--startup-runs", type=int, default=11, help="interleaved runs of each start-up case")
    ap.add_argument("--part-runs", type=int, help="runs of each part size / streams pair (default: --runs)")
    ap.add_argument(
        "--cases",
        default="startup,profile,s3,parts,dir,open",
        help="comma-separated: startup, profile, s3, parts, dir, open",
    )
    ap.add_argument("--stock-moto", action="store_true", help="do not patch moto's ranged GETs (see above)")
    add_run_args(ap, "keep the temp dir (repositories, profile, server log) for inspection")
    args = ap.parse_args()
    size = parse_size(args.size)
    cases = set(args.cases.split(","))
    part_runs = args.part_runs or args.runs

    base = tempfile.mkdtemp(prefix="mvc-bench-read-", dir=args.workdir)
    env = isolated_env(base)
    py = sys.executable
    exe = os.path.join(os.path.dirname(py), "mvc")
    mvc = [exe] if os.path.exists(exe) else [py, "-m", "mvc"]  # what a user types: the console script
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results: dict[str, object] = {
        "date": started,
        "command": " ".join([os.path.relpath(py, ROOT), "benchmarks/bench_read.py", *sys.argv[1:]]),
        "machine": machine(),
        "tree": tree_state(),
        "size_bytes": size,
        "runs": args.runs,
        "moto": "stock" if args.stock_moto else "ranged GETs read their range only",
        "load_before": os.getloadavg(),
    }
    print(f"bench_read: {results['machine']}, {size / MIB:.0f} MiB, load average {os.getloadavg()[0]:.2f}", flush=True)
    server = Server(base, env, ranged=not args.stock_moto)
    try:
        w = setup(base, env, mvc, server, size)
        if "startup" in cases:
            startup_case(args, base, env, mvc, py, server, w, results)
        if "profile" in cases:
            profile_case(base, env, mvc, py, w, results)
        if "s3" in cases:
            s3_case(args, base, env, mvc, py, server, w, size, results)
        if "parts" in cases:
            parts_case(base, env, py, w, size, part_runs, results)
        if "dir" in cases:
            dir_case(args, base, env, mvc, w, size, results)
        if "open" in cases:
            open_case(args, base, env, py, w, size, results)
    finally:
        leave(base, args.keep, server)
    results["load_after"] = os.getloadavg()
    results["tree_after"] = tree_state()
    if results["tree_after"] != results["tree"]:
        print(f"bench_read: mvc/ changed during the run: {results['tree']} -> {results['tree_after']}")
    summary(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


class World:
    """The bare repositories to read from and where their objects are."""

    bare_s3 = bare_dir = store_dir = small_key = big_key = big_rel = big_oid = ""


def source_repo(path: str, env: dict[str, str], mvc: list[str], big: str, remote: list[str]) -> dict[str, str]:
    """A repository with small.bin (model churn, prod) and big.bin, pushed to its one remote; {path: oid}."""
    os.makedirs(path)
    git("init", "-q", cwd=path, env=env)
    run([*mvc, "init"], env, path)
    run([*mvc, "remote", "add", *remote[:2], "--default"], env, path)
    if len(remote) > 2:
        run([*mvc, "remote", "modify", remote[0], "endpoint_url", remote[2]], env, path)
    with open(os.path.join(path, "small.bin"), "wb") as f:
        f.write(random.Random(11).randbytes(SMALL))
    shutil.copyfile(big, os.path.join(path, "big.bin"))
    run([*mvc, "add", "small.bin", "--name", "churn"], env, path)
    run([*mvc, "add", "big.bin"], env, path)
    git("add", "-A", cwd=path, env=env)
    git("commit", "-q", "-m", "models", cwd=path, env=env)
    run([*mvc, "push", "-q"], env, path)
    run([*mvc, "register", "churn"], env, path)
    run([*mvc, "assign", "churn", "prod"], env, path)
    rows = json.loads(run([*mvc, "ls", "--json"], env, path).out)
    return {r["path"]: r["oid"] for r in rows}


def bare_clone(src: str, dest: str, env: dict[str, str]) -> None:
    git("clone", "-q", "--bare", src, dest, cwd=os.path.dirname(dest), env=env)
    git("config", "uploadpack.allowFilter", "true", cwd=dest, env=env)  # as GitHub and GitLab serve


def setup(base: str, env: dict[str, str], mvc: list[str], server: Server, size: int) -> World:
    sys.path.insert(0, ROOT)
    from mvc.objects import layout

    t = time.perf_counter()
    big = os.path.join(base, "big-source.bin")
    make_big(big, size, seed=1)
    import boto3

    boto3.client(
        "s3", endpoint_url=server.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket=BUCKET)
    w = World()
    oids = source_repo(os.path.join(base, "src-s3"), env, mvc, big, ["s3", f"s3://{BUCKET}/{PREFIX}", server.endpoint])
    w.small_key = f"{PREFIX}/{layout.object_rel(oids['small.bin'])}"
    w.big_key = f"{PREFIX}/{layout.object_rel(oids['big.bin'])}"
    w.big_oid = oids["big.bin"]
    w.bare_s3 = os.path.join(base, "bare-s3.git")
    bare_clone(os.path.join(base, "src-s3"), w.bare_s3, env)
    w.store_dir = os.path.join(base, "store")
    source_repo(os.path.join(base, "src-dir"), env, mvc, big, ["store", w.store_dir])
    w.big_rel = os.path.join(w.store_dir, *layout.object_rel(oids["big.bin"]).split("/"))
    if not os.path.isfile(w.big_rel):
        fail(f"the directory remote has no {w.big_rel}")
    w.bare_dir = os.path.join(base, "bare-dir.git")
    bare_clone(os.path.join(base, "src-dir"), w.bare_dir, env)
    for d in ("src-s3", "src-dir"):  # their workspace and cache copies are not read again
        shutil.rmtree(os.path.join(base, d))
    os.unlink(big)
    print(f"setup: {time.perf_counter() - t:.1f} s", flush=True)
    return w


def interleave(steps: dict[str, object], rounds: int, label: str, times: dict[str, list[Result]]) -> None:
    """Run each step once per round, who goes first rotating; each step returns a Result."""
    names = list(steps)
    for i in range(rounds):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            times.setdefault(name, []).append(steps[name]())  # type: ignore[operator]
        print(
            f"{label} run {i + 1}: "
            + ", ".join(f"{n} {times[n][-1].wall:.3f}" for n in names)
            + f" s (load average {os.getloadavg()[0]:.2f})",
            flush=True,
        )


def figures(times: dict[str, list[Result]]) -> dict[str, dict[str, object]]:
    return {
        name: {
            "median": med([r.wall for r in rs]),
            "min": min(r.wall for r in rs),
            "max": max(r.wall for r in rs),
            "cpu": med([r.cpu for r in rs]),
            "rss_mib": max(r.rss_kib for r in rs) / 1024,
            "runs": [round(r.wall, 4) for r in rs],
        }
        for name, rs in times.items()
    }


# -- 1. cold start --------------------------------------------------------------------------------
def startup_case(args, base, env, mvc, py, server, w, results) -> None:
    out = os.path.join(base, "out-small.bin")
    clone = os.path.join(base, "clone")
    warm_env = {**env, "MVC_CACHE_DIR": os.path.join(base, "warm-cache")}
    get = [*mvc, "get", "--repo", w.bare_s3, "churn#prod", "-o", out]
    n = [0]

    def cold_env() -> dict[str, str]:
        n[0] += 1
        return {**env, "MVC_CACHE_DIR": os.path.join(base, f"cold-cache-{n[0]}")}

    def mvc_cold() -> Result:
        e = cold_env()
        r = run(get, e, base)
        check_small(out)
        rm(e["MVC_CACHE_DIR"])
        return r

    def mvc_warm() -> Result:
        r = run(get, warm_env, base)
        check_small(out)
        return r

    def raw_botocore() -> Result:
        r = run([py, "-c", RAW_BOTOCORE, server.endpoint, BUCKET, w.small_key, out], env, base)
        check_small(out)
        return r

    def git_clone() -> Result:
        r = run(["git", "clone", "-q", "--depth", "1", f"file://{w.bare_s3}", clone], env, base)
        rm(clone)
        return r

    run(get, warm_env, base)  # the warm cache: filled once
    rm(out)
    before = len(server.requests())
    e = cold_env()
    trace = os.path.join(base, "git-trace")
    run(get, {**e, "GIT_TRACE": trace}, base)  # one cold run traced (not timed): git processes and requests
    reqs = server.requests()[before:]
    rm(out)
    before = len(server.requests())
    run(get, {**warm_env, "GIT_TRACE": trace + "-warm"}, base)
    reqs_warm = server.requests()[before:]
    rm(out)
    rm(e["MVC_CACHE_DIR"])
    steps = {
        "python -c pass": lambda: run([py, "-c", "pass"], env, base),
        'python -c "import mvc.cli"': lambda: run([py, "-c", "import mvc.cli"], env, base),
        "git ls-remote BARE": lambda: run(["git", "ls-remote", w.bare_s3], env, base),
        "git clone --depth 1 file://BARE": git_clone,
        "raw botocore: client + GET": raw_botocore,
        "mvc get --repo, cold": mvc_cold,
        "mvc get --repo, warm": mvc_warm,
    }
    times: dict[str, list[Result]] = {}
    interleave(steps, args.startup_runs, "start-up", times)
    fig = figures(times)
    results["startup"] = {
        "figures": fig,
        "requests_cold": request_names(reqs),
        "requests_warm": request_names(reqs_warm),
        "git_cold": git_trace(trace),
        "git_warm": git_trace(trace + "-warm"),
    }
    print(
        f"cold start: mvc get --repo {fig['mvc get --repo, cold']['median']:.3f} s (target <= {TARGETS['cold']} s), "
        f"warm {fig['mvc get --repo, warm']['median']:.3f} s; {len(reqs)} S3 requests cold, {len(reqs_warm)} warm; "
        f"git processes cold: {len(results['startup']['git_cold'])}, warm: {len(results['startup']['git_warm'])}",  # type: ignore[index]
        flush=True,
    )


def check_small(out: str) -> None:
    if os.path.getsize(out) != SMALL:
        fail(f"{out} has {os.path.getsize(out)} bytes, expected {SMALL}")
    os.unlink(out)


def git_trace(path: str) -> list[str]:
    """The git commands a traced run started (GIT_TRACE's 'built-in:' lines: each is one git process)."""
    cmds = []
    with open(path, errors="replace") as f:
        for line in f:
            if "trace: built-in: git " in line:
                words = [x for x in line.split("trace: built-in: git ", 1)[1].split() if not x.startswith("-")]
                cmds.append(next((x for x in words if "=" not in x and "/" not in x), "?"))
    return cmds


def profile_case(base, env, mvc, py, w, results) -> None:
    """Where a cold start's time goes: a timeline in-process (with and without botocore's prewarm thread),
    python -X importtime, cProfile (main thread only)."""
    out = os.path.join(base, "out-small.bin")
    args = ["get", "--repo", w.bare_s3, "churn#prod", "-o", out]
    modes = ["prewarm", "noprewarm", "freeze"]
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for i in range(PROFILE_RUNS):
        for mode in modes[i % 3 :] + modes[: i % 3]:
            e = {**env, "MVC_CACHE_DIR": os.path.join(base, f"phase-cache-{mode}-{i}")}
            r = run([py, "-c", PHASES, mode, *args], e, base)
            p = json.loads(r.out.strip().splitlines()[-1])
            p["whole_process"] = r.wall
            runs[mode].append(p)
            rm(out)
            rm(e["MVC_CACHE_DIR"])
    timeline = {}
    for mode, ps in runs.items():
        ps.sort(key=lambda p: p["whole_process"])
        mid = ps[len(ps) // 2]  # the run with the median whole-process time
        timeline[mode] = {
            "whole_process_median": mid["whole_process"],
            "in_process": mid["in_process"],
            "events": mid["events"],
            "summary": phase_summary(mid),
            "whole_process_runs": [round(p["whole_process"], 4) for p in ps],
        }
        print(
            f"cold start timeline ({mode}, the run of median length of {PROFILE_RUNS}): {timeline[mode]['summary']}",
            flush=True,
        )

    e = {**env, "MVC_CACHE_DIR": os.path.join(base, "importtime-cache")}
    p = subprocess.run([py, "-X", "importtime", "-m", "mvc", *args], env=e, cwd=base, capture_output=True, text=True)
    if p.returncode:
        fail(f"importtime run: {p.stderr[-2000:]}")
    rm(out)
    by_pkg: dict[str, int] = {}
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            self_us, _, name = (x.strip() for x in line[len("import time:") :].split("|"))
            top = name.split(".")[0]
            by_pkg[top] = by_pkg.get(top, 0) + int(self_us)
    imports = dict(sorted(by_pkg.items(), key=lambda kv: -kv[1]))

    prof = os.path.join(base, "cold.prof")
    e = {**env, "MVC_CACHE_DIR": os.path.join(base, "cprofile-cache")}
    run([py, "-m", "cProfile", "-o", prof, "-m", "mvc", *args], e, base)
    rm(out)
    st = pstats.Stats(prof)
    total = st.total_tt  # type: ignore[attr-defined]
    wanted = {
        "click main": ("click/core.py", "main"),
        "resolve the ref (git)": ("mvc/api/read.py", "resolve"),
        "git processes (mvc.git._run_git)": ("mvc/git.py", "_run_git"),
        "open the remote (mvc.api.read._transfer)": ("mvc/api/read.py", "_transfer"),
        "wait for botocore's session (s3read._session)": ("s3read.py", "_session"),
        "botocore create_client": ("botocore/session.py", "create_client"),
        "the download (reader.download)": ("mvc/objects/reader.py", "download"),
        "imports in the main thread (_find_and_load)": ("<frozen importlib._bootstrap>", "_find_and_load"),
    }
    cum: dict[str, dict[str, float]] = {}
    for label, (fname, func) in wanted.items():
        for (f, _, name), (_, nc, _, ct, _) in st.stats.items():  # type: ignore[attr-defined]
            if name == func and f.endswith(fname):
                cum[label] = {"calls": nc, "cumulative_s": round(ct, 4)}
                break
    top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:15]  # type: ignore[attr-defined]
    results["profile"] = {
        "timeline": timeline,
        "importtime_self_ms_by_package": {k: round(v / 1000, 1) for k, v in imports.items()},
        "importtime_total_ms": round(sum(imports.values()) / 1000, 1),
        "cprofile_total_s": total,
        "cprofile_cumulative": cum,
        "cprofile_top_tottime": [
            {"function": f"{os.path.basename(f)}:{ln}:{name}", "calls": v[1], "tottime_s": round(v[2], 4)}
            for (f, ln, name), v in top
        ],
    }
    print(
        f"importtime (one cold run; self times, both threads, {sum(imports.values()) / 1000:.0f} ms in all), "
        "by package (ms): " + ", ".join(f"{k} {v / 1000:.1f}" for k, v in list(imports.items())[:14])
    )
    print(
        f"cProfile (one cold run, main thread, {total:.3f} s): "
        + ", ".join(f"{k} {v['calls']}x {v['cumulative_s']:.3f} s" for k, v in cum.items()),
        flush=True,
    )


def phase_summary(p: dict) -> str:
    """'import mvc.cli 0-29 ms; git x10 30-240 ms (busy 211); …; ends 640 ms of a 700 ms process'."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for name, a, b in p["events"]:
        key = "git" if name.startswith("git ") else name
        groups.setdefault(key, []).append((a, b))
    parts = []
    for key, spans in sorted(groups.items(), key=lambda kv: min(a for a, _ in kv[1])):
        a, b = min(x for x, _ in spans), max(y for _, y in spans)
        busy = sum(y - x for x, y in spans)
        n = f" x{len(spans)}" if len(spans) > 1 else ""
        parts.append(f"{key}{n} {a * 1000:.0f}-{b * 1000:.0f} ms" + (f" (busy {busy * 1000:.0f})" if n else ""))
    cmds = " ".join(name[4:] for name, _, _ in p["events"] if name.startswith("git "))
    return (
        "; ".join(parts)
        + f"; ends {p['in_process'] * 1000:.0f} ms into a {p['whole_process'] * 1000:.0f} ms process; git: {cmds}"
    )


# -- 2. throughput ---------------------------------------------------------------------------------
def s3_case(args, base, env, mvc, py, server, w, size, results) -> None:
    out = os.path.join(base, "out-big.bin")
    env = {**env, "MVC_CACHE_DIR": os.path.join(base, "big-cache")}  # git metadata kept: the bytes are timed
    checked: set[str] = set()

    def step(name: str, cmd: list[str]):
        def go() -> Result:
            r = run(cmd, env, base)
            got = os.path.getsize(out)
            if got != size:
                fail(f"{name} wrote {got} bytes, expected {size}")
            if name not in checked:  # each tool's bytes checked once (the server's ranged GETs are patched)
                from mvc.storage import fileio

                if oids.from_digest(fileio.hash_file(out)[0]) != w.big_oid:
                    fail(f"{name} wrote other bytes than the object's")
                checked.add(name)
            os.unlink(out)
            return r

        return go

    from mvc.objects import oid as oids

    run([*mvc, "get", "--repo", w.bare_s3, "small.bin", "-o", out], env, base)  # the git cache, filled once
    os.unlink(out)
    steps = {
        "s3fs get": step("s3fs get", [py, "-c", S3FS_GET, server.endpoint, f"{BUCKET}/{w.big_key}", out]),
        "boto3 download_file": step(
            "boto3 download_file", [py, "-c", BOTO3_GET, server.endpoint, BUCKET, w.big_key, out]
        ),
        "mvc get --repo (S3)": step("mvc get --repo (S3)", [*mvc, "get", "--repo", w.bare_s3, "big.bin", "-o", out]),
    }
    times: dict[str, list[Result]] = {}
    interleave(steps, args.runs, "S3 big object", times)
    fig = figures(times)
    best = min(fig["s3fs get"]["median"], fig["boto3 download_file"]["median"])  # type: ignore[type-var]
    paired = med(
        [
            m.wall / min(a.wall, b.wall)
            for m, a, b in zip(
                times["mvc get --repo (S3)"], times["s3fs get"], times["boto3 download_file"], strict=True
            )
        ]
    )
    results["s3"] = {"figures": fig, "ratio": fig["mvc get --repo (S3)"]["median"] / best, "ratio_paired": paired}  # type: ignore[operator]
    print(
        f"S3, {size / MIB:.0f} MiB: mvc get {fig['mvc get --repo (S3)']['median']:.2f} s, s3fs {fig['s3fs get']['median']:.2f} s, "
        f"boto3 {fig['boto3 download_file']['median']:.2f} s: {results['s3']['ratio']:.2f} x the better "  # type: ignore[index]
        f"(paired {paired:.2f}; target <= {TARGETS['s3_ratio']})",
        flush=True,
    )


def parts_case(base, env, py, w, size, runs, results) -> None:
    out = os.path.join(base, "out-part.bin")
    env = {**env, "MVC_CACHE_DIR": os.path.join(base, "big-cache")}
    steps = {}
    for part in (4, 8, 16):
        for streams in (4, 8, 16):

            def go(part: int = part, streams: int = streams) -> Result:
                r = run([py, "-c", PART_DRIVER, str(part), str(streams), "big.bin", w.bare_s3, out], env, base)
                if os.path.getsize(out) != size:
                    fail(f"the part driver wrote {os.path.getsize(out)} bytes, expected {size}")
                os.unlink(out)
                return r

            steps[f"{part} MiB x {streams}"] = go
    times: dict[str, list[Result]] = {}
    interleave(steps, runs, "part size x streams", times)
    fig = figures(times)
    results["parts"] = fig
    print("read part x streams (median s / peak RSS MiB):")
    print("            " + "".join(f"{s:>10} streams" for s in (4, 8, 16)))
    for part in (4, 8, 16):
        cells = [fig[f"{part} MiB x {s}"] for s in (4, 8, 16)]
        print(f"  {part:>2} MiB parts" + "".join(f"{c['median']:>9.2f} s {c['rss_mib']:>4.0f} M" for c in cells))


def dir_case(args, base, env, mvc, w, size, results) -> None:
    out = os.path.join(base, "out-dir.bin")
    env = {**env, "MVC_CACHE_DIR": os.path.join(base, "dir-cache")}
    run([*mvc, "get", "--repo", w.bare_dir, "small.bin", "-o", out], env, base)  # the git cache, filled once
    os.unlink(out)

    def step(cmd: list[str], env: dict[str, str] = env, expect: int = size):
        def go() -> Result:
            warm(w.big_rel)  # both read the remote's object from the page cache
            r = run(cmd, env, base)
            if os.path.getsize(out) != expect:
                fail(f"{cmd[0]} wrote {os.path.getsize(out)} bytes, expected {expect}")
            os.unlink(out)
            return r

        return go

    get = [*mvc, "get", "--repo", w.bare_dir, "big.bin", "-o", out]
    small = [*mvc, "get", "--repo", w.bare_dir, "small.bin", "-o", out]  # what is not the copy: start-up, git
    no_aws = {k: v for k, v in env.items() if not k.startswith("AWS_")}  # then mvc does not prewarm botocore
    steps = {
        "cp of the remote's object": step(["cp", w.big_rel, out]),
        "mvc get --repo (directory)": step(get),
        "mvc get --repo (directory), no AWS_* variables": step(get, no_aws),
        "mvc get --repo (directory), the 1 KiB model": step(small, env, SMALL),
        "mvc get --repo (directory), the 1 KiB model, no AWS_*": step(small, no_aws, SMALL),
    }
    times: dict[str, list[Result]] = {}
    interleave(steps, args.runs, "directory remote", times)
    fig = figures(times)
    paired = med(
        [
            m.wall / c.wall
            for m, c in zip(times["mvc get --repo (directory)"], times["cp of the remote's object"], strict=True)
        ]
    )
    ratio = fig["mvc get --repo (directory)"]["median"] / fig["cp of the remote's object"]["median"]  # type: ignore[operator]
    cp = fig["cp of the remote's object"]["median"]
    no_aws_ratio = fig["mvc get --repo (directory), no AWS_* variables"]["median"] / cp  # type: ignore[operator]
    results["dir"] = {"figures": fig, "ratio": ratio, "ratio_paired": paired, "ratio_no_aws": no_aws_ratio}
    m, c = fig["mvc get --repo (directory)"]["median"], fig["cp of the remote's object"]["median"]
    print(
        f"directory remote, {size / MIB:.0f} MiB: mvc get {m:.3f} s, cp {c:.3f} s: {ratio:.2f} x "
        f"(paired {paired:.2f}; target <= {TARGETS['dir_ratio']}); without AWS_* variables {no_aws_ratio:.2f} x",
        flush=True,
    )


def open_case(args, base, env, py, w, size, results) -> None:
    env = {**env, "MVC_CACHE_DIR": os.path.join(base, "big-cache")}
    steps = {
        "mvc.open (S3), 8 MiB reads": lambda: run([py, "-c", OPEN_READ, "big.bin", w.bare_s3, str(size)], env, base),
        "mvc.open (directory), 8 MiB reads": lambda: run(
            [py, "-c", OPEN_READ, "big.bin", w.bare_dir, str(size)], env, base
        ),
    }
    times: dict[str, list[Result]] = {}
    interleave(steps, max(1, min(args.runs, 3)), "mvc.open", times)
    results["open"] = figures(times)


# -- the table -------------------------------------------------------------------------------------
def summary(results: dict[str, object]) -> None:
    rows: list[tuple[str, str, str, str, str, str]] = []

    def row(name: str, f: dict[str, object], limit: str = "", target: str = "", verdict: str = "") -> None:
        rows.append(
            (name, f"{f['median']:.3f}", f"{f['cpu']:.3f}", f"{f['rss_mib']:.0f}", limit, f"{target} {verdict}".strip())
        )

    rss = TARGETS["rss_mib"]

    def mem(f: dict[str, object]) -> str:
        return f"RSS <= {rss} MiB: {'pass' if f['rss_mib'] <= rss else 'FAIL'}"  # type: ignore[operator]

    s = results.get("startup")
    if isinstance(s, dict):
        fig = s["figures"]
        for name, f in fig.items():
            if name == "mvc get --repo, cold":
                ok = f["median"] <= TARGETS["cold"]
                row(name, f, "", f"<= {TARGETS['cold']} s", "pass" if ok else "FAIL")
            else:
                row(name, f)
    prof = results.get("profile")
    if isinstance(prof, dict):
        for mode, t in prof["timeline"].items():
            label = {
                "prewarm": "phase driver, cold, as mvc runs",
                "noprewarm": "phase driver, cold, no prewarm",
                "freeze": "phase driver, cold, gc.freeze() at exit",
            }[mode]
            rows.append((label, f"{t['whole_process_median']:.3f}", "", "", f"in process {t['in_process']:.3f}", ""))
    s3 = results.get("s3")
    if isinstance(s3, dict):
        fig = s3["figures"]
        row("s3fs get (limit a)", fig["s3fs get"])
        row("boto3 download_file (limit b)", fig["boto3 download_file"])
        ok = s3["ratio"] <= TARGETS["s3_ratio"]
        row(
            "mvc get --repo (S3)",
            fig["mvc get --repo (S3)"],
            f"{s3['ratio']:.2f} x (paired {s3['ratio_paired']:.2f})",
            f"<= {TARGETS['s3_ratio']} x: {'pass' if ok else 'FAIL'};",
            mem(fig["mvc get --repo (S3)"]),
        )
    parts = results.get("parts")
    if isinstance(parts, dict):
        for name, f in parts.items():
            row(f"driver: read.get, {name}", f)
    d = results.get("dir")
    if isinstance(d, dict):
        fig = d["figures"]
        row("cp of the remote's object (limit)", fig["cp of the remote's object"])
        ok = d["ratio"] <= TARGETS["dir_ratio"]
        row(
            "mvc get --repo (directory)",
            fig["mvc get --repo (directory)"],
            f"{d['ratio']:.2f} x (paired {d['ratio_paired']:.2f})",
            f"<= {TARGETS['dir_ratio']} x: {'pass' if ok else 'FAIL'};",
            mem(fig["mvc get --repo (directory)"]),
        )
        f = fig["mvc get --repo (directory), no AWS_* variables"]
        ok = d["ratio_no_aws"] <= TARGETS["dir_ratio"]
        row(
            "mvc get --repo (directory), no AWS_*",
            f,
            f"{d['ratio_no_aws']:.2f} x",
            f"<= {TARGETS['dir_ratio']} x: {'pass' if ok else 'FAIL'};",
            mem(f),
        )
        row("mvc get --repo (directory), 1 KiB model", fig["mvc get --repo (directory), the 1 KiB model"])
        row("mvc get --repo (directory), 1 KiB, no AWS_*", fig["mvc get --repo (directory), the 1 KiB model, no AWS_*"])
    o = results.get("open")
    if isinstance(o, dict):
        for name, f in o.items():
            row(name, f, "", "", mem(f))
    head = ("case", "median s", "cpu s", "peak RSS MiB", "vs limit", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print()
    print(f"{results['size_bytes'] / MIB:.0f} MiB object, {results['runs']} runs; moto: {results['moto']}")  # type: ignore[operator]
    for r in [head, tuple("-" * n for n in widths), *rows]:
        print(
            "  ".join(
                c.ljust(n) if i in (0, 4, 5) else c.rjust(n) for i, (c, n) in enumerate(zip(r, widths, strict=True))
            )
        )
    print(f"load average before {results['load_before'][0]:.2f}, after {results['load_after'][0]:.2f}")  # type: ignore[index]
    print(f"code: {results['tree']}")


if __name__ == "__main__":
    main()
