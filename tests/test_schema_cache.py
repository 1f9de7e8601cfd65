"""UI-format overrides checked at collection against the /object_info a run cached."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from comfytest.cases.loader import load_cases
from comfytest.comfy.schema_cache import NodeSchemas, read_schemas, server_key, write_schemas
from comfytest.errors import CaseError

from .test_convert import OBJECT_INFO, txt2img

URL = "http://gpu-box:8188"


def cached(root: Path, object_info: dict[str, object]) -> NodeSchemas:
    write_schemas(root, server_key(URL), URL, dict(object_info))
    schemas = read_schemas(root, server_key(URL))
    assert schemas is not None
    return schemas


def case_file(folder: Path, inputs: str) -> Path:
    (folder / "ui.json").write_text(json.dumps(txt2img()))
    path = folder / "c.yaml"
    path.write_text(f"workflow: ui.json\nseed: 1\ncases:\n  - id: a\n    inputs:\n{inputs}")
    return path


def test_a_typo_in_a_ui_override_is_found_with_the_cached_definitions(tmp_path: Path) -> None:
    path = case_file(tmp_path, "      KSampler: {stpes: 3}\n")
    assert load_cases(path)[0].is_ui  # no cached definitions: left to the run
    with pytest.raises(CaseError) as excinfo:
        load_cases(path, schemas=cached(tmp_path, OBJECT_INFO))
    error = excinfo.value
    assert error.line == 6
    assert error.message.startswith(
        "node 3 (KSampler) has no input 'stpes'; did you mean 'steps'? (checked at collection "
        f"against the /object_info of {URL} saved "
    )
    assert error.message.endswith(
        f"ago in {tmp_path / '.comfytest/object_info' / server_key(URL)}; if that server has "
        "changed since, delete that file)"
    )
    (case,) = load_cases(
        case_file(tmp_path, "      KSampler: {steps: 3}\n"), schemas=cached(tmp_path, OBJECT_INFO)
    )
    assert case.is_ui  # still converted at run time, with the live definitions


def test_a_workflow_the_cached_definitions_cannot_convert_is_left_to_the_run(
    tmp_path: Path,
) -> None:
    """The server may have gained the node since; only the run can tell."""
    partial = {name: spec for name, spec in OBJECT_INFO.items() if name != "VAEDecode"}
    path = case_file(tmp_path, "      KSampler: {stpes: 3}\n")
    assert len(load_cases(path, schemas=cached(tmp_path, partial))) == 1


def test_the_age_is_stated_and_a_broken_cache_is_ignored(tmp_path: Path) -> None:
    schemas = NodeSchemas({}, URL, time.time() - 7300, tmp_path / "x.json")
    assert f"the /object_info of {URL} saved 2 h ago in" in schemas.describe()
    path = tmp_path / ".comfytest/object_info" / server_key(URL)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert read_schemas(tmp_path, server_key(URL)) is None
    assert server_key(None) == "runtime-default.json"
    assert server_key(URL) != server_key("http://gpu-box:8189")
