"""Deprecated import path: `bench.api` moved to bench.core (`bench.core.compressor`, `bench.core.task`,
`bench.core.model`, `bench.core.settings`); this module re-exports them and warns (see docs/plugins.md)."""

from bench._moved import warn_moved
from bench.core.compressor import *  # noqa: F403
from bench.core.model import *  # noqa: F403
from bench.core.settings import *  # noqa: F403
from bench.core.task import *  # noqa: F403

warn_moved(__name__, "bench.core")
