from remote_suite import MemoryRemote, RemoteSuite


class TestMemory(RemoteSuite, MemoryRemote):
    """The remote suite on the generic fsspec store (FsspecStore), on memory://."""
