"""Depth Pro as a training task (Bochkovskii et al., arXiv 2410.02073): metric depth from canonical
inverse depth, and a focal-length head.

The network (DispNet ResNet-18/50 or LightDispNet) predicts the *canonical inverse depth*
``C = f_px / (W_px * depth_m)`` (ModelSpec ``canonical_inverse_depth``; the runtime computes
``depth_m = f_px / (W_px * C)`` with the frame's CameraInfo, so the model is metric with no scale
policy). Output: ``C = max_canonical * sigmoid(.)``; with the default ``max_canonical = 2`` the
nearest representable depth is ``f_px / (2 W_px)``, 0.29 m for an 81 deg camera (DispNet's sigmoid is
kept, so the same network classes serve every task; Depth Pro's own head ends in a ReLU).

Losses (:mod:`depth_ros_training.losses.depth_pro`), per label group by its kind and exactness:

* metric labels: ``trimmed_mae`` on ``C`` with the worst 20 % of each image's errors discarded for
  real sources (LiDAR, RGB-D, a metric teacher) and none for exact ones (``exact: true``, the
  synthetic renderer);
* relative labels (``relative_depth``, ``relative_inverse_depth``): ``normalized_mae`` (median/MAD
  normalised prediction and target);
* exact labels, stage 1: ``+ ssi_weight x ssi_gradient_loss``; stage 2: ``+`` the multi-scale
  derivative losses MAGE, MALE, MSGE (6 scales) weighted by ``mage_weight``, ``male_weight``,
  ``msge_weight``.

Ablation, ``output: metric`` (not Depth Pro; the comparison its paper makes for the canonical form):
the same network, losses and head, but the frame's focal length never enters. The target is
``C_fixed = focal_ratio / depth_m`` with one constant ``metric_focal_ratio`` (the f_px / W_px of a
typical training camera, so the losses see values of the same size as ``C``), and the export is a
plain ``depth_metric`` model: ``depth_m = metric_focal_ratio / C_fixed`` whatever the camera. The
runtime then runs it with scale policy ``model`` (its focal-ratio correction off, since the spec
records no training focal length): a camera with another field of view gets the depth a camera of
the training field of view would have seen.

The two-stage curriculum is the config's ``stage``: 1 trains on every group; 2 only on the exact
groups (the other groups' images are masked out of the loss, so the same data config serves both
stages; a stage-2 run needs an exact metric group). A metric loss needs metric labels: a
``depth_pro`` config whose groups are all relative is refused before training.

Per-sample reduction: each image's loss is its own mean; the batch mean weighs every image alike
(groups then count by their share of the batch, i.e. by the mixing weights).

Focal-length head (:class:`~depth_ros_training.models.fov_head.FovHead`): on the encoder's detached
bottleneck ("frozen depth features"), trained with the L2 loss on the horizontal field of view
(:func:`~depth_ros_training.losses.depth_pro.fov_loss`, degrees) from step ``fov_start_step`` on,
i.e. after the depth network has trained (0: from the start, still without touching the depth
network). The true FOV is ``2 atan(W / (2 fx))`` of the sample's intrinsics after its crop and resize.
Exported as a **second output of depth.onnx** named ``fov_deg`` ((1,) degrees), recorded in the
ModelSpec's ``extra["fov_output"]``; the runtime's depth comes from the spec's ``output_name``
(``depth``) and the frame's CameraInfo, and reads ``fov_deg`` only for a frame whose CameraInfo has no
usable intrinsics (:mod:`depth_ros.core.focal_fallback`: the camera of the predicted field of view,
DepthInfo ``scale_source`` ``canonical_focal_predicted``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from depth_ros.inference.spec import ModelSpec

from depth_ros_training.losses.depth_pro import (
    canonical_from_inverse_depth,
    derivative_losses,
    depth_from_canonical,
    fov_loss,
    normalized_mae,
    ssi_gradient_loss,
    trimmed_mae,
)
from depth_ros_training.models.fov_head import FovHead, FovHeadConfig, focal_px_to_fov
from depth_ros_training.tasks.common import (
    ExportedTask,
    LabelledInputs,
    LabelledTask,
    NetworkFields,
    abs_rel,
    bottleneck_channels,
    export_task_module,
    features_and_disparity,
)

__all__ = ["DEPTH_PRO_OUTPUTS", "DepthProConfig", "DepthProExportWrapper", "DepthProTask", "DepthProTerms", "export_depth_pro"]

FOV_OUTPUT = "fov_deg"
#: ``output:`` choices: Depth Pro's canonical inverse depth, or the plain metric ablation.
DEPTH_PRO_OUTPUTS: tuple[str, ...] = ("canonical", "metric")


@dataclass(frozen=True)
class DepthProConfig(NetworkFields):
    """The Depth Pro task's settings (the keys of ``model:`` in config/train_depth_pro.yaml).

    Attributes:
        output: ``canonical`` (Depth Pro) or ``metric`` (the ablation of the module docstring).
        metric_focal_ratio: the constant f_px / W_px of ``output: metric`` (0.6: a 80 deg camera).
        max_canonical: upper bound of the predicted canonical inverse depth (``C = max * sigmoid``).
        stage: 1 (all groups; SSI gradient loss on exact ones) or 2 (exact groups only; MAE +
            derivative losses).
        real_discard_fraction: share of each real image's largest errors dropped by the MAE (0.2).
        ssi_weight: weight of the stage-1 SSI gradient loss on exact labels.
        mage_weight, male_weight, msge_weight: weights of the stage-2 derivative losses.
        derivative_scales: scales of the derivative losses (6).
        fov_weight: weight of the focal-length head's L2 loss (deg^2); 0 disables the head's training.
        fov_start_step: global step from which the head trains.
        lr: Adam learning rate (depth network and head).
        network, image_height, image_width, mean, std, min_depth_m, max_depth_m,
            encoder_weights_path: :class:`~depth_ros_training.tasks.common.NetworkFields`.
    """

    output: str = "canonical"
    metric_focal_ratio: float = 0.6
    max_canonical: float = 2.0
    stage: int = 1
    real_discard_fraction: float = 0.2
    ssi_weight: float = 1.0
    mage_weight: float = 1.0
    male_weight: float = 1.0
    msge_weight: float = 1.0
    derivative_scales: int = 6
    fov_weight: float = 1e-3
    fov_start_step: int = 0
    lr: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.max_canonical) and self.max_canonical > 0):
            raise ValueError(f"max_canonical must be > 0, got {self.max_canonical}")
        if self.output not in DEPTH_PRO_OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(DEPTH_PRO_OUTPUTS)}, got {self.output!r}")
        if not (math.isfinite(self.metric_focal_ratio) and self.metric_focal_ratio > 0):
            raise ValueError(f"metric_focal_ratio must be > 0, got {self.metric_focal_ratio}")
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage!r}")
        if not 0.0 <= self.real_discard_fraction < 1.0:
            raise ValueError(f"real_discard_fraction must be in [0, 1), got {self.real_discard_fraction}")
        for name in ("ssi_weight", "mage_weight", "male_weight", "msge_weight", "fov_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not isinstance(self.derivative_scales, int) or not 1 <= self.derivative_scales <= 8:
            raise ValueError(f"derivative_scales must be an integer in 1..8, got {self.derivative_scales!r}")
        if not isinstance(self.fov_start_step, int) or self.fov_start_step < 0:
            raise ValueError(f"fov_start_step must be an integer >= 0, got {self.fov_start_step!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class DepthProPrediction:
    """The networks' outputs of one step.

    Attributes:
        canonical: (B, 1, H, W) canonical inverse depth ``C``.
        fov_deg: (B,) predicted horizontal field of view, degrees.
    """

    canonical: Tensor
    fov_deg: Tensor


@dataclass(frozen=True)
class DepthProTerms:
    """The loss of one step (scalars; terms that do not apply are 0).

    Attributes:
        total: what is minimised.
        mae: metric MAE on C (trimmed for real sources).
        normalized_mae: MAE after median/MAD normalisation (relative labels).
        ssi_gradient: stage-1 SSI gradient loss (exact labels).
        mage, male, msge: stage-2 derivative losses (exact labels).
        fov: focal-length head L2 loss, deg^2.
        per_group: {group index: the depth loss of that group's images}.
    """

    total: Tensor
    mae: Tensor
    normalized_mae: Tensor
    ssi_gradient: Tensor
    mage: Tensor
    male: Tensor
    msge: Tensor
    fov: Tensor
    per_group: dict[int, Tensor]


def canonical_target(inputs: LabelledInputs, focal_ratio: float | None = None) -> Tensor:
    """(B, 1, H, W) target canonical inverse depth of metric rows (``1/d * fx / W``, or ``1/d *
    focal_ratio`` when given: the ``output: metric`` ablation); the relative rows keep their
    inverse depth (only normalised losses see them)."""
    width = float(inputs.target.shape[-1])
    f_px = inputs.K[:, 0, 0] if focal_ratio is None else torch.full_like(inputs.K[:, 0, 0], focal_ratio * width)
    c = canonical_from_inverse_depth(inputs.target, f_px, width)
    return torch.where(inputs.metric.view(-1, 1, 1, 1), c, inputs.target)


class DepthProTask(LabelledTask):
    """Depth Pro training task (see the module docstring). Keywords: :class:`DepthProConfig`'s
    fields; ``group_names`` names the label groups in the logs."""

    task = "depth_pro"
    config_class = DepthProConfig
    config: DepthProConfig

    def __init__(self, group_names: tuple[str, ...] = (), **config: Any) -> None:
        super().__init__(group_names, **config)
        self.fov_head = FovHead(FovHeadConfig(in_channels=bottleneck_channels(self.config.network), detach_features=True))

    # -- phases -------------------------------------------------------------------------------
    def predict(self, inputs: LabelledInputs) -> DepthProPrediction:
        bottleneck, disp = features_and_disparity(self.depth_net, inputs.image)
        return DepthProPrediction(canonical=self.config.max_canonical * disp, fov_deg=self.fov_head(bottleneck))

    def unit_output(self, pred: DepthProPrediction) -> Tensor:
        return pred.canonical / self.config.max_canonical

    @property
    def _fixed_ratio(self) -> float | None:
        """The constant focal ratio of ``output: metric``; None for Depth Pro's canonical form."""
        return self.config.metric_focal_ratio if self.config.output == "metric" else None

    def _masked(self, inputs: LabelledInputs) -> Tensor:
        """(B, 1, H, W) the label pixels this stage trains on (stage 2: exact rows only)."""
        if self.config.stage == 2:
            return inputs.valid & inputs.exact.view(-1, 1, 1, 1)
        return inputs.valid

    def compute_losses(self, inputs: LabelledInputs, pred: DepthProPrediction) -> DepthProTerms:
        c = self.config
        C, target, valid = pred.canonical, canonical_target(inputs, self._fixed_ratio), self._masked(inputs)
        zero = C.sum() * 0.0
        metric, exact = inputs.metric, inputs.exact
        b = C.shape[0]
        per_image = torch.zeros(b, dtype=C.dtype, device=C.device)
        mae = nmae = ssi = zero
        dl = None
        if bool(metric.any()):
            frac = torch.where(exact[metric], 0.0, c.real_discard_fraction).to(C.dtype)
            rows = torch.nonzero(metric).view(-1).tolist()
            for j, i in enumerate(rows):  # one image at a time: a per-image value for the group logs
                per_image[i] = per_image[i] + trimmed_mae(C[i : i + 1], target[i : i + 1], valid[i : i + 1], frac[j])
            mae = per_image[metric].sum() / b
        relative = ~metric
        if bool(relative.any()):
            rows = torch.nonzero(relative).view(-1).tolist()
            for i in rows:
                per_image[i] = per_image[i] + normalized_mae(C[i : i + 1], target[i : i + 1], valid[i : i + 1])
            nmae = per_image[relative].sum() / b
        total = per_image.sum() / b
        ex = exact & valid.flatten(1).any(1)
        if bool(ex.any()):
            if c.stage == 1 and c.ssi_weight > 0:
                ssi = ssi_gradient_loss(C[ex], target[ex], valid[ex], c.derivative_scales) * (ex.sum() / b)
                total = total + c.ssi_weight * ssi
            if c.stage == 2:
                dl = derivative_losses(C[ex], target[ex], valid[ex], c.derivative_scales)
                share = ex.sum() / b
                total = total + share * (c.mage_weight * dl.mage + c.male_weight * dl.male + c.msge_weight * dl.msge)
        fov = zero
        if c.fov_weight > 0 and self.global_step >= c.fov_start_step:
            fov_true = focal_px_to_fov(inputs.K[:, 0, 0], float(C.shape[-1]))
            fov = fov_loss(pred.fov_deg, fov_true)
            total = total + c.fov_weight * fov
        per_group = {int(g): per_image[inputs.group == g].mean().detach() for g in torch.unique(inputs.group).tolist()}
        return DepthProTerms(
            total=total, mae=mae, normalized_mae=nmae, ssi_gradient=ssi,
            mage=dl.mage if dl else zero, male=dl.male if dl else zero, msge=dl.msge if dl else zero,
            fov=fov, per_group=per_group,
        )

    def log_terms(self, stage: str, terms: DepthProTerms, batch_size: int) -> None:
        self.log(f"{stage}/loss", terms.total, prog_bar=True, batch_size=batch_size)
        for name in ("mae", "normalized_mae", "ssi_gradient", "mage", "male", "msge", "fov"):
            self.log(f"{stage}/{name}", getattr(terms, name), batch_size=batch_size)
        self.log_group_losses(stage, terms.per_group, batch_size)

    # -- Lightning -------------------------------------------------------------------------------
    def log_validation_metrics(self, inputs: LabelledInputs, pred: DepthProPrediction) -> None:
        """``val/fov_abs_err_deg``: the focal-length head's error; ``val/abs_rel_metric``: AbsRel
        of the depth through each frame's focal length, metric labels only."""
        metric = inputs.metric
        width = float(pred.canonical.shape[-1])
        fov_true = focal_px_to_fov(inputs.K[:, 0, 0], width)
        self.log("val/fov_abs_err_deg", (pred.fov_deg - fov_true).abs().mean(), batch_size=inputs.image.shape[0])
        if bool(metric.any()):
            ratio = self._fixed_ratio
            f_px = inputs.K[metric][:, 0, 0] if ratio is None else ratio * width
            depth = depth_from_canonical(pred.canonical[metric], f_px, width)
            valid = inputs.valid[metric] & torch.isfinite(depth)
            truth = 1.0 / torch.where(valid, inputs.target[metric], torch.ones_like(depth))
            self.log_mean_abs_rel("val/abs_rel_metric", abs_rel(depth.nan_to_num(1.0), truth, valid))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.config.lr)

    # -- export ----------------------------------------------------------------------------------
    def model_spec(self, name: str | None = None) -> ModelSpec:
        """``canonical_inverse_depth`` (metric through the frame's focal length), ``fov_deg`` recorded
        in ``extra["fov_output"]``; ``output: metric``: ``depth_metric`` (scale source ``model``)."""
        extra = {"stage": str(self.config.stage), "fov_output": FOV_OUTPUT, "fov_output_unit": "deg (horizontal field of view)"}
        if self.config.output == "metric":
            extra |= {"output": "metric", "metric_focal_ratio": f"{self.config.metric_focal_ratio:g}"}
            return self.task_spec(name, output_kind="depth_metric", metric=True, scale_source="model", extra=extra)
        return self.task_spec(name, output_kind="canonical_inverse_depth", metric=True, scale_source="canonical_focal", extra=extra)


