"""Torch checkpoints for the eager backend: round trip, spec precedence, and what is refused."""
from __future__ import annotations

import dataclasses
import pathlib
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_ros.errors import ModelError
from depth_ros.inference.backend import create_backend, spec_input_shape
from depth_ros.inference.spec import ModelSpec, ModelSpecError
from depth_ros.inference.torch_backend import (
    TorchBackend,
    load_checkpoint,
    named_outputs,
    resolve_arch,
    save_checkpoint,
)
from depth_ros_training.models.dispnet import DispNet

ARCH = "depth_ros_training.models.dispnet:DispNet"
SPEC = ModelSpec(output_kind="disparity_sigmoid", input_height=64, input_width=96, name="dispnet18")


@pytest.fixture(scope="module")
def dispnet() -> DispNet:
    torch.manual_seed(0)
    return DispNet(num_layers=18, num_scales=1).eval()


@pytest.fixture(scope="module")
def checkpoint(dispnet: DispNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "dispnet.pt"
    return save_checkpoint(path, dispnet, SPEC, arch_kwargs={"num_layers": 18, "num_scales": 1})


def _input(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(spec_input_shape(SPEC)).astype(np.float32)


def test_checkpoint_round_trip_gives_the_same_outputs(dispnet: DispNet, checkpoint: Path) -> None:
    backend = create_backend(checkpoint)
    assert (backend.name, backend.spec) == ("torch-cpu", SPEC)
    x = _input()
    got = backend.infer(x)
    with torch.inference_mode():
        want = dispnet(torch.from_numpy(x))[0].numpy()
    assert list(got) == ["depth"] and got["depth"].shape == (1, 1, 64, 96)
    np.testing.assert_array_equal(got["depth"], want)


def test_checkpoint_layout(checkpoint: Path) -> None:
    data = torch.load(checkpoint, weights_only=True)
    assert data["arch"] == ARCH and data["arch_kwargs"] == {"num_layers": 18, "num_scales": 1}
    assert ModelSpec.from_json(data["model_spec"]) == SPEC
    module, spec = load_checkpoint(checkpoint)
    assert isinstance(module, DispNet) and not module.training and spec == SPEC


def test_spec_precedence_explicit_then_sidecar_then_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    local = tmp_path / "dispnet.pt"
    local.write_bytes(checkpoint.read_bytes())
    sidecar = dataclasses.replace(SPEC, name="sidecar", metric=True)
    sidecar.to_yaml(tmp_path / "dispnet.pt.yaml")
    explicit = dataclasses.replace(SPEC, name="explicit")
    assert create_backend(local).spec == sidecar
    assert create_backend(local, "torch", spec=explicit).spec == explicit


@pytest.mark.parametrize(
    "arch",
    [
        "os:system",
        "builtins:eval",
        "torch.nn:Linear",
        "depth_ros_trainingx.models:DispNet",  # a prefix is not the package
        "depth_ros_training/../os:system",
        "depth_ros_training.models.dispnet:DispNet.__init__",
        "depth_ros_training.models.dispnet",
    ],
)
def test_foreign_or_malformed_arch_is_refused(arch: str) -> None:
    with pytest.raises(ModelError, match="refused|must look like"):
        resolve_arch(arch)


def test_allowed_names_that_are_not_modules_classes_are_refused() -> None:
    with pytest.raises(ModelError, match="is not an nn.Module class"):
        resolve_arch("depth_ros_training.models.dispnet:disp_to_depth")
    with pytest.raises(ModelError, match="cannot import depth_ros_training.no_such_module"):
        resolve_arch("depth_ros_training.no_such_module:Net")
    assert resolve_arch(ARCH) is DispNet


def _write(path: Path, payload: object) -> Path:
    torch.save(payload, path)
    return path


def test_checkpoint_with_foreign_arch_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    data = torch.load(checkpoint, weights_only=True)
    data["arch"] = "torch.nn:Linear"
    path = _write(tmp_path / "foreign.pt", data)
    with pytest.raises(ModelError, match=r"arch 'torch.nn:Linear' refused: only classes under depth_ros / depth_ros_training"):
        create_backend(path)


class _SideEffect:
    """A pickle payload: unpickling it would create ``marker`` (a stand-in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (pathlib.Path.touch, (self.marker,))


def test_pickle_payload_is_refused_without_running_it(checkpoint: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = torch.load(checkpoint, weights_only=True)
    data["arch_kwargs"] = {"num_layers": 18, "hook": _SideEffect(marker)}
    path = _write(tmp_path / "evil.pt", data)
    with pytest.raises(ModelError, match="refused: the checkpoint holds Python objects") as err:
        create_backend(path)
    assert not marker.exists()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("state_dict"), r"missing keys \['state_dict'\]"),
        (lambda d: d.update(arch_kwargs={"num_layers": 7}), "cannot build .* with arch_kwargs"),
        (lambda d: d.update(arch_kwargs={"bogus": 1}), "cannot build"),
        (lambda d: d["state_dict"].pop("encoder.conv1.weight"), "state_dict does not fit .*encoder.conv1.weight"),
        (lambda d: d.update(model_spec='{"output_kind": "depth_metric"}'), "missing required keys"),
        (lambda d: d.update(state_dict={"a": 1}), "state_dict must map names to tensors"),
    ],
)
def test_broken_checkpoints_say_what_is_wrong(checkpoint: Path, tmp_path: Path, mutate, message: str) -> None:
    data = torch.load(checkpoint, weights_only=True)
    mutate(data)
    path = _write(tmp_path / "broken.pt", data)
    with pytest.raises(ModelError, match=message):
        create_backend(path)


def test_malformed_spec_in_checkpoint_is_a_spec_error(checkpoint: Path, tmp_path: Path) -> None:
    data = torch.load(checkpoint, weights_only=True)
    data["model_spec"] = "{not json"
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        create_backend(_write(tmp_path / "badspec.pt", data))


def test_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(ModelError, match="not a readable torch checkpoint"):
        create_backend(junk)
    listed = _write(tmp_path / "list.pt", [1, 2, 3])
    with pytest.raises(ModelError, match="checkpoint is a list, expected a dict"):
        create_backend(listed)


def test_save_refuses_an_arch_it_could_not_load(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="refused"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Conv2d(3, 1, 1), SPEC)
    assert not (tmp_path / "x.pt").exists()


def test_named_outputs_conventions() -> None:
    spec = dataclasses.replace(SPEC, confidence_name="conf")
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    assert list(named_outputs(a, spec)) == ["depth"]
    assert list(named_outputs((a, b, c), spec)) == ["depth", "conf", "output_2"]
    assert list(named_outputs([a, b], SPEC)) == ["depth", "output_1"]
    assert named_outputs({"depth": a, "extra": b}, spec)["extra"] is b
    with pytest.raises(ModelError, match="non-string keys"):
        named_outputs({("disp", 0): a}, spec)
    with pytest.raises(ModelError, match="the spec's output_name is 'depth'"):
        named_outputs({"disp": a}, spec)
    with pytest.raises(ModelError, match="returns int"):
        named_outputs(3, spec)


def test_torch_backend_checks_its_input(dispnet: DispNet) -> None:
    backend = TorchBackend(dispnet, SPEC)
    with pytest.raises(ValueError, match=r"shape \[1, 3, 96, 64\], the model takes \[1, 3, 64, 96\]"):
        backend.infer(np.zeros((1, 3, 96, 64), np.float32))


def test_file_paths_in_constructor_arguments_are_not_followed(dispnet: DispNet, tmp_path: Path) -> None:
    # The state dict carries every weight: a checkpoint naming a local file for the encoder
    # weights must not make the loader read it (here it does not even exist).
    path = save_checkpoint(
        tmp_path / "with_path.pt",
        dispnet,
        SPEC,
        arch_kwargs={"num_layers": 18, "num_scales": 1, "weights_path": "/nonexistent/encoder.pt"},
    )
    module, _ = load_checkpoint(path)
    x = torch.from_numpy(_input(3))
    with torch.inference_mode():
        np.testing.assert_array_equal(module(x)[0].numpy(), dispnet(x)[0].numpy())
