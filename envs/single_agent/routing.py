"""``payroute/Routing-v0``: route each payment to a processor or rail.

The heart of payroute: a payment service provider's router, deciding for every payment which of the eligible
routes carries it, on the SimPy payment world with every other decision (risk, pricing, treasury, fraud) bound
to a baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from payroute.envs.features import RoutingFeatures
from payroute.envs.info import InfoKey, readonly, with_info_table
from payroute.envs.roles import RouterRole
from payroute.envs.roles.credit import STEP_CREDITS, ExpectedMargin, check_step_credit
from payroute.envs.scenarios import Scenario
from payroute.envs.single_agent.base import SingleAgentEnv
from payroute.envs.world.books import FINAL_KPIS, PAYMENT_FIELDS
from payroute.envs.world.decisions import DecisionPoint


class RoutingEnv(SingleAgentEnv):
    """Route each payment that needs a route.

    ## Description

    A payment service provider accepts card payments through three card processors and sends bank payouts on
    ACH (standard and Same Day), Fedwire, RTP, FedNow and two cross-border routes. Each step is one payment
    that has passed pricing and risk and now needs a route. Routes differ in cost (fee schedules, interchange),
    approval by payer segment (drifting slowly), latency and capacity, hours and cut-offs, limits and liquidity,
    and a hidden health process (up / degraded / down) the router sees only through outcomes.

    ## Action space

    ``Discrete(n_routes)``: the index of a route in the scenario's route order (``env.route_names``).
    Ineligible routes (wrong instrument, corridor or currency, over the limit, outside hours for routes that reject,
    not enough liquidity where the account fails when short) are masked. The mask is in ``info["action_mask"]``, in
    ``env.action_masks()`` (sb3-contrib MaskablePPO), and, for RLlib's action masking, in the ``action_mask`` key of
    the observation when ``dict_observation=True`` (the observation is then ``{"observations": Box, "action_mask":
    Box(0, 1, (n_routes,))}``, keys in the order the ``Dict`` space has). The terminal step's
    ``info["action_mask"]`` allows every action, as ``action_masks()`` does then: no payment waits, and the action a
    vector env's autoreset asks for next is ignored.
    A masked action declines the payment (terminal state ``declined``, reason ``invalid_action``; it costs what a
    decline costs) and the reward is reduced by ``invalid_penalty_usd``: a client that samples without the mask
    (Gymnasium's and SB3's checkers, DQN, A2C) learns to avoid it. ``invalid_action="raise"`` raises
    ``ValueError`` instead, naming the eligible routes: for debugging a client that should respect the mask.
    An action is a Python or NumPy integer or an integer array of one element; another type (``"1"``, ``2.5``,
    ``True``) raises ``TypeError`` and an index outside ``0..n_routes-1`` ``ValueError``.

    With the scenario's ``retries.enabled: true`` the router is also asked again about each card payment a route
    softly declined (a retry step, docs/world.md "Response codes and retries"): the action space becomes
    ``Discrete(n_routes + 2 + n_delays)`` (a route index: send there, or at a retry cascade there; then give up,
    the same route after each of ``retries.delays_s``, and a step-up), the observation gains the attempt number,
    the attempts and latency budget left, the last decline's reason and merchant advice, the reasons so far and
    the routes tried (:mod:`payroute.envs.roles.retry_steps`; ``docs/environments.md`` lists them), and the
    mask allows only what the world can carry out. The ``expected_margin`` credit values a retry answer as the
    oracle values retries (:func:`payroute.envs.baselines.routers.retry_values`; giving up is worth 0). With
    retries off (every shipped scenario) the spaces, observations and every number are unchanged.

    ## Observation space

    ``Box(low, high, (n_features,), float32)``; ``env.feature_names`` lists them, ``env.feature_schema()``
    gives each one's unit and scaling. For the default scenario (10 routes, 3 accounts) there are 115, listed one
    by one in ``docs/environments.md``:

    | group            | features                                                                  | scaling |
    |------------------|---------------------------------------------------------------------------|---------|
    | payment          | log amount; segment, instrument, network, urgency one-hots; cross-border;  | log(1+cents)/log(1+1e10); flags |
    |                  | foreign card; time to deadline; risk score, and as a normal quantile       | log(1+s)/log(1+7 d); 0..1; Phi^-1/8 |
    | calendar         | hour sin/cos; weekday; business day                                       | -1..1; /6; flag |
    | per route        | recent approval rate and count (last 200 outcomes), recent latency,       | share; /200; log(1+s)/log(1+1 d) |
    |                  | queue length, this payment's cost in bps, time to next cut-off, eligible, | /capacity; bps/10,000; h/24 |
    |                  | deadline slack: the deadline minus when the route gets it done (answered | signed log(1+s)/log(1+7 d); |
    |                  | or settled) at its median latency, by its published hours and windows;   | 0 where not eligible |
    |                  | expected fraud loss: the risk desk's P(fraud) given the score and the     | log(1+$)/log(1+$100k); |
    |                  | payment's cell, x what a fraud loses on the route (irrevocable: all)      | 0 where not eligible |
    | liquidity        | each prefunded account's balance relative to its target                   | clipped to [-5, 5] |

    Never the hidden route health, the true approval probabilities or whether the payment is fraud.

    ## Rewards

    Dollars (times ``reward_scale``), how chosen by ``credit`` and ``baseline`` (:mod:`payroute.envs.roles.credit`).
    Whatever the credit, the evaluation numbers count what really happened: the last step's ``info["kpis"]`` (the
    world's KPIs, the same as ``payroute simulate``'s).

    * ``credit="expected_margin"``, ``baseline="route_mean"`` (the defaults): each step is paid at once what its
      own decision is expected to earn, minus the mean over the payment's eligible routes. The expected margin of
      sending the payment on a route is valued at the instant of the decision knowing the routes' hidden state,
      as the oracle router values it: P(success) x (price − route cost − expected fraud loss) − the SLA penalty
      where the route cannot meet the deadline (− P(decline) x the decline charge with ``decline_cost=True``); the
      fraud loss is its expectation under the risk score's posterior, with base rates from every day this
      environment has simulated since its last seeded reset (``reset(seed=s)`` starts the history afresh, so
      the same seed gives the same rewards). A masked action earns nothing (the payment is declined) and costs
      ``invalid_penalty_usd``. The reward is a contextual bandit's: it depends only on this step's payment and
      action, has no delay and no coin flip (an approval, a fraud), and ``gamma=0`` loses nothing. The baseline
      does not depend on the action, so every policy gradient keeps its mean; what it removes is the payment's
      own size and price, which no route choice changes. Bias: what the oracle's valuation leaves out — the
      intraday credit cost of draining a prefunded account, queueing that other payments cause, a route's health
      changing between the decision and its answer, and the posterior's miscalibration on cells with little
      history. ``baseline="none"`` pays the expected margin itself (the episode's return is then the day's
      expected margin).
    * ``credit="resolved"``: the margin of the payments this agent routed whose outcomes resolved since its previous
      step — fee revenue − route cost − fraud loss (chargebacks, unrecovered returns, APP reimbursements) − SLA
      penalty − intraday credit cost — and, with ``decline_cost=True``, minus the margin a declined or failed
      payment would have earned (price − its route cost). Outcomes still open when the day ends (settlements,
      chargebacks) are resolved by draining the world and paid in the last step's reward, often hundreds of times a
      normal step's. Exact money, summed over the episode; but a step's reward is mostly other payments' outcomes,
      and a fraud of thousands of dollars lands days after the decision that let it through.

    ``decline_cost=True`` charges every declined or failed payment the margin it would have made (price − its
    route cost) on top of the margin it did not earn: approval then counts twice, and a router buys it with costlier
    processors. Off by default, as in every shipped router experiment: the reward is the margin the KPIs judge.

    ``payroute train`` (RLlib) pays a step its own payment's final margin once the day has drained (experiments'
    ``env.credit``: ``decision``, ``expected``, ``expected_outcome``; docs/experiments.md, Decision credit);
    the shipped routers trained with ``expected_outcome`` and the route baseline, whose mean is the expected margin
    above at the instant the route answers, with the coin of the route's answer taken out but the realised
    intraday credit cost and SLA penalty left in.

    ## Starting state and episode end

    ``reset`` starts a new world at midnight of the scenario's start date and runs to the first payment that needs a
    route. ``reset(seed=s)`` runs world seed ``s`` (the same customers as ``payroute simulate --seed s``); without a
    seed, the first reset runs the constructor's ``seed`` and later ones draw the next world seed from the generator
    seeded by the first seed given (:mod:`payroute.envs.episode`). A seeded reset also starts the step credit's
    fraud history afresh, so that the same seed gives the same rewards; ``reset(seed=s, options={"credit_history":
    "keep"})`` carries it on (a trainer that seeds every day). The episode terminates after ``days`` of arrivals
    (default one simulated day, about 10^5 payments at ``volume_scale`` 1); there is no truncation.

    ## Info

    Every key, generated from ``RoutingEnv.INFO_KEYS`` (:mod:`payroute.envs.info`): a number is an ``int`` or
    ``float`` of a fixed type, several numbers a numpy array of a fixed dtype, so a vector env stacks each into
    one numeric array (``transaction`` key by key); strings, ``route_names`` and ``outcomes`` stay objects.
    ``n_routes`` = ``len(env.route_names)``.

    ## Arguments

    ``gym.make("payroute/Routing-v0", scenario="processor_outage", seed=3, days=1.0, scenario_overrides=None,
    baselines={"risk": "threshold"}, invalid_action="penalize", invalid_penalty_usd=1.0, decline_cost=False,
    reward_scale=1.0, dict_observation=False, credit="expected_margin", baseline="route_mean")``

    ## Other libraries

    With its default arguments it passes Gymnasium's and SB3's ``check_env`` and works with SB3's
    ``make_vec_env`` (PPO, A2C, DQN, MaskablePPO), Gymnasium's vector envs in every autoreset mode, and RLlib's
    remote env runners by its plain id; in a process that has not imported payroute, write
    ``"payroute:payroute/Routing-v0"``. It pickles and deep-copies at any point (the copy replays the episode so
    far; :mod:`payroute.envs.replay`). ``docs/using_environments.md`` has the details.

    ## Version history

    * v0: initial release; the ``risk_z`` feature (the score's normal quantile) and each route's
      ``deadline_slack`` (whether its published hours, settlement windows and median latency get the payment
      done by its deadline) and ``expected_fraud_loss`` added before the first tagged release. Bundles carry their feature names, and a
      bundle from before them is refused with the difference.
    """

    masks_actions = True

    decision_kind = "route"
    credits = STEP_CREDITS
    """What ``credit`` may be (:mod:`payroute.envs.roles.credit`)."""

    def __init__(
        self,
        scenario: str | Path | Scenario = "default",
        seed: int | None = None,
        days: float = 1.0,
        scenario_overrides: dict[str, Any] | None = None,
        baselines: dict[str, str] | None = None,
        invalid_action: str = "penalize",
        invalid_penalty_usd: float = 1.0,
        decline_cost: bool = False,
        reward_scale: float = 1.0,
        dict_observation: bool = False,
        credit: str = "expected_margin",
        baseline: str = "route_mean",
        render_mode: str | None = None,
    ) -> None:
        if invalid_action not in ("raise", "penalize"):
            raise ValueError(f"invalid_action must be 'raise' or 'penalize', got {invalid_action!r}")
        check_step_credit(credit, baseline)
        self.credit, self.baseline = credit, baseline
        self.invalid_action = invalid_action
        self.invalid_penalty_cents = round(invalid_penalty_usd * 100)
        self.decline_cost = decline_cost
        self.dict_observation = dict_observation

        def router(sc: Scenario) -> RouterRole:
            return RouterRole(
                sc,
                mask_in_observation=dict_observation,
                invalid_action="decline" if invalid_action == "penalize" else "raise",
                invalid_penalty_cents=self.invalid_penalty_cents,
                decline_cost=decline_cost,
                record_outcomes=True,
                invalid_hint="Use info['action_mask'] or env.action_masks(), or make the env with "
                "invalid_action='penalize' (the default) to decline such a payment.",
            )

        super().__init__(
            scenario, seed, days, scenario_overrides, baselines, reward_scale, render_mode, role=router
        )
        self.route_names = self.role.route_names
        self._route_names = tuple(self.route_names)  # info: the same every step, immutable
        self._latency_s = readonly(np.array(self.role.route_latency_s, dtype=np.float64))
        self.feature_names = self.role.feature_names
        self._expected = ExpectedMargin(self.role, baseline=baseline) if credit == "expected_margin" else None

    # ------------------------------------------------------------------ what the router's role holds
    @property
    def features(self) -> RoutingFeatures | None:
        """The features bound to the current world (``None`` before the first reset)."""
        return self.role.observer

    @property
    def lost_cents_by_tx(self) -> dict[int, int]:
        """The decline charge of each payment this episode (decision credit reads it)."""
        return self.role.lost_cents_by_tx

    def decline_charge_cents(self, tx, route) -> int:
        """What a decline of ``tx`` on ``route`` is charged on top of the margin it did not earn (0 without
        ``decline_cost``): the margin the payment would have made there."""
        return self.role.decline_charge_cents(tx, route)

    def action_masks(self) -> np.ndarray:
        """The current eligible-route mask (bool), for sb3-contrib's MaskablePPO."""
        point = self.episode.point
        if point is None:
            return np.ones(self.action_space.n, dtype=bool)
        return self.role.mask(point.payload).astype(bool)

    def _open_credit(self, point: DecisionPoint, world_action: Any) -> Callable[[], float] | None:
        if self._expected is None:
            return None
        cents = self._expected.credit_cents(point, world_action)
        return lambda: cents

    # ------------------------------------------------------------------ info
    INFO_KEYS: tuple[InfoKey, ...] = (
        InfoKey(
            "action_mask",
            "np.int8",
            "1 = eligible",
            "eligible routes of the waiting payment, in action order (a new array each step); at the last step "
            "all ones, as `action_masks()`: no payment waits and the next action is ignored",
            when=("reset", "step", "terminal"),
            shape=("n_routes",),
        ),
        InfoKey(
            "route_costs_cents",
            "np.int64",
            "cents",
            "what each route would cost for this payment (fees, interchange); 0 where not eligible",
            shape=("n_routes",),
        ),
        InfoKey(
            "transaction",
            "dict",
            "",
            "the waiting payment",
            fields=(
                *PAYMENT_FIELDS,
                InfoKey(
                    "segment_index",
                    "int",
                    "",
                    "payer segment, in the scenario's `demand.segment_mix` order",
                ),
                InfoKey("network", "str", "", "card network (`visa`, ...); `''` for bank payments"),
                InfoKey(
                    "urgency", "str", "", "bank payouts: `standard`, `same_day`, `instant`; `''` for cards"
                ),
                InfoKey("cross_border", "bool", "", "payer and payee in different countries"),
            ),
        ),
        InfoKey(
            "outcomes",
            "list[dict]",
            "",
            "the outcomes of this agent's payments since the previous step (what a learning router such as "
            "`ucb` learns from); often empty; an object array in vector envs",
            fields=(
                InfoKey("route", "int", "", "the route index that carried it"),
                InfoKey("approved", "bool", "", "the route approved it (False: declined or failed)"),
                InfoKey("reason", "str", "", "why not approved (`''` if approved)"),
                InfoKey("segment_index", "int", "", "payer segment"),
                InfoKey("instrument", "str", "", "the payment's instrument"),
                InfoKey("network", "str", "", "the payment's network"),
                InfoKey("t", "float", "s", "simulated time of the outcome"),
            ),
        ),
        InfoKey(
            "t",
            "float",
            "s",
            "simulated time now, since the episode's start (midnight of its first day)",
        ),
        InfoKey("route_names", "tuple[str]", "", "route names in action order (the same every step)"),
        InfoKey(
            "route_latency_s",
            "np.float64",
            "s",
            "each route's median latency in the scenario (one read-only array, the same every step)",
            shape=("n_routes",),
        ),
        InfoKey(
            "route_open",
            "np.bool_",
            "",
            "whether each route is inside its operating hours now (read-only)",
            shape=("n_routes",),
        ),
        FINAL_KPIS,
    )
    """Every key of Routing-v0's ``info`` (the docstring's ``## Info`` table, docs/environments.md)."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._route_open_for = (math.inf, -math.inf)  # the times [from, until) _route_open_now holds for
        self._timed_routes: list = []
        self._route_open_now: list[bool] = []
        self._route_open_info: np.ndarray | None = None  # the read-only array of _route_open_now, once built
        return super().reset(seed=seed, options=options)

    def _route_open(self, now: float) -> np.ndarray:
        if not self._route_open_now:  # first call of an episode: the world's timed routes
            routes = self.world.routes
            self._timed_routes = [(r.index, r.open_state) for r in routes if r.hours_rule is not None]
            self._route_open_now = [True] * len(routes)
        since, until = self._route_open_for
        if not since <= now < until:
            is_open, until = self._route_open_now, math.inf
            for i, open_state in self._timed_routes:
                is_open[i], route_until = open_state(now)
                if route_until < until:
                    until = route_until
            self._route_open_for = (now, until)
            # a new array when the hours change, never the one handed out before (a client may keep it)
            self._route_open_info = readonly(np.array(is_open, dtype=np.bool_))
        return self._route_open_info

    def _info(self, point: DecisionPoint) -> dict:
        tx = point.payload
        retry = point.info.get("retry")
        if retry is not None:  # a retry decision (retries on): its payment
            tx = retry.tx
        features = self.role.observer
        if features.last_tx is tx and retry is None:  # the observation has just priced this payment
            costs = features.last_costs
        else:
            costs = [0] * len(self.route_names)
            for r in point.info["eligible"]:
                costs[r.index] = r.cost_cents(tx)
        role = self.role
        outcomes, role.outcomes = role.outcomes, []
        now = float(self.episode.world.env.now)  # info["t"]: always a float
        return {
            "action_mask": self.role.mask(point.payload),
            "route_costs_cents": np.array(costs, dtype=np.int64),
            "transaction": {
                "id": tx.id,
                "amount_cents": tx.amount_cents,
                "price_cents": tx.price_cents,
                "segment_index": tx.segment,
                "instrument": tx.instrument,
                "network": tx.network,
                "urgency": tx.urgency,
                "cross_border": tx.cross_border,
            },
            "outcomes": outcomes,
            "t": now,
            "route_names": self._route_names,
            "route_latency_s": self._latency_s,
            "route_open": self._route_open(now),
        }

    def _final_info(self) -> dict:
        # the episode is over: no payment waits, the next action (a vector env's autoreset step) is ignored, and
        # every action is allowed, as action_masks() says; a masked sampler must find at least one
        return {"action_mask": np.ones(self.action_space.n, dtype=np.int8), "kpis": self.world.kpis()}


RoutingEnv.__doc__ = with_info_table(RoutingEnv.__doc__, RoutingEnv.INFO_KEYS)
