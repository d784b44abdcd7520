"""The one error hierarchy of pyminidocker.

Every error the CLI reports derives from PmdError, which carries the exit code and an optional
hint. Domain errors also inherit the matching builtin (LookupError for "not found", ValueError
for bad input, ...) so that library callers can catch what they already know.
"""
from __future__ import annotations


class PmdError(Exception):
    """Base of all expected errors: one line for the user, an exit code, maybe a hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(PmdError, ValueError):
    """A bad flag, argument or option value (Docker exits 125 for these)."""

    exit_code = 125


class InvalidReference(PmdError, ValueError):
    """An image reference that does not parse."""


class InvalidFilter(PmdError, ValueError):
    """A list's filter key or value that Docker refuses (its daemon answers 400, its CLI
    exits 1)."""


class NotFound(PmdError, LookupError):
    """An image, tag, container or network that does not exist."""


class Conflict(PmdError):
    """The operation conflicts with the current state (name in use, image in use, ...)."""


class RegistryError(PmdError):
    """The registry refused or failed a request."""


class AuthError(RegistryError, PermissionError):
    """Authentication with a registry failed."""


class ManifestUnknown(RegistryError, NotFound):
    """The registry has no such repository, tag or digest."""


class UnsupportedMedia(RegistryError, ValueError):
    """A manifest or layer of a kind we do not handle (schema1, unknown media type)."""


class VerificationError(PmdError, ValueError):
    """A blob's digest or size does not match what its descriptor or config says."""


class StoreError(PmdError, OSError):
    """The store could not be read or written (disk full, permissions, corruption)."""


def store_error(e: OSError, what: str) -> StoreError:
    """The StoreError of a failed file operation: what, the cause in words, the path."""
    import errno
    import os

    detail = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        detail = "no space left on device"
    hint = ""
    if e.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
        hint = " (the engine needs root; there is no rootless mode yet)"
    return StoreError(f"{what}: {detail}" + (f": {e.filename}" if e.filename else "") + hint)


class CorruptRecord(StoreError):
    """A record of the store cannot be read (a power cut, a full disk, a hand edit): the
    object it describes can still be removed with force."""

    def __init__(self, message: str, object_id: str):
        super().__init__(message)
        self.object_id = object_id


class LayerError(PmdError, OSError):
    """A layer could not be extracted (hostile or corrupt tar)."""


class StartError(PmdError):
    """A container's (or exec's) process could not be started; exit_code is 125, 126 or 127."""


class suppress:
    """contextlib.suppress, without importing contextlib (it imports functools and
    collections: milliseconds of every container start)."""

    def __init__(self, *exceptions: type[BaseException]):
        self.exceptions = exceptions

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, self.exceptions)
