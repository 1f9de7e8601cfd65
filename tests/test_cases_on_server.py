"""End to end: YAML cases run by pytest on the real managed ComfyUI, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfytest.runtime import ManagedServer

REPO = Path(__file__).resolve().parent.parent

TXT2IMG = """\
workflow: workflows/txt2img.json
seed: 42
cases:
  - id: fox
    inputs:
      Positive: {text: "a watercolor fox"}
"""


def run(pytester: pytest.Pytester, comfy: ManagedServer, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--comfy-url", comfy.url, "-p", "no:cacheprovider", *args)


def test_lifecycle_of_a_txt2img_case(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    cases = project / "cases" / "t.yaml"
    cases.write_text(TXT2IMG)
    baseline = project / "baselines" / "t" / "fox" / "9-0.png"
    actual = project / ".comfytest" / "results" / "t" / "fox" / "9-0.png"

    missing = run(pytester, comfy)
    missing.assert_outcomes(errors=1)  # a baseline problem, not a regression
    missing.stdout.fnmatch_lines(
        [
            "*fox: output 9 (Save Image #0) has no baseline",
            f"*baseline {baseline}",
            f"*actual   {actual}",
            "*accept it: pytest cases/t.yaml::fox --comfy-url * --comfy-update=missing",
        ]
    )
    assert not baseline.exists()
    assert actual.is_file()

    created = run(pytester, comfy, "--comfy-update=missing")
    created.assert_outcomes(passed=1)
    created.stdout.fnmatch_lines(["outputs: 1 created"])
    assert baseline.is_file()
    manifest = json.loads(baseline.with_name("manifest.json").read_text())
    assert manifest["case"] == "cases/t.yaml::fox"
    assert manifest["workflow"] == "cases/workflows/txt2img.json"
    assert manifest["seed"] == 42
    assert manifest["inputs"] == {"6": {"text": "a watercolor fox"}}
    assert manifest["outputs"]["9-0"]["size"] == [64, 64]
    assert manifest["environment"]["comfyui_version"] == "0.3.75"
    checkpoints = manifest["environment"]["models"]["checkpoints"]
    assert "comfytest-sd15-tiny.safetensors" in checkpoints

    again = run(pytester, comfy)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["outputs: 1 passed"])

    # As if the baselines had been made on an older ComfyUI with another torch.
    manifest["environment"].update(comfyui_version="0.3.60", pytorch_version="2.1.0+cpu")
    baseline.with_name("manifest.json").write_text(json.dumps(manifest))
    cases.write_text(TXT2IMG.replace("a watercolor fox", "an oil painting of a castle"))
    changed = run(pytester, comfy)
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(
        [
            "*fox: output 9 (Save Image #0) differs from its baseline",
            "*  * of 12288 values (*%) differ by more than 1 level (> 0.10% allowed); max pixel *",
            f"*baseline {baseline}",
            f"*actual   {actual}",
            f"*diff     {actual.with_name('9-0.diff.png')}",
            "  the environment differs from the one the baselines were made in:",
            "    ComfyUI 0.3.60 -> 0.3.75",
            "    torch 2.1.0+cpu -> *",
            "*accept it: pytest cases/t.yaml::fox --comfy-url * --comfy-update=changed",
        ]
    )
    beyond = int(changed.stdout.str().split(" of 12288 values")[0].split()[-1])
    assert beyond > 12
    with Image.open(actual) as kept, Image.open(baseline) as old:
        assert not np.array_equal(np.asarray(kept), np.asarray(old))
    with Image.open(actual.with_name("9-0.baseline.png")) as copy, Image.open(baseline) as old:
        assert np.array_equal(np.asarray(copy), np.asarray(old))

    kept_pixels = np.asarray(Image.open(actual))
    updated = run(pytester, comfy, "--comfy-update=changed")
    updated.assert_outcomes(passed=1)
    updated.stdout.fnmatch_lines(["outputs: 1 updated"])
    with Image.open(baseline) as new:
        assert np.array_equal(kept_pixels, np.asarray(new)), "the baseline is what was kept"
    assert not actual.exists(), "evidence of the fixed failure is gone"

    run(pytester, comfy).assert_outcomes(passed=1)
    unchanged = run(pytester, comfy, "--comfy-update=changed")
    unchanged.stdout.fnmatch_lines(["outputs: 1 unchanged"])


#: The smallest real changes measured by benchmarks/verdicts.py, each as a case's inputs.
SMALL_CHANGES = {
    "t": {
        "steps": "KSampler: {steps: 6}",
        "cfg": "KSampler: {cfg: 7.5}",
        "sampler": "KSampler: {sampler_name: lms}",  # max diff 3: the closest sampler measured
        "scheduler": "KSampler: {scheduler: karras}",
        "word": 'Positive: {text: "a watercolor fox in a snowy wood"}',
    },
    "p": {
        "sigma": "Blur: {sigma: 1.1}",  # max diff 3 as well
        "resize": "Resize: {upscale_method: bicubic}",
    },
}


def test_the_default_fails_small_real_changes_and_passes_hardware_noise(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    """One step, cfg + 0.5, another sampler, scheduler or prompt word, a blur sigma + 0.1
    and another resize method each fail under the default tolerance, while a baseline moved
    by +-1 level in 64 values and +-2 in 8 more (another CPU's noise, simulated) passes."""
    heads = {
        "t": "workflow: workflows/txt2img.json\nseed: 42\ncases:\n",
        "p": "workflow: workflows/image_pipeline.json\n"
        "inputs:\n  LoadImage: {image: {file: inputs/pattern.png}}\ncases:\n",
    }

    def write(changed: bool) -> None:
        for name, head in heads.items():
            cases = [f"  - id: {case}\n" for case in (*SMALL_CHANGES[name], "noise")]
            if changed:
                inputs = SMALL_CHANGES[name].values()
                cases[:-1] = [
                    f"{c}    inputs:\n      {i}\n" for c, i in zip(cases[:-1], inputs, strict=True)
                ]
            (project / "cases" / f"{name}.yaml").write_text(head + "".join(cases))

    write(changed=False)
    run(pytester, comfy, "--comfy-update=missing").assert_outcomes(passed=9)
    rng = np.random.default_rng(0)
    for noisy in ("baselines/t/noise/9-0.png", "baselines/p/noise/5-0.png"):
        path = project / noisy
        with Image.open(path) as opened:
            values = np.asarray(opened).astype(np.int16)
        flat = values.reshape(-1)
        where = rng.choice(flat.size, size=72, replace=False)
        step = np.where(np.arange(72) < 64, 1, 2)
        flat[where] = np.where(flat[where] + step <= 255, flat[where] + step, flat[where] - step)
        Image.fromarray(values.astype(np.uint8)).save(path)

    write(changed=True)
    judged = run(pytester, comfy, "-rfE")
    judged.assert_outcomes(passed=2, failed=7)
    for cases in SMALL_CHANGES.values():
        for case in cases:
            judged.stdout.fnmatch_lines(
                [f"*{case}: output * differs from its baseline", "*differ by more than 1 level*"]
            )
    rows = [line.split() for line in judged.outlines if line.startswith("cases/")]
    passed = {row[0] for row in rows if row[1].rstrip(":") == "passed"}
    assert passed == {"cases/t.yaml::noise", "cases/p.yaml::noise"}


def test_upload_pipeline_and_two_outputs_also_under_xdist(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases" / "pipe.yaml").write_text(
        "workflow: workflows/image_pipeline.json\ncases:\n"
        "  - id: blur\n    inputs:\n      LoadImage: {image: {file: inputs/pattern.png}}\n"
    )
    (project / "cases" / "two.yaml").write_text(
        "workflow: workflows/upscale_two_outputs.json\nseed: 3\ncases:\n  - id: up\n"
    )
    run(pytester, comfy, "--comfy-update=missing").assert_outcomes(passed=2)
    made = sorted(p.relative_to(project).as_posix() for p in project.glob("baselines/**/*.png"))
    assert made == [
        "baselines/pipe/blur/5-0.png",
        "baselines/two/up/12-0.png",
        "baselines/two/up/9-0.png",
    ]
    manifest = json.loads((project / "baselines/pipe/blur/manifest.json").read_text())
    assert manifest["inputs"]["1"] == {"image": "cases/inputs/pattern.png"}, "as in a clone"
    with Image.open(project / "baselines/pipe/blur/5-0.png") as piped:
        assert piped.size == (96, 96)
        assert np.asarray(piped).std() > 10, "the uploaded pattern went through, not a flat image"
    with Image.open(project / "baselines/two/up/12-0.png") as upscaled:
        assert upscaled.size == (128, 128)

    serial = run(pytester, comfy, "-v")
    serial.assert_outcomes(passed=2)
    serial.stdout.fnmatch_lines(["*cases/pipe.yaml::blur PASSED*", "*cases/two.yaml::up PASSED*"])
    parallel = pytester.runpytest_subprocess(
        "--comfy-url", comfy.url, "-n", "2", "-p", "no:cacheprovider"
    )
    parallel.assert_outcomes(passed=2)
    parallel.stdout.fnmatch_lines(["outputs: 3 passed"])


def test_unknown_node_class_fails_with_a_clear_message(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    workflow = json.loads((project / "cases/workflows/image_pipeline.json").read_text())
    workflow["3"]["class_type"] = "NoSuchInvert"
    (project / "cases/workflows/bad.json").write_text(json.dumps(workflow))
    (project / "cases/bad.yaml").write_text(
        "workflow: workflows/bad.json\ncases:\n  - id: bad\n"
        "    inputs:\n      LoadImage: {image: {file: inputs/pattern.png}}\n"
    )
    result = run(pytester, comfy)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "preflight: node 3 (NoSuchInvert 'Invert'): node class 'NoSuchInvert' is not *",
            "  the workflow cannot run on * (missing node):",
            "  node 3 (NoSuchInvert 'Invert'): node class 'NoSuchInvert' is not installed on this "
            "server (a custom node pack missing?)*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_invalid_input_names_node_class_and_message(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: zero-steps\n"
        "    inputs:\n      KSampler: {steps: 0}\n"
    )
    result = run(pytester, comfy)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["  node 3 (KSampler): steps 0 is below the minimum 1"])


