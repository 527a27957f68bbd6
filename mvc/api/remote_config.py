"""The remote verbs that change configuration: ``mvc remote add / list / remove / modify / default``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from mvc.errors import MvcError, RemoteError
from mvc.format import config as cfgfmt
from mvc.repo.remotes import check_name, config_path, default_remote, normalize_url, remote_table, spec, validate
from mvc.repo.repository import Repo, open_repo
from mvc.storage import fileio


def _shared(repo: Repo) -> bytes | None:
    """The bytes of .mvc/config.toml (None when it does not exist)."""
    try:
        with open(config_path(repo, False), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _stage(repo: Repo, before: bytes | None, stage: bool) -> bool:
    """Stage .mvc/config.toml in git when the command changed it (as ``mvc init`` and ``mvc add`` stage
    theirs); whether it did. config.local.toml is git-ignored and never staged."""
    if not stage or _shared(repo) == before:
        return False
    repo.git.stage([cfgfmt.CONFIG_PATH])
    return True


def add(
    name: str, url: str, *, default: bool = False, local: bool = False, stage: bool = True, repo: Repo | None = None
) -> dict[str, Any]:
    """Add remote NAME at URL to .mvc/config.toml, staged in git unless not ``stage`` (with ``local``: to
    config.local.toml, never staged); the first remote becomes the default (``core.remote``) whatever
    ``default`` says. Returns {name, url, default, local, staged}."""
    repo = open_repo(repo)
    before = _shared(repo)
    check_name(name)
    if name in remote_table(repo):
        raise RemoteError(
            f"remote {name!r} exists already: change it with 'mvc remote modify {name} url URL' "
            f"or remove it with 'mvc remote remove {name}'"
        )
    url = normalize_url(repo, url)
    if not local:
        _refuse_credentials(name, "url", url)
    if not default and not remote_table(repo) and not repo.config.sets("core.remote"):
        default = True  # the first remote is the default by name: adding a second one later changes nothing
    path = config_path(repo, local)
    with _validated(repo, path):
        cfgfmt.write_value(path, f"remote.{name}.url", url)
        if default:
            cfgfmt.write_value(path, "core.remote", name)
    staged = _stage(repo, before, stage)
    return {"name": name, "url": cfgfmt.redact_url(url), "default": default, "local": local, "staged": staged}


def _refuse_credentials(name: str, key: str, url: str) -> None:
    """A URL with user:password@ never goes into the committed config (nor into the message)."""
    if cfgfmt.has_credentials(url):
        raise RemoteError(
            f"the {key} of remote {name} holds credentials (user:password@, or a token in its query) and "
            ".mvc/config.toml is committed: pass --local to keep it in .mvc/config.local.toml, or give the "
            "credentials through the environment (AWS_* variables, a profile); an @ in a path is written %40"
        )


@contextlib.contextmanager
def _validated(repo: Repo, path: str) -> Iterator[None]:
    """Write inside the block, then check the whole configuration; a refused change is undone, so no
    later command trips over it."""
    try:
        with open(path, "rb") as f:
            before: bytes | None = f.read()
    except FileNotFoundError:
        before = None
    try:
        yield
        validate(repo)
    except MvcError:
        if before is None:
            fileio.remove_quietly(path)
        else:
            fileio.atomic_write(path, before)
        raise


def remotes(*, repo: Repo | None = None) -> list[dict[str, Any]]:
    """Configured remotes: name, url, whether it is the default, where it is configured, its other keys
    (secret values hidden)."""
    repo = open_repo(repo)
    table = remote_table(repo)
    default = default_remote(repo)
    shared = repo.config.shared.get("remote", {})
    out = []
    for name in sorted(table):
        entry = table[name]
        options = cfgfmt.masked({k: v for k, v in sorted(entry.items()) if k != "url"})
        out.append(
            {
                "name": name,
                "url": cfgfmt.redact_url(entry["url"]),
                "default": name == default,
                "scope": "repo" if name in shared else "local",
                "options": options,
            }
        )
    return out


def remove(name: str, *, stage: bool = True, repo: Repo | None = None) -> bool:
    """Remove remote NAME from both config files (and unset it as the default); .mvc/config.toml is staged
    in git when it changed, unless not ``stage``. Returns whether it was staged."""
    repo = open_repo(repo)
    before = _shared(repo)
    if name not in remote_table(repo):
        spec(repo, name)  # raises the unknown-remote error
    for local in (False, True):
        path = config_path(repo, local)
        data = cfgfmt.read(path)
        if name in data.get("remote", {}):
            cfgfmt.write_value(path, f"remote.{name}", None)
        if data.get("core", {}).get("remote") == name:
            cfgfmt.write_value(path, "core.remote", None)
    return _stage(repo, before, stage)


# What mvc itself reads of every remote; the rest of REMOTE_KEYS are S3's, or handed to the fsspec filesystem.
OWN_KEYS = frozenset({"url", "jobs", "packs", "chunks"})


def known_keys(url: str) -> frozenset[str] | None:
    """The keys a remote at url understands: mvc's own and its store's. None when its fsspec filesystem takes
    any keyword (or its package is not installed to tell): every key is then handed to it as is."""
    from mvc.storage.urls import split_url

    protocol, _ = split_url(url)
    if protocol == "local":  # a directory takes no option
        return OWN_KEYS
    if protocol in ("s3", "s3a"):
        from mvc.storage import s3, s3read

        # the keys S3Store maps or hands to s3fs; any other would go to botocore's session, which takes none
        return frozenset(cfgfmt.REMOTE_KEYS) | set(s3.S3_KEYS) | s3._S3FS_PARAMS | s3read.KEYS
    import inspect

    try:
        import fsspec

        params = inspect.signature(fsspec.get_filesystem_class(protocol).__init__).parameters.values()
    except (ImportError, ValueError, TypeError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    return OWN_KEYS | named


def _check_known(name: str, key: str, url: str) -> None:
    known = known_keys(url)
    if known is None or key in known:
        return
    import difflib

    from mvc.storage.urls import split_url

    protocol = split_url(url)[0]
    kind = "a directory" if protocol == "local" else f"{protocol}://"
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.7)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise RemoteError(
        f"unknown key {key!r} for remote {name} ({kind}){hint}: known keys are {', '.join(sorted(known))}"
    )


def parse_option(repo: Repo, name: str, key: str, text: str) -> Any:
    """The value KEY of remote NAME takes from text (``mvc remote modify``, ``mvc config remote.NAME.KEY``): a key
    the remote's store does not know is refused (once NAME has a URL), mvc's keys are typed and checked, the
    fsspec filesystem's get booleans and integers. KEY may name a key of a table (client_kwargs.region_name)."""
    top = key.split(".", 1)[0]
    if not top or not all(c.isalnum() or c == "_" for c in top):
        raise RemoteError(
            f"invalid key {key!r}: use letters, digits and '_' (e.g. endpoint_url, profile, region, jobs)"
        )
    url = remote_table(repo).get(name, {}).get("url")
    if isinstance(url, str) and top != "url":
        _check_known(name, top, url)
    if key == "url":
        return normalize_url(repo, text)
    if "." in key:
        return _fsspec_value(text)
    return _parse_value(name, key, text)


