"""fileio.preallocate: disk reserved for a large write, the file's size and bytes untouched."""

from __future__ import annotations

import os

from mvc.storage import copying, fileio


def test_preallocate_keeps_the_size_and_a_copy_stays_exact(tmp_path):
    src = tmp_path / "src.bin"
    data = os.urandom(fileio.SMALL + 12345)
    src.write_bytes(data)
    dst = tmp_path / "dst.bin"
    with fileio.new_file(str(dst)) as fd:
        fileio.preallocate(fd, len(data))
        assert os.fstat(fd).st_size == 0  # reserved, not grown: a short copy stays visibly short
        with open(src, "rb") as f:
            digest = copying.copy_hash_fd(f.fileno(), fd, len(data))
    assert dst.read_bytes() == data
    assert digest == fileio.hexdigest_bytes(data)


def test_preallocate_is_best_effort(tmp_path):
    with open(tmp_path / "f", "wb") as f:
        fileio.preallocate(f.fileno(), 1 << 20)  # below SMALL: nothing to do
        fileio.preallocate(f.fileno(), 1 << 62)  # more than any disk: refused by the kernel, ignored
        assert os.fstat(f.fileno()).st_size == 0
    r, w = os.pipe()  # not a file: fallocate fails, ignored
    try:
        fileio.preallocate(w, fileio.SMALL)
    finally:
        os.close(r)
        os.close(w)
