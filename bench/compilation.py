"""Deprecated import path: `bench.compilation` moved to `bench.core.compilation`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.core.compilation import *  # noqa: F403

warn_moved(__name__, "bench.core.compilation")
