"""The calibration round trip: a world logged under exploration and fitted from its log alone gives the decisions
the world itself would have wanted (docs/calibration_roundtrip.md; the full study is
``python -m payroute.benchmarks.calibration_roundtrip``).

Small volume (a tenth of default's) and few seeds: the pairs of routers compared are the ones whose difference
in the truth is clearly not zero (its paired 95% interval excludes zero) and at least what a log can settle
(``RESOLVABLE``: 3 cents a payment, 2 points of approval; a route's approval drifts, so closer pairs can be
ordered either way by a faithful fit).
"""

from __future__ import annotations

import pytest

from payroute.experiments.studies import calibration_roundtrip as rt
from tests.helpers.calibration import coverage

VOLUME = 0.1
ROUTERS = ("cheapest", "priority", "success_rate")


@pytest.fixture(scope="module")
def shifted():
    truth = rt.truth_scenario("shifted", VOLUME)
    return truth, rt.fit_truth(truth, days=7)


@pytest.mark.parametrize("name", rt.TRUTHS)
def test_a_shipped_truth_is_recovered_within_the_fitted_intervals(name, shifted):
    truth = rt.truth_scenario(name, VOLUME)
    cal = shifted[1] if name == "shifted" else rt.fit_truth(truth, days=7)
    inside, total, missed = coverage(cal.provenance["values"], truth)
    assert total >= 90, f"only {total} values carry an interval"
    assert inside / total >= 0.9, f"{inside}/{total} inside their intervals; outside: {missed}"
    recovered = rt.recovery(cal, truth)
    changed = recovered[
        recovered.path.str.contains("card_alpha.approval.by_segment|card_beta.fee|segment_mix")
    ]
    assert changed.inside.mean() >= 0.8  # what shifted changed from default is found
    distances = rt.profile_distances(cal.scenario, truth)
    assert distances["intraday_tv"] < 0.03 and distances["weekly_tv"] < 0.05  # seven days: the week is fitted
    if truth.incidents:  # the outage shows as failing hours on card_alpha, and is not in the fitted world
        assert cal.provenance["failure_hours"].get("card_alpha", 0) >= 3
        assert not cal.scenario.incidents


@pytest.mark.slow
def test_clear_decisions_on_the_truth_keep_their_sign_on_the_fitted_world_and_not_on_default(shifted):
    truth, cal = shifted
    policies = (*ROUTERS, *rt.routers()[-1:])  # and the zoo router, bound from its bundle
    assert policies[-1].name == rt.ZOO_ROUTER
    decisions = rt.decide(rt.worlds_for(truth, {"7d": cal.scenario}), policies, seeds=4)
    fitted, base = rt.pair_signs(decisions, "fitted 7d"), rt.pair_signs(decisions, "base")
    clear = fitted[fitted.resolvable]
    assert len(clear) >= 6, clear  # of the 12 pairs (6 by margin, 6 by approval)
    flipped = clear[~clear.agree]
    assert flipped.empty, f"signs that do not transfer: {flipped[['metric', 'a', 'b', 'truth_diff', 'diff']]}"
    # the test has teeth: default (a fit that learned nothing) gets some of the same decisions wrong
    assert not base[base.resolvable].agree.all()
    ranks = rt.rankings(decisions)
    margin_clear = clear[clear.metric == "margin_per_tx_usd"]
    for r in margin_clear.itertuples():  # the ranking of every clear pair is the truth's
        better, worse = (r.a, r.b) if r.truth_diff > 0 else (r.b, r.a)
        assert ranks.loc[better, "fitted 7d"] < ranks.loc[worse, "fitted 7d"]


def test_a_truth_with_incidents_is_also_compared_with_them_stated_on_the_fitted_world():
    truth = rt.truth_scenario("outage", VOLUME)
    fitted = rt.truth_scenario("shifted", VOLUME)  # any scenario without incidents
    worlds = rt.worlds_for(truth, {"1d": fitted}, base=False)
    assert list(worlds) == ["truth", "fitted 1d", "fitted 1d + incidents"]
    assert worlds["fitted 1d + incidents"].incidents == truth.incidents
    assert not worlds["fitted 1d"].incidents


@pytest.mark.slow
def test_the_calibrated_default_matches_default_under_every_routing_baseline():
    """Calibrating from logs of ``default`` gives a world whose KPIs under every routing baseline match default's
    within the paired intervals. Each seed's fitted world comes from its own one-day log (eight independent
    logs), so the interval holds which log was drawn as well as the evaluation day; half-day evaluations. The
    claim is about every baseline and KPI at once, so the intervals hold together (Bonferroni over the family)."""
    truth = rt.truth_scenario("default", VOLUME)
    fits = rt.replicate_fits(truth, days=1, replicates=8)
    decisions = rt.decide({"truth": truth, "fitted": fits}, rt.routers(zoo_router=False), seeds=8, days=0.5)
    each = rt.kpi_agreement(decisions, "fitted")
    each = each[each.metric.isin(rt.METRICS)]
    assert set(each.policy) == set(rt.ROUTING_BASELINE_ORDER)
    table = rt.kpi_agreement(decisions, "fitted", confidence=1 - 0.05 / len(each))
    table = table[table.metric.isin(rt.METRICS)]
    apart = table[~table.consistent]
    assert apart.empty, (
        f"KPIs the fitted default does not match: {apart[['policy', 'metric', 'diff', 'low', 'high']]}"
    )
    approval = each[each.metric == "approval_rate"]
    assert (approval.high - approval.low).max() < 0.06  # intervals that could miss: approval to a few points
