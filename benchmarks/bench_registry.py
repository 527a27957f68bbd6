#!/usr/bin/env python3
"""Issue 4 speed target: the whole ``mvc registry`` process with 1,500 registry tags, <= 0.3 s.

    .venv/bin/python benchmarks/bench_registry.py                   # 1,500 tags, 11 runs per case
    .venv/bin/python benchmarks/bench_registry.py --tags 5000 --runs 7 --json out.json
    .venv/bin/python benchmarks/bench_registry.py --gto /tmp/gtovenv/bin/gto   # GTO on the same repo

The repository is generated in one ``git fast-import`` (commits whose pointers change, and annotated
tags in GTO's grammar with mvc's annotation, spread over 10 models), then timed with its tags loose
and, in a copy, after ``git pack-refs --all`` (what a clone has). Each case is a whole process, as a
user types it; the cases are interleaved round by round and the figure is the median. Also timed, as whole processes, the two ways of reading tags that were
considered: one ``git for-each-ref`` (what mvc does) and pygit2 (import, list refs, read tag objects).
Stdlib only. See docs/benchmarks.md for the recorded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
T0 = 1_700_000_000
STAGES = ("dev", "staging", "prod")


def fail(msg: str) -> None:
    raise SystemExit(f"bench_registry: {msg}")


ENV = dict(os.environ)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], cwd: str, runs: int, expect: str | None = None) -> list[tuple[float, float]]:
    """(wall, cpu) seconds of each run; cpu (user + sys) moves less than wall on a busy machine."""
    out = []
    for _ in range(runs):
        c, t = cpu(), time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, env=ENV)
        out.append((time.perf_counter() - t, cpu() - c))
        if p.returncode != 0:
            fail(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode(errors='replace').strip()}")
        if expect is not None and expect not in p.stdout.decode(errors="replace"):
            fail(f"{' '.join(cmd)} printed {p.stdout[:200]!r}, expected {expect!r}")
    return out


def data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n" % len(raw) + raw + b"\n"


def pointer(rnd: random.Random) -> str:
    return (
        f'format = 1\nkind = "file"\noid = "xxh128:{rnd.getrandbits(128):032x}"\n'
        f"size = {rnd.randint(1 << 20, 1 << 30)}\n\n[meta]\naccuracy = {rnd.random():.4f}\n"
    )


def generate(root: str, ntags: int, nmodels: int, seed: int) -> dict[str, int]:
    """A repo with nmodels named models and ntags registry tags; returns counts by kind."""
    rnd = random.Random(seed)
    subprocess.run(["git", "init", "-q", "-b", "main", root], check=True)
    names = [f"model-{i:02d}" for i in range(nmodels)]
    config = '[cache]\ntype = ["reflink", "copy"]\n\n' + "".join(
        f'[models.{n}]\npath = "models/{n}.pt"\n\n' for n in names
    )
    stream = bytearray()
    when = T0
    ncommits = max(ntags // 6, nmodels)
    for c in range(1, ncommits + 1):
        n = names[c % nmodels]
        stream += f"commit refs/heads/main\nmark :{c}\ncommitter Bench <bench@example.com> {when} +0000\n".encode()
        stream += data(f"train {n} #{c}")
        if c > 1:
            stream += f"from :{c - 1}\n".encode()
        else:
            stream += b"M 100644 inline .mvc/config.toml\n" + data(config)
            for other in names:
                stream += f"M 100644 inline models/{other}.pt.mvc\n".encode() + data(pointer(rnd))
        stream += f"M 100644 inline models/{n}.pt.mvc\n".encode() + data(pointer(rnd))
        when += 60
    counts = {"register": 0, "assign": 0, "unassign": 0, "deregister": 0}
    versions: dict[str, list[tuple[str, int]]] = {n: [] for n in names}
    counters = dict.fromkeys(names, 0)
    commits_of = {n: [c for c in range(1, ncommits + 1) if c % nmodels == names.index(n) or c == 1] for n in names}
    made = 0
    while made < ntags:
        n = rnd.choice(names)
        vs = versions[n]
        free = [c for c in commits_of[n] if c not in {cc for _, cc in vs}]
        roll = rnd.random()
        if not vs or (roll < 0.35 and free):
            if not free:
                continue
            c = free[0]
            v = f"v{len(vs) // 20}.{(len(vs) // 5) % 4}.{len(vs) % 5}"
            vs.append((v, c))
            name, kind, msg = f"{n}@{v}", "register", f"Registering artifact {n} version {v}"
        elif roll < 0.9:
            v, c = rnd.choice(vs[-5:])
            counters[n] += 1
            s = rnd.choice(STAGES)
            name, kind, msg = f"{n}#{s}#{counters[n]}", "assign", f"Assigning stage {s} to artifact {n} version {v}"
        elif roll < 0.97:
            v, c = rnd.choice(vs)
            counters[n] += 1
            s = rnd.choice(STAGES)
            name, kind, msg = f"{n}#{s}!#{counters[n]}", "unassign", f"Unassigning stage '{s}' to artifact '{n}'"
        else:
            v, c = vs[0]
            if f"{n}@{v}!" in stream.decode(errors="replace"):
                continue
            name, kind, msg = f"{n}@{v}!", "deregister", f"Deregistering artifact {n} version {v}"
        body = f"{msg}\n\nmvc-path: models/{n}.pt\nmvc-oid: xxh128:{rnd.getrandbits(128):032x}\nmvc-size: 1234\n"
        stream += f"tag {name}\nfrom :{c}\ntagger Bench <bench@example.com> {when} +0000\n".encode() + data(body)
        when += rnd.randint(1, 30)
        counts[kind] += 1
        made += 1
    p = subprocess.run(["git", "fast-import", "--quiet"], cwd=root, input=bytes(stream), capture_output=True)
    if p.returncode != 0:
        fail(f"git fast-import failed: {p.stderr.decode(errors='replace')}")
    subprocess.run(["git", "checkout", "-q", "main"], cwd=root, check=True)
    os.makedirs(os.path.join(root, ".mvc"), exist_ok=True)
    return counts


READ_FOR_EACH_REF = "from mvc.git import Git; import sys; print(len(Git(sys.argv[1]).tags()))"
READ_PYGIT2 = """
import sys, pygit2
repo = pygit2.Repository(sys.argv[1])
n = 0
for ref in repo.references.iterator(pygit2.enums.ReferenceFilter.TAGS):
    obj = repo[ref.target]
    if isinstance(obj, pygit2.Tag):
        obj.name, obj.target, obj.tagger.time, obj.message
    n += 1
