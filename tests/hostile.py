"""Helpers for the property-based tests: a simulator in a thread, sync HTTP, and hostile values."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import simplejson
from hypothesis import strategies as st

from simulator import jsonio
from simulator.dialects.client import Prepared
from simulator.testing import ServerThread


class Wire:
    """Blocking HTTP/1.1 to the threaded simulator, one kept-alive connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def send(self, prepared: Prepared) -> tuple[int, Any]:
        path = prepared.url[len(self.url) :]
        return self.raw("POST", path, prepared.body, prepared.headers)

    def raw(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            raise
        assert b"Traceback" not in data
        try:
            return response.status, jsonio.loads(data)
        except jsonio.JSONError:
            return response.status, data.decode("utf-8", "replace")

    def close(self) -> None:
        self.conn.close()


def run_server(settings: Any, scenario: Any = None) -> Iterator[tuple[ServerThread, Wire]]:
    server = ServerThread(settings, scenario)
    server.start()
    wire = Wire(server.url)
    try:
        yield server, wire
    finally:
        wire.close()
        server.stop()


# hostile values

NUMBER_TEXTS = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E-7", "0.000000001", "1e16", "-0", "-0.0", "1.005",
     "99999999999999999999999999999999", "1.23456789012345678901234567890", "0e0", "12.3e+1", "-5", "1.", ".5",
     "0x10", "1_000"]
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d) < Decimal(10) ** 30),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x2FFFF), min_size=1, max_size=20),
    st.integers(min_value=4000, max_value=6000).map(lambda n: "x" * n),  # very long ids
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def _dumps(payload: Any) -> str:
    """Like the simulator's JSON, but letting through what it would refuse to write (we are the hostile side)."""
    return simplejson.dumps(payload, use_decimal=True, ensure_ascii=False, default=str)


def mutate(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """A valid payload damaged in one of many ways, or something else altogether, as raw JSON bytes."""
    payload = dict(valid)
    how = draw(
        st.sampled_from(
            ["drop", "replace", "extra", "number-text", "garbage", "value", "keep", "huge", "surrogate", "deep"]
        )
    )
    if how == "drop" and payload:
        payload.pop(draw(st.sampled_from(sorted(payload))))
    elif how == "replace" and payload:
        payload[draw(st.sampled_from(sorted(payload)))] = draw(values)
    elif how == "extra":
        payload[draw(st.text(max_size=12))] = draw(values)
    elif how == "number-text":
        key = draw(st.sampled_from(sorted(payload)))
        marker = "__NUMBER__"
        payload[key] = marker
        return json.dumps(payload, default=str).replace(f'"{marker}"', draw(NUMBER_TEXTS)).encode()
    elif how == "surrogate":  # a JSON-escaped lone surrogate: valid JSON text, not a valid string
        key = draw(st.sampled_from(sorted(payload)))
        payload[key] = "__S__"
        return _dumps(payload).replace('"__S__"', '"\\udc80x"').encode()
    elif how == "deep":  # nesting past what the fingerprint's recursion and orjson can take
        key = draw(st.sampled_from(sorted(payload)))
        depth = draw(st.sampled_from([65, 300, 900, 5000]))
        payload[key] = "__D__"
        return _dumps(payload).replace('"__D__"', "[" * depth + "1" + "]" * depth).encode()
    elif how == "garbage":
        return draw(st.binary(max_size=200))
    elif how == "value":
        return json.dumps(draw(values), default=str).encode()
    elif how == "huge":
        payload[draw(st.sampled_from(sorted(payload)))] = "y" * draw(st.sampled_from([256, 70_000]))
    return _dumps(payload).encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8, on purpose


@st.composite
def damaged(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    return mutate(draw, valid)
