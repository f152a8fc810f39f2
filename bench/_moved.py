"""Warnings for the import paths that moved into bench.core (their old modules re-export the new ones)."""

from __future__ import annotations

import warnings


def warn_moved(old: str, new: str) -> None:
    """Tell the importer of `old` to import `new` instead."""
    warnings.warn(
        f"`{old}` is deprecated: import from `{new}` (bench.core holds the plugin contract)",
        DeprecationWarning,
        stacklevel=3,
    )
