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

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


def run(root: Path, env: dict[str, str], *args: str) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one pytest process."""
    cpu = _children_cpu()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started, _children_cpu() - cpu


def _children_cpu() -> float:
    if resource is None:  # Windows: no CPU times of child processes
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plugin_import_ms(root: Path, env: dict[str, str]) -> float:
    """The self times ``-X importtime`` gives comfytest's modules in a pytest run, summed
    (the modules pytest's assertion rewriter loads itself, the plugin's two package
    ``__init__`` files, are not timed by it)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in result.stderr.splitlines():
        fields = [field.strip() for field in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2].split(".")[0] == "comfytest":
            total += int(fields[0])
    return total / 1000


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
        with_plugin, without, imports = [], [], []
        for _ in range(args.repeat):
            with_plugin.append(run(root, env))
            without.append(run(root, env, "-p", "no:comfytest"))
            imports.append(plugin_import_ms(root, env))
    cache = "compiled in every run" if args.no_bytecode else "bytecode cached"
    print(f"one-test pytest run, median of {args.repeat} interleaved fresh processes ({cache}):")
    print("                                  wall      CPU")
    on = [statistics.median(t[i] for t in with_plugin) for i in (0, 1)]
    off = [statistics.median(t[i] for t in without) for i in (0, 1)]
    print(f"  with comfytest               {on[0] * 1000:5.0f} ms  {on[1] * 1000:5.0f} ms")
    print(f"  -p no:comfytest              {off[0] * 1000:5.0f} ms  {off[1] * 1000:5.0f} ms")
    added = [(on[i] - off[i]) * 1000 for i in (0, 1)]
    print(f"  added by the plugin          {added[0]:5.0f} ms  {added[1]:5.0f} ms", end="")
    print(f"  (ratio {on[0] / off[0]:.3f} wall, {on[1] / off[1]:.3f} CPU)")
    paired = [
        statistics.median(a[i] - b[i] for a, b in zip(with_plugin, without, strict=True)) * 1000
        for i in (0, 1)
    ]
    print(f"  median of paired differences {paired[0]:5.0f} ms  {paired[1]:5.0f} ms")
    imported = statistics.median(imports)
    print(f"  comfytest's modules, self times summed (-X importtime): {imported:.1f} ms")


if __name__ == "__main__":
    main()
