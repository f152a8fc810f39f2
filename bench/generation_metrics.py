"""Deprecated import path: `bench.generation_metrics` moved to `bench.tasks.generation_metrics`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.tasks.generation_metrics import *  # noqa: F403

warn_moved(__name__, "bench.tasks.generation_metrics")
