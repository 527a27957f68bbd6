"""gc interleaved with add, push and fetch from several processes at once (docs/FORMAT.md, "What gc keeps"):
afterwards no object that anything in the keep set needs is missing, from the cache or from the remote.

Each run has two clones of one repository, A and B, a bare git repository both use as ``origin``, and an mvc
remote ``store`` (a directory, or S3 on the moto server). Before the run, A gets garbage in its cache and on
the remote, old by the time the loops below look at it. It also gets parts of the keep set that are never
committed and stay put: a pointer only in the work tree, one only in the index, two stash entries.

Five actors then run at once. Each is a thread of this test that runs its steps one after another as real
processes (the mvc CLI, the git binary), so up to five mvc and git processes run side by side:

- writer, in A: writes new versions of ``m.bin`` and of the directory ``d``, then runs ``mvc add`` (again when
  it says the object left the cache under it), ``git commit`` or ``git commit --amend``, ``mvc push --rev
  HEAD`` and ``git push --force``. Between those steps it adds ``s.bin`` without committing it. Those adds take
  their content from a pool of three, so garbage is wanted again and ``mvc add`` has to freshen it. The
  writer also throws those adds away or stashes them, tags and untags, and expires the reflogs, so amended
  versions become garbage;
- gc of A's cache (``mvc gc --force``, with a drawn ``--keep-last``) and gc of the remote from A (``mvc gc -r
  store --force``), each in a loop;
- in B: ``git fetch`` + ``git reset --hard`` + ``mvc pull``, or ``mvc fetch``, in a loop, beside a loop of
  ``mvc gc --force`` of B's cache.

Hypothesis draws the schedules: the writer's operations, sizes and pauses, each loop's pauses, and the
``--keep-last`` of A's gc. It draws schedules, not interleavings. How the processes interleave is up to the
machine, so a failure may not repeat. Shrinking is switched off, because each example is several seconds
of real processes. A failure prints the timeline of every step.

Afterwards the test computes the keep set from git alone, as FORMAT.md defines it: the pointers of the work
tree, the index, every ref, HEAD, the stash entries and their parents, and, unless ``--keep-last`` narrowed
it, the whole history and the reflogs. It then checks that:

- every object the keep set needs is in A's cache, with the bytes the writer wrote;
- every such object that was pushed is on the remote with those bytes;
- ``mvc verify`` and ``mvc verify -r`` (of HEAD and the tags) pass, and a fresh clone of A fetches every
  branch and tag byte for byte;
- B's cache still holds every version B pulled (its reflog keeps them all), and B pulls A's last version;
- no process prints a traceback. gc, fetch and pull may fail only with mvc's one error line.

The test checks the guarantee the docs give. The grace period "covers the objects of commands still running",
so the loops run with a grace longer than one command but shorter than the run: 2 s on the cache and 3 s on
the remote. The loops go on until the writer is done and the run has lasted RUN_AT_LEAST, so old garbage
does get deleted while the others work (the test checks that gc deleted something). Every version the writer
pushes is a new content. FORMAT.md ("Not yet, on a remote") says a push does not freshen an object it finds
already on the remote, so a push of garbage that is wanted again, racing a gc of the remote, is the documented
unsafe case. It is not tested here. The two tests at the end pause a gc right after it computed its keep set
and write meanwhile: with ``--grace 0`` an object written after the run started is still kept (gc reads its
clock first).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib
from conftest import git, run_mvc
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from remote_suite import LocalBackend, S3Backend, oid_of, read_stored, rel_of, stored

CACHE_GRACE = "2s"
REMOTE_GRACE = "3s"
RUN_AT_LEAST = 3.5  # seconds the loops go on (after the writer is done, if need be): garbage gets old meanwhile
POOL = [random.Random(7000 + i).randbytes(3000 + 500 * i) for i in range(3)]  # s.bin's contents, reused
SIZES = [900, 20_000, 150_000]
TIMEOUT = 120

# -- the schedules --------------------------------------------------------------------------------
pause = st.sampled_from([0.0, 0.01, 0.05, 0.15])  # the writer's
loop_pause = st.sampled_from([0.1, 0.3, 0.6])  # the loops': fewer processes at once on a small machine
# (commit or amend, which path, the size, which files of d change)
write_op = st.tuples(
    st.sampled_from(["commit", "amend"]),
    st.sampled_from(["m.bin", "d"]),
    st.sampled_from(SIZES),
    st.sampled_from(["a", "b", "ab"]),
)
scratch_op = st.tuples(st.sampled_from(["scratch", "stash"]), st.integers(0, len(POOL) - 1))
other_op = st.tuples(st.sampled_from(["forget", "expire", "tag", "untag"]))
schedules = st.fixed_dictionaries(
    {
        "writer": st.lists(
            st.tuples(pause, st.one_of(write_op, write_op, scratch_op, other_op)), min_size=4, max_size=6
        ),
        "cache_gc": st.lists(loop_pause, min_size=1, max_size=3),
        "keep_last": st.sampled_from([None, None, 0, 1]),
        "remote_gc": st.lists(loop_pause, min_size=1, max_size=3),
        "reader": st.lists(st.tuples(loop_pause, st.sampled_from(["sync", "sync", "fetch"])), min_size=1, max_size=3),
        "reader_gc": st.lists(loop_pause, min_size=1, max_size=3),
    }
)


# -- the world and its actors -----------------------------------------------------------------------
@dataclass
class Step:
    who: str
    argv: list[str]
    start: float
    end: float
    returncode: int
    stdout: str
    stderr: str


@dataclass
class World:
    top: Path
    a: Path
    b: Path
    backend: LocalBackend | S3Backend
    known: dict[str, bytes] = field(default_factory=dict)  # every object made here: oid -> bytes
    pushed: set[str] = field(default_factory=set)  # the objects of A's HEAD after each of its pushes
    pulled: set[str] = field(default_factory=set)  # the objects of B's work tree after each of its pulls
    steps: list[Step] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    t0: float = field(default_factory=time.monotonic)

    def run(self, who: str, cwd: Path, argv: list[str], check: bool = True) -> Step:
        """argv (``mvc …`` or ``git …``) as a process of its own, recorded in the timeline."""
        start = time.monotonic()
        if argv[0] == "mvc":
            p = run_mvc(*argv[1:], cwd=cwd, timeout=TIMEOUT)
        else:
            p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
        step = Step(who, argv, start, time.monotonic(), p.returncode, p.stdout, p.stderr)
        with self.lock:
            self.steps.append(step)
        if check and p.returncode != 0:
            raise AssertionError(f"{who}: {' '.join(argv)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
        return step

    def timeline(self) -> str:
        lines = []
        for s in sorted(self.steps, key=lambda s: s.start):
            err = " | ".join(s.stderr.strip().splitlines()[-2:])
            lines.append(
                f"{s.start - self.t0:7.3f} {s.end - self.t0:7.3f} {s.who:6} {s.returncode} {' '.join(s.argv)}  {err}"
            )
        return "\n".join(lines)


def blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def put(w: World, path: Path, data: bytes) -> None:
    w.known[oid_of(data)] = data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a checked-out file may be read-only
    path.write_bytes(data)


def make_world(top: Path, backend: LocalBackend | S3Backend) -> World:
    """A with m.bin and d/ committed and pushed to the bare origin and to store; garbage in both (a version of
    m.bin pushed then amended away; s.bin added then its pointer thrown away); pointers only in the work tree,
    only in the index, in stash entries; B a clone with the versions pulled."""
    a, b, bare = top / "A", top / "B", top / "origin.git"
    top.mkdir()
    git(top, "init", "-q", "--bare", str(bare))
    git(top, "init", "-q", str(a))
    w = World(top, a, b, backend, known={oid_of(data): data for data in POOL})
    w.run("setup", a, ["mvc", "init"])
    w.run("setup", a, ["mvc", "remote", "add", "store", backend.url, "--default"])
    for key, value in backend.options.items():
        w.run("setup", a, ["mvc", "remote", "modify", "store", key, value])
    git(a, "add", "-A")
    git(a, "commit", "-q", "-m", "init")  # the root: no amend makes another one (the remote names it, repos/)
    for rel, seed, size in (("m.bin", 1, 5000), ("d/a.bin", 2, 700), ("d/b.bin", 3, 900)):
        put(w, a / rel, blob(seed, size))
    put(w, a / "s.bin", POOL[0])
    w.run("setup", a, ["mvc", "add", "m.bin", "d", "s.bin", "-q"])
    record_manifest(w, a / "d.mvc")
    git(a, "rm", "-q", "--cached", "s.bin.mvc")
    (a / "s.bin.mvc").unlink()
    git(a, "commit", "-q", "-m", "setup")
    put(w, a / "m.bin", blob(4, 6000))
    w.run("setup", a, ["mvc", "add", "m.bin", "-q"])
    git(a, "commit", "-q", "--amend", "-m", "setup")
    w.run("setup", a, ["mvc", "push", "-q", "--rev", "HEAD", "--rev", "HEAD@{1}"])  # HEAD@{1}: amended away
    w.pushed |= objects_of(w, pointers_at(a, ["HEAD"]))
    git(a, "reflog", "expire", "--expire=now", "--all")
    # kept, never committed: u.bin's pointer only in the work tree, i.bin's only in the index, two stash entries
    put(w, a / "u.bin", blob(5, 4000))
    put(w, a / "i.bin", blob(6, 4000))
    w.run("setup", a, ["mvc", "add", "u.bin", "i.bin", "-q"])
    git(a, "rm", "-q", "--cached", "u.bin.mvc")
    (a / "i.bin.mvc").unlink()
    for seed in (7, 8):
        put(w, a / "s.bin", blob(seed, 4000))
        w.run("setup", a, ["mvc", "add", "s.bin", "-q"])
        git(a, "stash", "push", "-q", "--", "s.bin.mvc")
    git(a, "remote", "add", "origin", str(bare))
    git(a, "push", "-q", "origin", "HEAD:main")
    git(a, "fetch", "-q", "origin")
    git(top, "clone", "-q", str(bare), str(b))
    w.run("setup", b, ["mvc", "pull", "-q"])
    w.pulled |= objects_of(w, pointers_in_worktree(b))
    return w


class Writer:
    """A's writer. Every version it commits is a new content; s.bin (never committed) cycles through POOL."""

    def __init__(self, w: World):
        self.w = w
        self.seeds = itertools.count(100)
        self.tags: list[str] = []

    def add(self, path: str) -> bool:
        for _ in range(5):
            step = self.w.run("writer", self.w.a, ["mvc", "add", path, "-q"], check=False)
            if step.returncode == 0:
                record_manifest(self.w, self.w.a / f"{path}.mvc")
                return True
            assert "left the cache" in step.stderr, step.stderr  # a gc took it meanwhile: add again
        return False

    def __call__(self, ops: list) -> None:
        run, w, a = self.w.run, self.w, self.w.a
        for delay, op in ops:
            time.sleep(delay)
            kind = op[0]
            if kind in ("commit", "amend"):
                _, path, size, which = op
                for rel in ["m.bin"] if path == "m.bin" else [f"d/{n}.bin" for n in which]:
                    put(w, a / rel, blob(next(self.seeds) * 7919, size))
                assert self.add(path), f"mvc add {path} failed five times"
                amend = ["--amend"] if kind == "amend" else []
                run("writer", a, ["git", "commit", "-q", *amend, "-m", f"{kind} {path}", "--", f"{path}.mvc"])
                run("writer", a, ["mvc", "push", "-q", "--rev", "HEAD"])
                w.pushed |= objects_of(w, pointers_at(a, ["HEAD"]))
                run("writer", a, ["git", "push", "-q", "--force", "origin", "HEAD:main"])
            elif kind in ("scratch", "stash"):
                put(w, a / "s.bin", POOL[op[1]])
                if self.add("s.bin") and kind == "stash":
                    run("writer", a, ["git", "stash", "push", "-q", "--", "s.bin.mvc"])
            elif kind == "forget":
                self.forget()
            elif kind == "expire":
                run("writer", a, ["git", "reflog", "expire", "--expire=now", "--all"])
            elif kind == "tag":
                self.tags.append(f"t{next(self.seeds)}")
                run("writer", a, ["git", "tag", self.tags[-1]])
            elif kind == "untag" and self.tags:
                run("writer", a, ["git", "tag", "-d", self.tags.pop(0)])

    def forget(self) -> None:
        if (self.w.a / "s.bin.mvc").exists():
            self.w.run("writer", self.w.a, ["git", "rm", "-q", "--cached", "--ignore-unmatch", "s.bin.mvc"])
            (self.w.a / "s.bin.mvc").unlink()


