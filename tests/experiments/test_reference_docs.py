"""The reference docs are generated from the code (config models, CLI, environments, bundle format); the
committed files must match what the code generates."""

from __future__ import annotations

import pytest

from payroute.experiments.reference import GENERATORS
from tests.helpers import REPO

DOCS = REPO / "docs"


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_committed_reference_matches_the_code(name):
    committed = (DOCS / name).read_text()
    assert committed == GENERATORS[name](), (
        f"docs/{name} is stale: run `python -m payroute.experiments.reference`"
    )


def test_the_readme_blocks_generated_from_the_code_are_current():
    from payroute.experiments.reference import README, render_readme

    text = README.read_text()
    assert text == render_readme(text), (
        "README.md's generated blocks are stale: run `python -m payroute.experiments.reference`"
    )


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

    from payroute.experiments.cli import app

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


def test_the_environment_reference_lists_every_feature_of_every_environment_in_order():
    import gymnasium as gym

    from payroute.registration import ENVIRONMENTS

    text = GENERATORS["environments.md"]()
    for env_id in ENVIRONMENTS:
        heading = f"## `{env_id}`\n"
        assert heading in text
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        env = gym.make(env_id, scenario="default").unwrapped
        schema = env.feature_schema()
        assert len(schema) == env.observation_space.shape[0]
        for i, f in enumerate(schema):
            assert f"| {i} | `{f['name']}` | {f['unit']} |" in section, f"{env_id} feature {i} {f['name']}"


def test_routing_docstring_counts_the_features_of_the_default_scenario():
    import gymnasium as gym

    env = gym.make("payroute/Routing-v0", scenario="default").unwrapped
    assert f"there are {len(env.feature_names)}," in " ".join(type(env).__doc__.split())


@pytest.mark.parametrize("env_id", ["payroute/Pricing-v0", "payroute/Treasury-v0"])
def test_period_environments_give_a_unit_for_every_observation_entry(env_id):
    import gymnasium as gym

    env = gym.make(env_id, scenario="cross_border", scenario_overrides={"volume_scale": 0.05}).unwrapped
    schema = env.feature_schema()
    assert [f["name"] for f in schema] == list(env.observation_names)
    assert all(f["unit"] or f["scaling"] for f in schema)
    assert [f["low"] for f in schema] == env.observation_space.low.tolist()


def test_the_bundle_format_documents_every_file_golden_key_and_card_field(tmp_path):
    torch = pytest.importorskip("torch")
    import json

    from payroute.experiments.onnx_export import export_torch_policy
    from payroute.policies.bundle import ConfigRecord, FeatureSpec, PolicyCard, PolicyIO

    text = GENERATORS["bundle_format.md"]()
    torch.manual_seed(0)
    features = [{"name": f"f{i}", "unit": "z", "scaling": "", "low": -1.0, "high": 1.0} for i in range(3)]
    card = {"decision_kind": "risk", "observation": features, "actions": ["allow", "challenge", "block"]}
    bundle = export_torch_policy(torch.nn.Linear(3, 3), 3, 3, card, tmp_path / "b")
    for path in bundle.iterdir():
        assert f"| `{path.name}` |" in text, f"bundle file {path.name} is not in docs/bundle_format.md"
    for key in json.loads((bundle / "golden.json").read_text()):
        assert f"`{key}`" in text.split("## Golden vectors", 1)[1], f"golden key {key} is not documented"
    for model in (PolicyCard, FeatureSpec, ConfigRecord, PolicyIO):
        section = text.split(f"### {model.__name__}\n", 1)[1].split("\n### ", 1)[0]
        for name, field in model.model_fields.items():
            assert f"| `{name}` |" in section
            assert field.description, f"{model.__name__}.{name} has no description"
