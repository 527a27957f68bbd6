"""Git hooks: installing and uninstalling them (what each one does is ``mvc.api.hook_actions``).

An installed hook runs ``mvc hook NAME``; a hook that was there before mvc's is kept beside it and
run first, and restored byte for byte on uninstall.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mvc.errors import GitError
from mvc.repo.repository import Repo, open_repo

HOOKS = ("pre-commit", "pre-push", "post-checkout", "post-merge")
MARKER = "# mvc-managed-hook"
CHAINED = ".mvc-chained"  # a hook that was there before mvc's, kept under this suffix and run first


# -- install / uninstall ------------------------------------------------------------------------
def mvc_command() -> list[str]:
    """The absolute command the installed hooks start mvc with: this installation's ``mvc`` console
    script when it sits beside the interpreter (a venv, pipx), else this interpreter with ``-m mvc``.

    An absolute path, because git run from an IDE, a GUI or a shell without the venv activated has
    another PATH; the hooks fall back to ``mvc`` on PATH only when this installation is gone.
    """
    script = os.path.join(os.path.dirname(sys.executable), "mvc")
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "mvc"]


_BODY = {
    # the chained hook decides first: when it refuses, mvc has nothing to add
    "pre-commit": """\
if [ -x "$chained" ]; then "$chained" "$@" || exit $?; fi
mvc_hook pre-commit "$@"
""",
    # git writes the ref lines to stdin once; both hooks need them
    "pre-push": """\
if [ -x "$chained" ]; then
    refs=$(cat; echo .)
    refs=${refs%.}
    printf '%s' "$refs" | "$chained" "$@" || exit $?
    printf '%s' "$refs" | mvc_hook pre-push "$@"
else
    mvc_hook pre-push "$@"
fi
""",
}
# post hooks cannot stop git; the chained hook's status is what git reports, mvc never fails them
_POST_BODY = """\
status=0
if [ -x "$chained" ]; then "$chained" "$@"; status=$?; fi
mvc_hook {name} "$@"
exit $status
"""

_SCRIPT = """\
#!/bin/sh
{marker} (written by 'mvc install-hooks'; 'mvc install-hooks --uninstall' removes it
# and puts back the hook that was here before, kept meanwhile as {name}{chained} and run first).
# mvc is started by the absolute path of the installation that installed this hook, so git run
# from an IDE or a shell without that venv finds it; if it is gone, 'mvc' on PATH is used.
mvc_bin={bin}
chained="$(dirname -- "$0")/{name}{chained}"

mvc_hook() {{
    if [ -x "$mvc_bin" ]; then
        "$mvc_bin" {args}hook "$@"
    elif command -v mvc >/dev/null 2>&1; then
        mvc hook "$@"
    else
        echo "mvc: cannot run the {name} hook: mvc is neither at $mvc_bin nor on PATH: {missing_fix}" >&2
        return {missing_status}
    fi
}}

{body}"""


def hook_script(name: str, command: list[str] | None = None) -> bytes:
    """The text of mvc's hook ``name`` (a POSIX sh script)."""
    import shlex

    command = command or mvc_command()
    blocking = name in ("pre-commit", "pre-push")
    body = _BODY.get(name) or _POST_BODY.format(name=name)
    return _SCRIPT.format(
        marker=MARKER,
        name=name,
        chained=CHAINED,
        bin=shlex.quote(command[0]),
        args="".join(shlex.quote(a) + " " for a in command[1:]),
        body=body,
        missing_fix=(
            "install mvc, or skip the check with --no-verify" if blocking else "install mvc, then run 'mvc checkout'"
        ),
        missing_status=1 if blocking else 0,
    ).encode()


def is_mvc_hook(path: str) -> bool:
    """Whether path is a hook written by mvc (a regular file carrying the marker line)."""
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return MARKER.encode() in head


def install(*, repo: Repo | None = None, command: list[str] | None = None) -> list[dict[str, Any]]:
    """Install mvc's hooks in the repo's hooks directory (core.hooksPath and worktrees honoured).

    A hook already there is renamed to ``<name>.mvc-chained`` and run first by mvc's; running this
    again only rewrites mvc's own hooks. Per hook: {hook, path, action: installed/updated/unchanged, chained,
    twice: the chained hook is the pre-commit framework's, which runs mvc's hooks too}.
    """
    from mvc.storage.fileio import atomic_write

    repo = open_repo(repo)
    hooks_dir = repo.git.hooks_dir()
    plan = []
    for name in HOOKS:
        path = os.path.join(hooks_dir, name)
        foreign = os.path.lexists(path) and not is_mvc_hook(path)
        if foreign and os.path.lexists(path + CHAINED):
            raise GitError(
                f"{path} is not mvc's hook but {name}{CHAINED} exists beside it: move one of them "
                "out of the hooks directory, then run 'mvc install-hooks' again"
            )
        plan.append((name, path, foreign))
    os.makedirs(hooks_dir, exist_ok=True)
    done = []
    for name, path, foreign in plan:
        script = hook_script(name, command)
        if foreign:
            os.rename(path, path + CHAINED)  # a rename keeps the user's hook byte for byte, mode included
            action = "installed"
        elif os.path.lexists(path):
            with open(path, "rb") as f:
                action = "unchanged" if f.read() == script else "updated"
        else:
            action = "installed"
        if action != "unchanged":
            atomic_write(path, script, mode=0o755)
            os.chmod(path, 0o755)  # the umask may have taken the execute bits away
        chained = os.path.lexists(path + CHAINED)
        done.append(
            {
                "hook": name,
                "path": path,
                "action": action,
                "chained": chained,
                "twice": chained and _runs_mvc(repo, path),
            }
        )
    return done


def _runs_mvc(repo: Repo, hook: str) -> bool:
    """Whether the hook chained at hook is the pre-commit framework's and its config runs mvc's hooks: mvc's
    would then run twice (docs/hooks.md: use one or the other)."""
    try:
        with open(hook + CHAINED, "rb") as f:
            if b"pre-commit.com" not in f.read(4096):
                return False
        with open(os.path.join(repo.root, ".pre-commit-config.yaml"), "rb") as f:
            config = f.read()
        return any(f"id: {h}".encode() in config for h in ("mvc-check", "mvc-push", "mvc-checkout"))
    except OSError:
        return False


def uninstall(*, repo: Repo | None = None) -> list[dict[str, Any]]:
    """Remove mvc's hooks and put back the hooks they chained.

    Per hook: {hook, path, action: removed/restored/absent/foreign}; ``foreign`` hooks are not mvc's
    and are left alone.
    """
    repo = open_repo(repo)
    hooks_dir = repo.git.hooks_dir()
    done = []
    for name in HOOKS:
        path = os.path.join(hooks_dir, name)
        chained = path + CHAINED
        if is_mvc_hook(path):
            os.unlink(path)
            action = "removed"
        elif os.path.lexists(path):
            done.append({"hook": name, "path": path, "action": "foreign"})
            continue
        else:
            action = "absent"
        if os.path.lexists(chained):
            os.rename(chained, path)
            action = "restored"
        done.append({"hook": name, "path": path, "action": action})
    return done


# the names under which ``import mvc`` exposes them
install_hooks = install
uninstall_hooks = uninstall
