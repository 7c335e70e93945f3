"""Where the TensorRT GPU tests run (test/gpu/): ``tensorrt`` >= 10 importable and a CUDA device
that torch sees. Shared by the test files (test/ is on sys.path through its conftest.py)."""
from __future__ import annotations

import importlib.util

import pytest

__all__ = ["TENSORRT_MARKS", "tensorrt_usable"]


def tensorrt_usable() -> bool:
    """TensorRT >= 10 imports and torch sees a CUDA device."""
    import torch

    if importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available():
        return False
    try:
        import tensorrt

        return int(str(tensorrt.__version__).split(".")[0]) >= 10
    except Exception:
        return False


#: ``pytestmark`` of a TensorRT test module: marked gpu, skipped where TensorRT cannot run.
TENSORRT_MARKS = [
    pytest.mark.gpu,
    pytest.mark.skipif(not tensorrt_usable(), reason="needs tensorrt >= 10 and a CUDA device"),
]
