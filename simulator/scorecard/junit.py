"""The report as JUnit XML, shaped like pytest's junitxml, so a CI server lists what the client did.

One ``testsuite`` per kind of finding: ``faults`` (one testcase per judged fault), ``hygiene`` and
``conformance`` (one testcase per finding). A finding of severity ``fail`` is a ``<failure>`` with a
readable message; a warning passes and says so in ``<system-out>``. Characters XML 1.0 forbids (a control
character in a transaction id) are written as ``\\x1b``-style escapes, so the document always parses.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from simulator.visible import xml_safe

KINDS = ("fault", "hygiene", "conformance")
SUITES = {"fault": "faults", "hygiene": "hygiene", "conformance": "conformance"}


def render(report: dict[str, Any], name: str = "wallet-simulator scorecard") -> str:
    root = ET.Element("testsuites", name=name)
    for kind in KINDS:
        findings = [f for f in report["findings"] if f["kind"] == kind]
        failures = sum(1 for f in findings if f["severity"] == "fail")
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"scorecard.{SUITES[kind]}",
            tests=str(len(findings)),
            failures=str(failures),
            errors="0",
            skipped="0",
            time="0",
            timestamp=report.get("generated", ""),
        )
        for finding in findings:
            _testcase(suite, finding)
    root.set("tests", str(len(report["findings"])))
    root.set("failures", str(report["summary"]["failed"]))
    ET.indent(root)
    xml_safe(root)  # ids and messages quote what the client sent: no character XML 1.0 forbids
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(suite: ET.Element, finding: dict[str, Any]) -> None:
    who = ".".join(str(p) for p in (finding["dialect"], finding["tenant"], finding["player"]) if p)
    label = finding["verdict"] or finding["check"] or finding["kind"]
    txn = f" {finding['transaction']}" if finding["transaction"] else ""
    case = ET.SubElement(
        suite, "testcase", classname=f"scorecard.{who}", name=f"{finding['id']}{txn}: {label}", time="0"
    )
    requests = ", ".join(f"#{seq}" for seq in finding["requests"])
    text = f"{finding['message']}\nrequests in the journal: {requests}"
    if finding["severity"] == "fail":
        failure = ET.SubElement(case, "failure", message=finding["message"], type=label)
        failure.text = text
    else:
        out = ET.SubElement(case, "system-out")
        out.text = f"{finding['severity']}: {text}"
