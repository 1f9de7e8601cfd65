"""UI → API conversion: small hand-made graphs, then every ComfyUI template on the real server."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfytest.comfy.client import ComfyClient
from comfytest.runtime import ManagedServer
from comfytest.workflow import convert, preflight
from comfytest.workflow.convert import ConversionError, is_ui_workflow, ui_to_api

REPO = Path(__file__).resolve().parent.parent

# -- a small /object_info (shapes as 0.3.75 serves them) ---------------------------------------

SAMPLERS = [["euler", "dpmpp_2m"], {}]
OBJECT_INFO: dict[str, Any] = {
    "CheckpointLoaderSimple": {
        "input": {"required": {"ckpt_name": [["a.safetensors", "b.safetensors"], {}]}},
        "input_order": {"required": ["ckpt_name"]},
        "output": ["MODEL", "CLIP", "VAE"],
        "display_name": "Load Checkpoint",
    },
    "KSampler": {
        # JSON key order deliberately differs from input_order: input_order wins.
        "input": {
            "required": {
                "steps": ["INT", {"default": 20}],
                "seed": ["INT", {"default": 0, "control_after_generate": True}],
                "model": ["MODEL"],
                "cfg": ["FLOAT", {"default": 8.0}],
                "sampler_name": SAMPLERS,
                "scheduler": [["normal", "karras"], {}],
                "positive": ["CONDITIONING"],
                "negative": ["CONDITIONING"],
                "latent_image": ["LATENT"],
                "denoise": ["FLOAT", {"default": 1.0}],
            }
        },
        "input_order": {
            "required": [
                "model",
                "seed",
                "steps",
                "cfg",
                "sampler_name",
                "scheduler",
                "positive",
                "negative",
                "latent_image",
                "denoise",
            ]
        },
        "output": ["LATENT"],
        "display_name": "KSampler",
    },
    "CLIPTextEncode": {
        "input": {
            "required": {
                "text": ["STRING", {"multiline": True, "dynamicPrompts": True}],
                "clip": ["CLIP"],
            }
        },
        "input_order": {"required": ["text", "clip"]},
        "output": ["CONDITIONING"],
        "display_name": "CLIP Text Encode (Prompt)",
    },
    "LoadImage": {
        "input": {"required": {"image": [["x.png"], {"image_upload": True}]}},
        "input_order": {"required": ["image"]},
        "output": ["IMAGE", "MASK"],
        "display_name": "Load Image",
    },
    "ImageScale": {
        "input": {
            "required": {
                "image": ["IMAGE"],
                "upscale_method": [["nearest-exact", "bilinear"]],
                "width": ["INT", {"default": 512}],
                "height": ["INT", {"default": 512}],
                "crop": [["disabled", "center"]],
            },
            "optional": {"noise_seed": ["INT", {"default": 0}], "mask": ["MASK"]},
        },
        "input_order": {
            "required": ["image", "upscale_method", "width", "height", "crop"],
            "optional": ["noise_seed", "mask"],
        },
        "output": ["IMAGE"],
        "display_name": "Upscale Image",
    },
    "PickOne": {  # a COMBO with control_after_generate saves mode + filter after it
        "input": {
            "required": {
                "choice": [["a", "b", "c"], {"control_after_generate": True}],
                "count": ["INT", {"default": 1}],
                "tags": ["STRING", {"default": ""}],
            }
        },
        "input_order": {"required": ["choice", "count", "tags"]},
        "output": ["STRING"],
        "display_name": "Pick One",
    },
    "ImageComposite": {  # a MASK input before the IMAGE one: bypass must match types
        "input": {"required": {"mask": ["MASK"], "image": ["IMAGE"]}},
        "input_order": {"required": ["mask", "image"]},
        "output": ["IMAGE"],
        "display_name": "Image Composite",
    },
    "VAEDecode": {
        "input": {"required": {"samples": ["LATENT"], "vae": ["VAE"]}},
        "input_order": {"required": ["samples", "vae"]},
        "output": ["IMAGE"],
        "display_name": "VAE Decode",
    },
    "SaveImage": {
        "input": {
            "required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "C"}]},
            "hidden": {"prompt": "PROMPT"},
        },
        "input_order": {"required": ["images", "filename_prefix"], "hidden": ["prompt"]},
        "output": [],
        "display_name": "Save Image",
    },
}


def node(
    node_id: int,
    kind: str,
    widgets: Any = None,
    inputs: tuple[tuple[str, str, int | None], ...] = (),
    outputs: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A UI node; inputs are (name, type, link id); a name ending in '=' is a widget input."""
    slots = []
    for name, kind_of, link in inputs:
        slot: dict[str, Any] = {"name": name.rstrip("="), "type": kind_of, "link": link}
        if name.endswith("="):
            slot["widget"] = {"name": name.rstrip("=")}
        slots.append(slot)
    result = {
        "id": node_id,
        "type": kind,
        "mode": 0,
        "inputs": slots,
        "outputs": [{"name": o, "type": o, "links": []} for o in outputs],
        "widgets_values": widgets if widgets is not None else [],
    }
    return result | extra


