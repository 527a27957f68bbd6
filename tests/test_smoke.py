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
