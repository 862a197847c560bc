"""Logged decisions for off-policy evaluation: epsilon-greedy propensities, recorded observations, bundles as routers."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from payroute.errors import PayrouteError
from payroute.experiments.cli import app
from payroute.experiments.simulate import run_simulation
from payroute.policies import load_bundle
from payroute.policies.logs import OBS_PREFIX, read_logged_decisions
from payroute.policies.review.ope import evaluate_policy
from tests.helpers.route_bundles import default_route_schema, fee_columns, fee_router_bundle

pytest.importorskip("torch")  # the test bundles are exported from torch

SMALL = {"volume_scale": 0.02}
EPS = 0.2


@pytest.fixture(scope="module")
def schema():
    specs, routes = default_route_schema()
    return [f.name for f in specs], routes


@pytest.fixture(scope="module")
def cheap_bundle(tmp_path_factory):
    return fee_router_bundle(-1.0, tmp_path_factory.mktemp("bundles") / "cheap")


@pytest.fixture(scope="module")
def explore_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("logs") / "explore.parquet"
    summary = run_simulation("default", route="cheapest", seed=3, log_path=path, overrides=SMALL, explore=EPS)
    return path, summary


def test_epsilon_greedy_log_has_exact_propensities_and_ips_of_the_behaviour_is_the_logged_mean(
    explore_log, schema
):
    path, summary = explore_log
    names, routes = schema
    logged = read_logged_decisions(path, route_names=routes, observation_names=names)
    assert logged.n > 1000 and logged.observations.shape == (logged.n, len(names))
    # the behaviour policy recomputed from what the router saw: cheapest eligible route, else uniform
    fees = fee_columns(logged.observations, names, routes)
    greedy = np.argmin(np.where(logged.masks, fees, np.inf), axis=1)
    behaviour = EPS * logged.masks / logged.masks.sum(axis=1, keepdims=True)
    behaviour[np.arange(logged.n), greedy] += 1 - EPS
    assert np.allclose(
        logged.propensities, behaviour[np.arange(logged.n), logged.actions], rtol=0, atol=1e-12
    )
    result = evaluate_policy(
        logged.rewards, logged.actions, logged.propensities, behaviour, masks=logged.masks, n_bootstrap=50
    )
    assert result["ips"].value == pytest.approx(result.logged_mean.value, rel=1e-12)
    assert result["snips"].value == pytest.approx(result.logged_mean.value, rel=1e-12)
    # exploration really happened, about as often as epsilon says
    off_greedy = float(np.mean(logged.actions != greedy))
    expected = EPS * float(np.mean(1 - 1 / logged.masks.sum(axis=1)))
    assert abs(off_greedy - expected) < 0.02
    assert summary["exploration"]["explored"] == pytest.approx(
        EPS * summary["exploration"]["decisions"], rel=0.15
    )


def test_exploring_around_a_randomising_router_logs_the_mixture_propensity():
    summary = run_simulation("default", route="success_rate", seed=1, overrides=SMALL, explore=0.1)
    assert summary["exploration"]["decisions"] > 1000
    # same seed: the demand is identical whatever the router does
    plain = run_simulation("default", route="success_rate", seed=1, overrides=SMALL)
    assert plain["arrivals"] == summary["arrivals"]


def test_propensities_with_a_randomising_router_take_only_the_two_mixture_values(tmp_path):
    path = tmp_path / "sr.parquet"
    run_simulation("default", route="success_rate", seed=2, log_path=path, overrides=SMALL, explore=0.1)
    logged = read_logged_decisions(path)
    n_eligible = logged.masks.sum(axis=1)
    greedy_p = 0.9 + 0.1 / n_eligible
    other_p = 0.1 / n_eligible
    is_greedy = np.isclose(logged.propensities, greedy_p, rtol=0, atol=1e-12)
    is_other = np.isclose(logged.propensities, other_p, rtol=0, atol=1e-12)
    assert (is_greedy | is_other).all()
    assert is_other.any() and is_greedy.mean() > 0.8


def test_a_bundle_bound_as_router_decides_exactly_as_the_baseline_it_imitates(cheap_bundle):
    by_bundle = run_simulation("default", route=str(cheap_bundle), seed=4, overrides=SMALL)
    by_baseline = run_simulation("default", route="cheapest", seed=4, overrides=SMALL)
    assert by_bundle["route_mix"] == by_baseline["route_mix"]
    assert by_bundle["kpis"] == by_baseline["kpis"]


def test_recorded_observations_reproduce_the_bundles_own_decisions(cheap_bundle, tmp_path, schema):
    names, routes = schema
    path = tmp_path / "bundle.parquet"
    run_simulation("default", route=str(cheap_bundle), seed=5, log_path=path, overrides=SMALL)
    policy = load_bundle(cheap_bundle)
    logged = read_logged_decisions(path, route_names=routes, observation_names=policy.feature_names)
    assert np.array_equal(policy.act(logged.observations, logged.masks), logged.actions)
    assert (logged.propensities == 1.0).all()


def test_simulate_cli_explores_around_a_bundle_and_logs_observations(cheap_bundle, tmp_path, schema):
    names, _routes = schema
    log = tmp_path / "cli.parquet"
    args = ["simulate", "default", "--policy", str(cheap_bundle), "--explore", "0.3", "--days", "0.1"]
    res = CliRunner().invoke(app, [*args, "--log", str(log), "--json"])
    assert res.exit_code == 0, res.output
    assert '"explored"' in res.output
    columns = pq.read_schema(log).names
    assert [c for c in columns if c.startswith(OBS_PREFIX)] == [OBS_PREFIX + n for n in names]
    props = read_logged_decisions(log).propensities
    assert (props < 1).all() and len(set(np.round(props, 12))) > 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "cheapestt"], "available: cheapest"),
        (["--policy", "missing/bundle.zip"], "bundle not found"),
        (["--explore", "1.5"], "less than or equal to 1"),
    ],
)
def test_simulate_cli_refuses_bad_policies_and_epsilons_with_exit_2(args, message):
    res = CliRunner().invoke(app, ["simulate", "default", "--days", "0.01", *args])
    assert res.exit_code == 2
    assert message in res.output


def test_unknown_route_policy_error_mentions_bundles():
    with pytest.raises(PayrouteError, match="path of a policy bundle"):
        run_simulation("default", route="nope", overrides=SMALL)
