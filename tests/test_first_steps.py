"""A project of one's own: ``comfytest init``, and the hint for YAML files that look like
case files but are not under ``comfy_case_paths``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from comfytest.runtime import ManagedServer

QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")


def init(folder: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "comfytest.cli", "init", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_init_writes_a_project_that_runs_and_overwrites_nothing(
    pytester: pytest.Pytester, comfy: ManagedServer
) -> None:
    root = pytester.path
    assert init(root)[:4] == [
        "wrote pytest.ini",
        "wrote cases/example.yaml",
        "wrote workflows/txt2img.json",
        "wrote baselines/",
    ]
    listed = pytester.runpytest("--collect-only", "-q", *QUIET)
    listed.stdout.fnmatch_lines(["cases/example.yaml::fox", "*1 test collected*"])
    created = pytester.runpytest(f"--comfy-url={comfy.url}", "--comfy-update=missing", *QUIET)
    created.assert_outcomes(passed=1)
    assert (root / "baselines/example/fox/9-0.png").is_file()
    pytester.runpytest(f"--comfy-url={comfy.url}", *QUIET).assert_outcomes(passed=1)

    (root / "cases/example.yaml").write_text("# mine\n")
    again = init(root)
    assert again[:4] == [
        "kept pytest.ini (it sets comfy_case_paths)",
        "kept cases/example.yaml (it exists)",
        "kept workflows/txt2img.json (it exists)",
        "kept baselines/ (it exists)",
    ]
    assert (root / "cases/example.yaml").read_text() == "# mine\n"


def test_init_leaves_an_existing_pytest_config_alone_and_says_what_to_add(
    tmp_path: Path,
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "mine"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n')
    before = pyproject.read_bytes()
    lines = init(tmp_path)
    assert lines[0] == (
        'kept pyproject.toml: add  comfy_case_paths = ["cases"]  to its '
        "[tool.pytest.ini_options] section"
    )
    assert pyproject.read_bytes() == before
    assert not (tmp_path / "pytest.ini").exists(), "it would shadow pyproject.toml's config"


CASE = "workflow: ../workflows/txt2img.json\nseed: 1\ncases:\n  - id: fox\n"


def test_a_case_file_outside_the_case_paths_gets_a_hint(pytester: pytest.Pytester) -> None:
    init(pytester.path)
    (pytester.path / "other").mkdir()
    (pytester.path / "other/fox.yaml").write_text(CASE)
    named = pytester.runpytest("other/fox.yaml", "--collect-only", *QUIET)
    assert named.ret == pytest.ExitCode.USAGE_ERROR
    named.stderr.fnmatch_lines(
        [
            "ERROR: comfytest: other/fox.yaml looks like a case file (a top-level 'cases:') but "
            "only YAML files under comfy_case_paths (cases/) are case files: set "
            'comfy_case_paths in pytest.ini; see the README\'s "Your own repo"'
        ]
    )
    assert "Traceback" not in named.stderr.str()
    everything = pytester.runpytest("--collect-only", "-q", *QUIET)
    everything.stdout.fnmatch_lines(
        ["cases/example.yaml::fox", "comfytest: other/fox.yaml looks like a case file *"]
    )


def test_running_from_inside_cases_without_an_ini_says_why_nothing_was_collected(
    pytester: pytest.Pytester,
) -> None:
    init(pytester.path)
    (pytester.path / "pytest.ini").unlink()
    inside = pytester.path / "cases"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *QUIET],
        cwd=inside,
        capture_output=True,
        text=True,
    )
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED
    assert (
        "comfytest: example.yaml looks like a case file (a top-level 'cases:') but only YAML "
        "files under comfy_case_paths (cases/) are case files: no pytest.ini or pyproject.toml "
        f"was found (rootdir {inside}): run pytest from the project's root"
    ) in result.stdout
