"""The control API describes itself (OpenAPI 3.1) and exports the journal as a HAR 1.2 archive."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from simulator import control, jsonio
from tests.conftest import Start

# The HAR 1.2 structure (http://www.softwareishard.com/blog/har-12-spec/): required members and their types.
NV = {
    "type": "object",
    "required": ["name", "value"],
    "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
}
HAR = {
    "type": "object",
    "required": ["log"],
    "properties": {
        "log": {
            "type": "object",
            "required": ["version", "creator", "entries"],
            "properties": {
                "version": {"const": "1.2"},
                "creator": {"type": "object", "required": ["name", "version"]},
                "entries": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["startedDateTime", "time", "request", "response", "cache", "timings"],
                        "properties": {
                            "startedDateTime": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"},
                            "time": {"type": "number", "minimum": 0},
                            "request": {
                                "type": "object",
                                "required": [
                                    "method",
                                    "url",
                                    "httpVersion",
                                    "cookies",
                                    "headers",
                                    "queryString",
                                    "headersSize",
                                    "bodySize",
                                ],
                                "properties": {
                                    "method": {"type": "string"},
                                    "url": {"type": "string", "pattern": "^https?://"},
                                    "headers": {"type": "array", "items": NV},
                                    "queryString": {"type": "array", "items": NV},
                                    "postData": {"type": "object", "required": ["mimeType", "text"]},
                                    "headersSize": {"type": "integer"},
                                    "bodySize": {"type": "integer"},
                                },
                            },
                            "response": {
                                "type": "object",
                                "required": [
                                    "status",
                                    "statusText",
                                    "httpVersion",
                                    "cookies",
                                    "headers",
                                    "content",
                                    "redirectURL",
                                    "headersSize",
                                    "bodySize",
                                ],
                                "properties": {
                                    "status": {"type": "integer"},
                                    "headers": {"type": "array", "items": NV},
                                    "content": {
                                        "type": "object",
                                        "required": ["size", "mimeType"],
                                        "properties": {"size": {"type": "integer"}, "text": {"type": "string"}},
                                    },
                                },
                            },
                            "timings": {
                                "type": "object",
                                "required": ["send", "wait", "receive"],
                                "properties": {k: {"type": "number"} for k in ("send", "wait", "receive")},
                            },
                        },
                    },
                },
            },
        }
    },
}


async def test_openapi_document_covers_every_route_of_every_table(start: Start) -> None:
    h = await start()
    status, doc = await h.admin("GET", "/_sim/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    validate(doc)  # a valid OpenAPI 3.1 document
    served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    tables: list[tuple[str, str]] = []
    for table in control.TABLES:
        for r in table:
            if isinstance(r, web.RouteDef):
                tables.append((r.method, r.path))
            else:  # static files: one path per file
                assert isinstance(r, web.StaticDef), r
                tables.append(("GET", r.prefix.rstrip("/") + "/{filename}"))
    assert len(tables) >= 13
    for method, path in tables:  # whatever room added it, a route is documented
        assert (method, "/_sim" + re.sub(r"\{([^}:]+):[^}]*\}", r"{\1}", path)) in served, (method, path)
    verify = doc["paths"]["/_sim/journal/verify"]["post"]
    assert verify["summary"].startswith("Count the recorded requests")
    assert set(verify["responses"]) >= {"200", "409"}
    player = doc["paths"]["/_sim/players/{dialect}/{player}"]["put"]
    assert [p["name"] for p in player["parameters"] if p["in"] == "path"] == ["dialect", "player"]
    assert "security" not in doc  # no admin token on this server


async def test_openapi_declares_the_admin_token_when_one_is_required(start: Start) -> None:
    h = await start(admin_token="tk")
    status, _ = await h.admin("GET", "/_sim/openapi.json")
    assert status == 401
    async with h.http.get(h.url + "/_sim/openapi.json", headers={"Authorization": "Bearer tk"}) as r:
        doc = await r.json()
    assert doc["security"] == [{"adminToken": []}] and doc["paths"]["/_sim/health"]["get"]["security"] == []


async def test_journal_as_har(start: Start) -> None:
    h = await start(
        {"fizzy": {"prefix": "/fz"}},
        scenario="name: har\nrules:\n  - {name: lost, match: {dialect: ambslot, operation: bet}, fault: drop}\n",
    )
    h.fizzy.base_url = h.url + "/fz"
    await h.xpro.authenticate()
    await h.xpro.create_member("player001")
    assert (await h.fizzy.balance("p-1")).status == 200
    bad = h.fizzy.prepare("/wallet/balance", {"playerId": "p-1", "sessionId": "s", "currency": "EUR"})
    bad.headers["Signature"] = "0" * 64
    assert (await h.fizzy.send(bad)).status == 401
    with pytest.raises(aiohttp.ServerDisconnectedError):  # the drop fault: no answer
        await h.amb.bet("member001", "r-1", 5)
    status, har = await h.admin("GET", "/_sim/journal?format=har")
    assert status == 200
    jsonschema.validate(json.loads(jsonio.dumps(har)), HAR)  # plain JSON numbers, as a HAR viewer reads them
    entries: list[dict[str, Any]] = har["log"]["entries"]
    assert [e["request"]["url"][len(h.url) :] for e in entries] == [
        "/v2/auth",
        "/v2/members",
        "/fz/wallet/balance",
        "/fz/wallet/balance",
        "/bet",
    ]
    create = entries[1]
    assert create["request"]["postData"]["text"] == '{"username":"player001"}'  # the decrypted plaintext
    assert "decrypted" in create["request"]["postData"]["comment"]
    assert '"code":0' in create["response"]["content"]["text"]
    refused = entries[3]
    assert refused["response"]["status"] == 401 and "ERROR_INVALID_SIGNATURE" in refused["response"]["content"]["text"]
    headers = {x["name"]: x["value"] for x in refused["response"]["headers"]}
    assert "X-Sim-Detail" in headers
    dropped = entries[4]
    assert dropped["response"]["status"] == 0 and "fault drop" in dropped["response"]["comment"]
    assert {x["name"]: x["value"] for x in dropped["response"]["headers"]}["X-Sim-Rule"] == "lost"
    assert all(e["timings"]["wait"] == e["time"] for e in entries)
    status, body = await h.admin("GET", "/_sim/journal?format=xml")
    assert status == 400 and "har" in body["error"]


def test_har_uses_what_the_journal_received_when_it_kept_it() -> None:
    from types import SimpleNamespace

    from simulator.control import har

    refused = SimpleNamespace(
        seq=3,
        time=1_769_746_894.5,
        dialect="fizzy",
        endpoint="/wallet/withdraw",
        op=None,
        operation=None,
        status=401,
        body={"code": "ERROR_INVALID_SIGNATURE"},
        rule=None,
        fault=None,
        detail="Signature is not ...",
        ms=0.4,
        delay=0.0,
        received={
            "method": "POST",
            "path": "/fz/wallet/withdraw",
            "headers": {"Public-Key": "demo-public-key", "Signature": "<redacted, 64 chars>"},
            "body": '{"playerId":"p-1"}',
            "body_bytes": 18,
            "truncated": False,
        },
    )
    entry = har.entry(refused, "http://127.0.0.1:8080", {"fizzy": "/fz"})  # type: ignore[arg-type]
    request = entry["request"]
    assert request["url"] == "http://127.0.0.1:8080/fz/wallet/withdraw"
    assert {h["name"]: h["value"] for h in request["headers"]}["Signature"] == "<redacted, 64 chars>"
    assert request["postData"]["text"] == '{"playerId":"p-1"}' and request["bodySize"] == 18
    assert request["postData"]["comment"] == "as received"
    assert entry["startedDateTime"] == "2026-01-30T04:21:34.500+00:00" and entry["response"]["status"] == 401
