"""The ``with`` protocol shared by the bag reader and writer: entering opens, leaving ends."""
from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["OpenedInWith"]

_Opened = TypeVar("_Opened", bound="OpenedInWith")


class OpenedInWith:
    """Mixin for a file object with ``open()`` (returning itself) and an end that depends on
    how the ``with`` block was left: ``with X(path) as x:`` calls ``x.open()`` on entry and
    ``x._end(ok)`` on exit, ``ok`` False when the block raised (the exception propagates)."""

    def open(self: _Opened) -> _Opened:
        raise NotImplementedError

    def _end(self, ok: bool) -> None:
        raise NotImplementedError

    def __enter__(self: _Opened) -> _Opened:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(exc_type is None)
