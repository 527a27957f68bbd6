"""The README's quickstart runs green with the installed mvc."""

import os
import re
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
    # the version registered (and put in production) is the retrained model, not the first one the
    # quickstart went back to: that checkout's staged pointer is undone before the model is named
    first, retrained = re.findall(r"^added churn\.safetensors \(.*, ([0-9a-f]{12})\)$", proc.stdout, re.M)
    assert first != retrained
    log = proc.stdout.split("$ mvc log churn", 1)[1].split("\n$ ", 1)[0]
    assert f"churn.safetensors  8.0 MiB  {retrained}  accuracy=0.94" in log, log
    prod = proc.stdout.split("$ mvc get churn#prod", 1)[1].split("\n$ ", 1)[0]
    assert f"churn-prod.safetensors (8.0 MiB, {retrained})" in prod, prod
