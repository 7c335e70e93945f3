"""``depth-ros-train eval`` end to end on small synthetic bags: models through infer_bag,
``--pred`` bags, dense and LiDAR truth, outputs, and one-line errors for bad input."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from depth_ros.errors import BagError, DepthRosError, ModelError
from depth_ros.inference.spec import ModelSpec
from depth_ros.synthetic import SynthConfig, write_bag
from depth_ros_training.eval.cli import add_arguments, run
from depth_ros_training.eval.evaluate import project_points_to_depth

from tiny_nets import export_sigmoid_convnet, tiny_dispnet_spec

SYNTH = SynthConfig(width=48, height=32, frames=4, texture_size_px=64, lidar_beams=16, lidar_azimuth_samples=720, seed=3)
SPEC = tiny_dispnet_spec()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("eval")
    model = export_sigmoid_convnet(d / "tiny.onnx", SPEC)  # one 3x3 convolution and a sigmoid
    pose = d / "pose.onnx"
    pose.write_bytes(model.read_bytes())  # any ONNX file: the sidecar spec says it is a pose net
    ModelSpec(output_kind="pose_6dof", input_height=32, input_width=48, input_channels=6, name="pose").to_yaml(d / "pose.onnx.yaml")
    return {"model": model, "pose": pose, "bag": write_bag(SYNTH, d / "s.mcap"), "dir": d}


def _args(*argv: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="depth-ros-train eval")
    add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def _eval(tmp_path: Path, *argv: Any) -> tuple[int, dict[str, Any], list[dict[str, str]]]:
    out = tmp_path / "out"
    code = run(_args(*argv, "-o", out, "--no-progress"))
    summary = json.loads((out / "summary.json").read_text())
    with (out / "frames.csv").open() as f:
        return code, summary, list(csv.DictReader(f))


def test_lidar_projection_of_a_hand_made_point() -> None:
    K = np.array([[10.0, 0, 4.0], [0, 10.0, 2.5], [0, 0, 1]])
    # (0.2, -0.1, 2) -> u = 10 * 0.1 + 4 = 5, v = 10 * -0.05 + 2.5 = 2; (0.3, -0.15, 3) lands there too, farther;
    # (0.04, 0, 1) -> u = 4.4 -> 4, v = 2.5 -> 2 (half to even); one behind the camera, one off the image
    points = np.array([[0.2, -0.1, 2.0], [0.0, 0.0, -1.0], [100.0, 0.0, 1.0], [0.3, -0.15, 3.0], [0.04, 0.0, 1.0]])
    depth = project_points_to_depth(points, K, width=10, height=6)
    assert np.argwhere(np.isfinite(depth)).tolist() == [[2, 4], [2, 5]]
    assert depth[2, 5] == pytest.approx(2.0) and depth[2, 4] == pytest.approx(1.0)  # the nearer of two wins


def test_truth_against_itself_with_odometry(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = files["bag"]
    code, summary, frames = _eval(tmp_path, bag, "--pred", bag, "--pred-topic", "/camera/depth/ground_truth")
    assert code == 0
    [m] = summary["models"]
    assert summary["aggregation"].startswith("mean over frames of per-frame metrics")
    assert m["frames"] == 4 and len(frames) == 4
    for mode in ("median", "metric"):
        assert m[mode]["abs_rel"] == pytest.approx(0.0, abs=1e-6) and m[mode]["delta1"] == 1.0
    assert m["scale_ratio"]["mean"] == pytest.approx(1.0) and m["scale_ratio"]["std"] == pytest.approx(0.0, abs=1e-9)
    # the corridor has contours facing all four ways, so the truth scores 1 against itself
    assert m["boundary"]["f1"] == pytest.approx(1.0) and m["boundary"]["frames"] == 4
    # flicker of the truth against itself, three consecutive pairs; it is the truth's own floor
    assert m["flicker"]["pairs"] == 3 and m["flicker"]["flicker"] == pytest.approx(m["flicker"]["flicker_truth"])
    assert m["flicker"]["flicker"] < 2e-3
    # the prediction bag carries /odom: the trajectory against itself
    odom = m["bags"][0]["odometry"]
    assert odom["matched"] == 4 and odom["se3"]["ate"]["rmse_m"] == pytest.approx(0.0, abs=1e-9)
    assert m["bags"][0]["frames"]["unmatched_truth"] == 0
    out = capsys.readouterr().out
    assert "AbsRel (median-scaled)" in out and "s " in out and "contact_sheet_" in out
    # the plots: the truth against itself has boundaries, so all four kinds are written
    name = m["name"]
    assert summary["plots"] == sorted(["boundary_pr.png", f"contact_sheet_{name}.png", "error_histogram.png", "error_vs_distance.png"])
    assert all((tmp_path / "out" / p).read_bytes()[:4] == b"\x89PNG" for p in summary["plots"])


def test_models_side_by_side_through_the_runtime_path(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from depth_ros.bag.infer import InferConfig, infer_bag
    from depth_ros_training.eval.metrics import compute_depth_metrics
    from rosbags.highlevel import AnyReader

    code, summary, frames = _eval(tmp_path, files["bag"], "--model", files["model"], "--model", files["model"], "--backend", "onnxruntime-cpu")
    assert code == 0
    a, b = summary["models"]
    assert (a["name"], b["name"]) == ("tiny#1", "tiny#2")
    assert a["median"] == b["median"]  # deterministic
    assert a["bags"][0]["inference"]["model"] == "tiny-dispnet" and a["bags"][0]["inference"]["scale_source"] == "model"
    assert a["frames"] == 4 and len(frames) == 8
    assert a["boundary"] is not None and 0.0 <= a["boundary"]["f1"] <= 1.0
    # the numbers are those of the depth that `depth-ros infer` writes, against the truth topic
    out = tmp_path / "direct.mcap"
    infer_bag(files["bag"], out, files["model"], InferConfig(backend="onnxruntime-cpu", cloud=False))
    with AnyReader([out]) as reader:
        conns = [c for c in reader.connections if c.topic == "/camera/depth/image"]
        preds = [reader.deserialize(d, c.msgtype) for c, _, d in reader.messages(connections=conns)]
    with AnyReader([files["bag"]]) as reader:
        conns = [c for c in reader.connections if c.topic == "/camera/depth/ground_truth"]
        gts = [reader.deserialize(d, c.msgtype) for c, _, d in reader.messages(connections=conns)]
    from depth_ros.msgconv import image_to_depth_m

    expected = np.mean([compute_depth_metrics(image_to_depth_m(p), image_to_depth_m(g), False).abs_rel for p, g in zip(preds, gts)])
    assert a["metric"]["abs_rel"] == pytest.approx(expected, rel=1e-9)
    table = capsys.readouterr().out
    assert "tiny#1" in table and "tiny#2" in table


def test_lidar_truth(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = files["bag"]
    code, summary, _ = _eval(tmp_path, bag, "--pred", bag, "--pred-topic", "/camera/depth/ground_truth", "--truth-topic", "/lidar/points", "--stamp-tolerance", "0", "--json")
    assert code == 0
    assert json.loads(capsys.readouterr().out) == summary  # --json prints summary.json
    [m] = summary["models"]
    assert m["bags"][0]["truth_kind"] == "lidar" and m["boundary"] is None
    # the projected LiDAR returns land on the surfaces the dense truth shows: small error, not 0
    # (a return is compared with the truth at the nearest pixel centre)
    assert 0.0 < m["metric"]["abs_rel"] < 0.05
    assert m["frames"] == 4
    # flicker from the prediction's own correspondences; no dense truth to give its floor
    assert m["flicker"]["pairs"] == 3 and m["flicker"]["flicker_truth"] is None


def test_crop_and_depth_caps(files: dict[str, Path], tmp_path: Path) -> None:
    bag = files["bag"]
    full = _eval(tmp_path / "a", bag, "--pred", bag, "--pred-topic", "/camera/depth/ground_truth", "--no-flicker", "--no-boundary")[1]
    part = _eval(tmp_path / "b", bag, "--pred", bag, "--pred-topic", "/camera/depth/ground_truth", "--no-flicker",
                 "--no-boundary", "--crop", "0.25", "0.5", "0.75", "1.0", "--max-depth", "3")[1]
    n_full, n_part = full["models"][0]["median"]["num_pixels"], part["models"][0]["median"]["num_pixels"]
    assert n_full == 4 * 48 * 32  # every truth pixel of the closed room is valid
    assert 0 < n_part < 4 * 24 * 16  # the crop is 24 x 16, and the cap drops far pixels
    assert part["models"][0]["flicker"] is None and part["models"][0]["boundary"] is None


def test_scale_ratio_spread_by_hand() -> None:
    from depth_ros_training.eval.metrics import scale_ratio_stats

    stats = scale_ratio_stats(np.array([1.0, 1.2, 0.8, np.nan, 1.0]))
    assert stats["frames"] == 4 and stats["mean"] == pytest.approx(1.0) and stats["median"] == pytest.approx(1.0)
    assert stats["std"] == pytest.approx(np.sqrt(0.02)) and stats["cv"] == pytest.approx(np.sqrt(0.02))
    assert (stats["min"], stats["max"]) == (0.8, 1.2)


def _write_depth_bag(path: Path, stamps_ns: list[int], depth_m: np.ndarray) -> Path:
    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter
    from depth_ros.msgconv import depth_image_fields, ns_to_stamp

    ts = output_typestore()
    T = ts.types
    with BagWriter(path, typestore=ts) as bag:
        bag.add_topic("/camera/depth/image", "sensor_msgs/msg/Image")
        for stamp in stamps_ns:
            sec, nsec = ns_to_stamp(stamp)
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="camera_optical_frame")
            bag.write("/camera/depth/image", T["sensor_msgs/msg/Image"](header=header, **depth_image_fields(depth_m, "32FC1")), stamp)
    return path


def _handmade_bags(d: Path, pred_scale: float) -> tuple[Path, Path]:
    """A truth bag (rgb8 image, camera_info, 16UC1 depth in mm, mono8 object mask) and a
    prediction bag (32FC1 m): three 16 x 12 frames of a 1 m box (rows 4..7, cols 5..10) in
    front of a 3 m wall; the prediction is the truth times ``pred_scale``."""
    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter
    from depth_ros.msgconv import depth_image_fields, ns_to_stamp

    ts = output_typestore()
    T = ts.types
    w, h, frame = 16, 12, "cam_optical"
    depth = np.full((h, w), 3.0, np.float32)
    depth[4:8, 5:11] = 1.0
    mask = np.where(depth < 2, 255, 0).astype(np.uint8)
    K = np.array([[12.0, 0, 7.5], [0, 12.0, 5.5], [0, 0, 1]])

    def header(stamp: int) -> Any:
        sec, nsec = ns_to_stamp(stamp)
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame)

    def image(stamp: int, encoding: str, data: np.ndarray, channels: int = 1) -> Any:
        return T["sensor_msgs/msg/Image"](header=header(stamp), height=h, width=w, encoding=encoding, is_bigendian=0,
                                          step=w * channels * data.itemsize, data=np.ascontiguousarray(data).view(np.uint8).ravel())

    stamps = [1_000_000_000 + i * 100_000_000 for i in range(3)]
    truth, pred = d / "handmade.mcap", d / "handmade_pred.mcap"
    with BagWriter(truth, typestore=ts) as bag:
        for topic, msgtype in (("/cam/image_raw", "sensor_msgs/msg/Image"), ("/cam/camera_info", "sensor_msgs/msg/CameraInfo"),
                               ("/cam/truth_depth_mm", "sensor_msgs/msg/Image"), ("/cam/object_mask", "sensor_msgs/msg/Image")):
            bag.add_topic(topic, msgtype)
        for stamp in stamps:
            bag.write("/cam/image_raw", image(stamp, "rgb8", np.zeros((h, w, 3), np.uint8), 3), stamp)
            P = np.zeros((3, 4))
            P[:3, :3] = K
            info = T["sensor_msgs/msg/CameraInfo"](
                header=header(stamp), height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5), k=K.ravel(),
                r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0,
                roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
            )
            bag.write("/cam/camera_info", info, stamp)
            bag.write("/cam/truth_depth_mm", image(stamp, "16UC1", np.round(depth * 1000).astype(np.uint16)), stamp)
            bag.write("/cam/object_mask", image(stamp, "mono8", mask), stamp)
    with BagWriter(pred, typestore=ts) as bag:
        bag.add_topic("/cam/depth/image", "sensor_msgs/msg/Image")
        for stamp in stamps:
            bag.write("/cam/depth/image", T["sensor_msgs/msg/Image"](header=header(stamp), **depth_image_fields(pred_scale * depth, "32FC1")), stamp)
    return truth, pred


def test_handmade_16uc1_truth_and_object_mask(tmp_path: Path) -> None:
    truth, pred = _handmade_bags(tmp_path, pred_scale=2.0)
    code, summary, frames = _eval(tmp_path, truth, "--pred", pred, "--mask-topic", "/cam/object_mask", "--stamp-tolerance", "0")
    assert code == 0
    [m] = summary["models"]
    assert m["bags"][0]["truth_topic"] == "/cam/truth_depth_mm" and m["bags"][0]["truth_kind"] == "dense"
    assert m["bags"][0]["frames"]["masks"] == 3
    # twice too far everywhere: metric AbsRel |2g - g| / g = 1, RMSE = RMS of g; median scaling undoes it
    g = np.full((12, 16), 3.0)
    g[4:8, 5:11] = 1.0
    assert m["metric"]["abs_rel"] == pytest.approx(1.0) and m["metric"]["rmse"] == pytest.approx(np.sqrt(np.mean(g**2)))
    assert m["metric"]["delta1"] == 0.0 and m["metric"]["delta3"] == 0.0  # ratio 2 > 1.25^3
    assert m["median"]["abs_rel"] == pytest.approx(0.0, abs=1e-6) and m["scale_ratio"]["mean"] == pytest.approx(0.5)
    assert m["median"]["num_pixels"] == 3 * 12 * 16
    # the box's edges face all four ways, the prediction's scale is irrelevant: both boundary scores 1
    assert m["boundary"]["f1"] == pytest.approx(1.0)
    assert m["mask_boundary_recall"]["recall"] == pytest.approx(1.0) and m["mask_boundary_recall"]["frames"] == 3
    assert m["flicker"] is None and "no odometry" in m["bags"][0]["flicker_note"]
    # by range: all box pixels in 0-2 m, all wall pixels in 2-5 m, each twice too far
    by_range = m["metric_by_range"]
    assert by_range["0-2 m"]["fraction"] == pytest.approx(24 / 192) and by_range["2-5 m"]["bias"] == pytest.approx(2.0)
    assert [float(f["metric_abs_rel"]) for f in frames] == [1.0, 1.0, 1.0]


def _write_depth_frames(path: Path, frames: list[tuple[int, np.ndarray]]) -> Path:
    """A prediction bag: (stamp_ns, depth (H, W) metres) per message on /camera/depth/image."""
    from depth_ros.bag.typestore import output_typestore
    from depth_ros.bag.writer import BagWriter
    from depth_ros.msgconv import depth_image_fields, ns_to_stamp

    ts = output_typestore()
    T = ts.types
    with BagWriter(path, typestore=ts) as bag:
        bag.add_topic("/camera/depth/image", "sensor_msgs/msg/Image")
        for stamp, depth in frames:
            sec, nsec = ns_to_stamp(stamp)
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="camera_optical_frame")
            bag.write("/camera/depth/image", T["sensor_msgs/msg/Image"](header=header, **depth_image_fields(depth, "32FC1")), stamp)
    return path


def _box_blur(depth: np.ndarray, k: int = 5) -> np.ndarray:
    pad = np.pad(depth.astype(np.float64), k // 2, mode="edge")
    h, w = depth.shape
    return (sum(pad[i : i + h, j : j + w] for i in range(k) for j in range(k)) / k**2).astype(np.float32)


def test_object_mask_of_a_synthetic_bag_is_picked_up(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from depth_ros.synthetic import render_sequence
    from depth_ros_training.eval.boundary import si_boundary_recall

    cfg = SYNTH.replace(object_mask=True)
    bag = write_bag(cfg, tmp_path / "masked.mcap")
    rendered = list(render_sequence(cfg))
    # no --mask-topic, no --image-topic: /camera/object_mask is found and is not taken for the camera
    code, summary, rows = _eval(tmp_path / "truth", bag, "--pred", bag, "--pred-topic", "/camera/depth/ground_truth")
    assert code == 0
    assert "object mask /camera/object_mask (4 frames)" in capsys.readouterr().out
    [m] = summary["models"]
    assert m["bags"][0]["mask_topic"] == "/camera/object_mask" and m["bags"][0]["frames"]["masks"] == 4
    # the same numbers as the boundary module on the rendered frames (truth against the instance mask)
    expected = [si_boundary_recall(f.depth_m.astype(np.float64), f.instance_id > 0) for f in rendered]
    assert [float(r["mask_boundary_recall"]) for r in rows] == pytest.approx(expected, rel=1e-6)
    truth_recall = m["mask_boundary_recall"]["recall"]
    assert truth_recall == pytest.approx(np.mean(expected)) and m["mask_boundary_recall"]["frames"] == 4
    # below 1 even for the truth: a box's contact line with the floor is a mask edge without a depth step
    assert 0.4 < truth_recall < 1.0
    # a blurred prediction loses the sharp object edges; a scaled one keeps them
    blurred = _write_depth_frames(tmp_path / "blurred.mcap", [(f.stamp_ns, _box_blur(f.depth_m)) for f in rendered])
    scaled = _write_depth_frames(tmp_path / "scaled.mcap", [(f.stamp_ns, 3.0 * f.depth_m) for f in rendered])
    blur = _eval(tmp_path / "blur", bag, "--pred", blurred)[1]["models"][0]
    scale = _eval(tmp_path / "scale", bag, "--pred", scaled)[1]["models"][0]
    assert blur["mask_boundary_recall"]["recall"] < 0.5 * truth_recall and blur["boundary"]["f1"] < 0.5
    assert scale["mask_boundary_recall"]["recall"] == pytest.approx(truth_recall)
    # a model run through infer on the masked bag: the camera is still found, the mask used
    code, summary, _ = _eval(tmp_path / "model", bag, "--model", files["model"], "--backend", "onnxruntime-cpu", "--no-flicker")
    assert code == 0 and summary["models"][0]["mask_boundary_recall"]["frames"] == 4
    # without the boundary scores no mask is looked for
    off = _eval(tmp_path / "off", bag, "--pred", bag, "--pred-topic", "/camera/depth/ground_truth", "--no-boundary")[1]["models"][0]
    assert off["bags"][0]["mask_topic"] is None and off["mask_boundary_recall"] is None


def test_mask_from_image_checks_sizes() -> None:
    from types import SimpleNamespace

    from depth_ros.errors import InputError
    from depth_ros_training.eval.evaluate import mask_from_image

    msg = SimpleNamespace(encoding="mono8", is_bigendian=0, height=2, width=3, step=4, data=np.array([0, 30, 255, 9, 26, 0, 0, 9], np.uint8))
    assert mask_from_image(msg).tolist() == [[False, True, True], [True, False, False]]  # alpha > 0.1: 26 / 255 > 0.1
    ids = SimpleNamespace(encoding="16UC1", is_bigendian=0, height=1, width=2, step=4, data=np.array([0, 0, 7, 0], np.uint8))
    assert mask_from_image(ids).tolist() == [[False, True]]
    with pytest.raises(InputError, match="does not fit"):
        mask_from_image(SimpleNamespace(encoding="mono8", is_bigendian=0, height=3, width=3, step=4, data=np.zeros(8, np.uint8)))
    with pytest.raises(InputError, match="not supported"):
        mask_from_image(SimpleNamespace(encoding="rgb8", is_bigendian=0, height=1, width=1, step=3, data=np.zeros(3, np.uint8)))


def test_all_nan_prediction(files: dict[str, Path], tmp_path: Path) -> None:
    stamps = [SYNTH.stamp_ns(i) for i in range(SYNTH.frames)]
    pred = _write_depth_bag(tmp_path / "nan.mcap", stamps, np.full((32, 48), np.nan, np.float32))
    with pytest.raises(DepthRosError, match="NaN everywhere in all 4 matched frames"):
        run(_args(files["bag"], "--pred", pred, "-o", tmp_path / "o", "--no-progress"))


def test_stamps_that_never_match(files: dict[str, Path], tmp_path: Path) -> None:
    stamps = [SYNTH.stamp_ns(i) + 500_000_000 for i in range(SYNTH.frames)]  # half a second late
    pred = _write_depth_bag(tmp_path / "late.mcap", stamps, np.full((32, 48), 2.0, np.float32))
    with pytest.raises(BagError, match=r"no prediction matches a truth stamp within 0\.01 s \(4 truth messages"):
        run(_args(files["bag"], "--pred", pred, "-o", tmp_path / "o", "--no-progress"))
    # with a tolerance wide enough they match (and the tolerance is honoured per frame)
    assert run(_args(files["bag"], "--pred", pred, "-o", tmp_path / "o", "--no-progress", "--stamp-tolerance", "0.6")) == 0


def test_bag_without_truth_lists_its_topics(tmp_path: Path, files: dict[str, Path]) -> None:
    bag = write_bag(SYNTH.replace(frames=1), tmp_path / "cam.mcap", topics=["/camera/image_raw", "/camera/camera_info"])
    with pytest.raises(BagError, match=r"no depth image .* topics: /camera/camera_info \(CameraInfo, 1 msgs\), /camera/image_raw \(Image, 1 msgs\)"):
        run(_args(bag, "--model", files["model"], "-o", tmp_path / "o", "--no-progress"))


def test_lidar_without_a_transform(tmp_path: Path, files: dict[str, Path]) -> None:
    bag = write_bag(SYNTH.replace(frames=1), tmp_path / "notf.mcap", topics=["/camera/image_raw", "/camera/camera_info", "/lidar/points"])
    with pytest.raises(BagError, match="LiDAR /lidar/points cannot be put in the camera frame: no static transform"):
        run(_args(bag, "--model", files["model"], "-o", tmp_path / "o", "--no-progress"))


def test_not_a_depth_model(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="pose_6dof"):
        run(_args(files["bag"], "--model", files["pose"], "-o", tmp_path / "o", "--no-progress"))


def test_options_are_checked(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DepthRosError, match="bad option: crop"):
        run(_args(files["bag"], "--model", files["model"], "--crop", "0.6", "0", "0.2", "1", "-o", tmp_path / "o"))
    with pytest.raises(DepthRosError, match="bad option"):
        run(_args(files["bag"], "--model", files["model"], "--scale", "fixed", "-o", tmp_path / "o"))
    with pytest.raises(DepthRosError, match="either models"):
        run(_args(files["bag"], "-o", tmp_path / "o"))
    with pytest.raises(DepthRosError, match="one prediction bag per truth bag"):
        run(_args(files["bag"], files["bag"], "--pred", files["bag"], "-o", tmp_path / "o"))


def test_the_train_command_runs_eval_and_answers_in_one_line(files: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from depth_ros_training.cli import main

    code = main(["eval", "--model", str(files["model"]), str(tmp_path / "missing.mcap"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and "Traceback" not in err, err
    assert lines[-1].startswith("depth-ros-train eval: error: ") and "missing.mcap" in lines[-1], err
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--help"])
    assert exit_info.value.code == 0 and "--model" in capsys.readouterr().out
