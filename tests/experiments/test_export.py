"""`payroute export RUN_DIR`: a trained run's policies as bundles that act exactly like the trained network."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from payroute.agents.learned import LearnedRoutePolicy
from payroute.agents.networks import load_policy
from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import PaymentWorld
from payroute.errors import PayrouteError
from payroute.experiments.cli import app
from payroute.experiments.export import export_run
from payroute.experiments.rundir import read_run
from payroute.experiments.runner import train
from payroute.policies import config_sha256, load_bundle
from payroute.policies.bundle.binding import bound_bundle
from tests.helpers.experiments import TINY_VOLUME, tiny_experiment, write_experiment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rllib_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    path = write_experiment(root, tiny_experiment("tiny_export"))
    return train(path, runs_root=root / "runs", progress=False)


def _kpis(policy, seed: int) -> dict:
    policies = bound_policies()
    policies["route"] = policy
    world = PaymentWorld(load_scenario("default", TINY_VOLUME), seed=seed, policies=policies, days=1)
    world.run()
    return world.kpis()


def test_an_rllib_run_exports_a_bundle_that_routes_like_the_trained_network(rllib_run, tmp_path):
    written, skipped = export_run(rllib_run, tmp_path / "router")
    assert list(written) == ["router"] and not skipped
    bundle = load_bundle(written["router"])  # checksums, schema, golden vectors
    card = bundle.card
    exp, record = read_run(rllib_run)
    assert card.decision_kind == "route" and card.agent_id == "router"
    assert card.parity["observations"] == 10_000 and card.parity["max_abs_diff"] <= 1e-5
    assert card.experiment.name == "tiny_export"
    assert card.experiment.sha256 == config_sha256(exp.resolved())
    assert (
        card.scenario.name == "default"
        and card.scenario.config["volume_scale"] == TINY_VOLUME["volume_scale"]
    )
    assert card.training["config_hash"] == record["config_hash"] and card.training["iterations"] == 2
    assert card.training["trainer"] == "rllib/PPO" and card.git_commit == record["git"]["commit"]
    # bound into the world, the bundle takes the trained network's decisions: the same KPIs, seed for seed
    net = load_policy(rllib_run / "policy" / "router")
    for seed in (1_000_000_000, 1_000_000_001):
        assert _kpis(bound_bundle(bundle), seed) == _kpis(LearnedRoutePolicy(net), seed)


def test_export_of_a_checkpoint_and_as_a_zip(rllib_run, tmp_path):
    written, _ = export_run(rllib_run, tmp_path / "ckpt1.zip", checkpoint=1, parity_observations=500)
    card = load_bundle(written["router"]).card
    assert written["router"].suffix == ".zip" and card.training["policy"] == "checkpoint 1"
    with pytest.raises(PayrouteError, match=r"no checkpoint 7; checkpoints kept: \[1, 2\]"):
        export_run(rllib_run, tmp_path / "nope", checkpoint=7)
    with pytest.raises(PayrouteError, match="already exists"):
        export_run(rllib_run, tmp_path / "ckpt1.zip", checkpoint=1)


def test_export_records_the_evaluation_when_the_run_was_evaluated(rllib_run, tmp_path):
    from payroute.experiments.evaluate import evaluate_run

    evaluate_run(rllib_run, seeds=2, workers=1)
    written, _ = export_run(rllib_run, tmp_path / "evaluated", parity_observations=500)
    ev = load_bundle(written["router"]).card.evaluation
    assert {"trained", "cheapest", "fastest", "oracle"} <= set(ev["policies"])
    assert {row["policy"] for row in ev["summary"]} >= {"trained", "cheapest"}
    assert len(ev["seeds"]) == 2


def test_an_sb3_run_exports_too_and_the_cli_says_where(tmp_path):
    data = tiny_experiment("tiny_sb3_export", stopping={"env_steps": 300, "iterations": 40})
    data["trainer"] = {"library": "sb3", "algorithm": "MaskablePPO",
                       "hyperparameters": {"batch_size": 256, "minibatch_size": 64, "epochs": 1},
                       "network": {"hidden": [16], "activation": "tanh"}}  # fmt: skip
    data["resources"] = {"num_env_runners": 0, "num_envs_per_env_runner": 1}
    run_dir = train(write_experiment(tmp_path, data), runs_root=tmp_path / "runs", progress=False)
    from payroute.policies.bundle.signing import generate_keypair, load_public_key

    key, pub, kid = generate_keypair(tmp_path / "keys")
    result = CliRunner().invoke(
        app,
        ["export", str(run_dir), "--out", str(tmp_path / "sb3"), "--parity", "2000", "--sign-key", str(key),
         "--ml-bom", str(tmp_path / "sb3.cdx.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output[-2000:]
    out = " ".join(result.output.split())
    assert "parity on 2,000 observations" in out and "payroute review" in out
    assert f"signed by {kid} (trusted: signing.key)" in out
    bom = json.loads((tmp_path / "sb3.cdx.json").read_text())  # the card as a CycloneDX 1.6 ML-BOM
    (model,) = bom["components"]
    assert (
        bom["specVersion"] == "1.6" and model["type"] == "machine-learning-model" and model["name"] == "sb3"
    )
    assert (
        model["hashes"][0]["content"]
        == hashlib.sha256((tmp_path / "sb3" / "checksums.sha256").read_bytes()).hexdigest()
    )
    bundle = load_bundle(tmp_path / "sb3", trusted_keys=[load_public_key(pub)])
    assert bundle.signature.describe() == f"signed by {kid} (trusted: signing.pub)"
    assert bundle.card.training["trainer"] == "sb3/MaskablePPO"
    net = load_policy(run_dir / "policy" / "router")
    obs = np.random.default_rng(0).random((64, net.spec.obs_dim), dtype=np.float32)
    mask = np.ones((64, net.spec.n_actions), dtype=bool)
    with torch.no_grad():
        expected = net(torch.from_numpy(obs)).numpy()
    assert np.allclose(bundle.logits(obs, mask), expected, atol=1e-5)


def test_export_refuses_what_is_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "is not a run folder" in result.output
    assert "Traceback" not in result.output


def test_a_continuous_pricer_is_named_not_exported_and_a_treasury_or_fraud_mean_is(rllib_run, tmp_path):
    from payroute.agents.networks import PolicyNet, PolicySpec
    from payroute.experiments.export import not_exportable

    def gaussian(kind, outputs, names):
        return PolicyNet(PolicySpec(obs_dim=4, n_actions=outputs, hidden=(8,), activation="tanh",
                                    decision_kind=kind, action_names=names))  # fmt: skip

    assert "continuous (Box) actions" in not_exportable("pricer", gaussian("price", 6, ("a", "b", "c")))
    assert not_exportable("fraudster", gaussian("fraud", 6, ("a", "b", "c"))) is None  # means, log-stds
    assert not_exportable("fraudster", gaussian("fraud", 6, ())) is None  # names come from the role
    assert "not a mean and a log-std" in not_exportable("treasury", gaussian("treasury", 5, ()))
    assert not_exportable("router", load_policy(rllib_run / "policy" / "router")) is None


def test_a_treasury_run_exports_a_continuous_bundle_that_acts_like_the_trained_mean(tmp_path):
    from payroute.agents.learned import greedy_action
    from payroute.agents.training_env import make_env
    from payroute.policies.bundle.binding import BoundPeriodBundle

    data = tiny_experiment(
        "tiny_treasury", scenario="liquidity_crunch", env__id="payroute/Treasury-v0", env__kpi_every_steps=0,
        agents__learn=["treasury"], agents__baselines={"router": "fastest", "risk": "threshold"},
        trainer__hyperparameters={"batch_size": 48, "minibatch_size": 24, "epochs": 1}, stopping={"iterations": 1},
        evaluation__baselines=["target_balance"], evaluation__oracle=False,
    )  # fmt: skip
    run = train(write_experiment(tmp_path, data), runs_root=tmp_path / "runs", progress=False)
    written, skipped = export_run(run, tmp_path / "treasury", parity_observations=200)
    assert skipped == {}
    bundle = load_bundle(written["treasury"])
    card = bundle.card
    assert card.decision_kind == "treasury" and card.continuous
    assert card.actions == ["transfer[rtp_prefund]", "transfer[nostro]", "credit_line[fed_master]"]
    assert card.action_low == [-1.0, -1.0, 0.0] and card.action_high == [1.0, 1.0, 1.0]
    assert card.parity["max_abs_diff"] <= 1e-5
    # in Treasury-v0, the bundle's clipped output is the trained network's greedy (mean) action
    net = load_policy(run / "policy" / "treasury")
    env = make_env(
        "payroute/Treasury-v0", {"scenario": "liquidity_crunch", "scenario_overrides": TINY_VOLUME}
    )
    obs, _ = env.reset(seed=5)
    bound = BoundPeriodBundle(bundle)
    for _ in range(6):
        mean = greedy_action(net, obs, None, env.action_space)
        out = np.clip(bundle.logits(obs[None])[0], bound.low, bound.high)
        np.testing.assert_allclose(out, mean, atol=1e-5)
        obs, *_ = env.step(mean)


def test_both_sides_of_an_adversarial_run_export_the_fraudster_as_a_continuous_bundle(tmp_path):
    from payroute.envs.roles import FraudsterRole

    data = tiny_experiment(
        "tiny_rvf", scenario="fraud_surge", env__id="payroute.envs.multi_agent.ecosystem:PaymentEcosystemEnv",
        env__kpi_every_steps=0, agents__learn=["risk", "fraudster"],
        agents__baselines={"router": "cheapest", "pricer": "static_pricing", "treasury": "target_balance"},
        trainer__hyperparameters={"batch_size": 600, "minibatch_size": 300, "epochs": 1}, stopping={"iterations": 1},
        evaluation__baselines=["threshold"], evaluation__oracle=False,
    )  # fmt: skip
    run = train(write_experiment(tmp_path, data), runs_root=tmp_path / "runs", progress=False)
    written, skipped = export_run(run, tmp_path / "bundles", parity_observations=200)
    assert skipped == {} and load_bundle(written["risk"]).card.actions == ["allow", "challenge", "block"]
    bundle = load_bundle(written["fraudster"])
    role = FraudsterRole(load_scenario("fraud_surge"))
    assert bundle.card.decision_kind == "fraud" and bundle.card.actions == list(role.action_names)
    assert bundle.card.action_high[: len(role.pattern_names)] == [role.max_intensity] * len(
        role.pattern_names
    )
    assert "within the declared bounds" in bundle.card.parity["source"]
    # the graph is the trained Gaussian's mean
    net = load_policy(run / "policy" / "fraudster")
    obs = np.random.default_rng(0).uniform(0, 1, (32, bundle.obs_dim)).astype(np.float32)
    with torch.inference_mode():
        mean = net(torch.as_tensor(obs)).numpy()[:, : len(role.action_names)]
    np.testing.assert_allclose(bundle.logits(obs), mean, atol=1e-5)
