"""TensorRT engine cache: key components, the file format, and which files are rejected."""
from __future__ import annotations

import dataclasses
import hashlib
import struct
from pathlib import Path

import pytest

from depth_ros.inference.engine_cache import (
    ENGINE_FILE_MAGIC,
    EngineCache,
    EngineCacheError,
    EngineKey,
    decode_engine_file,
    default_cache_dir,
    encode_engine_file,
    file_sha256,
)

KEY = EngineKey(
    onnx_sha256=hashlib.sha256(b"model").hexdigest(),
    trt_version="10.3.0",
    gpu_name="NVIDIA Orin (sm_87)",
    precision="fp16",
    input_shape=(1, 3, 192, 640),
)
PAYLOAD = bytes(range(256)) * 40


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": hashlib.sha256(b"other model").hexdigest()},
        {"trt_version": "10.4.0"},
        {"gpu_name": "NVIDIA GeForce RTX 4090 (sm_89)"},
        {"precision": "fp32"},
        {"input_shape": (1, 3, 320, 1024)},
    ],
)
def test_each_key_component_changes_the_digest_and_file_name(change: dict) -> None:
    other = dataclasses.replace(KEY, **change)
    assert other.digest() != KEY.digest()
    assert other.file_name() != KEY.file_name()


def test_key_is_deterministic_and_shape_type_insensitive() -> None:
    same = EngineKey(KEY.onnx_sha256, "10.3.0", "NVIDIA Orin (sm_87)", "fp16", [1, 3, 192, 640])  # type: ignore[arg-type]
    assert same == KEY and same.digest() == KEY.digest()
    assert EngineKey.from_dict(KEY.to_dict()) == KEY
    assert KEY.file_name().startswith(KEY.onnx_sha256[:12] + "-fp16-") and KEY.file_name().endswith(".engine")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"onnx_sha256": "abc"}, "64 lowercase hex"),
        ({"precision": "int4"}, "precision must be one of"),
        ({"input_shape": (1, 3, 0, 640)}, "positive integers"),
        ({"gpu_name": ""}, "gpu_name must be a non-empty string"),
    ],
)
def test_invalid_keys_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(KEY, **change)


def test_file_round_trip_returns_the_payload_byte_for_byte() -> None:
    data = encode_engine_file(KEY, PAYLOAD)
    assert data.startswith(ENGINE_FILE_MAGIC)
    assert data.endswith(PAYLOAD)
    assert decode_engine_file(data, KEY) == PAYLOAD
    assert decode_engine_file(encode_engine_file(KEY, b""), KEY) == b""


def _header_end(data: bytes) -> int:
    return 16 + struct.unpack_from("<I", data, 12)[0]


def test_truncation_anywhere_is_detected() -> None:
    data = encode_engine_file(KEY, PAYLOAD)
    end = _header_end(data)
    for cut, reason in [(5, "shorter than the 16-byte prefix"), (end - 3, "truncated header"), (end + 10, "truncated payload"), (len(data) - 1, "truncated payload")]:
        with pytest.raises(EngineCacheError, match=reason):
            decode_engine_file(data[:cut], KEY)


def test_corruption_is_detected() -> None:
    data = bytearray(encode_engine_file(KEY, PAYLOAD))
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    with pytest.raises(EngineCacheError, match="checksum mismatch"):
        decode_engine_file(bytes(flipped), KEY)
    with pytest.raises(EngineCacheError, match="not a depth_ros engine file"):
        decode_engine_file(b"XXXXXXXX" + bytes(data[8:]), KEY)
    bad_header = bytearray(data)
    bad_header[17] = ord("!")  # inside the JSON
    with pytest.raises(EngineCacheError, match="corrupt header"):
        decode_engine_file(bytes(bad_header), KEY)
    huge = bytearray(data)
    struct.pack_into("<I", huge, 12, 1 << 30)
    with pytest.raises(EngineCacheError, match="header claims 1073741824 bytes"):
        decode_engine_file(bytes(huge), KEY)
    version = bytearray(data)
    struct.pack_into("<I", version, 8, 99)
    with pytest.raises(EngineCacheError, match="format 99, expected 1"):
        decode_engine_file(bytes(version), KEY)


def test_an_engine_for_another_key_is_refused_and_says_which_part_differs() -> None:
    data = encode_engine_file(KEY, PAYLOAD)
    other = dataclasses.replace(KEY, trt_version="10.4.0", precision="fp32")
    with pytest.raises(EngineCacheError, match=r"another key \(differs in trt_version, precision\)"):
        decode_engine_file(data, other)


def test_cache_lookup_store_and_rejected_files(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "engines")
    miss = cache.lookup(KEY)
    assert (miss.hit, miss.reason, miss.needs_rebuild_warning) == (False, "missing", False)

    path = cache.store(KEY, PAYLOAD)
    assert path == cache.path_for(KEY) and path.parent == tmp_path / "engines"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary files left
    hit = cache.lookup(KEY)
    assert (hit.hit, hit.payload, hit.reason) == (True, PAYLOAD, "hit")

    path.write_bytes(path.read_bytes()[:-7])
    truncated = cache.lookup(KEY)
    assert not truncated.hit and truncated.needs_rebuild_warning and "truncated payload" in truncated.reason

    # A file of another key under this key's name (copied by hand, or a digest collision).
    other = dataclasses.replace(KEY, gpu_name="Other GPU")
    path.write_bytes(encode_engine_file(other, PAYLOAD))
    mismatched = cache.lookup(KEY)
    assert not mismatched.hit and "differs in gpu_name" in mismatched.reason

    small = EngineCache(tmp_path / "engines", max_engine_bytes=100)
    assert "over the 100-byte limit" in small.lookup(KEY).reason


def test_a_cache_dir_that_is_a_file_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    cache = EngineCache(not_a_dir)
    lookup = cache.lookup(KEY)
    assert not lookup.hit and lookup.reason.startswith("unreadable")
    assert cache.read_timing_cache("10.3.0", "gpu") == b""
    with pytest.raises(OSError):
        cache.store(KEY, PAYLOAD)


def test_timing_cache_per_version_and_gpu(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.read_timing_cache("10.3.0", "NVIDIA Orin (sm_87)") == b""
    cache.write_timing_cache("10.3.0", "NVIDIA Orin (sm_87)", b"timings")
    assert cache.read_timing_cache("10.3.0", "NVIDIA Orin (sm_87)") == b"timings"
    assert cache.read_timing_cache("10.4.0", "NVIDIA Orin (sm_87)") == b""
    path = cache.timing_cache_path("10.3.0", "NVIDIA Orin (sm_87)")
    assert path.parent == tmp_path and " " not in path.name and "/" not in path.name


def test_default_cache_dir_follows_xdg(tmp_path: Path) -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "depth_ros" / "engines"
    home_default = Path.home() / ".cache" / "depth_ros" / "engines"
    assert default_cache_dir({}) == home_default
    # The XDG spec says relative paths are invalid and must be ignored.
    assert default_cache_dir({"XDG_CACHE_HOME": "relative/dir"}) == home_default


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(PAYLOAD * 300)  # several chunks
    assert file_sha256(path, chunk_bytes=4096) == hashlib.sha256(PAYLOAD * 300).hexdigest()
