"""The PSP's books: every payment from arrival to its one terminal state, who earned what, and the log.

Each payment that arrives is opened in the books (:meth:`Books.open`: its id, the arrival count, the live
set) and closed exactly once (:meth:`Books.terminate`: ``settled``, ``declined``, ``failed``, ``expired``,
``blocked`` or ``abandoned``), so ``arrivals == sum(terminal) + in_flight`` at every instant. Money a payment
earns or costs is posted to the :class:`~payroute.envs.world.ledger.Ledger` under a named account and
attributed (:meth:`Books.attribute`) to the payment, the world's totals and the agents that decided on it.
The event log, when kept, gets one row per terminal payment, account movement and decision; the headline
numbers (:meth:`Books.kpis`) are read off the totals.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from payroute.envs.info import InfoKey
from payroute.envs.scenarios.schema import Scenario
from payroute.envs.world.decisions import RISK_ACTIONS, DecisionHub
from payroute.envs.world.demand import Transaction, TransactionFactory
from payroute.envs.world.eventlog import EventLog
from payroute.envs.world.ledger import Ledger
from payroute.envs.world.rails import RouteState
from payroute.vocabulary import TERMINAL_STATES

_COST_KEYS = (
    "route_cost_cents",
    "fraud_loss_cents",
    "sla_penalty_cents",
    "liquidity_cost_cents",
    "challenge_cost_cents",
    "retry_fee_cents",
    "network_fine_cents",
)

KPI_FIELDS: tuple[InfoKey, ...] = (
    InfoKey("approval_rate", "float", "share", "approved / submitted payments"),
    InfoKey("margin_per_tx_usd", "float", "$", "margin / arriving payments"),
    InfoKey(
        "margin_usd",
        "float",
        "$",
        "fee revenue - route cost - fraud loss - SLA penalties - challenge, liquidity, treasury and delay costs",
    ),
    InfoKey("revenue_usd", "float", "$", "fee revenue"),
    InfoKey("route_cost_bps", "float", "bps", "route cost / settled value"),
    InfoKey("fraud_loss_bps", "float", "bps", "fraud loss / settled value"),
    InfoKey("sla_misses", "float", "payments", "payments that missed their deadline"),
    InfoKey("liquidity_cost_usd", "float", "$", "intraday credit, opportunity and transfer costs"),
    InfoKey("settled_value_usd", "float", "$", "value of the settled payments"),
    InfoKey("delay_cost_usd", "float", "$", "cost of payouts waiting for funds"),
)
""":meth:`Books.kpis` as it appears in an info's ``kpis`` (each KPI a ``float``)."""

FINAL_KPIS = InfoKey(
    "kpis",
    "dict",
    "",
    "the episode's KPIs: what really happened, whatever the reward credited",
    when=("terminal",),
    fields=KPI_FIELDS,
)
"""The ``kpis`` key of a payment environment's last step."""

PAYMENT_FIELDS: tuple[InfoKey, ...] = (
    InfoKey("id", "int", "", "the payment's id in this world"),
    InfoKey("amount_cents", "int", "cents", "the amount"),
    InfoKey("price_cents", "int", "cents", "the fee the payer was quoted"),
    InfoKey("instrument", "str", "", "`card_credit`, `card_debit` or `bank_account`"),
)
"""The fields every environment's ``transaction`` info holds."""


