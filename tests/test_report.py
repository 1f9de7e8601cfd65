"""The reviewer's tools on a red run: the HTML report (also in a real headless Chromium), the
terminal table and live progress, ``comfytest accept|report|env``, and pytest-html extras."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfytest.runtime import ManagedServer

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
#: Where the browser test leaves its screenshot (CI keeps this folder as an artefact).
ARTIFACTS = Path(os.environ.get("COMFYTEST_ARTIFACTS", REPO / "artifacts"))

CASES = """\
workflow: workflows/txt2img.json
seed: 42
cases:
  - id: same
    description: unchanged since its baseline
  - id: changed
    inputs:
      Positive: {text: "%s"}
"""
NEW_CASE = """\
  - id: new
    inputs:
      KSampler: {steps: 3}
"""


def run(pytester: pytest.Pytester, comfy: ManagedServer, *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--comfy-url={comfy.url}", "-p", "no:cacheprovider", *args)


def red_run(pytester: pytest.Pytester, project: Path, comfy: ManagedServer) -> pytest.RunResult:
    """Baselines for two cases; then one of them changes (a failure) and a third has none (an error, a baseline
    problem): 2 red, 1 green."""
    cases = project / "cases" / "t.yaml"
    cases.write_text(CASES % "a red fox")
    run(pytester, comfy, "--comfy-update=missing").assert_outcomes(passed=2)
    cases.write_text(CASES % "a lighthouse at dusk" + NEW_CASE)
    result = run(pytester, comfy, "--comfy-report=report.html")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    return result


def comfytest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "comfytest.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def sections(html: str) -> list[tuple[str, str]]:
    """(outcome, case id) of each case section, in page order."""
    return re.findall(r'<section class="case" data-outcome="(\w+)" data-id="([^"]+)"', html)


def test_html_report_puts_failures_first_with_images_and_measures(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    result = red_run(pytester, project, comfy)
    result.stdout.fnmatch_lines([f"HTML report: {project / 'report.html'}"])
    html = (project / "report.html").read_text()

    assert sections(html) == [
        ("failed", "cases/t.yaml::changed"),
        ("error", "cases/t.yaml::new"),
        ("passed", "cases/t.yaml::same"),
    ]
    changed = html.split('data-id="cases/t.yaml::changed"')[1].split("</section>")[0]
    for title in ("baseline", "actual", "difference"):
        assert f'alt="{title} of 9-0"' in changed
    beyond = r"<td>share of values beyond the pixel threshold</td><td class=\"num\">[\d.]+%</td>"
    assert re.search(beyond + r"<td class=\"num\">0.1%</td>", changed)
    assert "server execution" in changed
    new = html.split('data-id="cases/t.yaml::new"')[1].split("</section>")[0]
    assert "no baseline yet" in new
    assert 'alt="actual of 9-0"' in new
    assert "unchanged since its baseline" in html
    assert "comfyui_version" in html, "the environment of the run"
    # Self-contained: every image is inline and nothing is fetched from anywhere.
    assert re.findall(r'src="(?!data:image/png;base64,)', html) == []
    assert "<link" not in html
    assert "http://" not in html.split("server http://")[0]


def test_html_report_renders_in_headless_chromium(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does: apt-get install)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    red_run(pytester, project, comfy)
    report = project / "report.html"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            page.on(
                "request",
                lambda request: (
                    problems.append(f"fetched {request.url}")
                    if not request.url.startswith(("file:", "data:"))
                    else None
                ),
            )
            page.goto(report.as_uri())
            widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

            # changed: baseline, actual, difference; new: actual; same: its baseline
            assert len(widths) == 5
            assert all(width > 0 for width in widths), widths
            assert page.locator("#shown").inner_text() == "3 shown"
            page.uncheck("input.outcome[value=passed]")
            visible = page.locator("section.case:not(.hidden)")
            assert visible.count() == 2
            assert page.locator("#shown").inner_text() == "2 shown"
            page.fill("#search", "::new")
            assert page.locator("section.case:not(.hidden)").count() == 1
        finally:
            browser.close()
    assert problems == []


def test_report_command_rerenders_the_same_page_from_run_json(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    red_run(pytester, project, comfy)
    results = project / ".comfytest" / "results"
    # A results folder moved elsewhere (a CI artefact) still renders: its paths are relative.
    moved = project / "elsewhere"
    shutil.copytree(results, moved / ".comfytest" / "results")
    shutil.copytree(project / "baselines", moved / "baselines")
    done = comfytest("report", ".comfytest/results/run.json", "-o", "again.html", cwd=moved)
    assert done.returncode == 0, done.stderr
    assert (moved / "again.html").read_text() == (project / "report.html").read_text()

    broken = comfytest("report", "missing.json", cwd=project)
    assert broken.returncode == 1
    assert "missing.json: cannot read the results file" in broken.stderr


def test_accept_lists_then_promotes_failed_outputs(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    red_run(pytester, project, comfy)
    baselines = project / "baselines" / "t"
    before = (baselines / "changed" / "9-0.png").read_bytes()

    listed = comfytest("accept", "--dry-run", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        r"update t/changed/9-0.png  \(cases/t.yaml::changed: max_diff_ratio [\d.]+ \(allowed 0.001\)",
        listed.stdout,
    )
    assert "create t/new/9-0.png  (cases/t.yaml::new: no baseline yet)" in listed.stdout
    assert "same" not in listed.stdout

    refused = comfytest("accept", "-k", "changed", cwd=project)
    assert refused.returncode == 1
    assert "pass --yes" in refused.stderr
    assert (baselines / "changed" / "9-0.png").read_bytes() == before

    only = comfytest("accept", "-k", "changed", "--yes", cwd=project)
    assert only.returncode == 0, only.stderr
    assert "1 baseline(s)" in only.stdout
    assert not (baselines / "new").exists(), "-k limits what is accepted"
    kept = project / ".comfytest" / "results" / "t" / "changed" / "9-0.png"
    assert (baselines / "changed" / "9-0.png").read_bytes() == kept.read_bytes()
    manifest = json.loads((baselines / "changed" / "manifest.json").read_text())
    assert manifest["inputs"]["6"] == {"text": "a lighthouse at dusk"}
    pixels = np.asarray(Image.open(kept))
    assert manifest["outputs"]["9-0"]["size"] == [pixels.shape[1], pixels.shape[0]]

    rest = comfytest("accept", "--yes", cwd=project)
    assert "create t/new/9-0.png" in rest.stdout
    run(pytester, comfy).assert_outcomes(passed=3)


def test_env_prints_the_fingerprint_and_the_difference_from_a_baseline(
    comfy: ManagedServer, tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    shown = comfytest("env", f"--url={comfy.url}", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert found["comfyui_version"] == "0.3.75"
    assert "comfytest-sd15-tiny.safetensors" in found["models"]["checkpoints"]

    older = {**found, "comfyui_version": "0.3.60", "pytorch_version": "2.9.1+cpu"}
    manifest.write_text(json.dumps({"environment": older}))
    against = comfytest("env", f"--url={comfy.url}", f"--against={tmp_path}", cwd=tmp_path)
    assert against.returncode == 0, against.stderr
    assert f"against {tmp_path}:" in against.stdout
    assert "ComfyUI 0.3.60 -> 0.3.75" in against.stdout
    assert "torch 2.9.1+cpu -> " in against.stdout


def test_terminal_table_and_live_progress_under_v(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    red_run(pytester, project, comfy)
    cases = project / "cases" / "t.yaml"
    cases.write_text(
        cases.read_text() + "  - id: long\n    inputs:\n      KSampler: {steps: 150}\n"
    )
    result = run(pytester, comfy, "-v", "-k", "long or same or changed")
    result.stdout.fnmatch_lines(
        [
            "cases/t.yaml::long ",
            "    node 3 (KSampler): */150 (*%), * it/s",
            "    node 3 (KSampler): 150/150 (100%), * it/s",
            "cases/t.yaml::long ERROR*",
        ]
    )
    result.stdout.re_match_lines(
        [
            r"case +verdict +distance / allowed +time",
            r"cases/t.yaml::changed +failed: 1 differ +diff [\d.]+%/0.1% +\d+\.\d\d s",
            r"cases/t.yaml::long +error: 1 missing +no baseline +\d+\.\d\d s",
            r"cases/t.yaml::same +passed +diff 0%/0.1% +\d+\.\d\d s",
        ]
    )
    quiet = run(pytester, comfy, "-k", "same")
    assert not any("node 3 (KSampler)" in line for line in quiet.outlines)


def test_pytest_html_gets_the_images_and_measures(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    pytest.importorskip("pytest_html")
    red_run(pytester, project, comfy)
    run(pytester, comfy, "--html=ph.html", "--self-contained-html")
    page = (project / "ph.html").read_text()
    assert "comfytest-measures" in page
    assert "9-0 diff" in page
    assert page.count("data:image/png;base64,") >= 5 or page.count("image/png") >= 5
