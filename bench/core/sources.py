"""Where a model or dataset was found: a local path, a hub id, or a shipped architecture."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A resolved model or dataset: a local path, a hub id, or (models only) a shipped architecture that is
    built here with random weights (`location` is then the architecture's name; see bench.random_models)."""

    location: str
    local: bool
    architecture: bool = False

    @classmethod
    def built(cls, architecture: str) -> Source:
        """The source of a shipped architecture built with random weights."""
        return cls(architecture, local=True, architecture=True)

    def describe(self) -> str:
        """Human-readable origin."""
        if self.architecture:
            return f"architecture:{self.location}"
        return self.location if self.local else f"hub:{self.location}"
