"""Keeping the cyclic garbage collector out of request latency.

CPython's collector walks every *tracked* object (containers: dicts, lists, class instances) in the
generation it collects; a full collection walks the whole long-lived heap. A server whose heap grows with
its ledger would pause longer and longer (issue: p99 climbing with the ledger). Two things prevent it:

* the ledger keeps no tracked object per transaction (:mod:`simulator.ledger.memory` stores columns of
  ints and bytes, which the collector never visits), and the journal is a bounded ring;
* :func:`settle` runs once the server is up: one collection, then ``gc.freeze()`` moves everything alive
  (modules, settings, the app, seeded players) out of the collector's sight for good, so a full
  collection later walks only what was allocated since;
* and it sets the thresholds to :data:`THRESHOLDS`. CPython's default young generation (700 objects)
  fills in about a dozen requests when requests are suspended on a shared store (each keeps its parsed
  request, its coroutines and its working set alive across the round trip): the collector then ran about
  six times as often per request as in memory and cost about 70 µs a request, a tenth of the server's
  time. 5,000 objects make young collections rare (most young objects die before one) and short (about
  1-3 ms, depending on the VM's phase: 0.9 ms in the last measurement); the middle generation is
  collected every second young collection, so it stays small (about 10 ms). Measured with
  ``bench/stores.py`` (docs/performance.md): one worker on Redis went from 0.52-0.58 to 0.62-0.70 of the
  in-memory rate, and its p99 fell; the memory store's rate and p99 did not move.
"""

from __future__ import annotations

import gc

#: young generation size, middle-generation period (in young collections), old-generation period
THRESHOLDS = (5_000, 2, 10)


def settle() -> None:
    """Collect once, freeze the survivors of start-up (they live as long as the process), and set the
    collector's thresholds for serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