def test_server_side_rejection_is_reported(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    # No output node: preflight has nothing to say, ComfyUI answers 400 prompt_no_outputs.
    workflow = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        }
    }
    (project / "cases/workflows/none.json").write_text(json.dumps(workflow))
    (project / "cases/none.yaml").write_text(
        "workflow: workflows/none.json\ncases:\n  - id: none\n"
    )
    result = run(pytester, comfy)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["ComfyUI rejected the prompt: Prompt has no outputs"])


def test_execution_error_shows_node_exception_and_server_traceback(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    # LoadImage validates only that the file exists; decoding a non-image fails at run time.
    # (Not named .png: an unreadable image to upload is already a collection error.)
    (project / "cases/inputs/notes.bin").write_text("this is not a PNG")
    (project / "cases/boom.yaml").write_text(
        "workflow: workflows/image_pipeline.json\ncases:\n  - id: boom\n"
        "    inputs:\n      LoadImage: {image: {file: inputs/notes.bin}}\n"
    )
    result = run(pytester, comfy)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "ComfyUI failed while executing node 1 (LoadImage 'Load Image'): "
            "PIL.UnidentifiedImageError: cannot identify image file *notes.bin*",
            "server traceback:",
            "*nodes.py*, in load_image",
        ]
    )


def test_an_execution_error_says_what_changed_since_the_baselines(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    case = (
        "workflow: workflows/image_pipeline.json\ncases:\n  - id: boom\n"
        "    inputs:\n      LoadImage: {image: {file: inputs/%s}}\n"
    )
    (project / "cases/boom.yaml").write_text(case % "pattern.png")
    run(pytester, comfy, "--comfy-update=missing").assert_outcomes(passed=1)
    manifest = project / "baselines/boom/boom/manifest.json"
    data = json.loads(manifest.read_text())
    made_with = data["environment"]["pytorch_version"]
    data["environment"]["pytorch_version"] = "2.0.0"  # as if made before a torch update
    manifest.write_text(json.dumps(data))
    (project / "cases/inputs/notes.bin").write_text("this is not a PNG")
    (project / "cases/boom.yaml").write_text(case % "notes.bin")
    result = run(pytester, comfy)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "ComfyUI failed while executing node 1 (LoadImage 'Load Image'): *",
            "*the environment differs from the one the baselines were made in:",
            f"*torch 2.0.0 -> {made_with}",
            "*unchanged: ComfyUI *",
        ]
    )


