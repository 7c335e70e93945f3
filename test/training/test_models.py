"""DispNet, PoseNet, ResNet encoder: shapes, conventions, weight loading."""
from __future__ import annotations

import math

import pytest
import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from depth_ros_training.models import DispNet, PoseNet, ResNetEncoder, disp_to_depth, pose_vec_to_mat
from depth_ros_training.models.posenet import axis_angle_to_matrix


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_encoder_feature_shapes_resnet18() -> None:
    enc = ResNetEncoder(18)
    feats = enc(torch.randn(1, 3, 64, 96))
    assert enc.num_ch_enc == [64, 64, 128, 256, 512]
    assert [tuple(f.shape) for f in feats] == [
        (1, 64, 32, 48), (1, 64, 16, 24), (1, 128, 8, 12), (1, 256, 4, 6), (1, 512, 2, 3)
    ]


def test_encoder_resnet50_channels_and_parameter_count() -> None:
    enc = ResNetEncoder(50)
    feats = enc(torch.randn(2, 3, 32, 32))
    assert enc.num_ch_enc == [64, 256, 512, 1024, 2048]
    assert [f.shape[1] for f in feats] == enc.num_ch_enc
    # ResNet-50 without the 1000-class fc (2048*1000 + 1000) has 23,508,032 parameters.
    assert sum(p.numel() for p in enc.parameters()) == 23_508_032


def test_encoder_resnet18_parameter_count() -> None:
    # ResNet-18 is 11,689,512 parameters with its fc (512*1000 + 1000).
    assert sum(p.numel() for p in ResNetEncoder(18).parameters()) == 11_689_512 - 513_000


def test_encoder_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        ResNetEncoder(19)
    with pytest.raises(ValueError, match="in_channels"):
        ResNetEncoder(18, in_channels=0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ResNetEncoder(18)(torch.randn(1, 4, 32, 32))


def test_dispnet_returns_a_list_of_sigmoid_maps_finest_first_in_both_modes() -> None:
    net = DispNet(18)
    x = torch.randn(1, 3, 64, 96)
    for mode in (True, False):
        net.train(mode)
        with torch.no_grad():
            disps = net(x)
        assert isinstance(disps, list)
        assert [tuple(d.shape) for d in disps] == [(1, 1, 64, 96), (1, 1, 32, 48), (1, 1, 16, 24), (1, 1, 8, 12)]
        assert all(float(d.min()) > 0.0 and float(d.max()) < 1.0 for d in disps)


def test_dispnet_num_scales() -> None:
    disps = DispNet(18, num_scales=1).eval()(torch.randn(1, 3, 64, 96))
    assert len(disps) == 1 and disps[0].shape == (1, 1, 64, 96)
    with pytest.raises(ValueError, match="num_scales"):
        DispNet(18, num_scales=5)


@pytest.mark.parametrize("shape", [(1, 3, 48, 64), (1, 3, 64, 100), (1, 3, 32, 64), (1, 1, 64, 64), (3, 64, 64)])
def test_dispnet_rejects_bad_input_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"multiples of 32 and >= 64|\(B, 3, H, W\)"):
        DispNet(18)(torch.randn(*shape))


def test_disp_to_depth_matches_the_model_spec_formula() -> None:
    w = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    depth = disp_to_depth(w, 0.1, 100.0)
    # disp = 1/100 + (1/0.1 - 1/100) * w
    expected = torch.tensor([100.0, 1.0 / (0.01 + 9.99 * 0.5), 0.1], dtype=torch.float64)
    torch.testing.assert_close(depth, expected)
    with pytest.raises(ValueError, match="min_depth_m"):
        disp_to_depth(w, 2.0, 1.0)


def test_dispnet_loads_encoder_weights_from_a_local_file(tmp_path) -> None:
    source = ResNetEncoder(18)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    state = dict(source.state_dict())
    state["fc.weight"] = torch.zeros(1000, 512)  # classifier keys of an ImageNet file are ignored
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    net = DispNet(18, weights_path=path)
    for name, value in source.state_dict().items():
        torch.testing.assert_close(net.encoder.state_dict()[name], value)


def test_mismatched_weights_are_a_clear_error(tmp_path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(ResNetEncoder(50).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit ResNet-18.*unexpected keys.*shape mismatches"):
        ResNetEncoder(18, weights_path=path)
    bad = tmp_path / "not_a_state_dict.pth"
    torch.save([1, 2, 3], bad)
    with pytest.raises(ValueError, match="expected a state_dict"):
        ResNetEncoder(18, weights_path=bad)
    with pytest.raises(FileNotFoundError):
        ResNetEncoder(18, weights_path=tmp_path / "missing.pth")


def test_posenet_shape_and_small_initial_motion() -> None:
    net = PoseNet(18)
    pose = net(torch.randn(3, 3, 64, 96), torch.randn(3, 3, 64, 96))
    assert pose.shape == (3, 6)
    # output scaling 0.01: the untrained network starts near the identity motion
    assert float(pose.detach().abs().max()) < 0.05
    with pytest.raises(ValueError, match="same shape"):
        net(torch.randn(1, 3, 64, 96), torch.randn(1, 3, 64, 64))


def test_posenet_encoder_from_three_channel_weights_sees_two_equal_frames_as_one(tmp_path) -> None:
    source = ResNetEncoder(18).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    pose_net = PoseNet(18, weights_path=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = source(x)[-1]
        got = pose_net.encoder(torch.cat([x, x], dim=1))[-1]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_pose_vec_to_mat_is_a_rigid_transform_matching_kornia() -> None:
    vec = torch.randn(5, 6, dtype=torch.float64)
    T = pose_vec_to_mat(vec)
    assert T.shape == (5, 4, 4)
    R = T[:, :3, :3]
    torch.testing.assert_close(R, axis_angle_to_rotation_matrix(vec[:, :3]))
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(T[:, :3, 3], vec[:, 3:])
    torch.testing.assert_close(T[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(5, 4))


def test_axis_angle_hand_values_and_identity() -> None:
    R = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2], [0.0, 0.0, 0.0]], dtype=torch.float64))
    # +90 deg about z maps x to y
    torch.testing.assert_close(R[0] @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                               torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(R[1], torch.eye(3, dtype=torch.float64))


def test_pose_vec_to_mat_gradcheck_including_zero_rotation() -> None:
    vec = torch.randn(3, 6, dtype=torch.float64) * 0.3
    vec[0, :3] = 0.0  # PoseNet starts at the identity: gradient must be finite there
    assert torch.autograd.gradcheck(pose_vec_to_mat, (vec.requires_grad_(),))
