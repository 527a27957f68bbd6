from conftest import git, make_file


def test_add_commit_checkout_roundtrip(repo, mvc_cli):
    model = make_file(repo / "model.bin", 1000, seed=1)
    mvc_cli("add", "model.bin")
    git(repo, "commit", "-q", "-m", "v1")
    v1 = model.read_bytes()
    make_file(model, 2000, seed=2)
    mvc_cli("add", "model.bin")
    git(repo, "commit", "-q", "-m", "v2")
    mvc_cli("checkout", "--rev", "HEAD~1")
    assert model.read_bytes() == v1


def test_s3_server_resets(s3_endpoint):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="bucket")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["bucket"]


def test_the_command_line_keeps_openblas_to_one_thread_unless_told_otherwise():
    """numpy's OpenBLAS would start a spinning thread per core in every delta-reading command; mvc's CLI asks for
    one (a user's own setting wins), and importing mvc as a library changes nothing."""
    import os
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "import mvc.cli\n"
        "before = os.environ.get('OPENBLAS_NUM_THREADS')\n"
        "sys.argv = ['mvc', '--version']\n"
        "try:\n    mvc.cli.main()\nexcept SystemExit:\n    pass\n"
        "print(before, os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert got.stdout.split()[-2:] == ["None", "1"]
    got = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "OPENBLAS_NUM_THREADS": "3"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert got.stdout.split()[-2:] == ["3", "3"]
