#!/usr/bin/env python3
"""Issue 11: switching a 1 GiB workspace file between two versions, ``mvc checkout`` against ``dvc checkout``.

    .venv/bin/python benchmarks/bench_switch.py --quick --regular-install         # smoke run: 64 MiB, 2 runs
    .venv/bin/python benchmarks/bench_switch.py --regular-install --json out.json # 1 GiB, 5 runs
    git archive HEAD | tar -x -C /tmp/head && .venv/bin/python benchmarks/bench_switch.py --regular-install \
        --before /tmp/head                                # the committed tree too, in the same runs

Two repositories are built the same way, one tracked by mvc and one by DVC: git, a 1 GiB file committed
in two versions (tags v1 and v2), each tool's cache holding both, the default ``cache.type`` of both
tools (``reflink,copy``: a copy on a filesystem without reflinks). A run switches each repository
v2 -> v1 -> v2: ``git checkout -q vN`` (not timed) and then the tool's ``checkout`` (timed), the tools
taking turns to go first; ``rm`` of a file holding the other version and ``cp`` of the same cache object
in its place (one ``sh -c``) is timed beside them as the floor. Before each timed command every file it may read (both cache objects, the workspace file) is read
into the page cache (``--warm evict``: dropped from it first, ``posix_fadvise``, so that every file is
cached alike whoever wrote it), and ``sync`` leaves no writeback pending (unless ``--no-sync``).
With ``--before TREE`` a third repository, built the same way, is switched by the mvc of another source
tree in the same runs. Stdlib only; DVC is found with ``--dvc``.
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

from bench_core import (
    BLOCK,
    busy_since,
    cpu_ticks,
    default_workdir,
    interpreter,
    machine,
    make_big,
    regular_install,
    remove,
    run,
    say,
)

READ = 8 << 20


def fail(msg: str) -> None:
    raise SystemExit(f"bench_switch: {msg}")


def warm(path: str, evict: bool) -> None:
    """Read a file into the page cache. With evict, drop its clean pages first: then every file is cached
    the same way whoever wrote it (one written by copy_file_range sits in 4 KiB pages, one written by
    large write()s in large folios, which are cheaper to read, hash and copy)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if evict:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        buf = bytearray(READ)
        with open(fd, "rb", closefd=False) as f:
            while f.readinto(buf):
                pass
    finally:
        os.close(fd)


