"""The journal as an HTTP Archive (HAR 1.2), for a browser's network viewer: ``GET /_sim/journal?format=har``.

A HAR entry wants the request and response as they crossed the wire; the journal keeps what a test needs,
so each entry says where it differs (``comment``): the request body is what was received when the journal
kept it (refused requests), else the decoded request (for XPro the decrypted plaintext, not the encrypted
wire body); request headers are known only for refused requests, with secrets redacted; the response is
the body the simulator sent, or what an injected fault left of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from simulator import __version__, jsonio
from simulator.dialects import registry
from simulator.journal import Entry

HTTP = "HTTP/1.1"
REASONS = {0: "", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 500: "Internal Server Error", 502: "Bad Gateway"}
FAULTS = {  # what the caller got from each injected fault: (status, body, note)
    "drop": (0, "", "fault drop: the connection closed without an answer"),
    "reset": (0, "", "fault reset: the connection was reset"),
    "empty": (200, "", "fault empty: 200 with an empty body"),
    "malformed": (200, "", "fault malformed: the answer was cut in half (not kept by the journal)"),
    "gateway": (502, "", "fault gateway: an HTML 502 page"),
}


def _pairs(mapping: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in mapping.items()]


def _request(entry: Entry, url: str) -> dict[str, Any]:
    received = getattr(entry, "received", None)  # refused requests (when the journal keeps them)
    if isinstance(received, dict):
        text, headers, note = str(received.get("body", "")), received.get("headers") or {}, "as received"
        size = int(received.get("body_bytes", len(text.encode())))
    else:
        request = entry.op.request if entry.op is not None else None
        text = "" if request is None else jsonio.dumps(request)
        headers, size = {}, -1  # not kept for answered requests
        encrypted = registry.get(entry.dialect).encrypted
        note = "decrypted plaintext (the wire body was encrypted)" if encrypted else "decoded body"
    return {
        "method": "POST",
        "url": url,
        "httpVersion": HTTP,
        "cookies": [],
        "headers": _pairs(headers),
        "queryString": [],
        "postData": {"mimeType": "application/json", "text": text, "comment": note},
        "headersSize": -1,
        "bodySize": size,
    }


def _response(entry: Entry) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if entry.rule:
        headers["X-Sim-Rule"] = entry.rule
    if entry.detail:
        headers["X-Sim-Detail"] = entry.detail
    status, text, note = entry.status, "" if entry.body is None else jsonio.dumps(entry.body), ""
    if entry.fault:
        status, text, note = FAULTS.get(entry.fault, (0, "", f"fault {entry.fault}"))
        if entry.fault == "gateway":
            headers["Content-Type"] = "text/html"
    response = {
        "status": status,
        "statusText": REASONS.get(status, ""),
        "httpVersion": HTTP,
        "cookies": [],
        "headers": _pairs(headers),
        "content": {"size": len(text.encode()), "mimeType": headers["Content-Type"], "text": text},
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": len(text.encode()) if status else -1,
    }
    if note:
        response["comment"] = note
    return response


def entry(item: Entry, base: str, prefixes: dict[str, str]) -> dict[str, Any]:
    url = base + prefixes.get(item.dialect, "") + item.endpoint
    started = dt.datetime.fromtimestamp(item.time, dt.UTC).isoformat(timespec="milliseconds")
    wait = round(item.ms, 3)
    har: dict[str, Any] = {
        "startedDateTime": started,
        "time": wait,
        "request": _request(item, url),
        "response": _response(item),
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": wait, "receive": 0, "ssl": -1},
        "comment": f"journal #{item.seq}: {item.dialect} {item.operation or '-'}"
        + (f", rule {item.rule}" if item.rule else "")
        + (f", injected delay {round(item.delay * 1000)} ms" if item.delay else ""),
    }
    return har


def archive(entries: list[Entry], base: str, prefixes: dict[str, str]) -> dict[str, Any]:
    """A HAR 1.2 document of ``entries`` (oldest first); ``base`` is the simulator's URL as the caller sees it."""
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "wallet-simulator", "version": __version__},
            "pages": [],
            "entries": [entry(e, base, prefixes) for e in entries],
        }
    }
