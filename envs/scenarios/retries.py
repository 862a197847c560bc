"""The scenario's response codes and retry rules: why a route says no, and what trying again costs.

``response_codes`` sets how often each reason answers a decline (per card type), how the hidden truth tilts
them (fraud draws more ``suspected_fraud`` and ``lost_stolen``), the Mastercard merchant advice, the bank rails'
return and reject reasons, and how likely the issuer is to approve a retry after each soft reason.
``retries`` (off by default) lets the router decide again after a soft decline, within an attempt budget, a
latency budget and the networks' reattempt rules, paying a fee per extra attempt, while the customer waits.
The shipped values and their sources are in ``default.yaml``; :mod:`payroute.envs.world.codes` uses them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

import payroute.envs.scenarios.bounds as b
from payroute.config_model import ConfigModel

CARD_SOFT_CODES: tuple[str, ...] = (
    "insufficient_funds",
    "do_not_honor",
    "issuer_unavailable",
    "authentication_required",
    "try_again_later",
)
"""Card decline reasons a retry may turn into an approval."""
CARD_HARD_CODES: tuple[str, ...] = ("lost_stolen", "invalid_account", "closed_account", "suspected_fraud")
"""Card decline reasons no retry is allowed after (Visa decline category 1 and its like)."""
ACH_RETURN_CODES: tuple[str, ...] = ("R01", "R02", "R03", "R10", "R29")
"""NACHA return reasons: insufficient funds, account closed, no account, unauthorised (consumer, corporate)."""


class _Model(ConfigModel):
    """A section of ``response_codes`` or ``retries``."""


class DeclineShares(_Model):
    """Relative weight of each reason among a card type's issuer declines (normalised when drawn)."""

    insufficient_funds: b.Weight = 0.0
    do_not_honor: b.Weight = 0.0
    issuer_unavailable: b.Weight = 0.0
    authentication_required: b.Weight = 0.0
    try_again_later: b.Weight = 0.0
    lost_stolen: b.Weight = 0.0
    invalid_account: b.Weight = 0.0
    closed_account: b.Weight = 0.0
    suspected_fraud: b.Weight = 0.0

    @model_validator(mode="after")
    def _some_weight(self) -> DeclineShares:
        if sum(getattr(self, c) for c in (*CARD_SOFT_CODES, *CARD_HARD_CODES)) <= 0:
            raise ValueError("decline shares: at least one reason needs a weight above 0")
        return self


class Recovery(_Model):
    """Probability the issuer approves a retry after this soft reason, on a route as good as the one that
    declined: sent at once on another route (``cascade``), on the same route after a delay (``later``), or after
    the payer passed a step-up challenge (``step_up``). A better or worse route shifts it on the logit scale."""

    cascade: b.Probability
    later: b.Probability
    step_up: b.Probability


class RecoveryTable(_Model):
    insufficient_funds: Recovery = Recovery(cascade=0.02, later=0.05, step_up=0.02)
    do_not_honor: Recovery = Recovery(cascade=0.12, later=0.06, step_up=0.15)
    issuer_unavailable: Recovery = Recovery(cascade=0.50, later=0.35, step_up=0.30)
    authentication_required: Recovery = Recovery(cascade=0.03, later=0.02, step_up=0.60)
    try_again_later: Recovery = Recovery(cascade=0.08, later=0.20, step_up=0.08)


class AchReturnShares(_Model):
    """Relative weight of each return reason among ACH (and, mapped, instant-rail) rejects of genuine payouts;
    ``R10``/``R29`` (unauthorised) are weighted by ``fraud_hard_multiplier`` when the payment is fraud."""

    R01: b.Weight = 0.45
    R02: b.Weight = 0.25
    R03: b.Weight = 0.20
    R10: b.Weight = 0.05
    R29: b.Weight = 0.05

    @model_validator(mode="after")
    def _some_weight(self) -> AchReturnShares:
        if sum(getattr(self, c) for c in ACH_RETURN_CODES) <= 0:
            raise ValueError("ACH return shares: at least one reason needs a weight above 0")
        return self


