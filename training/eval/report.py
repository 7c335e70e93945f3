"""The outputs of an evaluation: the side-by-side table, ``summary.json``, ``frames.csv`` and the
plots (with the contact sheet's frames read again from the truth bags)."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from depth_ros.errors import DepthRosError, InputError

from depth_ros_training.eval.config import AGGREGATION, EvalConfig
from depth_ros_training.eval.scoring import ModelReport
from depth_ros_training.eval.truth import iter_truth

__all__ = ["format_table", "sheet_frames", "write_outputs"]


def sheet_frames(report: ModelReport) -> list[Any]:
    """Contact-sheet rows of a report: its worst frame and the frame nearest its median
    per-frame AbsRel (among each bag's worst and median), truth and image read from the bag."""
    from depth_ros import msgconv
    from depth_ros.bag.reader import BagReader

    from depth_ros_training.eval.plots import SheetFrame

    if not report.sheet or not report.frames:
        return []
    median = float(np.median([r["median_abs_rel"] for r in report.frames]))
    worst = max(report.sheet, key=lambda c: c.abs_rel)
    middle = min(report.sheet, key=lambda c: (abs(c.abs_rel - median), c.abs_rel))
    rows = []
    for what, cand in (("worst", worst), ("median", middle)) if middle is not worst else (("worst", worst),):
        gt = next((d for item in iter_truth(cand.truth) if item is not None for s, d in (item,) if s == cand.stamp_ns), None)
        if gt is None or gt.shape != cand.pred_m.shape:
            continue
        rgb = None
        with BagReader(cand.truth.path) as reader:
            topic = reader.topics.get(cand.truth.image_topic)
            for message in reader.messages([cand.truth.image_topic]) if topic is not None else ():
                msg = reader.deserialize(message)
                try:
                    if msgconv.stamp_to_ns(msg.header.stamp) != cand.stamp_ns:
                        continue
                    image = msgconv.compressed_to_rgb(msg) if topic.msgtype.endswith("CompressedImage") else msgconv.image_to_rgb(msg)
                except InputError:
                    continue
                if cand.truth.rectifier is not None and image.shape[:2] == gt.shape:
                    image = cand.truth.rectifier.rectify_image(image)
                rgb = image if image.shape[:2] == gt.shape else None
                break
        label = f"{what}: {cand.truth.path.name}\n@ {cand.stamp_ns / 1e9:.3f} s\nAbsRel {cand.abs_rel:.3f} (median-scaled)"
        rows.append(SheetFrame(label, rgb, gt, cand.pred_m, scale=cand.scale))
    return rows



def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _get(*keys: str) -> Callable[[dict[str, Any]], str]:
    def read(summary: dict[str, Any]) -> str:
        value: Any = summary
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return _fmt(value)

    return read


_TABLE_ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("frames", lambda s: str(s["frames"])),
    *((f"{label} (median-scaled)", _get("median", key)) for key, label in (("abs_rel", "AbsRel"), ("sq_rel", "SqRel"), ("rmse", "RMSE m"), ("rmse_log", "RMSE log"), ("delta1", "delta1"))),
    *((f"{label} (metric)", _get("metric", key)) for key, label in (("abs_rel", "AbsRel"), ("sq_rel", "SqRel"), ("rmse", "RMSE m"), ("rmse_log", "RMSE log"), ("delta1", "delta1"), ("delta2", "delta2"), ("delta3", "delta3"))),
    *((f"{label} (scale+shift aligned)", _get("aligned", key)) for key, label in (("abs_rel", "AbsRel"), ("delta1", "delta1"))),
    ("scale gt/pred mean", _get("scale_ratio", "mean")),
    ("scale gt/pred CV", _get("scale_ratio", "cv")),
    *((label, _get(group, key)) for label, group, key in (
        ("AbsRel near edges (median-scaled)", "edge", "abs_rel"),
        ("boundary F1", "boundary", "f1"),
        ("boundary recall (mask)", "mask_boundary_recall", "recall"),
        ("flicker", "flicker", "flicker"),
        ("flicker (scaled)", "flicker", "flicker_scaled"),
        ("flicker of the truth", "flicker", "flicker_truth"),
        ("ATE RMSE m (se3)", "odometry", "ate_se3_rmse_m"),
        ("ATE RMSE m (sim3)", "odometry", "ate_sim3_rmse_m"),
        ("RPE trans % (se3)", "odometry", "rpe_se3_translation_pct"),
        ("RPE trans % (sim3)", "odometry", "rpe_sim3_translation_pct"),
        ("RPE rot deg/m", "odometry", "rpe_rotation_deg_per_m"),
    )),
)


def format_table(reports: Sequence[ModelReport]) -> str:
    """Models side by side, one metric a row."""
    header = ["", *[r.name for r in reports]]
    rows = [header] + [[label, *[fmt(r.summary) for r in reports]] for label, fmt in _TABLE_ROWS]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"({AGGREGATION})")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_outputs(reports: Sequence[ModelReport], out_dir: str | Path, config: EvalConfig, *, plots: bool = True) -> dict[str, Path]:
    """Write ``summary.json``, ``frames.csv`` and (``plots``) the PNG plots of
    :mod:`.plots` into ``out_dir`` (created); NaN -> null / empty."""
    try:
        return _write_outputs(reports, Path(out_dir), config, plots)
    except OSError as exc:
        raise DepthRosError(f"cannot write the results into {out_dir}: {exc.strerror or exc}") from None


def _write_outputs(reports: Sequence[ModelReport], out: Path, config: EvalConfig, plots: bool) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.json", "frames": out / "frames.csv"}
    if plots:
        from depth_ros_training.eval.plots import write_plots

        paths.update(write_plots(
            {r.name: r.summary for r in reports}, {r.name: r.frames for r in reports},
            {r.name: sheet_frames(r) for r in reports}, out,
        ))
    summary = {
        "aggregation": AGGREGATION,
        "settings": _json_safe(asdict(config)),
        "models": [{"name": r.name, "source": r.source, "bags": r.bags, **r.summary} for r in reports],
        "plots": sorted(p.name for k, p in paths.items() if k not in ("summary", "frames")),
    }
    paths["summary"].write_text(json.dumps(_json_safe(summary), indent=2, sort_keys=True) + "\n")
    rows = [row for r in reports for row in r.frames]
    columns = list(rows[0]) if rows else ["model", "bag", "stamp_ns"]
    with paths["frames"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    return paths
