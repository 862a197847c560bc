"""One payment's life: quote, risk, route, send, settle.

A genuine payer is quoted first (:meth:`~payroute.envs.world.market.Market.quote`) and may walk away; a
fraudster pays whatever the price in force is. The risk desk then allows the payment, challenges it (a
step-up that costs the PSP; a fraudster fails it, a genuine payer may abandon) or blocks it. The router picks
one of the routes eligible for it now. None of this takes simulated time: the decisions are asked of the
:class:`~payroute.envs.world.decisions.DecisionHub`, which waits for an outside agent if one answers them.

On its route (:meth:`Payments.send`) the payment waits for the route to open, for funds in the route's
settlement account, and for a free processing slot; it takes its latency; then the route approves or declines
it, or fails it when its hidden health is bad (:meth:`~payroute.envs.world.rails.RouteState.answer`).
Approved card payments are captured at once and settle in the processor's hourly batch after the settlement
delay; bank payouts settle when their rail settles (ACH at its window). A settled fraud is handed to
:class:`~payroute.envs.world.discovery.Discovery`.

Every answer carries a reason code (:mod:`payroute.envs.world.codes`). With the scenario's ``retries`` enabled,
a card payment softly declined goes back to the router (:meth:`Payments.retry`), which may send it again on
another route now, on the same route after a delay, after a step-up challenge, or give up; each extra attempt
pays the scenario's fee, and network fines where the card network's rule is broken. The payer waits for the
retries only as long as their patience lasts. A payment still ends in exactly one terminal state.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from payroute.envs.scenarios.schema import Scenario
from payroute.envs.world.books import Books
from payroute.envs.world.clock import DAY_S, HOUR_S
from payroute.envs.world.codes import APPROVED, DO_NOT_RETRY_ADVICE, SOFT_CODES, ResponseDesk
from payroute.envs.world.decisions import (
    ALLOW,
    BLOCK,
    CHALLENGE,
    RETRY_KINDS,
    DecisionHub,
    InvalidActionError,
    RetryAction,
    RetryRequest,
)
from payroute.envs.world.demand import Transaction
from payroute.envs.world.discovery import Discovery
from payroute.envs.world.liquidity import Liquidity
from payroute.envs.world.market import Market
from payroute.envs.world.rails import RouteState


class Payments:
    """Takes each payment from its quote to its terminal state; owns the routes' queues and card batches."""

    def __init__(
        self,
        scenario: Scenario,
        routes: list[RouteState],
        hub: DecisionHub,
        books: Books,
        liquidity: Liquidity,
        discovery: Discovery,
        market: Market,
        arrivals_open: Callable[[], bool],
        seed: int = 0,
    ) -> None:
        self.env = books.env
        self.scenario = scenario
        self.routes = routes
        self.hub = hub
        self.books = books
        self.liquidity = liquidity
        self.discovery = discovery
        self.market = market
        self.arrivals_open = arrivals_open
        for r in routes:
            r.account = liquidity.accounts[r.prefunded_account] if r.prefunded_account else None
            r.unsettled = deque()
            r.settling = False  # is the route's batch settlement process running
        self._static_eligible: dict[tuple[str, bool, str], list[RouteState]] = {}
        # +1 whenever a payment joins or leaves a route's queue (observers skip re-reading unchanged queues)
        self.queue_version = 0
        # called as listener(tx, route, approved, reason) when a route answers
        self.outcome_listeners: list[Callable[[Transaction, RouteState, bool, str], None]] = []
        # the pricer is credited with every payment it priced, when someone sets prices
        self.pricing_agents: tuple[str, ...] = (hub.agent_ids["price"],) if hub.answers("price") else ()
        self.codes = ResponseDesk(scenario, seed)
        self.retries_on = scenario.retries.enabled
        self.log_attempts = self.retries_on and books.log is not None
        self.ach_return_days = scenario.response_codes.ach_return_business_days

    # ------------------------------------------------------------------ quote, risk, route
    def eligible_routes(self, tx: Transaction) -> list[RouteState]:
        """Routes that may carry ``tx`` now: instrument, corridor, currency, limit, hours, liquidity."""
        key = (tx.instrument, tx.cross_border, tx.currency)
        static = self._static_eligible.get(key)
        if static is None:
            corridor = "cross_border" if tx.cross_border else "domestic"
            static = [
                r for r in self.routes
                if tx.instrument in r.instruments and corridor in r.corridors and tx.currency in r.currencies
            ]  # fmt: skip
            self._static_eligible[key] = static
        now = self.env.now
        out = []
        for r in static:
            if r.limit_cents is not None and tx.amount_cents > r.limit_cents:
                continue
            if r.hours_rule is not None and not r.accepts_now(now):
                continue
            acct = r.account
            if acct is not None and acct.when_short == "fail" and not acct.can_cover(tx.amount_cents):
                continue
            out.append(r)
        return out

    def admit(self, tx: Transaction):
        """Price, risk and route decisions (no simulated time passes), then hand the payment to its route."""
        hub, books = self.hub, self.books
        if tx.is_fraud:
            tx.price_cents = self.market.price_for(tx)
        elif not self.market.quote(tx):
            books.terminate(tx, "abandoned", "price")
            return

        # risk
        action, prop = yield from hub.ask("risk", tx)
        if action not in (ALLOW, CHALLENGE, BLOCK):
            raise InvalidActionError(
                f"risk action must be 0 (allow), 1 (challenge) or 2 (block), got {action!r}"
            )
        tx.risk_action = int(action)
        tx.risk_propensity = prop
        tx.agents = (*self.pricing_agents, hub.agent_ids["risk"])
        if action == BLOCK:
            books.terminate(tx, "blocked", "risk")
            return
        if action == CHALLENGE:
            cost = self.scenario.risk.challenge_cost_cents
            books.book(tx, "challenge_cost", cost, "bank:operating")
            if tx.is_fraud:
                if tx.u_challenge >= self.scenario.fraud.patterns[tx.pattern].challenge_pass_probability:
                    books.terminate(tx, "blocked", "challenge_failed")
                    return
            elif tx.u_challenge < self.scenario.risk.challenge_abandon_probability:
                books.terminate(tx, "abandoned", "challenge")
                return

        # route
        eligible = self.eligible_routes(tx)
        mask = 0
        for r in eligible:
            mask |= 1 << r.index
        tx.eligible_mask = mask
        if not eligible:
            books.terminate(tx, "failed", "no_route")
            return
        action, prop = yield from hub.ask("route", (tx, eligible), shown=tx, info={"eligible": eligible})
        tx.agents = (*tx.agents, hub.agent_ids["route"])
        action = int(action)
        if action == -1 and hub.is_external("route"):
            # an outside router that cannot mask chose an ineligible route: the payment is declined
            books.terminate(tx, "declined", "invalid_action")
            return
        if not (0 <= action < len(self.routes)) or not (mask >> action) & 1:
            raise InvalidActionError(
                f"route {action} is not eligible for transaction {tx.id}; eligible: {[r.index for r in eligible]}"
            )
        tx.route = action
        tx.route_propensity = prop
        tx.sequence_propensity = prop
        tx.attempt = 1
        route = self.routes[action]
        books.route_counts[route.name] += 1
        self.env.process(self.send(tx, route))

    # ------------------------------------------------------------------ send and settle
    def send(self, tx: Transaction, route: RouteState):
        """The payment on its route: hours, liquidity, capacity, latency, outcome, settlement."""
        env, books, liquidity = self.env, self.books, self.liquidity
        route.count_submission(tx.month_key)
        if route.hours_rule is not None and not route.is_open(env.now):
            opens = route.next_open_time(env.now)
            if opens > tx.deadline_t:
                yield env.timeout(max(tx.deadline_t - env.now, 0.0))
                books.expire(tx, "closed")
                return
            yield env.timeout(opens - env.now)

        acct = route.account
        if acct is not None:
            if not acct.can_cover(tx.amount_cents):
                if acct.when_short == "queue" or acct.when_short == "credit":
                    funded = env.event()
                    acct.waiters.append((tx, funded))
                    acct.queue_change(tx.amount_cents, env.now)
                    wait = max(tx.deadline_t - env.now, 0.0)
                    yield funded | env.timeout(wait)
                    if not funded.triggered:
                        acct.queue_change(-tx.amount_cents, env.now)
                        liquidity.count_failure(tx)
                        books.expire(tx, "liquidity")  # its waiter entry is dropped when it reaches the head
                        acct.wake_waiters(liquidity.draw)
                        return
                else:
                    liquidity.count_failure(tx)
                    books.terminate(tx, "failed", "liquidity")
                    return
            else:
                liquidity.draw(tx, acct)

        slots = route.slots
        if slots is not None:
            turn = slots.take()
            if turn is not None:  # every slot busy: wait in line
                route.in_queue += 1
                self.queue_version += 1
                yield turn
                route.in_queue -= 1
                self.queue_version += 1
            latency = route.latency_s(tx.z_latency)
            yield env.timeout(latency)
            slots.give_back()
        else:
            latency = route.latency_s(tx.z_latency)
            yield env.timeout(latency)
        tx.latency_s = env.now - tx.t_arrival

        first = tx.attempt == 1
        st = tx.retry
        if first:
            approved, why = route.answer(tx)
        else:
            approved, why = self.codes.retry_answer(tx, route, st.mode)
        retry = self._answer_code(tx, route, approved, why)
        route.observe(approved, tx.latency_s)
        for listener in self.outcome_listeners:
            listener(tx, route, approved, why)
        hour = int((tx.t_arrival % DAY_S) // HOUR_S)
        if first:
            books.by_hour_attempts[hour] += 1
        if tx.family == "card" and env.now > tx.deadline_t:
            self._card_sla_miss(tx)
        if not approved:
            if self.ach_return_days and route.rail == "ach" and why == "declined":
                # the return reaches us days after the payout settled; the funds are out until then
                back = self._ach_return_time(route, env.now)
                yield env.timeout(back - env.now)
            if acct is not None:
                liquidity.undraw(tx, acct)
            if retry:
                yield from self.retry(tx, route, why)
                return
            books.terminate(tx, "failed" if why != "declined" else "declined", why)
            return
        books.by_hour_approved[hour] += 1
        books.totals["approved"] += 1
        cost = route.billed_cents(tx)
        if route.is_card:
            # accrual: the processor owes us the amount less its cost; we owe the merchant the amount less our fee
            rec = f"receivable:{route.name}"
            books.ledger.post(
                env.now, "card_capture",
                (rec, tx.amount_cents - cost), ("merchant_payable", -(tx.amount_cents - tx.price_cents)),
                ("fee_revenue", -tx.price_cents), ("route_cost", cost),
            )  # fmt: skip
            books.attribute(tx, "revenue_cents", tx.price_cents)
            books.attribute(tx, "route_cost_cents", -cost)
            route.unsettled.append((env.now + route.spec.settlement_delay_s, tx, cost))
            if not route.settling:  # the batch process ended with the queue empty after arrivals closed
                self.start_card_settlement(route)
            return
        # bank payout: settles when the rail settles (ACH at its window)
        settle_at = route.settlement_time(env.now)
        if settle_at > env.now:
            yield env.timeout(settle_at - env.now)
        books.ledger.post(
            env.now, "payout_settled",
            ("payouts_in_flight", -tx.amount_cents), ("customer_funds", tx.amount_cents + tx.price_cents),
            ("fee_revenue", -tx.price_cents),
        )  # fmt: skip
        books.ledger.transfer(env.now, "route_fee", "route_cost", "bank:operating", cost)
        books.attribute(tx, "revenue_cents", tx.price_cents)
        books.attribute(tx, "route_cost_cents", -cost)
        tx.t_settled = env.now
        if env.now > tx.deadline_t:
            books.sla_miss(tx)
        books.totals["settled_value_cents"] += tx.amount_cents
        books.terminate(tx, "settled", "")
        if tx.is_fraud:
            self.discovery.schedule(tx, route)

    # ------------------------------------------------------------------ codes and retries
    def _answer_code(self, tx, route: RouteState, approved: bool, why: str) -> bool:
        """Set the answer's reason code (and log the attempt); True when the router may be asked again."""
        codes = self.codes
        if approved:
            tx.response_code = APPROVED
            if tx.attempt > 1:
                tx.merchant_advice = ""
        else:
            if not route.is_card:
                tx.response_code, tx.merchant_advice = codes.bank_code(tx, route, why), ""
            elif tx.attempt == 1:
                tx.response_code, tx.merchant_advice = codes.card_code(tx, why, tx.u_code, tx.u_advice)
            else:
                tx.response_code, tx.merchant_advice = codes.retry_code(tx, why)
            self.books.code_counts[tx.response_code] += 1
        if not self.retries_on or not route.is_card:
            return False
        soft = not approved and tx.response_code in SOFT_CODES
        st = tx.retry
        if st is None and soft and self.hub.asks_retries():
            st = codes.retry_state(tx)
        if st is not None:
            st.codes.append(tx.response_code)
            st.routes.append(route.index)
            if not approved:
                codes.remember(tx, route, why, tx.response_code, tx.merchant_advice)
        if self.log_attempts:
            self.books.log_attempt(tx, route, approved, why, "first" if tx.attempt == 1 else st.mode)
        return soft

    def _card_sla_miss(self, tx) -> None:
        """A card payment misses its deadline at its first late answer, once however many attempts it takes."""
        st = tx.retry
        if st is None:
            self.books.sla_miss(tx)
        elif not st.sla_missed:
            st.sla_missed = True
            self.books.sla_miss(tx)

    def _ach_return_time(self, route: RouteState, t: float) -> float:
        """When the return of an ACH payout submitted at ``t`` arrives: business days after it settles."""
        settle = route.settlement_time(t)
        cal, shift = route.calendar, route.window_shift
        local = settle + shift
        day = int(local // DAY_S)
        back_day = cal.next_business_day(day, self.ach_return_days)
        return settle + (back_day - day) * DAY_S

    def _give_up(self, tx, why: str) -> None:
        self.books.terminate(tx, "failed" if why != "declined" else "declined", why)

    def retry(self, tx, route: RouteState, why: str):
        """Ask the router again about ``tx``, softly declined on ``route``, and carry out its answer."""
        env, books, r = self.env, self.books, self.scenario.retries
        st = tx.retry
        elapsed = env.now - tx.t_arrival
        if st is None or tx.attempt >= r.max_attempts or elapsed >= r.latency_budget_s:
            self._give_up(
                tx, why
            )  # the router does not take retries (no retry memory was made), or no budget left
            return
        eligible = self.eligible_routes(tx)
        mask = 0
        for e in eligible:
            mask |= 1 << e.index
        request = RetryRequest(
            tx=tx, eligible=eligible, attempt=tx.attempt, codes=tuple(st.codes), routes=tuple(st.routes),
            merchant_advice=tx.merchant_advice, elapsed_s=elapsed, budget_left_s=r.latency_budget_s - elapsed,
            attempts_left=r.max_attempts - tx.attempt, delays_s=r.delays_s,
        )  # fmt: skip
        action, prop = yield from self.hub.ask(
            "route", request, info={"eligible": eligible, "retry": request}, listeners=False
        )
        action = self._checked(action, route, mask, tx)
        if action is None:  # an outside router that cannot mask chose an ineligible route
            books.terminate(tx, "declined", "invalid_action")
            return
        delay = r.delays_s[action.delay_index] if action.kind == "later" else 0.0
        if self.log_attempts:
            books.log_retry(tx, request, action, prop, delay)
        if action.kind == "give_up":
            self._give_up(tx, why)
            return
        if elapsed + delay >= r.latency_budget_s:
            self._give_up(tx, why)  # no attempt may start after the latency budget
            return
        if elapsed + delay > st.patience_s:
            # the payer stops waiting before the retry would start
            yield env.timeout(max(tx.t_arrival + st.patience_s - env.now, 0.0))
            books.terminate(tx, "abandoned", "patience")
            return
        if delay:
            yield env.timeout(delay)
        if action.kind == "step_up":
            books.book(tx, "challenge_cost", self.scenario.risk.challenge_cost_cents, "bank:operating")
            u = st.uniform()
            if tx.is_fraud:
                if u >= self.scenario.fraud.patterns[tx.pattern].challenge_pass_probability:
                    books.terminate(tx, "blocked", "challenge_failed")
                    return
            elif u < self.scenario.risk.challenge_abandon_probability:
                books.terminate(tx, "abandoned", "challenge")
                return
        # the extra attempt's fee, and the network's fine if its rule is broken, each booked once
        st.retries += 1
        books.totals["retry_attempts"] += 1
        books.book(tx, "retry_fee", r.attempt_fee_cents, "bank:operating")
        rule = r.networks.get(tx.network)
        if rule is not None:
            fine = rule.excess_fine_cents if st.retries > rule.max_retries else 0
            if tx.merchant_advice in DO_NOT_RETRY_ADVICE:
                fine += rule.do_not_retry_fine_cents
            books.book(tx, "network_fine", fine, "bank:operating")
        new = route if action.route < 0 else self.routes[action.route]
        st.mode = action.kind
        tx.attempt += 1
        tx.route = new.index
        tx.route_propensity = prop
        tx.sequence_propensity *= prop
        tx.eligible_mask = mask
        yield from self.send(tx, new)

    def _checked(self, action, route: RouteState, mask: int, tx) -> RetryAction | None:
        """The router's retry answer if the world can carry it out (``None``: an outside router's masked route)."""
        if not isinstance(action, RetryAction) or action.kind not in RETRY_KINDS:
            raise InvalidActionError(
                f"a retry decision must be a RetryAction with kind in {RETRY_KINDS}, got {action!r}"
            )
        if action.kind == "later":
            if action.route not in (-1, route.index):
                raise InvalidActionError(
                    f"a 'later' retry goes to the same route ({route.index}), got {action.route}"
                )
            if not 0 <= action.delay_index < len(self.scenario.retries.delays_s):
                raise InvalidActionError(
                    f"delay_index {action.delay_index} is not one of the scenario's "
                    f"{len(self.scenario.retries.delays_s)} retry delays"
                )
        elif action.kind == "cascade" or (action.kind == "step_up" and action.route >= 0):
            ok = 0 <= action.route < len(self.routes) and (mask >> action.route) & 1
            if action.kind == "cascade" and action.route == route.index:
                raise InvalidActionError(f"a cascade goes to another route than {route.index}; use 'later'")
            if not ok:
                if self.hub.is_external("route") and action.route == -1:
                    return None
                raise InvalidActionError(
                    f"route {action.route} is not eligible for the retry of transaction {tx.id}; "
                    f"eligible: {[i for i in range(len(self.routes)) if (mask >> i) & 1]}"
                )
        return action

    def start_card_settlement(self, route: RouteState) -> None:
        route.settling = True
        self.env.process(self.card_settlement(route))

    def card_settlement(self, route: RouteState):
        """The processor pays out its batch on every hour for captures whose settlement delay has passed."""
        env, books = self.env, self.books
        q = route.unsettled
        pending = self.hub.pending
        while self.arrivals_open() or q or pending:
            yield env.timeout((math.floor(env.now / HOUR_S) + 1) * HOUR_S - env.now)
            total = 0
            while q and q[0][0] <= env.now:
                _, tx, cost = q.popleft()
                total += tx.amount_cents - cost
                tx.t_settled = env.now
                books.totals["settled_value_cents"] += tx.amount_cents
                books.terminate(tx, "settled", "")
                if tx.is_fraud:
                    self.discovery.schedule(tx, route)
            if total:
                books.ledger.transfer(
                    env.now, "card_settlement", "bank:operating", f"receivable:{route.name}", total
                )
        route.settling = False
