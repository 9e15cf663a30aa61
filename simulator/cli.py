"""Command line: ``python -m simulator serve | validate | xpro ... | fizzy ... | ambslot ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from simulator import __version__, heap, jsonio
from simulator.app import create_app
from simulator.client import (
    DEMO_AMBSLOT,
    DEMO_FIZZY,
    DEMO_XPRO,
    AmbslotClient,
    FizzyClient,
    Prepared,
    XproClient,
)
from simulator.config import Settings, xpro_key
from simulator.config import load as load_config
from simulator.dialects.crypto import xpro_decrypt, xpro_encrypt, xpro_signature, xpro_string_to_sign
from simulator.errors import DecryptionFailed, SourceError
from simulator.scenarios import loader
from simulator.scenarios.model import Scenario
from simulator.service import Simulator

log = logging.getLogger("simulator")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def banner(settings: Settings, scenario: Scenario, base: str, admin_token: str | None) -> str:
    lines = [f"Wallet simulator {__version__} listening on {base}", ""]
    x, f, a = settings.xpro, settings.fizzy, settings.ambslot
    for agent in list(x.agents.values())[:3]:
        lines.append(
            f"  XPro     {base}{x.prefix}/v2/auth  agent={agent.id} secret={agent.secret} "
            f"api_key={agent.api_key} currency={agent.currency}"
        )
    for brand in list(f.brands.values())[:3]:
        lines.append(
            f"  Fizzy    {base}{f.prefix}/wallet/balance  Public-Key={brand.public_key} "
            f"private key={brand.private_key} currency={brand.currency}"
        )
    for amb in list(a.agents.values())[:3]:
        lines.append(f"  AMBSlot  {base}{a.prefix}/balance  agent={amb.id} currency={amb.currency}")
    lines.append(f"  Admin    {base}/_sim/health" + ("  (Authorization: Bearer <admin token>)" if admin_token else ""))
    rules = len(scenario.rules)
    lines.append(f"  Scenario {scenario.name} ({', '.join(scenario.sources) or 'none'}): {rules} rule(s)")
    return "\n".join(lines)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(
    settings: Settings,
    scenario: Scenario,
    *,
    admin_token: str | None,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    keep: Callable[[Simulator], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``); requests in flight get ``shutdown_timeout`` to finish.
    ``ready`` is called with the base URL once listening; ``keep`` gets the Simulator (embedding, tests)."""
    sim = Simulator(settings, scenario)
    if keep:
        keep(sim)
    app = create_app(sim, admin_token)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=settings.server.shutdown_timeout
    )
    await runner.setup()
    sock = bind(settings.server.host, settings.server.port)
    site = web.SockSite(runner, sock)
    await site.start()
    heap.settle()  # start-up's objects are permanent: no collection walks them again
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(banner(settings, scenario, base, admin_token), flush=True)
    if ready:
        ready(base)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: waiting up to %ss for requests in flight", settings.server.shutdown_timeout)
        await runner.cleanup()


