"""Stand-in models and the CI profile: a user's SDXL workflow, as saved, on a CPU-only CI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from comfytest.cases.loader import load_cases
from comfytest.errors import CaseError
from comfytest.runtime import Runtime
from comfytest.runtime.standins import ensure, stand_in_root

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = ("sdxl_simple_example", "sdxl_refiner_prompt_example", "sdxlturbo_example")
TEMPLATES_VERSION = "0.7.25"  # the version cases/workflows/templates/ was copied from

WORKFLOW = {
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 1216, "height": 832, "batch_size": 1},
    },
    "8": {"class_type": "VAELoader", "inputs": {"vae_name": "sdxl_vae.safetensors"}},
    "9": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "styles/add_detail.safetensors",
            "model": ["4", 0],
            "clip": ["4", 1],
        },
    },
    "10": {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "noise_seed": 1,
            "steps": 30,
            "start_at_step": 0,
            "end_at_step": 24,
            "model": ["9", 0],
        },
    },
    "11": {
        "class_type": "CLIPTextEncodeSDXL",
        "inputs": {"width": 4096, "height": 4096, "text_g": "sd_xl_base_1.0.safetensors"},
    },
    "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
}


def write_case(tmp_path: Path, body: str) -> Path:
    (tmp_path / "wf.json").write_text(json.dumps(WORKFLOW, indent=2))
    path = tmp_path / "c.yaml"
    path.write_text("workflow: wf.json\nseed: 3\n" + body)
    return path


def test_stand_in_and_ci_are_overrides_and_the_workflow_stays_as_saved(tmp_path: Path) -> None:
    path = write_case(
        tmp_path,
        "stand_in: {sd_xl_base_1.0.safetensors: sd15, '*.safetensors': sdxl}\n"
        "ci: {max_side: 64, max_steps: 4}\n"
        "cases:\n  - id: a\n    stand_in: {sd_xl_base_1.0.safetensors: sdxl}\n"
        "    inputs: {12: {unet_name: kept.gguf}}\n",
    )
    (case,) = load_cases(path)
    applied = case.recipe.apply(case.workflow)
    prompt = applied.prompt
    assert prompt["4"]["inputs"]["ckpt_name"] == "comfytest-sdxl-tiny.safetensors"  # last wins
    assert prompt["8"]["inputs"]["vae_name"] == "comfytest-sdxl-vae.safetensors"
    assert prompt["9"]["inputs"]["lora_name"] == "comfytest-sdxl-lora.safetensors"
    assert (prompt["5"]["inputs"]["width"], prompt["5"]["inputs"]["height"]) == (64, 40)
    assert prompt["10"]["inputs"] | {"model": None} == {
        "noise_seed": 3,  # the case's seed
        "steps": 4,
        "start_at_step": 0,
        "end_at_step": 3,  # 24 of 30 is 3 of 4, rounded down
        "model": None,
    }
    # Conditioning sizes and a prompt text that happens to name a model stay as written.
    assert prompt["11"]["inputs"] == WORKFLOW["11"]["inputs"]
    assert applied.stand_ins == {
        "4": {"ckpt_name": "sd_xl_base_1.0.safetensors -> comfytest-sdxl-tiny.safetensors"},
        "8": {"vae_name": "sdxl_vae.safetensors -> comfytest-sdxl-vae.safetensors"},
        "9": {"lora_name": "styles/add_detail.safetensors -> comfytest-sdxl-lora.safetensors"},
    }
    assert applied.capped == {
        "5": {"width": "1216 -> 64", "height": "832 -> 40"},
        "10": {"steps": "30 -> 4", "end_at_step": "24 -> 3"},
    }
    assert applied.overrides["4"] == {"ckpt_name": "comfytest-sdxl-tiny.safetensors"}
    assert case.workflow == WORKFLOW  # the workflow as loaded is not touched


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "stand_in: {sd_xl_base_1.0.safetensors: sdx}\ncases: [{id: a}]\n",
            3,
            "stand_in.sd_xl_base_1.0.safetensors: unknown family 'sdx'; did you mean 'sdxl'?",
        ),
        (
            "stand_in: [sdxl]\ncases: [{id: a}]\n",
            3,
            "stand_in: expected a mapping of model file name -> family",
        ),
        (
            "cases:\n  - id: a\n    ci: {max_size: 64}\n",
            5,
            "unknown ci key 'max_size'; did you mean 'max_side'?",
        ),
        (
            "cases:\n  - id: a\n    ci: {max_steps: 0}\n",
            5,
            "ci.max_steps: expected an integer >= 1, got 0",
        ),
        (
            "stand_in:\n  sd_xl_base_1.0.safetensors: sdxl\n  flux1-dev.safetensors: sdxl\n"
            "cases: [{id: a}]\n",
            5,
            "stand_in: no stand-in for this loader: UNETLoader.unet_name of node 12 (UNETLoader) "
            "names 'flux1-dev.safetensors'; stand-ins exist for ckpt_name, vae_name, lora_name",
        ),
    ],
)
def test_mistakes_are_errors_at_their_line(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    path = write_case(tmp_path, body)
    with pytest.raises(CaseError) as excinfo:
        load_cases(path)
    assert str(excinfo.value).startswith(f"{path}:{line}: {message}"), str(excinfo.value)
    assert len(str(excinfo.value).splitlines()) == 1


DETECT = """
import sys
sys.path.insert(0, sys.argv[1])
import comfy.cli_args
comfy.cli_args.args.cpu = True
import torch, comfy.model_detection
from safetensors import safe_open
for path in sys.argv[2:]:
    with safe_open(path, "pt") as f:
        sd = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}
    config = comfy.model_detection.model_config_from_unet(sd, "model.diffusion_model.")
    print(path.rsplit("/", 1)[-1], type(config).__name__)
