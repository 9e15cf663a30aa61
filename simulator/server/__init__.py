"""Serving: the app factory (:mod:`.app`), one process's start and stop (:mod:`.serve`), ``--workers``
(:mod:`.workers`), network limits (:mod:`.netserve`), forwarded headers (:mod:`.forwarded`), logs."""
