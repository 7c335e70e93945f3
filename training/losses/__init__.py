"""Self-supervised losses (pure torch): SC-Depth v1 / v3, monodepth2 smoothness, PackNet velocity,
depth hints from a plane sweep (Depth Hints); supervised losses on depth labels: MiDaS
(scale-and-shift invariant) and Depth Pro (canonical inverse depth).

Images passed to these losses are in [0, 1] (not mean/std normalised).
"""
from depth_ros_training.losses.depth_pro import DerivativeLosses, derivative_losses, multiscale_derivative_loss, trimmed_mae
from depth_ros_training.losses.hints import PlaneSweep, depth_hint_loss, hint_depth, min_reprojection_error, plane_sweep_depth
from depth_ros_training.losses.midas import MidasLoss, ScaleShift, align_scale_shift, gradient_matching_loss, ssi_mse_loss, ssi_trimmed_mae_loss
from depth_ros_training.losses.normals import edge_guided_normal_ranking_loss, normal_matching_loss, normals_from_depth
from depth_ros_training.losses.photometric import SsimDissimilarity, photometric_error, ssim_dissimilarity
from depth_ros_training.losses.ranking import depth_ranking_loss
from depth_ros_training.losses.sc_depth import PairLoss, ScDepthTerms, masked_mean, sc_depth_loss, sc_depth_pair_loss
from depth_ros_training.losses.smoothness import EdgeAwareSmoothness, edge_aware_smoothness
from depth_ros_training.losses.velocity import velocity_loss
from depth_ros_training.losses.warping import WarpResult, inverse_warp, scale_intrinsics

__all__ = [
    "DerivativeLosses",
    "EdgeAwareSmoothness",
    "MidasLoss",
    "PairLoss",
    "PlaneSweep",
    "ScDepthTerms",
    "ScaleShift",
    "SsimDissimilarity",
    "WarpResult",
    "align_scale_shift",
    "depth_hint_loss",
    "depth_ranking_loss",
    "derivative_losses",
    "edge_aware_smoothness",
    "edge_guided_normal_ranking_loss",
    "gradient_matching_loss",
    "hint_depth",
    "inverse_warp",
    "masked_mean",
    "min_reprojection_error",
    "multiscale_derivative_loss",
    "normal_matching_loss",
    "normals_from_depth",
    "photometric_error",
    "plane_sweep_depth",
    "sc_depth_loss",
    "sc_depth_pair_loss",
    "scale_intrinsics",
    "ssi_mse_loss",
    "ssi_trimmed_mae_loss",
    "ssim_dissimilarity",
    "trimmed_mae",
    "velocity_loss",
]
