"""The review report a person reads: verdict and three facts first, failed gates linked to their evidence, the
card's training and evaluation as tables and plots, timings per scenario, one line to add a section, and a page
that does not grow with the seeds."""

from __future__ import annotations

import re

import pytest

from payroute.policies.review import ReviewConfig
from payroute.policies.review import report as report_module
from payroute.policies.review.checks import FAIL, NOT_RUN, PASS, Check
from payroute.policies.review.pipeline import ReviewResult
from payroute.policies.review.report import gate_margin, is_width_failure, render_html, worst_gate
from payroute.policies.review.report_html import evidence_id
from tests.helpers.review_results import ZOO_ROUTER, synthetic_review, zoo_card

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def failing():
    """200 seeds; the bundle loses 0.30 USD a transaction on fraud_surge: one real failure."""
    result = synthetic_review(200, {"fraud_surge": -0.30})
    return result, render_html(result)


def ids(page: str) -> set[str]:
    return set(re.findall(r"id='([^']+)'", page))


def test_the_page_opens_with_the_verdict_then_the_three_facts_then_the_failed_gates(failing):
    result, page = failing
    order = [
        page.index("<h1>"),
        page.index("class='verdict fail'>FAIL: 1 of 11 checks failed"),
        page.index("What it decides"),
        page.index("Worst gate"),
        page.index("Width or real"),
        page.index("Why it failed"),
        page.index("All checks"),
        page.index("Integrity and model card"),
        page.index("Stress suite"),
        page.index("Review config"),
    ]
    assert order == sorted(order)
    facts = page[page.index("class='facts'") : page.index("Why it failed")]
    # what it decides and what it was trained on, from the card
    assert "<b>route</b> policy choosing among 10 actions" in facts
    assert (
        "trained on default (2), fraud_surge (1), processor_outage (1), volume 0.1, 4,839,024 env steps"
        in facts
    )
    # the worst gate and its margin, in the gate's unit
    worst = result.failed[0]
    assert worst.name == "margin vs best: fraud_surge"
    assert (
        f"measured {worst.value:.4g} against -0.05, {abs(worst.value + 0.05):.4g} short of the threshold"
        in facts
    )
    assert "The failure is real: the estimate itself is past the gate" in facts


def test_every_failed_gate_links_to_its_evidence_on_the_page(failing):
    result, page = failing
    anchors = ids(page)
    links = re.findall(r"<li><a href='#([^']+)'><b>([^<]+)</b>", page)
    assert [name for _, name in links] == [f"{c.section} / {c.name}" for c in result.failed]
    for target, _ in links:
        assert target in anchors
    assert links[0][0] == evidence_id("stress", "fraud_surge") == "ev-stress-fraud_surge"
    # the anchor is the scenario's own part of the stress section, with its intervals and timings
    part = page[page.index("id='ev-stress-fraud_surge'") : page.index("id='ev-stress-liquidity_crunch'")]
    assert "cheapest (best)" in part and "Timing drawn per seed: 200 seeds" in part
    # every row of the checks table links to evidence that exists
    for target in re.findall(r"<a href='#([^']+)'>evidence</a>", page):
        assert target in anchors


def test_the_card_s_training_and_evaluation_are_tables_and_plots_not_dictionary_dumps(failing):
    _result, page = failing
    card = page[page.index("Integrity and model card") : page.index("Stress suite")]
    assert "{'" not in card and "[[" not in card  # no Python reprs of the card's dictionaries and curves
    training = card[card.index(">Training</h3>") : card.index("Evaluation on the card")]
    assert "<td>trainer</td><td>rllib/PPO</td>" in training and "<td>stop_reason</td>" in training
    assert "alt='training curve'" in training and "Last logged scalars" in training
    assert "<td>kpi/margin_per_tx_usd</td><td class='num'>1.162</td>" in training
    evaluation = card[card.index("Evaluation on the card") :]
    assert "<th>Δ margin/tx $ vs cheapest [CI]</th>" in evaluation
    assert (
        "<td>trained</td><td>default</td><td class='num'>1.124</td><td>+0.0816 [+0.0558, +0.1074]</td>"
        in evaluation
    )
    assert "alt='card evaluation intervals'" in evaluation
    assert "<td>seeds</td><td>20 values, 4100000000 … 4100000019</td>" in evaluation
    # every plot on the page is an embedded PNG
    assert len(re.findall(r"<img alt='[^']+' src='data:image/png;base64,", page)) == page.count("<img") >= 3


