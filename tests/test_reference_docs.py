"""The reference docs are generated from the config models; the committed files must match the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from payroute.reference import references

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("name", sorted(references()))
def test_committed_reference_matches_the_models(name):
    committed = (DOCS / name).read_text()
    assert committed == references()[name], f"docs/{name} is stale: run `python -m payroute.reference`"


def test_the_scenario_reference_documents_every_field_of_a_route():
    from payroute.envs.scenarios.schema import Route

    text = references()["scenario_reference.md"]
    for field in Route.model_fields:
        assert f"| `{field}` |" in text
