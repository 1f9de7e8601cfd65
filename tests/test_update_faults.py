"""Update runs that are killed, interrupted, or run twice at once leave whole baselines."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from comfytest.atomic import atomic_write
from comfytest.judging.baselines import BaselineStore
from comfytest.judging.compare import Tolerance
from comfytest.judging.images import read_frames
from comfytest.judging.prune import CaseFileRun, unused_baselines
from comfytest.runtime import ManagedServer, Runtime

from .conftest import processes_mentioning, start_pytest, stop_mid_run, wait_for_result

REPO = Path(__file__).resolve().parent.parent


def cases(seed: int) -> str:
    return (
        f"workflow: workflows/txt2img.json\nseed: {seed}\ncases:\n"
        "  - id: a-first\n"
        "  - id: b-second\n    inputs: {KSampler: {steps: 3}}\n"
        "  - id: c-endless\n    inputs: {KSampler: {steps: 5000}}\n"
        "  - id: d-never\n"
    )


def check_baselines(root: Path) -> dict[str, set[str]]:
    """Every file is a baseline that decodes or a manifest that parses and describes the
    PNGs beside it; returns the files per case folder."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            continue
        found.setdefault(path.parent.relative_to(root).as_posix(), set()).add(path.name)
        if path.suffix == ".png":
            read_frames(path)
        else:
            assert path.name == "manifest.json", f"not a baseline: {path}"
            manifest = json.loads(path.read_text())
            for key, described in manifest["outputs"].items():
                frames = read_frames(path.parent / f"{key}.png")
                pixels = hashlib.sha256(b"".join(np.asarray(f).tobytes() for f in frames))
                assert described["pixels_sha256"] == pixels.hexdigest()[:16], path
    return found


def endless_prompt_entry(url: str, seed: int) -> dict[str, Any] | None:
    """The /history entry of the 5000-step prompt with ``seed``, once it has ended."""
    for entry in httpx.get(f"{url}/history", timeout=10).json().values():
        nodes = entry["prompt"][2].values()
        if any(n["inputs"].get("steps") == 5000 and n["inputs"].get("seed") == seed for n in nodes):
            return dict(entry)
    return None


