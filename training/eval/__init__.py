"""Evaluation: depth metrics against ground truth."""
from depth_ros_training.eval.metrics import DepthMetrics, compute_depth_metrics, mean_metrics

__all__ = ["DepthMetrics", "compute_depth_metrics", "mean_metrics"]
