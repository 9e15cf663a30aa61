"""Loading and validating scenario files.

A file is checked in two passes, both reporting ``file:line: key: message``: the JSON Schema that ships
with the package (``schema.json``, usable by editors), then what a schema cannot say (regular expressions,
codes that exist in the rule's dialect, operations that exist in it, tenants that are configured, ...).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from simulator.config import Settings, yamlsrc
from simulator.dialects import registry
from simulator.errors import SourceError
from simulator.money import parse_amount
from simulator.scenarios.model import EQUALITY_KEYS, Delay, Match, Rule, Scenario, duration

MAX_DELAY = 600.0
BUILTIN = "builtin:"  # prefix naming a scenario of the library (scenarios/, shipped in the package)


@cache
def schema() -> dict[str, Any]:
    text = resources.files("simulator.scenarios").joinpath("schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    loaded["$defs"]["dialect"]["enum"] = registry.NAMES  # the registered dialects (the file lists the built-in)
    return loaded


def schema_path() -> str:
    return str(resources.files("simulator.scenarios").joinpath("schema.json"))


class _Checker:
    def __init__(self, source: yamlsrc.SourceMap, settings: Settings | None) -> None:
        self.source = source
        self.settings = settings
        self.problems: list[str] = []
        self.lines: list[int] = []  # the line of each problem, to merge them with the schema's in file order

    def problem(self, path: list[str | int], message: str) -> None:
        self.problems.append(self.source.where(path, message))
        self.lines.append(self.source.line(path))

    def amount(self, path: list[str | int], value: Any, *, negative: bool = False) -> Any:
        try:
            amount = parse_amount(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        if not negative and amount < 0:
            self.problem(path, "must not be negative")
        return amount

    def delay(self, path: list[str | int], spec: Any) -> Delay | None:
        if isinstance(spec, str):
            result = Delay("fixed", duration(spec))
        elif "median" in spec:
            cap = duration(spec["max"]) if "max" in spec else None
            result = Delay("lognormal", duration(spec["median"]), sigma=float(spec["sigma"]), cap=cap)
        else:
            low, high = duration(spec["min"]), duration(spec["max"])
            if low > high:
                self.problem(path, f"min ({spec['min']}) is larger than max ({spec['max']})")
                return None
            result = Delay("uniform", low, high)
        if max(result.a, result.b, result.cap or 0) > MAX_DELAY:
            self.problem(path, f"delays are capped at {MAX_DELAY:.0f}s")
            return None
        return result

    def tenant(self, path: list[str | int], dialect: str, tenant: Any) -> None:
        if self.settings is not None and tenant is not None and tenant not in self.settings.tenants(dialect):
            tenants = self.settings.tenants(dialect)
            hint = yamlsrc.did_you_mean(tenant, tenants)
            self.problem(
                path, f"{tenant!r} is not a configured {dialect} tenant{hint} (configured: {', '.join(tenants)})"
            )

    def rule(self, base: list[str | int], raw: dict[str, Any], name: str, rng_seed: str) -> Rule | None:
        """One rule at ``base`` in the document (``["rules", i]`` in a scenario, ``[]`` for a lone rule)."""
        before = len(self.problems)
        m = raw.get("match", {})
        dialect = m.get("dialect")
        pattern, bounds = self.rule_match(base, m, dialect)
        respond = self.rule_respond(base, raw.get("respond"), dialect)
        self.rule_actions(base, raw)
        delay = self.delay([*base, "delay"], raw["delay"]) if "delay" in raw else None
        if len(self.problems) > before:
            return None
        return Rule(
            name=raw.get("name") or name,
            match=Match(
                equal=tuple((k, m[k]) for k in EQUALITY_KEYS if k in m),
                transaction=pattern,
                amount=bounds,
                nth=m.get("nth"),
                after=m.get("after"),
                probability=m.get("probability"),
            ),
            respond=respond,
            delay=delay,
            duplicate=bool(raw.get("duplicate", False)),
            fault=raw.get("fault"),
            apply=bool(raw.get("apply", False)),
            times=raw.get("times"),
            rng_seed=rng_seed,
            definition=raw,
        )

    def rule_match(
        self, base: list[str | int], m: dict[str, Any], dialect: str | None
    ) -> tuple[re.Pattern[str] | None, tuple[tuple[str, Any], ...]]:
        """A rule's ``match``: the operation, nth/after, the transaction pattern, amount bounds, the tenant."""
        if dialect and m.get("operation") and m["operation"] not in registry.get(dialect).operations:
            ops = sorted(registry.get(dialect).operations)
            hint = yamlsrc.did_you_mean(m["operation"], ops)
            self.problem(
                [*base, "match", "operation"], f"{dialect} has no operation {m['operation']!r}{hint} ({', '.join(ops)})"
            )
        if "nth" in m and "after" in m:
            self.problem([*base, "match", "after"], "use nth or after, not both")
        pattern = None
        if "transaction" in m:
            try:
                pattern = re.compile(m["transaction"])
            except re.error as exc:
                self.problem([*base, "match", "transaction"], f"not a regular expression: {exc}")
        bounds = tuple(
            (name, self.amount([*base, "match", "amount", name], value, negative=True))
            for name, value in m.get("amount", {}).items()
        )
        if dialect:
            self.tenant([*base, "match", "agent"], dialect, m.get("agent"))
        return pattern, bounds

    def rule_respond(self, base: list[str | int], respond: Any, dialect: str | None) -> Any:
        """A rule's ``respond``, its raw ``code`` checked against the dialect's and made its key."""
        if respond is not None and "code" in respond:
            if not dialect:
                self.problem(
                    [*base, "respond", "code"],
                    "a raw code needs match.dialect (codes differ per dialect); or use respond.error",
                )
            else:
                code = registry.get(dialect).raw_code(respond["code"])
                if code is None:
                    valid = [c for c in registry.get(dialect).codes if c not in (0, "0")]
                    hint = yamlsrc.did_you_mean(respond["code"], valid)
                    known = ", ".join(str(c) for c in valid)
                    self.problem(
                        [*base, "respond", "code"],
                        f"{respond['code']!r} is not one of {dialect}'s codes{hint} ({known})",
                    )
                else:
                    respond = {**respond, "code": code}
        return respond

    def rule_actions(self, base: list[str | int], raw: dict[str, Any]) -> None:
        """At most one of respond, fault and duplicate; at least one of them or a delay."""
        actions = [k for k in ("respond", "fault", "duplicate") if raw.get(k) not in (None, False)]
        if len(actions) > 1:
            self.problem([*base, actions[1]], f"choose one of respond, fault and duplicate (this rule has {actions})")
        if not actions and "delay" not in raw:
            self.problem(base, "a rule needs an action: respond, fault, duplicate or delay")

    def players(self, entries: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen: dict[tuple[str, str | None, str], int] = {}
        for index, entry in entries:
            base: list[str | int] = ["players", index]
            if "generate" in entry:
                gen = dict(entry["generate"])
                tenant_key = registry.get(gen["dialect"]).tenant_key
                self.tenant([*base, "generate", tenant_key], gen["dialect"], gen.get(tenant_key))
                balance = gen.get("balance")
                if isinstance(balance, dict):
                    low = self.amount([*base, "generate", "balance", "min"], balance["min"])
                    high = self.amount([*base, "generate", "balance", "max"], balance["max"])
                    if low is not None and high is not None and low > high:
                        self.problem([*base, "generate", "balance"], "min is larger than max")
                    gen["balance"] = {"min": low, "max": high}
                elif balance is not None:
                    gen["balance"] = self.amount([*base, "generate", "balance"], balance)
                out.append({"generate": gen, "index": index})
                continue
            player = dict(entry)
            dialect = player["dialect"]
            tenant_key, name_key = registry.get(dialect).tenant_key, registry.get(dialect).player_key
            self.tenant([*base, tenant_key], dialect, player.get(tenant_key))
            for key in ("balance", "bet_limit"):
                if key in player:
                    player[key] = self.amount([*base, key], player[key])
            ident = (dialect, player.get(tenant_key), player[name_key])
            if ident in seen:
                self.problem(
                    [*base, name_key],
                    f"player {player[name_key]!r} is already defined at players[{seen[ident]}]",
                )
            seen[ident] = index
            out.append(player)
        total = sum(p["generate"]["count"] if "generate" in p else 1 for p in out)
        if self.settings is not None and total > self.settings.server.max_players:
            self.problem(
                ["players"],
                f"{total:,} players is more than the ledger holds (server.max_players: "
                f"{self.settings.server.max_players:,})",
            )
        return out


def parse(text: str, filename: str, settings: Settings | None = None, file_index: int = 0) -> Scenario:
    """One scenario document from YAML text. Raises SourceError listing every problem of the document in
    one pass: the schema's and, for every player and rule the schema accepted, the semantic checks'."""
    data, source = yamlsrc.load(text, filename)
    if not isinstance(data, dict):
        raise SourceError([source.where([], "a scenario is a mapping with at least a name")])
    errors = yamlsrc.schema_errors(data, schema(), source)
    refused = [path for _, path, _ in errors]

    def usable(*part: str | int) -> bool:
        """The schema found nothing wrong with this part as a whole (nor with what contains it)."""
        return not any(list(part)[: len(path)] == path for path in refused)

    def accepted(*part: str | int) -> bool:
        """... nor with anything inside it."""
        return usable(*part) and not any(path[: len(part)] == list(part) for path in refused)

    checker = _Checker(source, settings)
    seed = int(data["seed"]) if accepted("seed") and "seed" in data else 0
    entries = data.get("players", []) if usable("players") else []
    players = checker.players([(i, p) for i, p in enumerate(entries) if accepted("players", i)])
    raws = data.get("rules", []) if usable("rules") else []
    rules = [
        checker.rule(["rules", i], raw, f"rules[{i}]", f"{seed}/{file_index}/{i}")
        for i, raw in enumerate(raws)
        if accepted("rules", i)
    ]
    if errors or checker.problems:
        found = [(line, text) for line, _, text in errors] + list(zip(checker.lines, checker.problems, strict=True))
        raise SourceError([text for _, text in sorted(found, key=lambda item: item[0])])
    for player in players:
        player.setdefault("seed", seed)
    return Scenario(
        name=data["name"],
        description=data.get("description", ""),
        seed=seed,
        players=players,
        rules=[r for r in rules if r is not None],
        sources=[filename],
        text=text,
    )


def parse_rule(
    text: str, filename: str, settings: Settings | None = None, seed: int = 0, name: str | None = None
) -> Rule:
    """One rule on its own (JSON or YAML), checked like a rule of a scenario file; it must have a name
    (``name`` is the default, for a replacement addressed by name).

    Problems read ``filename:line: match.operation: ...``, lines counted in ``text``.
    """
    data, source = yamlsrc.load(text, filename)
    if not isinstance(data, dict):
        raise SourceError([source.where([], "a rule is a mapping (name, match, and an action)")])
    problems = yamlsrc.schema_problems(data, {**schema()["$defs"]["rule"], "$defs": schema()["$defs"]}, source)
    if name is not None and "name" not in data:
        data = {"name": name, **data}
    if not problems and not data.get("name"):
        problems = [source.where([], "a rule added at run time needs a name (to replace or remove it later)")]
    if problems:
        raise SourceError(problems)
    checker = _Checker(source, settings)
    rule = checker.rule([], data, data["name"], f"{seed}/runtime/{data['name']}")
    if rule is None:
        raise SourceError(checker.problems)
    return rule


def read(path: str, settings: Settings | None = None, file_index: int = 0) -> Scenario:
    """A scenario file, or a built-in one named ``builtin:NAME``."""
    return parse(read_source(path), path, settings, file_index)


def _builtin_folder() -> Any:
    """The scenario library: the top-level ``scenarios/`` folder, shipped in the wheel as
    ``simulator/scenarios/builtin/`` (one copy; pyproject.toml maps it). A source tree or an editable install
    reads the folder itself."""
    shipped = resources.files("simulator.scenarios").joinpath("builtin")
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[2] / "scenarios"


def builtin_names() -> list[str]:
    """The example scenarios shipped in the package, loadable as ``builtin:NAME``."""
    return sorted(p.name.removesuffix(".yaml") for p in _builtin_folder().iterdir() if p.name.endswith(".yaml"))


def read_source(spec: str) -> str:
    """The YAML text of a scenario named by a path or by ``builtin:NAME``; SourceError when there is none."""
    if not spec.startswith(BUILTIN):
        return yamlsrc.read_text(spec)
    name = spec.removeprefix(BUILTIN).removesuffix(".yaml")
    names = builtin_names()
    if name not in names:
        hint = yamlsrc.did_you_mean(name, names)
        raise SourceError([f"{spec}: no built-in scenario {name!r}{hint} (built in: {', '.join(names)})"])
    text: str = _builtin_folder().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return text


def combine(scenarios: list[Scenario]) -> Scenario:
    """Several files applied in order: players and rules concatenated, the first file's seed kept."""
    if not scenarios:
        return Scenario.empty()
    if len(scenarios) == 1:
        return scenarios[0]
    text = "\n".join(f"# --- {s.sources[0]}\n{s.text}" for s in scenarios)
    return Scenario(
        name=" + ".join(s.name for s in scenarios),
        description="\n".join(s.description for s in scenarios if s.description),
        seed=scenarios[0].seed,
        players=[p for s in scenarios for p in s.players],
        rules=[r for s in scenarios for r in s.rules],
        sources=[src for s in scenarios for src in s.sources],
        text=text,
    )


def load_files(paths: list[str], settings: Settings | None = None) -> Scenario:
    """Every file checked; all problems of all files reported together."""
    loaded: list[Scenario] = []
    problems: list[str] = []
    for index, path in enumerate(paths):
        try:
            loaded.append(read(path, settings, index))
        except SourceError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SourceError(problems)
    return combine(loaded)


def dump(scenario: Scenario) -> str:
    return scenario.text or yaml.safe_dump({"name": scenario.name})
