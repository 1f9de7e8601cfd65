"""No run deletes a baseline it cannot prove unused: narrowed, interrupted, stopped and
mis-configured runs leave every baseline file byte-identical (against the real server)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from comfytest.runtime import ManagedServer

from .conftest import snapshot, start_pytest, stop_mid_run

PIPELINE = (
    "workflow: workflows/image_pipeline.json\n"
    "inputs:\n  LoadImage: {image: {file: inputs/pattern.png}}\n"
)
A_CASES = (
    "  - id: keep\n    marks: [slow]\n"
    "  - id: drop\n    inputs: {Blur: {blur_radius: 1}}\n"
    # Fails in every run (ComfyUI rejects the radius): for -x, --maxfail and --lf.
    "  - id: bad\n    inputs: {Blur: {blur_radius: 99}}\n"
)
DROP = "  - id: drop\n    inputs: {Blur: {blur_radius: 1}}\n"


def orphaned_project(pytester: pytest.Pytester, comfy: ManagedServer) -> Path:
    """Baselines for cases/a.yaml (keep, drop) and cases/b.yaml (one); then drop leaves
    a.yaml, so a complete run of a.yaml proves drop's two files unused."""
    project = pytester.path
    pytester.makeini(
        "[pytest]\nmarkers =\n    slow: a slow case\nfilterwarnings =\n"
        "    ignore::pytest.PytestAssertRewriteWarning\n"
    )
    a = project / "cases/a.yaml"
    a.write_text(PIPELINE + "cases:\n" + A_CASES)
    (project / "cases/b.yaml").write_text(PIPELINE + "cases:\n  - id: one\n")
    made = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing")
    made.assert_outcomes(passed=3, errors=1)
    a.write_text(a.read_text().replace(DROP, ""))
    return project


NARROWED = {
    "ignore": ["--ignore=cases/a.yaml"],
    "ignore-glob": ["--ignore-glob=*/a.yaml"],
    "collect_ignore": [],  # conftest.py: collect_ignore = ["cases/a.yaml"]
    "file subset": ["cases/b.yaml"],
    "k": ["-k", "not keep"],
    "m": ["-m", "not slow"],
    "deselect": ["--deselect", "cases/a.yaml::keep"],
    "lf": ["--lf"],
    "x": ["-x"],
    "maxfail": ["--maxfail=1"],
}


@pytest.mark.parametrize("narrowing", list(NARROWED))
def test_a_narrowed_or_stopped_run_prunes_nothing(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer, narrowing: str
) -> None:
    orphaned_project(pytester, comfy)
    if narrowing == "collect_ignore":
        pytester.makeconftest('collect_ignore = ["cases/a.yaml"]\n')
    if narrowing == "lf":  # a run that records a.yaml::bad as the last failure
        pytester.runpytest("--comfy-url", comfy.url).assert_outcomes(passed=2, errors=1)
    before = snapshot(project / "baselines")
    assert "a/drop/5-0.png" in before

    result = pytester.runpytest(
        "--comfy-url", comfy.url, "--comfy-update=all", "--comfy-prune", *NARROWED[narrowing]
    )
    output = result.stdout.str()
    assert "baselines deleted" not in output
    assert "a/drop/5-0.png" not in output, "a.yaml did not run whole: drop is not unused"
    assert snapshot(project / "baselines") == before


def test_the_same_run_not_narrowed_prunes_what_it_proves_unused(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    """The control of the test above: the same project, every case run, a failing one too."""
    orphaned_project(pytester, comfy)
    before = snapshot(project / "baselines")
    result = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=all", "--comfy-prune")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "baselines deleted: 2 (*",
            "  baselines/a/drop/5-0.png: cases/a.yaml::drop is no longer a case of cases/a.yaml",
            "  baselines/a/drop/manifest.json: *",
        ]
    )
    after = snapshot(project / "baselines")
    assert after == {k: v for k, v in before.items() if not k.startswith("a/drop/")}


def project_files(root: Path) -> dict[str, str]:
    """The snapshot of a whole project but for what a run writes for itself."""
    own = (".comfytest/", ".pytest_cache/", "__pycache__/")
    return {
        k: v for k, v in snapshot(root).items() if not k.startswith(own) and "__pycache__" not in k
    }


