"""The prompt a case queues: its recipe applied with the server's node definitions, files
uploaded, preflight passed, and a nonce so ComfyUI's cache cannot answer for it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, NamedTuple

from comfytest.cases.loader import Case
from comfytest.cases.recipe import Applied
from comfytest.comfy.client import ComfyClient
from comfytest.errors import PreflightFailed
from comfytest.workflow.convert import ui_to_api
from comfytest.workflow.identity import Identity, node_identity
from comfytest.workflow.preflight import check, loader_nodes, output_nodes
from comfytest.workflow.prompt import Prompt, copy_prompt

__all__ = ["NONCE_INPUT", "Fresh", "Prepared", "output_identity", "prepare"]

#: The undeclared input that makes nodes miss ComfyUI's cache (see ``prepare``).
NONCE_INPUT = "comfytest_nonce"
#: Which nodes must run afresh: output nodes, every node but loaders, or every node.
Fresh = Literal["outputs", "compute", "all"]


class Prepared(NamedTuple):
    """A case's prompt, ready to queue, and the recipe's result it came from."""

    prompt: Prompt
    applied: Applied


def prepare(
    case: Case,
    client: ComfyClient,
    object_info: dict[str, Any],
    fresh: Fresh = "outputs",
    now: datetime | None = None,
) -> Prepared:
    """The prompt to queue on ``client``'s server: recipe applied (seeds pinned), files
    uploaded, and preflight passed. ``now`` is the time a UI-format workflow's
    ``%date:…%`` file name patterns show (the run's start).

    A nonce makes nodes miss ComfyUI's cache: ``fresh="outputs"`` on output nodes (their
    files are always written afresh), ``"compute"`` on every node but loaders (each repeat
    samples again with the models still loaded), ``"all"`` on every node."""
    workflow = case.workflow
    if case.is_ui:
        workflow = ui_to_api(copy_prompt(workflow), object_info, now=now)
    applied = case.recipe.apply(workflow, object_info)
    prompt = copy_prompt(applied.prompt)
    for upload in applied.uploads:
        prompt[upload.node_id]["inputs"][upload.input_name] = client.upload_image(upload.path)
    problems = check(prompt, object_info)
    if problems:
        raise PreflightFailed(problems, client.url)
    nonce = uuid.uuid4().hex
    targets = {
        "outputs": output_nodes(prompt, object_info),
        "compute": sorted(set(prompt) - set(loader_nodes(prompt, object_info))),
        "all": list(prompt),
    }[fresh]
    for node_id in targets:
        # An input the node does not declare: ignored by the node, but part of its cache
        # key, so the node runs again.
        prompt[node_id]["inputs"][NONCE_INPUT] = nonce
    return Prepared(prompt, applied)


def output_identity(prompt: Prompt, node_id: str) -> Identity:
    """The identity of the node that made an output, as its manifest entry records it
    (``graph``): the nonce is not part of it."""
    return node_identity(prompt, node_id, drop=frozenset({NONCE_INPUT}))
