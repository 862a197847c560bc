"""Routers that decide again after a soft decline: what orchestrators do with a response code.

With the scenario's ``retries.enabled``, the world puts a softly declined card payment back to a router that
says it understands retries (``handles_retries = True``): the payload is a
:class:`~payroute.envs.world.decisions.RetryRequest` and the answer a
:class:`~payroute.envs.world.decisions.RetryAction` (docs/world.md, "Response codes and retries"). A hard
decline is never put to a router. Each router below routes the first attempt as its single-attempt sibling does
and differs in what it does next; with retries off each gives its sibling's numbers.

===================  ====================================================================================
``no_retry``         ``success_rate``'s first choice; gives up on every soft decline: the single-attempt
                     world, the pair that measures what ``sr_cascade``'s retries add
``static_cascade``   a static priority list (the scenario's route order): the first eligible route, and after
                     a soft decline the next eligible route on the list not tried yet; gives up when none is
                     left or the card network advised not to retry (Mastercard MAC 03/21)
``sr_cascade``       success-rate cascade by response code: ``success_rate``'s first choice; after a soft
                     decline the eligible untried route with the best recent success rate *on retries after
                     the same code family* (issuer timeouts, issuer declines, insufficient funds,
                     authentication), a window per family x route starting optimistic; a step-up on the same
                     route for ``authentication_required``; gives up after a do-not-retry advice
``decision_engine``  juspay/decision-engine's SR-v3 router with its defaults (:class:`DecisionEngineRouter`),
                     cascading to the best-scored untried route after a soft decline
``volume_sr``        ``decision_engine`` with its window and exploration sized from live traffic, as
                     decision-engine's autopilot does (:class:`VolumeAwareRouter`)
===================  ====================================================================================

The oracle (:class:`~payroute.envs.baselines.routers.OracleRouter`) answers retries too, knowing each route's
true approval of this payment on this attempt.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from payroute.envs.baselines.routers import STEP_UP, LearningRouter, RouteChoice, SuccessRateRouter
from payroute.envs.baselines.rules import PriorityRoute, retry_step
from payroute.envs.world.codes import DO_NOT_RETRY_ADVICE
from payroute.envs.world.decisions import GIVE_UP, RetryAction, RetryRequest
from payroute.envs.world.demand import Transaction

CODE_FAMILY = {
    "issuer_unavailable": "technical",
    "do_not_honor": "issuer",
    "try_again_later": "issuer",
    "insufficient_funds": "funds",
    "authentication_required": "authentication",
}
"""The soft reason codes by the family a success-rate cascade keeps its statistics for."""


def untried(request: RetryRequest) -> list:
    """The eligible routes the payment has not been sent to yet, in route order."""
    tried = set(request.routes)
    return [r for r in request.eligible if r.index not in tried]


class NoRetryRouter(SuccessRateRouter):
    """``success_rate`` that says it understands retries and gives up on every one (the single-attempt world)."""

    handles_retries = True

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if isinstance(payload, RetryRequest):
            return GIVE_UP, 1.0
        return super().decide(world, payload)


class StaticCascadeRouter(PriorityRoute):
    """A static priority list, cascading down it after a soft decline (see the module docstring)."""

    handles_retries = True

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if not isinstance(payload, RetryRequest):
            return super().decide(world, payload)
        if payload.merchant_advice in DO_NOT_RETRY_ADVICE:
            return GIVE_UP, 1.0
        options = untried(payload)
        if not options:
            return GIVE_UP, 1.0
        rank = self._rank
        best = min(options, key=lambda r: rank.get(r.index, 10_000 + r.index))
        return RetryAction("cascade", best.index), 1.0

    def act(self, observation: Any, info: dict) -> int:
        """As a plain Routing-v0 policy: at a retry step the first allowed route on the list (the mask leaves out
        the route that declined; routes tried before may come again), else give up."""
        if not retry_step(info):
            return super().act(observation, info)
        names = info["route_names"]
        rank = {names.index(n): i for i, n in enumerate(self.order or names)}
        allowed = np.flatnonzero(info["action_mask"][: len(names)])
        return int(min(allowed, key=lambda i: rank.get(i, 10_000 + i))) if len(allowed) else len(names)


def _cascade_by(score: Any, info: dict) -> int:
    """A retry step as a plain policy: the allowed route of highest ``score(route)`` (the first of equals), or give
    up if none is allowed."""
    n = len(info["route_names"])
    allowed = [int(i) for i in np.flatnonzero(info["action_mask"][:n])]
    if not allowed:
        return n
    return max(allowed, key=lambda r: (score(r), -r))


class SuccessRateCascadeRouter(SuccessRateRouter):
    """Success-rate routing, then a cascade by response code (see the module docstring).

    The retry statistics: per (code family, route) a window of the last ``retry_window`` outcomes of
    cascades sent to that route after a decline of that family, starting with ``optimistic_prior`` imaginary
    successes, as ``success_rate``'s windows do. Ties go to the route's first-attempt success rate, then to
    route order. Retries are decided deterministically (propensity 1).
    """

    handles_retries = True

    def __init__(self, retry_window: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_window = retry_window

    def reset_state(self, n_routes: int) -> None:
        super().reset_state(n_routes)
        self.retry_windows: dict[tuple[str, int], deque] = {}
        self.retry_sums: dict[tuple[str, int], int] = {}

    def _on_outcome(self, tx: Transaction, route: Any, approved: bool, reason: str) -> None:
        super()._on_outcome(tx, route, approved, reason)
        st = tx.retry
        if tx.attempt > 1 and st is not None and st.mode == "cascade" and len(st.codes) >= 2:
            family = CODE_FAMILY.get(st.codes[-2])
            if family is not None:
                self.record_retry(family, route.index, approved)

    def record_retry(self, family: str, route: int, approved: bool) -> None:
        """One cascade's outcome after a decline of ``family``, on ``route``."""
        k = (family, route)
        w = self.retry_windows.get(k)
        if w is None:
            w = self.retry_windows[k] = deque()
            self.retry_sums[k] = 0
        w.append(1 if approved else 0)
        self.retry_sums[k] += 1 if approved else 0
        if len(w) > self.retry_window:
            self.retry_sums[k] -= w.popleft()

    def retry_score(self, family: str, route: int) -> float:
        """The recent success rate of cascades to ``route`` after a ``family`` decline (optimistic start)."""
        w = self.retry_windows.get((family, route))
        n = len(w) if w else 0
        prior = max(self.optimistic_prior - n, 0)
        return (self.retry_sums.get((family, route), 0) + prior) / (n + prior)

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if not isinstance(payload, RetryRequest):
            return super().decide(world, payload)
        if payload.merchant_advice in DO_NOT_RETRY_ADVICE:
            return GIVE_UP, 1.0
        code = payload.codes[-1]
        if code == "authentication_required":
            return STEP_UP, 1.0
        family = CODE_FAMILY.get(code)
        options = untried(payload)
        if family is None or not options:
            return GIVE_UP, 1.0
        tx = payload.tx
        key = (tx.segment, tx.instrument, tx.network)
        best = max(
            options, key=lambda r: (self.retry_score(family, r.index), self.score(key, r.index), -r.index)
        )
        return RetryAction("cascade", best.index), 1.0

    def act_retry(self, info: dict) -> int:
        """As a plain Routing-v0 policy (the info carries no reason code): the allowed route with the best
        first-attempt success rate, else give up."""
        t = info["transaction"]
        key = (int(t["segment_index"]), t["instrument"], t["network"])
        return _cascade_by(lambda r: self.score(key, r), info)


