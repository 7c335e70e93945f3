"""Checkpoint -> depth.onnx / pose.onnx through `depth-ros-train export`: specs embedded,
ONNX Runtime output equal to PyTorch's on real frames."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from depth_ros.core.preprocess import preprocess, preprocess_pair
from depth_ros.inference.spec import load_model_spec
from depth_ros.synthetic import SynthConfig, render_sequence
from depth_ros_training.cli import main
from depth_ros_training.export import load_module

from bagfactory import write_test_bag

SYNTH = SynthConfig(width=256, height=128, frames=12, lidar_beams=0, seed=11)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    bag = write_test_bag(d / "train.mcap", SYNTH)
    cfg = {
        "trainer": {"max_steps": 1, "accelerator": "cpu", "devices": 1, "default_root_dir": str(d / "run"),
                    "enable_progress_bar": False, "num_sanity_val_steps": 0, "enable_model_summary": False},
        "model": {"velocity_weight": 0.05, "min_depth_m": 0.5, "max_depth_m": 40.0},
        "data": {"data": {"bags": [str(bag)], "height": 64, "width": 128, "val_fraction": 0.0}, "batch_size": 2},
    }
    (d / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(d / "cfg.yaml")]) == 0
    ckpt = d / "run" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert main(["export", str(ckpt), "-o", str(d / "model"), "--tensorrt", "off"]) == 0
    return ckpt, d / "model"


def test_specs_embedded(exported):
    _, out = exported
    depth = load_model_spec(out / "depth.onnx")
    assert (depth.output_kind, depth.input_height, depth.input_width) == ("disparity_sigmoid", 64, 128)
    assert depth.metric and depth.scale_source == "velocity_supervision"
    assert (depth.min_depth_m, depth.max_depth_m) == (0.5, 40.0)
    pose = load_model_spec(out / "pose.onnx")
    assert (pose.output_kind, pose.input_channels, pose.pose_convention) == ("pose_6dof", 6, "T_src_tgt")
    assert pose.metric


def test_specs_record_the_training_camera_of_the_fit_run(exported):
    # the 256x128 synthetic camera (fx = 0.58 * width) trained at 128x64: aspect 2, focal halved
    _, out = exported
    for kind in ("depth", "pose"):
        spec = load_model_spec(out / f"{kind}.onnx")
        assert spec.version == 2
        assert (spec.train_image_width_px, spec.train_image_height_px) == (256, 128)
        assert spec.train_fx_px == pytest.approx(0.58 * 256 * 0.5) and spec.train_fy_px == pytest.approx(0.58 * 256 * 0.5)


def test_onnx_matches_pytorch_on_real_frames(exported):
    import onnxruntime as ort

    ckpt, out = exported
    module = load_module(ckpt)
    frames = list(render_sequence(SYNTH.replace(seed=99, frames=3)))  # unseen scene
    spec = load_model_spec(out / "depth.onnx")
    x = preprocess(frames[1].rgb, SYNTH.camera, spec).tensor
    sess = ort.InferenceSession(str(out / "depth.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {spec.input_name: x})[0]
    with torch.inference_mode():
        want = module.depth_net(torch.from_numpy(x))[0].numpy()
    assert got.shape == (1, 1, 64, 128)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.ptp(want) > 0  # a real, non-constant output was compared

    pspec = load_model_spec(out / "pose.onnx")
    pair = preprocess_pair(frames[1].rgb, frames[2].rgb, SYNTH.camera, pspec).tensor
    psess = ort.InferenceSession(str(out / "pose.onnx"), providers=["CPUExecutionProvider"])
    got_pose = psess.run(None, {pspec.input_name: pair})[0]
    with torch.inference_mode():
        t = torch.from_numpy(pair)
        want_pose = module.pose_net(t[:, :3], t[:, 3:]).numpy()
    assert got_pose.shape == (1, 6)
    np.testing.assert_allclose(got_pose, want_pose, atol=1e-6)


def test_exported_model_on_an_image_equals_the_training_network_on_its_sample(exported):
    """Samples carry [0, 1] images and the training module normalises them before its networks;
    the exported models take the runtime's preprocess of the same frame: same outputs."""
    import onnxruntime as ort

    from depth_ros_training.data import BagSequenceDataset, DataConfig

    ckpt, out = exported
    module = load_module(ckpt).eval()
    bag = ckpt.parents[4] / "train.mcap"
    ds = BagSequenceDataset(DataConfig(bags=(str(bag),), height=64, width=128, val_fraction=0.0, cache_dir=str(ckpt.parents[4] / "cache")), "all")
    ref, sample = ds.samples[2], ds[2]
    camera = ds.indexes[0].camera
    rgb_tgt, rgb_src = ds.load_rgb(0, ref.tgt), ds.load_rgb(0, ref.srcs[0])
    spec, pspec = load_model_spec(out / "depth.onnx"), load_model_spec(out / "pose.onnx")
    got = ort.InferenceSession(str(out / "depth.onnx"), providers=["CPUExecutionProvider"]).run(None, {spec.input_name: preprocess(rgb_tgt, camera, spec).tensor})[0]
    pair = preprocess_pair(rgb_tgt, rgb_src, camera, pspec).tensor
    got_pose = ort.InferenceSession(str(out / "pose.onnx"), providers=["CPUExecutionProvider"]).run(None, {pspec.input_name: pair})[0]
    with torch.inference_mode():
        want, _ = module.predict_depth(sample["tgt"][None])
        want_pose = module.predict_pose(sample["tgt"][None], sample["srcs"][None, 0])
    assert np.ptp(want.numpy()) > 0
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    np.testing.assert_allclose(got_pose, want_pose.numpy(), atol=1e-5)


def test_export_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "m")]) == 1
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}}, bad)
    assert main(["export", str(bad), "-o", str(tmp_path / "m")]) == 1
    assert "not a depth_ros training checkpoint" in capsys.readouterr().err


def test_export_batch_and_tensorrt_int8(exported, tmp_path):
    """``--batch 3``: depth.onnx takes 1 to 3 frames (checked against frame by frame at export);
    ``--int8 --int8-target tensorrt`` beside it: the symmetric model TensorRT builds INT8 from."""
    from depth_ros.inference.backend import create_backend
    from depth_ros.inference.tensorrt_backend import engine_precision

    ckpt, _ = exported
    out = tmp_path / "batched"
    bag = write_test_bag(tmp_path / "calib.mcap", SYNTH.replace(seed=3, frames=4))
    assert main(["export", str(ckpt), "-o", str(out), "--no-pose", "--tensorrt", "off", "--batch", "3",
                 "--int8", "--int8-target", "tensorrt", "--calibration-bag", str(bag), "--calibration-frames", "4"]) == 0
    spec = load_model_spec(out / "depth.onnx")
    assert spec.max_batch == 3
    backend = create_backend(out / "depth.onnx", "onnxruntime-cpu", threads=1)
    frames = [preprocess(f.rgb, SYNTH.camera, spec).tensor for f in render_sequence(SYNTH.replace(seed=98, frames=3))]
    batched = backend.infer_batch(np.concatenate(frames))["depth"]
    assert batched.shape == (3, 1, 64, 128)
    for i, x in enumerate(frames):
        np.testing.assert_allclose(batched[i:i + 1], backend.infer(x)["depth"], atol=1e-5)
    int8 = load_model_spec(out / "depth.int8-tensorrt.onnx")
    assert int8.max_batch == 3 and engine_precision(int8, "fp16") == "int8"
    assert not (out / "depth.int8.onnx").exists()
