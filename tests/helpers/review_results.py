"""A synthetic review result: the zoo router's card, a stress suite of any number of seeds (KPIs drawn from a
seeded generator, compared and gated by the real code), for testing the report without running worlds."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from payroute.envs.scenarios import load_scenario
from payroute.envs.scenarios.timings import draw_timing
from payroute.policies.bundle.loading import load_bundle
from payroute.policies.review import ReviewConfig
from payroute.policies.review.card import card_record
from payroute.policies.review.checks import PASS, Check
from payroute.policies.review.pipeline import ReviewResult, stress_checks
from payroute.policies.review.stress import STRESS_SCENARIOS, _compare

ZOO_ROUTER = Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router"
REFERENCES = ("cheapest", "fastest", "priority", "success_rate", "cost_aware", "thompson", "ucb")


@functools.cache
def zoo_card() -> dict:
    """The zoo router's card as the review keeps it (:func:`card_record` of the verified bundle's card)."""
    return card_record(load_bundle(ZOO_ROUTER).card)


def synthetic_review(seeds: int = 200, shift: dict[str, float] | None = None, seed: int = 0) -> ReviewResult:
    """A review of the zoo router's card with a stress suite on ``seeds`` seeds of every stress scenario.

    The candidate's margin is the cheapest route's plus ``shift[scenario]`` (default +0.05 USD) plus noise;
    the references are noisy copies of the cheapest route. Timings are drawn as the suite draws them."""
    shift = shift or {}
    cfg = ReviewConfig.model_validate({"stress": {"seeds": seeds}})
    rng = np.random.default_rng(seed)
    rows, timings = [], []
    for scenario in STRESS_SCENARIOS:
        sc = load_scenario(scenario)
        for s in range(seeds):
            timings.append(draw_timing(sc, s, 1.0, cfg.stress.timings)[1])
            base = 0.8 + 0.2 * rng.standard_normal()
            arms = {
                "candidate": ("candidate", base + shift.get(scenario, 0.05) + 0.05 * rng.standard_normal())
            }
            arms |= {
                r: ("baseline", base + 0.05 * rng.standard_normal() - 0.02 * i)
                for i, r in enumerate(REFERENCES)
            }
            arms["oracle"] = ("oracle", base + 0.3)
            for policy, (role, margin) in arms.items():
                rows.append(
                    {"scenario": scenario, "policy": policy, "role": role, "seed": s,
                     "margin_per_tx_usd": margin, "approval_rate": 0.85 + 0.01 * rng.standard_normal(),
                     "route_cost_bps": 36.0, "fraud_loss_bps": 9.0, "sla_misses": 100.0,
                     "liquidity_cost_usd": 700.0, "arrivals": 10_000, "wall_s": 1.0, "error": ""}
                )  # fmt: skip
    stress = _compare(pd.DataFrame(rows), "router", cfg.stress)
    stress.timings = timings
    checks = [
        Check("integrity", "bundle", PASS, "checksums and schema verified"),
        *stress_checks(stress, cfg.stress),
    ]
    return ReviewResult(
        "router", str(ZOO_ROUTER), zoo_card(), "default", cfg, checks, stress=stress,
        signature={"says": "unsigned", "claims": "unsigned claims (nobody vouches for them)"},
    )  # fmt: skip
