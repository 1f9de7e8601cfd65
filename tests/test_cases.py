"""Case files: what a user writes, and the file:line errors a mistake gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfytest.cases import load_cases
from comfytest.errors import CaseError, WorkflowError

WORKFLOW = {
    "3": {
        "class_type": "KSampler",
        "inputs": {"seed": 0, "steps": 20, "cfg": 8.0, "model": ["4", 0]},
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
    assert first.id == "a"
    assert first.line == 4
    assert first.prompt["3"]["inputs"] == {"seed": 5, "steps": 4, "cfg": 8.0, "model": ["4", 0]}
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
        ("seed: 1\ncases:\n  - id: a\n  - id: a\n", 3, "names no workflow"),
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


def test_ui_format_workflow_is_refused_with_advice(case_dir: Path) -> None:
    (case_dir / "ui.json").write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    path = write(case_dir, "workflow: ui.json\ncases:\n  - id: a\n")
    with pytest.raises(WorkflowError, match=r"UI-format workflow.*Export \(API\)"):
        load_cases(path)


def test_upload_value_must_name_an_existing_file(case_dir: Path) -> None:
    path = write(
        case_dir,
        "workflow: wf.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n"
        "      4: {ckpt_name: {file: missing.png}}\n",
    )
    assert "file to upload not found" in str(error_of(path))
    (case_dir / "there.png").write_bytes(b"x")
    path.write_text(path.read_text().replace("missing.png", "there.png"))
    (case,) = load_cases(path)
    assert case.uploads[0].node_id == "4"
    assert case.uploads[0].path == case_dir / "there.png"
