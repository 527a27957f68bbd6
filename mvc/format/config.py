"""Repository config: ``.mvc/config.toml`` (committed) overlaid by ``.mvc/config.local.toml`` (git-ignored)."""

from __future__ import annotations

import os
import sys
from typing import Any

from mvc.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG = "config.toml"
LOCAL = "config.local.toml"
DEFAULTS: dict[str, Any] = {
    "cache": {"dir": "cache", "type": ["reflink", "copy"]},
    "core": {"fsync": False},
}
LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
SECRET_WORDS = ("secret", "key", "token", "password")


def read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}): fix or remove the file") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Config:
    def __init__(self, mvc_dir: str):
        self.mvc_dir = mvc_dir
        self.shared = read(os.path.join(mvc_dir, CONFIG))
        self.local = read(os.path.join(mvc_dir, LOCAL))
        self.data = merge(merge(DEFAULTS, self.shared), self.local)

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def cache_dir(self) -> str:
        d = self.get("cache.dir")
        if not isinstance(d, str) or not d:
            raise ConfigError("cache.dir must be a non-empty path: fix it with 'mvc config cache.dir PATH'")
        # relative paths are relative to .mvc/, where the default 'cache' lives
        return os.path.normpath(os.path.join(self.mvc_dir, os.path.expanduser(d)))

    @property
    def link_types(self) -> list[str]:
        t = self.get("cache.type")
        types = [t] if isinstance(t, str) else t
        if not isinstance(types, list) or not types or any(x not in LINK_TYPES for x in types):
            raise ConfigError(f"cache.type must be a list drawn from {', '.join(LINK_TYPES)}, not {t!r}: "
                              "fix it with 'mvc config cache.type reflink,copy'")
        return types

    @property
    def fsync(self) -> bool:
        return bool(self.get("core.fsync"))


def is_secret(key: str) -> bool:
    last = key.rsplit(".", 1)[-1].lower()
    return any(w in last for w in SECRET_WORDS)


def write_value(path: str, dotted: str, value: Any) -> None:
    """Set (or, with value None, remove) a dotted key in one TOML file, atomically."""
    import tomli_w

    from mvc.storage.local import atomic_write

    data = read(path)
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{dotted}: {part} is not a table in {path}: fix the file by hand")
        node = nxt
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    atomic_write(path, tomli_w.dumps(data).encode())
