"""Bag reading and atomic writing: round trips in both storages, damaged files, topic choice."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_bag_support import T0_NS, camera_records, image_msg, tf_static_msg, write_bag

from depth_ros.bag.reader import (
    BagReader,
    TopicInfo,
    camera_namespace,
    looks_like_mask,
    select_camera_topics,
    select_image_topic,
    select_lidar_topic,
)
from depth_ros.bag.typestore import DEPTH_INFO_TYPE, find_msg_file, output_typestore
from depth_ros.bag.writer import BagWriter
from depth_ros.core.camera import CameraModel
from depth_ros.errors import BagError

CAMERA = CameraModel.from_intrinsics(8, 6, 5.0, 5.0, 3.5, 2.5)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_round_trip_read_back_with_rosbags(tmp_path: Path, suffix: str) -> None:
    from rosbags.highlevel import AnyReader

    path = write_bag(tmp_path / f"b{suffix}", camera_records(3, CAMERA))
    assert _leftovers(tmp_path) == [f"b{suffix}"]  # a bare storage file, no temp dir left
    with AnyReader([path]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        msgs = [(c.topic, t, reader.deserialize(d, c.msgtype)) for c, t, d in reader.messages()]
    assert topics == {"/cam/image_raw": "sensor_msgs/msg/Image", "/cam/camera_info": "sensor_msgs/msg/CameraInfo"}
    images = [m for topic, _, m in msgs if topic == "/cam/image_raw"]
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images] == [T0_NS + i * 10**8 for i in range(3)]
    rgb = np.asarray(images[0].data).reshape(6, 8, 3)
    assert rgb[2, 5].tolist() == [5, 2, 0]  # red = column, green = row
    infos = [m for topic, _, m in msgs if topic == "/cam/camera_info"]
    np.testing.assert_array_equal(np.asarray(infos[0].k).reshape(3, 3), CAMERA.K)


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_reader_reads_bare_files_and_directories(tmp_path: Path, suffix: str) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = output_typestore()
    bare = write_bag(tmp_path / f"bare{suffix}", camera_records(2, CAMERA))
    bag_dir = tmp_path / "dir_bag"
    plugin = StoragePlugin.MCAP if suffix == ".mcap" else StoragePlugin.SQLITE3
    with Writer(bag_dir, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        for i in range(2):
            rgb = np.full((6, 8, 3), i, np.uint8)
            writer.write(conn, T0_NS + i, ts.serialize_cdr(image_msg(T0_NS + i, rgb), "sensor_msgs/msg/Image"))
    for path, expected in ((bare, 2), (bag_dir, 2)):
        with BagReader(path) as reader:
            assert reader.topics["/cam/image_raw"] == TopicInfo("/cam/image_raw", "sensor_msgs/msg/Image", expected)
            msgs = [reader.deserialize(m) for m in reader.messages(["/cam/image_raw"])]
        assert [int(m.width) for m in msgs] == [8, 8]


def test_mcap_output_decodes_from_embedded_schemas_like_foxglove(tmp_path: Path) -> None:
    """mcap-ros2-support decodes from the schema text alone, as Foxglove does."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    ts = output_typestore()
    info = ts.types[DEPTH_INFO_TYPE](
        header=image_msg(T0_NS, np.zeros((6, 8, 3), np.uint8)).header, model="m", output_kind="depth_metric",
        backend="b", scale_source="model", scale=2.0, shift=0.0, scale_support=7, min_range_m=0.1,
        max_range_m=10.0, valid_fraction=0.5, inference_ms=3.0, latency_ms=4.0, frames_dropped=0,
        frames_received=0, frames_skipped=0,
    )
    path = write_bag(tmp_path / "o.mcap", camera_records(1, CAMERA) + [("/cam/depth/info", DEPTH_INFO_TYPE, info, T0_NS)])
    with path.open("rb") as f:
        decoded = {ch.topic: (schema, msg) for schema, ch, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()}
    schema, msg = decoded["/cam/depth/info"]
    assert (schema.name, schema.encoding) == (DEPTH_INFO_TYPE, "ros2msg")
    assert "MSG: std_msgs/Header" in schema.data.decode()
    assert (msg.scale, msg.scale_support, msg.output_kind, msg.header.frame_id) == (2.0, 7, "depth_metric", "camera_optical_frame")
    assert decoded["/cam/image_raw"][1].width == 8


