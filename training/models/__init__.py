"""Depth and pose networks (pure torch, one network per module)."""
from depth_ros_training.models.dispnet import DispNet, disp_to_depth
from depth_ros_training.models.resnet_encoder import ResNetEncoder

__all__ = ["DispNet", "ResNetEncoder", "disp_to_depth"]
