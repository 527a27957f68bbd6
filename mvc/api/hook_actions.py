"""What each git hook does.

- pre-commit: refuse a commit whose pointers name weights the cache lacks, whose tracked files differ
  from their staged pointers, or that puts weights or large binaries into git itself.
- pre-push: upload to the default mvc remote the objects referenced by the commits being pushed, before
  git sends them (objects reach a remote before anything that references them).
- post-checkout / post-merge: bring the workspace in line with the pointers that changed
  (``mvc.api.hook_restore``).

The hot path (pre-commit with nothing to report) runs the git binary a few times and never imports
pygit2 or fsspec; remotes are imported only when something has to be uploaded or fetched.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from typing import Any

from mvc import progress as progressmod
from mvc.api.hook_restore import post_checkout as post_checkout
from mvc.api.hook_restore import post_merge as post_merge
from mvc.errors import ConfigError, GitError, MvcError, RemoteError
from mvc.format import config as cfgfmt
from mvc.format.pointer import SUFFIX
from mvc.git import POINTER_GLOB, blob_id
from mvc.repo.repository import Repo, in_quotes, open_repo
from mvc.repo.repository import shell_quoted as _q

DEFAULT_MAX_SIZE = cfgfmt.DEFAULTS["hooks"]["max_size"]
DEFAULT_EXTENSIONS = tuple(cfgfmt.DEFAULTS["hooks"]["extensions"])
BINARY_SNIFF = 8000  # git's own rule: a NUL in the first 8000 bytes makes a file binary


# -- pre-commit -----------------------------------------------------------------------------------
def parse_size(value: Any) -> int:
    """Bytes from an integer or a string like ``"10MB"`` (powers of 1000) or ``"512KiB"`` (of 1024)."""
    n = cfgfmt.size_bytes(value)
    if n is None:
        cfgfmt.check_value("hooks.max_size", value, ".mvc/config.toml")  # raises, naming the fix
    return int(n or 0)


def _settings(repo: Repo) -> tuple[int, tuple[str, ...], list[str]]:
    """(max_size in bytes, 0 for none; weights extensions; allow globs) from the [hooks] table."""
    max_size = parse_size(repo.config.get("hooks.max_size", DEFAULT_MAX_SIZE))
    exts = repo.config.get("hooks.extensions", list(DEFAULT_EXTENSIONS))
    allow = repo.config.get("hooks.allow", [])
    for key, value, example in (
        ("hooks.extensions", exts, '[".pt", ".onnx"]'),
        ("hooks.allow", allow, '["tests/data/*"]'),
    ):
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise ConfigError(
                f"{key} must be a list of strings, e.g. {key.split('.')[1]} = {example}, "
                f"not {value!r}: fix it in .mvc/config.toml"
            )
    norm = tuple(("." + e.lstrip(".")).lower() for e in exts)
    return max_size, norm, allow


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _staged_pointers(repo: Repo) -> dict[str, bytes]:
    """{pointer relpath: bytes} as staged in git's index (the one this commit is made from).

    Pointers whose work tree copy has the staged blob id are read from the work tree; only the rest
    cost a ``git cat-file`` (so the usual case is one ``git ls-files``).
    """
    index = repo.git.index_blobs(POINTER_GLOB)
    found: dict[str, bytes] = {}
    ask = {}
    for prel, blob in index.items():
        if not prel.endswith(SUFFIX):
            continue
        data = None
        full = repo.abs(prel)
        if not os.path.islink(full):
            try:
                with open(full, "rb") as f:
                    data = f.read()
            except OSError:
                pass
        if data is not None and len(blob) == 40 and blob_id(data) == blob:
            found[prel] = data
        else:
            ask[prel] = blob
    if ask:
        blobs = repo.git.cat_objects(ask.values())
        for prel, blob in ask.items():
            data = blobs.get(blob)
            if data is not None:
                found[prel] = data
    return found


def _introduced(repo: Repo) -> list[tuple[str, str, str, str]]:
    """(status, mode, blob, path) of the content this commit brings in: staged against HEAD, less
    what an ongoing merge takes unchanged from the branch being merged (checked when it was committed there)."""
    changes = repo.git.staged_diff()
    for head in repo.git.merge_heads():
        same = {c[3] for c in changes} - {c[3] for c in repo.git.staged_diff(head)}
        changes = [c for c in changes if c[3] not in same]
    return changes


def check_commit(*, repo: Repo | None = None) -> list[dict[str, str]]:
    """What should stop the commit being made: [{path, problem}], ``problem`` one line with the fix."""
    from mvc.repo.pathstatus import path_status
    from mvc.repo.selection import load_pointer

    repo = open_repo(repo)
    problems: list[dict[str, str]] = []
    changes = _introduced(repo)
    new_pointers = {c[3] for c in changes if c[0] in "AMT" and c[3].endswith(SUFFIX)}
    try:
        staged = _staged_pointers(repo)
        for prel, data in sorted(staged.items()):
            rel = Repo.target_of(prel)
            try:
                repo.check_pointer(prel)  # refused whether this commit brings it or not
            except MvcError as e:
                problems.append({"path": rel, "problem": str(e)})
                continue
            try:
                p = load_pointer(repo, prel, data)
                ws, cache = path_status(repo, rel, p)
            except MvcError as e:
                if prel in new_pointers:
                    problems.append({"path": rel, "problem": str(e)})
                continue
            if prel in new_pointers and cache != "ok":
                problems.append(
                    {
                        "path": rel,
                        "problem": (
                            f"{prel} names weights ({p.oid}) that are not in the cache, so the commit could not be "
                            f"checked out: run {in_quotes('mvc add ' + _q(rel))} with the file in place, "
                            f"or {_fetch_fix(repo, 'fetch', rel)}"
                        ),
                    }
                )
            if ws == "modified":
                problems.append({"path": rel, "problem": _modified(repo, prel, rel, data)})
    finally:
        repo.state.flush()
    problems.extend(_into_git(repo, changes))
    return problems


def _modified(repo: Repo, prel: str, rel: str, staged: bytes) -> str:
    from mvc.repo.pathstatus import path_status
    from mvc.repo.selection import load_pointer

    try:
        with open(repo.abs(prel), "rb") as f:
            current = f.read()
        if current != staged and path_status(repo, rel, load_pointer(repo, prel, current))[0] == "ok":
            return f"{prel} was updated (mvc add --no-stage?) but not staged: run {in_quotes('git add ' + _q(prel))}"
    except (OSError, MvcError):
        pass
    if _holds_a_cached_version(repo, rel):  # another version, not an edit: after a pull, merge or reset
        return (
            f"{rel} holds another version than its staged pointer {prel} names (one the cache has: the workspace "
            f"was not brought in line after a pull, merge or reset?): run {in_quotes('mvc checkout ' + _q(rel))} to bring the "
            f"staged version (nothing is lost), or {in_quotes('mvc add ' + _q(rel))} if this content is the one to commit"
        )
    return (
        f"{rel} differs from its staged pointer {prel} (changed after 'mvc add'): run {in_quotes('mvc add ' + _q(rel))} "
        f"to commit the new content, or {in_quotes('mvc checkout --force ' + _q(rel))} to go back to the staged one "
        "(the changed content is kept in the cache)"
    )


def _holds_a_cached_version(repo: Repo, rel: str) -> bool:
    """Whether the work tree's file rel holds content the cache has (as the state cache knows it, or hashed)."""
    import stat as statmod

    from mvc import progress as progressmod
    from mvc.repo.worktree import hash_of, look

    full = repo.abs(rel)
    try:
        st = os.lstat(full)
        if not statmod.S_ISREG(st.st_mode):
            return False
        f = look(repo, rel, full, st, repo.state.get(rel, st))
        oid = hash_of(repo, rel, f, progressmod.NULL)
    except (OSError, MvcError):
        return False
    return oid is not None and repo.odb.exists(oid)


