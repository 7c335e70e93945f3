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


def test_scores_pool_the_frames_of_several_scenes():
    import numpy as np

    from depth_ros.demo import score_depth_frames

    gt = np.full((4, 6), 2.0, dtype=np.float32)
    exact = (gt.copy(), gt)
    double = (2 * gt, gt)  # metric AbsRel 1, median-scaled 0
    both = score_depth_frames([exact, double, double, exact], max_depth_m=30.0)
    assert both["frames"]["matched"] == 4
    assert both["metric"]["abs_rel"] == pytest.approx(0.5)  # per-image mean: (0 + 1 + 1 + 0) / 4
    assert both["median"]["abs_rel"] == pytest.approx(0.0)
