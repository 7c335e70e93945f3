"""ZoeDepth stage 2 as a training task: a relative network made metric by a metric bins head.

Stage 1 (the MiDaS task, or a self-supervised SC-Depth :class:`~depth_ros_training.module.DepthTrainingModule`)
gives a :class:`~depth_ros_training.models.dispnet.DispNet`; stage 2 (this module) loads its
weights (``weights_only=True``), puts ZoeDepth's metric bins head
(:class:`~depth_ros_training.models.zoe_bins.MetricBinsHead`) on its bottleneck and decoder
features, and fine-tunes everything on *metric* labels with SILog (beta 0.15). ZoeD-NK: with two or
more scene types declared (e.g. indoor / outdoor, each a group of bags of the data module), one head
per type and a router on the bottleneck (:class:`~depth_ros_training.models.zoe_router.RoutedMetricHeads`),
exported together in one ONNX graph.

Choices (see ``docs/zoedepth.md`` for the head's own):

* **Loss**: SILog only (:func:`~depth_ros_training.losses.silog.silog_loss`, beta 0.15, x10, batch
  pooled). No chamfer bin loss: the paper drops it (its memory cost) and trains with SILog alone.
  With routed heads the router's cross-entropy is added with ``router_weight`` (100, the ZoeD-NK
  config's ``w_domain``).
* **Learning rates**: AdamW; the metric head(s) and router at ``lr``, the stage-1 encoder-decoder at
  ``lr * relative_lr_ratio`` (0.1 by default: ZoeDepth's code trains its MiDaS core at
  ``lr / encoder_lr_factor`` with ``encoder_lr_factor = 10``), so the relative network, and the
  generalisation it learnt, moves ten times more slowly than the new head.
* **BatchNorm statistics of the stage-1 network are frozen** (its BatchNorm layers stay in eval
  mode while stage 2 trains; their affine weights still learn): the statistics stage 1 learnt are
  kept, and the router learns on the features it will see at run time. With batch statistics, a
  small batch mixing two scene types normalises each image by the other type's statistics; in a
  short synthetic run the router then separated the types perfectly in training mode and sent every
  held-out image to one head in eval mode. ``freeze_relative_bn=False`` re-estimates them.
* **Conditioning**: the head's output distribution sees DispNet's 16-channel full-resolution
  decoder feature and the stage-1 disparity (``dispnet_features(append_disparity=True)``), as
  ZoeDepth conditions on the MiDaS relative depth.
* **Attractors off** (``attractors=False``, for the ablation): 0 attractor points at every level
  (the head then passes the bottleneck's seed bins through, resized); the bin embeddings still
  condition the output distribution.
* **Scene types** are teacher-forced in training (each sample's bag group declares its type) and
  routed by the router's argmax in validation and export.

Data: :class:`~depth_ros_training.data.labelled.LabelledDataModule` batches (``"image"`` in [0, 1],
``"target"`` inverse depth in 1/m, ``"valid"``, ``"group"``); every label group must be
``metric_depth`` (a depth topic in metres or a LiDAR, :func:`check_metric_labels`). A scene type
owns the label groups named in its ``groups`` (by default the group named like the type), so each
sample's type is known from its group.

The configuration (:class:`ZoeDepthConfig`, :class:`SceneType`) is
:mod:`depth_ros_training.tasks.zoedepth_config`, re-exported here.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from depth_ros.errors import ModelError
from depth_ros_training.eval.metrics import compute_depth_metrics, mean_metrics
from depth_ros_training.losses.silog import silog_loss
from depth_ros_training.models.dispnet import DispNet
from depth_ros_training.models.normalization import ImageNormalization
from depth_ros_training.models.zoe_bins import MetricBinsHead, dispnet_features
from depth_ros_training.models.zoe_router import RoutedMetricHeads, router_loss
from depth_ros_training.tasks.zoedepth_config import SceneType, ZoeDepthConfig

__all__ = [
    "SceneType",
    "check_metric_labels",
    "ZoeDepthConfig",
    "ZoeDepthModule",
    "ZoeExportWrapper",
    "export_zoedepth",
    "is_zoedepth_checkpoint",
    "load_stage1_dispnet",
    "load_zoedepth_module",
]

log = logging.getLogger(__name__)

#: Key prefixes under which a stage-1 checkpoint keeps its DispNet (SC-Depth's and the MiDaS task's).
_STAGE1_PREFIXES = ("depth_net.", "net.")


# ---------------------------------------------------------------------------------------------
# stage 1
# ---------------------------------------------------------------------------------------------


def load_stage1_dispnet(path: str | Path, num_layers: int) -> DispNet:
    """The DispNet of a stage-1 checkpoint (SC-Depth :class:`DepthTrainingModule` or the MiDaS task).

    The file is read with ``weights_only=True`` (:func:`depth_ros.inference.torch_backend.load_untrusted`).
    Its ``depth_net.*`` (or ``net.*``) weights must fit a ``DispNet(num_layers)`` exactly, except
    the disparity convolutions of coarser scales, which stage 2 does not use.

    Returns:
        A DispNet with one output scale, weights loaded.

    Raises:
        ModelError: unreadable, not weights-only, or an incompatible network (one line naming the
            checkpoint and what differs: missing weights, unexpected weights, shapes, ResNet depth).
    """
    from depth_ros.inference.torch_backend import load_untrusted

    path = Path(path)
    data = load_untrusted(path, what="stage-1 checkpoint")
    state = data.get("state_dict") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: not a Lightning checkpoint (no state_dict); stage 2 needs a stage-1 training checkpoint")
    prefix = next((p for p in _STAGE1_PREFIXES if any(k.startswith(p) for k in state)), None)
    if prefix is None:
        raise ModelError(f"{path}: no DispNet weights (no key starting with {' or '.join(_STAGE1_PREFIXES)}); stage 2 builds on a DispNet stage-1 network")
    hp = data.get("hyper_parameters") or {}
    theirs = hp.get("num_layers")
    network = hp.get("network")  # the MiDaS / Depth Pro tasks name their network instead
    if network == "light":
        raise ModelError(f"{path}: incompatible stage-1 network: LightDispNet (network: light) in the checkpoint; stage 2 needs a DispNet with a ResNet-{num_layers} encoder (its bottleneck and decoder levels)")
    if theirs is None and network in ("resnet18", "resnet50"):
        theirs = int(network[len("resnet"):])
    if theirs is not None and theirs != num_layers:
        raise ModelError(f"{path}: incompatible stage-1 network: ResNet-{theirs} encoder in the checkpoint, ResNet-{num_layers} in the stage-2 config (model.num_layers)")
    net = DispNet(num_layers=num_layers, num_scales=1)
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    weights = {k: v for k, v in weights.items() if not (k.startswith("dispconv.") and not k.startswith("dispconv.0."))}
    own = net.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if missing or unexpected:
        what = f"{len(missing)} weights missing (first {prefix}{missing[0]})" if missing else f"{len(unexpected)} unexpected weights (first {prefix}{unexpected[0]})"
        raise ModelError(f"{path}: incompatible stage-1 network: {what}; stage 2 needs a DispNet with a ResNet-{num_layers} encoder")
    for k, v in weights.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelError(f"{path}: incompatible stage-1 network: {prefix}{k} is {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in a ResNet-{num_layers} DispNet")
    net.load_state_dict(weights, strict=True)
    return net


# ---------------------------------------------------------------------------------------------
# the task
# ---------------------------------------------------------------------------------------------


class ZoeDepthModule(LightningModule):
    """ZoeDepth stage 2 (see the module docstring). Arguments: the fields of :class:`ZoeDepthConfig`.

    Logged: ``train/silog``, ``train/router`` and ``train/loss``; ``val/abs_rel_metric``,
    ``val/delta1_metric`` (no scaling of any kind) and, with routed heads, ``val/router_accuracy``.
    """

    def __init__(
        self,
        stage1_checkpoint: str | None = None,
        num_layers: int = 18,
        min_depth_m: float = 0.1,
        max_depth_m: float = 10.0,
        scene_types: list[SceneType] | None = None,
        n_bins: int = 64,
        output_distribution: str = "logbinomial",
        attractors: bool = True,
        attractor_type: str = "inv",
        attractor_alpha: float = 300.0,
        attractor_gamma: float = 2.0,
        n_attractors: tuple[int, ...] = (16, 8, 4, 1),
        lr: float = 1.61e-4,
        relative_lr_ratio: float = 0.1,
        weight_decay: float = 0.01,
        silog_beta: float = 0.15,
        router_weight: float = 100.0,
        freeze_relative_bn: bool = True,
        image_height: int = 128,
        image_width: int = 416,
        mean: tuple[float, float, float] = (0.45, 0.45, 0.45),
        std: tuple[float, float, float] = (0.225, 0.225, 0.225),
        group_names: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        scenes = tuple(s if isinstance(s, SceneType) else SceneType(**dict(s)) for s in (scene_types or ()))
        self.config = c = ZoeDepthConfig(
            stage1_checkpoint=stage1_checkpoint, num_layers=num_layers,
            min_depth_m=min_depth_m, max_depth_m=max_depth_m, scene_types=scenes, n_bins=n_bins,
            output_distribution=output_distribution, attractors=attractors, attractor_type=attractor_type,  # type: ignore[arg-type]
            attractor_alpha=attractor_alpha, attractor_gamma=attractor_gamma, n_attractors=tuple(n_attractors),
            lr=lr, relative_lr_ratio=relative_lr_ratio, weight_decay=weight_decay, silog_beta=silog_beta,
            router_weight=router_weight, freeze_relative_bn=freeze_relative_bn, image_height=image_height, image_width=image_width, mean=tuple(mean), std=tuple(std),  # type: ignore[arg-type]
        )
        # plain values only: the checkpoint stays loadable with weights_only=True
        self.save_hyperparameters({**{k: v for k, v in locals().items() if k in _HPARAMS}, "scene_types": [{**vars(s), "groups": list(s.groups)} for s in scenes], "group_names": list(group_names), "task": "zoedepth"})
        if c.stage1_checkpoint is not None:
            self.depth_net = load_stage1_dispnet(c.stage1_checkpoint, c.num_layers)
        else:
            self.depth_net = DispNet(num_layers=c.num_layers, num_scales=1)
        configs = c.head_configs()
        if c.routed:
            self.heads = RoutedMetricHeads(configs)
        else:
            self.head = MetricBinsHead(configs[0])
        self.scene_names = [s.name for s in c.scene_types]
        self.group_names = tuple(str(g) for g in group_names)
        self.register_buffer("_group_scene", torch.tensor(self._group_to_scene(), dtype=torch.int64), persistent=False)
        self.input_norm = ImageNormalization(c.mean, c.std)  # the batch's [0, 1] images -> the network's input
        self._val: dict[str, list] = {"metrics": [], "router_hits": []}

    def _group_to_scene(self) -> list[int]:
        """Scene-type index of each label group (routed heads; -1 for all groups with one head).

        Raises:
            ValueError: a group of no scene type, or of two.
        """
        if not self.config.routed:
            return [-1] * len(self.group_names)
        out = []
        for g in self.group_names:
            owners = [i for i, s in enumerate(self.config.scene_types) if g in s.groups]
            if len(owners) != 1:
                raise ValueError(
                    f"scene_types: label group {g!r} belongs to {'no' if not owners else 'more than one'} scene type "
                    f"({', '.join(f'{s.name}: {list(s.groups)}' for s in self.config.scene_types)})"
                )
            out.append(owners[0])
        return out

    def train(self, mode: bool = True) -> "ZoeDepthModule":
        """Train mode, with the stage-1 network's BatchNorm layers kept in eval mode when
        ``freeze_relative_bn`` (see the module docstring)."""
        super().train(mode)
        if mode:
            self._freeze_relative_bn()
        return self

    def _freeze_relative_bn(self) -> None:
        if self.config.freeze_relative_bn:
            for layer in self.depth_net.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning does not call train() when fit starts (it keeps the modules' modes), so the
        # frozen statistics are (re)applied here, before every step
        self._freeze_relative_bn()

    # -- forward -----------------------------------------------------------------------------
    def predict(self, x: Tensor, scene: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Metric depth of normalised images.

        Args:
            x: (B, 3, H, W) images normalised with ``mean``/``std``.
            scene: (B,) int64 scene-type indices to teacher-force (routed heads only), or None.

        Returns:
            (depth_m (B, 1, H, W) metres, router logits (B, N) or None for a single head).
        """
        bottleneck, levels, last = dispnet_features(self.depth_net, x, append_disparity=True)
        if self.config.routed:
            out = self.heads(bottleneck, levels, last, scene=scene)
            return out.depth_m, out.logits
        return self.head(bottleneck, levels, last).depth_m, None

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) normalised images -> (B, 1, H, W) metric depth (routed by the router)."""
        return self.predict(x)[0]

    # -- steps -------------------------------------------------------------------------------
    def _inputs(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor | None]:
        """(normalised images (B, 3, H, W), metric label depth (B, 1, H, W) metres NaN invalid,
        scene-type indices (B,) int64 or None)."""
        x = self.input_norm(batch["image"])
        valid = batch["valid"] & (batch["target"] > 0)
        depth = torch.where(valid, 1.0 / torch.where(valid, batch["target"], torch.ones_like(batch["target"])), torch.full_like(batch["target"], float("nan")))
        scene = self._group_scene[batch["group"].long()] if self.config.routed else None
        return x, depth, scene

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        x, label, scene = self._inputs(batch)
        depth_m, logits = self.predict(x, scene)
        terms = silog_loss(depth_m, label, beta=self.config.silog_beta)
        loss = terms.total
        b = depth_m.shape[0]
        self.log("train/silog", terms.total, batch_size=b)
        if logits is not None and scene is not None:
            ce = router_loss(logits, scene)
            loss = loss + self.config.router_weight * ce
            self.log("train/router", ce, batch_size=b)
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        x, label, scene = self._inputs(batch)
        depth_m, logits = self.predict(x)  # routed by the router, as at run time
        terms = silog_loss(depth_m, label, beta=self.config.silog_beta)
        self.log("val/silog", terms.total, batch_size=depth_m.shape[0])
        lo, hi = self.config.depth_range_m
        for pred, gt in zip(depth_m[:, 0].float().cpu().numpy(), label[:, 0].float().cpu().numpy()):
            m = compute_depth_metrics(pred, gt, median_scaling=False, min_depth_m=lo, max_depth_m=hi)
            if m is not None:
                self._val["metrics"].append(m)
        if logits is not None and scene is not None:
            self._val["router_hits"].extend((logits.argmax(dim=1) == scene).tolist())

    def on_validation_epoch_end(self) -> None:
        if self._val["metrics"]:
            mean = mean_metrics(self._val["metrics"])
            self.log("val/abs_rel_metric", mean.abs_rel)
            self.log("val/delta1_metric", mean.delta1)
        if self._val["router_hits"]:
            hits = self._val["router_hits"]
            self.log("val/router_accuracy", sum(hits) / len(hits))
        self._val = {"metrics": [], "router_hits": []}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW: head(s) and router at ``lr``, the stage-1 network at ``lr * relative_lr_ratio``."""
        c = self.config
        relative = list(self.depth_net.parameters())
        ids = {id(p) for p in relative}
        head = [p for p in self.parameters() if id(p) not in ids]
        groups = [{"params": head, "lr": c.lr, "name": "metric_head"}]
        if c.relative_lr_ratio > 0:
            groups.append({"params": relative, "lr": c.lr * c.relative_lr_ratio, "name": "relative_network"})
        else:
            for p in relative:
                p.requires_grad_(False)
        return torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay)


