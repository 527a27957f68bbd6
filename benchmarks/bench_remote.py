#!/usr/bin/env python3
"""Issue 3 speed targets, against one moto S3 server on 127.0.0.1 (its own process), in one run:

- push / pull of a 1 GiB file vs a raw s3fs put / get of the same bytes (target <= 1.1 x);
- push of 5,000 x 4 KiB files (target <= 0.5 x DVC; with --dvc, DVC pushes the same files to the
  same server in the same run), with a raw s3fs batch put of those files as the store's limit;
- "nothing to push" with 10,000 objects on the remote (target <= 0.3 s for the whole process, and
  no request: the server's request log is counted before and after).

    .venv/bin/python benchmarks/bench_remote.py --quick                 # 64 MiB, 500 files, 1,000 objects
    .venv/bin/python benchmarks/bench_remote.py                         # 1 GiB, 5,000 files, 10,000 objects
    .venv/bin/python benchmarks/bench_remote.py --dvc /tmp/dvcvenv/bin/dvc --json out.json

Every timing is a whole process as a user types it (mvc, the raw s3fs script, dvc). The server is a
single Python process and the bottleneck, so the ratios measured in one run are what count.
See docs/benchmarks.md for the recorded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUCKET = "bench"
OLD = 3600  # data files are made this old, so the state cache trusts them (mvc/repo/statedb.py)

RAW = r"""
import sys, time, s3fs
op, endpoint, a, b = sys.argv[1:5]
# the timeouts and retries mvc uses: a loaded machine must not fail one side only
fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True,
                       config_kwargs={"connect_timeout": 10, "read_timeout": 120,
                                      "retries": {"max_attempts": 3, "mode": "standard"}})
if op == "put":
    fs.put_file(a, b)
elif op == "get":
    fs.get_file(a, b)
elif op == "putmany":  # a: a directory of files, b: a prefix
    import os
    names = sorted(os.listdir(a))
    fs.put([os.path.join(a, n) for n in names], [f"{b}/{n}" for n in names], batch_size=int(sys.argv[5]))
"""


def fail(msg: str) -> None:
    raise SystemExit(f"bench_remote: {msg}")


class Server:
    """moto's server in its own process, its request log in a file we can count; patched as bench_read.py's
    is, so that a ranged GET reads only its range (stock moto reads the whole object for each one, which
    would make mvc's parallel ranged downloads look slow here and never on S3). ``--stock-moto``: unpatched."""

    def __init__(self, workdir: str, ranged: bool = True):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_read import SERVER

        self.log_path = os.path.join(workdir, "moto.log")
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (kept open for the server's life, closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, "ranged" if ranged else "stock"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.strip().isdigit():
            fail("the moto server did not start")
        self.port = int(line)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=5).read()
        import boto3

        self.s3 = boto3.client("s3", endpoint_url=self.endpoint)
        self.s3.create_bucket(Bucket=BUCKET)

    def requests(self) -> int:
        """Requests the server has logged. Its log (werkzeug's) wraps the request line in ANSI colour codes
        when the status is not a plain 200 (a 404 HEAD or GET, a 206 ranged GET, a 204 DELETE), so a line
        is matched on the request line's ' HTTP/1.1', not on the quote after it."""
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return sum(1 for line in f if b" HTTP/1.1" in line)

    def drop(self, prefix: str) -> None:
        """Delete objects under prefix, so the server's memory holds one copy of the big file at a time."""
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            for i in range(0, len(keys), 1000):
                self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys[i : i + 1000]})

    def count(self, prefix: str) -> int:
        n = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            n += page.get("KeyCount", 0)
        return n

    def objects(self, prefix: str) -> int:
        """Objects a reader finds under prefix: alone (objects/…) or listed by a complete pack's index."""
        from mvc.objects import pack

        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
        n = sum(1 for k in keys if k.startswith("objects/"))
        for name in pack.names_in(keys):
            data = self.s3.get_object(Bucket=BUCKET, Key=prefix + pack.index_rel(name))["Body"].read()
            n += len(pack.parse_index(data, name))
        return n

    def stop(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]  # the server stops when its stdin closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()
        self.log.close()


