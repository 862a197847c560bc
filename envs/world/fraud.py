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
times the intensity the ``fraud`` decision sets (1.0 for the scripted fraudster), with amounts from the
pattern's band times the decision's amount multiplier (1.0 for the scripted fraudster). Attacking faster or
bigger than the pattern's usual stands out: the fraud's risk-score signal moves with the log of both above
1 (the scenario's ``fraud.velocity_separability_per_log_intensity`` and
``amount_separability_per_log_multiplier``); slower or smaller than usual does not hide it any better.
Losses surface after a lognormal discovery delay; on revocable rails within their return window some are
recovered.

The fraudster keeps its own books (:class:`FraudsterBook`): what it makes on approved attempts, what
recoveries take back, and what attacking costs it (every attempt, blocked attempts, discovered frauds).
That money never enters the PSP's ledger; the PSP's side of the same events is its fraud loss.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist
from typing import TYPE_CHECKING, Protocol

import numpy as np

from payroute.envs.scenarios.schema import FAMILIES, FRAUD_PATTERNS, FraudPatternSpec, Scenario
from payroute.envs.world.clock import DAY_S, HOUR_S
from payroute.envs.world.decisions import BLOCK, CHALLENGE
from payroute.envs.world.demand import Transaction, TransactionFactory

if TYPE_CHECKING:
    from payroute.envs.world.rails import RouteState

_NORMAL = NormalDist()

MAX_DISCOVERY_S = 180 * DAY_S


class ScenarioWorld(Protocol):
    """What a fraud estimate reads from the world: its scenario (a :class:`PaymentWorld` is one)."""

    @property
    def scenario(self) -> Scenario: ...


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
        self,
        rng: np.random.Generator,
        hour_index: int,
        intensity: np.ndarray,
        amount_multiplier: np.ndarray | None = None,
    ) -> list[tuple[str, dict[str, np.ndarray]]]:
        """Per pattern, the attributes of this hour's attacks (``intensity`` multiplies each rate,
        ``amount_multiplier`` each amount band)."""
        out = []
        scale = self.scenario.volume_scale
        fraud = self.scenario.fraud
        for k, (name, spec) in enumerate(self.patterns):
            level = float(intensity[k])
            n = int(rng.poisson(spec.attacks_per_day * scale * level / 24.0))
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
            mult = 1.0 if amount_multiplier is None else float(amount_multiplier[k])
            cols = self.factory.block(
                rng,
                times,
                instruments=inst,
                amount_override=spec.amount if mult == 1.0 else _scaled_band(spec, mult),
                cross_border=cross_border,
                urgency=spec.urgency,
            )
            if level > 1.0 or mult > 1.0:
                # faster or bigger than usual stands out to the risk score (z gets separability added later);
                # slower or smaller than usual does not hide an attack any better
                cols["z_risk"] += fraud.velocity_separability_per_log_intensity * math.log(
                    max(level, 1.0)
                ) + fraud.amount_separability_per_log_multiplier * math.log(max(mult, 1.0))
            out.append((name, cols))
        return out

    def discovery_delay_s(self, pattern: str, z: float) -> float:
        spec = self.scenario.fraud.patterns[pattern]
        # capped: anything later than the longest dispute window can no longer be recovered anyway
        return float(
            min(spec.discovery_median_days * DAY_S * np.exp(spec.discovery_sigma * z), MAX_DISCOVERY_S)
        )


def _scaled_band(spec: FraudPatternSpec, multiplier: float):
    a = spec.amount
    return a.model_copy(
        update={
            "median_cents": max(1, round(a.median_cents * multiplier)),
            "min_cents": max(1, round(a.min_cents * multiplier)),
            "max_cents": max(1, round(a.max_cents * multiplier)),
        }
    )


