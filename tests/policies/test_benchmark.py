"""The scored benchmark: the reference scores 0 and the top 100 on their own task, exactly; a bundle's score is
the same to the digit run twice; bad tasks and policies are answered in one line with exit code 2."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from payroute.envs.baselines import ClairvoyantRisk
from payroute.errors import PayrouteError
from payroute.experiments.cli import app
from payroute.policies import zoo
from payroute.policies.benchmark import SEED_START, TASKS, score, task_values
from payroute.policies.benchmark.scoring import score_from_values
from payroute.stats import paired_ratio_interval
from payroute.vocabulary import HELD_OUT_SEED_START

runner = CliRunner()


def tiny(name: str):
    """The task at a fiftieth of its scenario's volume (the RTGS game as it is): the same arms, quick."""
    task = TASKS[name]
    if "volume_scale" not in task.overrides:
        return task
    return dataclasses.replace(task, overrides={**task.overrides, "volume_scale": 0.02})


@pytest.mark.parametrize("name", list(TASKS))
def test_the_reference_scores_0_and_the_top_100_on_their_own_task_exactly(name):
    task = tiny(name)
    values = task_values(task, [], seeds=2)
    assert set(values) == {task.reference, task.top}
    assert not np.array_equal(values[task.reference], values[task.top])
    ref = score_from_values(task, task.reference, values, SEED_START)
    top = score_from_values(task, task.top, values, SEED_START)
    assert (ref.score, ref.low, ref.high) == (0.0, 0.0, 0.0)
    assert (top.score, top.low, top.high) == (100.0, 100.0, 100.0)


def test_the_oracle_named_as_the_policy_scores_exactly_100_and_a_baseline_what_the_formula_gives():
    task = tiny("routing-default")
    (oracle,) = score("oracle", task, seeds=2)
    assert (oracle.score, oracle.low, oracle.high) == (100.0, 100.0, 100.0)
    values = task_values(task, ["fastest"], seeds=3)
    (fastest,) = score("fastest", task, seeds=3)
    ref, top, pol = values["cheapest"], values["oracle"], values["fastest"]
    assert fastest.score == pytest.approx(100 * (pol - ref).mean() / (top - ref).mean(), rel=1e-12)
    assert fastest.low < fastest.score < fastest.high
    assert fastest.policy_kpi == pytest.approx(pol.mean()) and fastest.seeds == 3


def test_a_zoo_bundles_score_is_reproducible_to_the_digit_in_process_and_in_worker_processes():
    task = tiny("risk-fraud_surge")
    first = score(zoo("risk"), task, seeds=2)
    again = score(zoo("risk"), task, seeds=2, workers=2)
    assert first == again
    assert first[0].policy == "bundle risk" and first[0].first_seed == SEED_START >= HELD_OUT_SEED_START


def test_the_cli_prints_the_rtgs_planners_score_as_json_and_the_reference_in_a_table():
    out = runner.invoke(app, ["score", "planner", "--task", "rtgs-game", "--seeds", "2", "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)
    assert (row["task"], row["score"], row["low"], row["high"]) == ("rtgs-game", 100.0, 100.0, 100.0)
    table = runner.invoke(app, ["score", "release_all", "--task", "rtgs-game", "--seeds", "2"])
    assert table.exit_code == 0, table.output
    assert "rtgs-game" in table.stdout and "0.0 [0.0, 0.0]" in table.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["cheapest", "--task", "routing-nowhere"], ["routing-nowhere", "routing-default", "all"]),
        (["cheapestt", "--task", "routing-default"], ["cheapestt", "cheapest", "oracle"]),
        (["threshold", "--task", "routing-default"], ["threshold", "route", "routing-default"]),
        (["no_such_policy"], ["no_such_policy", "no benchmark task"]),
        ([zoo("router"), "--task", "risk-default"], ["risk-default", "'route' bundle", "threshold"]),
        (["/no/such/bundle"], ["/no/such/bundle", "not found"]),
    ],
)
def test_a_bad_task_or_policy_exits_2_with_one_line_naming_it(args, words):
    out = runner.invoke(app, ["score", *args])
    assert out.exit_code == 2, out.output
    message = out.stderr.strip()
    assert "\n" not in message and "Traceback" not in out.output
    for w in words:
        assert w in message


def test_fewer_than_two_seeds_is_refused_before_any_run():
    with pytest.raises(PayrouteError, match="at least 2 seeds"):
        score("cheapest", "routing-default", seeds=1)


def test_the_ratio_interval_is_the_delta_methods_and_degenerate_when_the_arms_coincide():
    num, den = np.array([1.0, 2.0, 3.0, 2.0]), np.array([2.0, 4.0, 5.0, 5.0])
    r = paired_ratio_interval(num, den)
    ratio = num.mean() / den.mean()
    se = (num - ratio * den).std(ddof=1) / 2 / den.mean()
    assert r.mean == ratio and r.high - r.mean == pytest.approx(3.182446305284263 * se)
    same = paired_ratio_interval(den, den)
    assert (same.mean, same.low, same.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="zero"):
        paired_ratio_interval(num, den - den.mean())


def test_the_clairvoyant_risk_bound_blocks_fraud_and_allows_genuine_payments():
    from payroute.envs.world.decisions import ALLOW, BLOCK

    class Tx:
        def __init__(self, fraud):
            self.is_fraud = fraud

    policy = ClairvoyantRisk()
    assert policy.decide(None, Tx(True)) == (BLOCK, 1.0)
    assert policy.decide(None, Tx(False)) == (ALLOW, 1.0)


def test_a_price_bundle_bound_into_the_world_makes_the_same_day_as_driving_pricing_v0_with_it():
    import gymnasium as gym

    from payroute.envs.baselines import bound_policies
    from payroute.envs.scenarios import load_scenario
    from payroute.envs.world import PaymentWorld
    from payroute.policies import load_bundle
    from payroute.policies.bundle.binding import bound_bundle, check_bundle_fits_scenario

    bundle = load_bundle(zoo("pricing"))
    overrides = {"volume_scale": 0.02, "prices": {"period_s": 21600}}
    scenario = load_scenario("default", overrides)
    check_bundle_fits_scenario(bundle, scenario)
    world = PaymentWorld(
        scenario, seed=SEED_START, policies={**bound_policies(), "price": bound_bundle(bundle)}, days=2.0
    )
    world.run()
    env = gym.make("payroute/Pricing-v0", scenario="default", scenario_overrides=overrides, days=2.0,
                   price_levels=bundle.card.action_values)  # fmt: skip
    obs, _ = env.reset(seed=SEED_START)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(int(bundle.act(obs)))
        done = terminated or truncated
    assert env.unwrapped.world.kpis() == world.kpis()
