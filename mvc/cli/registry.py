"""register, assign, deprecate, registry, log, diff."""

from __future__ import annotations

import os
import shlex
from typing import Any

import click

from mvc import git as gitmod
from mvc.api import lineage
from mvc.api import registry as api
from mvc.cli.common import (
    columns,
    echo_json,
    human,
    json_option,
    quiet_option,
    repo_option,
    safe,
    short,
    shown_path,
    unicode_only,
    user_url,
)
from mvc.cli.metrics import cell, not_shown, split_keys
from mvc.repo.repository import in_quotes, shell_quoted

_message = click.option(
    "-m", "--message", metavar="MSG", callback=unicode_only, help="Message of the tag (default: GTO's wording)."
)
_quiet = click.option(
    "-q", "--quiet", is_flag=True, help="Print nothing on success, the result lines too (errors still go to stderr)."
)


def _created(r: dict[str, Any], what: str, quiet: bool = False) -> None:
    if r.get("same_as"):  # a warning, printed even with -q
        click.echo(
            f"mvc: {r['name']}@{r['version']} holds the same weights as {r['name']}@{r['same_as']} "
            f"({short(r['oid'])}): if the model was retrained, run {in_quotes('mvc add ' + shell_quoted(r['path']))}, commit, and register "
            "that commit",
            err=True,
        )
    if quiet:
        return
    where = f"{r['path']} at {r['commit'][:7]}" if r.get("path") else f"commit {r['commit'][:7]}"
    click.echo(f"created tag {r['tag']}: {what} ({where})")
    click.echo(f"  share it with: git push origin {shlex.quote(r['tag'])}")


@click.command()
@click.argument("name")
@click.argument("version", required=False)
@click.option("--rev", "-r", metavar="REV", help="Commit to register (default HEAD).")
@click.option("--bump-major", "major", is_flag=True, help="Next major version (v1.4.2 -> v2.0.0).")
@click.option("--bump-minor", "minor", is_flag=True, help="Next minor version (v1.4.2 -> v1.5.0).")
@click.option("--bump-patch", "patch", is_flag=True, help="Next patch version (the default).")
@_message
@_quiet
def register(
    name: str,
    version: str | None,
    rev: str | None,
    major: bool,
    minor: bool,
    patch: bool,
    message: str | None,
    quiet: bool,
) -> None:
    """Register a model version: the annotated git tag NAME@vX.Y.Z on a commit.

    \b
    NAME must be mapped to a tracked path at that commit ('mvc add PATH --name NAME').
    Without VERSION, the greatest version ever registered is bumped (patch by default);
    the first version is v0.0.1.

    \b
    Example:
      mvc add models/churn.pt --name churn && git commit -m "train churn"
      mvc register churn                 # churn@v0.0.1
      mvc register churn --bump-minor    # a later commit: churn@v0.1.0
      mvc register churn v1.0.0 --rev HEAD~1
    """
    bumps = [b for b, given in (("major", major), ("minor", minor), ("patch", patch)) if given]
    if len(bumps) > 1:
        raise click.UsageError("give one of --bump-major, --bump-minor and --bump-patch")
    r = api.register(name, version, rev=rev, bump=bumps[0] if bumps else None, message=message)
    _created(r, f"{name} {r['version']}", quiet)


@click.command()
@click.argument("name")
@click.argument("stage")
@click.option("--version", "-v", "version", metavar="V", help="Registered version to assign.")
@click.option("--rev", "-r", metavar="REV", help="Commit to assign, registered first if needed (default HEAD).")
@_message
@click.option("--force", "-f", is_flag=True, help="Ignore the promotion rules of [stages] in .mvc/config.toml.")
@_quiet
def assign(
    name: str, stage: str, version: str | None, rev: str | None, message: str | None, force: bool, quiet: bool
) -> None:
    """Assign STAGE to a version of model NAME: the annotated git tag NAME#STAGE#N.

    \b
    N is the model's next counter, as GTO counts. An unregistered commit is registered
    first. With [stages] order = ["dev", "staging", "prod"] in .mvc/config.toml, a version
    must hold the previous stage; [stages.prod] require = ["accuracy >= 0.9"] gates a
    stage on the model's meta. --force skips both checks.

    \b
    Example:
      mvc assign churn dev                    # HEAD, registered if needed
      mvc assign churn prod --version v1.2.0
    """
    r = api.assign(name, stage, version=version, rev=rev, message=message, force=force)
    if r["registered"]:
        _created(r["registered"], f"{name} {r['registered']['version']}", quiet)
    _created(r, f"{name} {r['version']} -> {stage}", quiet)


