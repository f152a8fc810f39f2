"""Reading suite files: YAML into the typed configuration of bench.core.suite, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.core.errors import ConfigError
from bench.core.suite import SuiteConfig, format_validation_error

SUITES_KEYS = frozenset({"suites", "defaults", "description"})
"""The keys of a file that holds several suites."""


def merged(defaults: dict[str, Any], member: dict[str, Any]) -> dict[str, Any]:
    """`member` over `defaults`: mappings merge key by key, any other value replaces the default."""
    out = dict(defaults)
    for key, value in member.items():
        base = out.get(key)
        out[key] = merged(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
    return out


def suite_from_mapping(raw: dict[str, Any], where: str) -> SuiteConfig:
    """A suite from its parsed mapping, validated as a suite file is; ConfigError names `where` and the field."""
    return _validated(dict(raw), where)


def _validated(raw: dict[str, Any], where: str) -> SuiteConfig:
    try:
        return SuiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix=where)) from None


def load_suites(path: Path) -> list[SuiteConfig]:
    """The suites of a suite file: one, or several under `suites:` (each merged over `defaults:`, so that
    one file can sweep several models or tasks). ConfigError names the member and the field."""
    from bench.suite_yaml import read_yaml

    raw = read_yaml(path)
    if not isinstance(raw, dict) or "suites" not in raw:
        return [_single(raw, path)]
    extra = sorted(set(raw) - SUITES_KEYS)
    if extra:
        raise ConfigError(
            f"{path}: {extra[0]}: a file of several suites holds only `defaults`, `suites` and `description`"
        )
    members, defaults = raw["suites"], raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults: a mapping of suite keys shared by every suite")
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) for m in members):
        raise ConfigError(f"{path}: suites: a list of suites (mappings), at least one")
    suites = []
    for i, member in enumerate(members):
        if "name" not in member:
            raise ConfigError(f"{path}: suites[{i}].name: each suite of the file needs its own name")
        suites.append(_validated(merged(defaults, member), f"{path}: suites[{i}] ({str(member['name'])[:40]}): "))
    names = [suite.name for suite in suites]
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise ConfigError(f"{path}: suites: the name '{twice}' appears twice (it names the results folder)")
    return suites


def load_suite(path: Path) -> SuiteConfig:
    """Read and validate a single-suite file. Raises ConfigError with a single line naming the problem."""
    from bench.suite_yaml import read_yaml

    return _single(read_yaml(path), path)


def _single(raw: object, path: Path) -> SuiteConfig:
    """The suite of a single-suite file's parsed content."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a suite is a mapping of keys (name, model, task, compressors, ...)")
    if "suites" in raw:
        raise ConfigError(f"{path}: holds several suites (`suites:`): this command takes a file of one suite")
    raw.setdefault("name", path.stem)
    return _validated(raw, f"{path}: ")
