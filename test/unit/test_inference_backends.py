"""ONNX Runtime backend vs PyTorch eager, the spec through ONNX metadata / sidecar, and the
input/output contract checks done when a model is loaded."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from depth_ros.errors import InputError, ModelError
from depth_ros.inference import backend as backend_mod
from depth_ros.inference.backend import InferenceBackend, Probe, create_backend, spec_input_shape
from depth_ros.inference.onnx_export import export_onnx
from depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from depth_ros.inference.spec import METADATA_KEY, ModelSpec, ModelSpecError, load_model_spec
from depth_ros.inference.torch_backend import TorchBackend

H, W = 32, 48


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` means ONNX Runtime CPU here, also on a machine with TensorRT or CUDA."""
    monkeypatch.setattr(backend_mod, "probe_tensorrt", lambda: Probe(False, "disabled in unit tests"))
    monkeypatch.setattr(backend_mod, "probe_onnxruntime_cuda", lambda: Probe(False, "disabled in unit tests"))


class TinyDepthNet(torch.nn.Module):
    """Encoder-decoder with BN, a skip, nearest + bilinear upsampling; (disparity, confidence)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.enc2 = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ELU())
        self.dec = torch.nn.Conv2d(16, 8, 3, 1, 1)
        self.disp = torch.nn.Conv2d(8, 1, 3, 1, 1)
        self.conf = torch.nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f1 = self.enc1(x)  # (1, 8, H/2, W/2)
        f2 = self.enc2(f1)  # (1, 16, H/4, W/4)
        up = torch.nn.functional.interpolate(self.dec(f2), scale_factor=2, mode="nearest") + f1
        up = torch.nn.functional.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.disp(up)), torch.sigmoid(self.conf(up))


class TinyPoseNet(torch.nn.Module):
    """Two frames stacked on channels -> (1, 6) axis-angle + translation, scaled by 0.01."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(6, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, 2, 1), torch.nn.ReLU()
        )
        self.head = torch.nn.Conv2d(16, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.01 * self.head(self.body(x)).mean(dim=(2, 3))


def _randomise_bn(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BN statistics, so folding them into convs is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


DEPTH_SPEC = ModelSpec(
    output_kind="disparity_sigmoid", input_height=H, input_width=W, confidence_name="confidence", name="tiny"
)
POSE_SPEC = ModelSpec(output_kind="pose_6dof", input_height=H, input_width=W, input_channels=6, output_name="pose")


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    net = _randomise_bn(TinyDepthNet(), 1)
    path = export_onnx(net, DEPTH_SPEC, tmp_path_factory.mktemp("depth") / "tiny_depth.onnx")
    return net, path


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(1)
    net = TinyPoseNet().eval()
    path = export_onnx(net, POSE_SPEC, tmp_path_factory.mktemp("pose") / "tiny_pose.onnx")
    return net, path


def _input(spec: ModelSpec, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).random(spec_input_shape(spec), dtype=np.float32)


# -- parity ---------------------------------------------------------------------------------


def test_onnxruntime_matches_torch_on_a_depth_net(depth_model: tuple[torch.nn.Module, Path]) -> None:
    net, path = depth_model
    ort_backend = create_backend(path, "onnxruntime-cpu")
    eager = TorchBackend(net, DEPTH_SPEC)
    x = _input(DEPTH_SPEC)
    got, want = ort_backend.infer(x), eager.infer(x)
    assert set(got) == set(want) == {"depth", "confidence"}
    for name in want:
        assert got[name].shape == want[name].shape == (1, 1, H, W)
        assert float(np.max(np.abs(got[name] - want[name]))) < 1e-5
        assert float(want[name].std()) > 1e-3  # the network is not trivially constant
    assert (ort_backend.name, eager.name) == ("onnxruntime-cpu", "torch-cpu")
    assert isinstance(ort_backend, InferenceBackend) and isinstance(eager, InferenceBackend)


def test_onnxruntime_matches_torch_on_a_6_channel_pose_net(pose_model: tuple[torch.nn.Module, Path]) -> None:
    net, path = pose_model
    ort_backend = create_backend(path)
    x = _input(POSE_SPEC, seed=5)
    got, want = ort_backend.infer(x)["pose"], TorchBackend(net, POSE_SPEC).infer(x)["pose"]
    assert got.shape == want.shape == (1, 6)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert np.all(np.abs(want) > 0)


def test_graph_optimisation_off_gives_the_same_result(depth_model: tuple[torch.nn.Module, Path]) -> None:
    _, path = depth_model
    x = _input(DEPTH_SPEC, seed=7)
    fused = OnnxRuntimeBackend(path, DEPTH_SPEC, threads=1).infer(x)["depth"]
    plain = OnnxRuntimeBackend(path, DEPTH_SPEC, threads=1, graph_optimization="disable").infer(x)["depth"]
    assert float(np.max(np.abs(fused - plain))) < 1e-5


def test_session_uses_the_requested_threads(depth_model: tuple[torch.nn.Module, Path]) -> None:
    backend = OnnxRuntimeBackend(depth_model[1], DEPTH_SPEC, threads=1)
    options = backend.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads, backend.threads) == (1, 1, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning = OnnxRuntimeBackend(depth_model[1], DEPTH_SPEC, threads=1, allow_spinning=True)
    assert spinning.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"


# -- spec through ONNX metadata and sidecar -------------------------------------------------


def test_spec_round_trips_through_onnx_metadata(depth_model: tuple[torch.nn.Module, Path]) -> None:
    _, path = depth_model
    assert load_model_spec(path) == DEPTH_SPEC
    assert create_backend(path).spec == DEPTH_SPEC


def test_yaml_sidecar_wins_over_metadata(depth_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(depth_model[1].read_bytes())
    sidecar_spec = dataclasses.replace(DEPTH_SPEC, name="from-sidecar", max_depth_m=42.0, metric=True)
    sidecar_spec.to_yaml(tmp_path / "m.onnx.yaml")
    backend = create_backend(model, "onnxruntime-cpu")
    assert backend.spec == sidecar_spec != DEPTH_SPEC


def test_missing_spec_is_a_model_spec_error(depth_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    proto = onnx.load(str(depth_model[1]))
    del proto.metadata_props[:]
    bare = tmp_path / "third_party.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelSpecError, match=f"no '{METADATA_KEY}' in the ONNX metadata and no YAML sidecar"):
        create_backend(bare)


# -- contract checks at load ----------------------------------------------------------------


def _with_sidecar(tmp_path: Path, source: Path, spec: ModelSpec) -> Path:
    model = tmp_path / "model.onnx"
    model.write_bytes(source.read_bytes())
    spec.to_yaml(tmp_path / "model.yaml")
    return model


def test_input_size_mismatch_says_what_model_and_spec_have(
    depth_model: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    model = _with_sidecar(tmp_path, depth_model[1], dataclasses.replace(DEPTH_SPEC, input_height=64))
    with pytest.raises(ModelError) as err:
        create_backend(model)
    msg = str(err.value)
    assert "shape [1, 3, 32, 48]" in msg and "spec says [1, 3, 64, 48]" in msg and "\n" not in msg


def test_input_name_mismatch(depth_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model = _with_sidecar(tmp_path, depth_model[1], dataclasses.replace(DEPTH_SPEC, input_name="rgb"))
    with pytest.raises(ModelError, match=r"input_name is 'rgb' but the model's inputs are \['image'\]"):
        create_backend(model)


def test_output_name_mismatch(depth_model: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model = _with_sidecar(tmp_path, depth_model[1], dataclasses.replace(DEPTH_SPEC, output_name="disp"))
    with pytest.raises(ModelError, match=r"outputs \['disp'\] but the model's outputs are \['depth', 'confidence'\]"):
        create_backend(model)


def test_pose_spec_on_a_depth_model_is_a_channel_mismatch(
    depth_model: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    spec = dataclasses.replace(POSE_SPEC, output_name="depth", input_name="image")
    model = _with_sidecar(tmp_path, depth_model[1], spec)
    with pytest.raises(ModelError, match=r"shape \[1, 3, 32, 48\] but the spec says \[1, 6, 32, 48\].*dim 1"):
        create_backend(model)


def _scale_model(path: Path, input_dims: list, factor: float = 2.0, channel_axis: int = 1) -> Path:
    """A small ONNX model ``depth = image[channel 0] * factor`` with the given (possibly symbolic)
    input dims; the output is the one (n, h, w) map a depth contract asks for."""
    out_dims = [d for i, d in enumerate(input_dims) if i != channel_axis % len(input_dims)]
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["image", "c0"], ["first"], axis=channel_axis),
            helper.make_node("Mul", ["first", "k"], ["depth"]),
        ],
        "scale",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, input_dims)],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, out_dims)],
        initializer=[
            helper.make_tensor("k", TensorProto.FLOAT, [], [factor]),
            helper.make_tensor("c0", TensorProto.INT64, [], [0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_dynamic_dims_are_accepted_and_run_at_the_spec_size(tmp_path: Path) -> None:
    model = _scale_model(tmp_path / "dyn.onnx", ["batch", 3, "height", None])
    spec = ModelSpec(output_kind="inverse_depth_relative", input_height=24, input_width=40)
    backend = create_backend(model, "onnxruntime-cpu", spec=spec)
    x = _input(spec)
    np.testing.assert_array_equal(backend.infer(x)["depth"], 2.0 * x[:, 0])


def test_nhwc_spec_against_nhwc_model(tmp_path: Path) -> None:
    model = _scale_model(tmp_path / "nhwc.onnx", [1, 24, 40, 3], factor=0.5, channel_axis=3)
    spec = ModelSpec(output_kind="depth_metric", input_height=24, input_width=40, layout="NHWC")
    backend = create_backend(model, spec=spec)
    x = _input(spec)
    assert x.shape == (1, 24, 40, 3)
    np.testing.assert_array_equal(backend.infer(x)["depth"], 0.5 * x[..., 0])
    with pytest.raises(ModelError, match=r"shape \[1, 24, 40, 3\] but the spec says \[1, 3, 24, 40\]"):
        create_backend(model, spec=dataclasses.replace(spec, layout="NCHW"))


def test_rank_mismatch(tmp_path: Path) -> None:
    model = _scale_model(tmp_path / "rank3.onnx", [3, 24, 40])
    spec = ModelSpec(output_kind="depth_metric", input_height=24, input_width=40)
    with pytest.raises(ModelError, match=r"rank 3 \(shape \[3, 24, 40\]\) but the spec says rank 4 NCHW"):
        create_backend(model, spec=spec)


def test_corrupt_or_truncated_model_file_is_a_one_line_model_error(
    depth_model: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    DEPTH_SPEC.to_yaml(tmp_path / "garbage.yaml")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(depth_model[1].read_bytes()[:2000])
    DEPTH_SPEC.to_yaml(tmp_path / "truncated.yaml")
    for path in (garbage, truncated):
        with pytest.raises(ModelError, match="ONNX Runtime cannot load the model") as err:
            create_backend(path, "onnxruntime-cpu")
        assert "\n" not in str(err.value) and str(path) in str(err.value)
    # Without a sidecar the spec reader meets the corrupt file first: still a ModelError.
    (tmp_path / "garbage.yaml").unlink()
    with pytest.raises(ModelError, match="not a readable ONNX file"):
        create_backend(garbage)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        create_backend(tmp_path / "nope.onnx")


def test_infer_rejects_wrong_shapes_and_dtypes(depth_model: tuple[torch.nn.Module, Path]) -> None:
    backend = create_backend(depth_model[1])
    with pytest.raises(InputError, match=r"shape \[1, 3, 48, 32\], the model takes \[1, 3, 32, 48\]"):
        backend.infer(np.zeros((1, 3, W, H), np.float32))
    with pytest.raises(InputError, match="floating point, got uint8"):
        backend.infer(np.zeros((1, 3, H, W), np.uint8))
    # float64 is accepted and converted: same result as float32
    x = _input(DEPTH_SPEC)
    np.testing.assert_array_equal(backend.infer(x.astype(np.float64))["depth"], backend.infer(x)["depth"])
