"""Every role in the stress worlds: price, treasury and fraud-side bundles run against their references on
common random numbers, each gated on what that role answers for, with a champion when given."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from payroute.envs.scenarios import load_scenario
from payroute.errors import ConfigError, PayrouteError
from payroute.experiments.cli import app
from payroute.policies import load_bundle
from payroute.policies.bundle.binding import check_bundle_fits_scenario
from payroute.policies.review import load_review_config
from payroute.policies.review.checks import FAIL, PASS
from payroute.policies.review.roles import RoleReviewConfig, role_checks, run_role_stress
from payroute.policies.review.stress import StressConfig

pytest.importorskip("torch")  # the test bundles are exported from torch; the review itself never imports it
from tests.helpers.role_bundles import (  # noqa: E402
    fraud_bundle,
    price_level_bundle,
    treasury_bundle,
)

SMALL = {"seeds": 2, "volume_multiplier": 0.02, "workers": 1}
CONSTRAINTS = {"random_contexts": 200, "latency_decisions": 200, "latency_p99_ms": 60_000.0,
               "simulated": {"volume_multiplier": 0.02}}  # fmt: skip


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("role_bundles")
    return {
        "list_price": price_level_bundle(1.0, root / "list_price"),
        "premium": price_level_bundle(1.3, root / "premium"),
        "sweep": treasury_bundle(-1.0, 0.0, root / "sweep"),
        "scripted": fraud_bundle(1.0, root / "scripted"),
        "dormant": fraud_bundle(0.0, root / "dormant"),
    }


def _stress(**changes) -> StressConfig:
    return StressConfig(**{**SMALL, **changes})


def _by_name(checks) -> dict[str, object]:
    return {c.name: c for c in checks}


def test_a_price_bundle_that_always_charges_list_price_is_static_pricing_to_the_cent(bundles):
    result = run_role_stress(bundles["list_price"], _stress(scenarios=["fee_hike"]))
    row = result.comparison("fee_hike", "static_pricing")
    for metric in ("margin_per_tx_usd", "approval_rate", "abandon_rate", "revenue_usd"):
        assert row[f"{metric}_diff"] == 0.0 and row[f"{metric}_low"] == row[f"{metric}_high"] == 0.0
    assert result.best["fee_hike"] == "static_pricing"  # cost_plus earns less on list-price demand
    checks = _by_name(role_checks(result))
    assert set(checks) == {f"{g} vs best: fee_hike" for g in ("profit", "approval", "abandonment")}
    assert all(c.status == PASS for c in checks.values())


def test_a_price_bundle_is_gated_on_abandonment_too(bundles):
    # thirty percent over list earns more per payment, but more payers walk away: a tight abandonment gate fails
    roles = RoleReviewConfig(price={"max_abandon_diff_vs_best": 0.001})
    result = run_role_stress(bundles["premium"], _stress(scenarios=["fee_hike"]), roles)
    checks = _by_name(role_checks(result, "none"))  # each gate on its own (two seeds are too few for Holm)
    assert checks["profit vs best: fee_hike"].status == PASS
    abandon = checks["abandonment vs best: fee_hike"]
    assert abandon.status == FAIL and abandon.details["mean"] > 0.001
    # two seeds: the mean fails, the interval (one degree of freedom) still reaches the gate; the check says so
    assert abandon.details["low"] < 0.001 < abandon.details["mean"]
    assert (
        "the upper bound is past the allowed +0.10 points: more seeds would not change this"
        in abandon.summary
    )
    assert abandon.details["gate"]["more_seeds_help"] is False


def test_a_treasury_bundle_that_sweeps_the_accounts_fails_on_failed_payouts(bundles):
    result = run_role_stress(bundles["sweep"], _stress(scenarios=["liquidity_crunch"]))
    assert set(result.comparisons.reference) == {"target_balance", "hold"}
    checks = _by_name(role_checks(result))
    failed = checks["failed payouts vs best: liquidity_crunch"]
    assert failed.status == FAIL and failed.details["low"] > 0.5  # more failures on every seed
    assert failed.details["reference"] in ("target_balance", "hold")
    assert "per 1,000 payments" in failed.summary
    assert "the upper bound is past the allowed +0.50: more seeds would not change this" in failed.summary
    runs = result.runs[result.runs.scenario == "liquidity_crunch"]
    swept = runs[runs.policy == "candidate"].failed_payouts_per_1k
    topped_up = runs[runs.policy == "target_balance"].failed_payouts_per_1k
    assert (swept.to_numpy() > topped_up.to_numpy()).all()


def test_a_fraud_bundle_that_plays_the_scripted_mix_inflicts_exactly_the_scripted_loss(bundles):
    result = run_role_stress(bundles["scripted"], _stress(scenarios=["fraud_surge"]))
    assert result.groups == ["fraud_surge / threshold", "fraud_surge / card_blocker"]
    for group in result.groups:
        row = result.comparison(group, "scripted_fraud")
        for metric in ("fraud_loss_per_tx_usd", "fraudster_net_usd", "fraud_attempts"):
            assert row[f"{metric}_diff"] == 0.0
    checks = role_checks(result)
    assert [c.status for c in checks] == [PASS, PASS]
    # the shipped card blocker stops more of the same attacks than the threshold desk
    loss = result.runs.groupby("defense").fraud_loss_usd.mean()
    assert loss["card_blocker"] < loss["threshold"]


def test_the_role_gates_are_one_family_under_holm(bundles):
    """Three gates on one scenario: Holm takes the first (smallest p-value) at a third of the level, so its bound
    is below the unadjusted one; with ``none`` every bound is the unadjusted interval's."""
    result = run_role_stress(bundles["list_price"], _stress(scenarios=["fee_hike", "fraud_surge"]))
    holm = role_checks(result)
    plain = role_checks(result, "none")
    assert [c.name for c in holm] == [c.name for c in plain] and len(holm) == 6
    assert {c.details["gate"]["family_size"] for c in holm} == {6}
    for h, p in zip(holm, plain, strict=True):
        sign = 1 if h.name.startswith(("profit", "approval")) else -1
        assert p.value == (p.details["low"] if sign > 0 else p.details["high"])
        assert sign * h.value <= sign * p.value + 1e-12  # adjusted bounds are never tighter


