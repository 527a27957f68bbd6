"""What read commands print, whatever a collaborator's commit holds: ``--json`` is strict JSON (TOML's dates and
times, what ``--meta-file`` of a TOML or YAML file gives, as ISO-8601 strings; NaN and the infinities, a diverged
run's metrics, as null), and text never passes a terminal escape or a bidi control through."""

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


def test_no_terminal_escape_reaches_the_terminal(repo: Path, mvc_cli):
    """An escape sequence (one that sets the terminal's title) and a right-to-left override in a commit message,
    a metadata value and a metric's name: log, diff, metrics and registry NAME print them escaped; booleans as
    TOML writes them."""
    evil = "ok\x1b]0;pwned\x07\u202eRED"
    (repo / "m.bin").write_bytes(b"weights one")
    mvc_cli("add", "m.bin", "--name", "m", "--meta", f"note={evil}", "--meta", f"metrics.auc{evil}=0.9", "-q")
    git(repo, "-c", f"user.name=Mallory {evil}", "commit", "-q", "-m", f"train {evil}")
    mvc_cli("register", "m", "-q")
    (repo / "m.bin").write_bytes(b"weights two")
    mvc_cli("add", "m.bin", "--meta", "flag=true", "-q")
    for args in (("log", "m"), ("diff",), ("diff", "HEAD~1", "HEAD"), ("metrics", "m"), ("registry", "m")):
        out = mvc_cli(*args).stdout
        assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out, (args, out)
    assert "\\x1b]0;pwned" in mvc_cli("log", "m").stdout
    assert "flag: (none) -> true" in mvc_cli("diff").stdout


def test_every_verb_takes_a_repository_path(repo: Path, tmp_path: Path, monkeypatch):
    """repo= as a path (as the read verbs take it) works for the work-tree verbs too, from anywhere."""
    import mvc

    (repo / "m.bin").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    mvc.add([str(repo / "m.bin")], repo=str(repo))
    assert [e["path"] for e in mvc.ls(repo=str(repo))] == ["m.bin"]
    assert mvc.status(repo=repo)[0]["workspace"] == "ok"
