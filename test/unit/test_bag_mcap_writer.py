"""The streaming MCAP writer against two independent readers (mcap, rosbags), and zero-copy CDR."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from test_bag_support import T0_NS, cloud_msg, compressed_msg, image_msg

from depth_ros.bag.mcap_writer import McapStreamWriter
from depth_ros.bag.reader import BagReader
from depth_ros.bag.typestore import output_typestore
from depth_ros.bag.writer import BagWriter, serialize_parts


def _write(path: Path, chunk_size: int, compression: str, n: int = 50) -> list[tuple[str, int, bytes]]:
    """n messages on two channels with growing sizes; returns (topic, log time, payload) written."""
    rng = np.random.default_rng(0)
    written = []
    with path.open("wb") as f:
        w = McapStreamWriter(f, chunk_size=chunk_size, compression=compression)
        sid = w.add_schema("std_msgs/msg/String", "ros2msg", b"string data")
        a = w.add_channel("/a", sid, metadata={"offered_qos_profiles": ""})
        b = w.add_channel("/b", sid)
        for i in range(n):
            topic, channel = ("/a", a) if i % 3 else ("/b", b)
            payload = rng.integers(0, 256, 10 + 37 * i, dtype=np.uint8).tobytes()
            parts = [payload[:5], memoryview(payload)[5:]]  # split buffers are written contiguously
            w.add_message(channel, T0_NS + 1000 * i, parts)
            written.append((topic, T0_NS + 1000 * i, payload))
        w.finish()
    return written


@pytest.mark.parametrize(("chunk_size", "compression"), [(1 << 20, ""), (300, ""), (300, "zstd")])
def test_mcap_library_reads_records_summary_and_indexes(tmp_path: Path, chunk_size: int, compression: str) -> None:
    from mcap.reader import NonSeekingReader, SeekingReader

    path = tmp_path / "w.mcap"
    written = _write(path, chunk_size, compression)
    with path.open("rb") as f:
        # sequential pass over every record, checking structure and the footer
        streamed = [(ch.topic, m.log_time, m.data) for _, ch, m in NonSeekingReader(f, validate_crcs=True).iter_messages()]
    assert streamed == written
    with path.open("rb") as f:
        reader = SeekingReader(f, validate_crcs=True)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        stats = summary.statistics
        assert (stats.message_count, stats.schema_count, stats.channel_count) == (50, 1, 2)
        assert stats.channel_message_counts == {1: 33, 2: 17}
        assert (stats.message_start_time, stats.message_end_time) == (T0_NS, T0_NS + 49_000)
        assert stats.chunk_count == len(summary.chunk_indexes) and (stats.chunk_count > 1) == (chunk_size == 300)
        # indexed access by topic and time range goes through chunk indexes
        got = [(m.log_time, m.data) for _, _, m in reader.iter_messages(topics=["/b"], starting_at=T0_NS + 10_000)]
    assert got == [(t, d) for topic, t, d in written if topic == "/b" and t >= T0_NS + 10_000]


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_rosbags_reads_what_bagwriter_writes(tmp_path: Path, compression: str | None) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    path = tmp_path / "o.mcap"
    with BagWriter(path, typestore=output_typestore(), compression=compression) as bag:
        bag.add_topic("/cam/image_raw", "sensor_msgs/msg/Image")
        bag.add_topic("/points", "sensor_msgs/msg/PointCloud2")
        for i in range(3):
            bag.write("/cam/image_raw", image_msg(T0_NS + i, rgb), T0_NS + i)
            bag.write("/points", cloud_msg(T0_NS + i, np.full((6000, 3), i, np.float32), "lidar"), T0_NS + i)
    with BagReader(path) as reader:
        assert {t: i.count for t, i in reader.topics.items()} == {"/cam/image_raw": 3, "/points": 3}
        msgs = [(m.topic, reader.deserialize(m)) for m in reader.messages(["/cam/image_raw", "/points"])]
    image = next(m for topic, m in msgs if topic == "/cam/image_raw")
    np.testing.assert_array_equal(np.asarray(image.data).reshape(120, 160, 3), rgb)
    clouds = [m for topic, m in msgs if topic == "/points"]
    assert [np.asarray(c.data).view("<f4")[0] for c in clouds] == [0.0, 1.0, 2.0]
    assert all(c.is_dense for c in clouds)  # the field after data survives the split


def test_serialize_parts_equals_serialize_cdr() -> None:
    ts = output_typestore()
    rgb = np.random.default_rng(2).integers(0, 256, (150, 201, 3), dtype=np.uint8)  # odd sizes
    cases = [
        (image_msg(T0_NS, rgb), "sensor_msgs/msg/Image", 4),
        (image_msg(T0_NS, rgb[:4, :4]), "sensor_msgs/msg/Image", 1),  # small: one part
        (cloud_msg(T0_NS, rgb.reshape(-1, 3).astype(np.float32)[:9001], "frame"), "sensor_msgs/msg/PointCloud2", 4),
        (compressed_msg(T0_NS, rgb, "png"), "sensor_msgs/msg/CompressedImage", 4),
    ]
    for msg, msgtype, n_parts in cases:
        parts = serialize_parts(ts, msg, msgtype)
        assert len(parts) == n_parts
        assert b"".join(bytes(p) for p in parts) == bytes(ts.serialize_cdr(msg, msgtype))


def test_unknown_ids_are_refused() -> None:
    w = McapStreamWriter(io.BytesIO())
    with pytest.raises(ValueError, match="schema"):
        w.add_channel("/x", 1)
    sid = w.add_schema("a", "ros2msg", b"")
    w.add_channel("/x", sid)
    with pytest.raises(ValueError, match="channel"):
        w.add_message(2, 0, b"")
    with pytest.raises(ValueError, match="compression"):
        McapStreamWriter(io.BytesIO(), compression="lz4")
