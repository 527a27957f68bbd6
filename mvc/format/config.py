"""Repository config: ``.mvc/config.toml`` (committed) overlaid by ``.mvc/config.local.toml`` (git-ignored)."""

from __future__ import annotations

import os
import re
import reprlib
import stat
import sys
from collections.abc import Callable
from typing import Any

from mvc.errors import ConfigError
from mvc.storage.urls import has_credentials, redact_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MVC_DIR = ".mvc"  # the directory mvc keeps in a repository's root
CONFIG = "config.toml"
LOCAL = "config.local.toml"
CONFIG_PATH = f"{MVC_DIR}/{CONFIG}"  # as git names it
LOCK = "lock"  # .mvc/lock: held while a shared file (config, a .gitignore) is rewritten
DEFAULTS: dict[str, Any] = {
    "cache": {"dir": "cache", "type": ["reflink", "copy"]},
    "core": {"fsync": False, "auto_record": True},
    # the pre-commit hook's (mvc/api/hook_actions.py: DEFAULT_MAX_SIZE, DEFAULT_EXTENSIONS, held equal by a test)
    "hooks": {
        "max_size": "10MB",
        "extensions": [
            ".pt",
            ".pth",
            ".ckpt",
            ".safetensors",
            ".onnx",
            ".pkl",
            ".pickle",
            ".joblib",
            ".h5",
            ".hdf5",
            ".bin",
            ".gguf",
            ".tflite",
        ],
        "allow": [],
    },
}
LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
SECRET_WORDS = ("secret", "key", "token", "passw", "passphrase", "credential", "authorization", "cookie")


def read(path: str) -> dict[str, Any]:
    """The config file at path ({} when there is none). A link, or anything but a regular file, is refused: a
    committed ``.mvc/config.toml`` linking to a file outside would be read as the config, and copied into the
    repository by the next command that writes a value (git itself never follows it)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return {}
    except OSError as e:
        what = "a symbolic link" if os.path.islink(path) else f"unreadable ({e.strerror})"
        raise ConfigError(f"{path} is {what}: mvc reads only a config file of its own; {_REPLACE}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{path} is not a regular file: mvc reads only a config file of its own; {_REPLACE}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}): fix or remove the file") from None
    finally:
        os.close(fd)


_REPLACE = "replace it with a regular file ('git rm' it, then 'mvc init' writes a fresh one)"


def loads(data: bytes, where: str) -> dict[str, Any]:
    """A config file's content (e.g. the blob of .mvc/config.toml at a commit)."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ConfigError(f"{where}: not valid TOML ({e}): fix the file") from None


