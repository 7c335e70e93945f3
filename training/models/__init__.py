"""Depth and pose networks (pure torch, one network per module)."""
from depth_ros_training.models.dispnet import DispNet, disp_to_depth
from depth_ros_training.models.normalization import ImageNormalization, normalize_image
from depth_ros_training.models.posenet import LightPoseNet, PoseNet, axis_angle_to_matrix, pose_vec_to_mat
from depth_ros_training.models.resnet_encoder import ResNetEncoder

__all__ = ["DispNet", "ImageNormalization", "LightPoseNet", "PoseNet", "ResNetEncoder", "axis_angle_to_matrix", "disp_to_depth", "normalize_image", "pose_vec_to_mat"]
