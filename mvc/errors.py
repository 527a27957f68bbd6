"""Errors a user can cause. Each message names the problem and the fix in one line."""


class MvcError(Exception):
    """Base of every error mvc reports to the user (exit status 1, one line, no traceback)."""

    exit_code = 1


class NotAGitRepo(MvcError):
    pass


class NotInitialized(MvcError):
    pass


class PathError(MvcError):
    """A path is outside the repository, missing, unreadable or not trackable."""


class PointerError(MvcError):
    """A pointer file is not valid TOML, has an unknown format version or bad fields."""


class ConfigError(MvcError):
    pass


class ObjectMissing(MvcError):
    """An object is in neither the cache nor the remote."""


class CorruptObject(MvcError):
    """An object's content does not match its oid."""


class WorkspaceModified(MvcError):
    """A workspace file would be overwritten but its content is not safely in the cache."""


class GitError(MvcError):
    pass


class StorageError(MvcError):
    """Disk full, permission denied or another I/O failure."""


class RemoteError(MvcError):
    pass


class RegistryError(MvcError):
    pass
