"""A TUM-layout folder -> ``depth-ros import`` -> ``depth-ros infer`` with an exported model ->
``depth-ros-train eval`` finds the truth; the training index finds the camera poses and the depth."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from test_import_support import camera_pose_from_bag, read_bag, stamp_ns, write_euroc, write_kitti, write_tum

from depth_ros.cli import main
from depth_ros.inference.spec import ModelSpec

SPEC = ModelSpec(
    output_kind="disparity_sigmoid", input_height=24, input_width=32, metric=True,
    min_depth_m=0.1, max_depth_m=10.0, name="mean-disparity", scale_source="velocity_supervision",
)


def _mean_disparity_model(path: Path) -> Path:
    """An ONNX graph built by hand (no torch): disparity = sigmoid(mean of the three channels),
    with :data:`SPEC` embedded as the exported models carry it."""
    import onnx
    from onnx import TensorProto, helper

    from depth_ros.inference.onnx_export import embed_spec

    shape = [1, 3, SPEC.input_height, SPEC.input_width]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1], keepdims=1), helper.make_node("Sigmoid", ["mean"], ["depth"])],
        "mean_disparity",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, SPEC.input_height, SPEC.input_width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    embed_spec(model, SPEC)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("e2e")
    info = write_tum(d, n=4)
    bag = d / "tum.mcap"
    assert main(["import", "tum", str(info["dir"]), "-o", str(bag), "--no-progress"]) == 0
    return {"model": _mean_disparity_model(d / "mean.onnx"), "bag": bag, "dir": d}


def test_infer_chooses_the_imported_camera(imported: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = imported["dir"] / "pred.mcap"
    capsys.readouterr()
    code = main(["infer", str(imported["bag"]), "-o", str(out), "--model", str(imported["model"]), "--no-progress"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "4 depth frames from 4 images" in stdout
    pred = read_bag(out)
    truth = read_bag(imported["bag"])
    assert [stamp_ns(m) for m in pred["/camera/depth/image"]] == [stamp_ns(m) for m in truth["/camera/image_raw"]]


def test_eval_finds_the_dense_truth(imported: dict[str, Path], tmp_path: Path) -> None:
    from depth_ros_training.eval.cli import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "eval"
    args = parser.parse_args([str(imported["bag"]), "--model", str(imported["model"]), "-o", str(out), "--no-progress", "--no-plots"])
    assert run(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    text = json.dumps(summary)
    assert "/camera/depth/ground_truth" in text and '"dense"' in text
    [model] = summary["models"]
    assert model["frames"] == 4


def test_training_index_has_poses_and_depth(imported: dict[str, Path], tmp_path: Path) -> None:
    from depth_ros_training.data.bag_index import IndexOptions, build_index

    index = build_index(imported["bag"], IndexOptions())
    assert index.has_odometry and bool(np.all(index.pose_valid)) and len(index) == 4
    assert index.gt_depth_topic == "/camera/depth/ground_truth" and bool(np.all(index.gt_depth_log_ns >= 0))
    # the index's camera pose at frame 1 (t0 + 0.1 s: x = 0.1 m) is the ground-truth camera pose
    t0_ns = 1305031102 * 10**9
    odom_ns = [stamp_ns(m) for m in read_bag(imported["bag"])["/odom"]]
    k = odom_ns.index(t0_ns + 100_000_000)
    assert np.allclose(index.T_odom_cam[1], camera_pose_from_bag(imported["bag"], k), atol=1e-9)
    assert index.T_odom_cam[1][0, 3] == pytest.approx(0.1, abs=1e-9)


@pytest.mark.parametrize("layout", ["euroc", "kitti"])
def test_training_index_chains_the_body_to_the_camera(tmp_path: Path, layout: str) -> None:
    """EuRoC's IMU body with T_BS, KITTI's IMU through the Velodyne: the index's camera pose at each
    frame is the odometry pose at that stamp composed with /tf_static."""
    from depth_ros_training.data.bag_index import IndexOptions, build_index

    src = write_euroc(tmp_path)["dir"] if layout == "euroc" else write_kitti(tmp_path)["drive"]
    bag = tmp_path / f"{layout}.mcap"
    assert main(["import", layout, str(src), "-o", str(bag), "--no-progress"]) == 0
    index = build_index(bag, IndexOptions())
    assert index.has_odometry and bool(np.all(index.pose_valid))
    odom_ns = [stamp_ns(m) for m in read_bag(bag)["/odom"]]
    for i, stamp in enumerate(index.image_stamp_ns):
        expected = camera_pose_from_bag(bag, odom_ns.index(int(stamp)))
        assert np.allclose(index.T_odom_cam[i], expected, atol=1e-6)
