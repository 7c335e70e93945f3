"""DepthTrainingModule's grouped configurations: validation in each group, the flat keywords
(YAML keys, saved hyper-parameters) unchanged, the module built from the groups alike."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from depth_ros_training.module import DepthTrainingModule
from depth_ros_training.module_config import HintConfig, LossWeights, NetworkConfig, OptimConfig, PoseConfig

GROUPS = (NetworkConfig, LossWeights, HintConfig, PoseConfig, OptimConfig)


def test_groups_cover_the_constructor_keywords_once() -> None:
    import inspect

    keywords = set(inspect.signature(DepthTrainingModule.__init__).parameters) - {"self", "log_images_every_n_steps"}
    names = [f.name for group in GROUPS for f in dataclasses.fields(group)]
    assert len(names) == len(set(names))  # no keyword in two groups
    assert set(names) == keywords
    # and the groups' defaults are the constructor's
    defaults = {k: p.default for k, p in inspect.signature(DepthTrainingModule.__init__).parameters.items()}
    for group in GROUPS:
        for f in dataclasses.fields(group):
            assert f.default == defaults[f.name], f.name


def test_module_groups_its_keywords_and_saves_them_flat() -> None:
    m = DepthTrainingModule(image_height=64, image_width=128, velocity_weight=0.25, hint_weight=0.5, hint_depths=9,
                            warp_pose_source="odometry", pose_pairs="one", lr=2e-4, lr_schedule="onecycle", auto_mask_error="l1")
    assert m.weights.velocity_weight == 0.25 and m.weights.auto_mask_error == "l1"
    assert m.hint == HintConfig(hint_weight=0.5, hint_depths=9)
    assert m.pose == PoseConfig(warp_pose_source="odometry", pose_pairs="one")
    assert m.optim == OptimConfig(lr=2e-4, lr_schedule="onecycle")
    assert m.network.image_width == 128
    assert m.hparams.hint_depths == 9 and m.hparams.pose_pairs == "one" and m.hparams.auto_mask_error == "l1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.hint.hint_weight = 1.0  # type: ignore[misc]


def test_from_configs_equals_the_keyword_constructor() -> None:
    groups = dict(
        network=NetworkConfig(image_height=64, image_width=128, min_depth_m=0.5, max_depth_m=30.0, init_depth_m=3.0),
        weights=LossWeights(velocity_weight=1.0, geometry_weight=0.0, use_self_mask=False),
        hint=HintConfig(hint_weight=2.0, hint_depths=8),
        pose=PoseConfig(warp_pose_source="odometry", pose_pairs="one", source_depth_grad=False),
        optim=OptimConfig(lr=1e-3, lr_schedule="onecycle"),
    )
    torch.manual_seed(0)
    a = DepthTrainingModule.from_configs(**groups)
    flat = {k: v for g in groups.values() for k, v in dataclasses.asdict(g).items()}
    torch.manual_seed(0)
    b = DepthTrainingModule(**flat)
    assert dict(a.hparams) == dict(b.hparams)
    assert (a.network, a.weights, a.hint, a.pose, a.optim) == tuple(groups.values())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    # a checkpoint's flat hyper-parameters rebuild the module (export.py / load_from_checkpoint)
    assert DepthTrainingModule(**dict(a.hparams)).hint == a.hint


@pytest.mark.parametrize(
    "group, kwargs, message",
    [
        (NetworkConfig, dict(min_depth_m=2.0, max_depth_m=1.0), "min_depth_m"),
        (NetworkConfig, dict(init_depth_m=200.0), "init_depth_m"),
        (NetworkConfig, dict(num_scales=5), "num_scales"),
        (NetworkConfig, dict(std=(0.2, 0.0, 0.2)), "std"),
        (LossWeights, dict(normal_weight=float("nan")), "normal_weight"),
        (LossWeights, dict(auto_mask_error="ssim"), "auto_mask_error"),
        (LossWeights, dict(ssim_weight=1.5), "ssim_weight"),
        (HintConfig, dict(hint_ratio=0.0), "hint_ratio"),
        (PoseConfig, dict(pose_pairs="one"), "pose_pairs='one' needs warp_pose_source='odometry'"),
        (OptimConfig, dict(lr=0.0), "lr must be"),
        (OptimConfig, dict(schedule_seconds=-1.0), "schedule_seconds"),
    ],
)
def test_each_group_validates_its_fields(group, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        group(**kwargs)
    flat = dict(kwargs)
    if group is PoseConfig:
        flat["warp_pose_source"] = "network"
    with pytest.raises(ValueError, match=message):  # the keyword constructor refuses it too
        DepthTrainingModule(image_height=64, image_width=128, **flat)


def test_a_phase_overridden_in_a_subclass_joins_the_total() -> None:
    from depth_ros_training.phases import LossTerms

    class WithExtraTerm(DepthTrainingModule):
        def teacher_terms(self, batch, inputs, depths, photometric):
            extra = depths.tgt_depth.mean()
            return LossTerms(loss=0.25 * extra, terms={"extra": extra})

    g = torch.Generator().manual_seed(0)
    batch = {"tgt": torch.randn(1, 3, 64, 128, generator=g), "srcs": torch.randn(1, 2, 3, 64, 128, generator=g),
             "K": torch.tensor([[[64.0, 0, 63.5], [0, 64.0, 31.5], [0, 0, 1]]])}
    torch.manual_seed(0)
    plain = DepthTrainingModule(image_height=64, image_width=128)
    torch.manual_seed(0)
    extended = WithExtraTerm(image_height=64, image_width=128)
    torch.manual_seed(1)
    total, terms, depth = plain.shared_step(batch, "val")
    torch.manual_seed(1)
    total_x, terms_x, depth_x = extended.shared_step(batch, "val")
    assert "extra" in terms_x and "extra" not in terms
    torch.testing.assert_close(terms_x["extra"], depth_x.mean())
    torch.testing.assert_close(total_x, total + 0.25 * terms_x["extra"])
    assert terms_x["total"] is total_x
