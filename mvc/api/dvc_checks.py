"""What ``mvc import-dvc`` checks before it changes anything, and the one line that says why it refuses: DVC files a
merge left unmerged, pointers and ``.gitignore`` files git would refuse to stage (ignored), and what a path given
that no DVC output is at is instead; and the md5 of a file as DVC computed it, and the work tree's file of an
output taken when it has it."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat

from mvc.errors import ForeignError, PathError
from mvc.format import dvcfile
from mvc.format.pointer import suggested
from mvc.repo import foreign_dvc
from mvc.repo import ignores as gitignores
from mvc.repo.repository import Repo


def md5_file(path: str, legacy: bool) -> str:
    """md5 of a file as DVC computed it: of its bytes; DVC 2.x hashed text files with CRLF turned into LF."""
    with open(path, "rb") as f:
        h = hashlib.md5(usedforsecurity=False)
        while chunk := f.read(1 << 22):
            h.update(chunk)
        digest = h.hexdigest()
        if not legacy:
            return digest
        f.seek(0)
        data = f.read(8000)
        if b"\0" in data or b"\r\n" not in data:
            return digest
        f.seek(0)
        return hashlib.md5(f.read().replace(b"\r\n", b"\n"), usedforsecurity=False).hexdigest()


def md5_wrong(path: str, md5: str, legacy: bool) -> str | None:
    """None when the file at path has DVC's md5 (DVC 2's CRLF-normalized one too, for ``legacy``), else the md5 it
    has."""
    got = md5_file(path, legacy)
    return None if got == md5 or (legacy and md5_file(path, False) == md5) else got


def from_worktree(path: str | None, md5: str, legacy: bool, tmp: str) -> bool:
    """Copy the work tree's file at path to tmp when it holds DVC's md5 (the copy is what is checked: the file may
    change meanwhile); False when there is none, or another version."""
    try:
        if path is None or not stat.S_ISREG(os.stat(path).st_mode):  # (a FIFO would block the read)
            return False
        shutil.copyfile(path, tmp)
    except OSError:
        return False
    return md5_wrong(tmp, md5, legacy) is None


def refuse_unmerged(repo: Repo) -> None:
    """Refuse a DVC file (.dvc, dvc.lock, dvc.yaml) a merge left unmerged in git's index: its outputs are not
    known until the conflict is resolved."""
    out = repo.git.run("ls-files", "-u", "-z").decode("utf-8", "surrogateescape")
    paths = sorted({rec.partition("\t")[2] for rec in out.split("\0") if "\t" in rec})
    dvc = [p for p in paths if foreign_dvc.is_dvc_file(posixpath.basename(p))]
    if dvc:
        p = dvc[0]
        more = f" (and {len(dvc) - 1} more DVC files)" if len(dvc) > 1 else ""
        raise ForeignError(
            f"{p} has an unresolved merge conflict{more}: resolve it ('git add {p}' to keep the version in the "
            f"work tree, or 'git rm {p}'), then run 'mvc import-dvc' again"
        )


def refuse_ignored(repo: Repo, outs: list[dvcfile.Out]) -> None:
    """Refuse, before anything is written, outputs whose pointer or .gitignore git ignores (DVC's usual
    '/models/*' with '!/models/*.dvc'), naming the line that ignores them and the lines that let git take them."""
    stage = {Repo.pointer_of(o.path) for o in outs} | {gitignores.entry(o.path)[0] for o in outs}
    hit = repo.git.ignoring(sorted(stage))
    if not hit:
        return
    first = min(hit, key=lambda r: (not r.endswith(".mvc"), r))  # a pointer first: what the user knows
    source, line, pattern = hit[first]
    more = f" (and {len(hit) - 1} more)" if len(hit) > 1 else ""
    raise PathError(
        f"{first}{more} would be ignored by git ({source}:{line} '{pattern}'): {repo.git.unignoring(hit, first)}, "
        "then run 'mvc import-dvc' again"
    )


def why_no_output(repo: Repo, rel: str) -> PathError | None:
    """Why no DVC output import-dvc reads is at rel, when it is something else: a .dvc file git does not track, a
    ``cache: false`` output of a .dvc file or a dvc.yaml stage, a path mvc tracks already; else None."""
    dvc_file = rel if rel.endswith(foreign_dvc.SUFFIX) else rel + foreign_dvc.SUFFIX
    if os.path.isfile(repo.abs(dvc_file)):
        if not repo.git.tracked([dvc_file]):
            hit = repo.git.ignoring([dvc_file]).get(dvc_file)
            why = f"ignored by {hit[0]}:{hit[1]} '{hit[2]}'" if hit else "never added"
            out = rel.removesuffix(foreign_dvc.SUFFIX)
            return PathError(
                f"{dvc_file} is not tracked by git ({why}): {suggested('git add -f {}', dvc_file)} to import it, or "
                f"{suggested('mvc add {}', out)} to track the file without DVC's record"
            )
        return PathError(
            f"{rel}: {dvc_file} names no output DVC caches (cache: false: git tracks the file itself): mvc "
            "imports only what DVC caches; track it with 'mvc add' if it belongs in mvc"
        )
    stage = _uncached_stage(repo, rel)
    if stage is not None:
        return PathError(
            f"{rel} is a cache: false output of stage {stage[1]} ({stage[0]}): git tracks the file itself and mvc "
            f"imports only what DVC caches; track it with {suggested('mvc add {}', rel)} if it belongs in mvc"
        )
    if os.path.isfile(repo.abs(Repo.pointer_of(rel))):
        return PathError(f"{rel} is tracked by mvc already (no DVC file names it now): nothing to import")
    return None


def _uncached_stage(repo: Repo, rel: str) -> tuple[str, str] | None:
    """(dvc.yaml, stage name) of the stage declaring rel a ``cache: false`` output, or None."""
    out = repo.git.run("ls-files", "-z").decode("utf-8", "surrogateescape")
    for path in [p for p in out.split("\0") if posixpath.basename(p) == foreign_dvc.PIPELINE]:
        try:
            with open(repo.abs(path), "rb") as f:
                stages = dvcfile.stages(f.read(dvcfile.MAX_LOCK_FILE + 1), path)
        except (OSError, ForeignError):  # a damaged dvc.yaml explains nothing
            continue
        for name, (wdir, uncached) in stages.items():
            if wdir is not None and any(posixpath.normpath(posixpath.join(wdir, p)) == rel for p in uncached):
                return path, name
    return None
