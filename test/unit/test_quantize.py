"""INT8 quantisation of exported depth models (depth_ros/inference/quantize.py): calibration
frames through the runtime's preprocess, a QDQ graph with int8 weights, the spec carried along,
outputs close to float32, and one-line refusals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_ros.errors import BagError, ModelError
from depth_ros.inference.spec import ModelSpec
from depth_ros.synthetic import SynthConfig, write_bag

from tiny_nets import export_sigmoid_convnet

SPEC = ModelSpec(output_kind="disparity_sigmoid", input_height=32, input_width=48, min_depth_m=0.5, max_depth_m=20.0, name="small")
SYNTH = SynthConfig(width=96, height=64, frames=12, texture_size_px=64, lidar_beams=0, seed=5)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("quant")
    model = export_sigmoid_convnet(d / "small.onnx", SPEC, channels=(16, 16))
    pose = d / "pose.onnx"
    pose.write_bytes(model.read_bytes())
    ModelSpec(output_kind="pose_6dof", input_height=32, input_width=48, input_channels=6, name="pose").to_yaml(d / "pose.onnx.yaml")
    return {"model": model, "pose": pose, "bag": write_bag(SYNTH, d / "s.mcap"), "dir": d}


def test_calibration_inputs_are_the_runtime_preprocess(files):
    from depth_ros.bag.reader import BagReader
    from depth_ros import msgconv
    from depth_ros.core.preprocess import preprocess
    from depth_ros.inference.quantize import QuantizeConfig, calibration_inputs

    inputs = calibration_inputs(files["bag"], SPEC, QuantizeConfig(frames=4))
    assert len(inputs) == 4 and all(x.shape == (1, 3, 32, 48) and x.dtype == np.float32 for x in inputs)
    with BagReader(files["bag"]) as reader:  # frames 0, 4, 7, 11 of 12: evenly spread, ends included
        images = [reader.deserialize(m) for m in reader.messages(["/camera/image_raw"])]
        info = reader.deserialize(next(reader.messages(["/camera/camera_info"])))
    camera = msgconv.camera_info_to_model(info)
    for x, i in zip(inputs, (0, 4, 7, 11)):
        assert np.array_equal(x, preprocess(msgconv.image_to_rgb(images[i]), camera, SPEC).tensor)


def test_int8_model_is_qdq_carries_its_spec_and_stays_close(files, tmp_path):
    import onnx
    import onnxruntime as ort

    from depth_ros.inference.backend import create_backend
    from depth_ros.inference.quantize import QuantizeConfig, calibration_inputs, quantize_model
    from depth_ros.inference.spec import load_model_spec

    inputs = calibration_inputs(files["bag"], SPEC, QuantizeConfig(frames=12))
    out = quantize_model(files["model"], tmp_path / "small.int8.onnx", inputs[::2], source="s.mcap")
    proto = onnx.load(str(out))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 3
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) == 3  # the three convolutions' weights
    # activations uint8 (U8S8, ONNX Runtime's fast path on x86): their zero points are uint8
    assert any(t.data_type == onnx.TensorProto.UINT8 for t in proto.graph.initializer)
    spec = load_model_spec(out)
    assert spec.name == "small int8" and spec.extra["precision"] == "int8" and "6 frames of s.mcap" in spec.extra["quantization"]
    assert (spec.output_kind, spec.input_height, spec.input_width, spec.max_depth_m) == ("disparity_sigmoid", 32, 48, 20.0)
    create_backend(out, "onnxruntime-cpu")  # the runtime's contract check passes
    fp32 = ort.InferenceSession(str(files["model"]), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for x in inputs[1::2]:  # frames not calibrated on
        a, b = fp32.run(None, {"image": x})[0], int8.run(None, {"image": x})[0]
        assert np.median(np.abs(a - b) / a) < 0.02 and not np.array_equal(a, b)


def test_tensorrt_target_is_symmetric_int8(files, tmp_path):
    """TensorRT's explicit quantisation takes signed int8 with zero point 0 only."""
    import onnx
    from onnx import numpy_helper

    from depth_ros.inference.backend import create_backend
    from depth_ros.inference.quantize import QuantizeConfig, calibration_inputs, quantize_model
    from depth_ros.inference.spec import load_model_spec
    from depth_ros.inference.tensorrt_backend import engine_precision

    config = QuantizeConfig(frames=6, target="tensorrt")
    inputs = calibration_inputs(files["bag"], SPEC, config)
    out = quantize_model(files["model"], tmp_path / "small.int8-tensorrt.onnx", inputs, config)
    proto = onnx.load(str(out))
    initializers = {t.name: t for t in proto.graph.initializer}
    zero_points = [initializers[n.input[2]] for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                   and len(n.input) > 2 and n.input[2] in initializers]
    assert len(zero_points) >= 6
    assert all(z.data_type == onnx.TensorProto.INT8 and not numpy_helper.to_array(z).any() for z in zero_points)
    # biases stay float (no int32 DequantizeLinear); the convolutions' weights are int8
    assert not any(t.data_type == onnx.TensorProto.INT32 for t in proto.graph.initializer)
    assert sum(t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4 for t in proto.graph.initializer) == 3
    spec = load_model_spec(out)
    assert spec.extra["int8_target"] == "tensorrt" and "s8s8 symmetric" in spec.extra["quantization"]
    assert engine_precision(spec, "fp16") == "int8"
    backend = create_backend(out, "onnxruntime-cpu")  # ONNX Runtime runs it too, close to FP32
    fp32 = create_backend(files["model"], "onnxruntime-cpu")
    a, b = fp32.infer(inputs[1])["depth"], backend.infer(inputs[1])["depth"]
    assert np.median(np.abs(a - b) / a) < 0.02
    with pytest.raises(ValueError, match="target must be one of onnxruntime, tensorrt"):
        QuantizeConfig(target="openvino")


def test_refusals(files, tmp_path):
    from depth_ros.inference.quantize import QuantizeConfig, calibration_inputs, quantize_model

    x = [np.zeros((1, 6, 32, 48), np.float32)]
    with pytest.raises(ModelError, match="pose_6dof.*only depth models"):
        quantize_model(files["pose"], tmp_path / "p.onnx", x)
    with pytest.raises(ModelError, match="no calibration input"):
        quantize_model(files["model"], tmp_path / "q.onnx", [])
    assert not (tmp_path / "q.onnx").exists() and not list(tmp_path.glob(".q.onnx*"))
    with pytest.raises(BagError, match="image topic /nope is not in the bag"):
        calibration_inputs(files["bag"], SPEC, QuantizeConfig(image_topic="/nope"))
    with pytest.raises(ValueError, match="frames must be an integer"):
        QuantizeConfig(frames=0)
    with pytest.raises(ValueError, match="method must be one of minmax"):
        QuantizeConfig(method="best")


def test_export_cli_needs_a_calibration_bag(files, capsys):
    from depth_ros_training.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["export", str(files["model"]), "-o", str(files["dir"]), "--int8"])
    assert exc.value.code == 2 and "--int8 and --calibration-bag go together" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", str(files["model"]), "-o", str(files["dir"]), "--int8-target", "tensorrt"])
    assert exc.value.code == 2 and "--int8-target needs --int8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", str(files["model"]), "-o", str(files["dir"]), "--batch", "2", "--fuse-io", "96x64"])
    assert exc.value.code == 2 and "--batch and --fuse-io: a fused model takes one camera image" in capsys.readouterr().err