class ResponseCodes(_Model):
    """Why routes decline: reason shares, the truth's tilt, merchant advice, bank returns, retry recovery."""

    credit_decline_shares: DeclineShares = DeclineShares(
        insufficient_funds=0.07, do_not_honor=0.52, issuer_unavailable=0.03, authentication_required=0.05,
        try_again_later=0.25, lost_stolen=0.03, invalid_account=0.02, closed_account=0.01, suspected_fraud=0.02,
    )  # fmt: skip
    debit_decline_shares: DeclineShares = DeclineShares(
        insufficient_funds=0.29, do_not_honor=0.38, issuer_unavailable=0.03, authentication_required=0.04,
        try_again_later=0.10, lost_stolen=0.035, invalid_account=0.08, closed_account=0.02, suspected_fraud=0.025,
    )  # fmt: skip
    fraud_hard_multiplier: Annotated[float, Field(ge=1.0, le=1000.0)] = Field(
        8.0, description="weight multiplier of lost_stolen and suspected_fraud (R10/R29 on ACH) for fraud"
    )
    mastercard_do_not_retry_share: b.Probability = Field(
        0.05, description="share of Mastercard soft declines that carry MAC 03 (do not try again)"
    )
    ach_return_shares: AchReturnShares = AchReturnShares()
    ach_return_business_days: Annotated[int, Field(ge=0, le=10)] = Field(
        0, description="business days after settlement an ACH return arrives (0: when the route answers)"
    )
    recovery: RecoveryTable = RecoveryTable()
    retry_fraud_logit_offset: b.LogitOffset = Field(
        -1.0, description="added to a retried fraud's approval logit (issuers distrust retried fraud)"
    )
    source: str = ""


class NetworkRule(_Model):
    """A card network's reattempt rule for one card: retries beyond ``max_retries`` and any retry after a
    do-not-retry advice (Mastercard MAC 03/21) are fined."""

    max_retries: Annotated[int, Field(ge=0, le=100)] = Field(15, description="retries allowed per card")
    excess_fine_cents: b.Cents = Field(10, description="fine per retry beyond max_retries")
    do_not_retry_fine_cents: b.Cents = Field(0, description="fine per retry after MAC 03/21")


class Retries(_Model):
    """Whether and how the router may try a payment again after a soft decline (off: one attempt each)."""

    enabled: bool = Field(False, description="false: one attempt per payment (the single-attempt world)")
    max_attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        3, description="attempts per payment, the first included"
    )
    latency_budget_s: Annotated[float, Field(gt=0.0, le=float(b.DAY_S))] = Field(
        30.0, description="no attempt starts later than this after the payment arrived"
    )
    delays_s: tuple[Annotated[float, Field(gt=0.0, le=float(b.DAY_S))], ...] = Field(
        default=(2.0, 10.0, 60.0),
        min_length=1,
        max_length=8,
        description="the delays a 'later' retry may take",
    )
    attempt_fee_cents: b.Cents = Field(2, description="fee of each attempt after the first")
    networks: dict[str, NetworkRule] = Field(
        default={
            "visa": NetworkRule(max_retries=15, excess_fine_cents=10),
            "mastercard": NetworkRule(max_retries=10, excess_fine_cents=50, do_not_retry_fine_cents=50),
        },
        description="card network -> its reattempt rule (a network not listed fines nothing)",
    )
    patience_median_s: Annotated[float, Field(gt=0.0, le=float(b.DAY_S))] = Field(
        20.0,
        description="median time a payer waits for retries (lognormal); a retry starting later is abandoned",
    )
    patience_sigma: b.LogSigma = Field(0.7, description="log-scale spread of the payer's patience")
    source: str = ""
