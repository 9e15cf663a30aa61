"""Command line: ``python -m simulator serve | validate | xpro ... | fizzy ... | ambslot ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TypeAlias

from simulator import __version__, jsonio, store, testing
from simulator.certify.cli import add_parser as add_certify
from simulator.cli import call as cli_call
from simulator.cli import waitready
from simulator.config import Settings, environ, xpro_key
from simulator.config import load as load_config
from simulator.dialects import registry
from simulator.dialects.client import (
    DEMO_AMBSLOT,
    DEMO_FIZZY,
    DEMO_XPRO,
    AmbslotClient,
    FizzyClient,
    Reply,
    XproClient,
)
from simulator.dialects.crypto import xpro_decrypt, xpro_encrypt, xpro_signature, xpro_string_to_sign
from simulator.errors import DecryptionFailed, SourceError
from simulator.scenarios import loader
from simulator.server import logs, workers
from simulator.server.serve import plural, refuse, serve

log = logging.getLogger("simulator")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    problems = environ.apply(args, os.environ)
    logs.configure(args.log_format or "text")
    if problems:
        return refuse(args.log_format, "refusing to start: bad environment variable", problems)
    try:
        settings = load_config(args.config)
        overrides = environ.overrides(args, "server")
        if args.quiet:
            overrides["log_requests"] = False
        if overrides:
            settings = dataclasses.replace(settings, server=dataclasses.replace(settings.server, **overrides))
        logs.configure(settings.server.log_format)
        scenario = loader.load_files(args.scenario or [], settings)
        for warning in scenario.warnings:
            log.warning(warning)
        settings = store.chosen(settings, args.store)
    except SourceError as exc:
        return refuse(args.log_format, "refusing to start", exc.problems)
    except store.StoreError as exc:
        return refuse(args.log_format, f"refusing to start: {exc}", [])
    if args.workers is not None and args.workers > 1 and store.parse(settings.store) is None:
        return refuse(
            args.log_format,
            f"refusing to start: --workers {args.workers} needs a shared store (--store redis://host:port/db); "
            "with the in-memory store each process would have its own wallets",
            [],
        )
    server = settings.server
    if not is_loopback(server.host) and not server.admin_token and not server.insecure_admin:
        return refuse(
            server.log_format,
            f"refusing to start: bound to {server.host}, the /_sim control API would be open to the network",
            [
                "Give --admin-token TOKEN (then /_sim needs Authorization: Bearer TOKEN),",
                "or --insecure-admin to leave it open on purpose.",
            ],
        )
    if args.workers is not None and args.workers > 1:
        return workers.run(settings, scenario, args.workers)
    try:
        asyncio.run(serve(settings, scenario, admin_token=server.admin_token))
    except store.StoreError as exc:
        return refuse(server.log_format, f"refusing to start: {exc}", [], 1)
    except OSError as exc:
        return refuse(server.log_format, f"cannot listen on {server.host}:{server.port}: {exc.strerror or exc}", [], 1)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    settings: Settings | None = None
    try:
        settings = load_config(args.config)
    except SourceError as exc:  # the scenario files are still checked (but for their tenants): one pass
        print("\n".join(exc.problems), file=sys.stderr)
        failed = 1
    for path in args.files:
        try:
            scenario = loader.read(path, settings)
        except SourceError as exc:
            failed += 1
            print("\n".join(exc.problems), file=sys.stderr)
            continue
        for warning in scenario.warnings:
            print(warning, file=sys.stderr)
        print(
            f"{path}: ok ({scenario.name}: {plural(len(scenario.players), 'player entry', 'player entries')}, "
            f"{plural(len(scenario.rules), 'rule')})"
        )
    return 1 if failed else 0


def cmd_wait_ready(args: argparse.Namespace) -> int:
    ready, line = waitready.wait(args.url, args.timeout, args.interval)
    print(line, file=sys.stdout if ready else sys.stderr)
    return 0 if ready else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from simulator.money import parse_amount
    from simulator.scenarios import seeding

    balance: Any = None
    try:
        if args.balance and ":" in args.balance:
            low, high = (parse_amount(part) for part in args.balance.split(":", 1))
            if low > high or low < 0:
                raise ValueError(f"{args.balance!r}: MIN must not be negative nor larger than MAX")
            balance = {"min": low, "max": high}
        elif args.balance:
            balance = parse_amount(args.balance)
    except ValueError as exc:
        print(f"generate: --balance: {exc}", file=sys.stderr)
        return 2
    if not 1 <= args.count <= 1_000_000:
        print("generate: --count must be between 1 and 1,000,000", file=sys.stderr)
        return 2
    try:
        settings = load_config(args.config)
        text = seeding.listing(
            settings, args.dialect, args.count, args.seed, balance, args.currency, args.tenant, args.format
        )
    except (SourceError, ValueError) as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(loader.schema_path() if args.path else jsonio.pretty(loader.schema()))
    return 0


def cmd_config_doc(args: argparse.Namespace) -> int:
    text = environ.markdown()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        print(text, end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from simulator.scorecard import command  # rich is only imported when a report is shown

    return command.run(testing.fetch_report, args.url, args.format, args.admin_token, args.all)


# helpers for integrators debugging their own crypto (the exchange itself: simulator.cli.call)


def cmd_xpro(args: argparse.Namespace) -> int:
    needed = {"encrypt": ("plaintext", "--plaintext"), "decrypt": ("cipher_text", "--cipher-text")}.get(args.action)
    if needed is not None and getattr(args, needed[0]) is None:
        print(f"xpro {args.action}: {needed[1]} is required", file=sys.stderr)
        return 2
    try:  # a wrong --api-key or --iv is a usage mistake: one line, never a traceback
        key = xpro_key(args.api_key)
    except ValueError as exc:
        print(f"xpro {args.action}: --api-key: {exc}", file=sys.stderr)
        return 2
    if args.action == "encrypt":
        try:
            iv = bytes.fromhex(args.iv) if args.iv else None
            if iv is not None and len(iv) != 12:
                raise ValueError(f"{len(iv)} bytes")
        except ValueError:
            print(f"xpro encrypt: --iv must be 24 hex digits (12 bytes), not {args.iv!r}", file=sys.stderr)
            return 2
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
        cli_call.show(
            client.prepare(
                args.path,
                args.plaintext or "{}",
                token=args.token,
                timestamp=args.timestamp,
                nonce=args.nonce or None,
            )
        )
        return 0

    def succeeded(reply: Reply) -> bool:
        return reply.status == 200 and bool(cli_call.code_of(reply, "code") == 0)

    async def call() -> int:
        async with client:
            if args.path != "/v2/auth":
                if args.token:
                    client.token = args.token
                else:
                    auth = client.prepare("/v2/auth", {"agentId": client.agent_id, "secret": client.secret})
                    got, reply = await cli_call.exchange(client.send, auth, succeeded, verbose=args.verbose)
                    if reply is None or got != cli_call.OK:
                        print("error: /v2/auth gave no token (above); nothing else was sent", file=sys.stderr)
                        return got
                    client.token = str(reply.json["data"]["accessToken"])
            prepared = client.prepare(args.path, args.plaintext or "{}")
            return (await cli_call.exchange(client.send, prepared, succeeded, verbose=args.verbose))[0]

    return cli_call.run(call, args.url)


def cmd_fizzy(args: argparse.Namespace) -> int:
    client = FizzyClient(args.url, args.public_key, args.private_key)
    prepared = client.prepare(args.path, args.body, url=args.signed_url)
    if args.action == "sign":
        cli_call.show(prepared)
        return 0

    async def call() -> int:
        async with client:
            return (await cli_call.exchange(client.send, prepared, lambda r: r.status == 200, verbose=args.verbose))[0]

    return cli_call.run(call, args.url)


def cmd_ambslot(args: argparse.Namespace) -> int:
    client = AmbslotClient(args.url, args.agent)

    def succeeded(reply: Reply) -> bool:
        return bool(cli_call.code_of(reply, "status", "code") == 0)

    async def call() -> int:
        async with client:
            prepared = client.prepare(args.path, args.body)
            return (await cli_call.exchange(client.send, prepared, succeeded, verbose=args.verbose))[0]

    return cli_call.run(call, args.url)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulator", description="Wallet-API simulator for iGaming integrators.")
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _tool_parsers(sub)
    _xpro_parser(sub)
    _fizzy_ambslot_parsers(sub)
    add_certify(sub)
    for choice in sub._choices_actions:  # `simulator X --help` opens with the line `simulator --help` shows for X
        command = sub.choices[choice.dest]
        command.description = command.description or choice.help
    return p


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _serve_parser(sub: Subparsers) -> None:
    s = sub.add_parser(
        "serve",
        help="serve all three dialects and the /_sim control API",
        epilog=environ.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--config", help="YAML config file (agents, brands, policies, server settings)")
    s.add_argument(
        "--scenario", action="append", help="scenario file or builtin:NAME; repeat to apply several in order"
    )
    environ.add_flags(s)  # the flags that set a setting: declared with it (simulator/config/settings.py)
    s.add_argument("--quiet", action="store_true", help="no line per request")
    s.add_argument(
        "--workers", type=int, help="N processes sharing the port (needs a Redis --store); default 1", metavar="N"
    )
    s.set_defaults(func=cmd_serve)


def _tool_parsers(sub: Subparsers) -> None:
    """validate, wait-ready, schema, config-doc, report."""
    v = sub.add_parser("validate", help="check scenario files; every mistake with file, line and key")
    v.add_argument("files", nargs="+", metavar="FILE", help="scenario file or builtin:NAME")
    v.add_argument("--config", help="config file, to check tenants named by the scenario")
    v.set_defaults(func=cmd_validate)

    w = sub.add_parser("wait-ready", help="wait until a simulator at URL answers /_sim/health (for CI scripts)")
    w.add_argument("url", help="the simulator's base URL, e.g. http://127.0.0.1:8080")
    w.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    w.add_argument("--interval", type=float, default=0.2, help="seconds between attempts (default 0.2)")
    w.set_defaults(func=cmd_wait_ready)

    _generate_parser(sub)

    sc = sub.add_parser("schema", help="print the scenario JSON Schema (or its path with --path)")
    sc.add_argument("--path", action="store_true", help="print where the schema file is instead of its text")
    sc.set_defaults(func=cmd_schema)

    cd = sub.add_parser("config-doc", help="print the configuration reference (docs/configuration.md)")
    cd.add_argument("--output", help="write it to this file instead")
    cd.set_defaults(func=cmd_config_doc)

    r = sub.add_parser("report", help="show a running simulator's scorecard of the client's behaviour")
    r.add_argument("--url", default="http://127.0.0.1:8080", help="the simulator's base URL")
    r.add_argument(
        "--format",
        choices=["plain", "table", "json", "junit"],
        help="a table, one line per finding, JSON or JUnit XML (default: table on a terminal, plain otherwise)",
    )
    r.add_argument("--all", action="store_true", help="table and plain: list passed findings too")
    r.add_argument("--admin-token", help="Bearer token of a /_sim guarded by --admin-token")
    r.set_defaults(func=cmd_report)


def _generate_parser(sub: Subparsers) -> None:
    g = sub.add_parser(
        "generate",
        help="write COUNT Faker-shaped players as a scenario file (the same players for the same --seed)",
    )
    g.add_argument("dialect", choices=registry.NAMES, help="whose players")
    g.add_argument("--count", type=int, required=True, help="how many players (required)")
    g.add_argument("--seed", type=int, default=0, help="the same seed gives the same players (default 0)")
    g.add_argument(
        "--balance",
        help="AMOUNT, or MIN:MAX drawn uniformly in whole cents (default: the tenant's starting balance, XPro 0)",
    )
    g.add_argument("--currency", help="the players' currency (default: the tenant's)")
    g.add_argument("--tenant", help="agent (XPro, AMBSlot) or public key (Fizzy)")
    g.add_argument("--config", help="config file (its tenants, currencies and default balances)")
    g.add_argument(
        "--format",
        choices=["csv", "yaml"],
        default="csv",
        help="csv: dialect,tenant,player,currency,balance lines; yaml: a scenario file of explicit players",
    )
    g.add_argument("-o", "--output", help="write to this file instead of stdout")
    g.set_defaults(func=cmd_generate)


def _xpro_parser(sub: Subparsers) -> None:
    x = sub.add_parser("xpro", help="XPro helpers: sign, encrypt, decrypt, call")
    x.add_argument(
        "action",
        choices=["sign", "encrypt", "decrypt", "call"],
        help="sign: a curl-ready request; encrypt/decrypt: a cipherText; call: send it (a token fetched first)",
    )
    x.add_argument("--url", default="http://127.0.0.1:8080", help="the simulator's base URL (default %(default)s)")
    x.add_argument("--path", default="/v2/members/balance", help="endpoint (default %(default)s)")
    x.add_argument("--agent", default=DEMO_XPRO["id"], help="x-agentid (default: the demo agent)")
    x.add_argument("--secret", default=DEMO_XPRO["secret"], help="the agent's secret, for /v2/auth (default: demo)")
    x.add_argument("--api-key", default=DEMO_XPRO["api_key"], help="32 chars, hex:<64>, or base64:<44>")
    x.add_argument("--plaintext", help='request before encryption, e.g. \'{"username":"player001"}\'')
    x.add_argument("--cipher-text", help="a captured cipherText (decrypt, or sign as it is)")
    x.add_argument("--token", help="Bearer token (call: fetched with /v2/auth when omitted)")
    x.add_argument("--timestamp", help="x-timestamp in ms (default now)")
    x.add_argument("--nonce", default="", help="x-nonce (default random)")
    x.add_argument("--iv", help="encrypt: a fixed 12-byte IV in hex (for reproducible vectors)")
    x.add_argument("-v", "--verbose", action="store_true", help="call: show the request too")
    x.set_defaults(func=cmd_xpro)


def _fizzy_ambslot_parsers(sub: Subparsers) -> None:
    f = sub.add_parser("fizzy", help="Fizzy Bubbly helpers: sign, call")
    f.add_argument("action", choices=["sign", "call"], help="sign: show each step and a curl line; call: send it")
    f.add_argument("path", nargs="?", default="/wallet/balance", help="endpoint (default /wallet/balance)")
    f.add_argument("body", nargs="?", default='{"playerId":"p-1","sessionId":"s-1","currency":"EUR"}', help="JSON body")
    f.add_argument("--url", default="http://127.0.0.1:8080", help="the simulator's base URL (default %(default)s)")
    f.add_argument("--signed-url", help="sign this absolute URL instead of --url + path (behind a proxy)")
    f.add_argument("--public-key", default=DEMO_FIZZY["public_key"], help="Public-Key header (default: demo)")
    f.add_argument("--private-key", default=DEMO_FIZZY["private_key"], help="HMAC key (default: demo)")
    f.add_argument("-v", "--verbose", action="store_true", help="call: show the request too")
    f.set_defaults(func=cmd_fizzy)

    a = sub.add_parser("ambslot", help="AMBSlot helper: call")
    a.add_argument("action", choices=["call"], help="send one request and show the answer")
    a.add_argument("path", nargs="?", default="/balance", help="endpoint (default /balance)")
    a.add_argument("body", nargs="?", default='{"username":"member001","agentId":"demo"}', help="JSON body")
    a.add_argument("--url", default="http://127.0.0.1:8080", help="the simulator's base URL (default %(default)s)")
    a.add_argument("--agent", default=DEMO_AMBSLOT["id"], help="agent id (default: demo)")
    a.add_argument("-v", "--verbose", action="store_true", help="show the request too")
    a.set_defaults(func=cmd_ambslot)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    result: int = args.func(args)
    return result


def parse(argv: list[str]) -> argparse.Namespace:
    """Options may come anywhere after the command (``fizzy call --url U /wallet/withdraw BODY`` and
    ``fizzy call /wallet/withdraw BODY --url U`` alike): each command's own parser parses intermixed."""
    top = parser()
    commands = next((a.choices for a in top._actions if isinstance(a.choices, dict)), {})
    if argv and argv[0] in commands:
        command: argparse.ArgumentParser = commands[argv[0]]
        with contextlib.suppress(TypeError):  # a parser argparse cannot intermix (nested subcommands)
            return command.parse_intermixed_args(argv[1:])
    return top.parse_args(argv)