class FraudsterBook:
    """The fraudster's money and what it can see of its own attacks, per pattern, in integer cents.

    * **proceeds**: when a route approves an attempt, ``proceeds_share`` x its amount +
      ``proceeds_per_success_cents`` (a card payment: goods to resell, or a card number known to work;
      a payout: money in a mule account).
    * **recovered**: a fraudulent payout returned on a revocable rail takes those proceeds back.
    * **costs**: ``attempt_cost_cents`` for every attempt, ``blocked_cost_cents`` more when the risk desk
      blocks it or a challenge stops it, ``detection_cost_cents`` more when it is discovered later
      (chargeback, return or reimbursement: the card stops working, the mule account is closed).

    ``net_cents`` = proceeds - recovered - costs. Counts (``COUNTS``) and money (``MONEY``) are arrays
    (row per item, column per pattern in ``pattern_names`` order); ``net_by_period[p]`` is the net per pattern
    of the attempts launched in fraud period ``p``, whenever their money moved (a detection weeks later
    included); ``attempts_by_family`` counts attempts by product family (``card``, ``bank``,
    ``cross_border``).
    """

    COUNTS = ("attempts", "challenged", "blocked", "approved", "failed", "detected", "recovered")
    MONEY = (
        "proceeds_cents",
        "recovered_cents",
        "attempt_cost_cents",
        "blocked_cost_cents",
        "detection_cost_cents",
    )

    def __init__(self, scenario: Scenario, pattern_names: tuple[str, ...]) -> None:
        self.pattern_names = pattern_names
        self.index = {name: k for k, name in enumerate(pattern_names)}
        self.specs = [scenario.fraud.patterns[name] for name in pattern_names]
        self.counts = np.zeros((len(self.COUNTS), len(pattern_names)), dtype=np.int64)
        self.money = np.zeros((len(self.MONEY), len(pattern_names)), dtype=np.int64)
        self.period = -1
        self.net_by_period: list[np.ndarray] = []
        self.attempts_by_family: dict[str, int] = dict.fromkeys(FAMILIES, 0)
        self._period_of: dict[int, int] = {}

    # ------------------------------------------------------------------ events
    def new_period(self) -> None:
        self.period += 1
        self.net_by_period.append(np.zeros(len(self.pattern_names), dtype=np.int64))

    def proceeds_of(self, tx: Transaction) -> int:
        spec = self.specs[self.index[tx.pattern]]
        return round(tx.amount_cents * spec.proceeds_share) + spec.proceeds_per_success_cents

    def _add(self, tx: Transaction, count: int, money: int, cents: int, sign: int) -> None:
        k = self.index[tx.pattern]
        if count >= 0:
            self.counts[count, k] += 1
        if cents:
            self.money[money, k] += cents
            period = self._period_of.get(tx.id, max(self.period, 0))
            self.net_by_period[period][k] += sign * cents

    def attempt(self, tx: Transaction) -> None:
        if self.period < 0:
            self.new_period()
        self._period_of[tx.id] = self.period
        self.attempts_by_family[tx.family] += 1
        self._add(tx, 0, 2, self.specs[self.index[tx.pattern]].attempt_cost_cents, -1)

    def on_outcome(self, tx: Transaction, route, approved: bool, reason: str) -> None:
        """A route answered (an outcome listener of the world): approved attempts pay."""
        if tx.is_fraud and approved:
            self._add(tx, 3, 0, self.proceeds_of(tx), +1)

    def on_terminal(self, tx: Transaction) -> None:
        """An attempt ended (a terminal listener of the world): challenged, blocked, or failed on a route."""
        if not tx.is_fraud:
            return
        if tx.risk_action == CHALLENGE:
            self.counts[1, self.index[tx.pattern]] += 1
        if tx.state == "blocked" and (tx.risk_action == BLOCK or tx.reason == "challenge_failed"):
            self._add(tx, 2, 3, self.specs[self.index[tx.pattern]].blocked_cost_cents, -1)
        elif tx.state in ("declined", "failed", "expired"):
            self.counts[4, self.index[tx.pattern]] += 1

    def discovered(self, tx: Transaction, kind: str) -> None:
        """A fraud came to light (``kind`` as in the post-settlement log rows)."""
        if kind == "undisputed":
            return
        spec = self.specs[self.index[tx.pattern]]
        if kind == "return":
            self._add(tx, 6, 1, self.proceeds_of(tx), -1)
        self._add(tx, 5, 4, spec.detection_cost_cents, -1)

    # ------------------------------------------------------------------ totals
    @property
    def proceeds_cents(self) -> int:
        return int(self.money[0].sum())

    @property
    def recovered_cents(self) -> int:
        return int(self.money[1].sum())

    @property
    def cost_cents(self) -> int:
        return int(self.money[2:].sum())

    @property
    def net_cents(self) -> int:
        return self.proceeds_cents - self.recovered_cents - self.cost_cents

    def summary(self) -> dict[str, dict[str, int]]:
        """Per pattern: every count and money item, and the net."""
        out = {}
        for k, name in enumerate(self.pattern_names):
            row = {c: int(self.counts[i, k]) for i, c in enumerate(self.COUNTS)}
            row |= {m: int(self.money[i, k]) for i, m in enumerate(self.MONEY)}
            row["net_cents"] = int(self.money[0, k] - self.money[1:, k].sum())
            out[name] = row
        return out


