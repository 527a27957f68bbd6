#!/usr/bin/env python3
"""Issue 13's compaction target: a cache holding 10 versions of a 1 GiB model, each a small fine-tune of the
last, takes <= 2 GiB after ``mvc gc --compact --force``.

The model is bench_chunks' synthetic bf16 safetensors file (16 layers x 8 tensors, ``--size`` bytes); each
version multiplies every value of the last by (1 + s N(0,1)), computed in float32 and rounded to bf16
(``--scale`` s, default 1e-3: about a quarter of the values move by one unit in the last place). Each version is
added with ``mvc add`` and committed; the last stays checked out. Then, whole processes as a user types them:

1. ``du`` of the cache (every version whole), then ``mvc gc --compact --force`` (timed), then ``du`` again;
2. ``mvc checkout`` of the first version (its rebuild from the compacted store, timed), paired with ``cp`` of
   the same bytes (the plain limit of writing the file), then ``mvc checkout`` back to the last version;
3. ``mvc verify`` (timed: every compacted version rebuilt and hashed).

    .venv/bin/python benchmarks/bench_compact.py --size 64M --versions 4     # smoke run, under a minute
    .venv/bin/python benchmarks/bench_compact.py --json out.json              # 10 x 1 GiB: ~11 GiB of disk
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_chunks import MIB, Synthetic, bf16, f32, snapshot  # noqa: E402
from bench_read import add_run_args, isolated_env, machine  # noqa: E402


def size_arg(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1:].upper() in units else int(text)


def du(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def run(cmd: list[str], cwd: str, env: dict[str, str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=size_arg, default=1 << 30, help="bytes of the model (default 1G)")
    ap.add_argument("--versions", type=int, default=10)
    ap.add_argument("--scale", type=float, default=1e-3, help="relative update of each fine-tune (default 1e-3)")
    add_run_args(ap, code=True)
    args = ap.parse_args()
    import numpy as np

    base = args.workdir or tempfile.mkdtemp(prefix="bench-compact-")
    code = snapshot(args.code, base)
    env = isolated_env(base, aws=False)
    env["PYTHONPATH"] = code
    mvc = [sys.executable, "-m", "mvc"]
    repo = os.path.join(base, "repo")
    os.makedirs(repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, env=env, check=True)
    run([*mvc, "init"], repo, env)
    model = Synthetic(args.size)
    path = os.path.join(repo, "model.safetensors")
    tensors = [model.values(i, model.seed) for i in range(len(model.tensors))]
    commits, whole_bytes = [], 0
    t0 = time.perf_counter()
    for v in range(args.versions):
        if v:
            rng = np.random.default_rng([v, 99])
            tensors = [
                bf16(f32(t) * (1 + np.float32(args.scale) * rng.standard_normal(t.size, dtype=np.float32)))
                for t in tensors
            ]
        if os.path.exists(path):
            os.unlink(path)
        model.write(path, lambda i: tensors[i].tobytes())
        run([*mvc, "add", "-q", "model.safetensors"], repo, env)
        subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
        subprocess.run(["git", "commit", "-q", "-m", f"v{v + 1}"], cwd=repo, env=env, check=True)
        commits.append(
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=repo, env=env, capture_output=True, text=True
            ).stdout.strip()
        )
        whole_bytes += os.path.getsize(path)
    setup = time.perf_counter() - t0
    cache = os.path.join(repo, ".mvc", "cache")
    subprocess.run(["sync"], check=True)
    before = du(cache)
    compact_s = run([*mvc, "gc", "--compact", "--force", "-q"], repo, env)
    subprocess.run(["sync"], check=True)
    after = du(cache)
    stored = du(os.path.join(cache, "compact"))
    subprocess.run(["git", "checkout", "-q", commits[0]], cwd=repo, env=env, check=True)
    rebuild_s = run([*mvc, "checkout", "-q"], repo, env)
    t = time.perf_counter()
    shutil.copyfile(path, path + ".cp")
    cp_s = time.perf_counter() - t
    os.unlink(path + ".cp")
    subprocess.run(["git", "checkout", "-q", commits[-1]], cwd=repo, env=env, check=True)
    run([*mvc, "checkout", "-q"], repo, env)
    run([*mvc, "gc", "--compact", "--force", "-q"], repo, env)  # the first version compacted again
    verify_s = run([*mvc, "verify", "-q"], repo, env)
    out = {
        "machine": machine(),
        "size": args.size,
        "versions": args.versions,
        "scale": args.scale,
        "setup_s": round(setup, 1),
        "whole_versions_bytes": whole_bytes,
        "cache_before_bytes": before,
        "compact_s": round(compact_s, 2),
        "cache_after_bytes": after,
        "compacted_store_bytes": stored,
        "cache_after_gib": round(after / (1 << 30), 3),
        "rebuild_checkout_s": round(rebuild_s, 2),
        "cp_s": round(cp_s, 2),
        "verify_s": round(verify_s, 2),
    }
    print(json.dumps(out, indent=2))
    print(
        f"cache: {before / MIB:.0f} MiB whole -> {after / MIB:.0f} MiB compacted "
        f"({after / max(1, before):.2f} x; target <= 2 GiB for 10 x 1 GiB); compaction {compact_s:.1f} s; "
        f"checkout of v1 from the compacted store {rebuild_s:.2f} s (cp of it: {cp_s:.2f} s); verify {verify_s:.1f} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    if not args.keep and not args.workdir:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