"""


def test_stand_ins_are_detected_as_their_family_and_deterministic(
    runtime: Runtime, tmp_path: Path
) -> None:
    folders = ensure(runtime, ["sd2", "sdxl"], log=lambda message: None)
    root = stand_in_root(runtime)
    assert folders == {
        kind: [str(root / kind)] for kind in ("checkpoints", "loras", "vae")
    }  # the runtime's models/ keeps only what install wrote
    assert not (
        runtime.comfyui_dir / "models" / "checkpoints" / "comfytest-sdxl-tiny.safetensors"
    ).exists()
    checkpoints = [
        root / "checkpoints" / f"comfytest-{f}-tiny.safetensors" for f in ("sd2", "sdxl")
    ]
    detected = subprocess.run(
        [str(runtime.python), "-c", DETECT, str(runtime.comfyui_dir), *map(str, checkpoints)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert [line for line in detected if line.startswith("comfytest-")] == [
        "comfytest-sd2-tiny.safetensors SD20",
        "comfytest-sdxl-tiny.safetensors SDXL",
    ]
    # The same seed writes the same bytes (the small kinds, and SD2's checkpoint again).
    again = tmp_path / "again"
    ensure(runtime, ["sd2"], models=again, log=lambda message: None)
    for rel in (
        "vae/comfytest-sd2-vae.safetensors",
        "loras/comfytest-sd2-lora.safetensors",
        "checkpoints/comfytest-sd2-tiny.safetensors",
    ):
        assert (again / rel).read_bytes() == (root / rel).read_bytes(), rel


def test_three_sdxl_templates_run_with_stand_ins_against_their_baselines(
    pytester: pytest.Pytester, project: Path, runtime: Runtime
) -> None:
    """cases/sdxl_templates.yaml as the repository has it: the templates as the package
    ships them, their baselines, a fresh managed server given the stand-ins."""
    for template in TEMPLATES:
        copy = REPO / "cases" / "workflows" / "templates" / f"{template}.json"
        shipped = installed_template(template)
        if shipped is not None:
            assert copy.read_bytes() == shipped.read_bytes(), f"{template} is not as shipped"
    shutil.copy(REPO / "cases" / "sdxl_templates.yaml", project / "cases")
    shutil.copytree(REPO / "baselines" / "sdxl_templates", project / "baselines" / "sdxl_templates")
    home = runtime.root.parent.parent
    result = pytester.runpytest("--comfy-launch", f"--comfy-home={home}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "not full runs: 3 case(s) ran with stand-in models or capped sizes and steps *",
            "  cases/sdxl_templates.yaml::sdxl-simple: stand-in 12.ckpt_name "
            "sd_xl_refiner_1.0.safetensors -> comfytest-sdxl-tiny.safetensors; stand-in "
            "4.ckpt_name sd_xl_base_1.0.safetensors -> comfytest-sdxl-tiny.safetensors; capped "
            "10.steps 25 -> 2; capped 10.end_at_step 20 -> 1; capped 11.steps 25 -> 2; capped "
            "11.start_at_step 20 -> 1; capped 11.end_at_step 10000 -> 2; capped 5.width 1024 -> "
            "64; capped 5.height 1024 -> 64",
            "outputs: 3 passed",
        ]
    )
    run = json.loads((project / ".comfytest" / "results" / "run.json").read_text())
    turbo = next(c for c in run["cases"] if c["id"].endswith("::sdxl-turbo"))
    assert turbo["stand_ins"] == {
        "20": {"ckpt_name": "sd_xl_turbo_1.0_fp16.safetensors -> comfytest-sdxl-tiny.safetensors"}
    }
    assert turbo["capped"] == {"5": {"width": "512 -> 64", "height": "512 -> 64"}}


def installed_template(template: str) -> Path | None:
    """The installed package's file, when its version is the one the copies came from."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        if version("comfyui-workflow-templates") != TEMPLATES_VERSION:
            return None
        from comfyui_workflow_templates_core import get_asset_path  # type: ignore[import-untyped]
    except (PackageNotFoundError, ImportError):
        return None
    return Path(get_asset_path(template, f"{template}.json"))


