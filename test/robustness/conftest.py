"""The robustness suite (helpers in :mod:`harness`)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import REPO, SMALL_AS, TORCH_AS, assert_one_line_error, run_limited, run_python  # noqa: F401


@pytest.fixture
def cli_bin() -> Path:
    """The directory holding the ``depth-ros`` / ``depth-ros-train`` entry points."""
    return Path(sys.executable).parent