def test_collection_errors_print_file_and_line_without_traceback(
    pytester: pytest.Pytester, project: Path
) -> None:
    (project / "cases/broken.yaml").write_text(
        "workflow: workflows/txt2img.json\ncases:\n  - id: [\n"
    )
    (project / "cases/typo.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n"
        "      KSampler: {stpes: 3}\n"
    )
    result = pytester.runpytest("--comfy-url", "http://127.0.0.1:9", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            f"*{project / 'cases/broken.yaml'}:4: invalid YAML*",
            f"*{project / 'cases/typo.yaml'}:6: node 3 (KSampler) has no input 'stpes'; "
            "did you mean 'steps'?",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_cases_without_a_server_is_a_usage_error(pytester: pytest.Pytester, project: Path) -> None:
    (project / "cases/t.yaml").write_text(TXT2IMG)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: ComfyUI cases were collected but no server is configured*"]
    )


def test_collecting_cases_needs_no_server(pytester: pytest.Pytester, project: Path) -> None:
    (project / "cases/t.yaml").write_text(TXT2IMG)
    result = pytester.runpytest("cases", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["cases/t.yaml::*", "*1 test collected*"])


def test_outputs_dropped_by_validation_fail_the_case(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    # One valid output keeps the prompt alive: ComfyUI answers 200 with node_errors.
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "does-not-exist.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "a", "images": ["1", 0]}},
        "3": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "4": {"class_type": "SaveImage", "inputs": {"filename_prefix": "b", "images": ["3", 0]}},
    }
    (project / "cases/workflows/half.json").write_text(json.dumps(workflow))
    (project / "cases/half.yaml").write_text(
        "workflow: workflows/half.json\ncases:\n  - id: half\n"
    )
    result = run(pytester, comfy)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ComfyUI rejected the prompt: some outputs failed validation and were dropped",
            "*node 1 (LoadImage): Custom validation failed for node: "
            "image - Invalid image file: does-not-exist.png",
        ]
    )


