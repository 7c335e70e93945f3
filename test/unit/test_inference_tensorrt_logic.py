"""TensorRT orchestration with a fake toolkit: build, cache hits, rebuilds, fallback decisions.

The real TensorRT calls are covered by test/gpu/test_tensorrt.py where TensorRT and a GPU exist.
"""
from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from depth_ros.errors import BackendError, ModelError
from depth_ros.inference.backend import TensorInfo, spec_input_shape
from depth_ros.inference.engine_cache import EngineCache, encode_engine_file
from depth_ros.inference.spec import ModelSpec
from depth_ros.inference.tensorrt_backend import (
    EngineBuildError,
    EngineLoadError,
    TensorRTToolkit,
    create_tensorrt_backend,
    check_io_buffer_shapes,
    decide_fallback,
    engine_key,
    engine_precision,
    obtain_engine,
    onnx_model_io,
    profile_shapes,
)

SPEC = ModelSpec(output_kind="disparity_sigmoid", input_height=8, input_width=12)
ONNX_BYTES = b"pretend this is an onnx model"


@dataclass
class FakeEngine:
    name: str
    spec: ModelSpec
    payload: bytes

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {self.spec.output_name: x[:, :1]}


@dataclass
class FakeToolkit:
    """Stands in for TensorRT: the 'engine' is a readable description of what was built."""

    trt_version: str = "10.3.0"
    gpu_name: str = "Fake GPU (sm_87)"
    build_errors: list[str] | None = None
    unloadable: set[bytes] = field(default_factory=set)
    builds: list[tuple[tuple[int, ...], str, bytes]] = field(default_factory=list)

    def build(self, onnx_bytes: bytes, input_shape: tuple[int, ...], precision: str, timing_cache: bytes):
        if self.build_errors is not None:
            raise EngineBuildError("ONNX parser", self.build_errors)
        self.builds.append((input_shape, precision, timing_cache))
        engine = f"engine:{hashlib.sha256(onnx_bytes).hexdigest()[:8]}:{precision}:{input_shape}".encode()
        return engine, timing_cache + b"+" + precision.encode()

    def load(self, engine_bytes: bytes, spec: ModelSpec, precision: str) -> FakeEngine:
        if engine_bytes in self.unloadable:
            raise EngineLoadError("serialization assertion failed")
        return FakeEngine(f"tensorrt-{precision}", spec, engine_bytes)


def test_first_run_builds_and_second_run_loads_from_cache(tmp_path: Path) -> None:
    cache, toolkit = EngineCache(tmp_path), FakeToolkit()
    engine, how = obtain_engine(ONNX_BYTES, SPEC, toolkit, cache, "fp16")
    assert (how, len(toolkit.builds), engine.name) == ("built", 1, "tensorrt-fp16")
    assert toolkit.builds[0][:2] == ((1, 3, 8, 12), "fp16")
    again, how = obtain_engine(ONNX_BYTES, SPEC, FakeToolkit(), cache, "fp16")
    assert how == "cache" and again.payload == engine.payload


@pytest.mark.parametrize(
    "toolkit, precision, onnx_bytes, spec",
    [
        (FakeToolkit(trt_version="10.4.0"), "fp16", ONNX_BYTES, SPEC),
        (FakeToolkit(gpu_name="Other GPU (sm_89)"), "fp16", ONNX_BYTES, SPEC),
        (FakeToolkit(), "fp32", ONNX_BYTES, SPEC),
        (FakeToolkit(), "fp16", ONNX_BYTES + b" v2", SPEC),
        (FakeToolkit(), "fp16", ONNX_BYTES, ModelSpec(output_kind="disparity_sigmoid", input_height=16, input_width=12)),
    ],
)
def test_any_key_change_builds_a_new_engine(
    tmp_path: Path, toolkit: FakeToolkit, precision: str, onnx_bytes: bytes, spec: ModelSpec
) -> None:
    cache = EngineCache(tmp_path)
    obtain_engine(ONNX_BYTES, SPEC, FakeToolkit(), cache, "fp16")
    toolkit.builds.clear()
    _, how = obtain_engine(onnx_bytes, spec, toolkit, cache, precision)
    assert how == "built" and len(toolkit.builds) == 1
    assert len(list(tmp_path.glob("*.engine"))) == 2  # the old engine stays for its own key


