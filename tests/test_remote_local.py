from remote_suite import LocalRemote, RemoteSuite


class TestLocal(RemoteSuite, LocalRemote):
    pass
