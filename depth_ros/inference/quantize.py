"""INT8 models for CPUs: ONNX Runtime static quantisation calibrated on frames of a bag.

:func:`quantize_model` turns an exported depth model (``depth.onnx`` with its ModelSpec) into
``depth.int8.onnx``: weights int8 per output channel, activations int8 with scales fitted on
real frames (QDQ format: QuantizeLinear/DequantizeLinear pairs around each quantised op, which
ONNX Runtime fuses into integer kernels, and which TensorRT reads as explicit quantisation).
The calibration frames come from a bag through the runtime's own decode and preprocess
(:func:`calibration_inputs`), so the activations measured are those the network sees on the
robot. The spec travels along (``name`` + " int8", ``extra["precision"] = "int8"`` and how it
was calibrated); the runtime needs nothing else.

Choices (ONNX Runtime's names): ``QuantFormat.QDQ``, ``per_channel=True``, weights ``QInt8``
(symmetric) and activations ``QUInt8`` by default ("U8S8", ONNX Runtime's fast integer path on
x86: measured on 2 x86 cores at 192x640, the ResNet-18 DispNet ran 233 ms FP32, 110 ms U8S8 and
223 ms with int8 activations, S8S8, which ONNX Runtime runs through a slower path there;
``activations: int8`` is offered for Arm CPUs, where ONNX Runtime recommends S8S8),
calibration ``MinMax`` by default (percentile and entropy offered: they clip outliers and can
help networks with rare large activations).

``target: tensorrt`` writes the model TensorRT builds its INT8 engine from (explicit
quantisation, :mod:`depth_ros.inference.tensorrt_backend`): TensorRT takes only signed int8 with
zero point 0, so activations and weights are both symmetric int8 (ONNX Runtime's
``ActivationSymmetric`` / ``WeightSymmetric``), from the same calibration frames; biases stay
float (``QuantizeBias`` off: TensorRT's dequantize layers take int8, not the int32 a quantised bias
is, and TensorRT folds a float bias into its INT8 convolution); ``activations`` does not apply. The spec records ``extra["int8_target"]``, which the TensorRT backend checks.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from depth_ros.errors import BagError, DepthRosError, InputError, ModelError
from depth_ros.inference.spec import ModelSpec

__all__ = ["ACTIVATION_TYPES", "CALIBRATION_METHODS", "QUANTIZE_TARGETS", "QuantizeConfig", "calibration_inputs", "quantize_model"]

_log = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
ACTIVATION_TYPES = ("uint8", "int8")
QUANTIZE_TARGETS = ("onnxruntime", "tensorrt")
MAX_CALIBRATION_FRAMES = 4096


@dataclass(frozen=True)
class QuantizeConfig:
    """How to quantise.

    Attributes:
        frames: calibration frames taken from the bag (evenly spread over it), 1..4096.
        method: activation range estimate, one of :data:`CALIBRATION_METHODS`.
        per_channel: one weight scale per output channel (ONNX Runtime's ``per_channel``).
        activations: ``uint8`` (U8S8, default; x86) or ``int8`` (S8S8; Arm).
        image_topic, camera_info_topic: the bag's camera (None: chosen as ``depth-ros infer``
            does).
        target: ``onnxruntime`` (CPUs; the default) or ``tensorrt`` (symmetric int8 for
            TensorRT's explicit quantisation; module docstring).
    """

    frames: int = 64
    method: str = "minmax"
    per_channel: bool = True
    activations: str = "uint8"
    image_topic: str | None = None
    camera_info_topic: str | None = None
    target: str = "onnxruntime"

    def __post_init__(self) -> None:
        if self.target not in QUANTIZE_TARGETS:
            raise ValueError(f"target must be one of {', '.join(QUANTIZE_TARGETS)}, got {self.target!r}")
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or not 1 <= self.frames <= MAX_CALIBRATION_FRAMES:
            raise ValueError(f"frames must be an integer in [1, {MAX_CALIBRATION_FRAMES}], got {self.frames!r}")
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(f"method must be one of {', '.join(CALIBRATION_METHODS)}, got {self.method!r}")
        if self.activations not in ACTIVATION_TYPES:
            raise ValueError(f"activations must be one of {', '.join(ACTIVATION_TYPES)}, got {self.activations!r}")


def calibration_inputs(bag: str | Path, spec: ModelSpec, config: QuantizeConfig = QuantizeConfig()) -> list[np.ndarray]:
    """Network inputs from ``config.frames`` frames of ``bag``, evenly spread over its images,
    decoded and preprocessed as the runtime does (:func:`depth_ros.core.preprocess.preprocess`).

    Returns:
        a list of float32 arrays of the spec's input shape (1, C, h, w) or (1, h, w, C).

    Raises:
        BagError: unreadable bag, no camera, no usable frame (the message names the bag).
    """
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader, select_camera_topics
    from depth_ros.core.preprocess import preprocess

    bag = Path(bag)
    with BagReader(bag) as reader:
        topics = reader.topics
        image_topic, info_topic = select_camera_topics(topics, config.image_topic, config.camera_info_topic, source=str(bag))
        count = topics[image_topic].count
        if count == 0:
            raise BagError(f"{bag}: {image_topic} has no messages to calibrate on")
        wanted = set(np.linspace(0, count - 1, min(count, config.frames)).round().astype(int).tolist())
        info = None
        for message in reader.messages([info_topic]):
            info = reader.deserialize(message)
            break
        if info is None:
            raise BagError(f"{bag}: {info_topic} has no messages")
        try:
            camera = msgconv.camera_info_to_model(info)
        except InputError as exc:
            raise BagError(f"{bag}: {info_topic}: {exc}") from None
        compressed = topics[image_topic].msgtype.endswith("CompressedImage")
        out: list[np.ndarray] = []
        skipped = 0
        for i, message in enumerate(reader.messages([image_topic])):
            if i not in wanted:
                continue
            msg = reader.deserialize(message)
            try:
                rgb = msgconv.compressed_to_rgb(msg) if compressed else msgconv.image_to_rgb(msg)
                msgconv.check_image_matches_camera(rgb, camera)
                out.append(preprocess(rgb, camera, spec).tensor.copy())
            except (InputError, ValueError) as exc:
                skipped += 1
                _log.debug("calibration frame %d skipped: %s", i, exc)
    if not out:
        raise BagError(f"{bag}: none of the {len(wanted)} calibration frames of {image_topic} could be used ({skipped} unusable)")
    if skipped:
        _log.warning("%s: %d of %d calibration frames unusable, calibrating on %d", bag, skipped, len(wanted), len(out))
    return out


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of inputs."""

    def __init__(self, input_name: str, inputs: Sequence[np.ndarray]) -> None:
        self._items: Iterator[dict[str, np.ndarray]] = iter([{input_name: x} for x in inputs])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantize_model(model: str | Path, output: str | Path, inputs: Sequence[np.ndarray], config: QuantizeConfig = QuantizeConfig(),
                   *, source: str = "") -> Path:
    """Write the INT8 (QDQ) version of the depth model ``model`` to ``output``.

    Args:
        model: an ONNX depth model whose spec :func:`load_model_spec` finds.
        output: the INT8 ONNX file (written atomically; its spec embedded).
        inputs: calibration inputs (:func:`calibration_inputs`).
        config: the quantisation choices.
        source: where the calibration frames came from (recorded in the spec's ``extra``).

    Returns:
        ``output``.

    Raises:
        ModelError: not an ONNX depth model, or quantisation failed (the message says why).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from depth_ros.inference.onnx_export import embed_spec
    from depth_ros.inference.spec import load_model_spec
    from depth_ros.safeio import write_atomically

    model, output = Path(model), Path(output)
    spec = load_model_spec(model)
    if not spec.is_depth:
        raise ModelError(f"{model}: output_kind {spec.output_kind!r}: only depth models are quantised (pose networks stay float32)")
    if model.suffix.lower() != ".onnx":
        raise ModelError(f"{model}: quantisation needs an ONNX file, got {model.suffix or 'no suffix'!r}")
    if not inputs:
        raise ModelError(f"{model}: no calibration input")
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}[config.method]
    tensorrt = config.target == "tensorrt"
    kind = "s8s8 symmetric" if tensorrt else "u8s8" if config.activations == "uint8" else "s8s8"
    tmp_dir = output.parent
    prepared = tmp_dir / f".{output.name}.prep.onnx"
    quantized = tmp_dir / f".{output.name}.q.onnx"
    try:
        # shape inference + graph optimisation first, as ONNX Runtime's quantisation guide asks
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(quantized), _Reader(spec.input_name, inputs),
            quant_format=QuantFormat.QDQ, per_channel=config.per_channel,
            activation_type=QuantType.QUInt8 if kind == "u8s8" else QuantType.QInt8,
            weight_type=QuantType.QInt8, calibrate_method=method,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False} if tensorrt else {},
        )
        proto = onnx.load(str(quantized))
    except (DepthRosError, OSError):
        raise
    except Exception as exc:  # onnxruntime's quantiser raises many types; one line for the user
        raise ModelError(f"{model}: INT8 quantisation failed: {type(exc).__name__}: {exc}") from None
    finally:
        for tmp in (prepared, quantized):
            tmp.unlink(missing_ok=True)
    extra = dict(spec.extra)
    extra.update(precision="int8", int8_target=config.target,
                 quantization=f"onnxruntime QDQ {kind}, per_channel={config.per_channel}, {config.method}, {len(inputs)} frames" + (f" of {source}" if source else ""))
    int8_spec = dataclasses.replace(spec, name=f"{spec.name} int8", extra=extra)
    embed_spec(proto, int8_spec)
    write_atomically(output, lambda f: f.write(proto.SerializeToString()))
    _log.info("INT8 model %s (%.1f MB, from %.1f MB)", output, output.stat().st_size / 1e6, model.stat().st_size / 1e6)
    return output
