"""``depth-ros-train fit|validate`` of ``task: zoedepth``: the labelled tasks' runner with the
stage-2 builder (trainer keys checked, the run's config and checkpoint written as for MiDaS)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from depth_ros.synthetic import SynthConfig

SYNTH = SynthConfig(width=128, height=64, frames=8, seed=5, texture_size_px=32)


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from depth_ros.synthetic.bagio import write_bag

    return write_bag(SYNTH, tmp_path_factory.mktemp("zoe_cli") / "scene.mcap")


def _yaml(tmp: Path, bag: Path, **trainer) -> Path:
    tree = {
        "task": "zoedepth",
        "seed_everything": 0,
        "trainer": {"max_steps": 1, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "enable_model_summary": False,
                    "num_sanity_val_steps": 0, "default_root_dir": str(tmp / "runs"), **trainer},
        "checkpoint": {"every_minutes": None, "every_n_steps": 1000, "after_validation": "off"},
        "model": {"n_bins": 8, "min_depth_m": 0.5, "max_depth_m": 20.0},
        "data": {"data": {"height": 64, "width": 128, "val_fraction": 0.0, "hflip": False, "cache_dir": str(tmp / "cache"), "groups": [
            {"name": "gt", "bags": [str(bag)], "label": {"kind": "metric_depth", "gt_topic": "/camera/depth/ground_truth"}}]},
                 "batch_size": 2, "num_workers": 0},
    }
    path = tmp / "zoe.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_fit_writes_the_run_config_and_a_zoedepth_checkpoint(bag: Path, tmp_path: Path, one_thread: None) -> None:
    from depth_ros_training.cli import main
    from depth_ros_training.tasks.zoedepth import is_zoedepth_checkpoint

    assert main(["fit", "--config", str(_yaml(tmp_path, bag))]) == 0
    [log_dir] = (tmp_path / "runs" / "lightning_logs").iterdir()
    saved = yaml.safe_load((log_dir / "config.yaml").read_text())
    assert saved["task"] == "zoedepth" and saved["model"]["n_bins"] == 8
    [ckpt] = (tmp_path / "runs").rglob("last.ckpt")
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert is_zoedepth_checkpoint(data) and data["global_step"] == 1
    assert data["hyper_parameters"]["group_names"] == ["gt"] and data["hyper_parameters"]["n_bins"] == 8
    # export: the fit run's camera goes into the spec (image size, focal length at the network input)
    from depth_ros.inference.spec import load_model_spec

    assert main(["export", str(ckpt), "-o", str(tmp_path / "export"), "--tensorrt", "off"]) == 0
    spec = load_model_spec(tmp_path / "export" / "depth.onnx")
    assert spec.output_kind == "depth_metric"
    assert (spec.train_image_width_px, spec.train_image_height_px) == (SYNTH.width, SYNTH.height)
    assert spec.train_fx_px == pytest.approx(SYNTH.camera.fx * spec.input_width / SYNTH.width, rel=1e-6)


def test_an_unknown_trainer_key_is_refused_before_training(bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from depth_ros_training.cli import main

    rc = main(["fit", "--config", str(_yaml(tmp_path, bag, max_stepz=3))])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "trainer: unknown key(s) max_stepz" in err[0]
    assert not (tmp_path / "runs").exists()
