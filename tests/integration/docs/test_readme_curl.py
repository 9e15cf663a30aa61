"""The examples of the README and of every page of docs/ work as written.

Every ``curl`` command in a document's ``sh`` blocks is sent, in order, to a server started as ``make run``
starts it (one server per document), and must get a successful answer; every ``python -m simulator
xpro|fizzy|ambslot call`` and ``validate`` command of those blocks is run against that server and must exit 0.

A small reader turns each curl command (``-X``, ``-H``, ``-d``, ``--data-binary [@file]``, ``-D FILE``, the
URL, shell variables set earlier in the same block) into the same HTTP request, so the examples need no curl
on the machine. A variable set from ``$(sed ... X-Next-Cursor ...)`` is the previous answer's
``X-Next-Cursor`` (how the paging example reads the next page). A file an example names (``@mine.yaml``)
is the document's block marked ``<!-- file: mine.yaml -->``, else the built-in happy-path scenario.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from simulator.scenarios import loader
from tests.conftest import Start

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCUMENTS = {
    "README.md": README,
    **{f"docs/{p.name}": p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))},
}
DOCUMENTED = "http://127.0.0.1:8080"
# the documented server however a page writes it (a deployment page may say localhost:8080)
SERVER = re.compile(r"^(?:https?://)?(?:127\.0\.0\.1|localhost):8080")
HELPERS = ("xpro", "fizzy", "ambslot")
NEXT_CURSOR = "\x00next-cursor\x00"  # a variable set from the previous answer's X-Next-Cursor header


@dataclass
class Curl:
    line: str
    method: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    data: str | None = None
    data_file: str | None = None


def sh_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.M | re.S)


def commands(block: str) -> list[list[str]]:
    """The block's commands as words, continuation lines and multi-line quotes joined, comments dropped."""
    found: list[list[str]] = []
    pending = ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        pending = ""
        if words:
            found.append(words)
    assert not pending, f"unfinished command: {pending!r}"
    return found


def curls(block: str) -> list[Curl]:
    variables: dict[str, str] = {}
    found = []
    for words in commands(block):
        if len(words) == 1 and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            name, value = words[0].split("=", 1)
            variables[name] = value
            continue
        if re.fullmatch(r"[A-Z_]+=\$\(sed", words[0]) and any("X-Next-Cursor" in w for w in words):
            variables[words[0].split("=", 1)[0]] = NEXT_CURSOR
            continue
        if words[0] != "curl":
            continue
        words = [re.sub(r"\$([A-Z_]+)", lambda m: variables[m.group(1)], w) for w in words]
        if ">" in words:  # output redirected to a file: the request is what counts
            words = words[: words.index(">")]
        found.append(parse(words))
    return found


def parse(words: list[str]) -> Curl:
    curl = Curl(" ".join(words))
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            curl.method = next(rest)
        elif word == "-H":
            name, value = next(rest).split(":", 1)
            curl.headers[name.strip()] = value.strip()
        elif word == "-D":  # the answer's headers to a file: the request is the same
            next(rest)
        elif word in ("-d", "--data", "--data-binary"):
            value = next(rest)
            if word == "--data-binary" and value.startswith("@"):
                curl.data_file = value[1:]
            else:
                curl.data = value
        elif word.startswith("-"):
            assert set(word[1:]) <= set("sSfLi"), f"the docs use a curl option this reader does not know: {word}"
        else:
            curl.url = word
    return curl


def simulator_commands(block: str) -> list[list[str]]:
    """The block's ``python -m simulator ...`` commands, as the arguments after ``simulator``."""
    found = []
    for words in commands(block):
        if len(words) > 3 and words[0].endswith("python") and words[1:3] == ["-m", "simulator"]:
            found.append(words[3 : words.index(">")] if ">" in words else words[3:])
    return found


def files_of(markdown: str) -> dict[str, bytes]:
    """The files a document's examples name: its blocks marked ``<!-- file: NAME -->``."""
    files = {"mine.yaml": loader.read_source("builtin:happy_path").encode()}
    for name, body in re.findall(r"<!-- file: (\S+) -->\s*\n```[a-z]*\n(.*?)^```", markdown, flags=re.M | re.S):
        files[name] = body.encode()
    return files


def examples(markdown: str) -> list[Curl]:
    return [c for block in sh_blocks(markdown) for c in curls(block)]


def runnable(markdown: str) -> list[list[str]]:
    """The commands run against the server: the call helpers and ``validate``."""
    found = []
    for block in sh_blocks(markdown):
        for argv in simulator_commands(block):
            if (argv[0] in HELPERS and "call" in argv) or argv[0] == "validate":
                found.append(argv)
    return found


