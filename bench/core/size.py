"""On-disk size of a saved model, raw and after zip compression (so sparsity gets honest credit)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

_CHUNK = 1 << 20


class SavedSize(BaseModel):
    """Bytes of the files a model was saved as."""

    format: str
    bytes: int
    zip_bytes: int
    """Sum of each file compressed with DEFLATE (zlib level 6, as `zip` does by default)."""
    files: dict[str, int]


def deflated_size(path: Path, level: int = 6) -> int:
    """Bytes of `path` after DEFLATE compression, streamed so large files need little memory."""
    compressor = zlib.compressobj(level)
    total = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            total += len(compressor.compress(chunk))
    total += len(compressor.flush())
    return total


def measure_saved(files: Sequence[Path], root: Path, fmt: str) -> SavedSize:
    """Size of saved model files. Paths in the result are relative to `root`."""
    sizes = {str(p.relative_to(root)): p.stat().st_size for p in files}
    return SavedSize(
        format=fmt,
        bytes=sum(sizes.values()),
        zip_bytes=sum(deflated_size(p) for p in files),
        files=dict(sorted(sizes.items())),
    )
