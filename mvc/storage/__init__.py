"""Bytes on disks and stores: local file primitives here, fsspec remotes in :mod:`mvc.storage.remote`."""
