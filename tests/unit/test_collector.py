"""greenchat-serve's garbage-collector settings (server/collector.py): start-up's
objects frozen, the middle and old generations collected less often."""

from __future__ import annotations

import gc

import pytest

from greenchat.server import collector


@pytest.fixture
def restore_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_after_start_freezes_and_spaces_out_old_collections(restore_gc):
    young = gc.get_threshold()[0]
    collector.settle_after_start()
    assert gc.get_freeze_count() > 1000  # the modules, functions and tables loaded so far
    assert gc.get_threshold() == (young, collector.MIDDLE_EVERY, collector.FULL_EVERY)
    assert collector.MIDDLE_EVERY < 10 < collector.FULL_EVERY  # CPython's defaults: 10, 10
