"""Output identity survives renumbered node ids (issue 15, point 5), against the real server:
a baseline is found by the graph that made it, not only by its node's id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfytest.judging.pairing import pair_outputs
from comfytest.runtime import ManagedServer

TWO_OUTPUTS = "workflow: workflows/upscale_two_outputs.json\nseed: 5\ncases:\n  - id: two\n"
ONE_OUTPUT = "workflow: workflows/txt2img.json\nseed: 5\ncases:\n  - id: one\n"


def renumber(workflow: Path, new_id: dict[str, str]) -> None:
    """Save the same graph with other node ids (those not in ``new_id`` get 100 added)."""
    graph = json.loads(workflow.read_text())
    moved = {old: new_id.get(old, str(int(old) + 100)) for old in graph}
    renumbered = {}
    for old, node in graph.items():
        inputs = {
            name: [moved[value[0]], value[1]] if isinstance(value, list) else value
            for name, value in node["inputs"].items()
        }
        renumbered[moved[old]] = {**node, "inputs": inputs}
    workflow.write_text(json.dumps(renumbered, indent=2))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def forget_identities(manifest: Path) -> None:
    """A manifest as comfytest wrote it before it recorded each output's node identity."""
    data = json.loads(manifest.read_text())
    for entry in data["outputs"].values():
        entry.pop("graph")
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def test_the_same_graph_with_swapped_output_ids_passes_against_its_baselines(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(TWO_OUTPUTS)
    url = ["--comfy-url", comfy.url, "-p", "no:cacheprovider"]
    pytester.runpytest(*url, "--comfy-update=missing").assert_outcomes(passed=1)
    folder = project / "baselines/t/two"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {k: v["graph"]["class_type"] for k, v in manifest["outputs"].items()} == {
        "9-0": "SaveImage",
        "12-0": "SaveImage",
    }
    before = snapshot(folder)
    # The two SaveImage nodes swap ids and every other node moves: judged by id alone,
    # 12-0 would be compared with the other output's baseline (another size).
    renumber(project / "cases/workflows/upscale_two_outputs.json", {"9": "12", "12": "9"})
    result = pytester.runpytest(*url, "-v", "--comfy-keep=all")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*no baseline*")
    run = json.loads((project / ".comfytest/results/run.json").read_text())
    (case,) = run["cases"]
    assert sorted(case["outputs"]) == ["12-0", "9-0"]
    labels = {key: files["label"] for key, files in case["evidence"].items()}
    assert labels == {"9-0": "12 (Save Base #0, was 9)", "12-0": "9 (Save Upscaled #0, was 12)"}
    # Nothing was written: not a baseline, not the manifest.
    assert snapshot(folder) == before
    # An update run keeps the files' names, and prunes none: the identities still find them.
    pytester.runpytest(*url, "--comfy-update=all", "--comfy-prune").assert_outcomes(passed=1)
    assert sorted(snapshot(folder)) == sorted(before)
    pytester.runpytest(*url).assert_outcomes(passed=1)


def test_renumbered_and_changed_is_a_regression_against_the_right_baselines(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(TWO_OUTPUTS)
    url = ["--comfy-url", comfy.url, "-p", "no:cacheprovider"]
    pytester.runpytest(*url, "--comfy-update=missing").assert_outcomes(passed=1)
    workflow = project / "cases/workflows/upscale_two_outputs.json"
    renumber(workflow, {"9": "12", "12": "9"})
    graph = json.loads(workflow.read_text())
    (sampler,) = [node for node in graph.values() if node["class_type"] == "KSampler"]
    sampler["inputs"]["steps"] += 1
    workflow.write_text(json.dumps(graph))
    result = pytester.runpytest(*url)
    result.assert_outcomes(failed=1)  # a regression (failed), not a missing baseline (error)
    result.stdout.fnmatch_lines(
        [
            "*two: output 9 (Save Upscaled #0, was 12) differs from its baseline",
            "*two: output 12 (Save Base #0, was 9) differs from its baseline",
        ]
    )
    result.stdout.no_fnmatch_line("*size*differs*")  # each against its own baseline
    result.stdout.no_fnmatch_line("*no baseline*")


def test_an_update_run_migrates_manifests_from_before_identities_and_changes_nothing_else(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(TWO_OUTPUTS)
    url = ["--comfy-url", comfy.url, "-p", "no:cacheprovider"]
    pytester.runpytest(*url, "--comfy-update=missing").assert_outcomes(passed=1)
    folder = project / "baselines/t/two"
    made = json.loads((folder / "manifest.json").read_text())
    forget_identities(folder / "manifest.json")
    pngs = {name: data for name, data in snapshot(folder).items() if name.endswith(".png")}
    # A plain run writes nothing, identities or not.
    pytester.runpytest(*url).assert_outcomes(passed=1)
    assert "graph" not in json.loads((folder / "manifest.json").read_text())["outputs"]["9-0"]
    pytester.runpytest(*url, "--comfy-update=missing").assert_outcomes(passed=1)
    assert json.loads((folder / "manifest.json").read_text()) == made
    assert {n: d for n, d in snapshot(folder).items() if n.endswith(".png")} == pngs


def test_a_single_output_from_before_identities_is_found_when_renumbered(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(ONE_OUTPUT)
    url = ["--comfy-url", comfy.url, "-p", "no:cacheprovider"]
    pytester.runpytest(*url, "--comfy-update=missing").assert_outcomes(passed=1)
    folder = project / "baselines/t/one"
    forget_identities(folder / "manifest.json")
    before = snapshot(folder)
    renumber(project / "cases/workflows/txt2img.json", {})
    result = pytester.runpytest(*url)
    result.assert_outcomes(passed=1)
    assert snapshot(folder) == before


def test_pairing_never_guesses() -> None:
    a = {"shape": "s1", "values": "v1"}
    b = {"shape": "s2", "values": "v2"}
    changed_a = {"shape": "s1", "values": "v9"}
    # Renumbered: found by computation; ids that now name the other node do not win.
    assert pair_outputs([("12-0", a), ("9-0", b)], [("9-0", a), ("12-0", b)]) == {
        "12-0": "9-0",
        "9-0": "12-0",
    }
    # Renumbered and a value changed: found by shape.
    assert pair_outputs([("20-0", changed_a)], [("9-0", a), ("12-0", b)]) == {"20-0": "9-0"}
    # Two outputs of the same shape, both changed and renumbered: no guess.
    twin = {"shape": "s1", "values": "v3"}
    assert pair_outputs([("20-0", changed_a), ("21-0", twin)], [("9-0", a), ("12-0", a)]) == {}
    # The index is part of the identity: image 1 is not image 0's baseline.
    assert pair_outputs([("20-1", a)], [("9-0", a)]) == {}
    # From before identities: by id, and else only the one output left of its kind.
    assert pair_outputs([("9-0", a)], [("9-0", None)]) == {"9-0": "9-0"}
    assert pair_outputs([("30-0", a)], [("9-0", None)]) == {"30-0": "9-0"}
    assert pair_outputs([("30-0", a), ("31-0", b)], [("9-0", None), ("12-0", None)]) == {}
    assert pair_outputs([("30-t0", a)], [("9-0", None)]) == {}
