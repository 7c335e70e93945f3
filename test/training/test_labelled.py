"""Labelled samples from bags (training/data/labelled.py): label sources, geometry, mixing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depth_ros.errors import BagError
from depth_ros.synthetic import SynthConfig

from depth_ros_training.data.labelled import (
    LabelGroup,
    LabelledBagDataset,
    LabelledDataConfig,
    LabelledDataModule,
    LabelSource,
    MixingBatchSampler,
    check_label_sources,
    group_batch_counts,
    hflip_labelled,
)
from depth_ros_training.data.labels import LABEL_KINDS

SYNTH = SynthConfig(width=160, height=128, frames=12, lidar_beams=16, lidar_azimuth_samples=720, seed=4, texture_size_px=64)


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from depth_ros.synthetic.bagio import write_bag

    return write_bag(SYNTH, tmp_path_factory.mktemp("labelled") / "scene.mcap")


def _config(bag: Path, tmp: Path, **kw: object) -> LabelledDataConfig:
    groups = kw.pop("groups", None) or (
        LabelGroup("gt", (str(bag),), LabelSource("metric_depth", gt_topic="/camera/depth/ground_truth"), exact=True),
    )
    base = dict(height=64, width=96, val_fraction=0.0, hflip=False, cache_dir=str(tmp / "cache"))
    base.update(kw)
    return LabelledDataConfig(groups=tuple(groups), **base)  # type: ignore[arg-type]


def _render(frame: int = 0) -> object:
    from depth_ros.synthetic import render_sequence

    for i, f in enumerate(render_sequence(SYNTH)):
        if i == frame:
            return f
    raise IndexError(frame)


def test_gt_sample_is_the_renderers_depth_resampled_nearest(bag: Path, tmp_path: Path) -> None:
    ds = LabelledBagDataset(_config(bag, tmp_path), "all")
    assert len(ds) == SYNTH.frames
    s = ds[0]
    assert s["image"].shape == (3, 64, 96) and 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
    depth = np.asarray(_render(0).depth_m, dtype=np.float64)  # (128, 160) metres
    # every target value is 1 / a recorded depth value (nearest neighbour, never a blend)
    target = s["target"][0].numpy().astype(np.float64)
    valid = s["valid"][0].numpy()
    recorded = np.unique(1.0 / depth[np.isfinite(depth) & (depth > 0)].astype(np.float32))
    hits = np.isin(target[valid].astype(np.float32), recorded.astype(np.float32))
    assert valid.mean() > 0.9 and hits.all()
    assert s["kind"].item() == LABEL_KINDS.index("metric_depth") and bool(s["exact"])
    # K scaled with the resize: fx 0.58 * 160 px -> * 96/160
    assert float(s["K"][0, 0]) == pytest.approx(0.58 * 160 * 96 / 160, rel=1e-6)


def test_label_resampling_keeps_invalid_pixels_and_follows_the_flip(bag: Path, tmp_path: Path) -> None:
    ds = LabelledBagDataset(_config(bag, tmp_path, groups=(LabelGroup("lidar", (str(bag),), LabelSource("metric_depth", lidar_topic="/lidar/points", stamp_tolerance_s=0.0)),)), "all")
    s = ds[3]
    valid = s["valid"][0]
    assert 0.0 < float(valid.float().mean()) < 0.5  # sparse
    assert torch.all(s["target"][0][~valid] == 0)  # holes stay holes (0, never interpolated)
    f = hflip_labelled(s)
    assert torch.equal(f["valid"], s["valid"].flip(-1)) and torch.equal(f["target"], s["target"].flip(-1))
    assert torch.equal(f["image"], s["image"].flip(-1))
    assert float(f["K"][0, 2]) == pytest.approx(95 - float(s["K"][0, 2]))
    assert torch.equal(hflip_labelled(f)["target"], s["target"])


def test_lidar_labels_agree_with_the_dense_truth(bag: Path, tmp_path: Path) -> None:
    """LiDAR points projected through /tf_static land where the renderer's depth says they do."""
    lidar = LabelledBagDataset(_config(bag, tmp_path, groups=(LabelGroup("l", (str(bag),), LabelSource("metric_depth", lidar_topic="/lidar/points", stamp_tolerance_s=0.0)),)), "all")[2]
    dense = LabelledBagDataset(_config(bag, tmp_path), "all")[2]
    both = lidar["valid"] & dense["valid"]
    assert int(both.sum()) > 50
    rel = (lidar["target"][both] / dense["target"][both] - 1).abs()
    assert float(rel.median()) < 0.03


