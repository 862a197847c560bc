"""Reference documentation generated from the pydantic config models, so it cannot drift from the code.

``python -m payroute.experiments.reference`` rewrites every generated file under ``docs/`` (:data:`GENERATORS`): the
scenario and experiment references from the pydantic models, the command-line reference from the typer app,
the environment reference from the environments' feature schemas, the bundle format from
:mod:`payroute.policies.bundle.card`;
``tests/experiments/test_reference_docs.py`` fails when a committed file differs from what the code generates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from payroute.experiments.reference.models import render_model_reference
from payroute.files import atomic_write_text

DOCS = Path(__file__).resolve().parents[2] / "docs"


def scenario_reference() -> str:
    from payroute.envs.scenarios.schema import Scenario

    return render_model_reference(
        Scenario,
        "Scenario reference",
        "Every field of a scenario YAML file (`envs/scenarios/*.yaml`). Unknown fields are errors; money is "
        "integer cents, rates are bps or probabilities, durations carry their unit in the name. Every number "
        "must be finite (no `.inf`, `.nan`) and within the bounds in the constraints column (they are what the "
        "quantity can physically mean); at most 10,000,000 genuine payments a day "
        "(`demand.transactions_per_day` x `volume_scale`).",
    )


def experiment_reference() -> str:
    from payroute.experiments.schema import Experiment

    return render_model_reference(
        Experiment,
        "Experiment reference",
        "Every field of an experiment YAML file (`experiments/*.yaml`). Unknown fields are errors; every number "
        "must be finite (no `.inf`, `.nan`), in free-form mappings (`env.kwargs`, `library_options`, "
        "`scenario_overrides`) too, and the scenario overrides must give valid scenarios. A sweep's space is "
        "validated whole before Ray starts: every `choice`, both ends of every range (low below high).",
    )


def cli_reference() -> str:
    from payroute.experiments.reference.cli import render_cli_reference

    return render_cli_reference()


def environment_reference() -> str:
    from payroute.experiments.reference.envs import render_environment_reference

    return render_environment_reference()


def bundle_format() -> str:
    from payroute.experiments.reference.bundle import render_bundle_format

    return render_bundle_format()


GENERATORS: dict[str, Callable[[], str]] = {
    "scenario_reference.md": scenario_reference,
    "experiment_reference.md": experiment_reference,
    "cli.md": cli_reference,
    "environments.md": environment_reference,
    "bundle_format.md": bundle_format,
}
"""File name under docs/ -> the function that generates it."""


README = DOCS.parent / "README.md"


def readme_commands() -> str:
    """One row per CLI command: its usage and the first line of its help."""
    import typer

    from payroute.experiments.cli import app

    root = typer.main.get_command(app)
    rows = ["| command | what it does |", "| --- | --- |"]

    def walk(cmd: Any, path: list[str]) -> None:
        for name, child in sorted(getattr(cmd, "commands", {}).items()):
            full = [*path, name]
            doc = (child.help or "").strip().split("\n\n")[0].replace("\n", " ")
            rows.append(f"| `{' '.join(full)}` | {doc} |")
            walk(child, full)

    walk(root, ["payroute"])
    return "\n".join(rows)


README_BLOCKS: dict[str, Callable[[], str]] = {
    "cli-commands": readme_commands,
}
"""Name -> generator of a README block between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``."""


def render_readme(text: str) -> str:
    """``text`` (the README) with every generated block replaced by what the code generates now."""
    for name, generate in README_BLOCKS.items():
        start, end = (
            f"<!-- generated: {name} (python -m payroute.experiments.reference) -->",
            f"<!-- end: {name} -->",
        )
        if start not in text or end not in text:
            raise ValueError(f"README.md has no generated block {name!r} ({start} ... {end})")
        head, rest = text.split(start, 1)
        _old, tail = rest.split(end, 1)
        text = f"{head}{start}\n{generate()}\n{end}{tail}"
    return text


def references() -> dict[str, str]:
    """File name under docs/ -> generated content."""
    return {name: generate() for name, generate in GENERATORS.items()}


def write_references(docs_dir: Path = DOCS) -> list[Path]:
    docs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in references().items():
        path = docs_dir / name
        atomic_write_text(path, text)
        written.append(path)
    if docs_dir == DOCS:
        atomic_write_text(README, render_readme(README.read_text()))
        written.append(README)
    return written
