"""Whether a stored record can stand for a new run: the environment that decided its outcome must still hold.

An ok record stands for its hardware: the CPU (model and cores), and for a CUDA run every GPU's model, UUID
and driver. A skipped record stands for what made the run impossible, which may since have changed: so it
also needs the same libraries (present, same versions) and the same CUDA availability.
"""

from __future__ import annotations

from bench.core.environment import Environment
from bench.core.records import RunRecord, Status


def same_machine(record: RunRecord, here: Environment) -> bool:
    """Whether a stored record was measured on a CPU like this machine's (model and core count): a host
    name alone does not tell, and another machine's figures must not be reused."""
    if record.environment is None:
        return True
    return (record.environment.cpu_model, record.environment.logical_cores) == (here.cpu_model, here.logical_cores)


def gpu_identity(env: Environment) -> list[tuple[str, str | None, str | None]]:
    """Each GPU's model, UUID and driver: a figure measured on one GPU does not stand for another."""
    return [(g.name, g.uuid, g.driver) for g in env.gpus]


def still_holds(record: RunRecord, here: Environment) -> bool:
    """Whether the environment that decided `record`'s outcome is this one (`here` lists its GPUs when the
    record's device is CUDA)."""
    stored = record.environment
    if not same_machine(record, here):
        return False
    if stored is None:  # records older than environments: figures stand, skips are cheap to decide again
        return record.status != Status.SKIPPED
    if record.spec.device.is_cuda and gpu_identity(stored) != gpu_identity(here):
        return False
    return record.status != Status.SKIPPED or stored.libraries == here.libraries
