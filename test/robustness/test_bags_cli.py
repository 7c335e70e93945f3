"""Bags and the ``depth-ros`` command line under abuse: an output aimed at the input's own
storage, writers killed with SIGKILL, a full disk under ``.db3`` output, untrusted text in error
lines, ``--verbose``, and ``bootstrap.sh`` run from inside its own virtualenv."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from depth_ros.bag.writer import BagWriter, remove_stale_tmpdirs
from depth_ros.bag.typestore import output_typestore
from depth_ros.cli import main
from depth_ros.synthetic import write_bag as synth_bag

from harness import REPO, TINY_SYNTH as SYNTH, TORCH_AS, assert_one_line_error, run_limited, tiny_depth_model



@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    d = tmp_path_factory.mktemp("bags")
    model = tiny_depth_model(d / "tiny.onnx")
    bag = synth_bag(SYNTH, d / "s.mcap")
    # the same messages as a rosbag2 bag *directory* (metadata.yaml + one storage file)
    bag_dir = d / "dir_bag"
    with AnyReader([bag]) as reader, Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=reader.typestore) for c in reader.connections}
        for conn, stamp, raw in reader.messages():
            writer.write(conns[conn.id], stamp, raw)
    return {"model": model, "bag": bag, "bag_dir": bag_dir, "dir": d}


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def test_output_over_the_input_bags_own_storage_file_is_refused(files, capsys) -> None:
    bag_dir = files["bag_dir"]
    storage = next(p for p in bag_dir.iterdir() if p.suffix == ".mcap")
    before = _digest(bag_dir)
    code = main(["infer", str(bag_dir), "-o", str(storage), "--model", str(files["model"]), "--overwrite", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "input bag" in err and "Traceback" not in err, err
    assert _digest(bag_dir) == before  # nothing replaced, nothing added


def test_output_inside_the_input_bag_directory_is_refused(files, capsys) -> None:
    bag_dir = files["bag_dir"]
    before = _digest(bag_dir)
    code = main(["infer", str(bag_dir), "-o", str(bag_dir / "depth.mcap"), "--model", str(files["model"]), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "inside the input bag directory" in err, err
    assert _digest(bag_dir) == before


def test_output_through_a_symlink_to_the_storage_file_is_refused(files, tmp_path, capsys) -> None:
    storage = next(p for p in files["bag_dir"].iterdir() if p.suffix == ".mcap")
    link = tmp_path / "alias.mcap"
    link.symlink_to(storage)
    before = _digest(files["bag_dir"])
    code = main(["infer", str(files["bag_dir"]), "-o", str(link), "--model", str(files["model"]), "--overwrite", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "input bag" in err, err
    assert _digest(files["bag_dir"]) == before


def test_a_bag_directory_still_infers_to_a_file_beside_it(files, tmp_path, capsys) -> None:
    out = tmp_path / "depth.mcap"
    code = main(["infer", str(files["bag_dir"]), "-o", str(out), "--model", str(files["model"]), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert out.is_file()


_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from depth_ros.bag.writer import BagWriter
    from depth_ros.bag.typestore import output_typestore
    ts = output_typestore()
    w = BagWriter(sys.argv[1], typestore=ts).open()
    w.add_topic("/x", "std_msgs/msg/String")
    w.write("/x", ts.types["std_msgs/msg/String"](data="partial"), 1)
    print("open", flush=True)
    time.sleep(60)
    """
)


