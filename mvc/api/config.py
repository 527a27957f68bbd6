"""Reading and writing config values (``mvc config``)."""

from __future__ import annotations

import json
import os
from typing import Any

from mvc.errors import ConfigError
from mvc.format import config as cfgfmt
from mvc.repo.repository import Repo, open_repo

KEYS = {
    "cache.dir": "path",
    "cache.type": "list",
    "core.fsync": "bool",
    "core.auto_record": "bool",
    "core.remote": "str",
    "hooks.max_size": "str",
    "hooks.extensions": "list",
    "hooks.allow": "list",
}


def parse(key: str, text: str) -> Any:
    kind = KEYS.get(key)
    if kind is None and not key.startswith("remote."):
        raise ConfigError(f"unknown config key {key!r}: known keys are {', '.join(sorted(KEYS))}")
    if kind == "list":
        return [x.strip() for x in text.split(",") if x.strip()]
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"{key} takes true or false, not {text!r}")
        return text.lower() == "true"
    return text


def render(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return json.dumps(value)


def get(key: str, *, repo: Repo | None = None) -> Any:
    repo = open_repo(repo)
    return repo.config.get(key)


def set(key: str, value: str | None, *, local: bool = False, repo: Repo | None = None) -> None:
    """Set (value None: remove) key in .mvc/config.toml, or config.local.toml with local."""
    repo = open_repo(repo)
    parsed = None if value is None else parse(key, value)
    if not local and parsed is not None and cfgfmt.is_secret(key):
        raise ConfigError(f"{key} looks like a secret: it would be committed; pass --local to keep it on this machine")
    path = os.path.join(repo.mvc_dir, cfgfmt.LOCAL if local else cfgfmt.CONFIG)
    try:
        with open(path, "rb") as f:
            before: bytes | None = f.read()
    except FileNotFoundError:
        before = None
    cfgfmt.write_value(path, key, parsed)
    # validate what the merged result now says, so a bad value is caught when set, not later;
    # a refused value must not stay in the file, or every later command (even this one) would fail
    try:
        check = Repo(repo.root).config
        _ = (check.link_types, check.cache_dir)  # each property validates its value
    except ConfigError:
        from mvc.storage.fileio import atomic_write

        if before is None:
            os.unlink(path)
        else:
            atomic_write(path, before)
        raise
