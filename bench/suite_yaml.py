"""Read a suite's YAML safely: bounded size, nesting and alias expansion, and no duplicate keys."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.core.errors import ConfigError

SUITE_MAX_BYTES = 256 * 1024
YAML_MAX_NODES = 10_000
"""Nodes a suite may expand to, an alias counted each time it is used (a guard against alias bombs)."""
YAML_MAX_DEPTH = 24


class _NoDuplicates(yaml.SafeLoader):
    """safe_load that refuses a mapping with the same key twice (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {str(key)[:60]!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, depth: int, sizes: dict[int, int]) -> int:
    """Nodes under `node` once every alias is expanded; ConfigError past the limits."""
    if depth > YAML_MAX_DEPTH:
        raise ConfigError(f"nesting deeper than {YAML_MAX_DEPTH} levels")
    if id(node) in sizes:
        return sizes[id(node)]
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    total = 1
    for child in children:
        total += _expanded_size(child, depth + 1, sizes)
        if total > YAML_MAX_NODES:
            raise ConfigError(f"the suite expands to more than {YAML_MAX_NODES:,} values (aliases included)")
    sizes[id(node)] = total
    return total


def read_yaml(path: Path) -> object:
    """The suite file's content; ConfigError with one line naming the file and the problem."""
    if not path.is_file():
        raise ConfigError(f"suite file not found: {path}")
    size = path.stat().st_size
    if size > SUITE_MAX_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes: a suite file has at most {SUITE_MAX_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
        loader = _NoDuplicates(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded_size(node, 0, {})
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{at}: invalid YAML: {str(exc.problem)[:200]}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc)[:200]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nesting deeper than {YAML_MAX_DEPTH} levels") from None
