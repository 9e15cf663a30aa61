"""Every command's --help reads on its own: it opens with what the command does, and every argument says
what it is (a new user learns the CLI from --help before any page)."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from simulator.cli import parse, parser


def commands() -> dict[str, argparse.ArgumentParser]:
    top = parser()
    found = next(a.choices for a in top._actions if isinstance(a.choices, dict))
    return dict(found)


@pytest.mark.parametrize("name", sorted(commands()))
def test_each_command_says_what_it_does_and_what_each_argument_is(name: str) -> None:
    command = commands()[name]
    assert command.description, f"{name} --help has no description"
    bare = [
        action.option_strings[-1] if action.option_strings else action.dest
        for action in command._actions
        if not action.help and not isinstance(action, argparse._HelpAction)
    ]
    assert not bare, f"{name} --help: no help text for {bare}"


@pytest.mark.parametrize("name", sorted(commands()))
def test_help_prints_through_the_intermixed_parser(name: str) -> None:
    """parse() reads options anywhere (parse_intermixed_args), which hides positionals' defaults from help
    strings: a `%(default)s` there made `fizzy --help` crash with KeyError."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        parse([name, "--help"])
    assert exited.value.code == 0 and "usage:" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["xpro", "encrypt"], "xpro encrypt: --plaintext is required"),
        (["xpro", "decrypt"], "xpro decrypt: --cipher-text is required"),
        (["xpro", "encrypt", "--plaintext", "{}", "--iv", "zz"], "--iv must be 24 hex digits (12 bytes), not 'zz'"),
        (["xpro", "encrypt", "--plaintext", "{}", "--iv", "00"], "--iv must be 24 hex digits (12 bytes), not '00'"),
        (["xpro", "sign", "--api-key", "short"], "xpro sign: --api-key: an AES-256 key is 32 bytes"),
    ],
)
def test_xpro_helper_mistakes_are_one_line_not_a_traceback(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`xpro encrypt` without --plaintext (or decrypt without --cipher-text, a bad --iv or --api-key) raised
    AttributeError/TypeError/ValueError with a traceback."""
    from simulator.cli import main

    assert main(argv) == 2
    assert said in capsys.readouterr().err
