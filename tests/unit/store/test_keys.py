"""The shared store's key names (simulator/store/redis.py ``Keys``): a name can neither break the tenant's
hash tag nor be confused with the ``:`` between the parts, whatever the request put in it."""

from __future__ import annotations

import urllib.parse

from hypothesis import given
from hypothesis import strategies as st

from simulator.store.redis import NAMES as NAMES_KEPT
from simulator.store.redis import Keys

KEYS = Keys("wallet-sim")
NAMES = st.text(alphabet=st.sampled_from("ab:%{}3A"), max_size=6)


def test_the_docs_example() -> None:
    assert KEYS.of(("p", "xpro", "x}y", "a:b"), 3) == "{wallet-sim:xpro:x%7Dy}:3:p:a%3Ab"


@given(tenant=NAMES, first=NAMES, second=NAMES)
def test_every_name_is_escaped_and_read_back(tenant: str, first: str, second: str) -> None:
    name = KEYS.of(("s", "ambslot", tenant, "txn", first, second), 7)
    tag, _, rest = name.partition("}:")
    assert tag.count("{") == 1 and "}" not in tag  # the hash tag ends where the store put its end
    assert urllib.parse.unquote(tag.rsplit(":", 1)[1]) == tenant
    epoch, kind, *parts = rest.split(":")
    assert (epoch, kind) == ("7", "s")
    assert [urllib.parse.unquote(p) for p in parts] == ["txn", first, second]


@given(one=st.tuples(NAMES, NAMES), other=st.tuples(NAMES, NAMES))
def test_distinct_keys_have_distinct_names(one: tuple[str, str], other: tuple[str, str]) -> None:
    if one != other:
        assert KEYS.of(("t", "fizzy", "", *one), 1) != KEYS.of(("t", "fizzy", "", *other), 1)


def test_names_kept_ready_are_those_of_the_epoch_and_bounded() -> None:
    keys = Keys("bounded")
    first = keys.of(("p", "xpro", "a", "p1"), 1)
    assert keys.of(("p", "xpro", "a", "p1"), 2) == first.replace(":1:", ":2:")  # not the last epoch's name
    assert keys.tenant("xpro", "a", 2)[1] == "{bounded:xpro:a}:2:o"
    assert keys.tenant("xpro", "a", 3)[1] == "{bounded:xpro:a}:3:o"
    for n in range(NAMES_KEPT + 10):  # as many as requests make: never more than the bound kept
        keys.of(("t", "xpro", "a", "", f"id{n}"), 3)
    assert len(keys._names.names) <= NAMES_KEPT
