from remote_gc_suite import RemoteGcSuite
from remote_suite import MemoryRemote, RemoteSuite


class TestMemory(RemoteSuite, RemoteGcSuite, MemoryRemote):
    """The remote suite on the generic fsspec store (FsspecStore), on memory://."""
