"""Deprecated import path: `bench.launchers.ray_suite` moved to `bench.launchers.ray_cluster` and
`bench.launchers.ray_launcher`; this module re-exports them and warns (see docs/plugins.md). It will be
removed in bench 0.3."""

from bench._moved import warn_moved
from bench.launchers.ray_cluster import *  # noqa: F403
from bench.launchers.ray_launcher import *  # noqa: F403

warn_moved(__name__, "bench.launchers.ray_cluster")
