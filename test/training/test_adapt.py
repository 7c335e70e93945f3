"""``depth-ros-train adapt``: bags -> checked -> split -> quick recipe -> ONNX -> held-out AbsRel -> run line."""
from __future__ import annotations

import json
import math

import pytest

from depth_ros.errors import InputError
from depth_ros.synthetic import SynthConfig, write_bag

from depth_ros_training.adapt import AdaptConfig, centre_crop, holdout_cut_ns, network_input_size, split_bag, squash_warning, stride_for_rate
from depth_ros_training.cli import main
from depth_ros_training.recipes import QUICK_INPUT_PIXELS, QuickRecipe


# -- pure helpers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        ((384, 128), (64, 192)),   # the demo's camera: the demo's input
        ((640, 480), (96, 128)),   # 4:3, exactly 12288 px
        ((752, 480), (96, 160)),   # EuRoC: 1.567 -> 1.667, the closest multiple-of-32 aspect
        ((1242, 375), (64, 224)),  # KITTI: 3.31 -> 3.5 (3.0 at 64x192 is farther)
        ((480, 640), (128, 96)),   # portrait
    ],
)
def test_network_input_keeps_the_aspect(camera, expected):
    h, w = network_input_size(*camera)
    assert (h, w) == expected and h % 32 == 0 and w % 32 == 0
    assert QUICK_INPUT_PIXELS / 1.25 <= h * w <= 1.25 * QUICK_INPUT_PIXELS
    aspect = camera[0] / camera[1]
    # no multiple-of-32 size within 25 % of the pixel count is closer to the camera's aspect
    for hh in range(32, 1024, 32):
        for ww in range(32, 1024, 32):
            if QUICK_INPUT_PIXELS / 1.25 <= hh * ww <= 1.25 * QUICK_INPUT_PIXELS:
                assert abs(math.log(ww / hh / aspect)) >= abs(math.log(w / h / aspect)) - 1e-9


def test_centre_crop_gives_the_network_aspect():
    assert centre_crop(640, 480, 128, 96) is None  # already 4:3
    x0, y0, w, h = centre_crop(752, 480, 160, 96)  # wider network: crop the height
    assert (w, x0) == (752, 0) and h == round(752 * 96 / 160) and y0 == (480 - h) // 2
    x0, y0, w, h = centre_crop(1242, 375, 192, 64)  # narrower network: crop the width
    assert (h, y0) == (375, 0) and w == 1125 and x0 == (1242 - 1125) // 2


def test_squash_warning_names_the_factor_and_the_size_that_fits():
    text = squash_warning(640, 480, 128, 416)  # README's 416x128 on a 4:3 camera
    assert "2.44x horizontally" in text and "--data.data.height 192 --data.data.width 256" in text
    assert squash_warning(384, 128, 64, 192) is None and squash_warning(1242, 375, 128, 416) is None  # within 10 %
    assert squash_warning(640, 480, 128, 416, crop=(0, 142, 640, 197)) is None  # cropped to the input's aspect
    assert "3.31x vertically" in squash_warning(1242, 375, 128, 128)  # a wide camera under a square input


def test_stop_at_deadline_stops_on_wall_clock_time():
    from types import SimpleNamespace

    from depth_ros_training.deadline import StopAtDeadline

    now = [0.0]
    stop = StopAtDeadline(10.0, clock=lambda: now[0])
    trainer = SimpleNamespace(should_stop=False)
    stop.on_train_batch_end(trainer, None, None, None, 0)
    assert not trainer.should_stop  # 10 s left
    now[0] = 10.0  # validations included: whatever the loop did, the clock says the time is up
    stop.on_train_batch_end(trainer, None, None, None, 1)
    assert trainer.should_stop


def test_stride_keeps_the_recipes_time_between_frames():
    recipe = QuickRecipe()
    assert stride_for_rate(10.0, recipe) == 2  # the rate it was tuned at
    assert stride_for_rate(30.0, recipe) == 6 and stride_for_rate(20.0, recipe) == 4
    assert stride_for_rate(2.0, recipe) == 1  # never below one frame
    assert stride_for_rate(float("nan"), recipe) == recipe.stride