@click.command()
@click.argument("name")
@click.argument("version", required=False)
@click.argument("stage", required=False)
@_message
@_quiet
def deprecate(name: str, version: str | None, stage: str | None, message: str | None, quiet: bool) -> None:
    """Cancel a stage assignment, deregister a version, or deprecate a whole model.

    \b
    NAME VERSION STAGE   cancels STAGE of that version:  NAME#STAGE!#N
    NAME VERSION         deregisters the version:        NAME@VERSION!
    NAME                 deprecates the model:           NAME@deprecated
    Tags are never moved or deleted: each change is a new tag.

    \b
    Example:
      mvc deprecate churn v1.2.0 prod
      mvc deprecate churn v1.1.0
    """
    r = api.deprecate(name, version, stage, message=message)
    what = {
        "unassign": f"{name} {r['version']} leaves {stage}",
        "deregister": f"{name} {r['version']} deregistered",
        "deprecate": f"{name} deprecated",
    }[r["action"]]
    _created(r, what, quiet)


@click.command()
@click.argument("name", required=False)
@json_option
@click.option("--deprecated", "-d", is_flag=True, help="Include deprecated models.")
@click.option(
    "--check", is_flag=True, help="Say which versions can be fetched (their objects in the cache or on the remote)."
)
@click.option(
    "-r", "--remote", metavar="REMOTE", help="With --check: the remote to look in (default: the default remote)."
)
@repo_option
@click.option(
    "--keys", "-k", metavar="K1,K2", help="With NAME: the metrics shown (default: the latest version's first 3)."
)
def registry(
    name: str | None,
    as_json: bool,
    deprecated: bool,
    check: bool,
    remote: str | None,
    repo: str | None,
    keys: str | None,
) -> None:
    """Show each model's latest version and the version each stage points to;
    with NAME, every version of that model, its stages and a few of its metrics.

    \b
    Reads git tags only (GTO's and mvc's), never the work tree, so it works in any clone;
    with NAME also each version's pointer at its commit, for its [meta] metrics.

    \b
    Example:
      mvc registry
      mvc registry churn
      mvc registry churn --keys f1,auc
      mvc registry --json | jq '.[] | select(.name == "churn") | .stages.prod.version'
      mvc registry --repo https://github.com/acme/models.git
      mvc registry --check
    """
    if keys is not None and (name is None or check):
        raise click.UsageError("--keys goes with NAME, without --check: mvc registry NAME --keys K1,K2")
    if check:
        if repo is not None or deprecated:
            raise click.UsageError(
                "--check reads this repository's cache and remote: it takes neither --repo nor --deprecated"
            )
        _check(name, remote, as_json)
        return
    if remote is not None:
        raise click.UsageError("-r/--remote goes with --check")
    from mvc.api.target import ByUrl

    url = ByUrl(user_url(repo)) if repo is not None else None  # by URL: a normal repository's HEAD too
    if name is not None:
        from mvc.api.metrics import model

        m = model(name, keys=split_keys(keys), repo=url)
        not_shown(name, [k for k in split_keys(keys) or [] if k not in m["metric_keys"]])
        _one_model(m, as_json)
        return
    found = api.table(deprecated=deprecated, repo=url)
    rows = found["models"]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        hidden = found["hidden"]
        if hidden:
            models = f"{hidden} model{'s are' if hidden > 1 else ' is'}"
            click.echo(f"no active models: {models} deprecated ('mvc registry --deprecated' shows them)")
        else:
            click.echo("no registered models yet: run 'mvc register NAME'")
        return
    stages = [s for s in found["stages"] if any(s in r["stages"] for r in rows)]
    table = [["name", "latest", *[f"#{s}" for s in stages], "path"]]
    for r in rows:
        name = r["name"] + (" (deprecated)" if r["deprecated"] else "")
        table.append(
            [
                name,
                r["latest"]["version"] if r["latest"] else "-",
                *[_label(r["stages"].get(s)) for s in stages],
                r["path"] or "-",
            ]
        )
    columns(table)