def test_a_dormant_fraud_bundle_is_no_adversary_and_fails(bundles):
    result = run_role_stress(
        bundles["dormant"],
        _stress(scenarios=["fraud_surge"]),
        RoleReviewConfig(fraud={"defenses": ["threshold"]}),
    )
    (check,) = role_checks(result)
    assert check.name == "loss inflicted vs strongest: fraud_surge / threshold"
    assert check.status == FAIL and check.details["mean"] < -0.05  # a real failure, not the width
    assert (
        "more seeds would not change this" in check.summary
        and check.details["gate"]["more_seeds_help"] is False
    )
    cand = result.runs[result.runs.policy == "candidate"]
    assert (cand.fraud_attempts == 0).all() and (cand.fraud_loss_usd == 0).all()


def test_the_champion_joins_the_references_and_must_be_matched(bundles):
    result = run_role_stress(
        bundles["list_price"], _stress(scenarios=["fee_hike"]), champion=bundles["premium"]
    )
    assert result.best["fee_hike"] == "champion"  # thirty percent over list earns more than list price
    checks = _by_name(role_checks(result))
    profit = checks["profit vs best: fee_hike"]
    assert profit.status == FAIL and profit.details["reference"] == "champion"
    assert "the champion" in profit.summary
    with pytest.raises(PayrouteError, match="champion .* decides 'fraud'; the candidate decides 'price'"):
        run_role_stress(bundles["list_price"], _stress(scenarios=["fee_hike"]), champion=bundles["scripted"])


def test_a_continuous_bundle_must_fit_its_role(bundles, tmp_path):
    from payroute.experiments.onnx_export import export_torch_policy

    policy = load_bundle(bundles["sweep"])
    check_bundle_fits_scenario(policy, load_scenario("liquidity_crunch"))  # fits
    card = policy.card.model_dump(exclude={"io", "bundle_schema_version", "parity"})
    card["action_high"] = [5.0] * len(card["actions"])  # claims transfers of five targets
    import torch

    wide = export_torch_policy(torch.nn.Linear(policy.obs_dim, policy.n_actions), policy.obs_dim,
                               policy.n_actions, card, tmp_path / "wide")  # fmt: skip
    with pytest.raises(PayrouteError, match=r"action bounds wider than the role's: transfer\[rtp_prefund\]"):
        check_bundle_fits_scenario(load_bundle(wide), load_scenario("default"))
    card.pop("action_high")
    with pytest.raises(PayrouteError, match="both action_low and action_high, or neither"):
        export_torch_policy(torch.nn.Linear(policy.obs_dim, policy.n_actions), policy.obs_dim,
                            policy.n_actions, card, tmp_path / "half")  # fmt: skip


