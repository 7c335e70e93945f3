"""FrameBatcher: the cameras' frames gathered into one backend call, each caller its own slice.

A fake backend records its calls; the frames are tagged by value, so a caller that got another
camera's slice would see the wrong value. The end-to-end case runs two cameras of different
sizes through their own FramePipelines on one ONNX Runtime model with a dynamic batch axis, batched
and not, and compares the depth.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from depth_ros.errors import BackendError
from depth_ros.inference.batching import BatchConfig, FrameBatcher, model_batch_size
from depth_ros.inference.spec import ModelSpec

SPEC = ModelSpec(output_kind="depth_metric", input_height=4, input_width=6, name="fake",
                 min_depth_m=0.1, max_depth_m=80.0, metric=True, scale_source="metric_labels")


class FakeBackend:
    """depth = the frame's first input value everywhere; records each call's frame count."""

    name = "fake"
    spec = SPEC

    def __init__(self, batch_size: int | None, batch_first: bool = True) -> None:
        self.batch_size = batch_size
        self.batch_first = batch_first
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def _depth(self, x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x[:, :1, :1, :1], (x.shape[0], 1, 4, 6)).astype(np.float32)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self.lock:
            self.calls.append(1)
        return {"depth": self._depth(x)}

    def infer_batch(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self.lock:
            self.calls.append(x.shape[0])
        depth = self._depth(x)
        return {"depth": depth if self.batch_first else depth.reshape(1, x.shape[0], 4, 6)}


def _frame(value: float) -> np.ndarray:
    return np.full((1, 3, 4, 6), value, np.float32)


def _cameras(batcher: FrameBatcher, values: list[float], fail: set[int] = frozenset()) -> dict[int, Any]:
    """One thread per camera, all taking part before any calls infer (frames in progress
    together); camera i sends a frame of value ``values[i]``, or fails before inference."""
    results: dict[int, Any] = {}
    barrier = threading.Barrier(len(values))

    def camera(i: int) -> None:
        with batcher.taking_part():
            barrier.wait()
            if i in fail:
                results[i] = "left"
                return
            results[i] = float(batcher.infer(_frame(values[i]))["depth"][0, 0, 0, 0])

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(len(values))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    return results


def test_frames_in_progress_run_in_one_call_each_getting_its_own_slice() -> None:
    backend = FakeBackend(batch_size=None)
    batcher = FrameBatcher(backend, BatchConfig(max_wait_ms=5000.0))
    backend.calls.clear()  # the construction probe
    assert _cameras(batcher, [1.0, 2.0, 3.0]) == {0: 1.0, 1: 2.0, 2: 3.0}
    assert backend.calls == [3]
    assert (batcher.backend_calls, batcher.frames) == (1, 3)


def test_fixed_batch_size_splits_into_calls_of_at_most_n() -> None:
    backend = FakeBackend(batch_size=2)
    batcher = FrameBatcher(backend, BatchConfig(max_wait_ms=5000.0))
    backend.calls.clear()
    assert _cameras(batcher, [1.0, 2.0, 3.0, 4.0]) == {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    assert sorted(backend.calls) == [2, 2]


def test_a_camera_whose_frame_fails_before_inference_does_not_hold_the_others() -> None:
    backend = FakeBackend(batch_size=None)
    batcher = FrameBatcher(backend, BatchConfig(max_wait_ms=10000.0))  # only the leaving releases it in time
    backend.calls.clear()
    assert _cameras(batcher, [1.0, 2.0, 3.0], fail={1}) == {0: 1.0, 1: "left", 2: 3.0}
    assert backend.calls == [2]


def test_without_a_batch_axis_or_with_batching_off_one_call_per_camera() -> None:
    for backend, config in ((FakeBackend(batch_size=1), BatchConfig()),
                            (FakeBackend(batch_size=None), BatchConfig(enabled=False))):
        batcher = FrameBatcher(backend, config)
        assert batcher.max_batch == 1
        assert _cameras(batcher, [1.0, 2.0]) == {0: 1.0, 1: 2.0}
        assert backend.calls == [1, 1]


def test_a_caller_outside_taking_part_runs_at_once() -> None:
    backend = FakeBackend(batch_size=None)
    batcher = FrameBatcher(backend)
    assert batcher.infer(_frame(5.0))["depth"].shape == (1, 1, 4, 6)


def test_a_lone_member_waits_at_most_max_wait_for_a_stuck_one() -> None:
    import time

    backend = FakeBackend(batch_size=None)
    batcher = FrameBatcher(backend, BatchConfig(max_wait_ms=100.0))
    stuck = threading.Event()

    def slow_camera() -> None:
        with batcher.taking_part():
            stuck.wait(5.0)  # a frame still decoding

    thread = threading.Thread(target=slow_camera)
    thread.start()
    try:
        with batcher.taking_part():
            t0 = time.monotonic()
            out = batcher.infer(_frame(7.0))
            waited_s = time.monotonic() - t0
    finally:
        stuck.set()
        thread.join()
    assert out["depth"][0, 0, 0, 0] == 7.0
    assert 0.09 <= waited_s < 2.0


def test_a_model_whose_outputs_lack_the_batch_axis_is_run_one_frame_per_call() -> None:
    batcher = FrameBatcher(FakeBackend(batch_size=None, batch_first=False))
    assert batcher.max_batch == 1
    with pytest.raises(BackendError, match="expected the batch first"):
        batcher._split({"depth": np.zeros((1, 2, 4, 6), np.float32)}, 2)


def test_backend_error_reaches_every_frame_of_the_batch() -> None:
    backend = FakeBackend(batch_size=None)
    batcher = FrameBatcher(backend, BatchConfig(max_wait_ms=5000.0))

    def broken(x: np.ndarray) -> dict[str, np.ndarray]:
        raise RuntimeError("runtime gave up")

    backend.infer_batch = broken  # type: ignore[method-assign]
    errors: list[str] = []
    barrier = threading.Barrier(2)

    def camera(value: float) -> None:
        with batcher.taking_part():
            barrier.wait()
            try:
                batcher.infer(_frame(value))
            except RuntimeError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=camera, args=(v,)) for v in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert errors == ["runtime gave up", "runtime gave up"]


def test_model_batch_size_of_backends_without_infer_batch() -> None:
    class Plain:
        batch_size = None

    assert model_batch_size(Plain()) == 1
    assert model_batch_size(FakeBackend(batch_size=3)) == 3


def test_batch_config_is_checked() -> None:
    with pytest.raises(ValueError, match="max_wait_ms must be >= 0.0"):
        BatchConfig(max_wait_ms=-1.0)


# -- end to end: two cameras, their own pipelines, one ONNX model with a batch axis ------------
@pytest.fixture(scope="module")
def batch_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conv net (disparity_sigmoid, 24x32) with a dynamic batch axis."""
    import torch

    from depth_ros.inference.onnx_export import export_onnx

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 1, 3, padding=1), torch.nn.Sigmoid())
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=24, input_width=32, name="tiny_batch",
                     min_depth_m=0.5, max_depth_m=20.0, metric=True, scale_source="velocity_supervision")
    return export_onnx(net, spec, tmp_path_factory.mktemp("e2e") / "tiny_batch.onnx", batch=None)


