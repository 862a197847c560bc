"""Displacement: close one door and a learning fraudster walks to the next.

Scenario: the PSP's risk desk adopts a rule that blocks card payments with a risk score of 0.8 or more (the
``card_blocker`` baseline: most card fraud, and some good card customers, are stopped; bank payouts, instant
rails included, are judged by the usual thresholds). A fraudster that learns — choosing each hour how hard to
attack with each pattern and at which amounts — is trained against it. Before training it attacks with the
scenario's scripted mix; after training, on the same evaluation seeds, its mix has moved away from card
patterns toward the bank rails left open (APP scams and mule cash-outs on irrevocable instant rails). The same
training against the ordinary ``threshold`` defender is the control: there the fraudster keeps attacking
cards, so the shift is the card blocker's doing, not a taste of the learner.

The learner is a small numpy policy gradient (REINFORCE with antithetic pairs), fast enough to run in a
couple of minutes on a laptop: per pattern a Gaussian over (log intensity, log amount multiplier) with a
learned mean. Each hour's action for a pattern is credited with the money of that pattern's attempts launched
in that hour, whenever it moved (proceeds on approval, costs of blocks, detections days later:
``FraudsterBook.net_by_period``), which is what makes a few hundred simulated days enough. The environment
is :class:`~payroute.envs.multi_agent.ecosystem.PaymentEcosystemEnv` with the fraudster as the only learning agent.

Command (the result is in ``docs/displacement.md``)::

    python -m payroute.experiments.studies.displacement --iterations 40 --episodes 4 --eval-seeds 8 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from payroute.envs.multi_agent.ecosystem import PaymentEcosystemEnv
from payroute.envs.scenarios.schema import FAMILIES
from payroute.files import atomic_write_text

DEMO_OVERRIDES: dict[str, Any] = {"demand": {"transactions_per_day": 2000}}
"""The default scenario with fewer genuine customers (fraud at its default rates), so a day runs in a
fraction of a second; the defender decides per payment, so genuine volume does not change the attacker's
problem."""

CARD_PATTERNS = ("card_testing", "account_takeover")
EVAL_SEED_BASE = 1_000_000


@dataclass
class FraudPolicyGradient:
    """A Gaussian policy per fraud pattern over (log intensity, log amount multiplier), learned mean.

    ``mean[:P]`` are log intensities, ``mean[P:]`` log amount multipliers; zeros is the scripted fraudster
    (intensity 1, usual amounts). Updates are REINFORCE with per-pattern credit and standardised returns.
    """

    n_patterns: int
    max_intensity: float
    amount_range: tuple[float, float]
    sigma: float = 0.5
    lr: float = 0.4
    min_sigma: float = 0.15
    sigma_decay: float = 0.97
    mean: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.mean is None:
            self.mean = np.zeros(2 * self.n_patterns)
        p = self.n_patterns
        self.low = np.r_[np.full(p, math.log(0.01)), np.full(p, math.log(self.amount_range[0]))]
        self.high = np.r_[
            np.full(p, math.log(self.max_intensity)), np.full(p, math.log(self.amount_range[1]))
        ]

    def action(self, x: np.ndarray) -> np.ndarray:
        """The fraudster's action (intensities, then amount multipliers) for parameters ``x``."""
        return np.exp(np.clip(x, self.low, self.high)).astype(np.float32)

    def update(self, noise: np.ndarray, returns: np.ndarray) -> None:
        """One gradient step. ``noise``: (samples, 2P) standard-normal draws behind the actions taken;
        ``returns``: (samples, P) each sample's money per pattern."""
        p = self.n_patterns
        adv = returns - returns.mean(axis=0)
        adv /= returns.std(axis=0) + 1e-9
        grad = np.concatenate([(adv * noise[:, :p]).mean(axis=0), (adv * noise[:, p:]).mean(axis=0)])
        self.mean = np.clip(self.mean + self.lr * grad, self.low, self.high)
        self.sigma = max(self.sigma * self.sigma_decay, self.min_sigma)

    @property
    def intensities(self) -> np.ndarray:
        return self.action(self.mean)[: self.n_patterns]

    @property
    def amount_multipliers(self) -> np.ndarray:
        return self.action(self.mean)[self.n_patterns :]


ROUTER = "fastest"
"""The PSP's router in the demo: payouts go on the fastest rail (RTP: instant and irrevocable), as an
instant-payout product sends them."""


def make_env(defender: str, overrides: dict[str, Any] | None = None) -> PaymentEcosystemEnv:
    """The ecosystem with the fraudster learning and everyone else bound (``defender`` = risk baseline)."""
    return PaymentEcosystemEnv(
        scenario="default",
        scenario_overrides=DEMO_OVERRIDES if overrides is None else overrides,
        learning=["fraudster"],
        baselines={"risk": defender, "router": ROUTER},
    )


def run_episode(
    env: PaymentEcosystemEnv, policy: FraudPolicyGradient, seed: int, noise: np.ndarray | None = None
) -> np.ndarray:
    """One day with the fraudster acting ``policy.mean + sigma * noise[t]`` at its t-th decision (the mean
    if ``noise`` is None). Returns the money (cents) per decision period and pattern."""
    env.reset(seed=seed)
    t = 0
    while True:
        x = policy.mean if noise is None else policy.mean + policy.sigma * noise[t]
        _, _, terminated, _, _ = env.step({"fraudster": policy.action(x)})
        t += 1
        if terminated["__all__"]:
            break
    return np.array(env.world.fraudster.net_by_period[:t], dtype=float)


