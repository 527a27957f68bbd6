"""``mvc import-dvc``: a DVC repository's outputs become mvc pointers, staged as one change to review
(docs/cli.md, "mvc import-dvc"; docs/FORMAT.md, "Imported history").

Everything is read and checked before anything in the work tree or the index changes: every .dvc file and
dvc.lock parsed, every object found in DVC's cache (or fetched from a DVC remote), its md5 checked and its bytes
hashed into mvc's cache (linked from DVC's cache where the filesystem allows: reflink, else hardlink). Objects
stored on the way are harmless if a later check fails: nothing names them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from mvc import progress as progressmod
from mvc.api import dvc_checks, dvc_remotes
from mvc.errors import ForeignError, MvcError, PathError, RemoteError
from mvc.format import config as cfgfmt
from mvc.format import dvcfile
from mvc.format import pointer as ptrfmt
from mvc.format.config import CONFIG, CONFIG_PATH, LOCK, MVC_DIR
from mvc.format.pointer import suggested
from mvc.objects import manifest as mf
from mvc.objects import oid as oids
from mvc.repo import foreign, foreign_dvc
from mvc.repo import ignores as gitignores
from mvc.repo.repository import Repo, open_repo
from mvc.repo.rollback import Rollback
from mvc.repo.selection import user_paths
from mvc.storage import fileio
from mvc.storage.lock import locked
from mvc.storage.parallel import run_parallel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LINKS = ("reflink", "hardlink", "copy")  # DVC's cache files are immutable: mvc's object may share their inode


class _Plan:
    """What the import found: outputs now and in history, DVC md5 -> (oid, size, nfiles)."""

    def __init__(self, mapped: dict[str, tuple[str, int, int | None]]) -> None:
        self.now: list[dvcfile.Out] = []  # the outputs whose pointers the import writes
        self.dvc_files: list[str] = []  # the .dvc files it removes
        self.kept: list[str] = []  # outputs left alone: mvc tracks them, or tracked them and stopped
        self.compare: list[tuple[dvcfile.Out, str]] = []  # (output, its DVC file) mvc tracks: the same content?
        self.mapped = mapped  # the map's dvc table as the work tree has it: imported before
        self.history: dict[str, bool] = {}  # md5 -> legacy, of outputs only older revisions name, not mapped yet
        self.known: dict[str, tuple[str, int, int | None]] = {}
        self.missing_history: list[str] = []  # in neither DVC's cache nor its remote
        self.unreached: dict[str, str] = {}  # md5 -> why DVC's remote could not be read for it (unreachable...)
        self.fetched = 0
        self.worktree: dict[str, str] = {}  # md5 -> the work tree's file of an output (of a directory) said to be it
        self.from_worktree = 0
        self.stored = 0


def import_dvc(
    paths: Iterable[str] = (),
    *,
    history: bool = True,
    dvc_remote: str | None = None,
    push: bool = False,
    remote: str | None = None,
    jobs: int | None = None,
    repo: Repo | None = None,
    progress: progressmod.Factory = progressmod.null,
) -> dict[str, Any]:
    """Convert the DVC outputs of the work tree (.dvc files, dvc.lock stages) to mvc pointers, all staged; run
    again, import what is new (a .dvc file merged since, a new stage output) and leave the rest alone.

    ``paths``: only the outputs at or under these paths (or named by these DVC files); an output of dvc.lock
    mvc tracked once and stopped tracking is imported again only when named so. ``history``: also import the
    versions older commits' .dvc files and dvc.lock stages name (where DVC's cache or remote holds them), so that
    ``--rev`` reads them. ``dvc_remote``: the DVC remote to fetch from (default: DVC's). ``push``: then push
    everything imported to the mvc remote (``remote``, default: the default one).
    Returns {paths, dvc_files, dvc_imports ({dvc_file, url, path, rev} of the removed .dvc files 'dvc import'
    wrote: the link to that repository, which mvc does not keep), kept, remotes, objects, stored, fetched,
    from_worktree (files DVC's cache and remote lacked, taken from the work tree: their md5 checked),
    history_versions, history_missing (in neither DVC's cache nor its remote), history_unreachable (DVC's remote
    could not be read: dvc_remote_error says why), pushed, up_to_date}."""
    repo = open_repo(repo)
    dvc_checks.refuse_unmerged(repo)
    table = foreign.read_worktree(repo).get("dvc")
    plan = _Plan(dvcfile.imported(table, f"{foreign.IMPORTED_PATH}, its dvc table") if table is not None else {})
    pick = _read_now(repo, plan, [repo.rel(p) for p in user_paths(paths)], table is not None)
    dvc_checks.refuse_ignored(repo, plan.now)
    links = foreign_dvc.import_links(repo, plan.dvc_files)  # read before the import removes those files
    if history:
        _read_history(repo, plan, pick)
    # DVC's cache and remotes: needed for what is imported now; for older versions, where .dvc/ is left
    needed = bool(plan.now or plan.compare) or os.path.isdir(os.path.join(repo.root, ".dvc"))
    dvc = foreign_dvc.Dvc(repo, dvc_remote) if needed else None
    jobs = jobs or min(32, 4 * (os.cpu_count() or 1))
    if push:
        dvc_remotes.check_push_remote(repo, dvc, remote)  # before anything is written: all or nothing
    # what is stored below is named by no pointer until _write: a gc of the cache waits (ODB.adding)
    with repo.odb.adding():
        if dvc is not None:
            _import_now(repo, dvc, plan, plan.now + [o for o, _ in plan.compare], jobs, progress)
        _settle(repo, plan)
        for md5, legacy in sorted(plan.history.items()):
            if md5 in plan.known:
                continue
            try:
                if dvc is not None:
                    _import_object(repo, dvc, plan, md5, legacy, f"an older version ({md5})", jobs, progress)
                    continue
            except RemoteError as e:  # that remote is out of reach (or refused): a later run may get it
                plan.unreached[md5] = str(e)
                continue
            except ForeignError:  # in neither DVC's cache nor its remote
                pass
            plan.missing_history.append(md5)
        new_history = len([m for m in plan.history if m in plan.known])
        up_to_date = not (plan.now or plan.dvc_files or new_history)
        shared: list[str] = []
        pushed = None
        if not up_to_date:
            # everything is checked: from here on the work tree and the index change, all or nothing
            with Rollback(repo) as rb:
                _save(rb, plan)
                shared = _write(repo, dvc, plan)
    if push and not up_to_date:  # (after the gc lock: a push names nothing new)
        from mvc.api import sync

        repo = Repo(repo.root)  # the config as the import left it: with DVC's remotes
        pushed = sync.push(repo=repo, remote=remote, jobs=jobs, progress=progress)  # the staged pointers
        if plan.history:  # and the versions older commits name
            more = sync.push(repo=repo, remote=remote, jobs=jobs, all_commits=True, progress=progress)
            pushed["uploaded"] += more["uploaded"]
    return {
        "paths": sorted(o.path for o in plan.now),
        "dvc_files": sorted(plan.dvc_files),
        "dvc_imports": sorted(links, key=lambda d: d["dvc_file"]),
        "kept": sorted(plan.kept),
        "remotes": shared,
        "objects": len(plan.known),
        "stored": plan.stored,
        "fetched": plan.fetched,
        "from_worktree": plan.from_worktree,
        "history_versions": new_history,
        "history_missing": sorted(plan.missing_history),
        "history_unreachable": sorted(plan.unreached),
        "dvc_remote_error": next(iter(plan.unreached.values()), None),
        "pushed": pushed,
        "up_to_date": up_to_date,
    }


def _read_now(repo: Repo, plan: _Plan, rels: list[str], before: bool) -> Callable[[str], bool] | None:
    """Sort the work tree's DVC outputs (those rels name, when given) into plan: to import, to compare with the
    pointer mvc has, left alone. ``before``: an import ran before (the map has a dvc table). Returns which
    output paths the history is read for (None: all)."""
    found = foreign_dvc.worktree_outs(repo)
    if not found and not before:
        raise PathError("no DVC outputs to import: no .dvc file or dvc.lock output is tracked by git here")
    chosen = _choose(repo, found, rels)
    existing = {Repo.target_of(p) for p in repo.git.ls_pointers()}
    lock_new = []
    for o, src in chosen:
        of_file = src.endswith(foreign_dvc.SUFFIX)
        if of_file and src not in plan.dvc_files:
            plan.dvc_files.append(src)  # imported whole, or left over from an import: removed either way
        if o.path in existing:
            if (not of_file and not rels) or _imported_as(repo, o):
                plan.kept.append(o.path)  # a stage output of the dvc.lock an import keeps, or this very version
            else:
                plan.compare.append((o, src))
        elif not of_file and not rels:
            lock_new.append(o)
        else:
            plan.now.append(o)
    gone = _tracked_before(repo, [o.path for o in lock_new])
    for o in lock_new:  # mvc's pointers alone say what is tracked once imported: one removed or moved stays so
        if o.path in gone:
            plan.kept.append(o.path)
        else:
            plan.now.append(o)
    if not rels:
        return None
    picked = {o.path for o, _ in chosen}
    return lambda path: path in picked or any(_under(path, r) for r in rels)


def _under(path: str, rel: str) -> bool:
    return rel == "." or path == rel or path.startswith(rel + "/")


def _choose(repo: Repo, found: list[tuple[dvcfile.Out, str]], rels: list[str]) -> list[tuple[dvcfile.Out, str]]:
    """The outputs at or under rels, or named by the DVC files rels name (all when rels is empty); a .dvc file's
    outputs all or none."""
    if not rels:
        return found
    for rel in rels:
        if not any(_under(o.path, rel) or src == rel for o, src in found):
            why = dvc_checks.why_no_output(repo, rel)
            if why is not None:
                raise why
            inside = next((o.path for o, _ in found if rel.startswith(o.path + "/")), None)
            if inside is not None:
                raise PathError(
                    f"{rel} is inside DVC output {inside}: import that directory "
                    f"({suggested('mvc import-dvc {}', inside)})"
                )
            raise PathError(f"{rel}: no DVC output is there (no .dvc file or dvc.lock stage names it): check the path")
    files = {src for o, src in found if src.endswith(foreign_dvc.SUFFIX) and any(_under(o.path, r) for r in rels)}
    return [(o, src) for o, src in found if src in files or src in rels or any(_under(o.path, r) for r in rels)]


def _imported_as(repo: Repo, o: dvcfile.Out) -> bool:
    """Whether the pointer mvc has at o's path is o's version, as an import of it wrote (meta.dvc.md5)."""
    prel = Repo.pointer_of(o.path)
    with open(repo.check_inside(prel), "rb") as f:
        p = ptrfmt.loads(f.read(), prel)
    record = p.meta.get("dvc")
    return isinstance(record, dict) and record.get("md5") == o.md5


def _settle(repo: Repo, plan: _Plan) -> None:
    """The outputs mvc tracks that a DVC file names with another record: the same content is left alone (a .dvc
    file left over from before the import goes); another version is an error that names both ways out."""
    for o, src in plan.compare:
        prel = Repo.pointer_of(o.path)
        with open(repo.check_inside(prel), "rb") as f:
            mine = ptrfmt.loads(f.read(), prel).oid
        if o.md5 in plan.known and plan.known[o.md5][0] == mine:
            plan.kept.append(o.path)
        elif src.endswith(foreign_dvc.SUFFIX):
            raise PathError(
                f"{src} names another version of {o.path} than mvc tracks: keep mvc's with "
                f"{suggested('git rm {}', src)}, or DVC's with {suggested('mvc remove {}', o.path)}, then "
                f"{suggested('mvc import-dvc {}', o.path)}"
            )
        else:
            raise PathError(
                f"{o.path} is tracked by mvc already, as another version than {src} names: to import DVC's, "
                f"{suggested('mvc remove {}', o.path)} first"
            )


def _tracked_before(repo: Repo, paths: list[str]) -> set[str]:
    """Which of paths had an mvc pointer in HEAD's history (the work tree has none now)."""
    if not paths:
        return set()
    specs = [f":(literal){Repo.pointer_of(p)}" for p in paths]
    out = repo.git.run("log", "--format=", "--name-only", "--no-renames", "-z", "HEAD", "--", *specs, check=False)
    named = set(out.decode("utf-8", "surrogateescape").replace("\n", "\0").split("\0"))
    return {p for p in paths if Repo.pointer_of(p) in named}


def _read_history(repo: Repo, plan: _Plan, pick: Callable[[str], bool] | None) -> None:
    """The versions older commits' outputs name (those pick takes) that neither the work tree nor the map has."""
    try:
        commits = repo.git.run("rev-list", "HEAD", "--branches", "--tags", "--").decode().split()
    except MvcError:  # no commit yet
        return
    now = {o.md5 for o in plan.now}
    for commit in commits:  # the outputs the readers of old revisions see (repo/foreign_dvc.py)
        for path, o in foreign_dvc.outs_at(repo, commit).items():
            if o.md5 not in now and o.md5 not in plan.mapped and (pick is None or pick(path)):
                plan.history.setdefault(o.md5, o.legacy)


def _store_file(repo: Repo, dvc: foreign_dvc.Dvc, plan: _Plan, md5: str, legacy: bool, what: str) -> tuple[str, int]:
    """(oid, size) of the file DVC names md5, hashed into mvc's cache after its md5 is checked: from DVC's cache,
    else (missing, or damaged there) from DVC's remote."""
    cached = dvc.cached(md5, legacy)
    damaged = ""
    if cached is not None:
        got = dvc_checks.md5_wrong(cached, md5, legacy)
        if got is None:
            oid, _how, st = repo.odb.add_file(cached, LINKS)
            plan.stored += 1
            return oid, st.st_size
        damaged = f"DVC cache file {cached} does not match its md5 {md5} (it hashes to {got}): it is damaged"
    tmp = repo.odb.tmp_path("dvc")
    try:
        try:
            dvc.fetch(md5, legacy, tmp)
        except (ForeignError, RemoteError) as e:
            fileio.remove_quietly(tmp)
            if dvc_checks.from_worktree(plan.worktree.get(md5), md5, legacy, tmp):  # the very bytes, md5-checked
                oid, _how, st = repo.odb.add_file(tmp, ("hardlink", "copy"))
                plan.stored += 1
                plan.from_worktree += 1
                return oid, st.st_size
            if damaged:  # the remote has none either: the damage is what to mend
                raise ForeignError(
                    f"{what}: {damaged}: delete it and run 'dvc fetch', then import again (DVC's remote: {e})"
                ) from None
            raise
        plan.fetched += 1
        got = dvc_checks.md5_wrong(tmp, md5, legacy)
        if got is not None:
            raise ForeignError(f"{what}: DVC remote does not match its md5 {md5} (it hashes to {got}): it is damaged")
        oid, _how, st = repo.odb.add_file(tmp, ("hardlink", "copy"))
        plan.stored += 1
        return oid, st.st_size
    finally:
        fileio.remove_quietly(tmp)


def _import_now(
    repo: Repo, dvc: foreign_dvc.Dvc, plan: _Plan, outs: list[dvcfile.Out], jobs: int, progress: progressmod.Factory
) -> None:
    """The work tree's outputs: every file, of the outputs and of their directories, md5-checked and stored in one
    pool, the outputs' own files first (a large file's md5 then runs beside the small files'), then the
    directories' manifests."""
    listings = {o.md5: (_dir_listing(dvc, plan, o.md5, o.legacy, o.path), o) for o in outs if o.is_dir}
    todo = {o.md5: (o.legacy, o.path) for o in outs if not o.is_dir}
    plan.worktree.update((o.md5, repo.abs(o.path)) for o in outs if not o.is_dir)
    for entries, o in listings.values():
        todo.update((m, (o.legacy, f"{o.path} (a file of md5 {m})")) for _, m in entries if m not in todo)
        plan.worktree.update((m, repo.abs(f"{o.path}/{rel}")) for rel, m in entries if m not in plan.worktree)
    _store_files(repo, dvc, plan, todo, f"importing {len(todo)} files", jobs, progress)
    for md5, (entries, _) in listings.items():
        _manifest(repo, plan, md5, entries)


def _import_object(
    repo: Repo,
    dvc: foreign_dvc.Dvc,
    plan: _Plan,
    md5: str,
    legacy: bool,
    what: str,
    jobs: int,
    progress: progressmod.Factory,
) -> None:
    """One output version (a file, or a directory with its files) md5-checked and stored."""
    if md5 in plan.known:
        return
    if not md5.endswith(dvcfile.DIR_SUFFIX):
        oid, size = _store_file(repo, dvc, plan, md5, legacy, what)
        plan.known[md5] = (oid, size, None)
        return
    entries = _dir_listing(dvc, plan, md5, legacy, what)
    todo = {m: (legacy, f"{what} (a file of md5 {m})") for _, m in entries}
    _store_files(repo, dvc, plan, todo, f"importing {what}", jobs, progress)
    _manifest(repo, plan, md5, entries)


def _dir_listing(dvc: foreign_dvc.Dvc, plan: _Plan, md5: str, legacy: bool, what: str) -> list[tuple[str, str]]:
    """The entries (relpath, md5) of DVC's directory listing md5, from DVC's cache or its remote, md5-checked."""
    src = dvc.cached(md5, legacy)
    if src is None:
        tmp = dvc.repo.odb.tmp_path("dvc")
        try:
            dvc.fetch(md5, legacy, tmp)
            with open(tmp, "rb") as f:
                listing = f.read()
        finally:
            fileio.remove_quietly(tmp)
        plan.fetched += 1
    else:
        with open(src, "rb") as f:
            listing = f.read()
    return dvcfile.parse_dir(listing, md5, f"{what}: DVC directory listing {md5}")


def _store_files(
    repo: Repo,
    dvc: foreign_dvc.Dvc,
    plan: _Plan,
    todo: dict[str, tuple[bool, str]],
    label: str,
    jobs: int,
    progress: progressmod.Factory,
) -> None:
    """The files todo names ({md5: (legacy, what)}) not stored yet, with up to jobs threads, in todo's order."""
    md5s = [m for m in todo if m not in plan.known]
    bar = progress(label, len(md5s))
    try:

        def one(m: str) -> tuple[str, int]:
            return _store_file(repo, dvc, plan, m, *todo[m])

        def done(m: str, res: tuple[str, int]) -> None:
            plan.known[m] = (res[0], res[1], None)
            bar.update(1)

        run_parallel(one, md5s, jobs, done)
    finally:
        bar.close()


def _manifest(repo: Repo, plan: _Plan, md5: str, entries: list[tuple[str, str]]) -> None:
    """The mvc manifest of DVC's directory md5, whose files are stored: in the cache, and in plan.known."""
    rows = [mf.Entry(rel, plan.known[m][0], plan.known[m][1]) for rel, m in entries]
    data = mf.dumps(rows)
    oid = oids.from_digest(fileio.hexdigest_bytes(data))
    mf.loads(data, oid)  # the manifest rules (no entry below another) hold for DVC's listing too
    if not repo.odb.exists(oid):
        repo.odb.install_bytes(data, oid)
    plan.known[md5] = (oid, sum(r.size for r in rows), len(rows))


def _save(rb: Rollback, plan: _Plan) -> None:
    """Everything :func:`_write` may change, saved to put back: the pointers and .gitignore files beside each output,
    the map, .mvc/.gitignore, both config files, the .dvc files it removes, and the index."""
    rb.save(*(Repo.pointer_of(o.path) for o in plan.now), *(gitignores.entry(o.path)[0] for o in plan.now))
    rb.save(foreign.IMPORTED_PATH, f"{MVC_DIR}/.gitignore", CONFIG_PATH, f"{MVC_DIR}/{cfgfmt.LOCAL}", *plan.dvc_files)
    rb.save_index()


def _write(repo: Repo, dvc: foreign_dvc.Dvc | None, plan: _Plan) -> list[str]:
    """Write pointers, .gitignore lines, the map, the remotes and the model names; stage it all, with the .dvc
    files removed. Returns the remotes added."""
    to_stage: list[str] = []
    for o in plan.now:
        data = foreign_dvc.pointer_bytes(o, plan.known[o.md5])
        for oid in _oids(repo, o, plan):
            repo.odb.freshen(oid)
        fileio.atomic_write(repo.abs(Repo.pointer_of(o.path)), data)
        if dvc is not None:
            dvc.replace_links(o, plan.known[o.md5][0])
        to_stage.append(Repo.pointer_of(o.path))
        to_stage.append(gitignores.add(repo, o.path))  # DVC wrote the same '/NAME' line: kept once
    for path in plan.kept:  # mvc's already: staged again (an import killed after writing it, before staging it)
        if os.path.isfile(repo.abs(Repo.pointer_of(path))):
            to_stage.append(Repo.pointer_of(path))
    _write_map(repo, dvc, plan)
    to_stage += [foreign.IMPORTED_PATH, f"{MVC_DIR}/.gitignore"]
    added = dvc_remotes.move(repo, dvc) if dvc is not None else []
    _name_models(repo)
    to_stage.append(CONFIG_PATH)
    with locked(os.path.join(repo.mvc_dir, LOCK), "the git index"):
        if plan.dvc_files:
            repo.git.run("rm", "-q", "--cached", "--", *[f":(literal){p}" for p in plan.dvc_files])
            for p in plan.dvc_files:
                fileio.remove_quietly(repo.abs(p))
        repo.git.stage(dict.fromkeys(to_stage))
    return added


def _oids(repo: Repo, o: dvcfile.Out, plan: _Plan) -> list[str]:
    oid = plan.known[o.md5][0]
    return [oid, *sorted(mf.oids_of(repo.odb.read_bytes(oid), oid))] if o.is_dir else [oid]


def _write_map(repo: Repo, dvc: foreign_dvc.Dvc | None, plan: _Plan) -> None:
    import tomli_w

    path = os.path.join(repo.mvc_dir, foreign.IMPORTED)
    with locked(os.path.join(repo.mvc_dir, LOCK), foreign.IMPORTED):
        try:
            raw = foreign.read_bytes(repo)  # (a link there refused, not followed)
            current = {} if raw is None else tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            raise ForeignError(f"{foreign.IMPORTED_PATH}: not valid TOML: restore it with 'git checkout'") from None
        table = current.setdefault("dvc", {}).setdefault("md5", {})
        for md5, (oid, size, nfiles) in sorted(plan.known.items()):
            if md5.endswith(dvcfile.DIR_SUFFIX) or md5 in _top(plan):
                table[md5] = {"oid": oid, "size": size, **({"nfiles": nfiles} if nfiles is not None else {})}
        remote = dvc.default if dvc is not None else None
        dvcfile.note_unreached(current["dvc"], plan.unreached, plan.missing_history, remote)
        current["format"] = foreign.FORMAT
        fileio.atomic_write(path, tomli_w.dumps(current).encode())
    ignore = os.path.join(repo.mvc_dir, ".gitignore")
    text = gitignores.read_text(ignore)
    line = f"!/{foreign.IMPORTED}"
    if line not in gitignores.lines(text):
        fileio.atomic_write(ignore, (text + ("" if text.endswith("\n") or not text else "\n") + line + "\n").encode())


def _top(plan: _Plan) -> set[str]:
    """The md5s pointers name (outputs now and in history); a directory's files need no entry of their own."""
    return {o.md5 for o in plan.now} | set(plan.history)


def _name_models(repo: Repo) -> None:
    """GTO's artifact names (artifacts.yaml, dvc.yaml's artifacts) as [models.NAME] in .mvc/config.toml."""
    found: dict[str, str] = {}
    for path in ("dvc.yaml", "artifacts.yaml"):
        full = repo.abs(path)
        if os.path.isfile(full):
            with open(full, "rb") as f:
                found.update(dvcfile.gto_artifacts(f.read(dvcfile.MAX_LOCK_FILE + 1), path, path == "dvc.yaml"))
    current = cfgfmt.models(repo.config.shared)
    for name, path in sorted(found.items()):
        if name not in current and os.path.lexists(repo.abs(Repo.pointer_of(path))):
            cfgfmt.write_value(os.path.join(repo.mvc_dir, CONFIG), f"models.{name}.path", path)
