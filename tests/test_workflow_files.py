"""Workflow files as people share them: JSON in several encodings, and the PNG and WebP
images ComfyUI saves with its graph inside (made here in code, and saved by the real server)."""

from __future__ import annotations

import codecs
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, PngImagePlugin

from comfytest.cases.loader import load_cases
from comfytest.cli import main
from comfytest.errors import CaseError, WorkflowError
from comfytest.runtime import ManagedServer
from comfytest.workflow.files import load_workflow

REPO = Path(__file__).resolve().parent.parent
PROMPT: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                  "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}  # fmt: skip
UI: dict[str, Any] = json.loads((REPO / "cases" / "workflows" / "txt2img_ui.json").read_text())


def png(path: Path, **chunks: str) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (4, 4), "gray").save(path, "PNG", pnginfo=info)
    return path


def webp(path: Path, **tags: str) -> Path:
    """As SaveAnimatedWEBP writes it: EXIF 0x0110 = prompt, 0x010F = workflow."""
    image = Image.new("RGB", (4, 4), "gray")
    exif = image.getexif()
    if "prompt" in tags:
        exif[0x0110] = f"prompt:{tags['prompt']}"
    if "workflow" in tags:
        exif[0x010F] = f"workflow:{tags['workflow']}"
    frames = [Image.new("RGB", (4, 4), "white")]
    image.save(path, "WEBP", exif=exif, save_all=True, append_images=frames, duration=100)
    return path


def failure(path: Path, source: str | None = None) -> WorkflowError:
    with pytest.raises(WorkflowError) as excinfo:
        load_workflow(path, source)
    return excinfo.value


# -- encodings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
        lambda text: text.encode("utf-16"),  # little-endian, with its BOM
        lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom"],
)
def test_json_is_read_in_utf8_with_or_without_bom_and_in_utf16(encode: Any, tmp_path: Path) -> None:
    prompt = json.loads(json.dumps(PROMPT))
    prompt["2"]["inputs"]["filename_prefix"] = "größe ✓"
    path = tmp_path / "wf.json"
    path.write_bytes(encode(json.dumps(prompt, ensure_ascii=False, indent=1)))
    assert load_workflow(path) == prompt


@pytest.mark.parametrize(
    ("raw", "message", "line"),
    [
        (json.dumps(PROMPT).encode("utf-32"), "UTF-32 text is not read", None),
        (json.dumps(PROMPT).encode("utf-16-le"), "it has NUL bytes, as UTF-16", None),
        ('{\n"1": "caf\u00e9"}'.encode("latin-1"), "not UTF-8 text: byte 0xe9 (offset 11)", 2),
    ],
    ids=["utf-32", "utf-16-without-bom", "latin-1"],
)
def test_other_encodings_are_errors_that_say_what_to_do(
    raw: bytes, message: str, line: int | None, tmp_path: Path
) -> None:
    path = tmp_path / "wf.json"
    path.write_bytes(raw)
    error = failure(path)
    assert message in error.message
    assert "save the file as UTF-8" in error.message
    assert error.line == line


# -- images -------------------------------------------------------------------------------------


def test_a_png_gives_its_prompt_by_default_and_its_ui_workflow_on_request(tmp_path: Path) -> None:
    path = png(tmp_path / "both.png", prompt=json.dumps(PROMPT), workflow=json.dumps(UI))
    assert load_workflow(path) == PROMPT
    assert load_workflow(path, "prompt") == PROMPT
    assert load_workflow(path, "workflow") == UI
    only_ui = png(tmp_path / "ui.png", workflow=json.dumps(UI))
    assert load_workflow(only_ui) == UI  # no prompt: the UI graph
    assert "has no 'prompt' graph in its text chunks, only 'workflow'" in str(
        failure(only_ui, "prompt")
    )


def test_a_webp_reads_the_exif_tags_comfyui_writes(tmp_path: Path) -> None:
    path = webp(tmp_path / "both.webp", prompt=json.dumps(PROMPT), workflow=json.dumps(UI))
    assert load_workflow(path) == PROMPT
    assert load_workflow(path, "workflow") == UI


def test_an_animated_png_reads_comfyuis_private_comf_chunks(tmp_path: Path) -> None:
    """SaveAnimatedPNG writes ``comf`` chunks (key NUL json) after the image data."""
    info = PngImagePlugin.PngInfo()
    info.add(b"comf", b"prompt\0" + json.dumps(PROMPT).encode("latin-1"), after_idat=True)
    info.add(b"comf", b"workflow\0" + json.dumps(UI).encode("latin-1"), after_idat=True)
    path = tmp_path / "anim.png"
    frames = [Image.new("RGB", (4, 4), "white")]
    Image.new("RGB", (4, 4)).save(path, "PNG", pnginfo=info, save_all=True, append_images=frames)
    assert load_workflow(path) == PROMPT
    assert load_workflow(path, "workflow") == UI


@pytest.mark.parametrize("kind", ["png", "webp"])
def test_an_image_without_a_workflow_is_a_clear_error(kind: str, tmp_path: Path) -> None:
    path = png(tmp_path / "plain.png") if kind == "png" else webp(tmp_path / "plain.webp")
    message = failure(path).message
    assert "holds no ComfyUI workflow (no 'prompt' or 'workflow'" in message
    assert "--disable-metadata" in message


