"""What ``mvc get`` may put at its output path, and how it replaces what is there (docs/cli.md, ``mvc get``).

``--force`` replaces a file, or a symbolic link, at OUT. A directory at OUT goes only when it is a copy that
``mvc get`` wrote and nobody changed since: each directory a get writes is remembered by the numbers of its
files (names, sizes, times, inodes: ``~/.cache/mvc/written/``), and the directory at OUT must show the same
numbers. A directory holding anything else (a file the user added, an edited weight, a whole project given
by mistake as ``-o .``) is refused and left as it is: a typo never deletes files. The directory one works
in, or one above it, is never replaced, nor a model's own path in a work tree (``mvc checkout`` changes
that), nor anything in ``.git`` or ``.mvc``.

A new directory takes the old one's place in one step where Linux swaps them (``renameat2``,
``RENAME_EXCHANGE``): a reader sees the old copy or the new one, never none, and writers of one OUT at once
each leave a whole copy. Without ``--force`` nothing at OUT is ever replaced, also what another writer put there
while the model was fetched: the temp is given OUT's name only where nothing is (``tempfiles.put_new``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod

from mvc.errors import PathError
from mvc.format.pointer import SUFFIX, in_quotes, shell_quoted

KEPT = 16  # the last copies remembered for one OUT (writers of one OUT at once each find theirs)
OUT_TAG = "out:"  # a record's first line: "out:" and the hex of OUT's real path
started_in: str | None = None  # where the command was typed, when ``mvc -C PATH`` moved the process (cli)


def resolve_out(out: str, name: str) -> str:
    """The absolute output path: ``DIR/`` (a trailing separator) means inside DIR, under the model's name."""
    full = os.path.abspath(out)
    if out.endswith(("/", os.sep)) or (os.altsep is not None and out.endswith(os.altsep)):
        full = os.path.join(full, name)
    return full


def check(out: str, kind: str, force: bool, work_tree: str | None = None) -> None:
    """Refuse an output path before anything is fetched: out exists and not force; out is where the caller
    works (or above); out is a directory and the model is a file; out is a directory mvc did not write, or
    changed since; out lies in ``.git`` or ``.mvc`` of work_tree, or is (or lies in) a path it tracks."""
    if work_tree is not None:
        # real paths: a link on the way (/tmp/link -> the repository's .git) is where the write would land
        rel = os.path.relpath(
            os.path.join(os.path.realpath(os.path.dirname(out)), os.path.basename(out)), os.path.realpath(work_tree)
        )
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep) and rel != os.curdir:
            parts = rel.split(os.sep)
            top = parts[0]
            if top in (".git", ".mvc"):
                raise PathError(f"{out} is inside the repository's {top}/: choose another output path")
            if any(os.path.lexists(os.path.join(work_tree, *parts[:i]) + SUFFIX) for i in range(1, len(parts) + 1)):
                raise PathError(
                    f"{out} is a path this work tree tracks: to change it run "
                    f"{in_quotes('mvc checkout --rev REV ' + shell_quoted(rel))}; "
                    "to write a copy, choose another output path (-o)"
                )
    if not os.path.lexists(out):
        return
    if _holds_cwd(out):
        raise PathError(f"{out} is the directory you are in, or holds it: choose another output path")
    if not force:
        raise PathError(
            f"{out} already exists: choose another output path, or pass --force (force=True in Python) to replace it"
        )
    st = os.lstat(out)
    if not (statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode) or statmod.S_ISDIR(st.st_mode)):
        raise PathError(  # a device (/dev/null), a FIFO, a socket: never replaced by a file
            f"{out} is {_kind(st.st_mode)}, not a file: --force replaces only a file, a link or a copy mvc wrote; "
            "choose another output path"
        )
    if not statmod.S_ISDIR(st.st_mode):
        return  # a file or a link: --force replaces it
    if kind == "file":
        raise PathError(f"{out} is a directory: give the file's own path, or {out}{os.sep} to write into it")
    if not _written(out):
        raise PathError(
            f"{out} is a directory that mvc get did not write, or its files changed since: --force replaces only "
            "a copy mvc wrote; move it away, or choose another output path"
        )


def _kind(mode: int) -> str:
    if statmod.S_ISCHR(mode) or statmod.S_ISBLK(mode):
        return "a device"
    return "a FIFO" if statmod.S_ISFIFO(mode) else "a socket" if statmod.S_ISSOCK(mode) else "not a regular file"


def make_dirs(parent: str) -> list[str]:
    """Make the directory parent (and those above it it needs), refusing one that cannot be made; returns the
    directories made, outermost first (for :func:`unmake` when the write then fails)."""
    missing = []
    d = parent
    while not os.path.isdir(d):
        missing.append(d)
        up = os.path.dirname(d)
        if up == d:
            break
        d = up
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise PathError(
            f"cannot make the output directory {parent} ({e.strerror}): choose an output path whose directories "
            "can be made (not below a file)"
        ) from None
    return missing[::-1]


def unmake(made: list[str]) -> None:
    """Remove the directories make_dirs made (innermost first), as far as they are still empty: a failed write
    leaves nothing behind."""
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError:
            break


