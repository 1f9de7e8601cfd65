"""The first item's set-up on a server given by --comfy-url (one comfytest does not manage).

    .venv/bin/python benchmarks/first_item.py [--runs 5] [--n 3]

Starts one managed server here and uses it as an unmanaged ``--comfy-url``. Each run is a
pytest run of ``--n`` tiny txt2img cases (64x64, 5 steps, each its own seed); the first
item's set-up is measured as in ``benchmarks/overhead.py``: from the first item's start
(``run.json``) to its prompt's ``execution_start`` (the server's own timestamp), i.e.
connecting, ``/system_stats``, ``/object_info``, preparing the prompt, opening the
WebSocket and queueing. It prints the median over ``--runs`` runs, against the goal
(<= 50 ms) and the 384 ms measured before, when every server got ``POST /free``.

The models are loaded before the first run (another user's work, say): with no ``/free``,
they stay loaded, and the first case is timed warm.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import comfytest_overheads, raw_overheads

from comfytest.runtime import find_runtime, start_server

GOAL_MS = 50.0
BEFORE_MS = 384.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="pytest runs (default 5)")
    parser.add_argument("--n", type=int, default=3, help="cases per run (default 3)")
    args = parser.parse_args()
    runtime = find_runtime(None, None)
    with tempfile.TemporaryDirectory(prefix="comfytest-bench-first-") as run_dir:
        server = start_server(runtime, Path(run_dir), log=lambda message: None)
        try:
            raw_overheads(server.url, 3, 1, persistent=True)  # load the models
            firsts = [
                comfytest_overheads(server.url, args.n, 10_000 + 100 * run)["first"]
                for run in range(args.runs)
            ]
        finally:
            server.stop()
    median = statistics.median(firsts)
    print(
        f"first item's set-up on a --comfy-url server: median {median:.1f} ms over "
        f"{args.runs} runs (each: {', '.join(f'{ms:.0f}' for ms in firsts)} ms); "
        f"goal <= {GOAL_MS:g} ms, before {BEFORE_MS:g} ms: {BEFORE_MS / median:.1f}x less"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
