"""Scoring throughput: how fast a task's evaluation pushed tokens through the model, against the model's own
speed on the same inputs in a bare loop. A ratio well below 1 means the evaluation loop (batching, padding,
post-processing) and not the model sets the time to an answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.core.model import Batch, GenerationSettings, ModelHandle
from bench.core.records import ScoringThroughput

REPLAY_CALLS = 16
"""At most this many of the scoring calls, evenly spaced, are replayed in the bare loop..."""
REPLAY_MIN_S = 3.0
"""...round after round until it has run this long (a burst of a few calls can run faster than a loop that
lasts, which would make the evaluation look slower than it is)..."""
REPLAY_BUDGET_S = 10.0
"""...and never past this long (with at least one replayed call)."""


def tokens_in(batch: Batch) -> int:
    """Input tokens of one call, padding included (what the model computes over)."""
    ids = batch.get("input_ids")
    return int(ids.numel()) if ids is not None else 0


@dataclass
class Call:
    """One scoring call: its inputs, generation settings (None for a forward pass) and time."""

    batch: Batch
    settings: GenerationSettings | None
    seconds: float


@dataclass
class ScoringMeter:
    """Records every forward and generate call a task makes on `model` while scoring."""

    model: ModelHandle
    calls: list[Call] = field(default_factory=list)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Route the model's forward and generate calls through the recorder while scoring."""
        forward, generate = self.model.forward, self.model.generate

        def timed_forward(batch: Batch) -> Mapping[str, object]:
            start = time.perf_counter()
            out = forward(batch)
            self.calls.append(Call(batch, None, time.perf_counter() - start))
            return out

        def timed_generate(
            batch: Batch, settings: GenerationSettings, on_token: Callable[[], None] | None = None
        ) -> object:
            start = time.perf_counter()
            out = generate(batch, settings, on_token)
            self.calls.append(Call(batch, settings, time.perf_counter() - start))
            return out

        self.model.forward = timed_forward  # type: ignore[method-assign,assignment]
        self.model.generate = timed_generate  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            del self.model.forward, self.model.generate  # the class's own methods again

    def replay(self, clock: Callable[[], float] = time.perf_counter) -> tuple[int, int, float]:
        """Time a bare loop over evenly spaced recorded calls (after one untimed call): the calls replayed,
        their tokens and their seconds."""
        if not self.calls:
            return 0, 0, 0.0
        step = max(1, len(self.calls) // REPLAY_CALLS)
        chosen = self.calls[::step][:REPLAY_CALLS]
        self._call(chosen[0])
        done, tokens, spent = 0, 0, 0.0
        while spent < REPLAY_MIN_S or done < len(chosen):
            call = chosen[done % len(chosen)]
            start = clock()
            self._call(call)
            spent += clock() - start
            done, tokens = done + 1, tokens + tokens_in(call.batch)
            if spent > REPLAY_BUDGET_S:
                break
        return done, tokens, spent

    def _call(self, call: Call) -> None:
        if call.settings is None:
            self.model.forward(call.batch)
        else:
            self.model.generate(call.batch, call.settings)
        self.model.synchronize()

    def result(self, scoring_s: float) -> ScoringThroughput | None:
        """The throughput of `scoring_s` seconds of scoring against the bare replay; None without model calls."""
        tokens = sum(tokens_in(c.batch) for c in self.calls)
        if not tokens or scoring_s <= 0:
            return None
        replayed, bare_tokens, bare_s = self.replay()
        bare = bare_tokens / bare_s if bare_s > 0 else None
        rate = tokens / scoring_s
        return ScoringThroughput(
            calls=len(self.calls),
            tokens=tokens,
            seconds=scoring_s,
            model_seconds=sum(c.seconds for c in self.calls),
            tokens_per_s=rate,
            bare_tokens_per_s=bare,
            replayed_calls=replayed,
            ratio=rate / bare if bare else None,
        )
