"""Environment fingerprints and the differences a failure reports."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from PIL import Image

from comfytest.comfy.client import ComfyClient
from comfytest.comfy.environment import differences, fingerprint
from comfytest.runtime import ManagedServer

STATS = {
    "system": {
        "comfyui_version": "0.3.75",
        "pytorch_version": "2.14.1",
        "python_version": "3.11.7 (main)",
        "os": "posix",
    },
    "devices": [{"name": "cpu", "type": "cpu"}],
}
INFO = {"KSampler": {"input": {"required": {"steps": ["INT", {"min": 1}]}}}}


def test_fingerprint_is_small_and_stable(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "a.safetensors").write_bytes(b"x" * 10)
    first = fingerprint(STATS, INFO, {"checkpoints": ["a.safetensors"], "loras": []}, tmp_path)
    assert first == fingerprint(
        STATS, dict(INFO), {"checkpoints": ["a.safetensors"], "loras": []}, tmp_path
    )
    assert first["python_version"] == "3.11.7"
    assert first["device"] == "cpu (cpu)"
    assert first["node_classes"]["count"] == 1
    assert first["models"] == {"checkpoints": {"a.safetensors": 10}}, "empty folders are left out"


def test_differences_name_what_changed() -> None:
    old = fingerprint(STATS, INFO, {"checkpoints": ["a.safetensors", "b.safetensors"]})
    info = {
        "KSampler": {"input": {"required": {"steps": ["INT", {"min": 2}]}}},
        "New": {"input": {}},
    }
    stats = {**STATS, "system": {**STATS["system"], "comfyui_version": "0.3.76"}}
    new = fingerprint(stats, info, {"checkpoints": ["a.safetensors", "c.safetensors"]})
    assert differences(old, new) == [
        "ComfyUI 0.3.75 -> 0.3.76",
        "node classes or their inputs changed (1 -> 2 classes)",
        "model checkpoints/b.safetensors is gone",
        "model checkpoints/c.safetensors is new",
    ]
    assert differences(old, old) == []


def test_uploaded_images_do_not_change_the_node_digest(comfy: ManagedServer) -> None:
    """LoadImage lists the server's input folder: an upload changes /object_info, not a node."""
    with ComfyClient(comfy.url) as client:
        before = fingerprint(STATS, client.object_info(), {})["node_classes"]
        color = tuple(uuid.uuid4().bytes[:3])  # a file the server has not seen
        Image.new("RGB", (8, 8), color).save(buffer := io.BytesIO(), format="PNG")
        upload = comfy.run_dir / "digest-probe.png"
        upload.write_bytes(buffer.getvalue())
        name = client.upload_image(upload, subfolder="")  # LoadImage lists the top level
        info = client.object_info()
        assert any(name in str(spec) for spec in info["LoadImage"]["input"]["required"]["image"])
        assert fingerprint(STATS, info, {})["node_classes"] == before
    steps = {"KSampler": {"input": {"required": {"steps": ["INT", {"min": 1}]}}}}
    steps_and_cfg = {"KSampler": {"input": {"required": {"steps": ["INT"], "cfg": ["FLOAT"]}}}}
    assert (
        fingerprint(STATS, steps, {})["node_classes"]
        != fingerprint(STATS, steps_and_cfg, {})["node_classes"]
    ), "a new input is a change"


def test_the_files_an_upload_widget_lists_are_not_part_of_the_environment() -> None:
    def load_image(files: list[str]) -> dict[str, object]:
        return {"LoadImage": {"input": {"required": {"image": [files, {"image_upload": True}]}}}}

    empty = fingerprint(STATS, load_image([]), {})
    uploaded = fingerprint(STATS, load_image(["pattern.png", "other.png"]), {})
    assert empty == uploaded, "two servers of one environment, different input folders"
    folders = {
        "LoadImageDataSetFromFolder": {
            "input": {"required": {"folder": ["COMBO", {"options": ["comfytest"]}]}}
        }
    }
    no_folders = {
        "LoadImageDataSetFromFolder": {
            "input": {"required": {"folder": ["COMBO", {"options": []}]}}
        }
    }
    assert fingerprint(STATS, folders, {}) == fingerprint(STATS, no_folders, {}), "an upload folder"