def models(data: dict[str, Any], where: str = CONFIG) -> dict[str, str]:
    """``[models.NAME] path = "..."``: {model name: tracked path (posix, relative to the repo root)}."""
    table = data.get("models", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: 'models' must be a table of [models.NAME] entries: fix the file")
    found: dict[str, str] = {}
    for name, entry in table.items():
        path = entry.get("path") if isinstance(entry, dict) else None
        if (
            not isinstance(path, str)
            or not path
            or path.startswith("/")
            or "\\" in path
            or any(p in ("", ".", "..") for p in path.split("/"))
        ):
            raise ConfigError(
                f"{where}: [models.{name}] needs path = a relative path inside the repository: "
                f"fix it with 'mvc add PATH --name {name}'"
            )
        found[name] = path
    return found


def stages(data: dict[str, Any], where: str = CONFIG) -> tuple[list[str], dict[str, list[str]]]:
    """``[stages]``: (order, {stage: require rules}), both empty when not configured."""
    table = data.get("stages", {})
    bad = f'{where}: [stages] takes order = ["dev", ...] and [stages.NAME] require = ["key >= value", ...]'
    if not isinstance(table, dict):
        raise ConfigError(f"{bad}: fix the file")
    order = table.get("order", [])
    if not isinstance(order, list) or not all(isinstance(s, str) for s in order) or len(set(order)) != len(order):
        raise ConfigError(f"{bad}; order must list distinct stage names: fix the file")
    gates = {}
    for stage, entry in table.items():
        if stage == "order":
            continue
        require = entry.get("require", []) if isinstance(entry, dict) else None
        if not isinstance(require, list) or not all(isinstance(r, str) for r in require):
            raise ConfigError(f"{bad}; [stages.{stage}] require must be a list of strings: fix the file")
        gates[stage] = require
    return order, gates


REMOTE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Remote keys mvc itself reads; any other key is handed to the fsspec filesystem (s3fs, gcsfs, …).
REMOTE_KEYS = {
    "url": str,
    "endpoint_url": str,
    "profile": str,
    "region": str,
    "jobs": int,
    "packs": bool,
    "chunks": bool,
}


def valid_remote_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and name[0] not in "-_" and REMOTE_NAME_CHARS.issuperset(name)


def remotes(data: dict[str, Any], where: str = CONFIG, *, need_url: bool = True) -> dict[str, dict[str, Any]]:
    """``[remote.NAME]`` tables: {name: {key: value}}; each needs ``url`` (in the merged config: the local
    file may only add keys to a remote of the shared one). ``core.remote`` names the default."""
    table = data.get("remote", {})
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(f"{where}: 'remote' must be a table of [remote.NAME] entries: fix the file")
    for name, entry in table.items():
        if not valid_remote_name(name):
            raise ConfigError(
                f"{where}: invalid remote name {str(name)[:40]!r}: use letters, digits, '-' and '_': fix the file"
            )
        if (need_url or "url" in entry) and (not isinstance(entry.get("url"), str) or not entry["url"]):
            raise ConfigError(
                f'{where}: [remote.{name}] needs url = "...": set it with '
                f"'mvc remote modify {name} url URL' or remove it with 'mvc remote remove {name}'"
            )
        for key in ("url", "endpoint_url", "profile", "region"):
            _check_text(entry, key, name, where)
        for key in ("config_kwargs", "client_kwargs"):
            if key in entry and not isinstance(entry[key], dict):
                raise ConfigError(
                    f"{where}: [remote.{name}] {key} must be a table ([remote.{name}.{key}]), "
                    f"not {type(entry[key]).__name__}: fix the file"
                )
        endpoint = entry.get("endpoint_url")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where}: [remote.{name}] endpoint_url must start with http:// or https://: "
                f"fix it with 'mvc remote modify {name} endpoint_url URL'"
            )
        region = entry.get("region")
        if region is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", region):  # (botocore's own rule)
            fix = f"lowercase letters, digits and '-': fix it with 'mvc remote modify {name} region eu-west-1'"
            raise ConfigError(f"{where}: [remote.{name}] region {region!r} is not a region's name ({fix})")
        jobs = entry.get("jobs")
        if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
            raise ConfigError(
                f"{where}: [remote.{name}] jobs must be a positive integer: "
                f"fix it with 'mvc remote modify {name} jobs 8'"
            )
        for key in ("packs", "chunks"):
            if not isinstance(entry.get(key, True), bool):
                raise ConfigError(
                    f"{where}: [remote.{name}] {key} must be true or false: "
                    f"fix it with 'mvc remote modify {name} {key} false'"
                )
    return table


