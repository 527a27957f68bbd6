"""Git access: the only module that imports pygit2.

Hot paths (listing pointers, staging) run the ``git`` binary, which starts in a few ms; reading
trees at other revisions and writing tags use pygit2, imported on first use.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from errno import ENAMETOOLONG
from stat import S_ISREG
from typing import Any

from mvc.errors import GitError, NotAGitRepo, PathError
from mvc.format.pointer import SUFFIX, in_quotes

POINTER_GLOB = "*" + SUFFIX


def blob_id(data: bytes) -> str:
    """The id git gives a blob of these bytes (``git hash-object``), computed without git: whether a work tree file
    is the staged blob, or which blob a pointer read from another tool's file would be once committed."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


LOCK_WAIT = 30.0  # seconds to wait for another process's .git/index.lock before giving up


def _lock_file(stderr: str) -> str:
    """The lock file git names in its error ("Unable to create '/repo/.git/index.lock': File exists")."""
    start = stderr.find("'")
    end = stderr.find("'", start + 1)
    return stderr[start + 1 : end] if start != -1 and end != -1 else ".git/index.lock"


def _english(env: Mapping[str, str]) -> dict[str, str]:
    """env with git's messages in English (mvc reads them: a lock held, a full disk); the rest of the locale kept."""
    out = dict(env)
    everything = out.pop("LC_ALL", None)
    if everything and "LC_CTYPE" not in out:
        out["LC_CTYPE"] = everything
    out.pop("LANGUAGE", None)
    out["LC_MESSAGES"] = "C"
    return out


def _run_git(
    args: tuple[str, ...],
    cwd: str,
    input: bytes | None,
    env: dict[str, str] | None = None,
    own_group: bool | None = False,
) -> tuple[int, bytes, bytes]:
    """git ARGS in cwd, stdin from input: (exit status, stdout, stderr), as subprocess.run gives them.

    Without the subprocess module where posix_spawn exists: importing subprocess (with signal and
    selectors) costs 5 ms of every command's start-up, and a no-op 'mvc status' has 0.15 s in all.
    Both pipes (and stdin) are served together, so neither side can block the other. own_group: git runs in a
    process group of its own, so that a terminal's Ctrl-C (sent to mvc's whole group) does not stop it half way,
    and mvc holds Ctrl-C and SIGTERM back until git is done (then acts on them).
    """
    if own_group and hasattr(os, "posix_spawnp"):
        from _signal import SIG_BLOCK, SIG_SETMASK, SIGINT, SIGTERM, pthread_sigmask  # type: ignore[import-not-found]

        held = pthread_sigmask(SIG_BLOCK, {SIGINT, SIGTERM})
        try:
            return _run_git(args, cwd, input, env, None)
        finally:
            pthread_sigmask(SIG_SETMASK, held)
    if not hasattr(os, "posix_spawnp"):  # Windows
        import subprocess

        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, env=_english(os.environ if env is None else env)
        )
        return proc.returncode, proc.stdout, proc.stderr
    import select
    from _signal import SIGPIPE  # the C half of signal, without its enum classes

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if input else (os.open(os.devnull, os.O_RDONLY), -1)
    try:
        # -C: posix_spawn cannot change directory; git -C behaves as if started there. SIGPIPE is
        # restored for git and what it runs (Python ignores it), as subprocess does.
        # own_group None: asked for, with the signals held above (not for git, whose mask is emptied)
        group: dict[str, Any] = {"setpgroup": 0, "setsigmask": ()} if own_group is None else {}
        pid = os.posix_spawnp(
            "git",
            ["git", "-C", cwd, *args],
            _english(os.environ if env is None else env),
            setsigdef=(SIGPIPE,),
            **group,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, in_r, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
        )
    except BaseException:
        for fd in (out_r, err_r, in_w):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, in_r):
            os.close(fd)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    pending = memoryview(input or b"")
    if in_w >= 0:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    stopped: KeyboardInterrupt | None = None  # a Ctrl-C that reached another thread while git must run to its end
    try:
        open_fds = len(chunks) + (in_w >= 0)
        while open_fds:
            try:
                ready = poller.poll()
            except KeyboardInterrupt as e:
                if own_group is not None:
                    raise
                stopped = e  # git is served to its end (its pipes stay open), then this is raised
                continue
            for fd, _ in ready:
                if fd != in_w:
                    data = os.read(fd, 1 << 16)
                    if data:
                        chunks[fd].append(data)
                    else:
                        poller.unregister(fd)
                        open_fds -= 1
                    continue
                try:
                    pending = pending[os.write(in_w, pending[: 1 << 16]) :]
                except BlockingIOError:
                    continue
                except BrokenPipeError:  # git stopped reading: its exit status tells why
                    pending = pending[:0]
                if not pending:
                    poller.unregister(in_w)
                    os.close(in_w)
                    in_w = -1
                    open_fds -= 1
    finally:
        for fd in (out_r, err_r, in_w):
            if fd >= 0:
                os.close(fd)
        _, status = os.waitpid(pid, 0)
    if stopped is not None:
        raise stopped
    return os.waitstatus_to_exitcode(status), b"".join(chunks[out_r]), b"".join(chunks[err_r])