def workflow(nodes: list[dict[str, Any]], links: list[list[Any]], **extra: Any) -> dict[str, Any]:
    """A v0.4 workflow; links are [id, origin, origin_slot, target, target_slot, type]."""
    return {"version": 0.4, "nodes": nodes, "links": links, "extra": {}} | extra


def v1(flow: dict[str, Any]) -> dict[str, Any]:
    """The same workflow with v1 object links."""
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    return flow | {
        "version": 1,
        "links": [dict(zip(keys, link, strict=True)) for link in flow["links"]],
    }


KSAMPLER_VALUES = [5, "randomize", 20, 7.5, "euler", "normal", 1.0]
KSAMPLER_INPUTS = {
    "seed": 5,
    "steps": 20,
    "cfg": 7.5,
    "sampler_name": "euler",
    "scheduler": "normal",
    "denoise": 1.0,
}


def txt2img() -> dict[str, Any]:
    """Checkpoint → two prompts → KSampler → VAEDecode → SaveImage (no latent: not needed)."""
    return workflow(
        [
            node(4, "CheckpointLoaderSimple", ["a.safetensors"], outputs=("MODEL", "CLIP", "VAE")),
            node(6, "CLIPTextEncode", ["a fox"], (("clip", "CLIP", 3),), ("CONDITIONING",)),
            node(7, "CLIPTextEncode", ["blurry"], (("clip", "CLIP", 4),), ("CONDITIONING",)),
            node(
                3,
                "KSampler",
                KSAMPLER_VALUES,
                (
                    ("model", "MODEL", 1),
                    ("positive", "CONDITIONING", 5),
                    ("negative", "CONDITIONING", 6),
                ),
                ("LATENT",),
            ),
            node(8, "VAEDecode", [], (("samples", "LATENT", 7), ("vae", "VAE", 8)), ("IMAGE",)),
            node(9, "SaveImage", ["out"], (("images", "IMAGE", 9),), title="Result"),
        ],
        [
            [1, 4, 0, 3, 0, "MODEL"],
            [3, 4, 1, 6, 0, "CLIP"],
            [4, 4, 1, 7, 0, "CLIP"],
            [5, 6, 0, 3, 1, "CONDITIONING"],
            [6, 7, 0, 3, 2, "CONDITIONING"],
            [7, 3, 0, 8, 0, "LATENT"],
            [8, 4, 2, 8, 1, "VAE"],
            [9, 8, 0, 9, 0, "IMAGE"],
        ],
    )


# -- format, ids, titles, links --------------------------------------------------------------


def test_public_api_is_pinned() -> None:
    assert sorted(convert.__all__) == [
        "ConversionError",
        "VIRTUAL_NODE_TYPES",
        "is_ui_workflow",
        "ui_to_api",
    ]


def test_is_ui_workflow_tells_the_formats_apart() -> None:
    assert is_ui_workflow(txt2img())
    api = json.loads((REPO / "cases" / "workflows" / "txt2img.json").read_text())
    assert not is_ui_workflow(api)
    assert not is_ui_workflow([1, 2])


def test_converts_a_whole_graph_with_string_ids_links_and_titles() -> None:
    prompt = ui_to_api(txt2img(), OBJECT_INFO)
    assert set(prompt) == {"3", "4", "6", "7", "8", "9"}
    assert prompt["3"] == {
        "class_type": "KSampler",
        "inputs": KSAMPLER_INPUTS | {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0]},
        "_meta": {"title": "KSampler"},
    }
    assert prompt["8"]["inputs"] == {"samples": ["3", 0], "vae": ["4", 2]}
    assert prompt["9"]["_meta"]["title"] == "Result"  # the node's own title ...
    assert prompt["4"]["_meta"]["title"] == "Load Checkpoint"  # ... else display_name


def test_v04_array_links_and_v1_object_links_give_the_same_prompt() -> None:
    assert ui_to_api(v1(txt2img()), OBJECT_INFO) == ui_to_api(txt2img(), OBJECT_INFO)


