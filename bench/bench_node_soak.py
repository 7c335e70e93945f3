"""Depth node soak: 30 Hz camera input for 2 minutes; memory, queue and drops.

    python bench/bench_node_soak.py [--duration-s 120] [--rate-hz 30] [--width 640 --height 480] [--cloud]

The node (own process, the conv bench model of bench_node_latency.py unless --model) gets
rgb8 images + camera_infos at ``rate_hz``. Reported (JSON on stdout):

* ``rss_growth``: node RSS at the end / RSS after the first 10 % of the run, minus 1
  (target < 5 %);
* queue: the node holds at most one pending frame by construction; what would show a queue
  is latency creeping up, so ``node_ms`` of the first and last quarter are compared
  (``latency_trend_ratio`` ~ 1 means no growth);
* ``drop_rate``: DepthInfo.frames_dropped / DepthInfo.frames_received, the share of the
  frames that reached the node and that it dropped (it keeps only the newest frame when
  inference is slower than the camera); ``transport_loss_rate``: frames sent that never
  reached the node's callback (lost in DDS: best-effort, keep-last queues), from the node's
  own ``frames_received``; ``frames_published``: depth images that came back.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node_latency import S, Rig, _stats, add_rig_arguments, conv_depth_model, print_result, result_head  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=120.0)
    add_rig_arguments(parser, rate_hz=30.0)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="depth_ros_soak_"))
    model = args.model or conv_depth_model(tmp / "bench_conv.onnx")
    rig = Rig(model, args.width, args.height, args.cloud, tmp)
    rss: list[tuple[float, int]] = []
    try:
        rig.warm_up()  # discovery both ways
        # the node's counters run from its start: subtract what the warm-up left in them
        warm = max(rig.meta.values(), key=lambda m: m.frames_received)
        base_received, base_dropped = int(warm.frames_received), int(warm.frames_dropped)
        rig.sent_ns.clear(), rig.depth_recv_ns.clear(), rig.meta.clear()
        period = 1.0 / args.rate_hz
        n = int(args.duration_s * args.rate_hz)
        start = time.monotonic()
        next_rss = start
        stamps = []
        for i in range(n):
            stamp = 100 * S + int(i * period * S)
            stamps.append(stamp)
            rig.send(stamp)
            now = time.monotonic()
            if now >= next_rss:
                rss.append((now - start, rig.node_rss_kb()))
                next_rss = now + 1.0
            rig.spin_for(max(0.0, start + (i + 1) * period - time.monotonic()))
        elapsed = time.monotonic() - start
        rig.wait_for_meta(stamps[-1])
        rss.append((time.monotonic() - start, rig.node_rss_kb()))
        got = sorted(s for s in stamps if s in rig.meta)
        node_ms = [rig.meta[s].latency_ms for s in got]
        q = max(1, len(node_ms) // 4)
        first, last_q = node_ms[:q], node_ms[-q:]
        base_rss = next(kb for t_s, kb in rss if t_s >= 0.1 * args.duration_s)
        final = max((rig.meta[s] for s in got), key=lambda m: m.frames_received) if got else None
        received = int(final.frames_received) - base_received if final else None
        dropped = int(final.frames_dropped) - base_dropped if final else None
        result = {
            **result_head("node_soak", args, model),
            "duration_s": round(elapsed, 1),
            "achieved_input_hz": round(len(stamps) / elapsed, 2),
            "frames_sent": len(stamps),
            "frames_published": len(got),
            "node_frames_received": received,
            "frames_dropped": dropped,
            "drop_rate": round(dropped / received, 3) if received else None,
            "transport_loss_rate": round(1.0 - received / len(stamps), 3) if received is not None else None,
            "output_hz": round(len(got) / elapsed, 2),
            "rss_kb_start": base_rss,
            "rss_kb_end": rss[-1][1],
            "rss_growth": round(rss[-1][1] / base_rss - 1.0, 4),
            "node_ms_first_quarter": _stats(first),
            "node_ms_last_quarter": _stats(last_q),
            "latency_trend_ratio": round(float(np.median(last_q)) / float(np.median(first)), 3) if got else None,
            "inference_ms": _stats([rig.meta[s].inference_ms for s in got]),
        }
    finally:
        code = rig.close()
    return print_result(result, code)


if __name__ == "__main__":
    sys.exit(main())