@pytest.mark.parametrize("baselines", ["cases", "."])
def test_files_no_manifest_names_are_never_pruned(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer, baselines: str
) -> None:
    """A case's own input image, a screenshot, a note beside a baseline: none is comfytest's,
    so a complete pruning run leaves them alone; it deletes only the dropped case's files."""
    cases = project / "cases/p.yaml"
    cases.write_text(PIPELINE + "cases:\n  - id: keep\n" + DROP)
    option = f"--comfy-baselines={baselines}"
    pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing", option)
    base = project / baselines
    (project / "docs").mkdir()
    (project / "docs/screenshot.png").write_bytes(
        (project / "cases/inputs/pattern.png").read_bytes()
    )
    (base / "p/keep/notes.png").write_bytes((project / "cases/inputs/pattern.png").read_bytes())
    (base / "p/drop/by-hand.txt").write_text("a note of mine\n")
    cases.write_text(cases.read_text().replace(DROP, ""))
    before = project_files(project)

    result = pytester.runpytest(
        "--comfy-url", comfy.url, "--comfy-update=all", "--comfy-prune", option
    )
    result.assert_outcomes(passed=1)
    prefix = "" if baselines == "." else f"{baselines}/"
    result.stdout.fnmatch_lines(
        [
            "baselines deleted: 2 (*",
            f"  {prefix}p/drop/5-0.png: cases/p.yaml::drop is no longer a case of cases/p.yaml",
        ]
    )
    result.stdout.fnmatch_lines([f"  {prefix}p/drop/manifest.json: *"])
    gone = {f"{prefix}p/drop/5-0.png", f"{prefix}p/drop/manifest.json"}
    after = project_files(project)
    assert after == {k: v for k, v in before.items() if k not in gone}, (
        "only the dropped case's baseline and manifest went: the note beside them stays"
    )


