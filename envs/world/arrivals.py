"""Who comes to pay: genuine customers, thinned by churn, and fraudsters at the intensity they choose.

Genuine demand is drawn an hour at a time (:class:`~payroute.envs.world.demand.LegitimateDemand`). Every
potential customer gets two uniforms from a side stream, whatever happens to them: one decides whether they
still come (a segment that churned keeps only its share of customers, the same ones at any price), the other
whether they switch to a cheaper method when quoted. Fraud arrives pattern by pattern
(:class:`~payroute.envs.world.fraud.FraudStreams`); at the start of each fraud period the fraudster, if anyone
plays it, decides how hard and how big to attack in the coming period. Every arrival is opened in the books
and starts its life at once (:meth:`~payroute.envs.world.payment.Payments.admit`).
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from payroute.envs.scenarios.schema import Scenario
from payroute.envs.world.books import Books
from payroute.envs.world.clock import HOUR_S
from payroute.envs.world.decisions import DecisionHub, FraudAction, InvalidActionError
from payroute.envs.world.demand import LegitimateDemand, TransactionFactory
from payroute.envs.world.fraud import FraudsterBook, FraudStreams
from payroute.envs.world.market import Market
from payroute.envs.world.payment import Payments


class Arrivals:
    """The arrival processes of genuine customers and of fraud, and the fraudster's decision in force."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: Scenario,
        factory: TransactionFactory,
        demand: LegitimateDemand,
        fraud: FraudStreams,
        fraudster: FraudsterBook,
        market: Market,
        books: Books,
        payments: Payments,
        hub: DecisionHub,
        rngs: dict[str, np.random.Generator],
        customer_rng: np.random.Generator,
        horizon_s: float,
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.factory = factory
        self.demand = demand
        self.fraud = fraud
        self.fraudster = fraudster
        self.market = market
        self.books = books
        self.payments = payments
        self.hub = hub
        self.rngs = rngs
        self.customer_rng = customer_rng
        self.horizon_s = horizon_s
        # the fraudster's decision in force, per pattern (the scripted mix until it decides)
        self.fraud_intensity = np.ones(len(fraud.pattern_names))
        self.fraud_amount_multiplier = np.ones(len(fraud.pattern_names))

    def arrive(self, cols: dict, i: int, is_fraud: bool, pattern: str):
        """Row ``i`` of an hour's block arrives: a payment opened in the books, then its life begins."""
        tx = self.factory.make(cols, i, is_fraud, pattern)
        if not is_fraud:
            tx.u_switch = float(cols["u_switch"][i])
        self.books.open(tx)
        self.payments.codes.deal(tx)
        if is_fraud:
            self.fraudster.attempt(tx)
        return self.payments.admit(tx)

    def customers(self):
        """Genuine customers, hour by hour; one who has churned never arrives."""
        rng = self.rngs["demand"]
        env = self.env
        horizon = self.horizon_s
        hours = math.ceil(horizon / HOUR_S)
        stats = self.market.quote_stats
        for h in range(hours):
            arrays = self.demand.hour_block(rng, h)
            # two uniforms for every potential arrival, whatever happens to it: staying (churn), switching
            u_stay, arrays["u_switch"] = self.customer_rng.random((2, len(arrays["t"])))
            u_stay = u_stay.tolist()
            cols = _as_lists(arrays)
            segments = cols["segment"]
            for i, t in enumerate(cols["t"]):
                if t >= horizon:
                    return
                if t > env.now:
                    yield env.timeout(t - env.now)
                seg = segments[i]
                stats.potential[seg] += 1
                kept = self.demand.segment_multiplier
                if kept is not None and u_stay[i] >= kept[seg]:
                    stats.churned[seg] += 1  # this customer has left us (churn): they never arrive
                    continue
                yield from self.arrive(cols, i, False, "")

    def fraudsters(self):
        """Fraud, hour by hour in time order across patterns; each fraud period opens with its decision."""
        rng = self.rngs["fraud"]
        env = self.env
        period_h = max(1, self.scenario.fraud_period_s // HOUR_S)
        hours = math.ceil(self.horizon_s / HOUR_S)
        for h in range(hours):
            if env.now < h * HOUR_S:
                yield env.timeout(h * HOUR_S - env.now)
            if h % period_h == 0:
                self.fraudster.new_period()
                yield from self.decide_fraud()
            events = []
            blocks = self.fraud.hour_blocks(rng, h, self.fraud_intensity, self.fraud_amount_multiplier)
            for pattern, arrays in blocks:
                cols = _as_lists(arrays)
                events.extend((t, pattern, cols, i) for i, t in enumerate(cols["t"]))
            events.sort(key=lambda e: (e[0], e[1]))
            for t, pattern, cols, i in events:
                if t >= self.horizon_s:
                    return
                if t > env.now:
                    yield env.timeout(t - env.now)
                yield from self.arrive(cols, i, True, pattern)

    def decide_fraud(self):
        """The fraudster's decision for the coming period: intensities (and amount multipliers) per pattern."""
        kind = "fraud"
        if not self.hub.answers(kind):
            return
        action, prop = yield from self.hub.ask(
            kind, None, shown=self.hub.world, info={"patterns": self.fraud.pattern_names}
        )
        n = len(self.fraud_intensity)
        if isinstance(action, FraudAction):
            intensity = np.asarray(action.intensity, dtype=float).reshape(-1)
            amount = np.ones(n) if action.amount_multiplier is None else action.amount_multiplier
            amount = np.asarray(amount, dtype=float).reshape(-1)
            logged = {"intensity": intensity, "amount_multiplier": amount}
        else:
            intensity, amount, logged = np.asarray(action, dtype=float).reshape(-1), np.ones(n), action
        if (
            intensity.shape != (n,)
            or amount.shape != (n,)
            or not np.all(np.isfinite(intensity))
            or not np.all(np.isfinite(amount))
            or np.any(intensity < 0)
            or np.any(amount <= 0)
        ):
            raise InvalidActionError(
                f"fraud action must be {n} finite intensities >= 0 (and {n} amount multipliers > 0), "
                f"one per pattern {list(self.fraud.pattern_names)}; got {action!r}"
            )
        self.fraud_intensity = intensity
        self.fraud_amount_multiplier = amount
        self.books.log_decision(kind, logged, prop)


def _as_lists(cols: dict[str, np.ndarray]) -> dict[str, list]:
    """A block of transaction attributes as Python lists: reading one row from lists is much cheaper."""
    return {name: values.tolist() for name, values in cols.items()}