def _into_git(repo: Repo, changes: list[tuple[str, str, str, str]]) -> list[dict[str, str]]:
    """Weights files and large binaries staged into git itself."""
    candidates = [
        (path, blob)
        for status, mode, blob, path in changes
        if status in "AMT" and mode in ("100644", "100755") and not path.endswith(SUFFIX)
    ]
    if not candidates:
        return []
    max_size, exts, allow = _settings(repo)
    candidates = [(path, blob) for path, blob in candidates if not any(fnmatch.fnmatchcase(path, g) for g in allow)]
    problems = []

    def fix(p: str) -> str:
        return f"run {in_quotes('git rm --cached ' + p)} and {in_quotes('mvc add ' + p)}"

    rest = []
    for path, blob in candidates:
        ext = os.path.splitext(path)[1].lower()
        if ext and ext in exts:
            problems.append(
                {
                    "path": path,
                    "problem": (
                        f"{path} is a weights file ({ext}) staged into git itself: {fix(_q(path))} "
                        "(or list it in [hooks] allow in .mvc/config.toml)"
                    ),
                }
            )
        else:
            rest.append((path, blob))
    if max_size and rest:
        sizes = repo.git.object_sizes(blob for _, blob in rest)
        for path, blob in rest:
            size = sizes.get(blob)
            if size is not None and size > max_size and b"\0" in repo.git.blob_head(blob, BINARY_SNIFF):
                problems.append(
                    {
                        "path": path,
                        "problem": (
                            f"{path} is a {_size(size)} binary file staged into git itself (hooks.max_size is "
                            f"{_size(max_size)}): {fix(_q(path))} (or raise [hooks] max_size in .mvc/config.toml)"
                        ),
                    }
                )
    return problems


