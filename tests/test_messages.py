"""What the terminal and JUnit say: server trouble in words that say what to do, a server
line under xdist too, and flat numbers for CI dashboards."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from comfytest.runtime import ManagedServer

FOX = "workflow: workflows/txt2img.json\nseed: 42\ncases:\n  - id: fox\n  - id: fox2\n    seed: 7\n"


class _Refusing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"Unauthorized")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_proxy() -> Iterator[str]:
    """A FAKE auth proxy in front of ComfyUI: it answers HTTP 401 to everything (a real
    ComfyUI has no auth of its own, so it cannot show this)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_asks_for_credentials_points_at_auth_env(
    pytester: pytest.Pytester, project: Path, fake_proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "cases/fox.yaml").write_text(FOX)
    bare = pytester.runpytest(f"--comfy-url={fake_proxy}", "-p", "no:cacheprovider")
    assert bare.ret == pytest.ExitCode.USAGE_ERROR
    bare.stderr.fnmatch_lines(
        [
            f"ERROR: ComfyUI at {fake_proxy} refused this run: GET /system_stats answered HTTP "
            f"401: Unauthorized ({fake_proxy}); it asks for credentials: put the token (or "
            "'Header-Name: value') in an environment variable and pass --comfy-auth-env=NAME"
        ]
    )
    assert "not reachable" not in bare.stderr.str()
    monkeypatch.setenv("COMFY_TOKEN", "wrong")
    given = pytester.runpytest(
        f"--comfy-url={fake_proxy}", "--comfy-auth-env=COMFY_TOKEN", "-p", "no:cacheprovider"
    )
    given.stderr.fnmatch_lines(["ERROR: *; the auth header from $COMFY_TOKEN was refused: *"])
    assert "wrong" not in given.stderr.str(), "the value is never shown"


def test_a_server_that_never_answered_says_so(pytester: pytest.Pytester, project: Path) -> None:
    (project / "cases/fox.yaml").write_text(FOX)
    result = pytester.runpytest("--comfy-url=http://127.0.0.1:9", "-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(
        [
            "ERROR: ComfyUI is not reachable at http://127.0.0.1:9: * the server has not answered at all*"
        ]
    )
    assert "no longer answers" not in result.stderr.str()


def test_the_summary_names_the_server_under_xdist(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/fox.yaml").write_text(FOX)
    result = pytester.runpytest(
        f"--comfy-url={comfy.url}", "-n", "2", "--comfy-update=missing", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    line = f"ComfyUI 0.3.75 at {comfy.url} (given by --comfy-url)"
    lines = result.stdout.lines
    assert line in lines
    assert len({i for i, text in enumerate(lines) if text == line}) == 1, "once, not per worker"
    assert " comfytest " in lines[lines.index(line) - 1], "first in the comfytest section"


def test_junit_has_flat_numbers_beside_the_json(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/fox.yaml").write_text(FOX)
    run = ("--comfy-url", comfy.url, "-p", "no:cacheprovider", "-k", "fox2")
    pytester.runpytest(*run, "--comfy-update=missing").assert_outcomes(passed=1, deselected=1)
    junit = project / "junit.xml"
    pytester.runpytest(*run, f"--junitxml={junit}").assert_outcomes(passed=1, deselected=1)
    properties = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert float(properties["comfytest_execution_s"]) > 0
    assert float(properties["comfytest_total_s"]) >= float(properties["comfytest_execution_s"])
    assert properties["comfytest_output_9-0_max_pixel_diff"] == "0"
    assert properties["comfytest_output_9-0_max_diff_ratio"] == "0.0"
    assert properties["comfytest_output_9-0_used"] == "0.0"
    assert "comfytest_comparisons" in properties, "the JSON stays"
    assert "comfytest_server_line" not in properties
