"""What the nodes do with each incoming message before the worker sees it (pure Python, no ROS).

A node must survive any message. Every subscription callback runs inside
:meth:`MessageGuard.guard`: an expected refusal (:class:`~depth_ros.errors.InputError`) becomes a
counted drop and a throttled warning, and any other exception (a bug) a counted drop and an
error logged *with its traceback*; either way the callback returns and the executor keeps
spinning.

Warnings are throttled per *problem*, never per message text: texts quote stamps, sizes,
object addresses and strings from the message itself, which differ from one message to the
next and would defeat the throttle. A problem is a fixed reason ("bad stamp", "bad image", ...)
plus, for refusals, the *wording* of the error with every number, address and quoted value
masked (:func:`problem_wording`): "step 5 is smaller than ..." and "step 7 is smaller than ..."
are one problem, an unsupported encoding is another and is not hidden behind it.

:class:`FrameIntake` is the image / camera_info logic both nodes share: stamp check, duplicate
and out-of-order stamps, pairing by stamp. It returns the :class:`~depth_ros.ros.sync.Pair` for
the worker, or None.
"""
from __future__ import annotations

import functools
import re
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator

from depth_ros import msgconv
from depth_ros.errors import InputError, one_line
from depth_ros.ros.sync import Pair, StampOrder, StampPairer

__all__ = [
    "FrameIntake", "FrameWorker", "MessageGuard", "Refused", "WarnThrottle", "decode_pair", "frame_refusals",
    "problem_wording", "refusing_as",
]

