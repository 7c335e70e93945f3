"""``depth-ros-train eval --pose-model``: the odometry of a pose model, run offline through
``depth-ros infer --pose-model``, scored (ATE / RPE) against the truth bag's odometry."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pytest

from depth_ros.errors import DepthRosError, ModelError
from depth_ros.synthetic import SynthConfig, write_bag
from depth_ros_training.eval.cli import add_arguments, run

from posenet_onnx import odometry_test_files

SYNTH = SynthConfig(width=48, height=32, frames=8, texture_size_px=64, lidar_beams=0, seed=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return odometry_test_files(tmp_path_factory.mktemp("eval_pose"), SYNTH)


def _run(tmp_path: Path, *argv: Any) -> tuple[int, dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="depth-ros-train eval")
    add_arguments(parser)
    out = tmp_path / "out"
    code = run(parser.parse_args([str(a) for a in (*argv, "-o", out, "--no-progress", "--no-plots")]))
    return code, json.loads((out / "summary.json").read_text())


def test_pose_model_odometry_is_scored(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = _run(tmp_path, files["bag"], "--model", files["depth"], "--pose-model", files["pose"])
    assert code == 0
    [m] = summary["models"]
    [bag] = m["bags"]
    assert bag["inference"]["pose"] == {"model": "pose_linear", "poses": SYNTH.frames, "resets": 0, "not_written": {}}
    odom = bag["odometry"]
    assert (odom["topic"], odom["reference"], odom["matched"], odom["unmatched"]) == ("/camera/odom", "/odom", SYNTH.frames, 0)
    figures = [odom[a][k][f] for a in ("se3", "sim3") for k, f in (("ate", "rmse_m"), ("rpe", "translation_pct"), ("rpe", "rotation_deg_per_m"))]
    assert all(math.isfinite(v) for v in figures), odom
    # the model's motion is not the truth's: a real error, which a free scale can only reduce
    assert odom["se3"]["ate"]["rmse_m"] > 1e-3
    assert odom["sim3"]["ate"]["rmse_m"] <= odom["se3"]["ate"]["rmse_m"]
    assert odom["se3"]["ate"]["scale"] == 1.0 and odom["sim3"]["ate"]["scale"] != 1.0
    assert m["odometry"]["bags"] == 1 and m["odometry"]["ate_se3_rmse_m"] == pytest.approx(odom["se3"]["ate"]["rmse_m"])
    out = capsys.readouterr().out
    assert "ATE RMSE m (se3)" in out and f"{odom['se3']['ate']['rmse_m']:.4f}" in out
    assert "odometry /camera/odom vs /odom (8 poses" in out


def test_the_truth_odometry_replayed_scores_zero(files: dict[str, Path], tmp_path: Path) -> None:
    code, summary = _run(tmp_path, files["bag"], "--pred", files["bag"], "--pred-topic", "/camera/depth/ground_truth")
    [m] = summary["models"]
    assert code == 0 and m["odometry"]["bags"] == 1
    for key in ("ate_se3_rmse_m", "ate_sim3_rmse_m", "rpe_se3_translation_pct", "rpe_rotation_deg_per_m"):
        assert m["odometry"][key] == pytest.approx(0.0, abs=1e-6), key


def test_without_a_pose_model_a_model_run_has_no_odometry(files: dict[str, Path], tmp_path: Path) -> None:
    code, summary = _run(tmp_path, files["bag"], "--model", files["depth"])
    [m] = summary["models"]
    assert code == 0 and m["bags"][0]["odometry"] is None and m["odometry"] is None


def test_a_bag_without_odometry_says_so(files: dict[str, Path], tmp_path: Path) -> None:
    bag = write_bag(SYNTH, tmp_path / "no_odom.mcap", topics=("/camera/image_raw", "/camera/camera_info", "/camera/depth/ground_truth", "/tf_static"))
    code, summary = _run(tmp_path, bag, "--model", files["depth"], "--pose-model", files["pose"], "--no-flicker")
    odom = summary["models"][0]["bags"][0]["odometry"]
    assert code == 0 and odom["reference"] is None and "no single nav_msgs/Odometry topic" in odom["error"]


def test_bad_pose_models_and_options(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="output_kind 'depth_metric'; depth-ros infer --pose-model needs a pose_6dof model"):
        _run(tmp_path, files["bag"], "--model", files["depth"], "--pose-model", files["depth"])
    with pytest.raises(ModelError, match="pose model file .*nope.onnx does not exist"):
        _run(tmp_path, files["bag"], "--model", files["depth"], "--pose-model", tmp_path / "nope.onnx")
    with pytest.raises(DepthRosError, match="--pose-model runs beside --model"):
        _run(tmp_path, files["bag"], "--pred", files["bag"], "--pose-model", files["pose"])
    with pytest.raises(DepthRosError, match="bad option: max_gap_s"):
        _run(tmp_path, files["bag"], "--model", files["depth"], "--pose-model", files["pose"], "--pose-max-gap", "-1")


def test_the_command_line_answers_a_depth_model_as_pose_model_in_one_line(files: dict[str, Path], tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from depth_ros_training.cli import main

    code = main(["eval", str(files["bag"]), "--model", str(files["depth"]), "--pose-model", str(files["depth"]),
                 "-o", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
    assert code == 1 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("depth-ros-train eval: error: ") and "pose_6dof" in lines[0], err