def _check(name: str | None, remote: str | None, as_json: bool) -> None:
    """``mvc registry --check``: every live version, whether it can be fetched; exit status 1 when one cannot."""
    from mvc.api.verify import registry_check
    from mvc.errors import VerifyFailed

    rows = registry_check(name, remote=remote)
    if as_json:
        echo_json(rows)
    else:
        table = [["model", "version", "stages", "path", "state"]]
        for r in rows:
            state = r["state"] if r["state"] != "missing" else f"missing {len(r['missing'])} object(s)"
            table.append(
                [r["model"], r["version"], ", ".join(f"#{s}" for s in r["stages"]) or "-", r["path"] or "-", state]
            )
        if len(table) > 1:
            columns(table)
        else:
            click.echo("no registered versions to check")
    bad = [r for r in rows if r["state"] != "ok"]
    if bad:
        first = bad[0]
        fix = (
            f"its pointer at that commit cannot be read ({first.get('error') or 'see mvc show'}): register a "
            "readable commit, or deregister that version"
            if first["state"] == "unreadable"
            else "push them from a machine that has them ('mvc push --rev TAG'), or see 'mvc verify --all-tags'"
        )
        n = len(bad)
        raise VerifyFailed(
            f"{n} registered version{'s' if n != 1 else ''} cannot be fetched, first "
            f"{first['model']}@{first['version']}: {fix}"
        )


def _one_model(m: dict[str, Any], as_json: bool) -> None:
    """``mvc registry NAME``: the model's versions, newest first, with the stages each holds now and the values
    of its ``metric_keys``."""
    if as_json:
        echo_json(m)
        return
    head = f"model {m['name']}" + (f" ({m['path']})" if m["path"] else "")
    if m["deprecated"]:
        head += ": deprecated (its revisions do not resolve until a later registry tag of it)"
    elif m["latest"]:
        head += f", latest {m['latest']['version']}"
    click.echo(head)
    keys = m.get("metric_keys", [])
    table = [["version", "commit", "date", "stages", *keys]]
    shown = set()
    for v in m["versions"]:
        stages = ", ".join(f"#{s}" for s in v["stages"])
        if not v["active"]:
            stages = "deregistered"
        values = [cell(v.get("metrics", {}).get(k)) for k in keys]
        table.append([v["version"], v["commit"][:7], v.get("date", "")[:10], stages or "-", *values])
        shown.add(v["version"])
    unregistered: dict[str, list[str]] = {}  # commits GTO assigned a stage without registering them
    for stage, d in m["stages"].items():
        if d["version"] not in shown:
            unregistered.setdefault(d["version"], []).append(stage)
    for commit, held in unregistered.items():
        date = m["stages"][held[0]]["date"][:10]
        table.append(["(unregistered)", commit[:7], date, ", ".join(f"#{s}" for s in held), *[""] * len(keys)])
    if len(table) == 1:
        click.echo("no versions")
        return
    columns(table)


def _label(stage: dict[str, Any] | None) -> str:
    if stage is None:
        return "-"
    v = stage["version"]
    return v if v.startswith("v") else v[:7]  # a commit GTO assigned without registering it


@click.command()
@click.argument("target", metavar="NAME|PATH")
@click.option("--rev", "-r", default="HEAD", show_default=True, metavar="REV", help="Start from this revision.")
@json_option
def log(target: str, rev: str, as_json: bool) -> None:
    """Show the lineage of a model: every commit that changed its pointer.

    \b
    A model NAME is followed through renames as each commit's .mvc/config.toml maps it,
    and before it was named through the history of its path; a PATH, named or not,
    through the renames of its pointer that git detects (what mvc mv stages). Each entry
    lists the commit, author, date, message, oid, size, meta, and the versions and
    stages that point to it now. A NAME or PATH mvc never knew is an error.

    \b
    Example:
      mvc log churn
      mvc log models/churn.pt --json
    """
    rows = lineage.log(target, rev=rev)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no commit changed {target}")
    for r in rows:
        marks = [*r["versions"], *[f"#{s}" for s in r["stages"]]]
        click.echo(
            f"commit {r['commit'][:10]}  {safe(r['date'])}  {safe(r['author'])}"
            + (f"  ({safe(', '.join(marks))})" if marks else "")
        )
        click.echo(f"    {safe(r['message'].splitlines()[0]) if r['message'] else ''}")
        if "oid" in r:
            from mvc.cli.record import flat

            meta = "  " + ", ".join(f"{k}={v}" for k, v in sorted(flat(r["meta"]))) if r["meta"] else ""
            click.echo(f"    {r['change']} {shown_path(r['path'])}  {human(r['size'])}  {short(r['oid'])}{meta}")
        else:
            click.echo(f"    {r['change']} {shown_path(r['path'])}" + (f"  ({r['error']})" if "error" in r else ""))
        for later in r.get("also", []):
            held = ", ".join([*later["versions"], *[f"#{s}" for s in later["stages"]]])
            click.echo(f"    also {held} at {later['commit'][:10]} (a later commit, the same model)")
        if r.get("history_cut"):
            click.echo(
                "    (this shallow clone holds no commit before this one, so the lineage may go further back: "
                "'git fetch --unshallow' fetches the full history)"
            )


