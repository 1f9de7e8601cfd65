"""Preflight: every kind of broken workflow caught from /object_info, before anything runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfytest.comfy.client import ComfyClient
from comfytest.runtime import ManagedServer
from comfytest.workflow.preflight import check
from comfytest.workflow.prompt import seed_inputs

REPO = Path(__file__).resolve().parent.parent
TXT2IMG: dict[str, Any] = json.loads((REPO / "cases/workflows/txt2img.json").read_text())


@pytest.fixture(scope="module")
def object_info(comfy: ManagedServer) -> dict[str, Any]:
    with ComfyClient(comfy.url) as client:
        return client.object_info()


def problems_of(prompt: dict[str, Any], info: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p.node_id, p.kind, p.describe()) for p in check(prompt, info)]


def test_the_example_workflow_is_clean(object_info: dict[str, Any]) -> None:
    assert check(TXT2IMG, object_info) == []


def test_each_kind_of_problem_is_named_by_node_and_input(object_info: dict[str, Any]) -> None:
    prompt = copy.deepcopy(TXT2IMG)
    prompt["3"]["inputs"].update(sampler_name="eulr", steps=0, cfg="high")
    del prompt["3"]["inputs"]["negative"]
    prompt["4"]["inputs"]["ckpt_name"] = "sdxl_base.safetensors"
    prompt["8"]["inputs"]["vae"] = ["4", 0]
    prompt["9"]["inputs"]["images"] = ["12", 0]
    prompt["10"] = {"class_type": "ZzzUpscaler", "inputs": {}, "_meta": {"title": "Upscale"}}
    found = problems_of(prompt, object_info)
    assert found == [
        ("3", "out_of_range", "node 3 (KSampler): steps 0 is below the minimum 1"),
        ("3", "out_of_range", "node 3 (KSampler): cfg must be a number, got 'high'"),
        (
            "3",
            "invalid_value",
            "node 3 (KSampler): sampler_name 'eulr' is not one of ['euler', 'euler_cfg_pp', "
            "'euler_ancestral', 'euler_ancestral_cfg_pp', 'heun', 'heunpp2', 'dpm_2', "
            "'dpm_2_ancestral', ...]; did you mean 'euler'?",
        ),
        (
            "3",
            "missing_input",
            "node 3 (KSampler): required input 'negative' (CONDITIONING) is not set and not linked",
        ),
        (
            "4",
            "missing_model",
            "node 4 (CheckpointLoaderSimple 'Load Checkpoint'): ckpt_name 'sdxl_base.safetensors' "
            "is not on this server (1 files: ['comfytest-sd15-tiny.safetensors'])",
        ),
        (
            "8",
            "bad_link",
            "node 8 (VAEDecode 'VAE Decode'): input 'vae': expects VAE but node 4 "
            "(Load Checkpoint) output 0 gives MODEL",
        ),
        (
            "9",
            "bad_link",
            "node 9 (SaveImage 'Save Image'): input 'images': links to node 12, which is not in "
            "the workflow",
        ),
        (
            "10",
            "missing_node",
            "node 10 (ZzzUpscaler 'Upscale'): node class 'ZzzUpscaler' is not installed on "
            "this server (a custom node pack missing?)",
        ),
    ]


def test_unknown_class_suggests_the_nearest_installed(object_info: dict[str, Any]) -> None:
    prompt = copy.deepcopy(TXT2IMG)
    prompt["3"]["class_type"] = "KSamplr"
    (problem,) = check(prompt, object_info)
    assert "; did you mean 'KSampler'" in problem.message


def test_seed_inputs_come_from_control_after_generate(object_info: dict[str, Any]) -> None:
    prompt = {
        "1": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 2}},
        "2": {"class_type": "RandomNoise", "inputs": {"noise_seed": 3}},
        "3": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": ["9", 0]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 8}},
    }
    assert seed_inputs(prompt, object_info) == [("1", "seed"), ("2", "noise_seed")]
    fake = {"Sampler": {"input": {"required": {"salt": ["INT", {"control_after_generate": True}]}}}}
    assert seed_inputs({"7": {"class_type": "Sampler", "inputs": {"salt": 5}}}, fake) == [
        ("7", "salt")
    ]
    # Without the server's definitions (at collection), seeds are found by name only.
    assert seed_inputs(prompt) == [("1", "seed"), ("2", "noise_seed")]
    assert seed_inputs({"7": {"class_type": "Sampler", "inputs": {"salt": 5}}}) == []


def test_preflight_failure_in_a_run_queues_nothing(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: broken\n    inputs:\n"
        "      KSampler: {sampler_name: eulr}\n"
        "      Load Checkpoint: {ckpt_name: missing.safetensors}\n"
    )
    with ComfyClient(comfy.url) as client:
        history_before = len(client.history())
    junit = project / "junit.xml"
    result = pytester.runpytest(
        "--comfy-url", comfy.url, "-p", "no:cacheprovider", f"--junitxml={junit}"
    )
    # A broken workflow is an error, not a regression: in pytest's outcome, JUnit, the
    # summary and run.json; its one-line summary names the node and the reason.
    result.assert_outcomes(errors=1)
    assert "<error " in junit.read_text()
    assert "<failure " not in junit.read_text()
    result.stdout.fnmatch_lines(["not passed: 1 broken workflow (error)"])
    result.stdout.re_match_lines([r"ERROR cases/t.yaml::broken - preflight: node 3 \(KSampler\)"])
    (case,) = json.loads((project / ".comfytest/results/run.json").read_text())["cases"]
    assert (case["outcome"], case["kind"]) == ("error", "broken")
    result.stdout.fnmatch_lines(
        [
            "preflight: node 3 (KSampler): sampler_name 'eulr' * (and 1 more)",
            f"  the workflow cannot run on {comfy.url} (invalid value, missing model):",
            "  node 3 (KSampler): sampler_name 'eulr' is not one of *; did you mean 'euler'?",
            "  node 4 (CheckpointLoaderSimple 'Load Checkpoint'): ckpt_name "
            "'missing.safetensors' is not on this server *",
        ]
    )
    with ComfyClient(comfy.url) as client:
        assert len(client.history()) == history_before, "nothing was queued"


def test_unpinned_control_after_generate_seed_is_refused(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    # PrimitiveInt.value carries control_after_generate: the UI would randomise it.
    workflow = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 8}, "_meta": {"title": "Width"}},
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": ["1", 0], "height": 8, "batch_size": 1, "color": 0},
        },
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "s", "images": ["2", 0]}},
    }
    (project / "cases/workflows/prim.json").write_text(json.dumps(workflow))
    cases = project / "cases/p.yaml"
    cases.write_text("workflow: workflows/prim.json\ncases:\n  - id: p\n")
    refused = pytester.runpytest("--comfy-url", comfy.url, "-p", "no:cacheprovider")
    refused.assert_outcomes(errors=1)
    # The one message for an unpinned seed, at the case's line, found at collection or,
    # as here, only with the server's node definitions.
    refused.stdout.fnmatch_lines(
        [
            "*p.yaml:3: case 'p' leaves input 'value' of node 1 (Width) unpinned, and the UI "
            "would randomise it (control_after_generate)*",
        ]
    )
    cases.write_text(
        "workflow: workflows/prim.json\ncases:\n  - id: p\n    inputs: {Width: {value: 16}}\n"
    )
    pinned = pytester.runpytest(
        "--comfy-url", comfy.url, "-p", "no:cacheprovider", "--comfy-update=missing"
    )
    pinned.assert_outcomes(passed=1)
