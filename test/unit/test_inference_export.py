"""ONNX export: spec in metadata, parity check, atomic write, and failures that leave no file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from depth_ros.errors import ModelError
from depth_ros.inference.onnx_export import embed_spec, export_onnx
from depth_ros.inference.spec import METADATA_KEY, ModelSpec

SPEC = ModelSpec(output_kind="inverse_depth_relative", input_height=16, input_width=24, output_name="inv")


class _Affine(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.drop(self.conv(x))
        return {"inv": y, "aux": y.mean(dim=(2, 3))}


class _DriftsBetweenCalls(torch.nn.Module):
    """Returns x * (number of calls so far): the traced graph differs from the first call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x[:, :1] * float(self.calls)


class _NotExportable(torch.nn.Module):
    """Stands in for an operator the exporter cannot handle."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_exporting():
            raise NotImplementedError("op not exportable")
        return x[:, :1]


def test_export_writes_spec_names_and_fixed_shape(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _Affine().train()
    path = export_onnx(net, SPEC, tmp_path / "out" / "m.onnx")
    assert net.training  # mode restored
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert ModelSpec.from_json(props[METADATA_KEY]) == SPEC
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["inv", "aux"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 16, 24]
    assert model.opset_import[0].version == 20
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.onnx"]  # no temporary left
    # dropout is off in the export: ONNX equals the eval-mode module
    x = np.random.default_rng(0).random((1, 3, 16, 24), dtype=np.float32)
    got = ort.InferenceSession(str(path)).run(["inv"], {"image": x})[0]
    with torch.inference_mode():
        want = net.eval()(torch.from_numpy(x))["inv"].numpy()
    assert float(np.max(np.abs(got - want))) < 1e-5


def test_parity_failure_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    with pytest.raises(ModelError, match=r"exported output 'inv' differs from torch by .* \(allowed 0.0001\)"):
        export_onnx(_DriftsBetweenCalls(), SPEC, target)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_the_old_file_and_names_the_cause(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous model")
    with pytest.raises(ModelError) as err:
        export_onnx(_NotExportable(), SPEC, target)
    msg = str(err.value)
    assert msg.startswith("ONNX export of _NotExportable failed: ")
    assert "NotImplementedError: op not exportable" in msg and "\x1b" not in msg and "\n" not in msg
    with pytest.raises(ModelError, match="differs from torch"):
        export_onnx(_DriftsBetweenCalls(), SPEC, target)
    assert target.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_bad_opset_and_bad_outputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset must be an integer >= 18"):
        export_onnx(_Affine(), SPEC, tmp_path / "m.onnx", opset=11)

    class _Wrong(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"depth": x}

    with pytest.raises(ModelError, match="the spec's output_name is 'inv'"):
        export_onnx(_Wrong(), SPEC, tmp_path / "m.onnx")


def test_embed_spec_replaces_an_existing_entry() -> None:
    model = onnx.ModelProto()
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, "stale"
    other = model.metadata_props.add()
    other.key, other.value = "author", "someone"
    embed_spec(model, SPEC)
    props = [(p.key, p.value) for p in model.metadata_props]
    assert props == [("author", "someone"), (METADATA_KEY, SPEC.to_json())]
