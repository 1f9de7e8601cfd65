"""Which baseline each output is judged against, when node ids may have changed.

An output's key is ``<node id>-<index>`` (``<node id>-t<index>`` for text). Its baseline is
the file of the same key, unless the graph was renumbered: then the manifest's record of
each baseline's node (``comfytest.workflow.identity``) finds it. Rules, in order; each pairs
only what is unique on both sides among what is still unpaired, so no guess is made:

1. same key, same computation (``values``);
2. same computation, same index, any key: the graph was renumbered;
3. same key, same shape: a value was changed in place;
4. same shape, same index, any key: renumbered, and a value changed;
5. same key: the graph upstream was rebuilt;
6. a baseline whose manifest records no identity (made before comfytest recorded one) and
   the one output left of its kind (image or text).

An output left unpaired has no baseline; a baseline left unpaired was not produced."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence

__all__ = ["Identified", "pair_outputs"]

#: A key and, where known, its node's identity (``{"shape": ..., "values": ...}``).
Identified = tuple[str, Mapping[str, str] | None]
_Rule = Callable[[Identified, bool], Hashable | None]


def pair_outputs(actual: Sequence[Identified], baselines: Sequence[Identified]) -> dict[str, str]:
    """``{output key: baseline key}`` for every output whose baseline was found."""
    paired: dict[str, str] = {}
    for rule in _RULES:
        left = [a for a in actual if a[0] not in paired]
        taken = set(paired.values())
        free = [b for b in baselines if b[0] not in taken]
        mine = _unique(left, rule, False)
        theirs = _unique(free, rule, True)
        for tag, key in mine.items():
            if tag in theirs:
                paired[key] = theirs[tag]
    return paired


def _unique(items: Sequence[Identified], rule: _Rule, baseline: bool) -> dict[Hashable, str]:
    tags = {item[0]: rule(item, baseline) for item in items}
    counts = Counter(tag for tag in tags.values() if tag is not None)
    return {tag: key for key, tag in tags.items() if tag is not None and counts[tag] == 1}


def _index(key: str) -> str:
    return key.rpartition("-")[2]


def _kind(key: str) -> str:
    return "text" if _index(key).startswith("t") else "image"


def _digest(name: str, key_too: bool) -> _Rule:
    def rule(item: Identified, baseline: bool) -> Hashable | None:
        key, identity = item
        value = identity.get(name) if identity else None
        if value is None:
            return None
        return (key if key_too else _index(key), value)

    return rule


def _same_key(item: Identified, baseline: bool) -> Hashable | None:
    return item[0]


def _last_of_kind(item: Identified, baseline: bool) -> Hashable | None:
    key, identity = item
    return None if baseline and identity else _kind(key)


_RULES: tuple[_Rule, ...] = (
    _digest("values", True),
    _digest("values", False),
    _digest("shape", True),
    _digest("shape", False),
    _same_key,
    _last_of_kind,
)
