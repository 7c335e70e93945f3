"""Reading small untrusted text files (model spec sidecars, params and scene configs, metadata)
and writing files atomically.

Each reader bounds what it reads before parsing: the file size (read at most ``max_bytes + 1``
bytes, whatever the file claims), the encoding (UTF-8, the offset of a bad byte named), and for
YAML the aliases (what a "billion laughs" document multiplies: 1 KB of text became 5.8 GB) and
the nesting depth (PyYAML's composer and ``json.loads`` recurse once per level). Errors are one
line, of the caller's exception class, naming the file.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable

import yaml

from depth_ros.errors import DepthRosError, InputError

__all__ = ["json_nesting_exceeds", "load_yaml_bounded", "parser_message", "read_text_capped", "write_atomically"]


def parser_message(text: str, limit: int = 200) -> str:
    """A parser's own (possibly multi-line, possibly quoting the input) message on one line."""
    text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def read_text_capped(
    path: str | Path, max_bytes: int, *, what: str = "file", error: type[DepthRosError] = InputError
) -> str:
    """The UTF-8 text of ``path``, a regular file of at most ``max_bytes`` bytes.

    Raises:
        error: not a regular file, unreadable, larger than ``max_bytes``, or not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} is not a regular file" if path.exists() else f"{path}: {what} does not exist")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # never more than the cap, whatever the file's size
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise error(f"{path}: {what} is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text (invalid byte at offset {exc.start})") from None


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """Whether JSON ``text`` nests lists/objects more than ``limit`` deep.

    One linear pass, brackets inside strings not counted; run it before ``json.loads``, whose
    parser recurses per level (text nested 100000 deep raised RecursionError). Keep ``text``
    size-capped: the pass is Python-speed (~10 ms per 64 KB).
    """
    depth, in_string, escaped = 0, False, False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > limit:
                return True
        elif c in "]}":
            depth -= 1
    return False


def _yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML error as one line, without the snippet of input PyYAML quotes (it may hold escapes)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem is None:
        return parser_message(str(exc))
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return parser_message(f"{context + ': ' if context else ''}{problem}{where}")


def load_yaml_bounded(
    text: str, source: str, *, max_nesting: int, what: str = "YAML", error: type[DepthRosError] = InputError
) -> Any:
    """``yaml.safe_load`` of ``text`` with aliases refused and nesting bounded.

    The event stream is checked first: PyYAML's parser is iterative, its composer recursive,
    so nesting is bounded before composing. None of the package's YAML files has a use for
    anchors and aliases.

    Raises:
        error: an alias, nesting deeper than ``max_nesting``, or invalid YAML; one line
            naming ``source``.
    """
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise error(f"{source}: YAML aliases (*{parser_message(str(event.anchor), 40)}) are not accepted ({what})")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > max_nesting:
                    raise error(f"{source}: {what} is nested more than {max_nesting} levels deep")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.safe_load(text)
    except DepthRosError:
        raise
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML ({_yaml_error(exc)})") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise error(f"{source}: not a usable {what} ({parser_message(str(exc))})") from None


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace ``path`` with what ``write(file)`` writes, atomically: a temporary file
    in the same directory, flushed to disk, then renamed over ``path``. A crash or a kill leaves
    the old file (or none), never a half-written one.

    The temporary file is created with mode 0666 less the process umask (0644 under umask 022),
    as ``open`` would create ``path``; ``tempfile.mkstemp``'s 0600 would make an exported model
    unreadable by a node running as another user.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
