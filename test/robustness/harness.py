"""Helpers of the robustness suite: crafted bags, messages, contracts, configs and checkpoints.

Every case here was once a crash, a traceback, silent garbage, an oversize allocation or a
half-written file. Cases that could allocate without bound run in a child process under an
address-space limit (:func:`run_limited`), so a regression fails the test instead of eating the
machine.

Import them as ``from harness import ...`` (test directories are not packages).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from depth_ros.inference.spec import ModelSpec
from depth_ros.synthetic import SynthConfig

from tiny_nets import export_sigmoid_convnet

REPO = Path(__file__).resolve().parents[2]

#: Address space for a child that imports numpy / onnxruntime only.
SMALL_AS = 2 << 30
#: Address space for a child that imports torch (its import alone maps ~1.5 GB).
TORCH_AS = 6 << 30


def _limit(as_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))

    return apply


def run_limited(
    argv: Sequence[str], *, as_bytes: int = SMALL_AS, timeout: float = 120.0, cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``argv`` with its address space capped at ``as_bytes``; output captured as text."""
    full_env = dict(os.environ)
    full_env.setdefault("OMP_NUM_THREADS", "1")
    if env:
        full_env.update(env)
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO, env=full_env,
        preexec_fn=_limit(as_bytes), stdin=subprocess.DEVNULL,
    )


def run_python(code: str, *, as_bytes: int = SMALL_AS, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """``python -c code`` under an address-space limit."""
    return run_limited([sys.executable, "-c", code], as_bytes=as_bytes, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A CLI refused its input the expected way: exit 1, no traceback, one error line naming
    every one of ``needles`` (case-insensitive)."""
    err = proc.stderr
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    assert "\x1b" not in err, repr(err)


#: The tiny model's spec: a 48x32 metric sigmoid-disparity network, 0.5-20 m.
TINY_SPEC = ModelSpec(
    output_kind="disparity_sigmoid", input_height=32, input_width=48, metric=True,
    min_depth_m=0.5, max_depth_m=20.0, name="tiny", scale_source="velocity_supervision",
)
#: A short synthetic camera bag (64x48, 4 frames, no LiDAR) for the tiny model.
TINY_SYNTH = SynthConfig(width=64, height=48, frames=4, texture_size_px=64, lidar_beams=0)


def tiny_depth_model(path: Path, spec: ModelSpec = TINY_SPEC) -> Path:
    """A one-convolution disparity network exported to ONNX with ``spec`` embedded (seeded)."""
    return export_sigmoid_convnet(path, spec)