def test_sweep_cells_are_items_selectable_with_k_and_marked(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/sweep.yaml").write_text(
        "workflow: workflows/image_pipeline.json\n"
        "inputs:\n  LoadImage: {image: {file: inputs/pattern.png}}\n"
        "cases:\n"
        "  - id: blur\n    matrix: {Blur.blur_radius: [1, 2, 3]}\n"
        "    marks:\n      - skip: {reason: not today, when: {Blur.blur_radius: 3}}\n"
        "  - id: new\n    marks: [{xfail: {reason: no baseline yet, strict: true}}]\n"
    )
    listed = pytester.runpytest("--comfy-url", comfy.url, "--collect-only", "-q")
    listed.stdout.fnmatch_lines(
        [
            "cases/sweep.yaml::blur[Blur.blur_radius=1]",
            "cases/sweep.yaml::blur[Blur.blur_radius=2]",
            "cases/sweep.yaml::blur[Blur.blur_radius=3]",
            "cases/sweep.yaml::new",
        ]
    )
    one = run(pytester, comfy, "-k", "Blur.blur_radius:2", "--comfy-update=missing")
    one.assert_outcomes(passed=1, deselected=3)
    assert [p.parent.name for p in project.glob("baselines/sweep/blur/*/5-0.png")] == [
        "Blur.blur_radius=2"
    ]
    rest = run(pytester, comfy, "-k", "blur", "--comfy-update=missing", "-rs")
    rest.assert_outcomes(passed=2, skipped=1, deselected=1)
    rest.stdout.fnmatch_lines(["SKIPPED * not today"])
    everything = run(pytester, comfy)
    everything.assert_outcomes(passed=2, skipped=1, xfailed=1)


def test_ui_format_workflow_runs_like_its_api_twin(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/both.yaml").write_text(
        "seed: 42\ninputs:\n  Positive: {text: a red fox}\ncases:\n"
        "  - id: api\n    workflow: workflows/txt2img.json\n"
        "  - id: ui\n    workflow: workflows/txt2img_ui.json\n"
        "  - id: ui-typo\n    workflow: workflows/txt2img_ui.json\n"
        "    inputs:\n      KSampler: {stpes: 3}\n"
    )
    result = run(pytester, comfy, "--comfy-update=missing")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"{project / 'cases/both.yaml'}:12: node 3 (KSampler) has no input 'stpes'; did you mean 'steps'?"
        ]
    )
    with (
        Image.open(project / "baselines/both/api/9-0.png") as api,
        Image.open(project / "baselines/both/ui/9-0.png") as ui,
    ):
        assert np.array_equal(np.asarray(api), np.asarray(ui)), "same pixels from the UI file"


