"""The words every layer shares, defined once: decision kinds and the roles that answer them, terminal states,
KPI names, and the seed boundary between training and held-out evaluation.

Everything above imports these names from here; nothing here imports from payroute's other packages.
"""

from __future__ import annotations

DECISION_KINDS: tuple[str, ...] = ("route", "risk", "price", "treasury", "fraud")
"""What the world asks for: a route per payment, a risk action per payment, prices per period, treasury
transfers per period, and the fraudster's attack mix per period."""

ROLES: tuple[str, ...] = ("router", "risk", "pricer", "treasury", "fraudster")
"""The agents that answer them, in the same order (agent ids in the ecosystem and in experiments)."""

ROLE_KIND: dict[str, str] = dict(zip(ROLES, DECISION_KINDS, strict=True))
"""Role (agent id) -> the decision kind it answers."""

KIND_ROLE: dict[str, str] = {kind: role for role, kind in ROLE_KIND.items()}
"""Decision kind -> the role that answers it."""

TERMINAL_STATES: tuple[str, ...] = ("settled", "declined", "failed", "expired", "blocked", "abandoned")
"""Every payment ends in exactly one of these (a settled one may later be returned or charged back)."""

HEADLINE_KPIS: tuple[str, ...] = (
    "margin_per_tx_usd",
    "approval_rate",
    "route_cost_bps",
    "fraud_loss_bps",
    "sla_misses",
    "liquidity_cost_usd",
)
"""The KPIs that comparisons report (tables, paired intervals, what-ifs, stress gates)."""

KPI_NAMES: tuple[str, ...] = (
    "margin_per_tx_usd",
    "approval_rate",
    "fraud_loss_bps",
    "sla_misses",
    "liquidity_cost_usd",
    "route_cost_bps",
    "margin_usd",
)
"""The KPIs training logs per iteration (``kpi/<name>`` in TensorBoard) and experiment configs may name."""

HELD_OUT_SEED_START: int = 1_000_000_000
"""Training worlds use seeds in ``[0, HELD_OUT_SEED_START)``; held-out evaluation seeds start here."""