class DepthProExportWrapper(nn.Module):
    """(1, 3, h, w) normalised image -> {"depth": (1, 1, h, w) canonical inverse depth (or, with
    ``metric_focal_ratio``, depth in metres ``ratio / C``), "fov_deg": (1,) horizontal field of view
    in degrees}."""

    def __init__(self, depth_net: nn.Module, fov_head: nn.Module, max_canonical: float, metric_focal_ratio: float | None = None) -> None:
        super().__init__()
        self.depth_net = depth_net
        self.fov_head = fov_head
        self.max_canonical = float(max_canonical)
        self.metric_focal_ratio = metric_focal_ratio

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        bottleneck, disp = features_and_disparity(self.depth_net, image)
        out = self.max_canonical * disp
        if self.metric_focal_ratio is not None:
            # C = 0 (a sigmoid that underflowed) would be an infinite depth: the runtime's range limit drops it
            out = self.metric_focal_ratio / out.clamp_min(1e-12)
        return {"depth": out, FOV_OUTPUT: self.fov_head(bottleneck)}


def export_depth_pro(module: DepthProTask, output_dir: str | Path, name: str | None = None, check_parity: bool = True) -> ExportedTask:
    """``depth.onnx`` of a trained :class:`DepthProTask`: outputs ``depth`` (ModelSpec
    ``canonical_inverse_depth``) and ``fov_deg``."""
    wrapper = DepthProExportWrapper(module.depth_net, module.fov_head, module.config.max_canonical, module._fixed_ratio)
    return export_task_module(wrapper, module.model_spec(name), output_dir, check_parity)
