"""The one exception type users see.

Every mistake a user can make (unknown model name, missing weights file, wrong checkpoint, bad sampling
argument, unwritable path) raises an :class:`ArdistillError`. The CLI prints its message on one line and
exits with code 2; Python callers can catch it. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class ArdistillError(Exception):
    """A user-facing error with a one-line, actionable message."""


class UnknownModelError(ArdistillError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsMissingError(ArdistillError, FileNotFoundError):
    """A weights file that should exist locally and does not."""


class CheckpointError(ArdistillError):
    """A checkpoint that cannot be read safely or does not match the model it is loaded into."""


class BadArgumentError(ArdistillError, ValueError):
    """An argument value outside its valid range."""