_HPARAMS = (
    "stage1_checkpoint", "num_layers", "min_depth_m", "max_depth_m", "n_bins", "output_distribution",
    "attractors", "attractor_type", "attractor_alpha", "attractor_gamma", "n_attractors", "lr", "relative_lr_ratio",
    "weight_decay", "silog_beta", "router_weight", "freeze_relative_bn", "image_height", "image_width", "mean", "std", "group_names",
)


def check_metric_labels(data_config: Any) -> None:
    """Stage 2 learns metres: every label group of the data must be ``metric_depth``.

    Args:
        data_config: :class:`~depth_ros_training.data.labelled.LabelledDataConfig`.

    Raises:
        ValueError: one line naming the groups without metric labels (before any step).
    """
    groups = tuple(getattr(data_config, "groups", ()) or ())
    if not groups:
        raise ValueError("data.data.groups: stage 2 (zoedepth) needs a metric label source: a group with label {kind: metric_depth, gt_topic|lidar_topic: ...}")
    other = [f"{g.name}: {g.label.kind}" for g in groups if g.label.kind != "metric_depth"]
    if other:
        raise ValueError(
            f"data.data.groups: stage 2 (zoedepth) trains on metric labels only (kind metric_depth: a depth topic in metres "
            f"or a LiDAR); got {', '.join(other)}"
        )


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------