def test_holdout_cut_is_the_last_share_of_the_time():
    assert holdout_cut_ns([0, 100, 200, 1000], 0.15) == 850
    assert holdout_cut_ns([5, 5 + 10**9], 0.5) == 5 + 5 * 10**8


def test_config_refuses_bad_values():
    with pytest.raises(InputError, match="--minutes"):
        AdaptConfig(bags=("a.mcap",), minutes=0)
    with pytest.raises(InputError, match="--size"):
        AdaptConfig(bags=("a.mcap",), size=(100, 128))
    with pytest.raises(InputError, match="--holdout"):
        AdaptConfig(bags=("a.mcap",), holdout=0.6)
    with pytest.raises(InputError, match="bag"):
        AdaptConfig(bags=())
    with pytest.raises(InputError, match="network_dtype"):
        QuickRecipe(network_dtype="float16")
    with pytest.raises(InputError, match="pose_network must be one of resnet, light, got 'tiny'"):
        QuickRecipe(pose_network="tiny")


def test_the_light_networks_are_a_recipe_choice_and_an_adapt_flag():
    import argparse

    from depth_ros_training.adapt import add_arguments
    from depth_ros_training.models.light_dispnet import LightDispNet
    from depth_ros_training.models.posenet import LightPoseNet, PoseNet
    from depth_ros_training.recipes import quick_module

    module = quick_module(QuickRecipe(depth_network="light", pose_network="light"), 64, 96, 60.0, "float32")
    assert isinstance(module.depth_net, LightDispNet) and isinstance(module.pose_net, LightPoseNet)
    # an override still wins (the benches pass the network this way)
    assert isinstance(quick_module(QuickRecipe(pose_network="light"), 64, 96, 60.0, "float32", pose_network="resnet").pose_net, PoseNet)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["a.mcap", "--depth-network", "light", "--pose-network", "light"])
    assert (args.depth_network, args.pose_network) == ("light", "light")
    assert (parser.parse_args(["a.mcap"]).depth_network, parser.parse_args(["a.mcap"]).pose_network) == ("resnet", "resnet")


# -- bags --------------------------------------------------------------------------------------
def _bag(tmp_path, name="robot.mcap", frames=24, **kw):
    cfg = SynthConfig(width=128, height=96, frames=frames, rate_hz=10.0, speed_mps=1.0, lidar_beams=0, texture_size_px=64, seed=3, **kw)
    return write_bag(cfg, tmp_path / name)


def test_split_bag_cuts_at_the_log_time_and_keeps_static_topics_in_both(tmp_path):
    from depth_ros.bag.reader import BagReader

    bag = _bag(tmp_path, frames=10)
    with BagReader(bag) as r:
        counts = {t: i.count for t, i in r.topics.items()}
        stamps = [m.log_time_ns for m in r.messages(["/camera/image_raw"])]
    cut = stamps[7]
    train, held = split_bag(bag, cut, tmp_path / "a.mcap", tmp_path / "b.mcap")
    with BagReader(train) as a, BagReader(held) as b:
        assert a.topics["/camera/image_raw"].count == 7 and b.topics["/camera/image_raw"].count == 3
        assert max(m.log_time_ns for m in a.messages(["/camera/image_raw"])) < cut <= min(m.log_time_ns for m in b.messages(["/camera/image_raw"]))
        assert a.topics["/tf_static"].count == b.topics["/tf_static"].count == counts["/tf_static"]
        for topic, n in counts.items():  # nothing lost, nothing invented
            if topic != "/tf_static":
                assert a.topics[topic].count + b.topics[topic].count == n
        # the bytes are the bag's: the held-out frames decode to the same images
        first_held = next(b.messages(["/camera/image_raw"]))
        assert b.deserialize(first_held).header.stamp is not None


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """One adapt run (12 s of training) on a 36-frame 128x96 bag: (bag, output dir, printed text)."""
    import contextlib
    import io

    tmp = tmp_path_factory.mktemp("adapt")
    bag = _bag(tmp, frames=36)  # 6 held-out frames: enough for one validation sample at stride 2
    out = tmp / "out"
    printed = io.StringIO()
    import torch

    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(printed):
        code = main(["adapt", str(bag), "--minutes", "0.2", "-o", str(out), "--threads", "1"])
    assert code == 0, printed.getvalue()
    # --threads holds for the run only: the tests after this one train with the process's count
    assert torch.get_num_threads() == threads
    return bag, out, printed.getvalue()


