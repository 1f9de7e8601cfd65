"""Cross-check comfytest's UI → API conversion against comfy-cli's, on ComfyUI's own templates.

Every UI-format template of the installed ``comfyui-workflow-templates`` packages is converted
twice: by ``comfytest.workflow.convert.ui_to_api`` and by ``comfy run --print-prompt``
(comfy-cli, which users already have). The two API prompts are compared node by node,
input by input, and the differences are counted by kind, with a few examples of each.

    comfytest runtime start                       # prints the URL of a fresh ComfyUI
    python scripts/crosscheck_templates.py --url http://127.0.0.1:PORT \\
        --comfy /tmp/comfycli-venv/bin/comfy
    comfytest runtime stop http://127.0.0.1:PORT

comfy-cli is best installed in its own virtual environment (it pins its own dependencies).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from comfytest.workflow.convert import ConversionError, is_ui_workflow, ui_to_api

Prompt = dict[str, Any]


def template_files() -> Iterator[tuple[str, Path]]:
    """(template id, path) of every UI-format template the installed packages ship."""
    from comfyui_workflow_templates_core import (  # type: ignore[import-untyped]
        get_asset_path,
        iter_templates,
    )

    for entry in sorted(iter_templates(), key=lambda e: e.template_id):
        filename = f"{entry.template_id}.json"
        if any(asset.filename == filename for asset in entry.assets):
            path = Path(get_asset_path(entry.template_id, filename))
            if is_ui_workflow(json.loads(path.read_text(encoding="utf-8"))):
                yield entry.template_id, path


def comfy_cli_prompt(comfy: str, path: Path, url: str) -> Prompt | str:
    """comfy-cli's API prompt for ``path``, or the reason it gave none."""
    parts = urlsplit(url)
    command = [comfy, "--skip-prompt", "--no-enable-telemetry", "run", "--print-prompt"]
    command += ["--workflow", str(path), "--host", str(parts.hostname), "--port", str(parts.port)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    try:
        envelope = json.loads(done.stdout)
    except ValueError:
        return f"no JSON (exit {done.returncode}): {(done.stdout + done.stderr).strip()[-300:]}"
    prompt = (envelope.get("data") or {}).get("prompt")
    return prompt if isinstance(prompt, dict) else f"error: {envelope.get('error')}"


def differences(ours: Prompt, theirs: Prompt) -> Iterator[tuple[str, str]]:
    """(kind, detail) for every difference between two API prompts of one workflow."""
    for node_id in sorted(set(ours) | set(theirs)):
        if node_id not in theirs:
            yield f"node only in ours: {ours[node_id]['class_type']}", node_id
            continue
        if node_id not in ours:
            yield f"node only in comfy-cli: {theirs[node_id]['class_type']}", node_id
            continue
        a, b = ours[node_id], theirs[node_id]
        cls = a["class_type"]
        if cls != b["class_type"]:
            yield "class_type differs", f"{node_id}: {cls} vs {b['class_type']}"
        if a.get("_meta", {}).get("title") != b.get("_meta", {}).get("title"):
            yield f"title differs: {cls}", f"{node_id}: {a.get('_meta')} vs {b.get('_meta')}"
        for name in sorted(set(a["inputs"]) | set(b["inputs"])):
            where = f"{node_id}.{name}"
            if name not in b["inputs"]:
                yield f"input only in ours: {cls}.{name}", f"{where} = {a['inputs'][name]!r}"
            elif name not in a["inputs"]:
                yield f"input only in comfy-cli: {cls}.{name}", f"{where} = {b['inputs'][name]!r}"
            elif a["inputs"][name] != b["inputs"][name]:
                mine, its = a["inputs"][name], b["inputs"][name]
                yield f"value differs: {cls}.{name}", f"{where}: ours {mine!r} vs {its!r}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", required=True, help="a running ComfyUI, e.g. http://127.0.0.1:8188"
    )
    parser.add_argument("--comfy", default="comfy", help="the comfy-cli executable")
    parser.add_argument("--examples", type=int, default=3, help="examples shown per kind")
    parser.add_argument("--jobs", type=int, default=2, help="comfy-cli processes at once")
    args = parser.parse_args(argv)

    object_info = httpx.get(f"{args.url.rstrip('/')}/object_info", timeout=60).json()
    templates = list(template_files())
    ours: dict[str, Prompt] = {}
    not_converted: dict[str, str] = {}
    for template_id, path in templates:
        try:
            ours[template_id] = ui_to_api(json.loads(path.read_text("utf-8")), object_info)
        except ConversionError as exc:
            not_converted[template_id] = str(exc)
    paths = dict(templates)
    with ThreadPoolExecutor(args.jobs) as pool:
        answers = pool.map(lambda t: comfy_cli_prompt(args.comfy, paths[t], args.url), ours)
        theirs = dict(zip(ours, answers, strict=True))

    kinds: dict[str, list[str]] = defaultdict(list)
    identical: list[str] = []
    differing: list[str] = []
    failed: dict[str, str] = {}
    for template_id, prompt in ours.items():
        other = theirs[template_id]
        if isinstance(other, str):
            failed[template_id] = other
            continue
        found = list(differences(prompt, other))
        (differing if found else identical).append(template_id)
        for kind, detail in found:
            kinds[kind].append(f"{template_id}: {detail}")

    print(f"templates found: {len(templates)}")
    print(f"not converted by comfytest (node classes this server lacks): {len(not_converted)}")
    print(f"compared: {len(identical) + len(differing)}")
    print(f"  identical: {len(identical)}")
    print(f"  differing: {len(differing)}")
    print(f"comfy-cli gave no prompt: {len(failed)}")
    for template_id, reason in sorted(failed.items()):
        print(f"  {template_id}: {reason}")
    print("differences by kind (occurrences, templates):")
    for kind, details in sorted(kinds.items(), key=lambda item: (-len(item[1]), item[0])):
        templates_hit = len({d.split(":", 1)[0] for d in details})
        print(f"  {kind}: {len(details)} in {templates_hit} template(s)")
        for detail in details[: args.examples]:
            print(f"      {detail[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