def test_a_baseline_changed_by_hand_is_reported_and_kept(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    cases = project / "cases/p.yaml"
    cases.write_text(PIPELINE + "cases:\n  - id: keep\n" + DROP)
    pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing")
    (project / "baselines/p/drop/5-0.png").write_bytes(
        (project / "cases/inputs/pattern.png").read_bytes()
    )
    cases.write_text(cases.read_text().replace(DROP, ""))
    before = snapshot(project / "baselines")
    result = pytester.runpytest("--comfy-url", comfy.url, "--comfy-prune")
    result.stdout.fnmatch_lines(
        [
            "baselines unused: 1",
            "  baselines/p/drop/5-0.png: cases/p.yaml::drop is no longer a case of cases/p.yaml;"
            " kept: the file is not as comfytest wrote it (changed by hand?)",
        ]
    )
    assert "baselines deleted" not in result.stdout.str()
    assert snapshot(project / "baselines") == before


def test_two_case_files_of_one_baselines_folder_are_a_collection_error(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/smoke.yaml").write_text(PIPELINE + "cases:\n  - id: fox\n")
    pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing").assert_outcomes(passed=1)
    (project / "cases/smoke.yml").write_text(
        PIPELINE + "cases:\n  - id: fox\n    inputs: {Blur: {blur_radius: 1}}\n"
    )
    before = snapshot(project / "baselines")
    for only in ([], ["cases/smoke.yml"]):  # caught even when one of them is collected
        result = pytester.runpytest(
            "--comfy-url", comfy.url, "--comfy-update=all", "--comfy-prune", *only
        )
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines(
            [
                "*cases/smoke.yml: its baselines folder baselines/smoke/ is also that of "
                "cases/smoke.yaml; each would overwrite the other's baselines: rename one of them"
            ]
        )
        assert "Traceback" not in result.stdout.str()
        assert snapshot(project / "baselines") == before


def test_a_folder_another_case_file_owns_is_neither_judged_nor_written(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    """Two case roots with a t.yaml each: one baselines folder t/. Collected together they
    are a collection error; run alone, the second finds the first's manifest and stops."""
    pytester.makeini(
        "[pytest]\ncomfy_case_paths =\n    cases\n    more\nfilterwarnings =\n"
        "    ignore::pytest.PytestAssertRewriteWarning\n"
    )
    (project / "cases/t.yaml").write_text(PIPELINE + "cases:\n  - id: fox\n")
    (project / "more").mkdir()
    (project / "more/t.yaml").write_text(
        "workflow: ../cases/workflows/image_pipeline.json\n"
        "inputs:\n  LoadImage: {image: {file: ../cases/inputs/pattern.png}}\n"
        "cases:\n  - id: fox\n    inputs: {Blur: {blur_radius: 1}}\n"
    )
    made = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing", "cases")
    made.assert_outcomes(passed=1)
    before = snapshot(project / "baselines")

    both = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=all")
    both.stdout.fnmatch_lines(
        ["*more/t.yaml: its baselines folder baselines/t/ is also that of cases/t.yaml*"]
    )
    alone = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=all", "more/t.yaml")
    alone.assert_outcomes(errors=1)  # a baseline problem
    alone.stdout.fnmatch_lines(
        [
            f"{project}/baselines/t/fox/ belongs to cases/t.yaml::fox (its manifest.json), not "
            "to more/t.yaml::fox: two case files map to one baselines folder; rename one of them"
        ]
    )
    assert snapshot(project / "baselines") == before


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: as root, drop the capability
    that ignores them (util-linux setpriv); as anyone else, nothing."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder is writable")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def test_a_read_only_baselines_folder_is_one_clear_error_per_case(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    cases = project / "cases/p.yaml"
    cases.write_text(PIPELINE + "tolerance: {max_pixel_diff: 0}\ncases:\n  - id: a\n  - id: b\n")
    pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing").assert_outcomes(passed=2)
    cases.write_text(  # both outputs now differ: each case wants to rewrite its baseline
        cases.read_text()
        .replace("  - id: b\n", "  - id: b\n    inputs: {Blur: {blur_radius: 3}}\n")
        .replace("  - id: a\n", "  - id: a\n    inputs: {Blur: {blur_radius: 3}}\n")
    )
    before = snapshot(project / "baselines")
    folders = [project / "baselines/p/a", project / "baselines/p/b"]
    for folder in folders:
        folder.chmod(0o555)
    try:
        result = subprocess.run(
            [
                *unprivileged(),
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                f"--comfy-url={comfy.url}",
                "--comfy-update=changed",
            ],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        for folder in folders:
            folder.chmod(0o755)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    for case in ("a", "b"):
        assert (
            f"cannot write the baselines in {project}/baselines/p/{case}/: Permission denied"
            in output
        ), output
    for internal in ("Traceback", "_pytest", "cls = "):
        assert internal not in output, output
    # One error per case: its message, once each (the short summary repeats it, prefixed).
    denied = [line for line in output.splitlines() if line.startswith("cannot write the")]
    assert len(denied) == 2, output
    rows = [line.split()[:3] for line in output.splitlines() if line.startswith("cases/p.yaml::")]
    assert rows == [[f"cases/p.yaml::{c}", "error", "cannot"] for c in ("a", "b")], output
    assert snapshot(project / "baselines") == before, "nothing written, nothing half-written"


def test_two_ctrl_c_during_a_pruning_update_run_delete_nothing(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    """The second Ctrl-C lands while pytest handles the first. cases/a.yaml ran whole
    before it, and owns an unused baseline: an interrupted run still prunes nothing."""
    a = project / "cases/a.yaml"
    a.write_text(PIPELINE + "cases:\n  - id: keep\n" + DROP)
    b = project / "cases/b.yaml"
    b.write_text(
        "workflow: workflows/txt2img.json\nseed: 94\ncases:\n"
        "  - id: quick\n    inputs: {KSampler: {steps: 1}}\n"
    )
    made = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing")
    made.assert_outcomes(passed=3)
    a.write_text(a.read_text().replace(DROP, ""))
    b.write_text(b.read_text() + "  - id: endless\n    inputs: {KSampler: {steps: 5000}}\n")
    before = snapshot(project / "baselines")

    def twice() -> None:
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)

    process = start_pytest(
        project, f"--comfy-url={comfy.url}", "--comfy-update=all", "--comfy-prune"
    )
    try:
        stop_mid_run(process, project, comfy.url, 5000, "b.yaml::quick PASSED", twice, 120)
    finally:
        httpx.post(f"{comfy.url}/interrupt", json={}, timeout=10)  # if the client could not
    output = (project / "pytest.log").read_text()
    assert process.returncode != 0, output
    assert "cases/a.yaml::keep PASSED" in output
    assert "baselines deleted" not in output
    assert snapshot(project / "baselines") == before


def test_a_crashed_xdist_worker_prunes_nothing(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    """cases/a.yaml runs whole and owns an unused baseline; a worker dies running a case of
    cases/b.yaml. The run is not proven complete, so nothing is deleted."""
    a = project / "cases/a.yaml"
    a.write_text(PIPELINE + "cases:\n  - id: keep\n" + DROP)
    (project / "cases/b.yaml").write_text(PIPELINE + "cases:\n  - id: crash\n  - id: fine\n")
    made = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing")
    made.assert_outcomes(passed=4)
    a.write_text(a.read_text().replace(DROP, ""))
    pytester.makeconftest(
        "import os\n\n\ndef pytest_runtest_call(item):\n"
        "    if item.name == 'crash' and hasattr(item.config, 'workerinput'):\n"
        "        os._exit(1)  # the worker dies as if killed\n"
    )
    before = snapshot(project / "baselines")
    result = pytester.runpytest_subprocess(
        "--comfy-url",
        comfy.url,
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "--comfy-update=all",
        "--comfy-prune",
    )
    result.stdout.fnmatch_lines(["*crashed while running*cases/b.yaml::crash*"])
    result.stdout.fnmatch_lines(["baselines not pruned: an xdist worker crashed"])
    assert "baselines deleted" not in result.stdout.str()
    assert snapshot(project / "baselines") == before
