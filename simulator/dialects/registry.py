"""The registered dialects: one :class:`Description` each, registered once.

A fourth provider is a module with its description (like :mod:`simulator.dialects.providers.fizzy`), a
request handler (a :class:`~simulator.dialects.base.Dialect` subclass the description names as ``codec``),
one line in :data:`BUILTIN` here, and a settings section named after it (simulator/config/settings.py).
The server builds its routes from :func:`descriptions`; the loader, the scorecard, the control API and its
OpenAPI document look a dialect up with :func:`get` and list them with :data:`NAMES`.
"""

from __future__ import annotations

import importlib
from typing import Any

from simulator.dialects.description import Description
from simulator.dialects.providers import ambslot, fizzy, xpro

BUILTIN: tuple[Description, ...] = (xpro.DESCRIPTION, fizzy.DESCRIPTION, ambslot.DESCRIPTION)

_REGISTERED: dict[str, Description] = {}
#: the registered dialects' names, in order (a live list: the OpenAPI document's enum is this object)
NAMES: list[str] = []


def register(description: Description) -> Description:
    if description.name in _REGISTERED:
        raise ValueError(f"dialect {description.name!r} is registered already")
    _REGISTERED[description.name] = description
    NAMES.append(description.name)
    return description


def unregister(name: str) -> None:
    """Forget a dialect (tests that register a toy one)."""
    del _REGISTERED[name]
    NAMES.remove(name)


def get(name: str) -> Description:
    """The description of a registered dialect; KeyError for another name."""
    return _REGISTERED[name]


def descriptions() -> list[Description]:
    return list(_REGISTERED.values())


def codec(description: Description) -> Any:
    """The request handler class a description names (imported when the server is built)."""
    module, _, name = description.codec.partition(":")
    return getattr(importlib.import_module(module), name)


for _builtin in BUILTIN:
    register(_builtin)
