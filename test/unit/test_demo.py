"""`depth-ros demo --quick`: the whole chain (synth -> train -> export -> infer -> metrics) runs
and reports consistent numbers (a smoke run: the metric values themselves are not targets)."""
from __future__ import annotations

import json
import math

import pytest

from depth_ros.cli import main
from depth_ros.demo import DemoSettings, evaluate_depth_bag
from depth_ros.errors import InputError

pytestmark = pytest.mark.slow


def test_quick_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--workdir", str(tmp_path), "--json", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "results.json").read_text())
    m = result["metrics"]
    assert m["frames"]["matched"] == result["settings"]["test_frames"] == 8
    assert [c["seed"] for c in m["scenes"]] == [result["settings"]["test_seed"]]
    assert m["scenes"][0]["median_abs_rel"] == pytest.approx(m["median"]["abs_rel"])  # one scene: the same frames
    for mode in ("median", "metric"):
        assert 0 <= m[mode]["abs_rel"] < 10 and 0 <= m[mode]["delta1"] <= 1
    assert m["metric"]["scale"] == 1.0 and math.isfinite(m["median"]["scale"])
    assert result["train"]["steps"] == 2
    assert result["inference"]["frames"] == 8 and result["inference"]["scale_source"] == "model"
    assert (tmp_path / "model" / "depth.onnx").is_file() and (tmp_path / "model" / "pose.onnx").is_file()
    # evaluating the ground truth against itself is perfect
    gt = evaluate_depth_bag(tmp_path / "test.mcap", tmp_path / "test.mcap", pred_topic="/camera/depth/ground_truth")
    assert gt["metric"]["abs_rel"] == 0.0 and gt["median"]["delta1"] == 1.0
    by_range = gt["metric_by_range"]
    assert sum(r["fraction"] for r in by_range.values()) == pytest.approx(1.0)
    assert all(r["abs_rel"] == 0.0 and r["bias"] == pytest.approx(1.0) for r in by_range.values())
    assert set(m["metric_by_range"]) <= {"0-2 m", "2-5 m", "5-10 m", "10-30 m"}  # up to the demo's max depth
    # the test bags carry the object mask: boundary F1 and mask recall of every frame, flicker of each pair
    assert m["boundary"]["frames"] == 8 and m["mask_boundary_recall"]["frames"] == 8 and m["flicker"]["pairs"] == 7
    assert gt["boundary"]["f1"] == pytest.approx(1.0) and gt["flicker"]["flicker"] == pytest.approx(gt["flicker"]["flicker_truth"])
    # the truth recalls the occluding edges of the boxes, not their contact lines with the floor
    # (mask edges without a depth step): about 0.7 on these scenes, not 1
    assert 0.4 < gt["mask_boundary_recall"]["recall"] < 1.0 and 0.0 <= m["mask_boundary_recall"]["recall"] <= 1.0


def test_settings_refuse_training_on_the_test_scene():
    with pytest.raises(InputError, match="another seed"):
        DemoSettings(train_seed=3, test_seed=5)
    with pytest.raises(InputError, match="another seed"):  # test seeds 998..1000 overlap training seeds 1000..1015
        DemoSettings(train_seed=1000, test_seed=998, test_scenes=3)
    with pytest.raises(InputError, match="test_scenes"):
        DemoSettings(test_scenes=0)
    DemoSettings(train_seed=0, train_scenes=4, test_seed=4, test_scenes=3)  # adjacent, disjoint
    with pytest.raises(InputError, match="network_dtype"):
        DemoSettings(network_dtype="float16")


def _depth_bag(path, frames, factor):
    """A bag of ``factor`` times each frame's exact depth on /camera/depth/image (the frames' stamps)."""
    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter
    from depth_ros.msgconv import depth_image_fields, ns_to_stamp

    ts = output_typestore()
    T = ts.types
    with BagWriter(path, typestore=ts) as bag:
        bag.add_topic("/camera/depth/image", "sensor_msgs/msg/Image")
        for f in frames:
            sec, nsec = ns_to_stamp(f.stamp_ns)
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="camera_optical_frame")
            bag.write("/camera/depth/image", T["sensor_msgs/msg/Image"](header=header, **depth_image_fields(factor * f.depth_m, "32FC1")), f.stamp_ns)
    return path


def test_scores_pool_the_frames_of_several_scenes(tmp_path):
    from depth_ros.demo import score_scenes
    from depth_ros.synthetic import SynthConfig, render_sequence, write_bag

    scenes = []
    for seed, factor in ((1, 1.0), (2, 2.0)):
        cfg = SynthConfig(width=48, height=32, frames=2, texture_size_px=64, lidar_beams=0, seed=seed, object_mask=True)
        truth = write_bag(cfg, tmp_path / f"truth_{seed}.mcap")
        scenes.append((_depth_bag(tmp_path / f"pred_{seed}.mcap", list(render_sequence(cfg)), factor), truth))
    both = score_scenes(scenes, max_depth_m=30.0)
    assert both["frames"]["matched"] == 4
    # per-image mean over the frames of both scenes: (0 + 0 + 1 + 1) / 4; median scaling undoes the factor
    assert both["metric"]["abs_rel"] == pytest.approx(0.5)
    assert both["median"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert [c["metric_abs_rel"] for c in both["scenes"]] == [pytest.approx(0.0, abs=1e-7), pytest.approx(1.0)]
    assert [c["frames"] for c in both["scenes"]] == [2, 2] and [c["output"] for c in both["scenes"]] == [str(p) for p, _ in scenes]
    # a scaled prediction has the truth's boundaries; the object mask is picked up from the truth bags
    assert both["boundary"]["frames"] == 4 and both["mask_boundary_recall"]["frames"] == 4
    assert both["flicker"]["pairs"] == 2  # one pair per two-frame scene, none across scenes
