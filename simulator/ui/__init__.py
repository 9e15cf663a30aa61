"""The dashboard at ``/_sim/ui``: static assets shipped in the package (``static/``: plain HTML, CSS and
JavaScript, nothing fetched from elsewhere) and the live feed that drives them (:mod:`simulator.ui.feed`).
The routes are in :mod:`simulator.control.ui`."""

from pathlib import Path

STATIC = Path(__file__).parent / "static"
