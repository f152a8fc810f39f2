"""Plugin registries: name -> plugin class, from the entry-point groups `bench.compressors`, `bench.tasks` and
`bench.launchers`.

Entry points are listed without importing them; a plugin's module is imported only when a suite uses it,
so `bench list` and `bench validate` stay fast and a broken or clashing third-party plugin breaks only the
suites that name it. Loading checks that the class is the right kind of plugin and carries the name it is
registered under, so the name lives in one place.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar, cast

from bench.core.compressor import Compressor
from bench.core.errors import BenchError
from bench.core.launcher import Launcher
from bench.core.task import Task

COMPRESSORS_GROUP = "bench.compressors"
TASKS_GROUP = "bench.tasks"
LAUNCHERS_GROUP = "bench.launchers"

P = TypeVar("P", Compressor, Task, Launcher)


class PluginError(BenchError):
    """An unknown, clashing or unloadable plugin."""


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin, not yet imported."""

    name: str
    group: str
    target: str
    """`module:Class`."""
    distribution: str
    version: str

    @property
    def origin(self) -> str:
        """The distribution and version that registered it, e.g. 'bench 0.1.0'."""
        return f"{self.distribution} {self.version}"


def suggest(name: str, choices: list[str]) -> str:
    """A ' (did you mean ...?)' hint, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[P]):
    """The plugins of one entry-point group, all of one base class."""

    def __init__(self, group: str, kind: str, base: type) -> None:
        self.group = group
        self.kind = kind
        self.base = base
        self._loaded: dict[str, type[P]] = {}

    @cached_property
    def _candidates(self) -> dict[str, list[PluginEntry]]:
        found: dict[str, list[PluginEntry]] = {}
        for ep in entry_points(group=self.group):
            dist = ep.dist
            entry = PluginEntry(
                name=ep.name,
                group=self.group,
                target=ep.value,
                distribution=dist.name if dist is not None else "?",
                version=dist.version if dist is not None else "?",
            )
            same = found.setdefault(ep.name, [])
            if entry not in same:  # one distribution seen twice (editable installs) is not a clash
                same.append(entry)
        return dict(sorted(found.items()))

    def names(self) -> list[str]:
        """Every registered name, clashing ones included."""
        return list(self._candidates)

    def clashes(self) -> dict[str, list[PluginEntry]]:
        """Names registered by more than one plugin, with each registration."""
        return {name: entries for name, entries in self._candidates.items() if len(entries) > 1}

    def entry(self, name: str) -> PluginEntry:
        """The one plugin registered as `name`; a PluginError for an unknown or clashing name."""
        entries = self._candidates.get(name)
        if not entries:
            known = ", ".join(self.names()) or "none"
            raise PluginError(f"unknown {self.kind} '{name}'{suggest(name, self.names())}; installed: {known}")
        if len(entries) > 1:
            raise PluginError(clash_message(self.kind, name, entries))
        return entries[0]

    def load(self, name: str) -> type[P]:
        """Import the plugin class registered as `name` and check that it honours the contract."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self.entry(name)
        try:
            loaded = EntryPoint(name=entry.name, value=entry.target, group=entry.group).load()
        except Exception as exc:
            raise PluginError(
                f"{self.kind} '{name}' ({entry.target}, from {entry.origin}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if not (isinstance(loaded, type) and issubclass(loaded, self.base)):
            raise PluginError(
                f"{self.kind} '{name}' ({entry.target}, from {entry.origin}) is not a subclass of "
                f"{self.base.__module__}.{self.base.__name__}"
            )
        declared = getattr(loaded, "name", None)
        if declared != name:
            raise PluginError(
                f"{self.kind} '{name}' ({entry.target}, from {entry.origin}) declares name = {declared!r}: "
                f"the class's `name` and its entry-point name in {self.group} must be the same"
            )
        plugin = cast("type[P]", loaded)
        self._loaded[name] = plugin
        return plugin


def clash_message(kind: str, name: str, entries: list[PluginEntry]) -> str:
    """Why `name` cannot be used, and how to resolve it."""
    who = " and ".join(f"{e.target} ({e.origin})" for e in entries)
    return (
        f"{kind} '{name}' is registered by more than one installed package: {who}; "
        f"uninstall one of them, or rename its entry point"
    )


COMPRESSORS: Registry[Compressor] = Registry(COMPRESSORS_GROUP, "compressor", Compressor)
TASKS: Registry[Task] = Registry(TASKS_GROUP, "task", Task)
LAUNCHERS: Registry[Launcher] = Registry(LAUNCHERS_GROUP, "launcher", Launcher)
