"""YAML documents that remember where every value came from.

``load`` returns the plain data and a :class:`SourceMap`, which turns a key path such as
``("rules", 0, "match", "operation")`` into ``file:line: rules[0].match.operation``. Config and scenario
validation use it so that every mistake is reported with file, line and key. Duplicate keys, which
PyYAML silently collapses, are reported as mistakes too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from simulator.errors import SourceError

Path = Sequence[str | int]

#: no config or scenario file needs more: deeper nesting, or aliases that expand past the node bound
#: (a "billion laughs" document), are refused before anything walks the expanded data
MAX_DEPTH = 32
MAX_NODES = 100_000
#: libyaml's parser when PyYAML has it: ~7x faster than the pure-Python one on large files (a 300 KB
#: scenario took 2.4 s to parse) and it composes deep documents without recursing in Python
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_INT_DIGITS = 30  # a YAML integer longer than this is refused (Python refuses past 4300 digits anyway)
INT_TAG = "tag:yaml.org,2002:int"


def dotted(path: Iterable[str | int]) -> str:
    """``("rules", 0, "match")`` -> ``rules[0].match``; the empty path is ``(top level)``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


@dataclass
class SourceMap:
    filename: str
    root: yaml.Node | None
    duplicates: list[str] = field(default_factory=list)

    def line(self, path: Path) -> int:
        """1-based line of the deepest node along ``path`` (the key's line for mapping entries)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        line, node = key.start_mark.line + 1, value
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def where(self, path: Path, message: str) -> str:
        return f"{self.filename}:{self.line(path)}: {dotted(path)}: {message}"


def _check_duplicates(node: yaml.Node | None, filename: str, path: list[str | int], out: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            if name in seen:
                out.append(
                    f"{filename}:{key.start_mark.line + 1}: {dotted([*path, name])}: duplicate key "
                    "(YAML would silently keep only the last one)"
                )
            seen.add(name)
            _check_duplicates(value, filename, [*path, name], out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicates(item, filename, [*path, index], out)


def _check_depth(text: str, filename: str) -> None:
    """Refuse nesting past MAX_DEPTH from the event stream (the composer would recurse into it)."""
    level = 0
    for event in yaml.parse(text, Loader=SAFE_LOADER):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            level += 1
            if level > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 1
                raise SourceError([f"{filename}:{line}: (structure): nesting deeper than {MAX_DEPTH} levels"])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            level -= 1


def _check_size(root: yaml.Node, filename: str) -> None:
    """Refuse aliases that expand past MAX_NODES nodes or MAX_DEPTH levels, or that refer to themselves,
    and integers too long to convert, counting each distinct node once (memoised): linear in the text."""
    sizes: dict[int, tuple[int, int]] = {}  # node -> (expanded nodes, expanded height)
    open_: set[int] = set()

    def refuse(node: yaml.Node, why: str) -> SourceError:
        return SourceError([f"{filename}:{node.start_mark.line + 1}: (structure): {why}"])

    def expanded(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise refuse(node, "an alias refers to the node that contains it (a recursive alias)")
        if isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG and len(node.value) > MAX_INT_DIGITS:
            raise refuse(node, f"an integer of {len(node.value)} characters (at most {MAX_INT_DIGITS})")
        open_.add(key)
        total, height = 1, 0
        children = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        for child in children:
            size, below = expanded(child)
            total, height = total + size, max(height, below + 1)
            if total > MAX_NODES:
                raise refuse(child, f"aliases expand this document past {MAX_NODES} nodes")
            if height > MAX_DEPTH:
                raise refuse(child, f"aliases nest this document deeper than {MAX_DEPTH} levels")
        open_.discard(key)
        sizes[key] = (total, height)
        return total, height

    expanded(root)


def load(text: str, filename: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document; syntax errors, duplicate keys, nesting deeper than MAX_DEPTH and aliases
    expanding past MAX_NODES raise :class:`SourceError`."""
    loader = SAFE_LOADER(text)
    try:
        _check_depth(text, filename)
        root = loader.get_single_node()
        if root is not None:
            _check_size(root, filename)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise SourceError([f"{filename}:{line}: (syntax): {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise SourceError([f"{filename}:1: (syntax): {exc}"]) from None
    finally:
        loader.dispose()
    source = SourceMap(filename, root)
    _check_duplicates(root, filename, [], source.duplicates)
    if source.duplicates:
        raise SourceError(source.duplicates)
    return data, source


def read_text(path: str) -> str:
    """A config or scenario file's text; missing, unreadable or non-UTF-8 files raise :class:`SourceError`."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise SourceError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise SourceError([f"{path}: is a directory, not a file"]) from None
    except OSError as exc:
        raise SourceError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise SourceError([f"{path}: not UTF-8 text: {exc}"]) from None


def did_you_mean(given: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'withdraw'?)`` when ``given`` is a near miss of one of ``choices``, else ``""``."""
    if not isinstance(given, str):
        return ""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(given, names, n=1, cutoff=0.6) or [n for n in names if n.lower() == given.lower()]
    return f" (did you mean {close[0]!r}?)" if close else ""


def read(path: str) -> tuple[Any, SourceMap]:
    return load(read_text(path), path)


def schema_errors(data: Any, schema: dict[str, Any], source: SourceMap) -> list[tuple[int, list[str | int], str]]:
    """Every schema error as ``(line, key path, "file:line: key: message")``, in file order. The path lets a
    caller skip its own checks on a part the schema already refused, and report the rest in the same pass."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    found: list[tuple[int, list[str | int], str]] = []
    for error in validator.iter_errors(data):
        # Report the most specific reason inside anyOf/oneOf rather than "is not valid under any schema".
        best = jsonschema.exceptions.best_match([error])
        path: list[str | int] = list(best.absolute_path)
        messages = [(path, best.message)]
        if best.validator == "additionalProperties" and isinstance(best.instance, dict):
            allowed = set(best.schema.get("properties", {}))
            extra = sorted(k for k in best.instance if k not in allowed)
            known = ", ".join(sorted(allowed))
            messages = [
                ([*path, key], f"unknown key {key!r}{did_you_mean(key, allowed)} (allowed: {known})") for key in extra
            ] or messages
        elif best.validator == "enum" and isinstance(best.validator_value, list):
            messages = [(path, best.message + did_you_mean(best.instance, best.validator_value))]
        elif best.validator == "pattern" and "description" in best.schema:
            messages = [(path, f"{best.instance!r} is not valid: {best.schema['description']}")]
        for where, message in messages:
            found.append((source.line(where), where, source.where(where, message)))
    return sorted(found, key=lambda item: item[0])
