"""The command line: a thin layer over :mod:`mvc.api`. Commands load on first use to keep start-up fast."""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Any, NoReturn

import click

from mvc import __version__
from mvc.errors import MvcError

# name -> "module:function"; a command's module is imported only when that command runs
COMMANDS = {
    "init": "mvc.cli.workspace:init",
    "add": "mvc.cli.workspace:add",
    "status": "mvc.cli.workspace:status",
    "checkout": "mvc.cli.workspace:checkout",
    "get": "mvc.cli.workspace:get",
    "ls": "mvc.cli.workspace:ls",
    "unprotect": "mvc.cli.workspace:unprotect",
    "config": "mvc.cli.workspace:config",
    "remove": "mvc.cli.workspace:remove",
    "mv": "mvc.cli.record:mv",
    "show": "mvc.cli.record:show",
    "remote": "mvc.cli.remote:remote",
    "push": "mvc.cli.remote:push",
    "fetch": "mvc.cli.remote:fetch",
    "pull": "mvc.cli.remote:pull",
    "register": "mvc.cli.registry:register",
    "assign": "mvc.cli.registry:assign",
    "deprecate": "mvc.cli.registry:deprecate",
    "registry": "mvc.cli.registry:registry",
    "metrics": "mvc.cli.metrics:metrics",
    "log": "mvc.cli.registry:log",
    "diff": "mvc.cli.registry:diff",
    "gc": "mvc.cli.lifecycle:gc",
    "verify": "mvc.cli.lifecycle:verify",
    "install-hooks": "mvc.cli.hooks:install_hooks",
    "hook": "mvc.cli.hooks:hook",
    "ui": "mvc.cli.ui:ui",
    "import-dvc": "mvc.cli.migrate:import_dvc",
    "import-lfs": "mvc.cli.migrate_lfs:import_lfs",
}


# The exit status when the reader of mvc's output goes away (``mvc log churn | head -1``): 128 + SIGPIPE,
# what the shell shows for git, cat or grep in that case. Nothing is printed: the reader wanted no more.
PIPE_CLOSED = 141


def _output_closed(e: OSError) -> bool:
    """Whether e is stdout's reader having gone away, rather than another pipe (to git) breaking."""
    if e.errno != errno.EPIPE:
        return False
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (click's test runner)
        return False
    try:
        import select

        poller = select.poll()
    except (ImportError, AttributeError):  # no poll(): an EPIPE is stdout's nearly always
        return True
    poller.register(fd, 0)  # POLLERR and POLLHUP are reported whatever the mask
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _end_quietly() -> NoReturn:
    """Stop: stdout now writes to /dev/null, so that flushing it on the way out fails no more."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except OSError:
        pass
    raise click.exceptions.Exit(PIPE_CLOSED)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any):
        try:  # --help and --version print here, before invoke
            return super().make_context(info_name, args, parent, **extra)
        except OSError as e:
            if not _output_closed(e):
                raise
            _end_quietly()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MvcError as e:
            from mvc.cli.common import safe  # a name in the message (an -o path with a newline) keeps it one line

            click.echo(f"error: {safe(str(e))}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt as e:
            click.echo("interrupted", err=True)
            ctx.exit(143 if isinstance(e, Terminated) else 130)
        except MemoryError:  # a memory limit (ulimit -v, a batch system's): one line, as for a full disk
            click.echo("error: out of memory: lower -j, or raise the memory limit (ulimit -v), then retry", err=True)
            ctx.exit(1)
        except RuntimeError as e:
            if "can't start new thread" not in str(e):
                raise
            click.echo(
                "error: cannot start a thread (a limit on processes or memory): lower -j, or raise the limit "
                "(ulimit -u, ulimit -v), then retry",
                err=True,
            )
            ctx.exit(1)
        except OSError as e:  # the environment failed us (disk, permissions): one line, no traceback
            if _output_closed(e):
                _end_quietly()
            from mvc.cli.common import safe

            click.echo(f"error: {safe(_os_error(e))}", err=True)
            ctx.exit(1)


def _os_error(e: OSError) -> str:
    """An error of the system as one line: the file it concerns (where a rename failed, its target rather than
    mvc's temp file) and the fix its kind calls for."""
    name = e.filename2 if e.filename2 and ".mvc-tmp." in os.fsdecode(e.filename or "") else e.filename
    where = f" ({os.fsdecode(name)})" if name else ""
    fix = {
        errno.ENAMETOOLONG: "choose a shorter name, or work nearer the root of the file system",
        errno.EISDIR: "a directory is where a file goes: move it away, then retry",
        errno.ENOSPC: "free some space on that device, then retry" if name else "free some space, then retry",
        errno.EMFILE: "raise the limit on open files (ulimit -n), or lower -j, then retry",
        errno.ENFILE: "the system has too many files open: retry when fewer are",
        errno.EROFS: "the file system is read-only: run this where it can be written",
    }.get(e.errno or 0, "check the disk and permissions, then retry")
    return f"{e.strerror or e}{where}: {fix}"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mvc")
@click.option(
    "-C",
    "directory",
    metavar="PATH",
    help="Run as if mvc was started in PATH (an output path such as 'get -o' stays relative to here).",
)
@click.pass_context
def cli(ctx: click.Context, directory: str | None) -> None:
    """mvc: model version control. Model weights go to a hash-addressed cache and
    remotes; small pointer files go to git.

    \b
    Typical use:
      mvc init
      mvc add model.safetensors --meta accuracy=0.93
      git commit -m "train churn model"
      mvc checkout --rev HEAD~1
    """
    if directory:
        from mvc.cli.common import START_DIR

        try:
            ctx.meta[START_DIR] = os.getcwd()
        except OSError:  # the directory typed in is gone: the user's paths resolve against PATH then
            pass
        try:
            os.chdir(directory)
        except OSError as e:
            raise click.UsageError(f"cannot change to {directory}: {e.strerror}") from None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, as Ctrl-C's KeyboardInterrupt is."""


def main() -> None:
    # An exception Python can only report (raised in a __del__ or a finalizer: a backend object whose
    # construction failed, a connection closed at exit) is never the user's business: the command has
    # already said, in one line, what went wrong. Library users keep Python's default hook.
    sys.unraisablehook = lambda unraisable: None
    # numpy's OpenBLAS starts a spinning thread per core on import (about 40 ms of CPU in a delta-reading
    # command); no command of mvc's does linear algebra worth threads. A library user's process keeps its own.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Python's cycle collector runs every 700 new objects and walks every older generation in turn: an add or a
    # push of 100,000 small files (a few objects each, kept to the end, almost no cycles) spent 0.3-0.6 s in it
    # (docs/benchmarks.md). Collected far less often here, as mypy does; a library user's process keeps its own.
    import gc

    gc.set_threshold(200_000, 30, 30)
    # SIGTERM (a CI timeout, `timeout`, docker stop) ends a command as Ctrl-C does: what it has under way is
    # undone (a multipart upload aborted, a push's lease deleted, temp files removed), then it exits 143
    from _signal import SIGTERM, signal  # type: ignore[import-not-found]  # (the signal module's enums: 2 ms)

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    signal(SIGTERM, terminated)
    try:
        cli(prog_name="mvc")
    finally:
        # Python's collection at exit walks every object still alive: after botocore is loaded (~65k objects
        # from its JSON models) that is 0.2 s of a 0.6 s `mvc get --repo`. Frozen objects are skipped; the
        # process is ending, so nothing is kept alive that would otherwise be freed in time.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
