"""The frame pipeline's cloud skips the range test its depth already passed, and only then.

The postprocessor makes every depth outside [min_range_m, max_range_m] NaN; ``FrameResult.range_m``
records that range and :meth:`FramePipeline.cloud` tests points again only when its own range
differs (a parameter change between the two, a result made elsewhere). No ROS.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from depth_ros.core.camera import CameraModel
from depth_ros.core.pointcloud import make_cloud
from depth_ros.inference.spec import ModelSpec
from depth_ros.pipeline import FrameConfig, FramePipeline

NET_H, NET_W = 24, 32
CAM = CameraModel.from_intrinsics(64, 48, 40.0, 40.0, 31.5, 23.5)


class RampBackend:
    """depth_metric double: depth from 0.05 m to 30 m across the image."""

    name = "ramp"

    def __init__(self) -> None:
        self.spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name="ramp",
                              metric=True, max_depth_m=50.0)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        ramp = np.linspace(0.05, 30.0, NET_H * NET_W, dtype=np.float32).reshape(1, 1, NET_H, NET_W)
        return {"depth": ramp}


def _frame(config: FrameConfig) -> tuple[FramePipeline, object]:
    pipe = FramePipeline(RampBackend(), config, contract_checked=True)
    rgb = np.random.default_rng(0).integers(0, 255, (CAM.height, CAM.width, 3), dtype=np.uint8)
    return pipe, pipe.run(rgb, CAM)


def _xyz(cloud: np.ndarray) -> np.ndarray:
    return np.stack([cloud[n] for n in "xyz"], axis=-1)


def test_the_cloud_of_a_pipeline_frame_is_its_depth_back_projected_within_range() -> None:
    config = FrameConfig(min_range_m=0.5, max_range_m=20.0, publish_cloud=True, cloud_rgb=True)
    pipe, result = _frame(config)
    assert result.range_m == (0.5, 20.0)
    depth = result.depth_m
    assert np.isnan(depth).any() and np.nanmin(depth) >= 0.5 and np.nanmax(depth) <= 20.0
    got = pipe.cloud(result)
    assert got.tobytes() == make_cloud(depth, CAM, result.rgb, 1, 0.5, 20.0).tobytes()


def test_a_range_that_changed_after_the_frame_is_tested_again() -> None:
    pipe, result = _frame(FrameConfig(min_range_m=0.1, max_range_m=25.0, publish_cloud=True))
    pipe.update_config(FrameConfig(min_range_m=1.0, max_range_m=10.0, publish_cloud=True))
    z = pipe.cloud(result)["z"]
    inside = (result.depth_m >= 1.0) & (result.depth_m <= 10.0)
    assert np.isnan(z[~inside]).all() and np.array_equal(z[inside], result.depth_m[inside])
    assert (result.depth_m[~inside] > 10.0).any()  # points the new range takes out were there
    # a result that does not say which range its depth passed is tested too
    unmarked = dataclasses.replace(result, range_m=None)
    assert np.isnan(pipe.cloud(unmarked)["z"][~inside]).all()