def test_depth_info_registered_from_the_msg_file() -> None:
    text = find_msg_file("DepthInfo.msg").read_text()
    definition = output_typestore().generate_msgdef(DEPTH_INFO_TYPE, ros_version=2)[0]
    own_fields = [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]
    first_part = definition.split("=" * 80)[0].splitlines()
    assert [line.strip() for line in first_part if line.strip()] == own_fields


# -- atomic writing ------------------------------------------------------------------------
@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_mid_write_leaves_no_target_and_no_temp(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "out.mcap"
    records = camera_records(3, CAMERA)
    with pytest.raises(type(error)):
        with BagWriter(target, typestore=output_typestore()) as bag:
            for topic, msgtype, msg, log_ns in records[:3]:
                bag.add_topic(topic, msgtype)
                bag.write(topic, msg, log_ns)
            assert len(_leftovers(tmp_path)) == 1 and _leftovers(tmp_path)[0].startswith(".depth_ros-tmp-")
            raise error
    assert _leftovers(tmp_path) == []


def test_existing_target_refused_and_kept_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.mcap"
    target.write_bytes(b"precious")
    with pytest.raises(BagError, match="exists .*--overwrite"):
        BagWriter(target, typestore=output_typestore())
    # overwrite, but the run fails: the old file is untouched
    with pytest.raises(RuntimeError):
        with BagWriter(target, typestore=output_typestore(), overwrite=True) as bag:
            bag.add_topic("/cam/image_raw", "sensor_msgs/msg/Image")
            raise RuntimeError("fail")
    assert target.read_bytes() == b"precious" and _leftovers(tmp_path) == ["out.mcap"]
    with BagWriter(target, typestore=output_typestore(), overwrite=True) as bag:
        bag.add_topic("/cam/image_raw", "sensor_msgs/msg/Image")
        bag.write("/cam/image_raw", image_msg(T0_NS, np.zeros((6, 8, 3), np.uint8)), T0_NS)
    with BagReader(target) as reader:
        assert reader.topics["/cam/image_raw"].count == 1


@pytest.mark.parametrize(
    ("name", "match"),
    [("out.bag", "must end in"), ("missing_dir/out.mcap", "does not exist")],
)
def test_bad_output_paths(tmp_path: Path, name: str, match: str) -> None:
    with pytest.raises(BagError, match=match):
        BagWriter(tmp_path / name, typestore=output_typestore())


def test_write_to_undeclared_topic_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="not declared"):
        with BagWriter(tmp_path / "o.mcap", typestore=output_typestore()) as bag:
            bag.write("/nope", image_msg(T0_NS, np.zeros((6, 8, 3), np.uint8)), T0_NS)
    assert _leftovers(tmp_path) == []


# -- damaged input -------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_truncated_bag_is_one_bag_error_naming_the_file(tmp_path: Path, suffix: str, keep: float) -> None:
    good = write_bag(tmp_path / f"good{suffix}", camera_records(4, CAMERA))
    data = good.read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(data[: max(1, int(len(data) * keep))])
    with pytest.raises(BagError) as info:
        with BagReader(bad) as reader:
            for message in reader.messages(list(reader.topics)):
                reader.deserialize(message)
    text = str(info.value)
    assert str(bad) in text and "\n" not in text


def test_undecodable_record_is_a_bag_error(tmp_path: Path) -> None:
    path = tmp_path / "b.mcap"
    with BagWriter(path, typestore=output_typestore()) as bag:
        bag.add_topic("/cam/image_raw", "sensor_msgs/msg/Image")
        bag.write_raw("/cam/image_raw", b"\x00\x01\x00\x00\x05", T0_NS)  # CDR header + garbage
    with BagReader(path) as reader:
        (message,) = list(reader.messages(["/cam/image_raw"]))
        with pytest.raises(BagError, match="does not decode"):
            reader.deserialize(message)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "missing.mcap", "does not exist"),
        (lambda d: (d / "x.bag").write_bytes(b"x") and d / "x.bag", "not a rosbag2"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "without metadata.yaml"),
    ],
)
def test_not_a_bag(tmp_path: Path, make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BagError, match=match):
        BagReader(make(tmp_path)).open()


def test_missing_topic_lists_the_topics(tmp_path: Path) -> None:
    path = write_bag(tmp_path / "b.mcap", camera_records(1, CAMERA))
    with BagReader(path) as reader:
        with pytest.raises(BagError, match=r"no topic /x .*/cam/image_raw \(Image, 1 msgs\)"):
            list(reader.messages(["/x"]))


