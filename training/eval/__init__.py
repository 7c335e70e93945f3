"""Evaluation: depth metrics against ground truth, Depth Pro's boundary F1, flicker, ATE / RPE.

``depth-ros-train eval`` (:mod:`.cli`, library :mod:`.evaluate`) runs them on bags.
"""
from depth_ros_training.eval.boundary import BoundaryScores, si_boundary_f1, si_boundary_recall
from depth_ros_training.eval.metrics import DepthMetrics, compute_depth_metrics, mean_metrics, scale_ratio_stats
from depth_ros_training.eval.odometry import absolute_trajectory_error, evaluate_trajectory, relative_pose_error
from depth_ros_training.eval.temporal import FlickerResult, temporal_flicker

__all__ = [
    "BoundaryScores",
    "DepthMetrics",
    "FlickerResult",
    "absolute_trajectory_error",
    "compute_depth_metrics",
    "evaluate_trajectory",
    "mean_metrics",
    "relative_pose_error",
    "scale_ratio_stats",
    "si_boundary_f1",
    "si_boundary_recall",
    "temporal_flicker",
]