def loop(w: World, who: str, cwd: Path, pauses: list[float], argv: list[str], done: threading.Event) -> None:
    """argv after each pause in turn, cycling, until done (at least once)."""
    for delay in itertools.cycle(pauses):
        time.sleep(delay)
        w.run(who, cwd, argv, check=False)
        if done.is_set():
            return


def reader(w: World, ops: list, done: threading.Event) -> None:
    """B follows origin: its branch reset to origin's, the versions pulled (or only fetched)."""
    for delay, op in itertools.cycle(ops):
        time.sleep(delay)
        if op == "sync":
            w.run("reader", w.b, ["git", "fetch", "-q", "origin"])
            w.run("reader", w.b, ["git", "reset", "-q", "--hard", "origin/main"])
            step = w.run("reader", w.b, ["mvc", "pull", "-q"], check=False)
        else:
            step = w.run("reader", w.b, ["mvc", "fetch", "-q"], check=False)
        if step.returncode == 0:
            w.pulled |= objects_of(w, pointers_in_worktree(w.b))
        if done.is_set():
            return


def run_actors(w: World, schedule: dict) -> None:
    done = threading.Event()
    errors: list[BaseException] = []
    writer = Writer(w)
    gc = ["mvc", "gc", "--force", "--json", "-q"]
    keep_last = [] if schedule["keep_last"] is None else ["--keep-last", str(schedule["keep_last"])]
    actors = [
        (writer, schedule["writer"]),
        (loop, w, "gc", w.a, schedule["cache_gc"], [*gc, "--grace", CACHE_GRACE, *keep_last], done),
        (loop, w, "gc -r", w.a, schedule["remote_gc"], [*gc, "-r", "store", "--grace", REMOTE_GRACE], done),
        (reader, w, schedule["reader"], done),
        (loop, w, "B gc", w.b, schedule["reader_gc"], [*gc, "--grace", CACHE_GRACE], done),
    ]
    start = time.monotonic()

    def guarded(fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:
            errors.append(e)
        finally:
            if fn is writer:
                time.sleep(max(0.0, start + RUN_AT_LEAST - time.monotonic()))
                done.set()  # each loop stops after its step under way

    threads = [threading.Thread(target=guarded, args=actor) for actor in actors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=4 * TIMEOUT)
    assert not any(t.is_alive() for t in threads), w.timeline()
    if errors:
        raise AssertionError(f"{errors[0]}\n\ntimeline:\n{w.timeline()}") from errors[0]


# -- the keep set, from git alone -------------------------------------------------------------------
def is_pointer(path: str) -> bool:
    return path.endswith(".mvc") and not path.startswith(".mvc/")


def cat_blobs(root: Path, labelled: list[tuple[str, str]]) -> dict[str, bytes]:
    """{label: the blob's bytes} of [(label, blob sha)], with one git cat-file --batch."""
    if not labelled:
        return {}
    shas = "".join(f"{sha}\n" for _, sha in labelled).encode()
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=root, input=shas, capture_output=True, check=True).stdout
    found, i = {}, 0
    for label, _ in labelled:
        header_end = out.index(b"\n", i)
        size = int(out[i:header_end].split()[2])
        found[label] = out[header_end + 1 : header_end + 1 + size]
        i = header_end + 1 + size + 1
    return found


