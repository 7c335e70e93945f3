"""Clean stops while data flows: ``depth-ros play`` started with SIGINT ignored (a background
job of a script, then ``kill -INT``) and the depth node stopped with Ctrl-C mid-stream must
exit 0 without logging errors (both published after rclpy had shut their context down)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import S, Graph, Harness, NodeProcess, node_argv

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from depth_ros.synthetic.bagio import write_bag
    from depth_ros.synthetic.config import SynthConfig

    return write_bag(SynthConfig(width=64, height=48, frames=30, rate_hz=30.0, lidar_beams=0, num_boxes=1,
                                 texture_size_px=64), tmp_path_factory.mktemp("stop_bag") / "s.mcap")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the exec'd program, as in `cmd &`


@pytest.mark.parametrize("sigint", ["ignored", "default"])
def test_play_stops_cleanly_on_sigint_while_publishing(bag: Path, ros_env: dict[str, str], tmp_path: Path,
                                                       sigint: str) -> None:
    for attempt in range(3):
        log_path = tmp_path / f"play{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "depth_ros.cli", "play", str(bag), "--loop", "--rate", "3", "--clock"],
                env=ros_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_ignore_sigint if sigint == "ignored" else None,
            )
            try:
                deadline = time.monotonic() + 30.0
                while "playing" not in log_path.read_text(errors="replace"):
                    assert proc.poll() is None, log_path.read_text(errors="replace")
                    assert time.monotonic() < deadline, "the player did not start"
                    time.sleep(0.05)
                time.sleep(0.5 + 0.13 * attempt)  # mid-stream, at a different point each time
                proc.send_signal(signal.SIGINT)
                code = proc.wait(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        text = log_path.read_text(errors="replace")
        assert code == 0, text
        assert "Traceback" not in text and "Error" not in text and "ERROR" not in text, text


def test_depth_node_stopped_mid_stream_logs_no_error(ros_env: dict[str, str], models: dict[str, Path], graph: Graph,
                                                    tmp_path: Path) -> None:
    for attempt in range(3):
        ns = f"/stop{attempt}"
        proc = NodeProcess(node_argv("depth_ros.ros.depth_node", {"model_path": models["plane"], "backend": "onnxruntime-cpu"},
                                     {"__ns": ns, "__node": f"stop_depth_node{attempt}"}), ros_env, tmp_path / f"node{attempt}.log")
        try:
            proc.wait_log("model 'plane_2m'", 60.0)
            h = Harness(graph, proc, ns)
            t = h.warm_up(10 * S)
            for k in range(8 + 3 * attempt):  # frames flowing when Ctrl-C comes
                t += S // 30
                h.send(t)
                graph.spin_for(1 / 60)
        finally:
            code = proc.stop(signal.SIGINT)
        text = proc.log()
        assert code == 0, text
        assert "ERROR" not in text and "failed" not in text and "Traceback" not in text, text