def test_role_gates_are_configured_with_defaults_and_refuse_unknown_fields(tmp_path):
    cfg = tmp_path / "review.yaml"
    cfg.write_text("roles:\n  treasury:\n    max_failed_payouts_diff_per_1k: 2\n")
    config = load_review_config(cfg)
    assert config.roles.treasury.max_failed_payouts_diff_per_1k == 2
    assert config.roles.price == RoleReviewConfig().price
    cfg.write_text("roles:\n  fraud:\n    defences: [threshold]\n")
    with pytest.raises(ConfigError, match=r"roles\.fraud\.defences.*unknown field"):
        load_review_config(cfg)


@pytest.mark.slow
def test_payroute_review_runs_a_treasury_bundle_in_the_stress_worlds_and_files_the_role_gates(
    bundles, tmp_path
):
    cfg = tmp_path / "review.yaml"
    cfg.write_text(yaml.safe_dump({"stress": {**SMALL, "scenarios": ["liquidity_crunch"]},
                                   "constraints": CONSTRAINTS}))  # fmt: skip
    html, js = tmp_path / "report.html", tmp_path / "summary.json"
    res = CliRunner().invoke(
        app, ["review", str(bundles["sweep"]), "--config", str(cfg), "--report", str(html), "--json", str(js)]
    )
    assert res.exit_code == 1, res.output
    summary = json.loads(js.read_text())
    statuses = {c["name"]: c["status"] for c in summary["checks"]}
    assert statuses["observation_schema"] == statuses["bundle"] == PASS
    assert statuses["failed payouts vs best: liquidity_crunch"] == FAIL
    assert statuses["malformed_inputs"] == PASS
    roles = summary["roles"]
    assert roles["kind"] == "treasury" and roles["best_reference"]["liquidity_crunch"] in (
        "target_balance",
        "hold",
    )
    assert {m["policy"] for m in roles["means"]} == {"candidate", "target_balance", "hold"}
    assert np.isfinite([c["failed_payouts_per_1k_low"] for c in roles["comparisons"]]).all()
    text = html.read_text()
    assert "Treasury in the stress worlds" in text and "failed payouts" in text
    assert "data:image/png;base64," in text


def test_constraints_of_a_continuous_bundle_check_its_limits(bundles, tmp_path):
    from payroute.policies.review.checks import WARN
    from payroute.policies.review.role_limits import check_role_limits

    scenario = load_scenario("liquidity_crunch")
    sweep = load_bundle(bundles["sweep"])  # -1 and 0: on the role's bounds
    check = check_role_limits(sweep, scenario, seeds=[0], days=0.25, volume=0.02)
    assert check.status == PASS and check.details["decisions"] > 0 and check.value == 0.0
    # a network asking for three target balances each period leans on the clip: a warning, or a failure when gated
    greedy = load_bundle(treasury_bundle(3.0, 0.5, tmp_path / "greedy"))
    warned = check_role_limits(greedy, scenario, seeds=[0], days=0.25, volume=0.02)
    assert warned.status == WARN and warned.value == 1.0
    assert "left its limits on 100.0% of decisions" in warned.summary
    assert "transfer[rtp_prefund]: asked for [3, 3], allowed [-1, 1]" in warned.summary
    gated = check_role_limits(greedy, scenario, seeds=[0], days=0.25, volume=0.02, max_clipped_share=0.1)
    assert gated.status == FAIL and gated.threshold == 0.1


@pytest.mark.parametrize("name", ["sweep", "scripted"])
def test_a_champion_identical_to_the_challenger_differs_by_exactly_nothing(bundles, name):
    scenario = "liquidity_crunch" if name == "sweep" else "fraud_surge"
    result = run_role_stress(
        bundles[name], _stress(scenarios=[scenario]), RoleReviewConfig(fraud={"defenses": ["threshold"]}),
        champion=bundles[name],
    )  # fmt: skip
    for group in result.groups:
        row = result.comparison(group, "champion")
        diffs = [row[c] for c in result.comparisons.columns if c.endswith(("_diff", "_low", "_high"))]
        assert diffs and all(d == 0.0 for d in diffs)
