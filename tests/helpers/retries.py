"""Simple routers that answer the world's retry decisions, for the tests of response codes and retries."""

from __future__ import annotations

from payroute.envs.baselines import CheapestRoute
from payroute.envs.world.decisions import GIVE_UP, RetryAction, RetryRequest


class CascadeRouter(CheapestRoute):
    """Cheapest route first; after a soft decline the cheapest route not tried yet, else give up."""

    handles_retries = True

    def __init__(self) -> None:
        self.asked = 0

    def decide(self, world, payload):
        if not isinstance(payload, RetryRequest):
            return super().decide(world, payload)
        self.asked += 1
        tried = set(payload.routes)
        options = [r for r in payload.eligible if r.index not in tried]
        if not options:
            return GIVE_UP, 1.0
        pick = min(options, key=lambda r: (r.cost_cents(payload.tx), r.index))
        return RetryAction("cascade", pick.index), 1.0


class GiveUpRouter(CheapestRoute):
    """Cheapest route first; says it understands retries, and gives up on every one."""

    handles_retries = True

    def decide(self, world, payload):
        if isinstance(payload, RetryRequest):
            return GIVE_UP, 1.0
        return super().decide(world, payload)


class RandomRetryRouter:
    """A random eligible route first; after a soft decline a random retry (any kind, any delay, any route),
    with the probability it gave that choice as its propensity."""

    kind = "route"
    handles_retries = True

    def bind(self, world) -> None:
        self.rng = world.policy_rng("route")

    def decide(self, world, payload):
        if not isinstance(payload, RetryRequest):
            _tx, eligible = payload
            return eligible[int(self.rng.integers(len(eligible)))].index, 1.0 / len(eligible)
        last = payload.routes[-1]
        others = [r.index for r in payload.eligible if r.index != last]
        choices = [GIVE_UP, RetryAction("step_up")]
        choices += [RetryAction("later", -1, i) for i in range(len(payload.delays_s))]
        choices += [RetryAction("cascade", i) for i in others]
        pick = choices[int(self.rng.integers(len(choices)))]
        return pick, 1.0 / len(choices)