print(n)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tags", type=int, default=1500)
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--json", metavar="FILE", help="Also write the figures as JSON.")
    ap.add_argument("--gto", metavar="PATH", help="A gto executable to time on the same repo (3 runs).")
    ap.add_argument("--keep", action="store_true", help="Keep the generated repository.")
    args = ap.parse_args()
    mvc_cmd = shutil.which("mvc", path=os.path.dirname(sys.executable)) or fail("no mvc next to this python")
    tmp = tempfile.mkdtemp(prefix="bench-registry-")
    root = os.path.join(tmp, "repo")
    # A user's install runs from .pyc files; without them every start compiles mvc. The cache goes
    # under the temp dir, not into the source tree; the first (untimed) run below fills it.
    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    try:
        t = time.perf_counter()
        counts = generate(root, args.tags, args.models, seed=4)
        gen = time.perf_counter() - t
        for code in (READ_FOR_EACH_REF, READ_PYGIT2):
            subprocess.run([sys.executable, "-c", code, root], cwd=root, env=ENV, check=True, capture_output=True)
        rows = json.loads(
            subprocess.run([mvc_cmd, "registry", "--json"], cwd=root, capture_output=True, check=True, env=ENV).stdout
        )
        if len(rows) != args.models:
            fail(f"mvc registry shows {len(rows)} models, expected {args.models}")
        packed = os.path.join(tmp, "packed")
        shutil.copytree(root, packed, symlinks=True)
        subprocess.run(["git", "pack-refs", "--all"], cwd=packed, check=True)
        plan: dict[str, tuple[list[str], str, str | None]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], root, None)
        }
        for layout, where in (("loose", root), ("packed", packed)):
            plan[f"mvc registry ({layout} tags)"] = ([mvc_cmd, "registry"], where, "model-00")
            plan[f"mvc registry --json ({layout} tags)"] = ([mvc_cmd, "registry", "--json"], where, None)
            plan[f"read tags: git for-each-ref, parsed ({layout})"] = (
                [sys.executable, "-c", READ_FOR_EACH_REF, where],
                where,
                str(args.tags),
            )
            plan[f"read tags: pygit2 ({layout})"] = ([sys.executable, "-c", READ_PYGIT2, where], where, str(args.tags))
        # interleaved, one run of each case per round, so that other people's load hits all cases alike
        cases: dict[str, list[tuple[float, float]]] = {name: [] for name in plan}
        for _ in range(args.runs):
            for name, (cmd, where, expect) in plan.items():
                cases[name] += timed(cmd, where, 1, expect)
        if args.gto:
            cases["gto show (packed tags)"] = timed([args.gto, "show"], packed, 3)
        nrefs = int(
            subprocess.run(["git", "tag", "-l"], cwd=packed, capture_output=True, check=True, text=True).stdout.count(
                "\n"
            )
        )
        print(f"# mvc registry benchmark: {nrefs} tags ({counts}), {args.models} models, generated in {gen:.2f} s")
        print(
            f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, "
            f"{subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.strip()}"
        )
        print(f"# load average before: {os.getloadavg()[0]:.2f}")
        print(f"{'case':48} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8}  (s; cpu = median user+sys)")
        figures = {}
        for name, runs in cases.items():
            ts, cs = [w for w, _ in runs], [c for _, c in runs]
            figures[name] = {
                "median": statistics.median(ts),
                "min": min(ts),
                "max": max(ts),
                "cpu_median": statistics.median(cs),
                "runs": len(ts),
            }
            print(f"{name:48} {statistics.median(ts):8.3f} {min(ts):8.3f} {max(ts):8.3f} {statistics.median(cs):8.3f}")
        target = figures["mvc registry (packed tags)"]["median"]
        verdict = "meets" if target <= 0.3 else "MISSES"
        print(f"target: mvc registry with {nrefs} tags <= 0.300 s: {target:.3f} s, {verdict} it")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"tags": nrefs, "counts": counts, "models": args.models, "cases": figures}, f, indent=2)
        if args.keep:
            print(f"repository kept in {root}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
