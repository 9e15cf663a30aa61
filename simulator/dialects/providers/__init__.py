"""One module per provider: its :class:`~simulator.dialects.description.Description` as data."""
