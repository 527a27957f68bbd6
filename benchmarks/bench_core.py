#!/usr/bin/env python3
"""Issue 2 speed targets: whole ``mvc`` processes against the plain limit measured in the same run.

    .venv/bin/python benchmarks/bench_core.py --quick     # smoke run: 64 MiB, 1,000 small files
    .venv/bin/python benchmarks/bench_core.py             # 2 GiB, 5,000 small files, 5 runs
    .venv/bin/python benchmarks/bench_core.py --json out.json --runs 7

Needs about 5 x --size-gib of free disk next to /work and as much free memory (every file stays in
the page cache, for cp and mvc alike). Stdlib only; mvc is run as the ``mvc`` command a user types.
See docs/benchmarks.md for what each case measures and the recorded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OLD = 3600  # seconds: every data file is this old, so the state cache trusts it (mvc/repo/statedb.py RACY_NS)
BLOCK = 8 << 20


# -- helpers ----------------------------------------------------------------------------------
def fail(msg: str) -> None:
    raise SystemExit(f"bench_core: {msg}")


def run(cmd: list[str], cwd: str, env: dict[str, str], expect: str | None = None) -> tuple[float, float]:
    """Run one process: (wall s, CPU s of it and the children it waited for, threads included).

    Fails on a non-zero exit or an unexpected output.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if p.returncode != 0:
            fail(f"{' '.join(cmd)} (in {cwd}) exited {p.returncode}: {err.read().decode(errors='replace').strip()}")
    if expect is not None and expect not in text:
        fail(f"{' '.join(cmd)} (in {cwd}) printed {text.strip()!r}, expected {expect!r}")
    return wall, ru.ru_utime + ru.ru_stime


def make_big(path: str, size: int, seed: int) -> None:
    # one random block, each copy stamped with its index: distinct blocks at page-cache speed
    # (ext4 neither compresses nor dedups, so this costs cp and mvc what random bytes would)
    block = bytearray(random.Random(seed).randbytes(BLOCK))
    with open(path, "wb") as f:
        for i, off in enumerate(range(0, size, BLOCK)):
            block[:8] = i.to_bytes(8, "little")
            f.write(block[: min(BLOCK, size - off)])
    age(path)