def train(
    defender: str,
    iterations: int = 40,
    episodes: int = 4,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    progress: bool = False,
) -> FraudPolicyGradient:
    """Train the fraudster against ``defender``; ``episodes`` (even: antithetic pairs on one world seed)."""
    if episodes < 2 or episodes % 2:
        raise ValueError(f"episodes must be an even number >= 2 (antithetic pairs), got {episodes}")
    env = make_env(defender, overrides)
    view = env.fraudster_role
    policy = FraudPolicyGradient(len(view.pattern_names), view.max_intensity, view.amount_range)
    rng = np.random.default_rng(seed)
    periods = int(math.ceil(env.days * 86400 / env.scenario.fraud_period_s))
    for it in range(iterations):
        noises, returns = [], []
        for _ in range(episodes // 2):
            world_seed = int(rng.integers(0, EVAL_SEED_BASE))
            eps = rng.standard_normal((periods, 2 * policy.n_patterns))
            for sign in (1.0, -1.0):
                money = run_episode(env, policy, world_seed, sign * eps)
                noises.append(sign * eps[: len(money)])
                returns.append(money)
        policy.update(np.concatenate(noises), np.concatenate(returns))
        if progress:
            mix = ", ".join(
                f"{n}={v:.2f}" for n, v in zip(view.pattern_names, policy.intensities, strict=True)
            )
            print(f"[{defender}] iteration {it + 1}/{iterations}: intensities {mix}", file=sys.stderr)
    return policy


def evaluate(
    defender: str, policy: FraudPolicyGradient, seeds: list[int], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The fraudster's mean policy on ``seeds``: its attack mix and money, the PSP's fraud loss."""
    env = make_env(defender, overrides)
    names = list(env.fraudster_role.pattern_names)
    attempts = np.zeros(len(names))
    families = dict.fromkeys(FAMILIES, 0)
    net = fraud_loss = settled_value = 0
    for s in seeds:
        run_episode(env, policy, s)
        world = env.world
        book = world.fraudster
        attempts += book.counts[0]
        for f, n in book.attempts_by_family.items():
            families[f] += n
        net += book.net_cents
        fraud_loss += world.totals["fraud_loss_cents"]
        settled_value += world.totals["settled_value_cents"]
    total = max(attempts.sum(), 1)
    n_days = len(seeds) * env.days
    return {
        "defender": defender,
        "attempts_per_day": float(attempts.sum() / n_days),
        "pattern_share": {n: float(a / total) for n, a in zip(names, attempts, strict=True)},
        "family_share": {f: families[f] / total for f in FAMILIES},
        "card_share": families["card"] / total,
        "fraudster_net_usd_per_day": net / 100.0 / n_days,
        "psp_fraud_loss_usd_per_day": fraud_loss / 100.0 / n_days,
        "intensity": dict(zip(names, map(float, policy.intensities), strict=True)),
        "amount_multiplier": dict(zip(names, map(float, policy.amount_multipliers), strict=True)),
    }


def displacement(
    defenders: tuple[str, ...] = ("card_blocker", "threshold"),
    iterations: int = 40,
    episodes: int = 4,
    eval_seeds: int = 8,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Before (scripted mix) and after training, per defender, on the same evaluation seeds."""
    seeds = [EVAL_SEED_BASE + i for i in range(eval_seeds)]
    rows = []
    for defender in defenders:
        probe = make_env(defender, overrides).fraudster_role
        scripted = FraudPolicyGradient(len(probe.pattern_names), probe.max_intensity, probe.amount_range)
        rows.append({"when": "before", **evaluate(defender, scripted, seeds, overrides)})
        learned = train(defender, iterations, episodes, seed, overrides, progress)
        rows.append({"when": "after", **evaluate(defender, learned, seeds, overrides)})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The result as a Markdown table."""
    names = list(rows[0]["pattern_share"])
    head = [
        "defender",
        "fraudster",
        "attempts/day",
        "card rails",
        *names,
        "fraudster net $/day",
        "PSP fraud loss $/day",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            f"`{r['defender']}`",
            "scripted (before)" if r["when"] == "before" else "learned (after)",
            f"{r['attempts_per_day']:.0f}",
            f"{r['card_share']:.0%}",
            *(f"{r['pattern_share'][n]:.0%} (x{r['intensity'][n]:.2f})" for n in names),
            f"{r['fraudster_net_usd_per_day']:,.0f}",
            f"{r['psp_fraud_loss_usd_per_day']:,.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m payroute.experiments.studies.displacement",
        description="Train a fraudster against a card-blocking defender (and a control); show its mix shift.",
    )
    parser.add_argument("--iterations", type=int, default=40, help="policy-gradient iterations per defender")
    parser.add_argument("--episodes", type=int, default=4, help="simulated days per iteration (even)")
    parser.add_argument(
        "--eval-seeds", type=int, default=8, help="evaluation days, the same before and after"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--defenders", nargs="+", default=["card_blocker", "threshold"])
    parser.add_argument("--json", dest="json_path", default=None, help="also write the rows as JSON here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = displacement(
        tuple(args.defenders),
        args.iterations,
        args.episodes,
        args.eval_seeds,
        args.seed,
        progress=not args.quiet,
    )
    print(markdown(rows))
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json_path:
        atomic_write_text(args.json_path, json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
