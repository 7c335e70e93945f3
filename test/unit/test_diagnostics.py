"""/diagnostics status of the nodes, without ROS: counters and events in, level / message / values out."""
from __future__ import annotations

import dataclasses
import math

import pytest

from depth_ros.ros.diagnostics import (
    ERROR,
    OK,
    WARN,
    DiagnosticThresholds,
    FrameCounts,
    FrameMonitor,
    evaluate,
    percentile,
    status_values,
    to_msg,
)
from depth_ros.ros.params import DepthNodeConfig, ParameterError, PoseNodeConfig, config_from_mapping

TH = DiagnosticThresholds(stale_warn_s=3.0, stale_error_s=10.0, min_output_ratio=0.5, latency_warn_ms=200.0)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def running(frames: int = 10, published: int | None = None, latency_ms: float = 50.0,
            failed: int = 0, dropped: int = 0) -> tuple[FrameMonitor, FakeClock, FrameCounts]:
    """A monitor that saw ``frames`` images over one second (one every 0.1 s), the last just now."""
    clock = FakeClock()
    monitor = FrameMonitor(clock)
    published = frames if published is None else published
    for i in range(frames):
        clock.t += 1.0 / frames
        monitor.image_received()
        if i < published:
            monitor.frame_published(latency_ms)
    counts = FrameCounts(received=frames, published=published, dropped=dropped, skipped=failed, failed=failed)
    return monitor, clock, counts


def test_a_node_keeping_up_is_ok_with_its_rates_and_latency() -> None:
    monitor, clock, counts = running(frames=10, latency_ms=50.0)
    stats = monitor.period(counts)
    assert stats.input_hz == pytest.approx(10.0) and stats.output_hz == pytest.approx(10.0)
    assert evaluate(stats, TH) == (OK, "OK")
    status = status_values("depth_node: depth", "/cam/depth_node", stats, TH, (("Backend", "onnxruntime-cpu"),))
    assert (status.level, status.name, status.hardware_id) == (OK, "depth_node: depth", "/cam/depth_node")
    assert status.value("Input rate (Hz)") == "10.00"
    assert status.value("Latency p50 (ms)") == "50.0"
    assert status.value("Frames received") == "10"
    assert status.value("Backend") == "onnxruntime-cpu"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in status.values)


def test_period_counts_are_the_difference_of_the_cumulative_counters() -> None:
    monitor, clock, counts = running(frames=10)
    monitor.period(counts)
    clock.t += 2.0
    for _ in range(4):
        monitor.image_received()
        monitor.frame_published(10.0)
    stats = monitor.period(dataclasses.replace(counts, received=14, published=14, dropped=3))
    assert stats.delta.received == 4 and stats.delta.dropped == 3
    assert stats.period_s == pytest.approx(2.0)
    assert stats.input_hz == pytest.approx(2.0)
    assert stats.latency_ms == (10.0,) * 4  # only the period's frames


def test_no_input_is_warn_then_error_at_the_thresholds() -> None:
    monitor, clock, counts = running()
    monitor.period(counts)
    clock.t += 2.9
    level, _ = evaluate(monitor.period(counts), TH)
    assert level == OK
    clock.t += 0.2  # 3.1 s since the last image
    level, message = evaluate(monitor.period(counts), TH)
    assert level == WARN and "no image for 3.1 s" in message and "stale_warn_s 3" in message
    clock.t += 7.0  # 10.1 s
    level, message = evaluate(monitor.period(counts), TH)
    assert level == ERROR and "no image for 10.1 s" in message and "stale_error_s 10" in message


def test_a_node_that_never_got_an_image_says_so() -> None:
    clock = FakeClock()
    monitor = FrameMonitor(clock)
    clock.t += 4.0
    stats = monitor.period(FrameCounts())
    level, message = evaluate(stats, TH)
    assert level == WARN and "no image received yet for 4.0 s" in message
    assert status_values("n: depth", "/n", stats, TH).value("Seconds since last image") == "never"


def test_the_stale_thresholds_are_the_configured_ones() -> None:
    monitor, clock, counts = running()
    monitor.period(counts)
    clock.t += 1.5
    stats = monitor.period(counts)
    assert evaluate(stats, TH)[0] == OK
    assert evaluate(stats, dataclasses.replace(TH, stale_warn_s=1.0))[0] == WARN
    assert evaluate(stats, dataclasses.replace(TH, stale_warn_s=1.0, stale_error_s=1.2))[0] == ERROR


def test_model_failing_every_frame_is_error_with_the_reason() -> None:
    monitor, clock, counts = running(frames=10, published=0, failed=10)
    monitor.frame_failed("bad model output", "model output has 3072 non-finite values")
    level, message = evaluate(monitor.period(counts), TH)
    assert level == ERROR
    assert "every frame failed (10 in 1.0 s)" in message and "bad model output" in message
    # below the output ratio too, reported after the error
    assert message.index("every frame failed") < message.index("below 0.5 of the input")


def test_some_failed_frames_are_a_warning() -> None:
    monitor, clock, counts = running(frames=10, published=8, failed=2)
    monitor.frame_failed("no metric scale", "no metric scale for this frame: no sparse points")
    stats = monitor.period(counts)
    level, message = evaluate(stats, TH)
    assert level == WARN and "2 of 10 frames failed: no metric scale" in message
    assert status_values("n: depth", "/n", stats, TH).value("Last failure").startswith("no metric scale: ")
    # the failure is the period's: the next period without failures is OK again
    for _ in range(10):
        clock.t += 0.1
        monitor.image_received()
        monitor.frame_published(50.0)
    assert evaluate(monitor.period(dataclasses.replace(counts, received=20, published=18)), TH) == (OK, "OK")


