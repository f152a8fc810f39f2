"""Deprecated import path: `bench.launchers.local_suite` moved to `bench.launchers.local`;
this module re-exports it and warns (see docs/plugins.md). It will be removed in bench 0.3."""

from bench._moved import warn_moved
from bench.launchers.local import *  # noqa: F403

warn_moved(__name__, "bench.launchers.local")
