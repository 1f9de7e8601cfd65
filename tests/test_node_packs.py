"""The user's own ComfyUI: node packs and model folders in a named runtime, what an update of
a pack changed, and both runtimes side by side. Against the real managed server: the fixture
pack in tests/node_packs (v1: FixtureBrightness and FixtureInvert; v2: FixtureBrightness
mirrors the image, FixtureInvert is gone, and it needs ``six`` from the registry)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from comfytest.comfy.changes import environment_lines
from comfytest.comfy.environment import fingerprint
from comfytest.comfy.model_hashes import ModelHashes
from comfytest.errors import RuntimeSetupError
from comfytest.runtime import Runtime, install
from comfytest.runtime.config import project_runtime
from comfytest.runtime.packs import PackSource

from .conftest import REPO

COMFYTEST = [sys.executable, "-m", "comfytest.cli"]
PACKS = REPO / "tests" / "node_packs"
V1 = PACKS / "v1" / "comfytest_fixture_pack"
V2 = PACKS / "v2" / "comfytest_fixture_pack"

BRIGHT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "pattern.png"}},
    "2": {"class_type": "FixtureBrightness", "inputs": {"amount": 0.8, "image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "b", "images": ["2", 0]}},
}
INVERT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "pattern.png"}},
    "2": {"class_type": "FixtureInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "i", "images": ["2", 0]}},
}
CASES = (
    "cases:\n"
    "  - id: bright\n    workflow: workflows/bright.json\n"
    "    inputs:\n      LoadImage: {image: {file: inputs/pattern.png}}\n"
    "  - id: invert\n    workflow: workflows/invert.json\n"
    "    inputs:\n      LoadImage: {image: {file: inputs/pattern.png}}\n"
)


@pytest.fixture(scope="module")
def home(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A comfytest home of its own that shares the installed base runtime (a symlink), so
    named runtimes and their venvs are made afresh here."""
    folder = tmp_path_factory.mktemp("home")
    (folder / "runtimes").mkdir()
    (folder / "runtimes" / runtime.name).symlink_to(runtime.root)
    return folder


def comfytest(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMFYTEST, *args], capture_output=True, text=True, cwd=cwd)


def write_project(project: Path) -> None:
    (project / "cases" / "workflows" / "bright.json").write_text(json.dumps(BRIGHT))
    (project / "cases" / "workflows" / "invert.json").write_text(json.dumps(INVERT))
    (project / "cases" / "pack.yaml").write_text(CASES)


