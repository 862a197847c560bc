"""Off-policy evaluation with several routing decisions per payment (retries on).

The synthetic truth: `default` with retries on, a behaviour policy exploring with epsilon around a router that
never retries, and a target (the static cascade) whose true value is measured by simulating it on the same seeds.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from payroute.envs.baselines import bound_policies
from payroute.envs.baselines.exploration import EpsilonGreedyRoute
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld
from payroute.errors import PayrouteError
from payroute.experiments.cli import app
from payroute.policies.logs import read_logged_decisions
from payroute.policies.logs.sequences import (
    continuation_weights,
    give_up_probabilities,
    read_logged_sequences,
    static_cascade_probabilities,
)
from payroute.policies.review.ope import evaluate_policy

RETRIES = {"retries": {"enabled": True}, "volume_scale": 0.3}
EPS = 0.3
SEEDS = (0, 1)
DAYS = 0.5


def _log(router, seed: int) -> pa.Table:
    sc = load_scenario("default", RETRIES)
    policies = bound_policies()
    policies["route"] = router
    log = EventLog()
    PaymentWorld(sc, seed=seed, policies=policies, days=DAYS, log=log).run()
    return log.table()


def _approved(seqs) -> np.ndarray:
    return pc.equal(seqs.first.table.column("state"), "settled").to_numpy(zero_copy_only=False).astype(float)


@pytest.fixture(scope="module")
def synthetic():
    """Behaviour logs (epsilon-greedy around no_retry) and the target's own runs on the same seeds."""
    names = list(load_scenario("default", RETRIES).routes)
    behaviour, target = [], []
    for seed in SEEDS:
        explorer = EpsilonGreedyRoute(bound_policies(route="no_retry")["route"], EPS)
        behaviour.append(read_logged_sequences(_log(explorer, seed), route_names=names))
        cascade = bound_policies(route="static_cascade")["route"]
        target.append(read_logged_sequences(_log(cascade, seed), route_names=names))
    return behaviour, target


def _stack(behaviour, reward):
    parts = {"r": [], "a": [], "p": [], "pi": [], "m": [], "c": []}
    for seqs in behaviour:
        first, retry = static_cascade_probabilities(seqs)
        parts["r"].append(reward(seqs))
        parts["a"].append(seqs.first.actions)
        parts["p"].append(seqs.first.propensities)
        parts["pi"].append(first)
        parts["m"].append(seqs.first.masks)
        parts["c"].append(continuation_weights(seqs, retry))
    return {k: np.concatenate(v) for k, v in parts.items()}


def test_sequence_estimates_cover_the_simulated_value_and_the_first_decision_alone_is_biased(synthetic):
    behaviour, target = synthetic
    assert sum(s.m for s in behaviour) > 1000  # the log holds many retry decisions
    d = _stack(behaviour, _approved)
    truth = float(np.mean(np.concatenate([_approved(s) for s in target])))
    logged = float(np.mean(d["r"]))
    assert truth - logged > 0.01  # cascading approves more than the logger did: there is something to find
    common = dict(masks=d["m"], estimators=("ips", "snips", "dr"), n_bootstrap=300, seed=0)
    proper = evaluate_policy(d["r"], d["a"], d["p"], d["pi"], continuation=d["c"], **common)
    naive = evaluate_policy(d["r"], d["a"], d["p"], d["pi"], **common)  # ignores the retry decisions
    for name in ("ips", "snips", "dr"):
        assert proper[name].covers(truth), (name, proper[name], truth)
    # weighting only the first decision credits the target with the logger's retries (it gave up): too low
    for name in ("snips", "dr"):
        assert naive[name].ci_high < truth, (name, naive[name], truth)
    assert proper.logged_mean.value == pytest.approx(logged)  # the logged mean is the logged rewards'