class Books:
    """Payments opened and closed, named postings attributed to payments and agents, log rows and KPIs.

    Args:
        reward_split: how a payment's money is credited to the agents that decided on it (``full`` or
            ``shared``; see :meth:`attribute`).
    """

    def __init__(
        self,
        env: simpy.Environment,
        scenario: Scenario,
        ledger: Ledger,
        routes: list[RouteState],
        factory: TransactionFactory,
        hub: DecisionHub,
        log: EventLog | None,
        reward_split: str,
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.ledger = ledger
        self.routes = routes
        self.factory = factory
        self.hub = hub
        self.log = log
        self.reward_split = reward_split
        self.next_id = 0
        self.arrivals = 0
        self.live: dict[int, Transaction] = {}
        self.terminal: Counter[str] = Counter({s: 0 for s in TERMINAL_STATES})
        self.post_settlement: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self.agent_margin: Counter[str] = Counter()
        self.by_hour_attempts = np.zeros(24, dtype=np.int64)
        self.by_hour_approved = np.zeros(24, dtype=np.int64)
        self.route_counts = Counter()
        self.code_counts: Counter[str] = Counter()  # declined and failed route answers by code, every attempt
        # called as listener(tx) when a transaction reaches its terminal state
        self.terminal_listeners: list[Callable[[Transaction], None]] = []

    # ------------------------------------------------------------------ a payment opened and closed
    def open(self, tx: Transaction) -> None:
        """A payment arrives: it gets the next id and is live until its terminal state."""
        tx.id = self.next_id
        self.next_id += 1
        self.arrivals += 1
        self.live[tx.id] = tx

    def terminate(self, tx: Transaction, state: str, reason: str) -> None:
        """The payment reaches its one terminal state (a second one is a bug in the world)."""
        if self.live.pop(tx.id, None) is None:
            raise RuntimeError(
                f"transaction {tx.id} reached a second terminal state ({state} after {tx.state})"
            )
        tx.state = state
        tx.reason = reason
        tx.t_terminal = self.env.now
        self.terminal[state] += 1
        for listener in self.terminal_listeners:
            listener(tx)
        if self.log is not None:
            self.log_transaction(tx)

    def expire(self, tx: Transaction, reason: str) -> None:
        """The payment ran out of time: a service-level miss, then ``expired``."""
        self.sla_miss(tx)
        self.terminate(tx, "expired", reason)

    # ------------------------------------------------------------------ money
    def attribute(self, tx: Transaction, field: str, signed_cents: int) -> None:
        """Add money to a transaction's components, the world's totals and its deciding agents' margins.

        ``reward_split="full"``: every agent that decided on the payment is credited all of it (what a
        single learning agent should see). ``"shared"``: the amount is split between them in whole cents
        (the remainder to the first), so the agents' margins add up to the ledger's profit exactly.
        """
        setattr(tx, field, getattr(tx, field) + abs(signed_cents))
        self.totals[field] += abs(signed_cents)
        agents = tx.agents or ("psp",)
        if self.reward_split == "full":
            for agent in agents:
                self.agent_margin[agent] += signed_cents
            return
        share, rest = divmod(signed_cents, len(agents))
        for agent in agents:
            self.agent_margin[agent] += share
        self.agent_margin[agents[0]] += rest

    def book(self, tx: Transaction, cost_account: str, cents: int, credit_account: str) -> None:
        """A cost of the payment, posted to the ledger account of the same name and attributed to it."""
        if cents:
            self.ledger.transfer(self.env.now, cost_account, cost_account, credit_account, cents)
            self.attribute(tx, f"{cost_account}_cents", -cents)

    def sla_miss(self, tx: Transaction) -> None:
        """The payment missed its deadline: the service-level penalty goes to the merchant or customer."""
        penalty = self.scenario.service_level.penalty_cents.get(tx.family, 0)
        self.totals["sla_misses"] += 1
        credit = "merchant_payable" if tx.family == "card" else "customer_funds"
        self.book(tx, "sla_penalty", penalty, credit)

    # ------------------------------------------------------------------ log rows
    def log_transaction(self, tx: Transaction) -> None:
        self.log.append(
            {
                "record": "transaction", "t": tx.t_terminal, "tx_id": tx.id, "t_arrival": tx.t_arrival,
                "amount_cents": tx.amount_cents, "currency": tx.currency, "cross_border": tx.cross_border,
                "segment": self.factory.segments[tx.segment],
                "merchant_category": self.factory.categories[tx.category],
                "instrument": tx.instrument, "network": tx.network, "foreign_card": tx.foreign_card,
                "urgency": tx.urgency, "deadline_t": tx.deadline_t, "is_fraud": tx.is_fraud,
                "fraud_pattern": tx.pattern, "risk_score": tx.risk_score, "price_cents": tx.price_cents,
                "risk_action": RISK_ACTIONS[tx.risk_action], "risk_propensity": tx.risk_propensity,
                "route": self.routes[tx.route].name if tx.route >= 0 else "", "route_index": tx.route,
                "route_propensity": tx.route_propensity, "eligible_mask": tx.eligible_mask,
                "agents": ",".join(tx.agents), "state": tx.state, "reason": tx.reason, "t_settled": tx.t_settled,
                "latency_s": tx.latency_s, "revenue_cents": tx.revenue_cents, "route_cost_cents": tx.route_cost_cents,
                "fraud_loss_cents": 0, "sla_penalty_cents": tx.sla_penalty_cents,
                "liquidity_cost_cents": tx.liquidity_cost_cents, "challenge_cost_cents": tx.challenge_cost_cents,
                "attempts": tx.attempt, "response_code": tx.response_code, "merchant_advice": tx.merchant_advice,
                "sequence_propensity": tx.sequence_propensity, "retry_fee_cents": tx.retry_fee_cents,
                "network_fine_cents": tx.network_fine_cents,
            }
        )  # fmt: skip

    def log_attempt(self, tx: Transaction, route: RouteState, approved: bool, why: str, mode: str) -> None:
        """One row per route answer when retries are on: the attempt, its route and propensity, its code."""
        self.log.append(
            {"record": "attempt", "t": self.env.now, "tx_id": tx.id, "t_arrival": tx.t_arrival,
             "amount_cents": tx.amount_cents, "instrument": tx.instrument, "network": tx.network,
             "is_fraud": tx.is_fraud, "route": route.name, "route_index": route.index,
             "route_propensity": tx.route_propensity, "eligible_mask": tx.eligible_mask, "agents": ",".join(tx.agents),
             "state": "approved" if approved else ("declined" if why == "declined" else "failed"), "reason": why,
             "latency_s": tx.latency_s, "attempt": tx.attempt, "response_code": tx.response_code,
             "merchant_advice": tx.merchant_advice, "retry_action": mode}
        )  # fmt: skip

    def log_retry(
        self, tx: Transaction, request: Any, action: Any, propensity: float, delay_s: float
    ) -> None:
        """One row per retry decision (retries on): what the router decided after attempt ``request.attempt`` was
        softly declined, with its propensity and the eligible routes it chose from (off-policy evaluation reads
        the payment's decisions from these and the first attempt's row)."""
        route = (
            action.route if action.route >= 0 or action.kind in ("cascade", "give_up") else request.routes[-1]
        )
        mask = 0
        for r in request.eligible:
            mask |= 1 << r.index
        self.log.append(
            {"record": "retry", "t": self.env.now, "tx_id": tx.id, "t_arrival": tx.t_arrival,
             "amount_cents": tx.amount_cents, "instrument": tx.instrument, "network": tx.network,
             "route": self.routes[route].name if route >= 0 else "", "route_index": route,
             "route_propensity": propensity, "eligible_mask": mask, "attempt": request.attempt,
             "response_code": request.codes[-1], "merchant_advice": request.merchant_advice,
             "retry_action": action.kind, "retry_delay_s": delay_s}
        )  # fmt: skip

    def log_post_settlement(self, tx: Transaction, kind: str, loss: int) -> None:
        if self.log is not None:
            self.log.append(
                {"record": "post_settlement", "t": self.env.now, "tx_id": tx.id, "t_arrival": tx.t_arrival,
                 "amount_cents": tx.amount_cents, "is_fraud": tx.is_fraud, "fraud_pattern": tx.pattern,
                 "route": self.routes[tx.route].name, "route_index": tx.route, "kind": kind,
                 "fraud_loss_cents": loss, "agents": ",".join(tx.agents)}
            )  # fmt: skip

    def log_account(self, account: str, kind: str, cents: int) -> None:
        if self.log is not None:
            self.log.append(
                {
                    "record": "account",
                    "t": self.env.now,
                    "account": account,
                    "kind": kind,
                    "amount_cents": cents,
                }
            )

    def log_decision(self, kind: str, action: Any, propensity: float) -> None:
        if self.log is not None:
            self.log.append(
                {"record": "decision", "t": self.env.now, "kind": kind, "agent": self.hub.agent_ids[kind],
                 "action_json": json.dumps(action, sort_keys=True, default=_jsonable), "propensity": propensity}
            )  # fmt: skip

    # ------------------------------------------------------------------ reporting
    def kpis(self) -> dict[str, float]:
        """Headline numbers of the run so far (money in dollars, rates in bps or shares)."""
        tot = self.totals
        arrivals = max(self.arrivals, 1)
        submitted = int(self.by_hour_attempts.sum())
        settled_value = max(tot["settled_value_cents"], 1)
        margin = (
            tot["revenue_cents"]
            - sum(tot[k] for k in _COST_KEYS)
            - tot["liquidity_cost"]
            - tot["treasury_cost"]
            - tot["delay_cost"]
        )
        return {
            "approval_rate": tot["approved"] / submitted if submitted else 0.0,
            "margin_per_tx_usd": margin / arrivals / 100.0,
            "margin_usd": margin / 100.0,
            "revenue_usd": tot["revenue_cents"] / 100.0,
            "route_cost_bps": tot["route_cost_cents"] / settled_value * 10_000.0,
            "fraud_loss_bps": tot["fraud_loss_cents"] / settled_value * 10_000.0,
            "sla_misses": float(tot["sla_misses"]),
            "liquidity_cost_usd": (tot["liquidity_cost_cents"] + tot["liquidity_cost"] + tot["treasury_cost"])
            / 100.0,
            "settled_value_usd": tot["settled_value_cents"] / 100.0,
            "delay_cost_usd": tot["delay_cost"] / 100.0,
        }

    def summary(self, seed: int, days: float) -> dict[str, Any]:
        """The run in one dictionary: counts, terminal states, post-settlement events, KPIs, route mix."""
        return {
            "scenario": self.scenario.name,
            "seed": seed,
            "days": days,
            "sim_time_s": self.env.now,
            "arrivals": self.arrivals,
            "in_flight": len(self.live),
            "terminal": dict(self.terminal),
            "post_settlement": dict(self.post_settlement),
            "kpis": self.kpis(),
            "route_mix": dict(self.route_counts),
        }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
