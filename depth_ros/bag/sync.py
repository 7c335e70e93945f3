"""Pair images with their camera_info (and optionally a LiDAR cloud) by header stamp.

Bags are read in log-time order, which is not always header-stamp order: a camera_info can
arrive before or after its image. Images wait in a bounded buffer until their partners
arrive; when the buffer is full the oldest image is released without them (and the caller
counts it as missing camera_info). Nothing here decodes or allocates image data.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["FrameSynchronizer", "SyncedFrame"]

T = TypeVar("T")


@dataclass
class SyncedFrame(Generic[T]):
    """One image with whatever partners were found.

    Attributes:
        stamp_ns: the image's header stamp in nanoseconds.
        image: the caller's image item.
        info: the camera_info item whose stamp matched (``|dt| <= tolerance``), or None.
        lidar: the cloud item nearest in stamp within the LiDAR tolerance, or None (also None
            when no LiDAR stream is synchronised).
    """

    stamp_ns: int
    image: T
    info: Any = None
    lidar: Any = None
    _info_dt_ns: int | None = None


class FrameSynchronizer(Generic[T]):
    """Stamp matching of image + camera_info (+ LiDAR) with bounded buffers.

    Args:
        tolerance_ns: largest ``|stamp(image) - stamp(camera_info)|`` accepted as a match
            (0: exact stamps, which is what camera drivers publish).
        max_pending: images held while waiting for a partner, and partners remembered
            (each); the oldest waiting image is released without its partner beyond this.
        with_lidar: also attach a LiDAR cloud to each image.
        lidar_tolerance_ns: largest ``|stamp(image) - stamp(cloud)|`` for the cloud attached.

    Feed messages in the order they were read; :meth:`add_image`, :meth:`add_info`,
    :meth:`add_lidar` return the frames that became complete; :meth:`flush` returns the
    rest at the end of the bag.
    """

    def __init__(
        self,
        tolerance_ns: int = 0,
        max_pending: int = 32,
        with_lidar: bool = False,
        lidar_tolerance_ns: int = 50_000_000,
    ) -> None:
        if tolerance_ns < 0 or lidar_tolerance_ns < 0:
            raise ValueError(f"tolerances must be >= 0 ns, got {tolerance_ns}, {lidar_tolerance_ns}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.tolerance_ns = int(tolerance_ns)
        self.max_pending = int(max_pending)
        self.with_lidar = with_lidar
        self.lidar_tolerance_ns = int(lidar_tolerance_ns)
        self._pending: list[SyncedFrame[T]] = []
        self._infos: deque[tuple[int, Any]] = deque(maxlen=max_pending)
        self._lidars: deque[tuple[int, Any]] = deque(maxlen=max_pending)
        self._latest_lidar_ns: int | None = None

    @property
    def pending(self) -> int:
        """Images waiting for a partner."""
        return len(self._pending)

    def add_image(self, stamp_ns: int, image: T) -> list[SyncedFrame[T]]:
        frame: SyncedFrame[T] = SyncedFrame(int(stamp_ns), image)
        for info_ns, info in self._infos:
            self._offer_info(frame, info_ns, info)
        self._pending.append(frame)
        released = self._release_complete()
        while len(self._pending) > self.max_pending:
            released.append(self._finish(self._pending.pop(0)))
        return released

    def add_info(self, stamp_ns: int, info: Any) -> list[SyncedFrame[T]]:
        stamp_ns = int(stamp_ns)
        self._infos.append((stamp_ns, info))
        for frame in self._pending:
            self._offer_info(frame, stamp_ns, info)
        return self._release_complete()

    def add_lidar(self, stamp_ns: int, cloud: Any) -> list[SyncedFrame[T]]:
        stamp_ns = int(stamp_ns)
        self._lidars.append((stamp_ns, cloud))
        if self._latest_lidar_ns is None or stamp_ns > self._latest_lidar_ns:
            self._latest_lidar_ns = stamp_ns
        return self._release_complete()

    def flush(self) -> list[SyncedFrame[T]]:
        """Release every waiting image (end of input), with whatever partners they have."""
        released = [self._finish(frame) for frame in self._pending]
        self._pending.clear()
        return released

    # -- internals -------------------------------------------------------------------------
    def _offer_info(self, frame: SyncedFrame[T], info_ns: int, info: Any) -> None:
        dt_ns = abs(info_ns - frame.stamp_ns)
        if dt_ns <= self.tolerance_ns and (frame._info_dt_ns is None or dt_ns < frame._info_dt_ns):
            frame.info = info
            frame._info_dt_ns = dt_ns

    def _complete(self, frame: SyncedFrame[T]) -> bool:
        if frame.info is None:
            return False
        # An exact match cannot be improved on; a near one might be by a later camera_info.
        if frame._info_dt_ns and not self._info_passed(frame):
            return False
        if self.with_lidar:
            # The nearest cloud is known once one at or after the image has been seen.
            return self._latest_lidar_ns is not None and self._latest_lidar_ns >= frame.stamp_ns
        return True

    def _info_passed(self, frame: SyncedFrame[T]) -> bool:
        return any(ns >= frame.stamp_ns for ns, _ in self._infos)

    def _release_complete(self) -> list[SyncedFrame[T]]:
        released = [self._finish(f) for f in self._pending if self._complete(f)]
        if released:
            done = {id(f) for f in released}
            self._pending = [f for f in self._pending if id(f) not in done]
        return released

    def _finish(self, frame: SyncedFrame[T]) -> SyncedFrame[T]:
        if self.with_lidar:
            best: tuple[int, Any] | None = None
            for lidar_ns, cloud in self._lidars:
                dt_ns = abs(lidar_ns - frame.stamp_ns)
                if dt_ns <= self.lidar_tolerance_ns and (best is None or dt_ns < best[0]):
                    best = (dt_ns, cloud)
            frame.lidar = best[1] if best is not None else None
        return frame
