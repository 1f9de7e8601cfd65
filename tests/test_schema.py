"""The JSON Schema editors use agrees with the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from comfytest.cases.loader import CASE_KEYS, FILE_KEYS, SCHEMA_PATH

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads(SCHEMA_PATH.read_text())


def test_schema_knows_exactly_the_loader_keys() -> None:
    assert sorted(SCHEMA["properties"]) == sorted(FILE_KEYS)
    assert sorted(SCHEMA["$defs"]["case"]["properties"]) == sorted(CASE_KEYS)


@pytest.mark.parametrize("path", sorted((REPO / "cases").glob("*.yaml")), ids=lambda p: p.name)
def test_example_case_files_are_valid(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), SCHEMA)


def test_a_typo_is_invalid() -> None:
    with pytest.raises(jsonschema.ValidationError, match="'stpes' was unexpected"):
        jsonschema.validate({"cases": [{"id": "a", "stpes": 3}]}, SCHEMA)


def test_cli_prints_the_schema_path() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "comfytest.cli", "schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(printed.stdout.strip()) == SCHEMA_PATH
    assert SCHEMA_PATH.is_file()
