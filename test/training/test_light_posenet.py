"""The light pose network (``model.pose_network: light``): PoseNet's interface and convention,
its cost, gradients, a training step, the pose export and a checkpoint without the key."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_ros_training.models.light_dispnet import count_macs
from depth_ros_training.models.posenet import LightPoseNet, PoseNet


class _Pair(torch.nn.Module):
    """One 6-channel input for count_macs: the two frames side by side in channels."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, x)


def test_interface_and_start_are_posenets():
    torch.manual_seed(0)
    tgt, src = torch.randn(3, 3, 64, 96), torch.randn(3, 3, 64, 96)
    light, ref = LightPoseNet(), PoseNet(num_layers=18)
    a, b = light(tgt, src), ref(tgt, src)
    assert a.shape == b.shape == (3, 6)
    assert a.abs().max() < 0.05  # POSE_SCALE: starts near the identity motion, as PoseNet does


def test_cost_is_a_fraction_of_resnet18s():
    light = count_macs(_Pair(LightPoseNet()), 192, 640)
    ref = count_macs(_Pair(PoseNet(num_layers=18)), 192, 640)
    assert ref / light > 5.0, (light, ref)


def test_every_parameter_gets_a_gradient():
    net = LightPoseNet()
    net(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)).pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="LightPoseNet input height and width must be multiples of 32"):
        LightPoseNet()(torch.zeros(1, 3, 60, 96), torch.zeros(1, 3, 60, 96))
    with pytest.raises(ValueError, match="same shape"):
        LightPoseNet()(torch.zeros(1, 3, 64, 96), torch.zeros(2, 3, 64, 96))


def test_module_trains_and_exports_the_light_pose_network(tmp_path):
    """``model.pose_network: light``: the module builds LightPoseNet (beside either depth network),
    a training step moves it, the pose export runs in ONNX Runtime like the module, and a checkpoint
    saved before the key existed still builds the ResNet PoseNet."""
    import onnxruntime as ort

    from depth_ros_training.export import export_module
    from depth_ros_training.module import DepthTrainingModule
    from depth_ros_training.module_config import NetworkConfig

    torch.manual_seed(0)
    module = DepthTrainingModule(image_height=64, image_width=96, depth_network="light", pose_network="light")
    assert isinstance(module.pose_net, LightPoseNet)
    before = [p.detach().clone() for p in module.pose_net.parameters()]
    opt = torch.optim.Adam(module.pose_net.parameters(), lr=1e-3)
    tgt, src = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    (module.predict_pose(tgt, src) - torch.tensor([0.0, 0.0, 0.0, 0.1, 0.0, 0.5])).abs().sum().backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, module.pose_net.parameters()))
    module.eval()
    result = export_module(module, tmp_path, pose=True, check_parity=True, tensorrt="off")
    assert result.parity_max_abs_error["pose"] < 1e-4
    pair = np.concatenate([tgt.numpy(), src.numpy()], axis=1)[:1]
    session = ort.InferenceSession(str(tmp_path / "pose.onnx"), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: _normalised(module, pair)}
    with torch.no_grad():
        want = module.predict_pose(tgt[:1], src[:1]).numpy()
    np.testing.assert_allclose(session.run(None, feed)[0].reshape(want.shape), want, atol=1e-5)
    assert isinstance(DepthTrainingModule(image_height=64, image_width=96, depth_network="light").pose_net, PoseNet)
    assert NetworkConfig.from_hparams({"depth_network": "light"}).pose_network == "resnet"  # an older checkpoint
    with pytest.raises(ValueError, match="pose_network must be one of resnet, light, got 'tiny'"):
        NetworkConfig(pose_network="tiny")


def _normalised(module, pair01: np.ndarray) -> np.ndarray:
    """The pose model's input: both frames normalised with the module's mean / std."""
    mean = np.tile(np.asarray(module.network.mean, np.float32), 2).reshape(1, 6, 1, 1)
    std = np.tile(np.asarray(module.network.std, np.float32), 2).reshape(1, 6, 1, 1)
    return ((pair01 - mean) / std).astype(np.float32)