def _check_text(entry: dict[str, Any], key: str, name: str, where: str) -> None:
    """A remote's text value: a string without control characters, and no credentials in a URL of the
    committed config (they belong in config.local.toml or the environment). Never echoes the value."""
    if key not in entry:
        return
    value = entry[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"{where}: [remote.{name}] {key} must be a non-empty string, not {type(value).__name__}: "
            f"fix it with 'mvc remote modify {name} {key} VALUE'"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(
            f"{where}: [remote.{name}] {key} holds a control character (NUL, newline, …): "
            f"fix it with 'mvc remote modify {name} {key} VALUE'"
        )
    if where == CONFIG and key in ("url", "endpoint_url") and has_credentials(value):
        raise ConfigError(
            f"{where}: [remote.{name}] {key} holds credentials (user:password@), and this file is committed: "
            f"move them to .mvc/config.local.toml ('mvc remote modify {name} {key} URL --local') "
            "or to the environment (AWS_* variables, a profile)"
        )


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# -- the typed settings -------------------------------------------------------------------------------
# Every key `mvc config` sets: what it accepts, an example, how text typed on the command line becomes its
# TOML value (None: refused, before anything is written) and whether a value read from a file is valid
# (checked by Config.get, so a hand-edited or committed bad value is one line naming the key and the fix).
class Setting:
    __slots__ = ("accepts", "example", "parse", "valid")

    def __init__(self, accepts: str, example: str, parse: Callable[[str], Any], valid: Callable[[Any], bool]):
        self.accepts, self.example, self.parse, self.valid = accepts, example, parse, valid


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)\s*", re.IGNORECASE)
SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def size_bytes(value: Any) -> int | None:
    """The bytes a size stands for: an integer, or a string like ``"10MB"`` (powers of 1000) or ``"512KiB"``
    (of 1024); None for anything else (a negative or endless number, another unit, another type)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    m = _SIZE.fullmatch(value) if isinstance(value, str) else None
    unit = SIZE_UNITS.get(m.group(2).lower()) if m is not None else None
    if m is None or unit is None:
        return None
    n = float(m.group(1)) * unit
    return int(n) if n < float("inf") else None  # a float of 400 digits is endless


def has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _items(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _path(text: str) -> str | None:
    return text if text and not has_control(text) else None


def _links(text: str) -> list[str] | None:
    types = _items(text)
    return types if types and all(t in LINK_TYPES for t in types) else None


def _links_ok(value: Any) -> bool:
    types = [value] if isinstance(value, str) else value
    return isinstance(types, list) and bool(types) and all(isinstance(t, str) and t in LINK_TYPES for t in types)


def _bool(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.strip().lower())


def _name(text: str) -> str | None:
    return text.strip() if valid_remote_name(text.strip()) else None


def _strings(text: str) -> list[str] | None:
    return None if has_control(text) else _items(text)


def _strings_ok(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) and x for x in value)


SETTINGS: dict[str, Setting] = {
    "cache.dir": Setting(
        "a non-empty path with no control characters",
        "/mnt/shared/mvc-cache",
        _path,
        lambda v: isinstance(v, str) and _path(v) is not None,
    ),
    "cache.type": Setting(f"a comma-separated list from {', '.join(LINK_TYPES)}", "reflink,copy", _links, _links_ok),
    "core.fsync": Setting("true or false", "false", _bool, lambda v: isinstance(v, bool)),
    "core.auto_record": Setting("true or false", "true", _bool, lambda v: isinstance(v, bool)),
    "core.remote": Setting("a remote's name (letters, digits, '-' and '_')", "origin", _name, valid_remote_name),
    "hooks.max_size": Setting(
        "a size like 10MB or 512KiB (0: no limit)",
        "10MB",
        lambda t: t.strip() if size_bytes(t) is not None else None,
        lambda v: size_bytes(v) is not None,
    ),
    "hooks.extensions": Setting("a comma-separated list of file extensions", ".pt,.onnx", _strings, _strings_ok),
    "hooks.allow": Setting("a comma-separated list of glob patterns", '"tests/data/*"', _strings, _strings_ok),
}


def _shown(value: Any) -> str:
    """A value for a message: short, its control characters escaped, however deep or long it is."""
    return reprlib.repr(value)


def parse_value(key: str, text: str) -> Any:
    """The TOML value of setting ``key`` (one of SETTINGS) typed as ``text`` on the command line; ConfigError
    naming the key, what it takes and an example when it is not valid."""
    setting = SETTINGS[key]
    value = setting.parse(text)
    if value is None:
        raise ConfigError(
            f"{key} takes {setting.accepts}, not {_shown(text)}: e.g. 'mvc config {key} {setting.example}'"
        )
    return value


def check_value(key: str, value: Any, where: str, local: bool = False) -> None:
    """ConfigError naming the key, the file and the fix when ``value``, read from ``where``, is not valid."""
    setting = SETTINGS[key]
    if not setting.valid(value):
        flag = " --local" if local else ""
        raise ConfigError(
            f"{key} in {where} must be {setting.accepts}, not {_shown(value)}: fix it with "
            f"'mvc config {key} {setting.example}{flag}' or drop it with 'mvc config {key} --unset{flag}'"
        )


def _at(layer: dict[str, Any], parts: list[str]) -> Any:
    node: Any = layer
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    return node


class Config:
    def __init__(self, mvc_dir: str):
        self.mvc_dir = mvc_dir
        self.shared = read(os.path.join(mvc_dir, CONFIG))
        self.local = read(os.path.join(mvc_dir, LOCAL))
        self.data = merge(merge(DEFAULTS, self.shared), self.local)

    def sets(self, dotted: str) -> bool:
        """Whether the committed or the local file sets the key (else its value is the default)."""
        parts = dotted.split(".")
        return _at(self.shared, parts) is not None or _at(self.local, parts) is not None

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value in effect (the local file's, the committed one's, the default); a setting's (SETTINGS) is
        checked, and one that is not valid, or under a table that is not one, is a ConfigError naming the fix."""
        node: Any = self.data
        parts = dotted.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                if dotted in SETTINGS:
                    self._not_a_table(parts[:i])
                return default
            if part not in node:
                return default
            node = node[part]
        if dotted in SETTINGS:
            local = _at(self.local, parts) is not None
            check_value(dotted, node, f"{MVC_DIR}/{LOCAL}" if local else CONFIG_PATH, local)
        return node

    def _not_a_table(self, parts: list[str]) -> None:
        name = ".".join(parts)
        for layer, where in ((self.local, f"{MVC_DIR}/{LOCAL}"), (self.shared, CONFIG_PATH)):
            node = _at(layer, parts)
            if node is not None and not isinstance(node, dict):
                raise ConfigError(
                    f"{name} in {where} must be a table ([{name}]), not {_shown(node)}: "
                    f"make it a [{name}] table or remove it from the file"
                )

    def _setting(self, key: str) -> Any:
        value = self.get(key)
        if value is None:  # only when a file replaced its table by another (get names that)
            check_value(key, value, CONFIG_PATH)
        return value

    @property
    def cache_dir(self) -> str:
        d = self._setting("cache.dir")
        # relative paths are relative to .mvc/, where the default 'cache' lives
        return os.path.normpath(os.path.join(self.mvc_dir, os.path.expanduser(d)))

    @property
    def link_types(self) -> list[str]:
        t = self._setting("cache.type")
        types = [t] if isinstance(t, str) else list(t)
        warn_if_root_links(types)
        return types

    @property
    def fsync(self) -> bool:
        return bool(self._setting("core.fsync"))

    @property
    def auto_record(self) -> bool:
        return bool(self._setting("core.auto_record"))


