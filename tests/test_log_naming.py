"""mvc log of a model named after its first versions, of paths named or not, and of what mvc never knew."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git, make_file, run_mvc

import mvc


def commit(repo: Path, path: str, seed: int, msg: str, *args: str) -> str:
    """Write new data at path, mvc add it (with args), commit; returns the commit id."""
    make_file(repo / path, 100 + seed, seed=seed)
    mvc_add(repo, path, *args)
    git(repo, "commit", "-q", "-m", msg)
    return head(repo)


def mvc_add(repo: Path, *args: str) -> None:
    run_mvc("add", "-q", *args, cwd=repo, check=True)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def lineage(target: str, **kw) -> list[tuple[str, str, str]]:
    return [(r["commit"], r["change"], r["path"]) for r in mvc.log(target, **kw)]


def git_log(repo: Path, pointer: str) -> list[str]:
    return git(repo, "log", "--format=%H", "--", pointer).split()


def test_naming_a_model_keeps_its_earlier_history(repo, mvc_cli):
    """QA's case: two versions, then 'mvc add --name' on an unchanged file. The log by path and by name both
    show the two commits that changed the pointer, as git log of the pointer does; the naming commit changed
    no pointer, so it is no entry."""
    c1 = commit(repo, "m.bin", 1, "first")
    c2 = commit(repo, "m.bin", 2, "retrain")
    mvc_add(repo, "m.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "name it")
    expected = [(c2, "modified", "m.bin"), (c1, "added", "m.bin")]
    assert lineage("m.bin") == lineage("churn") == expected
    assert [c for c, _, _ in expected] == git_log(repo, "m.bin.mvc")
    assert mvc.log("churn")[1]["names"] == ["churn"]
    assert [r["names"] for r in mvc.log("m.bin")] == [[], []]  # the names mapping it then: none yet
    assert lineage("churn", rev=c2) == expected  # a revision from before the name: the path it names now
    for target in ("m.bin", "churn", "m.bin.mvc"):
        text = mvc_cli("log", target).stdout
        assert text.count("\ncommit ") + text.startswith("commit ") == 2, text
        assert "added m.bin" in text and "modified m.bin" in text


def test_a_version_registered_on_the_naming_commit_is_shown_with_the_retrain(repo, mvc_cli):
    """The quickstart's shape: name, register, assign; the log shows the first version and the retrain, the
    version named under the retrain it holds."""
    c1 = commit(repo, "m.bin", 1, "first")
    c2 = commit(repo, "m.bin", 2, "retrain")
    mvc_add(repo, "m.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "name it")
    named = head(repo)
    mvc_cli("register", "churn", "-q")
    mvc_cli("assign", "churn", "prod", "-q")
    rows = mvc.log("churn")
    assert [(r["commit"], r["change"]) for r in rows] == [(c2, "modified"), (c1, "added")]
    assert rows[0]["also"] == [{"commit": named, "versions": ["v0.0.1"], "stages": ["prod"]}]
    assert mvc.log("m.bin")[0]["also"] == rows[0]["also"]
    assert f"also v0.0.1, #prod at {named[:10]}" in mvc_cli("log", "churn").stdout


def test_a_name_follows_its_path_through_moves_before_and_after_it_was_named(repo):
    c1 = commit(repo, "a.bin", 1, "add")
    run_mvc("mv", "a.bin", "d/a.bin", cwd=repo, check=True)
    git(repo, "commit", "-q", "-m", "move, unnamed")
    c2 = head(repo)
    c3 = commit(repo, "d/a.bin", 3, "retrain and name", "--name", "churn")
    run_mvc("mv", "d/a.bin", "e/a.bin", cwd=repo, check=True)
    git(repo, "commit", "-q", "-m", "move, named")
    c4 = head(repo)
    expected = [(c4, "moved", "e/a.bin"), (c3, "modified", "d/a.bin"), (c2, "moved", "d/a.bin"), (c1, "added", "a.bin")]
    assert lineage("churn") == lineage("e/a.bin") == expected
    assert lineage("d/a.bin") == [(c4, "removed", "d/a.bin"), *expected[1:]]  # a path no longer tracked
    assert lineage("a.bin") == [(c2, "removed", "a.bin"), (c1, "added", "a.bin")]


def test_a_path_is_its_own_history_when_a_name_moves_to_it(repo):
    """'mvc add o.bin --name churn' points the name at another file: the name's log goes on with o.bin, and
    each path's log stays that path's (o.bin's earlier versions included)."""
    m1 = commit(repo, "m.bin", 1, "m1")
    o1 = commit(repo, "o.bin", 2, "o1")
    m2 = commit(repo, "m.bin", 3, "m2, named", "--name", "churn")
    o2 = commit(repo, "o.bin", 4, "o2")
    mvc_add(repo, "o.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "churn is o.bin now")
    moved = head(repo)
    assert lineage("churn") == [(moved, "moved", "o.bin"), (m2, "modified", "m.bin"), (m1, "added", "m.bin")]
    assert lineage("o.bin") == [(o2, "modified", "o.bin"), (o1, "added", "o.bin")]
    assert lineage("m.bin") == [(m2, "modified", "m.bin"), (m1, "added", "m.bin")]
    assert [c for c, _, _ in lineage("o.bin")] == git_log(repo, "o.bin.mvc")


def test_a_name_given_on_a_branch_then_merged(repo):
    c1 = commit(repo, "m.bin", 1, "first")
    git(repo, "checkout", "-q", "-b", "side")
    mvc_add(repo, "m.bin", "--name", "churn")
    git(repo, "commit", "-q", "-m", "name it on a branch")
    git(repo, "checkout", "-q", "-")
    c2 = commit(repo, "m.bin", 2, "retrain on main")
    git(repo, "merge", "-q", "--no-edit", "side")
    assert lineage("churn") == lineage("m.bin") == [(c2, "modified", "m.bin"), (c1, "added", "m.bin")]


def test_a_name_only_old_commits_know(repo):
    c1 = commit(repo, "m.bin", 1, "first", "--name", "old")
    config = repo / ".mvc" / "config.toml"
    text = config.read_text()
    config.write_text(text[: text.index("[models.old]")])
    git(repo, "commit", "-q", "-am", "forget the name")
    dropped = head(repo)
    assert lineage("old") == [(dropped, "removed", "m.bin"), (c1, "added", "m.bin")]
    assert lineage("m.bin") == [(c1, "added", "m.bin")]  # the pointer is still there


def test_what_mvc_never_knew_is_an_error(repo, mvc_cli, mvc_error):
    make_file(repo / "README.md", 10)
    for target in ("nosuch", "README.md", "nothing/here.bin"):
        mvc_error("log", target, words=(target, "neither a model name nor a tracked path", "mvc ls", "no models"))
    assert mvc_error("log", "").startswith("error: '' is neither a model name")  # as show says it: quoted
    commit(repo, "m.bin", 1, "first", "--name", "churn")
    commit(repo, "f.bin", 2, "fraud", "--name", "fraud")
    line = mvc_error("log", "nosuch", words=("(models: churn, fraud)", "'mvc ls'"))
    assert line.startswith("error: nosuch is neither")
    assert mvc_cli("log", "churn", "--rev", "HEAD~2").stdout == "no commit changed churn\n"  # known, not there yet
    p = run_mvc("log", "nosuch", cwd=repo)  # as a shell sees it
    assert p.returncode == 1 and p.stdout == "" and len(p.stderr.splitlines()) == 1


def test_tracked_but_not_committed_yet_is_no_error(repo, mvc_cli):
    make_file(repo / "n.bin", 10)
    mvc_add(repo, "n.bin")
    r = mvc_cli("log", "n.bin")
    assert r.exit_code == 0 and r.stdout == "no commit changed n.bin\n"
    mvc_add(repo, "n.bin", "--name", "fresh")
    assert mvc_cli("log", "fresh").stdout == "no commit changed fresh\n"
    assert json.loads(mvc_cli("log", "fresh", "--json").stdout) == []
    git(repo, "commit", "-q", "-m", "n")
    assert lineage("fresh") == [(head(repo), "added", "n.bin")]


def test_a_shallow_clone_says_where_its_history_is_cut(repo, tmp_path: Path, mvc_cli):
    """In a shallow clone the oldest commit it holds shows the model as added, having no parent to compare with:
    when the oldest entry is at that boundary the log says the lineage may go further back, and how to fetch it."""
    git(repo, "commit", "-q", "--allow-empty", "-m", "before the model")
    c1 = commit(repo, "m.bin", 1, "first")
    c2 = commit(repo, "m.bin", 2, "retrain")
    c3 = commit(repo, "m.bin", 3, "retrain again")
    assert all("history_cut" not in r for r in mvc.log("m.bin"))  # a full clone: the lineage is whole

    cut = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "2", repo.as_uri(), str(cut))
    rows = json.loads(run_mvc("log", "m.bin", "--json", cwd=cut, check=True).stdout)
    assert [(r["commit"], r["change"]) for r in rows] == [(c3, "modified"), (c2, "added")]
    assert rows[-1]["history_cut"] is True and "history_cut" not in rows[0]
    text = run_mvc("log", "m.bin", cwd=cut, check=True).stdout
    assert text.rstrip().endswith("'git fetch --unshallow' fetches the full history)") and text.count("unshallow") == 1

    deeper = tmp_path / "deeper"  # cut before the model's first commit: its "added" is the truth, said plainly
    git(tmp_path, "clone", "-q", "--depth", "4", repo.as_uri(), str(deeper))
    rows = json.loads(run_mvc("log", "m.bin", "--json", cwd=deeper, check=True).stdout)
    assert [r["commit"] for r in rows] == [c3, c2, c1] and all("history_cut" not in r for r in rows)
    assert "unshallow" not in run_mvc("log", "m.bin", cwd=deeper, check=True).stdout
