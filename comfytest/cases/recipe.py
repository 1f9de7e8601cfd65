"""A case's recipe: the overrides, sweep values and seed that turn a workflow into a prompt.

One path builds every prompt: ``Recipe.apply(workflow, object_info)``. At collection it runs
without a server on an API-format workflow, so mistakes show before anything runs, and on a
UI-format one converted with the /object_info a previous run cached (``UiCheck``), when
there is one; at run time it runs again with the server's /object_info (on the converted
prompt of a UI-format workflow), which also finds the seeds only the node definitions name.
Every mistake is a CaseError at the YAML line that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from comfytest.cases.standin import CiCaps, StandIn, ci_targets, stand_in_targets
from comfytest.cases.yaml_reader import LineMap
from comfytest.errors import CaseError, ConversionError
from comfytest.workflow.convert import ui_to_api
from comfytest.workflow.prompt import (
    OverrideError,
    Prompt,
    copy_prompt,
    find_node,
    node_label,
    resolve_axis,
    seed_inputs,
    set_input,
)

if TYPE_CHECKING:
    from comfytest.comfy.schema_cache import NodeSchemas

__all__ = ["Applied", "Axis", "Recipe", "Setting", "UiCheck", "Upload", "confined"]


@dataclass(frozen=True)
class Upload:
    """A local file to upload before the run, whose server-side name fills an input."""

    node_id: str
    input_name: str
    path: Path


@dataclass(frozen=True)
class Setting:
    """One ``inputs`` entry, remembering where it was written."""

    node: str
    input: str
    value: Any
    path: Path
    line: int


@dataclass(frozen=True)
class Axis:
    """One swept value: the axis as written, what it targets, and where it was written."""

    name: str
    target: str
    value: Any
    path: Path
    line: int


class Applied(NamedTuple):
    """A recipe applied to a workflow: the prompt, the files to upload, the overrides."""

    prompt: Prompt
    uploads: tuple[Upload, ...]
    #: What the case set, by node id (upload values named by their local path).
    overrides: dict[str, dict[str, Any]]
    #: Model names replaced by stand-ins, node id -> input -> "user's name -> stand-in".
    stand_ins: dict[str, dict[str, str]] = {}  # noqa: RUF012 (a NamedTuple default, not shared state)
    #: Inputs the ``ci`` profile capped, node id -> input -> "before -> after".
    capped: dict[str, dict[str, str]] = {}  # noqa: RUF012


@dataclass(frozen=True)
class Recipe:
    """How a case turns its workflow into a prompt: overrides, sweep values, the seed.

    Checked at collection on an API-format workflow; applied at run time with the server's
    /object_info (after conversion, for a UI-format one). Every mistake is a CaseError at
    its line.
    """

    case_id: str
    path: Path
    line: int
    settings: tuple[Setting, ...] = ()
    axes: tuple[Axis, ...] = ()
    seed: int | None = None
    #: Files named by overrides must lie in this folder (the project), when set.
    within: Path | None = None
    #: ``stand_in`` entries: model names the workflow's loaders name, mapped to families.
    stand_ins: tuple[StandIn, ...] = ()
    #: The ``ci`` profile: sizes and steps capped.
    ci: CiCaps | None = None

    def apply(self, workflow: Prompt, object_info: dict[str, Any] | None = None) -> Applied:
        """The prompt for an API-format ``workflow`` (not changed), its uploads and overrides.

        Seeds are found by ``seed_inputs`` (with ``object_info`` when given): each one the
        case does not set is pinned to the case's seed, or is a CaseError when it has none."""
        prompt: Prompt = copy_prompt(workflow)
        overrides: dict[str, dict[str, Any]] = {}
        uploads: dict[tuple[str, str], Upload] = {}

        def put(node_id: str, name: str, value: Any, where: Path, line: int) -> None:
            value = check_value(value, where, line, name, self.within)
            try:
                if isinstance(value, Upload):
                    set_input(prompt, node_id, name, value.path.name)
                    uploads[node_id, name] = Upload(node_id, name, value.path)
                else:
                    set_input(prompt, node_id, name, value)
                    uploads.pop((node_id, name), None)
            except OverrideError as exc:
                raise CaseError(str(exc), where, line) from None
            shown = str(value.path) if isinstance(value, Upload) else value
            overrides.setdefault(node_id, {})[name] = shown

        for setting in self.settings:
            try:
                node_id = find_node(prompt, setting.node)
            except OverrideError as exc:
                raise CaseError(str(exc), setting.path, setting.line) from None
            put(node_id, setting.input, setting.value, setting.path, setting.line)
        for axis in self.axes:
            try:
                targets = resolve_axis(prompt, axis.target, axis.value)
            except OverrideError as exc:
                raise CaseError(f"{axis.name}: {exc}", axis.path, axis.line) from None
            for node_id, name, value in targets:
                put(node_id, name, value, axis.path, axis.line)
        replaced: dict[str, dict[str, str]] = {}
        for node_id, name, file in stand_in_targets(prompt, self.stand_ins):
            before = prompt[node_id]["inputs"][name]
            prompt[node_id]["inputs"][name] = overrides.setdefault(node_id, {})[name] = file
            replaced.setdefault(node_id, {})[name] = f"{before} -> {file}"
        capped: dict[str, dict[str, str]] = {}
        for node_id, name, value in ci_targets(prompt, self.ci) if self.ci else ():
            before = prompt[node_id]["inputs"][name]
            prompt[node_id]["inputs"][name] = overrides.setdefault(node_id, {})[name] = value
            capped.setdefault(node_id, {})[name] = f"{before} -> {value}"
        for node_id, name in seed_inputs(prompt, object_info):
            if name in overrides.get(node_id, {}):
                continue
            if self.seed is None:
                title = node_label(prompt, node_id)[1]
                raise CaseError(
                    f"case {self.case_id!r} leaves input {name!r} of node {node_id} ({title}) "
                    "unpinned, and the UI would randomise it (control_after_generate): add "
                    "'seed: <integer>' to the case or set that input",
                    self.path,
                    self.line,
                )
            prompt[node_id]["inputs"][name] = self.seed
        return Applied(prompt, tuple(uploads.values()), overrides, replaced, capped)


