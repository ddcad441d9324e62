"""Typed errors. Every error a user can cause derives from :class:`StemscribeError`.

The CLI prints ``str(error)`` as one line on stderr and exits non-zero; messages say what was
wrong and how to fix it.
"""

from __future__ import annotations


class StemscribeError(Exception):
    """Root of all stemscribe errors."""

    exit_code = 1


class BadInputError(StemscribeError):
    """The input file or array cannot be used (missing, not audio, truncated, empty...)."""

    exit_code = 2


class BadArgumentError(StemscribeError):
    """An option has a value we do not know (unknown stem, model, grid...)."""

    exit_code = 2


class ModelUnavailableError(StemscribeError):
    """A model's weights are missing or corrupt; the message says how to get them."""

    exit_code = 3


class OutputError(StemscribeError):
    """The output location cannot be written."""

    exit_code = 4


class MissingDependencyError(StemscribeError):
    """An optional dependency is not installed; the message names the extra to install."""

    exit_code = 5


class Cancelled(StemscribeError):
    """Raised (e.g. from a progress callback) to stop a running job; nothing half-written is kept."""

    exit_code = 130
