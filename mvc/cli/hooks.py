"""install-hooks, and ``mvc hook NAME``: what the installed git hooks (and the pre-commit framework) run.

The hooks print to stderr, which git shows, each line starting with ``mvc:``. pre-commit and pre-push
exit 1 to stop git; post-checkout and post-merge always exit 0 (a failure is reported, never fatal).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from mvc.api import hook_actions as actions
from mvc.api import hooks as api
from mvc.cli.common import bars, human
from mvc.errors import MvcError, NotInitialized


def _say(text: str) -> None:
    click.echo(f"mvc: {text}", err=True)


@click.command("install-hooks")
@click.option("--uninstall", is_flag=True, help="Remove mvc's hooks and put back the hooks they chained.")
def install_hooks(uninstall: bool) -> None:
    """Install git hooks that keep git and the mvc cache in step.

    \b
    pre-commit     stops a commit whose pointers name weights missing from the cache,
                   whose tracked files changed after 'mvc add', or that puts weights
                   files or large binaries into git itself ([hooks] in .mvc/config.toml)
    pre-push       uploads the models of the pushed commits to the default mvc remote
                   first; the git push stops if that fails
    post-checkout  restores the models whose pointers changed (fetching them if needed)
    post-merge     the same after 'git merge' and 'git pull'

    \b
    The hooks go where git looks for them (core.hooksPath, worktrees). A hook already
    there keeps running, first; --uninstall puts it back as it was. The hooks call
    'mvc hook NAME', so upgrading mvc needs no reinstall.

    \b
    Example:
      mvc install-hooks
      git commit -m "retrain"      # checked by mvc
      mvc install-hooks --uninstall
    """
    if uninstall:
        for r in api.uninstall():
            if r["action"] == "removed":
                click.echo(f"removed {r['path']}")
            elif r["action"] == "restored":
                click.echo(f"restored the original {r['path']}")
            elif r["action"] == "foreign":
                click.echo(f"left {r['path']} alone: it is not mvc's hook")
        return
    done = api.install()
    for r in done:
        chained = (
            f" (runs the hook that was there first: {os.path.basename(r['path'])}{api.CHAINED})" if r["chained"] else ""
        )
        click.echo(f"{r['action']} {r['path']}{chained}")
    twice = [r["hook"] for r in done if r.get("twice")]
    if twice:
        click.echo(
            f"mvc: note: the pre-commit framework's {', '.join(twice)} hook already runs mvc's hooks from "
            ".pre-commit-config.yaml, so they now run twice: keep one ('mvc install-hooks --uninstall', or drop "
            "the mvc hooks from .pre-commit-config.yaml)",
            err=True,
        )


@click.group(hidden=True)
def hook() -> None:
    """Run one of mvc's git hooks (the installed hooks and the pre-commit framework call this).

    \b
    Example:
      mvc hook pre-commit
    """


def _guard(name: str, blocking: bool, work: Callable[[], Any]) -> Any:
    """Run a hook's work: no mvc here is nothing to do; an error is one line, and stops git only
    for the blocking hooks."""
    try:
        return work()
    except NotInitialized:
        sys.exit(0)  # a repository (or an old commit of one) without mvc: nothing to keep in step
    except MvcError as e:
        _say(f"git {name.split('-', 1)[1]} stopped: {e}" if blocking else f"{name} hook: {e}")
    except KeyboardInterrupt as e:
        from mvc.cli import Terminated

        _say("interrupted")
        sys.exit(143 if isinstance(e, Terminated) else 130)
    except OSError as e:  # the environment failed us (disk, permissions, a path): one line, as for commands
        where = f" ({e.filename})" if e.filename else ""
        problem = f"{e.strerror or e}{where}: check the disk, the permissions and the paths, then retry"
        _say(f"git {name.split('-', 1)[1]} stopped: {problem}" if blocking else f"{name} hook: {problem}")
    except Exception as e:  # post hooks must not fail git over a bug; blocking ones stop it (traceback)
        if blocking:
            raise
        _say(f"{name} hook failed: {type(e).__name__}: {e}: run 'mvc checkout' to finish")
    sys.exit(1 if blocking else 0)


@hook.command("pre-commit")
def pre_commit() -> None:
    """Stop the commit (exit 1) when something mvc tracks is not committable; one line per problem.

    \b
    Example:
      mvc hook pre-commit
    """
    problems = _guard("pre-commit", True, actions.check_commit)
    for p in problems:
        _say(p["problem"])
    if problems:
        n = len(problems)
        _say(
            f"commit stopped ({n} problem{'s' if n > 1 else ''}): fix {'them' if n > 1 else 'it'}, "
            "or skip this check with 'git commit --no-verify'"
        )
        sys.exit(1)


def _framework_refs() -> tuple[str | None, list[tuple[str, str, str, str]]]:
    """The pre-commit framework passes no arguments nor stdin, but one pushed ref in its environment."""
    env = os.environ
    remote = env.get("PRE_COMMIT_REMOTE_NAME")
    local = env.get("PRE_COMMIT_TO_REF") or env.get("PRE_COMMIT_LOCAL_BRANCH")
    if not remote or not local:
        return remote, []
    zero = "0" * 40
    return remote, [
        (
            env.get("PRE_COMMIT_LOCAL_BRANCH", local),
            local,
            env.get("PRE_COMMIT_REMOTE_BRANCH", ""),
            env.get("PRE_COMMIT_FROM_REF") or zero,
        )
    ]


@hook.command("pre-push")
@click.argument("remote", required=False)
@click.argument("url", required=False)
def pre_push(remote: str | None, url: str | None) -> None:
    """Upload the models of the commits being pushed to the default mvc remote (exit 1 stops the push).

    \b
    Reads git's ref lines on stdin; REMOTE and URL are git's arguments.

    \b
    Example:
      echo "refs/heads/main $(git rev-parse main) refs/heads/main 0000000000000000000000000000000000000000" \\
        | mvc hook pre-push origin /srv/git/project.git
    """
    if remote is None:
        remote, refs = _framework_refs()
        if remote is None:
            raise click.UsageError(
                "give git's pre-push arguments (REMOTE URL) and its ref lines on stdin; "
                "git does this when the hook is installed with 'mvc install-hooks'"
            )
    else:
        refs = _guard(
            "pre-push", True, lambda: actions.parse_push_lines(sys.stdin.buffer.read().decode("utf-8", "replace"))
        )
    res = _guard("pre-push", True, lambda: actions.pre_push(remote, refs, progress=bars(False)))
    if res["commits"] == 0:
        return
    if res["uploaded"]:
        _say(f"uploaded {res['uploaded']} object(s), {human(res['bytes'])}, to mvc remote {res['remote']!r}")
    else:
        _say(f"the models of the pushed commits are already on mvc remote {res['remote']!r}")


def _report(results: list[dict[str, Any]]) -> None:
    for r in results:
        if r["action"] == "restored":
            _say(f"restored {r['path']}")
        elif r["action"] == "removed":
            _say(f"removed {r['path']}: not tracked at this commit (the cache keeps its content)")
        elif r["action"] in ("kept", "failed"):
            _say(f"{r['path']}: {r['error']}")


@hook.command("post-checkout")
@click.argument("prev", required=False)
@click.argument("new", required=False)
@click.argument("flag", required=False)
def post_checkout(prev: str | None, new: str | None, flag: str | None) -> None:
    """Restore the models whose pointers the checkout changed (branch checkouts only; never fails git).

    \b
    PREV, NEW and FLAG are git's arguments (FLAG 1: a branch checkout). Run by the
    pre-commit framework it takes no arguments (it reads PRE_COMMIT_FROM_REF,
    PRE_COMMIT_TO_REF, PRE_COMMIT_CHECKOUT_TYPE) and also serves post-merge.

    \b
    Example:
      mvc hook post-checkout "$(git rev-parse HEAD@{1})" "$(git rev-parse HEAD)" 1
    """
    env = os.environ
    if prev is None:
        if "PRE_COMMIT_IS_SQUASH_MERGE" in env and "PRE_COMMIT_CHECKOUT_TYPE" not in env:
            _report(_guard("post-merge", False, lambda: actions.post_merge(progress=bars(False))))
            return
        prev, new, flag = (
            env.get("PRE_COMMIT_FROM_REF"),
            env.get("PRE_COMMIT_TO_REF"),
            env.get("PRE_COMMIT_CHECKOUT_TYPE"),
        )
        if not prev or not new:
            raise click.UsageError(
                "give git's post-checkout arguments PREV NEW FLAG; git does this when the hook "
                "is installed with 'mvc install-hooks'"
            )
    assert new is not None
    _report(_guard("post-checkout", False, lambda: actions.post_checkout(prev, new, flag != "0", progress=bars(False))))


@hook.command("post-merge")
@click.argument("squash", required=False)
def post_merge(squash: str | None) -> None:
    """Restore the models whose pointers a merge or pull changed (never fails git).

    \b
    Example:
      mvc hook post-merge 0
    """
    _report(_guard("post-merge", False, lambda: actions.post_merge(progress=bars(False))))
