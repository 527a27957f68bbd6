"""Writes of many buffers into a file: every byte lands where it should, a bounded amount per system call."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvc.storage import fileio


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
