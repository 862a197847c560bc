"""The learning fraudster's side of the world: its action, its books, and the card-blocking defender."""

from __future__ import annotations

import numpy as np
import pytest

from payroute.envs.baselines import CardBlocker, bound_policies
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, FraudAction, InvalidActionError, PaymentWorld
from payroute.envs.world.decisions import ALLOW, BLOCK, CHALLENGE
from payroute.errors import ConfigError
from payroute.experiments.studies.displacement import FraudPolicyGradient, evaluate, train

# fraud at its default rates, few genuine customers: a day runs in a fraction of a second
FRAUD_HEAVY = {"demand": {"transactions_per_day": 1500}}


class FixedFraud:
    kind = "fraud"

    def __init__(self, action):
        self.action = action

    def decide(self, world, payload):
        return self.action, 1.0


def _world(action=None, seed=0, risk="threshold", log=None, overrides=FRAUD_HEAVY):
    policies = bound_policies(risk=risk)
    if action is not None:
        policies["fraud"] = FixedFraud(action)
    world = PaymentWorld(load_scenario("default", overrides), seed=seed, policies=policies, days=1, log=log)
    world.run()
    return world


def _fraud_rows(log):
    df = log.table().to_pandas()
    return df[(df.record == "transaction") & df.is_fraud], df[df.record == "post_settlement"]


def test_fraudster_money_reconciles_with_the_transaction_and_post_settlement_rows():
    log = EventLog()
    world = _world(seed=3, log=log)
    book = world.fraudster
    tx, post = _fraud_rows(log)
    spec = world.scenario.fraud.patterns
    assert len(tx) == book.counts[0].sum() == sum(book.attempts_by_family.values())
    for k, name in enumerate(book.pattern_names):
        p = spec[name]
        rows = tx[tx.fraud_pattern == name]
        settled = rows[rows.state == "settled"]
        proceeds = sum(
            round(a * p.proceeds_share) + p.proceeds_per_success_cents for a in settled.amount_cents
        )
        returned = post[(post.fraud_pattern == name) & (post.kind == "return")]
        recovered = sum(
            round(a * p.proceeds_share) + p.proceeds_per_success_cents for a in returned.amount_cents
        )
        detected = post[(post.fraud_pattern == name) & (post.kind != "undisputed")]
        blocked = rows[rows.state == "blocked"]
        assert book.money[0, k] == proceeds
        assert book.money[1, k] == recovered
        assert book.money[2, k] == len(rows) * p.attempt_cost_cents
        assert book.money[3, k] == len(blocked) * p.blocked_cost_cents
        assert book.money[4, k] == len(detected) * p.detection_cost_cents
        assert book.counts[3, k] == len(settled)
        assert book.counts[2, k] == len(blocked)
        assert book.counts[1, k] == (rows.risk_action == "challenge").sum()
    assert book.net_cents == book.proceeds_cents - book.recovered_cents - book.cost_cents
    # money per launching period adds up to the same net
    assert int(np.sum(book.net_by_period)) == book.net_cents
    assert len(book.net_by_period) == 24
    # the fraudster's money is not the PSP's: PSP margins still add up to the ledger without it
    assert book.proceeds_cents > 0 and book.cost_cents > 0


def test_attacking_harder_and_bigger_brings_more_attacks_larger_amounts_and_higher_risk_scores():
    n = len(load_scenario("default").fraud.patterns)
    calm_log, loud_log = EventLog(), EventLog()
    _world(np.ones(n), seed=1, log=calm_log)
    _world(FraudAction(intensity=(3.0,) * n, amount_multiplier=(3.0,) * n), seed=1, log=loud_log)
    calm, _ = _fraud_rows(calm_log)
    loud, _ = _fraud_rows(loud_log)
    assert len(loud) > 2 * len(calm)
    for pattern in ("card_testing", "account_takeover"):
        log_mean = [np.log(df[df.fraud_pattern == pattern].amount_cents).mean() for df in (calm, loud)]
        assert log_mean[1] - log_mean[0] == pytest.approx(np.log(3.0), abs=0.4)
    assert loud.risk_score.mean() > calm.risk_score.mean() + 0.02


