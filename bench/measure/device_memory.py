"""Deprecated import path: `bench.measure.device_memory` moved to `bench.core.device_memory`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.core.device_memory import *  # noqa: F403

warn_moved(__name__, "bench.core.device_memory")