def test_ui_format_typos_are_collection_errors_once_a_run_cached_the_definitions(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/ui.yaml").write_text(
        "seed: 42\nworkflow: workflows/txt2img_ui.json\ncases:\n"
        "  - id: typo\n    inputs:\n      KSampler: {stpes: 3}\n"
    )
    typo = f"{project / 'cases/ui.yaml'}:6: node 3 (KSampler) has no input 'stpes'; did you mean 'steps'?"
    first = run(pytester, comfy)  # nothing cached yet: the run finds it (and caches)
    first.assert_outcomes(errors=1)
    first.stdout.fnmatch_lines([typo])
    (cache,) = (project / ".comfytest/object_info").glob("url-*.json")
    collected = run(pytester, comfy, "--collect-only")
    collected.assert_outcomes(errors=1)
    collected.stdout.fnmatch_lines(
        [
            f"{typo} (checked at collection against the /object_info of {comfy.url} saved * ago "
            f"in {cache}; if that server has changed since, delete that file)"
        ]
    )
    assert "Traceback" not in collected.stdout.str()


def test_unused_baselines_reported_on_full_runs_and_deleted_only_with_prune(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    cases = project / "cases/pipe.yaml"
    cases.write_text(
        "workflow: workflows/image_pipeline.json\n"
        "inputs:\n  LoadImage: {image: {file: inputs/pattern.png}}\ncases:\n"
        "  - id: keep\n  - id: drop\n    inputs: {Blur: {blur_radius: 1}}\n"
        "  - id: later\n    marks: [{skip: not now}]\n"
    )
    run(pytester, comfy, "--comfy-update=missing").assert_outcomes(passed=2, skipped=1)
    (project / "baselines/pipe/later").mkdir()
    (project / "baselines/pipe/later/5-0.png").write_bytes(
        (project / "baselines/pipe/keep/5-0.png").read_bytes()
    )
    cases.write_text(
        cases.read_text().replace("  - id: drop\n    inputs: {Blur: {blur_radius: 1}}\n", "")
    )
    gone = "  baselines/pipe/drop/5-0.png: cases/pipe.yaml::drop is no longer a case of cases/pipe.yaml"

    partial = run(pytester, comfy, "-k", "keep")
    assert "baselines unused" not in partial.stdout.str(), "a partial run says nothing"
    full = run(pytester, comfy)
    full.assert_outcomes(passed=1, skipped=1)
    full.stdout.fnmatch_lines(["baselines unused (--comfy-prune deletes them): 1", gone])
    assert (project / "baselines/pipe/drop/5-0.png").is_file(), "reported, not deleted"
    parallel = pytester.runpytest_subprocess(
        "--comfy-url", comfy.url, "-n", "2", "-p", "no:cacheprovider"
    )
    parallel.stdout.fnmatch_lines(["baselines unused (--comfy-prune deletes them): 1", gone])
    rewrite = run(pytester, comfy, "--comfy-update=all")
    rewrite.stdout.fnmatch_lines(["baselines unused (--comfy-prune deletes them): 1"])
    assert (project / "baselines/pipe/drop/5-0.png").is_file(), "writing never deletes"

    pruned = run(pytester, comfy, "--comfy-prune")
    pruned.stdout.fnmatch_lines(
        [
            "baselines deleted: 2 (committed ones come back with git checkout -- PATH)",
            gone,
            "  baselines/pipe/drop/manifest.json: cases/pipe.yaml::drop: it described only those",
        ]
    )
    assert not (project / "baselines/pipe/drop").exists(), "its manifest and folder went too"
    assert (project / "baselines/pipe/later/5-0.png").is_file(), "a skipped case keeps its own"


def outcomes(result: pytest.RunResult) -> list[str]:
    """The short test summary lines (-rA), sorted: outcome and node id of every item."""
    lines = result.stdout.lines
    return sorted(
        line.split(" - ")[0]
        for line in lines
        if line.startswith(("PASSED ", "FAILED ", "ERROR ", "SKIPPED "))
    )


def test_xdist_update_writes_each_baseline_once_and_judges_like_serial(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    cases = project / "cases/grid.yaml"
    cases.write_text(
        "workflow: workflows/image_pipeline.json\n"
        "inputs:\n  LoadImage: {image: {file: inputs/pattern.png}}\ncases:\n"
        "  - id: grid\n    matrix: {Blur.blur_radius: [1, 2, 3], Resize.width: [64, 96]}\n"
    )
    parallel = pytester.runpytest_subprocess(
        "--comfy-url", comfy.url, "-n", "2", "--comfy-update=missing", "-p", "no:cacheprovider"
    )
    parallel.assert_outcomes(passed=6)
    parallel.stdout.fnmatch_lines(["outputs: 6 created"])
    made = sorted(project.glob("baselines/grid/grid/*/5-0.png"))
    assert len(made) == 6, "each baseline written exactly once, by exactly one worker"
    for png in made:
        with Image.open(png) as image:
            image.load()  # a half-written file would not decode
    serial = run(pytester, comfy, "--comfy-update=missing", "--comfy-baselines=serial")
    serial.stdout.fnmatch_lines(["outputs: 6 created"])
    for png in made:
        twin = project / "serial" / png.relative_to(project / "baselines")
        assert twin.read_bytes() == png.read_bytes(), "same baselines with -n 0 and -n 2"

    cases.write_text(cases.read_text().replace("[1, 2, 3]", "[1, 2, 4]"))
    serial_verdicts = run(pytester, comfy, "-rA")
    parallel_verdicts = pytester.runpytest_subprocess(
        "--comfy-url", comfy.url, "-n", "2", "-rA", "-p", "no:cacheprovider"
    )
    assert outcomes(serial_verdicts) == outcomes(parallel_verdicts)
    assert sum(line.startswith(("FAILED", "ERROR")) for line in outcomes(serial_verdicts)) == 2


def test_animations_and_text_outputs_go_through_the_same_lifecycle(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    shutil.copy(REPO / "cases/workflows/animation_and_text.json", project / "cases/workflows")
    cases = project / "cases/anim.yaml"
    base = (
        "workflow: workflows/animation_and_text.json\nseed: 5\n"
        "inputs:\n  LoadImage: {image: {file: inputs/pattern.png}}\n"
    )
    cases.write_text(base + "cases:\n  - id: a\n")
    run(pytester, comfy, "--comfy-update=missing").stdout.fnmatch_lines(["outputs: 2 created"])
    assert (project / "baselines/anim/a/6-t0.txt").read_text() == "4"
    with Image.open(project / "baselines/anim/a/4-0.png") as animation:
        assert animation.n_frames == 4
    run(pytester, comfy).assert_outcomes(passed=1)

    cases.write_text(base.replace("seed: 5", "seed: 6") + "cases:\n  - id: a\n")
    reseeded = run(pytester, comfy)
    reseeded.assert_outcomes(failed=1)
    reseeded.stdout.fnmatch_lines(
        [
            "a: output 4 (Save Animation #0) differs from its baseline",
            "  frame 0 of 4; * values (*%) differ by more than 1 level (> 0.10% allowed); *",
        ]
    )

    cases.write_text(base + "cases:\n  - id: a\n    inputs: {Frames: {amount: 5}}\n")
    longer = run(pytester, comfy)
    longer.assert_outcomes(failed=1)
    longer.stdout.fnmatch_lines(
        [
            "a: output 4 (Save Animation #0) differs from its baseline",
            "  frame count differs: actual 5, baseline 4",
            "a: output 6 (Frame Count text #0) differs from its baseline",
            "  text '5' differs from the baseline '4'",
        ]
    )
    run(pytester, comfy, "--comfy-update=changed").stdout.fnmatch_lines(["outputs: 2 updated"])
    assert (project / "baselines/anim/a/6-t0.txt").read_text() == "5"

    cases.write_text(
        base + "cases:\n  - id: a\n    inputs: {Frames: {amount: 5}}\n"
        "    tolerance: {outputs: {'6-t0': {regex: '[0-4]'}}}\n"
    )
    regex = run(pytester, comfy)
    regex.assert_outcomes(failed=1)
    regex.stdout.fnmatch_lines(["  text '5' does not match /[0-4]/"])
