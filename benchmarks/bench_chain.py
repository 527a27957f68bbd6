#!/usr/bin/env python3
"""A chain of fine-tunes (issue 12's "bound the chain of deltas ... and keep reads fast"): v1, bench_chunks.py's
1 GiB synthetic bf16 safetensors file, then ``--versions`` more, each a fine-tune of the one before (every bf16
value × (1 + 1e-3·N(0,1)), about 1 % of the values change), committed and pushed one at a time, as a training
run's checkpoints are, to a chunked and an unchunked directory remote.

1. ``push``: per version, the bytes each push added to the chunked remote (as a share of the file) and the depth
   of its deltas (the recipe's deepest entry: hops down to bytes stored as chunks).
2. ``get``: ``mvc get --repo BARE --rev TAG --remote R`` of each version, chunked vs unchunked, interleaved (who
   goes first alternates), each after the remote's files were read, a ``sync``, a second's pause and the last
   output deleted (as bench_chunks.py's ``get`` case); wall and CPU seconds, peak RSS, and the throughput ratio
   of the medians (bench_chunks.py's target for a delta version: ≥ 0.8 ×).

    .venv/bin/python benchmarks/bench_chain.py --size 64M --versions 6 --runs 1     # smoke run
    .venv/bin/python benchmarks/bench_chain.py --runs 3 --json out.json

The run uses a copy of this checkout's mvc/ taken when it starts (``--code DIR``: another tree). See
docs/benchmarks.md, "A chain of fine-tunes".
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_chunks import Synthetic, age, bf16, code_state, f32, med, snapshot  # noqa: E402
from bench_read import add_run_args, isolated_env, machine, parse_size, run, warm  # noqa: E402


def tune(src: str, dst: str, seed: int) -> float:
    """dst: src's bf16 tensors × (1 + 1e-3·N(0,1)), rounded to bf16; returns the share of values changed."""
    import numpy as np

    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(n)
        header = json.loads(raw)
        changed = total = 0
        with open(dst, "wb") as out:
            out.write(struct.pack("<Q", n) + raw)
            for i, (_, t) in enumerate(sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                                                 key=lambda kv: kv[1]["data_offsets"][0])):  # fmt: skip
                a, b = t["data_offsets"]
                f.seek(8 + n + a)
                data = f.read(b - a)
                if t["dtype"] != "BF16":
                    out.write(data)
                    continue
                old = np.frombuffer(data, np.uint16)
                rng = np.random.default_rng([seed, i])
                new = bf16(f32(old) * (1 + 1e-3 * rng.standard_normal(old.size, dtype=np.float32)))
                changed += int(np.count_nonzero(new != old))
                total += old.size
                out.write(new.tobytes())
    age(dst)
    return changed / max(total, 1)


