"""Bytes on disks and stores: local file primitives (``fileio``) and the remote stores, one backend a module."""
