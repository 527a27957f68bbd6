"""Untracking: ``mvc unprotect`` (cache links made writable copies) and ``mvc remove`` (pointers and their
``.gitignore`` lines deleted; the files and the cache stay)."""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterable

from mvc import progress as progressmod
from mvc.errors import PathError
from mvc.repo import ignores as gitignores
from mvc.repo import storing
from mvc.repo.repository import Repo, open_repo
from mvc.repo.selection import check_is_pointer, select, user_paths
from mvc.repo.worktree import hash_of, look, old_manifest, scan_dir


def unprotect(
    paths: Iterable[str], *, repo: Repo | None = None, progress: progressmod.Factory = progressmod.null
) -> list[str]:
    """Replace cache links (hardlink/symlink) by writable copies so the files can be edited in place."""
    repo = open_repo(repo)
    paths = user_paths(paths)
    if not paths:
        raise PathError("name the tracked files or directories to unprotect, e.g. 'mvc unprotect model.pt'")
    done = []
    for prel in select(repo, paths, repo.git.ls_pointers()):
        rel = Repo.target_of(prel)
        full = repo.check_inside(rel)
        if not os.path.lexists(full):
            continue
        executable: dict[str, bool] = {}
        if os.path.isdir(full) and not os.path.islink(full):
            files = {f"{rel}/{sub}": f for sub, f in scan_dir(repo, rel, full).items()}
            executable = {f"{rel}/{sub}": e.executable for sub, e in old_manifest(repo, rel).items()}
        else:
            files = {rel: look(repo, rel, full, os.lstat(full), None)}
        for frel, f in files.items():
            if not f.linked:
                continue
            if (
                f.oid is None
                and statmod.S_ISLNK(f.st.st_mode)
                and not storing.link_sound(repo, frel, f, progressmod.NULL)
            ):
                storing.detach_edited(repo, f)  # its object edited through the link: kept as is
                done.append(frel)
                continue
            oid = f.oid if statmod.S_ISLNK(f.st.st_mode) else hash_of(repo, frel, f, progressmod.NULL)
            if oid is None:
                continue
            bar = progress(f"unprotecting {frel}", os.path.getsize(f.full))
            try:
                repo.odb.export(oid, f.full, ("copy",), executable=executable.get(frel, False), progress=bar.update)
            finally:
                bar.close()
            done.append(frel)
    repo.state.flush()
    return done


def remove(paths: Iterable[str], *, stage: bool = True, repo: Repo | None = None) -> list[str]:
    """Stop tracking paths: delete their pointers and .gitignore entries; files and cache stay."""
    repo = open_repo(repo)
    paths = user_paths(paths)
    if not paths:
        raise PathError("name the tracked paths to stop tracking, e.g. 'mvc remove model.pt'")
    in_dir = "to drop it from the directory, delete it and run 'mvc add {dir}'"
    chosen = select(repo, paths, repo.git.ls_pointers(), in_dir=in_dir)
    for prel in chosen:  # only mvc's own pointers are deleted: a file of the user's named *.mvc is left, and said
        check_is_pointer(repo, prel, "mvc remove deletes only its own pointers and leaves it")
    gitignores.check(repo, [Repo.target_of(prel) for prel in chosen])
    ignores = []
    for prel in chosen:
        rel = Repo.target_of(prel)
        os.unlink(repo.check_inside(prel))
        gi_rel = gitignores.drop(repo, rel)
        if gi_rel is not None:
            ignores.append(gi_rel)
    if stage and chosen:
        repo.git.run("rm", "--cached", "-q", "--ignore-unmatch", "--", *[f":(literal){p}" for p in chosen])
        repo.git.stage(dict.fromkeys(ignores))
    return [Repo.target_of(p) for p in chosen]