def make_many(root: str, nfiles: int, seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(nfiles):
        d = os.path.join(root, f"d{i // 100:03d}")
        if i % 100 == 0:
            os.makedirs(d)
        path = os.path.join(d, f"f{i:05d}.bin")
        with open(path, "wb") as f:
            f.write(rnd.randbytes(rnd.randint(256, 4096)))
        age(path)


def age(path: str) -> None:
    t = time.time() - OLD
    os.utime(path, (t, t))


def read_all(path: str) -> None:
    """Pull a file into the page cache."""
    buf = bytearray(BLOCK)
    with open(path, "rb") as f:
        while f.readinto(buf):
            pass


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def state_rows(repo: str) -> dict[str, tuple]:
    db = sqlite3.connect(os.path.join(repo, ".mvc", "state.db"))
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT path, inode, mtime_ns, ctime_ns, size, oid FROM state")}
    finally:
        db.close()


def check_warm(repo: str, rels: list[str]) -> None:
    """Every file must be in the state cache with its current stat: a no-op command must not hash."""
    rows = state_rows(repo)
    for rel in rels:
        st = os.stat(os.path.join(repo, rel))
        row = rows.get(rel)
        if row is None or row[:4] != (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size):
            fail(f"state cache is cold for {rel} in {repo}: the no-op figures would include hashing")


def interpreter(mvc: str) -> str:
    with open(mvc, "rb") as f:
        first = f.readline().decode(errors="replace")
    exe = first[2:].strip().split()[0] if first.startswith("#!") else ""
    return exe if os.path.isfile(exe) else sys.executable


def first_line(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def machine(workdir: str, python: str) -> dict[str, str]:
    def grep(path: str, key: str) -> str:
        try:
            with open(path) as f:
                return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), "?")
        except OSError:
            return "?"

    mounts, best = [], ("?", "?", "")
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split()[:3] for line in f]
    except OSError:
        pass
    real = os.path.realpath(workdir)
    for dev, mnt, fstype in mounts:
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[2]):
            best = (dev, fstype, mnt)
    return {
        "cpus": str(os.cpu_count()),
        "cpu": grep("/proc/cpuinfo", "model name"),
        "memory": grep("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "python": first_line([python, "-VV"]),
        "filesystem": f"{best[1]} on {best[0]} ({best[2]})",
        "cp": first_line(["cp", "--version"]),
        "git": first_line(["git", "--version"]),
    }


def regular_install(workdir: str, mvc: str, source: str = ROOT, name: str = "venv") -> str:
    """Install this source tree (or the one at source) into a new venv workdir/name the way 'pip install .'
    does (no editable finder); its dependencies come from the venv of mvc. Returns its mvc command.

    An editable install (pip install -e) adds an import hook that every Python process of that venv
    loads at start-up, about 0.02 s that users of a regular install never pay.
    """
    python = interpreter(mvc)
    venv = os.path.join(workdir, name)
    subprocess.run([python, "-m", "venv", "--without-pip", venv], check=True)
    new_python = os.path.join(venv, "bin", "python")
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([new_python, "-c", purelib], check=True, capture_output=True, text=True).stdout.strip()
    deps = subprocess.run([python, "-c", purelib], check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "mvc-deps.pth"), "w") as f:
        f.write(deps + "\n")  # a path line: the dependencies, without running that venv's own .pth files
    shutil.copytree(
        os.path.join(source, "mvc"), os.path.join(site, "mvc"), ignore=shutil.ignore_patterns("__pycache__")
    )
    script = os.path.join(venv, "bin", "mvc")
    with open(script, "w") as f:  # what pip writes for the console script
        f.write(
            f"#!{new_python}\nimport sys\nfrom mvc.cli import main\nif __name__ == '__main__':\n    sys.exit(main())\n"
        )
    os.chmod(script, 0o755)
    return script


def default_workdir() -> str:
    """A temp dir on the repository's filesystem (so 'cp' and mvc's cache write to the same disk)."""
    base = tempfile.gettempdir()
    if os.stat(base).st_dev != os.stat(ROOT).st_dev:
        base = os.path.join(HERE, ".work")  # git-ignored
        os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix="mvc-bench-", dir=base)


