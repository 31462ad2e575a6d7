"""The benchmarks run: one quick scenario end to end, on the stack the tests start.

`python -m bench parity` with tiny counts (about 30 s): its dev server, stub services,
gateway, our worker and the hand-written one, then the figures. Nothing about the
figures is asserted, only that every execution completed and the ratios were printed.
"""

from __future__ import annotations

import subprocess
import sys

from harness.stack import ROOT

TINY = ["--rounds", "1", "--sequential", "2", "--total", "4", "--in-flight", "2"]


def test_parity_runs_and_prints_its_ratios() -> None:
    command = [sys.executable, "-m", "bench", "parity", *TINY, "--variants", "b", "c"]
    done = subprocess.run(
        [*command, "--quiet-wait", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "p50 c/b" in done.stdout and "throughput c/b" in done.stdout, output[-3000:]
    assert "First errors" not in done.stdout, output[-3000:]
