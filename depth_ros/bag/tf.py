"""Static transform tree from ``/tf_static`` (tf2_msgs/TFMessage) messages.

Convention: a TransformStamped with ``header.frame_id = parent`` and ``child_frame_id = child``
holds ``T_parent_child``: it maps points expressed in the child frame into the parent frame
(``p_parent = R p_child + t``), as tf2 does.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from depth_ros.core.rotation import quaternion_to_matrix as _quaternion_to_matrix
from depth_ros.errors import InputError

__all__ = ["StaticTransforms", "quaternion_to_matrix"]

_MAX_DEPTH = 64  # a tf tree deeper than this is a loop or garbage


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """(3, 3) float64 rotation of one transform's quaternion (x, y, z, w); normalised, zero norm
    refused. The math is :func:`depth_ros.core.rotation.quaternion_to_matrix`; this wrapper
    takes a message's four fields and turns a bad one into an :class:`InputError`."""
    try:
        return _quaternion_to_matrix(np.array([x, y, z, w], dtype=np.float64))
    except (ValueError, TypeError) as err:
        raise InputError(f"transform rotation is not a valid quaternion: (x, y, z, w) = {(x, y, z, w)}") from err


def _frame(name: str) -> str:
    return name[1:] if name.startswith("/") else name  # tf2 ignores a leading slash


class StaticTransforms:
    """A tree of fixed transforms; :meth:`lookup` composes along it."""

    def __init__(self) -> None:
        self._parent: dict[str, tuple[str, np.ndarray]] = {}  # child -> (parent, T_parent_child)

    def __len__(self) -> int:
        return len(self._parent)

    @property
    def frames(self) -> list[str]:
        names = set(self._parent)
        names.update(parent for parent, _ in self._parent.values())
        return sorted(names)

    def add(self, parent: str, child: str, T_parent_child: np.ndarray) -> None:
        """Add or replace the edge ``parent -> child`` (the later message wins, as in tf2)."""
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise InputError(f"transform {parent} -> {child} must be a finite 4x4 matrix, got shape {T.shape}")
        parent, child = _frame(parent), _frame(child)
        if parent == child:
            raise InputError(f"transform from frame {parent!r} to itself")
        self._parent[child] = (parent, T)

    def add_message(self, msg: Any) -> None:
        """Add every transform of a tf2_msgs/TFMessage (typestore or rclpy message)."""
        for ts in msg.transforms:
            t = ts.transform.translation
            r = ts.transform.rotation
            T = np.eye(4)
            T[:3, :3] = quaternion_to_matrix(r.x, r.y, r.z, r.w)
            T[:3, 3] = (t.x, t.y, t.z)
            self.add(ts.header.frame_id, ts.child_frame_id, T)

    @classmethod
    def from_messages(cls, msgs: Iterable[Any]) -> "StaticTransforms":
        tree = cls()
        for msg in msgs:
            tree.add_message(msg)
        return tree

    def _to_root(self, frame: str) -> tuple[str, np.ndarray]:
        """(root, T_root_frame)."""
        T = np.eye(4)
        for _ in range(_MAX_DEPTH):
            if frame not in self._parent:
                return frame, T
            parent, T_parent_frame = self._parent[frame]
            T = T_parent_frame @ T
            frame = parent
        raise InputError(f"/tf_static has a loop or is deeper than {_MAX_DEPTH} frames near {frame!r}")

    def lookup(self, target: str, source: str) -> np.ndarray:
        """``T_target_source`` (4, 4) float64: maps points in ``source`` into ``target``.

        Raises:
            InputError: the two frames are not connected by the static transforms.
        """
        target, source = _frame(target), _frame(source)
        if target == source:
            return np.eye(4)
        root_t, T_root_target = self._to_root(target)
        root_s, T_root_source = self._to_root(source)
        if root_t != root_s or (target not in self.frames) or (source not in self.frames):
            known = ", ".join(self.frames) or "none"
            raise InputError(
                f"no static transform from {source!r} to {target!r} in /tf_static (frames known: {known})"
            )
        return np.linalg.inv(T_root_target) @ T_root_source