def test_the_margin_estimate_covers_the_simulated_margin(synthetic):
    behaviour, target = synthetic
    d = _stack(behaviour, lambda s: s.first.rewards)
    truth = float(np.mean(np.concatenate([s.first.rewards for s in target])))
    res = evaluate_policy(
        d["r"],
        d["a"],
        d["p"],
        d["pi"],
        masks=d["m"],
        continuation=d["c"],
        estimators=("dr",),
        n_bootstrap=300,
    )
    assert res["dr"].covers(truth), (res["dr"], truth)


def test_a_payments_reward_is_its_whole_margin_with_attempt_fees_and_fines():
    explorer = EpsilonGreedyRoute(bound_policies(route="sr_cascade")["route"], EPS)
    table = _log(explorer, 5)
    seqs = read_logged_sequences(table)
    tx = table.filter(pc.equal(table.column("record"), "transaction")).to_pandas().set_index("tx_id")
    tx = tx.loc[seqs.first.tx_id]
    margin = (
        tx.revenue_cents - tx.route_cost_cents - tx.sla_penalty_cents - tx.liquidity_cost_cents
        - tx.challenge_cost_cents - tx.retry_fee_cents - tx.network_fine_cents
    )  # fmt: skip
    assert np.allclose(seqs.first.rewards, margin.to_numpy() - seqs.first.fraud_losses)
    assert tx.retry_fee_cents.sum() > 0 and tx.network_fine_cents.sum() > 0


def test_each_payments_first_decision_comes_from_its_first_attempt(synthetic):
    behaviour, _ = synthetic
    seqs = behaviour[0]
    # the transaction row holds the last attempt's route; the first decision is attempt 1's
    for i in np.flatnonzero(seqs.decisions > 2)[:50]:
        mine = np.flatnonzero(seqs.payment == i)
        assert seqs.last_route[mine[0]] == seqs.first.actions[i]
        assert seqs.tried[mine[0]] == 1 << int(seqs.first.actions[i])
    # the sequence propensity multiplies every decision's, give-ups included
    seq = seqs.sequence_propensities
    assert (seq <= seqs.first.propensities + 1e-12).all() and (seq > 0).all()


def test_a_target_without_retries_gives_up_and_weighs_retried_payments_by_the_give_up_decisions(synthetic):
    behaviour, _ = synthetic
    seqs = behaviour[0]
    probs = give_up_probabilities(seqs)
    assert set(np.unique(probs)) == {0.0, 1.0}
    c = continuation_weights(seqs)
    gave_up_only = np.ones(seqs.n, dtype=bool)
    gave_up_only[seqs.payment[seqs.kind != "give_up"]] = False
    assert (c[~gave_up_only] == 0).all()
    assert (c[gave_up_only] >= 1).all()  # 1 / propensity of each give-up the logger made


def test_simulate_cli_logs_every_retry_decision_with_its_exploration_propensity(tmp_path):
    path = tmp_path / "retries.parquet"
    args = ["simulate", "default", "--policy", "sr_cascade", "--retries", "--explore", "0.5", "--days", "0.1"]
    result = CliRunner().invoke(app, [*args, "--seed", "2", "--log", str(path), "--json"])
    assert result.exit_code == 0, result.output
    seqs = read_logged_sequences(path, route_names=list(load_scenario("default").routes))
    assert seqs.m > 0 and set(seqs.kind) >= {"cascade", "give_up"}
    # each retry decision's propensity: (1 - eps) [greedy] + eps / k over k options (cascades, give up, delays, step-up)
    p = seqs.propensities
    explored_only = p < 0.5
    k = 0.5 / p[explored_only]
    assert np.allclose(k, np.round(k)) and (k >= 3).all()
    greedy = ~explored_only
    k_greedy = 0.5 / (p[greedy] - 0.5)
    assert np.allclose(k_greedy, np.round(k_greedy))
    # the single-decision reader points to the sequence reader
    with pytest.raises(PayrouteError, match="read_logged_sequences"):
        read_logged_decisions(path)