def run(cmd: list[str], cwd: str, env: dict[str, str], expect: str | None = None) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    dt = time.perf_counter() - t
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        fail(
            f"{' '.join(cmd)} (in {cwd}) exited {p.returncode}: "
            f"{(p.stderr.decode(errors='replace') + out).strip()[-2000:]}"
        )
    if expect is not None and expect not in out:
        fail(f"{' '.join(cmd)} printed {out.strip()!r}, expected {expect!r}")
    return dt


def warm(*paths: str) -> None:
    """Read files into the page cache (this guest pages out what was not touched for a minute)."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(8 << 20):
                pass


def cache_files(repo: str) -> list[str]:
    top = os.path.join(repo, ".mvc", "cache", "objects")
    return [os.path.join(d, f) for d, _, files in os.walk(top) for f in files]


def make_big(path: str, size: int, seed: int) -> None:
    """size bytes of random data, none repeated: a remote that stores large files as content-defined chunks (the
    default) would store one copy of a repeated block, and its push would not measure a transfer."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for off in range(0, size, 8 << 20):
            f.write(rng.randbytes(min(8 << 20, size - off)))


def make_small(directory: str, n: int, size: int, seed: int) -> None:
    os.makedirs(directory)
    rng = random.Random(seed)
    for i in range(n):
        with open(os.path.join(directory, f"f{i:05d}.bin"), "wb") as f:
            f.write(rng.randbytes(size))


def age(path: str) -> None:
    old = time.time() - OLD
    for dirpath, _, files in os.walk(path):
        for name in [*files, ""]:
            os.utime(os.path.join(dirpath, name) if name else dirpath, (old, old))


