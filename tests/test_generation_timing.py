"""Generation timing: first token, per token and tokens/s from a fake clock, and the fixed-length check."""

from collections.abc import Callable

import pytest

from bench.core.generation_timing import WrongOutputLength, time_generation
from bench.core.latency import LatencySettings
from bench.core.shape import Shape

SETTINGS = LatencySettings(warmup=2, min_iterations=5, min_duration_s=0.0, max_iterations=5, max_duration_s=60.0)


class FakeModel:
    """Each call: the prefill takes `prefill_ms`, every later token `step_ms`, on a fake clock."""

    def __init__(self, prefill_ms: float, step_ms: float, tokens: int) -> None:
        self.now = 0
        self.prefill, self.step, self.tokens = int(prefill_ms * 1e6), int(step_ms * 1e6), tokens

    def clock(self) -> int:
        return self.now

    def generate(self, x: int, on_token: Callable[[], None]) -> int:
        self.now += self.prefill
        on_token()
        for _ in range(self.tokens - 1):
            self.now += self.step
            on_token()
        return self.tokens


def test_first_token_per_token_and_tokens_per_second() -> None:
    fake = FakeModel(prefill_ms=20.0, step_ms=5.0, tokens=8)
    timing = time_generation(
        fake.generate, [1, 2, 3], SETTINGS, 8, Shape(batch_size=2, sequence_length=16), clock=fake.clock
    )
    assert timing.generate.stats.n == 5 and timing.first_token.stats.n == 5
    assert timing.first_token.stats.p50 == pytest.approx(20.0)
    assert timing.per_token.stats.p50 == pytest.approx(5.0)
    assert timing.generate.stats.p50 == pytest.approx(20.0 + 7 * 5.0)
    assert timing.generate.tokens_per_s == pytest.approx(1000 * 2 * 8 / 55.0)
    assert set(timing.as_dict()) == {"generate", "first_token", "per_token"}


def test_a_call_that_stops_early_is_an_error() -> None:
    fake = FakeModel(prefill_ms=1.0, step_ms=1.0, tokens=5)
    with pytest.raises(WrongOutputLength, match="exactly 8 new tokens; the model produced 5"):
        time_generation(fake.generate, [1], SETTINGS, 8, Shape(batch_size=1, sequence_length=4), clock=fake.clock)


def test_at_least_two_tokens() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        time_generation(lambda x, cb: 1, [1], SETTINGS, 1, Shape(batch_size=1, sequence_length=4))


def test_new_tokens_end_at_the_first_eos_even_when_the_model_emits_the_pad_id() -> None:
    import torch

    from bench.tasks.seq2seq import new_token_count

    sequences = torch.tensor([[0, 5, 0, 0, 1, 0, 0], [0, 7, 7, 7, 7, 7, 7], [0, 1, 0, 0, 0, 0, 0]])
    assert new_token_count(sequences, eos_id=1) == [4, 6, 1]  # T5: pad 0 is the start token too
