"""Per-stage medians in /diagnostics and one frame's timing key/values (issue 19 item 1), no ROS."""
from __future__ import annotations

import math

import pytest

from depth_ros.ros.diagnostics import DiagnosticThresholds, FrameCounts, FrameMonitor, status_values, timing_values

TH = DiagnosticThresholds()


def test_period_reports_the_median_of_each_stage_in_frame_order_and_then_forgets_them() -> None:
    monitor = FrameMonitor()
    for decode, infer, cloud in ((1.0, 10.0, 4.0), (3.0, 30.0, 2.0), (2.0, 20.0, 9.0)):
        monitor.frame_published(25.0, stage_ms={"cloud": cloud, "infer": infer, "decode": decode, "wait": 50.0})
    monitor.frame_published(25.0)  # a frame without timing leaves the medians alone
    stats = monitor.period(FrameCounts(received=4, published=4))
    assert stats.stage_p50_ms == (("wait", 50.0), ("decode", 2.0), ("infer", 20.0), ("cloud", 4.0))
    assert stats.non_network_p50_ms == pytest.approx(5.0)  # decode + cloud: 5, 5, 11
    status = status_values("n: depth", "/n", stats, TH)
    assert status.value("Stage infer p50 (ms)") == "20.00"
    assert status.value("Stage decode p50 (ms)") == "2.00"
    assert status.value("Non-network p50 (ms)") == "5.00"
    keys = [k for k, _ in status.values]
    assert keys.index("Stage wait p50 (ms)") < keys.index("Stage decode p50 (ms)") < keys.index("Stage cloud p50 (ms)")

    empty = monitor.period(FrameCounts(received=4, published=4))
    assert empty.stage_p50_ms == () and math.isnan(empty.non_network_p50_ms)
    with pytest.raises(KeyError):
        status_values("n: depth", "/n", empty, TH).value("Non-network p50 (ms)")


def test_timing_values_of_one_frame() -> None:
    values = dict(timing_values({"infer": 12.5, "decode": 0.25, "wait": 3.0, "fill_depth": 0.5}, 20.0))
    assert values == {"total_ms": "20.000", "non_network_ms": "0.750", "wait_ms": "3.000", "decode_ms": "0.250",
                      "infer_ms": "12.500", "fill_depth_ms": "0.500"}
    assert list(values)[:2] == ["total_ms", "non_network_ms"]
    with_cpu = dict(timing_values({"infer": 12.5, "decode": 0.25}, 20.0, cpu_ms={"decode": 0.125, "cloud": 1.0}))
    assert with_cpu["non_network_cpu_ms"] == "1.125"
    assert (with_cpu["decode_cpu_ms"], with_cpu["cloud_cpu_ms"]) == ("0.125", "1.000")
    assert "infer_cpu_ms" not in with_cpu
