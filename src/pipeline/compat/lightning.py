"""Lightning's private APIs, in one place: why each is used, and the Lightning version it was
checked on. A private API that is gone raises :class:`LightningAPIChanged`, naming this adapter.

Checked on Lightning 2.6.6 (``CHECKED_ON``); ``tests/test_compat_lightning.py`` fails when it
changes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
from typing import Any

CHECKED_ON = "2.6.6"
ADAPTER = "pipeline.compat.lightning"
# The entry-point group Lightning reads for callback factories at every Trainer's construction.
CALLBACKS_GROUP = "lightning.pytorch.callbacks_factory"


class LightningAPIChanged(RuntimeError):
    """A private Lightning API this adapter relies on is gone or changed shape."""

    def __init__(self, what: str) -> None:
        import lightning

        super().__init__(
            f"{ADAPTER}: {what} (checked on Lightning {CHECKED_ON}, installed "
            f"{lightning.__version__}); update the adapter or pin lightning=={CHECKED_ON}")


@functools.cache
def has_entry_points(group: str) -> bool:
    """Whether any installed package registers an entry point in ``group``: read once a
    process (a scan of every installed package's metadata, ~10 ms)."""
    return bool(importlib.metadata.entry_points(group=group))


def scan_external_callbacks_once() -> None:
    """Makes Lightning's scan of installed packages for callback factories a once-a-process one.

    Why the private API: Lightning's ``CallbackConnector`` calls the module-level function
    ``_load_external_callbacks`` of ``lightning.pytorch.trainer.connectors.callback_connector``
    at every Trainer's construction, and it reads every installed package's entry points (~10
    ms, as long as a small fold's whole fit). Lightning has no public switch for it (its docs'
    "Entry Points" page offers none), so the function is wrapped: the scan is done once a
    process, and the factories it finds are still called for every Trainer, as Lightning does.
    Idempotent."""
    from lightning.pytorch.trainer.connectors import callback_connector

    load = getattr(callback_connector, "_load_external_callbacks", None)
    if load is None:
        raise LightningAPIChanged(
            "lightning.pytorch.trainer.connectors.callback_connector has no "
            "_load_external_callbacks any more")
    if getattr(load, "scanned_once", False):
        return
    if list(inspect.signature(load).parameters) != ["group"]:
        raise LightningAPIChanged(
            f"_load_external_callbacks takes {inspect.signature(load)}, not (group)")

    def external_callbacks(group: str) -> list[Any]:
        return load(group) if has_entry_points(group) else []

    external_callbacks.scanned_once = True
    external_callbacks.wrapped = load
    callback_connector._load_external_callbacks = external_callbacks
