"""Comfy Cloud, against a FAKE of its published API (tests/fake_cloud.py): the real service
cannot be reached from here. The fake serves the real server's /object_info."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from comfytest.comfy.api import CLOUD_SPEC
from comfytest.runtime import ManagedServer

from .fake_cloud import SPEC_VERSION, FakeCloud, FakeStorage

KEY = "comfyui-k3y-9b1e7d"
CASES = "workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: a\n"


@pytest.fixture(scope="module")
def real_api(comfy: ManagedServer) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        httpx.get(f"{comfy.url}/object_info", timeout=60).json(),
        httpx.get(f"{comfy.url}/system_stats", timeout=60).json(),
    )


def png() -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def run(pytester: pytest.Pytester, url: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        f"--comfy-url={url}",
        "--comfy-cloud-key-env=COMFY_CLOUD_KEY",
        "-p",
        "no:cacheprovider",
        # Every log record printed, the websockets client's request line included.
        "-o",
        "log_cli=true",
        "--log-cli-level=DEBUG",
        "-rA",
        *args,
    )


def assert_key_nowhere(result: pytest.RunResult, project: Path) -> None:
    assert KEY not in result.stdout.str() + result.stderr.str()
    leaked = [p for p in project.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == []


@pytest.fixture
def cloud_env(monkeypatch: pytest.MonkeyPatch, project: Path) -> Path:
    monkeypatch.setenv("COMFY_CLOUD_KEY", KEY)
    (project / "cases/t.yaml").write_text(CASES)
    return project


def test_the_fake_follows_the_spec_version_the_code_names() -> None:
    assert f"info.version {SPEC_VERSION} " in CLOUD_SPEC


def test_a_cloud_run_uses_the_spec_routes_the_key_and_the_socket_token(
    pytester: pytest.Pytester, cloud_env: Path, real_api: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    image = png()
    with (
        FakeStorage({"ComfyUI_00001_.png": image}) as storage,
        FakeCloud(*real_api, storage, key=KEY) as cloud,
    ):
        created = run(pytester, cloud.url, "--comfy-update=missing")
        judged = run(pytester, cloud.url)
    created.assert_outcomes(passed=1)
    judged.assert_outcomes(passed=1)
    created.stdout.fnmatch_lines(["ComfyUI * at http://127.0.0.1:* (Comfy Cloud, given by *)"])
    # The baseline is the file the signed URL served.
    baseline = Image.open(cloud_env / "baselines/t/a/9-0.png")
    assert np.array_equal(np.asarray(baseline), np.asarray(Image.open(io.BytesIO(image))))
    paths = cloud.paths()
    assert {"/api/system_stats", "/api/object_info", "/api/prompt", "/api/view"} <= set(paths)
    assert [p for p in paths if not p.startswith("/api/") and p != "/ws"] == []
    assert "/api/free" not in paths, "Cloud has no /free, and is no server of ours"
    assert "/api/jobs/" in " ".join(paths), "outputs read from the job detail route"
    api_calls = [seen for seen in cloud.requests if seen.path.startswith("/api/")]
    assert {seen.headers.get("x-api-key") for seen in api_calls} == {KEY}
    sockets = [seen.path for seen in cloud.requests if seen.path.startswith("/ws")]
    assert sockets
    assert all(f"&token={KEY}" in path for path in sockets)
    # Exactly one GET per download on the other host, with no key, no auth, no cookie.
    assert [seen.method for seen in storage.requests] == ["GET", "GET"]
    for seen in storage.requests:
        assert seen.path.startswith("/signed/ComfyUI_00001_.png?X-Goog-Signature=")
        assert not {"x-api-key", "authorization", "cookie"} & set(seen.headers)
        assert KEY not in seen.path + " ".join(seen.headers.values())
    for result in (created, judged):
        assert "token=***" in result.stdout.str(), "the WebSocket request line, redacted"
        assert_key_nowhere(result, cloud_env)


def test_a_redirect_from_the_signed_url_is_not_followed(
    pytester: pytest.Pytester, cloud_env: Path, real_api: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    with (
        FakeStorage({"ComfyUI_00001_.png": png()}, redirect=True) as storage,
        FakeCloud(*real_api, storage, key=KEY) as cloud,
    ):
        result = run(pytester, cloud.url, "--comfy-update=missing")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*the signed URL 'http://localhost:*/signed/ComfyUI_00001_.png' of GET /api/view "
            "redirected again (not followed)*"
        ]
    )
    assert [seen.path.split("?")[0] for seen in storage.requests] == ["/signed/ComfyUI_00001_.png"]
    said = [line for line in result.stdout.lines if "redirected again" in line]
    assert said
    assert not [line for line in said if "X-Goog-Signature" in line], "no signature in errors"
    assert_key_nowhere(result, cloud_env)


def test_a_full_queue_is_retried_within_the_budget_then_an_infrastructure_error(
    pytester: pytest.Pytester, cloud_env: Path, real_api: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    with FakeStorage({"ComfyUI_00001_.png": png()}) as storage:
        with FakeCloud(*real_api, storage, key=KEY, busy=3) as cloud:
            retried = run(pytester, cloud.url, "--comfy-update=missing")
            tries = cloud.paths().count("/api/prompt")
        with FakeCloud(*real_api, storage, key=KEY, busy=-1) as cloud:
            refused = run(pytester, cloud.url, "--comfy-update=missing", "--comfy-retry-budget=1")
    retried.assert_outcomes(passed=1)
    assert tries == 4, "three 429 answers, then accepted"
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines(
        [
            "*POST /api/prompt answered HTTP 429: {*queue full, retry later*}; still busy after "
            "* tries in * s (retry budget 1 s): the server is overloaded or its queue is full*",
            "not passed: 1 infrastructure problem (error)",
        ]
    )
    assert "Traceback" not in refused.stdout.str()
    assert_key_nowhere(refused, cloud_env)


def test_a_refused_websocket_is_replaced_by_polling_the_job_status(
    pytester: pytest.Pytester, cloud_env: Path, real_api: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    with (
        FakeStorage({"ComfyUI_00001_.png": png()}) as storage,
        FakeCloud(*real_api, storage, key=KEY, refuse_socket=True) as cloud,
    ):
        result = run(pytester, cloud.url, "--comfy-update=missing")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["  prompts polled: the WebSocket was refused: cannot open the WebSocket: *403*"]
    )
    statuses = [p for p in cloud.paths() if p.startswith("/api/job/") and p.endswith("/status")]
    assert statuses, "the job-status route was polled"
    assert cloud.paths().count("/ws") == 1, "refused once, then not tried for every prompt"
    assert_key_nowhere(result, cloud_env)


def test_a_cloud_url_without_its_key_is_a_usage_error(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "cases/t.yaml").write_text(CASES)
    missing = pytester.runpytest("--comfy-url=https://cloud.comfy.org")
    monkeypatch.delenv("COMFY_CLOUD_UNSET", raising=False)
    unset = pytester.runpytest(
        "--comfy-url=https://cloud.comfy.org", "--comfy-cloud-key-env=COMFY_CLOUD_UNSET"
    )
    for result in (missing, unset):
        assert result.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(
        [
            "ERROR: --comfy-url=https://cloud.comfy.org is Comfy Cloud: give the environment "
            "variable holding your API key with --comfy-cloud-key-env=NAME"
        ]
    )
    unset.stderr.fnmatch_lines(
        [
            "ERROR: --comfy-cloud-key-env=COMFY_CLOUD_UNSET: the environment variable "
            "COMFY_CLOUD_UNSET is not set"
        ]
    )