def test_kill_9_during_an_update_run_keeps_what_finished_and_nothing_half(
    project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(cases(seed=91))
    process = start_pytest(project, f"--comfy-url={comfy.url}", "--comfy-update=missing")
    try:
        stop_mid_run(
            process,
            project,
            comfy.url,
            5000,
            "b-second PASSED",
            lambda: process.send_signal(signal.SIGKILL),
            hang_guard=60,
        )
    finally:
        httpx.post(f"{comfy.url}/interrupt", json={}, timeout=10)  # the orphaned prompt
    assert check_baselines(project / "baselines") == {
        "t/a-first": {"9-0.png", "manifest.json"},
        "t/b-second": {"9-0.png", "manifest.json"},
    }
    # The finished cases' baselines are whole: a plain run judges them and passes.
    judged = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--comfy-url={comfy.url}",
            "-k",
            "a-first or b-second",
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert judged.returncode == 0, judged.stdout
    assert "2 passed, 2 deselected" in judged.stdout


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_during_an_update_run_records_what_finished_and_stops_the_prompt(
    project: Path, comfy: ManagedServer, stop: signal.Signals
) -> None:
    """SIGTERM (``timeout``, a cancelled CI job) takes the same path as Ctrl-C."""
    seed = 92 if stop == signal.SIGINT else 93
    (project / "cases/t.yaml").write_text(cases(seed=seed))
    process = start_pytest(project, f"--comfy-url={comfy.url}", "--comfy-update=missing")
    stop_mid_run(
        process,
        project,
        comfy.url,
        5000,
        "b-second PASSED",
        lambda: process.send_signal(stop),
        hang_guard=120,
    )
    output = (project / "pytest.log").read_text()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    assert {c["id"]: c["outcome"] for c in record["cases"]} == {
        "cases/t.yaml::a-first": "passed",
        "cases/t.yaml::b-second": "passed",
    }
    assert set(check_baselines(project / "baselines")) == {"t/a-first", "t/b-second"}
    # The client interrupted its prompt on the way out: it ended, interrupted, long before
    # its 5000 steps (the wait is a hang guard; the status says how it ended).
    deadline = time.monotonic() + 600
    entry = endless_prompt_entry(comfy.url, seed)
    while entry is None and time.monotonic() < deadline:
        time.sleep(0.2)
        entry = endless_prompt_entry(comfy.url, seed)
    assert entry is not None
    assert [kind for kind, _ in entry["status"]["messages"]][-1] == "execution_interrupted"


def test_a_writer_killed_mid_write_leaves_no_baseline_and_its_leftover_goes(
    tmp_path: Path,
) -> None:
    store = BaselineStore(tmp_path / "baselines", tmp_path / "results", "missing")
    target = store.baseline_path("t/a", "9-0")
    # A real kill -9 in the middle of a write: the writer kills itself after half a file.
    code = (
        "import os, signal, sys\nfrom pathlib import Path\n"
        "from comfytest.atomic import atomic_write\n"
        "def half(handle):\n"
        "    handle.write(b'\\x89PNG\\r\\n\\x1a\\n half a file')\n"
        "    handle.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(Path(sys.argv[1]), half)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code, str(target)], check=False)
    assert killed.returncode == -signal.SIGKILL
    (leftover,) = target.parent.iterdir()
    assert leftover.name.startswith(".9-0.png.")
    assert leftover.name.endswith(".tmp")
    assert not target.exists(), "the half-written file never became the baseline"
    whole = [CaseFileRun("cases/t.yaml", "t", complete=True)]
    assert unused_baselines(store.root, whole, set(), set(), set()) == [], "nor counts as one"
    # A temporary file of a writer that still runs (another update run) is left alone.
    alive = target.parent / f".9-0.png.{os.getpid()}.x.tmp"
    alive.write_bytes(b"being written")

    image = Image.new("RGB", (8, 8), (10, 20, 30))
    verdict = store.judge("t/a", "9-0", "9", image, Tolerance())
    assert verdict.status == "created"
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(["9-0.png", alive.name])
    assert read_frames(target)[0].getpixel((0, 0)) == (10, 20, 30)
    atomic_write(target, target.read_bytes())
    assert alive.exists()


def test_two_update_runs_at_once_corrupt_nothing(project: Path, comfy: ManagedServer) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 3\ncases:\n"
        "  - id: sweep\n    matrix: {steps: [1, 2, 3, 4], cfg: [2.0, 7.0]}\n"
    )
    (project / "cases/two.yaml").write_text(
        "workflow: workflows/upscale_two_outputs.json\nseed: 7\ncases:\n  - id: two\n"
    )
    args = (f"--comfy-url={comfy.url}", "--comfy-update=missing")
    first, second = start_pytest(project, *args), start_pytest(project, *args)
    for process in (first, second):
        process.wait(600)  # a hang guard
    assert (first.returncode, second.returncode) == (0, 0), (project / "pytest.log").read_text()
    found = check_baselines(project / "baselines")
    assert len(found) == 9
    assert found["two/two"] == {"9-0.png", "12-0.png", "manifest.json"}
    judged = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--comfy-url={comfy.url}"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert judged.returncode == 0, judged.stdout
    assert "9 passed" in judged.stdout


def test_sigterm_under_comfy_launch_writes_the_record_and_leaves_no_server(
    project: Path, runtime: Runtime
) -> None:
    (project / "cases/t.yaml").write_text(cases(seed=95))
    tmp = project / "tmp"  # the run's temporary folder: comfytest's must be gone from it
    tmp.mkdir()
    process = start_pytest(
        project,
        "--comfy-launch",
        f"--comfy-home={runtime.root.parent.parent}",  # pytester points $HOME elsewhere
        "--comfy-update=missing",
        "--comfy-report=report.html",
        env={"TMPDIR": str(tmp)},
    )
    try:
        # c-endless was queued while b-second ran: it runs, or is about to, when this ends.
        wait_for_result(project / "pytest.log", "b-second PASSED", process)
        process.send_signal(signal.SIGTERM)
        process.wait(120)  # a hang guard
    finally:
        if process.poll() is None:
            process.kill()
    output = (project / "pytest.log").read_text()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt: SIGTERM" in output
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    assert {c["id"]: c["outcome"] for c in record["cases"]} == {
        "cases/t.yaml::a-first": "passed",
        "cases/t.yaml::b-second": "passed",
    }
    assert (project / "report.html").is_file()
    servers = project / ".comfytest/servers"
    assert list(servers.glob("server-*")) == [], "the managed server's folder is gone"
    assert processes_mentioning(str(servers)) == [], "and so is its process"
    assert [p.name for p in tmp.iterdir() if p.name.startswith("comfytest-")] == []
    assert set(check_baselines(project / "baselines")) == {"t/a-first", "t/b-second"}