# -- the benchmark ----------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, workdir: str):
        self.args, self.work = args, workdir
        self.mvc = args.mvc
        self.python = interpreter(self.mvc)
        self.size = int(args.size_gib * (1 << 30))
        env = dict(os.environ)
        # A user's install runs from .pyc files; without them every start compiles mvc (+0.1 s).
        # The cache goes under the work dir, not into the source tree.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(workdir, "pycache")
        env.update(
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="bench",
            GIT_AUTHOR_EMAIL="bench@example.invalid",
            GIT_COMMITTER_NAME="bench",
            GIT_COMMITTER_EMAIL="bench@example.invalid",
        )
        self.env = env
        self.times: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.add_oid: str | None = None

    def sh(self, cwd: str, *cmd: str, expect: str | None = None) -> None:
        run(list(cmd), cwd, self.env, expect)

    def m(self, cwd: str, *args: str, expect: str | None = None) -> None:
        run([self.mvc, *args], cwd, self.env, expect)

    def timed(self, name: str, cwd: str, cmd: list[str], expect: str | None = None, warm: str | None = None) -> None:
        if warm:
            read_all(warm)  # back into the page cache, whatever reclaimed it since (same for cp and mvc)
        os.sync()  # start from clean pages: no writeback left over from the previous case
        wall, cpu = run(cmd, cwd, self.env, expect)
        self.times.setdefault(name, []).append(wall)
        self.cpu.setdefault(name, []).append(cpu)

    def new_repo(self, name: str) -> str:
        repo = os.path.join(self.work, name)
        os.makedirs(repo)
        self.sh(repo, "git", "init", "-q")
        self.m(repo, "init")
        self.sh(repo, "git", "commit", "-q", "-m", "mvc init")
        return repo

    # -- set-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        a = self.args
        say(f"creating data in {self.work} ({a.size_gib:g} GiB files, {a.files} small files)")
        self.add_repo = self.new_repo("add")
        self.model = os.path.join(self.add_repo, "model.bin")
        make_big(self.model, self.size, seed=1)
        self.cp_out = os.path.join(self.work, "cp-out.bin")

        self.one = self.new_repo("one")  # no-op status / re-add, and checkout
        make_big(os.path.join(self.one, "model.bin"), self.size, seed=2)
        self.m(self.one, "add", "model.bin", expect="added model.bin")
        self.sh(self.one, "git", "commit", "-q", "-m", "model")
        self.aside = os.path.join(self.work, "one-model-aside.bin")
        with open(os.path.join(self.one, "model.bin.mvc")) as f:
            digest = next(line for line in f if line.startswith("oid")).split(":")[1].strip().strip('"')
        self.one_object = os.path.join(self.one, ".mvc", "cache", "objects", digest[:2], digest[2:])

        self.many = self.new_repo("many")
        make_many(os.path.join(self.many, "data"), a.files, seed=3)
        self.m(self.many, "add", "data", expect="added data")
        self.sh(self.many, "git", "commit", "-q", "-m", "data")
        many_rels = [f"data/d{i // 100:03d}/f{i:05d}.bin" for i in range(a.files)]

        os.sync()
        for path in (self.model, os.path.join(self.one, "model.bin")):
            read_all(path)
        check_warm(self.one, ["model.bin"])
        check_warm(self.many, many_rels)
        # warm-up: byte-compile mvc, fill the page cache, check every command does what is timed
        self.sh(self.work, self.python, "-c", "pass")
        self.m(self.one, "status", expect="model.bin: up to date")
        self.m(self.many, "status", expect="data: up to date")
        check_warm(self.one, ["model.bin"])
        check_warm(self.many, many_rels)
        self.checkout_once(timed=False)

    # -- cases ------------------------------------------------------------------------------
    def reset_add(self) -> None:
        r = self.add_repo
        remove(os.path.join(r, ".mvc", "cache"))
        state = os.path.join(r, ".mvc", "state.db")
        if os.path.exists(state):  # forget the file, keep the database as a user's repo has it
            db = sqlite3.connect(state, isolation_level=None)
            db.execute("DELETE FROM state WHERE path = 'model.bin'")
            db.close()
        remove(os.path.join(r, "model.bin.mvc"))
        remove(os.path.join(r, ".gitignore"))
        self.sh(r, "git", "rm", "-q", "--cached", "--ignore-unmatch", "model.bin.mvc", ".gitignore")
        os.chmod(self.model, 0o644)  # a hardlink add made it the read-only cache object

    def add_once(self, link: str) -> None:
        self.reset_add()
        self.m(self.add_repo, "config", "cache.type", link)
        name = "add" if link == "reflink,copy" else "add-hardlink"
        self.timed(name, self.add_repo, [self.mvc, "add", "model.bin"], expect="added model.bin", warm=self.model)
        with open(os.path.join(self.add_repo, "model.bin.mvc")) as f:
            oid = next(line for line in f if line.startswith("oid"))
        if self.add_oid is None:
            self.add_oid = oid
        elif oid != self.add_oid:
            fail(f"mvc add wrote {oid.strip()} after {self.add_oid.strip()} for the same file")
        self.reset_add()  # drop the new object before it is written back to disk

    def cp_once(self, name: str, src: str) -> None:
        remove(self.cp_out)
        self.timed(name, self.work, ["cp", src, self.cp_out], warm=src)
        if os.path.getsize(self.cp_out) != self.size:
            fail("cp wrote a file of the wrong size")
        remove(self.cp_out)

    def checkout_once(self, timed: bool = True) -> None:
        # set the workspace file aside, let checkout restore it from the cache, put it back and let a status
        # record it again (a rename moves the ctime): the state cache stays warm for the no-op cases
        ws = os.path.join(self.one, "model.bin")
        os.rename(ws, self.aside)
        try:
            cmd = [self.mvc, "checkout"]
            if timed:
                self.timed("checkout", self.one, cmd, expect="restored model.bin", warm=self.one_object)
            else:
                run(cmd, self.one, self.env, expect="restored model.bin")
            if os.path.getsize(ws) != self.size:
                fail("mvc checkout wrote a file of the wrong size")
            os.unlink(ws)
        finally:
            os.rename(self.aside, ws)
        self.m(self.one, "status", expect="model.bin: up to date")
        check_warm(self.one, ["model.bin"])

    def round(self) -> None:
        self.timed("python", self.work, [self.python, "-c", "pass"])
        self.cp_once("cp", self.model)
        self.add_once("reflink,copy")
        self.add_once("hardlink")
        self.timed("status-1", self.one, [self.mvc, "status"], expect="model.bin: up to date")
        self.timed("readd-1", self.one, [self.mvc, "add", "model.bin"], expect="unchanged model.bin")
        self.timed("status-n", self.many, [self.mvc, "status"], expect="data: up to date")
        self.timed("readd-n", self.many, [self.mvc, "add", "data"], expect="unchanged data")
        # checkout's limit: cp of its own source. A file's page-cache folios depend on how it was
        # written (2 MiB for large write()s, 4 KiB for copy_file_range), and reading small ones
        # costs more: a cache object written by a copy is slower to read than the generated model.
        self.cp_once("cp-object", self.one_object)
        self.checkout_once()


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def report(b: Bench, facts: dict[str, str], args: argparse.Namespace, busy: str) -> dict:
    med = {k: statistics.median(v) for k, v in b.times.items()}
    gib = f"{args.size_gib:g} GiB" if args.size_gib >= 1 else f"{args.size_gib * 1024:g} MiB"
    files = f"{args.files:,} files"
    # (key, label, limit key, target: ("x", factor of the limit) or ("s", seconds))
    rows = [
        ("python", "`python -c pass` (start-up, reference)", None, None),
        ("cp", f"`cp` of the {gib} file (limit)", "cp", None),
        ("add", f"`mvc add`, new {gib} file", "cp", ("x", 1.2)),
        ("add-hardlink", f"`mvc add`, new {gib} file, cache.type hardlink", "cp", ("s", 0.5)),
        ("status-1", f"`mvc status`, nothing changed, one {gib} file", "python", ("s", 0.15)),
        ("readd-1", f"`mvc add model.bin`, nothing changed, {gib}", "python", ("s", 0.15)),
        ("status-n", f"`mvc status`, nothing changed, dir of {files}", "python", ("s", 0.25)),
        ("readd-n", f"`mvc add data`, nothing changed, dir of {files}", "python", ("s", 0.25)),
        ("cp-object", f"`cp` of the {gib} cache object (checkout's limit)", "cp-object", None),
        ("checkout", f"`mvc checkout` of the {gib} file from the cache", "cp-object", ("x", 1.2)),
    ]
    out_rows = []
    lines = [
        "| case | median s | vs limit | target | result | min–max s | median CPU s |",
        "|---|---:|---:|---|---|---|---:|",
    ]
    for key, label, limit, target in rows:
        m = med[key]
        ratio = m / med[limit] if limit else None
        if target is None:
            tgt, ok = "", None
        elif target[0] == "x":
            tgt, ok = f"≤ {target[1]}× cp", m <= target[1] * med[limit]
        else:
            tgt, ok = f"≤ {target[1]} s", m <= target[1]
        res = "" if ok is None else ("pass" if ok else "FAIL")
        ratio_s = f"{ratio:.2f}× {'python' if limit == 'python' else 'cp'}" if ratio is not None else ""
        spread = f"{min(b.times[key]):.3f}–{max(b.times[key]):.3f}"
        cpu = statistics.median(b.cpu[key])
        lines.append(f"| {label} | {m:.3f} | {ratio_s} | {tgt} | {res} | {spread} | {cpu:.3f} |")
        out_rows.append(
            {
                "case": key,
                "label": label,
                "median_s": m,
                "runs_s": b.times[key],
                "cpu_s": b.cpu[key],
                "limit": limit,
                "ratio": ratio,
                "target": tgt,
                "pass": ok,
            }
        )
    head = [
        f"machine: {facts['cpus']} × {facts['cpu']}, {facts['memory']} RAM, kernel {facts['kernel']}, "
        f"{facts['filesystem']}",
        f"{facts['python']}; {facts['cp']}; {facts['git']}",
        f"mvc: {facts['mvc']}",
        f"{args.runs} runs per case, interleaved; during the runs: {busy}",
        "",
    ]
    print("\n".join(head + lines))
    if args.quick:
        print("\n(--quick: smaller than the issue's sizes; the targets are checked on the full run)")
    return {
        "machine": facts,
        "params": {"size_gib": args.size_gib, "files": args.files, "runs": args.runs, "quick": args.quick},
        "busy": busy,
        "cases": out_rows,
    }


