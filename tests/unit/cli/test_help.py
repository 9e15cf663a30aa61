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
