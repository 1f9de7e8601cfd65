"""What installing comfytest costs a pytest run that collects no case file.

    .venv/bin/python benchmarks/plugin_import.py [--repeat 15]

Writes a project with one trivial test to a temporary folder and times ``pytest -q`` on it
in a fresh process, with the plugin and with ``-p no:comfytest``, interleaved, and prints
the medians, the time the plugin adds and the ratio. Before the plugin imported its case
machinery lazily this was 1.55 s against 0.90 s.

Bytecode is cached in a temporary PYTHONPYCACHEPREFIX, as an installed package has it
(pip compiles on install), also where PYTHONDONTWRITEBYTECODE is set; the source tree is
not written to. ``--no-bytecode`` compiles every module in every run instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(root: Path, env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-bytecode", action="store_true", help="compile in every run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        env = dict(os.environ)
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        run(root, env)  # warm the file cache and the bytecode of both arms
        run(root, env, "-p", "no:comfytest")
        with_plugin, without = [], []
        for _ in range(args.repeat):
            with_plugin.append(run(root, env))
            without.append(run(root, env, "-p", "no:comfytest"))
    on, off = statistics.median(with_plugin), statistics.median(without)
    cache = "compiled in every run" if args.no_bytecode else "bytecode cached"
    print(f"one-test pytest run, median of {args.repeat} interleaved fresh processes ({cache}):")
    print(f"  with comfytest       {on * 1000:7.0f} ms")
    print(f"  -p no:comfytest      {off * 1000:7.0f} ms")
    print(f"  added by the plugin  {(on - off) * 1000:7.0f} ms  (ratio {on / off:.3f})")


if __name__ == "__main__":
    main()