def test_unknown_class_is_an_error_naming_the_node() -> None:
    flow = txt2img()
    flow["nodes"].append(node(12, "FancyUpscaler", [2], title="Make it big"))
    with pytest.raises(ConversionError) as caught:
        ui_to_api(flow, OBJECT_INFO)
    assert str(caught.value) == (
        "node 12 (FancyUpscaler 'Make it big'): node class 'FancyUpscaler' is not installed on this server"
    )
    assert (caught.value.node_id, caught.value.class_type) == ("12", "FancyUpscaler")


def test_notes_are_dropped_and_do_not_need_object_info() -> None:
    flow = txt2img()
    flow["nodes"] += [node(20, "Note", ["hi"]), node(21, "MarkdownNote", ["# hi"])]
    assert set(ui_to_api(flow, OBJECT_INFO)) == {"3", "4", "6", "7", "8", "9"}


# -- widget values ---------------------------------------------------------------------------


def widgets_of(kind: str, values: Any, **extra: Any) -> dict[str, Any]:
    prompt = ui_to_api(workflow([node(1, kind, values, **extra)], []), OBJECT_INFO)
    return dict(prompt["1"]["inputs"])


def test_widget_order_is_input_order_and_the_seed_control_value_is_skipped() -> None:
    assert widgets_of("KSampler", KSAMPLER_VALUES) == KSAMPLER_INPUTS


def test_a_seed_saved_without_its_control_value_still_lines_up() -> None:
    values = [v for v in KSAMPLER_VALUES if v != "randomize"]
    assert widgets_of("KSampler", values) == KSAMPLER_INPUTS


def test_noise_seed_gets_a_control_value_by_name_and_optional_inputs_follow_required() -> None:
    values = ["bilinear", 64, 32, "center", 9, "fixed"]
    assert widgets_of("ImageScale", values) == {
        "upscale_method": "bilinear",
        "width": 64,
        "height": 32,
        "crop": "center",
        "noise_seed": 9,
    }


def test_a_combo_with_control_after_generate_saves_mode_and_filter_after_it() -> None:
    assert widgets_of("PickOne", ["b", "increment", "", 3, "x"]) == {
        "choice": "b",
        "count": 3,
        "tags": "x",
    }


@pytest.mark.parametrize(
    "values",
    [["x.png", "image"], ["x.png", None], ["x.png"]],
    ids=["classic-upload-value", "null-hole", "compacted"],
)
def test_upload_widgets_in_all_three_saved_shapes(values: list[Any]) -> None:
    assert widgets_of("LoadImage", values) == {"image": "x.png"}


def test_dict_widgets_values_are_read_by_name_and_lists_are_wrapped() -> None:
    values = {"upscale_method": "bilinear", "width": [64, 128], "videopreview": {"x": 1}}
    assert widgets_of("ImageScale", values) == {
        "upscale_method": "bilinear",
        "width": {"__value__": [64, 128]},
        "height": 512,
        "crop": "disabled",
        "noise_seed": 0,
    }


def test_missing_trailing_values_take_defaults_and_extra_trailing_values_are_ignored() -> None:
    assert widgets_of("KSampler", [5, "fixed", 30]) == {
        "seed": 5,
        "steps": 30,
        "cfg": 8.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
    }
    # Frontend extensions add widgets after the inputs (e.g. SaveGLB's 3D preview).
    assert widgets_of("SaveImage", ["out", "preview-state"]) == {"filename_prefix": "out"}


def test_values_that_cannot_line_up_are_an_error_naming_node_and_widget() -> None:
    with pytest.raises(ConversionError) as caught:
        widgets_of(
            "KSampler", [5, "randomize", "twenty", 7.5, "euler", "normal", 1.0], title="Sampler"
        )
    message = str(caught.value)
    assert message.startswith(
        "node 1 (KSampler 'Sampler'): widgets_values [5, 'randomize', 'twenty'"
    )
    assert "'twenty' cannot be 'steps' (INT)" in message


def test_dynamic_prompts_strip_comments_and_take_the_first_choice() -> None:
    text = "a {red|blue {dark|light}} fox // not this\n/* nor\nthis */in \\{snow\\}"
    assert widgets_of("CLIPTextEncode", [text]) == {"text": "a red fox \nin {snow}"}
    assert convert.dynamic_prompt("{{a|b} cat|dog}, {|x}") == "a cat, "


