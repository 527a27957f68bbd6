from remote_gc_suite import RemoteGcSuite
from remote_suite import LocalRemote, RemoteSuite


class TestLocal(RemoteSuite, RemoteGcSuite, LocalRemote):
    pass
