"""The runners of ``depth-ros infer``: the per-frame stages one after the other, or overlapped.

A pipeline object offers three stages (see :class:`depth_ros.bag.infer._Pipeline`):
``infer(item)`` (the network) and ``finish(item)`` (postprocess + write), fed with the items of
an iterator that reads and prepares frames. :func:`run_overlapped` runs reading and writing in
two threads beside the network, which stays in the calling thread.
"""
from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from depth_ros.inference.backend import InferenceBackend

__all__ = ["network_on_gpu", "run_overlapped", "run_sequential"]


def network_on_gpu(backend: "InferenceBackend") -> bool:
    name = backend.name.lower()
    return "cuda" in name or "tensorrt" in name


def run_sequential(pipeline: Any, items: Iterator[Any]) -> None:
    for item in items:
        pipeline.finish(pipeline.infer(item))


_END = object()
_POLL_S = 0.1
_QUEUE_ITEMS = 3


def run_overlapped(pipeline: Any, items: Iterator[Any]) -> None:
    """Stage 1 in a reader thread, stage 2 (the network) here, stage 3 in a writer thread.

    The network runs in the calling thread (CUDA / TensorRT contexts belong to the thread that
    made them; Ctrl-C arrives here). Bounded queues keep at most a few frames in flight and
    the output in input order. The first exception of any stage stops all three and is
    raised here.
    """
    to_network: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_ITEMS)
    to_writer: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_ITEMS)
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(q: "queue.Queue[Any]", item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(q: "queue.Queue[Any]") -> Any:
        while True:
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                if stop.is_set():
                    return _END

    def read() -> None:
        try:
            for item in items:
                if not put(to_network, item):
                    return
            put(to_network, _END)
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)
            stop.set()
        finally:
            items.close()  # type: ignore[attr-defined]

    def write() -> None:
        try:
            while (item := get(to_writer)) is not _END:
                pipeline.finish(item)
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=read, name="depth_ros-infer-read", daemon=True),
        threading.Thread(target=write, name="depth_ros-infer-write", daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        while (item := get(to_network)) is not _END:
            if not put(to_writer, pipeline.infer(item)):
                break
        put(to_writer, _END)
        threads[1].join()
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
