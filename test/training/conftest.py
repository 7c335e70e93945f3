"""Fixtures shared by the training tests.

``one_thread`` / ``two_threads``: torch's (process-wide) thread count fixed for one test and put
back after it (:func:`depth_ros_training.recipes.torch_threads`), for the figures that depend on
it and for tiny models that train faster on one thread than on an oversubscribed pool.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from depth_ros_training.recipes import torch_threads


@pytest.fixture
def one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture
def two_threads() -> Iterator[None]:
    with torch_threads(2):
        yield
