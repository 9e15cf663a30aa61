"""Run-time rule control: list, add, replace and remove single scenario rules without a reset.

``GET /_sim/rules`` lists the rules in evaluation order with their hit counts and the names of those that
never fired. A rule sent to ``POST /_sim/rules`` or ``PUT /_sim/rules/{name}`` is JSON or YAML, checked
like a rule of a scenario file (problems carry the line in the body). Changing one rule leaves the ledger,
the journal and every other rule's counters alone; ``POST /_sim/reset`` zeroes all counters.
"""

from __future__ import annotations

from aiohttp import web

from simulator.control.http import AdminError, query_int, reply, sim_of
from simulator.errors import SourceError
from simulator.scenarios import loader
from simulator.scenarios.engine import RuleConflict
from simulator.scenarios.model import Rule


async def _rule_from(request: web.Request, where: str, name: str | None = None) -> tuple[str, Rule]:
    sim = sim_of(request)
    text = await request.text()
    if not text.strip():
        raise AdminError(400, "send one rule as JSON or YAML: name, match and an action")
    try:
        return text, loader.parse_rule(text, where, sim.settings, sim.scenario.seed, name)
    except SourceError as exc:
        raise AdminError(400, str(exc), problems=exc.problems) from None


def _conflict(exc: RuleConflict) -> AdminError:
    return AdminError({"missing": 404, "position": 400}.get(exc.kind, 409), str(exc))


async def list_rules(request: web.Request) -> web.Response:
    return reply(sim_of(request).engine.report())


async def add_rule(request: web.Request) -> web.Response:
    position = query_int(request.query.get("position"), "position")
    text, rule = await _rule_from(request, "(POST /_sim/rules)")
    try:
        where = await sim_of(request).add_rule(text, "(POST /_sim/rules)", position, rule)
    except RuleConflict as exc:
        raise _conflict(exc) from None
    return reply({"ok": True, "name": rule.name, "position": where}, 201)


async def replace_rule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    text, rule = await _rule_from(request, f"(PUT /_sim/rules/{name})", name)
    try:
        where = await sim_of(request).replace_rule(name, text, f"(PUT /_sim/rules/{name})", rule)
    except RuleConflict as exc:
        raise _conflict(exc) from None
    return reply({"ok": True, "name": rule.name, "position": where})


async def remove_rule(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        removed = await sim_of(request).remove_rule(name)
    except RuleConflict as exc:
        raise _conflict(exc) from None
    return reply({"ok": True, "name": removed.name, "hits": removed.hits})


ROUTES: list[web.RouteDef] = [
    web.get("/rules", list_rules),
    web.post("/rules", add_rule),
    web.put("/rules/{name:.+}", replace_rule),
    web.delete("/rules/{name:.+}", remove_rule),
]