def configure_logging(fmt: str, level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(message)s" if fmt == "json" else "%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = load_config(args.config)
        overrides: dict[str, Any] = {}
        for name in ("host", "port", "log_format", "journal_size", "admin_token"):
            value = getattr(args, name)
            if value is not None:
                overrides[name] = value
        if args.insecure_admin:
            overrides["insecure_admin"] = True
        if args.quiet:
            overrides["log_requests"] = False
        if overrides:
            settings = dataclasses.replace(settings, server=dataclasses.replace(settings.server, **overrides))
        scenario = loader.load_files(args.scenario or [], settings)
    except SourceError as exc:
        print("refusing to start:\n" + "\n".join(f"  {p}" for p in exc.problems), file=sys.stderr)
        return 2
    server = settings.server
    if not is_loopback(server.host) and not server.admin_token and not server.insecure_admin:
        print(
            f"refusing to start: bound to {server.host}, the /_sim control API would be open to the network.\n"
            "  Give --admin-token TOKEN (then /_sim needs Authorization: Bearer TOKEN),\n"
            "  or --insecure-admin to leave it open on purpose.",
            file=sys.stderr,
        )
        return 2
    configure_logging(server.log_format)
    try:
        asyncio.run(serve(settings, scenario, admin_token=server.admin_token))
    except OSError as exc:
        print(f"cannot listen on {server.host}:{server.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        settings = load_config(args.config)
    except SourceError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    failed = 0
    for path in args.files:
        try:
            scenario = loader.read(path, settings)
        except SourceError as exc:
            failed += 1
            print("\n".join(exc.problems), file=sys.stderr)
            continue
        print(f"{path}: ok ({scenario.name}: {len(scenario.players)} player entr(ies), {len(scenario.rules)} rule(s))")
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(loader.schema_path() if args.path else jsonio.pretty(loader.schema()))
    return 0


# helpers for integrators debugging their own crypto


def _show(prepared: Prepared) -> None:
    for name, value in prepared.notes.items():
        print(f"{name}:\n  {value}")
    print("headers:")
    for name, value in prepared.headers.items():
        print(f"  {name}: {value}")
    print(f"body:\n  {prepared.body.decode()}")
    print(f"curl:\n  {prepared.curl()}")


def _print_reply(status: int, body: Any) -> None:
    print(f"HTTP {status}")
    print(body if isinstance(body, str) else jsonio.pretty(body))


def cmd_xpro(args: argparse.Namespace) -> int:
    key = xpro_key(args.api_key)
    if args.action == "encrypt":
        iv = bytes.fromhex(args.iv) if args.iv else None
        print(xpro_encrypt(key, args.plaintext.encode("utf-8"), iv))
        return 0
    if args.action == "decrypt":
        try:
            print(xpro_decrypt(key, args.cipher_text).decode("utf-8", "replace"))
        except DecryptionFailed as exc:
            print(f"cannot decrypt: {exc.detail}", file=sys.stderr)
            return 1
        return 0
    if args.action == "sign" and args.cipher_text:
        ts = args.timestamp or str(int(time.time() * 1000))
        canonical = xpro_string_to_sign(args.agent, ts, args.nonce, args.cipher_text)
        print(
            f"canonical:\n  {canonical}\nx-signature:\n  {xpro_signature(args.agent, ts, args.nonce, args.cipher_text)}"
        )
        return 0
    client = XproClient(args.url, args.agent, args.secret, args.api_key)
    if args.action == "sign":
        _show(
            client.prepare(
                args.path,
                args.plaintext or "{}",
                token=args.token,
                timestamp=args.timestamp,
                nonce=args.nonce or None,
            )
        )
        return 0

    async def call() -> int:
        async with client:
            if args.path != "/v2/auth":
                client.token = args.token or await client.authenticate()
            prepared = client.prepare(args.path, args.plaintext or "{}")
            if args.verbose:
                _show(prepared)
            reply = await client.send(prepared)
            _print_reply(reply.status, reply.body)
            return 0 if reply.status == 200 and isinstance(reply.body, dict) and reply.body.get("code") == 0 else 1

    return asyncio.run(call())


def cmd_fizzy(args: argparse.Namespace) -> int:
    client = FizzyClient(args.url, args.public_key, args.private_key)
    prepared = client.prepare(args.path, args.body, url=args.signed_url)
    if args.action == "sign":
        _show(prepared)
        return 0

    async def call() -> int:
        async with client:
            if args.verbose:
                _show(prepared)
            reply = await client.send(prepared)
            _print_reply(reply.status, reply.body)
            return 0 if reply.status == 200 else 1

    return asyncio.run(call())


def cmd_ambslot(args: argparse.Namespace) -> int:
    client = AmbslotClient(args.url, args.agent)

    async def call() -> int:
        async with client:
            prepared = client.prepare(args.path, args.body)
            if args.verbose:
                _show(prepared)
            reply = await client.send(prepared)
            _print_reply(reply.status, reply.body)
            ok = isinstance(reply.body, dict) and reply.body.get("status", {}).get("code") == 0
            return 0 if ok else 1

    return asyncio.run(call())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulator", description="Wallet-API simulator for iGaming integrators.")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve all three dialects and the /_sim control API")
    s.add_argument("--host", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    s.add_argument("--config", help="YAML config file (agents, brands, policies, server settings)")
    s.add_argument("--scenario", action="append", help="scenario file; repeat to apply several in order")
    s.add_argument("--admin-token", help="require Authorization: Bearer TOKEN on /_sim (not health)")
    s.add_argument("--insecure-admin", action="store_true", help="leave /_sim open on a non-loopback address")
    s.add_argument("--log-format", choices=["text", "json"])
    s.add_argument("--journal-size", type=int, help="requests kept by the journal")
    s.add_argument("--quiet", action="store_true", help="no line per request")
    s.set_defaults(func=cmd_serve)

    v = sub.add_parser("validate", help="check scenario files; every mistake with file, line and key")
    v.add_argument("files", nargs="+")
    v.add_argument("--config", help="config file, to check tenants named by the scenario")
    v.set_defaults(func=cmd_validate)

    sc = sub.add_parser("schema", help="print the scenario JSON Schema (or its path with --path)")
    sc.add_argument("--path", action="store_true")
    sc.set_defaults(func=cmd_schema)

    x = sub.add_parser("xpro", help="XPro helpers: sign, encrypt, decrypt, call")
    x.add_argument("action", choices=["sign", "encrypt", "decrypt", "call"])
    x.add_argument("--url", default="http://127.0.0.1:8080")
    x.add_argument("--path", default="/v2/members/balance")
    x.add_argument("--agent", default=DEMO_XPRO["id"])
    x.add_argument("--secret", default=DEMO_XPRO["secret"])
    x.add_argument("--api-key", default=DEMO_XPRO["api_key"], help="32 chars, hex:<64>, or base64:<44>")
    x.add_argument("--plaintext", help='request before encryption, e.g. \'{"username":"player001"}\'')
    x.add_argument("--cipher-text", help="a captured cipherText (decrypt, or sign as it is)")
    x.add_argument("--token", help="Bearer token (call: fetched with /v2/auth when omitted)")
    x.add_argument("--timestamp", help="x-timestamp in ms (default now)")
    x.add_argument("--nonce", default="", help="x-nonce (default random)")
    x.add_argument("--iv", help="encrypt: a fixed 12-byte IV in hex (for reproducible vectors)")
    x.add_argument("-v", "--verbose", action="store_true", help="call: show the request too")
    x.set_defaults(func=cmd_xpro)

    f = sub.add_parser("fizzy", help="Fizzy Bubbly helpers: sign, call")
    f.add_argument("action", choices=["sign", "call"])
    f.add_argument("path", nargs="?", default="/wallet/balance")
    f.add_argument("body", nargs="?", default='{"playerId":"p-1","sessionId":"s-1","currency":"EUR"}')
    f.add_argument("--url", default="http://127.0.0.1:8080")
    f.add_argument("--signed-url", help="sign this absolute URL instead of --url + path (behind a proxy)")
    f.add_argument("--public-key", default=DEMO_FIZZY["public_key"])
    f.add_argument("--private-key", default=DEMO_FIZZY["private_key"])
    f.add_argument("-v", "--verbose", action="store_true")
    f.set_defaults(func=cmd_fizzy)

    a = sub.add_parser("ambslot", help="AMBSlot helper: call")
    a.add_argument("action", choices=["call"])
    a.add_argument("path", nargs="?", default="/balance")
    a.add_argument("body", nargs="?", default='{"username":"member001","agentId":"demo"}')
    a.add_argument("--url", default="http://127.0.0.1:8080")
    a.add_argument("--agent", default=DEMO_AMBSLOT["id"])
    a.add_argument("-v", "--verbose", action="store_true")
    a.set_defaults(func=cmd_ambslot)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result