def pointers_at(root: Path, commits: list[str]) -> dict[str, bytes]:
    """{"PATH at COMMIT": pointer bytes} of every pointer in these commits' trees."""
    found = []
    for commit in commits:
        for entry in git(root, "ls-tree", "-r", "-z", commit).split("\0"):
            meta, _, path = entry.partition("\t")
            if is_pointer(path):
                found.append((f"{path} at {commit[:10]}", meta.split()[2]))
    return cat_blobs(root, found)


def pointers_in_index(root: Path) -> dict[str, bytes]:
    found = []
    for entry in git(root, "ls-files", "-s", "-z").split("\0"):
        meta, _, path = entry.partition("\t")
        if is_pointer(path):
            found.append((f"{path} (index)", meta.split()[1]))
    return cat_blobs(root, found)


def pointers_in_worktree(root: Path) -> dict[str, bytes]:
    found = {}
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", ".mvc")]
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if is_pointer(rel):
                found[f"{rel} (work tree)"] = Path(dirpath, name).read_bytes()
    return found


def tips(root: Path) -> set[str]:
    """The commits of every ref and of HEAD, every stash entry and its parents."""
    refs = git(root, "for-each-ref", "--format=%(refname)").split()
    commits = set(git(root, "rev-parse", "HEAD", *[f"{ref}^{{commit}}" for ref in refs]).split())
    if "refs/stash" in refs:
        stashes = {
            *git(root, "log", "-g", "--format=%H", "refs/stash").split(),
            git(root, "rev-parse", "refs/stash").strip(),
        }
        for line in git(root, "rev-list", "--no-walk", "--parents", *stashes).splitlines():
            commits |= set(line.split())
    return commits


