"""Node health for ``/diagnostics`` (pure Python: counters in, DiagnosticStatus-like values out).

Each node keeps one :class:`FrameMonitor`. Callbacks and the worker thread record events into
it (an image taken in, a frame published with its latency, a frame that failed and why, the
scale source of the frame); a ~1 Hz timer calls :meth:`FrameMonitor.period` with the node's
cumulative counters and gets the rates and latency percentiles of the period since the last
call. :func:`evaluate` turns them into a level and a message with the thresholds of
:class:`DiagnosticThresholds` (node parameters ``diagnostics_*``), and :func:`status_values`
into the key/value pairs written as diagnostic_updater writes them (strings). Only
:func:`to_msg` touches ROS message types (``diagnostic_msgs/msg/DiagnosticStatus``).

A frame published with its per-stage times (:mod:`depth_ros.timing`) adds, per period, the
median of each stage (``Stage <name> p50 (ms)``) and of the non-network work
(``Non-network p50 (ms)``: every stage but the network and the wait for the worker);
:func:`timing_values` gives one frame's times as key/values (the depth node's ``depth/timing``).

Levels (the worst problem wins; the message lists every problem, worst first, ``"; "``-joined
as diagnostic_updater merges summaries):

=========  =================================================================================
ERROR      no image for ``stale_error_s``; every frame processed in the period failed (model
           or scale failing on every frame)
WARN       no image for ``stale_warn_s``; some frames failed; output rate below
           ``min_output_ratio`` of the input rate; latency p95 above ``latency_warn_ms``; the
           metric scale was held (alignment without enough support) or a scale input is
           missing
OK         none of the above
=========  =================================================================================
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from depth_ros.timing import STAGES, non_network_ms

__all__ = [
    "DiagnosticsPublisher",
    "ERROR",
    "OK",
    "STALE",
    "WARN",
    "DiagnosticThresholds",
    "FrameCounts",
    "FrameMonitor",
    "PeriodStats",
    "StatusValue",
    "evaluate",
    "percentile",
    "status_values",
    "timing_values",
    "to_msg",
]

#: Levels of diagnostic_msgs/DiagnosticStatus (a byte in the message).
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


@dataclass(frozen=True)
class DiagnosticThresholds:
    """When a node's status becomes WARN or ERROR.

    Args:
        stale_warn_s: no image for this many seconds -> WARN.
        stale_error_s: no image for this many seconds -> ERROR (>= stale_warn_s).
        min_output_ratio: output rate below this fraction of the input rate -> WARN (0 = off).
        latency_warn_ms: latency p95 (image received -> output published) above this -> WARN
            (0 = off).
    """

    stale_warn_s: float = 3.0
    stale_error_s: float = 10.0
    min_output_ratio: float = 0.5
    latency_warn_ms: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("stale_warn_s", "stale_error_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if self.stale_error_s < self.stale_warn_s:
            raise ValueError(f"stale_error_s ({self.stale_error_s}) must not be below stale_warn_s ({self.stale_warn_s})")
        if not 0.0 <= self.min_output_ratio <= 1.0:
            raise ValueError(f"min_output_ratio must be in [0, 1], got {self.min_output_ratio}")
        if not (math.isfinite(self.latency_warn_ms) and self.latency_warn_ms >= 0):
            raise ValueError(f"latency_warn_ms must be >= 0 (0 = off), got {self.latency_warn_ms}")

    @classmethod
    def from_config(cls, config: Any) -> "DiagnosticThresholds":
        """The thresholds of a node config (its ``diagnostics_*`` fields)."""
        return cls(
            stale_warn_s=config.diagnostics_stale_warn_s,
            stale_error_s=config.diagnostics_stale_error_s,
            min_output_ratio=config.diagnostics_min_output_ratio,
            latency_warn_ms=config.diagnostics_latency_warn_ms,
        )


@dataclass(frozen=True)
class FrameCounts:
    """A node's cumulative frame counters (since start).

    Attributes:
        received: images taken in.
        published: frames whose outputs were published.
        dropped: frames lost to load (replaced while the worker was busy, or never paired).
        skipped: frames not processed for a reason other than load (duplicates, out of
            order, malformed messages, failed frames).
        failed: frames the worker could not process (bad content, model output, no scale);
            part of ``skipped``.
    """

    received: int = 0
    published: int = 0
    dropped: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class PeriodStats:
    """What happened in one diagnostics period.

    Attributes:
        period_s: length of the period (s).
        totals: cumulative counters at its end.
        delta: counters of the period (totals minus the previous totals).
        input_hz, output_hz: received and published frames per second in the period.
        latency_ms: sorted latencies (ms) of the frames published in the period.
        since_input_s: seconds since the last image (since the monitor started if none).
        any_input: an image was ever received.
        last_failure: reason and text of the newest failed frame in the period, or None.
        scale_source: the newest frame's scale source ("" before any frame).
        scale_support: the newest frame's scale support (points or pixels).
        scale_held: frames of the period whose scale was an older estimate (``*_held``).
        scale_problem: the newest scale input problem of the period, or "".
        stage_p50_ms: (stage, median ms over the period's frames) in frame order
            (:data:`depth_ros.timing.STAGES`), for the stages the frames reported.
        non_network_p50_ms: median of the frames' non-network ms (NaN without timed frames).
    """

    period_s: float
    totals: FrameCounts
    delta: FrameCounts
    input_hz: float
    output_hz: float
    latency_ms: tuple[float, ...]
    since_input_s: float
    any_input: bool
    last_failure: tuple[str, str] | None = None
    scale_source: str = ""
    scale_support: int = 0
    scale_held: int = 0
    scale_problem: str = ""
    stage_p50_ms: tuple[tuple[str, float], ...] = ()
    non_network_p50_ms: float = math.nan

    @property
    def latency_p50_ms(self) -> float:
        return percentile(self.latency_ms, 50.0)

    @property
    def latency_p95_ms(self) -> float:
        return percentile(self.latency_ms, 95.0)


def percentile(sorted_values: tuple[float, ...] | list[float], q: float) -> float:
    """Linear-interpolated ``q``-th percentile (0..100) of sorted values; NaN when empty
    (numpy's default method)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class FrameMonitor:
    """Events of one node, collected per diagnostics period (thread-safe).

    Args:
        clock: monotonic seconds (``time.monotonic``; a fake in tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start_s = clock()
        self._period_start_s = self._start_s
        self._last_input_s: float | None = None
        self._prev = FrameCounts()
        self._latency_ms: list[float] = []
        self._last_failure: tuple[str, str] | None = None
        self._scale_source = ""
        self._scale_support = 0
        self._scale_held = 0
        self._scale_problem = ""
        self._stage_ms: dict[str, list[float]] = {}
        self._non_network_ms: list[float] = []

    def image_received(self) -> None:
        """An image arrived (any image: staleness is about the input, not its content)."""
        self._last_input_s = self._clock()

    def frame_published(self, latency_ms: float, scale_source: str = "", scale_support: int = 0,
                        stage_ms: Mapping[str, float] | None = None) -> None:
        """A frame's outputs were published ``latency_ms`` after its image was received;
        ``stage_ms``: its ms per stage (:mod:`depth_ros.timing`), or None."""
        with self._lock:
            self._latency_ms.append(float(latency_ms))
            if stage_ms:
                for name, ms in stage_ms.items():
                    self._stage_ms.setdefault(name, []).append(float(ms))
                self._non_network_ms.append(non_network_ms(stage_ms))
            if scale_source:
                self._scale_source = scale_source
                self._scale_support = int(scale_support)
                if scale_source.endswith("_held"):
                    self._scale_held += 1

    def frame_failed(self, reason: str, text: str) -> None:
        """A frame the worker could not process (``reason``: a fixed phrase; ``text``: details)."""
        with self._lock:
            self._last_failure = (reason, text)

    def scale_problem(self, text: str) -> None:
        """A scale input was missing or unusable for a frame (e.g. no sparse points)."""
        with self._lock:
            self._scale_problem = text

    def period(self, totals: FrameCounts) -> PeriodStats:
        """Close the current period: its statistics, given the node's cumulative counters."""
        now = self._clock()
        with self._lock:
            prev, self._prev = self._prev, totals
            latency = tuple(sorted(self._latency_ms))
            self._latency_ms = []
            failure, self._last_failure = self._last_failure, None
            held, self._scale_held = self._scale_held, 0
            problem, self._scale_problem = self._scale_problem, ""
            start, self._period_start_s = self._period_start_s, now
            source, support = self._scale_source, self._scale_support
            stages, self._stage_ms = self._stage_ms, {}
            non_network, self._non_network_ms = sorted(self._non_network_ms), []
        stage_p50 = tuple((name, percentile(sorted(stages[name]), 50.0)) for name in _stage_order(stages))
        period_s = max(now - start, 1e-9)
        delta = FrameCounts(*(getattr(totals, f) - getattr(prev, f) for f in FrameCounts.__dataclass_fields__))
        last_input = self._last_input_s
        return PeriodStats(
            period_s=period_s,
            totals=totals,
            delta=delta,
            input_hz=delta.received / period_s,
            output_hz=delta.published / period_s,
            latency_ms=latency,
            since_input_s=now - (last_input if last_input is not None else self._start_s),
            any_input=last_input is not None,
            last_failure=failure,
            scale_source=source,
            scale_support=support,
            scale_held=held,
            scale_problem=problem,
            stage_p50_ms=stage_p50,
            non_network_p50_ms=percentile(non_network, 50.0),
        )


def _stage_order(names: Any) -> list[str]:
    """``names`` in frame order (:data:`~depth_ros.timing.STAGES`), unknown ones last, sorted."""
    known = [n for n in STAGES if n in names]
    return known + sorted(n for n in names if n not in STAGES)


def evaluate(stats: PeriodStats, thresholds: DiagnosticThresholds) -> tuple[int, str]:
    """(level, message) of one period; see the module docstring for the rules."""
    problems: list[tuple[int, str]] = []
    t = thresholds
    d = stats.delta
    waited = "no image received yet" if not stats.any_input else "no image"
    if stats.since_input_s >= t.stale_error_s:
        problems.append((ERROR, f"{waited} for {stats.since_input_s:.1f} s (stale_error_s {t.stale_error_s:g})"))
    elif stats.since_input_s >= t.stale_warn_s:
        problems.append((WARN, f"{waited} for {stats.since_input_s:.1f} s (stale_warn_s {t.stale_warn_s:g})"))
    if d.failed > 0:
        why = f": {stats.last_failure[0]} ({stats.last_failure[1]})" if stats.last_failure else ""
        if d.published == 0:
            problems.append((ERROR, f"every frame failed ({d.failed} in {stats.period_s:.1f} s){why}"))
        else:
            problems.append((WARN, f"{d.failed} of {d.failed + d.published} frames failed{why}"))
    # Below two frames in the period the ratio says nothing (a frame in flight at the edge).
    if t.min_output_ratio > 0 and d.received >= 2 and stats.output_hz < t.min_output_ratio * stats.input_hz:
        problems.append((WARN, f"output {stats.output_hz:.1f} Hz is below {t.min_output_ratio:g} of the input "
                               f"{stats.input_hz:.1f} Hz ({d.dropped} dropped, {d.skipped} skipped)"))
    p95 = stats.latency_p95_ms
    if t.latency_warn_ms > 0 and math.isfinite(p95) and p95 > t.latency_warn_ms:
        problems.append((WARN, f"latency p95 {p95:.0f} ms above latency_warn_ms {t.latency_warn_ms:g}"))
    if stats.scale_held > 0:
        problems.append((WARN, f"metric scale held from an older frame for {stats.scale_held} frames "
                               f"(too little support: {stats.scale_support})"))
    if stats.scale_problem:
        problems.append((WARN, f"scale: {stats.scale_problem}"))
    if not problems:
        return OK, "OK"
    problems.sort(key=lambda p: -p[0])
    return problems[0][0], "; ".join(text for _, text in problems)


def _num(value: float, digits: int = 1) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


@dataclass(frozen=True)
class StatusValue:
    """A DiagnosticStatus without ROS types: level, name, message, hardware_id, key/values."""

    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]

    def value(self, key: str) -> str:
        """The value of ``key`` (KeyError when absent)."""
        for k, v in self.values:
            if k == key:
                return v
        raise KeyError(key)


def status_values(name: str, hardware_id: str, stats: PeriodStats, thresholds: DiagnosticThresholds,
                  extra: tuple[tuple[str, str], ...] = ()) -> StatusValue:
    """The status of one period: level and message from :func:`evaluate`, key/value pairs
    (strings, as diagnostic_updater writes them) of rates, counters, latency, and ``extra``
    (backend, model, scale)."""
    level, message = evaluate(stats, thresholds)
    t, d = stats.totals, stats.delta
    values: list[tuple[str, str]] = [
        ("Input rate (Hz)", _num(stats.input_hz, 2)),
        ("Output rate (Hz)", _num(stats.output_hz, 2)),
        ("Period (s)", _num(stats.period_s, 2)),
        ("Seconds since last image", _num(stats.since_input_s, 1) if stats.any_input else "never"),
        ("Frames received", str(t.received)),
        ("Frames published", str(t.published)),
        ("Frames dropped", str(t.dropped)),
        ("Frames skipped", str(t.skipped)),
        ("Frames failed", str(t.failed)),
        ("Frames dropped in period", str(d.dropped)),
        ("Frames skipped in period", str(d.skipped)),
        ("Latency p50 (ms)", _num(stats.latency_p50_ms)),
        ("Latency p95 (ms)", _num(stats.latency_p95_ms)),
    ]
    if stats.last_failure is not None:
        values.append(("Last failure", f"{stats.last_failure[0]}: {stats.last_failure[1]}"))
    if stats.stage_p50_ms:
        values.append(("Non-network p50 (ms)", _num(stats.non_network_p50_ms, 2)))
        values.extend((f"Stage {name} p50 (ms)", _num(ms, 2)) for name, ms in stats.stage_p50_ms)
    values.extend(extra)
    return StatusValue(level, name, message, hardware_id, tuple(values))


def timing_values(stage_ms: Mapping[str, float], total_ms: float,
                  cpu_ms: Mapping[str, float] | None = None) -> tuple[tuple[str, str], ...]:
    """One frame's times as key/values (ms, 3 decimals): ``total_ms`` (image received ->
    work done), ``non_network_ms``, then ``<stage>_ms`` per stage in frame order; with
    ``cpu_ms`` (the thread CPU time per stage, :attr:`depth_ros.timing.StageTimer.cpu_ms`) also
    ``non_network_cpu_ms`` and ``<stage>_cpu_ms``."""
    head = (("total_ms", f"{total_ms:.3f}"), ("non_network_ms", f"{non_network_ms(stage_ms):.3f}"))
    values = head + tuple((f"{name}_ms", f"{stage_ms[name]:.3f}") for name in _stage_order(stage_ms))
    if cpu_ms is None:
        return values
    return values + (("non_network_cpu_ms", f"{non_network_ms(cpu_ms):.3f}"),) + tuple(
        (f"{name}_cpu_ms", f"{cpu_ms[name]:.3f}") for name in _stage_order(cpu_ms))


def to_msg(status: StatusValue) -> Any:
    """A ``diagnostic_msgs/msg/DiagnosticStatus`` of ``status`` (imports diagnostic_msgs)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    return DiagnosticStatus(
        level=bytes([status.level]),
        name=status.name,
        message=status.message,
        hardware_id=status.hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in status.values],
    )


class DiagnosticsPublisher:
    """Publishes a node's status on ``/diagnostics`` from a timer (the rclpy side).

    The topic is absolute, as diagnostic_updater's; the status ``name`` is
    ``"<node name>: <task>"`` and ``hardware_id`` the node's fully qualified name. The array
    is stamped with the node's clock (a status is about now, not about an input message).

    Args:
        node: the rclpy node.
        monitor: the node's :class:`FrameMonitor`.
        task: the status name after the node name ("depth", "pose").
        period_s: timer period (s).
        counts: the node's cumulative :class:`FrameCounts`, read once per period.
        thresholds: the current :class:`DiagnosticThresholds` (parameters may change).
        extra: further key/value pairs (backend, model, scale), read once per period.
    """

    def __init__(self, node: Any, monitor: FrameMonitor, task: str, period_s: float,
                 counts: Callable[[], FrameCounts], thresholds: Callable[[], DiagnosticThresholds],
                 extra: Callable[[], tuple[tuple[str, str], ...]]) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self._node = node
        self.monitor = monitor
        self.name = f"{node.get_name()}: {task}"
        self.hardware_id = node.get_fully_qualified_name()
        self._counts = counts
        self._thresholds = thresholds
        self._extra = extra
        self._array_type = DiagnosticArray
        self.last: StatusValue | None = None
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period_s, self.publish)

    def status(self) -> StatusValue:
        """Close the period and compute its status (also kept in ``last``)."""
        stats = self.monitor.period(self._counts())
        self.last = status_values(self.name, self.hardware_id, stats, self._thresholds(), self._extra())
        return self.last

    def publish(self) -> None:
        """Timer callback: one DiagnosticArray with this node's status. Never raises: a
        failure is logged with its traceback (a bug), or ignored while the node shuts down."""
        import rclpy

        try:
            array = self._array_type()
            array.header.stamp = self._node.get_clock().now().to_msg()
            array.status = [to_msg(self.status())]
            self._pub.publish(array)
        except Exception as exc:  # noqa: BLE001 - a status must never end the node
            try:
                alive = rclpy.ok(context=self._node.context)
            except Exception:  # noqa: BLE001 - a context being torn down
                alive = False
            if alive:
                import traceback

                self._node.get_logger().error(
                    f"/diagnostics: {type(exc).__name__}: {exc}\n{traceback.format_exc().rstrip()}")
