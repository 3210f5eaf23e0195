"""Hydra's private API as the project uses it, checked on hydra-core 1.3.8.

Why each is needed (Hydra has no public route for these):
- `hydra._internal.config_loader_impl.ConfigLoaderImpl._parse_overrides_and_create_caching_repo`:
  `--help` lists every option of every config group, and Hydra builds (deep-copies) its
  config repository once per group it asks about, a second in all; `quick_help` serves one
  repository per (loader, config, overrides) while help is printed;
- `JobReturn._return_value`: the exception a failed job of a sweep raised. The public
  `JobReturn.return_value` raises it, after writing a line to stderr, where the sweep
  callback records the failure in one line of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pipeline.compat import gone, private

ADAPTER = "pipeline.compat.hydra"
CHECKED_ON = "hydra-core 1.3.8"
REPOSITORY_BUILDER = "_parse_overrides_and_create_caching_repo"


def config_loader() -> Any:
    """Hydra's `ConfigLoaderImpl` class."""
    return private(ADAPTER, CHECKED_ON, "hydra._internal.config_loader_impl", "ConfigLoaderImpl")


@contextlib.contextmanager
def quick_help() -> Iterator[None]:
    """Within the block, Hydra builds its config repository once per (loader, config name,
    overrides): the search path does not change while help is printed."""
    loader = config_loader()
    build = loader.__dict__.get(REPOSITORY_BUILDER)
    if build is None:
        raise gone(ADAPTER, CHECKED_ON, f"ConfigLoaderImpl.{REPOSITORY_BUILDER}")
    built: dict[tuple, Any] = {}

    def memoized(self: Any, config_name: str | None, overrides: list[str]) -> Any:
        key = (id(self), config_name, tuple(overrides))
        if key not in built:
            built[key] = build(self, config_name, overrides)
        return built[key]

    setattr(loader, REPOSITORY_BUILDER, memoized)
    try:
        yield
    finally:
        setattr(loader, REPOSITORY_BUILDER, build)


def job_error(job_return: Any) -> BaseException:
    """The exception that a FAILED job of a sweep raised (a Hydra `JobReturn`)."""
    error = getattr(job_return, "_return_value", None)
    if not isinstance(error, BaseException):
        raise gone(ADAPTER, CHECKED_ON, "JobReturn._return_value of a failed job",
                   f"holds {type(error).__name__}, not the job's exception")
    return error