def test_a_pack_update_fails_naming_the_pack_and_the_side_by_side_shows_both(
    pytester: pytest.Pytester, project: Path, home: Path, runtime: Runtime
) -> None:
    v1 = comfytest("runtime", "install", f"--home={home}", "--name=fx-v1", f"--custom-node={V1}")
    assert v1.returncode == 0, v1.stderr
    v2 = comfytest("runtime", "install", f"--home={home}", "--name=fx-v2", f"--custom-node={V2}")
    assert v2.returncode == 0, v2.stderr
    info1 = json.loads((home / "runtimes/fx-v1/runtime.json").read_text())
    info2 = json.loads((home / "runtimes/fx-v2/runtime.json").read_text())
    (pack1,), (pack2,) = info1["custom_nodes"], info2["custom_nodes"]
    assert (pack1["name"], pack1["version"], pack2["version"]) == (
        "comfytest_fixture_pack",
        "1.0.0",
        "2.0.0",
    )
    assert pack1["digest"] != pack2["digest"]
    assert pack1["commit"]  # the comfytest checkout's
    assert (home / "runtimes/fx-v1/custom_nodes/comfytest_fixture_pack/__init__.py").is_file()
    # v2's requirement went into a thin venv of its own, over the base runtime's packages.
    assert info1["python"] == str(runtime.python), "v1 needs nothing beyond the base venv"
    assert info2["python"].startswith(str(home / "venvs" / "packs-"))
    thin = subprocess.run(
        [info2["python"], "-c", "import six, torch, PIL; print(six.__file__)"],
        capture_output=True,
        text=True,
    )
    assert thin.returncode == 0, thin.stderr
    assert thin.stdout.startswith(str(home / "venvs"))
    base = subprocess.run([str(runtime.python), "-c", "import six"], capture_output=True)
    assert base.returncode != 0, "the base runtime venv is left as it was"
    again = comfytest("runtime", "install", f"--home={home}", "--name=fx-v1", f"--custom-node={V1}")
    assert "runtime fx-v1 already installed" in again.stderr

    write_project(project)
    common = ["--comfy-launch", f"--comfy-home={home}", "-p", "no:cacheprovider"]
    made = pytester.runpytest_subprocess(*common, "--comfy-runtime=fx-v1", "--comfy-update=missing")
    made.assert_outcomes(passed=2)
    manifest = json.loads((project / "baselines/pack/bright/manifest.json").read_text())
    packs = manifest["environment"]["node_packs"]
    assert packs["comfytest_fixture_pack"]["classes"] == ["FixtureBrightness", "FixtureInvert"]
    model = manifest["environment"]["models"]["checkpoints"]["comfytest-sd15-tiny.safetensors"]
    assert len(model["sha256"]) == 64

    updated = pytester.runpytest_subprocess(*common, "--comfy-runtime=fx-v2")
    # The changed output is a regression (failed); the removed class a broken workflow (error).
    updated.assert_outcomes(failed=1, errors=1)
    environment = [
        "  the environment differs from the one the baselines were made in:",
        "    runtime fx-v1 (ComfyUI 0.3.75) -> fx-v2 (ComfyUI 0.3.75)",
        "    node pack comfytest_fixture_pack 1.0.0 -> 2.0.0 (digest *)",
        "    node pack comfytest_fixture_pack: class FixtureInvert is gone",
        "    unchanged: ComfyUI 0.3.75, torch *, 1 model (by sha256)*",
    ]
    updated.stdout.fnmatch_lines(
        ["*bright: output 3 (SaveImage #0) differs from its baseline", *environment]
    )
    updated.stdout.fnmatch_lines(
        [
            "preflight: node 2 (FixtureInvert): node class 'FixtureInvert' is not installed *",
            "  the workflow cannot run on * (missing node):",
            "  node 2 (FixtureInvert): node class 'FixtureInvert' is not installed on this server*",
            *environment,
        ]
    )
    # The summary counts each change once per case, without the line of what stayed the same.
    updated.stdout.fnmatch_lines(
        ["baselines made in another environment:", "*class FixtureInvert is gone (2 cases)"]
    )
    summary = updated.stdout.str().split("comfytest ---")[-1].split("short test summary")[0]
    assert "unchanged: ComfyUI 0.3.75, torch" not in summary

    side = comfytest(
        "compare-runtimes", "fx-v1", "fx-v2", "--", f"--comfy-home={home}", cwd=project
    )
    assert side.returncode == 1, side.stdout + side.stderr
    lines = side.stdout.splitlines()
    assert lines[0] == "environment fx-v1 -> fx-v2:"
    assert "  node pack comfytest_fixture_pack: class FixtureInvert is gone" in lines
    bright = next(line for line in lines if line.startswith("cases/pack.yaml::bright"))
    invert = next(line for line in lines if line.startswith("cases/pack.yaml::invert"))
    assert "passed (diff 0%, max diff 0)  failed (diff " in bright
    assert "passed (diff 0%, max diff 0)  error: preflight" in invert
    assert "FixtureInvert" in invert
    assert lines[-1] == "2 case(s) that passed on fx-v1 do not pass on fx-v2"
    assert (project / ".comfytest/compare/fx-v1/run.json").is_file()
    assert (project / ".comfytest/compare/fx-v2/run.json").is_file()


def test_a_pack_that_fails_to_import_is_an_install_error(home: Path, tmp_path: Path) -> None:
    pack = tmp_path / "broken_pack"
    pack.mkdir()
    (pack / "__init__.py").write_text("import no_such_module_xyz\nNODE_CLASS_MAPPINGS = {}\n")
    found = comfytest(
        "runtime", "install", f"--home={home}", "--name=broken", f"--custom-node={pack}"
    )
    assert found.returncode == 1
    assert (
        f"comfytest: error: node pack broken_pack ({pack}) failed to import: "
        "No module named 'no_such_module_xyz'"
    ) in found.stderr
    assert not (home / "runtimes/broken/runtime.json").exists(), "not a usable runtime"
    missing = comfytest(
        "runtime", "install", f"--home={home}", "--name=x", "--custom-node=./nope/pack"
    )
    assert "comfytest: error: --custom-node ./nope/pack: no such folder" in missing.stderr


