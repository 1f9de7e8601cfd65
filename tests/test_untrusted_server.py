"""A server that cannot be trusted: hostile names, corrupt files, auth headers and redirects.

Most tests here talk to a FAKE ComfyUI (tests/fake_comfy.py), because a real one cannot be
made to show these faults; each says why. The fake serves the real server's /object_info.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from comfytest.comfy.client import header_from_env
from comfytest.errors import ServerError
from comfytest.runtime import ManagedServer

from .fake_comfy import FakeComfy, save_image_outputs

TOKEN = "s3cret-t0ken-4f9a"
CASES = "workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: a\n"


@pytest.fixture(scope="module")
def real_api(comfy: ManagedServer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The real server's /object_info and /system_stats, for the fake to serve."""
    return (
        httpx.get(f"{comfy.url}/object_info", timeout=60).json(),
        httpx.get(f"{comfy.url}/system_stats", timeout=60).json(),
    )


def png() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def run(pytester: pytest.Pytester, url: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        f"--comfy-url={url}", "--comfy-update=missing", "-p", "no:cacheprovider", *args
    )


def test_names_from_a_hostile_server_write_nothing_outside_the_results(
    pytester: pytest.Pytester, project: Path, real_api: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    # Fake server: a real ComfyUI never reports output names with '../' in them.
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: a-file-name\n"
        "  - id: b-node-id\n"
    )

    def hostile_node(prompt: dict[str, Any]) -> dict[str, Any]:
        item = {"filename": "evil.png", "subfolder": "", "type": "output"}
        return {"../../../evil": {"images": [item]}}

    hostile_file = save_image_outputs("../../evil.png", "../..")
    before = files_under(pytester.path.parent)
    with FakeComfy(*real_api, outputs=[hostile_file, hostile_node], view=png()) as fake:
        result = run(pytester, fake.url)
    result.assert_outcomes(errors=2)  # the server, not the workflow
    result.stdout.fnmatch_lines(
        [
            "/history reports an unsafe file for node 9 (*): filename '../../evil.png', "
            "subfolder '../..'; nothing was downloaded (http://127.0.0.1:*, prompt *)",
            "/history lists outputs of a node named '../../../evil': not a node id; "
            "nothing was downloaded (http://127.0.0.1:*, prompt *)",
        ]
    )
    assert "/view" not in fake.paths()
    written = files_under(pytester.path.parent) - before
    outside = {
        path
        for path in written
        if not path.is_relative_to(project / ".comfytest" / "results")
        # The saved /object_info, named by comfytest from the URL it was given.
        and not path.is_relative_to(project / ".comfytest" / "object_info")
        and path not in (project / "stdout", project / "stderr")  # pytester's own capture
    }
    assert outside == set()
    assert not [path for path in files_under(pytester.path.parent) if "evil" in path.name]


def test_a_truncated_download_fails_its_output_and_is_kept_as_it_came(
    pytester: pytest.Pytester, project: Path, real_api: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    # Fake server: a real ComfyUI serves the PNG it wrote, whole.
    (project / "cases/t.yaml").write_text(CASES)
    truncated = png()[:300]
    with FakeComfy(*real_api, view=truncated) as fake:
        result = run(pytester, fake.url)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "a: output 9 (Save Image #0) could not be judged",
            "  the output is not a readable image: *",
            "  baseline */baselines/t/a/9-0.png",
            "  actual   */.comfytest/results/t/a/9-0.unreadable",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "accept it" not in result.stdout.str(), "accepting a broken file is no remedy"
    assert (project / ".comfytest/results/t/a/9-0.unreadable").read_bytes() == truncated
    assert not (project / "baselines/t/a/9-0.png").exists(), "no baseline from a broken file"


@pytest.mark.parametrize(
    ("value", "header", "sent"),
    [
        (TOKEN, "authorization", f"Bearer {TOKEN}"),
        (f"X-Api-Key: {TOKEN}", "x-api-key", TOKEN),
    ],
    ids=["token", "header"],
)
def test_the_auth_header_reaches_the_configured_server_and_no_other(
    pytester: pytest.Pytester,
    project: Path,
    real_api: tuple[dict[str, Any], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    header: str,
    sent: str,
) -> None:
    # Fake servers: a real ComfyUI ignores the header (so cannot show it arrived) and never
    # redirects. The configured one redirects /view to another one on another port.
    monkeypatch.setenv("COMFY_AUTH", value)
    (project / "cases/t.yaml").write_text(CASES)
    with (
        FakeComfy(*real_api, view=png()) as elsewhere,
        FakeComfy(*real_api, redirect_view_to=elsewhere.url) as fake,
    ):
        result = run(pytester, fake.url, "--comfy-auth-env=COMFY_AUTH")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "GET /view answered HTTP 307, a redirect to 'http://127.0.0.1:*/view' (not followed) "
            "(http://127.0.0.1:*)"
        ]
    )
    assert {"/system_stats", "/object_info", "/ws", "/prompt", "/view"} <= set(fake.paths())
    assert "/free" not in fake.paths(), "a server given by URL is not told to unload models"
    assert [seen.path for seen in fake.requests if seen.headers.get(header) != sent] == []
    assert elsewhere.requests == [], "the redirect to another host was not followed"
    assert_nowhere(TOKEN, result, project)


