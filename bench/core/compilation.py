"""torch.compile bookkeeping: how many graphs dynamo has built in this process, and how many of them were
built while a run was being timed (a recompilation there puts compile time into the samples)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def graphs_compiled() -> int:
    """Graphs torch.compile has built in this process so far (dynamo's unique graph count)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def fx_cache_hits() -> int:
    """Inductor graphs loaded from its on-disk cache instead of compiled (a warm cache shortens compile
    time: records say how many)."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["fxgraph_cache_hit"])


@dataclass
class RecompileWatch:
    """Counts the graphs built inside `region()`, summed over every time it is entered."""

    built: int = 0

    @contextmanager
    def region(self) -> Iterator[None]:
        """Count the graphs built while the block runs."""
        before = graphs_compiled()
        try:
            yield
        finally:
            self.built += graphs_compiled() - before


def recompile_note(built: int) -> str:
    """A record's note for graphs built during timed calls."""
    return (
        f"torch.compile built {built} graph(s) during timed calls: these timings include recompilation "
        "(inputs of new shapes after warm-up)"
    )
