"""PNG plots of an evaluation (``depth-ros-train eval``): what the summary table cannot show.

* ``error_vs_distance.png``: AbsRel and the bias (median-scaled and as-is) per true-depth range,
  one line per model, from the summaries' ``*_by_range`` tables.
* ``error_histogram.png``: the distribution over frames of the per-frame AbsRel, per model.
* ``boundary_pr.png``: per-frame boundary precision against recall (Depth Pro's
  scale-invariant boundary F1 is their harmonic mean averaged over thresholds), with each
  model's mean and the iso-F1 curves; written only when the boundary metric ran.
* ``contact_sheet_<model>.png``: image / truth / prediction / relative error of the worst and
  the median frame (by the per-frame median-scaled AbsRel).

Everything here is drawing: the numbers come from :mod:`.evaluate` and :mod:`.metrics`.
matplotlib runs with its non-interactive Agg backend (no display needed); the same inputs give
the same pixels. Sizes: at most :data:`MAX_SHEET_WIDTH` px per contact-sheet panel (frames are
subsampled, never interpolated, so invalid truth stays invalid).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["MAX_SHEET_WIDTH", "SheetFrame", "relative_error", "subsample", "write_plots"]

MAX_SHEET_WIDTH = 320
"""Widest contact-sheet panel, pixels (larger frames are subsampled by an integer step)."""


@dataclass(frozen=True)
class SheetFrame:
    """One row of a contact sheet.

    Attributes:
        label: e.g. ``"worst: run1.mcap @ 1700000000.100 s, AbsRel 0.31"``.
        rgb: (H, W, 3) uint8 camera image, or None when the bag's image could not be read.
        gt_m: (H, W) float true depth, metres, NaN / 0 invalid (sparse for a LiDAR).
        pred_m: (H, W) float predicted depth, metres, as evaluated (scaled by ``scale``).
        scale: the factor the prediction was multiplied with for the error panel (the
            per-frame median ratio for "median", 1 for "metric").
    """

    label: str
    rgb: np.ndarray | None
    gt_m: np.ndarray
    pred_m: np.ndarray
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.gt_m.ndim != 2 or self.gt_m.shape != self.pred_m.shape:
            raise ValueError(f"truth {self.gt_m.shape} and prediction {self.pred_m.shape} must be the same (H, W)")
        if self.rgb is not None and self.rgb.shape[:2] != self.gt_m.shape:
            raise ValueError(f"image {self.rgb.shape} and truth {self.gt_m.shape} differ in size")


def subsample(array: np.ndarray, max_width: int = MAX_SHEET_WIDTH) -> np.ndarray:
    """Every k-th row and column (k = ceil(W / max_width)): no interpolation across edges or
    into invalid pixels. (H, W[, C]) -> (ceil(H/k), ceil(W/k)[, C])."""
    step = max(1, math.ceil(array.shape[1] / max_width))
    return array[::step, ::step]


def relative_error(pred_m: np.ndarray, gt_m: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """|scale * pred - gt| / gt where the truth is valid (finite, > 0), NaN elsewhere. (H, W)."""
    gt = gt_m.astype(np.float64)
    valid = np.isfinite(gt) & (gt > 0)
    out = np.full(gt.shape, np.nan)
    out[valid] = np.abs(scale * pred_m.astype(np.float64)[valid] - gt[valid]) / gt[valid]
    return out


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    # no timestamps or software versions in the file: the same inputs give the same bytes
    fig.savefig(path, dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return path


def _range_key(name: str) -> float:
    return float(name.split("-")[0])


def plot_error_vs_distance(summaries: dict[str, dict[str, Any]], path: Path) -> Path:
    """AbsRel and bias per true-depth range (``summary[mode + "_by_range"]``), one line per model."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, summary in summaries.items():
        for mode, style in (("median", "-o"), ("metric", "--s")):
            table = summary.get(f"{mode}_by_range") or {}
            keys = sorted(table, key=_range_key)
            if not keys:
                continue
            x = np.arange(len(keys))
            axes[0].plot(x, [table[k]["abs_rel"] for k in keys], style, label=f"{name} ({mode})")
            axes[1].plot(x, [table[k]["bias"] for k in keys], style, label=f"{name} ({mode})")
            for ax in axes:
                ax.set_xticks(x, keys, rotation=30, ha="right")
    axes[0].set_ylabel("AbsRel")
    axes[1].set_ylabel("bias exp(mean log(pred/gt))")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    for ax in axes:
        ax.set_xlabel("true depth range")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[0].set_title("error vs true distance")
    axes[1].set_title("scale bias vs true distance")
    fig.tight_layout()
    return _save(fig, path)