def _is_file(root: str, rel: str) -> bool:
    """Whether root/rel is a file; a path longer than the system takes is an error, never a file skipped."""
    try:
        return S_ISREG(os.stat(os.path.join(root, rel)).st_mode)
    except OSError as e:
        if e.errno == ENAMETOOLONG:
            raise PathError(
                f"{rel}: its path in {root} is longer than this system allows ({e.strerror}): clone or move "
                "the repository to a shorter path"
            ) from None
        return False


def _text(s: str) -> str:
    """Words git holds as bytes in any encoding (a tag's message and tagger), as text: what is not UTF-8
    shown as U+FFFD, as git log shows it (a lone surrogate would break a page or JSON written from it)."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if not s.isascii() else s


def find_worktree(start: str) -> str:
    """The top of the git work tree containing start (a ``.git`` dir or file marks it)."""
    path = os.path.abspath(start)
    bare = None  # the first bare repository on the way up: named only if no work tree holds it
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        if bare is None and _bare_at(path):
            bare = path
        parent = os.path.dirname(path)
        if parent == path:
            if bare is not None:
                import shlex

                raise NotAGitRepo(
                    f"{bare} is a bare git repository, with no work tree: run this in a clone of it "
                    f"({in_quotes('git clone ' + shlex.quote(bare))}), or read it with --repo {shlex.quote(bare)} where "
                    "the command offers it"
                )
            raise NotAGitRepo(f"{start} is not inside a git repository: run 'git init' first (or cd into one)")
        path = parent


def _bare_at(path: str) -> bool:
    """Whether path is a bare repository's git dir: HEAD, objects/ and refs/ at its top, and a config that says
    ``bare = true`` (a work tree's .git has the first three too)."""
    if not (os.path.isfile(os.path.join(path, "HEAD")) and os.path.isdir(os.path.join(path, "objects"))):
        return False
    try:
        with open(os.path.join(path, "config"), encoding="utf-8", errors="replace") as f:
            config = f.read(1 << 16)
    except OSError:
        return False
    import re

    return re.search(r"^\s*bare\s*=\s*(true|yes|on|1)\s*$", config, re.MULTILINE | re.IGNORECASE) is not None


def main_worktree(root: str) -> str | None:
    """The main work tree of the repository of which root is a linked worktree (``git worktree add``): its
    ``.git`` file names a git dir with a ``commondir``, the main ``.git``. None for a main work tree, a
    submodule, a worktree of a bare repository, or anything unreadable."""
    dotgit = os.path.join(root, ".git")
    if not os.path.isfile(dotgit):
        return None
    try:
        with open(dotgit, encoding="utf-8") as f:
            line = f.readline().strip()
        if not line.startswith("gitdir:"):
            return None
        gitdir = os.path.join(root, line[len("gitdir:") :].strip())
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as f:
            common = os.path.normpath(os.path.join(gitdir, f.readline().strip()))
    except (OSError, UnicodeDecodeError):
        return None
    return os.path.dirname(common) if os.path.basename(common) == ".git" else None


def open_pygit2(path: str) -> Any:
    """pygit2's Repository at path; git's refusal of a repository another user owns, as git says it."""
    import pygit2

    try:
        return pygit2.Repository(path)
    except pygit2.GitError as e:
        if "not owned by current user" not in str(e):
            raise
        top = os.path.abspath(path).removesuffix(os.sep + ".git").removesuffix(os.sep + ".git" + os.sep)
        raise GitError(_not_owned(top)) from None


def _not_owned(top: str) -> str:
    return (
        f"git refuses the repository at {top}: another user owns it (dubious ownership); if you trust it, run "
        f"'git config --global --add safe.directory {top}'"
    )


def discover(start: str) -> str:
    """Like find_worktree, but asks libgit2 (handles GIT_DIR, worktrees, bare repos)."""
    import pygit2

    found = pygit2.discover_repository(start)
    if not found:
        raise NotAGitRepo(f"{start} is not inside a git repository: run 'git init' first (or cd into one)")
    repo = open_pygit2(found)
    if repo.is_bare or not repo.workdir:
        raise NotAGitRepo(f"{found} is a bare git repository: run mvc inside a work tree")
    return os.path.normpath(repo.workdir)


class Git:
    env: dict[str, str] | None = None  # the environment git runs in (None: this process's)
    partial = False  # a cache that lacks blobs, read with the git binary alone (repo/upstream.py): not a clone

    def __init__(self, root: str):
        self.root = root
        self._repo: Any = None
        self.unmerged: set[str] = set()  # pointers a merge left unmerged, as the last ls_pointers saw them

    # -- the git binary ---------------------------------------------------------------------
    def run(self, *args: str, check: bool = True, input: bytes | None = None, own_group: bool = False) -> bytes:
        waited = 0.0
        said = False
        while True:
            try:
                code, out, err = _run_git(args, self.root, input, self.env, own_group)
            except FileNotFoundError:
                raise GitError("the 'git' command was not found: install git and make sure it is on PATH") from None
            if code == 0 or not check:
                return out
            text = err.decode(errors="replace")
            held = b"index.lock" in err and b"File exists" in err  # contention (a write error names it too)
            if held and waited < LOCK_WAIT:
                # another git (or mvc) process is writing the index: wait for it, as git itself does not
                if waited > 0.5 and not said:  # announce a wait someone would notice, once
                    said = True
                    import sys

                    sys.stderr.write(f"mvc: waiting for another git process to finish ({_lock_file(text)})\n")
                import random
                import time

                delay = random.uniform(0.005, 0.03)  # git holds it for milliseconds; jitter spreads the retries
                time.sleep(delay)
                waited += delay
                continue
            lines = [line for line in text.strip().splitlines() if not line.startswith("hint:")]
            command = args[2] if args[0] == "-c" else args[0]
            if held:
                raise GitError(
                    f"git {command} failed: {_lock_file(text)} has been held for {LOCK_WAIT:g} s: if no git "
                    "process is running (a crashed one left it), delete that file and retry"
                )
            # git's own verdict (its last fatal or error line), else all it said (a list of paths it refused)
            why = next((line for line in lines[::-1] if line.startswith(("fatal:", "error:"))), " ".join(lines)[:300])
            if "Out of diskspace" in text or "No space left" in text:
                why = f"no space left on the device of {self.root}: free some space and retry"
            elif "dubious ownership" in text:
                why = _not_owned(self.root)
            err_ = GitError(f"git {command} failed: {why or code}")
            err_.stderr = text  # for callers that pick their own line (mvc.repo.upstream)
            raise err_

    def ls_pointers(self) -> list[str]:
        """Pointer files in the work tree, tracked or not-yet-added but not ignored (posix relpaths). Those a merge
        left unmerged in the index are in ``self.unmerged`` afterwards (git's tag M of ``ls-files -t``)."""
        out = self.run("ls-files", "-z", "-t", "--cached", "--others", "--exclude-standard", "--", POINTER_GLOB)
        found: set[str] = set()
        self.unmerged = set()
        for rec in out.decode("utf-8", "surrogateescape").split("\0"):
            tag, _, p = rec.partition(" ")
            if p.endswith(SUFFIX) and _is_file(self.root, p):
                found.add(p)
                if tag == "M":
                    self.unmerged.add(p)
        return sorted(found)

    def tracked(self, relpaths: Iterable[str]) -> list[str]:
        """Which of relpaths (files, or dirs: any file under them) git's index holds."""
        paths = list(relpaths)
        if not paths:
            return []
        out = self.run("ls-files", "-z", "--", *[f":(literal){p}" for p in paths])
        return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]

    def stage(self, relpaths: Iterable[str]) -> None:
        """git add of mvc's own files (pointers, .gitignore lines, config): written with LF endings, which
        core.safecrlf would refuse to stage where core.autocrlf is true (git keeps them LF either way)."""
        paths = list(relpaths)
        if paths:
            try:
                self.run("-c", "core.safecrlf=false", "add", "--", *[f":(literal){p}" for p in paths])
            except GitError as e:
                if "ignored by one of your .gitignore files" not in str(e):
                    raise
                raise self._ignored(paths) from None

    def ignoring(self, paths: list[str]) -> dict[str, tuple[str, str, str]]:
        """{path: (.gitignore file, line number, pattern)} of the paths git ignores (git add would refuse them)."""
        if not paths:
            return {}
        data = "".join(p + "\0" for p in paths).encode("utf-8", "surrogateescape")
        out = self.run("check-ignore", "-v", "-z", "--stdin", input=data, check=False)
        f = out.decode("utf-8", "surrogateescape").split("\0")
        found = {}
        for source, line, pattern, path in zip(f[0::4], f[1::4], f[2::4], f[3::4], strict=False):
            if path and not pattern.startswith("!"):  # (a '!' line matched: git takes the path)
                found[path] = (source, line, pattern)
        return found

    def _ignored(self, paths: list[str]) -> GitError:
        """Why git add refused mvc's own files: the ignore line that takes them, and the lines that give them back
        (a DVC-style ``/models/*`` with ``!/models/*.dvc``, say)."""
        hits = self.ignoring(paths)
        if not hits:
            return GitError(f"git add failed: {paths[0]} is ignored by git: give it back with a '!' line, then retry")
        first = next(p for p in paths if p in hits)
        src, line, pattern = hits[first]
        more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
        return GitError(
            f"{first}{more} is ignored by git ({src}:{line} '{pattern}'), so it cannot be staged: "
            f"{self.unignoring(hits, first)} (or stage it yourself with 'git add -f'), then run the command again"
        )

    def unignoring(self, hits: dict[str, tuple[str, str, str]], first: str) -> str:
        """How to give back to git the paths it ignores (``hits``, as :meth:`ignoring` found them): "add '!/…' and
        '!/…' to SOURCE", SOURCE the file whose line ignores ``first``, with a line for each hit that file ignores
        (a pointer's line ``*.mvc``, any other file's its name), written relative to the directory of that
        ``.gitignore`` (other exclude files, ``.git/info/exclude`` and ``core.excludesFile``: to the work tree's
        root). When the line ignores first's directory itself, git never looks inside it and no '!' line below takes
        a file back: the line must first ignore the directory's files instead."""
        source, _, pattern = hits[first]
        base = posixpath.dirname(source)  # the directory the lines are relative to: a .gitignore's above first
        if posixpath.basename(source) != ".gitignore" or not first.startswith(base + "/"):
            base = ""  # (a core.excludesFile named .gitignore, outside the work tree: '../.gitignore', '/home/u/…')
        adds: set[str] = set()
        for rel in hits:
            if hits[rel][0] != source:  # (another file's line: said by the next run)
                continue
            where = posixpath.dirname(rel)
            where = where[len(base) + 1 :] if base else where
            name = "*" + SUFFIX if rel.endswith(SUFFIX) else posixpath.basename(rel)
            adds.add("!/" + (where + "/" if where else "") + name)
        lines = " and ".join(f"'{a}'" for a in sorted(adds))  # (a directory's '*.mvc' before its '.gitignore')
        parent = posixpath.dirname(first)
        if parent and self.run("check-ignore", "--no-index", "--", parent, check=False).strip():
            fix = f"make that line ignore the files in the directory ('{pattern.rstrip('/')}/*'), then add"
            return f"{fix} {lines} to {source}"
        return f"add {lines} to {source}"

    def ignorecase(self) -> bool:
        """git's core.ignorecase here: git then takes names that differ only in case for one another."""
        out = self.run("config", "--type=bool", "--get", "core.ignorecase", check=False)
        return out.strip() == b"true"

    def unstaged(self, relpaths: Iterable[str]) -> list[str]:
        """Which of relpaths differ between the work tree and the index."""
        paths = list(relpaths)
        if not paths:
            return []
        out = self.run("diff", "--name-only", "-z", "--", *[f":(literal){p}" for p in paths])
        return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]

    def checkout_paths(self, rev: str, relpaths: Iterable[str]) -> None:
        """git checkout rev -- relpaths, run to its end whatever Ctrl-C the terminal sends meanwhile: a pointer
        restored after its weights (mvc checkout --rev) is never left half way."""
        paths = list(relpaths)
        if paths:
            self.run("checkout", rev, "--", *[f":(literal){p}" for p in paths], own_group=True)

    # -- pygit2 -----------------------------------------------------------------------------
    @property
    def repo(self) -> Any:
        if self._repo is None:
            self._repo = open_pygit2(self.root)
        return self._repo

    def resolve(self, rev: str) -> Any:
        """The commit rev names (commit id, branch, tag, HEAD~1, …)."""
        import pygit2

        try:
            obj = self.repo.revparse_single(rev)
            return obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            if rev.startswith("HEAD") and self.repo.head_is_unborn:
                raise GitError(
                    f"{rev} names no commit: this repository has none yet; commit first ('git commit')"
                ) from None
            if self.repo.is_shallow:  # git log shows no more than the clone holds: what it cut off is the answer
                raise GitError(
                    f"unknown revision {rev!r} in this shallow clone: fetch the history it lacks with "
                    "'git fetch --unshallow' (or '--deepen N'), or check the revision with 'git log' or 'git tag'"
                ) from None
            raise GitError(f"unknown revision {rev!r}: check it with 'git log' or 'git tag'") from None

    def shallow_boundary(self) -> set[str]:
        """The commits a shallow clone holds without their parents (``.git/shallow``): where its history is cut.
        Empty in a full clone."""
        if not self.repo.is_shallow:
            return set()
        path = self.run("rev-parse", "--git-path", "shallow").decode("utf-8", "surrogateescape").strip()
        try:
            with open(os.path.join(self.root, path), "rb") as f:
                return set(f.read().decode("ascii", "replace").split())
        except FileNotFoundError:
            return set()

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
                elif entry.type_str == "blob" and path.endswith(SUFFIX) and entry.filemode != pygit2.GIT_FILEMODE_LINK:
                    found[path] = self.repo[entry.id].data

        walk(commit.tree, "")
        return found

    # -- registry: tags, history, blobs at a commit -----------------------------------------
    # One `git for-each-ref` reads loose and packed tags with their tag objects; it costs less than
    # importing pygit2. Fields end in NUL; the contents of a tag message cannot hold a NUL.
    _TAG_FIELDS = (
        "refname",
        "objecttype",
        "objectname",
        "*objectname",
        "*objecttype",
        "taggername",
        "taggeremail",
        "taggerdate:raw",
        "*committerdate:raw",
        "contents",
        "contents:signature",
    )

    def tags(self) -> list[dict[str, Any]]:
        """Every tag: {name, annotated, target (what the ref or tag object points to), target_type,
        tagger, email, time, offset (minutes east of UTC), commit_time (of a target commit), message};
        lightweight tags have only name, annotated False, target and target_type."""
        fmt = "".join(f"%({f})%00" for f in self._TAG_FIELDS)
        out = self.run("for-each-ref", f"--format={fmt}", "refs/tags").decode("utf-8", "surrogateescape")
        fields = out.split("\0")
        n = len(self._TAG_FIELDS)
        found = []
        for i in range(0, len(fields) - n + 1, n):
            ref, otype, oname, target, ttype, tagger, email, date, cdate, contents, sig = fields[i : i + n]
            name = ref.lstrip("\n")[len("refs/tags/") :]
            if otype != "tag":
                found.append({"name": name, "annotated": False, "target": oname, "target_type": otype})
                continue
            if sig and contents.endswith(sig):
                contents = contents[: -len(sig)]
            stamp, _, tz = date.partition(" ")
            try:
                time = int(stamp)
                sign = -1 if tz.startswith("-") else 1
                offset = sign * (int(tz[1:3]) * 60 + int(tz[3:5]))
            except ValueError:  # a tag object without a tagger line: GTO cannot order it either
                time, offset = 0, 0
            found.append(
                {
                    "name": name,
                    "annotated": True,
                    "target": target,
                    "target_type": ttype,
                    "tagger": _text(tagger),
                    "email": _text(email.strip("<>")),
                    "time": time,
                    "offset": offset,
                    "commit_time": int(cdate.partition(" ")[0]) if cdate[:1].isdigit() else 0,
                    "message": _text(contents),
                }
            )
        return found

    def create_tag(self, name: str, target: str, message: str, *, time: int | None = None) -> bool:
        """Create the annotated tag name -> target, tagged by the git user (at time, epoch seconds, if
        given); the message is kept verbatim. False if the tag exists already (it is never moved)."""
        import subprocess  # here, not at the top: see _run_git
        import time as timemod

        env = dict(os.environ)
        if time is not None:
            offset = timemod.localtime(time).tm_gmtoff // 60
            sign = "-" if offset < 0 else "+"
            env["GIT_COMMITTER_DATE"] = f"{time} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        try:
            proc = subprocess.run(
                ["git", "tag", "-a", "--cleanup=verbatim", "-F", "-", "--", name, target],
                cwd=self.root,
                input=message.encode(),
                env=env,
                capture_output=True,
            )
        except FileNotFoundError:
            raise GitError("the 'git' command was not found: install git and make sure it is on PATH") from None
        if proc.returncode == 0:
            return True
        err = proc.stderr.decode(errors="replace")
        if "already exists" in err:
            return False
        if "tell me who you are" in err or "auto-detect" in err or "empty ident" in err:
            raise GitError(
                "git does not know who you are (the tagger of registry tags): run "
                "git config user.name 'Your Name' && git config user.email you@example.com"
            )
        lines = err.strip().splitlines()
        raise GitError(f"git tag {name} failed: {lines[-1] if lines else proc.returncode}")

    def walk(self, rev: str) -> Iterable[dict[str, Any]]:
        """Commits reachable from rev, newest first (topological, then by time): {id, parents, author,
        email, time, offset, message}."""
        import pygit2

        start = self.resolve(rev)
        for c in self.repo.walk(start.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME):
            yield {
                "id": str(c.id),
                "parents": [str(p) for p in c.parent_ids],
                "author": c.author.name,
                "email": c.author.email,
                "time": c.author.time,
                "offset": c.author.offset,
                "message": c.message,
            }

    def blob_ids(self, commit: str, paths: Iterable[str]) -> dict[str, str | None]:
        """{path: id of the blob at path in commit's tree, or None (absent, a tree or a symlink)}."""
        import pygit2

        tree = self.repo[commit].peel(pygit2.Commit).tree
        found: dict[str, str | None] = {}
        for path in paths:
            try:
                entry = tree[path]
            except KeyError:
                found[path] = None
                continue
            ok = entry.type_str == "blob" and entry.filemode != pygit2.GIT_FILEMODE_LINK
            found[path] = str(entry.id) if ok else None
        return found

    def blob(self, blob_id: str) -> bytes:
        return self.repo[blob_id].data

    def need_blobs(self, commit: str, blobs: list[str]) -> None:
        """Nothing: a clone holds every blob of its commits (a repository read by URL fetches them here)."""

    # -- hooks: the hooks directory, the index, what a commit or a push carries (issue 5) ------
    # The git binary throughout: hooks run on every commit, and they must see git's own environment
    # (the temporary GIT_INDEX_FILE of 'git commit -a', a worktree's GIT_DIR), which pygit2 ignores.
    def hooks_dir(self) -> str:
        """The directory git runs hooks from: core.hooksPath if set, else the common .git/hooks
        (shared by linked worktrees)."""
        out = self.run("rev-parse", "--git-path", "hooks").decode("utf-8", "surrogateescape").strip()
        return os.path.normpath(os.path.join(self.root, out))

    def merge_heads(self) -> list[str]:
        """The commits an unfinished merge is bringing in (MERGE_HEAD); empty when none is under way."""
        out = self.run("rev-parse", "--git-path", "MERGE_HEAD").decode("utf-8", "surrogateescape").strip()
        try:
            with open(os.path.join(self.root, out), "rb") as f:
                return f.read().decode().split()
        except FileNotFoundError:
            return []

    def index_blobs(self, pathspec: str) -> dict[str, str]:
        """{posix relpath: blob id} of the index's regular files matching pathspec (merged entries only)."""
        out = self.run("ls-files", "-s", "-z", "--", pathspec)
        found = {}
        for rec in out.split(b"\0"):
            meta, _, path = rec.partition(b"\t")
            parts = meta.split(b" ")
            if len(parts) == 3 and parts[2] == b"0" and parts[0] in (b"100644", b"100755"):
                found[path.decode("utf-8", "surrogateescape")] = parts[1].decode()
        return found

    def blobs_in_history(self, path: str) -> set[str]:
        """The blob ids that path has held in any commit of any ref (one path-limited walk of the history)."""
        args = ("log", "--all", "-m", "--format=", "--raw", "--no-abbrev", "--no-renames")  # -m: merges' own blobs too
        out = self.run(*args, "--", f":(literal){path}")
        found = set()
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            meta = line.lstrip(":").split("\t", 1)[0].split(" ")
            if len(meta) == 5:
                found.add(meta[3])
        return found

    def staged_diff(self, against: str | None = None) -> list[tuple[str, str, str, str]]:
        """(status letter, new mode, new blob id, path) per path the index changes against a commit
        (default HEAD; on an unborn branch everything is added). Renames show as delete + add."""
        args = ["diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev", "--ignore-submodules=all"]
        fields = self.run(*args, *([against] if against else [])).split(b"\0")
        found = []
        for i in range(0, len(fields) - 1, 2):
            meta = fields[i].decode().lstrip(":").split(" ")
            if len(meta) == 5:
                found.append((meta[4][:1], meta[1], meta[3], fields[i + 1].decode("utf-8", "surrogateescape")))
        return found

    def cat_objects(self, names: Iterable[str]) -> dict[str, bytes | None]:
        """{name: content} of objects named by id or ``<rev>:<path>``, in one ``git cat-file``;
        None for a name that names nothing."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        out = self.run("cat-file", "--batch", input=("\n".join(names) + "\n").encode("utf-8", "surrogateescape"))
        found: dict[str, bytes | None] = {}
        pos = 0
        for name in names:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].rsplit(b" ", 2)
            pos = nl + 1
            if len(header) == 3 and header[2].isdigit():
                size = int(header[2])
                found[name] = out[pos : pos + size]
                pos += size + 1
            else:
                found[name] = None
        return found

    def _batch_check(self, names: list[str]) -> list[list[str] | None]:
        if not names:
            return []
        out = self.run("cat-file", "--batch-check", input=("\n".join(names) + "\n").encode("utf-8", "surrogateescape"))
        lines = out.decode("utf-8", "surrogateescape").split("\n")
        return [
            parts if len(parts) == 3 and parts[2].isdigit() else None
            for parts in (line.rsplit(" ", 2) for line in lines[: len(names)])
        ]

    def object_sizes(self, ids: Iterable[str]) -> dict[str, int | None]:
        """{object id: size in bytes, or None if missing}, in one ``git cat-file``."""
        ids = list(dict.fromkeys(ids))
        return {i: int(r[2]) if r else None for i, r in zip(ids, self._batch_check(ids), strict=False)}

    def peel_commits(self, names: Iterable[str]) -> dict[str, str | None]:
        """{name: id of the commit it names (tags peeled), or None}, in one ``git cat-file``."""
        names = list(dict.fromkeys(names))
        return {
            n: r[0] if r else None
            for n, r in zip(names, self._batch_check([f"{n}^{{commit}}" for n in names]), strict=False)
        }

    def blob_head(self, blob_id: str, n: int) -> bytes:
        """The first n bytes of a blob, without reading the rest of it."""
        import subprocess  # here, not at the top: see _run_git

        proc = subprocess.Popen(
            ["git", "cat-file", "blob", blob_id], cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert proc.stdout is not None
            return proc.stdout.read(n)
        finally:
            proc.kill()
            proc.communicate()

    def remote_names(self) -> set[str]:
        return set(self.run("remote").decode("utf-8", "surrogateescape").split())

    def rev_list(
        self,
        include: Iterable[str],
        exclude: Iterable[str] = (),
        *,
        not_remotes: str | None = None,
        paths: Iterable[str] = (),
        limit: int | None = None,
    ) -> list[str]:
        """Commits reachable from include but not from exclude nor the refs of git remote not_remotes,
        limited to those touching paths (with --full-history: merged side branches count), newest first;
        the first ``limit`` of them when given."""
        args = ["rev-list", "--full-history", *([f"--max-count={limit}"] if limit else []), *include, "--not", *exclude]
        if not_remotes:
            args.append(f"--remotes={not_remotes}")
        paths = list(paths)
        if paths:
            args += ["--", *paths]
        return self.run(*args).decode().split()

    def diff_names(self, a: str, b: str | None, pathspec: str) -> list[tuple[str, str]]:
        """(status letter, path) of files matching pathspec that differ from commit a to commit b
        (None: the work tree). Renames show as delete + add."""
        out = self.run("diff", "--name-status", "-z", "--no-renames", a, *([b] if b else []), "--", pathspec)
        fields = out.split(b"\0")
        return [
            (fields[i].decode()[:1], fields[i + 1].decode("utf-8", "surrogateescape"))
            for i in range(0, len(fields) - 1, 2)
        ]

    # -- remotes: which commits a push or fetch covers, and their pointers (issue 3) -----------
    def ref_commits(self, prefix: str) -> dict[str, str]:
        """{short ref name: commit id} of the refs under prefix (``refs/heads``, ``refs/tags``), tags peeled;
        refs naming no commit (a tag of a blob) are left out."""
        out = self.run("for-each-ref", "--format=%(refname)", prefix).decode("utf-8", "surrogateescape")
        refs = [r for r in out.split("\n") if r]
        if not refs:
            return {}
        query = "".join(f"{r}^{{commit}}\n" for r in refs).encode("utf-8", "surrogateescape")
        lines = self.run("cat-file", "--batch-check=%(objectname) %(objecttype)", input=query).decode().split("\n")
        return {
            r[len(prefix.rstrip("/")) + 1 :]: line.split(" ")[0]
            for r, line in zip(refs, lines, strict=False)
            if line.endswith(" commit")
        }

    def history(self, tips: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> list[str]:
        """Commits reachable from tips, newest first (children before parents); None: from every ref but those
        in exclude (full ref names), HEAD and every reflog entry (what git itself keeps: ``rev-list --all
        --reflog``)."""
        args = [*(f"--exclude={r}" for r in exclude), "--all", "--reflog"] if tips is None else list(tips)
        if not args:
            return []
        return self.run("rev-list", "--date-order", *args, "--").decode().split()

    def ls_remote(self, remote: str) -> list[tuple[str, str]]:
        """(object id, ref name) of every ref the git remote has now (``git ls-remote``: one connection)."""
        out = self.run("ls-remote", "--", remote).decode("utf-8", "surrogateescape")
        found = []
        for line in out.splitlines():
            oid, _, ref = line.partition("\t")
            if len(oid) >= 40 and ref:
                found.append((oid, ref))
        return found

    def roots(self) -> list[str]:
        """The root commits (no parent) of every ref's history: what names this repository in every clone."""
        return sorted(set(self.run("rev-list", "--max-parents=0", "--all", "--").decode().split()))

    def stash_commits(self) -> list[str]:
        """Every stash entry (``refs/stash`` and its reflog) and its parents (the commit it was made on, its
        index and its untracked files), newest first."""
        out = self.run("reflog", "show", "--format=%H %P", "refs/stash", "--", check=False)
        return list(dict.fromkeys(c for c in out.decode().split() if len(c) >= 40))

    def worktrees(self) -> list[tuple[str, str | None]]:
        """(root, HEAD commit or None when unborn or detached from nothing) of every worktree but this one."""
        out = self.run("worktree", "list", "--porcelain", "-z").decode("utf-8", "surrogateescape")
        found: list[tuple[str, str | None]] = []
        path: str | None = None
        head: str | None = None
        for field in [*out.split("\0"), ""]:
            if field.startswith("worktree "):
                path, head = field[len("worktree ") :], None
            elif field.startswith("HEAD "):
                head = field[len("HEAD ") :]
            elif field == "" and path is not None:
                if os.path.realpath(path) != os.path.realpath(self.root):
                    found.append((path, head if head and set(head) != {"0"} else None))
                path = None
        return found

    def worktree_index(self, root: str) -> str | None:
        """The index file of the other worktree at root, found through git's own records of its worktrees (a
        worktree's directory may be gone, on a disk not mounted: its index stays in the repository's git
        directory, ``worktrees/NAME/index``, until ``git worktree prune``); None when there is none."""
        common = self.run("rev-parse", "--git-common-dir").decode("utf-8", "surrogateescape").strip()
        admin = os.path.join(self.root, common, "worktrees")
        try:
            names = os.listdir(admin)
        except OSError:
            return None
        want = os.path.realpath(os.path.join(root, ".git"))
        for name in names:
            try:
                with open(os.path.join(admin, name, "gitdir"), "rb") as f:
                    said = f.read(4096).decode("utf-8", "surrogateescape").strip()
            except OSError:
                continue
            index = os.path.join(admin, name, "index")
            if os.path.realpath(said) == want and os.path.isfile(index):
                return index
        return None

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of commits a and b (``git merge-base``), None when they have none."""
        out = self.run("merge-base", a, b, check=False).decode().strip()
        return out or None

    def all_commits(self) -> list[str]:
        """Every commit reachable from a branch, tag or other ref (``git rev-list --all``)."""
        return self.run("rev-list", "--all").decode().split()

    def pointer_blobs(self, commits: Iterable[str]) -> dict[str, tuple[str, str, bytes]]:
        """{blob id: (commit, posix path, bytes)} of every distinct pointer file in the trees of commits.

        A tree already walked (same id) is skipped, so many commits that share most of their tree
        cost little more than one; each blob is reported once, with the first commit and path seen.
        """
        import pygit2

        seen_trees: set[Any] = set()
        found: dict[str, tuple[str, str, bytes]] = {}

        def walk(tree: Any, prefix: str, commit: str) -> None:
            if tree.id in seen_trees:
                return
            seen_trees.add(tree.id)
            for entry in tree:
                path = prefix + entry.name
                if entry.type_str == "tree":
                    walk(self.repo[entry.id], path + "/", commit)
                elif (
                    entry.type_str == "blob"
                    and path.endswith(SUFFIX)
                    and entry.filemode != pygit2.GIT_FILEMODE_LINK
                    and str(entry.id) not in found
                ):
                    found[str(entry.id)] = (commit, path, self.repo[entry.id].data)

        for commit in commits:
            walk(self.resolve(commit).tree, "", commit)
        return found
