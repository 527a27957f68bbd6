"""Errors a user can cause. Each message names the problem and the fix in one line."""


class MvcError(Exception):
    """Base of every error mvc reports to the user (exit status 1, one line, no traceback)."""

    exit_code = 1


class NotAGitRepo(MvcError):
    """The command runs outside a git work tree."""


class NotInitialized(MvcError):
    """The git repository has no .mvc/ yet."""


class PathError(MvcError):
    """A path is outside the repository, missing, unreadable or not trackable."""


class PointerError(MvcError):
    """A pointer file is not valid TOML, has an unknown format version or bad fields."""


class ConflictedPointer(PointerError):
    """A pointer holding git's merge conflict markers: mvc's own, mid-merge (its message says how to resolve it)."""


class MetaError(MvcError):
    """A record given to add (``--meta``, ``--meta-file``, ``meta=``) that a pointer's [meta] cannot hold."""


class ConfigError(MvcError):
    """A config file or value is invalid."""


class ObjectMissing(MvcError):
    """An object is in neither the cache nor the remote."""


class CorruptObject(MvcError):
    """An object's content does not match its oid."""


class WorkspaceModified(MvcError):
    """A workspace file would be overwritten but its content is not safely in the cache."""


class GitError(MvcError):
    """A git operation failed."""

    stderr = ""  # what git printed, when it was git that failed


class UpstreamError(GitError):
    """A git repository read by URL (``--repo``) cannot be reached or does not hold what was asked."""


class StorageError(MvcError):
    """Disk full, permission denied or another I/O failure."""


class LayoutError(MvcError):
    """A cache or remote whose layout marker (mvc.toml) is not mvc's, or names a format this mvc does not know."""


class RemoteError(MvcError):
    """A remote could not be used: its configuration, or the store behind it."""


class UnknownRemote(RemoteError, ConfigError):
    """A remote name that no config file defines."""


class NoRemote(RemoteError, ConfigError):
    """No remote is configured, or several are and none is the default."""


class RemoteNotFound(RemoteError):
    """The bucket or directory of the remote does not exist."""


class RemoteAuthError(RemoteError):
    """Missing or rejected credentials."""


class RemoteUnreachable(RemoteError):
    """The server did not answer (down, wrong endpoint, network)."""


class RemoteProtocolError(RemoteError):
    """Unknown protocol, or its fsspec package is not installed."""


class RemoteReadOnly(RemoteError):
    """A write to a store that only reads (http://)."""


class RemoteObjectMissing(RemoteError, ObjectMissing):
    """An object is not on the remote."""


class RemoteCorrupt(RemoteError, CorruptObject):
    """An object on the remote does not hash to its oid."""


class RemoteWrongSize(RemoteCorrupt):
    """A file on the remote is not of the size its object has: refused before it is downloaded."""


class ForeignError(MvcError):
    """Another tool's file that mvc imports (a .dvc file, dvc.lock, DVC's cache or config) is damaged or unknown."""


class RegistryError(MvcError):
    """A registry operation is refused (unknown model or version, a rule, a tag taken)."""


class ModelFormatError(MvcError):
    """A model file that is not valid in its format or whose format cannot be told, a framework or device that
    does not apply to it, or an object that the format a path names cannot hold."""


class UntrustedModel(MvcError):
    """Loading the model would run code stored in it (pickle, joblib, a torch pickle) and trust=True was not given."""


class FrameworkMissing(MvcError):
    """The package that a model format or framework needs is not installed."""


class GcRefused(MvcError):
    """mvc gc will not delete: what it would need to know to do so safely cannot be checked."""


class VerifyFailed(MvcError):
    """mvc verify found objects that are corrupt or cannot be recovered (its report names them)."""


class WorkStopped(MvcError):
    """A thread's share of a command called off because another failed or Ctrl-C came: what the command raises is
    the reason, not this."""