def test_a_linked_widget_input_overrides_the_saved_value() -> None:
    flow = workflow(
        [
            node(1, "LoadImage", ["x.png", "image"], outputs=("IMAGE", "MASK")),
            node(
                2,
                "ImageScale",
                ["bilinear", 64, 64, "disabled", 0, "fixed"],
                (("image", "IMAGE", 1), ("width=", "INT", 2)),
                ("IMAGE",),
            ),
            node(
                3,
                "ImageScale",
                ["bilinear", 7, 64, "disabled", 0, "fixed"],
                (("image", "IMAGE", 3),),
                ("IMAGE",),
            ),
        ],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 3, 0, 2, 1, "INT"], [3, 1, 0, 3, 0, "IMAGE"]],
    )
    # An INT output into a widget input: nonsense for real, but the link must win.
    assert ui_to_api(flow, OBJECT_INFO)["2"]["inputs"]["width"] == ["3", 0]


# -- virtual, muted and bypassed nodes -----------------------------------------------------


def test_reroutes_are_followed_to_the_real_output() -> None:
    flow = txt2img()
    flow["nodes"] += [
        node(30, "Reroute", [], (("", "*", 8),), ("VAE",)),
        node(31, "Reroute", [], (("", "*", 10),), ("VAE",)),
    ]
    flow["links"] = [lk for lk in flow["links"] if lk[0] != 8] + [
        [8, 4, 2, 30, 0, "VAE"],
        [10, 30, 0, 31, 0, "VAE"],
        [11, 31, 0, 8, 1, "VAE"],
    ]
    flow["nodes"][4]["inputs"][1]["link"] = 11
    prompt = ui_to_api(flow, OBJECT_INFO)
    assert prompt["8"]["inputs"]["vae"] == ["4", 2]
    assert "30" not in prompt
    assert "31" not in prompt


def test_a_primitive_node_becomes_the_literal_value_of_its_targets() -> None:
    flow = txt2img()
    flow["nodes"] += [
        node(40, "PrimitiveNode", [1234, "fixed"], outputs=("INT",)),
        node(41, "PrimitiveNode", ["{cat|dog} // comment"], outputs=("STRING",)),
    ]
    flow["links"] += [[20, 40, 0, 3, 4, "INT"], [21, 41, 0, 6, 1, "STRING"]]
    flow["nodes"][3]["inputs"].append(
        {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 20}
    )
    flow["nodes"][1]["inputs"].append(
        {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 21}
    )
    prompt = ui_to_api(flow, OBJECT_INFO)
    assert prompt["3"]["inputs"]["seed"] == 1234
    assert prompt["6"]["inputs"]["text"] == "cat "  # the target widget is a dynamic prompt
    assert "40" not in prompt


def test_a_muted_node_is_dropped_and_inputs_from_it_removed() -> None:
    flow = txt2img()
    flow["nodes"][1]["mode"] = 2  # node 6, the positive prompt
    prompt = ui_to_api(flow, OBJECT_INFO)
    assert "6" not in prompt
    assert "positive" not in prompt["3"]["inputs"]
    assert prompt["3"]["inputs"]["negative"] == ["7", 0]


def bypass_chain(middle: dict[str, Any]) -> dict[str, Any]:
    """LoadImage → (middle, bypassed) → SaveImage."""
    middle["mode"] = 4
    return workflow(
        [
            node(1, "LoadImage", ["x.png"], outputs=("IMAGE", "MASK")),
            middle,
            node(3, "SaveImage", ["out"], (("images", "IMAGE", 3),)),
        ],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 1, 2, 1, "MASK"], [3, 2, 0, 3, 0, "IMAGE"]],
    )


def test_a_bypassed_node_passes_the_same_slot_when_its_type_fits() -> None:
    scale = node(
        2,
        "ImageScale",
        ["bilinear", 8, 8, "disabled", 0, "fixed"],
        (("image", "IMAGE", 1), ("mask", "MASK", 2)),
        ("IMAGE",),
    )
    prompt = ui_to_api(bypass_chain(scale), OBJECT_INFO)
    assert set(prompt) == {"1", "3"}
    assert prompt["3"]["inputs"]["images"] == ["1", 0]


def test_a_bypassed_node_passes_the_input_of_the_targets_type_not_the_first_one() -> None:
    # Output 0 (IMAGE) faces input 0 (MASK): the frontend picks the IMAGE input, slot 1.
    composite = node(
        2, "ImageComposite", [], (("mask", "MASK", 2), ("image", "IMAGE", 1)), ("IMAGE",)
    )
    flow = bypass_chain(composite)
    flow["links"][:2] = [[1, 1, 0, 2, 1, "IMAGE"], [2, 1, 1, 2, 0, "MASK"]]
    assert ui_to_api(flow, OBJECT_INFO)["3"]["inputs"]["images"] == ["1", 0]