def test_the_timings_that_ran_are_counted_per_scenario(failing):
    _result, page = failing
    outage = page[page.index("id='ev-stress-processor_outage'") : page.index("id='ev-stress-fraud_surge'")]
    words = re.search(
        r"Timing drawn per seed: 200 seeds on (\d+) date\(s\)[^<]*by weekday ([^;]+); card_alpha down from ([^<]+)\.",
        outage,
    )
    assert words, outage[:800]
    weekdays = dict(re.findall(r"(\w+) (\d+)", words.group(2)))
    assert list(weekdays) == ["mon", "tue", "wed", "thu", "fri"] and sum(map(int, weekdays.values())) == 200
    starts = dict(re.findall(r"(\d\d:\d\d) (\d+)", words.group(3)))
    assert len(starts) == 11 and sum(map(int, starts.values())) == 200
    assert (
        "200 seeds on 1 date(s), 2026-11-27 (the scenario's own date)" in page
    )  # holiday_peak keeps Black Friday


def test_a_200_seed_report_is_the_size_of_a_5_seed_one_and_under_a_megabyte(failing):
    _result, page = failing
    small = render_html(synthetic_review(5, {"fraud_surge": -0.30}))
    size, small_size = len(page.encode()), len(small.encode())
    assert size < 1_000_000, size
    assert size < 1.25 * small_size, (size, small_size)


def gate(status: str, value: float, threshold: float, **details) -> Check:
    return Check("stress", f"g{value}", status, "", value, threshold, details)


def test_gate_margins_read_the_direction_from_the_status_and_width_failures_are_told_from_real_ones():
    assert gate_margin(gate(PASS, 0.5, 0.0)) == 0.5  # at least: +0.5 above
    assert gate_margin(gate(FAIL, -0.1, 0.0)) == -0.1
    assert gate_margin(gate(PASS, 1.0, 2.0)) == 1.0  # at most (a latency): 1.0 under the budget
    assert gate_margin(gate(FAIL, 3.0, 2.0)) == -1.0
    assert gate_margin(gate(NOT_RUN, 3.0, 2.0)) is None and gate_margin(Check("s", "n", PASS, "")) is None
    wide = gate(
        FAIL, -0.08, -0.05, mean=-0.01, low=-0.08, high=0.06
    )  # the estimate passes; the bound does not
    real = gate(FAIL, -0.30, -0.05, mean=-0.25, low=-0.30, high=-0.20)
    assert is_width_failure(wide) and not is_width_failure(real)
    assert not is_width_failure(gate(PASS, 0.1, 0.0, mean=0.2, low=0.1, high=0.3))
    assert is_width_failure(gate(FAIL, 9.0, 1.0, width_failure=True))  # a gate may say so itself
    weight = Check("ope", "mean importance weight", PASS, "", 1.14, 0.25, {"margin": 0.11})
    assert gate_margin(weight) == 0.11  # value and threshold not comparable: the check says its margin
    # the worst gate: failures first, then by shortfall relative to the interval's width
    assert worst_gate([gate(PASS, 0.01, 0.0), wide, real]) is real
    assert (
        worst_gate(
            [gate(PASS, 0.30, 0.0, low=0.3, high=0.5), gate(PASS, 0.02, 0.0, low=0.02, high=1.0)]
        ).value
        == 0.02
    )


def result_with(checks: list[Check]) -> ReviewResult:
    return ReviewResult("router", str(ZOO_ROUTER), zoo_card(), "default", ReviewConfig(), checks)


def test_the_facts_say_when_more_seeds_could_change_the_verdict():
    wide = Check(
        "stress",
        "margin vs best: fee_hike",
        FAIL,
        "too wide",
        -0.08,
        -0.05,
        {"mean": -0.01, "low": -0.08, "high": 0.06},
    )
    real = Check(
        "stress",
        "margin vs best: fraud_surge",
        FAIL,
        "worse",
        -0.3,
        -0.05,
        {"mean": -0.25, "low": -0.3, "high": -0.2},
    )
    page = render_html(result_with([wide]))
    assert "The failure is a width failure" in page and "(width failure)" in page
    page = render_html(result_with([wide, real]))
    assert "1 of 2 failures are width failures (more seeds could turn them); the other 1 real" in page
    assert "No failures: nothing for more seeds to change." in render_html(result_with([]))


def test_a_section_is_added_with_one_line_and_its_failed_gates_link_to_it(monkeypatch):
    def shadow_section(result):
        return [
            f"<h2 id='{evidence_id('shadow')}'>Shadow replay</h2>",
            f"<p id='{evidence_id('shadow', 'agreement')}'>91%</p>",
        ]

    monkeypatch.setattr(report_module, "SECTIONS", [*report_module.SECTIONS, shadow_section])
    checks = [
        Check("shadow", "agreement", FAIL, "91% agreement"),
        Check("shadow", "flows", FAIL, "too much to fednow"),
        Check("elsewhere", "x", FAIL, "no section of its own"),
    ]
    page = render_html(result_with(checks))
    assert "Shadow replay" in page
    links = re.findall(r"<li><a href='#([^']+)'>", page)
    assert links == ["ev-shadow-agreement", "section-shadow", "check-elsewhere-x"]
    assert set(links) <= ids(page)
