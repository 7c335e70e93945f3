"""Bags -> training samples: index + cache, K rescale, preprocess parity, split, static
filter, odometry distance, CompressedImage, workers, error cases."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from depth_ros.core.preprocess import preprocess, resize_rgb
from depth_ros.errors import BagError
from depth_ros.synthetic import SynthConfig, render_sequence
from depth_ros_training.data import bag_index as bag_index_mod
from depth_ros_training.data import BagSequenceDataset, DataConfig, load_or_build_index
from depth_ros.core.rotation import quaternion_to_matrix
from depth_ros_training.data.geometry import interpolate_poses
from depth_ros_training.models import normalize_image

from bagfactory import write_test_bag

SYNTH = SynthConfig(width=192, height=64, frames=24, lidar_beams=0, seed=5, speed_mps=0.5, rate_hz=10.0)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    d = tmp_path_factory.mktemp("bags")
    return {
        "full": write_test_bag(d / "full.mcap", SYNTH),
        "db3": write_test_bag(d / "full.db3", SYNTH.replace(frames=6)),
        "jpeg": write_test_bag(d / "jpeg.mcap", SYNTH.replace(frames=6), compressed=True),
        "no_info": write_test_bag(d / "no_info.mcap", SYNTH.replace(frames=4), camera_info=False),
        "no_odom": write_test_bag(d / "no_odom.mcap", SYNTH.replace(frames=6), odometry=False),
        "static": write_test_bag(d / "static.mcap", SYNTH.replace(frames=8, speed_mps=0.0)),
        "short": write_test_bag(d / "short.mcap", SYNTH.replace(frames=2)),
    }


def _config(bag, **kw) -> DataConfig:
    base = dict(bags=(str(bag),), height=32, width=96, val_fraction=0.0, cache_dir=None)
    base.update(kw)
    return DataConfig(**base)


def test_sample_matches_runtime_preprocess_and_camera(bags):
    ds = BagSequenceDataset(_config(bags["full"]), "all")
    frames = list(render_sequence(SYNTH))
    ref = ds.samples[0]
    sample = ds[0]
    spec = ds.spec
    want = preprocess(frames[ref.tgt].rgb, SYNTH.camera, spec)
    # samples carry [0, 1] RGB, resized as the runtime resizes: normalised with the spec's
    # mean / std (as the training networks normalise their input) they are the runtime's tensor
    np.testing.assert_array_equal(sample["tgt"].numpy(), resize_rgb(frames[ref.tgt].rgb, 96, 32).transpose(2, 0, 1) / np.float32(255))
    assert 0.0 <= float(sample["tgt"].min()) and float(sample["tgt"].max()) <= 1.0
    np.testing.assert_allclose(normalize_image(sample["tgt"], spec.mean, spec.std).numpy(), want.tensor[0], rtol=0, atol=2e-6)
    np.testing.assert_allclose(normalize_image(sample["srcs"][1], spec.mean, spec.std).numpy(),
                               preprocess(frames[ref.srcs[1]].rgb, SYNTH.camera, spec).tensor[0], rtol=0, atol=2e-6)
    # K: CameraInfo rescaled by CameraModel.resized (192x64 -> 96x32), the same as preprocess's camera
    np.testing.assert_allclose(sample["K"].numpy(), SYNTH.camera.resized(96, 32).K, rtol=1e-6)
    np.testing.assert_allclose(sample["K"].numpy(), want.camera.K, rtol=1e-6)
    assert sample["tgt"].dtype == torch.float32 and sample["srcs"].shape == (2, 3, 32, 96)


def test_distance_is_camera_displacement_from_odometry_and_tf_static(bags):
    ds = BagSequenceDataset(_config(bags["full"]), "all")
    frames = list(render_sequence(SYNTH))
    for item in (0, 5):
        ref = ds.samples[item]
        got = ds[item]["distance_m"].numpy()
        want = [np.linalg.norm(frames[s].T_world_cam[:3, 3] - frames[ref.tgt].T_world_cam[:3, 3]) for s in ref.srcs]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # relative pose, PoseNet's convention: target camera frame -> source camera frame
        T_rel = ds[item]["T_src_tgt_odom"].numpy()
        for k, s in enumerate(ref.srcs):
            want_T = np.linalg.inv(frames[s].T_world_cam) @ frames[ref.tgt].T_world_cam
            np.testing.assert_allclose(T_rel[k], want_T, atol=2e-5)
    index = ds.indexes[0]
    np.testing.assert_allclose(index.T_odom_cam[7], frames[7].T_world_cam, atol=1e-6)


def test_gt_depth_nearest_resampled(bags):
    ds = BagSequenceDataset(_config(bags["full"]), "all")
    frames = list(render_sequence(SYNTH))
    gt = ds[3]["gt_depth_m"].numpy()[0]
    # 2x downsample, nearest with pixel centres: row i <- row 2i + 1 (centre (i + .5) * 2 = 2i + 1)
    np.testing.assert_array_equal(gt, frames[ds.samples[3].tgt].depth_m[1::2, 1::2])


def test_crop_changes_principal_point(bags):
    ds = BagSequenceDataset(_config(bags["full"], crop=(0, 16, 192, 32), height=32, width=96), "all")
    want = SYNTH.camera.cropped(0, 16, 192, 32).resized(96, 32).K
    np.testing.assert_allclose(ds[0]["K"].numpy(), want, rtol=1e-6)


def test_split_has_no_shared_frames_and_samples_stay_in_one_segment(bags):
    cfg = _config(bags["full"], val_fraction=0.3, segment_s=0.6)
    train, val = BagSequenceDataset(cfg, "train"), BagSequenceDataset(cfg, "val")
    frames_train = {f for s in train.samples for f in (s.tgt, *s.srcs)}
    frames_val = {f for s in val.samples for f in (s.tgt, *s.srcs)}
    assert train.samples and val.samples
    assert not frames_train & frames_val
    stamps = train.indexes[0].image_stamp_ns
    seg = (stamps - stamps[0]) // int(0.6e9)
    for s in train.samples + val.samples:
        assert len({seg[f] for f in (s.tgt, *s.srcs)}) == 1


def test_stride_and_offsets(bags):
    ds = BagSequenceDataset(_config(bags["full"], frame_offsets=(-2, 1), stride=2), "all")
    assert all(s.srcs == (s.tgt - 4, s.tgt + 2) for s in ds.samples)
    assert ds.samples[0].tgt == 4 and ds.samples[-1].tgt == SYNTH.frames - 3


def test_index_is_cached_and_invalidated_by_mtime(bags, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = load_or_build_index(bags["full"], cache_dir=cache_dir)
    assert len(list(cache_dir.iterdir())) == 1

    def no_scan(*a, **k):
        raise AssertionError("bag rescanned although the cache is valid")

    monkeypatch.setattr(bag_index_mod, "build_index", no_scan)
    again = load_or_build_index(bags["full"], cache_dir=cache_dir)
    np.testing.assert_array_equal(first.image_stamp_ns, again.image_stamp_ns)
    np.testing.assert_array_equal(first.T_odom_cam, again.T_odom_cam)
    assert again.camera == first.camera
    st = os.stat(bags["full"])
    os.utime(bags["full"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        with pytest.raises(AssertionError, match="rescanned"):
            load_or_build_index(bags["full"], cache_dir=cache_dir)
    finally:
        os.utime(bags["full"], ns=(st.st_atime_ns, st.st_mtime_ns))


def test_db3_and_compressed_bags(bags):
    short = SYNTH.replace(frames=6)
    frames = list(render_sequence(short))
    db3 = BagSequenceDataset(_config(bags["db3"]), "all")
    want = preprocess(frames[db3.samples[0].tgt].rgb, short.camera, db3.spec).tensor[0]
    np.testing.assert_allclose(normalize_image(db3[0]["tgt"], db3.spec.mean, db3.spec.std).numpy(), want, rtol=0, atol=2e-6)
    jpeg = BagSequenceDataset(_config(bags["jpeg"]), "all")
    raw = db3
    assert jpeg.indexes[0].image_kind == "compressed"
    diff = np.abs(jpeg[0]["tgt"].numpy() - raw[0]["tgt"].numpy())  # [0, 1] units
    assert diff.mean() < 0.02  # jpeg q95 vs raw


def test_static_camera_is_filtered(bags):
    with pytest.raises(BagError, match="no all samples"):
        BagSequenceDataset(_config(bags["static"]), "all")
    # without the filter the same bag yields samples, with (almost) no odometry distance
    ds = BagSequenceDataset(_config(bags["static"], static_filter="none"), "all")
    assert len(ds) == 6 and float(ds[0]["distance_m"].max()) < 0.02


def test_image_change_filter_without_odometry(bags):
    moving = BagSequenceDataset(_config(bags["no_odom"], static_filter="image", min_image_change=0.001), "all")
    assert len(moving) == 4 and torch.isnan(moving[0]["distance_m"]).all()
    with pytest.raises(BagError, match="static filter 'image'"):
        BagSequenceDataset(_config(bags["no_odom"], static_filter="image", min_image_change=0.9), "all")


def test_error_no_camera_info(bags):
    with pytest.raises(BagError, match="CameraInfo"):
        BagSequenceDataset(_config(bags["no_info"]), "all")


def test_index_of_a_renderer_bag_with_an_object_mask_picks_the_camera(tmp_path):
    # The renderer's bag: raw + jpeg camera, depth truth, the 16UC1 object mask, /odom, /tf_static.
    from depth_ros.synthetic.bagio import write_bag

    cfg = SynthConfig(width=64, height=32, frames=4, lidar_beams=0, seed=2, jpeg=True, object_mask=True)
    bag = write_bag(cfg, tmp_path / "masked.mcap")
    index = load_or_build_index(bag, cache_dir=tmp_path / "cache")
    assert (index.image_topic, index.image_kind) == ("/camera/image_raw", "raw")
    assert index.gt_depth_topic == "/camera/depth/ground_truth" and (index.gt_depth_log_ns >= 0).all()
    # the base -> camera extrinsic comes from depth_ros.bag's /tf_static lookup
    frames = list(render_sequence(cfg))
    assert index.has_odometry and index.pose_valid.all()
    np.testing.assert_allclose(index.T_odom_cam, np.stack([f.T_world_cam for f in frames]), atol=1e-6)


def test_error_two_cameras_names_the_option(tmp_path):
    # Two different cameras are not chosen between silently (a raw one used to win over a
    # compressed one of another camera); the message names the training option.
    from depth_ros.bag.writer import BagWriter
    from rosbags.typesys import Stores, get_typestore

    T = get_typestore(Stores.ROS2_KILTED).types
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]
    hdr = Header(stamp=Time(sec=1, nanosec=0), frame_id="cam")
    path = tmp_path / "two.mcap"
    with BagWriter(path, typestore=get_typestore(Stores.ROS2_KILTED)) as w:
        w.add_topic("/front/image_raw", "sensor_msgs/msg/Image")
        w.add_topic("/rear/image_raw/compressed", "sensor_msgs/msg/CompressedImage")
        w.write("/front/image_raw", T["sensor_msgs/msg/Image"](header=hdr, height=1, width=1, encoding="rgb8", is_bigendian=0, step=3, data=np.zeros(3, np.uint8)), 10**9)
        w.write("/rear/image_raw/compressed", T["sensor_msgs/msg/CompressedImage"](header=hdr, format="jpeg", data=np.zeros(4, np.uint8)), 10**9)
    with pytest.raises(BagError, match=r"two.mcap: several image topics .*/front/image_raw.*/rear/image_raw/compressed.*name one with image_topic"):
        load_or_build_index(path, cache_dir=tmp_path / "cache")


def test_error_too_few_frames(bags):
    with pytest.raises(BagError, match="2 images .* need at least 3"):
        BagSequenceDataset(_config(bags["short"]), "all")


def test_error_no_odometry_with_velocity_supervision(bags):
    with pytest.raises(BagError, match="velocity supervision needs odometry"):
        BagSequenceDataset(_config(bags["no_odom"], require_odometry=True), "all")


def test_dataloader_workers_give_the_same_batches(bags):
    ds = BagSequenceDataset(_config(bags["full"], cache_frames=False), "all")
    serial = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    parallel = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)))
    for key in ("tgt", "srcs", "K", "distance_m"):
        torch.testing.assert_close(parallel[key], serial[key])


def test_config_validation():
    with pytest.raises(ValueError, match="multiples of 32"):
        DataConfig(bags=("x",), height=100, width=96)
    with pytest.raises(ValueError, match="frame_offsets"):
        DataConfig(bags=("x",), frame_offsets=(0, 1))
    with pytest.raises(ValueError, match="val_fraction"):
        DataConfig(bags=("x",), val_fraction=1.0)


def test_pose_interpolation_by_hand():
    stamps = np.array([0, 10], dtype=np.int64)
    xyz = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    s = np.sqrt(0.5)
    quat = np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, s, s]])  # identity -> 90 deg about z
    T, valid = interpolate_poses(stamps, xyz, quat, np.array([5, 10, 11]), max_gap_ns=100)
    assert valid.tolist() == [True, True, False]
    np.testing.assert_allclose(T[0, :3, 3], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(T[0, :3, :3], quaternion_to_matrix(np.array([0, 0, np.sin(np.pi / 8), np.cos(np.pi / 8)])), atol=1e-12)
    np.testing.assert_allclose(T[1, :3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    _, valid_gap = interpolate_poses(stamps, xyz, quat, np.array([5]), max_gap_ns=5)
    assert not valid_gap[0]


def test_teacher_pseudo_depth_is_computed_once_and_cached(bags, tmp_path, monkeypatch):
    from depth_ros.inference import backend as backend_mod
    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros.inference.spec import ModelSpec
    from depth_ros_training import teacher as teacher_mod

    class MeanBrightness(torch.nn.Module):
        """A stand-in 'relative inverse depth' model: brighter = nearer (1 + mean channel)."""

        def forward(self, x):
            return 1.0 + x.mean(dim=1, keepdim=True) * 0.225 + 0.45

    spec = ModelSpec(output_kind="inverse_depth_relative", input_height=32, input_width=64, name="toy")
    onnx_path = export_onnx(MeanBrightness(), spec, tmp_path / "toy.onnx")
    cfg = _config(bags["db3"], cache_dir=str(tmp_path / "cache"))
    maps = teacher_mod.teacher_depth_for_bags(cfg, onnx_path)
    (arr,) = maps.values()
    frames = list(render_sequence(SYNTH.replace(frames=6)))
    assert arr.shape == (6, 1, 32, 96)
    # pseudo depth = 1 / (1 + grey): order-reversed brightness of the frame, at network size
    grey = frames[2].rgb.astype(np.float64).mean(axis=2) / 255.0
    want = 1.0 / (1.0 + grey)
    got = np.asarray(arr[2, 0])
    assert abs(got.mean() - want.mean()) < 0.01
    assert np.corrcoef(got[:, ::3].ravel()[:500], want[1::2, 1::2][:, ::3].ravel()[:500])[0, 1] > 0.8

    def fail(*a, **k):
        raise AssertionError("teacher run again although its output is cached")

    monkeypatch.setattr(backend_mod, "create_backend", fail)
    again = teacher_mod.teacher_depth_for_bags(cfg, onnx_path)
    np.testing.assert_array_equal(np.asarray(next(iter(again.values()))), np.asarray(arr))
    ds = BagSequenceDataset(cfg, "all", teacher_depth=again)
    assert ds[0]["teacher_depth"].shape == (1, 32, 96)


def _warp_error(sample) -> float:
    """Mean photometric L1 of the first source warped into the target with the ground-truth
    depth and the odometry pose, over pixels that land in view."""
    from depth_ros_training.losses import inverse_warp

    tgt = sample["tgt"][None]
    src = sample["srcs"][:1]
    depth = torch.nan_to_num(sample["gt_depth_m"][None], nan=1.0)
    res = inverse_warp(src, depth, sample["T_src_tgt_odom"][:1], sample["K"])
    ok = (res.valid * torch.isfinite(sample["gt_depth_m"][None]).float()).bool().expand_as(tgt)
    return float((res.warped - tgt).abs()[ok].mean())


def test_hflip_gives_a_geometrically_consistent_mirrored_sample(bags):
    from depth_ros_training.data.dataset import hflip_sample

    ds = BagSequenceDataset(_config(bags["full"], height=64, width=192, stride=2), "all")
    sample = ds[len(ds) // 2]
    flipped = hflip_sample(sample)
    torch.testing.assert_close(flipped["tgt"], sample["tgt"].flip(-1))
    assert flipped["K"][0, 2] == pytest.approx(191 - float(sample["K"][0, 2]))
    # the weaving trajectory moves sideways: the mirrored pose moves the other way
    assert float(flipped["T_src_tgt_odom"][0, 0, 3]) == pytest.approx(-float(sample["T_src_tgt_odom"][0, 0, 3]))
    torch.testing.assert_close(flipped["distance_m"], sample["distance_m"])
    assert not bool(sample["hflip"]) and bool(flipped["hflip"]) and not bool(hflip_sample(flipped)["hflip"])
    # ground-truth warping explains the mirrored sample as well as the original one, and far
    # better than the mirrored images with the original (unmirrored) pose
    err, err_flip = _warp_error(sample), _warp_error(flipped)
    wrong = dict(flipped, T_src_tgt_odom=sample["T_src_tgt_odom"], K=sample["K"])
    assert err_flip < 1.5 * err + 0.005
    assert _warp_error(wrong) > 1.5 * err_flip
    # the input sample is untouched (frames are cached and shared between epochs)
    torch.testing.assert_close(ds[len(ds) // 2]["tgt"], sample["tgt"])


def test_augmentation_only_in_training_and_jitter_shared_by_all_frames(bags):
    cfg = _config(bags["full"], hflip=True, color_jitter=0.3, val_fraction=0.3, segment_s=0.6)
    plain = BagSequenceDataset(dataclasses.replace(cfg, hflip=False, color_jitter=0.0), "train")
    train = BagSequenceDataset(cfg, "train")
    val = BagSequenceDataset(cfg, "val")
    torch.testing.assert_close(val[0]["tgt"], BagSequenceDataset(dataclasses.replace(cfg, hflip=False, color_jitter=0.0), "val")[0]["tgt"])
    torch.manual_seed(0)
    changed = [not torch.equal(train[i]["tgt"], plain[i]["tgt"]) for i in range(len(train))]
    assert all(changed)  # jitter always changes the pixels
    from depth_ros_training.data.dataset import color_jitter_sample

    s = plain[0]
    s = dict(s, srcs=torch.stack([s["tgt"], s["tgt"]]))  # sources identical to the target
    torch.manual_seed(1)
    j = color_jitter_sample(s, 0.4)
    # the same colour map for every frame: identical frames stay identical, and differ from before
    torch.testing.assert_close(j["srcs"][0], j["tgt"])
    torch.testing.assert_close(j["srcs"][1], j["tgt"])
    assert float((j["tgt"] - s["tgt"]).abs().mean()) > 0.01
    assert float(j["tgt"].min()) >= 0.0 and float(j["tgt"].max()) <= 1.0
    with pytest.raises(ValueError, match="color_jitter"):
        _config(bags["full"], color_jitter=1.5)


def test_hint_offsets_give_sweep_only_frames_with_their_poses(bags):
    from depth_ros_training.data.dataset import color_jitter_sample, hflip_sample

    plain = BagSequenceDataset(_config(bags["full"], stride=2), "all")
    ds = BagSequenceDataset(_config(bags["full"], stride=2, hint_offsets=(-2, 2)), "all")
    # the wider reach leaves fewer targets: frames 4 .. N-5 instead of 2 .. N-3
    assert [s.tgt for s in ds.samples] == list(range(4, SYNTH.frames - 4))
    assert [s.tgt for s in plain.samples] == list(range(2, SYNTH.frames - 2))
    assert all(s.srcs == (s.tgt - 2, s.tgt + 2) and s.hint_srcs == (s.tgt - 4, s.tgt + 4) for s in ds.samples)
    sample = ds[3]
    ref = ds.samples[3]
    assert sample["hint_srcs"].shape == (2, 3, 32, 96) and sample["T_hint_src_tgt_odom"].shape == (2, 4, 4)
    torch.testing.assert_close(sample["hint_srcs"][1], torch.from_numpy(ds.load_frame(0, ref.tgt + 4)))
    # T_hint (tgt -> tgt+4) is tgt -> tgt+2 (this sample's source 1) followed by tgt+2 -> tgt+4
    # (source 1 of the sample whose target is tgt+2): the hint frames' poses are odometry's
    T_a = sample["T_src_tgt_odom"][1].double()
    T_b = ds[[s.tgt for s in ds.samples].index(ref.tgt + 2)]["T_src_tgt_odom"][1].double()
    torch.testing.assert_close(sample["T_hint_src_tgt_odom"][1].double(), T_b @ T_a, rtol=1e-5, atol=1e-5)
    assert "hint_srcs" not in plain[0]
    # mirrored and jittered alike with the other frames
    flipped = hflip_sample(sample)
    torch.testing.assert_close(flipped["hint_srcs"], sample["hint_srcs"].flip(-1))
    S = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
    torch.testing.assert_close(flipped["T_hint_src_tgt_odom"], S @ sample["T_hint_src_tgt_odom"] @ S)
    s = dict(sample, srcs=sample["tgt"][None], hint_srcs=sample["tgt"][None])
    j = color_jitter_sample(s, 0.4)
    torch.testing.assert_close(j["hint_srcs"][0], j["tgt"])
    # errors: reach beyond the bag, no odometry, overlap with the sources
    BagSequenceDataset(_config(bags["db3"], stride=2), "all")  # 6 frames: enough for the sources
    with pytest.raises(BagError, match=r"6 images .* need at least 9 .* hint offsets \(-2, 2\)"):
        BagSequenceDataset(_config(bags["db3"], stride=2, hint_offsets=(-2, 2)), "all")
    with pytest.raises(BagError, match="hint_offsets need odometry"):
        BagSequenceDataset(_config(bags["no_odom"], hint_offsets=(2,)), "all")
    with pytest.raises(ValueError, match="hint_offsets must be distinct"):
        DataConfig(bags=("x",), hint_offsets=(1,))
