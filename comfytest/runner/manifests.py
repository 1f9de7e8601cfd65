"""What a case's manifest.json says: the case, its workflow and inputs, the prompt's digest
and the environment the outputs were made in (see comfytest.judging.manifest)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comfytest.cases.loader import Case
from comfytest.judging.manifest import case_owner
from comfytest.runner.prompt import NONCE_INPUT, Prepared, output_identity
from comfytest.workflow.prompt import prompt_digest

__all__ = ["case_manifest"]


def case_manifest(
    case: Case,
    prepared: Prepared,
    project: Path,
    environment: dict[str, Any],
    made_by: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What a reviewer needs beside a changed baseline: the case, inputs, environment, and
    for each output key in ``made_by`` the identity of the node that made it (``graphs``).

    Files in ``project`` are named as in a clone of it (relative, POSIX)."""
    plain = {
        node_id: {
            **node,
            "inputs": {k: v for k, v in node["inputs"].items() if k != NONCE_INPUT},
        }
        for node_id, node in prepared.prompt.items()
    }
    applied = prepared.applied
    inputs = {node: dict(values) for node, values in applied.overrides.items()}
    for upload in applied.uploads:
        inputs.setdefault(upload.node_id, {})[upload.input_name] = relative(upload.path, project)
    return {
        "case": f"{case_owner(case.path, project)}::{case.name}",
        "workflow": relative(case.workflow_path, project),
        "prompt_digest": prompt_digest(plain),
        "seed": case.seed,
        "sweep": dict(case.values),
        "inputs": inputs,
        "environment": environment,
        "graphs": {
            key: output_identity(prepared.prompt, node) for key, node in (made_by or {}).items()
        },
    }


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
