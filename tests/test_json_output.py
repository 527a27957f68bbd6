"""Every read command's ``--json`` is strict JSON whatever a pointer's ``[meta]`` holds: TOML's dates and times
(what ``--meta-file`` of a TOML or YAML file gives) as ISO-8601 strings, NaN and the infinities (a diverged
run's metrics) as null."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git


def strict(text: str):
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_dates_and_nan_in_meta_come_out_as_strict_json(repo: Path, mvc_cli, tmp_path: Path):
    record = tmp_path / "record.toml"
    record.write_text("trained_on = 2024-06-01\nat = 10:30:00\nwhen = 2024-06-01T10:30:00\n[metrics]\nloss = nan\n")
    (repo / "m.bin").write_bytes(b"weights one")
    mvc_cli("add", "m.bin", "--name", "m", "--meta-file", str(record), "-q")
    git(repo, "commit", "-q", "-m", "one")
    mvc_cli("register", "m", "-q")
    (repo / "m.bin").write_bytes(b"weights two")
    mvc_cli("add", "m.bin", "--meta", "metrics.loss=inf", "--meta", "trained_on=later", "-q")
    for args in (
        ("ls",),
        ("ls", "--rev", "HEAD"),
        ("status",),
        ("show", "m.bin"),
        ("show", "m@v0.0.1"),
        ("log", "m"),
        ("diff",),
        ("registry", "m"),
        ("metrics", "m"),
    ):
        out = strict(mvc_cli(*args, "--json").stdout)
        assert out is not None, args
    shown = strict(mvc_cli("show", "m@v0.0.1", "--json").stdout)
    assert shown["meta"]["trained_on"] == "2024-06-01" and shown["meta"]["at"] == "10:30:00"
    assert shown["meta"]["metrics"]["loss"] is None
