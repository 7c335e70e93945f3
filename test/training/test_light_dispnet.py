"""The light depth network (training/models/light_dispnet.py): DispNet's interface, its cost,
gradients, export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_ros_training.models.dispnet import DispNet
from depth_ros_training.models.light_dispnet import LightDispNet, count_macs


def test_interface_is_dispnets():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 96)
    for scales in (1, 4):
        light, ref = LightDispNet(num_scales=scales), DispNet(num_layers=18, num_scales=scales)
        a, b = light(x), ref(x)
        assert [t.shape for t in a] == [t.shape for t in b]
        assert all(((t > 0) & (t < 1)).all() for t in a)


def test_cost_is_a_fraction_of_resnet18():
    light, ref = count_macs(LightDispNet(), 192, 640), count_macs(DispNet(num_layers=18), 192, 640)
    assert ref / light > 8.0, (light, ref)  # 0.91 G vs 8.0 G multiply-accumulates
    # the hook counts what a hand count gives for one layer: the first 3x3 stride-2 conv 3 -> 16
    first = torch.nn.Sequential(LightDispNet().encoder[0][0])
    assert count_macs(first, 64, 96) == 32 * 48 * 16 * 3 * 9


def test_every_parameter_gets_a_gradient():
    net = LightDispNet()
    loss = sum(d.mean() for d in net(torch.randn(1, 3, 64, 64)))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="multiples of 32"):
        LightDispNet()(torch.zeros(1, 3, 60, 96))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        LightDispNet()(torch.zeros(1, 4, 64, 96))
    with pytest.raises(ValueError, match="num_scales"):
        LightDispNet(num_scales=5)


def test_exports_to_onnx_with_parity(tmp_path):
    import onnxruntime as ort

    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec

    class Finest(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = LightDispNet(num_scales=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)[0]

    torch.manual_seed(1)
    module = Finest().eval()
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=64, input_width=96, name="light")
    path = export_onnx(module, spec, tmp_path / "light.onnx")  # export_onnx checks parity to 1e-4 itself
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 96)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < 1e-5


def test_encoder_batchnorm_is_folded_into_the_exported_convolutions(tmp_path):
    """The encoder's BatchNorm (trained statistics, not the identity start) leaves no node in the
    ONNX graph: the exported network has the BatchNorm-free network's operators, one for one."""
    import onnx

    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec

    torch.manual_seed(2)
    net = LightDispNet(num_scales=1)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 10
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(4, 3, 64, 96) * 3.0)  # running statistics away from (0, 1)
    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=64, input_width=96, name="light")

    def ops(model: torch.nn.Module, name: str) -> list[str]:
        class Finest(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = model

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.net(x)[0]

        path = export_onnx(Finest().eval(), spec, tmp_path / name)  # parity to 1e-4 checked by export_onnx
        return sorted(n.op_type for n in onnx.load(str(path)).graph.node if n.op_type not in ("Constant", "Identity"))

    got = ops(net, "norm.onnx")
    assert "BatchNormalization" not in got
    assert got == ops(LightDispNet(num_scales=1, norm=False), "plain.onnx")


def test_a_network_saved_without_encoder_batchnorm_still_loads():
    """State dicts of the BatchNorm-free encoder (networks saved before it had BatchNorm) load
    into ``LightDispNet()``, directly and inside the training module, and give the same output."""
    from depth_ros_training.module import DepthTrainingModule

    torch.manual_seed(3)
    old = LightDispNet(num_scales=1, norm=False).eval()
    new = LightDispNet(num_scales=1)
    assert new.norm and not any(k.endswith("0.bias") for k in new.state_dict() if k.startswith("encoder.0.0."))
    new.load_state_dict(old.state_dict())
    assert not new.norm
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(new.eval()(x)[0], old(x)[0])
    # a current state dict is not mistaken for an old one
    current = LightDispNet(num_scales=1)
    fresh = LightDispNet(num_scales=1)
    fresh.load_state_dict(current.state_dict())
    assert fresh.norm
    # inside the training module (what a checkpoint of a light run holds)
    saved = DepthTrainingModule(image_height=64, image_width=96, depth_network="light")
    saved.depth_net = LightDispNet(num_scales=saved.network.num_scales, norm=False)
    loaded = DepthTrainingModule(image_height=64, image_width=96, depth_network="light")
    loaded.load_state_dict(saved.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded.eval().predict_depth(x)[1], saved.eval().predict_depth(x)[1])


def test_sc_depth_task_trains_and_exports_the_light_network(tmp_path):
    """``model.depth_network: light``: the SC-Depth task builds LightDispNet, a step runs, the
    export is a disparity_sigmoid model of LightDispNet's size, and the checkpoint reloads it."""
    from depth_ros_training.export import export_module
    from depth_ros_training.module import DepthTrainingModule

    torch.manual_seed(0)
    module = DepthTrainingModule(image_height=64, image_width=96, depth_network="light", init_depth_m=3.0)
    assert isinstance(module.depth_net, LightDispNet)
    assert module.predict_depth(torch.rand(1, 3, 64, 96))[0].shape == (1, 1, 64, 96)
    result = export_module(module, tmp_path, pose=False, check_parity=True, tensorrt="off")
    assert result.parity_max_abs_error["depth"] < 1e-4
    light_params = sum(p.numel() for p in LightDispNet().parameters())
    assert (tmp_path / "depth.onnx").stat().st_size < 2 * 4 * light_params  # not a ResNet's 57 MB
    with pytest.raises(ValueError, match="depth_network must be one of resnet, light"):
        DepthTrainingModule(depth_network="tiny")
    with pytest.raises(ValueError, match="light depth network has no ResNet encoder"):
        DepthTrainingModule(depth_network="light", encoder_weights_path="enc.pt")
