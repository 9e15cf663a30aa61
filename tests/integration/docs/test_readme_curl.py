"""The README's curl examples work as written: every ``curl`` command in its ``sh`` blocks is sent, in order,
to a server started as ``make run`` starts it, and must get a successful answer.

A small reader turns each command (``-X``, ``-H``, ``-d``, ``--data-binary [@file]``, the URL, shell variables
set earlier in the same block) into the same HTTP request, so the examples need no curl on the machine.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from simulator.scenarios import loader
from tests.conftest import Start

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCUMENTED = "http://127.0.0.1:8080"


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
    assert not pending, f"unfinished command in the README: {pending!r}"
    return found


def curls(block: str) -> list[Curl]:
    variables: dict[str, str] = {}
    found = []
    for words in commands(block):
        if len(words) == 1 and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            name, value = words[0].split("=", 1)
            variables[name] = value
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
        elif word in ("-d", "--data", "--data-binary"):
            value = next(rest)
            if word == "--data-binary" and value.startswith("@"):
                curl.data_file = value[1:]
            else:
                curl.data = value
        elif word.startswith("-"):
            assert set(word[1:]) <= set("sSfL"), f"the README uses a curl option this reader does not know: {word}"
        else:
            curl.url = word
    return curl


async def send(http: aiohttp.ClientSession, curl: Curl, base: str, files: dict[str, bytes]) -> tuple[int, str]:
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
    async with http.request(method, curl.url.replace(DOCUMENTED, base), data=body, headers=headers) as response:
        return response.status, await response.text()


def test_the_reader_understands_the_readme_examples() -> None:
    found = [c for block in sh_blocks(README) for c in curls(block)]
    assert len(found) >= 10, "the README's curl examples were not found"
    assert all(c.url.startswith(DOCUMENTED) for c in found), [c.line for c in found]


async def test_every_readme_curl_example_succeeds(start: Start) -> None:
    h = await start(scenario_file="builtin:happy_path")  # what `make run` serves
    files = {"mine.yaml": loader.read_source("builtin:happy_path").encode()}
    failures = []
    for block in sh_blocks(README):
        for curl in curls(block):
            status, text = await send(h.http, curl, h.url, files)
            if status >= 400 or ('"code":0' not in text.replace(" ", "") and "/_sim" not in curl.url):
                failures.append(f"{curl.line}\n  -> {status} {text[:300]}")
    assert not failures, "\n".join(failures)
