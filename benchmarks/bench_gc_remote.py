#!/usr/bin/env python3
"""Scale target of ``mvc gc -r``: a remote holding 100,000 objects (S3 keys) and 100 registry versions,
``mvc gc -r REMOTE`` dry run <= 30 s on the moto S3 server, peak RSS <= 500 MiB.

    .venv/bin/python benchmarks/bench_gc_remote.py --objects 2000 --versions 5 --runs 1   # smoke, < 1 minute
    .venv/bin/python benchmarks/bench_gc_remote.py --runs 3 --json out.json              # 100,000 objects

The remote is built as a user builds it, then topped up with garbage:

1. history (one process driving mvc's CLI in-process, ``mvc.cli.cli.main``, the code the console script
   runs): a model directory ``models/churn/`` (``--files`` small files of 1..16 KiB and a ``weights.bin`` of
   ``--weights`` bytes, stored alone on the remote: objects of 1 MiB and more do not go in packs) tracked
   with ``mvc add models/churn --name churn``; each of ``--versions`` versions rewrites ``--changed`` of the
   small files and the weights, then ``git commit``, ``mvc register churn`` (churn@v0.0.N; every 10th version
   also ``mvc assign churn prod``) and ``mvc push`` (one pack of the small objects and their manifest, the
   weights alone). main and the tags are pushed to a bare git repository, the git remote ``origin`` (gc
   lists its refs: ``git ls-remote``);
2. dropped versions: ``--dropped`` (default versions / 2) more versions on a branch ``exp``, each committed
   and ``mvc push``ed, never git-pushed; then the branch is deleted and the reflogs expired: their packs
   and weights are garbage;
3. bulk garbage: objects of 256..4096 random bytes, each named by its xxh128 (``objects/ab/cdef…``), put
   straight into the moto server's backend (``S3Backend.put_object``, what a PUT request calls; 100,000
   PUTs over HTTP to moto would take minutes and build the same state) until the remote holds
   ``--objects`` keys;
4. ages: moto dates every key at its write; each key's LastModified is then set back by a random age of
   1..365 days (seeded), as on a remote written over a year: with gc's default 14 d grace about 4 % of the
   garbage is young (kept), the rest would go. ``--grace`` passes another grace to gc.

Then, interleaved run by run (who goes first alternates), each a whole fresh process:

* ``mvc gc -r s3 --json`` (the venv's console script, dry run): wall, CPU (wait4) and peak RSS (GNU
  ``time -f %M``), the requests the server saw by method and the seconds moto spent answering them, and
  gc's counts (files and objects it would delete, kept, young), checked against what the setup knows
  should go;
* the limit: ``list_objects_v2`` of the whole prefix, paginated, with boto3; and (page-cost listing only) s3fs
  ``find(detail=True)`` of the prefix (what mvc's S3 store lists with).

Each on two listings of the same server: moto's own (``stock``, ``--stock-runs``, default 1), and one where
a page of a listing costs moto a page's work (``--runs``, default 3; :func:`patch_listing`). moto 5 sorts
every key of the bucket for every page of 1,000, so at 100,000 keys the stock listing alone takes about a
minute, which S3 does not: the target is met or missed by moto there whatever gc does; the page-cost
listing shows gc's own cost.

When a gc's median is over a target (or ``--profile always``), one more gc runs under cProfile and the
functions with the most time are printed.

The S3 server is moto's ThreadedMotoServer on 127.0.0.1 port 0 in this process (its backend is reached
directly to add the garbage, set the ages and time the requests); it serves on this process's threads, so
the machine's CPUs are shared between the server and the process timed, as with any local moto benchmark.

The run uses a copy of this checkout's mvc/ taken when it starts (``--code DIR``: another tree), through
PYTHONPATH, as bench_scale.py does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_chunks import code_state, snapshot  # noqa: E402
from bench_read import add_run_args, isolated_env, leave, machine  # noqa: E402
from bench_scale import TIME, run  # noqa: E402

BUCKET, PREFIX, REMOTE = "bench", "models", "s3"
SEED = 20240917
TARGETS = {"wall": 30.0, "rss_mib": 500.0}
DAY = 86400

# History: argv[1] a JSON config; drives mvc's CLI in this one process (as a user types the commands,
# without a Python start per command). Prints one JSON line: the phases' seconds and counts.
BUILD = r"""
import json, os, random, subprocess, sys, time
cfg = json.loads(sys.argv[1])
from mvc.cli import cli

