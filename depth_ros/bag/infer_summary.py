"""What ``depth-ros infer`` did: the per-run summary and the log of skipped frames.

:data:`SKIP_REASONS` names every reason a frame can be skipped for (those of the frame
pipeline, :data:`depth_ros.pipeline.REFUSAL_REASONS`, plus the bag's own: stamps and pairing).
"""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from depth_ros.errors import one_line
from depth_ros.pipeline import REFUSAL_REASONS

__all__ = ["InferSummary", "SKIP_REASONS", "STAGES", "SkipLog"]

_log = logging.getLogger("depth_ros.bag.infer")

#: Why a frame was skipped -> what the user reads in the summary.
SKIP_REASONS: dict[str, str] = {
    "bad_stamp": "image header stamp invalid (nanosec outside [0, 1e9))",
    "duplicate_stamp": "image with the stamp of an earlier image (the same frame recorded twice)",
    "missing_camera_info": "no camera_info with the image's stamp",
    **REFUSAL_REASONS,
}
#: Timing stages of the summary, in pipeline order.
STAGES = ("read", "preprocess", "backend", "postprocess", "cloud", "write")


@dataclass
class InferSummary:
    """What :func:`infer_bag` did.

    Attributes:
        frames_in: images taken from the bag (paired or not).
        frames_out: depth images written.
        skipped: reason (a key of :data:`SKIP_REASONS`) -> frames skipped.
        wall_s: seconds from opening the bag to the output file being complete (model
            loading excluded).
        timing_s: stage (:data:`STAGES`) -> total seconds spent in it (the stages overlap when
            ``overlapped``: they then add up to more than ``wall_s``).
        scale_sources: DepthInfo.scale_source -> frames.
        messages_dropped: topic -> camera_info / LiDAR messages dropped for an invalid stamp.
        pose_model: the pose model's name when one ran ("" otherwise); its time is
            ``timing_s["pose"]``.
        odometry_out: odometry messages written (one per frame the pose model could use).
        odometry_resets: times the odometry restarted after the first frame (gap, stamp back,
            camera change), as the pose node's warnings.
        pose_skipped: reason -> frames whose odometry was not written (the pose network's
            input or output refused), the depth of those frames not affected.
    """

    input_path: str
    output_path: str
    image_topic: str = ""
    camera_info_topic: str = ""
    lidar_topic: str | None = None
    output_topics: list[str] = field(default_factory=list)
    model: str = ""
    output_kind: str = ""
    backend: str = ""
    frames_in: int = 0
    frames_out: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    timing_s: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    scale_sources: dict[str, int] = field(default_factory=dict)
    messages_dropped: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    overlapped: bool = False
    pose_model: str = ""
    odometry_out: int = 0
    odometry_resets: int = 0
    pose_skipped: dict[str, int] = field(default_factory=dict)

    @property
    def frames_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def fps(self) -> float:
        """Depth images written per second of wall time."""
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def scale_source(self) -> str:
        """The scale source of most frames ("" before any frame)."""
        return max(self.scale_sources, key=self.scale_sources.__getitem__) if self.scale_sources else ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(frames_skipped=self.frames_skipped, fps=self.fps, scale_source=self.scale_source)
        return d

    def format(self) -> str:
        """A few human-readable lines (the CLI prints them)."""
        per_frame = max(self.frames_out, 1)
        timing = f"wall {self.wall_s / per_frame * 1e3:.1f}; stages" + (" (overlapping)" if self.overlapped else "")
        stages = STAGES + (("pose",) if "pose" in self.timing_s else ())
        timing += ": " + ", ".join(f"{s} {self.timing_s.get(s, 0.0) / per_frame * 1e3:.1f}" for s in stages)
        lines = [
            f"wrote {self.output_path}: {self.frames_out} depth frames from {self.frames_in} images "
            f"({self.frames_skipped} skipped) in {self.wall_s:.2f} s, {self.fps:.1f} FPS",
            f"  input {self.input_path}: {self.image_topic} + {self.camera_info_topic or 'no camera_info (predicted camera)'}"
            + (f" + {self.lidar_topic}" if self.lidar_topic else ""),
            f"  model {self.model} ({self.output_kind}) on {self.backend}; "
            f"scale source: {self.scale_source or 'n/a'}",
            f"  ms per frame: {timing}",
        ]
        if self.pose_model:
            lines.append(f"  odometry of pose model {self.pose_model}: {self.odometry_out} poses, "
                         f"{self.odometry_resets} reset(s)"
                         + "".join(f", {n} not written ({r})" for r, n in sorted(self.pose_skipped.items())))
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"  skipped {count}: {reason} ({SKIP_REASONS.get(reason, reason)})")
        for topic, count in sorted(self.messages_dropped.items()):
            lines.append(f"  dropped {count} message(s) on {topic}: header stamp invalid")
        return "\n".join(lines)



class SkipLog:
    """Counts skipped frames by reason; logs the first of each reason, the counts at the end."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}
        self.dropped: Counter[str] = Counter()
        self.dropped_by_topic: Counter[str] = Counter()

    def skip(self, reason: str, where: str, detail: str) -> None:
        """Count one frame skipped for ``reason``; ``where``: e.g. "at stamp 17 ns"."""
        detail = one_line(detail)  # it may quote the message's own strings (encoding, format)
        if reason not in self.counts:
            self.first[reason] = detail
            _log.warning(
                "skipping frame %s: %s: %s (further frames skipped for this reason are counted)",
                where, reason, detail,
            )
        self.counts[reason] += 1

    def drop_message(self, topic: str, detail: str) -> None:
        """Count one partner message (camera_info, LiDAR) dropped; the first per topic is logged."""
        key = f"message on {topic}"
        if key not in self.dropped:
            _log.warning("dropping %s: %s (further ones are counted)", key, one_line(detail))
        self.dropped[key] += 1
        self.dropped_by_topic[topic] += 1

    def log_totals(self) -> None:
        for reason, count in sorted(self.counts.items()):
            _log.warning("skipped %d frame(s): %s (first: %s)", count, reason, self.first[reason])
        for key, count in sorted(self.dropped.items()):
            _log.warning("dropped %d %s: header stamp invalid", count, key)
