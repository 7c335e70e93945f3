"""Shared pytest configuration.

Markers:
  gpu   -- needs a CUDA device (and TensorRT where named); runs only where one exists.
  ros   -- uses the real ROS 2 graph (rclpy + Fast DDS).
  slow  -- takes more than a few seconds (training runs, long streams).
"""
import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (TensorRT tests also need tensorrt)")
    config.addinivalue_line("markers", "ros: uses the real ROS 2 graph (rclpy + Fast DDS)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    # rclpy writes logs to ~/.ros/log otherwise.
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="depth_ros_test_log_"))
