"""Keeping the cyclic garbage collector out of request latency.

CPython's collector walks every *tracked* object (containers: dicts, lists, class instances) in the
generation it collects; a full collection walks the whole long-lived heap. A server whose heap grows with
its ledger would pause longer and longer (issue: p99 climbing with the ledger). Two things prevent it:

* the ledger keeps no tracked object per transaction (:mod:`simulator.ledger.memory` stores columns of
  ints and bytes, which the collector never visits), and the journal is a bounded ring;
* :func:`settle` runs once the server is up: one collection, then ``gc.freeze()`` moves everything alive
  (modules, settings, the app, seeded players) out of the collector's sight for good, so a full
  collection later walks only what was allocated since.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect once, then freeze the survivors of start-up (they live as long as the process)."""
    gc.collect()
    gc.freeze()
