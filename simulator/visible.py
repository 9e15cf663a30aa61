"""Text that came from a client or a wallet, made safe to show: in XML 1.0 (JUnit reports) and in a
terminal (the scorecard and certify tables).

Transaction ids, player names, answer bodies are chosen by whoever sent them. XML 1.0 forbids most control
characters (an ``ESC`` or a ``NUL`` in an attribute makes the whole report unparseable), and a terminal obeys
them (``ESC [ 2 J`` clears the screen). Both writers replace such characters with a visible escape in the
style of Python's ``repr``: ``\\x1b``, ``\\x00``, ``\\u202e``. One function per use, shared by the scorecard
and certify, so both reports show the same id the same way.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

# XML 1.0 allows #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# what a terminal acts on or hides: C0 controls, DEL, C1 controls, and the bidirectional overrides and
# zero-width marks that make text read differently from what it is ("Trojan Source"), and noncharacters
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 forbids written as ``\\xNN`` / ``\\uNNNN``; tab, newline and
    carriage return stay (XML allows them)."""
    return _NOT_XML.sub(_escaped, text)


def terminal_text(text: str, keep: str = "") -> str:
    """``text`` with control characters (except those in ``keep``, e.g. ``"\\n"`` for multi-line messages)
    written as ``\\xNN`` / ``\\uNNNN``, so a terminal shows them instead of obeying them."""
    if not keep:
        return _CONTROL.sub(_escaped, text)
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escaped(m), text)


def xml_safe(root: ET.Element) -> ET.Element:
    """Make every tag's text, tail and attribute values under ``root`` valid XML 1.0 (in place), so
    ``ET.tostring`` writes a document any JUnit reader parses whatever ids the report quotes."""
    for element in root.iter():
        if element.text:
            element.text = xml_text(element.text)
        if element.tail:
            element.tail = xml_text(element.tail)
        for key, value in element.attrib.items():
            element.set(key, xml_text(value))
    return root
