"""Apply a run's compressors in order, prove each one, and check that every claim still holds at the end.

A chain of one is the common case. Longer chains are checked twice: at validation, by the traits each
step requires and removes (an ONNX step leaves no PyTorch model for a later pruning step), and after
compression, by re-running every step's `verify` on the final model, so that a claim a later step undid
(int8 weights exported back to float) fails the run instead of being reported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from bench.core.census import Census, take_census
from bench.core.compressor import LOADED_TRAITS, CompressContext, Compressor, Trait, Verification
from bench.core.errors import PluginContractError
from bench.core.model import ModelHandle

TRAIT_WORDS = {
    Trait.PYTORCH: "an eager PyTorch model",
    Trait.FLOAT_LINEAR: "float torch.nn.Linear layers",
    Trait.AS_LOADED: "the model as loaded (it reloads it)",
}


@dataclass(frozen=True)
class Step:
    """One compressor of a run, with the name it is registered under."""

    name: str
    compressor: Compressor

    def canonical(self) -> str:
        """Name and settings as canonical JSON (for cache keys of later steps)."""
        return json.dumps({"name": self.name, "config": self.compressor.config.model_dump()}, sort_keys=True)


def chain_problem(steps: Sequence[Step]) -> str | None:
    """Why these steps cannot run in this order, or None. Judged from declared traits only."""
    traits = LOADED_TRAITS
    previous: Step | None = None
    for step in steps:
        missing = sorted(step.compressor.requires - traits)
        if missing:
            after = f"after {previous.name}" if previous is not None else "first"
            needs = " and ".join(TRAIT_WORDS.get(t, t) for t in missing)
            return f"{step.name} needs {needs}, which it does not get {after} in this chain"
        traits = traits - step.compressor.removes()
        previous = step
    return None


def _checked(value: object, step: Step, method: str, expected: type) -> None:
    if not isinstance(value, expected):
        cls = type(step.compressor)
        raise PluginContractError(
            f"compressor '{step.name}' ({cls.__module__}.{cls.__qualname__}) broke the plugin contract: "
            f"{method}() returned {type(value).__name__}, not a {expected.__module__}.{expected.__name__}"
        )


def combine(verifications: Sequence[tuple[str, Verification]]) -> Verification:
    """One verification for a chain: passed if every step passed; proven if every step proved something."""
    if len(verifications) == 1:
        return verifications[0][1]
    return Verification(
        passed=all(v.passed for _, v in verifications),
        summary="; ".join(f"{name}: {v.summary}" for name, v in verifications),
        checks={name: v.checks for name, v in verifications},
        proven=all(v.proven for _, v in verifications),
    )


def apply_chain(
    model: ModelHandle, steps: Sequence[Step], ctx: CompressContext, census: Census | None = None
) -> tuple[ModelHandle, Verification]:
    """Compress `model` with each step in order; return the final model and the chain's verification.

    `census` is the census of `model` when the caller already took it. Stops at the first failed proof.
    """
    befores: list[Census] = []
    verdicts: list[tuple[str, Verification]] = []
    for i, step in enumerate(steps):
        before = census if i == 0 and census is not None else take_census(model.tensors())
        ctx.chain_before = tuple(s.canonical() for s in steps[:i])
        result = step.compressor.compress(model, ctx)
        _checked(result, step, "compress", ModelHandle)
        model = result
        verdict = step.compressor.verify(before, model)
        _checked(verdict, step, "verify", Verification)
        befores.append(before)
        verdicts.append((step.name, verdict))
        if not verdict.passed:
            return model, combine(verdicts)
    for i, step in enumerate(steps[:-1]):
        earlier = verdicts[i][1]
        if not earlier.proven:
            continue
        again = step.compressor.verify(befores[i], model)
        if again.passed:
            continue
        undone = f"undone by a later step ({again.summary}); after this step: {earlier.summary}"
        if step.compressor.claim_survives_chain:
            verdicts[i] = (step.name, earlier.model_copy(update={"passed": False, "summary": undone}))
        else:
            ctx.notes.append(f"{step.name}: {undone}")
    return model, combine(verdicts)
