"""Exceptions for failures the user can act on.

Every error that reaches the CLI as a :class:`DepthRosError` is printed as one line naming the
problem (no traceback) and exits non-zero; nodes log it and skip the one message.
"""

__all__ = ["BackendError", "BagError", "DepthRosError", "InputError", "ModelError"]


class DepthRosError(Exception):
    """An expected failure with a message meant for the user."""


class InputError(DepthRosError, ValueError):
    """A message or array is malformed: encoding, size, step, intrinsics, non-finite values."""


class BagError(DepthRosError):
    """A bag cannot be read or written: missing, truncated, corrupt, lacking a topic."""


class ModelError(DepthRosError, ValueError):
    """A model file or its contract cannot be used."""


class BackendError(DepthRosError, RuntimeError):
    """An inference backend is unavailable or failed to build or run."""