def cpu_ticks() -> list[int]:
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return []


def busy_since(start: list[int]) -> str:
    """How idle the machine was (CPU idle and stolen by the hypervisor, all processes), and its load."""
    end = cpu_ticks()
    try:
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
    except OSError:
        load = "?"
    if len(start) < 8 or len(end) < 8:
        return f"load average {load}"
    d = [e - s for s, e in zip(start, end, strict=False)]
    total = sum(d[:8]) or 1
    return (
        f"CPU idle {100 * (d[3] + d[4]) / total:.0f}%, stolen by the hypervisor {100 * d[7] / total:.0f}%, "
        f"load average {load}"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workdir", help="where to build the temp repos (default: a new temp dir on this disk)")
    p.add_argument("--size-gib", type=float, help="size of the large file (default 2; --quick: 1/16)")
    p.add_argument("--files", type=int, help="small files in the directory case (default 5000; --quick: 1000)")
    p.add_argument("--runs", type=int, help="timed runs per case (default 5; --quick: 3)")
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': stdout)")
    p.add_argument("--mvc", help="the mvc command (default: the one beside this Python, else on PATH)")
    p.add_argument(
        "--regular-install",
        action="store_true",
        help="time a plain install of this source tree (as 'pip install .' makes) built in the "
        "work dir, instead of the --mvc command (an editable install in a dev venv)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    args = p.parse_args()
    q = args.quick
    args.size_gib = args.size_gib or (1 / 16 if q else 2.0)
    args.files = args.files or (1000 if q else 5000)
    args.runs = args.runs or (3 if q else 5)
    if args.mvc is None:
        beside = os.path.join(os.path.dirname(sys.executable), "mvc")
        args.mvc = beside if os.path.isfile(beside) else shutil.which("mvc")
    if not args.mvc:
        fail("no mvc command found: install mvc (pip install -e .) or pass --mvc PATH")

    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        workdir = tempfile.mkdtemp(prefix="mvc-bench-", dir=args.workdir)
    else:
        workdir = default_workdir()
    need = int(5.2 * args.size_gib * (1 << 30))
    if shutil.disk_usage(workdir).free < need:
        remove(workdir)
        fail(f"needs {need / (1 << 30):.1f} GiB free in {workdir}: free space or pass --workdir / --size-gib")
    try:
        if args.regular_install:
            args.mvc = regular_install(workdir, args.mvc)
        b = Bench(args, workdir)
        facts = machine(workdir, b.python)
        facts["mvc"] = f"{args.mvc} ({'a regular install of this tree' if args.regular_install else 'as installed'})"
        b.setup()
        ticks = cpu_ticks()
        for i in range(args.runs):
            say(f"run {i + 1}/{args.runs}")
            b.round()
        result = report(b, facts, args, busy_since(ticks))
        result["command"] = " ".join(["benchmarks/bench_core.py", *sys.argv[1:]])
        if args.json:
            text = json.dumps(result, indent=2)
            if args.json == "-":
                print(text)
            else:
                with open(args.json, "w") as f:
                    f.write(text + "\n")
    finally:
        if args.keep:
            say(f"kept {workdir}")
        else:
            remove(workdir)


if __name__ == "__main__":
    main()
