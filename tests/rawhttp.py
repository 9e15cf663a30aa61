"""Raw HTTP/1.1 over a socket, for requests no well-behaved client would send (non-UTF-8 header bytes)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from simulator import jsonio


async def send(url: str, method: str, path: str, headers: dict[str, bytes | str], body: bytes = b"") -> tuple[int, Any]:
    """One request on a fresh connection; ``(status, parsed JSON body or text)``."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {parts.netloc}".encode()]
    given = {k.lower() for k in headers}
    if "host" in given:
        lines.pop()
    for name, value in headers.items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, jsonio.loads(payload)
    except jsonio.JSONError:
        return status, payload.decode("utf-8", "replace")
