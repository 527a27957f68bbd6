"""Pointers of other tools, read-only, at revisions before ``mvc import-dvc`` / ``mvc import-lfs`` (docs/FORMAT.md,
"Imported history"): a ``.dvc`` file or a git-lfs pointer at an old commit is read as the mvc pointer it was
converted to, through the map of imported content ``.mvc/imported.toml`` (committed by the import), so that
checkout, get, log and gc see the lineage from before the switch.

Each reader (``foreign_dvc``, ``foreign_lfs``) has ``pointers_at(repo, commit, table)``, table being its tool's
table of the map, returning ``{pointer relpath ("PATH.mvc"): mvc pointer bytes}`` for the files of its tool in one
commit's tree that the map names; and may have ``pointer_of(repo, commit, rel, table)``: the one for tracked path
rel, or None; ``version_of(repo, commit, rel, table)``: (that pointer, None), or (None, the tool's version id) of
one the import could not bring in (``unimported_at``), from one read of the commit's tree; and
``pointer_versions(repo, commits, table)``: those of many commits in one pass (as ``pointer_versions`` below lists
them). An mvc pointer at the same path wins (``all_pointers_at``).

The map read is the union of the work tree's ``.mvc/imported.toml`` and HEAD's (the work tree's entries win): the
work tree holds an import staged but not committed yet, HEAD one whose file a checkout of an old branch left out.

``repo`` is a ``Repo`` throughout; it is not imported, as ``repository.py`` calls this module.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

from mvc.errors import ForeignError, PathError
from mvc.format.config import MVC_DIR
from mvc.format.lfspointer import IMPORTED  # (the map holds both tools' tables)
from mvc.format.pointer import SUFFIX

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# the map: {dvc = {md5 = {...}}, lfs = {sha256 = {...}}} -> mvc oids and sizes
IMPORTED_PATH = f"{MVC_DIR}/{IMPORTED}"  # as git names it
FORMAT = 1
READERS = {"dvc": "mvc.repo.foreign_dvc", "lfs": "mvc.repo.foreign_lfs"}  # the map's table -> its reader


def parse(data: bytes, where: str) -> dict[str, Any]:
    """The map's tables ({tool: table}); refuses a file that is not TOML or of a format this mvc does not know."""
    try:
        d = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as e:
        raise ForeignError(
            f"{where}: not valid TOML ({e}): restore it with 'git checkout -- {IMPORTED_PATH}'"
        ) from None
    if type(d.get("format")) is not int:
        raise ForeignError(
            f"{where}: no format number: the file is damaged or not mvc's: restore it with "
            f"'git checkout -- {IMPORTED_PATH}' (or 'git rm --cached {IMPORTED_PATH}' if git never had mvc's)"
        )
    if d["format"] != FORMAT:
        raise ForeignError(f"{where}: unknown format {d['format']!r} (this mvc reads {FORMAT}): upgrade mvc")
    return {k: v for k, v in d.items() if k != "format"}


def read_bytes(repo: Any) -> bytes | None:
    """The work tree's map as it is on disk (None: there is none). A symbolic link there is refused, not followed:
    one committed to git would have mvc read (and an import copy into the map it stages) a file of the user's
    elsewhere."""
    if repo.mvc_dir is None:  # a repository read by URL (``upstream.AsRepo``): no work tree, HEAD's map alone
        return None
    path = os.path.join(repo.mvc_dir, IMPORTED)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError:
        if not os.path.islink(path):
            raise
        raise PathError(
            f"{IMPORTED_PATH} is a symbolic link: mvc keeps a file of its own there and does not follow links: "
            f"remove it ('git rm --cached {IMPORTED_PATH}', then delete the link) and import again"
        ) from None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def read_worktree(repo: Any) -> dict[str, Any]:
    data = read_bytes(repo)
    return {} if data is None else parse(data, IMPORTED_PATH)


def imported(repo: Any) -> dict[str, Any]:
    """The map (work tree over HEAD), read once per Repo."""
    cached = getattr(repo, "_imported_map", None)
    if cached is not None:
        return cached
    found: dict[str, Any] = {}
    try:
        head = repo.git.blob_ids("HEAD", [IMPORTED_PATH])[IMPORTED_PATH]
    except Exception:  # no commit yet (an unborn HEAD): nothing was imported in git's history
        head = None
    if head is not None:
        found = parse(repo.git.blob(head), f"{IMPORTED_PATH} at HEAD")
    for tool, table in read_worktree(repo).items():
        if isinstance(table, dict) and isinstance(found.get(tool), dict):
            merged = dict(found[tool])
            for k, v in table.items():
                merged[k] = {**merged[k], **v} if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
            found[tool] = merged
        else:
            found[tool] = table
    repo._imported_map = found
    return found


def _reader(tool: str) -> Any:
    try:
        return importlib.import_module(READERS[tool])
    except (KeyError, ImportError):  # a tool this mvc does not read: its table is kept, not used
        return None


def pointers_at(repo: Any, commit: str) -> dict[str, bytes]:
    """{PATH.mvc: pointer bytes} of the imported tools' pointers in commit's tree (none before any import)."""
    found: dict[str, bytes] = {}
    for tool, table in imported(repo).items():
        reader = _reader(tool)
        if reader is not None:
            found.update(reader.pointers_at(repo, commit, table))
    return found


