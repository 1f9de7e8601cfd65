"""Throughput of one case set with 1 and with 2 managed ComfyUI servers, under ``-n 2``.

Three managed servers of the installed runtime are started once. A temporary project holds a
sweep of the tiny txt2img checkpoint (64x64, 20 and 30 steps, 8 seeds: 16 cases). A first
run writes the baselines. Then the same suite runs, with two xdist workers both times:

- ``1 server``:  ``-n 2 --comfy-url=A`` (both workers share A's queue);
- ``2 servers``: ``-n 2 --comfy-url=B --comfy-url=C`` (gw0 on B, gw1 on C).

Every server runs torch on one thread (``OMP_NUM_THREADS=1``, or ``--threads``), the CPU
stand-in for "one server, one accelerator": a second server adds a core as a second GPU
would. With torch's default (every core per server), on this shared 2-core machine the
servers' OpenMP threads fought each other and the machine's other load, and single runs
varied from 0.15x to 11x either way: a measure of oversubscription, not of the pool.

It prints cases per second of each run's wall time (the pytest process, start to end:
worker start-up, collection and /free included) and their ratio. Each ComfyUI uses every
core for torch, so on a small machine two servers mostly compete for the same cores: expect
a ratio near the number of idle accelerators (or cores) you add, not near 2.

    python benchmarks/throughput.py [--home DIR] [--seeds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from comfytest.comfy.pool import start_servers  # noqa: E402
from comfytest.runtime import find_runtime  # noqa: E402


def write_project(root: Path, seeds: int) -> int:
    shutil.copytree(REPO / "cases" / "workflows", root / "cases" / "workflows")
    (root / "pytest.ini").write_text("[pytest]\n")
    values = ", ".join(str(seed) for seed in range(1, seeds + 1))
    (root / "cases" / "sweep.yaml").write_text(
        "workflow: workflows/txt2img.json\ncases:\n"
        f"  - id: sweep\n    matrix: {{seed: [{values}], steps: [20, 30]}}\n"
    )
    return seeds * 2


def run(root: Path, urls: list[str], *extra: str) -> tuple[float, float, float]:
    """Seconds for one pytest run, and the sums of the cases' server execution and queue
    wait; fails loudly unless every case passed."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        "2",
        "-q",
        "-p",
        "no:cacheprovider",
        *[f"--comfy-url={url}" for url in urls],
        *extra,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pytest failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    record = json.loads((root / ".comfytest" / "results" / "run.json").read_text())
    used = record["header"]["servers"]
    if sorted(used) != sorted(urls):
        raise SystemExit(f"expected the run to use {urls}, it used {used}")
    timings = [case["timings"] for case in record["cases"]]
    execution = sum(t["execution_s"] or 0.0 for t in timings)
    queued = sum(t["queue_wait_s"] or 0.0 for t in timings)
    return seconds, execution, queued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="runtime home (default)")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per step count (8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server (1)")
    args = parser.parse_args()
    runtime = find_runtime(args.home)
    with tempfile.TemporaryDirectory(prefix="comfytest-throughput-") as tmp:
        root = Path(tmp) / "project"
        cases = write_project(root, args.seeds)
        cores = os.cpu_count() or 2
        # The servers inherit this process's environment when they start.
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        servers = start_servers(runtime, [Path(tmp) / "a", Path(tmp) / "b", Path(tmp) / "c"])
        try:
            urls = [server.url for server in servers]
            run(root, urls[1:], "--comfy-update=missing")  # baselines, and a warm disk cache
            one = run(root, urls[:1])
            two = run(root, urls[1:])
        finally:
            for server in servers:
                server.stop()
    print(f"{cases} cases, -n 2, {runtime.name}, {cores} cores")
    print(f"torch threads per server: {args.threads}")
    for name, (seconds, execution, queued) in (("1 server: ", one), ("2 servers:", two)):
        print(
            f"{name} {seconds:6.1f} s  {cases / seconds:5.2f} cases/s  (server execution "
            f"{execution:.1f} s, queue wait {queued:.1f} s, summed over cases)"
        )
    print(f"ratio (2 servers / 1 server): {one[0] / two[0]:.2f}x")


if __name__ == "__main__":
    main()
