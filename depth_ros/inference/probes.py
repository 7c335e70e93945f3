"""Whether the faster backends can run here: TensorRT, ONNX Runtime's CUDA provider, OpenVINO.

Used by :func:`depth_ros.inference.backend.select_backend` (which looks the probes up in its
own module at call time, so tests can monkeypatch them there) and by the TensorRT backend's
ONNX Runtime fallback.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["Probe", "probe_onnxruntime_cuda", "probe_openvino", "probe_tensorrt"]


@dataclass(frozen=True)
class Probe:
    """Whether an accelerator is usable here, and why (or why not), in words."""

    available: bool
    reason: str


def probe_tensorrt() -> Probe:
    """TensorRT usable: ``tensorrt`` imports and torch sees a CUDA device (buffers live there)."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        return Probe(False, "tensorrt not importable")
    except Exception as exc:  # a broken install raising OSError on its .so, ...
        return Probe(False, f"tensorrt import failed ({type(exc).__name__}: {exc})")
    version = str(getattr(trt, "__version__", "?"))
    major = version.split(".")[0]
    if not major.isdigit() or int(major) < 10:
        return Probe(False, f"tensorrt {version} is not >= 10 (the API this backend uses)")
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return Probe(False, "torch (needed for CUDA buffers) not importable")
    if not torch.cuda.is_available():
        return Probe(False, f"tensorrt {version} present but no CUDA device")
    return Probe(True, f"tensorrt {version} on {torch.cuda.get_device_name(0)}")


def probe_onnxruntime_cuda() -> Probe:
    """ONNX Runtime's CUDA execution provider is compiled in (onnxruntime-gpu installed)."""
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return Probe(False, "onnxruntime not importable")
    providers = list(ort.get_available_providers())
    if "CUDAExecutionProvider" not in providers:
        return Probe(False, f"no CUDAExecutionProvider in onnxruntime {ort.__version__} (has {providers})")
    return Probe(True, f"CUDAExecutionProvider in onnxruntime {ort.__version__}")


def probe_openvino() -> Probe:
    """OpenVINO usable for the CPU: ``openvino`` imports and lists a CPU device."""
    try:
        ov = importlib.import_module("openvino")
    except ImportError:
        return Probe(False, "openvino not importable")
    except Exception as exc:  # a broken install raising OSError on its .so, ...
        return Probe(False, f"openvino import failed ({type(exc).__name__}: {exc})")
    try:
        from depth_ros.inference.openvino_backend import _shared_core

        devices = list(_shared_core(ov).available_devices)
    except Exception as exc:
        return Probe(False, f"openvino {ov.__version__} cannot list devices ({type(exc).__name__}: {exc})")
    if "CPU" not in devices:
        return Probe(False, f"openvino {ov.__version__} has no CPU device (has {devices})")
    return Probe(True, f"openvino {ov.__version__} CPU plugin")