def mvc(*args):
    rv = cli.main(args=list(args), prog_name="mvc", standalone_mode=False)
    if rv not in (None, 0):
        raise SystemExit(f"mvc {' '.join(args)} exited {rv}")

def git(*args):
    p = subprocess.run(["git", *args], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"git {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout

rnd = random.Random(cfg["seed"] + (1 if cfg["phase"] == "dropped" else 0))
model = os.path.join("models", "churn")
shards = [os.path.join(model, f"shard-{i:04d}.bin") for i in range(cfg["files"])]

def write(path, size):
    with open(path, "wb") as f:
        f.write(rnd.randbytes(size))

def version(changed):
    for p in changed:
        write(p, rnd.randint(1024, 16 * 1024))
    write(os.path.join(model, "weights.bin"), cfg["weights"])

t0 = time.perf_counter()
out = {"phase": cfg["phase"], "versions": 0}
if cfg["phase"] == "history":
    mvc("remote", "add", cfg["remote"], cfg["url"], "--default")
    mvc("remote", "modify", cfg["remote"], "endpoint_url", cfg["endpoint"])
    git("add", "-A")
    git("commit", "-q", "-m", "mvc init")
    os.makedirs(model)
    for v in range(1, cfg["versions"] + 1):
        version(shards if v == 1 else rnd.sample(shards, cfg["changed"]))
        mvc("add", model, "--name", "churn", "-q")
        git("add", "-A")
        git("commit", "-q", "-m", f"churn v{v}")
        mvc("register", "churn", "-q")
        if v % 10 == 0:
            mvc("assign", "churn", "prod", "-q")
        mvc("push", "-q")
        out["versions"] += 1
    git("init", "-q", "--bare", cfg["origin"])
    git("remote", "add", "origin", cfg["origin"])
    git("push", "-q", "origin", "main", "--tags")
else:  # versions pushed to the mvc remote from a branch that is then deleted, never git-pushed
    git("checkout", "-q", "-b", "exp")
    for d in range(1, cfg["dropped"] + 1):
        version(rnd.sample(shards, cfg["changed"]))
        mvc("add", model, "-q")
        git("add", "-A")
        git("commit", "-q", "-m", f"experiment {d}")
        mvc("push", "-q")
        out["versions"] += 1
    git("checkout", "-q", "main")
    mvc("checkout", "-q")
    git("branch", "-q", "-D", "exp")
    git("reflog", "expire", "--expire=now", "--all")
out["tags"] = len(git("tag", "--list").split())
out["commits"] = int(git("rev-list", "--all", "--reflog", "--count").strip())
out["seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""

# The limits: every key of the prefix, listed from a fresh process.
LIST_BOTO3 = r"""
import sys, boto3
endpoint, bucket, prefix = sys.argv[1:4]
client = boto3.client("s3", endpoint_url=endpoint)
n = 0
for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    n += len(page.get("Contents", []))
print(n)
"""

LIST_S3FS = r"""
import sys, s3fs
endpoint, path = sys.argv[1:3]
fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
print(len(fs.find(path, detail=True)))
"""

# gc under cProfile: the console script's main, its profile written to argv[1].
PROFILED = r"""
import cProfile, sys
out = sys.argv[1]
sys.argv = ["mvc", *sys.argv[2:]]
from mvc.cli import main
prof = cProfile.Profile()
prof.enable()
try:
    main()
except SystemExit:
    pass
finally:
    prof.disable()
    prof.dump_stats(out)
"""


def fail(msg: str) -> None:
    raise SystemExit(f"bench_gc_remote: {msg}")


def say(msg: str) -> None:
    print(msg, flush=True)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def num(x: int | str) -> str:
    return f"{x:,}" if isinstance(x, int) else x


# -- the S3 server: moto in this process, its requests counted by method ---------------------------------------
class Server:
    def __init__(self) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.moto_server import werkzeug_app
        from moto.s3.models import s3_backends
        from moto.server import ThreadedMotoServer

        self.counts: dict[str, list] = {}  # method (LIST for a listing): [requests, seconds in moto]
        lock = threading.Lock()
        call = werkzeug_app.DomainDispatcherApplication.__call__
        counts = self.counts

        def counted(app, environ, start_response):
            key = environ.get("REQUEST_METHOD", "?")
            if key == "GET" and "list-type=2" in environ.get("QUERY_STRING", ""):
                key = "LIST"
            t = time.perf_counter()
            try:
                return call(app, environ, start_response)  # moto has built the whole response on return
            finally:
                with lock:
                    c = counts.setdefault(key, [0, 0.0])
                    c[0] += 1
                    c[1] += time.perf_counter() - t

        werkzeug_app.DomainDispatcherApplication.__call__ = counted
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on this process's stderr
        self.fast = [False]
        patch_listing(self.fast)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=10).read()
        import boto3

        self.s3 = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.s3.create_bucket(Bucket=BUCKET)
        self.backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        self.bucket = self.backend.get_bucket(BUCKET)  # the bucket the requests above made

    def listing(self, fast: bool) -> None:
        self.fast[0] = fast

    def reset_counts(self) -> None:
        self.counts.clear()

    def keys(self) -> list[str]:
        return [k for k in self.bucket.keys if k.startswith(PREFIX + "/")]

    def put(self, key: str, data: bytes) -> None:
        self.backend.put_object(BUCKET, key, data)

    def age(self, seed: int, lo_days: float, hi_days: float) -> dict[str, float]:
        """Set every key's LastModified back by a random age in [lo_days, hi_days]; {key: its LastModified, in
        seconds since the epoch, as a listing gives it (whole seconds)}."""
        rnd = random.Random(seed)
        when = {}
        for name in sorted(self.keys()):
            age = datetime.timedelta(seconds=rnd.uniform(lo_days, hi_days) * DAY)
            for k in self.bucket.keys.getlist(name):
                k.last_modified = k.last_modified - age
            lm = self.bucket.keys[name].last_modified.replace(microsecond=0, tzinfo=datetime.timezone.utc)
            when[name] = lm.timestamp()
        return when

    def stop(self) -> None:
        self.server.stop()


def patch_listing(fast: list[bool]) -> None:
    """While fast[0], a ListObjectsV2 page without a delimiter costs moto what it costs S3: the page, not the
    bucket. moto 5 (S3Backend.list_objects_v2) gathers every key of the bucket under the prefix into a set,
    sorts them twice and scans to the continuation token, for every page: listing 100,000 keys 1,000 at a
    time is 100 x 100,000 keys' work, about 0.7 s a page on this machine, where S3 answers a page in tens of
    milliseconds. Here the sorted names of the prefix are kept between pages (made again whenever the number
    of keys in the bucket changes: the benchmark lists only once the remote is built, and gc's dry run writes
    nothing), a page starts by bisection, and the page's keys and its continuation token are moto's own."""
    import bisect

    from moto.s3 import models

    original = models.S3Backend.list_objects_v2
    cache: dict[tuple[int, str], tuple[int, list[str]]] = {}

    def list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):
        if not fast[0] or delimiter or isinstance(bucket, models.FakeTableStorageBucket):
            return original(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        prefix = prefix or ""
        hit = cache.get((id(bucket), prefix))
        if hit is None or hit[0] != len(bucket.keys):
            hit = cache[(id(bucket), prefix)] = (
                len(bucket.keys),
                sorted(n for n in bucket.keys if n.startswith(prefix)),
            )
        names = hit[1]
        limit = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
        i = bisect.bisect_right(names, limit) if limit else 0
        page = []
        while i < len(names) and len(page) <= max_keys:  # one more than a page: _truncate_result says truncated
            key = bucket.keys.get(names[i])
            i += 1
            if key is not None and not isinstance(key, models.FakeDeleteMarker):
                page.append(key)
        return self._truncate_result(page, max_keys)

    models.S3Backend.list_objects_v2 = list_objects_v2


# -- setup -------------------------------------------------------------------------------------------------------
def sh(cmd: list[str], cwd: str, env: dict[str, str]) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode:
        fail(f"{' '.join(cmd)[:200]} (in {cwd}) exited {p.returncode}: {(p.stderr + p.stdout).strip()[-3000:]}")
    return p.stdout


def build(phase: str, cfg: dict, repo: str, env: dict[str, str]) -> dict:
    out = sh([sys.executable, "-c", BUILD, json.dumps({**cfg, "phase": phase})], repo, env)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fail(f"the {phase} build printed no result: {out[-3000:]!r}")
        raise


def bulk_garbage(server: Server, n: int, seed: int) -> tuple[list[str], int]:
    """n objects of 256..4096 random bytes, each at the path of its xxh128 digest; (their keys, bytes)."""
    import xxhash

    rnd = random.Random(seed)
    keys, total = [], 0
    for _ in range(n):
        data = rnd.randbytes(rnd.randint(256, 4096))
        d = xxhash.xxh3_128_hexdigest(data)
        key = f"{PREFIX}/objects/{d[:2]}/{d[2:]}"
        server.put(key, data)
        keys.append(key)
        total += len(data)
    return keys, total


def grace_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
    text = text.strip()
    return float(text) if text.isdigit() else float(text[:-1]) * units[text[-1]]


def expected(garbage: set[str], when: dict[str, float], cutoff: float) -> dict[str, int]:
    """What gc should report of the garbage keys, by docs/FORMAT.md ("What goes"): a loose object goes when
    written at or before cutoff, else it is young; a dead pack goes with its index when both are old, else it
    counts once as young."""
    files = young = 0
    packs: dict[str, list[str]] = {}
    for k in garbage:
        rel = k[len(PREFIX) + 1 :]
        if rel.startswith("packs/"):
            packs.setdefault(rel.rsplit(".", 1)[0], []).append(k)
        elif when[k] <= cutoff:
            files += 1
        else:
            young += 1
    for members in packs.values():
        if all(when[m] <= cutoff for m in members):
            files += len(members)
        else:
            young += 1
    return {"files": files, "young": young, "dead_packs": len(packs)}


# -- main -------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000, help="keys the remote holds in all (default 100000)")
    ap.add_argument("--versions", type=int, default=100, help="registered versions, pushed (default 100)")
    ap.add_argument("--dropped", type=int, help="versions pushed from a branch then deleted (default versions/2)")
    ap.add_argument("--files", type=int, default=64, help="small files in the model directory (default 64)")
    ap.add_argument("--changed", type=int, default=24, help="small files each version rewrites (default 24)")
    ap.add_argument("--weights", type=int, default=1 << 20, help="bytes of weights.bin, stored alone (1 MiB)")
    ap.add_argument("--grace", help="--grace given to gc (default: none, mvc's 14d)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each case with page-cost listings (median)")
    ap.add_argument("--stock-runs", type=int, default=1, help="runs of gc and boto3 on stock moto's listing")
    ap.add_argument("--profile", choices=("auto", "always", "never"), default="auto", help="a cProfile'd gc run")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before one command is killed")
    add_run_args(ap, code=True)
    args = ap.parse_args()
    dropped = args.versions // 2 if args.dropped is None else args.dropped
    if args.versions < 1 or args.changed > args.files or args.changed < 1:
        fail("--versions >= 1 and 1 <= --changed <= --files")

    base = tempfile.mkdtemp(prefix="mvc-bench-gc-remote-", dir=args.workdir)
    env = isolated_env(base, aws=True, drop=("PYTHONPATH", "MVC_REMOTE"))
    code = snapshot(args.code, base)
    env["PYTHONPATH"] = code
    mvc = os.path.join(os.path.dirname(sys.executable), "mvc")
    if not os.access(mvc, os.X_OK):
        fail(f"no mvc console script beside {sys.executable}")
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join([os.path.relpath(sys.executable, ROOT), "benchmarks/bench_gc_remote.py", *sys.argv[1:]]),
        "machine": machine(),
        "tree": ("snapshot taken at the start: " + code_state(code))
        if not args.code
        else f"{code}: {code_state(code, head=False)}",
        "gnu_time": bool(TIME),
        "targets": {"wall": f"<= {TARGETS['wall']} s", "rss": f"<= {TARGETS['rss_mib']} MiB"},
        "load_before": os.getloadavg(),
    }
    say(f"bench_gc_remote: {results['machine']}, load average {os.getloadavg()}")
    say(f"code: {results['tree']}")
    server = None
    repo = os.path.join(base, "repo")
    try:
        server = Server()
        say(f"moto S3 server at {server.endpoint} (in this process)")
        t_setup = time.perf_counter()
        os.makedirs(repo)
        sh(["git", "init", "-q"], repo, env)
        sh([mvc, "init"], repo, env)
        cfg = {
            "seed": SEED,
            "files": args.files,
            "changed": args.changed,
            "weights": args.weights,
            "versions": args.versions,
            "dropped": dropped,
            "remote": REMOTE,
            "url": f"s3://{BUCKET}/{PREFIX}",
            "endpoint": server.endpoint,
            "origin": os.path.join(base, "origin.git"),
        }
        setup: dict = {}
        built = build("history", cfg, repo, env)
        live_keys = set(server.keys())
        say(
            f"history: {built['versions']} versions ({built['tags']} tags, {built['commits']} commits) pushed in "
            f"{built['seconds']:.1f} s: {len(live_keys):,} keys"
        )
        setup["history"] = {**built, "keys": len(live_keys)}
        garbage: set[str] = set()
        if dropped:
            built = build("dropped", cfg, repo, env)
            garbage = set(server.keys()) - live_keys
            say(
                f"dropped: {built['versions']} versions pushed from a deleted branch in {built['seconds']:.1f} s: "
                f"{len(garbage):,} keys"
            )
            setup["dropped"] = {**built, "keys": len(garbage)}
        have = len(live_keys) + len(garbage)
        t = time.perf_counter()
        bulk, nbytes = bulk_garbage(server, max(0, args.objects - have), SEED)
        garbage |= set(bulk)
        say(f"bulk garbage: {len(bulk):,} objects ({nbytes / 1e6:.1f} MB) put in {time.perf_counter() - t:.1f} s")
        setup["bulk"] = {"objects": len(bulk), "bytes": nbytes, "seconds": time.perf_counter() - t}
        when = server.age(SEED, 1, 365)
        keys = server.keys()
        kinds: dict[str, int] = {}
        for k in keys:
            top = k[len(PREFIX) + 1 :].split("/", 1)[0]
            kinds[top] = kinds.get(top, 0) + 1
        setup["seconds"] = time.perf_counter() - t_setup
        grace = grace_seconds(args.grace or "14d")
        want = expected(garbage, when, time.time() - grace)
        results.update(
            setup=setup,
            keys=len(keys),
            keys_by_kind=kinds,
            live_keys=len(live_keys),
            garbage_keys=len(garbage),
            expected=want,
            grace=args.grace or "14d (mvc's default)",
        )
        say(
            f"setup: {setup['seconds']:.1f} s; the remote holds {len(keys):,} keys ({kinds}), {len(live_keys):,} "
            f"written by the kept history, {len(garbage):,} garbage; ages 1..365 days; expected with grace "
            f"{results['grace']}: {want['files']:,} files would go, {want['young']:,} young"
        )

        gc_cmd = [mvc, "gc", "-r", REMOTE, "--json", *(["--grace", args.grace] if args.grace else [])]
        boto3_cmd = [sys.executable, "-c", LIST_BOTO3, server.endpoint, BUCKET, PREFIX]
        # name: (command, listing: moto's own (stock) or a page's cost (fast), runs)
        cases = {
            "gc_stock": (gc_cmd, False, args.stock_runs),
            "boto3_list_stock": (boto3_cmd, False, args.stock_runs),
            "gc": (gc_cmd, True, args.runs),
            "boto3_list": (boto3_cmd, True, args.runs),
            "s3fs_find": (
                [sys.executable, "-c", LIST_S3FS, server.endpoint, f"{BUCKET}/{PREFIX}"],
                True,
                args.runs,
            ),
        }
        # warm-up, untimed: byte-compiles the code copy; the first gc records the packs in the journal
        server.listing(fast=True)
        for name in ("gc", "boto3_list", "s3fs_find"):
            r = run(cases[name][0], repo, env, args.timeout)
            if "error" in r:
                fail(f"warm-up {name}: {r['error']}\n{r.get('stderr_tail', '')}")
            say(f"  warm-up {name:<11} {r['wall']:8.2f} s (untimed)")
        runs: dict[str, list[dict]] = {name: [] for name in cases}
        for i in range(max(args.runs, args.stock_runs)):
            order = [n for n, c in cases.items() if i < c[2]]
            for name in order if i % 2 == 0 else order[::-1]:
                cmd, fast, _ = cases[name]
                server.listing(fast=fast)
                server.reset_counts()
                started = time.time()
                r = run(cmd, repo, env, args.timeout)
                r["requests"] = {k: v[0] for k, v in server.counts.items()}
                r["server_seconds"] = {k: round(v[1], 3) for k, v in server.counts.items()}
                full = r.pop("full_out")
                if "error" in r:
                    say(f"  run {i + 1} {name}: ERROR {r['error']}\n{r.get('stderr_tail', '')}")
                elif cmd is gc_cmd:
                    out = json.loads(full)
                    r["report"] = {k: v for k, v in out.items() if k != "groups"}
                    r["groups"] = out.get("groups", [])[:5]
                    # gc takes its cutoff during the run: a key dated between the run's start and end, less
                    # the grace, may fall either side
                    lo, hi = (expected(garbage, when, t - grace) for t in (started, started + r["wall"]))
                    r["expected"] = lo if lo == hi else {k: f"{lo[k]}..{hi[k]}" for k in lo}
                    r["matches_expected"] = all(
                        min(lo[k], hi[k]) <= r["report"][k] <= max(lo[k], hi[k]) for k in ("files", "young")
                    )
                else:
                    r["listed"] = int(full.split()[-1])
                runs[name].append(r)
                extra = ""
                if "report" in r:
                    rep = r["report"]
                    extra = (
                        f"would delete {rep['files']:,} files ({rep['objects']:,} objects, "
                        f"{rep['bytes'] / 1e6:.1f} MB), kept {rep['kept']:,}, young {rep['young']:,}"
                        f"{'' if r['matches_expected'] else ' (MISMATCH: expected ' + str(r['expected']) + ')'}"
                    )
                elif "listed" in r:
                    extra = f"{r['listed']:,} keys"
                served = sum(r["server_seconds"].values())
                say(
                    f"  run {i + 1} {name:<16} {r['wall']:8.2f} s  cpu {r['cpu']:7.2f} s  rss {r['rss_mib']:6.0f} MiB"
                    f"  moto {served:6.2f} s for {r['requests']}  {extra}"
                )
        fig: dict = {}
        for name, rs in runs.items():
            ok = [r for r in rs if "error" not in r]
            if not ok:
                if rs:
                    fig[name] = {"errors": [r["error"] for r in rs]}
                continue
            fig[name] = {
                "wall": med([r["wall"] for r in ok]),
                "cpu": med([r["cpu"] for r in ok]),
                "rss_mib": max(r["rss_mib"] for r in ok),
                "server_seconds": med([sum(r["server_seconds"].values()) for r in ok]),
                "runs_wall": [round(r["wall"], 2) for r in ok],
                "runs_cpu": [round(r["cpu"], 2) for r in ok],
                "runs_rss_mib": [round(r["rss_mib"]) for r in ok],
                "requests": ok[0]["requests"],
                "errors": [r["error"] for r in rs if "error" in r],
            }
            if "report" in ok[0]:
                f = fig[name]
                f["report"] = ok[0]["report"]
                f["groups"] = ok[0]["groups"]
                f["expected"] = ok[0]["expected"]
                f["pass_wall"] = f["wall"] <= TARGETS["wall"]
                f["pass_rss"] = f["rss_mib"] <= TARGETS["rss_mib"]
                f["matches_expected"] = all(r.get("matches_expected") for r in ok)
        results["figures"] = fig
        results["runs"] = runs

        results["profile"] = {}
        for name in ("gc_stock", "gc"):
            f = fig.get(name, {})
            over = "wall" in f and not (f["pass_wall"] and f["pass_rss"])
            if not (args.profile == "always" or (args.profile == "auto" and over)):
                continue
            prof = os.path.join(base, f"{name}.prof")
            server.listing(fast=cases[name][1])
            r = run([sys.executable, "-c", PROFILED, prof, *gc_cmd[1:]], repo, env, args.timeout)
            lines = []
            for key in ("cumulative", "tottime"):
                buf = _StatsOut()
                pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(30)
                lines.append(f"-- cProfile of one {name} ({r['wall']:.1f} s under the profiler), by {key}:")
                lines.extend(buf.text().splitlines())
            results["profile"][name] = lines
            say("\n".join(lines))
    finally:
        leave(base, args.keep, server, say)
    results["load_after"] = os.getloadavg()
    results["checkout_after"] = code_state(ROOT)

    say("")
    say(
        f"remote: {results['keys']:,} keys ({results['keys_by_kind']}); {args.versions} registered versions, "
        f"{dropped} dropped; setup {results['setup']['seconds']:.1f} s"
    )
    head = (
        "case",
        "median wall",
        "each run (s)",
        "CPU s (median)",
        "peak RSS MiB",
        "moto s",
        "requests (one run)",
        "target",
    )
    rows = [head]
    labels = {
        "gc_stock": f"mvc gc -r {REMOTE} --json, stock moto",
        "boto3_list_stock": "boto3 list_objects_v2, stock moto",
        "gc": f"mvc gc -r {REMOTE} --json, page-cost list",
        "boto3_list": "boto3 list_objects_v2, page-cost list",
        "s3fs_find": "s3fs find(detail=True), page-cost list",
    }
    for name, f in fig.items():
        if "wall" not in f:
            rows.append((labels[name], "ERROR", "", "", "", "", "", f["errors"][0][:80]))
            continue
        target = ""
        if "pass_wall" in f:
            target = (
                f"<= {TARGETS['wall']:.0f} s: {'pass' if f['pass_wall'] else 'FAIL'}; <= {TARGETS['rss_mib']:.0f} "
                f"MiB: {'pass' if f['pass_rss'] else 'FAIL'}"
            )
        rows.append(
            (
                labels[name],
                f"{f['wall']:.2f} s",
                ", ".join(f"{x:.2f}" for x in f["runs_wall"]),
                f"{f['cpu']:.2f} ({', '.join(f'{x:.1f}' for x in f['runs_cpu'])})",
                f"{f['rss_mib']:.0f} ({', '.join(str(x) for x in f['runs_rss_mib'])})",
                f"{f['server_seconds']:.2f}",
                " ".join(f"{k} {v}" for k, v in sorted(f["requests"].items())),
                target,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    table = []
    for i, r in enumerate(rows):
        table.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            table.append("  ".join("-" * w for w in widths))
    for name in ("gc_stock", "gc"):
        f = fig.get(name, {})
        if "report" in f:
            rep, want = f["report"], f["expected"]
            table.append(
                f"{name}: would delete {rep['files']:,} files ({rep['objects']:,} objects, {rep['bytes'] / 1e6:.1f} MB;"
                f" {rep['packs_deleted']} packs), kept {rep['kept']:,} objects, young {rep['young']:,}; expected "
                f"{num(want['files'])} files, {num(want['young'])} young: "
                f"{'match' if f['matches_expected'] else 'MISMATCH'}"
            )
    results["table"] = table
    say("\n".join(table))
    m = results["machine"]
    say(f"{m['nproc']} CPUs ({m['cpu']}); load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


class _StatsOut:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> None:
        self.parts.append(s)

    def text(self) -> str:
        return "".join(self.parts)


if __name__ == "__main__":
    main()