def _fetch_fix(repo: Repo, verb: str, rel: str) -> str:
    from mvc.repo.remotes import fetch_fix  # not at the top: remotes load the stores

    return fetch_fix(repo, in_quotes(f"mvc {verb} {_q(rel)}"))


# -- pre-push -------------------------------------------------------------------------------------
def _null(sha: str) -> bool:
    return not sha.strip("0")


def parse_push_lines(text: str) -> list[tuple[str, str, str, str]]:
    """git's pre-push stdin: ``<local ref> <local sha> <remote ref> <remote sha>`` per line."""
    refs = []
    for line in text.splitlines():
        parts = line.rsplit(" ", 3)
        if len(parts) == 4:
            refs.append((parts[0], parts[1], parts[2], parts[3]))
        elif line.strip():
            raise GitError(f"unexpected pre-push input line {line!r}: the hook must be run by 'git push'")
    return refs


def commits_to_push(repo: Repo, remote: str, refs: Iterable[tuple[str, str, str, str]]) -> list[str]:
    """Commits being pushed that the remote lacks and that add or change pointers (ids, newest first), then those
    whose files of another tool read as pointers through the map of an import (:func:`_imported_commits`).

    Excluded: what the remote's refs in the push already have, and everything under
    ``refs/remotes/<remote>/`` when remote is a configured git remote (a push to a URL has none).
    ``--full-history`` keeps side branches of merges: their pointer versions are pushed too.
    """
    include, exclude = [], []
    for _, local_sha, _, remote_sha in refs:
        if _null(local_sha):
            continue  # a deletion pushes nothing
        include.append(local_sha)
        if not _null(remote_sha):
            exclude.append(remote_sha)
    if not include:
        return []
    commits = repo.git.peel_commits(include + exclude)  # a remote sha we never fetched is simply absent
    include = [c for c in (commits.get(s) for s in include) if c]
    exclude = [c for c in (commits.get(s) for s in exclude) if c]
    if not include:
        return []
    remotes = remote if remote in repo.git.remote_names() else None
    found = repo.git.rev_list(include, exclude, not_remotes=remotes, paths=[POINTER_GLOB])
    mine = set(found)
    return found + [c for c in _imported_commits(repo, include, exclude, remotes) if c not in mine]


def _imported_commits(repo: Repo, include: list[str], exclude: list[str], remotes: str | None) -> list[str]:
    """The pushed commits from before an import (``mvc import-lfs``, ``mvc import-dvc``) whose git-lfs pointers or
    .dvc files read as mvc pointers through the map ``.mvc/imported.toml``: their objects are pushed as any
    other's. Nothing to read (no map: no import) costs no git process."""
    from mvc.repo import foreign

    if not foreign.imported(repo):
        return []
    every = repo.git.rev_list(include, exclude, not_remotes=remotes)
    return list(dict.fromkeys(c for c, _, _ in foreign.pointer_versions(repo, every)))


def pre_push(
    remote: str,
    refs: Iterable[tuple[str, str, str, str]],
    *,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Upload to the default mvc remote the objects of the commits being pushed.

    Returns {commits, remote, uploaded, bytes, present}; raises RemoteError (the push must stop) when
    they cannot be uploaded. No commit with pointers to push: no remote is contacted at all.
    """
    repo = open_repo(repo)
    commits = commits_to_push(repo, remote, refs)
    if not commits:
        return {"commits": 0, "remote": None, "uploaded": 0, "bytes": 0, "present": 0}
    from mvc.api import sync
    from mvc.repo.remotes import default_remote

    name = default_remote(repo)
    if name is None:
        raise RemoteError(
            f"the push carries {len(commits)} commit(s) with model pointers but no default mvc remote "
            "is configured to upload their weights to: run 'mvc remote add NAME URL --default' "
            "(or push with --no-verify to skip the upload)"
        )
    # the stamp read now: a gc -r since the last push may have taken objects these commits reuse
    res = sync.push(revs=commits, remote=name, repo=repo, progress=progress, fresh_stamp=True)
    return {**res, "commits": len(commits), "remote": res.get("remote", name)}
