"""Each setting declared once: the schema, defaults, serve flags, environment table and docs derive from it."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulator import config
from simulator.config import declare, environ
from simulator.config.settings import Settings
from simulator.errors import SourceError

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "configuration.md"


def test_docs_configuration_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == environ.markdown(), (
        "docs/configuration.md is stale: python -m simulator config-doc --output docs/configuration.md"
    )


def test_the_docs_example_is_a_valid_config(tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert example
    path = tmp_path / "config.yaml"
    path.write_text(example.group(1))
    settings = config.load(str(path))
    assert settings.server.journal_size == 50000 and settings.fizzy.sessions == "strict"


def test_every_declared_setting_is_in_the_schema_defaults_and_docs() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for d in declare.declared(Settings):
        section = config.CONFIG_SCHEMA["properties"][d.section] if d.section else config.CONFIG_SCHEMA
        assert d.name in section["properties"], d.key
        assert (config.DEFAULTS[d.section] if d.section else config.DEFAULTS)[d.name] == d.default
        assert f"| `{d.key}` |" in doc
        assert d.meta.help and "\n" not in d.meta.help


def test_the_defaults_build_the_default_settings_object() -> None:
    built = config.build(None)
    plain = Settings()
    assert built.server == plain.server and built.scorecard == plain.scorecard
    assert built.fizzy.default_balance == plain.fizzy.default_balance and built.store == "memory"


def test_every_variable_is_a_serve_flag_and_every_flagged_setting_has_one() -> None:
    flagged = {d.meta.env for d in declare.declared(Settings) if d.meta.flag}
    assert flagged <= {v.name for v in environ.VARIABLES}
    parser = argparse.ArgumentParser()
    environ.add_flags(parser)
    args = parser.parse_args(["--port", "0", "--log-format", "json", "--insecure-admin"])
    assert environ.overrides(args, "server") == {"port": 0, "log_format": "json", "insecure_admin": True}
    assert environ.overrides(parser.parse_args([]), "server") == {}


def test_a_variable_of_an_enum_setting_names_the_choices() -> None:
    args = argparse.Namespace(log_format=None)
    assert environ.apply(args, {"WALLET_SIM_LOG_FORMAT": "xml"}) == [
        "WALLET_SIM_LOG_FORMAT='xml': must be text or json"
    ]


def test_conversion_and_tenant_problems_come_in_one_pass_with_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "demo: false\n"
        "fizzy:\n  default_balance: '-5'\n"
        "ambslot:\n  allowed_sources: [not-an-ip]\n"
        "xpro:\n  agents:\n    - {id: a, secret: s, api_key: short}\n"
    )
    with pytest.raises(SourceError) as caught:
        config.load(str(path))
    problems = "\n".join(caught.value.problems)
    assert f"{path}:3: fizzy.default_balance: a balance must not be negative" in problems
    assert "ambslot.allowed_sources" in problems and "xpro.agents[0].api_key: an AES-256 key is 32 bytes" in problems
    assert "fizzy.brands: no brands configured (and demo: false)" in problems
    assert "ambslot.agents: no agents configured (and demo: false)" in problems


@dataclass(frozen=True)
class Widgets:
    max_widgets: int = declare.setting(100, "widgets kept at most", minimum=1, maximum=10_000)


@dataclass(frozen=True)
class Toy:
    widgets: Widgets = field(default_factory=Widgets)


def test_adding_a_setting_is_one_entry() -> None:
    """A toy settings class: one field declares the setting; schema, defaults and docs follow."""
    schema = declare.schema(Toy)
    assert schema["properties"]["widgets"]["properties"]["max_widgets"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10_000,
    }
    assert declare.defaults(Toy) == {"widgets": {"max_widgets": 100}}
    assert "| `widgets.max_widgets` | integer | `100` | ≥ 1, ≤ 10,000 |  | widgets kept at most |" in declare.markdown(
        Toy, []
    )
