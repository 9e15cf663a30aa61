"""The machinery behind "each setting declared once" (the declarations themselves: :mod:`.settings`).

A setting is a field of a frozen settings dataclass whose default is :func:`setting` (or :func:`tenants`).
The field's annotation is its type; :func:`setting` carries the default, the bounds (JSON Schema keywords),
the environment variable, the ``serve`` flag and one line of help. From the classes this module derives:

- :func:`schema`: the config file's JSON Schema (``additionalProperties: false`` at every level),
- :func:`defaults`: the defaults as a config document would write them,
- :func:`declared`: every setting with its dotted key, for the environment table, the ``serve`` flags and
  ``docs/configuration.md`` (:func:`markdown`).
"""

from __future__ import annotations

import dataclasses
import decimal
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Meta:
    """What a setting declares besides its name and type."""

    help: str
    schema: dict[str, Any]  # bounds and the like: minimum, maximum, enum, pattern, minLength, items
    raw: Any = MISSING  # the default as a file writes it, when it differs from the settings object's
    env: str | None = None  # WALLET_SIM_...: fills the serve flag when the command line leaves it unset
    flag: str | None = None  # a serve option: --NAME, with the setting's type, help and choices
    convert: Callable[[Any], Any] | None = None  # file value -> settings value; ValueError: reported at the key
    read: Callable[[Mapping[str, Any]], Any] | None = None  # the raw value from its section (other keys in play)
    tenant: Tenants | None = None  # a list of tenants (agents, brands)


@dataclass(frozen=True)
class Tenants:
    """A list of tenants: each entry an object with ``item`` properties, identified by ``id_key``; ``make``
    turns an entry into the settings object (a ValueError is reported at the entry's ``checked`` key)."""

    id_key: str
    required: tuple[str, ...]
    item: dict[str, Any]
    make: Callable[[dict[str, Any]], Any]
    checked: str | None = None


def setting(
    default: T,
    help: str,
    *,
    env: str | None = None,
    flag: str | None = None,
    raw: Any = MISSING,
    convert: Callable[[Any], Any] | None = None,
    read: Callable[[Mapping[str, Any]], Any] | None = None,
    **schema: Any,
) -> T:
    """One setting: ``port: int = setting(8080, "port to listen on", minimum=0, maximum=65535)``."""
    meta = Meta(help, schema, raw, env, flag, convert, read)
    made: T = field(default=default, metadata={"setting": meta})
    return made


def tenants(help: str, spec: Tenants) -> Any:
    """A tenants list setting (``agents``, ``brands``): a dict by id in the settings object."""
    return field(default_factory=dict, metadata={"setting": Meta(help, {}, [], tenant=spec)})


@dataclass(frozen=True)
class Declared:
    """A setting as the derived tables see it."""

    key: str  # dotted: server.port
    section: str  # "" for the top level
    name: str
    type: Any  # the annotation, resolved
    default: Any  # as a file writes it
    meta: Meta

    @property
    def schema(self) -> dict[str, Any]:
        return schema_of(self.type, self.meta)


def sections(settings_class: type) -> Iterator[tuple[str, type]]:
    for f in dataclasses.fields(settings_class):
        hint = typing.get_type_hints(settings_class)[f.name]
        if dataclasses.is_dataclass(hint) and "setting" not in f.metadata:
            yield f.name, typing.cast(type, hint)


def declared(settings_class: type) -> list[Declared]:
    """Every setting: the top level's first, then each section's, in declaration order."""
    found = list(_declared_in(settings_class, ""))
    for name, section in sections(settings_class):
        found += _declared_in(section, name)
    return found


def _declared_in(cls: type, section: str) -> Iterator[Declared]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        default = meta.raw if meta.raw is not MISSING else _as_written(f.default)
        key = f"{section}.{f.name}" if section else f.name
        yield Declared(key, section, f.name, hints[f.name], default, meta)


def _as_written(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, tuple | frozenset | set | list):
        return sorted(value) if isinstance(value, frozenset | set) else list(value)
    return value


_JSON_TYPES: dict[Any, Any] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    decimal.Decimal: ["string", "number"],
}


def _json_type(hint: Any) -> tuple[list[str], bool]:
    """(JSON types, is an array) of an annotation."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        types_: list[str] = []
        array = False
        for arg in args:
            if arg is type(None):
                types_.append("null")
                continue
            more, is_array = _json_type(arg)
            types_ += more
            array = array or is_array
        return types_, array
    origin = typing.get_origin(hint)
    if origin in (tuple, frozenset, list, set):
        return ["array"], True
    named = _JSON_TYPES[hint]
    return (named if isinstance(named, list) else [named]), False


def schema_of(hint: Any, meta: Meta) -> dict[str, Any]:
    """A setting's JSON Schema: its type from the annotation, then the declared keywords."""
    if meta.tenant is not None:
        spec = meta.tenant
        item = {"type": "object", "additionalProperties": False, "required": list(spec.required)}
        return {"type": "array", "items": {**item, "properties": spec.item}}
    if "enum" in meta.schema:  # the enum says it all (and one message, not a type error besides)
        return dict(meta.schema)
    json_types, array = _json_type(hint)
    out: dict[str, Any] = {"type": json_types[0] if len(json_types) == 1 else json_types}
    if array and "items" not in meta.schema:
        out["items"] = {"type": "string"}
    return {**out, **meta.schema}


