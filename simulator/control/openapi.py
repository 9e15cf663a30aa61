"""``GET /_sim/openapi.json``: an OpenAPI 3.1 document of the control API, generated from the routes the
control sub-application really serves (every table in :data:`simulator.control.TABLES`), so a route added
by any room is documented without touching this file: method and path from the route, the summary from the
handler's docstring. Hand-written schemas below describe the calls whose bodies are known here; any other
call is documented as answering JSON.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from aiohttp import web

from simulator import __version__
from simulator.control.http import PREFIX, reply
from simulator.dialects import registry
from simulator.store import DEFAULT_PAGE, MAX_PAGE

JSON = "application/json"
ANY: dict[str, Any] = {}
DIALECT = {"type": "string", "enum": registry.NAMES}  # the live list: a registered dialect is in
AMOUNT = {"type": "number", "description": "exact decimal (JSON number, never rounded through a float)"}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
    "Health": {
        "type": "object",
        "required": ["status", "version", "dialects"],
        "properties": {
            "status": {"const": "ok"},
            "version": {"type": "string"},
            "dialects": {"type": "array", "items": DIALECT},
            "scenario": {"type": "string"},
        },
    },
    "Player": {
        "type": "object",
        "required": ["dialect", "tenant", "player", "balance", "currency"],
        "properties": {
            "dialect": DIALECT,
            "tenant": {"type": "string"},
            "player": {"type": "string"},
            "balance": AMOUNT,
            "currency": {"type": "string"},
            "locked": {"type": "boolean"},
            "blocked": {"type": "boolean"},
            "disabled": {"type": "boolean"},
            "sessions": {"type": "array", "items": {"type": "string"}},
            "transactions": {"type": "array", "items": {"$ref": "#/components/schemas/Transaction"}},
        },
    },
    "PlayerChange": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "balance": AMOUNT,
            "currency": {"type": "string"},
            "bet_limit": {"type": ["number", "null"]},
            "sessions": {"type": "array", "items": {"type": "string"}},
            "agent": {"type": "string"},
            "public_key": {"type": "string"},
            **{
                flag: {"type": "boolean"}
                for flag in ("locked", "blocked", "disabled", "session_expired", "reality_check")
            },
        },
    },
    "Transaction": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "dialect": DIALECT,
            "player": {"type": "string"},
            "transaction": {"type": "string"},
            "kind": {"type": "string"},
            "amount": AMOUNT,
            "balance_before": AMOUNT,
            "balance_after": AMOUNT,
            "status": {"type": "string", "enum": ["applied", "rolled_back", "cancelled"]},
            "time": {"type": "string", "format": "date-time"},
        },
    },
    "JournalEntry": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "time": {"type": "string", "format": "date-time"},
            "dialect": DIALECT,
            "endpoint": {"type": "string"},
            "operation": {"type": ["string", "null"]},
            "player": {"type": ["string", "null"]},
            "transaction": {"type": ["string", "null"]},
            "request": {"description": "the decoded request (XPro: the decrypted plaintext)"},
            "response": {"type": "object"},
            "rule": {"type": ["string", "null"]},
            "detail": {"type": ["string", "null"]},
            "ms": {"type": "number"},
        },
    },
    "Verify": {
        "type": "object",
        "required": ["match"],
        "properties": {
            "match": {"type": "object", "description": "scenario match keys but nth, after, probability"},
            "count": {"type": "integer", "minimum": 0},
            "min": {"type": "integer", "minimum": 0},
            "max": {"type": "integer", "minimum": 0},
        },
    },
    "VerifyResult": {
        "type": "object",
        "required": ["ok", "found"],
        "properties": {
            "ok": {"type": "boolean"},
            "found": {"type": "integer"},
            "expected": {"type": "object"},
            "misses": {"type": "array", "items": {"type": "string"}},
            "closest": {"type": "array", "items": {"$ref": "#/components/schemas/JournalEntry"}},
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "JSON") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _query(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names]


ARRAY = {"type": "array"}
#: a paged listing's parameters and the headers of a page that has a next one (docs/control-api.md#paging)
PAGING = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE},
        "description": f"page size, 1 to {MAX_PAGE} (absent or 0: {DEFAULT_PAGE})",
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "the previous page's X-Next-Cursor, unchanged (opaque)",
    },
]
NEXT_PAGE = {
    "X-Next-Cursor": {"schema": {"type": "string"}, "description": "the next page's cursor; absent on the last page"},
    "Link": {"schema": {"type": "string"}, "description": '<the same call with the cursor>; rel="next"'},
}


def _paged(schema: dict[str, Any]) -> dict[str, Any]:
    return {**_json(schema), "headers": NEXT_PAGE}


KNOWN: dict[tuple[str, str], dict[str, Any]] = {  # (method, path under /_sim) -> operation fields
    ("GET", "/health"): {"responses": {"200": _json(_ref("Health"))}, "security": []},
    ("GET", "/players"): {
        "parameters": [*_query("dialect", "q"), *PAGING],
        "responses": {"200": _paged({"type": "array", "items": _ref("Player")})},
    },
    ("GET", "/players/{dialect}/{player}"): {
        "parameters": [*_query("agent", "public_key"), *PAGING],
        "responses": {"200": _paged(_ref("Player")), "404": _json(ERROR, "no such player")},
    },
    ("PUT", "/players/{dialect}/{player}"): {
        "requestBody": {"required": False, "content": {JSON: {"schema": _ref("PlayerChange")}}},
        "responses": {"200": _json(_ref("Player"), "updated"), "201": _json(_ref("Player"), "created")},
    },
    ("GET", "/transactions"): {
        "parameters": [*_query("dialect", "player", "status"), *PAGING],
        "responses": {"200": _paged({"type": "array", "items": _ref("Transaction")})},
    },
    ("GET", "/tombstones"): {
        "parameters": [*_query("dialect", "player"), *PAGING],
        "responses": {"200": _paged({"type": "object"})},
    },
    ("GET", "/journal"): {
        "parameters": [
            *_query("limit", "dialect", "operation", "player", "rule"),
            {"name": "format", "in": "query", "schema": {"enum": ["json", "har"]}, "description": "har: HAR 1.2"},
        ],
        "responses": {"200": _json({"oneOf": [{"type": "array", "items": _ref("JournalEntry")}, {"type": "object"}]})},
    },
    ("POST", "/journal/verify"): {
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Verify")}}},
        "responses": {"200": _json(_ref("VerifyResult")), "409": _json(_ref("VerifyResult"), "not as expected")},
    },
    ("GET", "/scenario"): {"responses": {"200": {"description": "YAML", "content": {"application/yaml": {}}}}},
    ("PUT", "/scenario"): {
        "requestBody": {"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}},
        "responses": {"200": _json(ANY), "400": _json(ERROR, "invalid: problems with file, line and key")},
    },
}


def _summary(handler: Any) -> str:
    doc = inspect.getdoc(handler) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _operation(method: str, path: str, handler: Any) -> dict[str, Any]:
    summary = _summary(handler)
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', path).strip('_') or 'root'}",
        "summary": summary.split(". ")[0].rstrip(".")[:120] or f"{method} {PREFIX}{path}",
        "description": summary,
        "responses": {"200": _json(ANY), "400": _json(ERROR, "a mistake in the call")},
    }
    known = KNOWN.get((method, path), {})
    op.update({k: v for k, v in known.items() if k != "responses"})
    op["responses"] = {**op["responses"], **known.get("responses", {})}
    names = re.findall(r"\{([^}:]+)", path)
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]
    if params:
        op["parameters"] = params + op.get("parameters", [])
    return op


def document(app: web.Application, token_required: bool) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        full = info.get("formatter") or info.get("path")
        if full is None and "prefix" in info:  # static files (the dashboard's assets)
            full = info["prefix"].rstrip("/") + "/{filename}"
        if route.method in ("HEAD", "*") or not full or not full.startswith(PREFIX):
            continue
        path = full[len(PREFIX) :] or "/"
        operation = _operation(route.method, path, route.handler)
        while operation["operationId"] in used:  # /ui and /ui/ read alike
            operation["operationId"] += "_"
        used.add(operation["operationId"])
        paths.setdefault(PREFIX + path, {})[route.method.lower()] = operation
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Wallet simulator control API",
            "version": __version__,
            "description": "Drive the simulator from tests and QA tools: players, journal, scenario, checks.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": SCHEMAS},
    }
    if token_required:
        doc["components"]["securitySchemes"] = {"adminToken": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"adminToken": []}]
    return doc


async def openapi(request: web.Request) -> web.Response:
    """This document: the control API in OpenAPI 3.1, generated from the routes served."""
    return reply(document(request.app, request.app[TOKEN]))


TOKEN = web.AppKey("control_token_required", bool)
ROUTES: list[web.RouteDef] = [web.get("/openapi.json", openapi)]
