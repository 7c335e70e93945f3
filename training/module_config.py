"""Typed, frozen configurations of :class:`~depth_ros_training.module.DepthTrainingModule`.

The module's constructor keeps one flat keyword per setting (the keys of ``model:`` in
config/train.yaml, of ``depth-ros-train fit --model.*`` and of the hyper-parameters saved in
checkpoints); it groups them into these configs, each validated in ``__post_init__``, and its
training phases read the groups. Field names are the constructor's keyword names, so
``Config.from_hparams(hparams)`` picks a group out of the flat hyper-parameters and
``dataclasses.asdict(config)`` gives the keywords back
(:meth:`~depth_ros_training.module.DepthTrainingModule.from_configs`).

Error messages start with the keyword's name (``"lr must be ..."``), which the training CLI
turns into ``model.lr must be ...``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, TypeVar

from depth_ros_training.losses.hints import HINT_LOSSES
from depth_ros_training.losses.sc_depth import AUTO_MASK_ERRORS
from depth_ros_training.models.normalization import check_mean_std

__all__ = ["HintConfig", "LossWeights", "NetworkConfig", "OptimConfig", "PoseConfig"]

_C = TypeVar("_C")

LR_SCHEDULES = ("constant", "step", "onecycle")
NETWORK_DTYPES = ("float32", "bfloat16")
#: NetworkConfig.depth_network values.
DEPTH_NETWORKS = ("resnet", "light")
#: NetworkConfig.pose_network values.
POSE_NETWORKS = ("resnet", "light")
WARP_POSE_SOURCES = ("network", "odometry")
POSE_PAIRS = ("all", "one")


def _from_hparams(cls: type[_C], hparams: Mapping[str, Any]) -> _C:
    """The group ``cls`` out of flat hyper-parameters (missing keys take the field defaults,
    for checkpoints saved before a field existed)."""
    return cls(**{f.name: hparams[f.name] for f in fields(cls) if f.name in hparams})  # type: ignore[arg-type]


def _finite_non_negative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):  # NaN fails too
        raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class NetworkConfig:
    """The two networks and their input.

    Attributes:
        num_layers: ResNet depth of both encoders (18 or 50).
        min_depth_m, max_depth_m: range of the ``disparity_sigmoid`` parametrisation, metres.
        init_depth_m: start the depth network at this depth everywhere (the bias of its output
            layer) instead of the sigmoid's midpoint; None: the midpoint.
        encoder_weights_path: optional local ResNet state_dict for both encoders.
        mean, std: the ModelSpec's input normalisation (per channel, of [0, 1] pixels), applied
            to the [0, 1] images of a batch right before the depth and pose networks.
        image_height, image_width: network input size in pixels (recorded for export).
        num_scales: disparity scales the losses see (1..4).
        network_dtype: ``"float32"`` or ``"bfloat16"`` (the networks' passes under autocast).
        depth_network: ``"resnet"`` (DispNet on a ResNet-``num_layers`` encoder) or ``"light"``
            (:class:`~depth_ros_training.models.light_dispnet.LightDispNet`, for real time on a
            CPU).
        pose_network: ``"resnet"`` (:class:`~depth_ros_training.models.posenet.PoseNet` on a
            ResNet-``num_layers`` encoder) or ``"light"``
            (:class:`~depth_ros_training.models.posenet.LightPoseNet`: the light encoder; for
            visual odometry at camera rate on a CPU, and a training step that spends less of its
            time on the pose network). ``encoder_weights_path`` goes to ResNet encoders only.
    """

    num_layers: int = 18
    min_depth_m: float = 0.1
    max_depth_m: float = 100.0
    init_depth_m: float | None = None
    encoder_weights_path: str | None = None
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    image_height: int = 128
    image_width: int = 416
    num_scales: int = 1
    network_dtype: str = "float32"
    depth_network: str = "resnet"
    pose_network: str = "resnet"

    from_hparams = classmethod(_from_hparams)

    def __post_init__(self) -> None:
        if not 0 < self.min_depth_m < self.max_depth_m or not math.isfinite(self.max_depth_m):
            raise ValueError(f"need 0 < min_depth_m < max_depth_m < inf, got {self.min_depth_m}, {self.max_depth_m}")
        if self.init_depth_m is not None and not self.min_depth_m < self.init_depth_m < self.max_depth_m:
            raise ValueError(f"init_depth_m must lie inside ({self.min_depth_m}, {self.max_depth_m}), got {self.init_depth_m}")
        if not isinstance(self.num_scales, int) or not 1 <= self.num_scales <= 4:
            raise ValueError(f"num_scales must be an integer in 1..4, got {self.num_scales!r}")
        if self.network_dtype not in NETWORK_DTYPES:
            raise ValueError(f"network_dtype must be float32 or bfloat16, got {self.network_dtype!r}")
        if self.depth_network not in DEPTH_NETWORKS:
            raise ValueError(f"depth_network must be one of {', '.join(DEPTH_NETWORKS)}, got {self.depth_network!r}")
        if self.pose_network not in POSE_NETWORKS:
            raise ValueError(f"pose_network must be one of {', '.join(POSE_NETWORKS)}, got {self.pose_network!r}")
        if self.depth_network == "light" and self.encoder_weights_path is not None:
            raise ValueError("encoder_weights_path: the light depth network has no ResNet encoder to load into; "
                             "use depth_network: resnet, or leave encoder_weights_path unset")
        check_mean_std(self.mean, self.std)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms and the SC-Depth options they use.

    Attributes:
        photometric_weight, geometry_weight, smoothness_weight: SC-Depth v1 (1.0, 0.5, 0.1).
        velocity_weight: PackNet velocity supervision (0: off; metric depth needs it).
        pose_supervision_weight: L1 between PoseNet's ``T_src_tgt`` and odometry's (0: off).
        ranking_weight, normal_weight, normal_ranking_weight: SC-Depth v3 terms (with a
            teacher's pseudo-depth in the batch).
        ssim_weight: SSIM share of the photometric error, in [0, 1].
        use_auto_mask, use_self_mask: SC-Depth v1 masks.
        auto_mask_error: what the auto-mask compares, ``"photometric"`` (monodepth2) or
            ``"l1"`` (sc_depth_pl), see :mod:`depth_ros_training.losses.sc_depth`.
        ranking_pairs, ranking_tau: v3 ranking sampling (pairs per image, ordinal threshold).
    """

    photometric_weight: float = 1.0
    geometry_weight: float = 0.5
    smoothness_weight: float = 0.1
    velocity_weight: float = 0.0
    pose_supervision_weight: float = 0.0
    ranking_weight: float = 0.0
    normal_weight: float = 0.0
    normal_ranking_weight: float = 0.0
    ssim_weight: float = 0.85
    use_auto_mask: bool = True
    use_self_mask: bool = True
    auto_mask_error: str = "photometric"
    ranking_pairs: int = 3000
    ranking_tau: float = 0.03

    from_hparams = classmethod(_from_hparams)

    def __post_init__(self) -> None:
        for name in ("photometric_weight", "geometry_weight", "smoothness_weight", "velocity_weight", "pose_supervision_weight", "ranking_weight", "normal_weight", "normal_ranking_weight"):
            _finite_non_negative(name, getattr(self, name))
        if not 0.0 <= self.ssim_weight <= 1.0:
            raise ValueError(f"ssim_weight must be in [0, 1], got {self.ssim_weight}")
        if self.auto_mask_error not in AUTO_MASK_ERRORS:
            raise ValueError(f"auto_mask_error must be one of {AUTO_MASK_ERRORS}, got {self.auto_mask_error!r}")
        if not isinstance(self.ranking_pairs, int) or self.ranking_pairs < 1:
            raise ValueError(f"ranking_pairs must be an integer >= 1, got {self.ranking_pairs!r}")
        if not self.ranking_tau > 0:
            raise ValueError(f"ranking_tau must be > 0, got {self.ranking_tau!r}")

    @property
    def uses_teacher(self) -> bool:
        """Whether a teacher's pseudo-depth feeds any term."""
        return self.ranking_weight > 0 or self.normal_weight > 0 or self.normal_ranking_weight > 0


@dataclass(frozen=True)
class HintConfig:
    """Depth hints from a plane sweep (see :mod:`depth_ros_training.losses.hints`).

    Attributes:
        hint_weight: weight of the hint term (0: off).
        hint_depths: plane-sweep hypotheses (>= 3), uniform in inverse depth.
        hint_downsample: the sweep runs on images area-downsampled by 1, 2 or 4.
        hint_ratio: use the hint where its reprojection error is below this fraction of the
            network's, in (0, 1].
        hint_loss: one of ``HINT_LOSSES`` (``"log1p"``, ``"log_ratio"``).
        hint_cache_mb: MB of float32 hints kept per process when they depend on the sample
            alone (odometry warps); 0: no cache.
    """

    hint_weight: float = 0.0
    hint_depths: int = 32
    hint_downsample: int = 2
    hint_ratio: float = 1.0
    hint_loss: str = "log1p"
    hint_cache_mb: float = 1024.0

    from_hparams = classmethod(_from_hparams)

    def __post_init__(self) -> None:
        _finite_non_negative("hint_weight", self.hint_weight)
        if self.hint_loss not in HINT_LOSSES:
            raise ValueError(f"hint_loss must be one of {HINT_LOSSES}, got {self.hint_loss!r}")
        if not 0.0 < self.hint_ratio <= 1.0:
            raise ValueError(f"hint_ratio must be in (0, 1], got {self.hint_ratio!r}")
        if self.hint_downsample not in (1, 2, 4):
            raise ValueError(f"hint_downsample must be 1, 2 or 4, got {self.hint_downsample!r}")
        if not self.hint_cache_mb >= 0:
            raise ValueError(f"hint_cache_mb must be >= 0, got {self.hint_cache_mb!r}")
        if not isinstance(self.hint_depths, int) or self.hint_depths < 3:
            raise ValueError(f"hint_depths must be an integer >= 3, got {self.hint_depths!r}")


@dataclass(frozen=True)
class PoseConfig:
    """Where the warps' poses come from and which pose / depth passes a step runs.

    Attributes:
        warp_pose_source: ``"network"`` (PoseNet's poses warp, SC-Depth) or ``"odometry"``
            (the bag's odometry poses warp; PoseNet learns from the odometry terms only).
        pose_pairs: ``"all"`` (PoseNet on every (target, source) pair) or ``"one"`` (in
            training, one random source per sample; needs odometry warps).
        pose_from_inverse: ``T_tgt_src`` as the inverse of PoseNet's ``T_src_tgt`` instead of
            a second PoseNet pass on the swapped pair.
        source_depth_grad: back-propagate through the source frames' depths (SC-Depth).
    """

    warp_pose_source: str = "network"
    pose_pairs: str = "all"
    pose_from_inverse: bool = False
    source_depth_grad: bool = True

    from_hparams = classmethod(_from_hparams)

    def __post_init__(self) -> None:
        if self.warp_pose_source not in WARP_POSE_SOURCES:
            raise ValueError(f"warp_pose_source must be network|odometry, got {self.warp_pose_source!r}")
        if self.pose_pairs not in POSE_PAIRS:
            raise ValueError(f"pose_pairs must be all|one, got {self.pose_pairs!r}")
        if self.pose_pairs == "one" and self.warp_pose_source != "odometry":
            raise ValueError("pose_pairs='one' needs warp_pose_source='odometry' (warping with PoseNet needs a pose for every source)")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        lr: Adam learning rate (peak of the schedule), positive and finite.
        weight_decay: AdamW weight decay (0: plain Adam).
        lr_schedule: ``"constant"``, ``"step"`` (x0.1 at 80 % of max steps) or ``"onecycle"``
            (linear warm-up over 10 % of the steps from lr/10, then cosine decay to lr/20).
        schedule_seconds: run the one-cycle schedule over this much wall-clock time instead
            of over max_steps; None: over max_steps.
    """

    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    schedule_seconds: float | None = None

    from_hparams = classmethod(_from_hparams)

    def __post_init__(self) -> None:
        # checked here, not deep inside fit (Adam's own check comes only after the bags are indexed)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite learning rate, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be constant|step|onecycle, got {self.lr_schedule!r}")
        if self.schedule_seconds is not None and not self.schedule_seconds > 0:
            raise ValueError(f"schedule_seconds must be positive, got {self.schedule_seconds}")
