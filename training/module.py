"""LightningModule: SC-Depth v1 (+ v3 terms) self-supervised depth and pose, metric by velocity.

One shared step serves training and validation. Terms (each logged by name under
``train/`` or ``val/``):

* ``photometric``: 0.15 L1 + 0.85 SSIM between the target and each warped source, with
  per-pixel minimum over sources, auto-mask and self-discovered mask (SC-Depth v1);
* ``geometry``: SC-Depth geometry consistency between target and source depths;
* ``smoothness``: edge-aware smoothness of the mean-normalised disparity;
* ``velocity``: PackNet velocity supervision, | ||t|| - distance travelled (odometry) |,
  which pins the scale of pose, and so of depth, to metres;
* ``hint`` (with ``hint_weight`` > 0): Depth Hints from a plane sweep over the frames' own
  motion, used where the hint reprojects better than the network's depth
  (``hint_fraction``: the share of pixels that used it);
* ``ranking`` / ``normal`` (SC-Depth v3, only with a teacher's pseudo-depth in the batch).

Validation also computes AbsRel / delta1 against the bag's ground-truth depth when present,
median-scaled (``val/abs_rel_median``, ``val/delta1_median``) and as is (``val/abs_rel_metric``,
``val/delta1_metric``).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor

from depth_ros_training.eval.metrics import compute_depth_metrics, mean_metrics
from depth_ros_training.losses import edge_aware_smoothness, sc_depth_loss, scale_intrinsics, velocity_loss
from depth_ros_training.losses.hints import HINT_LOSSES, depth_hint_loss, hint_depth, min_reprojection_error
from depth_ros_training.models import DispNet, PoseNet, disp_to_depth, pose_vec_to_mat

__all__ = ["DepthTrainingModule", "bf16_supported"]

log = logging.getLogger(__name__)


class DepthTrainingModule(LightningModule):
    """DispNet + PoseNet trained from image sequences (see module docstring).

    Args:
        num_layers: ResNet depth of both encoders (18 or 50).
        min_depth_m, max_depth_m: range of the ``disparity_sigmoid`` parametrisation.
        lr: Adam learning rate (peak of the schedule).
        weight_decay: Adam weight decay.
        lr_schedule: "constant", "step" (x0.1 at 80 % of max steps) or "onecycle" (linear
            warm-up over 10 % of the trainer's max steps from lr/10, then cosine decay to lr/20;
            a resumed run with a larger max_steps stretches the remaining schedule).
        schedule_seconds: run the "onecycle" schedule over this much wall-clock time instead
            of over max_steps (for a fixed time budget, with ``Trainer(max_time=...)``).
        photometric_weight, geometry_weight, smoothness_weight: SC-Depth v1 weights
            (1.0, 0.5, 0.1 in SC-Depth).
        velocity_weight: velocity supervision weight (0 disables it; metric depth needs it).
        pose_supervision_weight: weight of an L1 loss between PoseNet's ``T_src_tgt`` and the
            bag's odometry (translation in metres + rotation-matrix entries), the full 6-DoF
            form of velocity supervision (0 disables it). With the norm alone, a PoseNet trained
            from scratch can keep a wrong direction for hundreds of steps while its length is
            already pinned, and the depth network escapes that pose by going to max depth;
            the direction from odometry removes that failure in short runs.
        warp_pose_source: "network" (SC-Depth: the photometric and geometry terms warp with
            PoseNet's poses) or "odometry" (they warp with the bag's odometry poses, so depth
            learns from correct, metric motion from the first step; PoseNet then learns from
            the velocity / pose-supervision terms only).
        pose_pairs: "all" (PoseNet runs on every (target, source) pair) or "one" (in
            training, on one randomly chosen source per sample; needs ``warp_pose_source=
            "odometry"``, where PoseNet feeds only the velocity / pose-supervision terms).
            With two sources this halves PoseNet's share of a step (about a third of a CPU
            step at 64x192), so a time-limited run makes more depth updates.
        ranking_weight, normal_weight, normal_ranking_weight: SC-Depth v3 weights of the
            dynamic-region depth ranking, normal matching and edge-guided normal ranking terms
            (used only when the batch carries ``teacher_depth``).
        ssim_weight: SSIM share of the photometric error.
        use_auto_mask, use_self_mask: SC-Depth v1 masks.
        pose_from_inverse: obtain ``T_tgt_src`` by inverting PoseNet's ``T_src_tgt`` instead
            of running PoseNet on the swapped pair (halves the pose cost).
        source_depth_grad: back-propagate through the source frames' depths (SC-Depth). False
            computes them without gradient (the geometry term then shapes the target depth
            only), which saves about a third of a CPU step. When nothing uses them (no geometry
            term, no self-discovered mask, no ranking term, odometry warps, no source
            gradient) they are not computed at all: the photometric term is then the forward
            direction's half (see :func:`~depth_ros_training.losses.sc_depth_loss`), with the
            same gradient as the bidirectional term would have.
        init_depth_m: start the depth network at this depth everywhere (the bias of its
            output layer), instead of the sigmoid's midpoint (``1/depth`` halfway between the
            inverse min and max depths, ~0.2 m for 0.1..100 m). A from-scratch network that
            starts far from the scene's depths can overshoot into the saturated end of the
            sigmoid (constant max depth) and stall there.
        encoder_weights_path: optional local ResNet state_dict for both encoders.
        mean, std: input normalisation (the same as the dataset's / ModelSpec's), used to
            bring images back to [0, 1] for the photometric terms.
        image_height, image_width: network input size (recorded for export).
        num_scales: disparity scales the losses see (1..4). Scale k (resolution / 2^k) is
            compared with the images area-downsampled to its size (an image pyramid, as in
            SfMLearner and SC-Depth's multi-scale variant; monodepth2 upsamples every scale
            to full resolution instead, at four times the loss cost), and each term is the
            mean over scales. Coarse scales see large motions as small ones, which widens
            the photometric loss's basin for near surfaces. Export uses scale 0 only.
        hint_weight: weight of the depth-hint term (0 disables it): a plane sweep over
            ``hint_depths`` depths (uniform in inverse depth over the min..max range) with the
            warp poses finds, per pixel, the depth whose reprojection explains the target
            best; where it explains it better than the network's depth, the network is pulled
            towards it with ``log(1 + |d - d_hint|)`` (Depth Hints, with hints from the frames'
            motion instead of a stereo pair). It reaches surfaces whose true match lies too
            far from the current warp for the photometric gradient (near objects under
            forward motion). When the batch carries ``hint_srcs`` (``DataConfig.hint_offsets``)
            the sweep also sees those frames, all with odometry poses, and the hint and the
            network's depth are compared on the same, wider set of frames. See
            :mod:`depth_ros_training.losses.hints`.
        hint_depths: plane-sweep hypotheses (>= 3).
        hint_ratio: the hint is used where its reprojection error is below this fraction of
            the network's (1 = Depth Hints; lower rejects hints that win by chance).
        hint_loss: ``"log1p"`` (Depth Hints' ``log(1 + |d - d_hint|)``) or ``"log_ratio"``
            (``|log d - log d_hint|``), see :func:`~depth_ros_training.losses.hints.depth_hint_loss`.
        hint_downsample: the sweep runs on images area-downsampled by this factor (1, 2 or 4)
            and its depth is upsampled (nearest) to the network's resolution: at 64x192, half
            resolution keeps ~90 % of near pixels within 10 % of the truth at a fifth of the
            cost (measured on the demo's corridors: 143 vs 726 ms per batch of 4, 32 depths).
        hint_cache_mb: with ``warp_pose_source="odometry"`` a training sample's hint depends on
            its frames and odometry alone, so it is computed the first time the sample is seen
            and reused afterwards (mirrored for a mirrored sample; keyed by the batch's
            ``index``), up to this many MB of float32 hints per process; past that, hints of
            further samples are computed every step. 0 turns the cache off. With PoseNet's
            poses (``"network"``) hints change as PoseNet learns and are never cached.
        ranking_pairs, ranking_tau: v3 ranking sampling.
        network_dtype: ``"float32"``, or ``"bfloat16"``: the two networks' forward and
            backward passes run under autocast in bfloat16 (weights, optimiser and every loss
            stay float32; the networks' outputs are cast back before the losses, whose warps
            need float32 pixel coordinates). On CPUs with native bfloat16 (AVX512-BF16 or AMX;
            :func:`bf16_supported`) the networks' passes are 1.6-1.75x faster and a whole step
            1.4-1.7x at 128x416, batch 4 (``bench/bench_train_step.py``); ~1.2x more steps in
            the demo, whose hints and losses do not change. Elsewhere bfloat16 is emulated and
            slower. Trainer-wide ``precision="bf16-mixed"`` would run the
            losses in bfloat16 too.
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
    ) -> None:
        super().__init__()
        if not 0 < min_depth_m < max_depth_m or not math.isfinite(max_depth_m):
            raise ValueError(f"need 0 < min_depth_m < max_depth_m < inf, got {min_depth_m}, {max_depth_m}")
        if warp_pose_source not in ("network", "odometry"):
            raise ValueError(f"warp_pose_source must be network|odometry, got {warp_pose_source!r}")
        if pose_pairs not in ("all", "one"):
            raise ValueError(f"pose_pairs must be all|one, got {pose_pairs!r}")
        if pose_pairs == "one" and warp_pose_source != "odometry":
            raise ValueError("pose_pairs='one' needs warp_pose_source='odometry' (warping with PoseNet needs a pose for every source)")
        if not isinstance(num_scales, int) or not 1 <= num_scales <= 4:
            raise ValueError(f"num_scales must be an integer in 1..4, got {num_scales!r}")
        if schedule_seconds is not None and not schedule_seconds > 0:
            raise ValueError(f"schedule_seconds must be positive, got {schedule_seconds}")
        if lr_schedule not in ("constant", "step", "onecycle"):
            raise ValueError(f"lr_schedule must be constant|step|onecycle, got {lr_schedule!r}")
        if network_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"network_dtype must be float32 or bfloat16, got {network_dtype!r}")
        if hint_loss not in HINT_LOSSES:
            raise ValueError(f"hint_loss must be one of {HINT_LOSSES}, got {hint_loss!r}")
        if not 0.0 < hint_ratio <= 1.0:
            raise ValueError(f"hint_ratio must be in (0, 1], got {hint_ratio!r}")
        if hint_downsample not in (1, 2, 4):
            raise ValueError(f"hint_downsample must be 1, 2 or 4, got {hint_downsample!r}")
        if not hint_cache_mb >= 0:
            raise ValueError(f"hint_cache_mb must be >= 0, got {hint_cache_mb!r}")
        if not isinstance(hint_depths, int) or hint_depths < 3:
            raise ValueError(f"hint_depths must be an integer >= 3, got {hint_depths!r}")
        for name in ("photometric_weight", "geometry_weight", "smoothness_weight", "velocity_weight", "pose_supervision_weight", "hint_weight", "ranking_weight", "normal_weight", "normal_ranking_weight"):
            if not locals()[name] >= 0 or not math.isfinite(locals()[name]):  # NaN fails >= too
                raise ValueError(f"{name} must be >= 0, got {locals()[name]}")
        # checked here, not deep inside fit (Adam's own check comes only after the bags are indexed)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite learning rate, got {lr}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if not 0.0 <= ssim_weight <= 1.0:
            raise ValueError(f"ssim_weight must be in [0, 1], got {ssim_weight}")
        if len(mean) != 3 or len(std) != 3 or not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
            raise ValueError(f"mean and std must be 3 finite numbers each, std > 0, got mean {mean}, std {std}")
        if not isinstance(ranking_pairs, int) or ranking_pairs < 1:
            raise ValueError(f"ranking_pairs must be an integer >= 1, got {ranking_pairs!r}")
        if not ranking_tau > 0:
            raise ValueError(f"ranking_tau must be > 0, got {ranking_tau!r}")
        if not isinstance(log_images_every_n_steps, int) or log_images_every_n_steps < 1:
            raise ValueError(f"log_images_every_n_steps must be an integer >= 1, got {log_images_every_n_steps!r}")
        self.save_hyperparameters()
        self.depth_net = DispNet(num_layers=num_layers, num_scales=num_scales, weights_path=encoder_weights_path)
        self.pose_net = PoseNet(num_layers=num_layers, weights_path=encoder_weights_path)
        if init_depth_m is not None:
            self._init_output_depth(float(init_depth_m))
        self.register_buffer("_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self._val_metrics: dict[str, list] = {"median": [], "metric": []}
        self._hint_cache: dict[int, Tensor] = {}  # sample index -> (1, H, W) hint, unmirrored
        self._hint_cache_bytes = 0

    # -- networks ------------------------------------------------------------------------------
    def predict_depth(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(disparity w in (0, 1), depth_m), both (B, 1, H, W), for normalised images x (B, 3, H, W)."""
        w = self._depth_scales(x)[0]
        return w, disp_to_depth(w, self.hparams.min_depth_m, self.hparams.max_depth_m)

    @property
    def needs_source_depths(self) -> bool:
        """Whether a training step predicts the source frames' depths: the geometry term, the
        self-discovered mask and the ranking term (through the mask) use them, and so does
        the backward photometric direction when it has a gradient (source depths with
        gradient, or PoseNet's poses in the warp)."""
        hp = self.hparams
        return bool(hp.source_depth_grad or hp.geometry_weight > 0 or hp.use_self_mask or hp.ranking_weight > 0 or hp.warp_pose_source != "odometry")

    def predict_pose(self, tgt: Tensor, src: Tensor) -> Tensor:
        """(B, 6) ``T_src_tgt`` (axis-angle rad, translation m) for normalised images."""
        with self._network_autocast(tgt):
            vec = self.pose_net(tgt, src)
        return vec.float()

    def _network_autocast(self, x: Tensor) -> Any:
        """Autocast context of the networks' passes (see ``network_dtype``)."""
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.hparams.get("network_dtype", "float32") == "bfloat16")

    def _depth_scales(self, x: Tensor) -> list[Tensor]:
        """DispNet's multi-scale outputs for ``x``, float32 whatever ``network_dtype``."""
        with self._network_autocast(x):
            ws = self.depth_net(x)
        return [w.float() for w in ws]

    def _init_output_depth(self, depth_m: float) -> None:
        hp = self.hparams
        if not hp.min_depth_m < depth_m < hp.max_depth_m:
            raise ValueError(f"init_depth_m must lie inside ({hp.min_depth_m}, {hp.max_depth_m}), got {depth_m}")
        min_disp, max_disp = 1.0 / hp.max_depth_m, 1.0 / hp.min_depth_m
        w = (1.0 / depth_m - min_disp) / (max_disp - min_disp)
        convs = [m for m in self.depth_net.dispconv.modules() if isinstance(m, torch.nn.Conv2d)]
        with torch.no_grad():
            for conv in convs:
                conv.bias.fill_(math.log(w / (1.0 - w)))  # sigmoid(bias) = w

    def _hints(self, batch: dict[str, Tensor], tgt01: Tensor, src01: list[Tensor], warp: list[Tensor], K: Tensor, cache: bool) -> Tensor:
        """(B, 1, H, W) hint depths of a batch, from the cache where the sample's hint is
        known (see ``hint_cache_mb``), from a plane sweep otherwise."""
        hp = self.hparams

        def sweep(rows: Tensor | slice) -> Tensor:
            return hint_depth(tgt01[rows], [x[rows] for x in src01], [T[rows] for T in warp], K[rows],
                              hp.min_depth_m, hp.max_depth_m, hp.hint_depths, hp.hint_downsample, hp.ssim_weight)

        if not (cache and hp.hint_cache_mb > 0 and hp.warp_pose_source == "odometry" and "index" in batch):
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
                if self._hint_cache_bytes + nbytes <= hp.hint_cache_mb * 2**20:
                    self._hint_cache[i] = (hint.flip(-1) if mirrored[r] else hint).float().clone()
                    self._hint_cache_bytes += nbytes
            else:
                cached = self._hint_cache[i].to(tgt01.dtype)
                hint = cached.flip(-1) if mirrored[r] else cached
            out.append(hint)
        return torch.stack(out, dim=0)

    def to_unit_range(self, x: Tensor) -> Tensor:
        """Undo the input normalisation: (B, 3, H, W) -> [0, 1]."""
        return (x * self._std + self._mean).clamp(0.0, 1.0)

    # -- the shared step -------------------------------------------------------------------------
    def shared_step(self, batch: dict[str, Tensor], stage: str) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Loss terms of one batch.

        Returns:
            (total loss, {term name: scalar}, target depth (B, 1, H, W) metres).
        """
        hp = self.hparams
        tgt, srcs, K = batch["tgt"], batch["srcs"], batch["K"]
        b, s = srcs.shape[:2]
        if hp.source_depth_grad:
            frames = torch.cat([tgt, srcs.flatten(0, 1)], dim=0)  # (B + B*S, 3, H, W): one depth pass
            w_scales = self._depth_scales(frames)
            tgt_ws, src_ws = [w[:b] for w in w_scales], [w[b:] for w in w_scales]
        else:
            tgt_ws = self._depth_scales(tgt)
            if self.needs_source_depths:
                with torch.no_grad():
                    src_ws = self._depth_scales(srcs.flatten(0, 1))
            else:
                src_ws = [None] * len(tgt_ws)
        tgt_w = tgt_ws[0]
        tgt_depth = disp_to_depth(tgt_w, hp.min_depth_m, hp.max_depth_m)
        src_list = list(srcs.unbind(1))

        distance = batch.get("distance_m")
        T_odom = batch.get("T_src_tgt_odom")
        if hp.pose_pairs == "one" and stage == "train" and s > 1:
            # one source per sample for PoseNet (it only feeds the supervised pose terms here)
            rows = torch.arange(b, device=tgt.device)
            pick = torch.randint(s, (b,), device=tgt.device)
            pose_pairs = [srcs[rows, pick]]
            pose_distance = None if distance is None else distance[rows, pick].unsqueeze(1)
            pose_T_odom = None if T_odom is None else T_odom[rows, pick].unsqueeze(1)
        else:
            pose_pairs, pose_distance, pose_T_odom = src_list, distance, T_odom
        pose_vecs = [self.predict_pose(tgt, src) for src in pose_pairs]  # T_src_tgt
        poses = [pose_vec_to_mat(v) for v in pose_vecs]
        if hp.warp_pose_source == "odometry":
            if T_odom is None or not torch.isfinite(T_odom).all():
                raise ValueError("warp_pose_source='odometry' needs odometry poses for every sample (T_src_tgt_odom has NaN)")
            warp = list(T_odom.to(tgt.dtype).unbind(1))
            warp_inv = [torch.linalg.inv(T) for T in warp]
        else:  # PoseNet's backward transforms are needed only to warp with them
            warp = poses
            if hp.pose_from_inverse:
                warp_inv = [torch.linalg.inv(T) for T in poses]
            else:
                warp_inv = [pose_vec_to_mat(self.predict_pose(src, tgt)) for src in src_list]  # T_tgt_src
        tgt01 = self.to_unit_range(tgt)
        src01 = [self.to_unit_range(x) for x in src_list]
        photometric, geometry, smoothness = [], [], []
        for k, (w_k, src_w_k) in enumerate(zip(tgt_ws, src_ws)):
            # scale k: images area-downsampled to the disparity's resolution, K to match
            # (pixel-centre convention); smoothness weighted 1/2^k as in monodepth2
            depth_k = tgt_depth if k == 0 else disp_to_depth(w_k, hp.min_depth_m, hp.max_depth_m)
            src_depth_k = None if src_w_k is None else list(disp_to_depth(src_w_k, hp.min_depth_m, hp.max_depth_m).view(b, s, 1, *w_k.shape[-2:]).unbind(1))
            tgt01_k = tgt01 if k == 0 else F.avg_pool2d(tgt01, 2**k)
            src01_k = src01 if k == 0 else [F.avg_pool2d(x, 2**k) for x in src01]
            sc_k = sc_depth_loss(
                tgt01_k,
                src01_k,
                depth_k,
                src_depth_k,
                warp,
                warp_inv,
                K if k == 0 else scale_intrinsics(K, 2**-k),
                ssim_weight=hp.ssim_weight,
                use_mask=hp.use_self_mask,
                use_auto_mask=hp.use_auto_mask,
            )
            if k == 0:
                sc = sc_k
            photometric.append(sc_k.photometric)
            geometry.append(sc_k.geometry)
            smoothness.append(edge_aware_smoothness(w_k, tgt01_k) / 2**k)
        terms: dict[str, Tensor] = {
            "photometric": torch.stack(photometric).mean(),
            "geometry": torch.stack(geometry).mean(),
            "smoothness": torch.stack(smoothness).mean(),
        }
        total = hp.photometric_weight * terms["photometric"] + hp.geometry_weight * terms["geometry"] + hp.smoothness_weight * terms["smoothness"]
        terms["auto_mask_fraction"] = torch.as_tensor(sc.auto_mask_fraction, dtype=tgt.dtype).detach()

        if hp.hint_weight > 0:
            with torch.no_grad():
                sweep_src01, sweep_warp = src01, warp
                if "hint_srcs" in batch:  # frames only the sweep sees (DataConfig.hint_offsets), odometry poses
                    T_hint = batch["T_hint_src_tgt_odom"]
                    if T_odom is None or not (torch.isfinite(T_hint).all() and torch.isfinite(T_odom).all()):
                        raise ValueError("hint sources need odometry poses for every frame of the sample (T_hint_src_tgt_odom / T_src_tgt_odom has NaN)")
                    sweep_src01 = src01 + [self.to_unit_range(x) for x in batch["hint_srcs"].unbind(1)]
                    sweep_warp = list(T_odom.to(tgt.dtype).unbind(1)) + list(T_hint.to(tgt.dtype).unbind(1))
                hint = self._hints(batch, tgt01, sweep_src01, sweep_warp, K, cache=stage == "train")
                hint_error = min_reprojection_error(tgt01, sweep_src01, hint, sweep_warp, K, hp.ssim_weight)
                if "hint_srcs" in batch:  # compare both depths on the same frames
                    pred_error = min_reprojection_error(tgt01, sweep_src01, tgt_depth.detach(), sweep_warp, K, hp.ssim_weight)
                else:  # the scale-0 per-pixel minimum sc_depth_loss computed
                    pred_error = sc.min_photo_error
            terms["hint"], hint_fraction = depth_hint_loss(tgt_depth, hint, pred_error, hint_error, hp.hint_ratio, hp.hint_loss)
            terms["hint_fraction"] = hint_fraction.detach()
            total = total + hp.hint_weight * terms["hint"]

        if hp.velocity_weight > 0:
            if pose_distance is None or not torch.isfinite(pose_distance).any():
                raise ValueError("velocity supervision is on but the batch has no odometry distance (distance_m all NaN)")
            v_terms = []
            for i, vec in enumerate(pose_vecs):
                d = pose_distance[:, i]
                ok = torch.isfinite(d)
                if ok.any():
                    v_terms.append(velocity_loss(vec[ok, 3:], d[ok]))
            terms["velocity"] = torch.stack(v_terms).mean()
            total = total + hp.velocity_weight * terms["velocity"]
        if hp.pose_supervision_weight > 0:
            if pose_T_odom is None or not torch.isfinite(pose_T_odom).all(dim=(-2, -1)).any():
                raise ValueError("pose supervision is on but the batch has no odometry pose (T_src_tgt_odom all NaN)")
            ok = torch.isfinite(pose_T_odom).all(dim=(-2, -1))  # (B, S)
            T_pred = torch.stack(poses, dim=1)  # (B, S, 4, 4)
            err = (T_pred[ok][:, :3, 3] - pose_T_odom[ok][:, :3, 3]).abs().mean() + (T_pred[ok][:, :3, :3] - pose_T_odom[ok][:, :3, :3]).abs().mean()
            terms["pose_supervision"] = err
            total = total + hp.pose_supervision_weight * err
        with torch.no_grad():
            t_norm = torch.stack([v[:, 3:].norm(dim=1) for v in pose_vecs], dim=1)  # (B, S)
            terms["translation_m"] = t_norm.mean()
            if pose_distance is not None and torch.isfinite(pose_distance).any():
                ok = torch.isfinite(pose_distance)
                terms["odom_distance_m"] = pose_distance[ok].mean()
            if pose_T_odom is not None:
                t_pred = torch.stack([v[:, 3:] for v in pose_vecs], dim=1)  # (B, S, 3)
                t_odom = pose_T_odom[..., :3, 3]
                ok = torch.isfinite(t_odom).all(dim=-1)
                if ok.any():
                    cos = torch.nn.functional.cosine_similarity(t_pred[ok], t_odom[ok], dim=-1, eps=1e-9)
                    terms["translation_cos_odom"] = cos.mean()  # 1 = PoseNet moves the way odometry does

        if "teacher_depth" in batch and (hp.ranking_weight > 0 or hp.normal_weight > 0 or hp.normal_ranking_weight > 0):
            from depth_ros_training.losses import depth_ranking_loss, edge_guided_normal_ranking_loss, normal_matching_loss

            pseudo = batch["teacher_depth"]
            if hp.ranking_weight > 0:
                dynamic = 1.0 - sc.self_mask  # high where target and source depths disagree
                terms["ranking"] = depth_ranking_loss(tgt_depth, pseudo, dynamic, hp.ranking_pairs, hp.ranking_tau)
                total = total + hp.ranking_weight * terms["ranking"]
            if hp.normal_weight > 0:
                terms["normal"] = normal_matching_loss(tgt_depth, pseudo, K)
                total = total + hp.normal_weight * terms["normal"]
            if hp.normal_ranking_weight > 0:
                terms["normal_ranking"] = edge_guided_normal_ranking_loss(tgt_depth, pseudo, tgt01, K)
                total = total + hp.normal_ranking_weight * terms["normal_ranking"]
        terms["total"] = total
        return total, terms, tgt_depth

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
                    m = compute_depth_metrics(pred[i, 0], gtn[i, 0], median_scaling=median, max_depth_m=self.hparams.max_depth_m)
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
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay) if hp.weight_decay > 0 else torch.optim.Adam(self.parameters(), lr=hp.lr)
        if hp.lr_schedule == "constant":
            return opt
        total_steps = self._total_steps() if hp.schedule_seconds is None else 0
        if hp.lr_schedule == "step":
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, int(0.8 * total_steps))], gamma=0.1)
        elif hp.schedule_seconds is not None:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _OneCycleByTime(float(hp.schedule_seconds)))
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
        return self.hparams.velocity_weight > 0


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
