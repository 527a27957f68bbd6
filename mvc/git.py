"""Git access: the only module that imports pygit2.

Hot paths (listing pointers, staging) run the ``git`` binary, which starts in a few ms; reading
trees at other revisions and writing tags use pygit2, imported on first use.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Iterable

from mvc.errors import GitError, NotAGitRepo

POINTER_GLOB = "*.mvc"


def find_worktree(start: str) -> str:
    """The top of the git work tree containing start (a ``.git`` dir or file marks it)."""
    path = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            raise NotAGitRepo(f"{start} is not inside a git repository: run 'git init' first (or cd into one)")
        path = parent


def discover(start: str) -> str:
    """Like find_worktree, but asks libgit2 (handles GIT_DIR, worktrees, bare repos)."""
    import pygit2

    found = pygit2.discover_repository(start)
    if not found:
        raise NotAGitRepo(f"{start} is not inside a git repository: run 'git init' first (or cd into one)")
    repo = pygit2.Repository(found)
    if repo.is_bare or not repo.workdir:
        raise NotAGitRepo(f"{found} is a bare git repository: run mvc inside a work tree")
    return os.path.normpath(repo.workdir)


class Git:
    def __init__(self, root: str):
        self.root = root
        self._repo: Any = None

    # -- the git binary ---------------------------------------------------------------------
    def run(self, *args: str, check: bool = True, input: bytes | None = None) -> bytes:
        try:
            proc = subprocess.run(["git", *args], cwd=self.root, input=input,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise GitError("the 'git' command was not found: install git and make sure it is on PATH") from None
        if check and proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"git {args[0]} failed: {msg[-1] if msg else proc.returncode}")
        return proc.stdout

    def ls_pointers(self) -> list[str]:
        """Pointer files in the work tree, tracked or not-yet-added but not ignored (posix relpaths)."""
        out = self.run("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", POINTER_GLOB)
        found = {p for p in out.decode("utf-8", "surrogateescape").split("\0")
                 if p.endswith(".mvc") and os.path.isfile(os.path.join(self.root, p))}
        return sorted(found)

    def tracked(self, relpaths: Iterable[str]) -> list[str]:
        """Which of relpaths (files, or dirs: any file under them) git's index holds."""
        paths = list(relpaths)
        if not paths:
            return []
        out = self.run("ls-files", "-z", "--", *[f":(literal){p}" for p in paths])
        return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]

    def stage(self, relpaths: Iterable[str]) -> None:
        paths = list(relpaths)
        if paths:
            self.run("add", "--", *[f":(literal){p}" for p in paths])

    def unstaged(self, relpaths: Iterable[str]) -> list[str]:
        """Which of relpaths differ between the work tree and the index."""
        paths = list(relpaths)
        if not paths:
            return []
        out = self.run("diff", "--name-only", "-z", "--", *[f":(literal){p}" for p in paths])
        return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]

    def checkout_paths(self, rev: str, relpaths: Iterable[str]) -> None:
        paths = list(relpaths)
        if paths:
            self.run("checkout", rev, "--", *[f":(literal){p}" for p in paths])

    # -- pygit2 -----------------------------------------------------------------------------
    @property
    def repo(self) -> Any:
        if self._repo is None:
            import pygit2

            self._repo = pygit2.Repository(self.root)
        return self._repo

    def resolve(self, rev: str) -> Any:
        """The commit rev names (commit id, branch, tag, HEAD~1, …)."""
        import pygit2

        try:
            obj = self.repo.revparse_single(rev)
            return obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            raise GitError(f"unknown revision {rev!r}: check it with 'git log' or 'git tag'") from None

    def pointers_at(self, rev: str) -> dict[str, bytes]:
        """{posix relpath of pointer file: its bytes} in the tree of rev."""
        import pygit2

        commit = self.resolve(rev)
        found: dict[str, bytes] = {}

        def walk(tree: Any, prefix: str) -> None:
            for entry in tree:
                path = prefix + entry.name
                if entry.type_str == "tree":
                    walk(self.repo[entry.id], path + "/")
                elif entry.type_str == "blob" and path.endswith(".mvc") and entry.filemode != pygit2.GIT_FILEMODE_LINK:
                    found[path] = self.repo[entry.id].data

        walk(commit.tree, "")
        return found
