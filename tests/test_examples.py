"""The examples run green: examples/serve_sklearn against the session's moto server."""

import subprocess
import sys

from conftest import ROOT


def test_serve_sklearn(s3_endpoint, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "serve_sklearn" / "run.py"), "--endpoint", s3_endpoint],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "same predictions" in proc.stdout