def _cached_file(tmp_path: Path) -> tuple[EngineCache, Path]:
    cache = EngineCache(tmp_path)
    obtain_engine(ONNX_BYTES, SPEC, FakeToolkit(), cache, "fp16")
    return cache, cache.path_for(engine_key(ONNX_BYTES, FakeToolkit(), SPEC, "fp16"))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "checksum mismatch"),
        (lambda data: b"garbage" * 3, "not a depth_ros engine file"),
    ],
)
def test_corrupt_or_truncated_cache_is_rebuilt_with_a_warning(
    tmp_path: Path, damage, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache, path = _cached_file(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    toolkit = FakeToolkit()
    with caplog.at_level(logging.WARNING):
        _, how = obtain_engine(ONNX_BYTES, SPEC, toolkit, cache, "fp16")
    assert how == "rebuilt" and len(toolkit.builds) == 1
    assert any("unusable" in r.message and reason in r.message for r in caplog.records)
    assert obtain_engine(ONNX_BYTES, SPEC, FakeToolkit(), cache, "fp16")[1] == "cache"  # file repaired


def test_mismatched_cache_file_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache, path = _cached_file(tmp_path)
    foreign = engine_key(ONNX_BYTES, FakeToolkit(trt_version="9.9.9"), SPEC, "fp16")
    path.write_bytes(encode_engine_file(foreign, b"engine from elsewhere"))
    with caplog.at_level(logging.WARNING):
        _, how = obtain_engine(ONNX_BYTES, SPEC, FakeToolkit(), cache, "fp16")
    assert how == "rebuilt"
    assert any("differs in trt_version" in r.message for r in caplog.records)


def test_cached_engine_that_does_not_deserialize_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache, path = _cached_file(tmp_path)
    stale = cache.lookup(engine_key(ONNX_BYTES, FakeToolkit(), SPEC, "fp16")).payload
    key = engine_key(ONNX_BYTES, FakeToolkit(), SPEC, "fp16")
    cache.store(key, b"valid file, engine rejected by the runtime")
    toolkit = FakeToolkit(unloadable={b"valid file, engine rejected by the runtime"})
    with caplog.at_level(logging.WARNING):
        engine, how = obtain_engine(ONNX_BYTES, SPEC, toolkit, cache, "fp16")
    assert how == "rebuilt" and engine.payload == stale
    assert any("does not load" in r.message for r in caplog.records)


def test_timing_cache_is_reused_across_builds(tmp_path: Path) -> None:
    cache, toolkit = EngineCache(tmp_path), FakeToolkit()
    obtain_engine(ONNX_BYTES, SPEC, toolkit, cache, "fp16")
    obtain_engine(ONNX_BYTES + b" another model", SPEC, toolkit, cache, "fp32")
    assert [b[2] for b in toolkit.builds] == [b"", b"+fp16"]  # second build got the first's timings
    # ...but not across TensorRT versions.
    other = FakeToolkit(trt_version="10.5.0")
    obtain_engine(ONNX_BYTES, SPEC, other, cache, "fp16")
    assert other.builds[0][2] == b""


def test_unwritable_cache_still_gives_an_engine(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    toolkit = FakeToolkit()
    with caplog.at_level(logging.WARNING):
        engine, how = obtain_engine(ONNX_BYTES, SPEC, toolkit, EngineCache(blocker), "fp16")
    assert how == "rebuilt" and engine.name == "tensorrt-fp16" and len(toolkit.builds) == 1
    assert any("engine not cached" in r.message for r in caplog.records)


def test_decide_fallback(caplog: pytest.LogCaptureFixture) -> None:
    error = EngineBuildError("ONNX parser", ["In node 3 (Foo): unsupported operator", "second error"])
    with pytest.raises(BackendError) as err:
        decide_fallback(None, error, Path("/models/net.onnx"))
    assert str(err.value) == (
        "TensorRT cannot run net.onnx: ONNX parser failed: In node 3 (Foo): unsupported operator; second error"
    )
    with caplog.at_level(logging.WARNING):
        assert decide_fallback("onnxruntime", error, Path("net.onnx")) == "onnxruntime"
    assert any("falling back to onnxruntime" in r.message and "unsupported operator" in r.message for r in caplog.records)
    with pytest.raises(ValueError, match="fallback must be one of"):
        decide_fallback("openvino", error, Path("net.onnx"))


# -- create_tensorrt_backend with a real ONNX file and fakes ---------------------------------


@pytest.fixture()
def onnx_file(tmp_path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["image"], ["depth"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 8, 12])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, ["n", 3, 8, 12])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "net.onnx"
    onnx.save(model, str(path))
    return path


def test_build_failure_is_an_error_with_the_parser_messages(onnx_file: Path, tmp_path: Path) -> None:
    failing = FakeToolkit(build_errors=["In node 0 (Sigmoid): bad"])
    with pytest.raises(BackendError, match=r"ONNX parser failed: In node 0 \(Sigmoid\): bad"):
        create_tensorrt_backend(onnx_file, SPEC, cache_dir=tmp_path / "c", toolkit_factory=lambda: failing)


def test_build_failure_with_fallback_uses_it(onnx_file: Path, tmp_path: Path) -> None:
    failing = FakeToolkit(build_errors=["boom"])
    chosen: list[str] = []

    def fallback_factory(name: str) -> FakeEngine:
        chosen.append(name)
        return FakeEngine("onnxruntime-cpu", SPEC, b"")

    backend = create_tensorrt_backend(
        onnx_file, SPEC, cache_dir=tmp_path / "c", fallback="onnxruntime",
        toolkit_factory=lambda: failing, fallback_factory=fallback_factory,
    )
    assert backend.name == "onnxruntime-cpu" and chosen == ["onnxruntime"]


def test_real_onnxruntime_fallback_runs_the_model(onnx_file: Path, tmp_path: Path) -> None:
    backend = create_tensorrt_backend(
        onnx_file, SPEC, cache_dir=tmp_path / "c", fallback="onnxruntime",
        toolkit_factory=lambda: FakeToolkit(build_errors=["boom"]), fallback_options={"threads": 1},
    )
    x = np.zeros(spec_input_shape(SPEC), np.float32)
    assert backend.name == "onnxruntime-cpu"
    np.testing.assert_allclose(backend.infer(x)["depth"], 0.5)  # sigmoid(0)


def test_success_path_returns_the_engine_and_caches_it(onnx_file: Path, tmp_path: Path) -> None:
    backend = create_tensorrt_backend(onnx_file, SPEC, precision="fp32", cache_dir=tmp_path / "c", toolkit_factory=FakeToolkit)
    assert backend.name == "tensorrt-fp32"
    assert len(list((tmp_path / "c").glob("*.engine"))) == 1


def test_contract_mismatch_is_a_model_error_even_with_a_fallback(onnx_file: Path, tmp_path: Path) -> None:
    wrong = ModelSpec(output_kind="disparity_sigmoid", input_height=16, input_width=12)
    with pytest.raises(ModelError, match=r"shape \[n, 3, 8, 12\] but the spec says \[1, 3, 16, 12\]"):
        create_tensorrt_backend(
            onnx_file, wrong, cache_dir=tmp_path / "c", fallback="onnxruntime", toolkit_factory=FakeToolkit
        )


def test_bad_options_are_refused(onnx_file: Path) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        create_tensorrt_backend(onnx_file, SPEC, precision="int4")
    with pytest.raises(ValueError, match="fallback must be one of"):
        create_tensorrt_backend(onnx_file, SPEC, fallback="cpu")


def test_toolkit_without_tensorrt_is_a_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendError, match="TensorRT is not available"):
        TensorRTToolkit()


def test_onnx_model_io_excludes_initializers_and_reads_symbolic_dims(tmp_path: Path) -> None:
    # Old exporters list weights among graph inputs; they are not inputs to feed.
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["image", "w"], ["depth"])],
        "g",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT16, [1, 3, "h", None]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT16, [1, 3, "h", None])],
        initializer=[weight],
    )
    model = helper.make_model(graph)
    inputs, outputs = onnx_model_io(model.SerializeToString(), "m.onnx")
    assert inputs == [TensorInfo("image", (1, 3, "h", None), "float16")]
    assert outputs == ["depth"]
    with pytest.raises(ModelError, match="m.onnx: not a readable ONNX file"):
        onnx_model_io(b"\xff\xfe not protobuf", "m.onnx")


