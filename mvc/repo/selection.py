"""Which pointers a command works on: the user's paths matched against tracked pointers, in the work
tree or at revisions, and the objects those pointers need. Shared by the workspace and remote verbs."""

from __future__ import annotations

import os
from collections.abc import Iterable

from mvc.errors import ConflictedPointer, MvcError, PathError, PointerError, RegistryError
from mvc.format import config as cfgfmt
from mvc.format import pointer as ptrfmt
from mvc.format.pointer import suggested
from mvc.objects import manifest as mf
from mvc.objects import oid as oids
from mvc.repo.repository import Repo, in_quotes, quoted, shell_quoted

POINTER_MAX = 1 << 20  # a pointer is a few hundred bytes; more is a file of the user's, not read whole


def user_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Accept one path or many (so ``mvc.add("model.pt")`` does what it says). An empty one is refused, as git
    refuses it: an unset shell variable (``mvc remove "$OLD"``) must not mean every tracked path."""
    one = isinstance(paths, (str, bytes, os.PathLike))
    out = [os.fsdecode(paths)] if one else [os.fsdecode(p) for p in paths]  # type: ignore[arg-type,union-attr]
    if any(p == "" for p in out):
        raise PathError("'' is not a path: name a tracked path (or '.' for all of them)")
    return out


def user_revs(revs: str | Iterable[str] | None) -> list[str] | None:
    """One revision or many (``revs="HEAD"`` is one revision, not four letters); an empty one is refused."""
    if revs is None:
        return None
    out = [revs] if isinstance(revs, str) else list(revs)
    if any(not isinstance(r, str) or not r for r in out):
        raise PathError("a revision is a non-empty string (a commit, branch, tag or NAME@vX.Y.Z): check revs")
    return out


def user_jobs(jobs: int | None) -> int | None:
    """A number of parallel requests as the user gave it: None (the remote's default), or 1 or more."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise PathError(f"jobs must be a whole number, 1 or more (not {jobs!r})")
    return jobs


def matches(prel: str, rels: list[str]) -> bool:
    target = Repo.target_of(prel)
    return any(r == "." or r in (prel, target) or prel.startswith(r.rstrip("/") + "/") for r in rels)


def select(
    repo: Repo, paths: Iterable[str], available: Iterable[str], rev: str | None = None, in_dir: str = ""
) -> list[str]:
    """Pointer relpaths among available (in the work tree, or at rev) that the user's paths name (all when
    paths is empty). A chosen pointer whose tracked path mvc never writes is refused (``Repo.untrackable``).
    in_dir: the fix a path inside a tracked directory is told, ``{dir}`` standing for that directory
    (default: name the directory instead)."""
    available = list(available)
    rels = [repo.rel(p) for p in paths]
    chosen = [p for p in available if matches(p, rels)] if rels else available
    for r, shown in zip(rels, paths, strict=False):
        if not any(matches(p, [r]) for p in chosen):
            raise untracked(repo, r, shown, available, rev, in_dir)
    for prel in chosen:
        repo.check_pointer(prel, rev)
    _refuse_nested(chosen, available, rev)
    return chosen


def _refuse_nested(chosen: list[str], available: list[str], rev: str | None) -> None:
    """Pointers do not nest: one whose tracked path lies inside another's (a file pointer committed inside a
    tracked directory) would have two pointers write the same bytes. Refused, naming both."""
    targets = {Repo.target_of(p) for p in available}
    for prel in chosen:
        rel = Repo.target_of(prel)
        at = rel.rfind("/")
        while at > 0:
            top = rel[:at]
            if top in targets:
                where = f" at {rev}" if rev is not None else ""
                raise PointerError(
                    f"{quoted(prel)}{where} tracks a path inside tracked directory {quoted(top)}, and pointers do not "
                    f"nest: remove one of the two pointers with 'git rm' and commit"
                )
            at = rel.rfind("/", 0, at)


def _with_dir(template: str, shown: str) -> str:
    """template with each {dir} replaced by shown (a directory, shell-quoted), a command in single quotes around
    it set off as ``in_quotes`` does (double quotes where shown holds a single quote)."""
    import re

    return re.sub(
        r"'([^'{}]*)\{dir\}([^'{}]*)'|\{dir\}",
        lambda m: shown if m[0] == "{dir}" else in_quotes(m[1] + shown + m[2]),
        template,
    )


def untracked(repo: Repo, rel: str, shown: str, available: list[str], rev: str | None, in_dir: str = "") -> PathError:
    """Why the user's path (rel) names none of the pointers available (in the work tree, or at rev), with the
    fix that applies: a path inside a tracked directory is not to be added on its own, one that does not
    exist is not to be added at all."""
    what, at = quoted(shown), f" at {rev}" if rev is not None else ""
    if rel == ".":
        return PathError(f"{what} is the repository's root, which mvc never tracks: name a tracked path ('mvc ls')")
    top = next((t for t in map(Repo.target_of, available) if rel.startswith(t + "/")), None)
    if top is not None:  # pointers do not nest: a tracked path with rel below it is a directory
        fix = _with_dir(in_dir or "name {dir} instead (mvc handles a directory as a whole)", shell_quoted(top))
        return PathError(f"{what} is part of tracked directory {quoted(top)}{at}: {fix}")
    other = _other_form(rel, available)
    if other is not None:
        return PathError(
            f"{what} is not tracked by mvc{at}, but {quoted(other)} is: the same letters in another Unicode form "
            f"(tracked as {_spelt(other)}, typed as {_spelt(rel)}): name it as it is tracked (shell completion "
            "writes it so)"
        )
    if rev is not None:
        return PathError(f"{what} is not tracked by mvc{at}: check the path with {suggested('mvc ls --rev {}', rev)}")
    if not os.path.lexists(repo.abs(rel)) and not os.path.lexists(repo.abs(Repo.pointer_of(rel))):
        return PathError(
            f"{what} is not tracked by mvc and does not exist: check the path ('mvc ls' lists the tracked ones)"
        )
    return PathError(f"{what} is not tracked by mvc: run {in_quotes('mvc add ' + shell_quoted(shown))} first")


def _other_form(rel: str, available: list[str]) -> str | None:
    """The tracked path that is rel in another Unicode normalization (a name typed precomposed, NFC, where the
    file was named with combining marks, NFD, as macOS writes names, or the other way round), if any."""
    if rel.isascii():
        return None
    import unicodedata

    want = unicodedata.normalize("NFC", rel)
    return next(
        (t for t in map(Repo.target_of, available) if t != rel and unicodedata.normalize("NFC", t) == want), None
    )


def _spelt(name: str) -> str:
    """name with its combining marks written as escapes (``cafe\\u0301.bin``): two forms of one name look alike."""
    import unicodedata

    return "".join(ptrfmt.escaped(c) if unicodedata.combining(c) else c for c in name)


def not_utf8(path: str) -> bool:
    """Names from the filesystem or git may hold undecodable bytes; manifests and state.db are UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def load_pointer(repo: Repo, prel: str, data: bytes | None = None, rev: str | None = None) -> ptrfmt.Pointer:
    """The pointer prel: read from the work tree, or data (its bytes in the index or at rev). Refused when its
    tracked path is one mvc never writes, whatever the command and its flags."""
    repo.check_pointer(prel, rev)
    if not_utf8(prel):
        raise PointerError(f"{quoted(prel)}: a pointer's path must be valid UTF-8: rename it with 'git mv'")
    if data is None:
        p = _read_pointer(repo, prel)
    else:
        p = ptrfmt.loads(data, prel)
    if p.kind == "file":  # a size its object in the cache belies (a hostile commit's): refused, not trusted
        try:
            held = os.lstat(repo.odb.path(p.oid)).st_size
        except OSError:  # in one of the cache's packs (its index says the size), else nothing to compare with
            found = repo.odb.packs.find(p.oid) if repo.odb.packs.has(p.oid) else None
            held = found[2] if found else p.size
        # (an object cut short is the cache's damage, said where it is read; a sound copy's size is the proof)
        sound = repo.odb.sound_size(p.oid) if held != p.size else None
        if sound is not None and sound != p.size:
            where = f"{prel} at {rev}" if rev else prel
            raise PointerError(
                f"{where} gives size {p.size}, but its object {p.oid} in the cache holds {sound} bytes: the pointer "
                f"is damaged: restore it with git ({in_quotes('git log -p ' + shell_quoted(prel))}), or delete it and "
                f"run {in_quotes('mvc add ' + shell_quoted(Repo.target_of(prel)))}"
            )
    return p


def _read_pointer(repo: Repo, prel: str) -> ptrfmt.Pointer:
    """The work tree's pointer prel, read again once when it is gone, empty or cut in a line: git rewrites a file
    by unlinking it and writing a new one (a checkout of a pointer, a branch switch), so a reader may fall between.
    One that reads whole and does not parse (conflict markers) is refused at once."""
    import time

    full = repo.check_inside(prel)
    for again in (False, True):
        if os.path.islink(full):
            raise PointerError(f"{prel} is a symlink: pointer files must be regular files; replace it with the file")
        try:
            with open(full, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if again:
                raise PointerError(
                    f"{prel} went away while it was read (a git checkout rewriting it?): run the command again"
                ) from None
            time.sleep(0.05)
            continue
        if again or (data and data.endswith(b"\n")):  # (a file git is still writing: empty, or cut in a line)
            return ptrfmt.loads(data, prel)
        time.sleep(0.05)
    raise AssertionError("unreachable")


def artifacts(meta: dict) -> list[tuple[str, str, str, int]]:
    """(name, path, oid, size) of each file ``meta.artifacts`` records (``mvc.run``'s ``run.artifact``): objects
    the pointer needs besides its own, which push sends and gc keeps. A committed pointer is untrusted: an
    entry without a valid oid names nothing mvc stored and is left out."""
    table = meta.get("artifacts")
    if not isinstance(table, dict):
        return []
    found = []
    for name, a in table.items():
        if isinstance(a, dict) and oids.is_oid(a.get("oid")):
            size = a.get("size")
            path = a.get("path")
            found.append(
                (
                    str(name),
                    path if isinstance(path, str) else str(name),
                    a["oid"],
                    size if type(size) is int and size >= 0 else 0,
                )
            )
    return found


def shown(label: str) -> str:
    """A pointer's label (``PATH.mvc`` or ``PATH.mvc at REV``) as the user knows it: the tracked path."""
    prel, at, rev = label.partition(" at ")
    return Repo.target_of(prel) + at + rev if prel.endswith(ptrfmt.SUFFIX) else label


class Wanted:
    """The objects some pointers need. Each is labelled for messages with the tracked path as the user
    knows it (``models/churn.pt``, ``data/tok/vocab.json of directory data/tok``, ``… at REV``), and
    ``paths`` gives the tracked path to re-add it from (``data/tok``).

    A plain class, not a dataclass: this module is on `mvc status`'s start-up path (ARCHITECTURE.md)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, int]] = {}  # oid -> (label, size)
        self.manifests: dict[str, str] = {}  # manifest oid -> pointer label (PATH.mvc [at REV])
        self.entries: dict[str, list[mf.Entry]] = {}  # manifest oid -> its entries, when read
        self.paths: dict[str, str] = {}  # oid -> the tracked path it belongs to
        self.named: list[tuple[str, str]] = []  # (tracked path [at REV], oid) of each pointer and artifact, in order

    def add_pointer(self, label: str, p: ptrfmt.Pointer) -> None:
        self.paths.setdefault(p.oid, shown(label.partition(" at ")[0]))
        self.named.append((shown(label), p.oid))
        if p.kind == "file":
            self.files.setdefault(p.oid, (shown(label), p.size))
        else:
            self.manifests.setdefault(p.oid, label)
        for name, path, oid, size in artifacts(p.meta):  # files a training run stored beside the model
            text = f"{path} (artifact {name} of {shown(label)})"
            text = repr(text) if ptrfmt.has_control(text) else text
            self.files.setdefault(oid, (text, size))
            self.named.append((text, oid))

    def label(self, oid: str) -> str:
        """How a message names the object: its tracked path (a manifest: its directory's)."""
        if oid in self.files:
            return self.files[oid][0]
        if oid in self.manifests:
            prel, at, rev = self.manifests[oid].partition(" at ")
            return f"the manifest of directory {Repo.target_of(prel)}{at}{rev}"
        return oid

    def read_manifest(self, repo: Repo, moid: str, data: bytes | None = None) -> list[mf.Entry]:
        """The entries of manifest moid (its bytes: data, already checked, or read from the cache and checked
        there), each wanted, labelled as a file of its directory."""
        entries = mf.loads(repo.odb.read_bytes(moid) if data is None else data, moid)
        self.entries[moid] = entries
        prel, at, rev = self.manifests[moid].partition(" at ")
        top = Repo.target_of(prel)
        files, paths, tail = self.files, self.paths, f" of directory {top}{at}{rev}"
        for e in entries:
            if e.oid not in files:  # the first pointer to name an object labels it
                files[e.oid] = (f"{top}/{e.path}{tail}", e.size)
            if e.oid not in paths:
                paths[e.oid] = top
        return entries


def pointers(
    repo: Repo,
    paths: Iterable[str],
    revs: Iterable[str] | None,
    all_branches: bool = False,
    all_tags: bool = False,
    all_commits: bool = False,
    skip_conflicted: bool = False,
) -> dict[str, ptrfmt.Pointer]:
    """{label: pointer} selected by paths in the work tree, or in the given revisions when any.
    ``skip_conflicted``: a work-tree pointer left with merge conflict markers is left out, not refused."""
    shown = user_paths(paths)
    rels = [repo.rel(p) for p in shown]
    commits: dict[str, str] = {}
    for rev in revs or ():
        commits.setdefault(repo.resolve(rev), rev)
    if all_branches:
        for name, commit in sorted(repo.git.ref_commits("refs/heads").items()):
            commits.setdefault(commit, name)
    if all_tags:
        for name, commit in sorted(repo.git.ref_commits("refs/tags").items()):
            commits.setdefault(commit, name)
    if all_commits:
        for commit in repo.git.all_commits():
            commits.setdefault(commit, commit[:12])
    found: dict[str, ptrfmt.Pointer] = {}
    matched: list[str] = []
    if not (revs or all_branches or all_tags or all_commits):
        for prel in repo.git.ls_pointers():
            if not rels or matches(prel, rels):
                matched.append(prel)
                try:
                    found[prel] = load_pointer(repo, prel)
                except ConflictedPointer:
                    if not skip_conflicted:
                        raise
    elif commits:
        for commit, prel, data in repo.git.pointer_blobs(commits).values():
            if not rels or matches(prel, rels):
                repo.check_pointer(prel, commits[commit])
                found[f"{prel} at {commits[commit]}"] = ptrfmt.loads(data, f"{prel} at {commits[commit]}")
                matched.append(prel)
        from mvc.repo import foreign  # pointers read from .dvc files before 'mvc import-dvc'

        if foreign.imported(repo):
            for commit, name in commits.items():
                for prel, data in foreign.pointers_at(repo, commit).items():
                    if (not rels or matches(prel, rels)) and f"{prel} at {name}" not in found:
                        repo.check_pointer(prel, name)
                        found[f"{prel} at {name}"] = ptrfmt.loads(data, f"{prel} at {name}")
                        matched.append(prel)
    for r, p in zip(rels, shown, strict=False):
        if not any(matches(m, [r]) for m in matched):
            if commits:
                raise PathError(f"{p} is not tracked by mvc in the selected revisions: check the path with 'mvc ls'")
            # a file inside a tracked directory moves with it: say which (transfers move a directory whole)
            raise untracked(repo, r, p, repo.git.ls_pointers(), None, "name {dir} (a directory moves whole)")
    return found


def objects_for(repo: Repo, pointers: dict[str, bytes]) -> set[str]:
    """Every object the pointers need: file oids, manifest oids and (for manifests in the cache) their entries."""
    wanted = Wanted()
    for label, data in pointers.items():
        wanted.add_pointer(label, ptrfmt.loads(data, label))
    for moid in list(wanted.manifests):
        if repo.odb.exists(moid):
            wanted.read_manifest(repo, moid)
    return set(wanted.files) | set(wanted.manifests)


def check_is_pointer(repo: Repo, prel: str, so: str) -> None:
    """Refuse a work-tree file prel that is not a pointer: a file of the user's named ``*.mvc`` (read no further
    than a pointer's size), or a symlink (never followed)."""
    import stat as statmod

    full = repo.abs(prel)
    try:
        st = os.lstat(full)
    except OSError:
        return  # nothing there to delete
    try:
        if not statmod.S_ISREG(st.st_mode) or st.st_size > POINTER_MAX:
            raise PointerError("not a pointer's kind or size")
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            ptrfmt.loads(os.read(fd, POINTER_MAX), prel)
        finally:
            os.close(fd)
    except ConflictedPointer:
        raise  # mvc's pointer, mid-merge: resolved as its message says
    except (OSError, MvcError):
        raise PathError(
            f"{quoted(prel)} is not an mvc pointer, {so}: if it is a file of yours, rename it (mvc reads every "
            "*.mvc file as a pointer)"
        ) from None


def model_refs(repo: Repo, paths: list[str], rev: str | None, base: str = "") -> list[tuple[str, str, str]]:
    """[(the user's text, model path, commit)] when paths are registry revisions rather than paths, else []; base:
    the directory a relative path is read from (default: the current one)."""
    texts = [p for p in paths if ("@" in p or "#" in p) and not p.startswith("./")]  # ./NAME@v1: a path, said so
    if not texts:
        return []
    from mvc.repo import models

    maybe = [
        p
        for p in texts
        if not os.path.lexists(os.path.join(base, p)) and not os.path.lexists(os.path.join(base, p) + ptrfmt.SUFFIX)
    ]
    for p in texts:
        if p not in maybe and registered(repo, p):  # a file named as a version is: neither is picked silently
            raise PathError(
                f"{p} names both a path here and a registry revision: write ./{p} for the path, or rename it"
            )
    refs = [(p, models.model_ref(repo.git, p)) for p in maybe]
    found = [(p, r) for p, r in refs if r is not None]
    if not found:
        if rev is None:  # no such path: a registry revision mistyped, or of a model this repository lacks?
            names = models.load(repo.git).names()
            why = next((w for p in maybe if (w := models.unknown_ref(p, names)) is not None), None)
            if why is not None:
                raise RegistryError(why)
        return []
    if len(found) != len(paths):
        other = next(p for p in paths if p not in dict(found))
        raise PathError(
            f"{other} is not a model revision like {found[0][0]}: give paths and model revisions in separate commands"
        )
    if rev is not None:
        raise PathError(f"{found[0][0]} names a revision already: drop --rev {rev}")
    return [(text, path, commit) for text, (path, commit) in found]


def refuse_a_model_name(repo: Repo, texts: list[str], command: str, base: str = "") -> None:
    """A registered model's name where a path goes (``mvc get churn``, as GTO and MLflow users name a model), nothing
    of that name in base: refused with the versions to name (get, checkout), or the model's path (status)."""
    from mvc.repo import models

    for text in sorted(models.load(repo.git).names().intersection(texts)):
        path = os.path.join(base, text)
        if os.path.lexists(path) or os.path.lexists(path + ptrfmt.SUFFIX):
            continue
        registry, at = in_quotes(f"mvc registry {shell_quoted(text)}"), cfgfmt.models(repo.config.shared).get(text)
        if command == "status":  # (it takes paths alone)
            where = f"its path is {quoted(at)}: {suggested('mvc status {}', at)}" if at and repo.tracks(at) else ""
            fix = f"{where or 'see ' + in_quotes('mvc ls')} (its versions and stages: {registry})"
        else:
            run = f"{suggested('mvc checkout {}', text + '@latest')}; " if command == "checkout" else ""
            fix = f"use {text}@latest or {text}#STAGE ({run}its versions and stages: {registry}), or list the paths with 'mvc ls'"
        raise PathError(f"{quoted(text)} is not tracked by mvc: {text} is a model: {fix}")


def registered(repo: Repo, text: str) -> bool:
    from mvc.repo import models

    try:
        return models.model_ref(repo.git, text) is not None
    except MvcError:
        return False


def pointer_for(repo: Repo, path: str, rev: str | None) -> tuple[str, ptrfmt.Pointer]:
    rel = repo.rel(path)
    prel = rel if rel.endswith(ptrfmt.SUFFIX) else Repo.pointer_of(rel)
    if rev is None:
        if not os.path.isfile(repo.abs(prel)):
            raise untracked(repo, Repo.target_of(prel), path, repo.git.ls_pointers(), None)
        return prel, load_pointer(repo, prel)
    at_rev = repo.pointers_at(rev)
    if prel not in at_rev:
        from mvc.repo import foreign

        missing = foreign.unimported_at(repo, repo.resolve(rev)) if foreign.imported(repo) else {}
        if Repo.target_of(prel) in missing:
            raise foreign.not_imported(repo, Repo.target_of(prel), rev, missing[Repo.target_of(prel)])
        raise PathError(
            f"{quoted(path)} is not tracked by mvc at {rev}: check the path with {suggested('mvc ls --rev {}', rev)}"
        )
    return prel, load_pointer(repo, prel, at_rev[prel], rev)


def check_case(repo: Repo, rels: list[str], shown: list[str], tracked_targets: set[str]) -> None:
    """Refuse a path that differs only in case from a tracked one (or its directories) where git's
    core.ignorecase is true (a repository made on macOS or Windows): git would stage its pointer as the
    other's, or not at all, and the version would never reach a commit."""
    if len(tracked_targets) > 1000 and not repo.git.ignorecase():
        return  # (one git call is cheaper than folding 100,000 paths where git tells cases apart, as by default)
    spelt: dict[str, str] = {}
    for t in sorted(tracked_targets):
        parts = t.split("/")
        for i in range(1, len(parts) + 1):
            spelt.setdefault("/".join(parts[:i]).casefold(), "/".join(parts[:i]))
    clash = []
    for rel, name in zip(rels, shown, strict=False):
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            mine = "/".join(parts[:i])
            other = spelt.get(mine.casefold())
            if other is not None and other != mine:
                clash.append((name, other))
                break
    if clash and repo.git.ignorecase():
        name, other = clash[0]
        raise PathError(
            f"{name} differs only in case from {other}, which mvc tracks, and git's core.ignorecase is true here: "
            f"git would take one for the other: rename {name}, or add it as {other}"
        )
