"""Synthetic bags: round trip through rosbags in both storages, jpeg, atomic writes, CLI."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from depth_ros.bag.tf import quaternion_to_matrix
from depth_ros.cli import main
from depth_ros.errors import BagError, InputError
from depth_ros.synthetic import SynthConfig, render_sequence, write_bag
from depth_ros.synthetic.bagio import matrix_to_quaternion, output_path
from depth_ros.synthetic.render import Renderer
from depth_ros.synthetic.scene import T_BASE_CAM, T_BASE_LIDAR
from depth_ros.synthetic.trajectory import rotation_from_rpy

CFG = SynthConfig(width=64, height=48, frames=4, texture_size_px=64, lidar_beams=4, lidar_azimuth_samples=32, moving_objects=1)


def _read(path: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for conn, stamp, raw in reader.messages():
            out.setdefault(conn.topic, []).append((stamp, reader.deserialize(raw, conn.msgtype)))
    out["_types"] = types  # type: ignore[assignment]
    return out


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_bag_round_trip(tmp_path: Path, suffix: str) -> None:
    path = write_bag(CFG, tmp_path / f"synth{suffix}")
    assert path == tmp_path / f"synth{suffix}" and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left
    bag = _read(path)
    assert bag["_types"] == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/camera/depth/ground_truth": "sensor_msgs/msg/Image",
        "/camera/object_mask": "sensor_msgs/msg/Image",  # on by default
        "/odom": "nav_msgs/msg/Odometry",
        "/lidar/points": "sensor_msgs/msg/PointCloud2",
        "/tf_static": "tf2_msgs/msg/TFMessage",
    }
    frames = list(render_sequence(CFG))
    stamps = [f.stamp_ns for f in frames]
    for topic in ("/camera/image_raw", "/camera/camera_info", "/camera/depth/ground_truth", "/odom", "/lidar/points"):
        assert [s for s, _ in bag[topic]] == stamps, topic
        assert [_stamp(m) for _, m in bag[topic]] == stamps, topic
    for f, (_, img), (_, info), (_, depth), (_, odom), (_, cloud) in zip(
        frames, bag["/camera/image_raw"], bag["/camera/camera_info"], bag["/camera/depth/ground_truth"], bag["/odom"], bag["/lidar/points"]
    ):
        assert (img.header.frame_id, img.encoding, img.height, img.width, img.step) == ("camera_optical_frame", "rgb8", 48, 64, 192)
        np.testing.assert_array_equal(np.asarray(img.data).reshape(48, 64, 3), f.rgb)
        assert (depth.header.frame_id, depth.encoding, depth.step, depth.is_bigendian) == ("camera_optical_frame", "32FC1", 256, 0)
        np.testing.assert_array_equal(np.frombuffer(bytes(depth.data), "<f4").reshape(48, 64), f.depth_m)
        assert info.header.frame_id == "camera_optical_frame" and (info.width, info.height) == (64, 48)
        np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), f.camera.K)
        np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4)[:, :3], f.camera.K)
        np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4)[:, 3], 0.0)
        np.testing.assert_array_equal(np.asarray(info.r), np.eye(3).reshape(-1))
        assert info.distortion_model == "plumb_bob" and np.all(np.asarray(info.d) == 0)
        assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
        p, q = odom.pose.pose.position, odom.pose.pose.orientation
        np.testing.assert_allclose([p.x, p.y, p.z], f.T_world_base[:3, 3], atol=1e-12)
        np.testing.assert_allclose(quaternion_to_matrix(q.x, q.y, q.z, q.w), f.T_world_base[:3, :3], atol=1e-12)
        tw = odom.twist.twist
        np.testing.assert_allclose([tw.linear.x, tw.linear.y, tw.linear.z], f.v_base_mps, atol=1e-12)
        np.testing.assert_allclose([tw.angular.x, tw.angular.y, tw.angular.z], f.omega_base_radps, atol=1e-12)
        cov = np.asarray(odom.twist.covariance).reshape(6, 6)
        assert np.all(np.diag(cov) > 0) and np.all(cov == np.diag(np.diag(cov)))
        assert cloud.header.frame_id == "lidar_link" and cloud.width == 4 * 32 and cloud.height == 1
        assert [(fl.name, fl.offset, fl.datatype) for fl in cloud.fields] == [("x", 0, 7), ("y", 4, 7), ("z", 8, 7)]
        xyz = np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 3)
        np.testing.assert_array_equal(xyz, f.lidar_points_lidar)
    (stamp, tf), = bag["/tf_static"]
    assert stamp == stamps[0]
    got = {}
    for ts in tf.transforms:
        T = np.eye(4)
        r, t = ts.transform.rotation, ts.transform.translation
        T[:3, :3] = quaternion_to_matrix(r.x, r.y, r.z, r.w)
        T[:3, 3] = (t.x, t.y, t.z)
        got[(ts.header.frame_id, ts.child_frame_id)] = T
    assert set(got) == {("base_link", "camera_optical_frame"), ("base_link", "lidar_link")}
    np.testing.assert_allclose(got[("base_link", "camera_optical_frame")], T_BASE_CAM, atol=1e-12)
    np.testing.assert_allclose(got[("base_link", "lidar_link")], T_BASE_LIDAR, atol=1e-12)


def test_mcap_is_self_describing_for_foxglove(tmp_path: Path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path = write_bag(CFG.replace(frames=2), tmp_path / "s.mcap")
    with open(path, "rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert summary is not None and summary.statistics.message_count == 2 * 6 + 1  # 6 per frame with the object mask
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        decoded = {ch.topic: msg for _, ch, _, msg in reader.iter_decoded_messages(topics=["/odom", "/camera/camera_info"])}
    assert decoded["/odom"].child_frame_id == "base_link"
    assert list(decoded["/camera/camera_info"].k)[0] == CFG.camera.fx


def test_jpeg_option(tmp_path: Path) -> None:
    from PIL import Image

    cfg = CFG.replace(jpeg=True, jpeg_quality=95, frames=2)
    bag = _read(write_bag(cfg, tmp_path / "j.mcap"))
    assert bag["_types"]["/camera/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
    frames = list(render_sequence(cfg))
    for f, (stamp, msg) in zip(frames, bag["/camera/image_raw/compressed"]):
        assert stamp == f.stamp_ns == _stamp(msg) and msg.header.frame_id == "camera_optical_frame"
        assert "jpeg" in msg.format
        data = bytes(msg.data)
        assert data[:2] == b"\xff\xd8"
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert rgb.shape == f.rgb.shape
        assert np.mean(np.abs(rgb.astype(int) - f.rgb.astype(int))) < 8  # lossy but the same picture
    assert "/camera/image_raw/compressed" not in _read(write_bag(CFG.replace(frames=1), tmp_path / "n.mcap"))["_types"]


def test_object_mask_option(tmp_path: Path) -> None:
    cfg = CFG.replace(object_mask=True, frames=3)
    path = write_bag(cfg, tmp_path / "m.mcap")
    bag = _read(path)
    assert bag["_types"]["/camera/object_mask"] == "sensor_msgs/msg/Image"
    frames = list(render_sequence(cfg))
    assert [s for s, _ in bag["/camera/object_mask"]] == [s for s, _ in bag["/camera/image_raw"]] == [f.stamp_ns for f in frames]
    for f, (_, msg), (_, img) in zip(frames, bag["/camera/object_mask"], bag["/camera/image_raw"]):
        assert _stamp(msg) == _stamp(img) == f.stamp_ns
        assert (msg.header.frame_id, msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == (
            img.header.frame_id, "16UC1", img.height, img.width, 2 * img.width, 0
        )
        ids = np.frombuffer(bytes(msg.data), "<u2").reshape(48, 64)
        np.testing.assert_array_equal(ids, f.instance_id)
    assert any(np.asarray(m.data).any() for _, m in bag["/camera/object_mask"]), "no frame sees a box"
    # deterministic: the same config writes the same bytes; without the option nothing changes
    assert write_bag(cfg, tmp_path / "m2.mcap").read_bytes() == path.read_bytes()
    plain = write_bag(CFG.replace(frames=3, object_mask=False), tmp_path / "p.mcap")
    assert "/camera/object_mask" not in _read(plain)["_types"]
    assert write_bag(CFG.replace(frames=3, object_mask=False), tmp_path / "p2.mcap").read_bytes() == plain.read_bytes()
    with pytest.raises(InputError, match="object_mask=false"):
        write_bag(CFG.replace(object_mask=False), tmp_path / "n.mcap", topics=["/camera/object_mask"])


def test_object_mask_is_on_by_default(tmp_path: Path) -> None:
    """A default synthetic bag carries the mask (boundary recall out of the box), and the
    camera chosen automatically is still the colour image, not the mask."""
    from depth_ros.bag.reader import BagReader, select_camera_topics

    assert SynthConfig().object_mask is True
    path = write_bag(CFG.replace(frames=2), tmp_path / "d.mcap")
    with BagReader(path) as reader:
        assert reader.topics["/camera/object_mask"].count == 2
        assert select_camera_topics(reader.topics, None, None, source=str(path)) == ("/camera/image_raw", "/camera/camera_info")


def test_topic_selection(tmp_path: Path) -> None:
    cfg = CFG.replace(jpeg=True, frames=2)
    bag = _read(write_bag(cfg, tmp_path / "t.mcap", topics=["/camera/image_raw/compressed", "/odom"]))
    assert set(bag["_types"]) == {"/camera/image_raw/compressed", "/odom"}
    with pytest.raises(InputError, match="unknown synthetic topic.*/nope"):
        write_bag(cfg, tmp_path / "u.mcap", topics=["/nope"])
    with pytest.raises(InputError, match="disabled by the config"):
        write_bag(CFG, tmp_path / "v.mcap", topics=["/camera/image_raw/compressed"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.mcap"]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = Renderer.render

    def failing(self, index):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(self, index)

    monkeypatch.setattr(Renderer, "render", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_bag(CFG, tmp_path / "x.mcap")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "x.db3"
    target.write_bytes(b"precious")
    with pytest.raises(BagError, match="exists"):
        write_bag(CFG, target)
    assert target.read_bytes() == b"precious"
    write_bag(CFG.replace(frames=1), target, overwrite=True)
    assert len(_read(target)["/odom"]) == 1


def test_output_path_mapping() -> None:
    assert output_path(CFG, "a/b") == Path("a/b.mcap")
    assert output_path(CFG.replace(storage="sqlite3"), "a/b") == Path("a/b.db3")
    assert output_path(CFG, "a/b.db3") == Path("a/b.db3")
    with pytest.raises(InputError, match="does not match storage=mcap"):
        output_path(CFG.replace(storage="mcap"), "a/b.db3")
    with pytest.raises(InputError, match=r"\.bag"):
        output_path(CFG, "a/b.bag")


def test_quaternion_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        R = rotation_from_rpy(*rng.uniform(-3.1, 3.1, 3))
        q = matrix_to_quaternion(R)
        assert q[3] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
        np.testing.assert_allclose(quaternion_to_matrix(*q), R, atol=1e-12)
    for R in (np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), T_BASE_CAM[:3, :3]):
        np.testing.assert_allclose(quaternion_to_matrix(*matrix_to_quaternion(R)), R, atol=1e-12)


# -- CLI -----------------------------------------------------------------------------------


def test_cli_writes_bag_and_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "s.yaml"
    cfg_file.write_text("width: 64\nheight: 48\ntexture_size_px: 64\nframes: 9\n")
    out = tmp_path / "cli.mcap"
    rc = main(["synth", "-o", str(out), "--config", str(cfg_file), "--frames", "3", "--jpeg", "true", "--lidar-beams", "0"])
    assert rc == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "3 frames" in printed[0] and str(out) in printed[0]
    assert "/camera/image_raw/compressed (3)" in printed[0]
    bag = _read(out)
    assert len(bag["/camera/image_raw"]) == 3 and "/lidar/points" not in bag["_types"]
    assert bag["/camera/image_raw"][0][1].width == 64


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--frames", "-1"], ["frames", "[1,"]),
        (["--width", "abc"], ["width", "expected int", "abc"]),
        (["--scene", "forest"], ["scene", "forest"]),
        (["--jpeg", "maybe"], ["jpeg", "expected bool"]),
    ],
)
def test_cli_bad_value_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]) -> None:
    out = tmp_path / "bad.mcap"
    rc = main(["synth", "-o", str(out), *argv])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("depth-ros synth: error:")
    for w in words:
        assert w in err[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["synth", "-o", str(tmp_path / "o.mcap"), "--config", str(tmp_path / "nope.yaml")])
    assert rc == 1
    assert "nope.yaml" in capsys.readouterr().err
