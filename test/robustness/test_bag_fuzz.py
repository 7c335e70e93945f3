"""Damaged bags fed to ``depth-ros infer``: truncated, bytes flipped, regions zeroed or
repeated, in the MCAP and the sqlite3 storage. Every case must end in a result or a one-line
error (exit 1), never a traceback, a hang or a half-written output, and within an address-space
limit: a length field read from a damaged file must not become an allocation.

The cases are made from one small synthetic bag by a seeded generator, so a failure is
reproducible from its case id.
"""
from __future__ import annotations

import json
import random
import sys
import textwrap
from pathlib import Path

import pytest

from depth_ros.synthetic import write_bag as synth_bag

from harness import TINY_SYNTH as SYNTH, TORCH_AS, run_limited, tiny_depth_model

CASES_PER_STORAGE = 60


def _mutations(data: bytes, seed: int, count: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    n = len(data)
    cases: list[tuple[str, bytes]] = []
    for i in range(count):
        kind = ("truncate", "flip", "zero", "repeat", "length")[i % 5]
        # most bytes are image payload: aim a third of the cases at the first and the last
        # 2 KiB, where the headers, schemas, index and summary records are
        region = i // 5 % 3
        if region == 0:
            at = rng.randrange(8, min(2048, n - 8))
        elif region == 1:
            at = rng.randrange(max(8, n - 2048), n - 8)
        else:
            at = rng.randrange(8, n - 8)
        if kind == "truncate":
            body = data[:at]
        elif kind == "flip":
            buf = bytearray(data)
            for _ in range(rng.randint(1, 16)):
                j = min(n - 1, at + rng.randrange(64))
                buf[j] ^= 1 << rng.randrange(8)
            body = bytes(buf)
        elif kind == "zero":
            span = rng.randint(1, 512)
            body = data[:at] + bytes(min(span, n - at)) + data[at + span:]
        elif kind == "repeat":
            span = rng.randint(16, 1024)
            body = data[:at] + data[at:at + span] * 2 + data[at + span:]
        else:  # a 4- or 8-byte little-endian length field overwritten with a huge value
            width = rng.choice((4, 8))
            body = data[:at] + b"\xff" * (width - 1) + b"\x7f" + data[at + width:]
        cases.append((f"{kind}@{at}", body))
    return cases


_RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from pathlib import Path
    from depth_ros.cli import main
    model, cases = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    results = []
    for case in cases:
        out = Path(case["out"])
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(["infer", case["bag"], "-o", str(out), "--model", model, "--no-progress"])
            except BaseException as exc:  # the test reports it
                import traceback
                code = -1
                err.write(traceback.format_exc())
        left = sorted(p.name for p in out.parent.iterdir() if p.name != Path(case["bag"]).name)
        results.append({"id": case["id"], "code": code, "stderr": err.getvalue(), "left": left})
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_depth_model(tmp_path_factory.mktemp("fuzz_model") / "tiny.onnx")


@pytest.mark.parametrize("suffix", [".mcap", ".db3"])
def test_damaged_bags_end_in_a_result_or_one_line(model: Path, tmp_path: Path, suffix: str) -> None:
    clean = synth_bag(SYNTH, tmp_path / f"clean{suffix}")
    cases = []
    for k, (case_id, body) in enumerate(_mutations(clean.read_bytes(), seed=1234 + len(suffix), count=CASES_PER_STORAGE)):
        d = tmp_path / f"case{k:02d}"
        d.mkdir()
        bag = d / f"in{suffix}"
        bag.write_bytes(body)
        cases.append({"id": case_id, "bag": str(bag), "out": str(d / "out.mcap")})
    spec_file = tmp_path / "cases.json"
    spec_file.write_text(json.dumps(cases))
    proc = run_limited([sys.executable, "-c", _RUNNER, str(model), str(spec_file)], as_bytes=TORCH_AS, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(cases)
    bad = []
    for r in results:
        error_lines = [ln for ln in r["stderr"].splitlines() if ": error: " in ln]
        if r["code"] == 0:
            ok = r["left"] == ["out.mcap"]
        else:
            ok = r["code"] == 1 and "Traceback" not in r["stderr"] and len(error_lines) == 1 and r["left"] == []
        if not ok:
            bad.append(f"{r['id']}: exit {r['code']}, left {r['left']}\n{r['stderr'][-1500:]}")
    assert not bad, "\n\n".join(bad)
    # the generator reaches both outcomes: some damage is survivable, some is refused
    assert any(r["code"] == 1 for r in results)