# -- topic choice --------------------------------------------------------------------------
def _topics(**spec: str) -> dict[str, TopicInfo]:
    out = {}
    for name, kind in spec.items():
        topic = "/" + name.replace("__", "/")
        out[topic] = TopicInfo(topic, f"sensor_msgs/msg/{kind}", 10)
    return out


def test_auto_choice_prefers_raw_over_its_transport_and_skips_depth() -> None:
    topics = _topics(
        camera__image_raw="Image", camera__image_raw__compressed="CompressedImage",
        camera__depth__ground_truth="Image", camera__camera_info="CameraInfo", lidar__points="PointCloud2",
    )
    assert select_camera_topics(topics) == ("/camera/image_raw", "/camera/camera_info")


def test_auto_choice_with_compressed_only() -> None:
    topics = _topics(front__image_raw__compressed="CompressedImage", front__camera_info="CameraInfo")
    assert select_camera_topics(topics) == ("/front/image_raw/compressed", "/front/camera_info")
    assert camera_namespace("/front/image_raw/compressed") == "/front"


def test_ambiguous_images_list_the_candidates() -> None:
    topics = _topics(left__image_raw="Image", right__image_raw="Image", left__camera_info="CameraInfo")
    with pytest.raises(BagError, match=r"several image topics .*/left/image_raw.*/right/image_raw.*--image-topic"):
        select_camera_topics(topics)
    assert select_camera_topics(topics, image_topic="/left/image_raw") == ("/left/image_raw", "/left/camera_info")


def test_camera_info_fallbacks_and_ambiguity() -> None:
    one = _topics(cam__image_raw="Image", calib__info="CameraInfo")
    assert select_camera_topics(one)[1] == "/calib/info"
    two = _topics(cam__image_raw="Image", a__info="CameraInfo", b__info="CameraInfo")
    with pytest.raises(BagError, match="several CameraInfo topics.*--camera-info-topic"):
        select_camera_topics(two)
    with pytest.raises(BagError, match="no CameraInfo topic"):
        select_camera_topics(_topics(cam__image_raw="Image"))


def test_named_topics_of_the_wrong_type_are_refused() -> None:
    topics = _topics(cam__image_raw="Image", cam__camera_info="CameraInfo", lidar__points="PointCloud2")
    with pytest.raises(BagError, match="image topic /cam/camera_info is sensor_msgs/msg/CameraInfo"):
        select_camera_topics(topics, image_topic="/cam/camera_info")
    with pytest.raises(BagError, match="camera_info topic /nope is not in the bag"):
        select_camera_topics(topics, camera_info_topic="/nope")
    with pytest.raises(BagError, match="LiDAR topic /cam/image_raw is sensor_msgs/msg/Image.*/lidar/points"):
        select_lidar_topic(topics, "/cam/image_raw")
    assert select_lidar_topic(topics, "/lidar/points") == "/lidar/points"


def test_empty_camera_info_topic_is_refused() -> None:
    topics = _topics(cam__image_raw="Image")
    topics["/cam/camera_info"] = TopicInfo("/cam/camera_info", "sensor_msgs/msg/CameraInfo", 0)
    with pytest.raises(BagError, match="has no messages"):
        select_camera_topics(topics)


def test_auto_choice_skips_mask_topics_like_depth_topics() -> None:
    # The renderer's topics with its object mask (16UC1) and a mono8 segmentation mask: without
    # the mask rule there would be three candidates and no automatic choice.
    topics = _topics(
        camera__image_raw="Image", camera__image_raw__compressed="CompressedImage", camera__camera_info="CameraInfo",
        camera__depth__ground_truth="Image", camera__object_mask="Image", seg__Mask_mono8="Image",
    )
    assert select_camera_topics(topics) == ("/camera/image_raw", "/camera/camera_info")
    assert looks_like_mask("/camera/object_mask") and looks_like_mask("/seg/Mask_mono8")
    assert not looks_like_mask("/camera/image_raw") and not looks_like_mask("/camera/depth/image")
    # a mask is still usable when named
    assert select_image_topic(topics, "/camera/object_mask") == "/camera/object_mask"
    only_mask = _topics(camera__object_mask="Image", camera__camera_info="CameraInfo")
    with pytest.raises(BagError, match=r"no colour image topic .*/camera/object_mask"):
        select_camera_topics(only_mask)