def _fsspec_value(text: str) -> Any:
    """A value handed to the fsspec filesystem: booleans and numbers as such, not strings."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _parse_value(name: str, key: str, text: str) -> Any:
    kind = cfgfmt.REMOTE_KEYS.get(key)
    if kind is int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise RemoteError(f"{key} takes a positive integer, not {text!r}: e.g. 'mvc remote modify {name} {key} 8'")
        return value
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise RemoteError(f"{key} takes true or false, not {text!r}: e.g. 'mvc remote modify {name} {key} false'")
        return text.lower() == "true"
    if key == "endpoint_url" and not text.startswith(("http://", "https://")):
        raise RemoteError(
            f"endpoint_url must start with http:// or https://, not {cfgfmt.redact_url(text)!r}: "
            f"e.g. 'mvc remote modify {name} endpoint_url http://127.0.0.1:9000'"
        )
    if kind is None:  # handed to the fsspec filesystem
        return _fsspec_value(text)
    return text


def modify(
    name: str, key: str, value: str | None, *, local: bool = False, stage: bool = True, repo: Repo | None = None
) -> bool:
    """Set (value None: remove) KEY of remote NAME. Secret-like keys only go to config.local.toml.
    .mvc/config.toml is staged in git when it changed, unless not ``stage``; returns whether it was."""
    repo = open_repo(repo)
    before = _shared(repo)
    table = remote_table(repo)
    if name not in table:
        spec(repo, name)
    if not key or not all(c.isalnum() or c == "_" for c in key):
        nested = f"; a key of a table: 'mvc config remote.{name}.{key} VALUE'" if "." in key else ""
        raise RemoteError(
            f"invalid key {key!r}: use letters, digits and '_' (e.g. endpoint_url, profile, region, jobs){nested}"
        )
    if value is None:
        if key == "url" and local and "url" in repo.config.shared.get("remote", {}).get(name, {}):
            cfgfmt.write_value(config_path(repo, True), f"remote.{name}.url", None)  # this machine's override
            return False
        if key == "url":
            raise RemoteError(f"a remote needs its url: remove the remote instead with 'mvc remote remove {name}'")
        for loc in (False, True):
            cfgfmt.write_value(config_path(repo, loc), f"remote.{name}.{key}", None)
        return _stage(repo, before, stage)
    parsed = parse_option(repo, name, key, value)
    local_only = name not in repo.config.shared.get("remote", {})
    if cfgfmt.is_secret(key) and not local and not local_only:
        raise RemoteError(
            f"{key} looks like a secret: it would be committed with .mvc/config.toml; "
            f"pass --local to keep it in .mvc/config.local.toml on this machine"
        )
    target = config_path(repo, local or local_only)
    if key in ("url", "endpoint_url") and not (local or local_only):
        _refuse_credentials(name, key, str(parsed))
    with _validated(repo, target):
        cfgfmt.write_value(target, f"remote.{name}.{key}", parsed)
    return _stage(repo, before, stage)


def set_default(name: str | None, *, local: bool = False, stage: bool = True, repo: Repo | None = None) -> bool:
    """Make NAME the default remote (``core.remote``); None unsets it. .mvc/config.toml is staged in git
    when it changed, unless not ``stage``; returns whether it was."""
    repo = open_repo(repo)
    before = _shared(repo)
    if name is not None:
        spec(repo, name)
        local = local or name not in repo.config.shared.get("remote", {})
        cfgfmt.write_value(config_path(repo, local), "core.remote", name)
    else:  # --local: this machine's default alone; else both (the shared one, and one that would hide it)
        for loc in (True,) if local else (False, True):
            cfgfmt.write_value(config_path(repo, loc), "core.remote", None)
    return _stage(repo, before, stage)
