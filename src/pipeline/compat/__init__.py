"""The only place the project touches other libraries' private APIs: one adapter per library."""

from __future__ import annotations

import importlib
from typing import Any


class CompatError(RuntimeError):
    """A library's private API that an adapter relies on is gone or has changed: a defect of
    ours to fix in the adapter named by the message, never a user's mistake."""


def private(adapter: str, checked_on: str, module: str, name: str) -> Any:
    """`module.name`, a library's private member, or a CompatError naming `adapter` (the
    module that needs it) and the version it was `checked_on`."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise gone(adapter, checked_on, f"{module}.{name}") from error


def gone(adapter: str, checked_on: str, what: str, how: str = "is gone") -> CompatError:
    """The error an adapter raises when `what`, a private API, `how` (is gone, changed...)."""
    return CompatError(f"{adapter}: {what} {how} (checked on {checked_on}); update the adapter")