class ZoeExportWrapper(nn.Module):
    """Stage-2 network for export: (1, 3, h, w) normalised image -> (1, 1, h, w) depth in metres
    (ModelSpec ``depth_metric``); routed heads are routed by the router's argmax inside the graph."""

    def __init__(self, module: ZoeDepthModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, image: Tensor) -> Tensor:
        return self.module.predict(image)[0]


def is_zoedepth_checkpoint(data: Any) -> bool:
    """Whether a loaded checkpoint dictionary is one of :class:`ZoeDepthModule`."""
    hp = data.get("hyper_parameters") if isinstance(data, dict) else None
    return isinstance(hp, dict) and hp.get("task") == "zoedepth"


def load_zoedepth_module(checkpoint: str | Path) -> ZoeDepthModule:
    """A :class:`ZoeDepthModule` from its checkpoint (``weights_only=True``; CPU, eval mode).

    The stage-1 checkpoint path in the hyper-parameters is not read: the state dict holds every weight.

    Raises:
        ModelError: unreadable, not weights-only, or not a checkpoint of this task.
    """
    from depth_ros.inference.torch_backend import load_untrusted
    from depth_ros_training.checkpoint import rebuild_module

    path = Path(checkpoint)
    data = load_untrusted(path)
    if not is_zoedepth_checkpoint(data):
        raise ModelError(f"{path}: not a ZoeDepth stage-2 checkpoint (hyper_parameters.task is not 'zoedepth')")

    def build(hp: dict[str, Any]) -> ZoeDepthModule:
        return ZoeDepthModule(**{**{k: v for k, v in hp.items() if k != "task"}, "stage1_checkpoint": None})

    return rebuild_module(path, data, build, "a loadable ZoeDepth stage-2 checkpoint")


