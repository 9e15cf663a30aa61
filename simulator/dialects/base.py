"""What every dialect shares: the request handler, error rendering through one table, and faults.

A dialect subclass provides ``decode`` (verify, decrypt, validate -> Operation), ``perform`` (the ledger
work, synchronous and atomic) and the two renderers; :meth:`Dialect.handle` does the rest, the same way
for all three: POST only, body size limit, the pipeline of :class:`~simulator.service.Simulator`, the
scenario's faults, the journal and the log line.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from aiohttp import web

from simulator import jsonio
from simulator.dialects import evidence, registry
from simulator.errors import BadRequest, DomainError, Injected, InternalError
from simulator.journal import Entry
from simulator.operations import Operation, Outcome
from simulator.server import netserve
from simulator.service import Simulator

log = logging.getLogger("simulator")

GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

Rendered = tuple[int, Any, Any]  # (HTTP status, body, wire code)
DETAIL_CHARS = 512  # X-Sim-Detail and X-Sim-Rule are cut here (the journal keeps the whole text)
HEADER_SAFE = "".join(chr(c) for c in range(32, 127) if chr(c) != "%")


class Dialect(ABC):
    name: ClassVar[str]
    #: path (without prefix) -> neutral operation name
    ENDPOINTS: ClassVar[dict[str, str]]
    #: the one table from domain error class to wire code, looked up along the exception's MRO
    ERRORS: ClassVar[dict[type[DomainError], Any]]

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.description = registry.get(self.name)
        self.codes = self.description.codes
        self.neutral = self.description.neutral

    @property
    @abstractmethod
    def prefix(self) -> str: ...

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", self.prefix + path, self._handler(path)) for path in self.ENDPOINTS]

    def _handler(self, path: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, path)

        return handler

    # to implement

    @abstractmethod
    def decode(self, request: web.Request, body: bytes, op: Operation) -> None:
        """Verify and parse the request into ``op`` (filled in place, so a refusal still shows what was
        understood); raise a DomainError to refuse it."""

    @abstractmethod
    def perform(self, op: Operation) -> dict[str, Any]:
        """Do the ledger work for a decoded request; return the data the success renderer needs."""

    @abstractmethod
    def render_success(self, op: Operation, data: dict[str, Any]) -> Rendered: ...

    @abstractmethod
    def render_error(self, op: Operation, code: Any, message: str, status: int) -> Rendered: ...

    def decoded_text(self, op: Operation, body: bytes) -> bytes:
        """The JSON text ``op.request`` was decoded from, for the journal's size estimate: the body itself,
        unless the dialect decodes something else (XPro's decrypted plaintext)."""
        return body

    # shared

    def wire_code(self, err: DomainError) -> Any:
        if isinstance(err, Injected):
            return err.code if err.code is not None else self.neutral[err.error or "internal_error"]
        for cls in type(err).__mro__:
            if cls in self.ERRORS:
                return self.ERRORS[cls]
        return self.neutral["internal_error"]

    def render(self, op: Operation, outcome: Outcome) -> Rendered:
        err = outcome.error
        if err is None:
            assert outcome.data is not None
            return self.render_success(op, outcome.data)
        code = self.wire_code(err)
        status, message = self.codes[code]
        if isinstance(err, Injected):
            status = err.http_status or status
            message = err.message or message
        return self.render_error(op, code, message, status)

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        started = time.perf_counter()
        op = Operation(dialect=self.name, operation=self.ENDPOINTS[path], endpoint=path)
        body = b""
        server = self.sim.settings.server
        stalled = False
        op.params["started"] = self.sim.clock()  # the scorecard orders a client's moves by when they began
        try:
            if request.method != "POST":
                raise BadRequest(f"{request.method} is not allowed here; every endpoint takes POST")
            try:
                body = await netserve.read_body(request, server.request_timeout)
            except web.HTTPRequestEntityTooLarge:
                raise BadRequest(f"body larger than {server.max_body_bytes} bytes") from None
            except netserve.BodyTimeout as exc:
                stalled = True
                raise BadRequest(str(exc)) from None
            self.decode(request, body, op)
            outcome = await self.sim.run(op, self.perform)
        except DomainError as err:
            outcome = Outcome(error=err)
        except Exception as exc:  # a bug: never a traceback on the wire
            log.exception("simulator bug while handling %s %s", self.name, path)
            outcome = Outcome(error=InternalError(f"simulator bug: {type(exc).__name__}: {exc}"))

        response, status, payload, code = self._respond(request, op, outcome)
        if stalled:
            response.force_close()  # the rest of the body may still arrive: this connection is done
        self.sim.record(self._entry(request, body, op, outcome, (status, payload, code), started))
        return response

    def _entry(
        self, request: web.Request, body: bytes, op: Operation, outcome: Outcome, sent: Rendered, started: float
    ) -> Entry:
        """The journal entry of a handled request. A refused one keeps what arrived (bounded, secrets
        redacted) and, from a caller that was not authenticated, nothing decoded."""
        err = outcome.error
        kept = None
        if err is not None and not isinstance(err, Injected):
            kept = evidence.received(request, body, self.sim.settings.server.journal_body_bytes)
            if not op.authenticated:
                op.request = None
        diagnostics = err.info if err is not None else None
        detail = evidence.clean(err.detail, evidence.MAX_DETAIL) if err else None
        status, payload, code = sent
        return Entry(
            seq=self.sim.journal.next_seq(),
            time=self.sim.clock(),
            dialect=self.name,
            endpoint=op.endpoint,
            op=op,
            status=status,
            body=payload,
            code=code,
            rule=outcome.rule,
            fault=outcome.fault,
            detail=detail,
            ms=(time.perf_counter() - started) * 1000,
            delay=outcome.delay,
            size=evidence.size(
                op, body, detail, kept, diagnostics, self.decoded_text(op, body) if op.request is not None else None
            ),
            received=kept,
            diagnostics=diagnostics,
        )

    def _respond(
        self, request: web.Request, op: Operation, outcome: Outcome
    ) -> tuple[web.StreamResponse, int, Any, Any]:
        """The HTTP response for an outcome; if rendering itself fails (a bug), the internal error shape."""
        headers: dict[str, str] = {}
        if outcome.rule:
            headers["X-Sim-Rule"] = header_text(outcome.rule)
        if outcome.error is not None:
            headers["X-Sim-Detail"] = _header_safe(outcome.error.detail)
        if outcome.fault:
            response = self._fault(request, op, outcome)
            response.headers.update(headers)  # what a rule did stays visible (empty, malformed, gateway)
            return response, 0, None, None
        try:
            status, payload, code = self.render(op, outcome)
            body = jsonio.dumpb(payload)
        except Exception as exc:
            log.exception("simulator bug while rendering %s %s", self.name, op.endpoint)
            outcome.error = InternalError(f"simulator bug: {type(exc).__name__}: {exc}")
            outcome.data = None
            status, payload, code = self.render(op, outcome)
            body = jsonio.dumpb(payload)
            headers["X-Sim-Detail"] = _header_safe(outcome.error.detail)
        return (
            web.Response(body=body, status=status, content_type="application/json", headers=headers),
            status,
            payload,
            code,
        )

    def _fault(self, request: web.Request, op: Operation, outcome: Outcome) -> web.StreamResponse:
        fault = outcome.fault
        transport = request.transport
        if fault in ("drop", "reset"):
            if transport is not None:
                if fault == "reset":
                    sock = transport.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    transport.abort()
                else:
                    transport.close()
            return web.Response()  # never written: the connection is gone
        if fault == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if fault == "gateway":
            return web.Response(status=502, body=GATEWAY_HTML, content_type="text/html")
        # malformed: the answer the caller would have had, cut in half
        shown = outcome if outcome.data is not None else Outcome(error=InternalError("malformed"))
        raw = jsonio.dumpb(self.render(op, shown)[1])
        return web.Response(status=200, body=raw[: max(1, len(raw) // 2)], content_type="application/json")


def log_id() -> str:
    """A random UUID version 4 as text, for logUUID / traceId: identifiers, not secrets, so the fast
    ``random`` generator serves (``uuid.uuid4()`` cost ~3% of an XPro request)."""
    n = random.getrandbits(128)
    n = (n & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _header_safe(text: str) -> str:
    """ASCII for a header: an ellipsis as ``...`` (as the journal's details write it), anything else as ``?``."""
    text = text.replace("…", "...")
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)[:DETAIL_CHARS]


def header_text(text: str) -> str:
    """User-supplied text (a rule name) as a header value: printable ASCII as is, anything else
    percent-encoded as UTF-8, so no byte of it can end the header or be refused by aiohttp."""
    return urllib.parse.quote(evidence.clean(text), safe=HEADER_SAFE)[:DETAIL_CHARS]
