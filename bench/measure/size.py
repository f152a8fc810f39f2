"""Deprecated import path: `bench.measure.size` moved to `bench.core.size`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.core.size import *  # noqa: F403

warn_moved(__name__, "bench.core.size")
