"""UI → API conversion of what shared workflows use: legacy group nodes, PrimitiveNodes and
Reroutes that are muted or bypassed, and ``filename_prefix`` patterns. Each on a small
workflow file made for this test (tests/workflows/), converted with the real server's
/object_info, and checked against the frontend's rules (groupNode.ts, ExecutableNodeDTO,
PrimitiveNode.applyToGraph, searchAndReplace.ts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from comfytest.comfy.client import ComfyClient
from comfytest.runtime import ManagedServer
from comfytest.workflow import preflight
from comfytest.workflow.convert import ui_to_api
from comfytest.workflow.convert.replacements import NodeWidgets, format_date, replace_patterns

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
RUN_STARTED = datetime(2026, 3, 7, 9, 5, 2)


@pytest.fixture(scope="module")
def object_info(comfy: ManagedServer) -> Iterator[dict[str, Any]]:
    with ComfyClient(comfy.url) as client:
        yield client.object_info()


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((WORKFLOWS / name).read_text()))


def test_a_legacy_group_node_takes_the_instance_values_by_position(
    object_info: dict[str, Any],
) -> None:
    """The instance was saved when KSampler had no ``denoise``: its values still fill the
    group's widgets by position (the inner nodes' own stale values lose), and ``denoise``
    takes its default, as the frontend's group node does. An ``external`` entry holding a
    serialized node is ignored, as the frontend ignores it."""
    prompt = ui_to_api(load("group_node.json"), object_info)
    assert set(prompt) == {"4", "7", "5", "20:0", "20:1", "8", "9"}
    assert prompt["20:0"]["inputs"] == {
        "text": "a watercolor fox in a snowy forest",
        "clip": ["4", 1],
    }
    assert prompt["20:1"]["inputs"] == {
        "seed": 42,
        "steps": 4,
        "cfg": 6.5,
        "sampler_name": "euler",
        "scheduler": "karras",
        "denoise": 1.0,
        "model": ["4", 0],
        "positive": ["20:0", 0],
        "negative": ["7", 0],
        "latent_image": ["5", 0],
    }
    assert prompt["8"]["inputs"]["samples"] == ["20:1", 0]
    assert preflight.check(prompt, object_info) == []


def test_primitives_keep_their_values_and_a_muted_reroute_passes_its_link(
    object_info: dict[str, Any],
) -> None:
    prompt = ui_to_api(load("modes_and_prefix.json"), object_info, now=RUN_STARTED)
    assert "40" not in prompt
    assert "41" not in prompt
    assert prompt["3"]["inputs"]["seed"] == 777  # from the bypassed PrimitiveNode
    assert prompt["3"]["inputs"]["steps"] == 3  # from the muted one
    assert prompt["9"]["inputs"]["images"] == ["8", 0]  # through the muted Reroute
    assert prompt["9"]["inputs"]["filename_prefix"] == (
        "2026-03-07/fox-777-3-64-%year%-%Nobody.value%"
    )
    assert preflight.check(prompt, object_info) == []


def test_the_server_saves_under_the_substituted_name(
    object_info: dict[str, Any], comfy: ManagedServer
) -> None:
    """The prompt runs as converted; the server then fills in ``%year%`` itself."""
    prompt = ui_to_api(load("modes_and_prefix.json"), object_info, now=RUN_STARTED)
    with ComfyClient(comfy.url) as client:
        run = client.run(prompt)
    (output,) = run.outputs
    assert output.subfolder == "2026-03-07"
    assert output.filename.startswith(f"fox-777-3-64-{datetime.now().year}-%Nobody.value%_")


# -- the frontend's pattern rules, one by one ---------------------------------------------------


def test_date_formats_follow_the_frontends_format_date() -> None:
    assert format_date("yyyy-MM-dd hh:mm:ss", RUN_STARTED) == "2026-03-07 09:05:02"
    assert format_date("yy/M/d h.m.s", RUN_STARTED) == "26/3/7 9.5.2"
    assert format_date("yyy", RUN_STARTED) == "yyy"  # not a part it knows


def test_node_patterns_match_the_search_name_first_then_the_title() -> None:
    nodes = [
        NodeWidgets("KSampler", "Sampler A", {"seed": 1, "cfg": 7.0, "sampler_name": "a/b"}),
        NodeWidgets("KSampler", "Sampler B", {"seed": 2}),
        NodeWidgets(None, "KSampler", {"seed": 3}),
        NodeWidgets("Other", "Sampler B", {"seed": 4, "flag": True, "denoise": 0.25}),
    ]
    cases = {
        "%KSampler.seed%": "1",  # the S&R name wins over the title, the first one over others
        "%Sampler B.seed%": "2",  # no S&R name "Sampler B": the first node with that title
        "%KSampler.cfg%-%Other.flag%-%Other.denoise%": "7-true-0.25",  # as JavaScript prints
        "%KSampler.sampler_name%": "a_b",  # no path separators in file names
        "%KSampler.missing%|%Nobody.seed%|%width%|%a.b.c%": (
            "%KSampler.missing%|%Nobody.seed%|%width%|%a.b.c%"
        ),
        # The frontend splits on '.' first: two parts name a node, three keep only the first.
        "%date:hh.mm%": "%date:hh.mm%",
        "%date:yyyy.MM.dd%": "2026",
    }
    for text, expected in cases.items():
        assert replace_patterns(text, nodes, RUN_STARTED) == expected, text


def test_a_primitive_inside_a_group_node_is_one_of_its_widgets(
    object_info: dict[str, Any],
) -> None:
    """groupNode.ts shows a ``value`` widget (with its control value) for a PrimitiveNode
    linked inside the group, in node order; the widget it feeds is not shown again."""
    flow = load("group_node.json")
    group = flow["extra"]["groupNodes"]["Encode and sample"]
    primitive = {
        "type": "PrimitiveNode",
        "mode": 0,
        "inputs": [],
        "outputs": [{"name": "INT", "type": "INT", "links": [], "widget": {"name": "seed"}}],
        "widgets_values": [5, "fixed"],
    }
    sampler = group["nodes"][1]
    sampler["inputs"].append(
        {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": None}
    )
    group["nodes"] = [primitive, group["nodes"][0], sampler]
    group["links"] = [[1, 0, 2, 1, 30, "CONDITIONING"], [0, 0, 2, 4, 32, "INT"]]
    group["external"] = []
    # primitive value + control, text, then KSampler's steps, cfg, sampler, scheduler, denoise
    instance = next(n for n in flow["nodes"] if n["id"] == 20)
    instance["widgets_values"] = [99, "fixed", "a fox", 6, 5.0, "euler", "normal", 0.7]
    prompt = ui_to_api(flow, object_info)
    assert prompt["20:1"]["inputs"]["text"] == "a fox"
    sampled = prompt["20:2"]["inputs"]
    assert (sampled["seed"], sampled["steps"], sampled["cfg"], sampled["denoise"]) == (
        99,
        6,
        5.0,
        0.7,
    )
    assert "20:0" not in prompt