def stamp(path: str, size: int) -> bytes:
    """A few bytes of each of a few blocks: tells the versions apart (make_big stamps every block)."""
    out = b""
    with open(path, "rb") as f:
        for off in sorted({0, (size // 2) // BLOCK * BLOCK, (size - 1) // BLOCK * BLOCK}):
            f.seek(off)
            out += f.read(64)
    return out


class Switch:
    def __init__(self, args: argparse.Namespace, work: str):
        self.args, self.work = args, work
        self.size = int(args.size_mib * (1 << 20))
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install runs from .pyc files
        env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
        env.update(
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="bench",
            GIT_AUTHOR_EMAIL="bench@example.invalid",
            GIT_COMMITTER_NAME="bench",
            GIT_COMMITTER_EMAIL="bench@example.invalid",
            GIT_ADVICE="0",
            DVC_NO_ANALYTICS="1",
        )
        self.env = env
        self.times: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.stamps: dict[str, bytes] = {}
        self.objects: dict[tuple[str, str], str] = {}  # (tool, version) -> cache object
        # tool -> its command; "before": another tree's mvc (--before), timed in the same runs
        self.exe = {"mvc": args.mvc, "dvc": args.dvc}
        if args.before_mvc:
            self.exe["before"] = args.before_mvc

    def sh(self, cwd: str, *cmd: str) -> None:
        run(list(cmd), cwd, self.env)

    def build(self, tool: str) -> str:
        repo = os.path.join(self.work, tool)
        os.makedirs(repo)
        exe = self.exe[tool]
        self.sh(repo, "git", "init", "-q")
        self.sh(repo, exe, "init", *(["-q"] if tool == "dvc" else []))
        if tool == "dvc":
            self.sh(repo, exe, "config", "core.analytics", "false")
        self.sh(repo, "git", "add", "-A")
        self.sh(repo, "git", "commit", "-q", "-m", "init")
        model = os.path.join(repo, "model.bin")
        for version, seed in (("v1", 1), ("v2", 2)):
            remove(model)
            make_big(model, self.size, seed)  # an hour old, as bench_core makes it
            self.sh(repo, exe, "add", "-q", "model.bin")
            self.sh(repo, "git", "add", "-A")
            self.sh(repo, "git", "commit", "-q", "-m", version)
            self.sh(repo, "git", "tag", version)
            self.stamps.setdefault(version, stamp(model, self.size))
            self.objects[tool, version] = self.object_of(tool, repo)
        return repo

    def object_of(self, tool: str, repo: str) -> str:
        if tool != "dvc":
            with open(os.path.join(repo, "model.bin.mvc")) as f:
                digest = next(line for line in f if line.startswith("oid")).split(":")[1].strip().strip('"')
            return os.path.join(repo, ".mvc", "cache", "objects", digest[:2], digest[2:])
        with open(os.path.join(repo, "model.bin.dvc")) as f:
            md5 = next(line for line in f if "md5:" in line).split("md5:")[1].strip()
        return os.path.join(repo, ".dvc", "cache", "files", "md5", md5[:2], md5[2:])

    def setup(self) -> None:
        say(f"building the repositories in {self.work} ({self.args.size_mib:g} MiB, two versions each)")
        self.repos = {tool: self.build(tool) for tool in self.exe}
        for path in self.objects.values():
            if os.path.getsize(path) != self.size:
                fail(f"{path}: not a cache object of the right size")
        self.cp_out = os.path.join(self.work, "cp-out.bin")
        shutil.copyfile(self.objects["mvc", "v2"], self.cp_out)
        os.sync()
        # warm-up: byte-compile, both directions once per tool, untimed
        for version in ("v1", "v2"):
            for tool in self.exe:
                self.switch(tool, version, timed=False)

    def timed(self, name: str, cwd: str, cmd: list[str], warm_files: list[str]) -> None:
        for path in warm_files:
            warm(path, self.args.warm == "evict")
        if not self.args.no_sync:
            os.sync()
        wall, cpu = run(cmd, cwd, self.env)
        self.times.setdefault(name, []).append(wall)
        self.cpu.setdefault(name, []).append(cpu)

    def switch(self, tool: str, version: str, timed: bool = True) -> None:
        repo = self.repos[tool]
        self.sh(repo, "git", "checkout", "-q", version)
        model = os.path.join(repo, "model.bin")
        exe = self.exe[tool]
        files = [self.objects[tool, "v1"], self.objects[tool, "v2"], model]
        if timed:
            self.timed(tool, repo, [exe, "checkout"], files)
        else:
            run([exe, "checkout"], repo, self.env)
        if os.path.getsize(model) != self.size or stamp(model, self.size) != self.stamps[version]:
            fail(f"{tool} checkout did not write {version} of model.bin")

    def cp(self, version: str) -> None:
        # the switch done by coreutils: the other version deleted, then the copy. Not 'cp' over it: ext4
        # writes out a file truncated and written again when it is closed (auto_da_alloc), 0.4 s a GiB here
        src = self.objects["mvc", version]
        cmd = ["sh", "-c", 'rm -f "$1" && cp "$2" "$1"', "sh", self.cp_out, src]
        self.timed("cp", self.work, cmd, [src, self.cp_out])
        if stamp(self.cp_out, self.size) != self.stamps[version]:
            fail("cp wrote the wrong bytes")

    def round(self, i: int) -> None:
        tools = list(self.exe)
        order = tools[i % len(tools) :] + tools[: i % len(tools)]
        for version in ("v1", "v2"):
            for tool in order:
                self.switch(tool, version)
            self.cp(version)


def report(b: Switch, facts: dict[str, str], args: argparse.Namespace, busy: str) -> dict:
    med = {k: statistics.median(v) for k, v in b.times.items()}
    ratio = med["mvc"] / med["dvc"]
    paired = statistics.median(m / d for m, d in zip(b.times["mvc"], b.times["dvc"], strict=True))
    size = f"{args.size_mib / 1024:g} GiB" if args.size_mib >= 1024 else f"{args.size_mib:g} MiB"
    lines = [
        f"machine: {facts['cpus']} × {facts['cpu']}, {facts['memory']} RAM, kernel {facts['kernel']}, "
        f"{facts['filesystem']}",
        f"{facts['python']}; {facts['cp']}; {facts['git']}; {facts['dvc']}",
        f"mvc: {facts['mvc']}",
        f"{args.runs} runs × 2 switches (v2 -> v1 -> v2), interleaved, warm={args.warm}, "
        f"{'no sync' if args.no_sync else 'sync'} before each; during the runs: {busy}",
        "",
        "| case | median s | vs cp | min–max s | median CPU s |",
        "|---|---:|---:|---|---:|",
    ]
    labels = {
        "cp": f"`rm` the other version, `cp` the {size} cache object (floor)",
        "dvc": f"`dvc checkout`, switching the {size} file",
        "mvc": f"`mvc checkout`, switching the {size} file",
        "before": f"`mvc checkout` of {args.before}, switching the {size} file",
    }
    for key in ("cp", "dvc", "before", "mvc"):
        if key not in b.times:
            continue
        t = b.times[key]
        lines.append(
            f"| {labels[key]} | {med[key]:.3f} | {med[key] / med['cp']:.2f}× | {min(t):.3f}–{max(t):.3f} "
            f"| {statistics.median(b.cpu[key]):.3f} |"
        )
    if "before" in b.times:
        lines += ["", f"{args.before} / DVC: {med['before'] / med['dvc']:.2f} (medians)"]
    lines += ["", f"mvc / DVC: {ratio:.2f} (medians), {paired:.2f} (median of the paired switches); target ≤ 1.0"]
    print("\n".join(lines))
    return {
        "machine": facts,
        "params": {
            "size_mib": args.size_mib,
            "runs": args.runs,
            "warm": args.warm,
            "sync": not args.no_sync,
            "before": args.before,
        },
        "busy": busy,
        "times_s": b.times,
        "cpu_s": b.cpu,
        "medians_s": med,
        "mvc_over_dvc": ratio,
        "mvc_over_dvc_paired": paired,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workdir", help="where to build the temp repos (default: a new temp dir on this disk)")
    p.add_argument("--size-mib", type=float, help="size of the file (default 1024; --quick: 64)")
    p.add_argument("--runs", type=int, help="runs, each switching v2 -> v1 -> v2 (default 5; --quick: 2)")
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--mvc", help="the mvc command (default: the one beside this Python, else on PATH)")
    p.add_argument("--dvc", default="/tmp/dvcvenv/bin/dvc", help="the dvc command (default: %(default)s)")
    p.add_argument("--regular-install", action="store_true", help="time a plain install of this tree (bench_core)")
    p.add_argument(
        "--warm",
        choices=("read", "evict"),
        default="read",
        help="read: read each file into the page cache as its writer left it (default); evict: drop its pages "
        "first, so every file is cached alike",
    )
    p.add_argument("--no-sync", action="store_true", help="no sync before a timed command (writeback may be pending)")
    p.add_argument(
        "--before",
        metavar="TREE",
        help="also time a plain install of the mvc package in TREE (e.g. a 'git archive' of an earlier commit), "
        "in the same runs, on a repository of its own",
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    args = p.parse_args()
    args.size_mib = args.size_mib or (64 if args.quick else 1024)
    args.runs = args.runs or (2 if args.quick else 5)
    if args.mvc is None:
        beside = os.path.join(os.path.dirname(sys.executable), "mvc")
        args.mvc = beside if os.path.isfile(beside) else shutil.which("mvc")
    if not args.mvc:
        fail("no mvc command found: install mvc (pip install -e .) or pass --mvc PATH")
    if not (os.path.isfile(args.dvc) or shutil.which(args.dvc)):
        fail(f"no dvc at {args.dvc}: python3 -m venv /tmp/dvcvenv && /tmp/dvcvenv/bin/pip install dvc")
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        work = tempfile.mkdtemp(prefix="mvc-switch-", dir=args.workdir)
    else:
        work = default_workdir()
    need = int(7 * args.size_mib * (1 << 20))
    if shutil.disk_usage(work).free < need:
        remove(work)
        fail(f"needs {need / (1 << 30):.1f} GiB free in {work}")
    try:
        args.before_mvc = regular_install(work, args.mvc, args.before, "venv-before") if args.before else None
        if args.regular_install:
            args.mvc = regular_install(work, args.mvc)
        b = Switch(args, work)
        facts = machine(work, interpreter(args.mvc))
        facts["mvc"] = f"{args.mvc} ({'a regular install of this tree' if args.regular_install else 'as installed'})"
        facts["dvc"] = "dvc " + subprocess.run([args.dvc, "--version"], capture_output=True, text=True).stdout.strip()
        b.setup()
        ticks = cpu_ticks()
        for i in range(args.runs):
            say(f"run {i + 1}/{args.runs}")
            b.round(i)
        result = report(b, facts, args, busy_since(ticks))
        result["command"] = " ".join(["benchmarks/bench_switch.py", *sys.argv[1:]])
        if args.json:
            with open(args.json, "w") as f:
                f.write(json.dumps(result, indent=2) + "\n")
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            remove(work)


if __name__ == "__main__":
    main()
