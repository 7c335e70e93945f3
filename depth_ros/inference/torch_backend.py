"""PyTorch eager backend: an ``nn.Module`` plus its :class:`ModelSpec`, or a checkpoint file.

Checkpoint format (a dict written with ``torch.save``; see :func:`save_checkpoint`):

* ``"arch"``: ``"module.path:ClassName"`` of an ``nn.Module`` subclass; the module path must be
  ``depth_ros``/``depth_ros_training`` or below them. Anything else is refused: a checkpoint
  is untrusted input and must not choose which code gets imported.
* ``"arch_kwargs"``: dict of constructor keyword arguments (plain values).
* ``"state_dict"``: the module's ``state_dict()`` (str -> Tensor).
* ``"model_spec"``: :meth:`ModelSpec.to_json` (a JSON string).

Files are read with ``torch.load(..., weights_only=True)``, so a pickle that would construct
arbitrary Python objects is refused before any of it runs.

Module outputs (shared with :mod:`depth_ros.inference.onnx_export`, so both backends name
outputs identically): a Tensor is ``spec.output_name``; a tuple/list is
``(output_name, confidence_name if the spec has one, output_<i>...)``; a dict must have str
keys and contain ``spec.output_name``.
"""
from __future__ import annotations

import importlib
import io
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from depth_ros.errors import BackendError, ModelError
from depth_ros.inference.contract import check_input_array
from depth_ros.inference.spec import ModelSpec, sidecar_candidates

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALLOWED_ARCH_PACKAGES",
    "OPTIONS",
    "TorchBackend",
    "load_checkpoint",
    "load_untrusted",
    "named_outputs",
    "resolve_arch",
    "save_checkpoint",
]

_log = logging.getLogger(__name__)

#: Options :func:`depth_ros.inference.backend.create_backend` passes through to this backend.
OPTIONS = frozenset({"threads", "device"})

ALLOWED_ARCH_PACKAGES = ("depth_ros", "depth_ros_training")
_ARCH_RE = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<cls>[A-Za-z_]\w*)", re.ASCII)
_CHECKPOINT_KEYS = ("arch", "arch_kwargs", "state_dict", "model_spec")


def named_outputs(result: Any, spec: ModelSpec) -> "dict[str, torch.Tensor]":
    """A module's return value as ``{output name: tensor}`` (see the module docstring).

    Raises:
        ModelError: the return value is none of Tensor / tuple / list / dict-with-str-keys, or
            a dict without ``spec.output_name``.
    """
    import torch

    if isinstance(result, torch.Tensor):
        return {spec.output_name: result}
    if isinstance(result, (tuple, list)):
        names = [spec.output_name] + ([spec.confidence_name] if spec.confidence_name else [])
        names += [f"output_{i}" for i in range(len(names), len(result))]
        out = dict(zip(names, result))
    elif isinstance(result, Mapping):
        if not all(isinstance(k, str) for k in result):
            raise ModelError(f"module returns a dict with non-string keys {list(result)[:4]}; return named tensors")
        if spec.output_name not in result:
            raise ModelError(f"module returns outputs {list(result)}, the spec's output_name is {spec.output_name!r}")
        out = dict(result)
    else:
        raise ModelError(f"module returns {type(result).__name__}; expected a Tensor, tuple, list or dict")
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"module outputs {bad} are not tensors")
    return out


def resolve_arch(arch: str) -> "type[torch.nn.Module]":
    """The ``nn.Module`` class named by ``"module.path:ClassName"``, only under depth_ros packages.

    Raises:
        ModelError: malformed string, a module outside :data:`ALLOWED_ARCH_PACKAGES`, an
            import failure, or a name that is not an ``nn.Module`` subclass.
    """
    import torch

    match = _ARCH_RE.fullmatch(arch) if isinstance(arch, str) else None
    if match is None:
        raise ModelError(f"checkpoint arch must look like 'package.module:ClassName', got {arch!r}")
    module_name, cls_name = match["module"], match["cls"]
    if module_name.split(".")[0] not in ALLOWED_ARCH_PACKAGES:
        raise ModelError(
            f"checkpoint arch {arch!r} refused: only classes under {' / '.join(ALLOWED_ARCH_PACKAGES)} are loaded"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"checkpoint arch {arch!r}: cannot import {module_name} ({exc})") from None
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelError(f"checkpoint arch {arch!r} is not an nn.Module class")
    return cls