def _camera_frames() -> list[tuple[np.ndarray, Any]]:
    from depth_ros.core.camera import CameraModel

    rng = np.random.default_rng(11)
    return [
        (rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), CameraModel.from_intrinsics(64, 48, 50.0, 50.0, 31.5, 23.5)),
        (rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), CameraModel.from_intrinsics(80, 60, 70.0, 72.0, 40.0, 29.0)),
    ]


def _depths(batch_model: Path, enabled: bool) -> tuple[list[np.ndarray], FrameBatcher]:
    from depth_ros.inference.backend import create_backend
    from depth_ros.pipeline import FrameConfig, FramePipeline

    batcher = FrameBatcher(create_backend(batch_model, "onnxruntime-cpu", threads=1),
                           BatchConfig(enabled=enabled, max_wait_ms=5000.0))
    frames = _camera_frames()
    pipelines = [FramePipeline(batcher, FrameConfig(), contract_checked=True) for _ in frames]
    out: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def camera(i: int) -> None:
        with batcher.taking_part():
            barrier.wait()
            out[i] = pipelines[i].run(*frames[i]).depth_m

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return out, batcher


def test_two_cameras_batched_and_unbatched_give_the_same_depth(batch_model: Path) -> None:
    batched, b1 = _depths(batch_model, enabled=True)
    single, b2 = _depths(batch_model, enabled=False)
    assert (b1.backend_calls, b1.frames) == (1, 2)  # one call for both cameras
    assert (b2.backend_calls, b2.frames) == (2, 2)
    assert [d.shape for d in batched] == [(48, 64), (60, 80)]  # each at its own camera's size
    for got, want in zip(batched, single):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # different scenes give different depth, so a slice handed to the wrong camera would show
    assert not np.allclose(batched[0][:40, :60], batched[1][:40, :60], atol=1e-3)
