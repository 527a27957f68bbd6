"""The command line: a thin layer over :mod:`mvc.api`. Commands load on first use to keep start-up fast."""

from __future__ import annotations

import importlib
import os
from typing import Any

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
    "remote": "mvc.cli.remote:remote",
    "push": "mvc.cli.remote:push",
    "fetch": "mvc.cli.remote:fetch",
    "pull": "mvc.cli.remote:pull",
    "register": "mvc.cli.registry:register",
    "assign": "mvc.cli.registry:assign",
    "deprecate": "mvc.cli.registry:deprecate",
    "registry": "mvc.cli.registry:registry",
    "log": "mvc.cli.registry:log",
    "diff": "mvc.cli.registry:diff",
    "install-hooks": "mvc.cli.hooks:install_hooks",
    "hook": "mvc.cli.hooks:hook",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MvcError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except OSError as e:  # the environment failed us (disk, permissions): one line, no traceback
            where = f" ({e.filename})" if e.filename else ""
            click.echo(f"error: {e.strerror or e}{where}: check the disk and permissions, then retry", err=True)
            ctx.exit(1)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mvc")
@click.option("-C", "directory", metavar="PATH", help="Run as if mvc was started in PATH.")
def cli(directory: str | None) -> None:
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
        try:
            os.chdir(directory)
        except OSError as e:
            raise click.UsageError(f"cannot change to {directory}: {e.strerror}") from None


def main() -> None:
    cli(prog_name="mvc")


if __name__ == "__main__":  # pragma: no cover
    main()