@pytest.mark.slow
def test_adapt_end_to_end(adapted):
    import torch

    from depth_ros.inference.spec import load_model_spec

    _, out, printed = adapted
    depth, pose = out / "model" / "depth.onnx", out / "model" / "pose.onnx"
    assert depth.is_file() and pose.is_file()
    spec = load_model_spec(depth)
    assert spec.metric and (spec.input_height, spec.input_width) == (96, 128)  # the camera's 4:3, the demo's pixel count
    assert (spec.train_image_width_px, spec.train_image_height_px) == (128, 96)  # the training camera, for the runtime's checks
    result = json.loads((out / "adapt.json").read_text())
    assert result["crop"] is None and result["input_size"] == [96, 128]
    assert result["train"]["steps"] >= 1 and result["train"]["stride"] == 2
    assert "train/normal" not in result["train"]["terms"]  # no teacher, no teacher terms
    # validation ran on the held-out segment (at the end of the budget) and wrote a weights-only checkpoint
    assert "val/loss" in result["train"]["validation"] and "val/abs_rel_median" in result["train"]["validation"]
    ckpts = list((out / "checkpoints").glob("*.ckpt"))
    assert len(ckpts) == 1
    assert "optimizer_states" not in torch.load(ckpts[0], weights_only=True)
    ev = result["evaluation"]
    assert ev["truth_topic"] == "/camera/depth/ground_truth" and ev["frames"] >= 5
    assert math.isfinite(ev["median_abs_rel"]) and math.isfinite(ev["metric_abs_rel"]) and ev["median_abs_rel"] <= ev["metric_abs_rel"] + 1e-6
    # the printed lines run the exported models on the bag's camera
    assert f"--model {depth}" in printed and f"--pose-model {pose}" in printed and "--image-topic /camera/image_raw" in printed
    assert f"ros2 launch depth_ros depth.launch.py model:={depth}" in printed and "camera_info_topic:=/camera/camera_info" in printed
    assert f"median-scaled {ev['median_abs_rel']:.3f}" in printed


@pytest.mark.slow
def test_adapt_with_a_teacher_trains_its_terms(adapted, tmp_path):
    bag, first, _ = adapted
    out = tmp_path / "out"
    assert main(["adapt", str(bag), "--minutes", "0.1", "--teacher", str(first / "model" / "depth.onnx"), "-o", str(out), "--threads", "1"]) == 0
    terms = json.loads((out / "adapt.json").read_text())["train"]["terms"]
    assert terms["train/normal"] > 0 and "train/normal_ranking" in terms


def test_adapt_refuses_a_teacher_that_is_not_a_depth_model(adapted, tmp_path, capsys):
    bag, first, _ = adapted
    assert main(["adapt", str(bag), "--teacher", str(first / "model" / "pose.onnx"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pose.onnx is a pose_6dof model, not a depth model" in err
    assert not (tmp_path / "out" / "split").exists()


def test_adapt_refuses_a_bag_without_odometry_in_one_line(tmp_path, capsys):
    from bagfactory import write_test_bag

    bag = write_test_bag(tmp_path / "no_odom.mcap", SynthConfig(width=64, height=32, frames=8, lidar_beams=0, texture_size_px=64), odometry=False)
    assert main(["adapt", str(bag), "--minutes", "0.1", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("depth-ros-train adapt: error:") and "no_odom.mcap" in err and "/odom" in err
    assert not (tmp_path / "out" / "split").exists()  # refused before anything was written


def test_adapt_refuses_a_missing_bag_and_a_missing_truth_topic(tmp_path, capsys):
    assert main(["adapt", str(tmp_path / "nope.mcap"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bag not found" in err and "nope.mcap" in err
    bag = _bag(tmp_path, frames=8)
    assert main(["adapt", str(bag), "--truth-topic", "/lidar/points", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "/lidar/points" in err and "robot.mcap" in err
