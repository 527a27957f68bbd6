"""A checkout stopped part way: by a damaged object, a full disk, a terminal's Ctrl-C. What the user had is named,
and every path is left with its pointer and its weights of one version."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ctrl_c_as_a_terminal_sends_it, git, make_file, repo_on_tmpfs

import mvc
from mvc.objects.odb import ODB

MiB = 1 << 20


def _corrupt(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


def test_a_forced_checkout_that_fails_half_way_names_what_it_kept(repo: Path, mvc_cli):
    """checkout --force stores a file of the user's it removes, then removes it; the line naming the object
    was printed only on success. Stopped after the removal, nothing named it, and a gc took it later."""
    for name in ("a.bin", "b.bin"):
        make_file(repo / "d" / name, 2 * MiB, seed=len(name) + ord(name[0]))
    mvc_cli("add", "d")
    git(repo, "commit", "-q", "-m", "d")
    notes = make_file(repo / "d" / "notes-new.bin", 1000, seed=9).read_bytes()  # the user's, in no version
    (repo / "d" / "b.bin").unlink()
    _corrupt(Path(ODB(str(repo / ".mvc" / "cache")).path(mvc.describe("d/b.bin")["oid"])))

    result = mvc_cli("checkout", "--force", "d", ok=False)
    assert result.exit_code != 0
    assert not (repo / "d" / "notes-new.bin").exists()  # removed before the damaged object stopped it
    said = [line for line in result.stderr.splitlines() if "kept the replaced content of d/notes-new.bin" in line]
    assert len(said) == 1, result.stderr
    oid = said[0].rsplit(" as ", 1)[1]
    assert Path(ODB(str(repo / ".mvc" / "cache")).path(oid)).read_bytes() == notes


def test_ctrl_c_while_checkout_rev_restores_a_pointer_leaves_one_version(repo: Path, tmp_path: Path):
    """A terminal's Ctrl-C reaches the whole process group: it stopped the 'git checkout REV -- P.mvc' that
    follows the weights, leaving REV's weights under the other version's pointer."""
    make_file(repo / "model.bin", 300_000, seed=1)
    mvc.add(["model.bin"])
    git(repo, "commit", "-q", "-m", "v1")
    make_file(repo / "model.bin", 300_000, seed=2)
    mvc.add(["model.bin"])
    git(repo, "commit", "-q", "-m", "v2")
    real = shutil.which("git")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mark = tmp_path / "in-checkout"
    (bin_dir / "git").write_text(
        "#!/bin/sh\n"
        f'for a; do if [ "$a" = checkout ]; then touch "{mark}"; sleep 3; break; fi; done\n'
        f'exec "{real}" "$@"\n'
    )
    (bin_dir / "git").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvc", "checkout", "--rev", "HEAD~1"],
        cwd=repo,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=ctrl_c_as_a_terminal_sends_it,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mark.exists(), proc.communicate()
    seen = mark.stat().st_mtime
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole group
    in_time = time.time() - seen < 2.5  # git's wrapper sleeps 3 s: the signal landed while it ran
    out, err = proc.communicate(timeout=60)
    # 130 as a rule; 0 where the signal came after the command ended: then the command ended as without it, and
    # the agreement below is what must hold (a Ctrl-C once lost on CI: the suite ran in the background, SIGINT
    # ignored, which the command inherited; ctrl_c_as_a_terminal_sends_it gives it the default back)
    assert (proc.returncode == 130 and "interrupted" in err) or proc.returncode == 0, (out, err, in_time)
    status = subprocess.run([sys.executable, "-m", "mvc", "status"], cwd=repo, capture_output=True, text=True)
    assert "modified" not in status.stdout, status.stdout
    assert mvc.describe("model.bin")["oid"] == mvc.describe("model.bin", rev="HEAD~1")["oid"]


def _checkout_back_leaving(fs: Path, repo: Path, room: int) -> subprocess.CompletedProcess:
    """`mvc checkout --rev HEAD~1 d`, in a process of its own, once a filler leaves ``room`` bytes free on fs."""
    free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
    (fs / "filler").write_bytes(b"\0" * (free - room))
    return subprocess.run(
        [sys.executable, "-m", "mvc", "checkout", "--rev", "HEAD~1", "d"], cwd=repo, capture_output=True, text=True
    )


def test_a_directory_checkout_its_disk_has_no_room_for_changes_nothing(tmp_path: Path, monkeypatch):
    """Files that grow between versions, on a disk with room for some of them: the checkout replaced four and
    failed at the fifth, leaving the directory at two versions under one pointer."""
    with repo_on_tmpfs(tmp_path, "96m", monkeypatch) as (fs, repo):
        for i in range(5):
            make_file(repo / "d" / f"f{i}", MiB, seed=i)
        mvc.add(["d"])
        git(repo, "commit", "-q", "-m", "v1")
        for i in range(5):
            make_file(repo / "d" / f"f{i}", 3 * MiB, seed=10 + i)
        mvc.add(["d"])
        git(repo, "commit", "-q", "-m", "v2")
        mvc.checkout(["d"], rev="HEAD~1")
        git(repo, "commit", "-q", "-m", "back to v1")
        before = {p.name: p.read_bytes() for p in (repo / "d").iterdir()}
        result = _checkout_back_leaving(fs, repo, 6 * MiB)  # room for two of the new files, not five
        assert result.returncode != 0 and "not enough disk space to check out d" in result.stderr, result.stderr
        assert "nothing was changed" in result.stderr
        assert {p.name: p.read_bytes() for p in (repo / "d").iterdir()} == before
        (fs / "filler").unlink()
        mvc.checkout(["d"], rev="HEAD~1")
        assert all(p.stat().st_size == 3 * MiB for p in (repo / "d").iterdir())
        git(repo, "commit", "-q", "-m", "v2 again")
        # files that shrink fit where all of them at once would not: each replaces a larger one
        result = _checkout_back_leaving(fs, repo, 2 * MiB)
        assert result.returncode == 0, result.stderr
        assert all(p.stat().st_size == MiB for p in (repo / "d").iterdir())
        # renamed files: what the removals free first is room for the new names
        (fs / "filler").unlink()
        for i in range(5):
            (repo / "d" / f"f{i}").unlink()
            make_file(repo / "d" / f"g{i}", 3 * MiB, seed=20 + i)
        mvc.add(["d"])
        git(repo, "commit", "-q", "-m", "v3: other names")
        mvc.checkout(["d"], rev="HEAD~1")  # "v2 again": f0..f4 of 3 MiB
        git(repo, "commit", "-q", "-m", "v2 once more")
        result = _checkout_back_leaving(fs, repo, 4 * MiB)
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in (repo / "d").iterdir()) == [f"g{i}" for i in range(5)]
