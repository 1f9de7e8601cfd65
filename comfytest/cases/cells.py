"""Sweep cell ids: ``axis=value`` parts that are readable, distinct and stable for any value.

A value's part is its text made safe for a folder name (``a red fox`` -> ``a_red_fox``).
When that text cannot stand for the value alone, a short digest of the value follows it
after ``+`` (``kitsune+3f2a91``):

- the value has characters outside ASCII: they are transliterated (accents dropped,
  Cyrillic and Greek by table, other letters by their Unicode name, ideographs as ``uXXXX``);
- its text was cut to 40 characters, or nothing readable is left of it;
- another value of the same axis has the same text (``a red fox`` beside ``a_red_fox``).

An id depends on the value and on the other values of its axis only, never on their order,
so a baseline follows its value when a list is reordered. Plain ASCII values keep the ids
they always had.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from comfytest.defaults import SWEEP_MAX_CELLS, SWEEP_WARN_CELLS
from comfytest.errors import CaseError, SweepSizeWarning

__all__ = ["DIGEST_MARK", "axis_parts", "check_size", "part_of", "value_digest", "value_text"]

#: What separates a value's readable text from its digest in a cell id.
DIGEST_MARK = "+"
MAX_TEXT = 40
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+:x-]+")


def _table(letters: str, spelled: str) -> dict[str, str]:
    return dict(zip(letters, spelled.split(), strict=True))


_CYRILLIC = _table(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяієїґ",
    "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch _ y _ e yu ya i ye yi g",
)
_GREEK = _table("αβγδεζηθικλμνξοπρσςτυφχψω", "a v g d e z i th i k l m n x o p r s s t y f ch ps o")
_LATIN = {"ß": "ss", "æ": "ae", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "œ": "oe", "\u0131": "i"}


def _letter(char: str) -> str:
    """One non-ASCII character in ASCII letters ("" when it has no readable form)."""
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base.isascii():
        return base
    for table in (_LATIN, _CYRILLIC, _GREEK):
        if base.lower() in table:
            return table[base.lower()].strip("_")
    name = unicodedata.name(base if len(base) == 1 else char, "")
    if name.startswith("CJK ") or not name:
        return f"u{ord(char):04x}" if char.isalnum() else ""
    words = name.split()
    for marker in ("LETTER", "SYLLABLE", "CHARACTER"):
        if marker in words[:-1]:
            spelled = words[words.index(marker) + 1 :]
            spelled = spelled[: spelled.index("WITH")] if "WITH" in spelled else spelled
            return "".join(w for w in spelled if w not in ("SMALL", "CAPITAL")).lower()
    return f" {' '.join(words).lower()} "  # FOX FACE -> fox_face


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return str(value)


def value_text(value: Any) -> tuple[str, bool]:
    """A value's readable, folder-safe text, and whether that text is short of the value
    (transliterated, cut, or empty) so that a digest must follow it."""
    shown = _shown(value)
    ascii_text = "".join(c if c.isascii() else _letter(c) for c in shown)
    text = _UNSAFE.sub("_", ascii_text).strip("_")
    short = not shown.isascii() or len(text) > MAX_TEXT or not text
    return text[:MAX_TEXT].rstrip("_") or "_", short


def value_digest(value: Any) -> str:
    """Six hex digits that tell values apart (the type counts: 5 is not "5")."""
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()[:6]


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def axis_parts(values: Sequence[Any]) -> dict[str, str]:
    """Canonical value (``json.dumps``) -> its id part, for every value of one axis."""
    texts: dict[str, tuple[str, bool]] = {_key(v): value_text(v) for v in values}
    originals = {_key(v): v for v in values}
    by_text: dict[str, list[str]] = {}
    for key, (text, _) in texts.items():
        by_text.setdefault(text, []).append(key)
    parts: dict[str, str] = {}
    for key, (text, short) in texts.items():
        clash = len(by_text[text]) > 1
        digest = short or (clash and not _verbatim(originals[key], text))
        parts[key] = f"{text}{DIGEST_MARK}{value_digest(originals[key])}" if digest else text
    # Values whose text is their own (5 and "5", 3.0 and "3.0") may still share a part.
    counts: dict[str, int] = {}
    for part in parts.values():
        counts[part] = counts.get(part, 0) + 1
    for key, part in parts.items():
        if counts[part] > 1:
            parts[key] = f"{texts[key][0]}{DIGEST_MARK}{value_digest(originals[key])}"
    return parts


def _verbatim(value: Any, text: str) -> bool:
    """The text is exactly the value as written (nothing replaced)."""
    return _shown(value) == text


def part_of(parts: dict[str, str], value: Any) -> str:
    return parts[_key(value)]


def check_size(
    case_id: str,
    size: int,
    allowed: tuple[object, Path, int] | None,
    where: tuple[Path, int],
) -> None:
    """Refuse a sweep above SWEEP_MAX_CELLS cells, and warn above SWEEP_WARN_CELLS, unless
    the case's ``max_cells`` allows its size; ``where`` is the sweep's file and line."""
    if allowed is not None:
        limit, path, line = allowed
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise CaseError(f"max_cells: expected an integer >= 1, got {limit!r}", path, line)
        if size > limit:
            raise CaseError(
                f"{case_id}: the sweep has {size:,} cells, more than its max_cells: {limit:,}",
                *where,
            )
        return
    if size > SWEEP_MAX_CELLS:
        raise CaseError(
            f"{case_id}: the sweep has {size:,} cells (more than {SWEEP_MAX_CELLS:,}); a typo? "
            f"If it is meant, allow it with 'max_cells: {size}' in the case",
            *where,
        )
    if size > SWEEP_WARN_CELLS:
        warnings.warn_explicit(
            f"{case_id}: the sweep has {size:,} cells (more than {SWEEP_WARN_CELLS:,}); "
            f"'max_cells: {size}' in the case says it is meant",
            SweepSizeWarning,
            str(where[0]),
            where[1],
        )
