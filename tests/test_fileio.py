"""Writes of many buffers into a file: every byte lands where it should, a bounded amount per system call."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvc.storage import copying, fileio


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12), st.integers(0, 50), st.integers(1, 64))
def test_buffers_are_written_whole_in_calls_of_at_most_write_max(tmp_path_factory, buffers, offset, most):
    """pwritev_all and write_all hand the kernel at most WRITE_MAX bytes a call (larger writes fill the page
    cache with large folios, whose allocation may stall: docs/benchmarks.md), and write everything."""
    path = tmp_path_factory.mktemp("w") / "f"
    sizes: list[int] = []
    real_pwritev, real_write = os.pwritev, os.write

    def pwritev(fd, views, at):
        sizes.append(sum(len(v) for v in views))
        return real_pwritev(fd, views, at)

    def write(fd, data):
        sizes.append(len(data))
        return real_write(fd, data)

    mp = pytest.MonkeyPatch()  # (hypothesis runs the body many times: not the function-scoped fixture)
    try:
        mp.setattr(fileio, "WRITE_MAX", most)
        mp.setattr(os, "pwritev", pwritev)
        mp.setattr(os, "write", write)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fileio.pwritev_all(fd, buffers, offset)
            os.lseek(fd, 0, os.SEEK_END)
            fileio.write_all(fd, b"".join(buffers))
        finally:
            os.close(fd)
    finally:
        mp.undo()
    joined = b"".join(buffers)
    assert path.read_bytes() == b"\0" * (offset if joined else 0) + joined + joined
    assert all(0 < n <= most for n in sizes)


@pytest.mark.parametrize("when", [1, 2, 3])
def test_a_copy_is_named_by_its_own_bytes_when_the_source_changes_meanwhile(tmp_path, monkeypatch, when):
    """A source written through a shared mapping while it is copied (its mtime need not move): the digest is the
    copy's, so no object can hold bytes other than those its name says."""
    import mmap

    import xxhash

    size = fileio.SMALL + 3 * fileio.MAP_WINDOW + 12345
    src_path, dst_path = tmp_path / "src", tmp_path / "dst"
    src_path.write_bytes(os.urandom(size))
    real = fileio.copy_into
    calls = 0

    def copy_into(src, dst, start, n, at):
        nonlocal calls
        calls += 1
        if calls == when:  # a writer changes bytes already copied, and bytes not copied yet
            with open(src_path, "r+b") as f, mmap.mmap(f.fileno(), size) as m:
                m[0:4096] = b"\xaa" * 4096
                m[size - 4096 : size] = b"\xbb" * 4096
        return real(src, dst, start, n, at)

    monkeypatch.setattr(fileio, "copy_into", copy_into)
    src = os.open(src_path, os.O_RDONLY)
    dst = os.open(dst_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        digest = copying.copy_hash_fd(src, dst, size)
    finally:
        os.close(src)
        os.close(dst)
    assert calls > 1 and digest == xxhash.xxh3_128_hexdigest(dst_path.read_bytes())


def test_a_file_cut_short_while_hashed_is_an_error_not_a_crash(tmp_path):
    """A trainer saving to the path being hashed truncates it: a read past its end would be SIGBUS."""
    from mvc.errors import StorageError

    path = tmp_path / "f"
    path.write_bytes(os.urandom(fileio.SMALL + 2 * fileio.MAP_WINDOW))
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        os.truncate(path, fileio.MAP_WINDOW // 2)
        with pytest.raises(StorageError, match="shrank while it was read"):
            fileio.hash_fd(fd, size)
    finally:
        os.close(fd)
