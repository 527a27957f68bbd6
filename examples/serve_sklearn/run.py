"""Run the example end to end on this machine: a bare git repository stands in for the git server, an S3
bucket (on the server at --endpoint, or a moto server started here) for the remote; train.py runs in a
clone, serve.py in a separate process with an empty HOME and only the git URL and the S3 credentials.

    python examples/serve_sklearn/run.py [--endpoint http://127.0.0.1:PORT]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BUCKET = "mvc-example-models"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", help="an S3 endpoint URL (default: start a moto server on 127.0.0.1)")
    args = ap.parse_args()
    server = None
    endpoint = args.endpoint
    if endpoint is None:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
    creds = {
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, **_boto_creds(creds))
        try:
            s3.create_bucket(Bucket=BUCKET)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        with tempfile.TemporaryDirectory(prefix="mvc-serve-example.") as work:
            return _run(work, endpoint, creds)
    finally:
        if server is not None:
            server.stop()


def _boto_creds(creds: dict) -> dict:
    return {"aws_access_key_id": creds["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": creds["AWS_SECRET_ACCESS_KEY"]}


def _run(work: str, endpoint: str, creds: dict) -> int:
    git_url = os.path.join(work, "models.git")  # the git server
    trainer_home = os.path.join(work, "trainer-home")
    os.makedirs(trainer_home)
    env = {
        **os.environ,
        **creds,
        "HOME": trainer_home,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.path.join(trainer_home, ".gitconfig"),
        "MVC_CACHE_DIR": os.path.join(trainer_home, ".cache", "mvc"),
    }

    def sh(*cmd: str, cwd: str = work) -> str:
        return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout

    sh("git", "config", "--global", "user.name", "Trainer")
    sh("git", "config", "--global", "user.email", "trainer@example.com")
    sh("git", "init", "-q", "--bare", "-b", "main", git_url)
    sh("git", "clone", "-q", git_url, "train")
    repo = os.path.join(work, "train")
    mvc = [sys.executable, "-m", "mvc"]
    sh(*mvc, "init", cwd=repo)
    sh(*mvc, "remote", "add", "s3", f"s3://{BUCKET}/price", "--default", cwd=repo)
    sh(*mvc, "remote", "modify", "s3", "endpoint_url", endpoint, cwd=repo)
    sh("git", "commit", "-q", "-m", "Set up mvc", cwd=repo)
    trained = json.loads(sh(sys.executable, os.path.join(HERE, "train.py"), cwd=repo))
    print(f"trained and registered price#prod: predictions {trained}")

    # the server: an empty HOME, no clone, nothing but the git URL and the credentials
    server_home = os.path.join(work, "server-home")
    os.makedirs(server_home)
    server_env = {
        "PATH": os.environ["PATH"],
        "HOME": server_home,
        "GIT_CONFIG_NOSYSTEM": "1",
        **creds,
    }
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "serve.py"), git_url],
        cwd=server_home,
        env=server_env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return 1
    served = json.loads(proc.stdout)
    print(f"the server loaded price#prod with no clone: predictions {served}")
    if served != trained:
        print("the server's predictions differ from the trainer's", file=sys.stderr)
        return 1
    print("serve example finished: same predictions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