# -- batch profile and INT8 -------------------------------------------------------------------

BATCHED = ModelSpec(output_kind="disparity_sigmoid", input_height=8, input_width=12, max_batch=4)
INT8_TRT = ModelSpec(output_kind="disparity_sigmoid", input_height=8, input_width=12, name="q",
                     extra={"precision": "int8", "int8_target": "tensorrt"})
INT8_CPU = ModelSpec(output_kind="disparity_sigmoid", input_height=8, input_width=12, name="q",
                     extra={"precision": "int8", "int8_target": "onnxruntime"})


def test_profile_covers_one_to_max_batch_frames_for_a_dynamic_axis() -> None:
    assert profile_shapes((-1, 3, 8, 12), (4, 3, 8, 12)) == ((1, 3, 8, 12), (4, 3, 8, 12), (4, 3, 8, 12))
    # a fixed axis is built at its size only; a model of one frame as before
    assert profile_shapes((4, 3, 8, 12), (4, 3, 8, 12)) == ((4, 3, 8, 12),) * 3
    assert profile_shapes((1, 3, 8, 12), (1, 3, 8, 12)) == ((1, 3, 8, 12),) * 3
    # dynamic spatial dims take the spec's
    assert profile_shapes((-1, 3, -1, -1), (2, 3, 8, 12))[0] == (1, 3, 8, 12)
    for network in ((3, 3, 8, 12), (-1, 3, 8, 16), (-1, 3, 8)):
        with pytest.raises(EngineBuildError, match=r"optimisation profile failed: the ONNX input is .* the spec's input"):
            profile_shapes(network, (4, 3, 8, 12))