def test_messages_name_the_option_the_caller_uses() -> None:
    two = _topics(left__image_raw="Image", right__image_raw__compressed="CompressedImage")
    with pytest.raises(BagError, match=r"several image topics .*/left/image_raw.*/right/image_raw/compressed.*; name one with image_topic$"):
        select_image_topic(two, source="b.mcap", option="image_topic")
    infos = _topics(cam__image_raw="Image", a__info="CameraInfo", b__info="CameraInfo")
    with pytest.raises(BagError, match="name one with camera_info_topic$"):
        select_camera_topics(infos, camera_info_option="camera_info_topic")


def test_auto_choice_strips_every_transport_for_the_camera_info() -> None:
    topics = _topics(front__image_raw__zstd="CompressedImage", front__camera_info="CameraInfo", other__camera_info="CameraInfo")
    assert select_camera_topics(topics) == ("/front/image_raw/zstd", "/front/camera_info")


def test_messages_in_a_log_time_window(tmp_path: Path) -> None:
    path = write_bag(tmp_path / "w.mcap", camera_records(4, CAMERA))
    with BagReader(path) as reader:
        got = [(m.topic, m.log_time_ns) for m in reader.messages(["/cam/image_raw"], start_ns=T0_NS + 2 * 10**8, stop_ns=T0_NS + 2 * 10**8 + 1)]
        assert got == [("/cam/image_raw", T0_NS + 2 * 10**8)]
        tail = [m.log_time_ns for m in reader.messages(["/cam/image_raw", "/cam/camera_info"], start_ns=T0_NS + 3 * 10**8)]
        assert tail == [T0_NS + 3 * 10**8] * 2


def test_static_transforms_merge_namespaced_tf_static(tmp_path: Path) -> None:
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    records = camera_records(1, CAMERA) + [
        ("/tf_static", "tf2_msgs/msg/TFMessage", tf_static_msg(T0_NS, [("base_link", "mast", np.array([0.0, 0.0, 1.0]), identity)]), T0_NS),
        # a namespaced robot's static transforms, with tf1-style leading slashes
        ("/robot/tf_static", "tf2_msgs/msg/TFMessage", tf_static_msg(T0_NS, [("/mast", "/camera_optical_frame", np.array([0.5, 0.0, 0.0]), identity)]), T0_NS),
        ("/robot/not_tf_static", "tf2_msgs/msg/TFMessage", tf_static_msg(T0_NS, [("base_link", "decoy", np.zeros(3), identity)]), T0_NS),
    ]
    path = write_bag(tmp_path / "tf.mcap", records)
    with BagReader(path) as reader:
        tree = reader.static_transforms()
        np.testing.assert_allclose(tree.lookup("base_link", "camera_optical_frame")[:3, 3], [0.5, 0.0, 1.0])
        assert "decoy" not in tree.frames
        only = reader.static_transforms("/tf_static")
        assert only.frames == ["base_link", "mast"]
        with pytest.raises(BagError, match="no topic /nope"):
            reader.static_transforms("/nope")


def test_bag_without_embedded_definitions_is_read_with_the_standard_types(tmp_path: Path) -> None:
    # A sqlite3 bag as ROS 2 Humble records it: no message definitions stored.
    import sqlite3

    from rosbags.highlevel import AnyReader

    path = write_bag(tmp_path / "humble.db3", camera_records(2, CAMERA))
    con = sqlite3.connect(path)
    con.execute("DELETE FROM message_definitions")
    con.execute("UPDATE topics SET type_description_hash = ''")
    con.commit()
    con.close()
    with pytest.raises(Exception, match="no type definitions"):
        AnyReader([path]).open()  # what every reader without a default typestore met
    with BagReader(path) as reader:
        widths = [reader.deserialize(m).width for m in reader.messages(["/cam/image_raw"])]
    assert widths == [8, 8]


def test_temp_names_do_not_collide_with_user_files(tmp_path: Path) -> None:
    (tmp_path / "bag").mkdir()  # a user directory named like rosbags' inner name
    path = write_bag(tmp_path / "o.mcap", camera_records(1, CAMERA))
    assert path.is_file() and (tmp_path / "bag").is_dir() and sorted(os.listdir(tmp_path)) == ["bag", "o.mcap"]


def test_unwritable_directory_is_a_bag_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr("depth_ros.bag.writer.tempfile.mkdtemp", refuse)  # root ignores chmod
    with pytest.raises(BagError, match="cannot create a temporary file.*Permission denied"):
        BagWriter(tmp_path / "o.mcap", typestore=output_typestore()).open()
