"""The reviewer's tools on a red run: the HTML report (also in a real headless Chromium), the
terminal table and live progress, ``comfytest accept|report|env``, and pytest-html extras."""

from __future__ import annotations

import io
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
from tests.test_verdicts import nudge

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

            # changed: baseline, actual, difference and both under its slider; new: actual;
            # same: its baseline
            assert len(widths) == 7
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
    # Both runs are in the history: the report prints each case's trend over them.
    history = results / "history.jsonl"
    assert len(history.read_text().splitlines()) == 2
    lines = done.stdout.splitlines()
    assert lines[0].startswith("timing trend over 2 runs in "), lines
    assert lines[0].endswith("history.jsonl (server execution, s; * cold):")
    assert re.fullmatch(r"  cases/t.yaml::changed  \d+\.\d{3}\*?  \d+\.\d{3}\*?.*", lines[1])
    assert re.fullmatch(r"  cases/t.yaml::same     \d+\.\d{3}\*?  \d+\.\d{3}\*?.*", lines[2])
    assert "cases/t.yaml::new" not in done.stdout, "one timed run is no trend yet"

    # Several run.json files: the trend is over them, the page the newest one's.
    first = json.loads((results / "run.json").read_text())
    first["header"]["started"] = "2000-01-01T00:00:00+0000"
    for case in first["cases"]:
        if case["timings"]:
            case["timings"].update(execution_s=100.0, cold=False)
    (moved / "old.json").write_text(json.dumps(first))
    both = comfytest(
        "report", "old.json", ".comfytest/results/run.json", "-o", "two.html", cwd=moved
    )
    assert both.returncode == 0, both.stderr
    assert "timing trend over 2 runs in 2 run.json files" in both.stdout
    assert re.search(r"cases/t.yaml::same +100\.000\*? +\d+\.\d{3}\*? +last 0\.\d\dx", both.stdout)

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


SWEEP = """\
workflow: workflows/txt2img.json
seed: 7
cases:
  - id: grid
    matrix: {steps: [1, 2], cfg: [2.0, 6.0]}
"""


def review_run(pytester: pytest.Pytester, project: Path, comfy: ManagedServer) -> None:
    """Baselines for two cases and a 2x2 sweep with no ``reference:``; then one case
    changes beyond its tolerance, one within it (a nudged baseline), and of the sweep one
    cell fails (a painted baseline) and one changes within tolerance."""
    (project / "cases" / "t.yaml").write_text(CASES % "a red fox")
    (project / "cases" / "s.yaml").write_text(SWEEP)
    run(pytester, comfy, "--comfy-update=missing").assert_outcomes(passed=6)
    (project / "cases" / "t.yaml").write_text(CASES % "a lighthouse at dusk")
    nudge(project / "baselines/t/same/9-0.png", 3)
    nudge(project / "baselines/s/grid/steps=2-cfg=2.0/9-0.png", 3)
    painted = project / "baselines/s/grid/steps=1-cfg=6.0/9-0.png"
    with Image.open(painted) as opened:
        image = opened.convert("RGB")
    image.paste((0, 0, 0), (0, 0, 32, 32))
    image.save(painted)
    run(pytester, comfy, "--comfy-report=report.html").assert_outcomes(passed=4, failed=2)


