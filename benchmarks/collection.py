"""Collection cost: 1,000 YAML cases vs 1,000 parametrized Python test functions.

    .venv/bin/python benchmarks/collection.py [--cases 1000] [--repeat 5]

Writes both projects to a temporary folder, times ``pytest --collect-only -q`` on each
(a fresh process every time, interleaved, median of --repeat runs), and prints the ratio.
Collection needs no server: the YAML project is collected with an unreachable --comfy-url.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def yaml_project(root: Path, count: int) -> None:
    cases = root / "cases"
    (cases / "workflows").mkdir(parents=True)
    workflow = json.loads((REPO / "cases/workflows/txt2img.json").read_text())
    (cases / "workflows/txt2img.json").write_text(json.dumps(workflow))
    per_file = 50
    for start in range(0, count, per_file):
        lines = ["workflow: workflows/txt2img.json", "seed: 1", "cases:"]
        for n in range(start, min(start + per_file, count)):
            lines += [f"  - id: case{n}", f"    inputs: {{KSampler: {{steps: {n % 50 + 1}}}}}"]
        (cases / f"suite{start // per_file:03d}.yaml").write_text("\n".join(lines) + "\n")
    (root / "pytest.ini").write_text("[pytest]\n")


def python_project(root: Path, count: int) -> None:
    tests = root / "tests"
    tests.mkdir(parents=True)
    per_file = 50
    for start in range(0, count, per_file):
        values = list(range(start, min(start + per_file, count)))
        (tests / f"test_suite{start // per_file:03d}.py").write_text(
            "import pytest\n\n"
            f"@pytest.mark.parametrize('steps', {values!r})\n"
            "def test_case(steps):\n    assert steps >= 0\n"
        )
    (root / "pytest.ini").write_text("[pytest]\n")


def collect(root: Path, *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"collection failed in {root}:\n{result.stdout[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        yaml_root, py_root = Path(tmp, "yaml"), Path(tmp, "py")
        yaml_project(yaml_root, args.cases)
        python_project(py_root, args.cases)
        yaml_times, py_times = [], []
        for _ in range(args.repeat):
            yaml_times.append(collect(yaml_root, "--comfy-url=http://127.0.0.1:9"))
            py_times.append(collect(py_root))
    y, p = statistics.median(yaml_times), statistics.median(py_times)
    print(
        f"collect {args.cases} YAML cases:             {y * 1000:7.0f} ms (median of {args.repeat})"
    )
    print(
        f"collect {args.cases} parametrized functions: {p * 1000:7.0f} ms (median of {args.repeat})"
    )
    print(f"ratio YAML / Python: {y / p:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