def plot_error_histogram(frames: dict[str, Sequence[float]], path: Path, metric: str = "AbsRel (median-scaled)") -> Path:
    """Histogram over frames of a per-frame error, one outline per model (shared bins)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = {k: np.asarray([v for v in vals if math.isfinite(v)], dtype=np.float64) for k, vals in frames.items()}
    pooled = np.concatenate([v for v in finite.values() if v.size] or [np.zeros(1)])
    bins = np.linspace(0.0, max(float(pooled.max()), 1e-6) * 1.02, 31)
    for name, values in finite.items():
        if values.size:
            ax.hist(values, bins=bins, histtype="step", lw=1.5, label=f"{name} (mean {values.mean():.3f})")
    ax.set_xlabel(f"per-frame {metric}")
    ax.set_ylabel("frames")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_boundary_pr(points: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path) -> Path:
    """Per-frame (recall, precision) of the boundary metric per model, its mean, iso-F1 lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    r = np.linspace(0.01, 1.0, 200)
    for f1 in (0.2, 0.4, 0.6, 0.8):
        p = f1 * r / (2 * r - f1)
        keep = (p > 0) & (p <= 1)
        ax.plot(r[keep], p[keep], color="grey", lw=0.6, alpha=0.6)
        ax.annotate(f"F1={f1:g}", (r[keep][-1], p[keep][-1]), fontsize=7, color="grey")
    for name, (recall, precision) in points.items():
        rec, prec = np.asarray(recall, dtype=np.float64), np.asarray(precision, dtype=np.float64)
        ok = np.isfinite(rec) & np.isfinite(prec)
        if not ok.any():
            continue
        (line,) = ax.plot(rec[ok], prec[ok], ".", alpha=0.35)
        ax.plot(rec[ok].mean(), prec[ok].mean(), "o", ms=9, color=line.get_color(), mec="black", label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("boundary recall")
    ax.set_ylabel("boundary precision")
    ax.set_title("scale-invariant boundaries (per frame)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return _save(fig, path)


def plot_contact_sheet(rows: Sequence[SheetFrame], path: Path, title: str = "") -> Path:
    """Image / truth / prediction / relative error, one row per frame. Truth and prediction
    share one depth colour scale per row (the truth's 2nd-98th percentile); the error is
    shown from 0 to 0.5 (50 %)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 4, figsize=(13, 2.9 * len(rows)), squeeze=False)
    for ax_row, frame in zip(axes, rows):
        gt = subsample(frame.gt_m).astype(np.float64)
        pred = subsample(frame.pred_m).astype(np.float64) * frame.scale
        valid = np.isfinite(gt) & (gt > 0)
        lo, hi = np.percentile(gt[valid], [2, 98]) if valid.any() else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
        sparse = valid.mean() < 0.2
        if frame.rgb is not None:
            ax_row[0].imshow(subsample(frame.rgb))
        else:
            ax_row[0].text(0.5, 0.5, "image not read", ha="center", va="center")
        if sparse:  # a LiDAR: dots on black, else nothing would be visible
            yy, xx = np.nonzero(valid)
            ax_row[1].imshow(np.zeros(gt.shape), cmap="gray", vmin=0, vmax=1)
            ax_row[1].scatter(xx, yy, c=gt[valid], s=2, cmap="turbo", vmin=lo, vmax=hi)
        else:
            ax_row[1].imshow(np.where(valid, gt, np.nan), cmap="turbo", vmin=lo, vmax=hi)
        im = ax_row[2].imshow(pred, cmap="turbo", vmin=lo, vmax=hi)
        fig.colorbar(im, ax=ax_row[2], fraction=0.046, pad=0.02, label="m")
        err = relative_error(pred, gt)
        if sparse:
            yy, xx = np.nonzero(valid)
            ax_row[3].imshow(np.zeros(gt.shape), cmap="gray", vmin=0, vmax=1)
            em = ax_row[3].scatter(xx, yy, c=err[valid], s=2, cmap="magma", vmin=0, vmax=0.5)
        else:
            em = ax_row[3].imshow(err, cmap="magma", vmin=0, vmax=0.5)
        fig.colorbar(em, ax=ax_row[3], fraction=0.046, pad=0.02, label="|pred-gt|/gt")
        for ax, name in zip(ax_row, ("image", "truth", "prediction" + (f" x{frame.scale:.3g}" if frame.scale != 1.0 else ""), "relative error")):
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(frame.label, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "model"


def write_plots(summaries: dict[str, dict[str, Any]], frames: dict[str, list[dict[str, Any]]],
                sheets: dict[str, Sequence[SheetFrame]], out_dir: Path) -> dict[str, Path]:
    """Write every plot that has data into ``out_dir``.

    Args:
        summaries: model name -> its summary (``_summarise``'s dict: ``median_by_range``...).
        frames: model name -> its per-frame rows (``median_abs_rel``, ``boundary_precision``...).
        sheets: model name -> its contact-sheet rows (may be empty).
        out_dir: an existing directory.

    Returns:
        plot name -> path of each file written.
    """
    out: dict[str, Path] = {}
    out["error_vs_distance"] = plot_error_vs_distance(summaries, out_dir / "error_vs_distance.png")
    out["error_histogram"] = plot_error_histogram(
        {name: [float(r["median_abs_rel"]) for r in rows] for name, rows in frames.items()}, out_dir / "error_histogram.png"
    )
    pr = {
        name: ([float(r.get("boundary_recall", math.nan)) for r in rows], [float(r.get("boundary_precision", math.nan)) for r in rows])
        for name, rows in frames.items()
    }
    if any(math.isfinite(v) for rec, _ in pr.values() for v in rec):
        out["boundary_pr"] = plot_boundary_pr(pr, out_dir / "boundary_pr.png")
    for name, rows in sheets.items():
        if rows:
            out[f"contact_sheet_{name}"] = plot_contact_sheet(rows, out_dir / f"contact_sheet_{_safe_name(name)}.png", title=name)
    return out
