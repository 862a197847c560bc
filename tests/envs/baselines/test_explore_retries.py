"""Epsilon-greedy exploration of retry decisions: the propensity logged is the probability of the answer taken."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from payroute.envs.baselines import bound_policies
from payroute.envs.baselines.exploration import EpsilonGreedyRoute
from payroute.envs.baselines.routers import retry_options
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import PaymentWorld
from payroute.envs.world.decisions import GIVE_UP, RetryAction, RetryRequest

EPS = 0.4


class _Retrier:
    """A router that takes retry decisions and always answers ``answer``."""

    kind = "route"
    handles_retries = True

    def __init__(self, answer: RetryAction) -> None:
        self.answer = answer

    def decide(self, world, payload):
        return self.answer, 1.0


def _request(elapsed_s: float) -> RetryRequest:
    routes = [SimpleNamespace(index=i) for i in range(4)]
    return RetryRequest(
        tx=None, eligible=[routes[0], routes[2], routes[3]], attempt=1, codes=("do_not_honor",), routes=(2,),
        merchant_advice="", elapsed_s=elapsed_s, budget_left_s=600.0 - elapsed_s, attempts_left=2,
        delays_s=(60.0, 300.0, 3600.0),
    )  # fmt: skip


WORLD = SimpleNamespace(seed=11, scenario=SimpleNamespace(retries=SimpleNamespace(latency_budget_s=600.0)))


@pytest.mark.parametrize(
    "greedy",
    [RetryAction("cascade", 3), GIVE_UP, RetryAction("later", -1, 1), RetryAction("step_up", 2)],
)
def test_retry_propensities_are_the_frequencies_of_the_answers_taken(greedy):
    request = _request(elapsed_s=100.0)  # the 3600 s delay is past the latency budget: not an option
    options = retry_options(request, 2, 600.0)
    assert len(options) == 1 + 2 + 2 + 1  # give up, cascades to 0 and 3, two delays, step-up
    explorer = EpsilonGreedyRoute(_Retrier(greedy), EPS)
    assert explorer.handles_retries
    explorer.bind(WORLD)
    draws = 6000
    seen: Counter = Counter()
    props: dict = {}
    for _ in range(draws):
        action, p = explorer.decide(WORLD, request)
        key = (
            action.kind,
            2 if action.route < 0 and action.kind != "give_up" else action.route,
            action.delay_index,
        )
        seen[key] += 1
        assert props.setdefault(key, p) == p  # one propensity per answer
    assert len(props) == len(options)  # every option drawn, nothing else
    assert sum(props.values()) == pytest.approx(1.0)
    for key, p in props.items():
        assert seen[key] / draws == pytest.approx(p, abs=0.02), key
    # the router's own answer carries 1 - eps on top of its share of the exploration
    assert max(props.values()) == pytest.approx(1 - EPS + EPS / len(options))


def test_exploring_around_a_router_without_retries_leaves_the_single_attempt_world():
    on = load_scenario("default", {"volume_scale": 0.03, "retries": {"enabled": True}})
    off = load_scenario("default", {"volume_scale": 0.03})
    kpis = []
    for sc in (on, off):
        policies = bound_policies()
        policies["route"] = explorer = EpsilonGreedyRoute(bound_policies(route="cheapest")["route"], EPS)
        assert not explorer.handles_retries
        world = PaymentWorld(sc, seed=2, policies=policies, days=0.25)
        world.run()
        kpis.append((world.kpis(), dict(world.terminal), explorer.decisions, explorer.explored))
    assert kpis[0] == kpis[1]
