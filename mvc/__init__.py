"""mvc, model version control: version model weights next to git.

The public API is imported lazily so that ``import mvc`` and the CLI start fast::

    import mvc
    mvc.add(["model.safetensors"], meta={"accuracy": 0.93})
    mvc.status()
    mvc.get("model.safetensors", "/tmp/model-v1.safetensors", rev="v1")
    model = mvc.load("churn#prod", repo="git@github.com:acme/models.git", trust=True)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.4.0"

_API = {
    "init": "mvc.api.workspace",
    "import_dvc": "mvc.api.import_dvc",
    "import_lfs": "mvc.api.import_lfs",
    "gc": "mvc.api.gc",
    "verify": "mvc.api.verify",
    "registry_check": "mvc.api.verify",
    "add": "mvc.api.workspace",
    "status": "mvc.api.listing",
    "checkout": "mvc.api.checkout",
    "get": "mvc.api.read",
    "open": "mvc.api.read",
    "read_bytes": "mvc.api.read",
    "describe": "mvc.api.read",
    "show": "mvc.api.show",
    "mv": "mvc.api.move",
    "materialize": "mvc.api.read",
    "load": "mvc.api.frameworks",
    "save": "mvc.api.frameworks",
    "run": "mvc.api.training",
    "ls": "mvc.api.listing",
    "unprotect": "mvc.api.untrack",
    "remove": "mvc.api.untrack",
    "push": "mvc.api.sync",
    "fetch": "mvc.api.sync",
    "pull": "mvc.api.sync",
    "install_hooks": "mvc.api.hooks",
    "uninstall_hooks": "mvc.api.hooks",
    "Repo": "mvc.repo.repository",
    "register": "mvc.api.registry",
    "assign": "mvc.api.registry",
    "deprecate": "mvc.api.registry",
    "registry": "mvc.api.registry",
    "log": "mvc.api.lineage",
    "diff": "mvc.api.lineage",
    "diff_models": "mvc.api.tensordiff",
    "MvcError": "mvc.errors",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'mvc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
