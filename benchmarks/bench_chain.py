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
3. ``--s3``: the same pushes and gets with two S3 remotes (bench_chunks.py's moto server on 127.0.0.1), chunked
   and unchunked.
4. ``--flat``: every version added with ``--base v1`` (one level of deltas, each holding all the drift from v1),
   to tell what a read of a deep version costs for its depth from what it costs for the change it holds.

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

from bench_chunks import BUCKET, Server, Synthetic, age, bf16, code_state, f32, med, snapshot  # noqa: E402
from bench_read import add_run_args, isolated_env, leave, machine, parse_size, run, warm  # noqa: E402


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
    ap.add_argument("--s3", action="store_true", help="also S3 remotes (a moto server on 127.0.0.1)")
    ap.add_argument("--flat", action="store_true", help="every version based on v1 (mvc add --base v1)")
    add_run_args(ap, code=True)
    args = ap.parse_args()
    size = parse_size(args.size)
    base = tempfile.mkdtemp(prefix="mvc-bench-chain-", dir=args.workdir)
    env = isolated_env(base, drop=("PYTHONPATH",))
    code = snapshot(args.code, base)
    env["PYTHONPATH"] = code
    sys.path.insert(0, code)
    from mvc.format import pointer

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

    server = None
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
        src = os.path.join(base, "src")
        os.makedirs(src)
        sh(["git", "init", "-q", "-b", "main"], src)
        sh([*mvc, "init"], src)
        # kind -> (chunked remote, unchunked remote); a directory remote's place, or an S3 prefix
        kinds = {"dir": ("chc", "chw")}
        where = {"chc": os.path.join(base, "remote-chc"), "chw": os.path.join(base, "remote-chw")}
        for name in ("chc", "chw"):
            sh([*mvc, "remote", "add", name, where[name]], src)
        if args.s3:
            server = Server(base, env)
            kinds["s3"] = ("s3c", "s3w")
            for name in ("s3c", "s3w"):
                where[name] = f"{name}/"
                sh([*mvc, "remote", "add", name, f"s3://{BUCKET}/{name}"], src)
                sh([*mvc, "remote", "modify", name, "endpoint_url", server.endpoint], src)
        for _, unchunked in kinds.values():
            sh([*mvc, "remote", "modify", unchunked, "chunks", "false"], src)

        def stored(name: str) -> int:
            return sum(server.keys(where[name]).values()) if name.startswith("s3") else du(where[name])

        pushes: dict[str, dict] = {}
        for tag in tags:
            shutil.copyfile(os.path.join(files, f"{tag}.safetensors"), os.path.join(src, "model.safetensors"))
            sh([*mvc, "add", "-q", *(["--base", "v1"] if args.flat and tag != "v1" else []), "model.safetensors"], src)
            sh(["git", "add", "-A"], src)
            sh(["git", "commit", "-q", "-m", tag], src)
            sh(["git", "tag", tag], src)
            oid = pointer.loads(sh(["git", "show", "HEAD:model.safetensors.mvc"], src)).oid
            pushes[tag] = {}
            for kind, (chunked, unchunked) in kinds.items():
                before = stored(chunked)
                t = time.perf_counter()
                sh([*mvc, "push", "-q", "-r", chunked], src)
                pushes[tag][f"push_s_{kind}"] = time.perf_counter() - t
                sh([*mvc, "push", "-q", "-r", unchunked], src)
                pushes[tag][f"stored_pct_{kind}"] = 100 * (stored(chunked) - before) / fsize
            pushes[tag]["depth"] = depth_of(where["chc"], oid)
            if tag != "v1":
                pushes[tag]["values_changed_pct"] = 100 * shares[tag]
            print(f"push {tag}: {pushes[tag]}", flush=True)
        results["push"] = pushes
        results["remote_bytes"] = {name: stored(name) for pair in kinds.values() for name in pair}
        bare = os.path.join(base, "bare.git")
        sh(["git", "clone", "-q", "--bare", src, bare], base)
        env["MVC_CACHE_DIR"] = os.path.join(base, "get-cache")
        out = os.path.join(base, "got.bin")
        figs: dict[str, dict[str, dict[str, list]]] = {}
        for i in range(args.runs):
            for kind, (chunked, unchunked) in kinds.items():
                for tag in tags:
                    order = [("chunked", chunked), ("unchunked", unchunked)]
                    for mode, name in order if i % 2 == 0 else order[::-1]:
                        cmd = [*mvc, "get", "-q", "--repo", bare, "model.safetensors", "--rev", tag]
                        cmd += ["--remote", name, "-o", out]
                        if kind == "dir":
                            warm(*(os.path.join(d, f) for d, _, fs in os.walk(where[name]) for f in fs))
                        os.sync()
                        time.sleep(1)
                        if os.path.exists(out):
                            os.unlink(out)
                        r = run(cmd, env, base)
                        if os.path.getsize(out) != fsize:
                            sys.exit(
                                f"bench_chain: the get of {tag} ({mode}, {kind}) wrote {os.path.getsize(out)} bytes"
                            )
                        same = subprocess.run(["cmp", "-s", out, os.path.join(files, f"{tag}.safetensors")])
                        if i == 0 and same.returncode:
                            sys.exit(f"bench_chain: the get of {tag} ({mode}, {kind}) wrote other bytes")
                        figs.setdefault(kind, {}).setdefault(tag, {}).setdefault(mode, []).append(
                            (r.wall, r.cpu, r.rss_kib)
                        )
                print(
                    f"get ({kind}) run {i + 1}: "
                    + ", ".join(
                        f"{t} {f['chunked'][-1][0]:.2f}/{f['unchunked'][-1][0]:.2f} s" for t, f in figs[kind].items()
                    )
                    + f" (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        if os.path.exists(out):
            os.unlink(out)
        results["get"] = {}
        for kind, by_tag in figs.items():
            for tag, f in by_tag.items():
                c, w = f["chunked"], f["unchunked"]
                results["get"].setdefault(kind, {})[tag] = {
                    "chunked_s": med([x[0] for x in c]),
                    "unchunked_s": med([x[0] for x in w]),
                    "chunked_cpu_s": med([x[1] for x in c]),
                    "unchunked_cpu_s": med([x[1] for x in w]),
                    "chunked_rss_mib": max(x[2] for x in c) / 1024,
                    "runs_chunked": [round(x[0], 3) for x in c],
                    "runs_unchunked": [round(x[0], 3) for x in w],
                    "ratio": med([x[0] for x in w]) / med([x[0] for x in c]),
                }
    finally:
        leave(base, args.keep, server)
    results["load_after"] = os.getloadavg()
    for kind, by_tag in results.get("get", {}).items():
        print(f"\n{kind}: {'version':8} {'depth':>5} {'stored':>8} {'get chunked':>12} {'unchunked':>10} {'ratio':>6}")
        for tag, g in by_tag.items():
            p = results["push"][tag]
            print(
                f"{kind}: {tag:8} {p['depth']:5d} {p[f'stored_pct_{kind}']:7.1f}% {g['chunked_s']:11.2f}s "
                f"{g['unchunked_s']:9.2f}s {g['ratio']:5.2f}x"
            )
    rb = results.get("remote_bytes", {})
    print("remote bytes: " + ", ".join(f"{k} {v / (1 << 20):.0f} MiB" for k, v in rb.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
