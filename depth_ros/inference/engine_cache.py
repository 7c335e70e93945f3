"""TensorRT engine cache: keys, the on-disk file format, and the load-or-rebuild decision.

Pure Python (hashlib, json, os): no TensorRT import here, so all of it is tested on machines
without a GPU. The TensorRT calls that produce and consume the engine bytes live in
:mod:`depth_ros.inference.tensorrt_backend`.

A serialized TensorRT engine is only valid for the exact TensorRT version and GPU model that
built it, and it bakes in the precision and the (fixed) input shape. The cache key is
therefore ``sha256(ONNX bytes) + TensorRT version + GPU name + precision + input shape``; any
change to any component gives a different key and so a different file.

File layout (little-endian)::

    b"DRTRTENG"            8 bytes magic
    format version         uint32 (currently 1)
    header length          uint32, at most MAX_HEADER_BYTES
    header                 UTF-8 JSON: {"key": {...}, "key_digest": str,
                                        "payload_sha256": str, "payload_bytes": int}
    payload                the serialized engine, exactly payload_bytes long

A file that is missing, truncated, corrupt (bad magic, bad JSON, wrong checksum) or written
for another key is not loaded: :meth:`EngineCache.lookup` reports why, the caller rebuilds
and logs a warning, and :meth:`EngineCache.store` replaces the file atomically.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from depth_ros.inference.spec import json_nesting_exceeds
from depth_ros.safeio import write_atomically

__all__ = [
    "CacheLookup",
    "ENGINE_FILE_MAGIC",
    "ENGINE_FORMAT_VERSION",
    "EngineCache",
    "EngineCacheError",
    "EngineKey",
    "PRECISIONS",
    "decode_engine_file",
    "default_cache_dir",
    "encode_engine_file",
    "file_sha256",
]

_log = logging.getLogger(__name__)

ENGINE_FILE_MAGIC = b"DRTRTENG"
ENGINE_FORMAT_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
#: The header nests 2 deep ({"key": {"input_shape": [...]}}); deeper is refused before parsing.
MAX_HEADER_NESTING = 4
#: Largest TensorRT timing cache read back, bytes. Timing caches hold per-layer tactic timings
#: and measure hundreds of KB to a few MB; a larger file is ignored (TensorRT starts afresh)
#: instead of being read whole into memory.
MAX_TIMING_CACHE_BYTES = 64 << 20
PRECISIONS = ("fp16", "fp32", "int8")
_PREFIX = struct.Struct("<8sII")  # magic, format version, header length


class EngineCacheError(Exception):
    """A cached engine file cannot be used (the message says why); the caller rebuilds."""


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (ONNX files can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on.

    Args:
        onnx_sha256: hex sha256 of the ONNX file's bytes.
        trt_version: ``tensorrt.__version__`` of the builder, e.g. "10.3.0".
        gpu_name: device name plus compute capability, e.g. "NVIDIA Orin (sm_87)".
        precision: one of :data:`PRECISIONS`.
        input_shape: the network input shape at its most frames, e.g. (1, 3, 192, 640), or
            (4, 3, 192, 640) for a model of ``max_batch`` 4.
    """

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    precision: str
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.onnx_sha256):
            raise ValueError(f"onnx_sha256 must be 64 lowercase hex digits, got {self.onnx_sha256!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        shape = tuple(self.input_shape)
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ValueError(f"input_shape must be positive integers, got {self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)
        for name in ("trt_version", "gpu_name"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EngineKey":
        return cls(
            onnx_sha256=data["onnx_sha256"],
            trt_version=data["trt_version"],
            gpu_name=data["gpu_name"],
            precision=data["precision"],
            input_shape=tuple(data["input_shape"]),
        )

    def digest(self) -> str:
        """Hex sha256 of the canonical JSON of all components (stable across runs)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def file_name(self) -> str:
        """``<model-hash-prefix>-<precision>-<key-digest-prefix>.engine`` (readable, unique)."""
        return f"{self.onnx_sha256[:12]}-{self.precision}-{self.digest()[:16]}.engine"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/depth_ros/engines``, or ``~/.cache/depth_ros/engines`` when unset."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "depth_ros" / "engines"


def encode_engine_file(key: EngineKey, payload: bytes) -> bytes:
    """The bytes of an engine file: prefix, JSON header (key + payload checksum), payload."""
    header = json.dumps(
        {
            "key": key.to_dict(),
            "key_digest": key.digest(),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_bytes": len(payload),
        },
        sort_keys=True,
    ).encode()
    return _PREFIX.pack(ENGINE_FILE_MAGIC, ENGINE_FORMAT_VERSION, len(header)) + header + payload


def decode_engine_file(data: bytes, expected: EngineKey) -> bytes:
    """The payload of an engine file, after checking it was written whole and for ``expected``.

    Raises:
        EngineCacheError: bad magic or format version, truncated header or payload, invalid
            header JSON, a key other than ``expected``, or a payload checksum mismatch.
    """
    if len(data) < _PREFIX.size:
        raise EngineCacheError(f"truncated: {len(data)} bytes, shorter than the {_PREFIX.size}-byte prefix")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != ENGINE_FILE_MAGIC:
        raise EngineCacheError(f"not a depth_ros engine file (magic {magic!r}, expected {ENGINE_FILE_MAGIC!r})")
    if version != ENGINE_FORMAT_VERSION:
        raise EngineCacheError(f"engine file format {version}, expected {ENGINE_FORMAT_VERSION}")
    if header_len > MAX_HEADER_BYTES:
        raise EngineCacheError(f"header claims {header_len} bytes (limit {MAX_HEADER_BYTES})")
    header_end = _PREFIX.size + header_len
    if len(data) < header_end:
        raise EngineCacheError(f"truncated header: need {header_end} bytes, file has {len(data)}")
    try:
        text = data[_PREFIX.size : header_end].decode()
        if json_nesting_exceeds(text, MAX_HEADER_NESTING):
            raise EngineCacheError(f"corrupt header (JSON nested more than {MAX_HEADER_NESTING} levels deep)")
        header = json.loads(text)
        stored_key = EngineKey.from_dict(header["key"])
        payload_sha256 = str(header["payload_sha256"])
        payload_bytes = int(header["payload_bytes"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:200]  # a message may quote the header: keep it short, one line
        raise EngineCacheError(f"corrupt header ({type(exc).__name__}: {detail})") from None
    if stored_key != expected:
        changed = [k for k, v in expected.to_dict().items() if stored_key.to_dict().get(k) != v]
        raise EngineCacheError(f"built for another key (differs in {', '.join(changed)})")
    payload = data[header_end:]
    if len(payload) != payload_bytes:
        raise EngineCacheError(f"truncated payload: header says {payload_bytes} bytes, file has {len(payload)}")
    if hashlib.sha256(payload).hexdigest() != payload_sha256:
        raise EngineCacheError("payload checksum mismatch (file corrupt)")
    return payload


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory + rename
    (:func:`depth_ros.safeio.write_atomically`: a crash mid-write leaves the old file or none,
    and the file gets the umask's mode, not ``mkstemp``'s 0600)."""
    write_atomically(path, lambda f: f.write(data))


@dataclass(frozen=True)
class CacheLookup:
    """Outcome of :meth:`EngineCache.lookup`.

    ``payload`` is the engine bytes on a hit, else None; ``reason`` is "hit", "missing", or
    the reason a file was rejected ("corrupt header ...", "built for another key ...").
    """

    path: Path
    payload: bytes | None
    reason: str

    @property
    def hit(self) -> bool:
        return self.payload is not None

    @property
    def needs_rebuild_warning(self) -> bool:
        """A file existed but was unusable: the user should hear about the rebuild."""
        return self.payload is None and self.reason != "missing"


class EngineCache:
    """A directory of engine files, one per :class:`EngineKey`, plus TensorRT timing caches.

    Args:
        cache_dir: where engines live; None -> :func:`default_cache_dir`.
        max_engine_bytes: files larger than this are refused before being read (an engine
            for a depth network is tens to hundreds of MB).
    """

    def __init__(self, cache_dir: str | Path | None = None, max_engine_bytes: int = 4 << 30) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.max_engine_bytes = int(max_engine_bytes)

    def path_for(self, key: EngineKey) -> Path:
        return self.cache_dir / key.file_name()

    def timing_cache_path(self, trt_version: str, gpu_name: str) -> Path:
        """One timing cache per TensorRT version and GPU, shared by all models built there."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{trt_version}-{gpu_name}").strip("_")
        return self.cache_dir / f"timing-{slug}.cache"

    def lookup(self, key: EngineKey) -> CacheLookup:
        """Load the engine for ``key`` if a valid file exists; never raises for a bad file."""
        path = self.path_for(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return CacheLookup(path, None, "missing")
        except OSError as exc:  # e.g. cache_dir is a file
            return CacheLookup(path, None, f"unreadable ({exc})")
        if size > self.max_engine_bytes:
            return CacheLookup(path, None, f"file is {size} bytes, over the {self.max_engine_bytes}-byte limit")
        try:
            payload = decode_engine_file(path.read_bytes(), key)
        except EngineCacheError as exc:
            return CacheLookup(path, None, str(exc))
        except OSError as exc:
            return CacheLookup(path, None, f"unreadable ({exc})")
        return CacheLookup(path, payload, "hit")

    def store(self, key: EngineKey, payload: bytes) -> Path:
        """Write the engine for ``key`` atomically; returns its path."""
        path = self.path_for(key)
        atomic_write_bytes(path, encode_engine_file(key, payload))
        _log.info("cached TensorRT engine (%d bytes) at %s", len(payload), path)
        return path

    def read_timing_cache(self, trt_version: str, gpu_name: str) -> bytes:
        """The stored timing cache bytes, or b"" when none (TensorRT starts a fresh one)."""
        path = self.timing_cache_path(trt_version, gpu_name)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_TIMING_CACHE_BYTES + 1)  # never more than the cap
        except FileNotFoundError:
            return b""
        except OSError as exc:
            _log.warning("ignoring unreadable TensorRT timing cache %s (%s)", path, exc)
            return b""
        if len(data) > MAX_TIMING_CACHE_BYTES:
            _log.warning(
                "ignoring TensorRT timing cache %s: larger than %d bytes (a timing cache is a few MB)",
                path, MAX_TIMING_CACHE_BYTES,
            )
            return b""
        return data

    def write_timing_cache(self, trt_version: str, gpu_name: str, data: bytes) -> None:
        if data:
            atomic_write_bytes(self.timing_cache_path(trt_version, gpu_name), data)
