"""The scenario engine: for each decoded operation, the first rule that fires decides what happens."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import Injected
from simulator.operations import Operation
from simulator.scenarios.model import Rule, Scenario


@dataclass(slots=True)
class Decision:
    rule: str
    delay: float = 0.0
    respond: Injected | None = None
    duplicate: bool = False
    fault: str | None = None
    apply: bool = False

    @property
    def intervenes(self) -> bool:
        """Whether the rule replaces the normal answer (otherwise it only delays it)."""
        return self.respond is not None or self.duplicate or self.fault is not None


class Engine:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.reset()

    @property
    def rules(self) -> list[Rule]:
        return self.scenario.rules

    def reset(self) -> None:
        for rule in self.scenario.rules:
            rule.reset()

    def decide(self, op: Operation) -> Decision | None:
        for rule in self.scenario.rules:
            if rule.fires(op):
                return self._decision(rule)
        return None

    @staticmethod
    def _decision(rule: Rule) -> Decision:
        respond = None
        if rule.respond is not None:
            r = rule.respond
            respond = Injected(
                error=r.get("error"),
                code=r.get("code"),
                message=r.get("message"),
                http_status=r.get("http_status"),
            )
        intervenes = respond is not None or rule.duplicate or rule.fault is not None
        return Decision(
            rule=rule.name,
            delay=rule.delay.sample(rule.rng) if rule.delay else 0.0,
            respond=respond,
            duplicate=rule.duplicate,
            fault=rule.fault,
            # a rule that only delays always applies; one that intervenes applies only when told to
            apply=rule.apply if intervenes else True,
        )