def test_a_bypassed_node_without_an_input_of_the_right_type_drops_the_input() -> None:
    decode = node(
        2, "VAEDecode", [], (("samples", "LATENT", None), ("vae", "VAE", None)), ("IMAGE",)
    )
    assert "images" not in ui_to_api(bypass_chain(decode), OBJECT_INFO)["3"]["inputs"]


# -- subgraphs and legacy group nodes ------------------------------------------------------

SUBGRAPH_ID = "5b1c3a4e-0000-4000-8000-000000000001"


def subgraph_workflow(proxies: bool) -> dict[str, Any]:
    """Checkpoint → [subgraph: prompt encode + KSampler, 'steps' and 'text' promoted] → decode."""
    inner_links = [
        {
            "id": 1,
            "origin_id": -10,
            "origin_slot": 0,
            "target_id": 2,
            "target_slot": 0,
            "type": "MODEL",
        },
        {
            "id": 2,
            "origin_id": -10,
            "origin_slot": 1,
            "target_id": 1,
            "target_slot": 0,
            "type": "CLIP",
        },
        {
            "id": 3,
            "origin_id": -10,
            "origin_slot": 1,
            "target_id": 3,
            "target_slot": 0,
            "type": "CLIP",
        },
        {
            "id": 4,
            "origin_id": 1,
            "origin_slot": 0,
            "target_id": 2,
            "target_slot": 1,
            "type": "CONDITIONING",
        },
        {
            "id": 5,
            "origin_id": 3,
            "origin_slot": 0,
            "target_id": 2,
            "target_slot": 2,
            "type": "CONDITIONING",
        },
        {
            "id": 6,
            "origin_id": -10,
            "origin_slot": 2,
            "target_id": 2,
            "target_slot": 3,
            "type": "INT",
        },
        {
            "id": 7,
            "origin_id": -10,
            "origin_slot": 3,
            "target_id": 1,
            "target_slot": 1,
            "type": "STRING",
        },
        {
            "id": 8,
            "origin_id": 2,
            "origin_slot": 0,
            "target_id": -20,
            "target_slot": 0,
            "type": "LATENT",
        },
    ]
    definition = {
        "id": SUBGRAPH_ID,
        "name": "Sample",
        "inputs": [
            {"name": "model", "type": "MODEL", "linkIds": [1]},
            {"name": "clip", "type": "CLIP", "linkIds": [2, 3]},  # one input feeding two nodes
            {"name": "steps", "type": "INT", "linkIds": [6]},
            {"name": "text", "type": "STRING", "linkIds": [7]},
        ],
        "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [8]}],
        "widgets": [],
        "nodes": [
            node(
                1,
                "CLIPTextEncode",
                ["inner text"],
                (("clip", "CLIP", 2), ("text=", "STRING", 7)),
                ("CONDITIONING",),
            ),
            node(3, "CLIPTextEncode", ["blurry"], (("clip", "CLIP", 3),), ("CONDITIONING",)),
            node(
                2,
                "KSampler",
                KSAMPLER_VALUES,
                (
                    ("model", "MODEL", 1),
                    ("positive", "CONDITIONING", 4),
                    ("negative", "CONDITIONING", 5),
                    ("steps=", "INT", 6),
                ),
                ("LATENT",),
            ),
        ],
        "links": inner_links,
    }
    properties = {"proxyWidgets": [["-1", "text"], ["-1", "steps"]]} if proxies else {}
    values = ["outer text", 33] if proxies else [33, "outer text"]
    return workflow(
        [
            node(4, "CheckpointLoaderSimple", ["a.safetensors"], outputs=("MODEL", "CLIP", "VAE")),
            node(
                10,
                SUBGRAPH_ID,
                values,
                (("model", "MODEL", 1), ("clip", "CLIP", 2)),
                ("LATENT",),
                properties=properties,
                title="My sampler",
            ),
            node(8, "VAEDecode", [], (("samples", "LATENT", 3), ("vae", "VAE", 4)), ("IMAGE",)),
        ],
        [
            [1, 4, 0, 10, 0, "MODEL"],
            [2, 4, 1, 10, 1, "CLIP"],
            [3, 10, 0, 8, 0, "LATENT"],
            [4, 4, 2, 8, 1, "VAE"],
        ],
        definitions={"subgraphs": [definition]},
    )