def test_a_log_without_retries_reads_as_one_decision_per_payment(tmp_path):
    sc = load_scenario("default", {"volume_scale": 0.05})
    log = EventLog()
    PaymentWorld(sc, seed=1, policies=bound_policies(route="cheapest"), days=0.25, log=log).run()
    table = log.table()
    seqs = read_logged_sequences(table)
    plain = read_logged_decisions(table)
    assert seqs.m == 0 and np.array_equal(seqs.first.rewards, plain.rewards)
    assert np.array_equal(continuation_weights(seqs), np.ones(plain.n))
    pi = np.where(plain.masks, 1.0, 0.0) / plain.masks.sum(axis=1, keepdims=True)
    a = evaluate_policy(plain.rewards, plain.actions, plain.propensities, pi, n_bootstrap=50)
    b = evaluate_policy(
        plain.rewards, plain.actions, plain.propensities, pi, n_bootstrap=50, continuation=np.ones(plain.n)
    )
    assert a.to_dict() == b.to_dict()


def _mutated(table: pa.Table, column: str, value) -> pa.Table:
    records = table.column("record").to_pylist()
    first = records.index("retry")
    values = table.column(column).to_pylist()
    values[first] = value
    return table.set_column(
        table.column_names.index(column), column, pa.array(values, table.schema.field(column).type)
    )


@pytest.fixture(scope="module")
def small_retry_log() -> pa.Table:
    explorer = EpsilonGreedyRoute(bound_policies(route="sr_cascade")["route"], 0.5)
    sc = load_scenario("default", {"retries": {"enabled": True}, "volume_scale": 0.05})
    policies = bound_policies()
    policies["route"] = explorer
    log = EventLog()
    PaymentWorld(sc, seed=0, policies=policies, days=0.25, log=log).run()
    return log.table()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("route_propensity", 0.0, "column route_propensity: 1 retry row"),
        ("retry_action", "wait", "column retry_action"),
        ("route_index", 99, "column route_index"),
        ("tx_id", 10**9, "is not a routed transaction"),
        ("route_propensity", None, "column route_propensity: 1 null"),
    ],
)
def test_malformed_retry_rows_are_refused_naming_the_column_and_transaction(
    small_retry_log, column, value, message
):
    read_logged_sequences(small_retry_log)  # the log as written reads
    with pytest.raises(PayrouteError, match=message):
        read_logged_sequences(_mutated(small_retry_log, column, value))


