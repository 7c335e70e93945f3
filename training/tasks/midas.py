"""MiDaS as a training task (Ranftl et al., arXiv 1907.01341): relative inverse depth from mixed labels.

The network (DispNet ResNet-18/50 or LightDispNet, ``network:``) predicts affine-invariant inverse
depth; it is trained on :class:`~depth_ros_training.data.labelled.LabelledDataModule` batches (label
groups mixed by weight) with the scale-and-shift-invariant loss of
:mod:`depth_ros_training.losses.midas` plus the multi-scale gradient-matching term (alpha 0.5, 4
scales), and exported as ``depth.onnx`` with ModelSpec ``output_kind: inverse_depth_relative``: the
runtime then needs a scale policy for metres (``--scale lidar`` / ``lidar_shift``,
``sparse_alignment``, ``fixed:S``, ...).

Variants chosen:

* **Output activation**: DispNet's sigmoid in (0, 1) is kept (MiDaS ends with a ReLU). The loss is
  invariant to scale and shift, so the bounded range loses nothing a per-frame alignment can
  recover, and the output stays positive, which the runtime's relative policies take as inverse
  depth (> 0 = a depth exists).
* **Loss**: ``ssi_trimmed_mae`` (MiDaS v2/v3: median/MAD normalisation, largest 20 % of residuals
  trimmed per image) by default, ``ssi_mse`` (v1: least-squares alignment) as the option; both plus
  ``alpha`` x gradient matching on the finest output.
* **Every label kind** goes through the same loss: a metric or up-to-scale target is a special case
  of "inverse depth up to scale and shift".
* **Group weighting**: each label group's loss is computed on its own images; the batch loss weighs
  the groups by their share of the batch (i.e. by the mixing weights), not by their valid-pixel
  counts, so a dense GT group does not drown a sparse LiDAR group. Each group's loss is logged as
  ``train/loss_<group>`` / ``val/loss_<group>``.
* **Validation AbsRel**: per image, scale and shift fitted by least squares in *inverse depth* on the
  valid label pixels (MiDaS's protocol), aligned inverse depth clamped to the depth range, AbsRel
  on metric labels (``val/abs_rel_ssi``, and per group).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from depth_ros.inference.spec import ModelSpec

from depth_ros_training.losses.midas import MidasLoss, ssi_mse_loss, ssi_trimmed_mae_loss
from depth_ros_training.tasks.common import (
    ExportedTask,
    LabelledInputs,
    LabelledTask,
    NetworkFields,
    aligned_abs_rel,
    export_task_module,
    features_and_disparity,
)

__all__ = ["MIDAS_LOSSES", "MidasConfig", "MidasExportWrapper", "MidasTask", "export_midas"]

MIDAS_LOSSES: tuple[str, ...] = ("trimmed_mae", "ssi_mse")


@dataclass(frozen=True)
class MidasConfig(NetworkFields):
    """The MiDaS task's settings (the keys of ``model:`` in config/train_midas.yaml).

    Attributes:
        loss: ``trimmed_mae`` (default) or ``ssi_mse``.
        alpha: weight of the gradient-matching term (0.5).
        gradient_scales: scales of the gradient-matching term (4).
        trim: fraction of the largest residuals dropped by ``trimmed_mae`` (0.2).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        network, image_height, image_width, mean, std, min_depth_m, max_depth_m,
            encoder_weights_path: :class:`~depth_ros_training.tasks.common.NetworkFields`.
    """

    loss: str = "trimmed_mae"
    alpha: float = 0.5
    gradient_scales: int = 4
    trim: float = 0.2
    lr: float = 1e-4
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in MIDAS_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(MIDAS_LOSSES)}, got {self.loss!r}")
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if not isinstance(self.gradient_scales, int) or not 1 <= self.gradient_scales <= 6:
            raise ValueError(f"gradient_scales must be an integer in 1..6, got {self.gradient_scales!r}")
        if not 0.0 <= self.trim < 1.0:
            raise ValueError(f"trim must be in [0, 1), got {self.trim}")
        if not (math.isfinite(self.lr) and self.lr > 0) or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")


@dataclass(frozen=True)
class MidasTerms:
    """The loss of one step.

    Attributes:
        total: scalar, what is minimised (groups weighed by their share of the batch).
        data: scalar, the SSI data term (same weighting).
        gradient: scalar, the gradient-matching term (same weighting).
        per_group: {group index: scalar total loss of that group's images}.
    """

    total: Tensor
    data: Tensor
    gradient: Tensor
    per_group: dict[int, Tensor]


class MidasTask(LabelledTask):
    """MiDaS training task (see the module docstring). Keywords: :class:`MidasConfig`'s fields;
    ``group_names`` names the label groups in the logs."""

    task = "midas"
    config_class = MidasConfig
    config: MidasConfig

    # -- phases -------------------------------------------------------------------------------
    def predict(self, inputs: LabelledInputs) -> Tensor:
        """(B, 1, H, W) relative inverse depth in (0, 1)."""
        return self.depth_net(inputs.image)[0]

    def unit_output(self, pred: Tensor) -> Tensor:
        return pred

    def _loss(self, pred: Tensor, target: Tensor, valid: Tensor) -> MidasLoss:
        c = self.config
        if c.loss == "ssi_mse":
            return ssi_mse_loss(pred, target, valid, alpha=c.alpha, num_scales=c.gradient_scales)
        return ssi_trimmed_mae_loss(pred, target, valid, trim=c.trim, alpha=c.alpha, num_scales=c.gradient_scales)

    def compute_losses(self, inputs: LabelledInputs, pred: Tensor) -> MidasTerms:
        zero = pred.sum() * 0.0
        total, data, grad = zero, zero, zero
        per_group: dict[int, Tensor] = {}
        b = pred.shape[0]
        for g in torch.unique(inputs.group).tolist():
            rows = inputs.group == g
            res = self._loss(pred[rows], inputs.target[rows], inputs.valid[rows])
            share = rows.sum().to(pred.dtype) / b
            total, data, grad = total + share * res.total, data + share * res.data, grad + share * res.gradient
            per_group[int(g)] = res.total.detach()
        return MidasTerms(total=total, data=data, gradient=grad, per_group=per_group)

    def log_terms(self, stage: str, terms: MidasTerms, batch_size: int) -> None:
        self.log(f"{stage}/loss", terms.total, prog_bar=True, batch_size=batch_size)
        self.log(f"{stage}/ssi_{self.config.loss}", terms.data, batch_size=batch_size)
        self.log(f"{stage}/gradient_matching", terms.gradient, batch_size=batch_size)
        self.log_group_losses(stage, terms.per_group, batch_size)

    # -- Lightning -------------------------------------------------------------------------------
    def log_validation_metrics(self, inputs: LabelledInputs, pred: Tensor) -> None:
        """``val/abs_rel_ssi``: AbsRel after per-image scale-and-shift alignment, metric labels only."""
        metric = inputs.metric
        if bool(metric.any()):
            self.log_mean_abs_rel("val/abs_rel_ssi", aligned_abs_rel(
                pred[metric], inputs.target[metric], inputs.valid[metric], self.config.min_depth_m, self.config.max_depth_m))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.depth_net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    # -- export ----------------------------------------------------------------------------------
    def model_spec(self, name: str | None = None) -> ModelSpec:
        """``inverse_depth_relative`` (needs a runtime scale policy), input size and normalisation."""
        return self.task_spec(name, output_kind="inverse_depth_relative", metric=False, scale_source="none", extra={"loss": self.config.loss})


class MidasExportWrapper(nn.Module):
    """(1, 3, h, w) normalised image -> (1, 1, h, w) relative inverse depth."""

    def __init__(self, depth_net: nn.Module) -> None:
        super().__init__()
        self.depth_net = depth_net

    def forward(self, image: Tensor) -> Tensor:
        return features_and_disparity(self.depth_net, image)[1]


def export_midas(module: MidasTask, output_dir: str | Path, name: str | None = None, check_parity: bool = True) -> ExportedTask:
    """``depth.onnx`` of a trained :class:`MidasTask` (ModelSpec ``inverse_depth_relative``)."""
    return export_task_module(MidasExportWrapper(module.depth_net), module.model_spec(name), output_dir, check_parity)
