import os

from remote_gc_suite import RemoteGcSuite
from remote_suite import LocalRemote, RemoteSuite, drop_cache, make_models, oid_of, one_error_line, rel_of


class TestLocal(RemoteSuite, RemoteGcSuite, LocalRemote):
    def test_a_fifo_in_place_of_an_object_is_refused_not_waited_on(self, repo, mvc_cli, origin):
        """A FIFO planted on a shared directory remote where an object goes: a read would wait for a writer for
        ever; it is refused as damage, at once."""
        make_models(repo)
        mvc_cli("add", "model.bin")
        mvc_cli("push")
        rel = rel_of(oid_of((repo / "model.bin").read_bytes()))
        (origin.root / rel).unlink()
        os.mkfifo(origin.root / rel)
        drop_cache(repo)
        (repo / "model.bin").unlink()
        line = one_error_line(mvc_cli("pull", ok=False))
        assert "not a regular file" in line and rel in line
        assert not (repo / "model.bin").exists()