@pytest.mark.parametrize("proxies", [True, False], ids=["proxyWidgets", "input-order"])
def test_a_subgraph_is_expanded_with_path_ids_and_promoted_widgets(proxies: bool) -> None:
    prompt = ui_to_api(subgraph_workflow(proxies), OBJECT_INFO)
    assert set(prompt) == {"4", "8", "10:1", "10:2", "10:3"}
    assert prompt["8"]["inputs"]["samples"] == ["10:2", 0]  # into the subgraph (-20)
    sampler = prompt["10:2"]["inputs"]
    assert sampler["model"] == ["4", 0]  # out of the subgraph (-10) to the outer link
    assert (sampler["positive"], sampler["negative"]) == (["10:1", 0], ["10:3", 0])
    assert sampler["steps"] == 33  # the instance's promoted widget value
    assert prompt["10:1"]["inputs"] == {"text": "outer text", "clip": ["4", 1]}
    assert prompt["10:3"]["inputs"] == {"text": "blurry", "clip": ["4", 1]}


def test_a_linked_subgraph_input_wins_over_its_promoted_value() -> None:
    flow = subgraph_workflow(proxies=True)
    flow["nodes"].append(node(50, "PrimitiveNode", [77, "fixed"], outputs=("INT",)))
    flow["nodes"][1]["inputs"].append(
        {"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": 9}
    )
    flow["links"].append([9, 50, 0, 10, 2, "INT"])
    assert ui_to_api(flow, OBJECT_INFO)["10:2"]["inputs"]["steps"] == 77


def test_a_legacy_group_node_is_expanded_with_group_index_ids() -> None:
    group = {
        "nodes": [
            node(0, "CLIPTextEncode", ["stored"], (("clip", "CLIP", None),), ("CONDITIONING",)),
            node(
                1,
                "KSampler",
                KSAMPLER_VALUES,
                (
                    ("model", "MODEL", None),
                    ("positive", "CONDITIONING", None),
                    ("negative", "CONDITIONING", None),
                    ("latent_image", "LATENT", None),
                ),
                ("LATENT",),
            ),
        ],
        "links": [[0, 0, 1, 1, 9, "CONDITIONING"]],
        "external": [],
    }
    instance_values = ["group text", 9, "fixed", 12, 6.0, "dpmpp_2m", "karras", 0.5]
    flow = workflow(
        [
            node(4, "CheckpointLoaderSimple", ["a.safetensors"], outputs=("MODEL", "CLIP", "VAE")),
            node(7, "CLIPTextEncode", ["blurry"], (("clip", "CLIP", 3),), ("CONDITIONING",)),
            node(
                20,
                "workflow>Encode and sample",
                instance_values,
                (
                    ("clip", "CLIP", 1),
                    ("model", "MODEL", 2),
                    ("negative", "CONDITIONING", 4),
                    ("latent_image", "LATENT", None),
                ),
                ("LATENT",),
            ),
        ],
        [
            [1, 4, 1, 20, 0, "CLIP"],
            [2, 4, 0, 20, 1, "MODEL"],
            [3, 4, 1, 7, 0, "CLIP"],
            [4, 7, 0, 20, 2, "CONDITIONING"],
        ],
        extra={"groupNodes": {"Encode and sample": group}},
    )
    prompt = ui_to_api(flow, OBJECT_INFO)
    assert set(prompt) == {"4", "7", "20:0", "20:1"}
    assert prompt["20:0"]["inputs"] == {"text": "group text", "clip": ["4", 1]}
    assert prompt["20:1"]["inputs"] == {
        "seed": 9,
        "steps": 12,
        "cfg": 6.0,
        "sampler_name": "dpmpp_2m",
        "scheduler": "karras",
        "denoise": 0.5,
        "model": ["4", 0],
        "positive": ["20:0", 0],
        "negative": ["7", 0],
    }


# -- every template ComfyUI ships, validated by the real server ----------------------------

#: Measured with comfyui-workflow-templates 0.7.25 on the managed 0.3.75 runtime: 188 UI
#: templates, 94 using only node classes it has. Floors a little below, so a new template
#: release does not break the suite, but a converter that gives up on many does.
MIN_TEMPLATES, MIN_CONVERTED, MIN_FULLY_ACCEPTED = 150, 80, 10
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload")


