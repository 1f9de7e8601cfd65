"""Harness overhead beyond ComfyUI's own execution time, against a raw client and comfy-cli.

    .venv/bin/python benchmarks/overhead.py [--n 30] [--sweep 100] [--comfy PATH]

Against one managed server (started here), in one run, it prints:

* per-prompt overhead in ms beyond server execution (``execution_start`` to the terminal
  message, from /history's ``status.messages``), median and IQR over N prompts, for
  - the minimal raw client in ``benchmarks/raw_client.py``, with one persistent WebSocket
    and HTTP connection, and again with new connections per prompt;
  - comfytest: a full pytest run of N cases, per item from the items' timestamps in
    ``run.json`` (once the run is going, and the first item's one-time set-up apart), per
    case over the test loop and over the whole process, and the server's idle time
    between its prompts (see ``comfytest_overheads``);
  - comfy-cli's ``comfy run --wait`` (installed with ``--install-comfy-cli`` into its own
    venv under the comfytest home, or given with ``--comfy``);
* for a sweep of ``--sweep`` cells of the tiny txt2img, the fraction of wall time the
  server was busy (from the server's own timestamps of the run's prompts);
* the cost of comparing one output vs decoding its PNG, as a run compares it;
* the collection ratio, from ``benchmarks/collection.py``.

Every prompt is the tiny txt2img (64x64, 5 steps) with its own seed, so the sampler runs
each time while the models stay loaded, as in a suite.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from raw_client import RawClient, execution_seconds, execution_span

from comfytest.judging.compare import Comparison, Tolerance, compare
from comfytest.judging.images import write_png
from comfytest.judging.manifest import stored_phashes, write_manifest
from comfytest.runtime import default_home, find_runtime, start_server

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / "cases" / "workflows" / "txt2img.json"


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    median = statistics.median(values)
    return f"median {median:7.1f} ms  IQR {q[2] - q[0]:5.1f} ms  (n={len(values)})"


def prompt_with_seed(seed: int) -> dict[str, Any]:
    prompt: dict[str, Any] = json.loads(WORKFLOW.read_text())
    for node in prompt.values():
        if "seed" in node["inputs"]:
            node["inputs"]["seed"] = seed
    return prompt


def raw_overheads(url: str, n: int, first_seed: int, *, persistent: bool) -> list[float]:
    found = []
    client = RawClient(url) if persistent else None
    for i in range(n):
        one = client or RawClient(url)
        found.append(one.run(prompt_with_seed(first_seed + i)).overhead_ms)
        if client is None:
            one.close()
    if client is not None:
        client.close()
    return found


def comfytest_project(root: Path, n: int, first_seed: int, sweep: int = 0) -> None:
    cases = root / "cases"
    (cases / "workflows").mkdir(parents=True)
    shutil.copy(WORKFLOW, cases / "workflows" / "txt2img.json")
    if sweep:
        seeds = ", ".join(str(first_seed + i) for i in range(sweep))
        body = f"  - id: sweep\n    matrix: {{seed: [{seeds}]}}\n"
    else:
        body = "".join(f"  - id: c{i}\n    seed: {first_seed + i}\n" for i in range(n))
    (cases / "bench.yaml").write_text(f"workflow: workflows/txt2img.json\ncases:\n{body}")
    (root / "pytest.ini").write_text("[pytest]\n")


def run_pytest(root: Path, url: str, *args: str) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "cases", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, *args, f"--comfy-url={url}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pytest failed:\n{done.stdout[-3000:]}")
    return wall


def comfytest_overheads(url: str, n: int, first_seed: int) -> dict[str, float]:
    """Per case, in ms beyond execution, from a pytest run of ``n`` cases:

    * ``item``: from the end of the first prompt's execution (server time) to the last
      item's stop, over the n - 1 items after the first: everything a case costs once the
      run is going (pytest's own work between items included);
    * ``first``: from the first item's start to its prompt's execution start, once per run
      and server (connecting, ``/free`` and the server's garbage collection after it,
      ``/object_info``);
    * ``loop``: the first item's start to the last one's stop, over n items;
    * ``run``: the whole pytest process (start-up and collection too), over n items;
    * ``idle``: the median time the server idled between two prompts of the run (its own
      timestamps).

    Prompts are pipelined (the next one runs while this one's outputs are judged), so one
    item's duration can be shorter than its execution: each figure is over a stretch of
    the run."""
    with tempfile.TemporaryDirectory(prefix="comfytest-bench-") as tmp:
        root = Path(tmp)
        comfytest_project(root, n, first_seed)
        run_pytest(root, url, "--comfy-update=missing")
        wall = run_pytest(root, url)
        record = json.loads((root / ".comfytest/results/run.json").read_text())
    cases = sorted(record["cases"], key=lambda case: case["start"])
    executions = [case["timings"]["execution_s"] for case in cases]
    ids = [case["prompt_id"] for case in cases]
    spans = [execution_span(httpx.get(f"{url}/history/{i}").json()[i]) for i in ids]
    idle = [after[0] - before[1] for before, after in itertools.pairwise(spans)]
    first, last = cases[0], cases[-1]
    found = {
        "item": (last["stop"] - spans[0][1] - sum(executions[1:])) / (n - 1),
        "first": spans[0][0] - first["start"],
        "loop": (last["stop"] - first["start"] - sum(executions)) / n,
        "run": (wall - sum(executions)) / n,
        "idle": statistics.median(idle),
    }
    return {name: seconds * 1000 for name, seconds in found.items()}


def comfy_cli_overheads(comfy: str, url: str, n: int, first_seed: int) -> list[float]:
    host, port = url.removeprefix("http://").split(":")
    found = []
    with tempfile.TemporaryDirectory(prefix="comfytest-bench-cli-") as tmp:
        for i in range(n):
            path = Path(tmp) / f"w{i}.json"
            path.write_text(json.dumps(prompt_with_seed(first_seed + i)))
            started = time.perf_counter()
            command = [comfy, "--skip-prompt", "--no-enable-telemetry", "run", "--wait"]
            subprocess.run(
                [*command, "--workflow", str(path), "--host", host, "--port", port],
                capture_output=True,
                check=True,
            )
            wall = time.perf_counter() - started
            history = httpx.get(f"{url}/history", params={"max_items": 1}).json()
            entry = next(iter(history.values()))
            found.append((wall - execution_seconds(entry)) * 1000)
    return found


def busy_fraction(url: str, n: int, first_seed: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="comfytest-bench-sweep-") as tmp:
        root = Path(tmp)
        comfytest_project(root, 0, first_seed, sweep=n)
        run_pytest(root, url, "--comfy-update=missing")
        wall = run_pytest(root, url)
    history = httpx.get(f"{url}/history", params={"max_items": n}).json()
    spans = [execution_span(entry) for entry in history.values()]
    busy = sum(end - start for start, end in spans)
    window = max(end for _, end in spans) - min(start for start, _ in spans)
    return busy / window, wall


def fetch(client: RawClient, url: str, size: int, steps: int) -> bytes:
    """The PNG bytes of the tiny txt2img's output at ``size`` and ``steps``."""
    prompt = prompt_with_seed(7)
    prompt["5"]["inputs"].update(width=size, height=size)
    prompt["3"]["inputs"]["steps"] = steps
    prompt_id = client.run(prompt).prompt_id
    entry = httpx.get(f"{url}/history/{prompt_id}").json()[prompt_id]
    image = next(iter(entry["outputs"].values()))["images"][0]
    params = {k: image[k] for k in ("filename", "subfolder", "type")}
    return httpx.get(f"{url}/view", params=params).content


def upscaled(png: bytes, size: int) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.resize((size, size), Image.Resampling.LANCZOS).save(buffer, "PNG", compress_level=4)
    return buffer.getvalue()


def compare_vs_decode(url: str) -> list[tuple[str, float, float, float, float]]:
    """Per size: PNG decode, and compare (ms) with an identical baseline (the usual verdict
    on a deterministic server) and with a baseline one sampler step apart: as a run does it
    (the baseline's pHash taken from its manifest, after checking the PNG's digest), and
    with both pHashes computed (a baseline without a manifest).

    The 1024x1024 pair is the 512x512 one upscaled and saved as ComfyUI saves (PNG level
    4): the tiny model takes minutes per 1024x1024 image on these CPUs."""
    client = RawClient(url)
    rows = []
    try:
        outputs = {
            size: [fetch(client, url, size, steps) for steps in (5, 6)] for size in (64, 512)
        }
        outputs[1024] = [upscaled(png, 1024) for png in outputs[512]]
        with tempfile.TemporaryDirectory(prefix="comfytest-bench-compare-") as tmp:
            root = Path(tmp)
            for size, (png, other_png) in outputs.items():
                decoded, other = (Image.open(io.BytesIO(data)) for data in (png, other_png))
                decoded.load()
                other.load()
                same = decoded.copy()
                folder = f"case{size}"
                write_png(root / folder / "9-0.png", other)
                write_manifest(root, folder, {})
                repeat = {64: 50, 512: 10}.get(size, 3)

                def timed(work: Any) -> float:
                    return min(timeit.repeat(work, number=repeat, repeat=5)) / repeat * 1000  # noqa: B023

                def as_in_a_run() -> Comparison:
                    stored = stored_phashes(root, folder, "9-0")  # noqa: B023
                    return compare(decoded, other, Tolerance(), lambda: stored(0))  # noqa: B023

                decode_ms = timed(lambda: Image.open(io.BytesIO(png)).load())  # noqa: B023
                identical_ms = timed(lambda: compare(decoded, same, Tolerance()))  # noqa: B023
                differing_ms = timed(as_in_a_run)
                unrecorded_ms = timed(lambda: compare(decoded, other, Tolerance()))  # noqa: B023
                rows.append(
                    (f"{size}x{size}", decode_ms, identical_ms, differing_ms, unrecorded_ms)
                )
    finally:
        client.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30, help="prompts per client (default 30)")
    parser.add_argument("--sweep", type=int, default=100, help="sweep cells (default 100)")
    parser.add_argument("--comfy", default=None, help="comfy-cli's executable")
    parser.add_argument(
        "--install-comfy-cli",
        action="store_true",
        help="install comfy-cli from PyPI into <comfytest home>/bench/comfy-cli-venv",
    )
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()

    comfy = args.comfy
    venv = (args.home or default_home()) / "bench" / "comfy-cli-venv"
    if comfy is None and args.install_comfy_cli and not (venv / "bin" / "comfy").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "comfy-cli"], check=True)
    if comfy is None and (venv / "bin" / "comfy").exists():
        comfy = str(venv / "bin" / "comfy")

    runtime = find_runtime(args.home, None)
    with tempfile.TemporaryDirectory(prefix="comfytest-bench-server-") as run_dir:
        server = start_server(runtime, Path(run_dir), log=lambda message: None)
        try:
            url = server.url
            raw_overheads(url, 3, 1, persistent=True)  # load the models
            print(f"ComfyUI at {url}; tiny txt2img 64x64, 5 steps; overhead beyond execution:")
            raw = raw_overheads(url, args.n, 1000, persistent=True)
            print(f"  raw client, persistent connections   {spread(raw)}")
            fresh = raw_overheads(url, args.n, 2000, persistent=False)
            print(f"  raw client, new connections          {spread(fresh)}")
            ours = comfytest_overheads(url, args.n, 3000)
            print(
                f"  comfytest, per item                  {ours['item']:7.1f} ms  "
                f"(items 2..N, from their timestamps; pipelined)"
            )
            print(
                f"  comfytest, first item                {ours['first']:7.1f} ms  "
                "(once per run and server: connect, /free, /object_info)"
            )
            print(f"  comfytest, test loop / N             {ours['loop']:7.1f} ms")
            print(
                f"  comfytest, whole pytest run / N      {ours['run']:7.1f} ms  "
                "(with pytest's start and collection)"
            )
            print(f"  server idle between comfytest's prompts: median {ours['idle']:.1f} ms")
            cli: list[float] = []
            if comfy:
                cli = comfy_cli_overheads(comfy, url, args.n, 4000)
                print(f"  comfy-cli run --wait                 {spread(cli)}")
            else:
                print("  comfy-cli: not installed (--install-comfy-cli, or --comfy PATH)")
            item, floor = ours["item"], statistics.median(raw)
            print(
                f"comfytest per item / raw client: {item / floor:.2f}x (target <= 2x); "
                f"with the first item's set-up spread over N: {ours['loop'] / floor:.2f}x"
            )
            if cli:
                print(
                    f"comfytest per item / comfy-cli: 1/{statistics.median(cli) / item:.0f} "
                    "(target under 1/20)"
                )

            busy, wall = busy_fraction(url, args.sweep, 5000)
            print(
                f"{args.sweep}-cell sweep: server busy {busy:.3f} of the wall time "
                f"(target >= 0.95); pytest wall {wall:.1f} s"
            )

            for size, decode_ms, same_ms, differ_ms, bare_ms in compare_vs_decode(url):
                print(
                    f"compare vs PNG decode ({decode_ms:.3f} ms), {size}: identical "
                    f"{same_ms:.3f} ms = {same_ms / decode_ms:.2f}x, one step apart "
                    f"{differ_ms:.3f} ms = {differ_ms / decode_ms:.2f}x (target <= 0.5x); "
                    f"without a manifest {bare_ms / decode_ms:.2f}x"
                )
        finally:
            server.stop()
    collection = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "collection.py"), "--repeat", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    print(collection.stdout.strip().splitlines()[-1] if collection.stdout.strip() else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
