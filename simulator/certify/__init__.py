"""Certify an operator's wallet: the simulator plays the game provider (Fizzy Bubbly, AMBSlot) against the
integrator's own wallet, runs named cases, keeps its own model of the balance and reports.

Layout: ``core.py`` (cases, verdicts, results, the balance model), ``target.py`` (settings), ``wire.py``
(each dialect's requests and answers, built with ``simulator/dialects/client.py``), ``runner.py`` (transport and the
per-case context), ``flows.py`` (case bodies shared by both dialects), ``fizzy.py`` and ``ambslot.py`` (the
suites), ``load.py`` (load mode), ``report.py`` (terminal, JSON, JUnit, HTML), ``cli.py`` (the flags) and
``command.py`` (the run, imported only when the command runs).
"""
