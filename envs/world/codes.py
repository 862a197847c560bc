"""Response codes: why a route said no, and how a retry of the same payment is answered.

Every route answer gets a reason code (:class:`ResponseDesk`). Whether a payment is approved is decided
exactly as it always was (:meth:`RouteState.answer <payroute.envs.world.rails.RouteState.answer>` with the
payment's own uniform); the reason is drawn afterwards, from a separate generator, so adding codes moved no
other number. Card reasons:

==========================  ====  ===========================================================================
code                        kind  when
==========================  ====  ===========================================================================
``approved``                      the route approved
``insufficient_funds``      soft  issuer decline (Visa/Mastercard response code 51)
``do_not_honor``            soft  issuer decline without a stated reason (05)
``issuer_unavailable``      soft  issuer or processor timeout (91/96); every technical failure of a route
``authentication_required`` soft  the issuer wants strong customer authentication (1A / 65)
``try_again_later``         soft  temporary hold, velocity limit (Mastercard MAC 02 style)
``lost_stolen``             hard  card reported lost or stolen (41/43)
``invalid_account``         hard  no such card number (14)
``closed_account``          hard  account closed (46)
``suspected_fraud``         hard  the issuer suspects fraud (59; treated as never-retry here)
==========================  ====  ===========================================================================

An issuer decline draws its reason from the scenario's shares for the card type (credit or debit); a
fraudulent payment weights ``lost_stolen`` and ``suspected_fraud`` by ``fraud_hard_multiplier``. A route that
failed technically (``route_down``, ``route_error``) answers ``issuer_unavailable``. Mastercard declines carry
a merchant advice code: ``02`` (try later) for insufficient funds and holds, ``03`` (do not try again) for the
hard reasons and for a share of soft ones, ``01`` (new account information) for invalid accounts; ``21``
(recurring cancelled) never occurs, the world having no recurring payments. Bank payouts: ACH declines answer a
NACHA return reason (``R01``, ``R02``, ``R03``, ``R10``/``R29`` for unauthorised, weighted up for fraud), an
instant rail's or wire's reject the ISO 20022 reason of the same kind (``AM04``, ``AC04``, ``AC03``,
``FR01``); a failed rail answers ``rail_unavailable``.

Retries (:class:`RetryState`): every payment is dealt its retry uniforms on arrival, in arrival order, from a
stream of its own, so two policies on one seed give the same payment the same luck on its retries. The issuer approves a retry
after a soft reason with the scenario's recovery probability for the way it was retried (``cascade``,
``later``, ``step_up``), shifted on the logit scale by how much better or worse the new route is for this
payment than the one that declined it; a retried fraud is shifted further by ``retry_fraud_logit_offset``.
After a merchant advice of ``03``/``21`` no retry is approved. A retry the issuer declines repeats its
reason (a genuine payer's circumstances have not changed), a fraudulent one draws afresh.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from itertools import accumulate
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from payroute.envs.scenarios.retries import ACH_RETURN_CODES, CARD_HARD_CODES, CARD_SOFT_CODES
from payroute.envs.scenarios.schema import Scenario
from payroute.envs.world.rails import DOWN, logit, sigmoid

if TYPE_CHECKING:
    from payroute.envs.world.demand import Transaction
    from payroute.envs.world.rails import RouteState

__all__ = [
    "ACH_RETURN_CODES",
    "APPROVED",
    "CARD_CODES",
    "HARD_CODES",
    "SOFT_CODES",
    "ResponseDesk",
    "RetryState",
]

APPROVED = "approved"
CARD_CODES: tuple[str, ...] = (*CARD_SOFT_CODES, *CARD_HARD_CODES)
SOFT_CODES = frozenset(CARD_SOFT_CODES)
HARD_CODES = frozenset(CARD_HARD_CODES)
TECHNICAL = ("route_down", "route_error")
RAIL_UNAVAILABLE = "rail_unavailable"
ISO_REJECT = {"R01": "AM04", "R02": "AC04", "R03": "AC03", "R10": "FR01", "R29": "FR01"}
"""An instant rail's or wire's reject (ISO 20022 status reason) for the ACH return reason of the same kind."""
DO_NOT_RETRY_ADVICE = frozenset({"03", "21"})
_MASTERCARD_ADVICE = {
    "insufficient_funds": "02",
    "try_again_later": "02",
    "lost_stolen": "03",
    "closed_account": "03",
    "suspected_fraud": "03",
    "invalid_account": "01",
}
_FRAUD_CARD = ("lost_stolen", "suspected_fraud")
_FRAUD_ACH = ("R10", "R29")
RETRY_MODES = ("cascade", "later", "step_up")
_CODE_STREAM, _RETRY_STREAM = 2002, 2003  # side streams of the world's seed (see PaymentWorld)
_BLOCK = 4096
_NORMAL = NormalDist()


def _table(
    weights: dict[str, float], tilt: tuple[str, ...], multiplier: float
) -> tuple[list[float], list[str]]:
    """Cumulative normalised weights (the last exactly 1.0) and their codes, ``tilt`` codes times ``multiplier``."""
    codes = [c for c, w in weights.items() if w > 0]
    w = [weights[c] * (multiplier if c in tilt else 1.0) for c in codes]
    total = sum(w)
    cum = [x / total for x in accumulate(w)]
    cum[-1] = 1.0
    return cum, codes


class RetryState:
    """What the world remembers of a payment's attempts once it has been declined (retries enabled)."""

    __slots__ = (
        "uniforms", "next", "patience_s", "codes", "routes", "advice", "issuer_code", "issuer_z", "retries", "mode",
        "sla_missed",
    )  # fmt: skip

    def __init__(self, uniforms: list[float], patience_s: float) -> None:
        self.uniforms = uniforms
        self.next = 0
        self.patience_s = patience_s
        self.codes: list[str] = []  # every attempt's code, in order
        self.routes: list[int] = []  # every attempt's route index, in order
        self.advice = ""  # the last decline's merchant advice
        self.issuer_code: str | None = None  # the issuer's last reason (None: only technical failures so far)
        self.issuer_z = 0.0  # approval logit of the route whose issuer declined last, at that time
        self.retries = 0  # attempts after the first so far
        self.mode = "first"  # how the attempt under way was sent
        self.sla_missed = False

    def uniform(self) -> float:
        u = self.uniforms[self.next]
        self.next += 1
        return u


