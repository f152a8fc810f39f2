"""Deprecated import path: `bench.runner` moved to `bench.launchers.sequence` and `bench.launchers.single_run`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.launchers.sequence import *  # noqa: F403
from bench.launchers.single_run import *  # noqa: F403

warn_moved(__name__, "bench.launchers.sequence")