def test_an_auth_header_on_the_real_server_end_to_end(
    pytester: pytest.Pytester,
    project: Path,
    comfy: ManagedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMFY_AUTH", TOKEN)
    (project / "cases/t.yaml").write_text(CASES)
    created = run(pytester, comfy.url, "--comfy-auth-env=COMFY_AUTH")
    created.assert_outcomes(passed=1)
    judged = pytester.runpytest_subprocess(
        f"--comfy-url={comfy.url}", "--comfy-auth-env=COMFY_AUTH", "-p", "no:cacheprovider"
    )
    judged.assert_outcomes(passed=1)
    assert json.loads((project / "baselines/t/a/manifest.json").read_text())["outputs"]
    for result in (created, judged):
        assert_nowhere(TOKEN, result, project)


def test_an_unset_auth_variable_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMFY_AUTH_UNSET", raising=False)
    (project / "cases/t.yaml").write_text(CASES)
    result = pytester.runpytest(
        "--comfy-url=http://127.0.0.1:9", "--comfy-auth-env=COMFY_AUTH_UNSET"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --comfy-auth-env=COMFY_AUTH_UNSET: the environment variable COMFY_AUTH_UNSET "
            "is not set"
        ]
    )


def test_header_from_env_reads_a_token_or_a_whole_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A", f" {TOKEN}\n")
    assert header_from_env("A") == ("Authorization", f"Bearer {TOKEN}")
    monkeypatch.setenv("A", "Proxy-Authorization: Basic dXNlcjpwYXNz")
    assert header_from_env("A") == ("Proxy-Authorization", "Basic dXNlcjpwYXNz")
    monkeypatch.setenv("A", "user:pass")  # no space after the colon: a token
    assert header_from_env("A") == ("Authorization", "Bearer user:pass")
    monkeypatch.setenv("A", "")
    with pytest.raises(ServerError, match=r"^the environment variable A .* is not set$"):
        header_from_env("A")


def assert_nowhere(secret: str, result: pytest.RunResult, project: Path) -> None:
    """Not printed, and not written into any file of the project (results, baselines)."""
    assert secret not in result.stdout.str() + result.stderr.str()
    leaked = [path for path in files_under(project) if secret.encode() in path.read_bytes()]
    assert leaked == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_is_verified_and_a_ca_bundle_can_be_given(
    pytester: pytest.Pytester,
    project: Path,
    real_api: tuple[dict[str, Any], dict[str, Any]],
    certificate: tuple[Path, Path],
) -> None:
    # Fake server: the managed ComfyUI serves plain http on loopback.
    cert, key = certificate
    (project / "cases/t.yaml").write_text(CASES)
    with FakeComfy(*real_api, view=png(), tls=(cert, key)) as fake:
        assert fake.url.startswith("https://")
        refused = run(pytester, fake.url)
        trusted = run(pytester, fake.url, f"--comfy-ca-bundle={cert}")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        ["ERROR: ComfyUI is not reachable at https://*CERTIFICATE_VERIFY_FAILED*"]
    )
    trusted.assert_outcomes(passed=1)
    assert "/ws" in fake.paths(), "the WebSocket ran over TLS too"


def test_env_and_convert_send_the_auth_header_and_verify_tls(
    real_api: tuple[dict[str, Any], dict[str, Any]],
    certificate: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    # Fake server: a real ComfyUI serves plain http and ignores the header.
    cert, key = certificate
    environment = {**os.environ, "COMFY_AUTH": TOKEN}
    ui_file = Path(__file__).parent.parent / "cases/workflows/txt2img_ui.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "comfytest.cli", *args]
        return subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=120, check=False
        )

    with FakeComfy(*real_api, tls=(cert, key)) as fake:
        refused = cli("env", f"--url={fake.url}", "--auth-env=COMFY_AUTH")
        shown = cli("env", f"--url={fake.url}", f"--ca-bundle={cert}", "--auth-env=COMFY_AUTH")
        converted = cli(
            "convert",
            str(ui_file),
            f"--url={fake.url}",
            f"--ca-bundle={cert}",
            "--auth-env=COMFY_AUTH",
        )
    assert refused.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["comfyui_version"] == real_api[1]["system"]["comfyui_version"]
    assert converted.returncode == 0, converted.stderr
    assert {node["class_type"] for node in json.loads(converted.stdout).values()} >= {"KSampler"}
    assert [
        seen.path
        for seen in fake.requests
        if seen.headers.get("authorization") != (f"Bearer {TOKEN}")
    ] == []
    assert {"/system_stats", "/object_info"} <= set(fake.paths())
    for done in (refused, shown, converted):
        assert TOKEN not in done.stdout + done.stderr
