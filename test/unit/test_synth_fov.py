"""Synthetic bags with a chosen or drawn field of view, and the relative label topic
(depth_ros/synthetic: SynthConfig.hfov_deg, hfov_range_deg, relative_label)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from depth_ros.core.camera import CameraModel
from depth_ros.errors import InputError
from depth_ros.synthetic import SynthConfig
from depth_ros.synthetic.bagio import relative_inverse_label, write_bag_summary
from depth_ros.synthetic.config import RELATIVE_SCALE_RANGE, RELATIVE_SHIFT_RANGE, load_config

SMALL = dict(width=64, height=48, frames=3, texture_size_px=32, lidar_beams=0, object_mask=False)


def test_camera_from_fov_round_trips_and_matches_the_focal_formula() -> None:
    cam = CameraModel.from_fov(640, 480, 90.0)
    assert cam.fx == pytest.approx(320.0) and cam.fy == cam.fx  # tan(45 deg) = 1
    assert (cam.cx, cam.cy) == (319.5, 239.5)
    for fov in (20.0, 63.3, 110.0, 150.0):
        assert CameraModel.from_fov(416, 128, fov).hfov_deg == pytest.approx(fov, abs=1e-9)
    with pytest.raises(ValueError, match=r"\(0, 180\) degrees"):
        CameraModel.from_fov(64, 48, 180.0)


def test_hfov_deg_sets_the_focal_length() -> None:
    cfg = SynthConfig(hfov_deg=100.0, **SMALL)
    assert cfg.camera.fx == pytest.approx(32.0 / math.tan(math.radians(50.0)))
    assert cfg.camera.fy == cfg.camera.fx and cfg.camera.hfov_deg == pytest.approx(100.0)
    # unchanged default: 0.58 * width
    assert SynthConfig(**SMALL).camera.fx == pytest.approx(0.58 * 64)


@pytest.mark.parametrize("fields, message", [
    (dict(hfov_deg=19.0), r"hfov_deg must be in \[20, 150\]"),
    (dict(hfov_deg=151.0), r"hfov_deg must be in \[20, 150\]"),
    (dict(hfov_deg=70.0, fx_px=40.0), "give one of fx_px, hfov_deg, hfov_range_deg, got fx_px and hfov_deg"),
    (dict(hfov_range_deg="50,80", hfov_deg=70.0), "got hfov_deg and hfov_range_deg"),
    (dict(hfov_range_deg="80,50"), r"20 <= LO <= HI <= 150"),
    (dict(hfov_range_deg="10,50"), r"20 <= LO <= HI <= 150"),
    (dict(hfov_range_deg="50"), r"must be 'LO,HI'"),
])
def test_bad_fov_options_are_one_line_errors(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthConfig(**SMALL, **fields)


def test_a_fov_flag_from_the_cli_is_checked_like_the_config() -> None:
    with pytest.raises(InputError, match=r"flags: SynthConfig.hfov_deg must be in \[20, 150\]"):
        load_config(None, {"hfov_deg": "170"})
    assert load_config(None, {"hfov_range_deg": "50,110"}).hfov_range == (50.0, 110.0)


def test_hfov_range_draws_per_seed_within_the_range_and_repeats() -> None:
    drawn = [SynthConfig(seed=s, hfov_range_deg="50,110", **SMALL).drawn_hfov_deg for s in range(40)]
    assert all(50.0 <= d <= 110.0 for d in drawn)
    assert max(drawn) - min(drawn) > 40.0  # a spread, not one value
    assert drawn == [SynthConfig(seed=s, hfov_range_deg="50,110", **SMALL).drawn_hfov_deg for s in range(40)]
    cfg = SynthConfig(seed=7, hfov_range_deg="50,110", **SMALL)
    assert cfg.camera.hfov_deg == pytest.approx(cfg.drawn_hfov_deg)


def test_the_draws_leave_the_scene_unchanged() -> None:
    from depth_ros.synthetic import render_sequence

    plain = next(iter(render_sequence(SynthConfig(seed=3, **SMALL))))
    drawn = next(iter(render_sequence(SynthConfig(seed=3, relative_label=True, **SMALL))))
    assert np.array_equal(plain.rgb, drawn.rgb) and np.array_equal(plain.T_world_base, drawn.T_world_base)


def test_relative_scale_shift_is_per_seed_and_in_the_documented_ranges() -> None:
    pairs = [SynthConfig(seed=s, **SMALL).relative_scale_shift for s in range(50)]
    assert all(RELATIVE_SCALE_RANGE[0] <= a <= RELATIVE_SCALE_RANGE[1] for a, _ in pairs)
    assert all(RELATIVE_SHIFT_RANGE[0] <= b <= RELATIVE_SHIFT_RANGE[1] for _, b in pairs)
    assert len({a for a, _ in pairs}) == 50


def test_relative_label_is_affine_in_inverse_depth_and_nan_where_invalid() -> None:
    depth = np.array([[1.0, 2.0], [np.nan, 0.0]], dtype=np.float32)
    out = relative_inverse_label(depth, 2.0, 0.5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [2.5, 1.5])
    assert np.isnan(out[1]).all()


@pytest.fixture(scope="module")
def relative_bag(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthConfig, dict]:
    cfg = SynthConfig(seed=5, hfov_range_deg="50,110", relative_label=True,
                      **{**SMALL, "width": 96, "height": 64, "frames": 4})
    summary = write_bag_summary(cfg, tmp_path_factory.mktemp("rel") / "rel.mcap")
    return summary.path, cfg, summary.message_counts


def test_the_bag_records_the_drawn_camera_and_the_relative_topic(relative_bag: tuple[Path, SynthConfig, dict]) -> None:
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader

    path, cfg, counts = relative_bag
    assert counts["/camera/depth/relative_inverse"] == cfg.frames
    with BagReader(path) as reader:
        infos = [reader.deserialize(m) for m in reader.messages(["/camera/camera_info"])]
        gts = [reader.deserialize(m) for m in reader.messages(["/camera/depth/ground_truth"])]
        rels = [reader.deserialize(m) for m in reader.messages(["/camera/depth/relative_inverse"])]
    cam = msgconv.camera_info_to_model(infos[0])
    assert cam.hfov_deg == pytest.approx(cfg.drawn_hfov_deg, rel=1e-9)
    scale, shift = cfg.relative_scale_shift
    gt = msgconv.image_to_depth_m(gts[1]).astype(np.float64)
    rel = msgconv.image_to_depth_m(rels[1]).astype(np.float64)  # 32FC1 read as is
    assert rels[1].encoding == "32FC1"
    np.testing.assert_allclose(rel, scale / gt + shift, rtol=1e-5)


def test_off_by_default_and_refused_when_asked_for_while_off(tmp_path: Path) -> None:
    from depth_ros.synthetic.bagio import write_bag

    cfg = SynthConfig(**SMALL)
    assert not cfg.relative_label
    with pytest.raises(InputError, match="relative_label=false"):
        write_bag(cfg, tmp_path / "x.mcap", topics=["/camera/depth/relative_inverse"])


def test_labelled_training_data_reads_it_as_relative_inverse_depth(relative_bag: tuple[Path, SynthConfig, dict],
                                                                   tmp_path: Path) -> None:
    """training/data/labelled.py takes the topic as a gt_topic of kind relative_inverse_depth: the
    target is the label itself (an affine map of the true inverse depth), resampled nearest."""
    pytest.importorskip("depth_ros_training")
    from depth_ros_training.data.labelled import LabelGroup, LabelledBagDataset, LabelledDataConfig, LabelSource
    from depth_ros_training.data.labels import LABEL_KINDS

    path, cfg, _ = relative_bag
    group = LabelGroup("rel", (str(path),), LabelSource("relative_inverse_depth", gt_topic="/camera/depth/relative_inverse"))
    ds = LabelledBagDataset(LabelledDataConfig(groups=(group,), height=64, width=96, val_fraction=0.0, hflip=False,
                                               cache_dir=str(tmp_path / "cache")), "all")
    sample = ds[0]
    assert sample["kind"].item() == LABEL_KINDS.index("relative_inverse_depth")
    from depth_ros.synthetic import render_sequence

    depth = next(iter(render_sequence(cfg))).depth_m.astype(np.float64)  # (64, 96), the sample's size
    scale, shift = cfg.relative_scale_shift
    valid = sample["valid"][0].numpy()
    assert valid.mean() > 0.9
    np.testing.assert_allclose(sample["target"][0].numpy()[valid], (scale / depth + shift)[valid], rtol=1e-5)