class ResponseDesk:
    """Draws every answer's reason code and answers retries; one per world."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        rc = scenario.response_codes
        self.scenario = scenario
        self.seed = seed
        self.rc = rc
        m = rc.fraud_hard_multiplier
        credit, debit = rc.credit_decline_shares.model_dump(), rc.debit_decline_shares.model_dump()
        # (debit, fraud) -> cumulative table
        self._card = {
            (False, False): _table(credit, (), 1.0),
            (False, True): _table(credit, _FRAUD_CARD, m),
            (True, False): _table(debit, (), 1.0),
            (True, True): _table(debit, _FRAUD_CARD, m),
        }
        ach = rc.ach_return_shares.model_dump()
        self._ach = {False: _table(ach, (), 1.0), True: _table(ach, _FRAUD_ACH, m)}
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CODE_STREAM,)))
        self._rows: list[list[float]] = []
        self._row = _BLOCK
        self._recovery_logit: dict[
            tuple[str, str], float
        ] = {}  # (reason, mode) -> logit of its recovery rate
        # retries on: every payment is also dealt its retry uniforms (its payer's patience, then four per retry:
        # approval, reason, advice, step-up) from a second stream, so the code uniforms stay the same either way
        retries = scenario.retries
        self._retry_width = 1 + 4 * (retries.max_attempts - 1) if retries.enabled else 0
        if self._retry_width:
            self._retry_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_RETRY_STREAM,)))
            self._retry_rows: list[list[float]] = []

    # ------------------------------------------------------------------ every payment
    def deal(self, tx: Transaction) -> None:
        """Give a new payment its two code uniforms (in arrival order, whatever happens to it later)."""
        if self._row == _BLOCK:
            self._rows = self._rng.random((_BLOCK, 2)).tolist()
            if self._retry_width:
                self._retry_rows = self._retry_rng.random((_BLOCK, self._retry_width)).tolist()
            self._row = 0
        tx.u_code, tx.u_advice = self._rows[self._row]
        if self._retry_width:
            tx.u_retry = self._retry_rows[self._row]
        self._row += 1

    def card_code(self, tx: Transaction, why: str, u_code: float, u_advice: float) -> tuple[str, str]:
        """The reason and merchant advice of a card route's ``(False, why)`` answer."""
        if why in TECHNICAL:
            code = "issuer_unavailable"
        else:
            cum, codes = self._card[(tx.instrument == "card_debit", tx.is_fraud)]
            code = codes[bisect_right(cum, u_code)] if u_code < 1.0 else codes[-1]
        return code, self.advice(tx, code, u_advice)

    def advice(self, tx: Transaction, code: str, u_advice: float) -> str:
        if tx.network != "mastercard" or code == "issuer_unavailable":
            return ""
        if code in SOFT_CODES and u_advice < self.rc.mastercard_do_not_retry_share:
            return "03"
        return _MASTERCARD_ADVICE.get(code, "")

    def bank_code(self, tx: Transaction, route: RouteState, why: str) -> str:
        """The return (ACH) or reject (other bank rails) reason of a bank route's ``(False, why)`` answer."""
        if why in TECHNICAL:
            return RAIL_UNAVAILABLE
        cum, codes = self._ach[tx.is_fraud]
        code = codes[bisect_right(cum, tx.u_code)] if tx.u_code < 1.0 else codes[-1]
        return code if route.rail == "ach" else ISO_REJECT[code]

    # ------------------------------------------------------------------ retries
    def retry_state(self, tx: Transaction) -> RetryState:
        """The payment's retry memory, made at its first decline: its own uniforms and its payer's patience."""
        st = tx.retry
        if st is None:
            uniforms = tx.u_retry
            r = self.scenario.retries
            z = _NORMAL.inv_cdf(min(max(uniforms[0], 1e-12), 1 - 1e-12))
            st = tx.retry = RetryState(uniforms, r.patience_median_s * math.exp(r.patience_sigma * z))
            st.next = 1
        return st

    def remember(self, tx: Transaction, route: RouteState, why: str, code: str, advice: str) -> None:
        """Record a declined attempt in the payment's retry memory."""
        st = tx.retry
        st.advice = advice
        if why not in TECHNICAL:
            st.issuer_code = code
            st.issuer_z = logit(route.approval_probability(tx))

    def retry_answer(self, tx: Transaction, route: RouteState, mode: str) -> tuple[bool, str]:
        """How ``route`` answers a retry of ``tx`` sent by ``mode`` (``cascade``, ``later``, ``step_up``)."""
        st = tx.retry
        u = st.uniform()
        if route.health_now == DOWN:
            return False, "route_down"
        p = self.retry_approval(tx, route, mode)
        success = p
        if route.health_now != 0:  # degraded
            success = p * (1.0 - route.spec.health.degraded_failure_probability)
        if u < success:
            return True, ""
        return False, ("route_error" if u < p else "declined")

    def retry_approval(self, tx: Transaction, route: RouteState, mode: str) -> float:
        """The probability the issuer approves a retry of ``tx`` (already declined) on ``route`` sent by ``mode``,
        the route's health aside (see the module docstring)."""
        st = tx.retry
        p_route = route.approval_probability(tx)
        if st.issuer_code is None:
            return p_route  # the issuer has not answered yet: a fresh authorisation
        if st.advice in DO_NOT_RETRY_ADVICE:
            return 0.0
        key = (st.issuer_code, mode)
        recovery = self._recovery_logit.get(key)
        if recovery is None:
            recovery = self._recovery_logit[key] = logit(getattr(getattr(self.rc.recovery, key[0]), mode))
        z = recovery + logit(p_route) - st.issuer_z
        if tx.is_fraud:
            z += self.rc.retry_fraud_logit_offset
        return sigmoid(z)

    def retry_success(self, tx: Transaction, route: RouteState, mode: str) -> float:
        """The probability a retry of ``tx`` on ``route`` sent by ``mode`` now is approved, the route's hidden
        health included (what the oracle routes retries by)."""
        if route.health_now == DOWN:
            return 0.0
        p = self.retry_approval(tx, route, mode)
        if route.health_now != 0:  # degraded
            p *= 1.0 - route.spec.health.degraded_failure_probability
        return p

    def retry_code(self, tx: Transaction, why: str) -> tuple[str, str]:
        """The reason and advice of a declined retry (see the module docstring)."""
        st = tx.retry
        u_code, u_advice = st.uniform(), st.uniform()
        if why in TECHNICAL:
            return self.card_code(tx, why, u_code, u_advice)
        if st.issuer_code is not None and not tx.is_fraud:
            return st.issuer_code, st.advice
        return self.card_code(tx, why, u_code, u_advice)
