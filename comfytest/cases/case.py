"""A Case: one runnable case, or one cell of a sweep, as its case file describes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfytest.cases.body import MarkSpec
from comfytest.cases.recipe import Recipe
from comfytest.judging.compare import Tolerance
from comfytest.workflow.convert import is_ui_workflow
from comfytest.workflow.prompt import Prompt

__all__ = ["Case"]


@dataclass(frozen=True)
class Case:
    """One runnable case, or one cell of a sweep: a finished prompt plus how to judge it."""

    name: str  # the pytest item name: "fox" or "fox[steps=5-cfg=3.0]"
    case_id: str
    path: Path
    line: int
    workflow_path: Path
    #: The workflow as loaded, API or UI format; ``recipe.apply`` turns it into the prompt.
    workflow: Prompt
    recipe: Recipe
    seed: int | None
    tolerance: Tolerance
    timeout: float | None = None
    description: str = ""
    cell: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)
    marks: tuple[MarkSpec, ...] = ()
    repeat: int = 1
    warmup: int = 0
    #: The sweep cell others are measured against in the sweep report (axis -> value).
    reference: Mapping[str, Any] = field(default_factory=dict)
    #: Server tags this case needs (``server: {gpu: h100}``); values as written, scalars.
    server: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> Prompt:
        """The prompt as built without a server (what collection checked); a UI-format
        workflow has none until it is converted with the server's /object_info."""
        return {} if self.is_ui else self.recipe.apply(self.workflow).prompt

    @property
    def is_ui(self) -> bool:
        """A UI-format workflow: converted at run time, with the server's /object_info."""
        return is_ui_workflow(self.workflow)

    @property
    def folder(self) -> str:
        """Where this case's baselines live, under its case file's folder."""
        return f"{self.case_id}/{self.cell}" if self.cell else self.case_id