WITH_CURL = [name for name, text in DOCUMENTS.items() if examples(text)]
WITH_COMMANDS = [name for name, text in DOCUMENTS.items() if runnable(text)]


async def send(
    http: aiohttp.ClientSession, curl: Curl, base: str, files: dict[str, bytes], cursor: str | None = None
) -> tuple[int, str, str | None]:
    """The answer's status, text and X-Next-Cursor; ``cursor`` stands in the URL for NEXT_CURSOR."""
    body: bytes | None = None
    headers = dict(curl.headers)
    if curl.data is not None:
        body = curl.data.encode()
        # what curl -d does: a form content type unless the command names one
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif curl.data_file is not None:
        body = files[curl.data_file]
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    method = curl.method or ("POST" if body is not None else "GET")
    url = SERVER.sub(base, curl.url)
    if NEXT_CURSOR in url:
        assert cursor, f"{curl.line}: the answer before it gave no X-Next-Cursor"
        url = url.replace(NEXT_CURSOR, cursor)
    async with http.request(method, url, data=body, headers=headers) as response:
        return response.status, await response.text(), response.headers.get("X-Next-Cursor")


def test_the_reader_understands_the_examples() -> None:
    assert len(examples(README)) >= 5, "the README's curl examples were not found"
    assert len(examples(DOCUMENTS["docs/control-api.md"])) >= 10
    for name in WITH_CURL:
        for c in examples(DOCUMENTS[name]):
            assert SERVER.match(c.url), f"{name}: {c.line}"
    assert "README.md" in WITH_COMMANDS and "docs/getting-started.md" in WITH_COMMANDS
    assert {argv[0] for argv in runnable(README)} >= {"xpro", "fizzy", "validate"}  # AMBSlot: curl


def test_the_readme_example_files_are_the_ones_it_shows() -> None:
    assert b"name: qa-broke" in files_of(README)["mine.yaml"]


@pytest.mark.parametrize("name", WITH_CURL)
async def test_every_curl_example_succeeds(start: Start, name: str) -> None:
    h = await start(scenario_file="builtin:happy_path")  # what `make run` serves
    files = files_of(DOCUMENTS[name])
    failures = []
    cursor: str | None = None
    for curl in examples(DOCUMENTS[name]):
        status, text, cursor = await send(h.http, curl, h.url, files, cursor)
        if status >= 400 or ('"code":0' not in text.replace(" ", "") and "/_sim" not in curl.url):
            failures.append(f"{curl.line}\n  -> {status} {text[:300]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", WITH_COMMANDS)
async def test_every_call_and_validate_command_succeeds(start: Start, name: str, tmp_path: Path) -> None:
    h = await start(scenario_file="builtin:happy_path")  # what `make run` serves
    for file_name, content in files_of(DOCUMENTS[name]).items():
        (tmp_path / file_name).write_bytes(content)
    failures = []
    for argv in runnable(DOCUMENTS[name]):
        extra = ["--url", h.url] if argv[0] in HELPERS else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simulator",
            *argv,
            *extra,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            command = f"python -m simulator {shlex.join(argv)}"
            failures.append(f"{command}\n  -> exit {proc.returncode}: {out.decode()[-500:]}")
    assert not failures, "\n".join(failures)


async def test_the_banner_shown_is_the_one_make_run_prints() -> None:
    found = re.search(r"^```\n(Wallet simulator .*?)^```", README, flags=re.M | re.S)
    assert found is not None
    shown = found.group(1).splitlines()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "simulator", "serve", "--port", "0", "--scenario", "builtin:happy_path"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 60)  # the banner is written in one go
    finally:
        proc.terminate()
        rest, _ = await proc.communicate()  # the logs go to stderr: stdout holds the banner alone
    printed = (first + rest).decode().rstrip("\n").splitlines()
    port = re.search(r":(\d+)$", printed[0])
    assert port is not None, printed
    assert [line.replace(f":{port.group(1)}", ":8080") for line in printed] == shown


def test_getting_started_shows_the_same_banner_as_the_readme() -> None:
    """The README's banner is checked against a real start (above); the copy in getting-started must not drift."""
    pattern = r"^```\n(Wallet simulator .*?)^```"
    readme = re.search(pattern, README, flags=re.M | re.S)
    guide = re.search(pattern, (ROOT / "docs" / "getting-started.md").read_text(), flags=re.M | re.S)
    assert readme is not None and guide is not None
    assert guide.group(1) == readme.group(1)
