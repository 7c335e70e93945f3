"""Backend selection: `auto` order, explicit choices, file types, options, and what gets logged."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from depth_ros.errors import BackendError, ModelError
from depth_ros.inference import backend as backend_mod
from depth_ros.inference.backend import BACKEND_CHOICES, Probe, create_backend, select_backend
from depth_ros.inference.spec import ModelSpec

YES_TRT = Probe(True, "tensorrt 10.3 on Fake GPU")
NO_TRT = Probe(False, "tensorrt not importable")
YES_CUDA = Probe(True, "CUDAExecutionProvider present")
NO_CUDA = Probe(False, "no CUDAExecutionProvider")
YES_OV = Probe(True, "openvino 2026.4 CPU plugin")
NO_OV = Probe(False, "openvino not importable")

SPEC = ModelSpec(output_kind="depth_metric", input_height=8, input_width=12, name="identity")


@pytest.fixture()
def onnx_model(tmp_path: Path) -> Path:
    """A channel-mean model (one (1, 1, 8, 12) depth map, as the contract asks) with its spec in a sidecar."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["depth"], axes=[1], keepdims=1)],
        "identity",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 12])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, 8, 12])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "identity.onnx"
    onnx.save(model, str(path))
    SPEC.to_yaml(tmp_path / "identity.onnx.yaml")
    return path


@pytest.mark.parametrize(
    "trt, cuda, ov, expected",
    [
        (YES_TRT, YES_CUDA, YES_OV, "tensorrt"),
        (YES_TRT, NO_CUDA, NO_OV, "tensorrt"),
        (NO_TRT, YES_CUDA, YES_OV, "onnxruntime-cuda"),
        (NO_TRT, NO_CUDA, YES_OV, "openvino"),
        (NO_TRT, NO_CUDA, NO_OV, "onnxruntime-cpu"),
    ],
)
def test_auto_order_is_tensorrt_then_ort_cuda_then_openvino_then_ort_cpu(trt: Probe, cuda: Probe, ov: Probe, expected: str) -> None:
    selection = select_backend("m.onnx", "auto", probe_trt=lambda: trt, probe_ort_cuda=lambda: cuda, probe_ov=lambda: ov)
    assert selection.kind == expected
    assert selection.reason.startswith("auto: ")


def test_auto_reason_names_what_was_missing() -> None:
    selection = select_backend("m.onnx", "auto", probe_trt=lambda: NO_TRT, probe_ort_cuda=lambda: NO_CUDA, probe_ov=lambda: NO_OV)
    assert "TensorRT unavailable: tensorrt not importable" in selection.reason
    assert "ONNX Runtime CUDA unavailable: no CUDAExecutionProvider" in selection.reason
    assert "OpenVINO unavailable: openvino not importable" in selection.reason


def test_openvino_only_when_asked_or_under_auto() -> None:
    assert select_backend("m.onnx", "openvino", lambda: YES_TRT, lambda: YES_CUDA, lambda: YES_OV).kind == "openvino"
    assert select_backend("m.onnx", "onnxruntime", lambda: NO_TRT, lambda: NO_CUDA, lambda: YES_OV).kind == "onnxruntime-cpu"
    with pytest.raises(BackendError, match="backend 'openvino' is not available: openvino not importable"):
        select_backend("m.onnx", "openvino", lambda: NO_TRT, lambda: NO_CUDA, lambda: NO_OV)


def test_onnxruntime_request_never_picks_tensorrt() -> None:
    pick = lambda cuda: select_backend("m.onnx", "onnxruntime", lambda: YES_TRT, lambda: cuda).kind  # noqa: E731
    assert (pick(YES_CUDA), pick(NO_CUDA)) == ("onnxruntime-cuda", "onnxruntime-cpu")
    assert select_backend("m.onnx", "onnxruntime-cpu", lambda: YES_TRT, lambda: YES_CUDA).kind == "onnxruntime-cpu"
    assert select_backend("m.onnx", "tensorrt", lambda: NO_TRT, lambda: NO_CUDA).kind == "tensorrt"


def test_onnxruntime_cuda_request_without_cuda_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="'onnxruntime-cuda' is not available: no CUDAExecutionProvider"):
        select_backend("m.onnx", "onnxruntime-cuda", lambda: NO_TRT, lambda: NO_CUDA)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".PT"])
def test_checkpoints_go_to_torch(suffix: str) -> None:
    assert select_backend(f"m{suffix}", "auto", lambda: YES_TRT, lambda: YES_CUDA).kind == "torch"
    assert select_backend(f"m{suffix}", "torch").kind == "torch"
    with pytest.raises(ModelError, match="needs an ONNX file, got a torch checkpoint"):
        select_backend(f"m{suffix}", "tensorrt")


def test_file_type_mismatches() -> None:
    with pytest.raises(ModelError, match="torch backend loads checkpoints"):
        select_backend("m.onnx", "torch")
    with pytest.raises(ModelError, match=r"unknown model file type '\.engine'"):
        select_backend("m.engine", "auto")


