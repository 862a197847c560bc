"""The limits check of a continuous (treasury, fraud) bundle: what its network asks for, against what it may do.

A continuous bundle's graph outputs the action itself (the trained Gaussian's mean), one number per entry of
its card's ``actions``; the runtime clips it to the card's ``action_low``/``action_high`` (which
:func:`~payroute.policies.bundle.binding.check_bundle_fits_scenario` holds within the role's own limits: a
transfer of at most one target balance either way, an intraday credit line of at most the scenario's limit,
an attack intensity of at most ``fraud.max_intensity``, amounts within ``fraud.amount_multiplier_range``). The
world never sees more than that. This check binds the bundle into the review scenario, keeps every raw output,
and reports the share of decisions where the network asked for more than its limits (and so relied on the
clip), with the range of each entry. ``roles.max_clipped_share`` gates that share; null (the default) reports
it as a warning when it is not zero: a network at its bounds is normal for a Gaussian policy's mean, but a
reviewer should know that the limits, not the network, decided.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from payroute.envs.baselines import bound_policies
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.envs.world import PaymentWorld
from payroute.policies.bundle.binding import BoundPeriodBundle
from payroute.policies.bundle.runtime import BundlePolicy
from payroute.policies.review.checks import NOT_RUN, PASS, WARN, Check, status


def check_role_limits(
    policy: BundlePolicy,
    scenario: Scenario,
    *,
    seeds: list[int],
    days: float,
    volume: float,
    max_clipped_share: float | None = None,
) -> Check:
    """Bind ``policy`` into ``scenario`` (volume x ``volume``) on ``seeds``; the share of its decisions whose
    raw action leaves the card's bounds."""
    sc = load_scenario(scenario, {"volume_scale": scenario.volume_scale * volume})
    bound = BoundPeriodBundle(policy, keep_raw=True)
    for seed in seeds:
        policies = bound_policies()
        policies[policy.decision_kind] = bound
        PaymentWorld(sc, seed=seed, policies=policies, days=days).run()
    if not bound.raw:
        return Check("constraints", "role_limits", NOT_RUN, f"scenario {sc.name!r} asked for no decisions")
    raw = np.stack(bound.raw)
    outside = (raw < bound.low - 1e-6) | (raw > bound.high + 1e-6)
    share = float(outside.any(axis=1).mean())
    entries = {
        name: {"min": float(raw[:, i].min()), "max": float(raw[:, i].max()), "low": float(bound.low[i]),
               "high": float(bound.high[i]), "clipped_share": float(outside[:, i].mean())}
        for i, name in enumerate(policy.action_names)
    }  # fmt: skip
    worst = max(entries, key=lambda n: entries[n]["clipped_share"])
    said = f"over {len(raw):,} {policy.decision_kind} decisions in {sc.name!r} the network's raw action "
    if share == 0:
        summary = said + "stayed within its declared limits on every entry"
    else:
        e = entries[worst]
        summary = (
            said + f"left its limits on {share:.1%} of decisions and was clipped (most often {worst}: "
            f"asked for [{e['min']:.3g}, {e['max']:.3g}], allowed [{e['low']:g}, {e['high']:g}])"
        )
    if max_clipped_share is None:
        state = PASS if share == 0 else WARN
    else:
        state = status(share <= max_clipped_share)
        summary += f"; allowed {max_clipped_share:.1%}"
    details: dict[str, Any] = {"decisions": len(raw), "entries": entries, "seeds": seeds}
    return Check("constraints", "role_limits", state, summary, share, max_clipped_share, details)


__all__ = ["check_role_limits"]
