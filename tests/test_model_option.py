"""``-m`` has one meaning in every command: ``--model``."""

from __future__ import annotations

import typer.main

from streamify.cli import app


def _commands(group) -> dict:
    found = {}
    for name, command in getattr(group, "commands", {}).items():
        found[name] = command
        for sub, inner in _commands(command).items():
            found[f"{name} {sub}"] = inner
    return found


def test_every_dash_m_is_model() -> None:
    commands = _commands(typer.main.get_command(app))
    with_m = {}
    for name, command in commands.items():
        for param in command.params:
            if "-m" in getattr(param, "opts", []) or "-m" in getattr(param, "secondary_opts", []):
                with_m[name] = param.opts
    assert {"process", "live", "export", "info"} <= set(with_m), with_m
    assert all("--model" in opts for opts in with_m.values()), with_m
