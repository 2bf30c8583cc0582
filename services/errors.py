"""Errors that reach the user as one line.

Two families decide the CLI's exit code: :class:`InputError` (the user gave us
something unusable: exit 2) and :class:`ProcessingError` (a valid request failed
while running: exit 1). Messages always name the input and the problem.
"""

from __future__ import annotations


class VidsenseError(Exception):
    """Base class: a failure with a one-line, user-facing message."""

    exit_code = 1


class InputError(VidsenseError):
    """Bad input from the user (missing file, unknown label set, bad option)."""

    exit_code = 2


class ProcessingError(VidsenseError):
    """A valid request that failed while running (undecodable video, model failure)."""

    exit_code = 1


class ModelError(ProcessingError):
    """A model file is missing, corrupt or cannot be loaded."""
