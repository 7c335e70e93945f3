"""Described config fields: one definition of a setting's default, unit, range and choices.

A component's frozen config dataclass declares each user-settable field with :func:`described`;
the ROS parameters (:mod:`depth_ros.ros.params`), the YAML files and the CLI flags are built
from that metadata (:func:`param_info`), so a default or a range is written once.

Pure Python (no ROS): imported by the frame pipeline, the node parameters and the CLIs.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from depth_ros.errors import DepthRosError

__all__ = ["ParamInfo", "ParameterError", "check_described_fields", "described", "param_info"]


class ParameterError(DepthRosError, ValueError):
    """A parameter value (or params file entry) is invalid; the message names the parameter."""


@dataclass(frozen=True)
class ParamInfo:
    """How one config field is exposed (as a ROS parameter, a YAML key, a CLI flag).

    Args:
        description: shown by ``ros2 param describe`` and ``--help``; says the unit.
        read_only: set at start-up only (ROS parameters).
        min_value, max_value: inclusive range for numbers (FloatingPointRange/IntegerRange).
        choices: the accepted strings, for string fields.
    """

    description: str
    read_only: bool = False
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None


def described(default: Any, description: str, **kwargs: Any) -> Any:
    """A dataclass field with ``default`` and its :class:`ParamInfo` (key ``"param"``)."""
    return field(default=default, metadata={"param": ParamInfo(description, **kwargs)})


def param_info(cls: type, name: str) -> ParamInfo:
    """The :class:`ParamInfo` of field ``name`` of config class ``cls``.

    Raises:
        KeyError: ``cls`` has no described field ``name``.
    """
    for f in dataclasses.fields(cls):
        if f.name == name and "param" in f.metadata:
            return f.metadata["param"]
    raise KeyError(name)


def _as_float_tuple(value: Any, length: int) -> tuple[float, ...] | None:
    """``value`` (a list, tuple or array.array of numbers) as a tuple of floats, or None."""
    try:
        items = list(value)
    except TypeError:
        return None
    if len(items) != length or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
        return None
    return tuple(float(v) for v in items)


def check_described_fields(config: Any, error: type[Exception] = ValueError, label: str | None = None) -> None:
    """Type, range and choice checks of every described field of a (frozen) ``config``.

    An int given for a float field is converted (YAML ``20`` for ``20.0``); a sequence of
    numbers for a tuple-of-floats field (a ROS double array) becomes a tuple of floats.

    Raises:
        error: ``"<name> must be ..., got <value>"``, or with ``label`` (e.g. "parameter")
            ``"<label> '<name>': ..., got <value>"``.
    """
    for f in dataclasses.fields(config):
        if "param" not in f.metadata:
            continue
        info: ParamInfo = f.metadata["param"]
        value = getattr(config, f.name)
        kind = type(f.default)

        def fail(expected: str, got: str, expected_short: str | None = None) -> Exception:
            if label is None:
                return error(f"{f.name} must be {expected}, got {got}")
            return error(f"{label} '{f.name}': expected {expected_short or expected}, got {got}")

        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            object.__setattr__(config, f.name, value)
        if kind is tuple:
            converted = _as_float_tuple(value, len(f.default))
            if converted is None or not all(math.isfinite(v) for v in converted):
                raise fail(f"{len(f.default)} finite numbers", repr(value))
            object.__setattr__(config, f.name, converted)
            continue
        if type(value) is not kind:
            raise fail(f"{'an' if kind is int else 'a'} {kind.__name__}", f"{type(value).__name__} {value!r}", kind.__name__)
        if kind is float and not math.isfinite(value):
            raise fail("a finite number", str(value))
        if info.min_value is not None and value < info.min_value:
            if label is None:
                raise error(f"{f.name} must be >= {info.min_value}, got {value!r}")
            raise error(f"{label} '{f.name}': {value} is below the minimum {info.min_value}")
        if info.max_value is not None and value > info.max_value:
            if label is None:
                raise error(f"{f.name} must be <= {info.max_value}, got {value!r}")
            raise error(f"{label} '{f.name}': {value} is above the maximum {info.max_value}")
        if info.choices is not None and value not in info.choices:
            raise fail(f"one of {list(info.choices)}", repr(value))
