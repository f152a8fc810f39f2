"""Deprecated import path: `bench.progress` moved to `bench.core.job`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.core.job import *  # noqa: F403

warn_moved(__name__, "bench.core.job")