@click.command()
@click.argument("rev_a", metavar="[A]", required=False)
@click.argument("rev_b", metavar="[B]", required=False)
@json_option
@click.option("--model", "model", is_flag=True, help="Compare the content of two model versions A and B.")
@click.option("--tensors", is_flag=True, help="Of a directory: the tensor diff of each changed safetensors file.")
@click.option("--fetch", is_flag=True, help="Fetch versions the cache lacks first, to compare every tensor.")
@click.option("--remote", metavar="REMOTE", help="Read versions the cache lacks from this remote (name or URL).")
@quiet_option
def diff(
    rev_a: str | None,
    rev_b: str | None,
    as_json: bool,
    model: bool,
    tensors: bool,
    fetch: bool,
    remote: str | None,
    quiet: bool,
) -> None:
    """Show models added, removed, modified or moved between two revisions; or, with
    model versions, what changed inside a model: tensors, or files of a directory.

    \b
    Default: HEAD against the work tree's pointers; one revision: it against the work
    tree. Revisions may be registry ones (churn@v1.0.0, churn#prod, churn@latest).
    Against the work tree, a path whose data changed since mvc add is "unadded".
    With --model, or when A or B is a model name, a tracked path or REV:PATH (no
    revision), A and B are model versions: safetensors tensors added (+), removed (-),
    retyped or reshaped (!), changed (~, with the largest change when the cache holds
    both) or unknown (?); other files: same or not.

    \b
    Example:
      mvc diff
      mvc diff churn#prod churn@latest --json
      mvc diff --model churn@v1.0.0 churn@v1.1.0
      mvc diff churn#prod churn
      mvc diff HEAD~1:models/bert models/bert --tensors
    """
    from mvc.api import tensordiff
    from mvc.cli.common import bars

    if model or tensors or fetch or remote is not None or tensordiff.model_form(rev_a, rev_b):
        if rev_a is None:
            raise click.UsageError("name the model version: mvc diff --model A [B]")
        from mvc.cli import modeldiff

        found = tensordiff.diff_models(
            rev_a, rev_b, tensors=tensors, fetch=fetch, remote=remote, progress=bars(as_json or quiet or not fetch)
        )
        if as_json:
            echo_json(found)
        else:
            modeldiff.echo(found)
        return
    rows = lineage.diff(rev_a, rev_b, progress=bars(as_json or quiet))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no model changed")
    root = gitmod.find_worktree(os.getcwd()) if any(r.get("workspace") == "modified" for r in rows) else ""
    for r in rows:
        here = os.path.relpath(os.path.join(root, r["path"])) if r.get("workspace") == "modified" else r["path"]
        readd = (
            f"run {in_quotes('mvc add ' + shell_quoted(here))} to record it"  # (the path as typed where the user is)
        )
        names = f" ({', '.join(r['names'])})" if r["names"] else ""
        old, new = r["old"], r["new"]
        if "not_imported" in r:  # a side mvc cannot read: no size to compare; why, on a line of its own below
            unread = r["not_imported"]
            sides = [("old", old), ("new", new)]
            detail = " -> ".join(
                "not imported" if s in unread else human(v["size"]) for s, v in sides if v or s in unread
            )
        elif r["change"] == "added":
            detail = human(new["size"])
        elif r["change"] == "removed":
            detail = human(old["size"])
        else:
            sign = "+" if r["size_change"] >= 0 else "-"
            detail = f"{human(old['size'])} -> {human(new['size'])} ({sign}{human(abs(r['size_change']))})"
            if old["oid"] == new["oid"]:
                detail = "same content"
        if r["change"] == "unadded":
            detail = f"changed in the work tree since mvc add: {readd}"
        path = f"{r['old_path']} -> {r['path']}" if r["change"] == "moved" else r["path"]
        click.echo(f"{r['change']:8}  {path}{names}  {detail}")
        for k, (a, b) in r["meta_changes"].items():
            click.echo(f"          {safe(k)}: {_show(a)} -> {_show(b)}")
        if "error" in r:
            click.echo(f"          {safe(r['error'])}")
        if r["change"] != "unadded" and r.get("workspace") == "modified":
            click.echo(f"          work tree: changed again since mvc add: {readd}")


def _show(value: Any) -> str:
    from mvc.cli.record import scalar

    return "(none)" if value is None else f"[{scalar(value)}]" if isinstance(value, list) else scalar(value)