def test_the_review_values_a_bundle_on_a_retry_log_as_a_router_that_gives_up(tmp_path):
    pytest.importorskip("torch")  # the test bundle is exported from torch; the review itself never imports it
    import yaml

    from payroute.policies import load_bundle
    from tests.helpers.route_bundles import fee_router_bundle

    bundle = fee_router_bundle(-1.0, tmp_path / "cheap")
    log = tmp_path / "retries.parquet"
    args = ["simulate", "default", "--policy", "sr_cascade", "--retries", "--explore", "0.3", "--days", "0.1"]
    assert CliRunner().invoke(app, [*args, "--seed", "4", "--log", str(log), "--json"]).exit_code == 0
    cfg = tmp_path / "review.yaml"
    small = {"random_contexts": 200, "latency_decisions": 200, "latency_p99_ms": 60_000.0}
    cfg.write_text(yaml.safe_dump({"stress": {"enabled": False}, "constraints": small}))
    out = tmp_path / "summary.json"
    res = CliRunner().invoke(
        app, ["review", str(bundle), "--logs", str(log), "--config", str(cfg), "--json", str(out)]
    )
    assert res.exit_code in (0, 1), res.output
    ope = json.loads(out.read_text())["ope"]
    # the same numbers as the sequence estimator with the give-up default, one row per routed payment
    policy = load_bundle(bundle)
    seqs = read_logged_sequences(
        log, route_names=list(load_scenario("default").routes), observation_names=policy.feature_names
    )
    assert seqs.m > 0 and ope["diagnostics"]["n"] == seqs.n
    target = policy.action_probs(seqs.first.observations, seqs.first.masks)
    expected = evaluate_policy(
        seqs.first.rewards, seqs.first.actions, seqs.first.propensities, target, masks=seqs.first.masks,
        features=seqs.first.model_features, estimators=("ips",), n_bootstrap=0, continuation=continuation_weights(seqs),
    )  # fmt: skip
    naive = evaluate_policy(
        seqs.first.rewards,
        seqs.first.actions,
        seqs.first.propensities,
        target,
        estimators=("ips",),
        n_bootstrap=0,
    )
    assert ope["estimates"]["ips"]["value"] == pytest.approx(expected["ips"].value)
    assert expected["ips"].value != pytest.approx(naive["ips"].value)
    assert ope["logged_mean"]["value"] == pytest.approx(float(np.mean(seqs.first.rewards)))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_ips_with_the_continuation_is_trajectory_importance_sampling(data):
    from types import SimpleNamespace

    from payroute.policies.logs.sequences import LoggedSequences

    n = data.draw(st.integers(1, 12))
    prob = st.floats(0.05, 1.0)
    first_mu = np.array([data.draw(prob) for _ in range(n)])
    retries = [data.draw(st.integers(0, 3)) for _ in range(n)]
    payment = np.repeat(np.arange(n), retries).astype(np.int64)
    m = len(payment)
    mu = np.array([data.draw(prob) for _ in range(m)])
    pi = np.array([data.draw(st.sampled_from([0.0, 0.5, 1.0])) for _ in range(m)])
    kind = np.array(
        [data.draw(st.sampled_from(["give_up", "cascade", "later"])) for _ in range(m)], dtype=object
    )
    first = SimpleNamespace(n=n, propensities=first_mu)
    z = np.zeros(m, dtype=np.int64)
    seqs = LoggedSequences(first, payment, z, kind, z, np.zeros(m), mu, z, z, z, np.full(m, "", dtype=object))
    c = continuation_weights(seqs, pi)
    for i in range(n):
        mine = payment == i
        assert c[i] == pytest.approx(np.prod(pi[mine] / mu[mine]))
        assert seqs.sequence_propensities[i] == pytest.approx(first_mu[i] * np.prod(mu[mine]))
    # the default target (no retries): 1 for give up, 0 otherwise
    assert np.array_equal(give_up_probabilities(seqs), (kind == "give_up").astype(float))
    rewards = np.array([data.draw(st.floats(-500, 500)) for _ in range(n)])
    actions = np.zeros(n, dtype=np.int64)
    target = np.array([[data.draw(st.sampled_from([0.25, 1.0]))] for _ in range(n)])
    target = np.hstack([target, 1.0 - target])
    res = evaluate_policy(
        rewards, actions, first_mu, target, continuation=c, estimators=("ips",), n_bootstrap=0
    )
    trajectory = np.mean(target[:, 0] / first_mu * c * rewards)
    assert res["ips"].value == pytest.approx(trajectory, abs=1e-9)
    assert res.logged_mean.value == pytest.approx(np.mean(rewards), abs=1e-9)


def test_a_retry_log_kept_as_csv_reads_as_its_parquet(small_retry_log, tmp_path):
    import pyarrow.csv as pa_csv

    path = tmp_path / "retries.csv"
    pa_csv.write_csv(small_retry_log, path)
    from_csv, from_table = read_logged_sequences(path), read_logged_sequences(small_retry_log)
    assert from_csv.m == from_table.m > 0
    assert np.array_equal(from_csv.first.rewards, from_table.first.rewards)
    assert np.array_equal(from_csv.propensities, from_table.propensities)
    assert list(from_csv.merchant_advice) == list(from_table.merchant_advice)  # "03" stays text
    assert np.array_equal(continuation_weights(from_csv), continuation_weights(from_table))
