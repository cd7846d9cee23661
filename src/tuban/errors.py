"""One exception tree for tuban.

Every error a user can cause is a :class:`TubanError`. Subclasses also inherit the
matching builtin so callers that only know Python's exceptions still catch them::

    TubanError (Exception)
    ├── UsageError (ValueError)                 bad arguments or options
    ├── ConfigError (ValueError)                bad workspace / settings
    ├── WorkspaceNotFoundError (FileNotFoundError)
    ├── InputError (ValueError)                 a file or value the user supplied is unusable
    │   ├── InputNotFoundError (FileNotFoundError)
    │   ├── MissingCRSError                     no CRS and none given with --crs
    │   ├── UnsupportedCRSError
    │   ├── EncodingError (UnicodeError)        text that cannot be decoded safely
    │   ├── FieldError                          a missing/invalid official field or code value
    │   ├── GeometryError                       empty, non-polygon, NaN, too many vertices …
    │   ├── UnsafeInputError                    zip bombs, path traversal, disallowed drivers
    │   └── LimitExceededError                  above a documented size limit
    ├── RasterError (ValueError)                imagery problems
    │   ├── NoOverlapError                      the dates do not overlap (enough)
    │   └── BandError                           a needed band role is missing
    ├── ClusterError (RuntimeError)             a Dask cluster lost its scheduler or every worker mid-run
    ├── StoreError (RuntimeError)               database problems
    │   ├── NotFoundError (LookupError)         missing, *or* not visible to this user
    │   ├── ConflictError                       stale version / duplicate id with other content
    │   │   └── LeaseLostError                  a worker's detection job was claimed by another
    │   ├── IntegrityError                      a constraint the data would break
    │   └── MigrationError                      schema is not at the expected revision
    └── PermissionDeniedError (PermissionError)

Each class has a stable ``code`` (used as the CLI exit code family and the HTTP problem
type) and messages name the values involved and the fix.
"""

from __future__ import annotations

__all__ = [
    "BandError",
    "ClusterError",
    "ConfigError",
    "ConflictError",
    "EncodingError",
    "FieldError",
    "GeometryError",
    "InputError",
    "InputNotFoundError",
    "IntegrityError",
    "LeaseLostError",
    "LimitExceededError",
    "MigrationError",
    "MissingCRSError",
    "NoOverlapError",
    "NotFoundError",
    "PermissionDeniedError",
    "RasterError",
    "StoreError",
    "TubanError",
    "UnsafeInputError",
    "UnsupportedCRSError",
    "UsageError",
    "WorkspaceNotFoundError",
]


class TubanError(Exception):
    """Base of every error tuban raises on purpose."""

    code: str = "tuban-error"
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(TubanError, ValueError):
    code = "usage"
    exit_code = 2


class ConfigError(TubanError, ValueError):
    code = "config"
    exit_code = 3


class WorkspaceNotFoundError(TubanError, FileNotFoundError):
    code = "workspace-not-found"
    exit_code = 3


class InputError(TubanError, ValueError):
    code = "bad-input"
    exit_code = 4


class InputNotFoundError(InputError, FileNotFoundError):
    code = "input-not-found"


class MissingCRSError(InputError):
    code = "missing-crs"


class UnsupportedCRSError(InputError):
    code = "unsupported-crs"


class EncodingError(InputError, UnicodeError):
    code = "encoding"


class FieldError(InputError):
    code = "bad-field"


class GeometryError(InputError):
    code = "bad-geometry"


class UnsafeInputError(InputError):
    code = "unsafe-input"


class LimitExceededError(InputError):
    code = "limit-exceeded"


class RasterError(TubanError, ValueError):
    code = "raster"
    exit_code = 5


class NoOverlapError(RasterError):
    code = "no-overlap"


class BandError(RasterError):
    code = "band"


class ClusterError(TubanError, RuntimeError):
    """A run's Dask cluster went away under it (its scheduler, or every worker, for longer than the run waits):
    nothing was written; running again once the cluster is back gives the same output."""

    code = "cluster"
    exit_code = 8


class StoreError(TubanError, RuntimeError):
    code = "store"
    exit_code = 6


class NotFoundError(StoreError, LookupError):
    code = "not-found"


class ConflictError(StoreError):
    code = "conflict"


class LeaseLostError(ConflictError):
    """A worker no longer holds the lease of its detection job (it expired and another worker claimed the
    job, or the job was cancelled): its result is thrown away, so the job is done once."""

    code = "lease-lost"


class IntegrityError(StoreError):
    code = "integrity"


class MigrationError(StoreError):
    code = "migration"


class PermissionDeniedError(TubanError, PermissionError):
    code = "permission-denied"
    exit_code = 7
