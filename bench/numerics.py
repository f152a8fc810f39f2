"""Deprecated import path: `bench.numerics` moved to `bench.tasks.numerics`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.tasks.numerics import *  # noqa: F403

warn_moved(__name__, "bench.tasks.numerics")