def keep_set(root: Path, history: bool) -> dict[str, bytes]:
    """{label: pointer bytes} of every pointer gc keeps (FORMAT.md, "The keep set"). With history, the whole
    history and the reflogs too; without it, the part that gc keeps whatever its options."""
    commits = tips(root)
    if history:
        commits |= set(git(root, "rev-list", "--all", "--reflog").split())
    return {**pointers_at(root, sorted(commits)), **pointers_in_worktree(root), **pointers_in_index(root)}


def record_manifest(w: World, pointer_file: Path) -> None:
    """The manifest a directory pointer names, read from A's cache right after mvc add wrote the pointer."""
    pointer = tomllib.loads(pointer_file.read_text())
    if pointer["kind"] == "dir" and pointer["oid"] not in w.known:
        data = cache_bytes(w.a, pointer["oid"])
        assert oid_of(data) == pointer["oid"]
        w.known[pointer["oid"]] = data


def needed_by(w: World, pointers: dict[str, bytes]) -> dict[str, list[str]]:
    """{oid: labels of the pointers that need it}: a file's oid; a directory's manifest and its entries."""
    out: dict[str, list[str]] = {}
    for label, data in pointers.items():
        pointer = tomllib.loads(data.decode())
        need = {pointer["oid"]}
        if pointer["kind"] == "dir":
            lines = w.known[pointer["oid"]].decode().splitlines()
            assert lines[0] == "mvc-manifest 1"
            need |= {json.loads(line)[1] for line in lines[1:]}
        for oid in need:
            out.setdefault(oid, []).append(label)
    return out


