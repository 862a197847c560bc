"""The statistics of a whole review: a route bundle reviewed on a log gets family-wise stress gates (adjusted bound
beside the unadjusted interval, in the JSON and the report), a high-confidence OPE bound, the fraud-loss tail and
a covariate-shift check, and the report shows them."""

from __future__ import annotations

import json

import pytest

from payroute.policies.review import load_review_config, review_bundle
from payroute.policies.review.report import render_html
from tests.helpers.route_bundles import fee_router_bundle
from tests.helpers.worlds import write_exploration_log

pytest.importorskip("torch")  # the test bundle is exported from torch; the review itself never imports it


def test_a_review_on_a_log_reports_family_wise_gates_the_hcope_bound_the_tail_and_the_shift(tmp_path):
    bundle = fee_router_bundle(-1.0, tmp_path / "cheap")  # routes like `cheapest`, the logger's greedy choice
    log = write_exploration_log(tmp_path / "log.parquet", seed=7)
    cfg = load_review_config().model_copy(deep=True)
    stress = cfg.stress.model_copy(
        update={"scenarios": ["processor_outage", "fee_hike"], "baselines": ["cheapest", "fastest"],
                "include_oracle": False, "seeds": 3, "volume_multiplier": 0.02, "workers": 1}
    )  # fmt: skip
    constraints = cfg.constraints.model_copy(
        update={"random_contexts": 200, "latency_decisions": 200, "latency_p99_ms": 60_000.0,
                "simulated": cfg.constraints.simulated.model_copy(update={"volume_multiplier": 0.02})}
    )  # fmt: skip
    ope = cfg.ope.model_copy(update={"min_hcope_lower_bound_vs_logged_cents": -1e9})  # a gate it cannot miss
    cfg = cfg.model_copy(update={"stress": stress, "constraints": constraints, "ope": ope})
    result = review_bundle(bundle, logs=log, config=cfg)
    summary = json.loads(json.dumps(result.to_dict(), allow_nan=False))

    gated = [c for c in summary["checks"] if c["section"] == "stress"]
    assert len(gated) == 4  # two scenarios x margin and approval: one family
    for c in gated:
        d = c["details"]
        assert d["multiplicity"] == "holm" and d["family_size"] == 4
        assert d["unadjusted_low"] == d["low"] and d["unadjusted_high"] == d["high"]
        assert c["value"] == d["adjusted_low"] and d["adjusted_low"] <= d["low"] + 1e-12
        assert (c["status"] == "pass") == (d["adjusted_low"] >= c["threshold"])
        assert c["status"] == "pass" or d["more_seeds_help"] is not None
    hcope = summary["ope"]["hcope"]
    assert hcope["lower_bound"] <= summary["ope"]["estimates"]["ips"]["value"]
    assert hcope["n_bound"] + hcope["n_holdout"] == summary["ope"]["diagnostics"]["n"]
    statuses = {c["name"]: c["status"] for c in summary["checks"]}
    assert statuses["high-confidence bound vs logged"] == "pass"
    tail = summary["ope"]["tail"]
    assert tail["days_in_log"] == 1 and tail["bundle_cvar"] >= tail["bundle_var"] >= 0
    shift = next(c for c in summary["checks"] if c["section"] == "shift")
    assert shift["status"] in ("pass", "warn") and 0.0 <= shift["details"]["domain_auc"] <= 1.0
    assert [f["feature"] for f in shift["details"]["features"]] == [
        o["name"] for o in result.card["observation"]
    ]

    page = render_html(result)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert "<h2>Statistics</h2>" in page and "Stress gates, family-wise" in page
    assert "Holm&#x27;s step-down procedure over all 4 stress comparisons" in page
    assert "high-confidence bound and fraud-loss tail" in page and "Covariate shift" in page