class UiCheck:
    """Recipes of UI-format workflows checked at collection, against the /object_info a
    previous run cached (comfytest.comfy.schema_cache): each workflow converted once."""

    def __init__(self, schemas: NodeSchemas) -> None:
        self.schemas = schemas
        self._converted: dict[object, Prompt | None] = {}

    def check(self, recipe: Recipe, key: object, workflow: Prompt) -> None:
        """Apply ``recipe`` to the converted ``workflow`` (``key`` names the file); a mistake
        is a CaseError that says which definitions found it. A workflow that does not convert
        with them is left to the run, whose server may have what the cache lacks."""
        if key not in self._converted:
            try:
                self._converted[key] = ui_to_api(copy_prompt(workflow), self.schemas.object_info)
            except ConversionError:
                self._converted[key] = None
        prompt = self._converted[key]
        if prompt is None:
            return
        try:
            recipe.apply(prompt, self.schemas.object_info)
        except CaseError as exc:
            message = f"{exc.message} ({self.schemas.describe()})"
            raise CaseError(message, exc.path, exc.line) from None


def confined(target: Path, within: Path | None, what: str, where: Path, line: int) -> Path:
    """``target``, unless it lies outside ``within`` (the project), which is a CaseError."""
    if within is not None and not target.is_relative_to(within):
        raise CaseError(
            f"{what} {target} is outside the project {within}; "
            "pass --comfy-allow-outside to allow it",
            where,
            line,
        )
    return target


def check_value(value: Any, path: Path, line: int, name: Any, within: Path | None = None) -> Any:
    if isinstance(value, LineMap):
        if set(value) != {"file"} or not isinstance(value["file"], str):
            raise CaseError(
                f"{name}: a mapping value must be {{file: <path>}} (a file to upload)", path, line
            )
        local = confined(
            (path.parent / value["file"]).resolve(), within, f"{name}: file", path, line
        )
        if not local.is_file():
            raise CaseError(f"{name}: file to upload not found: {local}", path, line)
        if local.suffix.lower() in IMAGE_SUFFIXES:
            reason = unreadable_image(local)
            if reason:
                raise CaseError(
                    f"{name}: file to upload is not a readable image ({reason}): {local}",
                    path,
                    line,
                )
        return Upload("", str(name), local)
    if isinstance(value, list):
        raise CaseError(f"{name}: list values are not supported as overrides", path, line)
    return value


#: Uploads with these suffixes are checked to be whole images before anything runs.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def unreadable_image(path: Path) -> str:
    """Why the image at ``path`` cannot be decoded (truncated, corrupt), or ""."""
    from PIL import Image  # the image stack loads with the first upload, not with the plugin

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return str(exc) or type(exc).__name__
    return ""