def test_a_writer_killed_with_sigkill_leaves_a_directory_the_next_writer_removes(tmp_path) -> None:
    target = tmp_path / "out.mcap"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        left = [p for p in tmp_path.iterdir() if p.name.startswith(".depth_ros-tmp-")]
        assert len(left) == 1 and str(child.pid) in left[0].name
        # while the writer lives, its directory is not touched by another writer
        assert remove_stale_tmpdirs(tmp_path) == [] and left[0].exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert left[0].exists() and not target.exists()  # SIGKILL: nothing could clean up
    ts = output_typestore()
    with BagWriter(tmp_path / "other.mcap", typestore=ts) as writer:
        writer.add_topic("/x", "std_msgs/msg/String")
    assert not left[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mcap"]


def test_stale_directories_without_a_process_id_are_removed_only_when_old(tmp_path) -> None:
    old = tmp_path / ".depth_ros-tmp-abc123"
    fresh = tmp_path / ".depth_ros-tmp-def456"
    unrelated = tmp_path / "keep-me"
    for d in (old, fresh, unrelated):
        d.mkdir()
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert remove_stale_tmpdirs(tmp_path) == [old]
    assert fresh.exists() and unrelated.exists()


def _no_core_xfsz_limit(nbytes: int):
    """Child set-up: files may not grow beyond ``nbytes`` (the write fails with EFBIG instead of
    SIGXFSZ killing the process), as on a full disk."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
        resource.setrlimit(resource.RLIMIT_AS, (TORCH_AS, TORCH_AS))

    return apply


@pytest.mark.parametrize("suffix", [".db3", ".mcap"])
def test_output_on_a_full_disk_is_one_line_and_leaves_nothing(files, tmp_path, suffix) -> None:
    out = tmp_path / f"out{suffix}"
    proc = subprocess.run(
        [sys.executable, "-m", "depth_ros.cli", "infer", str(files["bag"]), "-o", str(out),
         "--model", str(files["model"]), "--no-progress"],
        capture_output=True, text=True, timeout=180, cwd=REPO, preexec_fn=_no_core_xfsz_limit(48 << 10),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert_one_line_error(proc, str(out))
    assert list(tmp_path.iterdir()) == []  # no output, no temporary directory


def test_untrusted_text_in_an_error_stays_on_one_line(files, tmp_path) -> None:
    model = tmp_path / "evil\n\x1b[2Jname.onnx"
    proc = run_limited(
        [sys.executable, "-m", "depth_ros.cli", "infer", str(files["bag"]), "-o", str(tmp_path / "o.mcap"),
         "--model", str(model), "--no-progress"], as_bytes=TORCH_AS,
    )
    assert_one_line_error(proc, "evil")
    assert "\\x1b[2J" in proc.stderr  # shown escaped, not executed by the terminal


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_shows_the_traceback_of_an_expected_error(files, tmp_path, where) -> None:
    args = ["infer", str(tmp_path / "missing.mcap"), "-o", str(tmp_path / "o.mcap"), "--model", str(files["model"])]
    argv = ["-v", *args] if where == "before" else [*args, "--verbose"]
    quiet = run_limited([sys.executable, "-m", "depth_ros.cli", *args], as_bytes=TORCH_AS)
    assert_one_line_error(quiet, "missing.mcap", "does not exist")
    loud = run_limited([sys.executable, "-m", "depth_ros.cli", *argv], as_bytes=TORCH_AS)
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "BagError" in loud.stderr, loud.stderr


def test_an_unwritable_output_directory_is_one_line(files, tmp_path) -> None:
    if os.geteuid() == 0:
        target_dir = Path("/proc/self")  # not writable even for root
    else:
        target_dir = tmp_path / "ro"
        target_dir.mkdir(mode=0o500)
    proc = run_limited(
        [sys.executable, "-m", "depth_ros.cli", "infer", str(files["bag"]), "-o", str(target_dir / "o.mcap"),
         "--model", str(files["model"]), "--no-progress"], as_bytes=TORCH_AS,
    )
    assert_one_line_error(proc, "o.mcap")


def test_bootstrap_from_inside_its_own_virtualenv_does_not_rebuild_it() -> None:
    venv = Path(sys.prefix)
    if not (venv / ".depth_ros_stamp").is_file():
        pytest.skip("not running inside the bootstrap virtualenv")
    stamp = (venv / ".depth_ros_stamp").read_text()
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv),
           "DEPTH_ROS_VENV": str(venv)}
    env.pop("PYTHON", None)
    proc = subprocess.run(
        ["bash", str(REPO / "bootstrap.sh"), "python", "-c", "import sys; print(sys.prefix)"],
        capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert "setting up" not in proc.stderr, proc.stderr
    assert Path(proc.stdout.strip()).resolve() == venv.resolve()
    assert (venv / ".depth_ros_stamp").read_text() == stamp