def ui_templates() -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, workflow) of every UI-format template in the installed template packages."""
    from comfyui_workflow_templates_core import (  # type: ignore[import-untyped]
        get_asset_path,
        iter_templates,
    )

    for entry in sorted(iter_templates(), key=lambda e: e.template_id):
        filename = f"{entry.template_id}.json"
        if any(asset.filename == filename for asset in entry.assets):
            data = json.loads(Path(get_asset_path(entry.template_id, filename)).read_text("utf-8"))
            if is_ui_workflow(data):
                yield entry.template_id, data


def input_specs(spec: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    for section in ("required", "optional"):
        yield from (spec["input"].get(section) or {}).items()


def input_files(prompt: dict[str, Any], object_info: dict[str, Any]) -> set[str]:
    """Files the prompt loads through upload widgets (LoadImage.image, LoadVideo.file, ...)."""
    files = set()
    for api_node in prompt.values():
        for name, config in input_specs(object_info[api_node["class_type"]]):
            options = config[1] if len(config) > 1 and isinstance(config[1], dict) else {}
            value = api_node["inputs"].get(name)
            if any(options.get(flag) for flag in UPLOAD_FLAGS) and isinstance(value, str):
                files.add(value)
    return files


def with_stand_in_models(prompt: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """Model files the runtime lacks replaced by one it has for that input, where it has any."""
    for api_node in prompt.values():
        for name, config in input_specs(object_info[api_node["class_type"]]):
            value = api_node["inputs"].get(name)
            choices = config[0] if isinstance(config[0], list) else []
            if (
                isinstance(value, str)
                and value.endswith(MODEL_SUFFIXES)
                and choices
                and value not in choices
            ):
                api_node["inputs"][name] = choices[0]
    return prompt


def verdict(answer: dict[str, Any]) -> tuple[str, list[str]]:
    """'accepted', 'missing models' (only unknown model files) or 'rejected', with the errors."""
    problems = [
        (
            error.get("type"),
            str((error.get("extra_info") or {}).get("received_value", "")),
            error.get("details"),
        )
        for info in (answer.get("node_errors") or {}).values()
        for error in info.get("errors", [])
    ]
    if not problems and not answer.get("error"):
        return "accepted", []
    described = [f"{kind}: {details}" for kind, _, details in problems] or [
        str(answer.get("error"))
    ]
    missing = all(
        kind == "value_not_in_list" and value.endswith(MODEL_SUFFIXES)
        for kind, value, _ in problems
    )
    return ("missing models" if problems and missing else "rejected"), described


#: Outcomes of a converted template submitted as it is, with no file it names on the server.
AS_CONVERTED = ("accepted", "partly accepted", "only missing files", "rejected")
#: What README.md's "UI-format workflows" paragraph states, measured with this version of the
#: templates on the managed runtime: templates, converted, the four AS_CONVERTED outcomes,
#: then accepted / missing models / rejected with placeholder inputs and stand-in models.
README_TEMPLATES_VERSION = "0.7.25"
README_COUNTS = (188, 94, 0, 1, 93, 0, 23, 71, 0)


def templates_version() -> str:
    from importlib.metadata import version

    return version("comfyui-workflow-templates")


def raw_verdict(answer: dict[str, Any], prompt: dict[str, Any], info: dict[str, Any]) -> str:
    """One of AS_CONVERTED. The server queues a prompt whose other outputs are valid and
    lists the invalid ones in node_errors ("partly accepted"). A missing file is a model
    name (value_not_in_list) or a file an upload widget names (not in its list, or refused
    by the node's own check)."""
    errors = [
        (node_id, error)
        for node_id, node in (answer.get("node_errors") or {}).items()
        for error in node.get("errors", [])
    ]
    if not errors and not answer.get("error"):
        return "accepted"
    if "error" not in answer:
        return "partly accepted"
    files = {
        (node_id, name)
        for node_id, node in prompt.items()
        for name, config in input_specs(info[node["class_type"]])
        if len(config) > 1
        and isinstance(config[1], dict)
        and any(config[1].get(flag) for flag in UPLOAD_FLAGS)
    }

    def missing_file(node_id: str, error: dict[str, Any]) -> bool:
        extra = error.get("extra_info") or {}
        value = str(extra.get("received_value", ""))
        on_upload = (node_id, extra.get("input_name")) in files
        if error.get("type") == "value_not_in_list":
            return on_upload or value.endswith(MODEL_SUFFIXES)
        return on_upload and error.get("type") == "custom_validation_failed"

    only_files = bool(errors) and all(missing_file(n, e) for n, e in errors)
    return "only missing files" if only_files else "rejected"


def blocker_prompt() -> dict[str, Any]:
    """A prompt that runs for minutes, so the template prompts queued behind it never run."""
    prompt = json.loads((REPO / "cases" / "workflows" / "txt2img.json").read_text())
    prompt["3"]["inputs"]["steps"] = 5000
    prompt["9"]["inputs"]["filename_prefix"] = "convert-test-blocker"
    return dict(prompt)


def stop_everything(http: httpx.Client, timeout: float = 60) -> None:
    """Clear the queue and interrupt until nothing runs (an early interrupt can be missed)."""
    deadline = time.monotonic() + timeout
    http.post("/queue", json={"clear": True})
    while True:
        http.post("/interrupt")
        if not http.get("/queue").json().get("queue_running") or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def test_every_template_converts_and_passes_validation(comfy: ManagedServer) -> None:
    with ComfyClient(comfy.url) as client:
        object_info = client.object_info()
    templates = dict(ui_templates())
    prompts: dict[str, dict[str, Any]] = {}
    unknown_classes: Counter[str] = Counter()
    failures: dict[str, str] = {}
    for template_id, flow in templates.items():
        try:
            prompts[template_id] = ui_to_api(flow, object_info)
        except ConversionError as exc:
            unknown_classes[exc.class_type] += 1
            failures[template_id] = str(exc)
    # The only acceptable reason not to convert: the runtime lacks a node class.
    assert all("is not installed" in f for f in failures.values()), failures

    png = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(png, "PNG")
    outcomes: dict[str, list[str]] = {"accepted": [], "missing models": [], "rejected": []}
    reasons: dict[str, list[str]] = {}
    preflight_disagrees: dict[str, Any] = {}
    preflight_extra = 0
    with httpx.Client(base_url=comfy.url, timeout=60) as http:
        assert http.post("/prompt", json={"prompt": blocker_prompt()}).status_code == 200
        try:
            # First as converted: the files templates name are not on this runtime.
            as_converted: dict[str, list[str]] = {kind: [] for kind in AS_CONVERTED}
            for template_id, prompt in prompts.items():
                answer = http.post("/prompt", json={"prompt": prompt}).json()
                as_converted[raw_verdict(answer, prompt, object_info)].append(template_id)
            # Templates load example inputs the packages do not ship: placeholders by those
            # names, and stand-ins for the model files, to see what else the server checks.
            names = set().union(*(input_files(p, object_info) for p in prompts.values()))
            for name in sorted(names):
                http.post(
                    "/upload/image",
                    files={"image": (name, png.getvalue())},
                    data={"overwrite": "true"},
                )
            for template_id, prompt in prompts.items():
                submitted = with_stand_in_models(prompt, object_info)
                found = preflight.check(submitted, object_info)
                answer = http.post("/prompt", json={"prompt": submitted}).json()
                outcome, reasons[template_id] = verdict(answer)
                outcomes[outcome].append(template_id)
                # Preflight agrees with the server: it reports nothing but missing models, on
                # at least the nodes the server names. It may name more: 0.3.75 does not
                # validate V3 combo inputs (e.g. QuadrupleCLIPLoader), preflight does.
                by_preflight = {p.node_id for p in found}
                by_server = set(answer.get("node_errors") or {})
                wrong = [p.describe() for p in found if p.kind != "missing_model"]
                if wrong or not by_server <= by_preflight:
                    preflight_disagrees[template_id] = [wrong, sorted(by_server - by_preflight)]
                preflight_extra += len(by_preflight - by_server)
        finally:
            stop_everything(http)

    summary = (
        f"templates {len(templates)}, converted {len(prompts)}, skipped for classes this runtime lacks "
        f"{sum(unknown_classes.values())} ({', '.join(sorted(unknown_classes))}); validation as "
        "converted: "
        + ", ".join(f"{kind} {len(ids)}" for kind, ids in as_converted.items())
        + "; with placeholder inputs and stand-in models: "
        + ", ".join(f"{kind} {len(ids)}" for kind, ids in outcomes.items())
    )
    print(summary)
    print(f"partly accepted as converted: {as_converted['partly accepted']}")
    counts = (
        len(templates),
        len(prompts),
        *(len(ids) for ids in as_converted.values()),
        *(len(ids) for ids in outcomes.values()),
    )
    if templates_version() == README_TEMPLATES_VERSION:
        assert counts == README_COUNTS, summary  # README.md states these numbers
    rejected = {t: reasons[t] for t in outcomes["rejected"]}
    assert not rejected, f"{summary}\nrejected for reasons other than missing models: {rejected}"
    print(f"preflight named {preflight_extra} missing-model nodes the server did not check")
    assert not preflight_disagrees, f"preflight differs from the server: {preflight_disagrees}"
    assert len(templates) >= MIN_TEMPLATES, summary
    assert len(prompts) >= MIN_CONVERTED, summary
    assert len(outcomes["accepted"]) >= MIN_FULLY_ACCEPTED, summary
