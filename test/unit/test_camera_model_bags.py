"""`depth-ros infer` on two synthetic 4:3 bags that differ only in focal length, with a metric 3:1
model trained on the first camera: both cropped to 3:1 (NaN bands in the depth image, no cloud
points there), the second's depth corrected by the focal ratio 2 and DepthInfo saying so."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from depth_ros.bag.infer import InferConfig, infer_bag
from depth_ros.core.aspect import aspect_window
from depth_ros.core.camera import CameraModel
from depth_ros.inference.spec import ModelSpec
from depth_ros.synthetic import SynthConfig, write_bag

W, H = 64, 48  # 4:3
NET_W, NET_H = 48, 16  # 3:1
FX_TRAIN = 40.0
PREDICTED_M = 3.0


def _net_camera(fx_px: float) -> CameraModel:
    """The camera a 4:3 image of focal ``fx_px`` gives at the network input (cropped to 3:1)."""
    camera = CameraModel.from_intrinsics(W, H, fx_px, fx_px, (W - 1) / 2, (H - 1) / 2)
    return aspect_window(W, H, 3.0, "crop").camera(camera).resized(NET_W, NET_H)


class ConstantMetric:
    """A metric 3:1 model trained on 96x32 images of the first camera: predicts 3 m everywhere."""

    name = "constant"
    spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, metric=True, name="c31",
                     train_image_width_px=96, train_image_height_px=32,
                     train_fx_px=_net_camera(FX_TRAIN).fx, train_fy_px=_net_camera(FX_TRAIN).fy)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        assert x.shape == (1, 3, NET_H, NET_W)
        return {"depth": np.full((1, 1, NET_H, NET_W), PREDICTED_M, np.float32)}


def _messages(path: Path, topic: str) -> list[Any]:
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:
        return [reader.deserialize(d, c.msgtype) for c, _, d in reader.messages() if c.topic == topic]


@pytest.mark.parametrize(("fx_px", "factor", "source"), [(FX_TRAIN, 1.0, "model"), (2 * FX_TRAIN, 2.0, "model_focal")])
def test_infer_crops_to_the_trained_aspect_and_corrects_the_focal_ratio(tmp_path: Path, fx_px: float, factor: float,
                                                                       source: str) -> None:
    bag = write_bag(SynthConfig(width=W, height=H, frames=3, lidar_beams=0, fx_px=fx_px), tmp_path / "in.mcap")
    out = tmp_path / "out.mcap"
    summary = infer_bag(bag, out, ConstantMetric(), InferConfig())
    assert summary.frames_out == 3 and summary.scale_sources == {source: 3}
    window = aspect_window(W, H, 3.0, "crop")  # rows 13..33 of 48
    infos = _messages(out, "/camera/depth/info")
    depths = _messages(out, "/camera/depth/image")
    clouds = _messages(out, "/camera/depth/points")
    assert len(infos) == len(depths) == len(clouds) == 3
    for info, image, cloud in zip(infos, depths, clouds):
        assert (info.scale_source, info.scale) == (source, pytest.approx(factor))
        depth = np.asarray(image.data).view("<f4").reshape(H, W)
        rows = np.nonzero(np.isfinite(depth).any(axis=1))[0]
        assert (rows.min(), rows.max()) == (window.y0, window.y0 + window.height - 1)
        assert np.nanmax(np.abs(depth - PREDICTED_M * factor)) < 1e-5
        assert info.valid_fraction == pytest.approx(window.height / H)
        z = np.asarray(cloud.data).view("<f4").reshape(H, W, cloud.point_step // 4)[..., 2]
        assert np.array_equal(np.isfinite(z), np.isfinite(depth))  # the cloud skips the bands
