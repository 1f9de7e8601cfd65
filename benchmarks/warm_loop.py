"""The edit -> verdict loop for one 64x64 case: a fresh managed server per run
(``--comfy-launch``) against the reusable one (``--comfy-reuse``).

    .venv/bin/python benchmarks/warm_loop.py [--n 10] [--cold 3]

Copies the example suite (cases/, baselines/) to a temporary project and uses a comfytest
home of its own (its ``servers/`` folder; the installed runtimes are linked), so no server
of anyone else is reused or stopped. Each measured step is what a user does: edit the fox
case of cases/txt2img.yaml (a new seed, so the sampler really runs; the verdict is then
"failed" against the committed baseline), then run ``pytest cases/txt2img.yaml::fox`` in a
fresh process; the time is from the edit to the process's exit, verdict printed.

The first --comfy-reuse run starts the reusable server and is reported apart; the reusable
server is stopped at the end. Prints medians and quartiles, and the load average, since the
2 cores here are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASE = "cases/txt2img.yaml::fox"


def edit(project: Path, seed: int) -> None:
    """Give the fox case its own seed (a changed prompt: nothing of it is cached)."""
    path = project / "cases/txt2img.yaml"
    text = re.sub(
        r"(  - id: fox\n)(    seed: \d+\n)?", rf"\g<1>    seed: {seed}\n", path.read_text()
    )
    path.write_text(text)


def step(project: Path, home: Path, seed: int, how: str) -> tuple[float, str, float]:
    """Seconds from the edit to the verdict, the verdict, and the server's execution
    seconds (from run.json)."""
    started = time.perf_counter()
    edit(project, seed)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            CASE,
            how,
            f"--comfy-home={home}",
            "-p",
            "no:cacheprovider",
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    verdict = next(
        (
            line
            for line in result.stdout.splitlines()
            if line.startswith("cases/txt2img.yaml::fox ")
        ),
        "",
    )
    if not verdict:
        sys.exit(f"no verdict ({how}):\n{result.stdout}\n{result.stderr}")
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    execution = float(record["cases"][0]["timings"]["execution_s"] or 0.0)
    return seconds, " ".join(verdict.split()[1:3]), execution


def summary(name: str, times: list[float]) -> str:
    if len(times) < 2:
        return f"{name}: {times[0]:.2f} s (1 run)"
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    spread = f"IQR {q3 - q1:.2f} s, min {min(times):.2f} s"
    return f"{name}: median {median:.2f} s, {spread} ({len(times)} runs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="warm runs (default 10)")
    parser.add_argument("--cold", type=int, default=3, help="--comfy-launch runs (default 3)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from comfytest.runtime import install
    from comfytest.runtime.registry import stop_detached

    runtime = install(log=lambda message: None)
    with tempfile.TemporaryDirectory(prefix="warm-loop-") as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        for name in ("runtimes", "venvs"):
            (home / name).symlink_to(runtime.root.parent.parent / name)
        project = root / "project"
        shutil.copytree(REPO / "cases", project / "cases")
        shutil.copytree(REPO / "baselines", project / "baselines")
        (project / "pytest.ini").write_text("[pytest]\ncomfy_case_paths = cases\n")
        env_load = os.getloadavg()
        cold = [step(project, home, 1000 + i, "--comfy-launch") for i in range(args.cold)]
        try:
            first = step(project, home, 2000, "--comfy-reuse")
            warm = [step(project, home, 3000 + i, "--comfy-reuse") for i in range(args.n)]
        finally:
            stop_detached(home)
        print(f"load average before: {env_load[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
        print(f"verdicts: {sorted({v for _, v, _ in [*cold, first, *warm]})}")
        print(summary("--comfy-launch, each run starts ComfyUI", [t for t, _, _ in cold]))
        print(f"--comfy-reuse, the run that starts the reusable server: {first[0]:.2f} s")
        warm_times = [t for t, _, _ in warm]
        print(summary("--comfy-reuse, edit -> verdict on the warm server", warm_times))
        print(summary("  of which the server's execution", [e for _, _, e in warm]))
        print(summary("  the rest (Python, pytest, comfytest)", [t - e for t, _, e in warm]))
        cold_median = statistics.median(t for t, _, _ in cold)
        print(f"ratio warm / cold (medians): {statistics.median(warm_times) / cold_median:.2f}")


if __name__ == "__main__":
    main()