def objects_of(w: World, pointers: dict[str, bytes]) -> set[str]:
    return set(needed_by(w, pointers))


def cache_oids(root: Path) -> set[str]:
    """The objects of root's cache: object files, and objects in cache packs."""
    from mvc.objects.odb import ODB

    return set(ODB(str(root / ".mvc" / "cache")).all_oids())


def cache_bytes(root: Path, oid: str) -> bytes:
    from mvc.objects.odb import ODB

    return ODB(str(root / ".mvc" / "cache")).read_bytes(oid)


# -- what must hold afterwards ----------------------------------------------------------------------
def check_steps(w: World) -> dict[str, int]:
    """No traceback anywhere; every mvc that failed said one error line. Returns what each gc loop deleted."""
    deleted = {"gc": 0, "gc -r": 0, "B gc": 0}
    for s in w.steps:
        assert "Traceback" not in s.stderr + s.stdout, f"{' '.join(s.argv)}:\n{s.stderr}"
        if s.argv[0] == "mvc" and s.returncode != 0:
            lines = [line for line in s.stderr.splitlines() if not line.startswith("mvc: ")]
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{' '.join(s.argv)}:\n{s.stderr}"
        if s.who in deleted and s.returncode == 0:
            r = json.loads(s.stdout)
            deleted[s.who] += r["files"] if s.who == "gc -r" else r["objects"]
    return deleted


