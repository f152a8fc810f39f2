"""Plugin registry: name -> plugin class, from the entry-point groups `bench.compressors` and `bench.tasks`.

Entry points are listed without importing them; a plugin's module is imported only when it is used,
so `bench list` and `bench validate` stay fast and a broken third-party plugin breaks only its runs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from bench.errors import BenchError

COMPRESSORS_GROUP = "bench.compressors"
TASKS_GROUP = "bench.tasks"


class PluginError(BenchError):
    """An unknown, duplicated or unloadable plugin."""


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin, not yet imported."""

    name: str
    group: str
    target: str
    distribution: str

    def load(self) -> Any:
        """Import the plugin class. Import errors become one-line PluginErrors."""
        try:
            return EntryPoint(name=self.name, value=self.target, group=self.group).load()
        except Exception as exc:
            raise PluginError(
                f"plugin '{self.name}' ({self.target}, from {self.distribution}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


@cache
def _entries(group: str) -> dict[str, PluginEntry]:
    found: dict[str, PluginEntry] = {}
    for ep in entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else "?"
        entry = PluginEntry(name=ep.name, group=group, target=ep.value, distribution=dist)
        previous = found.get(ep.name)
        if previous is not None and previous.target != entry.target:
            raise PluginError(
                f"two plugins are registered as '{ep.name}' in {group}: {previous.target} "
                f"({previous.distribution}) and {entry.target} ({dist})"
            )
        found[ep.name] = entry
    return found


def available(group: str) -> dict[str, PluginEntry]:
    """All plugins registered in `group`, by name."""
    return dict(sorted(_entries(group).items()))


def suggest(name: str, choices: list[str]) -> str:
    """A ' (did you mean ...?)' hint, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def entry(group: str, name: str) -> PluginEntry:
    """The registered plugin called `name`, or a PluginError with a did-you-mean."""
    entries = _entries(group)
    if name in entries:
        return entries[name]
    kind = "compressor" if group == COMPRESSORS_GROUP else "task"
    known = ", ".join(sorted(entries)) or "none"
    raise PluginError(f"unknown {kind} '{name}'{suggest(name, list(entries))}; installed: {known}")


def load_compressor(name: str) -> Any:
    """The compressor class registered as `name`."""
    return entry(COMPRESSORS_GROUP, name).load()


def load_task(name: str) -> Any:
    """The task class registered as `name`."""
    return entry(TASKS_GROUP, name).load()
