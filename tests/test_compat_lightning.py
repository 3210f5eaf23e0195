"""The Lightning adapter (pipeline.compat.lightning): fails loudly, naming the adapter, when the
private API it wraps changes; a Trainer still gets the callbacks installed packages register."""

from __future__ import annotations

import importlib.metadata

import lightning.pytorch as pl
import pytest
from lightning.fabric.utilities import registry
from lightning.pytorch.callbacks import LambdaCallback
from lightning.pytorch.trainer.connectors import callback_connector

from pipeline.compat import lightning as adapter
from pipeline.models import trainer  # noqa: F401 - installs the adapter's wrapper

LEAN = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False,
        "enable_progress_bar": False}


@pytest.fixture
def rescan():
    """Forgets which entry-point groups have been read, before and after the test."""
    adapter.has_entry_points.cache_clear()
    yield
    adapter.has_entry_points.cache_clear()


def test_the_trainer_still_calls_the_private_function_the_adapter_wraps(monkeypatch):
    wrapped = callback_connector._load_external_callbacks
    assert getattr(wrapped, "scanned_once", False), (
        f"{adapter.ADAPTER}: Lightning's callback scan is not wrapped")
    groups = []
    monkeypatch.setattr(callback_connector, "_load_external_callbacks",
                        lambda group: groups.append(group) or wrapped(group))
    pl.Trainer(**LEAN)
    assert groups == [adapter.CALLBACKS_GROUP], (
        f"{adapter.ADAPTER}: Lightning {pl.__version__} no longer builds a Trainer's external "
        f"callbacks through callback_connector._load_external_callbacks (checked on "
        f"{adapter.CHECKED_ON}); the adapter's speed-up no longer applies")


def test_a_registered_callback_factory_still_reaches_every_trainer(monkeypatch, rescan):
    factory = importlib.metadata.EntryPoint(
        name="monitor", value="lightning.pytorch.callbacks:LambdaCallback",
        group=adapter.CALLBACKS_GROUP)

    def entry_points(group):
        return [factory] if group == adapter.CALLBACKS_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "entry_points", entry_points)
    for _ in range(2):  # the scan is done once; the factory is called for each Trainer
        callbacks = pl.Trainer(**LEAN).callbacks
        assert sum(isinstance(callback, LambdaCallback) for callback in callbacks) == 1


def test_without_entry_points_a_trainer_gets_no_external_callbacks(monkeypatch, rescan):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [])
    callbacks = pl.Trainer(**LEAN).callbacks
    assert not any(isinstance(callback, LambdaCallback) for callback in callbacks)


def test_a_missing_private_api_is_an_error_naming_the_adapter(monkeypatch):
    monkeypatch.delattr(callback_connector, "_load_external_callbacks")
    with pytest.raises(adapter.LightningAPIChanged,
                       match=rf"^pipeline\.compat\.lightning: .*_load_external_callbacks.*"
                             rf"checked on Lightning {adapter.CHECKED_ON}"):
        adapter.scan_external_callbacks_once()


def test_a_changed_signature_is_an_error_naming_the_adapter(monkeypatch):
    monkeypatch.setattr(callback_connector, "_load_external_callbacks",
                        lambda group, strict: [])
    with pytest.raises(adapter.LightningAPIChanged,
                       match=r"^pipeline\.compat\.lightning: _load_external_callbacks takes"):
        adapter.scan_external_callbacks_once()