def test_report_review_tools_in_headless_chromium(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    """Passes collapsed, a change within tolerance visible while collapsed, a pixelated
    zoom, a slider and a blink between baseline and actual, the sweep as an HTML table and
    heatmaps with each cell's verdict, and a timing trend per case."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does: apt-get install)")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    review_run(pytester, project, comfy)
    html = (project / "report.html").read_text()
    assert "|---|" not in html, "the sweep's table is HTML, not markdown"
    uris = re.findall(r'src="(data:[^"]+)"', html)
    assert len(uris) == len(set(uris)), "the slider copies its images: each is inlined once"
    results = project / ".comfytest" / "results"
    with Image.open(project / "baselines/t/changed/9-0.png") as opened:
        baseline = np.asarray(opened.convert("RGB")).astype(int)
    with Image.open(results / "t/changed/9-0.png") as opened:
        actual = np.asarray(opened.convert("RGB")).astype(int)
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
                "request",
                lambda request: (
                    problems.append(f"fetched {request.url}")
                    if not request.url.startswith(("file:", "data:"))
                    else None
                ),
            )
            page.goto((project / "report.html").as_uri())
            same = page.locator('section.case[data-id="cases/t.yaml::same"]')
            changed = page.locator('section.case[data-id="cases/t.yaml::changed"]')
            # A pass is one row; its change within tolerance shows on that row.
            assert same.locator("details.body").get_attribute("open") is None
            assert changed.locator("details.body").get_attribute("open") == ""
            assert same.locator("summary .badge.changed").is_visible()
            assert same.locator("summary .badge.changed").inner_text() == (
                "changed within tolerance: 1 output"
            )
            assert not same.locator("img.shot").first.is_visible()
            assert same.locator("summary svg.trend circle").count() == 2, "two runs so far"
            assert changed.locator("summary svg.trend").is_visible()

            # Small outputs are enlarged by whole pixels; the zoom sets pixels per pixel.
            shot = changed.locator('img[alt="baseline of 9-0"]')
            assert shot.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
            changed.locator('.zoom button[data-zoom="8"]').click()
            assert shot.evaluate("i => i.getBoundingClientRect().width") == 8 * 64 + 2
            changed.locator('.zoom button[data-zoom="fit"]').click()
            assert shot.evaluate("i => i.getBoundingClientRect().width") == 192 + 2

            # The slider: the baseline left of it, the actual output right of it.
            changed.locator('.zoom button[data-zoom="4"]').click()
            slider = changed.locator("input.slider")
            over = changed.locator("img.over")
            for value in ("10", "50"):
                slider.evaluate(
                    "(s, v) => { s.value = v; s.dispatchEvent(new Event('input')); }", value
                )
                assert over.evaluate("i => i.style.clipPath") == f"inset(0px 0px 0px {value}%)"
            png = changed.locator("figure.compare .stack").screenshot()
            shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            differ = np.abs(baseline - actual).sum(axis=2)
            for half, expected in ((slice(0, 30), baseline), (slice(34, 64), actual)):
                y, x = np.unravel_index(np.argmax(differ[:, half]), (64, 30))
                x += half.start
                seen = shown[1 + 4 * y + 2, 1 + 4 * x + 2].astype(int)
                other = actual if expected is baseline else baseline
                assert np.abs(seen - expected[y, x]).max() <= 3, (x, y, seen)
                assert np.abs(seen - other[y, x]).max() > 3
            # Blink: the whole image alternates between the two.
            changed.locator("input.blink").check()
            figure = changed.locator("figure.compare")
            for which in ("baseline", "actual", "baseline"):
                page.wait_for_function(
                    f"f => f.dataset.showing === '{which}'", arg=figure.element_handle()
                )
            changed.locator("input.blink").uncheck()
            assert figure.get_attribute("data-showing") is None

            # The sweep: an HTML table and two heatmaps, each cell with its verdict.
            sweep = page.locator("section.sweep")
            assert sweep.locator("table.sweep-table tr").count() == 5
            assert "steps=2, cfg=6.0" in sweep.locator("p b").inner_text()
            assert "the most steps, then the highest values" in sweep.inner_text()
            heatmaps = sweep.locator("table.heatmap")
            assert heatmaps.count() == 2
            for k in range(2):
                cells = heatmaps.nth(k).locator("td[data-verdict]")
                verdicts = sorted(cells.evaluate_all("c => c.map(e => e.dataset.verdict)"))
                assert verdicts == ["changed", "failed", "passed", "passed"]
                assert heatmaps.nth(k).locator("td.ref").count() == 1
            distance = heatmaps.nth(0).locator("td.ref").inner_text()
            assert re.match(r"0(?![\d.])", distance), "the reference is at distance 0 of itself"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report-review.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
