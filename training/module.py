"""LightningModule: SC-Depth v1 (+ v3 terms) self-supervised depth and pose, metric by velocity.

One shared step serves training and validation. It runs as named phases, each a method that
returns a typed result, so another training task can override one phase and keep the others
(monodepth2's ``process_batch`` / ``predict_poses`` / ``compute_losses`` layout):

1. :meth:`~DepthTrainingModule.prepare_inputs` -> :class:`StepInputs`: the batch's images in
   [0, 1] (the losses compare them; the networks normalise them at their input), intrinsics,
   odometry;
2. :meth:`~DepthTrainingModule.predict_depths` -> :class:`DepthPrediction`: DispNet on the
   target (and the sources when a term uses them), every scale;
3. :meth:`~DepthTrainingModule.predict_poses` -> :class:`PosePrediction`: PoseNet's
   ``T_src_tgt`` and the transforms the photometric terms warp with (PoseNet's or odometry's);
4. :meth:`~DepthTrainingModule.photometric_terms` -> :class:`PhotometricTerms`: SC-Depth v1
   photometric, geometry and smoothness terms over the scales;
5. :meth:`~DepthTrainingModule.hint_terms` -> :class:`LossTerms`: Depth Hints;
6. :meth:`~DepthTrainingModule.odometry_terms` -> :class:`LossTerms`: velocity and pose
   supervision, and the pose statistics that are logged;
7. :meth:`~DepthTrainingModule.teacher_terms` -> :class:`LossTerms`: SC-Depth v3 terms
   against a teacher's pseudo-depth.

Terms (each logged by name under ``train/`` or ``val/``):

* ``photometric``: 0.15 L1 + 0.85 SSIM between the target and each warped source, with
  per-pixel minimum over sources, auto-mask and self-discovered mask (SC-Depth v1);
* ``geometry``: SC-Depth geometry consistency between target and source depths;
* ``smoothness``: edge-aware smoothness of the mean-normalised disparity;
* ``velocity``: PackNet velocity supervision, | ||t|| - distance travelled (odometry) |,
  which pins the scale of pose, and so of depth, to metres;
* ``pose_supervision``: L1 between PoseNet's and odometry's ``T_src_tgt``;
* ``hint`` (with ``hint_weight`` > 0): Depth Hints from a plane sweep over the frames' own
  motion, used where the hint reprojects better than the network's depth
  (``hint_fraction``: the share of pixels that used it);
* ``ranking`` / ``normal`` / ``normal_ranking`` (SC-Depth v3, only with a teacher's
  pseudo-depth in the batch).

Validation also computes AbsRel / delta1 against the bag's ground-truth depth when present,
median-scaled (``val/abs_rel_median``, ``val/delta1_median``) and as is (``val/abs_rel_metric``,
``val/delta1_metric``). The settings tried and their measured effect are recorded in
docs/training-notes.md.

About 600 lines: the phases of one step, the networks they call and the Lightning hooks stay
in one class so that a task overriding a phase sees all of them; the phases' result types and
the configurations live in :mod:`depth_ros_training.phases` and
:mod:`depth_ros_training.module_config`.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor

from depth_ros_training.eval.metrics import compute_depth_metrics, mean_metrics
from depth_ros_training.losses import ScDepthTerms, edge_aware_smoothness, sc_depth_loss, scale_intrinsics, velocity_loss
from depth_ros_training.losses.hints import depth_hint_loss, hint_depth, min_reprojection_error
from depth_ros_training.models import DispNet, ImageNormalization, LightPoseNet, PoseNet, disp_to_depth, pose_vec_to_mat
from depth_ros_training.models.light_dispnet import LightDispNet
from depth_ros_training.module_config import HintConfig, LossWeights, NetworkConfig, OptimConfig, PoseConfig
from depth_ros_training.phases import DepthPrediction, LossTerms, PhotometricTerms, PosePrediction, StepInputs

__all__ = [
    "DepthPrediction",
    "DepthTrainingModule",
    "LossTerms",
    "PhotometricTerms",
    "PosePrediction",
    "StepInputs",
    "bf16_supported",
]

log = logging.getLogger(__name__)


class DepthTrainingModule(LightningModule):
    """DispNet + PoseNet trained from image sequences (see module docstring).

    The keyword arguments are flat (the keys of ``model:`` in config/train.yaml and of the
    saved hyper-parameters); they are grouped and validated into ``self.network``
    (:class:`~depth_ros_training.module_config.NetworkConfig`), ``self.weights``
    (:class:`~depth_ros_training.module_config.LossWeights`), ``self.hint``
    (:class:`~depth_ros_training.module_config.HintConfig`), ``self.pose``
    (:class:`~depth_ros_training.module_config.PoseConfig`) and ``self.optim``
    (:class:`~depth_ros_training.module_config.OptimConfig`), whose docstrings describe each
    setting; :meth:`from_configs` builds the module from the groups.

    Args:
        num_layers, min_depth_m, max_depth_m, init_depth_m, encoder_weights_path, mean, std,
            image_height, image_width, num_scales, network_dtype, depth_network, pose_network:
            :class:`NetworkConfig`.
            ``mean``/``std`` are the ModelSpec's: the batch carries images in [0, 1], which
            the losses compare, and ``self.input_norm`` normalises them with these right before
            the depth and pose networks (as the exported model takes its input). With ``num_scales`` > 1, scale k (resolution / 2^k) is
            compared with the images area-downsampled to its size and each term is the mean
            over scales (export uses scale 0). ``init_depth_m`` sets the bias of DispNet's
            output layer so that it starts at that depth everywhere. ``network_dtype=
            "bfloat16"`` runs the networks' forward and backward passes under bfloat16
            autocast (weights, optimiser and losses stay float32; :func:`bf16_supported`
            says whether the CPU has it natively).
        photometric_weight, geometry_weight, smoothness_weight, velocity_weight,
            pose_supervision_weight, ranking_weight, normal_weight, normal_ranking_weight,
            ssim_weight, use_auto_mask, use_self_mask, auto_mask_error, ranking_pairs,
            ranking_tau: :class:`LossWeights`.
        warp_pose_source, pose_pairs, pose_from_inverse, source_depth_grad:
            :class:`PoseConfig`. When nothing uses the source depths (no geometry term, no
            self-discovered mask, no ranking term, odometry warps, no source gradient) they
            are not computed: the photometric term is then the forward direction's half (see
            :func:`~depth_ros_training.losses.sc_depth_loss`), with the same gradient.
        hint_weight, hint_depths, hint_downsample, hint_ratio, hint_loss, hint_cache_mb:
            :class:`HintConfig`. The sweep uses the warp poses, and also the batch's
            ``hint_srcs`` with odometry poses when present; the hint is cached per sample
            (keyed by the batch's ``index``, mirrored for a mirrored sample) only with odometry
            warps, where it depends on the sample alone.
        lr, weight_decay, lr_schedule, schedule_seconds: :class:`OptimConfig` (a resumed run
            with a larger max_steps stretches the remaining one-cycle schedule).
        log_images_every_n_steps: read by the image callback.
    """

    def __init__(
        self,
        num_layers: int = 18,
        min_depth_m: float = 0.1,
        max_depth_m: float = 100.0,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        schedule_seconds: float | None = None,
        photometric_weight: float = 1.0,
        geometry_weight: float = 0.5,
        smoothness_weight: float = 0.1,
        velocity_weight: float = 0.0,
        pose_supervision_weight: float = 0.0,
        warp_pose_source: str = "network",
        pose_pairs: str = "all",
        ranking_weight: float = 0.0,
        normal_weight: float = 0.0,
        normal_ranking_weight: float = 0.0,
        ssim_weight: float = 0.85,
        use_auto_mask: bool = True,
        use_self_mask: bool = True,
        pose_from_inverse: bool = False,
        source_depth_grad: bool = True,
        init_depth_m: float | None = None,
        encoder_weights_path: str | None = None,
        mean: tuple[float, float, float] = (0.45, 0.45, 0.45),
        std: tuple[float, float, float] = (0.225, 0.225, 0.225),
        image_height: int = 128,
        image_width: int = 416,
        num_scales: int = 1,
        hint_weight: float = 0.0,
        hint_depths: int = 32,
        hint_downsample: int = 2,
        hint_ratio: float = 1.0,
        hint_loss: str = "log1p",
        hint_cache_mb: float = 1024.0,
        network_dtype: str = "float32",
        ranking_pairs: int = 3000,
        ranking_tau: float = 0.03,
        log_images_every_n_steps: int = 100,
        auto_mask_error: str = "photometric",
        depth_network: str = "resnet",
        pose_network: str = "resnet",
    ) -> None:
        super().__init__()
        args = dict(locals())
        self.network = NetworkConfig.from_hparams(args)
        self.weights = LossWeights.from_hparams(args)
        self.hint = HintConfig.from_hparams(args)
        self.pose = PoseConfig.from_hparams(args)
        self.optim = OptimConfig.from_hparams(args)
        if not isinstance(log_images_every_n_steps, int) or log_images_every_n_steps < 1:
            raise ValueError(f"log_images_every_n_steps must be an integer >= 1, got {log_images_every_n_steps!r}")
        self.save_hyperparameters()
        net = self.network
        if net.depth_network == "light":
            self.depth_net: torch.nn.Module = LightDispNet(num_scales=net.num_scales)
        else:
            self.depth_net = DispNet(num_layers=net.num_layers, num_scales=net.num_scales, weights_path=net.encoder_weights_path)
        if net.pose_network == "light":
            self.pose_net: torch.nn.Module = LightPoseNet()
        else:
            self.pose_net = PoseNet(num_layers=net.num_layers, weights_path=net.encoder_weights_path)
        if net.init_depth_m is not None:
            self._init_output_depth(float(net.init_depth_m))
        self.input_norm = ImageNormalization(net.mean, net.std)  # [0, 1] -> the networks' input
        self._val_metrics: dict[str, list] = {"median": [], "metric": []}
        self._hint_cache: dict[int, Tensor] = {}  # sample index -> (1, H, W) hint, unmirrored
        self._hint_cache_bytes = 0

    @classmethod
    def from_configs(
        cls,
        network: NetworkConfig | None = None,
        weights: LossWeights | None = None,
        hint: HintConfig | None = None,
        pose: PoseConfig | None = None,
        optim: OptimConfig | None = None,
        log_images_every_n_steps: int = 100,
    ) -> "DepthTrainingModule":
        """The module from its grouped configs (None: that group's defaults); the saved
        hyper-parameters are the same flat keys as with the keyword constructor."""
        groups = (network or NetworkConfig(), weights or LossWeights(), hint or HintConfig(), pose or PoseConfig(), optim or OptimConfig())
        kwargs: dict[str, Any] = {}
        for group in groups:
            kwargs.update(dataclasses.asdict(group))
        return cls(**kwargs, log_images_every_n_steps=log_images_every_n_steps)

    # -- networks ------------------------------------------------------------------------------
    def predict_depth(self, image01: Tensor) -> tuple[Tensor, Tensor]:
        """(disparity w in (0, 1), depth_m), both (B, 1, H, W), for images (B, 3, H, W) in [0, 1]."""
        w = self._depth_scales(image01)[0]
        return w, self._to_depth(w)

    @property
    def needs_source_depths(self) -> bool:
        """Whether a training step predicts the source frames' depths: the geometry term, the
        self-discovered mask and the ranking term (through the mask) use them, and so does
        the backward photometric direction when it has a gradient (source depths with
        gradient, or PoseNet's poses in the warp)."""
        w, p = self.weights, self.pose
        return bool(p.source_depth_grad or w.geometry_weight > 0 or w.use_self_mask or w.ranking_weight > 0 or p.warp_pose_source != "odometry")

    def predict_pose(self, tgt01: Tensor, src01: Tensor) -> Tensor:
        """(B, 6) ``T_src_tgt`` (axis-angle rad, translation m) for images (B, 3, H, W) in [0, 1]."""
        tgt, src = self.input_norm(tgt01), self.input_norm(src01)
        with self._network_autocast(tgt):
            vec = self.pose_net(tgt, src)
        return vec.float()

    def _to_depth(self, w: Tensor) -> Tensor:
        return disp_to_depth(w, self.network.min_depth_m, self.network.max_depth_m)

    def _network_autocast(self, x: Tensor) -> Any:
        """Autocast context of the networks' passes (see ``network_dtype``)."""
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.network.network_dtype == "bfloat16")

    def _depth_scales(self, image01: Tensor) -> list[Tensor]:
        """DispNet's multi-scale outputs for images (N, 3, H, W) in [0, 1], float32 whatever
        ``network_dtype``."""
        x = self.input_norm(image01)
        with self._network_autocast(x):
            ws = self.depth_net(x)
        return [w.float() for w in ws]

    def _init_output_depth(self, depth_m: float) -> None:
        net = self.network
        min_disp, max_disp = 1.0 / net.max_depth_m, 1.0 / net.min_depth_m
        w = (1.0 / depth_m - min_disp) / (max_disp - min_disp)
        convs = [m for m in self.depth_net.dispconv.modules() if isinstance(m, torch.nn.Conv2d)]
        with torch.no_grad():
            for conv in convs:
                conv.bias.fill_(math.log(w / (1.0 - w)))  # sigmoid(bias) = w

    def _hints(self, batch: dict[str, Tensor], tgt01: Tensor, src01: list[Tensor], warp: list[Tensor], K: Tensor, cache: bool) -> Tensor:
        """(B, 1, H, W) hint depths of a batch, from the cache where the sample's hint is
        known (see ``hint_cache_mb``), from a plane sweep otherwise."""
        hc, net = self.hint, self.network

        def sweep(rows: Tensor | slice) -> Tensor:
            return hint_depth(tgt01[rows], [x[rows] for x in src01], [T[rows] for T in warp], K[rows],
                              net.min_depth_m, net.max_depth_m, hc.hint_depths, hc.hint_downsample, self.weights.ssim_weight)

        if not (cache and hc.hint_cache_mb > 0 and self.pose.warp_pose_source == "odometry" and "index" in batch):
            return sweep(slice(None))
        indexes = [int(i) for i in batch["index"]]
        mirrored = batch["hflip"].bool().tolist() if "hflip" in batch else [False] * len(indexes)
        missing = [r for r, i in enumerate(indexes) if i not in self._hint_cache]
        fresh = dict(zip(missing, sweep(torch.tensor(missing, device=tgt01.device)).unbind(0))) if missing else {}
        out = []
        for r, i in enumerate(indexes):
            if r in fresh:
                hint = fresh[r]
                nbytes = hint.numel() * 4
                if self._hint_cache_bytes + nbytes <= hc.hint_cache_mb * 2**20:
                    self._hint_cache[i] = (hint.flip(-1) if mirrored[r] else hint).float().clone()
                    self._hint_cache_bytes += nbytes
            else:
                cached = self._hint_cache[i].to(tgt01.dtype)
                hint = cached.flip(-1) if mirrored[r] else cached
            out.append(hint)
        return torch.stack(out, dim=0)

    def to_unit_range(self, x: Tensor) -> Tensor:
        """A batch image (B, 3, H, W) for display, in [0, 1]: samples carry [0, 1] already, so
        this only clamps (the image logger in :mod:`depth_ros_training.callbacks` calls it)."""
        return x.clamp(0.0, 1.0)

    # -- the phases ------------------------------------------------------------------------------
    def prepare_inputs(self, batch: dict[str, Tensor]) -> StepInputs:
        """The batch's images in [0, 1], intrinsics and odometry (see :class:`StepInputs`)."""
        return StepInputs(
            tgt=batch["tgt"],
            srcs=batch["srcs"],
            K=batch["K"],
            distance_m=batch.get("distance_m"),
            T_odom=batch.get("T_src_tgt_odom"),
        )

    def predict_depths(self, inputs: StepInputs) -> DepthPrediction:
        """DispNet on the target and, when a term uses them, on the sources (one pass with
        gradient when ``source_depth_grad``, a pass without gradient otherwise)."""
        b = inputs.batch_size
        if self.pose.source_depth_grad:
            frames = torch.cat([inputs.tgt, inputs.srcs.flatten(0, 1)], dim=0)  # (B + B*S, 3, H, W): one depth pass
            w_scales = self._depth_scales(frames)
            tgt_ws: list[Tensor] = [w[:b] for w in w_scales]
            src_ws: list[Tensor | None] = [w[b:] for w in w_scales]
        else:
            tgt_ws = self._depth_scales(inputs.tgt)
            if self.needs_source_depths:
                with torch.no_grad():
                    src_ws = list(self._depth_scales(inputs.srcs.flatten(0, 1)))
            else:
                src_ws = [None] * len(tgt_ws)
        return DepthPrediction(tgt_disps=tgt_ws, src_disps=src_ws, tgt_depth=self._to_depth(tgt_ws[0]))

    def predict_poses(self, inputs: StepInputs, stage: str) -> PosePrediction:
        """PoseNet on the pose pairs, and the transforms the photometric terms warp with."""
        tgt, srcs, distance, T_odom = inputs.tgt, inputs.srcs, inputs.distance_m, inputs.T_odom
        b, s = inputs.batch_size, inputs.num_sources
        src_list = inputs.src_list
        if self.pose.pose_pairs == "one" and stage == "train" and s > 1:
            # one source per sample for PoseNet (it only feeds the supervised pose terms here)
            rows = torch.arange(b, device=tgt.device)
            pick = torch.randint(s, (b,), device=tgt.device)
            pose_pairs = [srcs[rows, pick]]
            pose_distance = None if distance is None else distance[rows, pick].unsqueeze(1)
            pose_T_odom = None if T_odom is None else T_odom[rows, pick].unsqueeze(1)
        else:
            pose_pairs, pose_distance, pose_T_odom = src_list, distance, T_odom
        vecs = [self.predict_pose(tgt, src) for src in pose_pairs]  # T_src_tgt
        poses = [pose_vec_to_mat(v) for v in vecs]
        if self.pose.warp_pose_source == "odometry":
            if T_odom is None or not torch.isfinite(T_odom).all():
                raise ValueError("warp_pose_source='odometry' needs odometry poses for every sample (T_src_tgt_odom has NaN)")
            warp = list(T_odom.to(tgt.dtype).unbind(1))
            warp_inv = [torch.linalg.inv(T) for T in warp]
        else:  # PoseNet's backward transforms are needed only to warp with them
            warp = poses
            if self.pose.pose_from_inverse:
                warp_inv = [torch.linalg.inv(T) for T in poses]
            else:
                warp_inv = [pose_vec_to_mat(self.predict_pose(src, tgt)) for src in src_list]  # T_tgt_src
        return PosePrediction(vecs=vecs, poses=poses, distance_m=pose_distance, T_odom=pose_T_odom, warp=warp, warp_inv=warp_inv)

    def photometric_terms(self, inputs: StepInputs, depths: DepthPrediction, poses: PosePrediction) -> PhotometricTerms:
        """SC-Depth v1 photometric, geometry and smoothness terms, each the mean over scales.

        Scale k compares the disparity at resolution / 2^k with the images area-downsampled to
        its size and K rescaled to match (pixel-centre convention); smoothness is weighted
        1/2^k as in monodepth2.
        """
        w = self.weights
        b, s = inputs.batch_size, inputs.num_sources
        photometric, geometry, smoothness = [], [], []
        sc: ScDepthTerms | None = None
        for k, (w_k, src_w_k) in enumerate(zip(depths.tgt_disps, depths.src_disps)):
            depth_k = depths.tgt_depth if k == 0 else self._to_depth(w_k)
            src_depth_k = None if src_w_k is None else list(self._to_depth(src_w_k).view(b, s, 1, *w_k.shape[-2:]).unbind(1))
            tgt01_k = inputs.tgt if k == 0 else F.avg_pool2d(inputs.tgt, 2**k)
            src01_k = inputs.src_list if k == 0 else [F.avg_pool2d(x, 2**k) for x in inputs.src_list]
            sc_k = sc_depth_loss(
                tgt01_k,
                src01_k,
                depth_k,
                src_depth_k,
                poses.warp,
                poses.warp_inv,
                inputs.K if k == 0 else scale_intrinsics(inputs.K, 2**-k),
                ssim_weight=w.ssim_weight,
                use_mask=w.use_self_mask,
                use_auto_mask=w.use_auto_mask,
                auto_mask_error=w.auto_mask_error,
            )
            if k == 0:
                sc = sc_k
            photometric.append(sc_k.photometric)
            geometry.append(sc_k.geometry)
            smoothness.append(edge_aware_smoothness(w_k, tgt01_k) / 2**k)
        assert sc is not None
        terms = {
            "photometric": torch.stack(photometric).mean(),
            "geometry": torch.stack(geometry).mean(),
            "smoothness": torch.stack(smoothness).mean(),
        }
        loss = w.photometric_weight * terms["photometric"] + w.geometry_weight * terms["geometry"] + w.smoothness_weight * terms["smoothness"]
        terms["auto_mask_fraction"] = torch.as_tensor(sc.auto_mask_fraction, dtype=inputs.tgt.dtype).detach()
        return PhotometricTerms(loss=loss, terms=terms, sc=sc)

    def hint_terms(self, batch: dict[str, Tensor], inputs: StepInputs, depths: DepthPrediction, poses: PosePrediction,
                   photometric: PhotometricTerms, stage: str) -> LossTerms:
        """Depth Hints (``hint_weight`` > 0): the plane-sweep hint where it reprojects better
        than the network's depth (the sweep also sees the batch's ``hint_srcs``, with
        odometry poses, when present)."""
        hc = self.hint
        if not hc.hint_weight > 0:
            return LossTerms(loss=None, terms={})
        tgt01, K, ssim_weight = inputs.tgt, inputs.K, self.weights.ssim_weight
        with torch.no_grad():
            sweep_src01, sweep_warp = inputs.src_list, poses.warp
            if "hint_srcs" in batch:  # frames only the sweep sees (DataConfig.hint_offsets), odometry poses
                T_hint, T_odom = batch["T_hint_src_tgt_odom"], inputs.T_odom
                if T_odom is None or not (torch.isfinite(T_hint).all() and torch.isfinite(T_odom).all()):
                    raise ValueError("hint sources need odometry poses for every frame of the sample (T_hint_src_tgt_odom / T_src_tgt_odom has NaN)")
                sweep_src01 = inputs.src_list + list(batch["hint_srcs"].unbind(1))
                sweep_warp = list(T_odom.to(tgt01.dtype).unbind(1)) + list(T_hint.to(tgt01.dtype).unbind(1))
            hint = self._hints(batch, tgt01, sweep_src01, sweep_warp, K, cache=stage == "train")
            hint_error = min_reprojection_error(tgt01, sweep_src01, hint, sweep_warp, K, ssim_weight)
            if "hint_srcs" in batch:  # compare both depths on the same frames
                pred_error = min_reprojection_error(tgt01, sweep_src01, depths.tgt_depth.detach(), sweep_warp, K, ssim_weight)
            else:  # the scale-0 per-pixel minimum sc_depth_loss computed
                assert photometric.sc is not None
                pred_error = photometric.sc.min_photo_error
        term, fraction = depth_hint_loss(depths.tgt_depth, hint, pred_error, hint_error, hc.hint_ratio, hc.hint_loss)
        return LossTerms(loss=hc.hint_weight * term, terms={"hint": term, "hint_fraction": fraction.detach()})

    def odometry_terms(self, poses: PosePrediction) -> LossTerms:
        """Velocity and pose supervision of PoseNet by odometry (when weighted), and the pose
        statistics logged every step (``translation_m``, ``odom_distance_m``,
        ``translation_cos_odom``)."""
        w = self.weights
        distance, T_odom, vecs = poses.distance_m, poses.T_odom, poses.vecs
        terms: dict[str, Tensor] = {}
        loss: Tensor | None = None
        if w.velocity_weight > 0:
            if distance is None or not torch.isfinite(distance).any():
                raise ValueError("velocity supervision is on but the batch has no odometry distance (distance_m all NaN)")
            v_terms = []
            for i, vec in enumerate(vecs):
                d = distance[:, i]
                ok = torch.isfinite(d)
                if ok.any():
                    v_terms.append(velocity_loss(vec[ok, 3:], d[ok]))
            terms["velocity"] = torch.stack(v_terms).mean()
            loss = w.velocity_weight * terms["velocity"]
        if w.pose_supervision_weight > 0:
            if T_odom is None or not torch.isfinite(T_odom).all(dim=(-2, -1)).any():
                raise ValueError("pose supervision is on but the batch has no odometry pose (T_src_tgt_odom all NaN)")
            ok = torch.isfinite(T_odom).all(dim=(-2, -1))  # (B, P)
            T_pred = torch.stack(poses.poses, dim=1)  # (B, P, 4, 4)
            err = (T_pred[ok][:, :3, 3] - T_odom[ok][:, :3, 3]).abs().mean() + (T_pred[ok][:, :3, :3] - T_odom[ok][:, :3, :3]).abs().mean()
            terms["pose_supervision"] = err
            weighted = w.pose_supervision_weight * err
            loss = weighted if loss is None else loss + weighted
        with torch.no_grad():
            t_norm = torch.stack([v[:, 3:].norm(dim=1) for v in vecs], dim=1)  # (B, P)
            terms["translation_m"] = t_norm.mean()
            if distance is not None and torch.isfinite(distance).any():
                ok = torch.isfinite(distance)
                terms["odom_distance_m"] = distance[ok].mean()
            if T_odom is not None:
                t_pred = torch.stack([v[:, 3:] for v in vecs], dim=1)  # (B, P, 3)
                t_odom = T_odom[..., :3, 3]
                ok = torch.isfinite(t_odom).all(dim=-1)
                if ok.any():
                    cos = F.cosine_similarity(t_pred[ok], t_odom[ok], dim=-1, eps=1e-9)
                    terms["translation_cos_odom"] = cos.mean()  # 1 = PoseNet moves the way odometry does
        return LossTerms(loss=loss, terms=terms)

    def teacher_terms(self, batch: dict[str, Tensor], inputs: StepInputs, depths: DepthPrediction,
                      photometric: PhotometricTerms) -> LossTerms:
        """SC-Depth v3 terms against the batch's ``teacher_depth`` (when present and weighted):
        dynamic-region depth ranking (dynamic = ``1 - self-discovered mask``), normal
        matching, edge-guided normal ranking."""
        w = self.weights
        if "teacher_depth" not in batch or not w.uses_teacher:
            return LossTerms(loss=None, terms={})
        from depth_ros_training.losses import depth_ranking_loss, edge_guided_normal_ranking_loss, normal_matching_loss

        pseudo, depth = batch["teacher_depth"], depths.tgt_depth
        terms: dict[str, Tensor] = {}
        loss: Tensor | None = None

        def add(name: str, weight: float, value: Tensor) -> None:
            nonlocal loss
            terms[name] = value
            loss = weight * value if loss is None else loss + weight * value

        if w.ranking_weight > 0:
            assert photometric.sc is not None
            dynamic = 1.0 - photometric.sc.self_mask  # high where target and source depths disagree
            add("ranking", w.ranking_weight, depth_ranking_loss(depth, pseudo, dynamic, w.ranking_pairs, w.ranking_tau))
        if w.normal_weight > 0:
            add("normal", w.normal_weight, normal_matching_loss(depth, pseudo, inputs.K))
        if w.normal_ranking_weight > 0:
            add("normal_ranking", w.normal_ranking_weight, edge_guided_normal_ranking_loss(depth, pseudo, inputs.tgt, inputs.K))
        return LossTerms(loss=loss, terms=terms)

    # -- the shared step -------------------------------------------------------------------------
    def shared_step(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Loss terms of one batch: the phases in order (see the module docstring).

        Returns:
            (total loss, {term name: scalar}, target depth (B, 1, H, W) metres).
        """
        inputs = self.prepare_inputs(batch)
        depths = self.predict_depths(inputs)
        poses = self.predict_poses(inputs, stage)
        photometric = self.photometric_terms(inputs, depths, poses)
        phases = [
            photometric,
            self.hint_terms(batch, inputs, depths, poses, photometric, stage),
            self.odometry_terms(poses),
            self.teacher_terms(batch, inputs, depths, photometric),
        ]
        total: Tensor | None = None
        terms: dict[str, Tensor] = {}
        for phase in phases:
            terms.update(phase.terms)
            if phase.loss is not None:
                total = phase.loss if total is None else total + phase.loss
        assert total is not None  # the photometric phase always adds its terms
        terms["total"] = total
        return total, terms, depths.tgt_depth


    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        total, terms, depth = self.shared_step(batch, "train")
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite training loss at step {self.global_step}: { {k: float(v) for k, v in terms.items()} }")
        b = batch["tgt"].shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, batch_size=b, sync_dist=False)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=b)
        self._last_train = {"tgt": batch["tgt"][:1].detach(), "depth": depth[:1].detach()}
        return total

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        total, terms, depth = self.shared_step(batch, "val")
        b = batch["tgt"].shape[0]
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, batch_size=b, sync_dist=True)
        self.log("val/loss", total, prog_bar=True, batch_size=b, sync_dist=True)
        gt = batch.get("gt_depth_m")
        if gt is not None:
            pred = depth.detach().float().cpu().numpy()
            gtn = gt.detach().float().cpu().numpy()
            for i in range(b):
                for mode, median in (("median", True), ("metric", False)):
                    m = compute_depth_metrics(pred[i, 0], gtn[i, 0], median_scaling=median, max_depth_m=self.network.max_depth_m)
                    if m is not None:
                        self._val_metrics[mode].append(m)
        if batch_idx == 0:
            self._last_val = {"tgt": batch["tgt"][:1].detach(), "depth": depth[:1].detach()}
        return total

    def on_validation_epoch_end(self) -> None:
        for mode in ("median", "metric"):
            m = mean_metrics(self._val_metrics[mode])
            if m is not None:
                self.log(f"val/abs_rel_{mode}", m.abs_rel, sync_dist=True)
                self.log(f"val/delta1_{mode}", m.delta1, sync_dist=True)
                if mode == "median":
                    self.log("val/median_scale", m.scale, sync_dist=True)
            self._val_metrics[mode] = []

    # -- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        o = self.optim
        opt = torch.optim.AdamW(self.parameters(), lr=o.lr, weight_decay=o.weight_decay) if o.weight_decay > 0 else torch.optim.Adam(self.parameters(), lr=o.lr)
        if o.lr_schedule == "constant":
            return opt
        total_steps = self._total_steps() if o.schedule_seconds is None else 0
        if o.lr_schedule == "step":
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, int(0.8 * total_steps))], gamma=0.1)
        elif o.schedule_seconds is not None:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _OneCycleByTime(float(o.schedule_seconds)))
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _OneCycle(max(total_steps, 2)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _total_steps(self) -> int:
        trainer = self.trainer
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return int(trainer.max_steps)
        return int(trainer.estimated_stepping_batches)

    # -- export helpers --------------------------------------------------------------------------
    @property
    def is_metric(self) -> bool:
        """True when trained with velocity supervision (depth and pose in metres)."""
        return self.weights.velocity_weight > 0



def bf16_supported() -> bool:
    """True when this CPU runs bfloat16 convolutions natively (oneDNN: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without the query
        return False


class _OneCycle:
    """LR factor of the "onecycle" schedule at a step (see DepthTrainingModule's lr_schedule).

    A plain callable (not OneCycleLR) because its length comes from the *current* trainer:
    the scheduler state saved in a checkpoint holds only the step, so resuming with another
    ``max_steps`` works instead of failing past the old total.
    """

    def __init__(self, total_steps: int, warmup_fraction: float = 0.1, start: float = 0.1, end: float = 0.05) -> None:
        self.total = total_steps
        self.warmup = max(1, int(warmup_fraction * total_steps))
        self.start, self.end = start, end

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.start + (1.0 - self.start) * step / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.end + (1.0 - self.end) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _OneCycleByTime(_OneCycle):
    """The one-cycle factor as a function of wall-clock time since the schedule was built
    (the step argument is ignored); past ``seconds`` it stays at the final value."""

    _RESOLUTION = 10_000

    def __init__(self, seconds: float) -> None:
        super().__init__(self._RESOLUTION)
        self.seconds = seconds
        self.started = time.monotonic()

    def __call__(self, step: int) -> float:
        elapsed = time.monotonic() - self.started
        return super().__call__(int(self._RESOLUTION * min(1.0, elapsed / self.seconds)))
