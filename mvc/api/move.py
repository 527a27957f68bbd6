"""``mvc mv``: a tracked file or directory and its pointer moved together, keeping the record, the model's name
and its history (``git mv`` of the pointer, so the rename is staged and ``mvc log NAME`` follows it)."""

from __future__ import annotations

import errno
import os
from typing import Any

from mvc.errors import PathError
from mvc.format import config as cfgfmt
from mvc.format.config import CONFIG, LOCK, MVC_DIR
from mvc.format.pointer import SUFFIX, has_control, suggested
from mvc.repo import ignores as gitignores
from mvc.repo.repository import Repo, open_repo, quoted
from mvc.repo.selection import load_pointer, not_utf8
from mvc.storage.lock import locked


def mv(old: str | os.PathLike, new: str | os.PathLike, *, repo: Repo | None = None) -> dict[str, Any]:
    """Move the tracked path old (its data when present, its pointer, its .gitignore entry, the model names
    mapping it) to new, staging the change. Refuses, before moving anything, a new path that exists, that mvc
    never tracks, that lies in a tracked directory, or an old path mvc does not track. Returns {old, new, kind,
    names, data}: data says whether the workspace held the file or directory to move."""
    repo = open_repo(repo)
    old, new = os.fspath(old), os.fspath(new)
    src = _target(repo, old)
    as_pointers = repo.rel(old).endswith(SUFFIX)  # 'mvc mv a.bin.mvc b.bin.mvc' names the pointers
    if new.endswith(SUFFIX) and not as_pointers:
        raise PathError(f"{new} is a pointer file name: name the path to move to, {new[: -len(SUFFIX)]}")
    if new.endswith(("/", os.sep)) or (os.path.isdir(new) and not os.path.islink(new) and not _tracked_dir(repo, new)):
        new = os.path.join(new, os.path.basename(src))  # into a directory, as mv and git mv do
    dst = _target(repo, new)
    src_prel, dst_prel = Repo.pointer_of(src), Repo.pointer_of(dst)
    pointers = repo.git.ls_pointers()
    if src_prel not in pointers:
        raise PathError(f"{old} is not tracked by mvc: see 'mvc ls'; mv moves tracked paths (use mv for others)")
    repo.check_pointer(src_prel)
    p = load_pointer(repo, src_prel)
    _check_new(repo, src, dst, new, [Repo.target_of(q) for q in pointers if q != src_prel])
    gitignores.check(repo, [src, dst])
    names = sorted(n for n, q in cfgfmt.models(repo.config.shared).items() if q == src)
    src_full, dst_full = repo.check_inside(src, old), repo.check_inside(dst, new)
    made = _make_parents(repo, dst, new)
    has_data = os.path.lexists(src_full)
    try:
        if has_data:
            _move_data(src_full, dst_full, old, new)
        try:
            _move_pointer(repo, src_prel, dst_prel)
        except BaseException:
            if has_data:
                os.rename(dst_full, src_full)
            raise
    except BaseException:
        for d in reversed(made):
            try:
                os.rmdir(d)
            except OSError:
                pass
        raise
    to_stage = [gitignores.add(repo, dst)]
    dropped = gitignores.drop(repo, src)
    if dropped is not None:
        to_stage.append(dropped)
    for n in names:
        cfgfmt.write_value(os.path.join(repo.mvc_dir, CONFIG), f"models.{n}.path", dst)
    if names:
        to_stage.append(f"{MVC_DIR}/{CONFIG}")
    with locked(os.path.join(repo.mvc_dir, LOCK), "the git index"):
        repo.git.stage(dict.fromkeys(to_stage))
    return {"old": src, "new": dst, "kind": p.kind, "names": names, "data": has_data}


def _tracked_dir(repo: Repo, path: str) -> bool:
    return os.path.isfile(repo.abs(Repo.pointer_of(repo.rel(path))))


def _target(repo: Repo, path: str) -> str:
    rel = repo.rel(path)
    if rel == ".":
        raise PathError(f"{path} is the repository root: name a tracked file or directory")
    return rel[: -len(SUFFIX)] if rel.endswith(SUFFIX) else rel


def _check_new(repo: Repo, src: str, dst: str, shown: str, others: list[str]) -> None:
    """Refuse a destination mvc add would refuse, or that would clash with what is there (said on one line)."""
    if not_utf8(dst):  # as add refuses it: every later command would refuse the pointer
        raise PathError(f"{quoted(shown)} is not a valid UTF-8 name: choose another path")
    if has_control(dst):
        raise PathError(
            f"{quoted(shown)} has a control character in its name, which .gitignore cannot hold: choose another path"
        )
    shown = quoted(shown)
    if dst == src:
        raise PathError(f"{shown} is where {src} is already: name another path")
    why = repo.untrackable(dst)
    if why is not None:
        raise PathError(f"{shown}: mvc never tracks this path ({why}): choose another path")
    for rel in (dst, Repo.pointer_of(dst)):
        if os.path.lexists(repo.abs(rel)):
            raise PathError(f"{quoted(rel)} already exists: move or remove it first, or choose another path")
    if dst.startswith(src + "/"):
        raise PathError(f"{shown} lies inside {src}: a directory cannot move into itself")
    for t in others:
        if dst.startswith(t + "/"):
            raise PathError(f"{shown} lies inside {t}, which mvc tracks: move it elsewhere")
        if t.startswith(dst + "/"):
            raise PathError(f"{shown} holds {t}, which mvc tracks: choose another path")
    if repo.git.tracked([dst, Repo.pointer_of(dst)]):
        raise PathError(f"git tracks {shown} already (it is in the index): commit or 'git rm --cached' it first")


def _make_parents(repo: Repo, dst: str, shown: str) -> list[str]:
    """Create the missing directories above dst; the ones made, top first (to remove them on a failure)."""
    made: list[str] = []
    parent = os.path.dirname(repo.abs(dst))
    missing = []
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise PathError(f"{shown}: {parent} is not a directory: choose another path")
    for d in reversed(missing):
        os.mkdir(d)
        made.append(d)
    return made


def _move_data(src: str, dst: str, old: str, new: str) -> None:
    """os.rename, which never copies: across filesystems it is refused, so nothing is ever half-moved."""
    if os.path.lexists(dst):  # looked at again right before: rename would replace a file that appeared
        raise PathError(f"{new} already exists: move or remove it first, or choose another path")
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno == errno.EXDEV:
            raise PathError(
                f"{new} is on another filesystem than {old}: mvc mv only renames; move within this filesystem, "
                f"or 'mvc add' a copy at {new} and {suggested('mvc remove {}', old)}"
            ) from None
        raise


def _move_pointer(repo: Repo, src_prel: str, dst_prel: str) -> None:
    """git mv when git's index holds the pointer (the rename is staged); a plain rename when it was never staged."""
    if repo.git.tracked([src_prel]):
        repo.git.run("mv", "--", src_prel, dst_prel)
    else:
        os.rename(repo.abs(src_prel), repo.abs(dst_prel))
        repo.git.stage([dst_prel])
