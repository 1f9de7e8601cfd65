"""Case files: what a user writes, and the file:line errors a mistake gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfytest.cases.loader import load_cases
from comfytest.errors import CaseError, WorkflowError

WORKFLOW = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 0,
            "steps": 20,
            "cfg": 8.0,
            "sampler_name": "euler",
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
        },
        "_meta": {"title": "KSampler"},
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x"}, "_meta": {"title": "Positive"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "y"}, "_meta": {"title": "Negative"}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "t", "images": ["8", 0]}},
}


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    (tmp_path / "wf.json").write_text(json.dumps(WORKFLOW, indent=2))
    return tmp_path


def write(case_dir: Path, text: str) -> Path:
    path = case_dir / "c.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> CaseError:
    with pytest.raises(CaseError) as excinfo:
        load_cases(path)
    return excinfo.value


def test_cases_resolve_ids_titles_and_classes(case_dir: Path) -> None:
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 5\ncases:\n"
        "  - id: a\n    inputs:\n      3: {steps: 4}\n      Positive: {text: fox}\n"
        "      CheckpointLoaderSimple: {ckpt_name: b.safetensors}\n"
        "  - id: b\n    seed: 9\n",
    )
    first, second = load_cases(path)
    assert first.name == "a"
    assert first.line == 4
    assert first.prompt["3"]["inputs"] == {
        **WORKFLOW["3"]["inputs"],
        "seed": 5,
        "steps": 4,
    }
    assert first.prompt["6"]["inputs"]["text"] == "fox"
    assert first.prompt["4"]["inputs"]["ckpt_name"] == "b.safetensors"
    assert second.prompt["3"]["inputs"]["seed"] == 9
    assert second.prompt["3"]["inputs"]["steps"] == 20
    assert WORKFLOW["3"]["inputs"]["seed"] == 0, "the workflow itself is never modified"


def test_explicit_seed_input_counts_as_pinned(case_dir: Path) -> None:
    path = write(case_dir, "workflow: wf.json\ncases:\n  - id: a\n    inputs: {3: {seed: 11}}\n")
    assert load_cases(path)[0].prompt["3"]["inputs"]["seed"] == 11


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("workflow: wf.json\ncases:\n  - id: a\n    seed: [1\n", 5, "invalid YAML"),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    stpes: 3\n",
            5,
            "unknown case key 'stpes'",
        ),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    inptus: {}\n",
            5,
            "did you mean 'inputs'?",
        ),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n      KSamplr: {steps: 1}\n",
            6,
            "no node 'KSamplr' in the workflow; did you mean 'KSampler'",
        ),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n      3:\n        stesp: 1\n",
            7,
            "has no input 'stesp'; did you mean 'steps'?",
        ),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n      CLIPTextEncode: {text: z}\n",
            6,
            "matches 2 nodes of that class: 6 ('Positive'), 7 ('Negative')",
        ),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n      3: {model: x}\n",
            6,
            "linked to node 4",
        ),
        (
            "workflow: wf.json\ncases:\n  - id: a\n",
            3,
            "leaves input 'seed' of node 3 (KSampler) unpinned",
        ),
        (
            "workflow: wf.json\nseed: twelve\ncases:\n  - id: a\n",
            2,
            "seed: expected a non-negative integer",
        ),
        ("workflow: nope.json\nseed: 1\ncases:\n  - id: a\n", 1, "workflow not found"),
        ("seed: 1\ncases:\n  - id: a\n", 3, "names no workflow"),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n  - id: a\n",
            5,
            "duplicate case id 'a' (first at line 4)",
        ),
        ("workflow: wf.json\nseed: 1\ncases:\n  - id: ../x\n", 4, "case id must be"),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    tolerance: {phash: -1}\n",
            5,
            "tolerance.phash",
        ),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    tolerance: cpu\n",
            5,
            "tolerance: expected a profile (gpu), an integer (pHash bits) or a mapping, got 'cpu'",
        ),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    tolerance: {max_diff_ratio: 2}\n",
            5,
            "tolerance.max_diff_ratio: expected a fraction from 0 to 1 or null, got 2",
        ),
        (
            "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    tolerance: {psnr: 1}\n",
            5,
            "unknown tolerance key 'psnr'",
        ),
        ("workflow: wf.json\nseed: 1\ncases: []\n", 3, "'cases' must be a non-empty list"),
        ("- just\n- a list\n", 1, "expected a mapping"),
        ("workflow: wf.json\nworkflow: wf.json\n", 2, "duplicate key 'workflow'"),
    ],
)
def test_mistakes_point_at_file_and_line(
    case_dir: Path, text: str, line: int, message: str
) -> None:
    path = write(case_dir, text)
    error = error_of(path)
    assert error.line == line, str(error)
    assert str(error).startswith(f"{path}:{line}: ")
    assert message in str(error)


def test_unknown_case_key_suggests_the_nearest(case_dir: Path) -> None:
    path = write(case_dir, "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    tolerence: 3\n")
    assert "unknown case key 'tolerence'; did you mean 'tolerance'?" in str(error_of(path))


def test_bad_workflow_json_points_at_its_line(case_dir: Path) -> None:
    (case_dir / "broken.json").write_text('{\n  "1": {"class_type": "X",\n  "inputs": {}\n')
    path = write(case_dir, "workflow: broken.json\ncases:\n  - id: a\n")
    with pytest.raises(WorkflowError) as excinfo:
        load_cases(path)
    assert excinfo.value.line == 4
    assert str(excinfo.value).startswith(f"{case_dir / 'broken.json'}:4: invalid JSON")


def test_ui_format_workflow_is_kept_for_conversion_at_run_time(case_dir: Path) -> None:
    ui = {"nodes": [], "links": [], "version": 0.4}
    (case_dir / "ui.json").write_text(json.dumps(ui))
    path = write(case_dir, "workflow: ui.json\nseed: 3\ncases:\n  - id: a\n")
    (case,) = load_cases(path)
    assert case.is_ui
    assert case.workflow == ui
    assert case.recipe.seed == 3


def test_upload_value_must_name_an_existing_file(case_dir: Path) -> None:
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n"
        "      4: {ckpt_name: {file: missing.png}}\n",
    )
    assert "file to upload not found" in str(error_of(path))
    from PIL import Image

    Image.new("RGB", (4, 4)).save(case_dir / "there.png")
    path.write_text(path.read_text().replace("missing.png", "there.png"))
    (case,) = load_cases(path)
    (upload,) = case.recipe.apply(case.workflow).uploads
    assert upload.node_id == "4"
    assert upload.path == case_dir / "there.png"


def names(cases: list) -> list[str]:  # type: ignore[type-arg]
    return [case.name for case in cases]


def test_matrix_expands_in_document_order_last_axis_fastest(case_dir: Path) -> None:
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n  - id: t\n"
        "    matrix: {steps: [10, 20], cfg: [3.0, 7.0]}\n",
    )
    cases = load_cases(path)
    assert names(cases) == [
        "t[steps=10-cfg=3.0]",
        "t[steps=10-cfg=7.0]",
        "t[steps=20-cfg=3.0]",
        "t[steps=20-cfg=7.0]",
    ]
    last = cases[-1]
    assert last.folder == "t/steps=20-cfg=7.0"
    assert last.values == {"steps": 20, "cfg": 7.0}
    assert (last.prompt["3"]["inputs"]["steps"], last.prompt["3"]["inputs"]["cfg"]) == (20, 7.0)


def test_zip_pairs_values_and_crosses_with_matrix(case_dir: Path) -> None:
    path = write(
        case_dir,
        "workflow: wf.json\ncases:\n  - id: t\n"
        "    matrix: {sampler: [euler, ddim]}\n"
        "    zip: {prompt: [a fox, a cat], seed: [1, 2]}\n",
    )
    cases = load_cases(path)
    assert names(cases) == [
        "t[sampler=euler-prompt=a_fox-seed=1]",
        "t[sampler=euler-prompt=a_cat-seed=2]",
        "t[sampler=ddim-prompt=a_fox-seed=1]",
        "t[sampler=ddim-prompt=a_cat-seed=2]",
    ]
    cat = cases[1]
    assert cat.seed == 2
    assert cat.prompt["3"]["inputs"]["seed"] == 2, "a swept seed pins the seed inputs"
    assert cat.prompt["6"]["inputs"]["text"] == "a cat", "prompt follows KSampler.positive"
    assert cat.prompt["7"]["inputs"]["text"] == "y", "the negative prompt is untouched"


def test_axes_by_target_alias_and_size(case_dir: Path) -> None:
    workflow = dict(WORKFLOW)
    workflow["5"] = {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1},
    }
    (case_dir / "wf.json").write_text(json.dumps(workflow))
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\naliases: {loader: CheckpointLoaderSimple.ckpt_name}\n"
        "cases:\n  - id: t\n    matrix:\n      size: [64x96, [128, 32]]\n"
        "      Negative.text: [bad]\n      loader: [b.safetensors]\n",
    )
    first, second = load_cases(path)
    assert first.name == "t[size=64x96-Negative.text=bad-loader=b.safetensors]"
    assert first.prompt["5"]["inputs"] == {"width": 64, "height": 96, "batch_size": 1}
    assert second.prompt["5"]["inputs"]["width"] == 128
    assert first.prompt["7"]["inputs"]["text"] == "bad"
    assert first.prompt["4"]["inputs"]["ckpt_name"] == "b.safetensors"


@pytest.mark.parametrize(
    ("sweep", "line", "message"),
    [
        ("matrix: {text: [a]}", 5, "text: 2 nodes have text: 6 ('Positive'), 7 ('Negative')"),
        ("matrix: {stpes: [1]}", 5, "no node has an input 'stpes'; did you mean 'steps'"),
        ("matrix: {steps: 3}", 5, "matrix.steps: expected a non-empty list"),
        ("zip: {steps: [1, 2], cfg: [1.0]}", 5, "zip: the lists must have the same length"),
        ("matrix: {size: [wide]}", 5, "size: expected 'WIDTHxHEIGHT'"),
        ("matrix: {KSampler.stesp: [1]}", 5, "has no input 'stesp'; did you mean 'steps'?"),
    ],
)
def test_sweep_mistakes_point_at_the_axis(
    case_dir: Path, sweep: str, line: int, message: str
) -> None:
    path = write(case_dir, f"workflow: wf.json\nseed: 1\ncases:\n  - id: t\n    {sweep}\n")
    error = error_of(path)
    assert error.line == line, str(error)
    assert message in str(error)


def test_defaults_files_merge_down_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "cases"
    sub = root / "portraits"
    sub.mkdir(parents=True)
    (root / "wf.json").write_text(json.dumps(WORKFLOW))
    (root / "_defaults.yaml").write_text(
        "workflow: wf.json\nseed: 3\ntolerance: {phash: 4, max_pixel_diff: 9}\n"
        "inputs: {KSampler: {steps: 8}}\nmarks: [slow]\n"
    )
    (sub / "_defaults.yaml").write_text("tolerance: {phash: 1}\ninputs: {KSampler: {cfg: 2.5}}\n")
    path = sub / "c.yaml"
    path.write_text("cases:\n  - id: a\n    inputs: {KSampler: {cfg: 6.0}}\n  - id: b\n")
    first, second = load_cases(path, root)
    assert first.workflow_path == root / "wf.json", "paths resolve against the file naming them"
    assert first.seed == 3
    assert first.prompt["3"]["inputs"]["steps"] == 8
    assert first.prompt["3"]["inputs"]["cfg"] == 6.0
    assert second.prompt["3"]["inputs"]["cfg"] == 2.5
    assert first.tolerance.phash == 1
    assert first.tolerance.max_pixel_diff == 9
    assert [m.name for m in first.marks] == ["slow"]
    (sub / "_defaults.yaml").write_text("stepz: 1\n")
    error = error_of_root(path, root)
    assert str(error).startswith(f"{sub / '_defaults.yaml'}:1: unknown defaults key 'stepz'")


def error_of_root(path: Path, root: Path) -> CaseError:
    with pytest.raises(CaseError) as excinfo:
        load_cases(path, root)
    return excinfo.value


def test_extends_starts_from_another_case(case_dir: Path) -> None:
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n"
        "  - id: base\n    inputs: {KSampler: {steps: 4, cfg: 2.0}}\n"
        "  - id: child\n    extends: base\n    inputs: {KSampler: {cfg: 9.0}}\n"
        "    matrix: {seed: [5, 6]}\n",
    )
    base, *cells = load_cases(path)
    assert names(cells) == ["child[seed=5]", "child[seed=6]"]
    assert cells[0].prompt["3"]["inputs"] == {
        **WORKFLOW["3"]["inputs"],
        "seed": 5,
        "steps": 4,
        "cfg": 9.0,
    }
    assert base.prompt["3"]["inputs"]["cfg"] == 2.0


def test_extends_errors(case_dir: Path) -> None:
    path = write(
        case_dir, "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    extends: bb\n  - id: b\n"
    )
    assert "extends: no case 'bb' in this file; did you mean 'b'?" in str(error_of(path))
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    extends: b\n  - id: b\n    extends: a\n",
    )
    error = error_of(path)
    assert "extends: cycle" in str(error)


def test_marks_on_cases_and_cells(case_dir: Path) -> None:
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n  - id: t\n    matrix: {steps: [5, 50]}\n"
        "    marks:\n      - gpu\n      - skip: {reason: too slow on CPU, when: {steps: 50}}\n"
        "      - xfail: known bug\n",
    )
    small, big = load_cases(path)
    assert [(m.name, dict(m.kwargs)) for m in small.marks] == [
        ("gpu", {}),
        ("xfail", {"reason": "known bug"}),
    ]
    assert [(m.name, dict(m.kwargs)) for m in big.marks] == [
        ("gpu", {}),
        ("skip", {"reason": "too slow on CPU"}),
        ("xfail", {"reason": "known bug"}),
    ]
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n  - id: t\n    marks:\n"
        "      - skip: {when: {cfg: 1}}\n",
    )
    assert "skip.when: 'cfg' is not a swept axis" in str(error_of(path))


def test_tolerance_keys_and_per_output_overrides(case_dir: Path) -> None:
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ntolerance: {phash: null, dhash: 3, min_psnr: 40.5}\n"
        "cases:\n  - id: a\n    tolerance:\n      outputs:\n        '9-0': {max_pixel_diff: 4}\n",
    )
    (case,) = load_cases(path)
    assert case.tolerance.phash is None
    assert case.tolerance.dhash == 3
    assert case.tolerance.for_output("9-0").max_pixel_diff == 4
    assert case.tolerance.for_output("9-0").min_psnr == 40.5
    path.write_text(path.read_text().replace("max_pixel_diff: 4", "max_pixel_dif: 4"))
    error = error_of(path)
    assert error.line == 8
    assert "unknown tolerance key 'max_pixel_dif'; did you mean 'max_pixel_diff'?" in str(error)


def test_paths_outside_the_project_are_refused_unless_allowed(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "cases").mkdir(parents=True)
    (tmp_path / "wf.json").write_text(json.dumps(WORKFLOW))
    (tmp_path / "secret.png").write_bytes(b"x")
    path = project / "cases" / "c.yaml"
    path.write_text("workflow: ../../wf.json\nseed: 1\ncases:\n  - id: a\n")
    with pytest.raises(CaseError) as excinfo:
        load_cases(path, within=project)
    assert excinfo.value.line == 1
    assert f"workflow {tmp_path / 'wf.json'} is outside the project {project}" in str(excinfo.value)
    assert load_cases(path)[0].workflow_path == tmp_path / "wf.json", "allowed without a bound"

    (project / "wf.json").write_text(json.dumps(WORKFLOW))
    path.write_text(
        "workflow: ../wf.json\nseed: 1\ncases:\n  - id: a\n"
        "    inputs: {4: {ckpt_name: {file: ../../secret.png}}}\n"
    )
    with pytest.raises(CaseError, match=r"ckpt_name: file .*secret\.png is outside the project"):
        load_cases(path, within=project)


def test_the_default_the_gpu_profile_and_a_bare_phash(case_dir: Path) -> None:
    """No tolerance: pixels within 1 level in all but 0.1 % of values, no hash. ``gpu``: pHash
    within 2 bits and no pixel limit; an integer is that profile with its own bits."""
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n  - id: plain\n"
        "  - id: gpu\n    tolerance: gpu\n"
        "  - id: bits\n    tolerance: 5\n"
        "  - id: gpu-looser\n    tolerance: gpu\n  - id: mixed\n    extends: gpu-looser\n"
        "    tolerance: {phash: 6, max_diff_ratio: 0.01}\n",
    )
    plain, gpu, bits, _, mixed = load_cases(path)
    assert (plain.tolerance.pixel_threshold, plain.tolerance.max_diff_ratio) == (1, 0.001)
    assert plain.tolerance.hashes() == {}
    assert (gpu.tolerance.phash, gpu.tolerance.max_diff_ratio) == (2, None)
    assert (bits.tolerance.phash, bits.tolerance.max_diff_ratio) == (5, None)
    assert (mixed.tolerance.phash, mixed.tolerance.max_diff_ratio) == (6, 0.01)


def test_a_truncated_upload_image_points_at_the_input(case_dir: Path) -> None:
    from PIL import Image

    whole = case_dir / "in.png"
    Image.new("RGB", (16, 16), (9, 99, 199)).save(whole)
    (case_dir / "cut.png").write_bytes(whole.read_bytes()[:60])
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n"
        "      4: {ckpt_name: {file: cut.png}}\n",
    )
    error = error_of(path)
    assert error.line == 6
    assert "file to upload is not a readable image" in str(error)
    assert str(case_dir / "cut.png") in str(error)
