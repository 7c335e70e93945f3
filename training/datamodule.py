"""LightningDataModule over bags: train/val :class:`BagSequenceDataset` + DataLoaders."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from depth_ros_training.data.dataset import BagSequenceDataset, DataConfig

__all__ = ["BagDataModule", "check_loader_sizes"]

log = logging.getLogger(__name__)


def check_loader_sizes(batch_size: object, num_workers: object) -> None:
    """``batch_size`` an integer >= 1 and ``num_workers`` one >= 0 (not bools, not floats).

    Raises:
        ValueError: naming the key (the CLI prefixes ``data.``).
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")


class BagDataModule(LightningDataModule):
    """Samples from rosbag2 files for :class:`depth_ros_training.module.DepthTrainingModule`.

    Args:
        data: how bags become samples (:class:`DataConfig`).
        batch_size: samples per batch (per process under DDP).
        num_workers: DataLoader worker processes (each opens the bags itself).
        teacher_model: optional ONNX depth model for SC-Depth v3 pseudo-depth; it runs once
            per frame through the runtime's backends and the result is cached next to the
            bag index (see :mod:`depth_ros_training.teacher`).
        teacher_backend: backend name passed to ``create_backend``.

    The model's ``velocity_weight > 0`` turns on ``require_odometry`` (a bag without
    odometry is then an error, not a silently unscaled run).
    """

    def __init__(
        self,
        data: DataConfig,
        batch_size: int = 4,
        num_workers: int = 0,
        teacher_model: str | None = None,
        teacher_backend: str = "onnxruntime-cpu",
    ) -> None:
        super().__init__()
        check_loader_sizes(batch_size, num_workers)
        self.data_config = data
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.teacher_model = teacher_model
        self.teacher_backend = teacher_backend
        self.train_set: BagSequenceDataset | None = None
        self.val_set: BagSequenceDataset | None = None

    def _effective_config(self) -> DataConfig:
        config = self.data_config
        model = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        if model is not None and float(getattr(model.hparams, "velocity_weight", 0.0)) > 0 and not config.require_odometry:
            config = dataclasses.replace(config, require_odometry=True)
        return config

    def _teacher_depth(self, config: DataConfig) -> dict[str, Any] | None:
        if self.teacher_model is None:
            return None
        from depth_ros_training.teacher import teacher_depth_for_bags

        return teacher_depth_for_bags(config, self.teacher_model, backend=self.teacher_backend)

    def setup(self, stage: str | None = None) -> None:
        config = self._effective_config()
        teacher = self._teacher_depth(config)
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = BagSequenceDataset(config, "train", teacher_depth=teacher)
        if stage in (None, "fit", "validate") and self.val_set is None and config.val_fraction > 0:
            self.val_set = BagSequenceDataset(config, "val", teacher_depth=teacher)

    def _loader(self, dataset: BagSequenceDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(dataset) >= self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup('fit') not called"
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return self._loader(self.val_set, shuffle=False)
