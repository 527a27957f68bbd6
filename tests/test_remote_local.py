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


def test_a_pointer_whose_size_cannot_fit_is_refused_before_a_byte_is_fetched(repo, mvc_cli, tmp_path):
    """A pointer claiming more bytes than the disk has free (a hostile commit's, or a model too big for this
    machine): the fetch says so at once, and nothing is written."""
    from conftest import git, make_file

    from mvc.format import pointer as ptrfmt

    mvc_cli("remote", "add", "origin", str(tmp_path / "store"))
    make_file(repo / "m.bin", 1000)
    mvc_cli("add", "m.bin")
    mvc_cli("push")
    p = ptrfmt.loads((repo / "m.bin.mvc").read_bytes())
    (repo / "m.bin.mvc").write_bytes(ptrfmt.dumps(ptrfmt.Pointer("file", p.oid, 1 << 62)))
    git(repo, "commit", "-qam", "a pointer that lies about its size")
    drop_cache(repo)
    (repo / "m.bin").unlink()
    line = one_error_line(mvc_cli("pull", ok=False))
    assert "not enough disk space" in line
    assert not (repo / "m.bin").exists()