def check_cache(w: World, keep_last: int | None) -> None:
    """Every object A's keep set needs is in A's cache, with the bytes the writer wrote; mvc verify agrees."""
    need = needed_by(w, keep_set(w.a, history=keep_last is None))
    have = cache_oids(w.a)
    lost = {oid: labels for oid, labels in need.items() if oid not in have}
    assert not lost, f"lost from A's cache: {lost}\n\ntimeline:\n{w.timeline()}"
    for oid in need:
        assert cache_bytes(w.a, oid) == w.known[oid], oid
    w.run("check", w.a, ["mvc", "verify", "-q"])


def check_remote(w: World) -> None:
    """Every pushed object that A's whole keep set needs is on the remote, byte for byte; mvc verify -r agrees,
    and a fresh clone of A fetches every branch and tag from there."""
    need = needed_by(w, keep_set(w.a, history=True))
    on_remote = stored(w.backend)
    lost = {oid: labels for oid, labels in need.items() if oid in w.pushed and rel_of(oid) not in on_remote}
    assert not lost, f"lost from the remote: {lost}\n\ntimeline:\n{w.timeline()}"
    for oid in need.keys() & w.pushed:
        assert read_stored(w.backend, rel_of(oid)) == w.known[oid], oid
    w.run("check", w.a, ["mvc", "verify", "-r", "store", "-q", "--rev", "HEAD", "--all-tags"])  # s.bin: not pushed
    fresh = w.top / "fresh"
    git(w.top, "clone", "-q", "--no-local", str(w.a), str(fresh))
    refs = git(fresh, "for-each-ref", "--format=%(refname)").split()
    revs = [ref.split("/", 2)[2] for ref in refs if not ref.endswith("/HEAD")]  # main, origin/main, tags
    w.run("check", fresh, ["mvc", "fetch", "-q", *[f"--rev={rev}" for rev in revs]])
    for oid in objects_of(w, pointers_at(fresh, revs)):
        assert cache_bytes(fresh, oid) == w.known[oid], oid


def check_reader(w: World) -> None:
    """B's cache holds every version B pulled (B's reflog keeps every commit it was at); B pulls A's last."""
    lost = w.pulled - cache_oids(w.b)
    assert not lost, f"lost from B's cache: {lost}\n\ntimeline:\n{w.timeline()}"
    w.run("check", w.b, ["git", "fetch", "-q", "origin"])
    w.run("check", w.b, ["git", "reset", "-q", "--hard", "origin/main"])
    w.run("check", w.b, ["mvc", "pull", "-q"])
    for rel in ("m.bin", "d/a.bin", "d/b.bin"):
        assert (w.b / rel).read_bytes() == (w.a / rel).read_bytes(), rel
    w.run("check", w.b, ["mvc", "verify", "-q"])


# -- the tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["directory", "s3", "directory, cache packs"])
def test_gc_interleaved_with_add_push_and_fetch_loses_nothing_kept(tmp_path, request, monkeypatch, where):
    """(``cache packs``: every mvc process stores 2 new files or more of a directory by forked processes, in cache
    packs (docs/FORMAT.md, "Cache packs"), and stats them by forked processes too.)"""
    endpoint = request.getfixturevalue("s3_endpoint") if where == "s3" else None
    packed = where.endswith("cache packs")
    if packed:
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            "import mvc.repo.storing as s, mvc.repo.worktree as w\ns.PARALLEL_FROM = 2\nw.STAT_FORKED_FROM = 2\n"
        )
        monkeypatch.setenv("PYTHONPATH", str(site))
    examples = itertools.count()
    deleted = {"gc": 0, "gc -r": 0, "B gc": 0}

    @settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate])
    @given(schedule=schedules)
    def run(schedule: dict) -> None:
        n = next(examples)
        if endpoint:
            backend = S3Backend(endpoint)
            backend.prefix = f"run{n}"  # a store of its own
            backend.url = f"s3://{backend.bucket}/{backend.prefix}"
        else:
            backend = LocalBackend(tmp_path / f"store{n}")
        w = make_world(tmp_path / f"run{n}", backend)
        try:
            run_actors(w, schedule)
            for who, count in check_steps(w).items():
                deleted[who] += count
            check_cache(w, schedule["keep_last"])
            check_remote(w)
            check_reader(w)
            if packed:  # not vacuous: A's cache took packs (its marker is raised before the first one)
                assert (w.a / ".mvc" / "cache" / "mvc.toml").read_text().endswith("format = 5\n")
        finally:
            shutil.rmtree(w.top, ignore_errors=True)

    run()
    # not vacuous: the loops deleted what got old meanwhile (the garbage made before, at least)
    assert deleted["gc"] > 0 and deleted["gc -r"] > 0, deleted


