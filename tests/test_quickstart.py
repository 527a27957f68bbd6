"""The README's quickstart runs green with the installed mvc."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_quickstart_runs(tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(tmp_path))
    proc = subprocess.run(["bash", str(ROOT / "examples" / "quickstart.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "$ mvc checkout --rev" in proc.stdout
    assert "quickstart finished" in proc.stdout
