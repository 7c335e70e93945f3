"""The depth node in its own process, on the real graph: outputs, layouts, bad inputs, bursts.

The model is a depth_metric ONNX graph that sees a fronto-parallel plane at 2 m everywhere,
so every output value is known by hand: depth 2.0 m, cloud z = 2, x = (u - cx) * 2 / fx.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from conftest import CX, CY, FX, FY, IMG_H, IMG_W, Graph, Harness, NodeProcess, image_msg, info_msg, node_argv, running_node

pytestmark = [pytest.mark.ros, pytest.mark.slow]

S = 1_000_000_000  # ns per second
POINTFIELD_FLOAT32 = 7
_stamp_counter = [1000 * S]


def h_next_stamp(_: object = None) -> int:
    """Stamps increase through the module (the node skips frames older than the last)."""
    _stamp_counter[0] += 2 * S
    return _stamp_counter[0]


@pytest.fixture(scope="module")
def node_proc(ros_env: dict[str, str], models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    log = tmp_path_factory.mktemp("depth_node") / "node.log"
    argv = node_argv("depth_ros.ros.depth_node",
                     {"model_path": models["plane"], "backend": "onnxruntime-cpu", "max_range_m": 10.0},
                     {"__ns": "/cam"})
    yield from running_node(argv, ros_env, log, "model 'plane_2m'")


@pytest.fixture(scope="module")
def harness(graph: Graph, node_proc: NodeProcess) -> Harness:
    harness = Harness(graph, node_proc, "/cam")
    harness.warm_up(h_next_stamp())
    return harness


@pytest.fixture
def h(harness: Harness) -> Harness:
    harness.clear()
    return harness


def test_plane_at_two_metres(h: Harness) -> None:
    t = h_next_stamp(h) + 123
    h.send(t)
    h.wait_depth(t)
    h.g.wait_until(lambda: t in h.stamps(h.cloud) and t in h.stamps(h.dinfo), 10.0, "cloud and camera_info")
    depth = h.depth[-1]
    assert (depth.header.frame_id, depth.encoding, depth.is_bigendian) == ("camera_optical_frame", "32FC1", 0)
    assert (depth.height, depth.width, depth.step) == (IMG_H, IMG_W, IMG_W * 4)
    d = np.frombuffer(bytes(depth.data), dtype="<f4").reshape(IMG_H, IMG_W)
    np.testing.assert_allclose(d, 2.0, atol=1e-6)

    cinfo = h.dinfo[-1]
    assert cinfo.header.frame_id == "camera_optical_frame"
    assert list(cinfo.k) == [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]

    # sensor_msgs_py.point_cloud2 layout: x, y, z float32 at 0, 4, 8, point_step 16, organized.
    cloud = h.cloud[-1]
    assert cloud.header.frame_id == "camera_optical_frame"
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, POINTFIELD_FLOAT32, 1), ("y", 4, POINTFIELD_FLOAT32, 1), ("z", 8, POINTFIELD_FLOAT32, 1)]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (IMG_H, IMG_W, 16, IMG_W * 16)
    assert cloud.is_dense is False and cloud.is_bigendian is False
    pts = np.frombuffer(bytes(cloud.data), dtype=np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3,
                                                            "offsets": [0, 4, 8], "itemsize": 16})).reshape(IMG_H, IMG_W)
    u, v = 10, 30
    assert pts["z"][v, u] == pytest.approx(2.0)
    assert pts["x"][v, u] == pytest.approx((u - CX) * 2.0 / FX, abs=1e-5)
    assert pts["y"][v, u] == pytest.approx((v - CY) * 2.0 / FY, abs=1e-5)

    meta = h.meta[-1]
    assert (meta.model, meta.output_kind, meta.backend, meta.scale_source) == (
        "plane_2m", "depth_metric", "onnxruntime-cpu", "model")
    assert meta.scale == pytest.approx(1.0) and meta.valid_fraction == pytest.approx(1.0)
    assert meta.max_range_m == pytest.approx(10.0)
    assert meta.inference_ms > 0 and meta.latency_ms >= meta.inference_ms


def test_camera_info_after_image_still_pairs(h: Harness) -> None:
    t = h_next_stamp(h)
    h.send(t, info_first=False)
    h.wait_depth(t)


def test_row_padding_is_honoured(h: Harness) -> None:
    from depth_ros.ros.messages import to_byte_array

    t = h_next_stamp(h)
    rgb = np.full((IMG_H, IMG_W, 3), 100, np.uint8)
    padded = np.zeros((IMG_H, IMG_W * 3 + 8), np.uint8)
    padded[:, : IMG_W * 3] = rgb.reshape(IMG_H, -1)
    h.send(t, image=image_msg(t, step=IMG_W * 3 + 8, data=to_byte_array(padded.reshape(-1))))
    h.wait_depth(t)
    assert h.depth[-1].width == IMG_W


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_encoding", "yuv422"),
        ("step_too_small", "step"),
        ("data_too_short", "data"),
        ("size_mismatch", "camera_info is"),
        ("k_zeros", "K is all zeros"),
        ("empty", "skipped"),
        ("huge_claim", "skipped"),
    ],
)
def test_bad_input_is_skipped_with_a_warning(h: Harness, case: str, expected: str) -> None:
    from depth_ros.ros.messages import to_byte_array

    t = h_next_stamp(h)
    image, info = image_msg(t), info_msg(t)
    if case == "unknown_encoding":
        image.encoding = "yuv422"
    elif case == "step_too_small":
        image.step = IMG_W * 3 - 3
    elif case == "data_too_short":
        image.data = to_byte_array(np.zeros(100, np.uint8))
    elif case == "size_mismatch":
        info = info_msg(t, width=IMG_W * 2, height=IMG_H * 2)
    elif case == "k_zeros":
        info = info_msg(t, k=[0.0] * 9)
    elif case == "empty":
        image.height, image.width, image.step = 0, 0, 0
        image.data = to_byte_array(np.zeros(0, np.uint8))
    elif case == "huge_claim":
        image.height, image.width, image.step = 100_000, 100_000, 300_000
        image.data = to_byte_array(np.zeros(10, np.uint8))
    offset = len(h.proc.log())
    h.send(t, image=image, info=info)
    log = h.proc.wait_log(f"frame {t * 1e-9:.6f} s skipped", 20.0, after=offset)
    assert expected in log[offset:]
    # A good frame afterwards is processed; the bad one never produced output.
    t2 = t + S // 10
    h.send(t2)
    h.wait_depth(t2)
    assert t not in h.stamps(h.depth) + h.stamps(h.cloud) + h.stamps(h.meta)
    assert h.proc.alive()


def test_out_of_order_stamp_is_skipped(h: Harness) -> None:
    t = h_next_stamp(h)
    h.send(t)
    h.wait_depth(t)
    offset = len(h.proc.log())
    old = t - S // 2  # half a second back: out of order, not a restart
    h.send(old)
    h.proc.wait_log("out of order", 10.0, after=offset)
    t2 = t + S // 10
    h.send(t2)
    h.wait_depth(t2)
    assert old not in h.stamps(h.depth)


def test_missing_camera_info_is_warned(h: Harness) -> None:
    """Images without camera_info are dropped, with a (throttled) warning naming the topic."""
    import time

    offset = len(h.proc.log())
    first = t = h_next_stamp()
    deadline = time.monotonic() + 10.0
    while "no camera_info on /cam/camera_info" not in h.proc.log()[offset:]:
        assert time.monotonic() < deadline, "no warning about the missing camera_info"
        h.image_pub.publish(image_msg(t))  # each replaces the previous unpaired image
        t += S // 30
        h.g.spin_for(0.1)
    assert h.stamps(h.depth) == [] and h.proc.alive()
    assert first < t


def test_nan_output_is_skipped(ros_env: dict[str, str], models: dict[str, Path], graph: Graph, tmp_path: Path) -> None:
    proc = NodeProcess(node_argv("depth_ros.ros.depth_node", {"model_path": models["nan"], "backend": "onnxruntime-cpu"},
                                 {"__ns": "/nan", "__node": "nan_depth_node"}), ros_env, tmp_path / "nan.log")
    try:
        proc.wait_log("model 'nan_depth'", 60.0)
        hn = Harness(graph, proc, "/nan")
        t = 5 * S
        while "skipped" not in proc.log():  # warm-up (see Harness.warm_up), until one is handled
            t += S // 10
            hn.send(t)
            graph.spin_for(0.2)
            assert t < 200 * S, "the NaN model's frames were never handled"
        log = proc.wait_log("skipped", 1.0)
        assert "non-finite" in log or "NaN" in log
        graph.spin_for(0.3)
        assert hn.depth == [] and hn.meta == [] and proc.alive()
    finally:
        assert proc.stop() == 0


def test_burst_at_100hz_keeps_newest(h: Harness) -> None:
    """100 frames at 100 Hz: the node stays up, outputs stay in stamp order, the last frame
    comes out (the newest is always kept), and the node accounts for every frame it received:
    published, dropped for a newer one, or skipped. Frames a best-effort reader never got
    (the DDS reader keeps the last 5) cannot be counted by the node and are not expected to be."""
    import time

    h.clear()
    t_before = h_next_stamp(h)
    h.send(t_before)
    h.wait_depth(t_before)
    before = h.meta[-1]
    h.clear()
    t0 = h_next_stamp(h)
    stamps = [t0 + i * S // 100 for i in range(100)]
    start = time.monotonic()
    for i, t in enumerate(stamps):
        h.send(t)
        h.g.spin_for(max(0.0, start + (i + 1) / 100 - time.monotonic()))
    h.wait_depth(stamps[-1], timeout_s=20.0)
    out = h.stamps(h.depth)
    assert out == sorted(out) and set(out) <= set(stamps)
    assert h.proc.alive()
    assert h.stamps(h.meta) == out, "every depth image has its DepthInfo"
    last = h.meta[-1]
    received = last.frames_received - before.frames_received
    dropped = last.frames_dropped - before.frames_dropped
    skipped = last.frames_skipped - before.frames_skipped
    assert 0 < received <= len(stamps) and skipped == 0
    # An image an earlier test left waiting for its camera_info was received before the
    # baseline and is counted as dropped during the burst: at most one such image.
    assert len(out) + dropped - 1 <= received <= len(out) + dropped, (received, len(out), dropped)


def _set(h: Harness, **values: Any) -> list[Any]:
    """Set parameters of /cam/depth_node over its parameter services; the results."""
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(h.g.node, "/cam/depth_node")
    assert client.wait_for_services(timeout_sec=15.0), "parameter services of the depth node not found"
    future = client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
    h.g.wait_until(future.done, 15.0, "set_parameters response")
    return list(future.result().results)


def test_parameters_are_described_with_ranges(h: Harness) -> None:
    from rcl_interfaces.msg import ParameterType
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(h.g.node, "/cam/depth_node")
    assert client.wait_for_services(timeout_sec=15.0)
    future = client.describe_parameters(["max_range_m", "cloud_decimation", "model_path", "scale_policy"])
    h.g.wait_until(future.done, 15.0, "describe_parameters")
    d = {p.name: p for p in future.result().descriptors}
    assert d["max_range_m"].type == ParameterType.PARAMETER_DOUBLE and not d["max_range_m"].read_only
    assert (d["max_range_m"].floating_point_range[0].from_value, d["max_range_m"].floating_point_range[0].to_value) == (0.0, 1000.0)
    assert (d["cloud_decimation"].integer_range[0].from_value, d["cloud_decimation"].integer_range[0].to_value) == (1, 16)
    assert d["model_path"].read_only and "onnx" in d["model_path"].description
    assert "sparse_alignment" in d["scale_policy"].additional_constraints


def test_runtime_parameters_validated(h: Harness) -> None:
    # Accepted: the next frame uses the new range and reports it.
    (ok,) = _set(h, max_range_m=1.5)
    assert ok.successful, ok.reason
    t = h_next_stamp()
    h.send(t)
    h.wait_depth(t)
    assert h.meta[-1].max_range_m == pytest.approx(1.5)
    d = np.frombuffer(bytes(h.depth[-1].data), dtype="<f4")
    assert np.isnan(d).all()  # the 2 m plane is beyond 1.5 m: every pixel invalid
    assert h.meta[-1].valid_fraction == 0.0
    # Rejected with a reason naming the parameter; the old value stays in force.
    (bad,) = _set(h, min_range_m=3.0)
    assert not bad.successful and "min_range_m" in bad.reason
    (bad,) = _set(h, cloud_decimation=0)
    assert not bad.successful and "cloud_decimation" in bad.reason
    (bad,) = _set(h, scale_policy="guess")
    assert not bad.successful and "scale_policy" in bad.reason
    (ro,) = _set(h, model_path="/tmp/other.onnx")
    assert not ro.successful and "read" in ro.reason.lower()
    results = _set(h, max_range_m=10.0, depth_encoding="16UC1")
    assert all(r.successful for r in results), [r.reason for r in results]
    t = h_next_stamp()
    h.send(t)
    h.wait_depth(t)
    img = h.depth[-1]
    assert (img.encoding, img.step) == ("16UC1", IMG_W * 2)
    assert (np.frombuffer(bytes(img.data), dtype="<u2") == 2000).all()  # 2 m in mm
    (ok,) = _set(h, depth_encoding="32FC1")
    assert ok.successful


def test_compressed_input(ros_env: dict[str, str], models: dict[str, Path], graph: Graph, tmp_path: Path) -> None:
    """image_transport: compressed subscribes 'image/compressed' (jpeg) and gives the same outputs."""
    import io
    import time

    from PIL import Image as PILImage
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from depth_ros.ros import qos
    from depth_ros.ros.messages import to_byte_array

    proc = NodeProcess(node_argv("depth_ros.ros.depth_node",
                                 {"model_path": models["plane"], "backend": "onnxruntime-cpu", "image_transport": "compressed"},
                                 {"__ns": "/jpeg", "image/compressed": "/jpeg/camera/image_raw/compressed"}),
                       ros_env, tmp_path / "jpeg.log")
    try:
        proc.wait_log("model 'plane_2m'", 60.0)
        pub = graph.node.create_publisher(CompressedImage, "/jpeg/camera/image_raw/compressed", qos.input_qos())
        info_pub = graph.node.create_publisher(CameraInfo, "/jpeg/camera_info", qos.input_qos())
        depth = graph.subscribe(Image, "/jpeg/depth/image", 10)
        graph.wait_until(lambda: pub.get_subscription_count() and info_pub.get_subscription_count()
                         and graph.subscriptions["/jpeg/depth/image"].get_publisher_count(), 30.0, "matching")
        buf = io.BytesIO()
        PILImage.fromarray(np.full((IMG_H, IMG_W, 3), 90, np.uint8)).save(buf, format="JPEG")
        t = 7 * S
        deadline = time.monotonic() + 30.0
        while not depth:
            assert time.monotonic() < deadline, "no depth from compressed input"
            t += S // 10
            msg = CompressedImage(format="jpeg", data=to_byte_array(np.frombuffer(buf.getvalue(), np.uint8)))
            msg.header = image_msg(t).header
            info_pub.publish(info_msg(t))
            pub.publish(msg)
            graph.spin_for(0.2)
        d = depth[-1]
        assert (d.width, d.height, d.encoding, d.header.frame_id) == (IMG_W, IMG_H, "32FC1", "camera_optical_frame")
        np.testing.assert_allclose(np.frombuffer(bytes(d.data), "<f4"), 2.0)
    finally:
        assert proc.stop() == 0