def depth_of(remote: str, oid: str) -> int:
    """The deepest entry of oid's recipe on a directory remote (0: chunks only, or stored whole)."""
    from mvc.objects import recipe as rc

    path = os.path.join(remote, rc.rel(oid))
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        r = rc.parse(f.read(), path, oid)
    return max((e.depth for e in r.entries), default=0)


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="size of the synthetic safetensors file (default 1G)")
    ap.add_argument("--versions", type=int, default=8, help="fine-tunes after v1 (default 8)")
    ap.add_argument("--runs", type=int, default=3, help="interleaved gets of each version (median)")
    add_run_args(ap, code=True)
    args = ap.parse_args()
    size = parse_size(args.size)
    base = tempfile.mkdtemp(prefix="mvc-bench-chain-", dir=args.workdir)
    env = isolated_env(base, aws=False, drop=("PYTHONPATH",))
    code = snapshot(args.code, base)
    env["PYTHONPATH"] = code
    sys.path.insert(0, code)
    exe = os.path.join(os.path.dirname(sys.executable), "mvc")
    mvc = [exe] if os.path.exists(exe) else [sys.executable, "-m", "mvc"]
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join([os.path.relpath(sys.executable, ROOT), "benchmarks/bench_chain.py", *sys.argv[1:]]),
        "machine": machine(),
        "tree": f"snapshot taken at the start: {code_state(code)}" if not args.code else code_state(code, False),
        "load_before": os.getloadavg(),
    }
    print(f"bench_chain: {results['machine']}, {size >> 20} MiB, load average {os.getloadavg()[0]:.2f}", flush=True)

    def sh(cmd: list[str], cwd: str) -> str:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"bench_chain: {' '.join(cmd)} failed: {r.stderr.strip()}")
        return r.stdout

    try:
        files = os.path.join(base, "files")
        os.makedirs(files)
        syn = Synthetic(size)
        syn.write(os.path.join(files, "v1.safetensors"), lambda i: syn.values(i, syn.seed).tobytes())
        age(os.path.join(files, "v1.safetensors"))
        tags = ["v1"] + [f"c{k}" for k in range(1, args.versions + 1)]
        shares = {}
        for prev, tag in itertools.pairwise(tags):
            shares[tag] = tune(os.path.join(files, f"{prev}.safetensors"), os.path.join(files, f"{tag}.safetensors"),
                               len(shares) + 1)  # fmt: skip
        fsize = os.path.getsize(os.path.join(files, "v1.safetensors"))
        src, chc, chw = (os.path.join(base, n) for n in ("src", "remote-chc", "remote-chw"))
        os.makedirs(src)
        sh(["git", "init", "-q", "-b", "main"], src)
        sh([*mvc, "init"], src)
        sh([*mvc, "remote", "add", "chc", chc], src)
        sh([*mvc, "remote", "add", "chw", chw], src)
        sh([*mvc, "remote", "modify", "chw", "chunks", "false"], src)
        pushes: dict[str, dict] = {}
        for tag in tags:
            shutil.copyfile(os.path.join(files, f"{tag}.safetensors"), os.path.join(src, "model.safetensors"))
            sh([*mvc, "add", "-q", "model.safetensors"], src)
            sh(["git", "add", "-A"], src)
            sh(["git", "commit", "-q", "-m", tag], src)
            sh(["git", "tag", tag], src)
            oid = sh(["git", "show", "HEAD:model.safetensors.mvc"], src).split('oid = "', 1)[1].split('"', 1)[0]
            before = du(chc)
            t = time.perf_counter()
            sh([*mvc, "push", "-q", "-r", "chc"], src)
            wall = time.perf_counter() - t
            sh([*mvc, "push", "-q", "-r", "chw"], src)
            grew = du(chc) - before
            pushes[tag] = {"stored_pct": 100 * grew / fsize, "depth": depth_of(chc, oid), "push_s": wall}
            if tag != "v1":
                pushes[tag]["values_changed_pct"] = 100 * shares[tag]
            print(f"push {tag}: {pushes[tag]}", flush=True)
        results["push"] = pushes
        results["remote_bytes"] = {"chunked": du(chc), "unchunked": du(chw)}
        bare = os.path.join(base, "bare.git")
        sh(["git", "clone", "-q", "--bare", src, bare], base)
        env["MVC_CACHE_DIR"] = os.path.join(base, "get-cache")
        out = os.path.join(base, "got.bin")
        figs: dict[str, dict[str, list]] = {}
        for i in range(args.runs):
            for tag in tags:
                order = [("chunked", "chc", chc), ("unchunked", "chw", chw)]
                for mode, name, where in order if i % 2 == 0 else order[::-1]:
                    cmd = [
                        *mvc,
                        "get",
                        "-q",
                        "--repo",
                        bare,
                        "model.safetensors",
                        "--rev",
                        tag,
                        "--remote",
                        name,
                        "-o",
                        out,
                    ]
                    warm(*(os.path.join(d, f) for d, _, fs in os.walk(where) for f in fs))
                    os.sync()
                    time.sleep(1)
                    if os.path.exists(out):
                        os.unlink(out)
                    r = run(cmd, env, base)
                    if os.path.getsize(out) != fsize:
                        sys.exit(f"bench_chain: the get of {tag} ({mode}) wrote {os.path.getsize(out)} bytes")
                    if (
                        i == 0
                        and subprocess.run(["cmp", "-s", out, os.path.join(files, f"{tag}.safetensors")]).returncode
                    ):
                        sys.exit(f"bench_chain: the get of {tag} ({mode}) wrote other bytes")
                    f = figs.setdefault(tag, {}).setdefault(mode, [])
                    f.append((r.wall, r.cpu, r.rss_kib))
            print(
                f"get run {i + 1}: "
                + ", ".join(f"{t} {f['chunked'][-1][0]:.2f}/{f['unchunked'][-1][0]:.2f} s" for t, f in figs.items())
                + f" (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        if os.path.exists(out):
            os.unlink(out)
        gets = {}
        for tag, f in figs.items():
            c, w = f["chunked"], f["unchunked"]
            gets[tag] = {
                "chunked_s": med([x[0] for x in c]),
                "unchunked_s": med([x[0] for x in w]),
                "chunked_cpu_s": med([x[1] for x in c]),
                "unchunked_cpu_s": med([x[1] for x in w]),
                "chunked_rss_mib": max(x[2] for x in c) / 1024,
                "runs_chunked": [round(x[0], 3) for x in c],
                "runs_unchunked": [round(x[0], 3) for x in w],
                "ratio": med([x[0] for x in w]) / med([x[0] for x in c]),
            }
        results["get"] = gets
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    print(f"\n{'version':8} {'depth':>5} {'stored':>8} {'get chunked':>12} {'unchunked':>10} {'ratio':>6}")
    for tag, p in results["push"].items():
        g = results["get"].get(tag, {})
        print(
            f"{tag:8} {p['depth']:5d} {p['stored_pct']:7.1f}% {g.get('chunked_s', 0):11.2f}s "
            f"{g.get('unchunked_s', 0):9.2f}s {g.get('ratio', 0):5.2f}x"
        )
    rb = results["remote_bytes"]
    print(f"remote: chunked {rb['chunked'] / (1 << 20):.0f} MiB, unchunked {rb['unchunked'] / (1 << 20):.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
