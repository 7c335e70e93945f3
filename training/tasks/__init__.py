"""Training tasks on labelled depth (MiDaS, Depth Pro, ZoeDepth stage 2) besides the self-supervised SC-Depth module.

A task is a LightningModule built from one typed frozen config, trained on
:class:`~depth_ros_training.data.labelled.LabelledDataModule` and exported through the ModelSpec;
:data:`TASKS` names them for ``depth-ros-train`` (``task:`` in the YAML, saved in the checkpoint).
"""
from __future__ import annotations

__all__ = ["LABELLED_TASKS", "TASKS"]

#: Every task ``depth-ros-train fit`` knows; ``sc_depth`` is :mod:`depth_ros_training.module`.
TASKS: tuple[str, ...] = ("sc_depth", "midas", "depth_pro", "zoedepth")
#: The tasks trained on labelled data (a ``data.groups`` label source each); ``zoedepth`` has its
#: own runner (:func:`depth_ros_training.tasks.zoedepth.run_zoedepth`).
LABELLED_TASKS: tuple[str, ...] = ("midas", "depth_pro", "zoedepth")
