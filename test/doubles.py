"""Test doubles shared by the test directories (test/ is on sys.path through its conftest.py:
import as ``from doubles import ...``)."""
from __future__ import annotations


class RecordingLogger:
    """An rclpy-logger double: keeps (level, text) for info, warning and error."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))

    def texts(self, level: str) -> list[str]:
        """The texts logged at ``level``, in order."""
        return [t for lv, t in self.lines if lv == level]
