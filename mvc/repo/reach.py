"""What a repository still needs (docs/FORMAT.md, "What gc keeps"): the pointers of its work tree, index,
refs, stashes, other worktrees and history, and the objects they name. ``mvc gc`` keeps them; ``mvc
verify`` checks them.

Pointers read from git are untrusted input: one that does not parse names no object mvc could read, and
is reported (``Reach.unreadable``) rather than trusted or fatal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from mvc import git as gitmod
from mvc.errors import MvcError
from mvc.format import pointer as ptrfmt
from mvc.format import tags as tagfmt
from mvc.repo.repository import Repo
from mvc.repo.selection import Wanted, load_pointer

POINTER_MAX = 1 << 20  # bytes read of a pointer file in another worktree (a longer one does not parse)
Place = tuple[str, str]  # where a pointer was read: WORK, ("rev", NAME) or ("worktree", ROOT)
WORK = ("", "")  # this worktree's files and index


class Reach:
    """Pointers gathered from some places, labelled (``PATH``, ``PATH (staged)``, ``PATH at REV``), and
    the objects they need (``wanted``; a directory's entries once :meth:`read_manifests` ran)."""

    def __init__(self) -> None:
        self.wanted = Wanted()
        self.labels: dict[str, list[str]] = {}  # oid of a pointer -> every label that names it
        # oid -> where the pointers naming it were read: WORK (this worktree's files or index), ("rev", NAME),
        # ("worktree", ROOT); what a command that sends them somewhere must be pointed at (verify's fix)
        self.places: dict[str, set[Place]] = {}
        self.unreadable: list[str] = []  # labels of pointers that did not parse (nothing of theirs is known)
        self.unread_manifests: list[str] = []  # manifests in the cache that could not be read
        self.invalid_manifests: list[str] = []  # of those, the ones whose bytes hash right but do not parse
        self.pointers = 0  # pointers added (that parsed)

    def add(
        self, label: str, data: bytes | None = None, pointer: ptrfmt.Pointer | None = None, place: Place | None = None
    ) -> str | None:
        """Add a pointer (parsed, or its bytes), read at place; returns its oid, None when it does not parse."""
        try:
            p = pointer if pointer is not None else ptrfmt.loads(data or b"", label)
        except MvcError:
            self.unreadable.append(label)
            return None
        self.wanted.add_pointer(label, p)
        self.labels.setdefault(p.oid, []).append(shown_label(label))
        if place is not None:
            self.places.setdefault(p.oid, set()).add(place)
        self.pointers += 1
        return p.oid

    def add_commits(self, repo: Repo, commits: dict[str, str]) -> dict[str, set[str]]:
        """Every pointer in the trees of commits ({commit: how to name it}), labelled ``PATH at NAME``;
        returns {pointer relpath: the oids it names there}."""
        found: dict[str, set[str]] = {}
        for commit, name in commits.items():
            for prel, data in repo.pointers_at_commit(commit).items():
                oid = self.add(f"{prel} at {name}", data, place=("rev", name))
                if oid is not None:
                    found.setdefault(prel, set()).add(oid)
        return found

    def read_manifests(self, repo: Repo) -> None:
        """The entries of every wanted directory whose manifest the cache holds; one that does not hash to its
        oid or parse (left where it is: gc and verify move nothing), or that was moved to quarantine/ by
        another command, is listed in ``unread_manifests``: its files are unknown. One listed so before is read
        again when the cache holds it now (fetched back from a remote); one that hashes right but does not parse is
        also listed in ``invalid_manifests`` (no fetch mends it)."""
        quarantined: set[str] | None = None
        for moid in list(self.wanted.manifests):
            if moid in self.wanted.entries or moid in self.invalid_manifests:
                continue
            if moid in self.unread_manifests:
                if not repo.odb.exists(moid):
                    continue
                self.unread_manifests.remove(moid)
            if not repo.odb.exists(moid):
                if quarantined is None:
                    quarantined = _quarantined(repo)
                if moid in quarantined:
                    self.unread_manifests.append(moid)
                continue
            try:
                data = _read_sound(repo, moid)
            except (MvcError, OSError):
                self.unread_manifests.append(moid)
                continue
            try:
                entries = self.wanted.read_manifest(repo, moid, data)
            except MvcError:
                self.unread_manifests.append(moid)
                self.invalid_manifests.append(moid)
                continue
            at = self.places.get(moid, set())
            for e in entries:
                self.labels.setdefault(e.oid, []).append(self.wanted.files[e.oid][0])
                if at:
                    self.places.setdefault(e.oid, set()).update(at)

    def objects(self) -> set[str]:
        return set(self.wanted.files) | set(self.wanted.manifests)

    def named(self, oid: str) -> list[str]:
        """Every label of the pointers (or directory entries) that need oid."""
        return self.labels.get(oid) or [self.wanted.label(oid)]


def _read_sound(repo: Repo, oid: str) -> bytes:
    """Object oid's bytes from the cache, refused (CorruptObject) unless they hash to it; nothing is moved."""
    from mvc.errors import CorruptObject
    from mvc.objects import oid as oids
    from mvc.storage import fileio

    with open(repo.odb.path(oid), "rb") as f:
        data = f.read()
    if oids.from_digest(fileio.hexdigest_bytes(data)) != oid:
        raise CorruptObject(f"cache object {oid} is corrupt")
    return data


def _quarantined(repo: Repo) -> set[str]:
    """The oids of the objects other commands moved to the cache's quarantine/ (named OID.RANDOM, ':' as '-')."""
    try:
        names = os.listdir(os.path.join(repo.odb.root, "quarantine"))
    except OSError:
        return set()
    return {name.rsplit(".", 1)[0].replace("-", ":", 1) for name in names}


def shown_label(label: str) -> str:
    prel, at, rev = label.partition(" at ")
    staged = prel.endswith(" (staged)")
    prel = prel.removesuffix(" (staged)")
    return Repo.target_of(prel) + (" (staged)" if staged else "") + at + rev


def add_workspace(repo: Repo, reach: Reach) -> None:
    """The pointers of the work tree (tracked or not yet added) and of the index, in this worktree and in
    every other worktree of the repository."""
    for prel in repo.git.ls_pointers():
        try:
            reach.add(prel, pointer=load_pointer(repo, prel), place=WORK)
        except MvcError:
            reach.unreadable.append(prel)
    _add_index(repo.git, reach)
    for root, _head in repo.git.worktrees():
        if not os.path.isdir(root):  # on a disk not mounted, say (git worktree lock): its index is still read
            index = repo.git.worktree_index(root)
            if index is not None:
                gone = gitmod.Git(repo.root)
                gone.env = {**os.environ, "GIT_INDEX_FILE": index}
                _add_index(gone, reach, f" at worktree {root}", ("worktree", root))
            continue
        other = gitmod.Git(root)
        for prel in other.ls_pointers():
            try:
                with open(os.path.join(root, prel), "rb") as f:
                    data = f.read(POINTER_MAX + 1)  # a pointer is a few hundred bytes: no more is read
            except OSError:
                continue
            reach.add(f"{prel} at worktree {root}", data, place=("worktree", root))
        _add_index(other, reach, f" at worktree {root}", ("worktree", root))


def _add_index(git: gitmod.Git, reach: Reach, where: str = "", place: Place = WORK) -> None:
    staged = git.index_blobs("*" + ptrfmt.SUFFIX)
    if not staged:
        return
    blobs = git.cat_objects(staged.values())
    for prel, blob in staged.items():
        data = blobs.get(blob)
        if data is not None:
            reach.add(f"{prel} (staged){where}", data, place=place)


def tips(repo: Repo, drop_deprecated: bool = False) -> tuple[dict[str, str], list[str]]:
    """({commit: name} of every ref (branches, tags, remote-tracking branches, notes…), HEAD, every stash
    entry (with its index and untracked-files commits) and every other worktree's HEAD; the refs left out).
    With drop_deprecated, the registry tags of deprecated models are left out."""
    found: dict[str, str] = {}
    refs = repo.git.ref_commits("refs")
    dropped: set[str] = set()
    if drop_deprecated:
        from mvc.repo import models

        state = models.load(repo.git)
        dead = {name for name, m in state.models.items() if m.deprecated}
        dropped = {n for n in refs if n.startswith("tags/") and model_of(n[len("tags/") :]) in dead}
    for name, commit in sorted(refs.items()):
        if name not in dropped:
            found.setdefault(commit, name.removeprefix("heads/").removeprefix("tags/"))
    try:
        found.setdefault(str(repo.git.resolve("HEAD").id), "HEAD")
    except MvcError:
        pass  # an unborn branch
    for i, commit in enumerate(repo.git.stash_commits()):
        found.setdefault(commit, f"stash@{{{i}}}")
    for root, head in repo.git.worktrees():
        if head is not None:
            found.setdefault(head, f"HEAD of worktree {root}")
    return found, sorted(f"refs/{n}" for n in dropped)


def model_of(tag: str) -> str | None:
    """The model a registry tag is about; None for a tag that is not one."""
    parsed = tagfmt.parse(tag)
    return parsed.artifact if parsed is not None else None


def history_versions(repo: Repo, commits: Iterable[str], skip: set[str]) -> list[tuple[str, str, bytes]]:
    """(commit, pointer relpath, bytes) of every distinct pointer file in the trees of commits (newest
    first), commits in skip left out, each reported with the newest commit that has it."""
    order = [c for c in commits if c not in skip]
    found = repo.git.pointer_blobs(order)
    rank = {c: i for i, c in enumerate(order)}
    for blob, version in _imported_versions(repo, order).items():
        if blob not in found or rank[version[0]] < rank.get(found[blob][0], 0):
            found[blob] = version
    return sorted(found.values(), key=lambda v: rank.get(v[0], 0))


def _imported_versions(repo: Repo, commits: list[str]) -> dict[str, tuple[str, str, bytes]]:
    """{git blob id: (commit, pointer relpath, bytes)} of the pointers other tools' files stand for in commits
    (``.dvc`` files before 'mvc import-dvc': docs/FORMAT.md, "Imported history"), each with the first commit that
    has it; none where the commit holds an mvc pointer at that path (mvc's wins)."""
    from mvc.repo import foreign  # not at the top: only repositories with a map read other tools' files

    found: dict[str, tuple[str, str, bytes]] = {}
    if not foreign.imported(repo):
        return found
    for commit in commits:
        theirs = foreign.pointers_at(repo, commit)
        mine = repo.git.blob_ids(commit, theirs) if theirs else {}
        for prel, data in theirs.items():
            if mine[prel] is None:
                found.setdefault(gitmod.blob_id(data), (commit, prel, data))
    return found


def keep_set(
    repo: Repo,
    keep_last: int | None,
    revs: list[str] | None,
    drop_deprecated: bool,
    more_tips: dict[str, str] | None = None,
) -> tuple[Reach, Reach]:
    """(what gc keeps, the history versions keep_last lets go: how gc names what it deletes), directory
    entries read where the cache holds their manifests. Always kept: the workspace (:func:`add_workspace`),
    the :func:`tips` and ``more_tips`` ({commit: name}, e.g. a git remote's refs); then the history of revs
    (default: of every ref and reflog entry, and of more_tips), all of it, or the keep_last newest versions
    of each pointer path (counting those at the tips)."""
    keep = Reach()
    add_workspace(repo, keep)
    found, dropped_refs = tips(repo, drop_deprecated)
    for commit, name in (more_tips or {}).items():
        found.setdefault(commit, name)
    at_tips = keep.add_commits(repo, found)
    history = repo.git.history([repo.resolve(r) for r in revs] if revs else None, exclude=dropped_refs)
    if more_tips and not revs:
        history = list(dict.fromkeys([*history, *repo.git.history(more_tips)]))
    dropped = Reach()
    per_path: dict[str, list[str]] = {prel: sorted(oids_) for prel, oids_ in at_tips.items()}
    for commit, prel, data in history_versions(repo, history, set(found)):
        label = f"{prel} at {commit[:10]}"
        if keep_last is None:
            keep.add(label, data)
            continue
        oid = dropped.add(label, data)  # as a dropped version, unless it is one of the newest
        if oid is None:
            continue  # names nothing mvc could read: nothing to keep for it
        seen = per_path.setdefault(prel, [])
        if oid in seen or len(seen) < keep_last:
            if oid not in seen:
                seen.append(oid)
            keep.add(label, data)
    keep.read_manifests(repo)
    dropped.read_manifests(repo)
    keep.unreadable += dropped.unreadable
    if revs:  # what only the history revs leave out names is no orphan: it is labelled by its newest commit there
        within = set(history)
        outside = Reach()
        rest = [c for c in repo.git.history(None, exclude=dropped_refs) if c not in within]
        for commit, prel, data in history_versions(repo, rest, set(found)):
            outside.add(f"{prel} at {commit[:10]}, outside --rev's history", data)
        outside.read_manifests(repo)
        for oid, labels in outside.labels.items():
            dropped.labels.setdefault(oid, labels)
    return keep, dropped


def git_remote_tips(repo: Repo) -> dict[str, str]:
    """{commit: "REMOTE REF"} of every ref of every git remote, as it is now (``git ls-remote``): what
    teammates can already see is kept. Refused when a ref names a commit this clone has not fetched (its
    pointers cannot be read) or a git remote cannot be listed."""
    from mvc.errors import GcRefused

    found: dict[str, str] = {}
    for gremote in sorted(repo.git.remote_names()):
        try:
            refs = repo.git.ls_remote(gremote)
        except MvcError as e:
            raise GcRefused(
                f"git remote {gremote} cannot be listed ({e}), so gc cannot see what its branches and tags need; "
                "nothing was deleted: retry when it can be reached"
            ) from None
        refs = [(oid, ref) for oid, ref in refs if not ref.endswith("^{}")]
        peeled = repo.git.peel_commits(oid for oid, _ in refs)
        for oid, ref in refs:
            commit = peeled.get(oid)
            if commit is None:
                if is_commit_ref(ref):
                    raise GcRefused(
                        f"git remote {gremote} has {ref} at {oid[:10]}, which this clone has not fetched, so gc "
                        f"cannot read what it needs; nothing was deleted: run 'git fetch {gremote} --tags' first"
                    )
                continue
            found.setdefault(commit, f"{gremote} {ref}")
    return found


def is_commit_ref(ref: str) -> bool:
    """Refs that name commits whose trees matter (branches, tags, HEAD); others (notes…) may name anything."""
    return ref == "HEAD" or ref.startswith(("refs/heads/", "refs/tags/", "refs/mvc/"))
