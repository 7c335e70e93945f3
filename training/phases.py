"""Typed results of :class:`~depth_ros_training.module.DepthTrainingModule`'s training phases.

Each phase of a training step is a method of the module that returns one of these; a
training task that overrides a phase returns the same type, so the other phases keep working.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from depth_ros_training.losses import ScDepthTerms

__all__ = ["DepthPrediction", "LossTerms", "PhotometricTerms", "PosePrediction", "StepInputs"]


@dataclass(frozen=True)
class StepInputs:
    """What the phases read from a batch.

    Attributes:
        tgt: (B, 3, H, W) target image in [0, 1], as the batch carries it (the losses compare
            these; the networks normalise them at their input).
        srcs: (B, S, 3, H, W) source images in [0, 1].
        K: (B, 3, 3) intrinsics in pixels at (H, W).
        distance_m: (B, S) odometry distance travelled between target and source, metres
            (NaN where unknown), or None.
        T_odom: (B, S, 4, 4) odometry ``T_src_tgt`` (metres), or None.
    """

    tgt: Tensor
    srcs: Tensor
    K: Tensor
    distance_m: Tensor | None
    T_odom: Tensor | None

    @property
    def batch_size(self) -> int:
        return self.tgt.shape[0]

    @property
    def num_sources(self) -> int:
        return self.srcs.shape[1]

    @property
    def src_list(self) -> list[Tensor]:
        """The S source images, each (B, 3, H, W) in [0, 1]."""
        return list(self.srcs.unbind(1))


@dataclass(frozen=True)
class DepthPrediction:
    """DispNet's outputs for one step.

    Attributes:
        tgt_disps: per scale k, (B, 1, H/2^k, W/2^k) disparity in (0, 1) of the target.
        src_disps: per scale, (B*S, 1, H/2^k, W/2^k) source disparities (frames in source
            order within each sample), or None where no term uses them.
        tgt_depth: (B, 1, H, W) target depth in metres (scale 0).
    """

    tgt_disps: list[Tensor]
    src_disps: list[Tensor | None]
    tgt_depth: Tensor


@dataclass(frozen=True)
class PosePrediction:
    """PoseNet's outputs and the warps of one step.

    Attributes:
        vecs: P PoseNet outputs (B, 6) ``T_src_tgt`` (axis-angle rad, translation m) for the
            pose pairs (every source, or one per sample with ``pose_pairs="one"``).
        poses: the P ``vecs`` as (B, 4, 4) matrices.
        distance_m: (B, P) odometry distances of the pose pairs, or None.
        T_odom: (B, P, 4, 4) odometry ``T_src_tgt`` of the pose pairs, or None.
        warp: S transforms ``T_src_tgt`` (B, 4, 4) the photometric terms warp the sources with.
        warp_inv: S transforms ``T_tgt_src`` (B, 4, 4) for the backward direction.
    """

    vecs: list[Tensor]
    poses: list[Tensor]
    distance_m: Tensor | None
    T_odom: Tensor | None
    warp: list[Tensor]
    warp_inv: list[Tensor]


@dataclass(frozen=True)
class LossTerms:
    """One phase's share of the loss.

    Attributes:
        loss: scalar tensor, the phase's weighted contribution to the total; None when the
            phase adds nothing (its terms off).
        terms: the named scalars to log (unweighted terms and statistics), in logging order.
    """

    loss: Tensor | None
    terms: dict[str, Tensor]


@dataclass(frozen=True)
class PhotometricTerms(LossTerms):
    """:class:`LossTerms` of the SC-Depth v1 phase, with the scale-0 :class:`ScDepthTerms`
    (``sc``) that the hint and teacher phases read (per-pixel error, self-discovered mask)."""

    sc: ScDepthTerms | None = None
