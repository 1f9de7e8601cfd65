"""A YAML loader whose mappings remember the 1-based line of every key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from comfytest.errors import CaseError

__all__ = ["LineMap", "load_yaml"]


class LineMap(dict[Any, Any]):
    """A dict from YAML that knows where it and each of its keys stood."""

    line: int
    lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


# libyaml's parser when PyYAML was built with it (about 10x faster), else the pure-Python one.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int)):
            raise CaseError(f"keys must be strings, got {key!r}", loader.name, line)
        if key in result:
            raise CaseError(f"duplicate key {key!r}", loader.name, line)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    """Parse one YAML document; syntax errors become a CaseError at the offending line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaseError(f"cannot read: {exc.strerror or exc}", path) from None
    loader = _Loader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        raise CaseError(f"invalid YAML: {problem}", path, line) from None
    except yaml.YAMLError as exc:
        raise CaseError(f"invalid YAML: {exc}", path) from None
    finally:
        loader.dispose()
