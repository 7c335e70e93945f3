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