def test_lora_and_vae_loaders_run_with_their_stand_ins(
    pytester: pytest.Pytester, project: Path, runtime: Runtime
) -> None:
    """An SD1.5 workflow as a user has it (their checkpoint, a LoRA, a separate VAE, 512x512,
    20 steps) runs on a managed server with SD1.5 stand-ins, and again to the same pixels."""
    flow = json.loads((REPO / "cases" / "workflows" / "txt2img.json").read_text())
    flow["4"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly.safetensors"
    flow["5"]["inputs"].update(width=512, height=512)
    flow["3"]["inputs"]["steps"] = 20
    flow["20"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "add_detail.safetensors",
            "strength_model": 1.0,
            "strength_clip": 1.0,
            "model": ["4", 0],
            "clip": ["4", 1],
        },
    }
    flow["21"] = {"class_type": "VAELoader", "inputs": {"vae_name": "vae-ft-mse.safetensors"}}
    flow["3"]["inputs"]["model"] = ["20", 0]
    flow["6"]["inputs"]["clip"] = flow["7"]["inputs"]["clip"] = ["20", 1]
    flow["8"]["inputs"]["vae"] = ["21", 0]
    (project / "cases" / "workflows" / "users.json").write_text(json.dumps(flow))
    (project / "cases" / "u.yaml").write_text(
        "workflow: workflows/users.json\nseed: 1\nstand_in: {'*.safetensors': sd15}\n"
        "ci: {max_side: 64, max_steps: 3}\ncases: [{id: mine}]\n"
    )
    home = runtime.root.parent.parent
    args = ["--comfy-launch", f"--comfy-home={home}", "-p", "no:cacheprovider"]
    created = pytester.runpytest(*args, "--comfy-update=missing")
    created.assert_outcomes(passed=1)
    created.stdout.fnmatch_lines(
        [
            "  cases/u.yaml::mine: stand-in 20.lora_name add_detail.safetensors -> "
            "comfytest-sd15-lora.safetensors; stand-in 21.vae_name vae-ft-mse.safetensors -> "
            "comfytest-sd15-vae.safetensors; stand-in 4.ckpt_name v1-5-pruned-emaonly."
            "safetensors -> comfytest-sd15-tiny.safetensors; capped 3.steps 20 -> 3; capped "
            "5.width 512 -> 64; capped 5.height 512 -> 64",
            "outputs: 1 created",
        ]
    )
    manifest = json.loads((project / "baselines" / "u" / "mine" / "manifest.json").read_text())
    models = manifest["environment"]["models"]
    assert "comfytest-sd15-lora.safetensors" in models["loras"]
    assert "comfytest-sd15-vae.safetensors" in models["vae"]
    again = pytester.runpytest(*args)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["outputs: 1 passed"])
