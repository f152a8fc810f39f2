"""The notes below each table: what the records say about how their figures came about."""

from __future__ import annotations

from bench.core.records import RunRecord


def compression_facts(record: RunRecord) -> list[str]:
    """Human-readable lines for what the compressors reported doing (training, calibration)."""
    facts = record.compression
    lines = []
    if "train_steps" in facts:
        cached = ", loaded from the student cache" if facts.get("cached") else ""
        first, last = facts.get("loss_first"), facts.get("loss_last")
        loss = (
            f"loss {first:.2f} → {last:.2f}"
            if isinstance(first, (int, float)) and isinstance(last, (int, float))
            else "loss not finite"
        )
        seconds = facts.get("train_time_s")
        lines.append(
            f"student of layers {facts.get('student_layers')} trained {facts['train_steps']} steps in "
            f"{seconds if isinstance(seconds, (int, float)) else 0:.0f} s, {loss}{cached}"
        )
    calibration = facts.get("calibration")
    ids = calibration.get("example_ids") if isinstance(calibration, dict) else None
    if isinstance(calibration, dict) and isinstance(ids, list) and ids:
        method = f", {calibration['method']}" if calibration.get("method") else ""
        lines.append(f"calibrated on {len(ids)} training-split examples{method}")
    return lines


def _verification(record: RunRecord) -> str | None:
    """How a run's proof reads in the notes: verified, FAILED, or UNVERIFIED (the plugin claims nothing)."""
    verification = record.verification
    if verification is None or record.spec.is_baseline:
        return None
    name = record.spec.compressor.display_name
    if not verification.passed:
        return f"{name}: verification FAILED: {verification.summary}"
    if not verification.proven or verification.summary == "nothing claimed":
        return f"{name}: UNVERIFIED: its plugin proves nothing about the compressed model"
    return f"{name}: verified: {verification.summary}"


def _memory_note(members: list[RunRecord]) -> str | None:
    """What the two memory columns measure, with the evaluation batch size."""
    if not any(r.memory and "evaluate" in r.memory.phase_peaks for r in members):
        return None
    sizes = sorted({r.memory.evaluate_batch_size for r in members if r.memory and r.memory.evaluate_batch_size})
    at = f"{'/'.join(map(str, sizes))} inputs per call" if sizes else "the task's evaluation batch size"
    return (
        "all runs: peak RSS is the process's peak while timing, at this table's shape; eval RSS is its peak "
        f"while scoring accuracy, at {at}"
    )


def execution_note(members: list[RunRecord]) -> str | None:
    """Which attention kernels and compilation each run executed: one line when all agree, a MIXED flag
    naming the rows when they differ (an sdpa row is never compared with an eager one unknowingly)."""
    kinds: dict[str, list[str]] = {}
    for r in members:
        if r.execution is None:
            continue
        ran = f"{r.execution.attention} attention" if r.execution.attention else "attention unknown"
        if r.execution.attention_pattern and r.execution.attention_pattern != "full":
            ran += f" ({r.execution.attention_pattern})"
        if r.execution.compiled:
            ran += f", compiled ({r.execution.compile_mode})"
        kinds.setdefault(ran, []).append(r.spec.compressor.display_name)
    if not kinds:
        return None
    if len(kinds) == 1:
        return f"all runs: {next(iter(kinds))}"
    rows = "; ".join(f"{ran}: {', '.join(names)}" for ran, names in kinds.items())
    return f"MIXED EXECUTION: the rows ran different attention kernels or compilation ({rows})"


def serving_note(members: list[RunRecord]) -> str | None:
    """Where the rows were measured: served from their saved files in a fresh process, or (naming each, with
    its reason) in the process that compressed them."""
    served = [r.spec.compressor.display_name for r in members if r.serving and r.serving.where == "fresh process"]
    here = [r for r in members if r.serving and r.serving.where == "compressing process"]
    if not served and not here:
        return None
    parts = []
    if served:
        who = "all runs" if len(served) == len(members) else ", ".join(served)
        parts.append(f"{who}: timed, scored and weighed as deployed (the saved files served by their runtime alone)")
    if here:
        reasons = "; ".join(f"{r.spec.compressor.display_name} ({r.serving.reason})" for r in here if r.serving)
        parts.append(f"measured in the compressing process, with its leftovers in the memory figures: {reasons}")
    return "; ".join(parts)


def rounds_note(members: list[RunRecord]) -> str | None:
    """How the latency rows were timed: in interleaved rounds (which, and how), or each in its own window."""
    sessions: dict[str, list[RunRecord]] = {}
    for r in members:
        if r.interleaving is not None:
            sessions.setdefault(r.interleaving.session, []).append(r)
    if not sessions:
        return None
    lines = []
    for rows in sessions.values():
        first = rows[0].interleaving
        assert first is not None
        kept = "their processes held side by side" if first.held else "each row in a fresh process per round"
        names = ", ".join(r.spec.compressor.display_name for r in rows)
        lines.append(
            f"latency of {names}: {first.rounds} interleaved rounds of {first.slice_s:g} s per row in a rotating "
            f"order ({kept}); their intervals resample rounds, then samples, paired by round, widened for "
            f"{first.rounds} rounds"
        )
    alone = [r.spec.compressor.display_name for r in members if r.interleaving is None and r.latency]
    if alone:
        lines.append(f"latency of {', '.join(alone)}: each in its own window, not interleaved with the others")
    return "; ".join(lines)


def table_notes(members: list[RunRecord]) -> list[str]:
    """Notes shared by every run once, then each run's own, its proof and its compression facts."""
    shared = set.intersection(*(set(r.notes) for r in members)) if len(members) > 1 else set()
    notes = [f"all runs: {n}" for n in members[0].notes if n in shared]
    notes += [f"{r.spec.compressor.display_name}: {n}" for r in members for n in r.notes if n not in shared]
    notes += [line for r in members if (line := _verification(r)) is not None]
    notes += [f"{r.spec.compressor.display_name}: {fact}" for r in members for fact in compression_facts(r)]
    notes = [n for n in notes if not n.split(": ", 1)[-1].startswith("random weights (")]  # said once below
    for extra in (serving_note(members), rounds_note(members), _memory_note(members), execution_note(members)):
        if extra:
            notes.append(extra)
    if any(r.weights == "random" for r in members):
        build = next((r.model_info for r in members if r.model_info), {})
        architecture = build.get("architecture") or members[0].spec.model.architecture or "model"
        parameters = build.get("parameters")
        notes.insert(
            0,
            f"RANDOM WEIGHTS ({architecture} shapes, {parameters if isinstance(parameters, int) else 0:,} "
            "parameters, tokenizer trained locally): accuracy scores are not meaningful; latency, memory, "
            "size and agreement with the baseline are",
        )
    return notes
