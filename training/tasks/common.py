"""What the labelled-depth tasks share: the network choice, its bottleneck, the batch as the
phases read it, metrics after alignment, per-group logging and the ONNX export.

Every task runs the same phases on a batch of
:class:`~depth_ros_training.data.labelled.LabelledBagDataset` samples::

    inputs = self.step_inputs(batch)        # LabelledInputs: normalised image, target, mask, K, groups
    pred = self.predict(inputs)             # the network's output in the task's space
    terms = self.compute_losses(inputs, pred)   # a typed terms dataclass with .total
    self.log_terms(terms, ...)              # each term by name, and the loss of each group by name
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_ros.errors import ModelError
from depth_ros.inference.spec import ModelSpec

from depth_ros_training.losses.midas import align_scale_shift
from depth_ros_training.models.normalization import normalize_image

__all__ = [
    "NETWORKS",
    "ExportedTask",
    "LabelledInputs",
    "LabelledTask",
    "NetworkFields",
    "abs_rel",
    "aligned_abs_rel",
    "bottleneck_channels",
    "build_network",
    "config_from_mapping",
    "export_task_module",
    "features_and_disparity",
    "load_task_checkpoint",
    "step_inputs",
]

log = logging.getLogger(__name__)

#: An output within this of 0 or 1 counts as saturated (float32 sigmoid: ~exp(-14)).
SATURATED_EPS = 1e-6
#: Share of saturated output pixels from which a run is reported as collapsed.
COLLAPSED_SHARE = 0.99

#: ``network:`` choices: ResNet-18 / ResNet-50 DispNet, or the CPU real-time LightDispNet.
NETWORKS: tuple[str, ...] = ("resnet18", "resnet50", "light")


def build_network(network: str, encoder_weights_path: str | None = None) -> nn.Module:
    """The depth network of a task: one output scale (the losses' own pyramids make the scales).

    Raises:
        ValueError: an unknown ``network`` (naming the choices), or weights for ``light``.
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")
    if network == "light":
        if encoder_weights_path:
            raise ValueError("encoder_weights_path is for the ResNet encoders; network light has none")
        from depth_ros_training.models.light_dispnet import LightDispNet

        return LightDispNet(num_scales=1)
    from depth_ros_training.models.dispnet import DispNet

    return DispNet(num_layers=18 if network == "resnet18" else 50, num_scales=1, weights_path=encoder_weights_path)


def bottleneck_channels(network: str) -> int:
    """Channels of the network's 1/32 bottleneck (the focal-length head's input)."""
    from depth_ros_training.models.light_dispnet import ENC_CHANNELS

    return {"resnet18": 512, "resnet50": 2048, "light": ENC_CHANNELS[-1]}[network]


def features_and_disparity(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """One pass of a task network: ``(bottleneck (B, C, H/32, W/32), finest sigmoid (B, 1, H, W))``.

    The same values as ``net(x)[0]`` (tested), with the encoder's last features kept for the
    focal-length head (DispNet through :func:`~depth_ros_training.models.zoe_bins.dispnet_features`;
    LightDispNet's loop restated here, as that helper restates DispNet's).
    """
    from depth_ros_training.models.light_dispnet import LightDispNet

    if isinstance(net, LightDispNet):
        features = []
        out = x
        for stage in net.encoder:
            out = stage(out)
            features.append(out)
        for i in range(4, -1, -1):
            out = F.interpolate(net.reduce[i](out), scale_factor=2.0, mode="nearest")
            if i > 0:
                out = out + net.skip[i](features[i - 1])
            out = net.fuse[i](out)
        return features[4], torch.sigmoid(net.dispconv[0](out))
    from depth_ros_training.models.zoe_bins import dispnet_features

    bottleneck, _, last = dispnet_features(net, x)
    return bottleneck, torch.sigmoid(net.dispconv[0](last))


def config_from_mapping(cls: type, values: Mapping[str, Any], where: str = "model") -> Any:
    """A frozen config dataclass from a mapping; unknown keys are an error naming them and
    ``where`` (``model.foo``), list values of tuple fields become tuples."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**kwargs)


@dataclass(frozen=True)
class LabelledInputs:
    """A labelled batch as the phases read it.

    Attributes:
        image: (B, 3, H, W) normalised with the ModelSpec's mean / std (the network's input).
        image01: (B, 3, H, W) in [0, 1].
        target: (B, 1, H, W) inverse-depth target (1/m where ``metric``), 0 where invalid.
        valid: (B, 1, H, W) bool.
        K: (B, 3, 3) intrinsics in pixels at (W, H).
        kind: (B,) int64 label kind (index into LABEL_KINDS).
        group: (B,) int64 label group.
        exact: (B,) bool, exact (synthetic) labels.
    """

    image: Tensor
    image01: Tensor
    target: Tensor
    valid: Tensor
    K: Tensor
    kind: Tensor
    group: Tensor
    exact: Tensor

    @property
    def metric(self) -> Tensor:
        """(B,) bool, the target is metric inverse depth (``metric_depth`` labels)."""
        from depth_ros_training.data.labels import LABEL_KINDS

        return self.kind == LABEL_KINDS.index("metric_depth")


def step_inputs(batch: Mapping[str, Tensor], mean: Sequence[float], std: Sequence[float]) -> LabelledInputs:
    """A collated batch of labelled samples ([0, 1] images) -> :class:`LabelledInputs`, whose
    ``image`` is the network input: the batch's images normalised with ``mean`` / ``std``."""
    image01 = batch["image"]
    return LabelledInputs(
        image=normalize_image(image01, mean, std),
        image01=image01,
        target=batch["target"],
        valid=batch["valid"].bool(),
        K=batch["K"],
        kind=batch["kind"],
        group=batch["group"],
        exact=batch["exact"].bool(),
    )


@dataclass(frozen=True)
class NetworkFields:
    """The fields every labelled task's config has (its subclasses add the task's own; keywords
    only in practice, as the YAML gives them).

    Attributes:
        network: ``resnet18`` | ``resnet50`` (DispNet) | ``light`` (LightDispNet, CPU real time).
        image_height, image_width: network input size, pixels (recorded in the ModelSpec).
        mean, std: input normalisation of [0, 1] pixels (recorded in the ModelSpec).
        min_depth_m, max_depth_m: the depth range the model is trusted at (ModelSpec; the clamp of
            the validation alignment).
        encoder_weights_path: optional local ResNet state_dict for the encoder.
    """

    network: str = "resnet18"
    image_height: int = 128
    image_width: int = 160
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    min_depth_m: float = 0.1
    max_depth_m: float = 100.0
    encoder_weights_path: str | None = None

    def __post_init__(self) -> None:
        """Normalise and check these fields (``mean``/``std`` made tuples of floats).

        Raises:
            ValueError: naming the field.
        """
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got {self.network!r}")
        if self.image_height % 32 or self.image_width % 32 or min(self.image_height, self.image_width) < 64:
            raise ValueError(f"image_height/image_width must be multiples of 32, >= 64, got {self.image_height}x{self.image_width}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each (std > 0), got {self.mean}, {self.std}")
        if not 0 < self.min_depth_m < self.max_depth_m < math.inf:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m < inf, got {self.min_depth_m}, {self.max_depth_m}")


class LabelledTask(pl.LightningModule):
    """The Lightning side the labelled tasks share (MiDaS, Depth Pro): the config, the label
    groups' names in the logs, the batch's inputs and the training step. A subclass sets
    ``task`` and ``config_class`` (a :class:`NetworkFields` subclass) and defines ``predict``, ``compute_losses`` and ``log_terms``.

    Keywords: the config's fields; ``group_names`` names the label groups in the logs.
    """

    task: str = ""
    config_class: type

    def __init__(self, group_names: tuple[str, ...] = (), **config: Any) -> None:
        super().__init__()
        self.config = self.config_class(**config)
        self.group_names = tuple(group_names)
        self.save_hyperparameters({"task": self.task, "group_names": list(self.group_names), **dataclasses.asdict(self.config)})
        self.depth_net = build_network(self.config.network, self.config.encoder_weights_path)

    def step_inputs(self, batch: Mapping[str, Tensor]) -> LabelledInputs:
        return step_inputs(batch, self.config.mean, self.config.std)

    def group_name(self, g: int) -> str:
        return self.group_names[g] if g < len(self.group_names) else f"group{g}"

    def log_group_losses(self, stage: str, per_group: Mapping[int, Tensor], batch_size: int) -> None:
        """``<stage>/loss_<group name>`` for each label group in the batch."""
        for g, value in per_group.items():
            self.log(f"{stage}/loss_{self.group_name(g)}", value, batch_size=batch_size)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        inputs = self.step_inputs(batch)
        pred = self.predict(inputs)
        terms = self.compute_losses(inputs, pred)
        self.log_terms("train", terms, inputs.image.shape[0])
        self._check_saturation(pred, inputs.image.shape[0])
        return terms.total

    def unit_output(self, pred: Any) -> Tensor | None:
        """The network's final sigmoid output in (0, 1) within ``pred`` (for the saturation check),
        or None when the task has none."""
        return None

    def _check_saturation(self, pred: Any, batch_size: int) -> None:
        """``train/saturated``: share of output pixels at the sigmoid's ends (within
        :data:`SATURATED_EPS` of 0 or 1). Above :data:`COLLAPSED_SHARE` no gradient reaches the
        network any more (a learning rate too high for a loss blind to the output's scale or shift,
        e.g. MiDaS's): warned once per run, naming the learning rate."""
        out = self.unit_output(pred)
        if out is None:
            return
        with torch.no_grad():
            share = float(((out <= SATURATED_EPS) | (out >= 1.0 - SATURATED_EPS)).float().mean())
        self.log("train/saturated", share, batch_size=batch_size)
        if share > COLLAPSED_SHARE and not getattr(self, "_collapse_warned", False):
            self._collapse_warned = True
            log.warning(
                "%s: the network's output is saturated on %.1f %% of the pixels at step %d (its sigmoid at 0 or 1): "
                "training has collapsed and will not recover; lower model.lr (now %g) and start again",
                self.task, 100.0 * share, self.global_step, getattr(self.config, "lr", float("nan")),
            )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        inputs = self.step_inputs(batch)
        pred = self.predict(inputs)
        self.log_terms("val", self.compute_losses(inputs, pred), inputs.image.shape[0])
        self.log_validation_metrics(inputs, pred)

    def log_validation_metrics(self, inputs: LabelledInputs, pred: Any) -> None:
        """The task's accuracy figures of a validation batch (a subclass's; none here)."""

    def log_mean_abs_rel(self, name: str, rel: Tensor) -> None:
        """Log the mean of the finite per-image AbsRel values ``rel`` (B,) as ``name``."""
        ok = torch.isfinite(rel)
        if bool(ok.any()):
            self.log(name, rel[ok].mean(), prog_bar=True, batch_size=int(ok.sum()))

    def task_spec(self, name: str | None, *, output_kind: str, metric: bool, scale_source: str, extra: Mapping[str, str]) -> ModelSpec:
        """The exported model's spec: the config's input size, normalisation and depth range,
        output ``depth``, named ``<task>_<network>_<W>x<H>`` unless ``name`` is given, and
        ``extra`` after the task's and network's names; the training camera fields of the
        module's ``train_camera_fields`` when set (:func:`depth_ros_training.tasks.train_camera.labelled_run_camera_fields`)."""
        c = self.config
        return ModelSpec(
            **getattr(self, "train_camera_fields", {}),
            output_kind=output_kind,
            output_name="depth",
            input_height=c.image_height,
            input_width=c.image_width,
            mean=c.mean,
            std=c.std,
            min_depth_m=c.min_depth_m,
            max_depth_m=c.max_depth_m,
            metric=metric,
            scale_source=scale_source,
            name=name or f"{self.task}_{c.network}_{c.image_width}x{c.image_height}",
            extra={"trained_with": "depth_ros_training", "task": self.task, "network": c.network, **extra},
        )


def abs_rel(depth_pred: Tensor, depth_true: Tensor, valid: Tensor) -> Tensor:
    """(B,) mean ``|d - d*| / d*`` per image over ``valid`` (NaN for an image without valid pixels)."""
    b = depth_pred.shape[0]
    err = torch.where(valid, (depth_pred - depth_true).abs() / torch.where(valid, depth_true, torch.ones_like(depth_true)), torch.zeros_like(depth_pred))
    n = valid.reshape(b, -1).sum(1)
    return torch.where(n > 0, err.reshape(b, -1).sum(1) / n.clamp(min=1), torch.full_like(n, float("nan"), dtype=depth_pred.dtype))


def aligned_abs_rel(inv_pred: Tensor, inv_true: Tensor, valid: Tensor, min_depth_m: float, max_depth_m: float) -> Tensor:
    """(B,) AbsRel after per-image least-squares scale and shift *in inverse depth* (MiDaS's protocol).

    ``(s, t) = argmin sum_valid (s p + t - 1/d*)^2``; the aligned inverse depth is clamped to
    ``[1/max_depth_m, 1/min_depth_m]`` (an affine fit can cross 0 where the scene is far) before
    ``depth = 1 / (s p + t)``. Alignment in inverse depth rather than depth, as MiDaS evaluates: the
    network's output is affine-invariant *inverse* depth, an affine map of depth would not fit it.

    Args:
        inv_pred: (B, 1, H, W) predicted relative inverse depth.
        inv_true: (B, 1, H, W) true inverse depth in 1/m (0 where invalid).
        valid: (B, 1, H, W) bool.
    """
    fit = align_scale_shift(inv_pred.double(), inv_true.double(), valid)
    aligned = (fit.scale.view(-1, 1, 1, 1) * inv_pred.double() + fit.shift.view(-1, 1, 1, 1)).clamp(1.0 / max_depth_m, 1.0 / min_depth_m)
    depth_true = torch.where(valid, 1.0 / torch.where(valid, inv_true.double(), torch.ones_like(inv_true.double())), torch.ones_like(aligned))
    return abs_rel(1.0 / aligned, depth_true, valid).float()


@dataclass
class ExportedTask:
    """Written files ({"depth": path}) and the parity error measured ({"depth": max |ort - torch|})."""

    paths: dict[str, Path]
    parity_max_abs_error: dict[str, float]
    specs: dict[str, ModelSpec]


def export_task_module(wrapper: nn.Module, spec: ModelSpec, output_dir: str | Path, check_parity: bool = True) -> ExportedTask:
    """Write ``depth.onnx`` of a task (spec embedded), check it against PyTorch and load it the way
    the runtime does (:func:`depth_ros.inference.backend.create_backend`'s dry run).

    Raises:
        ModelError: export, parity or loading failed.
    """
    from depth_ros.inference.onnx_export import export_onnx

    from depth_ros_training.export import _check_loadable, _parity

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    wrapper = wrapper.eval().cpu()
    path = export_onnx(wrapper, spec, out / "depth.onnx", check_atol=1e-4 if check_parity else None)
    parity: dict[str, float] = {}
    if check_parity:
        depth_only = _FirstOutput(wrapper, spec.output_name)
        parity["depth"] = _parity(path, depth_only, spec)
        log.info("depth.onnx parity on an image-like input: max |ort - torch| = %.3g", parity["depth"])
    _check_loadable(path)
    return ExportedTask(paths={"depth": path}, parity_max_abs_error=parity, specs={"depth": spec})


class _FirstOutput(nn.Module):
    """The spec's output of a wrapper that may return a dict of outputs (for the parity check)."""

    def __init__(self, inner: nn.Module, name: str) -> None:
        super().__init__()
        self.inner = inner
        self.name = name

    def forward(self, image: Tensor) -> Tensor:
        out = self.inner(image)
        return out[self.name] if isinstance(out, dict) else out


def load_task_checkpoint(path: str | Path) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
    """(task, hyper-parameters, state dict) of a Lightning checkpoint, read ``weights_only``.

    A checkpoint without a ``task`` hyper-parameter is an SC-Depth one (saved before tasks existed).

    Raises:
        ModelError: not a weights-only checkpoint with hyper-parameters.
    """
    from depth_ros.inference.torch_backend import load_untrusted

    data = load_untrusted(Path(path))
    try:
        hparams = dict(data["hyper_parameters"])
        state = data["state_dict"]
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a depth_ros training checkpoint (no {exc})") from None
    return str(hparams.get("task", "sc_depth")), hparams, state