def _holds_cwd(out: str) -> bool:
    """Whether out is the directory this process works in, or the one its command was typed in, or above."""
    there = os.path.realpath(out)
    for d in (os.getcwd, lambda: started_in):
        try:
            where = d()
        except OSError:
            continue
        here = os.path.realpath(where) if where else ""
        if here and (here == there or here.startswith(there.rstrip(os.sep) + os.sep)):
            return True
    return False


def fingerprint(top: str) -> str:
    """The numbers of every entry under directory top (not top itself): a hash of their relative paths,
    types, sizes, modification times and inodes, in a fixed order."""
    import xxhash

    h = xxhash.xxh3_128()
    stack = [""]
    while stack:
        sub = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(top, sub) if sub else top), key=lambda e: e.name)
        except OSError:
            h.update(b"?" + sub.encode("utf-8", "surrogateescape") + b"\0")
            continue
        for e in entries:
            rel = f"{sub}/{e.name}" if sub else e.name
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            h.update(
                f"{rel}\0{statmod.S_IFMT(st.st_mode)} {st.st_mode & 0o777} {st.st_size} {st.st_mtime_ns} "
                f"{st.st_ino}\n".encode("utf-8", "surrogateescape")
            )
            if statmod.S_ISDIR(st.st_mode):
                stack.append(rel)
    return h.hexdigest()


def _record_path(out: str) -> str:
    from mvc.repo import upstream
    from mvc.storage.fileio import hexdigest_bytes

    key = hexdigest_bytes(os.path.realpath(out).encode("utf-8", "surrogateescape"))[:32]
    return os.path.join(upstream.cache_root(), "written", key)


def record_is_stale(path: str) -> bool:
    """Whether the record at path (``written/KEY``) no longer serves: its OUT is gone, or changed since every
    copy it remembers (a --force would refuse it as it is), or it does not say its OUT (an older record)."""
    try:
        with open(path, encoding="ascii") as f:
            known = f.read().split()
    except (OSError, UnicodeDecodeError):
        return True
    where = next((k for k in known if k.startswith(OUT_TAG)), None)
    try:
        out = os.fsdecode(bytes.fromhex(where[len(OUT_TAG) :])) if where is not None else None
    except ValueError:
        out = None
    if out is None or _record_path(out) != path or not os.path.isdir(out) or os.path.islink(out):
        return True
    return fingerprint(out) not in known


def _written(out: str) -> bool:
    try:
        with open(_record_path(out), encoding="ascii") as f:
            known = f.read().split()
    except (OSError, UnicodeDecodeError):
        return False
    return fingerprint(out) in known


def remember(tmp: str, out: str) -> None:
    """Remember directory tmp, about to be put at out, as a copy mvc wrote there (no error: a cache that
    cannot be written only makes a later --force refuse the copy)."""
    from mvc.storage import tempfiles
    from mvc.storage.lock import locked

    path = _record_path(out)
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with locked(os.path.join(os.path.dirname(path), "lock"), "the record of copies mvc get wrote"):
            try:
                with open(path, encoding="ascii") as f:
                    known = f.read().split()
            except (OSError, UnicodeDecodeError):
                known = []
            prints = [k for k in known if not k.startswith(OUT_TAG)]
            where = OUT_TAG + os.fsencode(os.path.realpath(out)).hex()  # for 'mvc gc --user-cache'
            known = [where, *prints[-(KEPT - 1) :], fingerprint(tmp)]
            tmp_record = tempfiles.tmp_name(os.path.dirname(path), "written")
            try:
                with open(tmp_record, "w", encoding="ascii") as f:
                    f.write("\n".join(known) + "\n")
                os.replace(tmp_record, path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_record)
                raise


def put(tmp: str, out: str, force: bool = True) -> None:
    """Put tmp (a file or a directory, beside out) at out, in place of what is there (checked by :func:`check`).
    Without force, nothing is ever replaced: whatever another writer put at out since :func:`check` found it
    free (a file, a directory, a second get of one OUT) is left there, PathError (tmp is the caller's to remove)."""
    from mvc.storage import fileio, tempfiles

    if not force:
        try:
            tempfiles.put_new(tmp, out)  # checked free before the fetch; taken meanwhile: refused in the same step
        except FileExistsError:
            raise PathError(
                f"{out} already exists (another writer put it there meanwhile): choose another output path"
            ) from None
        return
    if not (os.path.isdir(tmp) and os.path.lexists(out)):
        try:
            os.replace(tmp, out)
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
                raise
    if os.path.isdir(out) and not os.path.islink(out) and not _written(out):  # changed during the fetch
        raise PathError(
            f"{out} changed while the model was fetched (a file written into it?): it is left as it is; move it "
            "away, or choose another output path"
        )
    if os.path.isdir(tmp) and os.path.isdir(out) and not os.path.islink(out) and fileio.exchange(tmp, out):
        remove(tmp)  # the old copy, under tmp's name
        return
    for _ in range(8):  # another writer of out may put its copy there between the two renames
        aside = tempfiles.tmp_name(os.path.dirname(out), "old")
        with contextlib.suppress(FileNotFoundError):
            os.rename(out, aside)
        try:
            os.rename(tmp, out)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                with contextlib.suppress(OSError):
                    os.rename(aside, out)  # put the old copy back: never nothing at out
                raise
            remove(aside)
            continue
        remove(aside)
        return
    raise PathError(f"{out} keeps being replaced by another writer: retry when it is done")


def remove(path: str) -> None:
    """Delete path: a directory with what it holds, else the file or link (nothing when it is gone)."""
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
