"""The design cuts that keep comfytest easy to enter: one prompt builder, one typed case
record, the server choice in the library, and a closed error tree."""

from __future__ import annotations

import inspect
import json
import pkgutil
from pathlib import Path

import pytest

import comfytest
import comfytest.errors
from comfytest.cases.recipe import Recipe
from comfytest.comfy.pool import ServerSpec
from comfytest.comfy.servers import Servers
from comfytest.defaults import KEEP_MODES, UPDATE_MODES, KeepMode, Status, UpdateMode
from comfytest.errors import ComfytestError, InfrastructureError, RuntimeSetupError, ServerLost
from comfytest.judging.baselines import BaselineStore
from comfytest.reports.record import CaseRecord, case_record
from comfytest.runtime import ManagedServer, Runtime

SCRIPTS = "comfytest.runtime.scripts"


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a comfytest module, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(comfytest.__path__, "comfytest."):
        if module_info.name.startswith(SCRIPTS):
            continue
        module = __import__(module_info.name, fromlist=["_"])
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_is_drawn_in_the_error_tree() -> None:
    classes = exception_classes()
    assert len(classes) >= 19
    tree = comfytest.errors.__doc__ or ""
    undrawn = sorted(q for q, cls in classes.items() if cls.__name__ not in tree)
    assert undrawn == []
    # Closed: every error a user may see (a ComfytestError) is defined in errors.py; the
    # only other one is the WebSocket's private signal.
    elsewhere = sorted(
        q
        for q, cls in classes.items()
        if issubclass(cls, ComfytestError) and cls.__module__ != "comfytest.errors"
    )
    assert elsewhere == ["comfytest.comfy.socket._Dropped"]


def test_a_runtime_that_cannot_be_set_up_is_infrastructure() -> None:
    assert issubclass(RuntimeSetupError, InfrastructureError)


CASE = "workflow: workflows/image_pipeline.json\ncases:\n  - id: a\n  - id: b\n"


def test_a_missing_runtime_is_one_usage_error_at_configure(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMFYTEST_HOME", str(pytester.path / "empty-home"))
    (project / "cases/c.yaml").write_text(CASE)
    result = pytester.runpytest("--comfy-launch", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --comfy-launch: no complete runtime at *; run: comfytest runtime install"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_managed_server_that_cannot_start_is_one_usage_error(
    pytester: pytest.Pytester, project: Path, runtime: Runtime
) -> None:
    (project / "cases/c.yaml").write_text(CASE)
    # ComfyUI's own argument parser refuses the flag and the server exits at start.
    result = pytester.runpytest(
        "--comfy-launch",
        f"--comfy-home={runtime.root.parent.parent}",
        "--comfy-server-arg=--no-such-flag",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count("ERROR: ") == 1, err
    assert "--no-such-flag" in err
    result.stdout.no_fnmatch_line("*FAILED*")


def test_run_with_fallback_runs_again_on_another_server(comfy: ManagedServer) -> None:
    lost_url = "http://127.0.0.1:9"
    servers = Servers([ServerSpec(lost_url), ServerSpec(comfy.url)])
    tried: list[int] = []

    def attempt(index: int) -> str:
        tried.append(index)
        if index == 0:
            raise ServerLost("the server stopped answering", lost_url)
        return servers.client(index).url

    try:
        url, retried = servers.run_with_fallback({}, 0, attempt)
        assert (url, tried) == (comfy.url, [0, 1])
        assert retried is not None
        assert (retried.lost, retried.on) == (lost_url, comfy.url)
        # The lost server is not picked again while another one fits.
        assert servers.pick({}) == 1
        # With no other server, the loss stands.
        alone = Servers([ServerSpec(lost_url)])
        with pytest.raises(ServerLost):
            alone.run_with_fallback({}, 0, attempt)
    finally:
        servers.close()


def test_a_case_record_travels_as_a_plain_dict_and_names_its_junit_properties() -> None:
    record = CaseRecord(
        folder="txt2img/fox",
        outputs={"9-0": "passed"},
        server="http://127.0.0.1:1",
        retried={"lost": "a", "on": "b", "error": "gone"},
        description="a fox",
    )
    again = CaseRecord.from_dict(record.as_dict())
    assert again == record
    properties = dict(record.junit_properties())
    assert properties["comfytest_folder"] == "txt2img/fox"
    assert properties["comfytest_outputs"] == '{"9-0": "passed"}'
    assert properties["comfytest_retried_on"] == '{"lost": "a", "on": "b", "error": "gone"}'
    assert "comfytest_timings" not in properties, "unset fields are not written"
    entry = case_record("c.yaml::fox", "passed", 1.5, record)
    assert (entry["outputs"], entry["description"]) == ({"9-0": "passed"}, "a fox")


def test_one_recipe_builds_the_prompt_with_or_without_the_servers_definitions() -> None:
    workflow = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 8}},
        "2": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 2}},
    }
    info = {
        "PrimitiveInt": {
            "input": {"required": {"value": ["INT", {"control_after_generate": True}]}}
        }
    }
    recipe = Recipe("a", Path("c.yaml"), 3, seed=7)
    at_collection = recipe.apply(workflow).prompt
    at_run_time = recipe.apply(workflow, info).prompt
    assert at_collection["1"]["inputs"]["value"] == 8, "only seeds by name without a server"
    assert at_collection["2"]["inputs"]["seed"] == 7
    assert at_run_time["1"]["inputs"]["value"] == 7, "control_after_generate seeds too"
    assert workflow["1"]["inputs"]["value"] == 8, "the workflow itself is not changed"


def test_statuses_and_modes_are_enums_that_read_as_their_names() -> None:
    assert [s.value for s in Status] == ["passed", "failed", "missing", "created", "updated"]
    assert UPDATE_MODES == ("none", "missing", "changed", "all")
    assert KEEP_MODES == ("failed", "all")
    assert f"{Status.PASSED}" == str(Status.PASSED) == "passed"
    assert json.dumps({"outputs": Status.MISSING}) == '{"outputs": "missing"}'
    store = BaselineStore(Path("b"), Path("r"), "changed", "all")
    assert (store.update, store.keep) == (UpdateMode.CHANGED, KeepMode.ALL)
    with pytest.raises(ValueError, match="update mode must be one of none, missing"):
        BaselineStore(Path("b"), Path("r"), "sometimes")