# Variable parts of an error text: quoted values (encoding, format, frame_id, field names: they
# come from the message), hex addresses, numbers, nan/inf.
_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|0x[0-9a-fA-F]+|[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\b(?:nan|inf)\b")
_WORDING_CHARS = 160


def problem_wording(text: str) -> str:
    """``text`` with every number, hex address and quoted value replaced by ``#`` (and cut at
    160 characters): the same problem in other numbers gives the same wording."""
    return _VARIABLE.sub("#", str(text))[:_WORDING_CHARS]


class WarnThrottle:
    """At most one log line per key per period.

    Keys are stable reasons, not message texts (see the module docstring). rclpy's own
    throttle is per call site, which would hide a second, different problem reported from the
    same line.
    """

    def __init__(self, period_s: float) -> None:
        self.period_ns = int(period_s * 1e9)
        self._last: dict[Hashable, int] = {}

    def ready(self, key: Hashable) -> bool:
        now = time.monotonic_ns()
        last = self._last.get(key)
        if last is not None and now - last < self.period_ns:
            return False
        if len(self._last) > 256:
            self._last.clear()
        self._last[key] = now
        return True


class Refused(InputError):
    """A message or frame refused for a stated reason.

    Attributes:
        reason: a short fixed phrase ("bad camera_info", "bad image", ...): the key of the
            drop counter and of the warning throttle.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@contextmanager
def refusing_as(reason: str) -> Iterator[None]:
    """Re-raise an InputError (or ValueError) from the block as :class:`Refused` with ``reason``."""
    try:
        yield
    except Refused:
        raise
    except (InputError, ValueError) as exc:
        raise Refused(reason, str(exc)) from None


#: The frame pipeline's refusal reasons (depth_ros.pipeline.REFUSAL_REASONS) -> the nodes'
#: refusal phrases (drop counters and warning throttle keys).
NODE_REFUSALS = {
    "bad_camera_info": "bad camera_info",
    "unsupported_encoding": "bad image",
    "bad_image": "bad image",
    "size_mismatch": "size mismatch",
    "preprocess": "preprocess",
    "non_finite_output": "bad model output",
    "scale_failed": "no metric scale",
}


@contextmanager
def frame_refusals() -> Iterator[None]:
    """Re-raise the frame pipeline's FrameRefused as :class:`Refused` with the node's phrase."""
    from depth_ros.pipeline import FrameRefused

    try:
        yield
    except FrameRefused as exc:
        raise Refused(NODE_REFUSALS.get(exc.reason, exc.reason), str(exc)) from None


def decode_pair(image: Any, info: Any, compressed: bool) -> tuple[Any, Any]:
    """(rgb (H, W, 3) uint8, CameraModel) of a node's image / camera_info pair: the frame
    pipeline's decode (:meth:`depth_ros.pipeline.FramePipeline.decode`), shared by both nodes.

    Raises:
        Refused: "bad camera_info", "bad image" or "size mismatch".
    """
    from depth_ros.pipeline import FramePipeline

    with frame_refusals():
        return FramePipeline.decode(image, info, compressed)


class MessageGuard:
    """Counted drops, throttled warnings and guarded callbacks of one node.

    Args:
        logger: has ``warning(text)`` and ``error(text)`` (an rclpy logger).
        period_s: at most one warning per reason per this many seconds.

    Attributes:
        dropped: reason -> messages or frames dropped for it.
        failures: unexpected exceptions caught (each a bug; logged with its traceback).
    """

    def __init__(self, logger: Any, period_s: float = 2.0) -> None:
        self.logger = logger
        self.throttle = WarnThrottle(period_s)
        self.dropped: Counter[str] = Counter()
        self.failures = 0

    def warn(self, key: Hashable, text: str) -> None:
        """Log ``text`` unless the same problem (``key``) was logged within the period.

        The text is logged as one printable line: it quotes strings from the message (an
        encoding, a format) that may hold newlines or terminal escapes.
        """
        if self.throttle.ready(key):
            self.logger.warning(one_line(text))

    def drop(self, reason: str, text: str, key: Hashable | None = None) -> None:
        """Count one message or frame dropped for ``reason``; a throttled warning ``text``."""
        self.dropped[reason] += 1
        self.warn(reason if key is None else key, text)

    def failed(self, key: Hashable, text: str) -> None:
        """Count and log (throttled, with the current exception's traceback) a failure that
        is not an input problem: a bug, which must not be hidden."""
        self.failures += 1
        if self.throttle.ready(("unexpected error", key)):
            self.logger.error(f"{one_line(text)}\n{traceback.format_exc().rstrip()}")

    def frame_skipped(self, stamp_ns: int, exc: BaseException) -> None:
        """Report a frame the worker could not process; call inside the ``except`` block.

        An InputError / ValueError is a warning throttled per reason (:class:`Refused`'s
        ``reason``, else the exception type); anything else is a bug: an error with its
        traceback.
        """
        where = f"frame {stamp_ns * 1e-9:.6f} s"
        if isinstance(exc, (InputError, ValueError)):
            reason = exc.reason if isinstance(exc, Refused) else type(exc).__name__
            self.warn(("frame", reason, problem_wording(str(exc))), f"{where} skipped: {exc}")
        else:
            self.failed(("frame", type(exc).__name__), f"{where} failed: {type(exc).__name__}: {exc}")

    def stamp_ns(self, msg: Any, topic: str) -> int | None:
        """The header stamp of ``msg`` in ns, or None (dropped, counted, warned) when invalid."""
        try:
            return msgconv.stamp_to_ns(msg.header.stamp, what=topic)
        except InputError as exc:
            self.drop("bad stamp", f"{exc}: message dropped", key=("bad stamp", topic))
            return None

    def guard(self, topic: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """``callback`` wrapped so that no message can raise out of it (see the module docstring)."""

        @functools.wraps(callback)
        def guarded(msg: Any) -> None:
            try:
                callback(msg)
            except Refused as exc:
                self.drop(exc.reason, f"{topic}: message dropped: {exc}", key=(exc.reason, topic, problem_wording(str(exc))))
            except InputError as exc:
                self.drop("bad message", f"{topic}: message dropped: {exc}",
                          key=("bad message", topic, problem_wording(str(exc))))
            except Exception as exc:  # noqa: BLE001 - a node survives any message; logged with its traceback
                self.dropped["unexpected error"] += 1
                self.failed(
                    (topic, type(exc).__name__),
                    f"{topic}: unexpected {type(exc).__name__} while handling a message (dropped; the node keeps running)",
                )

        return guarded


class FrameIntake:
    """Image and camera_info callbacks of a node: stamp checks, then pairing by stamp.

    Args:
        guard: the node's :class:`MessageGuard` (drops, warnings).
        pairer: pairs images and camera_infos.
        order: classifies image stamps (out of order skipped, a far jump back a restart), or
            None to pass every new stamp on (the pose node resets its odometry itself).
        image_topic, info_topic: resolved names, for the warnings.

    Attributes:
        frames_received: images taken in (including those dropped here).
        frames_out_of_order: images older than the newest one (skipped).
        frames_duplicate: images with the same stamp as the previous image (skipped: the
            same frame sent twice must not be processed twice).
        reset_requested: set when the stamps jumped back (restart); the worker clears it.
        info_timeout_ns: None (default): every image waits for its camera_info. A number (set by a
            node whose model predicts its field of view): when no camera_info has arrived that long
            after the first image, images are passed on alone (``Pair.info`` None, the pipeline's
            focal-length fallback) until a camera_info arrives; from then on images pair again (a
            valid camera_info is never replaced by the prediction).
        frames_without_info: images passed on alone.
    """

    def __init__(self, guard: MessageGuard, pairer: StampPairer, order: StampOrder | None,
                 image_topic: str, info_topic: str) -> None:
        self.guard = guard
        self.pairer = pairer
        self.order = order
        self.image_topic = image_topic
        self.info_topic = info_topic
        self.frames_received = 0
        self.frames_out_of_order = 0
        self.frames_duplicate = 0
        self.reset_requested = False
        self._last_image_ns: int | None = None
        self.info_timeout_ns: int | None = None
        self.frames_without_info = 0
        self._first_received_ns: int | None = None

    def on_image(self, msg: Any, received_ns: int) -> Pair | None:
        """An image arrived at ``received_ns`` (monotonic): the pair to process, or None."""
        self.frames_received += 1
        stamp_ns = self.guard.stamp_ns(msg, self.image_topic)
        if stamp_ns is None:
            return None
        if stamp_ns == self._last_image_ns:
            self.frames_duplicate += 1
            self.guard.warn(
                ("duplicate stamp", self.image_topic),
                f"{self.image_topic}: image stamp {stamp_ns * 1e-9:.6f} s is the previous image's: "
                "duplicate, skipped (further duplicates are counted)",
            )
            return None
        if self.order is not None:
            verdict = self.order.check(stamp_ns)
            if verdict == "old":
                self.frames_out_of_order += 1
                self.guard.warn(
                    ("out of order", self.image_topic),
                    f"image stamp {stamp_ns * 1e-9:.6f} s is not newer than the last frame's "
                    f"({(self.order.last_ns or 0) * 1e-9:.6f} s): out of order, skipped",
                )
                return None
            if verdict == "reset":
                self.guard.warn(
                    ("restart", self.image_topic),
                    f"image stamps jumped back to {stamp_ns * 1e-9:.6f} s: restart (bag loop?), state reset",
                )
                self.pairer.reset()
                self._first_received_ns = None
                self.reset_requested = True
        self._last_image_ns = stamp_ns
        if self._first_received_ns is None:
            self._first_received_ns = received_ns
        if self._no_info_expected(received_ns):
            self.frames_without_info += 1
            return Pair(msg, None, stamp_ns, received_ns)
        pair, evicted = self.pairer.add_image(stamp_ns, msg, received_ns)
        if evicted:
            # An image whose camera_info is simply still in flight (or comes after the next
            # image, or after a restart) is not worth a warning; one given up unpaired is.
            self._warn_missing_info(stamp_ns, self.pairer.last_info_stamp_ns)
        return pair

    def _no_info_expected(self, received_ns: int) -> bool:
        """No camera_info yet, ``info_timeout_ns`` after the first image (a throttled warning)."""
        if self.info_timeout_ns is None or self.pairer.last_info_stamp_ns is not None or self._first_received_ns is None:
            return False
        if received_ns - self._first_received_ns < self.info_timeout_ns:
            return False
        self.guard.warn(
            "no camera_info",
            f"no camera_info on {self.info_topic} {self.info_timeout_ns * 1e-9:g} s after the first image: images run "
            "with the camera of the model's predicted field of view until one arrives (DepthInfo scale_source *_predicted)",
        )
        return True

    def on_info(self, msg: Any) -> Pair | None:
        """A camera_info arrived: the pair it completes, or None."""
        stamp_ns = self.guard.stamp_ns(msg, self.info_topic)
        if stamp_ns is None:
            return None
        return self.pairer.add_info(stamp_ns, msg)

    def _warn_missing_info(self, stamp_ns: int, last_info_ns: int | None) -> None:
        if last_info_ns is None:
            text = f"no camera_info received on {self.info_topic} yet: images wait for one (depth needs intrinsics)"
        else:
            text = (
                f"no camera_info on {self.info_topic} with the stamp of image {stamp_ns * 1e-9:.6f} s "
                f"(last camera_info: {last_info_ns * 1e-9:.6f} s); unpaired images are dropped"
            )
        self.guard.warn("missing camera_info", text)


class FrameWorker:
    """The worker thread's loop of a node and its intake counters (mixed into the depth and
    pose node classes).

    It takes pairs from ``self._slot`` and hands each to ``self._process``; a frame that fails
    is counted in ``self.frames_skipped`` and reported through ``self._guard`` and the node's
    ``monitor`` (:class:`~depth_ros.ros.diagnostics.FrameMonitor`, when it has one; the node
    survives any one frame), except when the failure is the node's context being shut down
    under it (Ctrl-C while a frame was being published): that is a clean stop, not a frame
    error, and rosout is gone too.
    """

    _slot: Any
    _guard: MessageGuard
    _intake: FrameIntake
    _process: Callable[[Pair], None]  # the node's per-frame work
    frames_skipped: int
    monitor: Any  # the node's FrameMonitor (/diagnostics)

    # -- the image and camera_info callbacks (never block: pair, then fill the one-frame slot) --
    def _on_image(self, msg: Any) -> None:
        self.monitor.image_received()
        pair = self._intake.on_image(msg, time.monotonic_ns())
        if pair is not None:
            self._slot.put(pair)

    def _on_info(self, msg: Any) -> None:
        pair = self._intake.on_info(msg)
        if pair is not None:
            self._slot.put(pair)

    @property
    def frames_duplicate(self) -> int:
        return self._intake.frames_duplicate

    @property
    def messages_dropped(self) -> dict[str, int]:
        """Reason -> messages the callbacks dropped (bad stamp, malformed, unexpected error)."""
        return dict(self._guard.dropped)

    def _work(self) -> None:
        while not self._slot.closed:
            pair = self._slot.get(timeout_s=0.5)
            if pair is None:
                continue
            try:
                self._process(pair)
            except Exception as exc:  # noqa: BLE001 - the node must survive any one frame
                if not self._context_ok():
                    return
                self.frames_skipped += 1
                self._guard.frame_skipped(pair.stamp_ns, exc)
                monitor = getattr(self, "monitor", None)
                if monitor is not None:
                    reason = exc.reason if isinstance(exc, Refused) else type(exc).__name__
                    monitor.frame_failed(reason, one_line(str(exc))[:200])

    def shutdown(self) -> None:
        """Stop the worker (waits for the frame in progress, at most 10 s)."""
        self._slot.close()
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.join(timeout=10.0)

    def _context_ok(self) -> bool:
        import rclpy

        try:
            return bool(rclpy.ok(context=self.context))  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a context being torn down
            return False