def zoedepth_spec(module: ZoeDepthModule, name: str | None = None) -> Any:
    """The ``depth_metric`` ModelSpec of a stage-2 module: input as trained, range of its bins."""
    from depth_ros.inference.spec import ModelSpec

    c = module.config
    lo, hi = c.depth_range_m
    extra = {
        "trained_with": "depth_ros_training",
        "task": "zoedepth",
        "output_distribution": c.output_distribution,
        "attractors": str(c.attractors).lower(),
        "scene_types": ",".join(module.scene_names) if module.scene_names else "single",
    }
    return ModelSpec(
        output_kind="depth_metric", output_name="depth", name=name or f"zoedepth_resnet{c.num_layers}_{c.image_width}x{c.image_height}",
        input_height=c.image_height, input_width=c.image_width, mean=c.mean, std=c.std,
        min_depth_m=lo, max_depth_m=hi, metric=True, scale_source="metric_labels", extra=extra,
    )


def export_zoedepth(checkpoint: str | Path, output_dir: str | Path, name: str | None = None, check_parity: bool = True) -> Any:
    """``depth-ros-train export`` of a stage-2 checkpoint: ``depth.onnx`` (``depth_metric``, its
    range in the ModelSpec), checked against PyTorch in ONNX Runtime and loaded as the runtime loads it.

    Returns:
        :class:`~depth_ros_training.export.ExportResult` (``paths["depth"]``).
    """
    from depth_ros.inference.onnx_export import export_onnx
    from depth_ros_training.export import ExportResult, _check_loadable, _parity

    import dataclasses

    from depth_ros_training.tasks.train_camera import labelled_run_camera_fields

    module = load_zoedepth_module(checkpoint)
    c = module.config
    # the fit run's camera: the image size (aspect) and its focal length at the network input, so the
    # runtime corrects the metric depth on a camera of another focal length (scale policy model)
    spec = dataclasses.replace(zoedepth_spec(module, name), **labelled_run_camera_fields(checkpoint, c.image_width, c.image_height))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    wrapper = ZoeExportWrapper(module).eval().cpu()
    path = export_onnx(wrapper, spec, out / "depth.onnx", check_atol=1e-3 if check_parity else None)
    result = ExportResult(paths={"depth": path}, specs={"depth": spec})
    if check_parity:
        result.parity_max_abs_error["depth"] = _parity(path, wrapper, spec)
    _check_loadable(path)
    return result


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def build_zoedepth(model: dict[str, Any], data_config: Any) -> ZoeDepthModule:
    """The stage-2 module from a task YAML's ``model:`` keys and its labelled data config; the
    label kinds are checked first (:func:`check_metric_labels`), then the config, then the stage-1
    checkpoint, all before training starts.

    Raises:
        ValueError: one line naming the key (``model.<key> ...``, ``data.data.groups ...``).
        ModelError: the stage-1 checkpoint is unreadable or incompatible.
    """
    import inspect

    check_metric_labels(data_config)
    known = set(inspect.signature(ZoeDepthModule).parameters) - {"group_names"}
    unknown = sorted(set(model) - known)
    if unknown:
        raise ValueError(f"model: unknown key(s) {', '.join(unknown)} for task zoedepth; known: {', '.join(sorted(known))}")
    kwargs = {k: tuple(v) if isinstance(v, list) and k != "scene_types" else v for k, v in model.items()}
    try:
        return ZoeDepthModule(group_names=tuple(g.name for g in data_config.groups), **kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ValueError(f"model.{exc}") from None


def _build_for_run(task: str, model: dict[str, Any], data_config: Any) -> ZoeDepthModule:
    """:func:`build_zoedepth` as :func:`~depth_ros_training.tasks.runner.run_labelled_task` builds a model: a
    bad key is a :class:`~depth_ros_training.tasks.config.TaskConfigError`, a stage-1 checkpoint
    that cannot serve stays a :class:`ModelError`."""
    from depth_ros_training.tasks.config import TaskConfigError

    try:
        return build_zoedepth(model, data_config)
    except ValueError as exc:
        if isinstance(exc, ModelError):
            raise
        raise TaskConfigError(str(exc)) from None


def run_zoedepth(command: str, argv: list[str]) -> int:
    """``depth-ros-train fit|validate`` of ``task: zoedepth``: the labelled tasks' runner
    (:func:`~depth_ros_training.tasks.runner.run_labelled_task`, same YAML layout, trainer, checkpoints and
    logs) with the stage-2 builder: every label group metric, the bins in range and the stage-1
    checkpoint compatible, all checked before the first step."""
    from depth_ros_training.tasks.runner import run_labelled_task

    return run_labelled_task(command, "zoedepth", argv, _build_for_run)
