"""A tiny pose_6dof ONNX whose output depends on the frames (for tests of the visual odometry),
and test/ros/conftest.py's constant depth model for tests outside test/ros.
"""
from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from depth_ros.inference.spec import ModelSpec

__all__ = ["constant_depth_model", "image_dependent_pose_model", "odometry_test_files"]


@functools.lru_cache(maxsize=1)
def _ros_conftest() -> ModuleType:
    """test/ros/conftest.py, loaded under its own name (its ONNX helpers: one definition)."""
    import importlib.util

    source = Path(__file__).resolve().parent / "ros" / "conftest.py"
    spec = importlib.util.spec_from_file_location("depth_ros_test_ros_conftest", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def constant_depth_model(path: Path, value: float, name: str) -> Path:
    """test/ros/conftest.py's depth_metric model whose output is ``value`` at every pixel."""
    return _ros_conftest().constant_depth_model(path, value, name)


def image_dependent_pose_model(path: Path, height: int = 24, width: int = 32, seed: int = 0,
                               convention: str = "T_src_tgt", metric: bool = True) -> Path:
    """``pose = mean_over_pixels(image) @ W + b``: the (1, 6) output is a fixed linear map of the
    six input channels' means (target then source frame), so two different frame pairs give two
    different motions, and a wrong pairing, order or preprocessing changes the trajectory.

    Args:
        path: where the model is written (its ModelSpec embedded).
        height, width: network input size.
        seed: of the linear map ``W`` (6, 6); ``b`` moves the camera 0.05 m forward (+z, optical
            frame) per frame on top of the image-driven part.
        convention: the spec's ``pose_convention``.
        metric: the spec's ``metric``.
    """
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    W = np.zeros((6, 6), np.float32)
    W[:, :3] = rng.normal(0.0, 0.02, (6, 3))  # rotation (rad) from the channel means
    W[:, 3:] = rng.normal(0.0, 0.05, (6, 3))  # translation (m)
    b = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.05]], np.float32)
    spec = ModelSpec(output_kind="pose_6dof", input_height=height, input_width=width, input_channels=6,
                     output_name="pose", name="pose_linear", metric=metric, pose_convention=convention,
                     scale_source="velocity_supervision" if metric else "none")
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[2, 3], keepdims=0),  # (1, 6)
             helper.make_node("MatMul", ["m", "W"], ["mw"]),
             helper.make_node("Add", ["mw", "b"], ["pose"])]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")]
    return Path(_ros_conftest()._onnx_model(Path(path), spec, nodes, inits, [1, 6]))


def odometry_test_files(directory: Path, synth: Any) -> dict[str, Path]:
    """A constant 2 m depth model, the image-dependent pose model and a synthetic bag of
    ``synth`` (a SynthConfig) in ``directory``: keys ``depth``, ``pose``, ``bag``."""
    from depth_ros.synthetic import write_bag

    return {
        "depth": constant_depth_model(directory / "plane.onnx", 2.0, "plane_2m"),
        "pose": image_dependent_pose_model(directory / "pose.onnx"),
        "bag": write_bag(synth, directory / "s.mcap"),
    }