def new_repo(path: str, env: dict[str, str], mvc: list[str]) -> None:
    os.makedirs(path)
    run(["git", "init", "-q"], path, env)
    run([*mvc, "init"], path, env)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--size-mib", type=int, help="size of the big file (default 1024, quick 64)")
    ap.add_argument("--small", type=int, help="number of 4 KiB files (default 5000, quick 500)")
    ap.add_argument("--objects", type=int, help="objects for nothing-to-push (default 10000, quick 1000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each big-file case (median)")
    ap.add_argument("--small-runs", type=int, default=3, help="rounds of the small-files case (median)")
    ap.add_argument("--dvc", help="a dvc executable (with dvc-s3) to time on the same files and server")
    ap.add_argument(
        "--cases",
        default="big,small,noop",
        help="which cases to run, comma-separated: big, small, noop (needs small), jobs",
    )
    ap.add_argument("--stock-moto", action="store_true", help="do not patch moto's ranged GETs (see Server)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--workdir", help="where to put the data (default: a temp dir next to /work)")
    args = ap.parse_args()
    size = (args.size_mib or (64 if args.quick else 1024)) << 20
    nsmall = args.small or (500 if args.quick else 5000)
    nobjects = args.objects or (1000 if args.quick else 10000)

    base = tempfile.mkdtemp(prefix="mvc-bench-remote-", dir=args.workdir)
    mvc = [sys.executable, "-m", "mvc"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # users have .pyc files
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        NO_PROXY="127.0.0.1,localhost",
        GIT_CONFIG_NOSYSTEM="1",
    )
    env.setdefault("GIT_AUTHOR_NAME", "bench")
    env.setdefault("GIT_AUTHOR_EMAIL", "bench@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "bench")
    env.setdefault("GIT_COMMITTER_EMAIL", "bench@example.com")
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    server = Server(base, ranged=not args.stock_moto)
    results: dict[str, object] = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "size_bytes": size,
        "small_files": nsmall,
        "objects": nobjects,
    }
    raw = [sys.executable, "-c", RAW]
    try:
        cases = set(args.cases.split(","))
        if "big" in cases:
            big_case(args, base, env, mvc, raw, server, size, results)
        if "jobs" in cases:
            jobs_case(base, env, mvc, server, results)
        if "small" in cases:
            small_case(args, base, env, mvc, raw, server, nsmall, nobjects, "noop" in cases, results)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def big_case(args, base, env, mvc, raw, server, size, results) -> None:
    # -- 1. one big file ------------------------------------------------------------------------
    big_repo = os.path.join(base, "big")
    new_repo(big_repo, env, mvc)
    big = os.path.join(big_repo, "model.bin")
    make_big(big, size, seed=1)
    age(big)
    run([*mvc, "add", "model.bin"], big_repo, env)
    run([*mvc, "remote", "add", "s3", f"s3://{BUCKET}/mvc-0", "--default"], big_repo, env)
    run([*mvc, "remote", "modify", "s3", "endpoint_url", server.endpoint], big_repo, env)
    got = os.path.join(base, "raw-get.bin")
    # the first large upload a fresh moto server takes is slower (its memory grows): not timed
    run([*raw, "put", server.endpoint, big, f"{BUCKET}/warm-up/model.bin"], base, env)
    server.drop("warm-up/")
    times: dict[str, list[float]] = {"raw_put": [], "mvc_push": [], "raw_get": [], "mvc_fetch": [], "mvc_pull": []}
    for i in range(args.runs):
        key = f"{BUCKET}/raw-{i}/model.bin"
        run([*mvc, "remote", "modify", "s3", "url", f"s3://{BUCKET}/mvc-{i}"], big_repo, env)

        def raw_put() -> None:
            warm(big)
            times["raw_put"].append(run([*raw, "put", server.endpoint, big, key], base, env))

        def mvc_push() -> None:
            warm(*cache_files(big_repo))
            times["mvc_push"].append(run([*mvc, "push", "-q"], big_repo, env, expect="pushed 1 object"))

        def raw_get() -> None:
            times["raw_get"].append(run([*raw, "get", server.endpoint, key, got], base, env))
            os.unlink(got)

        def mvc_fetch() -> None:  # the same work as a raw get: download, verify, into the cache
            shutil.rmtree(os.path.join(big_repo, ".mvc", "cache"))
            times["mvc_fetch"].append(run([*mvc, "fetch", "-q"], big_repo, env, expect="fetched 1 object"))

        def mvc_pull() -> None:  # fetch, then check out: also writes the workspace copy
            shutil.rmtree(os.path.join(big_repo, ".mvc", "cache"))
            os.unlink(big)
            times["mvc_pull"].append(run([*mvc, "pull", "-q"], big_repo, env, expect="fetched 1 object"))

        # alternate who goes first: the server's state and the machine's load drift within a run
        order = (
            (raw_put, mvc_push, raw_get, mvc_fetch, mvc_pull)
            if i % 2 == 0
            else (mvc_push, raw_put, mvc_fetch, mvc_pull, raw_get)
        )
        for step in order:
            step()
        server.drop(f"raw-{i}/")
        server.drop(f"mvc-{i}/")
        print(
            f"big file run {i + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            + f" (load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    big_fig = {k: median(v) for k, v in times.items()}
    # ratios of the medians, and the medians of each run's ratio (the two were timed side by side)
    big_fig["push_ratio"] = big_fig["mvc_push"] / big_fig["raw_put"]
    big_fig["fetch_ratio"] = big_fig["mvc_fetch"] / big_fig["raw_get"]
    big_fig["pull_ratio"] = big_fig["mvc_pull"] / big_fig["raw_get"]
    for name, a, b in (
        ("push", "mvc_push", "raw_put"),
        ("fetch", "mvc_fetch", "raw_get"),
        ("pull", "mvc_pull", "raw_get"),
    ):
        big_fig[f"{name}_ratio_paired"] = median([x / y for x, y in zip(times[a], times[b], strict=True)])
    results["big"] = {"median": big_fig, "runs": times}
    print(
        f"1 GiB-class file ({size >> 20} MiB): push {big_fig['mvc_push']:.2f} s vs raw put "
        f"{big_fig['raw_put']:.2f} s = {big_fig['push_ratio']:.2f} x; fetch {big_fig['mvc_fetch']:.2f} s / pull "
        f"{big_fig['mvc_pull']:.2f} s vs raw get {big_fig['raw_get']:.2f} s = {big_fig['fetch_ratio']:.2f} x / "
        f"{big_fig['pull_ratio']:.2f} x",
        flush=True,
    )
    shutil.rmtree(big_repo)


def jobs_case(base, env, mvc, server, results) -> None:
    """mvc push of the same 500 x 4 KiB files with 1 to 32 jobs: where does the store saturate?"""
    repo = os.path.join(base, "jobs")
    new_repo(repo, env, mvc)
    make_small(os.path.join(repo, "data"), 500, 4096, seed=4)
    age(os.path.join(repo, "data"))
    run([*mvc, "add", "data"], repo, env)
    run([*mvc, "remote", "add", "s3", f"s3://{BUCKET}/jobs-0", "--default"], repo, env)
    run([*mvc, "remote", "modify", "s3", "endpoint_url", server.endpoint], repo, env)
    rates = {}
    for jobs in (1, 4, 8, 16, 32, 64):
        run([*mvc, "remote", "modify", "s3", "url", f"s3://{BUCKET}/jobs-{jobs}"], repo, env)
        dt = run([*mvc, "push", "-q", "-j", str(jobs)], repo, env, expect="pushed 501")
        rates[jobs] = 501 / dt
        print(f"push of 501 objects with -j {jobs}: {dt:.2f} s, {rates[jobs]:.0f} objects/s", flush=True)
    results["jobs"] = rates
    shutil.rmtree(repo)


def small_case(args, base, env, mvc, raw, server, nsmall, nobjects, noop, results) -> None:
    """mvc push, DVC push and a raw s3fs batch put of the same small files, each into a fresh prefix;
    --small-runs rounds, rotating who goes first (the machine's load drifts within a round)."""
    small_repo = os.path.join(base, "small")
    new_repo(small_repo, env, mvc)
    make_small(os.path.join(small_repo, "data"), nsmall, 4096, seed=2)
    age(os.path.join(small_repo, "data"))
    run([*mvc, "add", "data"], small_repo, env)
    run([*mvc, "remote", "add", "s3", f"s3://{BUCKET}/small-0", "--default"], small_repo, env)
    run([*mvc, "remote", "modify", "s3", "endpoint_url", server.endpoint], small_repo, env)
    if args.dvc:
        dvc_repo = os.path.join(base, "dvc")
        os.makedirs(dvc_repo)
        shutil.copytree(os.path.join(small_repo, "data"), os.path.join(dvc_repo, "data"))
        run(["git", "init", "-q"], dvc_repo, env)
        run([args.dvc, "init", "-q"], dvc_repo, env)
        run([args.dvc, "config", "core.analytics", "false"], dvc_repo, env)
        run([args.dvc, "remote", "add", "-d", "s3", f"s3://{BUCKET}/dvc-0"], dvc_repo, env)
        run([args.dvc, "remote", "modify", "s3", "endpointurl", server.endpoint], dvc_repo, env)
        run([args.dvc, "add", "-q", "data"], dvc_repo, env)
    times: dict[str, list[float]] = {"raw_put": [], "mvc_push": [], "dvc_push": [], "mvc_fetch": [], "dvc_fetch": []}
    requests: dict[str, int] = {}

    for i in range(args.small_runs):

        def raw_put() -> None:
            warm(*[os.path.join(small_repo, "data", n) for n in os.listdir(os.path.join(small_repo, "data"))])
            times["raw_put"].append(
                run(
                    [
                        *raw,
                        "putmany",
                        server.endpoint,
                        os.path.join(small_repo, "data"),
                        f"{BUCKET}/raw-small-{i}",
                        "16",
                    ],
                    base,
                    env,
                )
            )

        def mvc_push() -> None:
            # a new prefix is a new store: its journal is empty, the push does the whole work
            run([*mvc, "remote", "modify", "s3", "url", f"s3://{BUCKET}/small-{i}"], small_repo, env)
            warm(*cache_files(small_repo))
            before = server.requests()
            times["mvc_push"].append(run([*mvc, "push", "-q"], small_repo, env, expect="pushed"))
            requests["mvc"] = server.requests() - before
            if server.objects(f"small-{i}/") != nsmall + 1:
                fail(f"the remote holds {server.objects(f'small-{i}/')} objects, expected {nsmall + 1}")

        def mvc_fetch() -> None:  # a clone without the cache (nor the journal) fetches them all back
            clone = os.path.join(base, f"small-clone-{i}")
            shutil.copytree(small_repo, clone, ignore=shutil.ignore_patterns("cache", "remotes.db", "data"))
            run([*mvc, "remote", "modify", "s3", "url", f"s3://{BUCKET}/small-{i}"], clone, env)
            times["mvc_fetch"].append(run([*mvc, "fetch", "-q"], clone, env))
            got = sum(len(fs) for _, _, fs in os.walk(os.path.join(clone, ".mvc", "cache", "objects")))
            if got != nsmall + 1:
                fail(f"mvc fetch brought {got} objects, expected {nsmall + 1}")
            shutil.rmtree(clone)

        def dvc_push() -> None:
            run([args.dvc, "remote", "modify", "s3", "url", f"s3://{BUCKET}/dvc-{i}"], dvc_repo, env)
            warm(*[os.path.join(d, f) for d, _, fs in os.walk(os.path.join(dvc_repo, ".dvc", "cache")) for f in fs])
            before = server.requests()
            times["dvc_push"].append(run([args.dvc, "push", "-q"], dvc_repo, env))
            requests["dvc"] = server.requests() - before

        def dvc_fetch() -> None:
            clone = os.path.join(base, f"dvc-clone-{i}")
            shutil.copytree(dvc_repo, clone, ignore=shutil.ignore_patterns("cache", "tmp", "data"))
            times["dvc_fetch"].append(run([args.dvc, "fetch", "-q"], clone, env))
            shutil.rmtree(clone)

        steps = [raw_put, mvc_push] + ([dvc_push] if args.dvc else [])
        for step in steps[i % len(steps) :] + steps[: i % len(steps)]:
            step()
        mvc_fetch()
        if args.dvc:
            dvc_fetch()
        print(
            f"small files round {i + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v)
            + f" (load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        if i > 0:
            server.drop(f"raw-small-{i}/")
            server.drop(f"dvc-{i}/")
            server.drop(f"small-{i}/")  # round 0's objects stay: the nothing-to-push case reuses them
    small: dict[str, object] = {k: median(v) for k, v in times.items() if v}
    small.update(runs=times, requests=requests)
    small["ratio_vs_raw"] = small["mvc_push"] / small["raw_put"]
    small["ratio_vs_dvc_issue"] = small["mvc_push"] / 21.2
    if args.dvc:
        small["ratio_vs_dvc"] = small["mvc_push"] / small["dvc_push"]
        small["fetch_ratio_vs_dvc"] = small["mvc_fetch"] / small["dvc_fetch"]
    results["small"] = small
    print(
        f"{nsmall} x 4 KiB (medians): mvc push {small['mvc_push']:.2f} s ({requests['mvc']} requests), raw s3fs "
        f"put {small['raw_put']:.2f} s"
        + (
            f", dvc push {small['dvc_push']:.2f} s ({requests['dvc']} requests); "
            f"mvc = {small['ratio_vs_dvc']:.2f} x DVC"
            if args.dvc
            else ""
        )
        + f"; mvc fetch {small['mvc_fetch']:.2f} s"
        + (f", dvc fetch {small['dvc_fetch']:.2f} s" if args.dvc else ""),
        flush=True,
    )
    run([*mvc, "remote", "modify", "s3", "url", f"s3://{BUCKET}/small-0"], small_repo, env)

    if not noop:
        return
    # -- 3. nothing to push -----------------------------------------------------------------------
    rest = nobjects - (nsmall + 1)
    if rest > 0:
        make_small(os.path.join(small_repo, "more"), rest - 1, 4096, seed=3)
        age(os.path.join(small_repo, "more"))
        run([*mvc, "add", "more"], small_repo, env)
        run([*mvc, "push", "-q"], small_repo, env, expect="pushed")
    on_remote = server.objects("small-0/")
    before = server.requests()
    noops = [run([*mvc, "push"], small_repo, env, expect="nothing to push") for _ in range(7)]
    asked = server.requests() - before
    p = subprocess.run(
        [*mvc[:1], "-X", "importtime", *mvc[1:], "push"], cwd=small_repo, env=env, capture_output=True, text=True
    )
    loaded = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(loaded & {"s3fs", "fsspec", "botocore", "aiobotocore", "pygit2"})
    results["nothing_to_push"] = {
        "objects_on_remote": on_remote,
        "median": median(noops),
        "runs": noops,
        "requests": asked,
        "heavy_imports": heavy,
    }
    print(
        f"nothing to push, {on_remote} objects on the remote: {median(noops):.3f} s (median of 7), "
        f"{asked} requests, heavy imports: {heavy or 'none'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
