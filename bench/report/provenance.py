"""Where and with what the records were measured, and warnings when they do not all agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.core.environment import describe
from bench.core.records import RunRecord

KEY_LIBRARIES = (
    "torch",
    "transformers",
    "optimum",
    "onnxruntime",
    "openvino",
    "nncf",
    "bitsandbytes",
    "torchao",
    "bench",
)


@dataclass
class Provenance:
    """What a report's header says about its records."""

    machines: list[str]
    cpu_flags: list[str]
    gpus: list[str]
    libraries: dict[str, list[str]]
    """Library -> the distinct versions found."""
    commits: list[str]
    suites: list[str]
    measured: tuple[str, str] | None
    """First and last run start (UTC)."""
    records: int
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Files that could not be read, each with the reason."""


def provenance(records: Sequence[RunRecord], skipped: Sequence[str] = ()) -> Provenance:
    """Summarize the environments of `records`, warning about mixed machines, versions or measurement
    modes; `skipped` lists the files that could not be read."""
    envs = [r.environment for r in records if r.environment]
    described = {e.machine for e in envs}  # a record without an environment names its machine only
    machines = sorted({describe(e) for e in envs} | {r.machine for r in records if not r.environment} - described)
    libraries: dict[str, list[str]] = {}
    for name in KEY_LIBRARIES:
        versions = sorted({e.libraries[name] for e in envs if name in e.libraries})
        if versions:
            libraries[name] = versions
    commits = sorted({e.git_commit[:10] + ("+dirty" if e.git_dirty else "") for e in envs if e.git_commit})
    starts = sorted(r.started_at for r in records)
    found = Provenance(
        machines=machines,
        cpu_flags=sorted({f for e in envs for f in e.cpu_flags}),
        gpus=sorted({g.name for e in envs for g in e.gpus}),
        libraries=libraries,
        commits=commits,
        suites=sorted({r.spec.suite for r in records}),
        measured=(starts[0], starts[-1]) if starts else None,
        records=len(records),
        skipped=list(skipped),
    )
    if len(machines) > 1:
        found.warnings.append(
            f"these records come from {len(machines)} machines: each table holds one machine's runs; "
            "do not compare figures across tables of different machines"
        )
    mixed = [f"{name} ({', '.join(v)})" for name, v in libraries.items() if len(v) > 1]
    if mixed:
        found.warnings.append(f"these records were measured with different library versions: {'; '.join(mixed)}")
    if len({r.spec.quick for r in records}) > 1:
        found.warnings.append(
            f"these records mix quick and full measurements ({sum(r.spec.quick for r in records)} of "
            f"{len(records)} quick): their tables are separate; do not compare their latencies"
        )
    if len(commits) > 1:
        found.warnings.append(f"these records come from {len(commits)} bench commits: {', '.join(commits)}")
    return found


def header_lines(p: Provenance) -> list[tuple[str, str]]:
    """(label, text) pairs for a report header."""
    lines = [
        ("Suites", ", ".join(p.suites)),
        ("Machine" + ("s" if len(p.machines) > 1 else ""), "; ".join(p.machines) or "unknown"),
        ("CPU flags", " ".join(p.cpu_flags) or "none recorded"),
        ("GPU", ", ".join(p.gpus) or "none"),
        ("Libraries", ", ".join(f"{k} {'/'.join(v)}" for k, v in p.libraries.items())),
        ("bench commit" + ("s" if len(p.commits) > 1 else ""), ", ".join(p.commits) or "unknown"),
    ]
    if p.measured:
        lines.append(("Measured", f"{p.measured[0]} to {p.measured[1]}"))
    if p.skipped:
        lines.append((f"Skipped files ({len(p.skipped)})", "; ".join(p.skipped)))
    return lines