#: A node pack published on PyPI (no requirements of its own): LoadImageFromPath and others.
PYPI_PACK = "ComfyUI_Ib_CustomNodes==0.2.3"
FROM_PATH = {
    "1": {"class_type": "LoadImageFromPath", "inputs": {"image": "pattern.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "p", "images": ["1", 0]}},
}


def test_a_pack_from_pypi_is_installed_into_the_runtime_and_runs(
    pytester: pytest.Pytester, project: Path, home: Path
) -> None:
    made = comfytest(
        "runtime", "install", f"--home={home}", "--name=from-pypi", f"--custom-node={PYPI_PACK}"
    )
    assert made.returncode == 0, made.stderr
    (pack,) = json.loads((home / "runtimes/from-pypi/runtime.json").read_text())["custom_nodes"]
    assert pack["name"] == "pypi-comfyui-ib-customnodes"
    assert (pack["source"], pack["version"], pack["modules"]) == (
        f"pypi:{PYPI_PACK}",
        "0.2.3",
        ["ComfyUI_Ib_CustomNodes"],
    )
    assert len(pack["digest"]) == 16
    again = comfytest(
        "runtime", "install", f"--home={home}", "--name=from-pypi", f"--custom-node={PYPI_PACK}"
    )
    assert "runtime from-pypi already installed" in again.stderr, again.stderr
    (project / "cases/workflows/from_path.json").write_text(json.dumps(FROM_PATH))
    (project / "cases/p.yaml").write_text(
        "cases:\n  - id: from-path\n    workflow: workflows/from_path.json\n"
        "    inputs:\n      LoadImageFromPath: {image: {file: inputs/pattern.png}}\n"
    )
    args = ["--comfy-launch", f"--comfy-home={home}", "--comfy-runtime=from-pypi"]
    made_baseline = pytester.runpytest_subprocess(*args, "--comfy-update=missing")
    made_baseline.assert_outcomes(passed=1)
    manifest = json.loads((project / "baselines/p/from-path/manifest.json").read_text())
    recorded = manifest["environment"]["node_packs"]["pypi-comfyui-ib-customnodes"]
    assert recorded["version"] == "0.2.3"
    assert "LoadImageFromPath" in recorded["classes"]
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)


def build_wheel(pack: Path, folder: Path, version: str, requires: list[str]) -> Path:
    """A wheel of a pack folder, as a node developer's build would make it: the package,
    its metadata, no entry point (the loader then finds NODE_CLASS_MAPPINGS itself)."""
    name = pack.name
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/{p.name}": p.read_bytes() for p in sorted(pack.glob("*.py"))}
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files[f"{info}/METADATA"] = (
        metadata + "".join(f"Requires-Dist: {r}\n" for r in requires)
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    files[f"{info}/RECORD"] = record.encode()
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def test_a_pack_from_a_wheel_file_gets_its_requirements_and_is_found_without_entry_points(
    home: Path, tmp_path: Path
) -> None:
    wheel = build_wheel(V2, tmp_path, "2.0.0", ["six>=1.16"])
    made = comfytest(
        "runtime", "install", f"--home={home}", "--name=from-wheel", f"--custom-node={wheel}"
    )
    assert made.returncode == 0, made.stderr  # the install checked that the pack imports
    info = json.loads((home / "runtimes/from-wheel/runtime.json").read_text())
    (pack,) = info["custom_nodes"]
    assert (pack["name"], pack["version"], pack["modules"]) == (
        "pypi-comfytest-fixture-pack",
        "2.0.0",
        ["comfytest_fixture_pack"],
    )
    python = info["python"]
    assert python != info["base_python"], "the pack and six live in the runtime's own venv"
    probe = subprocess.run([python, "-c", "import six, comfytest_fixture_pack"], check=False)
    assert probe.returncode == 0
    mine = subprocess.run([sys.executable, "-c", "import comfytest_fixture_pack"], check=False)
    assert mine.returncode != 0, "never installed into the user's own environment"


def test_the_project_declares_its_runtime_and_model_folders(
    pytester: pytest.Pytester, project: Path, home: Path
) -> None:
    shutil.copytree(V1, project / "nodes" / "comfytest_fixture_pack")
    (project / "my_loras").mkdir()
    (project / "my_loras" / "style.safetensors").write_bytes(b"lora" * 16)
    (project / "pyproject.toml").write_text(
        "[tool.comfytest]\n"
        'runtime = "declared"\n'
        'custom_nodes = ["nodes/comfytest_fixture_pack"]\n'
        'model_dirs = { loras = "my_loras" }\n'
    )
    write_project(project)
    result = pytester.runpytest_subprocess(
        "--comfy-launch", f"--comfy-home={home}", "--comfy-update=missing", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    info = json.loads((home / "runtimes/declared/runtime.json").read_text())
    assert info["model_dirs"] == {"loras": [str((project / "my_loras").resolve())]}
    manifest = json.loads((project / "baselines/pack/bright/manifest.json").read_text())
    models = manifest["environment"]["models"]
    assert "comfytest-sd15-tiny.safetensors" in models["checkpoints"], "the tiny one stays"
    assert models["loras"]["style.safetensors"]["size"] == 64
    assert manifest["environment"]["runtime"] == "declared (ComfyUI 0.3.75)"
    # ``comfytest runtime install`` with no arguments installs what the project declares.
    env = {**os.environ, "COMFYTEST_HOME": str(home)}
    declared = subprocess.run(
        [*COMFYTEST, "runtime", "install"], capture_output=True, text=True, cwd=project, env=env
    )
    assert "runtime declared already installed" in declared.stderr, declared.stderr


def test_python_is_kept_as_given_and_a_bare_interpreter_is_refused(
    runtime: Runtime, tmp_path: Path
) -> None:
    venv_python = runtime.python  # <venv>/bin/python: a symlink to the base interpreter
    assert venv_python.resolve() != venv_python
    made = install(
        home=tmp_path, comfyui_dir=runtime.comfyui_dir, python=venv_python, log=lambda m: None
    )
    assert made.info["python"] == str(venv_python)
    assert made.python == venv_python
    bare = comfytest(
        "runtime",
        "install",
        f"--home={tmp_path / 'bare'}",
        f"--comfyui-dir={runtime.comfyui_dir}",
        f"--python={venv_python.resolve()}",
    )
    assert bare.returncode == 1
    assert "cannot run ComfyUI: ModuleNotFoundError: No module named 'torch'" in bare.stderr


def test_a_runtime_that_cannot_start_is_one_error_for_the_run(
    pytester: pytest.Pytester, project: Path, home: Path
) -> None:
    write_project(project)
    result = pytester.runpytest_subprocess(
        "--comfy-launch",
        f"--comfy-home={home}",
        "--comfy-server-arg=--no-such-flag",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: ComfyUI exited with code 2 during start-up; log *comfyui.log:",
            "main.py: error: unrecognized arguments: --no-such-flag",
        ]
    )
    assert "FAILED" not in result.stdout.str()
    # Under xdist each worker starts its own server: one error per worker, then the run
    # stops; no case is a failure.
    workers = pytester.runpytest_subprocess(
        "--comfy-launch",
        f"--comfy-home={home}",
        "--comfy-server-arg=--no-such-flag",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
    )
    outcomes = workers.parseoutcomes()
    assert 1 <= outcomes.get("errors", 0) <= 2
    assert not outcomes.get("failed")
    workers.stdout.fnmatch_lines(
        [
            "*main.py: error: unrecognized arguments: --no-such-flag*",
            "not passed: * infrastructure problem* (error)",
            "*Interrupted: the managed ComfyUI did not start*",
        ]
    )


def test_models_are_named_by_content_and_hashed_once(tmp_path: Path) -> None:
    stats = {"system": {"comfyui_version": "0.3.75", "pytorch_version": "2.14.1"}}
    (tmp_path / "loras").mkdir()
    lora = tmp_path / "loras" / "style.safetensors"
    lora.write_bytes(b"a" * 32)
    hashes = ModelHashes(tmp_path / "hashes.json")

    def taken() -> dict[str, object]:
        return fingerprint(stats, {}, {"loras": ["style.safetensors"]}, tmp_path, hashes=hashes)

    before = taken()
    hashes.save()
    cached = ModelHashes(tmp_path / "hashes.json")
    hashes = cached
    assert taken() == before
    assert cached.hashed == [], "size and mtime unchanged: not rehashed"
    lora.write_bytes(b"b" * 32)  # replaced under the same name and size
    os.utime(lora, ns=(1, 1))
    after = taken()
    assert cached.hashed == [lora]
    lines = environment_lines(before, after)
    assert lines[0].startswith(
        "model loras/style.safetensors: other content, same name and size (sha256 "
    )
    assert lines[-1].startswith("unchanged: ComfyUI 0.3.75, torch 2.14.1, ")


def test_the_config_takes_pack_folders_and_requirements(tmp_path: Path) -> None:
    (tmp_path / "nodes" / "pack").mkdir(parents=True)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        f'[tool.comfytest]\nruntime = "r"\ncustom_nodes = ["nodes/pack", "{PYPI_PACK}"]\n'
    )
    declared = project_runtime(pyproject)
    assert declared is not None
    parsed = [PackSource.parse(n, tmp_path) for n in declared.custom_nodes]
    assert parsed == [
        PackSource(path=(tmp_path / "nodes" / "pack").resolve()),
        PackSource(requirement=PYPI_PACK),
    ]
    assert parsed[1].name == "pypi-comfyui-ib-customnodes"
    with pytest.raises(RuntimeSetupError, match="--custom-node nodes/gone: no such folder"):
        PackSource.parse("nodes/gone", tmp_path)
