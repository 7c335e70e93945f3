"""The TensorBoard image logger: what it hands the logger for the module's last sample."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from depth_ros_training.callbacks import DepthImageLogger, colorize_inverse_depth


class _Experiment:
    def __init__(self) -> None:
        self.images: dict[str, tuple[np.ndarray, int]] = {}

    def add_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.images[tag] = (image, step)


def test_logs_the_sample_in_unit_range_and_its_depth_colormap():
    exp = _Experiment()
    trainer = SimpleNamespace(loggers=[SimpleNamespace(experiment=exp)], global_step=7, sanity_checking=False)
    tgt = torch.tensor([-0.5, 0.25, 1.5]).view(1, 3, 1, 1).expand(1, 3, 2, 2).clone()  # jitter may overshoot
    depth = torch.tensor([[[[1.0, 2.0], [4.0, float("nan")]]]])
    module = SimpleNamespace(_last_val={"tgt": tgt, "depth": depth})
    DepthImageLogger(every_n_steps=1).on_validation_epoch_end(trainer, module)
    image, step = exp.images["val/image"]
    assert step == 7 and image.shape == (3, 2, 2)
    np.testing.assert_array_equal(image[:, 0, 0], [0.0, 0.25, 1.0])  # clamped to [0, 1], not rescaled
    np.testing.assert_array_equal(exp.images["val/depth"][0], colorize_inverse_depth(depth[0, 0].numpy()))


def test_a_module_without_a_sample_logs_nothing():
    exp = _Experiment()
    trainer = SimpleNamespace(loggers=[SimpleNamespace(experiment=exp)], global_step=1, sanity_checking=False)
    DepthImageLogger(every_n_steps=1).on_validation_epoch_end(trainer, SimpleNamespace())
    assert exp.images == {}
