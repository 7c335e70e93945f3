"""Synthetic scenes with exact ground truth: a seeded ray-caster and a rosbag2 writer.

``render_sequence(SynthConfig(...))`` yields :class:`Frame` s (RGB, exact z-depth, pose,
velocities, LiDAR points); ``write_bag(config, path)`` writes them as a rosbag2 bag
(``depth-ros synth``).
"""
from typing import Any

from depth_ros.synthetic.config import SynthConfig, load_config
from depth_ros.synthetic.render import Frame, Renderer, render_sequence

__all__ = ["Frame", "Renderer", "SynthConfig", "load_config", "render_sequence", "write_bag"]


def __getattr__(name: str) -> Any:  # write_bag pulls in rosbags: import it on first use
    if name == "write_bag":
        from depth_ros.synthetic.bagio import write_bag

        return write_bag
    raise AttributeError(name)
