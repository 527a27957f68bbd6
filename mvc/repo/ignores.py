"""The ``.gitignore`` entries mvc manages: one ``/NAME`` line beside each tracked path (add, remove, mv)."""

from __future__ import annotations

import os
import stat

from mvc.errors import PathError
from mvc.format.config import LOCK
from mvc.repo.repository import Repo
from mvc.storage import fileio
from mvc.storage.lock import locked


def pattern(name: str) -> str:
    """The .gitignore line that ignores exactly the file or directory name beside it."""
    out = "".join("\\" + c if c in "[]*?\\" else c for c in name)
    if out[0] in "#!":
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return "/" + out


def entry(rel: str) -> tuple[str, str]:
    """(relpath of the .gitignore beside rel, the pattern that ignores rel there)."""
    parent, _, name = rel.rpartition("/")
    return (f"{parent}/.gitignore" if parent else ".gitignore"), pattern(name)


def add(repo: Repo, rel: str) -> str:
    """Add the tracked path to the .gitignore beside it (once); returns that .gitignore's relpath."""
    return add_many(repo, [rel])[0]


def add_many(repo: Repo, rels: list[str]) -> list[str]:
    """:func:`add` of many tracked paths: each .gitignore read and written once (thousands of files in one
    directory: one write, not one each); returns the .gitignore relpaths, once each."""
    wanted: dict[str, list[str]] = {}
    for rel in rels:
        gi_rel, pat = entry(rel)
        wanted.setdefault(gi_rel, []).append(pat)
    for gi_rel, pats in wanted.items():
        full = repo.abs(gi_rel)
        if not set(pats) - set(lines(read_text(full))):
            continue  # the everyday case: nothing to write, no lock taken
        # another mvc may be adding its own entry to the same file right now: read again under the lock
        with locked(os.path.join(repo.mvc_dir, LOCK), gi_rel):
            text = read_text(full)
            have = set(lines(text))
            new = [p for p in dict.fromkeys(pats) if p not in have]
            if new:
                eol = "\r\n" if "\r\n" in text else "\n"  # a file checked out with CRLF stays so
                if text and not text.endswith("\n"):
                    text += eol
                fileio.atomic_write(full, (text + "".join(p + eol for p in new)).encode("utf-8", "surrogateescape"))
    return list(wanted)


def drop(repo: Repo, rel: str) -> str | None:
    """Remove the tracked path's line from the .gitignore beside it; that .gitignore's relpath if it changed."""
    gi_rel, pat = entry(rel)
    full = repo.abs(gi_rel)
    if not os.path.exists(full):
        return None
    with locked(os.path.join(repo.mvc_dir, LOCK), gi_rel):
        split = read_text(full).split("\n")  # each line without its LF (CR kept): the file is written back as it was
        kept = [line for line in split if line.removesuffix("\r") != pat]
        if len(kept) == len(split):
            return None
        fileio.atomic_write(full, "\n".join(kept).encode("utf-8", "surrogateescape"))
    return gi_rel


def lines(text: str) -> list[str]:
    """A .gitignore's lines as git reads them: split at LF alone (not at the other breaks Python's splitlines
    knows, such as U+2028 in a name), a CR before it dropped (a file checked out with core.autocrlf)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def check(repo: Repo, rels: list[str]) -> None:
    """Refuse, before a command changes anything, a .gitignore beside one of rels that mvc would have to write
    and will not (a link, or not a file: see :func:`read_text`)."""
    for rel in rels:
        full = repo.abs(entry(rel)[0])
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise _not_a_file(full, "a symbolic link")
        if not stat.S_ISREG(st.st_mode):
            raise _not_a_file(full, "not a regular file")


def read_text(path: str) -> str:
    """The text of the .gitignore at path ("" when there is none). A link, or anything but a regular file, is
    refused: a committed ``.gitignore`` linking to a file outside would otherwise be read, copied into the
    repository with mvc's entry and staged (git itself never follows it)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return ""
    except OSError:
        if os.path.islink(path):
            raise _not_a_file(path, "a symbolic link") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_a_file(path, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    finally:
        os.close(fd)


def _not_a_file(path: str, what: str) -> PathError:
    return PathError(
        f"{path} is {what}: mvc writes its entries only into a .gitignore that is a file of its own; replace it "
        "with a regular file (git rm it, then write the patterns you need), then retry"
    )
