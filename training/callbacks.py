"""Rank-zero visualisation (input image and depth colormap to TensorBoard) and the progress bar."""
from __future__ import annotations

import logging

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only

__all__ = ["DepthImageLogger", "EpochProgressBar", "colorize_inverse_depth", "tidy_lightning_output"]

# anchors of a perceptually ordered dark-to-bright map (close = bright)
_ANCHORS = np.array(
    [[0.0, 0.0, 0.02], [0.23, 0.06, 0.44], [0.55, 0.16, 0.51], [0.87, 0.32, 0.39], [0.99, 0.64, 0.36], [0.99, 0.99, 0.75]],
    dtype=np.float32,
)


def colorize_inverse_depth(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) depth in metres -> (3, H, W) float32 RGB in [0, 1] of 1/depth, normalised
    between its 5th and 95th percentile (near = bright). Non-finite depth is black."""
    inv = np.where(np.isfinite(depth_m) & (depth_m > 0), 1.0 / np.maximum(depth_m, 1e-6), np.nan)
    finite = inv[np.isfinite(inv)]
    if finite.size == 0:
        return np.zeros((3,) + depth_m.shape, dtype=np.float32)
    lo, hi = np.percentile(finite, [5, 95])
    t = np.clip((inv - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    t = np.nan_to_num(t, nan=0.0) * (len(_ANCHORS) - 1)
    i0 = np.floor(t).astype(np.int64).clip(0, len(_ANCHORS) - 2)
    frac = (t - i0)[..., None]
    rgb = _ANCHORS[i0] * (1 - frac) + _ANCHORS[i0 + 1] * frac
    rgb[~np.isfinite(inv)] = 0.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)


class DepthImageLogger(Callback):
    """Every ``every_n_steps`` training steps and after each validation, logs the target image
    and its predicted depth colormap to a TensorBoard logger (rank zero only).

    Reads ``pl_module._last_train`` / ``_last_val``: {"tgt": (1, 3, H, W) in [0, 1] (the
    samples' range; clamped for display), "depth": (1, 1, H, W) metres}; a module without them
    logs nothing.
    """

    def __init__(self, every_n_steps: int = 100) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps

    @staticmethod
    def _experiment(trainer: Trainer):
        for lg in trainer.loggers:
            exp = getattr(lg, "experiment", None)
            if exp is not None and hasattr(exp, "add_image"):
                return exp
        return None

    def _log(self, trainer: Trainer, pl_module: LightningModule, item: dict[str, torch.Tensor] | None, tag: str) -> None:
        exp = self._experiment(trainer)
        if exp is None or item is None:
            return
        image = item["tgt"][0].float().clamp(0.0, 1.0).cpu().numpy()
        depth = item["depth"][0, 0].float().cpu().numpy()
        exp.add_image(f"{tag}/image", image, trainer.global_step)
        exp.add_image(f"{tag}/depth", colorize_inverse_depth(depth), trainer.global_step)

    @rank_zero_only
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, pl_module, getattr(pl_module, "_last_train", None), "train")

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, pl_module, getattr(pl_module, "_last_val", None), "val")


class EpochProgressBar(RichProgressBar):
    """Lightning's rich progress bar, but a run with no epoch limit (``max_epochs=-1``, bounded
    by ``max_steps`` or ``max_time``, as the demo's) shows "Epoch 3", not "Epoch 3/-2"."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch)
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs < 0:
            description = description.replace(f"/{max_epochs - 1}", "", 1)
        return description


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


def tidy_lightning_output() -> None:
    """Keep Lightning's advertising tips (a cloud logging service, on every Trainer) out of the
    training output, and print its other messages once, through the root handler
    (:func:`depth_ros.logsetup.tidy_library_handlers`). Call after importing Lightning. Idempotent."""
    from depth_ros.logsetup import tidy_library_handlers

    tidy_library_handlers()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoTips) for f in logger.filters):
        logger.addFilter(_NoTips())
