"""Lightning module of the contrastive pretraining (``depth-ros-train pretrain``).

A training step (batch: see :mod:`.data`), all on the module's device:

1. photometric augmentation of the RGB query view, MoCo v2's: colour jitter (brightness,
   contrast, saturation 0.4, hue 0.1) with probability 0.8, greyscale with probability 0.2,
   Gaussian blur (sigma 0.1..2 px, kernel about a tenth of the view) with probability 0.5
   (:mod:`kornia.augmentation`); then the depth network's normalisation ``(x - mean) / std``;
2. the key view: ``key = "gradient"``: the gradient field ``G`` of the key crop
   (:func:`.gradient_field.gradient_field`), with no photometric augmentation (colour jitter
   would only rescale the Sobel magnitude and move Canny's decisions; blur removes the very
   edges the key keeps); ``key = "rgb"`` (plain MoCo v2 baseline): the same augmentation as the
   query, independently drawn, and the same normalisation;
3. momentum update of the key network, keys, InfoNCE, enqueue (:class:`.moco.MoCo`).

Logged: ``train/loss`` (InfoNCE), ``train/queue_top1`` (share of queries whose positive key
beats all K queued negatives), ``train/lr``. A queue top-1 near 1 with the loss near chance is a
key network that moves too fast, warned about once (:class:`StaleQueueWatch`).

Optimiser: SGD (momentum 0.9, weight decay 1e-4) with a cosine learning-rate schedule, as MoCo
v2; the cosine is evaluated per optimiser step over ``trainer.max_steps`` (MoCo: per epoch).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor

from depth_ros_training.models.normalization import ImageNormalization
from depth_ros_training.pretrain.gradient_field import GradientFieldConfig, gradient_field
from depth_ros_training.pretrain.moco import MoCo, MoCoOutput

__all__ = ["PretrainModule", "StaleQueueWatch"]

log = logging.getLogger(__name__)


class StaleQueueWatch:
    """Warns once when the queue top-1 is high while InfoNCE stays near chance (``log(K + 1)``).

    Both at once mean the positive beats the queued negatives whatever the frame: it was made by
    the current key network and the queue by older ones, so when the key network moves fast (m
    too small, lr too large) every embedding can become the same vector that drifts, and "newest
    key" is all the query network learns (seen with m = 0.99 and lr 0.03 at a batch of 32: queue
    top-1 1.0, loss 5.1 with chance 5.55, frames not told apart). A network that does tell frames
    apart lowers the loss well below chance as its top-1 rises.

    Args:
        queue_size: K.
        window: steps averaged (consecutive, non-overlapping windows).
        top1: mean queue top-1 above this ...
        loss_share: ... while the mean loss is above this share of ``log(K + 1)``.
    """

    def __init__(self, queue_size: int, window: int = 50, top1: float = 0.8, loss_share: float = 0.8) -> None:
        self.chance = math.log(queue_size + 1)
        self.window = window
        self.top1 = top1
        self.loss_share = loss_share
        self._loss: float | Tensor = 0.0
        self._top1: float | Tensor = 0.0
        self._count = 0
        self.warned: str | None = None

    def update(self, loss: float | Tensor, accuracy: float | Tensor) -> str | None:
        """Add one step (floats or 0-d tensors, which stay on their device until a window is
        complete: one host sync per window, not per step); returns (and logs) the warning the
        first time a window of ``window`` consecutive steps qualifies."""
        if self.warned is not None:
            return None
        self._loss = self._loss + loss
        self._top1 = self._top1 + accuracy
        self._count += 1
        if self._count < self.window:
            return None
        mean_loss = float(self._loss) / self.window
        mean_top1 = float(self._top1) / self.window
        self._loss, self._top1, self._count = 0.0, 0.0, 0
        if mean_top1 > self.top1 and mean_loss > self.loss_share * self.chance:
            self.warned = (
                f"queue top-1 {mean_top1:.0%} while InfoNCE is {mean_loss:.2f} (chance {self.chance:.2f}) over the last "
                f"{self.window} steps: the positives beat the queue because its keys are stale, not because frames are told "
                "apart; raise model.momentum (MoCo: 0.999) or lower model.lr"
            )
            log.warning(self.warned)
            return self.warned
        return None


class PretrainModule(pl.LightningModule):
    """Gradient-field MoCo (or the RGB-MoCo baseline) on a DispNet ResNet encoder.

    Args:
        num_layers: ResNet depth, 18 or 50; the depth training must use the same.
        key: "gradient" (the method) or "rgb" (plain MoCo v2 baseline).
        dim: projection dimension (MoCo: 128).
        queue_size: negative keys K (MoCo: 65536); below the number of training frames, or
            the queue holds keys of the query's own frame (a warning says so).
        momentum: key-network EMA coefficient m (MoCo: 0.999).
        temperature: InfoNCE temperature T (MoCo v2: 0.2).
        bn_splits: BatchNorm sub-batches on one process (see :mod:`.moco`); the batch size
            per process must be a multiple.
        lr: SGD learning rate (MoCo v2: 0.03 for a batch of 256; scale with the batch).
        weight_decay: SGD weight decay (MoCo: 1e-4).
        sgd_momentum: SGD momentum (MoCo: 0.9).
        canny_low, canny_high, canny_kernel_size, canny_sigma: see
            :class:`.gradient_field.GradientFieldConfig`.
        color_jitter_p: probability of colour jitter (MoCo v2: 0.8); 0 disables it.
        grayscale_p: probability of greyscale (MoCo v2: 0.2).
        blur_p: probability of Gaussian blur (MoCo v2: 0.5).
        mean, std: the depth network's input normalisation (``data.data.mean/std`` of ``fit``),
            so that the pretrained encoder sees what it will see there.
    """

    def __init__(
        self,
        num_layers: int = 18,
        key: Literal["gradient", "rgb"] = "gradient",
        dim: int = 128,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        bn_splits: int = 1,
        lr: float = 0.03,
        weight_decay: float = 1e-4,
        sgd_momentum: float = 0.9,
        canny_low: float = 0.2,
        canny_high: float = 0.4,
        canny_kernel_size: int = 5,
        canny_sigma: float = 1.0,
        color_jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
        mean: tuple[float, float, float] = (0.45, 0.45, 0.45),
        std: tuple[float, float, float] = (0.225, 0.225, 0.225),
    ) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        for name, p in (("color_jitter_p", color_jitter_p), ("grayscale_p", grayscale_p), ("blur_p", blur_p)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std must have 3 entries, std > 0; got {mean}, {std}")
        self.save_hyperparameters()
        self.gradient_config = GradientFieldConfig(canny_low, canny_high, canny_kernel_size, canny_sigma)
        self.moco = MoCo(num_layers, key, dim, queue_size, momentum, temperature, bn_splits)
        self.input_norm = ImageNormalization(mean, std)  # [0, 1] views -> the encoder's input
        self._photometric: dict[tuple[int, int], torch.nn.Module] = {}
        self._stale_queue = StaleQueueWatch(queue_size)

    # -- augmentation on the device -------------------------------------------------------
    def photometric(self, rgb: Tensor) -> Tensor:
        """MoCo v2's colour jitter / greyscale / blur of (B, 3, h, w) RGB in [0, 1]."""
        import kornia.augmentation as K

        h, w = rgb.shape[-2:]
        aug = self._photometric.get((h, w))
        if aug is None:
            hp = self.hparams
            kernel = 2 * max(1, round(0.05 * min(h, w))) + 1  # MoCo v2: 23 px at 224 px
            aug = K.AugmentationSequential(
                K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=hp.color_jitter_p),
                K.RandomGrayscale(p=hp.grayscale_p),
                K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=hp.blur_p),
            )
            self._photometric[(h, w)] = aug
        return aug(rgb).clamp(0.0, 1.0)

    def normalise(self, rgb: Tensor) -> Tensor:
        """(B, 3, h, w) RGB in [0, 1] -> the depth network's input (``(x - mean) / std``)."""
        return self.input_norm(rgb)

    def views(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(query (B, 3, h, w) normalised, key view (B, 1, h, w) G or (B, 3, h, w) normalised)."""
        with torch.no_grad():
            query = self.normalise(self.photometric(batch["query"]))
            if self.moco.key == "gradient":
                key = gradient_field(batch["key"], self.gradient_config)
            else:
                key = self.normalise(self.photometric(batch["key"]))
        return query, key

    # -- steps ------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        query, key = self.views(batch)
        self.moco.momentum_update()  # before the keys, as MoCo's forward does
        out: MoCoOutput = self.moco(query, key, update_queue=True)
        b = query.shape[0]
        self.log("train/loss", out.loss, prog_bar=True, batch_size=b)
        self.log("train/queue_top1", out.accuracy, prog_bar=True, batch_size=b)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=b)
        self._stale_queue.update(out.loss.detach(), out.accuracy)
        return out.loss

    def on_train_start(self) -> None:
        frames = getattr(getattr(self.trainer, "datamodule", None), "train_set", None)
        if frames is not None and self.moco.queue.size >= len(frames):
            log.warning(
                "model.queue_size %d >= %d training frames: the queue holds keys of the query's own frame "
                "(false negatives); use a smaller queue or more frames", self.moco.queue.size, len(frames),
            )

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.moco.query_net.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=hp.lr, momentum=hp.sgd_momentum, weight_decay=hp.weight_decay)
        total = self.trainer.max_steps if self.trainer is not None and self.trainer.max_steps and self.trainer.max_steps > 0 else None
        if total is None:
            total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- output ---------------------------------------------------------------------------
    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The query encoder's weights, keys exactly those of ``DispNet.encoder.state_dict()``
        (3-channel ``conv1``), on the CPU."""
        return {k: v.detach().to("cpu").clone() for k, v in self.moco.encoder.state_dict().items()}
