"""A repository: its root, config, cache, state cache and git access, and path safety rules."""

from __future__ import annotations

import os

from mvc import git as gitmod
from mvc.errors import NotInitialized, PathError
from mvc.format.config import MVC_DIR, Config
from mvc.format.pointer import SUFFIX
from mvc.objects.odb import ODB
from mvc.repo.statedb import StateDB


class Repo:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.real_root = os.path.realpath(self.root)
        self.mvc_dir = os.path.join(self.root, MVC_DIR)
        if not os.path.isdir(self.mvc_dir):
            raise NotInitialized(f"mvc is not set up in {self.root}: run 'mvc init' first")
        self.config = Config(self.mvc_dir)
        self.odb = ODB(self.config.cache_dir, fsync=self.config.fsync)
        self.git = gitmod.Git(self.root)
        self._state: StateDB | None = None

    @classmethod
    def find(cls, start: str | None = None) -> Repo:
        return cls(gitmod.find_worktree(start or os.getcwd()))

    @property
    def state(self) -> StateDB:
        if self._state is None:
            self._state = StateDB(os.path.join(self.mvc_dir, "state.db"))
        return self._state

    def close(self) -> None:
        if self._state is not None:
            self._state.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- revisions --------------------------------------------------------------------------
    def resolve(self, rev: str) -> str:
        """The commit id (hex) a revision names: anything git accepts (commit, branch, tag, HEAD~1), or a
        registry revision: ``NAME@vX.Y.Z``, ``NAME#STAGE`` (the version the stage points to), ``NAME@latest``."""
        if "@" in rev or "#" in rev:  # only these can be registry revisions: plain revs skip loading the tags
            from mvc.repo import models

            rev = models.resolve_ref(self.git, rev) or rev
        return str(self.git.resolve(rev).id)

    def pointers_at(self, rev: str) -> dict[str, bytes]:
        """{pointer relpath: bytes} in the tree of the commit rev names."""
        return self.git.pointers_at(self.resolve(rev))

    # -- paths ------------------------------------------------------------------------------
    def rel(self, path: str) -> str:
        """A user-given path as a posix path relative to the root; refuses anything outside it."""
        full = os.path.abspath(path)
        rel = os.path.relpath(full, self.root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
            raise PathError(f"{path} is outside the repository {self.root}: move it inside the repository")
        rel = rel.replace(os.sep, "/")
        if rel == ".":
            return rel
        top = rel.split("/", 1)[0]
        if top in (".git", MVC_DIR):
            raise PathError(f"{path} is inside {top}/, which mvc manages itself: choose another path")
        self.check_inside(rel, path)
        return rel

    def abs(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def check_inside(self, rel: str, shown: str | None = None) -> str:
        """Refuse a relpath whose parent directories lead outside the repo through a symlink."""
        full = self.abs(rel)
        parent = os.path.dirname(full)
        while not os.path.lexists(parent):  # check the deepest part that exists
            parent = os.path.dirname(parent)
        real = os.path.realpath(parent)
        if real != self.real_root and not real.startswith(self.real_root + os.sep):
            raise PathError(
                f"{shown or rel} leads outside the repository through a symlink ({real}): "
                "remove the symlink or track the real path"
            )
        return full

    @staticmethod
    def target_of(pointer_rel: str) -> str:
        return pointer_rel[: -len(SUFFIX)]

    @staticmethod
    def pointer_of(target_rel: str) -> str:
        return target_rel + SUFFIX
