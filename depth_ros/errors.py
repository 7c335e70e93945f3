"""Exceptions for failures the user can act on.

Every error that reaches the CLI as a :class:`DepthRosError` is printed as one line naming the
problem (no traceback) and exits non-zero; nodes log it and skip the one message.
"""

__all__ = ["BackendError", "BagError", "DepthRosError", "InputError", "ModelError", "one_line"]

#: Longest error line printed; the rest is elided (a message can quote untrusted text).
MAX_LINE_CHARS = 2000


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


def one_line(text: object, limit: int = MAX_LINE_CHARS) -> str:
    """``text`` as one printable terminal line: line breaks become spaces, other control
    characters (ESC, BEL, NUL, ...) their ``\\x..`` escapes, and at most ``limit`` characters.

    Error messages quote file names, topic names and model metadata, all of which come from
    outside: printed as they are, a newline would split the one-line error and an escape
    sequence would reach the user's terminal.
    """
    text = str(text)
    out = []
    for ch in text:
        if ch in "\r\n\t":
            out.append(" ")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ascii(ch)[1:-1])
        if len(out) > limit:
            break
    line = "".join(out)
    return line if len(line) <= limit else line[: limit - 3] + "..."
