"""Fraudsters: who attacks, with which pattern, and when their losses surface.

Four patterns (the scenario's ``fraud.patterns``):

* **card testing** — bursts of tiny card authorizations to find live card numbers; each one that
  goes through comes back as a chargeback (amount plus a chargeback fee).
* **account takeover** — a criminal logs in as a real customer and pays with their stored card or bank
  balance; an unauthorised payment the customer disputes (card chargeback, ACH return, or reimbursement).
* **authorised push-payment (APP) scams** — the real customer is tricked into sending an instant payment;
  on irrevocable rails the money is gone and the PSP reimburses its share when the scam is reported.
* **mule cash-out** — laundering through payouts to mule accounts, domestic and cross-border.

Each pattern attacks as a Poisson stream whose hourly rate is the scenario's ``attacks_per_day / 24``
times the intensity the ``fraud`` decision sets (1.0 for the scripted fraudster). Losses surface after a
lognormal discovery delay; on revocable rails within their return window some are recovered.
"""

from __future__ import annotations

import numpy as np

from payroute.envs.scenarios.schema import FRAUD_PATTERNS, FraudPatternSpec, Scenario
from payroute.envs.world.clock import DAY_S, HOUR_S
from payroute.envs.world.demand import TransactionFactory

MAX_DISCOVERY_S = 180 * DAY_S


class FraudStreams:
    """Draws each hour's fraudulent transactions, pattern by pattern, from the fraud generator."""

    def __init__(self, scenario: Scenario, factory: TransactionFactory) -> None:
        self.scenario = scenario
        self.factory = factory
        self.patterns: list[tuple[str, FraudPatternSpec]] = [
            (name, scenario.fraud.patterns[name])
            for name in FRAUD_PATTERNS
            if name in scenario.fraud.patterns
        ]
        self.pattern_names = tuple(name for name, _ in self.patterns)
        mix = scenario.demand.instrument_mix
        self._instrument_p = {}
        for name, spec in self.patterns:
            w = np.array([mix.get(i, 0.0) + 1e-9 for i in spec.instruments])
            self._instrument_p[name] = w / w.sum()

    def hour_blocks(
        self, rng: np.random.Generator, hour_index: int, intensity: np.ndarray
    ) -> list[tuple[str, dict[str, np.ndarray]]]:
        """Per pattern, the attributes of this hour's attacks (``intensity`` multiplies each rate)."""
        out = []
        scale = self.scenario.volume_scale
        for k, (name, spec) in enumerate(self.patterns):
            n = int(rng.poisson(spec.attacks_per_day * scale * float(intensity[k]) / 24.0))
            if n == 0:
                continue
            times = np.sort(hour_index * HOUR_S + rng.random(n) * HOUR_S)
            inst = np.array(spec.instruments, dtype=object)[
                rng.choice(len(spec.instruments), size=n, p=self._instrument_p[name])
            ]
            xb_share = (
                0.5 if len(spec.corridors) == 2 else (1.0 if spec.corridors == ("cross_border",) else 0.0)
            )
            cross_border = (inst == "bank_account") & (rng.random(n) < xb_share)
            cols = self.factory.block(
                rng,
                times,
                instruments=inst,
                amount_override=spec.amount,
                cross_border=cross_border,
                urgency=spec.urgency,
            )
            out.append((name, cols))
        return out

    def discovery_delay_s(self, pattern: str, z: float) -> float:
        spec = self.scenario.fraud.patterns[pattern]
        # capped: anything later than the longest dispute window can no longer be recovered anyway
        return float(
            min(spec.discovery_median_days * DAY_S * np.exp(spec.discovery_sigma * z), MAX_DISCOVERY_S)
        )