def unimported_at(repo: Any, commit: str) -> dict[str, str]:
    """{tracked path: the tool's version id} of what the imported tools' files name at commit but the import could
    not bring in (``mvc import-dvc``'s ``history_missing``): mvc cannot read those versions."""
    found: dict[str, str] = {}
    for tool, table in imported(repo).items():
        reader = _reader(tool)
        if reader is not None and hasattr(reader, "unimported_at"):
            found.update(reader.unimported_at(repo, commit, table))
    return found


def unimported_beside(repo: Any, commit: str, pointers: dict[str, bytes]) -> dict[str, str]:
    """:func:`unimported_at`'s paths that have no pointer among ``pointers`` (``all_pointers_at(repo, commit)``'s: an
    mvc pointer at the path wins): what a listing of commit shows as a version not imported, not as no version."""
    if not imported(repo):
        return {}
    return {p: v for p, v in unimported_at(repo, commit).items() if p + SUFFIX not in pointers}


def not_imported(repo: Any, path: str, rev: str, version: str) -> PathError:
    """The error for path at rev, whose version (a DVC md5, or a git-lfs "sha256:…") the import could not bring in:
    DVC's remote could not be read for it then (the map's ``[dvc.unreached]``), or it was in neither DVC's cache
    nor its remote; a git-lfs object was not in .git/lfs/objects."""
    from mvc.format import dvcfile

    if version.startswith("sha256:"):  # (git-lfs's)
        return PathError(
            f"{path} at {rev} is a git-lfs version ({version[:19]}…) that 'mvc import-lfs' did not import (.git/lfs/"
            f"objects lacked it): fetch it ('git lfs fetch --all'), then run 'mvc import-lfs' again and commit"
        )
    remote = dvcfile.unreached(imported(repo).get("dvc"), IMPORTED_PATH).get(version)
    what = f"{path} at {rev} is a DVC version (md5 {version}) that 'mvc import-dvc' could not import"
    if remote is not None:
        return PathError(
            f"{what}: DVC remote {remote or '(the default)'} could not be reached when it ran: reconnect it "
            "(mount the share, the network, the credentials), then run 'mvc import-dvc' again and commit"
        )
    return PathError(
        f"{what}: it was in neither DVC's cache nor its remote: fetch it with DVC ('dvc fetch --all-commits', with a "
        "remote added by 'dvc remote add --local'), then run 'mvc import-dvc' again"
    )


def pointer_versions(repo: Any, commits: Iterable[str]) -> list[tuple[str, str, bytes]]:
    """(commit, PATH.mvc, pointer bytes) of each distinct pointer of the imported tools in the trees of commits, with
    a commit that has it: what ``git.pointer_blobs`` lists of mvc's own (the pre-push hook pushes their objects).
    A reader with ``pointer_versions`` finds them in one pass; another's are read commit by commit."""
    commits = list(commits)
    found: list[tuple[str, str, bytes]] = []
    for tool, table in imported(repo).items():
        reader = _reader(tool)
        if reader is None:
            continue
        if hasattr(reader, "pointer_versions"):
            found += reader.pointer_versions(repo, commits, table)
            continue
        seen: set[tuple[str, bytes]] = set()
        for commit in commits:
            for prel, data in reader.pointers_at(repo, commit, table).items():
                if (prel, data) not in seen:
                    seen.add((prel, data))
                    found.append((commit, prel, data))
    return found


def pointer_of(repo: Any, commit: str, rel: str) -> bytes | None:
    """The imported tools' pointer of tracked path rel at commit, or None."""
    for tool, table in imported(repo).items():
        reader = _reader(tool)
        if reader is None:
            continue
        data = _tool_pointer_of(reader, repo, commit, rel, table)
        if data is not None:
            return data
    return None


def _tool_pointer_of(reader: Any, repo: Any, commit: str, rel: str, table: Any) -> bytes | None:
    """The pointer of rel at commit that one tool's reader reads, or None."""
    if hasattr(reader, "pointer_of"):
        return reader.pointer_of(repo, commit, rel, table)
    return reader.pointers_at(repo, commit, table).get(rel + SUFFIX)


def version_of(repo: Any, commit: str, rel: str) -> tuple[bytes | None, str | None]:
    """(:func:`pointer_of`, None) of tracked path rel at commit when an imported tool's file there reads as a
    pointer; else (None, rel's version id in :func:`unimported_at`, or None). A reader with ``version_of`` reads its
    files of commit's tree once for both."""
    missing = None
    for tool, table in imported(repo).items():
        reader = _reader(tool)
        if reader is None:
            continue
        if hasattr(reader, "version_of"):
            data, version = reader.version_of(repo, commit, rel, table)
        else:
            data = _tool_pointer_of(reader, repo, commit, rel, table)
            has = data is None and hasattr(reader, "unimported_at")
            version = reader.unimported_at(repo, commit, table).get(rel) if has else None
        if data is not None:
            return data, None
        missing = version if version is not None else missing
    return None, missing


def all_pointers_at(repo: Any, commit: str) -> dict[str, bytes]:
    """{pointer relpath: bytes} at commit: mvc's pointers over the imported tools' (mvc's win a shared path)."""
    mine = repo.git.pointers_at(commit)
    if not imported(repo):
        return mine
    return {**pointers_at(repo, commit), **mine}
