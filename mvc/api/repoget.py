"""``get`` from this repository: write a version of a tracked path anywhere outside the work tree, from the
cache (fetching what it lacks first), touching neither the work tree nor the pointers."""

from __future__ import annotations

import errno
import os
from typing import Any

from mvc import progress as progressmod
from mvc.api import outputs
from mvc.format import pointer as ptrfmt
from mvc.objects import manifest as mf
from mvc.repo.remotes import ensure_objects
from mvc.repo.repository import Repo, open_repo
from mvc.repo.selection import model_refs, pointer_for


def get(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    rev: str | None = None,
    force: bool = False,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
    resolved: tuple[str, ptrfmt.Pointer, str | None] | None = None,
) -> dict[str, Any]:
    """Write the tracked path as of rev to out, touching neither the work tree nor the pointers.
    path may be a registry revision (``churn@v1.2.0``, ``churn#prod``): that model's path at that revision.
    resolved: (pointer relpath, pointer, the revision as shown) when the caller has read them already."""
    repo = open_repo(repo)
    if resolved is not None:
        prel, p, shown_rev = resolved
    else:
        path = os.fspath(path)
        refs = model_refs(repo, [path], rev)
        shown_rev = rev
        if refs:
            shown_rev, path, rev = refs[0][0], repo.abs(refs[0][1]), refs[0][2]
        prel, p = pointer_for(repo, path, rev)
    rel = Repo.target_of(prel)
    at = f" at {shown_rev}" if shown_rev else ""
    out = os.path.abspath(out)
    outputs.check(out, p.kind, force, repo.root)
    parent = os.path.dirname(out)
    made = outputs.make_dirs(parent)
    try:
        _write_out(repo, rel, at, p, out, parent, force, progress)
    except BaseException:
        outputs.unmake(made)  # a failed get leaves nothing behind, not even the directories it made
        raise
    return {"path": rel, "out": out, "kind": p.kind, "oid": p.oid, "size": p.size, "rev": shown_rev}


def _write_out(
    repo: Repo,
    rel: str,
    at: str,
    p: ptrfmt.Pointer,
    out: str,
    parent: str,
    force: bool,
    progress: progressmod.Factory,
) -> None:
    """get's writing of version p of rel to out (its objects fetched first)."""
    # before the bar: a fetch draws its own
    label = f"{rel}{at}" if p.kind == "file" else f"the manifest of directory {rel}{at}"
    ensure_objects(repo, {p.oid: p.size if p.kind == "file" else 0}, progress, {p.oid: (label, rel)})
    entries = mf.loads(repo.odb.read_bytes(p.oid), p.oid) if p.kind == "dir" else []
    ensure_objects(
        repo,
        {e.oid: e.size for e in entries},
        progress,
        {e.oid: (f"{rel}/{e.path} of directory {rel}{at}", rel) for e in entries},
    )
    bar = progress(f"writing {out}", p.size)
    try:
        if p.kind == "file":
            claim = (p.size, f"{rel}{at}")
            how = ("reflink", "copy")
            if force:
                repo.odb.export(p.oid, out, how, executable=p.executable, progress=bar.update, claim=claim)
                return
            # export replaces what is at its dest: it writes a temp, which only put gives OUT's name
            for last in (False, True):
                tmp = repo.odb.temp_for(parent, os.path.basename(out))
                try:
                    repo.odb.export(p.oid, tmp, how, executable=p.executable, progress=bar.update, claim=claim)
                    outputs.put(tmp, out, force)
                    return
                except BaseException as err:
                    outputs.remove(tmp)
                    if last or not (isinstance(err, OSError) and err.errno == errno.EXDEV):
                        raise
                    repo.odb.work_temps.unreachable(parent)  # another mount of its filesystem: a temp beside OUT
        else:
            import shutil  # not at the top: see _apply

            tmp = repo.odb.temp_for(parent, os.path.basename(out))  # .mvc/tmp when on out's filesystem
            try:
                os.mkdir(tmp)
                for e in entries:
                    target = os.path.join(tmp, *e.path.split("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    claim = (e.size, f"{rel}/{e.path} of directory {rel}{at}")
                    repo.odb.export(
                        e.oid, target, ("reflink", "copy"), executable=e.executable, progress=bar.update, claim=claim
                    )
                outputs.remember(tmp, out)
                outputs.put(tmp, out, force)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    finally:
        bar.close()
