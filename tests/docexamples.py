"""The executable examples of ``docs/protocols.md``: parsed from the document, sent to a real server with
the reference clients (which encrypt and sign), and compared with the documented answers.

In the document, a request is a fenced block preceded by ``<!-- request: DIALECT PATH [bad=WHAT] -->`` (XPro:
the plaintext before encryption; Fizzy and AMBSlot: the exact body bytes), and its answer the next fenced
block preceded by ``<!-- answer: HTTP-STATUS -->``. In an answer, a string written ``"<...>"`` stands for any
value (a logUUID, a token, a time). ``bad=`` sends the request broken on purpose: ``signature`` (a wrong
signature), ``token`` (no Bearer token), ``key`` (XPro: encrypted with another key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from simulator import jsonio
from simulator.dialects.client import AmbslotClient, FizzyClient, Prepared, Reply, XproClient

BLOCK = re.compile(r"<!-- (request|answer|worked): ?([^>]*?) -->\s*\n```[a-z]*\n(.*?)\n```", re.S)


@dataclass
class Example:
    dialect: str
    path: str
    text: str
    bad: str | None
    line: int
    status: int = 0
    answer: str = ""

    @property
    def name(self) -> str:
        return f"line {self.line}: {self.dialect} {self.path}" + (f" bad={self.bad}" if self.bad else "")


@dataclass
class Worked:
    dialect: str
    values: dict[str, str]
    line: int


@dataclass
class Document:
    examples: list[Example] = field(default_factory=list)
    worked: list[Worked] = field(default_factory=list)


def parse(markdown: str) -> Document:
    doc = Document()
    for m in BLOCK.finditer(markdown):
        kind, args, body = m.group(1), m.group(2).split(), m.group(3)
        line = markdown.count("\n", 0, m.start()) + 1
        if kind == "request":
            bad = next((a.split("=", 1)[1] for a in args[2:] if a.startswith("bad=")), None)
            doc.examples.append(Example(args[0], args[1], body, bad, line))
        elif kind == "answer":
            assert doc.examples and not doc.examples[-1].answer, f"line {line}: an answer without its request"
            doc.examples[-1].status, doc.examples[-1].answer = int(args[0]), body
        else:
            values = dict(row.split(": ", 1) for row in body.splitlines() if ": " in row)
            doc.worked.append(Worked(args[0], {k.strip(): v for k, v in values.items()}, line))
    return doc


def matches(documented: Any, actual: Any, where: str = "") -> list[str]:
    """Every difference between a documented answer and the real one (``"<...>"`` matches any value)."""
    if isinstance(documented, str) and documented.startswith("<") and documented.endswith(">"):
        return [] if actual is not None else [f"{where}: expected a value, got null"]
    if isinstance(documented, dict) and isinstance(actual, dict):
        problems = [f"{where}.{k}: missing" for k in documented if k not in actual]
        problems += [f"{where}.{k}: not documented ({actual[k]!r})" for k in actual if k not in documented]
        for key in documented:
            if key in actual:
                problems += matches(documented[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(documented, list) and isinstance(actual, list) and len(documented) == len(actual):
        return [
            p for i, (d, a) in enumerate(zip(documented, actual, strict=True)) for p in matches(d, a, f"{where}[{i}]")
        ]
    return (
        [] if documented == actual and type(documented) is type(actual) else [f"{where}: {documented!r} != {actual!r}"]
    )


class Runner:
    """Sends the examples in document order, as a user following the document would (one server)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.xpro = XproClient(url)
        self.fizzy = FizzyClient(url)
        self.amb = AmbslotClient(url)

    async def close(self) -> None:
        for client in (self.xpro, self.fizzy, self.amb):
            await client.close()

    def prepare(self, ex: Example) -> Prepared:
        if ex.dialect == "xpro":
            options: dict[str, Any] = {}
            if ex.bad == "token":
                options["token"] = ""
            if ex.bad == "key":
                options["key"] = b"x" * 32
            prepared = self.xpro.prepare(ex.path, ex.text, **options)
            if ex.bad == "signature":
                prepared.headers["x-signature"] = "0" * 64
            return prepared
        if ex.dialect == "fizzy":
            prepared = self.fizzy.prepare(ex.path, ex.text)
            if ex.bad == "signature":
                prepared.headers["Signature"] = "0" * 64
            return prepared
        assert ex.dialect == "ambslot", ex.name
        return self.amb.prepare(ex.path, ex.text)

    async def send(self, ex: Example) -> Reply:
        client = {"xpro": self.xpro, "fizzy": self.fizzy, "ambslot": self.amb}[ex.dialect]
        reply = await client.send(self.prepare(ex))
        if ex.path == "/v2/auth" and isinstance(reply.body, dict) and reply.body.get("code") == 0:
            self.xpro.token = str(reply.body["data"]["accessToken"])
        return reply

    async def check(self, ex: Example) -> list[str]:
        reply = await self.send(ex)
        problems = [] if reply.status == ex.status else [f"HTTP {reply.status}, documented {ex.status}"]
        return problems + matches(jsonio.loads(ex.answer), reply.body)
