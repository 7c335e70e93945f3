"""Offline self-supervised training from bags (installed as ``depth_ros_training``)."""