class DecisionEngineRouter(LearningRouter):
    """juspay/decision-engine's success-rate router (SR v3) with its shipped defaults, and its elimination.

    Read from juspay/decision-engine (commit 6fe37d9):

    * ``src/decider/gatewaydecider/constants.rs``: ``DEFAULT_SR_V3_BASED_BUCKET_SIZE = 125``,
      ``DEFAULT_SR_V3_BASED_UPPER_RESET_FACTOR = 3.0``, ``DEFAULT_SR_V3_BASED_LOWER_RESET_FACTOR = 3.0``,
      ``DEFAULT_SR_V3_BASED_HEDGING_PERCENT = 5.0``, ``DEFAULT_SR_BASED_GATEWAY_ELIMINATION_THRESHOLD = 0.05``.
    * ``src/feedback/gateway_selection_scoring_v3/flow.rs``: a new gateway x payment-method key starts with a
      bucket of 125 ones (optimistic); each outcome is pushed and the bucket keeps the last 125.
    * ``src/decider/gatewaydecider/gw_scoring.rs``: the score is the bucket's mean
      (``get_score_from_redis``); ``reset_sr_v3_score``: with the leader's score m and
      sigma = sqrt(max(m(1 - m), 0.09) / 125), a gateway below m - 3 sigma gets a fresh bucket holding
      clamp(floor((1 - m + 3 sigma) x 125), 2, 125) zeros spread evenly among ones, i.e. a score just below
      the leader's band; ``route_random_traffic``: 5% of the time the non-leaders score 1.0 and the leader
      0.5, so a non-leader is tried (here: uniformly among them).
    * ``src/feedback/gateway_elimination_scoring/flow.rs`` with ``src/feedback/constants.rs``: the elimination
      score starts at 1.0, and each outcome multiplies it by 1 + 5.26% on success (capped at 1.0) or 1 - 5%
      on a failure (``getSuccessKeyScore``, ``getFailureKeyScore``, ``defaultGWScoringRewardFactor``,
      ``defaultGWScoringPenaltyFactor``); a gateway whose score is below the 0.05 threshold is eliminated
      (``cs < et`` in ``gw_scoring.rs``).

    Here a gateway is a route and a payment method the payment's instrument and network. An eliminated route is
    left out of the leader's choice unless every candidate is eliminated; hedged traffic may still reach it, so
    it can earn its way back (decision-engine's outage TTLs and soft resets are not modelled). After a soft
    decline it cascades to the best-scored eligible route not yet tried, without hedging (the orchestrator asks
    the decider again with the tried gateways removed), and gives up after a do-not-retry advice. What differs
    from ``success_rate``: the window (125, per gateway x payment method, not per segment), the reset (3 sigma
    below the leader, to just below it, not a fixed gap to a fully optimistic window), hedging (to non-leaders
    only) and elimination (a decaying score, not a burst of technical failures).
    """

    handles_retries = True

    def __init__(
        self,
        bucket_size: int = 125,
        upper_reset_factor: float = 3.0,
        lower_reset_factor: float = 3.0,
        hedging_percent: float = 5.0,
        reward_factor: float = 5.26,
        penalty_factor: float = 5.0,
        elimination_threshold: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.bucket_size = bucket_size
        self.upper_reset_factor = upper_reset_factor
        self.lower_reset_factor = lower_reset_factor
        self.hedge_share = hedging_percent / 100.0
        self.reward_factor = reward_factor
        self.penalty_factor = penalty_factor
        self.elimination_threshold = elimination_threshold

    def reset_state(self, n_routes: int) -> None:
        super().reset_state(n_routes)
        self.buckets: dict[tuple, deque] = {}
        self.sums: dict[tuple, int] = {}
        self.elimination = [1.0] * n_routes
        self._reset_for: dict[tuple[float, int], tuple[tuple[int, ...], int, float]] = {}
        self.bucket_sizes: dict[tuple, int] = {}  # payment method -> its bucket size, where not the default
        self.hedge_shares: dict[
            tuple, float
        ] = {}  # payment method -> its hedging share, where not the default

    @staticmethod
    def method(key: tuple) -> tuple:
        """The payment method of a router key ``(segment, instrument, network)``: instrument and network."""
        return key[1], key[2]

    def _bucket(self, k: tuple) -> deque:
        b = self.buckets.get(k)
        if b is None:  # a new key starts with a full bucket of successes
            size = self.bucket_sizes.get(k[0], self.bucket_size)
            b = self.buckets[k] = deque([1] * size)
            self.sums[k] = size
        return b

    def score(self, method: tuple, route: int) -> float:
        k = (method, route)
        b = self.buckets.get(k)
        return self.sums[k] / len(b) if b else 1.0

    def update(self, key: tuple, route: int, approved: bool, reason: str, t: float) -> None:
        method = self.method(key)
        k = (method, route)
        b = self._bucket(k)
        b.append(1 if approved else 0)
        self.sums[k] += 1 if approved else 0
        size = self.bucket_sizes.get(method, self.bucket_size)
        while len(b) > size:  # resized in place: the oldest outcomes go
            self.sums[k] -= b.popleft()
        e = self.elimination[route]
        if approved:
            e = min(e * (1.0 + self.reward_factor / 100.0), 1.0)
        else:
            e = max(e * (1.0 - self.penalty_factor / 100.0), 0.0)
        self.elimination[route] = e

    def reset_bucket(self, leader_score: float, n: int = 0) -> tuple[list[int], float]:
        """The bucket (of ``n`` outcomes; the default bucket size if 0) a route far below the leader is reset to,
        and the threshold below which it is."""
        n = n or self.bucket_size
        sigma = math.sqrt(max(leader_score * (1.0 - leader_score), 0.09) / n)
        threshold = leader_score - self.upper_reset_factor * sigma
        zeros = min(max(math.floor((1.0 - leader_score + self.lower_reset_factor * sigma) * n), 2), n)
        gap = (n - 1) / (zeros - 1)
        bucket, placed = [], 0
        for j in range(n):  # zeros spread evenly, as decision-engine's fold lays them out
            if j >= placed * gap:
                bucket.append(0)
                placed += 1
            else:
                bucket.append(1)
        bucket.reverse()
        return bucket, threshold

    def _scores(self, method: tuple, cands: list[int]) -> list[float]:
        """The candidates' scores after decision-engine's reset of those far below the leader."""
        scores = [self.score(method, r) for r in cands]
        leader = max(scores)
        size = self.bucket_sizes.get(method, self.bucket_size)
        reset = self._reset_for.get((leader, size))
        if reset is None:
            bucket, threshold = self.reset_bucket(leader, size)
            reset = self._reset_for[(leader, size)] = (tuple(bucket), sum(bucket), threshold)
        bucket, ones, threshold = reset
        for i, (s, r) in enumerate(zip(scores, cands, strict=True)):
            if s < threshold:
                k = (method, r)
                self.buckets[k] = deque(bucket)
                self.sums[k] = ones
                scores[i] = ones / len(bucket)
        return scores

    def _leader(self, method: tuple, cands: list[int]) -> int:
        """The best-scored candidate (the first of equals) after the reset, among those not eliminated (all of
        them if every one is): decision-engine scores first, then filters by elimination."""
        scores = self._scores(method, cands)
        threshold = self.elimination_threshold
        live = [(s, r) for s, r in zip(scores, cands, strict=True) if self.elimination[r] >= threshold]
        live = live or list(zip(scores, cands, strict=True))
        top = max(s for s, _ in live)
        return next(r for s, r in live if s == top)

    def choose(self, c: RouteChoice, t: float) -> tuple[int, float]:
        method = self.method(c.key)
        cands = list(c.eligible)
        best = self._leader(method, cands)
        others = [r for r in cands if r != best]
        hedge = self.hedge_shares.get(method, self.hedge_share)
        if not others or hedge <= 0:
            return best, 1.0
        if self.rng.random() < hedge:
            return others[int(self.rng.integers(len(others)))], hedge / len(others)
        return best, 1.0 - hedge

    def decide(self, world: Any, payload: Any) -> tuple[Any, float]:
        if not isinstance(payload, RetryRequest):
            return super().decide(world, payload)
        if payload.merchant_advice in DO_NOT_RETRY_ADVICE:
            return GIVE_UP, 1.0
        options = [r.index for r in untried(payload)]
        if not options:
            return GIVE_UP, 1.0
        tx = payload.tx
        return RetryAction("cascade", self._leader((tx.instrument, tx.network), options)), 1.0

    def act_retry(self, info: dict) -> int:
        """As a plain Routing-v0 policy: the best-scored allowed route, else give up."""
        t = info["transaction"]
        return _cascade_by(lambda r: self.score((t["instrument"], t["network"]), r), info)


class VolumeAwareRouter(DecisionEngineRouter):
    """:class:`DecisionEngineRouter` whose window and exploration are sized from live traffic, as
    juspay/decision-engine's autopilot does (``src/sr_auto_calibration.rs``, ``auto_bucket`` and
    ``auto_hedge_pct``, with its production defaults).

    Every ``interval_s`` (900) of simulated time, for each payment method with at least ``min_volume`` (100)
    payments in the trailing ``lookback_s`` (3600) and n >= 2 routes: the bucket B = 5 sqrt(V / (n - 1))
    rounded to 25 and clamped to [100, 2000] (V: the payments of the lookback); the hedging share per
    non-leader = B / (the volume of a ``reaction_horizon_s`` of 3600 at the lookback's rate), clamped to
    [1%, 30% / (n - 1)], in all at most 30%. A bucket is resized in place (the oldest outcomes go); B moves only
    by whole steps of 25, and hedging only by a point or more (the source's deadbands). Methods below the volume
    keep decision-engine's defaults (125, 5%). n is the most eligible routes a payment of the method has had.
    """

    def __init__(
        self,
        interval_s: float = 900.0,
        lookback_s: float = 3600.0,
        reaction_horizon_s: float = 3600.0,
        min_volume: int = 100,
        min_bucket: int = 100,
        max_bucket: int = 2000,
        max_hedging_percent: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.interval_s = interval_s
        self.lookback_s = lookback_s
        self.reaction_horizon_s = reaction_horizon_s
        self.min_volume = min_volume
        self.min_bucket = min_bucket
        self.max_bucket = max_bucket
        self.max_hedge = max_hedging_percent / 100.0

    def reset_state(self, n_routes: int) -> None:
        super().reset_state(n_routes)
        self.arrivals: dict[tuple, deque] = {}  # payment method -> times of its payments in the lookback
        self.gateways: dict[tuple, int] = {}
        self.next_calibration = self.interval_s

    def calibrated(self, volume: int, gateways: int) -> tuple[int, float]:
        """(bucket size, total hedging share) for ``volume`` payments over the lookback on ``gateways`` routes."""
        n1 = gateways - 1
        bucket = round(5.0 * math.sqrt(volume / n1) / 25.0) * 25
        bucket = min(max(bucket, self.min_bucket), self.max_bucket)
        in_horizon = volume * self.reaction_horizon_s / self.lookback_s
        per_route = min(bucket / in_horizon, self.max_hedge / n1)
        per_route = max(per_route, 0.01)
        return bucket, round(min(per_route * n1, self.max_hedge), 4)

    def calibrate(self, t: float) -> None:
        """Size every payment method's window and exploration from the lookback's traffic."""
        for method, times in self.arrivals.items():
            while times and times[0] < t - self.lookback_s:
                times.popleft()
            volume, gateways = len(times), self.gateways.get(method, 0)
            if volume < self.min_volume or gateways < 2:
                continue
            bucket, hedge = self.calibrated(volume, gateways)
            if abs(bucket - self.bucket_sizes.get(method, self.bucket_size)) >= 25:
                self.bucket_sizes[method] = bucket
            if abs(hedge - self.hedge_shares.get(method, self.hedge_share)) >= 0.01:
                self.hedge_shares[method] = hedge

    def choose(self, c: RouteChoice, t: float) -> tuple[int, float]:
        if t >= self.next_calibration:
            self.calibrate(t)
            self.next_calibration = (math.floor(t / self.interval_s) + 1) * self.interval_s
        method = self.method(c.key)
        times = self.arrivals.get(method)
        if times is None:
            times = self.arrivals[method] = deque()
        times.append(t)
        if len(c.eligible) > self.gateways.get(method, 0):
            self.gateways[method] = len(c.eligible)
        return super().choose(c, t)


RETRY_ROUTERS = {
    "no_retry": NoRetryRouter,
    "static_cascade": StaticCascadeRouter,
    "sr_cascade": SuccessRateCascadeRouter,
    "decision_engine": DecisionEngineRouter,
    "volume_sr": VolumeAwareRouter,
}
"""Routers that answer retry decisions (and route first attempts), by name."""