def test_output_rate_below_the_ratio_of_the_input_rate_warns() -> None:
    monitor, _, counts = running(frames=10, published=4, dropped=6)
    level, message = evaluate(monitor.period(counts), TH)
    assert level == WARN and "output 4.0 Hz is below 0.5 of the input 10.0 Hz (6 dropped" in message
    monitor, _, counts = running(frames=10, published=6, dropped=4)
    assert evaluate(monitor.period(counts), TH)[0] == OK
    monitor, _, counts = running(frames=10, published=4, dropped=6)
    assert evaluate(monitor.period(counts), dataclasses.replace(TH, min_output_ratio=0.0))[0] == OK


def test_one_frame_in_flight_is_not_a_low_output_rate() -> None:
    monitor, _, counts = running(frames=1, published=0)
    assert evaluate(monitor.period(counts), TH) == (OK, "OK")


def test_latency_p95_above_the_threshold_warns() -> None:
    clock = FakeClock()
    monitor = FrameMonitor(clock)
    for ms in [10.0] * 18 + [500.0, 600.0]:  # p95 interpolates between 10 and 500
        monitor.image_received()
        monitor.frame_published(ms)
    stats = monitor.period(FrameCounts(received=20, published=20))
    assert stats.latency_p50_ms == pytest.approx(10.0)
    assert stats.latency_p95_ms == pytest.approx(500.0 + 0.05 * 100.0)
    level, message = evaluate(stats, TH)
    assert level == WARN and "latency p95 505 ms above latency_warn_ms 200" in message
    assert evaluate(stats, dataclasses.replace(TH, latency_warn_ms=0.0))[0] == OK
    assert evaluate(stats, dataclasses.replace(TH, latency_warn_ms=600.0))[0] == OK


def test_held_scale_and_missing_scale_input_warn_with_the_reason() -> None:
    clock = FakeClock()
    monitor = FrameMonitor(clock)
    monitor.image_received()
    monitor.frame_published(20.0, "sparse_alignment", 150)
    monitor.image_received()
    monitor.frame_published(20.0, "sparse_alignment_held", 4)
    monitor.scale_problem("scale_policy sparse_alignment: nothing received on /lidar")
    stats = monitor.period(FrameCounts(received=2, published=2))
    level, message = evaluate(stats, TH)
    assert level == WARN
    assert "scale held from an older frame for 1 frames (too little support: 4)" in message
    assert "scale: scale_policy sparse_alignment: nothing received on /lidar" in message
    assert (stats.scale_source, stats.scale_support) == ("sparse_alignment_held", 4)
    monitor.image_received()
    monitor.frame_published(20.0, "sparse_alignment", 140)
    assert evaluate(monitor.period(FrameCounts(received=3, published=3)), TH) == (OK, "OK")


def test_percentile_is_numpys_linear_one() -> None:
    np = pytest.importorskip("numpy")
    values = sorted([3.0, 1.0, 7.0, 2.0, 10.0, 4.5])
    for q in (0, 5, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(percentile([], 50))


def test_no_latency_sample_is_written_as_not_available() -> None:
    clock = FakeClock()
    stats = FrameMonitor(clock).period(FrameCounts())
    status = status_values("n: depth", "/n", stats, TH)
    assert status.value("Latency p95 (ms)") == "n/a"


def test_thresholds_come_from_the_node_parameters_and_are_checked() -> None:
    for cls in (DepthNodeConfig, PoseNodeConfig):
        cfg = cls(diagnostics_stale_warn_s=1.0, diagnostics_stale_error_s=5.0, diagnostics_min_output_ratio=0.25,
                  diagnostics_latency_warn_ms=0.0)
        assert DiagnosticThresholds.from_config(cfg) == DiagnosticThresholds(1.0, 5.0, 0.25, 0.0)
        with pytest.raises(ParameterError, match="diagnostics_stale_error_s.*must not be below"):
            cls(diagnostics_stale_warn_s=5.0, diagnostics_stale_error_s=2.0)
        with pytest.raises(ParameterError, match="diagnostics_min_output_ratio.*above the maximum 1.0"):
            config_from_mapping(cls, {"diagnostics_min_output_ratio": 1.5})
        with pytest.raises(ParameterError, match="diagnostics_period_s.*below the minimum"):
            config_from_mapping(cls, {"diagnostics_period_s": 0.0})
    with pytest.raises(ValueError, match="stale_error_s"):
        DiagnosticThresholds(stale_warn_s=4.0, stale_error_s=3.0)


def test_to_msg_is_a_diagnostic_status_as_diagnostic_updater_writes_it() -> None:
    monitor, _, counts = running(frames=10, published=0, failed=10)
    monitor.frame_failed("bad model output", "NaN")
    msg = to_msg(status_values("depth_node: depth", "/cam/depth_node", monitor.period(counts), TH,
                               (("Backend", "onnxruntime-cpu"),)))
    from diagnostic_msgs.msg import DiagnosticStatus

    assert isinstance(msg, DiagnosticStatus)
    assert msg.level == DiagnosticStatus.ERROR
    assert (msg.name, msg.hardware_id) == ("depth_node: depth", "/cam/depth_node")
    assert msg.message.startswith("every frame failed")
    values = {kv.key: kv.value for kv in msg.values}
    assert values["Backend"] == "onnxruntime-cpu" and values["Frames failed"] == "10"
