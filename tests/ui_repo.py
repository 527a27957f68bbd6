"""A small real registry for the tests of ``mvc ui``: three models, a few versions each, stages with their
history (assign, unassign, deregister), records in the layout of issue 14 ([meta.metrics], [meta.params],
[meta.data], [meta.training], [meta.artifacts], [auto]) and hostile strings wherever the grammar lets them in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Each would run, or add an element, if a page wrote it unescaped. Model and stage names have a grammar that
# lets none of them in; git drops '<' and '>' from author and tagger names, so those get the other specials.
HOSTILE = {
    "meta": "<script>alert('meta')</script>",
    "attr": '"><img src=x onerror=alert("attr")>',
    "metric": "<img src=x onerror=alert('metric')>",
    "param": "</script><script>alert('param')</script>",
    "commit": "<script>alert('commit')</script> & more",
    "tag": "<b onmouseover=alert('tag')>registered</b>",
    "auto": "<svg onload=alert('auto')>",
    "tensor": "<iframe src=javascript:alert('tensor')>",
    "path": "models/<i>odd</i> & 'x'.bin",
}
AUTHOR = 'Eve & "O\'Hara" Jr'  # git keeps these (it trims quotes at the ends of a name)
STRINGS = list(HOSTILE.values())


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = dict(os.environ, **(env or {}))
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=full).stdout


def _record(root: Path, path: str, extra: dict[str, Any]) -> None:
    """Put extra into the pointer of path (nested tables as the record layout has them), as `mvc add` of the
    other developers' work will, and stage it."""
    import tomli_w

    pointer = root / (path + ".mvc")
    data = tomllib.loads(pointer.read_text())
    for key, value in extra.items():
        if key == "meta":
            data.setdefault("meta", {}).update(value)
        else:
            data[key] = value
    pointer.write_text(tomli_w.dumps(data))
    git(root, "add", "--", path + ".mvc")


def _version(root: Path, name: str, path: str, i: int, record: dict[str, Any], message: str) -> None:
    import mvc

    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(f"{name} weights {i}\n".encode() * (100 + i))
    mvc.add([path], name=name, meta=record.pop("flat", None))
    if record:
        _record(root, path, record)
    git(root, "commit", "-q", "-m", message, env={"GIT_AUTHOR_NAME": AUTHOR})


def build(root: Path) -> Path:
    """The registry in root (a new directory); the current directory is root meanwhile."""
    import mvc

    root.mkdir(parents=True)
    here = os.getcwd()
    os.chdir(root)
    try:
        git(root, "init", "-q")
        mvc.init(str(root))
        git(root, "commit", "-q", "-m", "mvc init")
        # churn: an old pointer without a record, then full records with hostile strings everywhere
        _version(root, "churn", "models/churn.bin", 0, {"flat": {"accuracy": 0.8}}, "first churn")
        mvc.register("churn", message=HOSTILE["tag"])
        for i, acc in enumerate((0.85, 0.91), start=1):
            record = {
                "meta": {
                    "note": HOSTILE["meta"],
                    "owner": HOSTILE["attr"],
                    "metrics": {"accuracy": acc, "f1": 0.5 + i / 10, HOSTILE["metric"]: i},
                    "params": {"lr": 0.01 / i, "optimizer": HOSTILE["param"], "layers": [64, 32]},
                    "data": {"train": {"path": "data/train.csv", "oid": "xxh128:" + "ab" * 16}},
                    "training": {"started": "2024-05-01T10:00:00+00:00", "ended": "2024-05-01T12:30:00+00:00"},
                    "artifacts": {"tokenizer": {"path": "tok.json", "oid": "xxh128:" + "cd" * 16, "size": 2048}},
                },
                "auto": {
                    "created": "2024-05-01T12:31:00+00:00",
                    "user": "eve",
                    "host": HOSTILE["auto"],
                    "mvc_version": "0.3.0",
                    "commit": "0" * 40,
                    "dirty": i == 2,
                    "model": {"format": "safetensors", "tensors": 2, "names": [HOSTILE["tensor"], "fc.bias"]},
                },
            }
            _version(root, "churn", "models/churn.bin", i, record, f"{HOSTILE['commit']} #{i}")
            mvc.register("churn")
        mvc.assign("churn", "dev", version="v0.0.1")
        mvc.assign("churn", "dev", version="v0.0.2", message=HOSTILE["tag"])
        mvc.assign("churn", "prod", version="v0.0.2")
        mvc.assign("churn", "dev", version="v0.0.3")
        mvc.deprecate("churn", "v0.0.2", "prod")
        # cv/resnet-50: a name with '/', metrics on every version
        for i in range(3):
            record = {"meta": {"metrics": {"top1": 0.7 + i / 20, "loss": 1.0 / (i + 1)}}}
            _version(root, "cv/resnet-50", "vision/resnet.bin", i, record, f"resnet {i}")
            mvc.register("cv/resnet-50")
        mvc.assign("cv/resnet-50", "staging", version="v0.0.3")
        mvc.deprecate("cv/resnet-50", "v0.0.1")
        # a model whose path has HTML in it, one version
        _version(root, "odd", HOSTILE["path"], 0, {"flat": {"comment": HOSTILE["meta"]}}, "odd model")
        _register_as(root, "odd", AUTHOR)
    finally:
        os.chdir(here)
    return root


def _register_as(root: Path, name: str, tagger: str) -> None:
    """Register with another tagger name (git takes it from the committer)."""
    import mvc

    saved = os.environ.get("GIT_COMMITTER_NAME")
    os.environ["GIT_COMMITTER_NAME"] = tagger
    try:
        mvc.register(name, message=HOSTILE["tag"])
    finally:
        if saved is None:
            del os.environ["GIT_COMMITTER_NAME"]
        else:
            os.environ["GIT_COMMITTER_NAME"] = saved


def build_site(root: Path, out: Path) -> Path:
    """The site of the registry in root, written to out by `mvc ui build`'s API."""
    from mvc.api import site

    here = os.getcwd()
    os.chdir(root)
    try:
        site.build(str(out))
    finally:
        os.chdir(here)
    return out
