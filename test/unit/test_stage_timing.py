"""Per-stage timing of a frame (issue 19 item 1): the StageTimer and FramePipeline.run's stage_ms.

No ROS. A backend that sleeps a known time shows that ``infer`` is the network's time and not
someone else's, and that the stages are disjoint (their sum stays within the wall clock).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.inference.spec import ModelSpec
from depth_ros.pipeline import FrameConfig, FramePipeline
from depth_ros.timing import STAGES, StageTimer, non_network_ms

NET_H, NET_W = 48, 64
CAM = CameraModel.from_intrinsics(160, 120, 100.0, 100.0, 79.5, 59.5)
SLEEP_S = 0.03


class SleepingBackend:
    """depth_metric double whose network takes SLEEP_S seconds."""

    name = "sleeper"

    def __init__(self) -> None:
        self.spec = ModelSpec(output_kind="depth_metric", input_height=NET_H, input_width=NET_W, name="sleeper",
                              metric=True, max_depth_m=50.0)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        time.sleep(SLEEP_S)
        return {"depth": np.full((1, 1, NET_H, NET_W), 3.0, np.float32)}


def test_stage_timer_adds_up_each_stage_and_counts_a_stage_that_raises() -> None:
    timer = StageTimer()
    with timer.stage("decode"):
        time.sleep(0.01)
    with pytest.raises(RuntimeError), timer.stage("cloud"):
        time.sleep(0.01)
        raise RuntimeError("boom")
    assert timer.ms["decode"] >= 10.0 and timer.ms["cloud"] >= 10.0
    assert timer.ms["decode"] + timer.ms["cloud"] <= timer.total_ms()
    before = timer.ms["decode"]
    timer.add("decode", 5.0)
    assert timer.ms["decode"] == pytest.approx(before + 5.0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="stage 'x'"):
            timer.add("x", bad)


def test_stage_cpu_time_is_the_threads_work_not_its_wait() -> None:
    timer = StageTimer()
    with timer.stage("sleep"):
        time.sleep(0.03)
    with timer.stage("busy"):
        t_end = time.perf_counter() + 0.03
        while time.perf_counter() < t_end:
            pass
    timer.add("infer", 7.0)
    assert timer.ms["sleep"] >= 30.0 and timer.cpu_ms["sleep"] < 10.0
    assert timer.cpu_ms["busy"] > 5.0 and timer.cpu_ms["busy"] <= timer.ms["busy"] + 1e-6
    assert "infer" not in timer.cpu_ms


def test_non_network_ms_leaves_out_the_network_and_the_wait() -> None:
    assert non_network_ms({"wait": 7.0, "decode": 1.0, "infer": 20.0, "postprocess": 2.5}) == pytest.approx(3.5)


def test_run_reports_each_stage_non_negative_disjoint_and_the_network_as_infer() -> None:
    pipe = FramePipeline(SleepingBackend(), FrameConfig(max_range_m=50.0), contract_checked=True)
    rgb = np.zeros((CAM.height, CAM.width, 3), np.uint8)
    t0 = time.perf_counter()
    timer = StageTimer(start_s=t0)
    with timer.stage("decode"):  # the caller's stage, carried through
        pass
    result = pipe.run(rgb, CAM, timer=timer)
    wall_ms = (time.perf_counter() - t0) * 1e3
    assert set(result.stage_ms) == {"decode", "preprocess", "infer", "postprocess"}
    assert set(result.stage_ms) <= set(STAGES)
    assert all(v >= 0.0 for v in result.stage_ms.values())
    assert result.stage_ms["infer"] >= SLEEP_S * 1e3
    assert result.stage_ms["infer"] == result.inference_ms
    # the network's sleep is in infer alone: the neighbours' CPU time (not their wall time, which
    # a loaded machine stretches) stays far below it
    assert timer.cpu_ms["preprocess"] < SLEEP_S * 1e3 and timer.cpu_ms["postprocess"] < SLEEP_S * 1e3
    assert sum(result.stage_ms.values()) <= wall_ms
    assert np.nanmedian(result.depth_m) == pytest.approx(3.0)


def test_run_without_a_timer_still_times_its_own_stages() -> None:
    pipe = FramePipeline(SleepingBackend(), FrameConfig(max_range_m=50.0), contract_checked=True)
    result = pipe.run(np.zeros((CAM.height, CAM.width, 3), np.uint8), CAM)
    assert set(result.stage_ms) == {"preprocess", "infer", "postprocess"}