def test_a_batched_model_builds_for_its_most_frames(onnx_file: Path, tmp_path: Path) -> None:
    toolkit = FakeToolkit()
    create_tensorrt_backend(onnx_file, BATCHED, precision="fp16", cache_dir=tmp_path / "c", toolkit_factory=lambda: toolkit)
    assert [b[0] for b in toolkit.builds] == [(4, 3, 8, 12)]
    # the batch is part of the engine's key: the same file at batch 1 is another engine
    assert engine_key(ONNX_BYTES, toolkit, BATCHED, "fp16") != engine_key(ONNX_BYTES, toolkit, SPEC, "fp16")
    create_tensorrt_backend(onnx_file, SPEC, precision="fp16", cache_dir=tmp_path / "c", toolkit_factory=lambda: toolkit)
    assert [b[0] for b in toolkit.builds] == [(4, 3, 8, 12), (1, 3, 8, 12)]


def test_buffer_bound_grows_with_max_batch() -> None:
    one_frame = (1, 64 * 8 * 12)  # the most elements per frame
    check_io_buffer_shapes({"depth": one_frame}, SPEC)
    check_io_buffer_shapes({"depth": (4, 64 * 8 * 12)}, BATCHED)
    with pytest.raises(EngineLoadError, match="at most 6144"):
        check_io_buffer_shapes({"depth": (2, 64 * 8 * 12)}, SPEC)


def test_int8_precision_comes_from_the_model() -> None:
    assert engine_precision(SPEC, "fp16") == "fp16"
    assert engine_precision(INT8_TRT, "fp16") == "int8"  # its Q/DQ scales decide
    assert engine_precision(INT8_TRT, "int8") == "int8"
    with pytest.raises(BackendError, match=r"model 'unnamed' has none: depth-ros-train export --int8 --int8-target tensorrt"):
        engine_precision(SPEC, "int8")
    with pytest.raises(BackendError, match=r"quantised for ONNX Runtime on CPUs .* --int8-target tensorrt"):
        engine_precision(INT8_CPU, "fp16")


def test_int8_model_builds_an_int8_engine(onnx_file: Path, tmp_path: Path) -> None:
    toolkit = FakeToolkit()
    backend = create_tensorrt_backend(onnx_file, INT8_TRT, cache_dir=tmp_path / "c", toolkit_factory=lambda: toolkit)
    assert backend.name == "tensorrt-int8" and [b[1] for b in toolkit.builds] == ["int8"]


def test_a_cpu_int8_model_falls_back_or_says_how_to_make_one(onnx_file: Path, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    toolkit = FakeToolkit()
    with pytest.raises(BackendError, match=r"TensorRT cannot run net.onnx: model 'q' is quantised for ONNX Runtime on CPUs"):
        create_tensorrt_backend(onnx_file, INT8_CPU, cache_dir=tmp_path / "c", toolkit_factory=lambda: toolkit)
    with caplog.at_level(logging.WARNING):
        backend = create_tensorrt_backend(onnx_file, INT8_CPU, cache_dir=tmp_path / "c", fallback="onnxruntime",
                                          toolkit_factory=lambda: toolkit, fallback_options={"threads": 1})
    assert backend.name == "onnxruntime-cpu" and toolkit.builds == []
    assert "falling back to onnxruntime" in caplog.text


def test_fixed_batch_axis_other_than_the_spec_is_a_model_error(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["image"], ["depth"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, 3, 8, 12])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [3, 3, 8, 12])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "three.onnx"))
    with pytest.raises(ModelError, match="input batch axis is 3 frames, the spec's max_batch says 4"):
        create_tensorrt_backend(tmp_path / "three.onnx", BATCHED, cache_dir=tmp_path / "c", fallback="onnxruntime",
                                toolkit_factory=FakeToolkit)
