"""`depth-ros play` exits 0 when a Ctrl-C lands during its teardown.

launch stops the player with SIGINT; one that arrives after rclpy has shut down (rclpy then
has put Python's own handler back) used to raise KeyboardInterrupt out of the teardown and end
the process by the signal (exit -2). The test makes that happen every time: the bag replay is
replaced by a no-op and ``rclpy.try_shutdown`` sends SIGINT to the process right after the
real shutdown.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.ros]

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import rclpy
    import depth_ros.ros.play as play_mod

    real_try_shutdown = rclpy.try_shutdown

    def shutdown_then_sigint(*args, **kwargs):
        result = real_try_shutdown(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return result

    rclpy.try_shutdown = shutdown_then_sigint
    play_mod.play = lambda node, bag, **kwargs: 0
    code = play_mod.main(["play", sys.argv[1]])
    print("returned", code, flush=True)
    sys.exit(code)
    """
)


def test_sigint_during_teardown_exits_zero(ros_env: dict[str, str], tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "unused.mcap")], env=ros_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "returned 0" in proc.stdout
    assert "KeyboardInterrupt" not in proc.stderr