def warn_if_root_links(types: list[str]) -> None:
    if ("hardlink" in types or "symlink" in types) and _is_root():
        _warn_root_links()


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


_warned: list[bool] = []


def _warn_root_links() -> None:
    """Once per process: linked workspace files are read-only, but not to root (docs/config.md)."""
    if not _warned:
        _warned.append(True)
        sys.stderr.write(
            "mvc: warning: cache.type links workspace files to the cache, and root can write a read-only file: a "
            "program running as root that writes a linked model in place corrupts its cached version; edit only "
            "after 'mvc unprotect PATH', run as another user, or set cache.type reflink,copy\n"
        )


def is_secret(key: str) -> bool:
    """Whether a remote's option (``client_kwargs.headers.X``) is a secret: a word of it (split at ".", "_", "-")
    begins with one of SECRET_WORDS, or a part is "auth" or "connection_string" (adlfs': AccountKey=)."""
    parts = key.lower().split(".")
    words = (w for part in parts for w in part.replace("-", "_").split("_"))
    return any(p in ("auth", "connection_string") for p in parts) or any(w.startswith(SECRET_WORDS) for w in words)


def masked(value: Any, key: str = "") -> Any:
    """value with every secret-looking key (at any depth) shown as ``***`` and URL credentials removed."""
    if is_secret(key) and value is not None:
        return "***"
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def write_value(path: str, dotted: str, value: Any) -> None:
    """Set (or, with value None, remove) a dotted key in one TOML file, atomically."""
    import tomli_w

    from mvc.storage.fileio import atomic_write
    from mvc.storage.lock import locked

    # read-modify-write under the lock, or two commands writing at once lose one's key
    with locked(os.path.join(os.path.dirname(path) or ".", LOCK), os.path.basename(path)):
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
