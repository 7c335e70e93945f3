"""Keep the frame buffers' memory in the process (glibc ``mallopt``), as ROS 2 real-time nodes do.

Every frame allocates and frees buffers of megabytes: the depth image and cloud arrays, their
message payloads, and rclpy's own copies when it converts and serialises a message (a 640x480
cloud is 4.9 MB, three or four times per frame). glibc serves an allocation this large with a
fresh ``mmap`` and gives it back with ``munmap`` (or trims the heap's top), so the next frame
page-faults the same megabytes in again: measured with bench/bench_frame_stages.py on the
loaded 2-core machine (load 6-7), a 640x480 cloud's fill took 3.2-7.8 ms and its rclpy
serialisation 20-24 ms, with the memory kept 1.0-1.1 ms and 6.6 ms. :func:`keep_freed_memory`
raises the mmap threshold to 32 MB (glibc's largest by default) and the trim threshold to
128 MB, so freed frame buffers are reused. The price is RSS: up to ~128 MB freed memory may stay
mapped (bench_node_soak reports the node's RSS growth).

Process-wide; a no-op (False) where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "keep_freed_memory"]

MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 128 << 20
_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring).

    Returns:
        True when both were set; False where ``mallopt`` is missing or refused.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
