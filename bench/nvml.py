"""Deprecated import path: `bench.nvml` moved to `bench.core.nvml`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.core.nvml import *  # noqa: F403

warn_moved(__name__, "bench.core.nvml")
