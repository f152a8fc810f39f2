"""Deprecated import path: `bench.measure.generation` moved to `bench.core.generation_timing`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.core.generation_timing import *  # noqa: F403

warn_moved(__name__, "bench.core.generation_timing")
