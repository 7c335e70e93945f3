"""One backend shared by several cameras: their frames gathered into one batched call.

Each camera's frame path (its own :class:`~depth_ros.pipeline.FramePipeline`: decode,
preprocess, postprocess, scale state) runs in its own thread and calls :meth:`FrameBatcher.infer`
with one frame, exactly as it would call the backend. Where the model has a batch axis (the
backend's ``batch_size``: None for a dynamic axis, N for a fixed one; see
:meth:`~depth_ros.inference.onnxruntime_backend.OnnxRuntimeBackend.infer_batch`), the batcher
holds each call until every camera that has a frame in progress has either called ``infer`` or
given up on its frame (:meth:`FrameBatcher.taking_part`), then runs all of them in one backend
call (at most ``batch_size`` per call) and hands each caller its own slice. Without a batch axis
(or with ``BatchConfig.enabled`` off) the calls run one per camera in turn.

A caller never waits longer than ``BatchConfig.max_wait_ms`` for the others. Pure Python and
numpy (no ROS): the multi-camera node (:mod:`depth_ros.ros.multi_depth_node`) and the tests use it.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from depth_ros.config_fields import check_described_fields, described
from depth_ros.errors import BackendError
from depth_ros.inference.contract import accepted_output_shapes, spec_input_shape

__all__ = ["BatchConfig", "FrameBatcher", "model_batch_size"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchConfig:
    """How concurrent frames share the backend.

    Attributes:
        enabled: gather the cameras' frames into one call where the model has a batch axis
            (off: one call per camera in turn, also for a batched model).
        max_wait_ms: longest a frame waits for the other cameras' frames (ms).
    """

    enabled: bool = described(True, "run the cameras' newest frames in one backend call where the model has a batch axis")
    max_wait_ms: float = described(200.0, "longest a frame waits (ms) for the other cameras' frames before its batch runs",
                                   min_value=0.0, max_value=10000.0)

    def __post_init__(self) -> None:
        check_described_fields(self)


def model_batch_size(backend: Any) -> int | None:
    """Frames one call of ``backend`` takes: 1 (no batch axis, or no ``infer_batch``), a fixed
    N, or None for a dynamic axis."""
    if not callable(getattr(backend, "infer_batch", None)):
        return 1
    return getattr(backend, "batch_size", 1)


class _Request:
    __slots__ = ("x", "outputs", "error", "done")

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.outputs: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None
        self.done = False


class FrameBatcher:
    """A backend (the :class:`~depth_ros.inference.contract.InferenceBackend` Protocol) that
    gathers concurrent one-frame calls into batched calls of ``backend``.

    Args:
        backend: a loaded backend; batched when it has ``infer_batch`` and a ``batch_size``
            other than 1.
        config: gathering on or off, and the longest wait.

    Attributes:
        max_batch: frames per backend call: 1 (one call per frame), N, or None (any number).
        backend_calls, frames: backend calls made and frames they ran (frames / backend_calls
            is the mean batch).

    On construction a batched model is run once on two frames (or its fixed N): outputs
    without the batch axis first, or not :func:`accepted_output_shapes` per frame, turn
    batching off with a warning (the model then runs one frame per call).
    """

    def __init__(self, backend: Any, config: BatchConfig | None = None) -> None:
        self.backend = backend
        self.config = config or BatchConfig()
        self.max_batch = model_batch_size(backend) if self.config.enabled else 1
        self.backend_calls = 0
        self.frames = 0
        self._cond = threading.Condition()
        self._run_lock = threading.Lock()  # one backend call at a time
        self._pending: list[_Request] = []
        self._members = 0  # threads with a frame in progress that have not called infer yet
        self._running = False
        self._local = threading.local()
        if self.max_batch != 1:
            self._probe()

    @property
    def name(self) -> str:
        return str(getattr(self.backend, "name", "unknown"))

    @property
    def spec(self) -> Any:
        return self.backend.spec

    def _probe(self) -> None:
        frames = 2 if self.max_batch is None else int(self.max_batch)
        x = np.zeros((frames, *spec_input_shape(self.spec)[1:]), np.float32)
        try:
            self._split(self.backend.infer_batch(x), frames)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not batch this model
            _log.warning("model '%s': a batch of %d frames does not run (%s); one frame per call",
                         self.spec.name, frames, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self.max_batch = 1

    def _split(self, outputs: dict[str, np.ndarray], frames: int) -> list[dict[str, np.ndarray]]:
        """Per-frame outputs of a batched call: each output's first axis cut into ``frames``
        (1, ...) slices.

        Raises:
            BackendError: an output without the batch axis first, or whose slices are not
                shapes the output contract accepts.
        """
        accepted = accepted_output_shapes(self.spec)
        wanted = {self.spec.output_name, self.spec.confidence_name} - {None}
        for name, out in outputs.items():
            shape = tuple(np.shape(out))
            if not shape or shape[0] != frames or (name in wanted and (1, *shape[1:]) not in accepted):
                raise BackendError(f"model '{self.spec.name}': output {name!r} has shape {shape} for a batch of "
                                   f"{frames} frames (expected the batch first, then one of {accepted})")
        return [{name: out[i:i + 1] for name, out in outputs.items()} for i in range(frames)]

    @contextlib.contextmanager
    def taking_part(self) -> Iterator[None]:
        """Around one camera's frame: while inside, a batch waits for this thread's
        :meth:`infer` (or its leaving, when the frame fails before inference)."""
        with self._cond:
            self._members += 1
        self._local.member = True
        try:
            yield
        finally:
            with self._cond:
                if self._local.member:  # left without calling infer
                    self._members -= 1
                    self._cond.notify_all()
            self._local.member = False

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """One frame (the spec's (1, ...) input) through the backend, alone or in a batch.

        Returns:
            the frame's outputs by name, as the backend returns them for one frame.

        Raises:
            whatever the backend raised on the call that ran this frame (the other frames of
            that batch get the same error); BackendError when a batch's outputs cannot be split.
        """
        if self.max_batch == 1:
            with self._run_lock:
                self._count(1)
                return self.backend.infer(x)
        request = _Request(x)
        deadline = time.monotonic() + self.config.max_wait_ms * 1e-3
        with self._cond:
            if getattr(self._local, "member", False):
                self._local.member = False
                self._members -= 1
            self._pending.append(request)
            self._cond.notify_all()
            while not request.done:
                full = self.max_batch is not None and len(self._pending) >= self.max_batch
                if not self._running and self._pending and (
                        self._members == 0 or full or time.monotonic() >= deadline):
                    self._run_pending()
                else:
                    self._cond.wait(max(0.001, min(0.05, deadline - time.monotonic())))
        if request.error is not None:
            raise request.error
        assert request.outputs is not None
        return request.outputs

    def _run_pending(self) -> None:
        """Run the waiting frames (at most ``max_batch``); called with ``_cond`` held, which
        is released during the backend call."""
        limit = len(self._pending) if self.max_batch is None else self.max_batch
        batch, self._pending = self._pending[:limit], self._pending[limit:]
        self._running = True
        self._cond.release()
        try:
            try:
                with self._run_lock:
                    self._count(len(batch))
                    if len(batch) == 1:
                        results = [self.backend.infer(batch[0].x)]
                    else:
                        results = self._split(self.backend.infer_batch(np.concatenate([r.x for r in batch])), len(batch))
                for request, outputs in zip(batch, results):
                    request.outputs = outputs
            except BaseException as exc:  # handed to every frame of the batch
                for request in batch:
                    request.error = exc
        finally:
            self._cond.acquire()
            for request in batch:
                request.done = True
            self._running = False
            self._cond.notify_all()

    def _count(self, frames: int) -> None:
        self.backend_calls += 1
        self.frames += frames
