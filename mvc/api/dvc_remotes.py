"""DVC's remotes for ``mvc import-dvc``: made mvc remotes (their URL plus ``/mvc``, credentials only in the local
config), and the remote ``--push`` names checked before the import writes anything."""

from __future__ import annotations

import os

from mvc.format import config as cfgfmt
from mvc.format.config import CONFIG
from mvc.repo import foreign_dvc
from mvc.repo.repository import Repo

SECRETS = {"access_key_id", "secret_access_key", "session_token", "password", "key", "secret", "token"}
REMOTE_SUFFIX = "mvc"  # mvc's objects go below the DVC remote's URL, in a directory of their own


def check_push_remote(repo: Repo, dvc: foreign_dvc.Dvc | None, remote: str | None) -> None:
    """Refuse the remote --push names (or the lack of a default one) before the import writes anything: an mvc
    remote, or a DVC remote the import makes one of (as DVC's default makes mvc's)."""
    from mvc.repo.remotes import default_remote, remote_table, spec

    dvcs = dvc.remotes if dvc is not None else {}
    if remote is not None and remote in dvcs and remote not in remote_table(repo):
        return
    if remote is None and dvc is not None and dvc.default in dvcs and default_remote(repo) is None:
        return
    spec(repo, remote)


def move(repo: Repo, dvc: foreign_dvc.Dvc) -> list[str]:
    """DVC's remotes as mvc remotes (their URL plus /mvc: mvc's layout apart from DVC's); credentials, wherever
    DVC kept them, only in .mvc/config.local.toml, and so a whole remote DVC kept in .dvc/config.local (this
    machine's: a path of its own, a host): committed nowhere. A name mvc uses already is left alone."""
    from mvc.repo.remotes import normalize_url, remote_table, validate

    have = remote_table(repo)
    shared_path = os.path.join(repo.mvc_dir, CONFIG)
    local_path = os.path.join(repo.mvc_dir, cfgfmt.LOCAL)
    added = []
    for name, entry in sorted(dvc.remotes.items()):
        if name in have or not cfgfmt.valid_remote_name(name):
            continue
        url = entry["url"]
        if "://" not in url and not os.path.isabs(url):  # DVC reads a relative path from .dvc/
            url = os.path.normpath(os.path.join(dvc.dir, url))
        url = normalize_url(repo, url.rstrip("/") + "/" + REMOTE_SUFFIX)
        # this machine's alone: a password in its URL, or a remote DVC's committed config does not name
        creds = cfgfmt.has_credentials(url) or "url" not in dvc.shared.get(f"remote {name}", {})
        cfgfmt.write_value(local_path if creds else shared_path, f"remote.{name}.url", url)
        for key, value in sorted(entry.items()):
            if key in foreign_dvc.SHARED_KEYS:
                cfgfmt.write_value(
                    shared_path if not creds else local_path, f"remote.{name}.{foreign_dvc.SHARED_KEYS[key]}", value
                )
            elif key in SECRETS or cfgfmt.is_secret(key):
                cfgfmt.write_value(local_path, f"remote.{name}.{key}", value)
        added.append(name)
    if dvc.default in added and repo.config.get("core.remote") is None:
        local, shared = (c.get("core", {}).get("remote") for c in (dvc.local, dvc.shared))
        mine = local == dvc.default and shared != dvc.default  # DVC's default on this machine only
        cfgfmt.write_value(local_path if mine else shared_path, "core.remote", dvc.default)
    if added:
        validate(repo)
    return added
