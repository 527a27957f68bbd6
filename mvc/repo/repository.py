"""A repository: its root, config, cache, state cache and git access, and path safety rules."""

from __future__ import annotations

import os

from mvc import git as gitmod
from mvc.errors import (
    ConfigError,
    GitError,
    NotAGitRepo,
    NotInitialized,
    PathError,
    PointerError,
    RegistryError,
    StorageError,
)
from mvc.format.config import CONFIG, MVC_DIR, Config
from mvc.format.pointer import SUFFIX, bad_target
from mvc.format.pointer import in_quotes as in_quotes
from mvc.format.pointer import quoted as quoted  # (where most callers import them from)
from mvc.format.pointer import shell_quoted as shell_quoted
from mvc.objects.odb import ODB
from mvc.repo.statedb import StateDB


def refuse_linked(mvc_dir: str) -> None:
    """Refuse a .mvc that is a link: a committed one would put the cache and state wherever it points."""
    if os.path.islink(mvc_dir):
        raise PathError(
            f"{mvc_dir} is a symbolic link: mvc keeps its config, cache and state in a directory of its own; "
            "replace the link with a directory ('git rm' it, then 'mvc init')"
        )


EXCLUDE_MARK = "# mvc: its local state"
EXCLUDE = f"""{EXCLUDE_MARK} (docs/FORMAT.md, "Internal state"), also on branches older than 'mvc init'
/.mvc/*
!/.mvc/.gitignore
!/.mvc/config.toml
!/.mvc/imported.toml
"""


