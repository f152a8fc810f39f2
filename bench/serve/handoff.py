"""What a served run leaves in its work folder for the interleaved rounds that follow it: the serving recipe
and the timing inputs (numpy), so that the launcher can serve the saved model again without PyTorch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from bench.core.records import atomic_write_text
from bench.core.serving import ServeRecipe
from bench.serve.protocol import Arrays

HANDOFF_FOLDER = "rounds"
SAVED_FOLDER = "saved"


class HandoffFacts(BaseModel):
    """The recipe and what one timing call's figures are of."""

    recipe: ServeRecipe
    scope: str
    inputs: int


@dataclass(frozen=True)
class Handoff:
    """A served run's saved model, recipe and timing inputs, read back."""

    saved: Path
    recipe: ServeRecipe
    scope: str
    pool: list[Arrays]


def leave(workdir: Path, recipe: ServeRecipe, pool: list[Arrays], scope: str) -> None:
    """Write the recipe and the timing inputs beside the saved model."""
    folder = workdir / HANDOFF_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"{i}/{name}": value for i, batch in enumerate(pool) for name, value in batch.items()}
    np.savez(folder / "pool.npz", **arrays)  # type: ignore[arg-type]
    facts = HandoffFacts(recipe=recipe, scope=scope, inputs=len(pool))
    atomic_write_text(folder / "facts.json", facts.model_dump_json(indent=2))


def pick_up(workdir: Path) -> Handoff | None:
    """What `leave` wrote in `workdir`, or None when it wrote nothing (or it is unreadable)."""
    folder = workdir / HANDOFF_FOLDER
    try:
        facts = HandoffFacts.model_validate_json((folder / "facts.json").read_text(encoding="utf-8"))
        pool: list[Arrays] = [{} for _ in range(facts.inputs)]
        with np.load(folder / "pool.npz") as stored:
            for key in stored.files:
                index, _, name = key.partition("/")
                pool[int(index)][name] = stored[key]
    except (OSError, ValueError):
        return None
    return Handoff(workdir / SAVED_FOLDER, facts.recipe, facts.scope, pool)


def evict_from_page_cache(folder: Path) -> int:
    """Write the saved model's files out and drop them from the page cache, so that the next process to load
    them reads them into newly placed pages; the bytes dropped. PyTorch (safetensors) and OpenVINO map
    their weights from these files: a run's every fresh serving process otherwise shares the same
    physical pages, and whatever luck their placement brings is the whole run's, never a round's (measured
    here: the fp32 baseline ran 85-101 ms in all five rounds of one run and 89-107 ms in the next). A no-op
    where the platform cannot advise the kernel."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return 0
    dropped = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages are not dropped
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            dropped += os.fstat(fd).st_size
        except OSError:
            continue
        finally:
            os.close(fd)
    return dropped