def test_an_attack_switched_off_brings_no_attempts_of_that_pattern():
    names = load_scenario("default").fraud.patterns
    action = np.array([0.0 if name == "card_testing" else 1.0 for name in names])
    world = _world(action, seed=2)
    assert world.fraudster.summary()["card_testing"]["attempts"] == 0
    assert world.fraudster.summary()["app_scam"]["attempts"] > 0


@pytest.mark.parametrize(
    "action",
    [np.ones(3), np.array([1.0, -1.0, 1.0, 1.0]), FraudAction((1.0,) * 4, (1.0, 0.0, 1.0, 1.0))],
)
def test_a_malformed_fraud_action_is_refused_naming_the_patterns(action):
    with pytest.raises(InvalidActionError, match="card_testing"):
        _world(action)


def test_the_amount_range_must_contain_the_usual_amounts():
    with pytest.raises(ConfigError, match="amount_multiplier_range"):
        load_scenario("default", {"fraud": {"amount_multiplier_range": [2.0, 3.0]}})


def test_card_blocker_blocks_risky_card_payments_and_leaves_bank_payouts_to_the_thresholds():
    class Tx:
        def __init__(self, family, score):
            self.family, self.risk_score = family, score

    blocker = CardBlocker(card_block_at=0.8)
    assert blocker.decide(None, Tx("card", 0.85))[0] == BLOCK
    assert blocker.decide(None, Tx("card", 0.5))[0] == ALLOW
    assert blocker.decide(None, Tx("bank", 0.85))[0] == ALLOW
    assert blocker.decide(None, Tx("bank", 0.98))[0] == CHALLENGE
    info = {"risk_score": 0.85, "transaction": {"instrument": "card_debit"}}
    assert blocker.act(None, info) == BLOCK
    assert blocker.act(None, info | {"transaction": {"instrument": "bank_account"}}) == ALLOW


def test_a_learning_fraudster_moves_away_from_cards_when_the_defender_blocks_them():
    overrides = {"demand": {"transactions_per_day": 300}}
    seeds = [5_000_000, 5_000_001]
    probe = FraudPolicyGradient(4, 5.0, (0.25, 4.0))
    before = evaluate("card_blocker", probe, seeds, overrides)
    learned = train("card_blocker", iterations=16, episodes=4, seed=0, overrides=overrides)
    after = evaluate("card_blocker", learned, seeds, overrides)
    assert after["card_share"] < before["card_share"] - 0.2
    card = learned.intensities[[0, 1]]  # card_testing, account_takeover
    bank = learned.intensities[[2, 3]]  # app_scam, mule_cashout on instant rails
    assert card.max() < 1.0 < bank.min()


def test_the_fraud_posterior_prices_fraud_by_the_amount_as_well_as_the_score():
    """P(fraud | score, cell) x amount adds up to the fraud that was really there: cards and instant payouts.

    Card testing is a dollar or two and APP scams and mule cash-outs thousands: a base rate over all amounts
    would make the expected fraud on cards several times too high and on instant payouts several times too low.
    """
    from payroute.envs.baselines import CheapestRoute
    from payroute.envs.world.fraud import FraudPosterior

    seen = []

    class Recording(CheapestRoute):
        def bind(self, world):
            self.posterior = FraudPosterior()

        def decide(self, world, payload):
            tx, _eligible = payload
            seen.append((tx.family, tx.urgency, tx.amount_cents, tx.is_fraud, self.posterior(world, tx)[0]))
            return super().decide(world, payload)

    for seed in range(3):
        policies = bound_policies()
        policies["route"] = Recording()
        PaymentWorld(
            load_scenario("default", {"volume_scale": 0.5}), seed=seed, policies=policies, days=1
        ).run()
    family, urgency, amount, fraud, p = (np.array(x) for x in zip(*seen, strict=True))
    # cards within 30%; instant payouts within a factor of 2.5 (a new world learns the rate of its thin bands of
    # large payouts from few frauds; a base rate over all amounts gave 1.5x on cards and 0.33x here)
    for group, low, high in ((family == "card", 0.7, 1.3), (urgency == "instant", 0.4, 2.5)):
        expected, real = (p * amount)[group].sum(), (fraud * amount)[group].sum()
        assert fraud[group].sum() >= 10
        assert low < expected / real < high, (expected, real)
    # and in counts too: the probabilities add up to the frauds among the payments routed
    assert 0.8 < p.sum() / fraud.sum() < 1.25
