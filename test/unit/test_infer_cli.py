"""``depth-ros infer`` end to end with a real exported ONNX model; exit codes and one-line errors."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from depth_ros.cli import sigterm_as_interrupt
from depth_ros.cli import main
from depth_ros.inference.spec import ModelSpec
from depth_ros.synthetic import SynthConfig, render_sequence, write_bag as synth_bag

from tiny_nets import export_sigmoid_convnet, tiny_dispnet_spec

SYNTH = SynthConfig(width=64, height=48, frames=3, texture_size_px=64, lidar_beams=0)
# network input smaller than the camera: the resize paths of preprocess / postprocess run
SPEC = tiny_dispnet_spec()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    model = export_sigmoid_convnet(d / "tiny.onnx", SPEC, channels=(4,))  # 3x3 conv 3->4, ReLU, 3x3 conv 4->1, sigmoid
    pose_spec = ModelSpec(output_kind="pose_6dof", input_height=32, input_width=48, input_channels=6, name="pose")
    pose = d / "pose.onnx"
    pose.write_bytes(model.read_bytes())  # any ONNX file: the sidecar spec says it is a pose net
    pose_spec.to_yaml(d / "pose.onnx.yaml")
    return {"model": model, "pose": pose, "bag": synth_bag(SYNTH, d / "s.mcap"), "dir": d}


def _run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    code = main(["infer", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("depth-ros infer: error: ")
    return lines[0]


def test_end_to_end_with_an_exported_onnx_model(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rosbags.highlevel import AnyReader

    from depth_ros.core.postprocess import DepthPostprocessor, PostprocessConfig
    from depth_ros.core.preprocess import preprocess
    from depth_ros.core.scale import ScaleConfig
    from depth_ros.inference.backend import create_backend

    out = tmp_path / "o.mcap"
    code, stdout, _ = _run(capsys, files["bag"], "-o", out, "--model", files["model"], "--no-progress", "--max-range", "15")
    assert code == 0
    backend = create_backend(files["model"], backend="auto")  # what infer picks here (OpenVINO where it imports)
    assert "3 depth frames from 3 images (0 skipped)" in stdout and f"tiny-dispnet (disparity_sigmoid) on {backend.name}" in stdout
    assert "scale source: model" in stdout
    with AnyReader([out]) as reader:
        depth_msgs = [reader.deserialize(d, c.msgtype) for c, _, d in reader.messages() if c.topic == "/camera/depth/image"]
    assert len(depth_msgs) == 3
    # the same frame through the same parts, called directly
    frame = next(iter(render_sequence(SYNTH)))
    post = DepthPostprocessor(SPEC, PostprocessConfig(max_range_m=15.0, scale=ScaleConfig(policy="model")))
    expected = post(backend.infer(preprocess(frame.rgb, frame.camera, SPEC).tensor), frame.camera).depth_m
    got = np.asarray(depth_msgs[0].data).view("<f4").reshape(48, 64)
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)
    finite = got[np.isfinite(got)]
    assert finite.size > 0 and finite.min() >= 0.5 and finite.max() <= 15.0


def test_json_summary(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code, stdout, _ = _run(
        capsys, files["bag"], "-o", tmp_path / "o.mcap", "--model", files["model"], "--no-progress", "--json", "--no-cloud"
    )
    summary = json.loads(stdout)
    from depth_ros.inference.backend import probe_openvino

    assert code == 0 and summary["frames_out"] == 3
    assert summary["backend"] == ("openvino-cpu" if probe_openvino().available else "onnxruntime-cpu")
    assert set(summary["timing_s"]) == {"read", "preprocess", "backend", "postprocess", "cloud", "write"}
    assert "/camera/depth/points" not in summary["output_topics"]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["{missing}", "-o", "{out}", "--model", "{model}"], "missing.mcap does not exist"),
        (["{bag}", "-o", "{out}", "--model", "{dir}/nope.onnx"], "nope.onnx does not exist"),
        (["{bag}", "-o", "{out}", "--model", "{pose}"], "pose_6dof network"),
        (["{bag}", "-o", "{out}", "--model", "{model}", "--scale", "fixed:abc"], "bad option: scale 'fixed:abc'"),
        (["{bag}", "-o", "{out}", "--model", "{model}", "--scale", "lidar"], "needs a LiDAR topic"),
        (["{bag}", "-o", "{out}", "--model", "{model}", "--decimation", "0"], "decimation must be"),
        (["{bag}", "-o", "{out}", "--model", "{model}", "--min-range", "5", "--max-range", "1"], "min_range_m"),
        (["{bag}", "-o", "{out}", "--model", "{model}", "--image-topic", "/nope"], "image topic /nope is not in the bag"),
        (["{bag}", "-o", "{dir}/o.bag", "--model", "{model}"], "must end in"),
        (["{cut}", "-o", "{out}", "--model", "{model}"], "cut.mcap: cannot open bag"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], match: str
) -> None:
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(files["bag"].read_bytes()[:5000])
    names = {"missing": tmp_path / "missing.mcap", "out": tmp_path / "o.mcap", "cut": cut, **files}
    code, stdout, err = _run(capsys, *[a.format(**names) for a in argv])
    assert code == 1 and stdout == ""
    assert match in _one_line_error(err)
    assert not (tmp_path / "o.mcap").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_existing_output_exit_1_then_overwrite(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.mcap"
    out.write_bytes(b"old")
    code, _, err = _run(capsys, files["bag"], "-o", out, "--model", files["model"], "--no-progress")
    assert code == 1 and "--overwrite" in _one_line_error(err) and out.read_bytes() == b"old"
    code, _, _ = _run(capsys, files["bag"], "-o", out, "--model", files["model"], "--no-progress", "--overwrite", "--max-frames", "1")
    assert code == 0 and out.read_bytes()[:5] == b"\x89MCAP"


def test_progress_bar_goes_to_stderr(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, err = _run(
        capsys, files["bag"], "-o", tmp_path / "o.mcap", "--model", files["model"], "--no-cloud", "--threads", "1"
    )
    assert code == 0 and "3/3" in err and "3/3" not in stdout


def test_sigterm_unwinds_like_ctrl_c() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
    assert signal.getsignal(signal.SIGTERM) is before
