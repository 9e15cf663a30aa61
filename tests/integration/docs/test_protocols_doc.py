"""docs/protocols.md cannot rot: every example request is sent to a real server started as ``make run``
starts it (demo credentials, ``builtin:happy_path``), in document order, and must get the documented answer;
the worked examples are recomputed byte for byte; the Python snippets run as written. The same holds for the
request/answer examples of any other page of docs/, and every ``python -m simulator`` command of the README
and of docs/ is accepted by the command line."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from simulator.config import xpro_key
from simulator.dialects.ambslot import Ambslot
from simulator.dialects.codes import AMBSLOT, FIZZY, XPRO
from simulator.dialects.crypto import (
    fizzy_signature,
    fizzy_string_to_sign,
    xpro_decrypt,
    xpro_encrypt,
    xpro_signature,
    xpro_string_to_sign,
)
from simulator.dialects.fizzy import Fizzy
from simulator.dialects.xpro import Xpro
from tests.conftest import Start
from tests.docexamples import Runner, parse

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "protocols.md").read_text(encoding="utf-8")
PARSED = parse(DOC)
PAGES = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))}
README = (ROOT / "README.md").read_text(encoding="utf-8")
WITH_EXAMPLES = [name for name, text in PAGES.items() if parse(text).examples]
SUCCESS = {"xpro": '"code": 0,', "fizzy": '"balance": ', "ambslot": '"status": {"code": 0,'}


@pytest.mark.parametrize("page", WITH_EXAMPLES)
async def test_every_example_gets_its_documented_answer(start: Start, page: str) -> None:
    assert "protocols.md" in WITH_EXAMPLES
    h = await start(scenario_file="builtin:happy_path")  # what `make run` serves
    runner = Runner(h.url)
    try:
        failures = {}
        for example in parse(PAGES[page]).examples:
            assert example.answer, f"{example.name}: no answer block"
            problems = await runner.check(example)
            if problems:
                failures[example.name] = problems
    finally:
        await runner.close()
    assert not failures, failures


def test_every_endpoint_of_every_dialect_has_a_success_and_an_error_example() -> None:
    endpoints = {"xpro": Xpro.ENDPOINTS, "fizzy": Fizzy.ENDPOINTS, "ambslot": Ambslot.ENDPOINTS}
    for dialect, table in endpoints.items():
        for path in table:
            shown = [e for e in PARSED.examples if e.dialect == dialect and e.path == path]
            ok = [e for e in shown if e.status == 200 and SUCCESS[dialect] in e.answer]
            assert ok, f"{dialect} {path}: no success example"
            bad = [e for e in PARSED.examples if e.dialect == dialect and e not in ok and e.path == path]
            assert bad, f"{dialect} {path}: no error example"
    assert len(PARSED.examples) >= 40


def test_every_error_code_is_in_the_tables() -> None:
    tables = DOC.split("## Error codes", 1)[1]
    for code in [*XPRO, *FIZZY, *AMBSLOT]:
        assert re.search(rf"\b{code}\b", tables), code


def test_the_xpro_worked_example_reproduces_byte_for_byte() -> None:
    (worked,) = [w for w in PARSED.worked if w.dialect == "xpro"]
    v = worked.values
    key = xpro_key(v["api_key"])
    cipher_text = xpro_encrypt(key, v["plaintext"].encode(), bytes.fromhex(v["iv_hex"]))
    assert cipher_text == v["cipherText"] == v["iv_b64"] + v["tag_b64"] + v["ciphertext_b64"]
    assert (len(v["iv_b64"]), len(v["tag_b64"])) == (16, 24)
    assert base64.b64decode(v["iv_b64"]) == bytes.fromhex(v["iv_hex"])
    assert xpro_decrypt(key, v["cipherText"]).decode() == v["plaintext"]
    canonical = xpro_string_to_sign(v["agent"], v["timestamp"], v["nonce"], v["cipherText"])
    assert canonical == v["canonical"]
    assert xpro_signature(v["agent"], v["timestamp"], v["nonce"], v["cipherText"]) == v["x-signature"]
    assert hashlib.sha256(v["canonical"].encode()).hexdigest() == v["x-signature"]  # plain SHA-256, no key


def test_the_fizzy_worked_example_reproduces_byte_for_byte() -> None:
    (worked,) = [w for w in PARSED.worked if w.dialect == "fizzy"]
    v = worked.values
    body = v["body"].encode()
    assert hashlib.md5(body).hexdigest().upper() == v["md5"]
    assert fizzy_string_to_sign("POST", v["url"], body) == v["toSign"].replace("\\n", "\n")
    assert fizzy_signature(v["private_key"], "POST", v["url"], body) == v["Signature"]
    lower = f"POST\n{v['url']}\n{v['md5'].lower()}".encode()
    wrong = hmac.new(v["private_key"].encode(), lower, hashlib.sha256).hexdigest()
    assert wrong == v["lowercase_md5_signature"] != v["Signature"]


@pytest.mark.parametrize("name", ["xpro", "fizzy"])
async def test_the_snippets_run_as_written(start: Start, name: str) -> None:
    h = await start(scenario_file="builtin:happy_path")
    found = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)\n```", DOC, re.S)
    assert found is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        found.group(1),
        env={**os.environ, "WALLET_URL": h.url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert ("'code': 0" in text and "'balance': 1000" in text) if name == "xpro" else "'balance': 1000" in text


def test_the_readme_links_the_reference_and_nothing_internal() -> None:
    assert "(docs/protocols.md)" in README
    for name, text in {"README.md": README, **PAGES}.items():
        assert "shared/" not in text and "PROTOCOLS.md" not in text, name


def shell_commands(markdown: str) -> list[list[str]]:
    """Every ``python -m simulator ...`` command of the fenced blocks, as arguments after ``simulator``."""
    found: list[list[str]] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", markdown, re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            command_line = re.match(r"\s*(?:\.venv/bin/)?python -m simulator (.*)", line)
            if command_line is None or "[" in command_line.group(1):  # not a command, or the synopsis
                continue
            rest = command_line.group(1)
            command = re.split(r"\s+#\s|\s>|\s&|\s2>", rest)[0]
            found.append(shlex.split(command))
    return found


def test_every_command_in_the_docs_is_accepted_by_the_cli() -> None:
    from simulator.cli import parse as parse_args

    commands = [argv for text in (README, *PAGES.values()) for argv in shell_commands(text)]
    assert len(commands) >= 15
    for argv in commands:
        try:
            args = parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"the documented command `python -m simulator {shlex.join(argv)}` is refused") from exc
        assert callable(args.func)


def test_the_documented_helper_commands_print_the_worked_example(capsys: pytest.CaptureFixture[str]) -> None:
    from simulator.cli import main

    (worked,) = [w for w in PARSED.worked if w.dialect == "xpro"]
    outputs = []
    for argv in shell_commands(DOC):
        if argv[0] == "xpro":
            assert main(argv) == 0
            outputs.append(capsys.readouterr().out)
    encrypted, signed, decrypted = outputs
    assert encrypted.strip() == worked.values["cipherText"]
    assert worked.values["canonical"] in signed and worked.values["x-signature"] in signed
    assert decrypted.strip() == worked.values["plaintext"]
