"""Reading and writing config values (``mvc config``).

Neither opens the repository whole (its cache, its git), only its config: a bad value read from a file must
stay fixable with the ``mvc config KEY VALUE`` its error names.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mvc.errors import ConfigError, NotInitialized
from mvc.format import config as cfgfmt
from mvc.git import find_worktree
from mvc.repo.repository import Repo, open_repo

KEYS = cfgfmt.SETTINGS
# tables whose keys the user names: read as they are, never "unknown" (only remote.NAME.KEY is set here)
TABLES = ("remote.", "models.", "stages.")


def _mvc_dir(repo: Repo | None) -> str:
    if repo is not None:
        return repo.mvc_dir
    root = find_worktree(os.getcwd())
    mvc_dir = os.path.join(root, cfgfmt.MVC_DIR)
    if not os.path.isdir(mvc_dir):
        raise NotInitialized(f"mvc is not set up in {root}: run 'mvc init' first")
    return mvc_dir


def unknown(key: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, KEYS, n=3, cutoff=0.7)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}: known keys are {', '.join(KEYS)} and remote.NAME.KEY")


def parse(key: str, text: str, *, repo: Repo | None = None) -> Any:
    """The TOML value KEY takes from text; ConfigError naming the key, what it takes and an example."""
    if key in KEYS:
        return cfgfmt.parse_value(key, text)
    if not key.startswith("remote."):
        raise unknown(key)
    from mvc.api import remote_config

    _, name, option = _remote_key(key)
    return remote_config.parse_option(open_repo(repo), name, option, text)


def _remote_key(key: str) -> list[str]:
    parts = key.split(".", 2)
    if len(parts) < 3 or not cfgfmt.valid_remote_name(parts[1]) or not parts[2]:
        raise ConfigError(
            f"a remote's key is remote.NAME.KEY, not {key!r}: e.g. 'mvc config remote.origin.jobs 8' "
            "(or 'mvc remote modify origin jobs 8')"
        )
    return parts


def render(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return json.dumps(value)


def get(key: str, *, repo: Repo | None = None) -> Any:
    """The value in effect (the default when neither file sets it); None when a key with no default is not
    set; ConfigError for an unknown key, or a value that is not valid."""
    value = cfgfmt.Config(_mvc_dir(repo)).get(key)
    if value is None and key not in KEYS and not key.startswith(TABLES):
        raise unknown(key)
    return value


def set(key: str, value: str | bool | int | list[str] | None, *, local: bool = False, repo: Repo | None = None) -> None:
    """Set (value None: remove) key in .mvc/config.toml, or config.local.toml with local. A value not valid for
    its key is refused (ConfigError) and nothing is written."""
    mvc_dir = _mvc_dir(repo)
    if key.startswith("remote."):
        _remote_key(key)
    elif key not in KEYS:
        raise unknown(key)
    if isinstance(value, bool):  # Python's own values, written as the command line writes them
        value = "true" if value else "false"
    elif isinstance(value, int):
        value = str(value)
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    elif value is not None and not isinstance(value, str):
        raise ConfigError(
            f"{key}: a value is a string, a bool, a number or a list of strings, not {type(value).__name__}"
        )
    parsed = None if value is None else parse(key, value, repo=repo)
    option = key.split(".", 2)[2] if key.startswith("remote.") and key.count(".") >= 2 else key.rsplit(".", 1)[-1]
    if not local and parsed is not None and cfgfmt.is_secret(option):  # (a remote's name may hold "key")
        raise ConfigError(f"{key} looks like a secret: it would be committed; pass --local to keep it on this machine")
    if key == "core.remote" and parsed is not None:
        remotes = cfgfmt.remotes(cfgfmt.Config(mvc_dir).data, "the config", need_url=False)
        if parsed not in remotes:
            known = f"known remotes: {', '.join(sorted(remotes))}" if remotes else "no remote is configured"
            raise ConfigError(f"unknown remote {parsed!r} ({known}): add it with 'mvc remote add {parsed} URL' first")
    if key == "cache.type" and parsed is not None:
        cfgfmt.warn_if_root_links(parsed)
    name = cfgfmt.LOCAL if local else cfgfmt.CONFIG
    path = os.path.join(mvc_dir, name)
    try:
        with open(path, "rb") as f:
            before: bytes | None = f.read()
    except FileNotFoundError:
        before = None
    cfgfmt.write_value(path, key, parsed)
    if not key.startswith("remote."):
        return
    # a remote's table is checked whole (types, credentials in a committed URL): a refused change must not
    # stay in the file, or every later command would fail on it
    try:
        cfgfmt.remotes(cfgfmt.read(path), name, need_url=False)
    except ConfigError:
        from mvc.storage.fileio import atomic_write

        if before is None:
            os.unlink(path)
        else:
            atomic_write(path, before)
        raise
