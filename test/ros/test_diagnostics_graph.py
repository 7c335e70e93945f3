"""/diagnostics of a running depth node on the real graph: OK while frames flow, WARN with the
reason once they stop."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import S, Graph, Harness, NodeProcess, node_argv

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/diag"


@pytest.fixture(scope="module")
def node_proc(ros_env: dict[str, str], models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    log = tmp_path_factory.mktemp("diag_node") / "node.log"
    # Short stale warning so the test sees it quickly; ERROR far away so it sees WARN first.
    # Latency and output ratio loose: this machine's load must not make the OK case fail.
    params = {"model_path": models["plane"], "backend": "onnxruntime-cpu", "diagnostics_period_s": 0.5,
              "diagnostics_stale_warn_s": 1.5, "diagnostics_stale_error_s": 60.0,
              "diagnostics_min_output_ratio": 0.2, "diagnostics_latency_warn_ms": 5000.0}
    proc = NodeProcess(node_argv("depth_ros.ros.depth_node", params, {"__ns": NS}), ros_env, log)
    proc.wait_log("model 'plane_2m'", 60.0)
    yield proc
    code = proc.stop()
    assert code == 0, f"the node did not shut down cleanly on SIGINT (exit {code}):\n{proc.log()[-2000:]}"


def _ours(box: list[Any]) -> list[Any]:
    """Statuses of the node under test (other nodes may share /diagnostics)."""
    return [s for array in box for s in array.status if s.hardware_id == f"{NS}/depth_node"]


def _values(status: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_diagnostics_ok_while_frames_flow_then_warn_when_they_stop(graph: Graph, node_proc: NodeProcess) -> None:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    box = graph.subscribe(DiagnosticArray, "/diagnostics", 50)
    h = Harness(graph, node_proc, NS)
    graph.wait_until(lambda: graph.subscriptions["/diagnostics"].get_publisher_count() >= 1, 30.0,
                     "a /diagnostics publisher")
    t = h.warm_up(5000 * S)

    # Frames at ~10 Hz until a period with output is reported OK.
    deadline = time.monotonic() + 40.0
    ok: Any = None
    while ok is None:
        assert time.monotonic() < deadline, f"no OK status while frames flow; last: {[(s.level, s.message) for s in _ours(box)[-3:]]}"
        t += S // 10
        h.send(t)
        graph.spin_for(0.1)
        ok = next((s for s in _ours(box) if s.level == DiagnosticStatus.OK
                   and float(_values(s)["Output rate (Hz)"]) > 0), None)
    values = _values(ok)
    assert ok.name == "depth_node: depth"
    assert ok.message == "OK"
    assert values["Backend"] == "onnxruntime-cpu"
    assert values["Model"] == "plane_2m (depth_metric)"
    assert values["Scale source"] == "model"
    assert float(values["Input rate (Hz)"]) > 0 and values["Latency p50 (ms)"] != "n/a"

    # Stop feeding: within a few periods the status turns WARN and says why.
    box.clear()
    graph.wait_until(lambda: any(s.level == DiagnosticStatus.WARN for s in _ours(box)), 15.0,
                     "a WARN status after the frames stopped")
    warn = next(s for s in _ours(box) if s.level == DiagnosticStatus.WARN)
    assert "no image for" in warn.message and "stale_warn_s 1.5" in warn.message
    assert warn.name == "depth_node: depth"
    # it was OK (or at most still reporting the last frames) before it turned WARN, never ERROR
    assert all(s.level != DiagnosticStatus.ERROR for s in _ours(box))