def schema(settings_class: type) -> dict[str, Any]:
    """The config file's JSON Schema."""

    def section_schema(entries: list[Declared]) -> dict[str, Any]:
        props = {d.name: d.schema for d in entries}
        return {"type": "object", "additionalProperties": False, "properties": props}

    every = declared(settings_class)
    top = section_schema([d for d in every if not d.section])
    for name, _ in sections(settings_class):
        top["properties"][name] = section_schema([d for d in every if d.section == name])
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **top}


def defaults(settings_class: type) -> dict[str, Any]:
    """The defaults as a config document: ``{"demo": True, "server": {"port": 8080, ...}, ...}``."""
    out: dict[str, Any] = {name: {} for name, _ in sections(settings_class)}
    for d in declared(settings_class):
        (out[d.section] if d.section else out)[d.name] = d.default
    return out


def bounds(d: Declared) -> str:
    """The declared bounds in words, for the docs table."""
    s = d.meta.schema
    parts = []
    if "enum" in s:
        parts.append(" \\| ".join(f"`{v}`" for v in s["enum"]))
    low = s.get("minimum", s.get("exclusiveMinimum"))
    high = s.get("maximum")
    if low is not None or high is not None:
        left = ("> " if "exclusiveMinimum" in s else "≥ ") + f"{low:,}" if low is not None else ""
        right = f"≤ {high:,}" if high is not None else ""
        parts.append(", ".join(p for p in (left, right) if p))
    if "minLength" in s:
        parts.append(f"at least {s['minLength']} character" + ("s" if s["minLength"] != 1 else ""))
    if "pattern" in s:
        parts.append(f"matches `{s['pattern']}`".replace("|", "\\|"))
    return "; ".join(parts)


def type_name(d: Declared) -> str:
    if d.meta.tenant is not None:
        return "list of objects"
    if "enum" in d.meta.schema:
        return "string"
    if isinstance(d.meta.schema.get("type"), list):  # declared wider than the object's type (null: unset)
        return " or ".join(d.meta.schema["type"])
    if d.type is decimal.Decimal:
        return "amount"
    json_types, _ = _json_type(d.type)
    return " or ".join("list of strings" if t == "array" else t for t in json_types)


def markdown(settings_class: type, extra_env: list[tuple[str, str, str]]) -> str:
    """``docs/configuration.md``: the config file's keys, then the environment variables."""

    def shown(value: Any) -> str:
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "true" if value else "false"
        if value == "":
            return '`""`'
        return f"`{value}`" if value != [] else "`[]`"

    lines = [
        "# Configuration reference",
        "",
        "<!-- generated: python -m simulator config-doc --output docs/configuration.md -->",
        "",
        "Every setting of the YAML config file (`--config FILE`). Precedence: a command-line flag, then its",
        "`WALLET_SIM_*` environment variable, then the config file, then the default. An empty variable counts",
        "as unset. A config file with a mistake is refused at start with file, line and key, every mistake at once.",
        "Check a file without starting anything: `python -m simulator validate builtin:happy_path --config mine.yaml`",
        "checks it together with a scenario.",
        "",
        "```yaml",
        "# config.yaml: only what differs from the defaults",
        "server:",
        "  journal_size: 50000",
        "fizzy:",
        "  sessions: strict",
        "```",
        "",
        "| key | type | default | bounds | environment | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for d in declared(settings_class):
        env = f"`{d.meta.env}` (`{d.meta.flag}`)" if d.meta.env else ""
        row = [f"`{d.key}`", type_name(d), shown(d.default), bounds(d), env, d.meta.help.replace("|", "\\|")]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "XPro keys come in three forms: a 32-character string used as its UTF-8 bytes, `hex:` and 64 hex digits,",
        "or `base64:` and 44 characters.",
        "",
        "## Environment variables",
        "",
        "Every `serve` flag has a variable (`python -m simulator serve --help` lists them).",
        "",
        "| variable | flag | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | `{flag}` | {meaning.replace('|', chr(92) + '|')} |" for name, flag, meaning in extra_env]
    lines += ["", "A bad value stops the server before it listens: `WALLET_SIM_PORT='eighty': not a whole number`."]
    return "\n".join(lines) + "\n"
