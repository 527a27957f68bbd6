#!/usr/bin/env python3
"""Scale targets: N small tracked files (default 100,000; a few hundred bytes to 4 KiB each, random bytes from a
fixed seed), in two layouts, each put through the everyday sequence a user types, in a fresh repository per run:

* ``one``: all N files in ONE directory ``data/``, tracked as one directory (``mvc add data``: one pointer and a
  manifest). mvc can also track files one by one (``mvc add data/*``), but N paths do not fit in one command
  line at 100,000 files (ARG_MAX); not measured here.
* ``hundred``: 100 directories ``d000`` … ``d099`` of N/100 files each, each tracked as a directory, added by one
  command (``mvc add d000 … d099``, as a user types ``mvc add d*``).

The sequence, timed step by step with nothing in between (the state each command leaves is the state the next
one meets: dirty pages, the state cache, the journal):

1. ``mvc add PATHS`` into an empty cache, paired with ``cp -r PATHS`` of the same tree to a new directory
   (who goes first alternates run by run): target <= 1.3 x cp -r;
2. ``mvc status``, nothing changed (twice: the first right after the add, then again): target <= 1.0 s;
3. ``mvc push`` of everything to a fresh directory remote (``mvc remote add bench DIR --default``, untimed), paired
   with another ``cp -r`` of the tree: target <= 1.0 x cp -r;
4. ``mvc push`` again, nothing to push (twice): target <= 0.3 s;
5. ``git add -A && git commit`` (pointers only; timed, no target), then ``mvc gc`` (a dry run): target <= 5 s;
6. ``mvc verify`` (no target): its time and MB/s (bytes of the cache's objects / wall seconds);
7. (no target, the everyday edit) one file rewritten, then ``mvc status`` (shows it modified), ``mvc add`` of its
   directory and ``mvc push``.

    .venv/bin/python benchmarks/bench_scale.py --files 2000 --runs 1          # smoke run, under a minute
    .venv/bin/python benchmarks/bench_scale.py --runs 3 --json out.json       # 100,000 files, both layouts

Every timing is a whole process as a user types it (the venv's ``mvc`` console script) with its CPU seconds
(wait4) and peak RSS (GNU ``time -f %M`` where /usr/bin/time exists). The page cache is warm: the files and the
tree are read after each run's setup, then ``sync``, so every run starts from the same state (dropping the page
cache needs ``/proc/sys/vm/drop_caches``, which these containers refuse: the cold case is not measured). The
data files are made an hour old so the state cache trusts them (the workspace is copied with ``cp -a``).

The run uses a copy of this checkout's mvc/ taken when it starts (``--code DIR``: another tree), run through
PYTHONPATH, so that edits made to the checkout meanwhile do not mix two states of the code. A failing command is
recorded (its exit status and last stderr line) and the run goes on. Disk: about 6 x N x 4 KiB at a time (the
tree, the workspace, the cache, two cp copies, the remote), and as many inodes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_chunks import code_state, snapshot  # noqa: E402
from bench_read import add_run_args, isolated_env, machine  # noqa: E402

OLD = 3600  # seconds: every data file is this old, so the state cache trusts it (mvc/repo/statedb.py RACY_NS)
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None  # GNU time, for the peak RSS
SEED = 20240611
MIN_SIZE, MAX_SIZE = 256, 4096
LAYOUTS = ("one", "hundred")
# step: (kind, target, unit): kind "ratio" (x the paired cp -r) or "abs" (seconds)
TARGETS = {
    "add": ("ratio", 1.3),
    "status": ("abs", 1.0),
    "push": ("ratio", 1.0),
    "push_noop": ("abs", 0.3),
    "gc": ("abs", 5.0),
}


def fail(msg: str) -> None:
    raise SystemExit(f"bench_scale: {msg}")


def say(msg: str) -> None:
    print(msg, flush=True)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


# -- running one process ----------------------------------------------------------------------------------------
def run(cmd: list[str], cwd: str, env: dict[str, str], timeout: float) -> dict:
    """cmd as a whole process: wall seconds, CPU seconds (user + sys of it and its children, from wait4) and the
    peak RSS (GNU time's %M). A non-zero exit is recorded, not raised: {"error": last stderr line, ...}."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as rss:
        timed = [TIME, "-f", "%M", "-o", rss.name, *cmd] if TIME else cmd
        t = time.perf_counter()
        p = subprocess.Popen(
            timed, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        killed = []

        def kill() -> None:
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the group this benchmark started for cmd
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t
        p.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        etext = err.read().decode(errors="replace")
        peak = None
        if TIME:
            words = rss.read().split()
            peak = int(words[-1]) if words and words[-1].isdigit() else None
        r = {
            "wall": wall,
            "cpu": ru.ru_utime + ru.ru_stime,
            "user": ru.ru_utime,
            "sys": ru.ru_stime,
            "rss_mib": (peak if peak is not None else ru.ru_maxrss) / 1024,
            "out": "\n".join(text.strip().splitlines()[-3:]),
            "out_lines": len(text.splitlines()),
            "full_out": text,
        }
        if code != 0 or killed:
            lines = [ln for ln in (etext + "\n" + text).splitlines() if ln.strip() and "Command exited" not in ln]
            r["error"] = f"killed after {timeout:.0f} s" if killed else (lines[-1] if lines else f"exit {code}")
            r["exit"] = code
            r["stderr_tail"] = (etext or text)[-3000:]
    return r


def sh(cmd: list[str], cwd: str, env: dict[str, str]) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode:
        fail(f"{' '.join(cmd)} (in {cwd}) exited {p.returncode}: {(p.stderr + p.stdout).strip()[-2000:]}")
    return p.stdout


# -- data -------------------------------------------------------------------------------------------------------
def rel_paths(layout: str, n: int) -> list[str]:
    """File i's path in the layout; the same N contents in both layouts."""
    if layout == "one":
        return [f"data/f{i:06d}.bin" for i in range(n)]
    per = max(1, n // 100)
    return [f"d{min(i // per, 99):03d}/f{i:06d}.bin" for i in range(n)]


def tracked(layout: str, n: int) -> list[str]:
    return ["data"] if layout == "one" else sorted({p.split("/")[0] for p in rel_paths(layout, n)})


def make_tree(root: str, layout: str, n: int) -> int:
    """Write the N files under root (deterministic contents), an hour old; their total bytes."""
    rnd = random.Random(SEED)
    old = time.time() - OLD
    total = 0
    made = set()
    for rel in rel_paths(layout, n):
        d = os.path.dirname(rel)
        if d not in made:
            os.makedirs(os.path.join(root, d))
            made.add(d)
        data = rnd.randbytes(rnd.randint(MIN_SIZE, MAX_SIZE))
        path = os.path.join(root, rel)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (old, old))
        total += len(data)
    for d in made:
        os.utime(os.path.join(root, d), (old, old))
    return total


def read_tree(*roots: str) -> None:
    """Read every file under roots into the page cache (and their directories' entries)."""
    for root in roots:
        for d, _, files in os.walk(root):
            for name in files:
                with open(os.path.join(d, name), "rb") as f:
                    while f.read(1 << 20):
                        pass


def can_drop_caches() -> bool:
    try:
        open("/proc/sys/vm/drop_caches", "w").close()  # opened, nothing written: nothing dropped
        return True
    except OSError:
        return False


def mount_of(path: str) -> str:
    """The /proc/mounts line of the file system holding path (its options: e.g. discard)."""
    real, best, line_ = os.path.realpath(path), -1, ""
    with open("/proc/mounts") as f:
        for line in f:
            point = line.split()[1]
            if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) > best:
                best, line_ = len(point), line.strip()
    return line_


def ext4_journal(mount_line: str) -> str:
    """Whether an ext4 file system has a journal (its jbd2 task): without one, ext4 does not reuse an inode freed
    less than 60 s before (300 s while its inode table block is dirty), and each file created after many deletes
    scans past them (fs/ext4/ialloc.c, recently_deleted): creating files then costs far more system time."""
    parts = mount_line.split()
    if len(parts) < 3 or parts[2] != "ext4":
        return "not ext4"
    try:
        with open(f"/sys/fs/ext4/{os.path.basename(parts[0])}/journal_task") as f:
            task = f.read().strip()
    except OSError:
        return "?"
    return "no journal" if task in ("", "<none>") else f"journal ({task})"


def du(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    p = subprocess.run(["du", "-sk", path], capture_output=True, text=True)
    files = 0
    for _, _, fs in os.walk(path):
        files += len(fs)
    return {"kib": int(p.stdout.split()[0]) if p.stdout else None, "files": files}


# -- one run of the sequence ------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args, base: str, env: dict[str, str]):
        self.args, self.base, self.env = args, base, env
        self.mvc = os.path.join(os.path.dirname(sys.executable), "mvc")
        if not os.access(self.mvc, os.X_OK):
            fail(f"no mvc console script beside {sys.executable}")
        self.errors: list[dict] = []

    def timed(self, label: str, cmd: list[str], cwd: str, expect: str | None = None) -> dict:
        r = run(cmd, cwd, self.env, self.args.timeout)
        r["cmd"] = " ".join(cmd if cmd[0] != self.mvc else ["mvc", *cmd[1:]])
        full = r.pop("full_out")
        if "error" not in r and expect is not None and expect not in full:
            r["unexpected"] = f"expected {expect!r} in the output"
        elif expect is not None:
            r["matched"] = next(ln for ln in full.splitlines() if expect in ln)
        tag = ""
        if "error" in r:
            tag = f"  ERROR (exit {r['exit']}): {r['error']}"
            self.errors.append({"step": label, "cmd": r["cmd"], "cwd": cwd, "error": r["error"], "exit": r["exit"]})
        elif "unexpected" in r:
            tag = f"  UNEXPECTED OUTPUT: {r['out']!r}"
        say(
            f"    {label:<26} {r['wall']:8.3f} s  cpu {r['user']:6.2f} u {r['sys']:6.2f} s  rss {r['rss_mib']:5.0f} MiB"
            f"  | {(r.get('matched') or (r['out'].splitlines() or [''])[-1])[:90]}{tag}"
        )
        return r

    def sequence(self, layout: str, src: str, run_no: int, nbytes: int) -> dict:
        """One fresh repository through the whole sequence; every step's figures."""
        n = self.args.files
        work = os.path.join(self.base, f"run-{layout}-{run_no}")
        repo, remote = os.path.join(work, "repo"), os.path.join(work, "remote")
        cp_add, cp_push = os.path.join(work, "cp-add"), os.path.join(work, "cp-push")
        os.makedirs(repo)
        sh(["git", "init", "-q"], repo, self.env)
        sh([self.mvc, "init"], repo, self.env)
        paths = tracked(layout, n)
        for p in paths:  # the workspace: the tree, its files an hour old (cp -a keeps the mtimes)
            sh(["cp", "-a", os.path.join(src, p), os.path.join(repo, p)], work, self.env)
        read_tree(src, os.path.join(repo))
        sh(["sync"], work, self.env)

        # the cp -r of the same tree, as mvc sees it: the same paths, from the workspace, to a new directory
        def cp_cmd(dest: str) -> list[str]:
            os.makedirs(dest)
            return ["cp", "-r", *paths, dest]

        res: dict = {"layout": layout, "run": run_no, "load_before": os.getloadavg()[0]}
        steps: dict = {}
        cp_first = run_no % 2 == 1
        say(f"  run {run_no}, layout {layout} (cp -r {'first' if cp_first else 'second'})")

        def pair(step: str, mvc_cmd: list[str], dest: str, expect: str) -> None:
            order = ["cp", "mvc"] if cp_first else ["mvc", "cp"]
            for who in order:
                if who == "cp":
                    steps[f"{step}_cp"] = self.timed(f"cp -r ({step})", cp_cmd(dest), repo)
                else:
                    steps[step] = self.timed(f"mvc {step}", mvc_cmd, repo, expect)
            if "error" not in steps[step] and "error" not in steps[f"{step}_cp"]:
                steps[step]["ratio"] = steps[step]["wall"] / steps[f"{step}_cp"]["wall"]

        pair("add", [self.mvc, "add", *paths], cp_add, "added")
        steps["status"] = self.timed("mvc status", [self.mvc, "status"], repo, "up to date")
        steps["status_again"] = self.timed("mvc status (again)", [self.mvc, "status"], repo, "up to date")
        sh([self.mvc, "remote", "add", "bench", remote, "--default"], repo, self.env)
        pair("push", [self.mvc, "push"], cp_push, "pushed")
        steps["push_noop"] = self.timed("mvc push (no-op)", [self.mvc, "push"], repo, "nothing to push")
        steps["push_noop_again"] = self.timed("mvc push (no-op again)", [self.mvc, "push"], repo, "nothing to push")
        steps["git_commit"] = self.timed(
            "git add -A; git commit", ["sh", "-c", "git add -A && git commit -q -m 'track the files'"], repo
        )
        steps["gc"] = self.timed("mvc gc (dry run)", [self.mvc, "gc"], repo, "would delete")
        cache = os.path.join(repo, ".mvc", "cache")
        steps["verify"] = self.timed("mvc verify", [self.mvc, "verify"], repo, "can be read back")
        res["cache"] = du(cache)
        cache_bytes = 0
        for top in ("objects", "packs"):  # object files, and the cache packs of a large add
            for d, _, files in os.walk(os.path.join(cache, top)):
                for name in files:
                    if not name.endswith(".idx"):
                        cache_bytes += os.lstat(os.path.join(d, name)).st_size
        res["cache"]["bytes"] = cache_bytes
        if "error" not in steps["verify"]:
            steps["verify"]["mb_s"] = cache_bytes / 1e6 / steps["verify"]["wall"]
        # the everyday edit: one file rewritten (same size, new bytes), then status, add of its directory, push
        edited = rel_paths(layout, n)[n // 2]
        with open(os.path.join(repo, edited), "r+b") as f:
            size = len(f.read())
            f.seek(0)
            f.write(random.Random(run_no).randbytes(size))
        old = time.time() - 5  # written 5 s ago: past the racy window (a user's edit is rarely fresher)
        os.utime(os.path.join(repo, edited), (old, old))
        steps["status_edit"] = self.timed("mvc status (1 edited)", [self.mvc, "status"], repo, "modified")
        top = edited.split("/")[0]
        steps["add_edit"] = self.timed(f"mvc add {top} (1 edited)", [self.mvc, "add", top], repo, "added")
        steps["push_edit"] = self.timed("mvc push (1 edited)", [self.mvc, "push"], repo, "pushed")
        res["remote"] = du(remote)
        res["load_after"] = os.getloadavg()[0]
        res["steps"] = steps
        if self.args.defer_deletes:
            return res  # deleted with the rest at the end
        shutil.rmtree(work, ignore_errors=True)
        sh(["sync"], self.base, self.env)  # the deletes (and the discards of this mount) settled before the next run
        return res


# -- figures ----------------------------------------------------------------------------------------------------
STEP_ORDER = [
    ("add", "mvc add (empty cache)"),
    ("add_cp", "cp -r (beside add)"),
    ("status", "mvc status (no-op, 1st)"),
    ("status_again", "mvc status (no-op, 2nd)"),
    ("push", "mvc push (fresh dir remote)"),
    ("push_cp", "cp -r (beside push)"),
    ("push_noop", "mvc push (no-op, 1st)"),
    ("push_noop_again", "mvc push (no-op, 2nd)"),
    ("git_commit", "git add -A && git commit"),
    ("gc", "mvc gc (dry run)"),
    ("verify", "mvc verify"),
    ("status_edit", "mvc status (1 file edited)"),
    ("add_edit", "mvc add DIR (1 file edited)"),
    ("push_edit", "mvc push (1 file edited)"),
]


def figures(runs: list[dict]) -> dict:
    out: dict = {}
    for key, _ in STEP_ORDER:
        rs = [r["steps"][key] for r in runs if key in r["steps"]]
        ok = [r for r in rs if "error" not in r]
        if not rs:
            continue
        f: dict = {
            "runs_wall": [round(r["wall"], 3) for r in rs],
            "errors": [r["error"] for r in rs if "error" in r],
            "cmd": rs[0]["cmd"],
        }
        if ok:
            f.update(
                wall=med([r["wall"] for r in ok]),
                cpu=med([r["cpu"] for r in ok]),
                user=med([r["user"] for r in ok]),
                sys=med([r["sys"] for r in ok]),
                rss_mib=max(r["rss_mib"] for r in ok),
                runs_cpu=[round(r["cpu"], 2) for r in ok],
                runs_rss_mib=[round(r["rss_mib"]) for r in ok],
            )
            if all("ratio" in r for r in ok) and key in ("add", "push"):
                f["runs_ratio"] = [round(r["ratio"], 3) for r in ok]
                f["ratio_paired_median"] = med([r["ratio"] for r in ok])
            if key == "verify" and all("mb_s" in r for r in ok):
                f["mb_s"] = med([r["mb_s"] for r in ok])
                f["runs_mb_s"] = [round(r["mb_s"], 1) for r in ok]
        out[key] = f
    for key in ("add", "push"):
        if "wall" in out.get(key, {}) and "wall" in out.get(f"{key}_cp", {}):
            out[key]["ratio_of_medians"] = out[key]["wall"] / out[f"{key}_cp"]["wall"]
    for key, (kind, target) in TARGETS.items():
        f = out.get(key)
        if not f or "wall" not in f:
            continue
        if kind == "ratio":
            value = f.get("ratio_paired_median")
            f["target"] = f"<= {target} x cp -r"
        else:
            value = f["wall"]
            f["target"] = f"<= {target} s"
        if value is not None:
            f["pass"] = value <= target and not f["errors"]
            f["x_target"] = value / target
    return out


def table(results: dict) -> list[str]:
    lines = []
    for layout, lay in results["layouts"].items():
        fig = lay["figures"]
        lines.append("")
        lines.append(
            f"layout {layout!r}: {results['files']:,} files in {lay['tracked']} tracked director"
            f"{'y' if lay['tracked'] == 1 else 'ies'}, {lay['bytes'] / 1e6:.1f} MB; {len(lay['runs'])} runs"
        )
        head = (
            "step",
            "median wall",
            "each run (s)",
            "CPU s (user+sys)",
            "peak RSS MiB",
            "vs cp -r (each)",
            "target",
            "result",
        )
        rows = [head]
        for key, label in STEP_ORDER:
            f = fig.get(key)
            if not f:
                continue
            if "wall" not in f:
                rows.append((label, "ERROR", "", "", "", "", "", f["errors"][0][:80]))
                continue
            vs = ""
            if "ratio_paired_median" in f:
                vs = f"{f['ratio_paired_median']:.2f} x ({', '.join(f'{x:.2f}' for x in f['runs_ratio'])})"
            extra = f", {f['mb_s']:.1f} MB/s" if "mb_s" in f else ""
            result = ""
            if "pass" in f:
                result = ("pass" if f["pass"] else "FAIL") + (
                    f" ({f['x_target']:.1f} x target)" if not f["pass"] else ""
                )
            rows.append(
                (
                    label,
                    f"{f['wall']:.3f} s{extra}",
                    ", ".join(f"{x:.2f}" for x in f["runs_wall"]),
                    f"{f['cpu']:.2f} ({f['user']:.2f}+{f['sys']:.2f})",
                    f"{f['rss_mib']:.0f}",
                    vs,
                    f.get("target", ""),
                    result,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
    return lines


# -- main -------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000, help="tracked small files (default 100000; 2000: smoke)")
    ap.add_argument("--runs", type=int, default=3, help="runs of the whole sequence per layout (median)")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated: one, hundred")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before one command is killed")
    ap.add_argument(
        "--defer-deletes",
        action="store_true",
        help="delete each run's trees at the end, not before the next run (ext4 without a journal makes files "
        "slowly just after a large delete: docs/benchmarks.md)",
    )
    add_run_args(ap, code=True)
    args = ap.parse_args()
    layouts = [x for x in args.layouts.split(",") if x]
    if not set(layouts) <= set(LAYOUTS) or not layouts:
        fail(f"--layouts: choose from {', '.join(LAYOUTS)}")
    if args.files < 100 and "hundred" in layouts:
        fail("--files: at least 100 for the 'hundred' layout")

    base = tempfile.mkdtemp(prefix="mvc-bench-scale-", dir=args.workdir)
    env = isolated_env(base, aws=False, drop=("PYTHONPATH", "MVC_REMOTE"))
    code = snapshot(args.code, base)
    env["PYTHONPATH"] = code  # the console script imports this mvc
    fs = subprocess.run(["df", "-T", base], capture_output=True, text=True).stdout.splitlines()
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join([os.path.relpath(sys.executable, ROOT), "benchmarks/bench_scale.py", *sys.argv[1:]]),
        "machine": {**machine(), "workdir_filesystem": fs[-1].split()[1] if len(fs) > 1 else "?"},
        "tree": ("snapshot taken at the start: " + code_state(code))
        if not args.code
        else f"{code}: {code_state(code, head=False)}",
        "checkout_at_start": code_state(ROOT),
        "files": args.files,
        "runs": args.runs,
        "sizes": f"{MIN_SIZE}..{MAX_SIZE} bytes, random (seed {SEED})",
        "page_cache": "warm: every file read after each run's setup, then sync; drop_caches "
        + (
            "writable, not used: dropping it would disturb the other benchmarks sharing this machine"
            if can_drop_caches()
            else "refused: cold not measured"
        ),
        "mount": mount_of(base),
        "ext4_journal": ext4_journal(mount_of(base)),
        "gnu_time": bool(TIME),
        "targets": {k: (f"<= {t} x cp -r" if kind == "ratio" else f"<= {t} s") for k, (kind, t) in TARGETS.items()},
        "load_before": os.getloadavg(),
        "layouts": {},
    }
    say(f"bench_scale: {results['machine']}, {args.files:,} files, load average {os.getloadavg()}")
    say(f"code: {results['tree']}")
    b = Bench(args, base, env)
    t0 = time.perf_counter()
    try:
        # warm-up, untimed: byte-compile the code copy, and check every step works, on a tiny tree
        wu = Bench(argparse.Namespace(**{**vars(args), "files": 200}), base, env)
        wsrc = os.path.join(base, "src-warmup")
        make_tree(wsrc, "hundred", 200)
        say("warm-up (200 files, untimed):")
        wu.sequence("hundred", wsrc, 0, 0)
        shutil.rmtree(wsrc)
        if wu.errors:
            say(f"warm-up errors: {wu.errors}")
        results["warmup_errors"] = wu.errors
        srcs = {}
        for layout in layouts:
            src = os.path.join(base, f"src-{layout}")
            t = time.perf_counter()
            nbytes = make_tree(src, layout, args.files)
            srcs[layout] = (src, nbytes)
            say(
                f"tree {layout!r}: {args.files:,} files, {nbytes / 1e6:.1f} MB, made in {time.perf_counter() - t:.1f} s"
            )
            results["layouts"][layout] = {
                "tracked": len(tracked(layout, args.files)),
                "bytes": nbytes,
                "tree": du(src),
                "runs": [],
            }
        for r in range(1, args.runs + 1):
            order = layouts if r % 2 else layouts[::-1]  # the layouts alternate too
            for layout in order:
                src, nbytes = srcs[layout]
                results["layouts"][layout]["runs"].append(b.sequence(layout, src, r, nbytes))
        for layout in layouts:
            lay = results["layouts"][layout]
            lay["figures"] = figures(lay["runs"])
    finally:
        if args.keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    results["errors"] = b.errors
    results["seconds"] = time.perf_counter() - t0
    results["load_after"] = os.getloadavg()
    results["checkout_after"] = code_state(ROOT)
    if results["checkout_after"] != results["checkout_at_start"]:
        say(
            f"bench_scale: the checkout's mvc/ changed during the run (the run used the copy taken at the start): "
            f"{results['checkout_at_start']} -> {results['checkout_after']}"
        )
    lines = table(results)
    results["table"] = lines
    say("\n".join(lines))
    m = results["machine"]
    say(
        f"\n{m['nproc']} CPUs ({m['cpu']}), {m['workdir_filesystem']} work dir ({results['ext4_journal']}; "
        f"{results['mount']}), /tmp {m['tmp_filesystem']}; page cache: "
        f"{results['page_cache']}; load average before {results['load_before']}, after {results['load_after']}; "
        f"{results['seconds']:.0f} s"
    )
    for e in b.errors:
        say(f"ERROR in {e['step']}: {e['cmd']} (in {e['cwd']}): exit {e['exit']}: {e['error']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
