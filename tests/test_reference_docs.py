"""The reference docs are generated from the code (config models, CLI, environments, bundle format); the
committed files must match what the code generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from payroute.reference import GENERATORS

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_committed_reference_matches_the_code(name):
    committed = (DOCS / name).read_text()
    assert committed == GENERATORS[name](), f"docs/{name} is stale: run `python -m payroute.reference`"


def test_the_scenario_reference_documents_every_field_of_a_route():
    from payroute.envs.scenarios.schema import Route

    text = GENERATORS["scenario_reference.md"]()
    for field in Route.model_fields:
        assert f"| `{field}` |" in text


def _commands(command, path):
    yield path, command
    for name, child in getattr(command, "commands", {}).items():
        yield from _commands(child, [*path, name])


def test_the_cli_reference_documents_every_command_and_option():
    import typer

    from payroute.cli import app

    text = GENERATORS["cli.md"]()
    commands = list(_commands(typer.main.get_command(app), ["payroute"]))
    assert {" ".join(p) for p, _ in commands} >= {
        "payroute simulate",
        "payroute scenarios show",
        "payroute bench",
    }
    for path, command in commands:
        heading = f"`{' '.join(path)}`\n"
        assert heading in text, f"{' '.join(path)} is missing from docs/cli.md"
        section = text.split(heading, 1)[1].split("\n#", 1)[0]  # up to the next heading
        assert (command.help or "").split("\n")[0] in section
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                for opt in param.opts:
                    assert f"| `{opt}`" in section, f"{' '.join(path)} {opt} is missing from docs/cli.md"
