"""simulator/store/heap.py: what a served process's collector is set to once it is up."""

from __future__ import annotations

import gc

from simulator.store import heap


def test_settle_freezes_start_up_and_sets_the_serving_thresholds() -> None:
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_threshold() == heap.THRESHOLDS
        assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
