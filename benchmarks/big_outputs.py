"""Memory when judging big outputs: a 2048x2048 image and a 100-frame 512x512 animation.

Both are made for real by the managed ComfyUI, without a model: EmptyImage -> ImageAddNoise
(different noise in every frame, so no two frames are equal) -> SaveImage / SaveAnimatedPNG.
Each step runs in a fresh child process, so its peak RSS is its own:

- ``create``: no baseline yet, ``--comfy-update=missing`` writes it;
- ``judge``: the same seed again, judged against that baseline (passes);
- ``differs``: another seed, judged (fails, so the evidence is written).

For each it prints the RSS after imports and connecting, the peak RSS of the process
(``ru_maxrss``), the growth between the two, and tracemalloc's peak (numpy's arrays; PIL's
own image memory is not traced). The decoded size of the output is printed beside them: a
judge that held every frame of the actual and of the baseline would grow by about twice that.

    python benchmarks/big_outputs.py [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

SCENARIOS: dict[str, dict[str, Any]] = {
    "image 2048x2048": {"width": 2048, "height": 2048, "frames": 1, "save": "SaveImage"},
    "animation 100 x 512x512": {
        "width": 512,
        "height": 512,
        "frames": 100,
        "save": "SaveAnimatedPNG",
    },
}
STEPS = {"create": ("missing", 1), "judge": ("none", 1), "differs": ("none", 2)}


def workflow(width: int, height: int, frames: int, save: str) -> dict[str, Any]:
    saver: dict[str, Any] = {"images": ["2", 0], "filename_prefix": "big"}
    if save == "SaveAnimatedPNG":
        saver |= {"fps": 10.0, "compress_level": 1}
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": frames, "color": 8421504},
        },
        "2": {
            "class_type": "ImageAddNoise",
            "inputs": {"image": ["1", 0], "seed": 0, "strength": 0.5},
        },
        "3": {"class_type": save, "inputs": saver},
    }


def rss_mib() -> float:
    """This process's peak resident set so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def child(scenario: str, step: str, url: str, work: Path) -> None:
    from comfytest.cases.loader import load_cases
    from comfytest.judging.baselines import BaselineStore
    from comfytest.runner import Runner

    update, seed = STEPS[step]
    spec = SCENARIOS[scenario]
    name = "image" if spec["frames"] == 1 else "animation"
    (work / f"{name}.json").write_text(json.dumps(workflow(**spec)))
    case_file = work / f"{name}.yaml"
    case_file.write_text(f"workflow: {name}.json\nseed: {seed}\ncases:\n  - id: big\n")
    (case,) = load_cases(case_file)
    store = BaselineStore(work / "baselines", work / f"results-{step}", update)
    runner = Runner(store, url=url, timeout=600)
    try:
        runner.servers.object_info(runner.servers.home)
        runner.environment()
        before = rss_mib()
        tracemalloc.start()
        result = runner.run_case(case, name)
        traced_peak = tracemalloc.get_traced_memory()[1] / (1024 * 1024)
        tracemalloc.stop()
        after = rss_mib()
    finally:
        runner.close()
    print(
        json.dumps(
            {
                "verdicts": [v.status for v in result.verdicts],
                "rss_before_mib": round(before, 1),
                "peak_rss_mib": round(after, 1),
                "traced_peak_mib": round(traced_peak, 1),
                "download_s": result.timings["download_s"],
                "compare_s": result.timings["compare_s"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="comfytest home (runtimes)")
    parser.add_argument("--child", nargs=4, metavar=("SCENARIO", "STEP", "URL", "WORK"))
    args = parser.parse_args()
    if args.child:
        scenario, step, url, work = args.child
        child(scenario, step, url, Path(work))
        return

    from comfytest.runtime import find_runtime, start_server

    runtime = find_runtime(args.home, None)
    with tempfile.TemporaryDirectory(prefix="comfytest-big-") as tmp:
        server = start_server(runtime, Path(tmp) / "server", log=lambda message: None)
        try:
            print(f"ComfyUI at {server.url}; peak RSS per step, each in a fresh process\n")
            print(
                f"{'output':26} {'step':8} {'decoded':>9} {'RSS before':>11} {'peak RSS':>9} "
                f"{'growth':>8} {'traced':>8} {'compare':>8}  verdict"
            )
            for scenario, spec in SCENARIOS.items():
                work = Path(tmp) / scenario.split()[0]
                work.mkdir()
                decoded = spec["width"] * spec["height"] * 3 * spec["frames"] / (1024 * 1024)
                for step in STEPS:
                    found = subprocess.run(
                        [sys.executable, __file__, "--child", scenario, step, server.url, work],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    r = json.loads(found.stdout.strip().splitlines()[-1])
                    growth = r["peak_rss_mib"] - r["rss_before_mib"]
                    print(
                        f"{scenario:26} {step:8} {decoded:7.0f} M {r['rss_before_mib']:9.0f} M "
                        f"{r['peak_rss_mib']:7.0f} M {growth:6.0f} M "
                        f"{r['traced_peak_mib']:6.0f} M {r['compare_s']:7.2f}s  "
                        f"{','.join(r['verdicts'])}"
                    )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
