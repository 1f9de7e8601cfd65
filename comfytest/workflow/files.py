"""Workflow files as people share them: JSON in any of the encodings editors write, and the
PNG and WebP images ComfyUI saves with the graph inside.

* JSON: UTF-8 with or without a byte order mark, or UTF-16 with one. Anything else (UTF-32,
  UTF-16 without a BOM, Latin-1 bytes) is a :class:`WorkflowError` saying what it looks like.
* PNG: ComfyUI's ``SaveImage`` writes two text chunks, ``prompt`` (the API prompt that ran)
  and ``workflow`` (the UI graph); ``SaveAnimatedPNG`` writes the same pairs as private
  ``comf`` chunks (``key\\0json``) after the image data.
* WebP: ``SaveAnimatedWEBP`` writes them as EXIF strings ``"prompt:<json>"`` (tag 0x0110)
  and ``"workflow:<json>"`` (0x010F, then downwards for further keys).

An image holds two graphs; ``source`` picks one. By default the API ``prompt`` is used when
present (it is exactly what ran, no conversion needed), else the UI ``workflow``.
"""

from __future__ import annotations

import codecs
import io
import json
import struct
from pathlib import Path
from typing import Any

from comfytest.errors import WorkflowError
from comfytest.workflow.convert import is_ui_workflow

__all__ = ["SOURCES", "embedded_graphs", "load_workflow", "read_text"]

#: What ``source`` may name: the API prompt or the UI workflow embedded in an image.
SOURCES = ("prompt", "workflow")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def image_kind(raw: bytes) -> str | None:
    """The image format ("PNG", "WebP", "JPEG") from its first bytes; None for others."""
    if raw.startswith(PNG_SIGNATURE):
        return "PNG"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "WebP"
    if raw.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    return None


def load_workflow(path: Path, source: str | None = None) -> dict[str, Any]:
    """Read a workflow file, API or UI format, JSON or a PNG/WebP that ComfyUI saved.

    ``source`` ("prompt" or "workflow") asks for the API prompt or the UI graph; None takes
    the prompt of an image when it has one. Every mistake is a WorkflowError at the file (and
    line, for JSON)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WorkflowError(f"cannot read workflow: {exc.strerror or exc}", path) from None
    kind = image_kind(raw)
    if kind == "JPEG":
        raise WorkflowError(
            "a JPEG image: ComfyUI embeds its workflow only in the PNG and WebP files it saves",
            path,
        )
    if kind is None:
        data = _parse(read_text(path, raw), path)
        if source is not None and source != ("workflow" if is_ui_workflow(data) else "prompt"):
            found = "a UI-format workflow" if is_ui_workflow(data) else "an API-format prompt"
            raise WorkflowError(
                f"workflow_source: {source} picks one graph of a PNG or WebP; this JSON file "
                f"holds {found}",
                path,
            )
        return _checked(data, path)
    graphs = embedded_graphs(path, raw, kind)
    where = "text chunks" if kind == "PNG" else "EXIF"
    if not graphs:
        raise WorkflowError(
            f"this {kind} image holds no ComfyUI workflow (no 'prompt' or 'workflow' in its "
            f"{where}); ComfyUI embeds both unless it runs with --disable-metadata, and other "
            "programs often drop them when they save an image again",
            path,
        )
    chosen = source or next(key for key in SOURCES if key in graphs)
    if chosen not in graphs:
        (other,) = graphs
        raise WorkflowError(
            f"workflow_source: {chosen}: this {kind} image has no {chosen!r} graph in its "
            f"{where}, only {other!r}",
            path,
        )
    try:
        data = json.loads(graphs[chosen])
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"the {chosen!r} graph embedded in this {kind} image is not valid JSON: {exc.msg}",
            path,
        ) from None
    if (chosen == "workflow") != is_ui_workflow(data):
        expected = "a UI-format workflow" if chosen == "workflow" else "an API-format prompt"
        raise WorkflowError(f"the {chosen!r} graph of this {kind} image is not {expected}", path)
    return _checked(data, path)


def read_text(path: Path, raw: bytes) -> str:
    """The text of a JSON file: UTF-8 (BOM or not) or UTF-16 with a BOM; else a WorkflowError."""
    if raw.startswith(_UTF32_BOMS):
        raise WorkflowError("UTF-32 text is not read: save the file as UTF-8", path)
    encoding = "utf-8"
    if raw.startswith(codecs.BOM_UTF8):
        raw, encoding = raw[len(codecs.BOM_UTF8) :], "UTF-8"
    elif raw.startswith(_UTF16_BOMS):
        encoding = "utf-16"
    elif b"\x00" in raw[:64]:
        raise WorkflowError(
            "not UTF-8 text: it has NUL bytes, as UTF-16 or UTF-32 without a byte order mark "
            "has; save the file as UTF-8",
            path,
        )
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1 if encoding != "utf-16" else None
        byte = raw[exc.start : exc.start + 1].hex()
        label = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise WorkflowError(
            f"not {label} text: byte 0x{byte} (offset {exc.start}) cannot be decoded; save the "
            "file as UTF-8",
            path,
            line,
        ) from None


def embedded_graphs(path: Path, raw: bytes, kind: str) -> dict[str, str]:
    """The ``prompt``/``workflow`` JSON texts an image carries (either may be absent)."""
    from PIL import Image  # the image stack loads only for a workflow saved as an image

    found: dict[str, str] = {}
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if kind == "PNG":
                texts: dict[str, Any] = getattr(image, "text", {})  # loads chunks after IDAT
                found = {k: str(v) for k, v in texts.items() if k in SOURCES}
            else:
                for value in image.getexif().values():
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    key, colon, rest = str(text).partition(":")
                    if colon and key in SOURCES:
                        found.setdefault(key, rest)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise WorkflowError(f"not a readable {kind} image: {exc}", path) from None
    if kind == "PNG":
        for key, value in _comf_chunks(raw):
            found.setdefault(key, value)
    return found


def _comf_chunks(raw: bytes) -> list[tuple[str, str]]:
    """``SaveAnimatedPNG``'s private ``comf`` chunks: ``key\\0json`` in Latin-1."""
    found = []
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[position : position + 4])
        kind = raw[position + 4 : position + 8]
        body = raw[position + 8 : position + 8 + length]
        if kind == b"comf" and b"\0" in body:
            key, _, value = body.partition(b"\0")
            if key.decode("latin-1") in SOURCES:
                found.append((key.decode("latin-1"), value.decode("latin-1")))
        if kind == b"IEND":
            break
        position += 12 + length
    return found


def _parse(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"invalid JSON: {exc.msg} (column {exc.colno})", path, exc.lineno
        ) from None


def _checked(data: Any, path: Path) -> dict[str, Any]:
    """``data`` when it is a UI-format workflow or a well-formed API-format prompt."""
    if is_ui_workflow(data):
        return dict(data)  # converted at run time, with the server's /object_info
    if not isinstance(data, dict) or not data:
        raise WorkflowError("expected an API-format workflow: an object of nodes by id", path)
    for node_id, node in data.items():
        if not isinstance(node, dict) or "class_type" not in node:
            raise WorkflowError(
                f"node {node_id!r} has no class_type; is this an API-format workflow?", path
            )
        if not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError(f"node {node_id!r}: inputs must be an object", path)
    return data
