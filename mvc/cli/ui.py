"""mvc ui build, mvc ui serve: the registry as a static HTML site."""

from __future__ import annotations

import click

from mvc.api import site as api


@click.group()
def ui() -> None:
    """The registry as a static HTML site: models, versions, stages, lineage, metrics.

    \b
    Example:
      mvc ui build -o site && xdg-open site/index.html
      mvc ui serve
    """


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _counts(r: dict) -> str:
    return f"{_count(r['models'], 'model')}, {_count(r['versions'], 'version')}"


@ui.command()
@click.option("-o", "--output", "out", metavar="DIR", required=True, help="Directory to write the site into.")
def build(out: str) -> None:
    """Write the registry as a static HTML site into DIR.

    \b
    One page per model (versions, stages and their history, lineage, metrics
    charts), one per version (its whole record) and a comparison of two versions.
    No server, no external request: open DIR/index.html from disk, or copy DIR
    to any static host. DIR must be new, empty, or a site built before (replaced).

    \b
    Example:
      mvc ui build -o site
      mvc ui build -o /srv/www/models && rsync -a site/ host:/var/www/models/
    """
    from mvc.cli.common import shown_path, user_path

    r = api.build(user_path(out))
    click.echo(f"wrote {_count(r['pages'], 'file')} ({_counts(r)}) to {shown_path(r['dir'])}")
    click.echo(f"  open {r['index']}")


@ui.command()
@click.option("-o", "--output", "out", metavar="DIR", help="Build into DIR and keep it (default: a temp directory).")
@click.option(
    "--port", "-p", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one)."
)
def serve(out: str | None, port: int) -> None:
    """Build the site and serve it on 127.0.0.1 for a preview; Ctrl-C stops.

    \b
    Only this machine can reach it. The site is built once, at start: run it again
    to see new tags or commits.

    \b
    Example:
      mvc ui serve
      mvc ui serve --port 9000 -o site
    """
    import shutil
    import signal
    import tempfile
    import threading

    from mvc.cli.common import user_path

    where = user_path(out) if out is not None else tempfile.mkdtemp(prefix="mvc-ui-")
    try:
        r = api.build(where)
        server = api.serve(where, port)
        stop = threading.Event()  # Ctrl-C sets it, wherever the main thread is (between two lines, say)
        before = signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            click.echo(f"serving {_counts(r)} at {url}")
            click.echo("  press Ctrl-C to stop")
            while not stop.wait(0.2):
                pass
            click.echo("stopped")
        finally:
            signal.signal(signal.SIGINT, before)
            server.shutdown()
            server.server_close()
    finally:
        if out is None:
            shutil.rmtree(where, ignore_errors=True)
