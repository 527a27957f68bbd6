#!/usr/bin/env python3
"""Issue 15's import target: ``mvc import-dvc`` of a DVC repository holding one 1 GiB file and 5,000 small files,
DVC's cache present, takes <= 1.5 x ``mvc add`` of the same data from scratch, and downloads nothing.

Setup (untimed), in a temp dir with its own HOME and git config: a git repository with DVC (``dvc init``, a DVC
directory remote, ``dvc add model.bin data``, a commit, ``dvc push``), ``model.bin`` being ``--size`` bytes
(bench_core's distinct random blocks) and ``data/`` ``--files`` files of 256-4,096 random bytes (bench_core's
layout: 100 a directory). Then the DVC remote is moved away: a fetch from it would fail the import, so a passing
import read nothing from it (its ``fetched`` must be 0 too). A second git repository (one commit, no DVC) holds a
copy of the same files: the repository a user who never used DVC would ``mvc add`` them in.

Timed, whole processes as a user types them, the two cases interleaved run by run (who goes first alternates):

* import: ``mvc init`` then ``mvc import-dvc --json`` in the DVC repository (the history walk included);
* add: ``mvc init`` then ``mvc add model.bin data`` in the plain repository.

Before each case the previous run's state is undone (``.mvc/`` deleted; ``git reset --hard``, which brings back
the .dvc files, or the pointers and ``.gitignore`` removed and the index reset), then ``sync``, then what the
command reads is read into the page cache (DVC's cache for the import, the work tree for add; this guest pages
out memory untouched for a minute). The import links mvc's objects to DVC's cache files (reflink, else a hard
link: ext4 has no reflink) after checking their md5; add copies (``cache.type`` reflink,copy). Both pointers must
name the same oids (checked). The load average is printed with each run.

    .venv/bin/python benchmarks/bench_import.py --small                    # smoke run: 32 MiB, 500 files
    .venv/bin/python benchmarks/bench_import.py --json out.json            # 1 GiB, 5,000 files, 3 runs

Needs DVC (the ``dvc-test`` extra: ``pip install -e '.[dvc-test]'``, or ``--dvc PATH``) and about 5 x --size of
disk. The run uses a copy of this checkout's mvc/ taken when it starts (``--code DIR``: another tree).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_chunks import code_state, snapshot  # noqa: E402
from bench_compact import size_arg  # noqa: E402
from bench_core import busy_since, cpu_ticks, make_big, make_many, read_all  # noqa: E402
from bench_read import add_run_args, isolated_env, machine  # noqa: E402

TARGET = 1.5


def fail(msg: str) -> None:
    raise SystemExit(f"bench_import: {msg}")


def sh(cmd: list[str], cwd: str, env: dict[str, str]) -> str:
    """An untimed setup command; stops the run when it fails."""
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"{' '.join(cmd)} (in {cwd}) exited {p.returncode}: {(p.stderr or p.stdout).strip()[-400:]}")
    return p.stdout


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def warm(root: str) -> None:
    """Every file below root read into the page cache."""
    for d, _, files in os.walk(root):
        for name in files:
            read_all(os.path.join(d, name))


def build(base: str, env: dict[str, str], dvc: str, size: int, nfiles: int) -> tuple[str, str, dict[str, float]]:
    """(the DVC repository, the plain one, seconds of each setup step)."""
    steps: dict[str, float] = {}
    repo, plain, remote = (os.path.join(base, n) for n in ("dvc-repo", "plain", "dvc-remote"))
    t = time.perf_counter()
    os.makedirs(repo)
    make_big(os.path.join(repo, "model.bin"), size, seed=1)
    make_many(os.path.join(repo, "data"), nfiles, seed=2)
    steps["generate"] = time.perf_counter() - t
    sh(["git", "init", "-q"], repo, env)
    for cmd in (["init", "-q"], ["remote", "add", "-d", "store", remote]):
        sh([dvc, *cmd], repo, env)
    t = time.perf_counter()
    sh([dvc, "add", "-q", "model.bin", "data"], repo, env)
    steps["dvc_add"] = time.perf_counter() - t
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "data under DVC"], repo, env)
    t = time.perf_counter()
    sh([dvc, "push", "-q"], repo, env)
    steps["dvc_push"] = time.perf_counter() - t
    os.rename(remote, remote + ".away")  # unreachable: the import must take everything from DVC's cache
    os.makedirs(plain)
    sh(["git", "init", "-q"], plain, env)
    with open(os.path.join(plain, "README"), "w") as f:
        f.write("the same files, never under DVC\n")
    sh(["git", "add", "README"], plain, env)
    sh(["git", "commit", "-q", "-m", "start"], plain, env)
    sh(["cp", "-a", "model.bin", "data", plain], repo, env)
    return repo, plain, steps


def reset_import(repo: str, env: dict[str, str]) -> None:
    shutil.rmtree(os.path.join(repo, ".mvc"), ignore_errors=True)
    sh(["git", "reset", "-q", "--hard", "HEAD"], repo, env)  # the .dvc files back, the staged pointers gone
    if not os.path.exists(os.path.join(repo, "model.bin.dvc")):
        fail("git reset did not bring back model.bin.dvc")


def reset_add(plain: str, env: dict[str, str]) -> None:
    shutil.rmtree(os.path.join(plain, ".mvc"), ignore_errors=True)
    for name in ("model.bin.mvc", "data.mvc", ".gitignore"):
        if os.path.lexists(os.path.join(plain, name)):
            os.unlink(os.path.join(plain, name))
    sh(["git", "reset", "-q"], plain, env)


def oids(root: str) -> dict[str, str]:
    found = {}
    for name in ("model.bin", "data"):
        with open(os.path.join(root, name + ".mvc")) as f:
            found[name] = next(line.split('"')[1] for line in f if line.startswith("oid = "))
    return found


def timed(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float, str]:
    """One process: (wall s, CPU s of it and its children, threads included, stdout); stops the run when it fails.
    (bench_core.run without its output check: the import's --json is read here.)"""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            fail(f"{' '.join(cmd[-3:])} (in {cwd}) failed: {err.read().decode(errors='replace').strip()[-400:]}")
        return wall, ru.ru_utime + ru.ru_stime, out.read().decode(errors="replace")


def one_import(repo: str, env: dict[str, str], mvc: list[str], dvc_cache: str) -> dict[str, Any]:
    reset_import(repo, env)
    subprocess.run(["sync"], check=True)
    warm(dvc_cache)
    init = timed([*mvc, "init"], repo, env)
    wall, cpu, text = timed([*mvc, "import-dvc", "--json", "-q"], repo, env)
    result = json.loads(text)
    if result["fetched"] != 0 or result["paths"] != ["data", "model.bin"]:
        fail(f"mvc import-dvc: {result}")
    row = {"init": init[0], "main": wall, "cpu": init[1] + cpu, "objects": result["objects"], "oids": oids(repo)}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def one_add(plain: str, env: dict[str, str], mvc: list[str]) -> dict[str, Any]:
    reset_add(plain, env)
    subprocess.run(["sync"], check=True)
    warm(os.path.join(plain, "model.bin"))
    warm(os.path.join(plain, "data"))
    init = timed([*mvc, "init"], plain, env)
    wall, cpu, _ = timed([*mvc, "add", "-q", "model.bin", "data"], plain, env)
    return {"init": round(init[0], 3), "main": round(wall, 3), "cpu": round(init[1] + cpu, 3), "oids": oids(plain)}


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=size_arg, help="bytes of model.bin (default 1G; --small: 32M)")
    ap.add_argument("--files", type=int, help="small files in data/ (default 5000; --small: 500)")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each case (medians; default 3)")
    ap.add_argument("--small", action="store_true", help="a smoke run: 32 MiB and 500 files unless given")
    ap.add_argument("--dvc", help="the dvc command (default: the one beside this Python, else on PATH)")
    add_run_args(ap, code=True)
    args = ap.parse_args()
    size = args.size or (32 << 20 if args.small else 1 << 30)
    nfiles = args.files or (500 if args.small else 5000)
    dvc = args.dvc or shutil.which("dvc", path=os.path.dirname(sys.executable)) or shutil.which("dvc")
    if dvc is None:
        fail("no dvc command: pip install -e '.[dvc-test]' or pass --dvc PATH")

    base = tempfile.mkdtemp(prefix="mvc-bench-import-", dir=args.workdir)
    code = snapshot(args.code, base)
    env = isolated_env(base, aws=False)
    env.update(PYTHONPATH=code, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=os.path.join(base, "dvc-site"))
    mvc = [sys.executable, "-m", "mvc"]
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([os.path.relpath(sys.executable, ROOT), "benchmarks/bench_import.py", *sys.argv[1:]]),
        "machine": machine(),
        "code": code_state(code, head=not args.code),
        "dvc": sh([dvc, "--version"], base, env).strip(),
        "size_bytes": size,
        "files": nfiles,
        "runs": args.runs,
        "uptime_before": uptime(),
    }
    print(f"bench_import: {size / (1 << 20):.0f} MiB + {nfiles} files, {args.runs} runs; {uptime()}", flush=True)
    try:
        repo, plain, steps = build(base, env, dvc, size, nfiles)
        results["setup_s"] = {k: round(v, 1) for k, v in steps.items()}
        dvc_cache = os.path.join(repo, ".dvc", "cache")
        rows: dict[str, list[dict[str, Any]]] = {"import": [], "add": []}
        start = cpu_ticks()
        for i in range(args.runs):
            order = ["import", "add"] if i % 2 == 0 else ["add", "import"]
            for case in order:
                load = os.getloadavg()[0]
                row = one_import(repo, env, mvc, dvc_cache) if case == "import" else one_add(plain, env, mvc)
                row["total"] = round(row["init"] + row["main"], 3)
                row["load"] = round(load, 2)
                rows[case].append(row)
                print(
                    f"run {i + 1} {case:6}: init {row['init']:.2f} s + {case} {row['main']:.2f} s "
                    f"(CPU {row['cpu']:.2f} s), load average {load:.2f}",
                    flush=True,
                )
            if rows["import"][-1]["oids"] != rows["add"][-1]["oids"]:
                fail(
                    f"the import and add name different objects: {rows['import'][-1]['oids']} {rows['add'][-1]['oids']}"
                )
        results["busy"] = busy_since(start)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    results["uptime_after"] = uptime()
    medians = {case: {k: round(median(r, k), 3) for k in ("init", "main", "cpu", "total")} for case, r in rows.items()}
    ratio = medians["import"]["total"] / medians["add"]["total"]
    per_run = [round(a["total"] / b["total"], 3) for a, b in zip(rows["import"], rows["add"], strict=True)]
    results.update(
        cases={case: [{k: v for k, v in r.items() if k != "oids"} for r in r_] for case, r_ in rows.items()},
        medians=medians,
        ratio=round(ratio, 3),
        ratio_per_run=per_run,
        target=TARGET,
        passed=ratio <= TARGET,
    )
    print(
        f"\nmedians of {args.runs}: import (init + import-dvc) {medians['import']['total']:.2f} s, "
        f"CPU {medians['import']['cpu']:.2f} s; add (init + add) {medians['add']['total']:.2f} s, CPU "
        f"{medians['add']['cpu']:.2f} s\nimport / add = {ratio:.2f} (runs: {per_run}); target <= {TARGET}: "
        f"{'pass' if ratio <= TARGET else 'FAIL'}; nothing fetched from DVC's remote\n{results['busy']}\n"
        f"{results['uptime_after']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
