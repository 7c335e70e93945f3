"""``depth-ros-train export --fuse-io WxH``: depth.fused.onnx beside depth.onnx, and its flags' errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_ros_training.cli import main


@pytest.fixture
def exported_depth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The export step stubbed: it 'writes' a tiny depth network (64x160, trained at 640x256)."""
    from tiny_nets import export_sigmoid_convnet

    import depth_ros_training.export as export
    import depth_ros_training.tasks.run as run
    from depth_ros.inference.spec import ModelSpec

    spec = ModelSpec(output_kind="disparity_sigmoid", input_height=64, input_width=160, train_image_width_px=640,
                     train_image_height_px=256, name="tiny")
    out = tmp_path / "out"
    out.mkdir()
    depth = export_sigmoid_convnet(out / "depth.onnx", spec, channels=(4,))
    monkeypatch.setattr(run, "export_task_checkpoint", lambda *a, **k: None)
    monkeypatch.setattr(export, "export_checkpoint", lambda *a, **k: export.ExportResult(paths={"depth": depth}))
    return depth


def test_fuse_io_writes_a_fused_model_the_runtime_loads(exported_depth: Path, capsys: pytest.CaptureFixture) -> None:
    from depth_ros.inference.backend import create_backend
    from depth_ros.inference.spec import load_model_spec

    code = main(["export", "model.ckpt", "-o", str(exported_depth.parent), "--fuse-io", "320x240", "--fuse-color", "bgr",
                 "--fuse-output-camera"])
    assert code == 0
    fused = exported_depth.with_name("depth.fused.onnx")
    assert f"depth fused: {fused}" in capsys.readouterr().out
    spec = load_model_spec(fused)
    assert (spec.input_format, spec.fused_width_px, spec.fused_height_px) == ("uint8_camera", 320, 240)
    assert (spec.fused_color_order, spec.fused_aspect, spec.output_at_camera_resolution) == ("bgr", "crop", True)
    out = create_backend(fused, "onnxruntime-cpu", threads=1).infer(np.zeros((1, 240, 320, 3), np.uint8))
    assert out["depth"].shape == (1, 1, 128, 320)  # the 640x256-aspect crop of a 320x240 camera
    assert load_model_spec(exported_depth).input_format == "float"  # depth.onnx is left as it was


@pytest.mark.parametrize(("flags", "message"), [
    (["--fuse-color", "bgr"], "need --fuse-io WxH"),
    (["--fuse-io", "640"], "--fuse-io: camera size must be WIDTHxHEIGHT"),
    (["--fuse-io", "640x480", "--fuse-aspect", "fill"], "invalid choice: 'fill'"),
])
def test_fuse_flags_are_checked(exported_depth: Path, capsys: pytest.CaptureFixture, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["export", "model.ckpt", "-o", str(exported_depth.parent), *flags])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not exported_depth.with_name("depth.fused.onnx").exists()


def test_fuse_io_with_int8_also_fuses_the_int8_model(exported_depth: Path, tmp_path: Path) -> None:
    """``--int8 --fuse-io``: depth.int8.fused.onnx, the float resize in front of the quantised
    network, checked against the INT8 model on the numpy path at export (1 %)."""
    from depth_ros.inference.backend import create_backend
    from depth_ros.inference.spec import load_model_spec
    from depth_ros.pipeline import FrameConfig, FramePipeline
    from depth_ros.synthetic import SynthConfig, render_sequence, write_bag

    bag = write_bag(SynthConfig(width=320, height=240, frames=6, lidar_beams=0, seed=4), tmp_path / "calib.mcap")
    assert main(["export", "model.ckpt", "-o", str(exported_depth.parent), "--fuse-io", "320x240", "--fuse-aspect", "pad",
                 "--int8", "--calibration-bag", str(bag), "--calibration-frames", "6"]) == 0
    int8, fused_int8 = exported_depth.with_name("depth.int8.onnx"), exported_depth.with_name("depth.int8.fused.onnx")
    spec = load_model_spec(fused_int8)
    assert spec.fused and spec.fused_aspect == "pad" and spec.extra["precision"] == "int8"
    a = FramePipeline(create_backend(fused_int8, "onnxruntime-cpu", threads=1), FrameConfig(aspect="pad"))
    b = FramePipeline(create_backend(int8, "onnxruntime-cpu", threads=1), FrameConfig(aspect="pad"))
    for frame in render_sequence(SynthConfig(width=320, height=240, frames=2, seed=77, scene="room")):  # not calibrated on
        got, want = a.run(frame.rgb, frame.camera).depth_m, b.run(frame.rgb, frame.camera).depth_m
        assert got.shape == want.shape == (240, 320)
        assert float(np.median(np.abs(got - want) / want)) < 0.01
