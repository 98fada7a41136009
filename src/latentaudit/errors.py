"""The error hierarchy of latentaudit.

Every error the library raises on purpose derives from :class:`LatentAuditError` and
from the built-in exception that describes it best, so callers can catch either
``except la.LatentAuditError`` or the usual ``except ValueError``.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "InputShapeError",
    "InputTypeError",
    "LatentAuditError",
    "MissingDependencyError",
    "NotFittedError",
    "TrainingError",
]


class LatentAuditError(Exception):
    """Base class of every error raised by latentaudit on purpose."""


class DataError(LatentAuditError, ValueError):
    """A data file, table or array is unusable: unreadable, wrong shape, non-finite, ids
    that do not match.  The message names the file or column and the problem."""


class ConfigError(LatentAuditError, ValueError):
    """A parameter has a value that is not allowed.  The message names the parameter,
    the allowed values and, where one is close, suggests it."""


class InputTypeError(LatentAuditError, TypeError):
    """An argument has the wrong type.  The message says what was expected and what was
    given."""


class InputShapeError(LatentAuditError, ValueError):
    """An array or tensor handed to a model or estimator has the wrong shape, number of
    channels or dtype.  The message says what was expected and what was given."""


class NotFittedError(LatentAuditError, ValueError, AttributeError):
    """An estimator was used before ``fit``.

    Subclasses :class:`sklearn.exceptions.NotFittedError`'s bases (``ValueError`` and
    ``AttributeError``) so code written for scikit-learn catches it too.
    """


class TrainingError(LatentAuditError, RuntimeError):
    """Training cannot go on, e.g. the loss became NaN or infinite."""


class CheckpointError(LatentAuditError, OSError):
    """A checkpoint or saved model is missing, incomplete or corrupt.  The message names
    the file."""


class MissingDependencyError(LatentAuditError, ImportError):
    """An optional dependency needed by the requested feature is not installed.  The
    message names the package and the extra that installs it."""
