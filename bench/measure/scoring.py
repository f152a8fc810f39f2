"""Scoring throughput: how fast a task's evaluation pushed tokens through the model, against the model's own
speed on the same inputs in a bare call. A ratio well below 1 means the evaluation loop (batching, padding,
post-processing) and not the model sets the time to an answer.

The bare calls are interleaved with the scoring: every REPLAY_EVERY-th call is made again at once, timed on its
own, so that a machine whose speed drifts during a long evaluation slows both figures alike. The replays'
time is taken out of the scoring's."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.core.model import Batch, GenerationSettings, ModelHandle
from bench.core.records import ScoringThroughput

REPLAY_EVERY = 10
"""Every this many scoring calls, the last one is replayed bare (about a tenth more model time)."""
MIN_REPLAYS = 4
"""An evaluation of fewer calls replays them all after scoring, until this many replays are timed."""


def tokens_in(batch: Batch) -> int:
    """Input tokens of one call, padding included (what the model computes over)."""
    ids = batch.get("input_ids")
    return int(ids.numel()) if ids is not None else 0


@dataclass
class ScoringMeter:
    """Records every forward and generate call a task makes on `model` while scoring, and replays some bare."""

    model: ModelHandle
    clock: Callable[[], float] = time.perf_counter
    calls: int = 0
    tokens: int = 0
    model_seconds: float = 0.0
    replays: list[tuple[int, float]] = field(default_factory=list)
    """(tokens, seconds) of each bare replay."""
    interleaved_s: float = 0.0
    """Time of the replays made during scoring (not scoring's own)."""
    recent: list[tuple[Batch, GenerationSettings | None]] = field(default_factory=list)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Route the model's forward and generate calls through the meter while scoring."""
        forward, generate = self.model.forward, self.model.generate

        def timed_forward(batch: Batch) -> Mapping[str, object]:
            start = self.clock()
            out = forward(batch)
            self._called(batch, None, self.clock() - start)
            return out

        def timed_generate(
            batch: Batch, settings: GenerationSettings, on_token: Callable[[], None] | None = None
        ) -> object:
            start = self.clock()
            out = generate(batch, settings, on_token)
            self._called(batch, settings, self.clock() - start)
            return out

        self.model.forward = timed_forward  # type: ignore[method-assign,assignment]
        self.model.generate = timed_generate  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            del self.model.forward, self.model.generate  # the class's own methods again

    def _called(self, batch: Batch, settings: GenerationSettings | None, seconds: float) -> None:
        self.calls += 1
        self.tokens += tokens_in(batch)
        self.model_seconds += seconds
        if len(self.recent) < MIN_REPLAYS:
            self.recent.append((batch, settings))
        if self.calls % REPLAY_EVERY == 0:  # never the first, cold call
            self.interleaved_s += self._replay(batch, settings)

    def _replay(self, batch: Batch, settings: GenerationSettings | None) -> float:
        """Make one call again, bare (the class's own method, not the meter's), and time it."""
        start = self.clock()
        if settings is None:
            type(self.model).forward(self.model, batch)
        else:
            type(self.model).generate(self.model, batch, settings)
        self.model.synchronize()
        seconds = self.clock() - start
        self.replays.append((tokens_in(batch), seconds))
        return seconds

    def result(self, scoring_s: float) -> ScoringThroughput | None:
        """The throughput of `scoring_s` seconds of scoring (replays included, and taken out here) against the
        bare replays; None without model calls."""
        if not self.tokens:
            return None
        for batch, settings in self.recent[: max(0, MIN_REPLAYS - len(self.replays))]:
            self._replay(batch, settings)  # a short evaluation: its first calls, replayed after it
        loop_s = scoring_s - self.interleaved_s
        if loop_s <= 0:
            return None
        bare_tokens, bare_s = sum(t for t, _ in self.replays), sum(s for _, s in self.replays)
        bare = bare_tokens / bare_s if bare_s > 0 else None
        rate = self.tokens / loop_s
        return ScoringThroughput(
            calls=self.calls,
            tokens=self.tokens,
            seconds=loop_s,
            model_seconds=self.model_seconds,
            tokens_per_s=rate,
            bare_tokens_per_s=bare,
            replayed_calls=len(self.replays),
            ratio=rate / bare if bare else None,
        )
