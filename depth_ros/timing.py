"""Per-stage wall-clock time of one frame (pure Python, no ROS).

The frame path (:class:`~depth_ros.pipeline.FramePipeline`) and the depth node time their stages
with one :class:`StageTimer` per frame; the result is a mapping stage name -> milliseconds
(:attr:`~depth_ros.pipeline.FrameResult.stage_ms`). Stage names, in the order a frame meets them:

==================  =========================================================================
``wait``            node: the image callback took the frame -> the worker picked it up
``decode``          message -> (H, W, 3) uint8 RGB + CameraModel (untrusted input checked;
                    node: and the sparse points of scale policy sparse_alignment)
``rectify``         lens distortion removed (a no-op for an undistorted camera)
``preprocess``      the network input of the ModelSpec (aspect window, resize, normalise)
``infer``           the backend call (the network)
``postprocess``     network output -> metric depth at camera resolution
``fill_depth``      node: depth/image message filled      (``publish_depth``: published)
``fill_info``       node: depth/camera_info filled        (``publish_info``: published)
``cloud``           the organized cloud computed (only while someone subscribes)
``fill_cloud``      node: depth/points filled             (``publish_cloud``: published)
``publish_meta``    node: depth/info filled and published
==================  =========================================================================

Stages never overlap, so their sum is at most the frame's total (:attr:`StageTimer.total_ms`).
Each timed block also records the CPU time of its thread (``time.thread_time``,
:attr:`StageTimer.cpu_ms`): on a loaded machine a stage's wall time is mostly waiting for a
core, its CPU time is the work it costs.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Mapping

__all__ = ["NETWORK_STAGE", "STAGES", "StageTimer", "non_network_ms"]

#: Stage names in frame order (see the module docstring).
STAGES: tuple[str, ...] = (
    "wait", "decode", "rectify", "preprocess", "infer", "postprocess", "fill_depth", "publish_depth",
    "fill_info", "publish_info", "cloud", "fill_cloud", "publish_cloud", "publish_meta",
)
#: The network's own stage (what the rest is compared with).
NETWORK_STAGE = "infer"


class StageTimer:
    """Milliseconds per named stage of one frame (``time.perf_counter``).

    Args:
        start_s: ``time.perf_counter()`` value the frame's total counts from (default: now).

    Attributes:
        ms: stage name -> milliseconds spent in it (a stage entered twice adds up).
        cpu_ms: stage name -> CPU milliseconds of the calling thread in the :meth:`stage`
            blocks (stages only :meth:`add`-ed have none).
    """

    def __init__(self, start_s: float | None = None) -> None:
        self.start_s = time.perf_counter() if start_s is None else float(start_s)
        self.ms: dict[str, float] = {}
        self.cpu_ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (counted even when the block raises)."""
        # The CPU clock is read inside the wall clock's interval (and both before any bookkeeping),
        # so a stage's CPU time does not exceed its wall time; what is left from the two clocks'
        # different sources (nanoseconds) is cut by the min().
        t0 = time.perf_counter()
        c0 = time.thread_time()
        try:
            yield
        finally:
            c1 = time.thread_time()
            t1 = time.perf_counter()
            self.add(name, (t1 - t0) * 1e3)
            self.cpu_ms[name] = self.cpu_ms.get(name, 0.0) + min(max(0.0, (c1 - c0) * 1e3), (t1 - t0) * 1e3)

    def add(self, name: str, ms: float) -> None:
        """Add ``ms`` milliseconds (measured elsewhere) to stage ``name``.

        Raises:
            ValueError: ``ms`` is negative or not finite.
        """
        ms = float(ms)
        if not (0.0 <= ms < float("inf")):
            raise ValueError(f"stage '{name}': time must be a finite number of ms >= 0, got {ms}")
        self.ms[name] = self.ms.get(name, 0.0) + ms

    def total_ms(self) -> float:
        """Milliseconds from ``start_s`` to now."""
        return (time.perf_counter() - self.start_s) * 1e3


def non_network_ms(stage_ms: Mapping[str, float]) -> float:
    """Milliseconds of a frame's work that is not the network: every stage but ``infer`` and
    ``wait`` (waiting for the worker is load, not work)."""
    return float(sum(v for k, v in stage_ms.items() if k not in (NETWORK_STAGE, "wait")))