def test_unknown_backend_lists_the_choices() -> None:
    with pytest.raises(ValueError) as err:
        select_backend("m.onnx", "coreml")
    assert "'coreml'" in str(err.value)
    assert all(choice in str(err.value) for choice in BACKEND_CHOICES)


def test_probes_are_looked_up_at_call_time_and_the_pick_is_logged(
    onnx_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backend_mod, "probe_tensorrt", lambda: NO_TRT)
    monkeypatch.setattr(backend_mod, "probe_onnxruntime_cuda", lambda: NO_CUDA)
    monkeypatch.setattr(backend_mod, "probe_openvino", lambda: NO_OV)
    with caplog.at_level(logging.INFO, logger="depth_ros.inference"):
        backend = create_backend(onnx_model)
    assert backend.name == "onnxruntime-cpu"
    assert backend.spec == SPEC
    assert any(
        "inference backend: onnxruntime-cpu for identity.onnx" in r.message and "tensorrt not importable" in r.message
        for r in caplog.records
    )


def test_auto_falls_back_when_tensorrt_probes_present_but_cannot_build(
    onnx_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # The probe claims TensorRT, but `import tensorrt` fails when the backend is built:
    # `auto` must still give a working backend, with a warning.
    monkeypatch.setattr(backend_mod, "probe_tensorrt", lambda: YES_TRT)
    monkeypatch.setattr(backend_mod, "probe_onnxruntime_cuda", lambda: NO_CUDA)
    monkeypatch.setattr(backend_mod, "probe_openvino", lambda: NO_OV)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with caplog.at_level(logging.WARNING, logger="depth_ros.inference"):
        backend = create_backend(onnx_model, cache_dir=tmp_path / "engines", threads=1)
    assert backend.name == "onnxruntime-cpu"
    assert backend.threads == 1  # the fallback received the ONNX Runtime options
    assert any("falling back to onnxruntime" in r.message for r in caplog.records)
    # Asked for explicitly, TensorRT failing is an error unless a fallback is configured.
    with pytest.raises(BackendError, match="TensorRT cannot run identity.onnx: TensorRT is not available"):
        create_backend(onnx_model, "tensorrt", cache_dir=tmp_path / "engines", threads=1)
    explicit = create_backend(onnx_model, "tensorrt", fallback="onnxruntime", threads=1)
    assert (explicit.name, explicit.threads) == ("onnxruntime-cpu", 1)


def test_options_are_checked(onnx_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_mod, "probe_tensorrt", lambda: NO_TRT)
    monkeypatch.setattr(backend_mod, "probe_onnxruntime_cuda", lambda: NO_CUDA)
    monkeypatch.setattr(backend_mod, "probe_openvino", lambda: NO_OV)
    with pytest.raises(ValueError, match=r"unknown backend options \['thread'\]"):
        create_backend(onnx_model, thread=2)
    with pytest.raises(ValueError, match=r"options \['precision'\] do not apply to backend 'onnxruntime-cpu'"):
        create_backend(onnx_model, "onnxruntime-cpu", precision="fp16")
    # Under auto, options of backends that were not picked are ignored.
    assert create_backend(onnx_model, precision="fp16", threads=1).name == "onnxruntime-cpu"
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        create_backend(onnx_model, threads=0)


def test_real_probes_return_reasons() -> None:
    # Whatever this machine has, the probes answer with a Probe and a non-empty reason.
    for probe in (backend_mod.probe_tensorrt(), backend_mod.probe_onnxruntime_cuda()):
        assert isinstance(probe.available, bool) and probe.reason


def test_tensorrt_probe_without_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert backend_mod.probe_tensorrt() == Probe(False, "tensorrt not importable")


def test_auto_falls_back_to_onnxruntime_when_openvino_cannot_run_the_model(
    onnx_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from depth_ros.inference import openvino_backend

    def refuse(path: Path, spec: ModelSpec, **options: object) -> None:
        raise BackendError(f"{path}: OpenVINO cannot compile the model for the CPU (unsupported operator)")

    monkeypatch.setattr(backend_mod, "probe_tensorrt", lambda: NO_TRT)
    monkeypatch.setattr(backend_mod, "probe_onnxruntime_cuda", lambda: NO_CUDA)
    monkeypatch.setattr(backend_mod, "probe_openvino", lambda: YES_OV)
    monkeypatch.setattr(openvino_backend, "OpenVinoBackend", refuse)
    with caplog.at_level(logging.WARNING, logger="depth_ros.inference"):
        backend = create_backend(onnx_model, threads=1)
    assert (backend.name, backend.threads) == ("onnxruntime-cpu", 1)
    assert any("OpenVINO cannot run identity.onnx" in r.message and "using ONNX Runtime" in r.message for r in caplog.records)
    with pytest.raises(BackendError, match="unsupported operator"):  # asked for by name: its error
        create_backend(onnx_model, "openvino", threads=1)
