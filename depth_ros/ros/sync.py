"""Frame pairing and the newest-frame slot shared by the nodes (pure Python, no ROS).

* :class:`StampPairer` pairs each image with the camera_info of the same stamp (within a
  tolerance), whichever arrives first; an image whose camera_info never comes is dropped
  when a newer image replaces it, and counted.
* :class:`LatestSlot` hands work from the subscription callbacks to one worker thread. It
  holds at most one item: a new item replaces an unprocessed one (counted as a drop), so
  callbacks never block and the worker never processes stale frames.
* :class:`StampOrder` classifies each stamp against the previous one: in order, out of order
  (skipped), or a jump back far enough to be a restart (bag loop), which resets state.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["LatestSlot", "Pair", "StampOrder", "StampPairer"]

T = TypeVar("T")


@dataclass(frozen=True)
class Pair:
    """An image and its camera_info, with the image's stamp and arrival time (ns)."""

    image: Any
    info: Any
    stamp_ns: int
    received_ns: int


class StampPairer:
    """Pairs images and camera_infos by stamp.

    Images waiting for their camera_info are kept in arrival order, up to ``max_pending``: an
    image and the camera_info of the *previous* frame are on different topics and may be
    taken in either order (an executor that finds both ready handles the image subscription
    first), so one waiting slot lost frames that had a camera_info and warned about it.

    Args:
        tolerance_ns: largest |image stamp - info stamp| accepted as a pair.
        max_infos: camera_infos kept while waiting for their image (oldest evicted first).
        max_pending: images kept while waiting for their camera_info (oldest evicted first,
            counted in ``unpaired_images``).
    """

    def __init__(self, tolerance_ns: int, max_infos: int = 30, max_pending: int = 4) -> None:
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.tolerance_ns = int(tolerance_ns)
        self._max_infos = int(max_infos)
        self._max_pending = int(max_pending)
        self._infos: OrderedDict[int, Any] = OrderedDict()
        self._pending: OrderedDict[int, tuple[Any, int]] = OrderedDict()  # stamp -> (image, received_ns)
        self.unpaired_images = 0
        self.last_info_stamp_ns: int | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _closest(stamps: Any, stamp_ns: int, tolerance_ns: int) -> int | None:
        best, best_dt = None, None
        for s in stamps:
            dt = abs(s - stamp_ns)
            if dt <= tolerance_ns and (best_dt is None or dt < best_dt):
                best, best_dt = s, dt
        return best

    def add_info(self, stamp_ns: int, info: Any) -> Pair | None:
        """Store a camera_info; returns the pair if an image waiting has this stamp (images
        waiting from before it are then given up)."""
        with self._lock:
            self._infos[stamp_ns] = info
            self._infos.move_to_end(stamp_ns)
            while len(self._infos) > self._max_infos:
                self._infos.popitem(last=False)
            self.last_info_stamp_ns = stamp_ns
            key = self._closest(self._pending, stamp_ns, self.tolerance_ns)
            if key is None:
                return None
            image, received_ns = self._pending.pop(key)
            self._give_up_before(key)
            return Pair(image, info, key, received_ns)

    def _give_up_before(self, stamp_ns: int) -> None:
        """Images waiting from before a frame that paired: their camera_info will not come
        (camera_infos arrive in stamp order); counted as unpaired. Lock held."""
        for older in [s for s in self._pending if s < stamp_ns]:
            del self._pending[older]
            self.unpaired_images += 1

    def add_image(self, stamp_ns: int, image: Any, received_ns: int) -> tuple[Pair | None, bool]:
        """Offer an image.

        Returns:
            (pair or None, evicted): ``evicted`` is True when the oldest image still waiting
            for its camera_info was given up to make room for this one. An image that pairs
            gives up the images waiting from before it.
        """
        with self._lock:
            key = self._closest(self._infos, stamp_ns, self.tolerance_ns)
            if key is not None:
                self._give_up_before(stamp_ns)
                return Pair(image, self._infos[key], stamp_ns, received_ns), False
            self._pending[stamp_ns] = (image, received_ns)
            self._pending.move_to_end(stamp_ns)
            evicted = False
            while len(self._pending) > self._max_pending:
                self._pending.popitem(last=False)
                self.unpaired_images += 1
                evicted = True
            return None, evicted

    def pending(self) -> int:
        """Images waiting for their camera_info."""
        with self._lock:
            return len(self._pending)

    def reset(self) -> None:
        with self._lock:
            self._infos.clear()
            self._pending.clear()
            self.last_info_stamp_ns = None


class LatestSlot(Generic[T]):
    """A one-item mailbox: ``put`` never blocks and replaces an unprocessed item."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0
        self.put_count = 0

    def put(self, item: T) -> bool:
        """Store ``item``; returns True when it replaced one the worker had not taken (a drop)."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify()
            return replaced

    def get(self, timeout_s: float | None = None) -> T | None:
        """Take the item, waiting up to ``timeout_s``; None on timeout or after :meth:`close`."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout_s)
            item, self._item = self._item, None
            return None if self._closed else item

    def pending(self) -> int:
        """0 or 1: items waiting (the queue cannot grow beyond one)."""
        with self._cond:
            return 0 if self._item is None else 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class StampOrder:
    """Classifies stamps: ``"ok"``, ``"old"`` (not newer than the last; skip) or ``"reset"``.

    Args:
        reset_after_ns: a stamp this much older than the last accepted one is a restart
            (e.g. a bag replayed in a loop): state is reset and the frame accepted.
    """

    def __init__(self, reset_after_ns: int) -> None:
        self.reset_after_ns = int(reset_after_ns)
        self.last_ns: int | None = None

    def check(self, stamp_ns: int) -> str:
        last = self.last_ns
        if last is None or stamp_ns > last:
            self.last_ns = stamp_ns
            return "ok"
        if last - stamp_ns >= self.reset_after_ns > 0:
            self.last_ns = stamp_ns
            return "reset"
        return "old"

    def reset(self) -> None:
        self.last_ns = None
