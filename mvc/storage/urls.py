"""Remote URLs: which store serves a URL, what makes two remotes the same, and opening one."""

from __future__ import annotations

import os
from typing import Any

from mvc.errors import RemoteError, RemoteProtocolError, RemoteUnreachable
from mvc.storage.store import Store, has_credentials, redact_url, split_url

__all__ = ["check_url", "has_credentials", "identity", "open_store", "redact_url", "split_url"]

# The package to pip install for a protocol; fsspec's own hint is used for the others.
PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "ssh": "paramiko",
    "sftp": "paramiko",
    "http": "aiohttp",
    "https": "aiohttp",
    "hf": "huggingface_hub",
    "oss": "ossfs",
    "webdav": "webdav4",
    "smb": "smbprotocol",
}
# Wrappers and archives: not a place to keep objects.
NOT_STORES = {
    "blockcache",
    "cached",
    "filecache",
    "simplecache",
    "data",
    "dir",
    "generic",
    "reference",
    "tar",
    "zip",
    "libarchive",
    "async_wrapper",
    "asyncwrapper",
    "git",
    "github",
    "gist",
    "dvc",
}


def check_url(url: str) -> str:
    """Refuse a URL no store can serve; returns its protocol. Imports fsspec only for other protocols."""
    protocol, path = split_url(url)
    if protocol == "local":
        if not path:
            raise RemoteProtocolError("empty remote path: give a directory, e.g. /mnt/models or file:///mnt/models")
        if url[:7].lower() == "file://" and not path.startswith("/"):  # file://nas/models: a host, as git refuses
            raise RemoteProtocolError(f"{redact_url(url)}: a file:// URL takes no host: write file:///PATH")
        return protocol
    if protocol in ("s3", "s3a"):
        if not path.split("/", 1)[0]:
            raise RemoteProtocolError(f"{url}: an S3 URL needs a bucket: use s3://BUCKET[/PREFIX]")
        if has_credentials(url):  # (s3fs and botocore take none from a URL: they fail with ParamValidationError)
            raise RemoteProtocolError(
                f"{redact_url(url)}: an S3 URL carries no user or password: set access_key_id and secret_access_key "
                "with 'mvc remote modify NAME KEY VALUE --local', or use the AWS_* variables or a profile"
            )
        if "//" in path.rstrip("/"):  # s3fs would write keys beginning "/", which botocore's reads never ask for
            raise RemoteProtocolError(f"{redact_url(url)}: an empty part (//) in an S3 URL: write s3://BUCKET/PREFIX")
        return protocol
    from fsspec.registry import known_implementations, registry

    if protocol in NOT_STORES or (protocol not in known_implementations and protocol not in registry):
        raise RemoteProtocolError(
            f"{url}: unknown protocol {protocol!r}: use a directory, s3://, gs://, az://, "
            "ssh:// or another fsspec protocol"
        )
    if not path.strip("/"):
        raise RemoteProtocolError(
            f"{url}: a remote URL needs a place after '{protocol}://' (a bucket, a host, a path): e.g. "
            f"{protocol}://NAME/PREFIX"
        )
    return protocol


def identity(url: str, endpoint_url: str | None = None, base: str = ".", profile: str | None = None) -> str:
    """What makes two remotes the same store (for the journal): the resolved URL (no user or password in it) and
    endpoint. An S3 remote with no endpoint_url of its own goes where botocore's environment sends it
    (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, a profile's endpoint): that is part of the key too, so a
    push to another server is never judged by what the first one holds."""
    protocol, path = split_url(url)
    if protocol == "local":
        return "file://" + os.path.realpath(os.path.join(base, os.path.expanduser(path)))
    key = _keyed(f"{protocol}://{path.strip('/')}")
    if protocol in ("s3", "s3a") and not endpoint_url:
        endpoint_url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        profile = (
            profile or os.environ.get("AWS_DEFAULT_PROFILE") or os.environ.get("AWS_PROFILE")
        )  # (botocore's order)
        key += f" profile {profile}" if profile and not endpoint_url else ""
    return f"{key} @ {_keyed(endpoint_url.rstrip('/'))}" if endpoint_url else key


def _keyed(url: str) -> str:
    """url as the journal keys it: with its user, password and secret query values written ***, and a digest of
    the whole, so that two stores that differ only there (two containers of one account in abfs://, two tokens)
    keep two keys and no secret is stored in clear."""
    shown = redact_url(url)
    if shown == url:
        return url
    import hashlib

    return f"{shown} #{hashlib.sha256(url.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}"


def open_store(
    url: str, options: dict[str, Any] | None = None, *, base: str = ".", fsync: bool = False, reading: bool = False
) -> Store:
    """The store for a remote URL; relative local paths are relative to base. ``reading``: the caller only
    reads (S3 then goes through botocore alone, which starts faster: see mvc.storage.s3read)."""
    options = dict(options or {})
    protocol = check_url(url)
    if protocol == "local":
        from mvc.storage.directory import DirStore

        _, path = split_url(url)
        return DirStore(url, os.path.join(base, os.path.expanduser(path)), fsync=fsync)
    try:
        if protocol in ("s3", "s3a") and reading:
            from mvc.storage import s3read

            if s3read.understands(options):
                return s3read.S3Reader(url, options)
        if protocol in ("s3", "s3a"):
            from mvc.storage.s3 import S3Store

            return S3Store(url, options)
        import fsspec

        cls = fsspec.get_filesystem_class(protocol)
        # what the URL itself says (host, port, user for ftp://, sftp://, smb://, …), then the remote's keys
        kw = {**cls._get_kwargs_from_urls(url), **options}
        fs = cls(**kw)
    except ImportError as e:
        raise RemoteProtocolError(_missing_package(protocol, e)) from None
    except TypeError as e:
        raise RemoteError(
            f"{redact_url(url)}: an option of this remote is not understood by the {protocol} filesystem "
            f"({e}): remove it with 'mvc remote modify NAME KEY --unset'"
        ) from None
    except (OSError, EOFError) as e:  # filesystems that connect when made (ftp://, sftp://) and cannot
        raise RemoteUnreachable(
            f"cannot reach {redact_url(url)} ({type(e).__name__}: {str(e)[:200] or 'no answer'}): check the "
            "network and the remote URL, then retry"
        ) from None
    except ValueError as e:  # a URL the filesystem cannot take apart (no host, bad port)
        raise RemoteProtocolError(
            f"{redact_url(url)}: not a URL the {protocol} filesystem understands ({str(e)[:200]}): fix it with "
            "'mvc remote modify NAME url URL'"
        ) from None
    from mvc.storage.generic import READ_ONLY, FsspecStore, HttpStore

    kind = HttpStore if protocol in READ_ONLY else FsspecStore
    return kind(url, protocol, fs, fs._strip_protocol(url))


def _missing_package(protocol: str, e: ImportError) -> str:
    package = PACKAGES.get(protocol)
    if package is None:
        from fsspec.registry import known_implementations

        hint = known_implementations.get(protocol, {}).get("err") or str(e)
        return f"{protocol}:// remotes need a package that is not installed ({hint})"
    return f"{protocol}:// remotes need the {package} package: pip install {package}"