# -- with --grace 0, an object written after gc started is deleted -----------------------------------
# gc reads the clock it compares objects' times with (time.time() in mvc/api/gc.py) only after it has
# computed its keep set, and on a remote only after the listing. FORMAT.md measures from the start of the run:
# "An object whose mtime or ctime is later than the start of the run minus the grace MUST be kept", and on a
# remote "every file the listing dates later than the start of the run minus the grace". So an object that a
# command writes and names while gc computes its keep set is deleted (computing the keep set takes long in a
# large history). In these tests gc is a real process that pauses after computing its keep set until told to
# go on. That gives the same order a slow keep set gives, every time.
class Lost(AssertionError):
    """An object that MUST have been kept is gone."""


PAUSED_GC = """
import os, sys, time
import mvc.repo.reach as reach

computed = reach.keep_set

def keep_set(*args, **kw):
    found = computed(*args, **kw)
    open("gc-paused", "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists("gc-go") and time.monotonic() < deadline:
        time.sleep(0.01)
    return found

reach.keep_set = keep_set
from mvc.cli import main
sys.argv[0] = "mvc"
main()
"""


def paused_gc(repo: Path, *args: str) -> subprocess.Popen:
    """mvc gc ARGS in a process of its own, paused once it has computed its keep set."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_GC, "gc", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (repo / "gc-paused").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    return proc


def resume(repo: Path, proc: subprocess.Popen) -> dict:
    (repo / "gc-go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    return json.loads(out)


def test_an_add_while_gc_computes_its_keep_set_keeps_its_object(repo):
    gc = paused_gc(repo, "--grace", "0", "--force", "--json", "-q")
    (repo / "new.bin").write_text("added while gc was running\n")
    run_mvc("add", "new.bin", "-q", cwd=repo, check=True)  # stored after gc started: MUST be kept
    git(repo, "commit", "-q", "-m", "new")
    oid = tomllib.loads((repo / "new.bin.mvc").read_text())["oid"]
    r = resume(repo, gc)
    if oid not in cache_oids(repo):
        raise Lost(f"gc deleted {r['objects']} object(s), new.bin's among them")


def test_a_push_while_gc_of_the_remote_computes_its_keep_set_stays_there(repo, tmp_path):
    store = tmp_path / "store"
    run_mvc("remote", "add", "store", str(store), "--default", cwd=repo, check=True)
    (repo / "m.bin").write_text("version 1\n")
    run_mvc("add", "m.bin", "-q", cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    run_mvc("push", "-q", cwd=repo, check=True)  # now the remote names this repository (repos/)
    gc = paused_gc(repo, "-r", "store", "--grace", "0", "--force", "--json", "-q")
    (repo / "m.bin").write_text("version 2, pushed while gc was running\n")
    run_mvc("add", "m.bin", "-q", cwd=repo, check=True)
    git(repo, "commit", "-q", "-m", "v2", "--", "m.bin.mvc")
    run_mvc("push", "-q", cwd=repo, check=True)  # uploaded after gc started: MUST be kept
    oid = tomllib.loads((repo / "m.bin.mvc").read_text())["oid"]
    r = resume(repo, gc)
    if rel_of(oid) not in stored(LocalBackend(store)):
        raise Lost(f"gc deleted {r['files']} file(s), version 2 among them")