@functools.lru_cache(maxsize=1)
def _likelihood_ratio(score: float, d: float) -> float:
    """The risk score's likelihood ratio under separability ``d``. The last answer is kept: the observation's
    posterior and a trainer's credit value the same payment one after the other."""
    z = _NORMAL.inv_cdf(min(max(score, 1e-12), 1.0 - 1e-12))
    return math.exp(min(d * z - d * d / 2.0, 700.0))


class FraudPosterior:
    """P(fraud | risk score) for each payment, as a risk desk that knows its model's calibration computes it.

        P(fraud | score) = LR * prior / (LR * prior + 1 - prior),  LR = exp(d' z - d'^2 / 2),  z = Phi^-1(score)

    with d' the scenario's ``risk.separability`` and the prior the base rate of fraud among the payments of the
    same cell so far (a population statistic a PSP knows from its history): the same instrument, urgency and
    corridor, and the same half decade of amount (a factor of 3.16). The amount matters as much as the score:
    card testing is a dollar or two, APP scams and mule cash-outs on instant payouts thousands. Over three
    half-volume days of ``default`` (tests/agents/test_fraudster.py), a base rate over all amounts put P(fraud) x amount
    at 1.5x the fraud really there on cards and 0.33x on instant payouts; by half decade, 0.97x and 0.53x (a
    new world's thin bands of large instant payouts learn their rate from few frauds). Also the
    mean share of a fraud that a revocable rail gets back in that cell. Call it once per payment, in arrival
    order: each payment joins its cell's history after it is scored.
    """

    def __init__(self) -> None:
        # (instrument, urgency, corridor, half decade of the amount in cents) -> [n, n_fraud, recovery]
        self._cells: dict[tuple, list[float]] = {}

    def __call__(self, world: ScenarioWorld, tx: Transaction, join: bool = True) -> tuple[float, float]:
        """(P(fraud | score, cell), mean recovery share of fraud on revocable rails in the cell).

        ``join=False``: the payment does not join its cell's history (it already has: a retry of it)."""
        sc = world.scenario
        amount = tx.amount_cents
        band = int(2.0 * math.log10(amount)) if amount > 0 else 0  # half decades of cents
        key = (tx.instrument, tx.urgency, tx.cross_border, band)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = [0.0, 0.0, 0.0]
        n, n_fraud, recovered = cell
        prior = (n_fraud + 0.01) / (n + 1.0)
        d = sc.risk.separability
        lr = _likelihood_ratio(tx.risk_score, d)
        p_fraud = lr * prior / (lr * prior + 1.0 - prior)
        recovery = recovered / n_fraud if n_fraud else 0.5
        if not join:
            return p_fraud, recovery
        cell[0] += 1.0  # this payment joins the cell's history
        if tx.is_fraud:
            cell[1] += 1.0
            cell[2] += sc.fraud.patterns[tx.pattern].recovery_probability_revocable
        return p_fraud, recovery


def expected_fraud_loss_cents(
    world: ScenarioWorld, tx: Transaction, route: RouteState, p_fraud: float, recovery: float
) -> float:
    """What sending ``tx`` on ``route`` is expected to lose to fraud, given P(fraud) and the recovery share.

    Cards: the amount and the chargeback fee; irrevocable rails: the amount; revocable rails: the share a
    return does not bring back.
    """
    if tx.family == "card":
        return p_fraud * (tx.amount_cents + world.scenario.interchange.chargeback_fee_cents)
    loss = p_fraud * tx.amount_cents
    return loss if route.irrevocable else loss * (1.0 - recovery)