def test_jpegs_broken_images_and_bad_embedded_json_are_clear_errors(tmp_path: Path) -> None:
    jpeg = tmp_path / "x.jpg"
    Image.new("RGB", (4, 4)).save(jpeg, "JPEG")
    assert "a JPEG image: ComfyUI embeds its workflow only in the PNG and WebP" in str(
        failure(jpeg)
    )
    good = png(tmp_path / "good.png", prompt=json.dumps(PROMPT)).read_bytes()
    broken = tmp_path / "broken.png"
    broken.write_bytes(good[:40])
    assert "not a readable PNG image" in failure(broken).message
    bad = png(tmp_path / "bad.png", prompt="{not json", workflow=json.dumps(PROMPT))
    assert "the 'prompt' graph embedded in this PNG image is not valid JSON" in str(failure(bad))
    assert "the 'workflow' graph of this PNG image is not a UI-format workflow" in str(
        failure(bad, "workflow")
    )


# -- in a case file, and from the command line --------------------------------------------------


def case_file(folder: Path, workflow: str, extra: str = "") -> Path:
    path = folder / "c.yaml"
    path.write_text(f"workflow: {workflow}\nseed: 1\n{extra}cases:\n  - id: a\n")
    return path


def case_error(path: Path) -> CaseError:
    with pytest.raises(CaseError) as excinfo:
        load_cases(path)
    return excinfo.value


def test_a_case_takes_a_png_and_workflow_source_picks_the_graph(tmp_path: Path) -> None:
    png(tmp_path / "shared.png", prompt=json.dumps(PROMPT), workflow=json.dumps(UI))
    (case,) = load_cases(case_file(tmp_path, "shared.png"))
    assert case.workflow == PROMPT
    assert not case.is_ui
    (case,) = load_cases(case_file(tmp_path, "shared.png", "workflow_source: workflow\n"))
    assert case.workflow == UI
    assert case.is_ui


def test_case_mistakes_with_images_point_at_the_yaml_line(tmp_path: Path) -> None:
    png(tmp_path / "plain.png")
    error = case_error(case_file(tmp_path, "plain.png"))
    assert error.line == 1
    assert f"workflow {tmp_path / 'plain.png'}: this PNG image holds no ComfyUI workflow" in str(
        error
    )
    error = case_error(case_file(tmp_path, "plain.png", "workflow_source: workflw\n"))
    assert (error.line, error.message) == (
        3,
        "workflow_source: expected 'prompt' or 'workflow', got 'workflw'; did you mean 'workflow'?",
    )
    (tmp_path / "api.json").write_text(json.dumps(PROMPT))
    error = case_error(case_file(tmp_path, "api.json", "workflow_source: workflow\n"))
    assert error.line == 3
    assert "this JSON file holds an API-format prompt" in error.message


def test_a_broken_image_workflow_is_a_collection_error_without_traceback(
    pytester: pytest.Pytester,
) -> None:
    cases = pytester.path / "cases"
    cases.mkdir()
    png(cases / "plain.png")
    case_file(cases, "plain.png")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*c.yaml:1: workflow *plain.png: this PNG image holds no*"])
    assert "Traceback" not in result.stdout.str()


def test_convert_prints_an_images_prompt_without_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = png(tmp_path / "shared.png", prompt=json.dumps(PROMPT), workflow=json.dumps(UI))
    assert main(["convert", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == PROMPT
    plain = png(tmp_path / "plain.png")
    assert main(["convert", str(plain)]) == 1
    assert "this PNG image holds no ComfyUI workflow" in capsys.readouterr().err


# -- images the real ComfyUI saved ------------------------------------------------------------


def saved_by_comfyui(url: str, prompt: dict[str, Any], workflow: dict[str, Any]) -> list[bytes]:
    """Run ``prompt`` with ``workflow`` as the UI graph (as the frontend queues it); the files."""
    with httpx.Client(base_url=url, timeout=60) as http:
        body = {"prompt": prompt, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
        prompt_id = http.post("/prompt", json=body).json()["prompt_id"]
        deadline = time.monotonic() + 120
        while not (entry := http.get(f"/history/{prompt_id}").json().get(prompt_id)):
            assert time.monotonic() < deadline, "the prompt did not finish"
            time.sleep(0.2)
        assert entry["status"]["status_str"] == "success", entry["status"]
        files = [
            image for output in entry["outputs"].values() for image in output.get("images", [])
        ]
        return [http.get("/view", params=image).content for image in files]


def test_images_saved_by_comfyui_give_back_the_prompt_and_workflow(
    comfy: ManagedServer, tmp_path: Path
) -> None:
    image = ["1", 0]
    prompt = {
        "1": PROMPT["1"],
        "2": {"class_type": "SaveImage",
              "inputs": {"images": image, "filename_prefix": "comfytest-embed/still"}},
        "3": {"class_type": "SaveAnimatedWEBP",
              "inputs": {"images": image, "filename_prefix": "comfytest-embed/anim", "fps": 6.0,
                         "lossless": True, "quality": 80, "method": "default"}},
        "4": {"class_type": "SaveAnimatedPNG",
              "inputs": {"images": image, "filename_prefix": "comfytest-embed/anim", "fps": 6.0,
                         "compress_level": 4}},
    }  # fmt: skip
    saved = saved_by_comfyui(comfy.url, prompt, UI)
    kinds = []
    for index, raw in enumerate(saved):
        path = tmp_path / f"saved-{index}"
        path.write_bytes(raw)
        kinds.append(Image.open(io.BytesIO(raw)).format)
        assert load_workflow(path) == prompt
        assert load_workflow(path, "workflow") == UI
    assert sorted(kinds) == ["PNG", "PNG", "WEBP"]
