"""Loading and validating scenario files.

A file is checked in one pass reporting every problem as ``file:line: key: message``: the JSON Schema that
ships with the package (``schema.json``, usable by editors), and on every part the schema accepted what a
schema cannot say (regular expressions, codes that exist in the rule's dialect, operations that exist in
it, tenants that are configured, decimals a dialect takes, ...), plus warnings for what is valid but surely
not meant (a rule that can never match, an ``apply`` that does nothing).
"""

from __future__ import annotations

import dataclasses
import json
import re
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from simulator.config import Settings, yamlsrc
from simulator.dialects import registry
from simulator.errors import SourceError
from simulator.money import decimals, parse_amount
from simulator.operations import STATUS_CHECKS
from simulator.scenarios.model import COMPARISONS, EQUALITY_KEYS, Delay, Match, Rule, Scenario, duration
from simulator.scenarios.patterns import Pattern, PatternError, compile_pattern

MAX_DELAY = 600.0
NO_AMOUNT = frozenset({"auth", "create", "balance", "check"})  # operations that carry no amount
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
    """The semantic checks, run on every part of a document the schema did not refuse (``refused``: the key
    paths of the schema's errors), so one pass reports the schema's problems and these together."""

    def __init__(
        self, source: yamlsrc.SourceMap, settings: Settings | None, refused: list[list[str | int]] | None = None
    ) -> None:
        self.source = source
        self.settings = settings
        self.refused = refused or []
        self.problems: list[str] = []
        self.lines: list[int] = []  # the line of each problem, to merge them with the schema's in file order
        self.warnings: list[tuple[int, str]] = []  # (line, "file:line: key: warning: ...")

    def problem(self, path: list[str | int], message: str) -> None:
        self.problems.append(self.source.where(path, message))
        self.lines.append(self.source.line(path))

    def warn(self, path: list[str | int], message: str) -> None:
        self.warnings.append((self.source.line(path), self.source.where(path, f"warning: {message}")))

    def ok(self, path: list[str | int]) -> bool:
        """The schema refused neither this part, nor what contains it, nor anything inside it."""
        return not any(path[: len(r)] == r or r[: len(path)] == path for r in self.refused)

    def usable(self, path: list[str | int]) -> bool:
        """The schema refused neither this part as a whole nor what contains it (something inside may be)."""
        return not any(path[: len(r)] == r for r in self.refused)

    def amount(self, path: list[str | int], value: Any, *, negative: bool = False, places: int | None = None) -> Any:
        try:
            amount = parse_amount(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        if not negative and amount < 0:
            self.problem(path, "must not be negative")
        if places is not None and decimals(amount) > places:
            self.problem(path, f"{value} has more than {places} decimal places (what the dialect takes)")
        return amount

    def places(self, dialect: str) -> int:
        """Decimal places a dialect's amounts take: XPro 2, Fizzy and AMBSlot their ``max_decimals``."""
        return registry.get(dialect).max_decimals(self.settings if self.settings is not None else Settings())

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
            result = Delay("uniform", low, high)
        longest = max(result.a, result.b, result.cap or 0)
        if longest > MAX_DELAY:
            self.problem(path, f"{longest:g}s: delays are capped at {MAX_DELAY:.0f}s")
        return result

    def tenant(self, path: list[str | int], dialect: str, tenant: Any) -> None:
        if self.settings is not None and tenant is not None and tenant not in self.settings.tenants(dialect):
            tenants = self.settings.tenants(dialect)
            hint = yamlsrc.did_you_mean(tenant, tenants)
            self.problem(
                path, f"{tenant!r} is not a configured {dialect} tenant{hint} (configured: {', '.join(tenants)})"
            )

    def rule(self, base: list[str | int], raw: dict[str, Any], name: str, rng_seed: str) -> Rule | None:
        """One rule at ``base`` in the document (``["rules", i]`` in a scenario, ``[]`` for a lone rule):
        every part the schema accepted is checked, and the rule is built only when nothing was found."""
        before = len(self.problems)
        m = raw.get("match", {}) if self.usable([*base, "match"]) else {}
        pattern, bounds = self.rule_match(base, m)
        respond = self.rule_respond(base, raw, m.get("dialect") if self.ok([*base, "match", "dialect"]) else None)
        self.rule_actions(base, raw)
        delay = self.delay([*base, "delay"], raw["delay"]) if "delay" in raw and self.ok([*base, "delay"]) else None
        self.rule_warnings(base, raw, m, bounds)
        if len(self.problems) > before or not self.ok(base):
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
        self, base: list[str | int], m: dict[str, Any]
    ) -> tuple[Pattern | None, tuple[tuple[str, Decimal], ...]]:
        """The match's operation (for its dialect), nth/after, regular expression, amounts and tenant."""
        at: list[str | int] = [*base, "match"]
        dialect = m.get("dialect") if self.ok([*at, "dialect"]) else None
        operation = m.get("operation") if self.ok([*at, "operation"]) else None
        if dialect and operation and operation not in registry.get(dialect).operations:
            ops = sorted(registry.get(dialect).operations)
            hint = yamlsrc.did_you_mean(operation, ops)
            self.problem([*at, "operation"], f"{dialect} has no operation {operation!r}{hint} ({', '.join(ops)})")
        if "nth" in m and "after" in m:
            self.problem([*at, "after"], "use nth or after, not both")
        pattern = None
        if "transaction" in m and self.ok([*at, "transaction"]):
            try:
                pattern = compile_pattern(m["transaction"])
            except PatternError as exc:
                self.problem([*at, "transaction"], f"not a regular expression RE2 accepts: {exc}")
        bounds: tuple[tuple[str, Decimal], ...] = ()
        if self.usable([*at, "amount"]) and isinstance(m.get("amount"), dict):
            bounds = tuple(
                (key, self.amount([*at, "amount", key], value, negative=True))
                for key, value in m["amount"].items()
                if key in COMPARISONS and self.ok([*at, "amount", key])
            )
        if dialect and self.ok([*at, "agent"]):
            self.tenant([*at, "agent"], dialect, m.get("agent"))
        return pattern, bounds

    def rule_respond(self, base: list[str | int], raw: dict[str, Any], dialect: str | None) -> Any:
        """``respond`` with a raw code turned into the dialect's own (codes differ per dialect)."""
        respond = raw.get("respond")
        if respond is None or not isinstance(respond, dict) or "code" not in respond:
            return respond
        if not self.ok([*base, "respond", "code"]):
            return respond
        if not dialect:
            self.problem(
                [*base, "respond", "code"],
                "a raw code needs match.dialect (codes differ per dialect); or use respond.error",
            )
            return respond
        code = registry.get(dialect).raw_code(respond["code"])
        if code is None:
            valid = [c for c in registry.get(dialect).codes if c not in (0, "0")]
            hint = yamlsrc.did_you_mean(respond["code"], valid)
            known = ", ".join(str(c) for c in valid)
            self.problem(
                [*base, "respond", "code"], f"{respond['code']!r} is not one of {dialect}'s codes{hint} ({known})"
            )
            return respond
        return {**respond, "code": code}

    def rule_actions(self, base: list[str | int], raw: dict[str, Any]) -> None:
        actions = [k for k in ("respond", "fault", "duplicate") if raw.get(k) not in (None, False)]
        if len(actions) > 1:
            self.problem([*base, actions[1]], f"choose one of respond, fault and duplicate (this rule has {actions})")
        misspelt = any(len(r) == len(base) + 1 and r[: len(base)] == base for r in self.refused)
        if not actions and "delay" not in raw and not misspelt:  # not when an unknown key may be the action
            self.problem(base, "a rule needs an action: respond, fault, duplicate or delay")

    def rule_warnings(
        self, base: list[str | int], raw: dict[str, Any], m: dict[str, Any], bounds: tuple[tuple[str, Any], ...]
    ) -> None:
        """What is valid but surely not meant: a match no operation can satisfy, an ``apply`` that does nothing."""
        known = [(key, bound) for key, bound in bounds if bound is not None]
        if known and not _satisfiable(known):
            written = ", ".join(f"{key}: {bound}" for key, bound in known)
            self.warn([*base, "match", "amount"], f"no amount satisfies {written}: this rule can never match")
        elif known and m.get("operation") in NO_AMOUNT:
            self.warn(
                [*base, "match", "amount"],
                f"{m['operation']} carries no amount: a rule matching on amount can never match it",
            )
        if raw.get("apply") is True:
            if not any(raw.get(k) not in (None, False) for k in ("respond", "fault", "duplicate")):
                self.warn(
                    [*base, "apply"],
                    "apply does nothing on a rule that only delays (a delayed request is always applied)",
                )
            elif m.get("operation") in STATUS_CHECKS | NO_AMOUNT:
                self.warn(
                    [*base, "apply"],
                    f"apply does nothing on {m['operation']} (it moves no money)",
                )

    def players(self, entries: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Every player entry the schema did not refuse as a whole, each key it accepted checked."""
        out: list[dict[str, Any]] = []
        seen: dict[tuple[str, str | None, str], int] = {}
        for index, entry in entries:
            base: list[str | int] = ["players", index]
            if "generate" in entry:
                self.generated(base, entry, out)
                continue
            player = dict(entry)
            dialect = player.get("dialect") if self.ok([*base, "dialect"]) else None
            if dialect not in registry.NAMES:
                continue
            tenant_key, name_key = registry.get(dialect).tenant_key, registry.get(dialect).player_key
            if self.ok([*base, tenant_key]):
                self.tenant([*base, tenant_key], dialect, player.get(tenant_key))
            for key in ("balance", "bet_limit"):
                if key in player and self.ok([*base, key]):
                    player[key] = self.amount([*base, key], player[key], places=self.places(dialect))
            if name_key in player and self.ok([*base, name_key]):
                ident = (dialect, player.get(tenant_key), player[name_key])
                if ident in seen:
                    self.problem(
                        [*base, name_key],
                        f"player {player[name_key]!r} is already defined at players[{seen[ident]}]",
                    )
                seen[ident] = index
            out.append(player)
        total = sum(p["generate"].get("count", 0) if "generate" in p else 1 for p in out)
        if self.settings is not None and total > self.settings.server.max_players:
            self.problem(
                ["players"],
                f"{total:,} players is more than the ledger holds (server.max_players: "
                f"{self.settings.server.max_players:,})",
            )
        return out

    def generated(self, base: list[str | int], entry: dict[str, Any], out: list[dict[str, Any]]) -> None:
        at: list[str | int] = [*base, "generate"]
        if not self.usable(at) or not isinstance(entry.get("generate"), dict):
            return
        gen = dict(entry["generate"])
        dialect = gen.get("dialect") if self.ok([*at, "dialect"]) else None
        if dialect not in registry.NAMES:
            return
        tenant_key = registry.get(dialect).tenant_key
        if self.ok([*at, tenant_key]):
            self.tenant([*at, tenant_key], dialect, gen.get(tenant_key))
        balance = gen.get("balance")
        places = self.places(dialect)
        if not self.ok([*at, "balance"]):
            pass
        elif isinstance(balance, dict):
            low = self.amount([*at, "balance", "min"], balance["min"], places=places)
            high = self.amount([*at, "balance", "max"], balance["max"], places=places)
            if low is not None and high is not None and low > high:
                self.problem([*at, "balance"], "min is larger than max")
            gen["balance"] = {"min": low, "max": high}
        elif balance is not None:
            gen["balance"] = self.amount([*at, "balance"], balance, places=places)
        if not self.ok([*at, "count"]):
            gen["count"] = 0
        out.append({"generate": gen, "index": base[1]})


def _satisfiable(bounds: list[tuple[str, Decimal]]) -> bool:
    """Whether some amount (a magnitude: never negative) meets every comparison."""
    low, low_open = Decimal(0), False
    high: Decimal | None = None
    high_open = False
    for key, bound in bounds:
        if key in ("gt", "gte", "eq") and (bound > low or (bound == low and key == "gt")):
            low, low_open = bound, key == "gt"
        if key in ("lt", "lte", "eq") and (high is None or bound < high or (bound == high and key == "lt")):
            high, high_open = bound, key == "lt"
    if high is None:
        return True
    return low < high or (low == high and not low_open and not high_open)


def parse(text: str, filename: str, settings: Settings | None = None, file_index: int = 0) -> Scenario:
    """One scenario document from YAML text. Raises SourceError listing every problem of the document in
    one pass: the schema's and, for every part of a player or rule the schema accepted, the semantic checks'
    (warnings included, so nothing waits for the next run). Warnings of a valid file: ``Scenario.warnings``."""
    data, source = yamlsrc.load(text, filename)
    if not isinstance(data, dict):
        raise SourceError([source.where([], "a scenario is a mapping with at least a name")])
    errors = yamlsrc.schema_errors(data, schema(), source)
    checker = _Checker(source, settings, [path for _, path, _ in errors])
    seed = int(data["seed"]) if checker.ok(["seed"]) and "seed" in data else 0
    entries = data.get("players", []) if checker.usable(["players"]) else []
    players = checker.players(
        [(i, p) for i, p in enumerate(entries) if isinstance(p, dict) and checker.usable(["players", i])]
    )
    raws = data.get("rules", []) if checker.usable(["rules"]) else []
    rules = [
        checker.rule(["rules", i], raw, f"rules[{i}]", f"{seed}/{file_index}/{i}")
        for i, raw in enumerate(raws)
        if isinstance(raw, dict) and checker.usable(["rules", i])
    ]
    if errors or checker.problems:
        found = [(line, text) for line, _, text in errors] + list(zip(checker.lines, checker.problems, strict=True))
        found += checker.warnings
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
        warnings=[text for _, text in checker.warnings],
    )


def parse_body(text: str, filename: str, settings: Settings | None = None) -> Scenario:
    """A scenario sent as text (``PUT /_sim/scenario``, the dashboard's editor): its YAML, or one line
    ``builtin:NAME`` naming a shipped scenario, as everywhere a file is accepted."""
    spec = text.strip()
    if spec.startswith(BUILTIN) and "\n" not in spec:
        return parse(read_source(spec), spec, settings)
    return parse_documents(text, filename, settings)


def parse_documents(text: str, filename: str, settings: Settings | None = None, file_index: int = 0) -> Scenario:
    """One scenario document, or several (``--- # SOURCE`` lines, as ``GET /_sim/scenario`` writes
    several files) applied in order as if they were files ``file_index``, ``file_index + 1``, ..."""
    documents = _documents(text)
    if len(documents) < 2:
        return parse(text, filename, settings, file_index)
    loaded: list[Scenario] = []
    problems: list[str] = []
    for index, (padded, clean, label) in enumerate(documents, start=file_index):
        try:
            part = parse(padded, filename, settings, index)
            loaded.append(dataclasses.replace(part, sources=[label or filename], text=clean))
        except SourceError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SourceError(problems)
    return combine(loaded)


_DOCUMENT_START = re.compile(r"^---(?:[ \t]+#[ \t]*(.*))?[ \t]*$", re.M)


def _documents(text: str) -> list[tuple[str, str, str]]:
    """The YAML documents of ``text``, split at a ``---`` line (YAML reserves ``---`` in column 0 for that),
    those holding only comments left out: (the document padded with the lines before it, so that a problem
    names its line in the whole text; the document alone; the ``--- # SOURCE`` comment of its start line).
    Several documents are several files applied in order: what ``GET /_sim/scenario`` answers after
    ``serve --scenario A --scenario B``, which loads back as the same scenario."""
    starts = [0] + [m.start() for m in _DOCUMENT_START.finditer(text) if m.start() > 0]
    documents = []
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        part = text[begin:end]
        mark = _DOCUMENT_START.match(part)
        body = part[mark.end() + 1 :] if mark else part
        if any(line.strip() and not line.lstrip().startswith("#") for line in body.splitlines()):
            label = (mark.group(1) or "").strip() if mark else ""
            documents.append(("\n" * text.count("\n", 0, begin) + part, body, label))
    return documents


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
    errors = yamlsrc.schema_errors(data, {**schema()["$defs"]["rule"], "$defs": schema()["$defs"]}, source)
    if name is not None and "name" not in data:
        data = {"name": name, **data}
    checker = _Checker(source, settings, [path for _, path, _ in errors])
    if not data.get("name") and checker.ok(["name"]):
        checker.problem([], "a rule added at run time needs a name (to replace or remove it later)")
    rule = checker.rule([], data, str(data.get("name")), f"{seed}/runtime/{data.get('name')}")
    if rule is None or errors or checker.problems:
        found = [(line, text) for line, _, text in errors] + list(zip(checker.lines, checker.problems, strict=True))
        raise SourceError([text for _, text in sorted(found + checker.warnings, key=lambda item: item[0])])
    return rule


def read(path: str, settings: Settings | None = None, file_index: int = 0) -> Scenario:
    """A scenario file, or a built-in one named ``builtin:NAME``."""
    return parse_documents(read_source(path), path, settings, file_index)


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
    # one YAML document per file, so that the text (GET /_sim/scenario) loads back as the same scenarios
    # (a scenario of several files already is; a file saved from GET /_sim/scenario is one)
    text = "\n".join(
        s.text.rstrip("\n") if len(s.sources) > 1 else f"--- # {s.sources[0]}\n{s.text.rstrip(chr(10))}"
        for s in scenarios
    )
    text += "\n"
    return Scenario(
        name=" + ".join(s.name for s in scenarios),
        description="\n".join(s.description for s in scenarios if s.description),
        seed=scenarios[0].seed,
        players=[p for s in scenarios for p in s.players],
        rules=[r for s in scenarios for r in s.rules],
        sources=[src for s in scenarios for src in s.sources],
        text=text,
        warnings=[w for s in scenarios for w in s.warnings],
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