def load_untrusted(path: str | Path, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with its failures as one-line ModelErrors.

    Every checkpoint is untrusted input: ``weights_only`` refuses a pickle that would construct
    arbitrary Python objects before any of it runs. Used for the eager backend's checkpoints
    and for the training checkpoints that ``depth-ros-train`` resumes, validates and exports.

    Args:
        what: how a missing file is named ("model file", "checkpoint").

    Raises:
        ModelError: no such file, a pickle payload ("not a weights-only checkpoint"), or a file
            torch cannot read (truncated zip, not a torch file at all).
    """
    import pickle

    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"{path}: not a weights-only checkpoint, refused: the checkpoint holds Python objects beyond "
            f"tensors and plain containers ({_refused_global(str(exc))[:200]}); nothing in it was run"
        ) from None
    except (FileNotFoundError, IsADirectoryError):
        raise ModelError(f"{what} not found: {path}") from None
    except Exception as exc:  # truncated zip, not a torch file at all, ...
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise ModelError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {first[:200]})") from None


def _refused_global(message: str) -> str:
    """The line of torch's multi-line weights_only refusal that names what was refused (its
    first line advises loading with ``weights_only=False``, the wrong advice for an untrusted file)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    specific = [ln for ln in lines if not ln.startswith(("Weights only load failed", "Check the documentation"))]
    line = (specific or lines or ["weights_only load failed"])[0]
    return line.removeprefix("WeightsUnpickler error: ")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    data = load_untrusted(path, what="model file")
    if not isinstance(data, dict):
        raise ModelError(f"{path}: checkpoint is a {type(data).__name__}, expected a dict with keys {_CHECKPOINT_KEYS}")
    missing = [k for k in _CHECKPOINT_KEYS if k not in data]
    if missing:
        raise ModelError(
            f"{path}: not a depth_ros checkpoint, missing keys {missing} (has {sorted(map(str, data))[:8]}); "
            "a Lightning .ckpt must be exported first"
        )
    return data


def load_checkpoint(path: str | Path) -> "tuple[torch.nn.Module, ModelSpec]":
    """Rebuild the module of a depth_ros checkpoint (on CPU, eval mode) and read its spec.

    Raises:
        ModelError: unreadable file, a pickle payload (refused by ``weights_only``), missing
            keys, a refused or unknown arch, constructor arguments or a state dict that do not
            fit the arch; ModelSpecError for a malformed ``model_spec``.
    """
    import torch

    path = Path(path)
    data = _read_checkpoint(path)
    cls = resolve_arch(data["arch"])
    kwargs, state = data["arch_kwargs"], data["state_dict"]
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ModelError(f"{path}: arch_kwargs must be a dict with string keys, got {type(kwargs).__name__}")
    # The state dict holds every weight; a file path in the constructor arguments (e.g. an
    # encoder's weights_path) would only make an untrusted checkpoint read a file of its choice.
    kwargs = {k: (None if k.endswith("_path") else v) for k, v in kwargs.items()}
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: state_dict must map names to tensors")
    raw_spec = data["model_spec"]
    if isinstance(raw_spec, str):
        spec = ModelSpec.from_json(raw_spec, f"{path} model_spec")
    else:
        spec = ModelSpec.from_dict(raw_spec, f"{path} model_spec")
    try:
        module = cls(**kwargs)
    except (TypeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: cannot build {data['arch']} with arch_kwargs {kwargs} ({exc})") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise ModelError(f"{path}: state_dict does not fit {data['arch']}: {detail}") from None
    return module.eval(), spec


def save_checkpoint(
    path: str | Path,
    module: "torch.nn.Module",
    spec: ModelSpec,
    arch_kwargs: Mapping[str, Any] | None = None,
    arch: str | None = None,
) -> Path:
    """Write ``module`` in the checkpoint format above (atomically); returns the path.

    Args:
        arch: defaults to the module's own ``"module:ClassName"``; must resolve via
            :func:`resolve_arch` (checked before writing, so a bad checkpoint is never made).
        arch_kwargs: constructor arguments that rebuild the module (plain values only).
    """
    import torch

    from depth_ros.inference.engine_cache import atomic_write_bytes

    arch = arch or f"{type(module).__module__}:{type(module).__qualname__}"
    resolve_arch(arch)
    payload = {
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "model_spec": spec.to_json(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


class TorchBackend:
    """Eager PyTorch inference.

    Args:
        module: the network; put in eval mode here.
        spec: its contract.
        device: "cpu", "cuda" or "cuda:<i>".
        threads: if given, ``torch.set_num_threads(threads)`` (process-wide in torch).

    Raises:
        BackendError: a CUDA device was asked for and torch sees none.
    """

    def __init__(
        self, module: "torch.nn.Module", spec: ModelSpec, device: str = "cpu", threads: int | None = None
    ) -> None:
        import torch

        if threads is not None:
            if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
                raise ValueError(f"threads must be a positive integer, got {threads!r}")
            torch.set_num_threads(threads)
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r} ({exc})") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"torch device {device!r} requested but torch sees no CUDA device")
        self.module = module.eval().to(self.device)
        self.spec = spec
        self.name = f"torch-{self.device.type}"

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, spec: ModelSpec | None = None, device: str = "cpu", threads: int | None = None
    ) -> "TorchBackend":
        """Load a checkpoint. Spec precedence: ``spec`` > YAML sidecar > the checkpoint's own."""
        path = Path(path)
        module, ckpt_spec = load_checkpoint(path)
        if spec is None:
            sidecar = next((s for s in sidecar_candidates(path) if s.is_file() and s != path), None)
            spec = ModelSpec.from_yaml(sidecar) if sidecar is not None else ckpt_spec
        return cls(module, spec, device=device, threads=threads)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run once; ``x`` float32 of :func:`~depth_ros.inference.backend.spec_input_shape`.

        Returns every output by name (see :func:`named_outputs`) as float32 host arrays.
        """
        import torch

        x = check_input_array(x, self.spec)
        with torch.inference_mode():
            result = self.module(torch.from_numpy(x).to(self.device))
        return {k: v.detach().float().cpu().numpy() for k, v in named_outputs(result, self.spec).items()}