def test_random_crop_moves_label_and_intrinsics_together(bag: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = _config(bag, tmp_path, random_crop=0.5, val_fraction=0.0)
    ds = LabelledBagDataset(cfg, "train")
    full = LabelledBagDataset(cfg, "all")[0]
    s = ds[0]
    assert float(s["K"][0, 0]) > float(full["K"][0, 0])  # a zoom-in: larger focal length in pixels
    # the label is still the depth of the rendered frame: all its values are recorded values
    depth = np.asarray(_render(0).depth_m, dtype=np.float32)
    recorded = (1.0 / depth[np.isfinite(depth) & (depth > 0)]).astype(np.float32)
    assert np.isin(s["target"][0][s["valid"][0]].numpy(), recorded).all()


def test_missing_label_topic_is_a_one_line_error(tmp_path: Path, bag: Path) -> None:
    from depth_ros.synthetic.bagio import write_bag

    nolidar = write_bag(SYNTH.replace(frames=2, lidar_beams=0), tmp_path / "nolidar.mcap")
    cfg = _config(nolidar, tmp_path, groups=(LabelGroup("l", (str(nolidar),), LabelSource("metric_depth", lidar_topic="/lidar/points")),))
    with pytest.raises(BagError) as err:
        check_label_sources(cfg)
    assert "nolidar.mcap" in str(err.value) and "/lidar/points" in str(err.value) and "\n" not in str(err.value)
    cfg = _config(bag, tmp_path, groups=(LabelGroup("g", (str(bag),), LabelSource("metric_depth", gt_topic="/camera/depth/other")),))
    with pytest.raises(BagError, match=r"/camera/depth/other"):
        check_label_sources(cfg)


def test_config_from_dict_and_its_errors(bag: Path) -> None:
    cfg = LabelledDataConfig.from_dict({"height": 64, "width": 96, "groups": [
        {"name": "a", "bags": [str(bag)], "weight": 3, "label": {"kind": "metric_depth", "gt_topic": "/camera/depth/ground_truth"}},
        {"name": "b", "bags": str(bag), "label": {"kind": "relative_inverse_depth", "teacher": "t.onnx"}},
    ]})
    assert np.allclose(cfg.weights, [0.75, 0.25]) and cfg.groups[1].label.source == "teacher"
    with pytest.raises(ValueError, match="no label source"):
        LabelledDataConfig.from_dict({"groups": [{"name": "a", "bags": [str(bag)]}]})
    with pytest.raises(ValueError, match="exactly one"):
        LabelSource("metric_depth", gt_topic="/a", lidar_topic="/b")
    with pytest.raises(ValueError, match="label kind"):
        LabelSource("depth", gt_topic="/a")
    with pytest.raises(ValueError, match="unknown key.*colour"):
        LabelledDataConfig.from_dict({"colour": 1, "groups": [{"name": "a", "bags": ["x"], "label": {"kind": "metric_depth", "gt_topic": "/a"}}]})


def test_batch_counts_have_the_weights_as_expectation() -> None:
    rng = np.random.default_rng(1)
    w = np.array([0.5, 0.3, 0.2])
    counts = np.stack([group_batch_counts(w, 4, rng) for _ in range(4000)])
    assert (counts.sum(axis=1) == 4).all()
    assert np.abs(counts.mean(axis=0) / 4 - w).max() < 0.01
    # each batch holds floor(B p_g) of every group at least
    assert (counts >= np.floor(4 * w)).all()


def test_mixing_draws_groups_by_weight_not_by_size() -> None:
    """A 1000-sample group and a 10-sample group at weights 1:3 -> 25 % / 75 % of the draws
    (seeded; within 1 %), the small group cycled through before repeating."""
    big, small = np.arange(1000), np.arange(1000, 1010)
    sampler = MixingBatchSampler([big, small], [1.0, 3.0], batch_size=8, num_batches=500, seed=3)
    drawn = np.concatenate([np.asarray(b) for b in sampler])
    share_small = float(np.mean(drawn >= 1000))
    assert abs(share_small - 0.75) < 0.01
    per_item = np.bincount(drawn[drawn >= 1000] - 1000, minlength=10)
    assert per_item.max() - per_item.min() <= 1  # cycled without replacement: all equally often
    again = np.concatenate([np.asarray(b) for b in MixingBatchSampler([big, small], [1.0, 3.0], 8, 500, seed=3)])
    assert np.array_equal(drawn, again)


def test_datamodule_batches_mix_two_label_kinds(bag: Path, tmp_path: Path) -> None:
    groups = (
        LabelGroup("gt", (str(bag),), LabelSource("metric_depth", gt_topic="/camera/depth/ground_truth"), weight=1.0),
        LabelGroup("lidar", (str(bag),), LabelSource("metric_depth", lidar_topic="/lidar/points", stamp_tolerance_s=0.0), weight=1.0),
    )
    dm = LabelledDataModule(_config(bag, tmp_path, groups=groups, val_fraction=0.3, segment_s=0.4, hflip=True), batch_size=4)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 96) and batch["valid"].dtype == torch.bool
    assert sorted(batch["group"].tolist()) == [0, 0, 1, 1]  # B p_g = 2 each: exact
    assert dm.val_set is not None and len(dm.val_set) > 0
    train_frames = {(r.group, r.frame) for r in dm.train_set.refs}
    assert not train_frames & {(r.group, r.frame) for r in dm.val_set.refs}


def test_teacher_labels_are_the_teachers_inverse_depth(bag: Path, tmp_path: Path) -> None:
    """A stand-in teacher that outputs 1 + grey (relative inverse depth) gives that map back as
    a ``relative_inverse_depth`` target (the cache stores its inverse), at every pixel."""
    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec

    class Brightness(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 1.0 + x.mean(dim=1, keepdim=True) * 0.225 + 0.45

    onnx_path = export_onnx(Brightness(), ModelSpec(output_kind="inverse_depth_relative", input_height=64, input_width=96, name="toy"), tmp_path / "toy.onnx")
    groups = (LabelGroup("t", (str(bag),), LabelSource("relative_inverse_depth", teacher=str(onnx_path))),)
    s = LabelledBagDataset(_config(bag, tmp_path, groups=groups), "all")[1]
    assert bool(s["valid"].all()) and s["kind"].item() == LABEL_KINDS.index("relative_inverse_depth")
    grey = s["image"].mean(dim=0)
    assert float((s["target"][0] - (1.0 + grey)).abs().mean()) < 0.01