class Repo:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.real_root = os.path.realpath(self.root)
        self.mvc_dir = os.path.join(self.root, MVC_DIR)
        refuse_linked(self.mvc_dir)
        if not os.path.isdir(self.mvc_dir):
            top = _root_above(self.root)
            if top is not None:
                raise NotInitialized(
                    f"{self.root} is not the repository's root ({top}): open that one (mvc.Repo({top!r}), or "
                    f"mvc.Repo.find({self.root!r}))"
                )
            raise NotInitialized(f"mvc is not set up in {self.root}: run 'mvc init' first")
        self.config = Config(self.mvc_dir)
        cache_dir, self.own_cache = self.config.cache_dir, os.path.join(self.mvc_dir, "cache")
        if not self.config.sets("cache.dir") and not os.path.isdir(self.own_cache):
            # a linked worktree (git worktree add) uses the main work tree's cache, as git shares its objects (one
            # that made a cache of its own, before mvc did this, keeps it: what it holds may be nowhere else)
            main = gitmod.main_worktree(self.root)
            if main is not None and os.path.isdir(os.path.join(main, MVC_DIR)):
                try:
                    cache_dir = Config(os.path.join(main, MVC_DIR)).cache_dir
                    self.own_cache = os.path.join(main, MVC_DIR, "cache")
                except ConfigError:  # the main work tree's config is its own problem: this one's cache, then
                    pass
        # temps of files written into the work tree go to .mvc/tmp (git-ignored, swept), not beside them
        self.odb = ODB(
            cache_dir,
            fsync=self.config.fsync,
            work_tmp=os.path.join(self.mvc_dir, "tmp"),
            work_marker=CONFIG,
        )
        self.git = gitmod.Git(self.root)
        self._state: StateDB | None = None
        self._managed: list[tuple[str, str]] | None = None

    @classmethod
    def find(cls, start: str | None = None) -> Repo:
        return cls(gitmod.find_worktree(start or os.getcwd()))

    @property
    def state(self) -> StateDB:
        if self._state is None:
            path = os.path.join(self.mvc_dir, "state.db")
            if not os.path.exists(path):  # a new clone's or a new init's first state: git must never take it
                exclude_local_state(self.root, self.git)
            self._state = StateDB(path)
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

            commit = models.resolve_ref(self.git, rev)
            if commit is not None:
                refs = self.git.run("for-each-ref", "--format=%(refname)", f"refs/heads/{rev}", f"refs/remotes/{rev}")
                if {f"refs/heads/{rev}", f"refs/remotes/{rev}"} & set(refs.decode("utf-8", "replace").split()):
                    import sys  # a notice, as git's "refname is ambiguous"

                    sys.stderr.write(
                        f"mvc: {rev} is also a git branch; the registry's is read (the branch: refs/heads/{rev})\n"
                    )
                return str(self.git.resolve(commit).id)
            try:
                return str(self.git.resolve(rev).id)
            except GitError:  # not git's either: a registry revision mistyped, or of a model with no tag here?
                why = models.unknown_ref(rev, models.load(self.git).names())
                if why is not None:
                    raise RegistryError(why) from None
                raise
        return str(self.git.resolve(rev).id)

    def pointers_at(self, rev: str) -> dict[str, bytes]:
        """{pointer relpath: bytes} in the tree of the commit rev names (with what imports read: see below)."""
        return self.pointers_at_commit(self.resolve(rev))

    def pointers_at_commit(self, commit: str) -> dict[str, bytes]:
        """{pointer relpath: bytes} in commit's tree: mvc's pointers over those read from other tools' files
        (``.dvc``, git-lfs) through ``.mvc/imported.toml`` (docs/FORMAT.md, "Imported history"). Every reader of
        pointers at a revision goes through here."""
        from mvc.repo import foreign  # not at the top: foreign's readers load DVC's parsers when a map exists

        return foreign.all_pointers_at(self, commit)

    # -- paths ------------------------------------------------------------------------------
    @property
    def remote_base(self) -> str:
        """What a relative directory remote's URL is relative to: the work tree's root, or, in a linked worktree
        (``git worktree add``), the main work tree's, so that every worktree of one repository pushes to the same
        place (as they share one cache)."""
        main = gitmod.main_worktree(self.root)
        return main if main is not None and os.path.isdir(os.path.join(main, MVC_DIR)) else self.root

    def rel(self, path: str) -> str:
        """A user-given path as a posix path relative to the root; refuses anything outside it."""
        full = os.path.abspath(path)
        rel = os.path.relpath(full, self.root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
            rel = self._through_a_link(full) or ""
            if not rel:
                raise PathError(f"{path} is outside the repository {self.root}: move it inside the repository")
        rel = rel.replace(os.sep, "/")
        if rel == ".":
            return rel
        top = rel.split("/", 1)[0]
        if top in (".git", MVC_DIR):
            owner = "git's own directory" if top == ".git" else "mvc's own directory"
            raise PathError(f"{path} is inside {top}/, {owner}, which mvc never tracks: choose another path")
        self.check_inside(rel, path)
        return rel

    def _through_a_link(self, full: str) -> str | None:
        """full relative to the root when a symlink above the root leads there (macOS's /tmp, a linked home
        directory), as git takes it; the outermost such ancestor, so that a link inside is still seen."""
        parts = full.split(os.sep)
        for i in range(2, len(parts) + 1):
            above = os.sep.join(parts[:i])
            if os.path.realpath(above) == self.real_root:
                return os.path.relpath(full, above)
        return None

    def abs(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def check_inside(self, rel: str, shown: str | None = None) -> str:
        """Refuse a relpath whose parent directories lead through a symlink: outside the repo, or inside it."""
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
        if real != os.path.normpath(os.path.join(self.real_root, os.path.relpath(parent, self.root))):
            # a symlink inside the repository on the way: a write would land on another tracked path (git, too,
            # writes nothing beyond a symbolic link)
            raise PathError(
                f"{shown or rel} lies beyond a symlink inside the repository (it leads to {real}): replace the "
                "symlink with a directory, or track the real path"
            )
        return full

    # -- what a pointer may track ------------------------------------------------------------
    def untrackable(self, rel: str) -> str | None:
        """Why mvc may never track, read, write or delete through a pointer the repository-relative posix
        path rel, or None when it may: the one check for every pointer's tracked path (work tree, index,
        revisions, hooks) and every path 'mvc add' is given (docs/FORMAT.md, "Pointer files").

        The rules on the text (``pointer.bad_target``: control characters, ``..``, ``.git`` in any
        spelling, .gitignore/.gitattributes/.gitmodules, ``.mvc/``), then this repository's layout: the
        path may not be, lie inside or contain the cache directory or git's directories when those are
        in the work tree (a cache.dir configured there, a worktree's or a separate git dir)."""
        why = bad_target(rel)
        if why is not None:
            return why
        low = rel.lower()
        for m, shown in self._managed_dirs():
            if low == m or low.startswith(m + "/"):
                return f"it lies in {shown}/, the cache or git's directory"
            if m.startswith(low + "/"):
                return f"it contains {shown}/, the cache or git's directory"
        return None

    def tracks(self, rel: str) -> bool:
        """Whether mvc tracks rel now: a path it may track with a pointer in the work tree."""
        return self.untrackable(rel) is None and os.path.isfile(self.abs(rel + SUFFIX))

    def check_pointer(self, prel: str, rev: str | None = None) -> None:
        """Refuse the pointer prel (in the work tree or the index, or at revision rev) when its tracked path
        is one mvc never writes. The fix is git's: mvc's --force never overrides this."""
        rel = self.target_of(prel) if prel.endswith(SUFFIX) else prel
        why = self.untrackable(rel)
        if why is None:
            return
        rm = in_quotes(f"git rm -f {shell_quoted(prel)}")
        fix = f"pick a revision without it, or remove it in a new commit with {rm}" if rev else f"remove it with {rm}"
        at = f" at {rev}" if rev else ""
        raise PointerError(f"pointer {quoted(prel)}{at} tracks {quoted(rel)}, a path mvc never writes ({why}): {fix}")

    def _managed_dirs(self) -> list[tuple[str, str]]:
        """(lowercased, as is) posix relpaths of the cache and git directories that lie inside the work tree."""
        if self._managed is None:
            dirs = [self.odb.root]
            dot = os.path.join(self.root, ".git")
            if "GIT_DIR" in os.environ or "GIT_COMMON_DIR" in os.environ or not os.path.isdir(dot):
                # a worktree, a submodule, a separate git dir: where git keeps this repository is git's to say
                out = self.git.run("rev-parse", "--absolute-git-dir", "--git-common-dir", check=False)
                for line in out.decode("utf-8", "surrogateescape").splitlines():
                    if line:
                        dirs.append(os.path.join(self.root, line))
            else:
                dirs.append(dot)
            found = []
            for d in dirs:
                for path, root in ((os.path.abspath(d), self.root), (os.path.realpath(d), self.real_root)):
                    rel = os.path.relpath(path, root)
                    if rel != os.curdir and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
                        rel = rel.replace(os.sep, "/")
                        found.append((rel.lower(), rel))
            self._managed = sorted(set(found))
        return self._managed

    @staticmethod
    def target_of(pointer_rel: str) -> str:
        return pointer_rel[: -len(SUFFIX)]

    @staticmethod
    def pointer_of(target_rel: str) -> str:
        return target_rel + SUFFIX


def _root_above(path: str) -> str | None:
    """The root of the work tree path lies below (not at), when mvc is set up there; else None."""
    if os.path.exists(os.path.join(path, ".git")):
        return None
    try:
        top = gitmod.find_worktree(path)
    except NotAGitRepo:
        return None
    return top if os.path.isdir(os.path.join(top, MVC_DIR)) else None


def open_repo(repo: Repo | str | os.PathLike[str] | None) -> Repo:
    """The repository a verb was given (a Repo, or a path in its work tree, as the read verbs take it), or the one
    containing the current directory."""
    if repo is None:
        return Repo.find()
    if isinstance(repo, (str, os.PathLike)):
        path = os.fspath(repo)
        if "://" in path or (":" in path.split("/", 1)[0] and not os.path.exists(path)):
            raise PathError(
                f"repo={path!r} is a URL, and this works in a clone only (get, open, read_bytes, describe, materialize, "
                "load and the registry read by URL): give a path in a work tree"
            )
        if not os.path.exists(path):  # (a name that is not there would be looked for from the directory above)
            raise PathError(f"repo={path!r} does not exist: give a path in a work tree, or a mvc.Repo")
        return Repo.find(path)
    if not isinstance(repo, Repo):
        raise TypeError(f"repo must be a mvc.Repo or a path, not {type(repo).__name__}")
    return repo


def exclude_local_state(root: str, git: gitmod.Git) -> None:
    """Make git ignore mvc's local state in .mvc/ through the repository's own ``info/exclude`` too:
    ``.mvc/.gitignore`` does it where it is committed, but a branch older than ``mvc init`` lacks it,
    and a ``git add -A`` there would commit state.db, the journal and the lock."""
    from mvc.storage import fileio

    dot = os.path.join(root, ".git")
    if os.path.isdir(dot) and "GIT_DIR" not in os.environ and "GIT_COMMON_DIR" not in os.environ:
        common = dot
    else:
        out = git.run("rev-parse", "--git-common-dir", check=False).decode("utf-8", "surrogateescape")
        common = os.path.join(root, out.strip()) if out.strip() else ""
    if not common:
        return
    path = os.path.join(common, "info", "exclude")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    except OSError:
        return
    if EXCLUDE_MARK in text:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fileio.atomic_write(
            path,
            (text + ("\n" if text and not text.endswith("\n") else "") + EXCLUDE).encode("utf-8", "surrogateescape"),
        )
    except (OSError, StorageError):  # (atomic_write says a read-only file system as a StorageError)
        pass  # a read-only git dir: .mvc/.gitignore still does it where it is committed
