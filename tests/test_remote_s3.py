from remote_suite import RemoteSuite, S3Remote


class TestS3(RemoteSuite, S3Remote):
    pass
