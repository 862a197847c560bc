"""An outside client's router: SB3 PPO given only ``gym.make`` arguments, on the quickstart's budget.

What a researcher gets with their own code: Stable-Baselines3 PPO (``--algo maskable``, the default: sb3-contrib's
MaskablePPO, which samples within ``env.action_masks()``; ``--algo ppo``: plain PPO, which samples masked routes
and is declined for them) on ``gym.make("payroute/Routing-v0",
scenario_overrides={"volume_scale": 0.1}, decline_cost=False)`` — every other argument at its default, so each
step is paid its decision's expected margin over the route mean (payroute.envs.roles.credit) — with the
quickstart's hyperparameters (gamma 0, lr 1e-3, 6 epochs, minibatch 4096, 64x64 tanh) and the quickstart's
budget of environment steps (``--steps``, default 960,000: six updates of 16 simulated tenth-volume days). The
trained policy then routes the quickstart's evaluation days (16 full-volume days of ``default`` from the held-out
seed 1,000,000,000, never used to choose anything here) greedily within the mask, beside ``cheapest`` on the same
days; margin per payment is compared with a paired 95% interval, as ``payroute run experiments/quickstart.yaml``
reports it. ``--credit resolved`` trains the same client on the realised reward instead.

Run ``python benchmarks/client_learning.py``; progress goes to stderr, the last line is a JSON record.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import payroute  # noqa: F401 - registers the environments
from payroute.agents.learned import rollout_kpis
from payroute.agents.networks import linear_stack, policy_from_linears
from payroute.envs.baselines.rules import CheapestRoute
from payroute.stats import paired_interval
from payroute.vocabulary import HELD_OUT_SEED_START


def _cheapest_kpis(seed: int) -> dict[str, float]:
    env = gym.make("payroute/Routing-v0", decline_cost=False).unwrapped
    rule = CheapestRoute()
    obs, info = env.reset(seed=seed)
    done = False
    while not done:
        obs, _r, done, _t, info = env.step(rule.act(obs, info))
    return info["kpis"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=960_000)
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--credit", default="expected_margin", choices=["expected_margin", "resolved"])
    ap.add_argument("--algo", default="maskable", choices=["maskable", "ppo"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-days", type=int, default=16)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    extra = {} if args.credit == "expected_margin" else {"credit": "resolved", "baseline": "none"}

    def make() -> gym.Env:
        return gym.make(
            "payroute/Routing-v0", scenario_overrides={"volume_scale": 0.1}, decline_cost=False, **extra
        )

    venv = DummyVecEnv([make for _ in range(args.envs)])
    venv.seed(args.seed)
    n_steps = 10_000  # x 16 environments: 160,000 decisions an update, the quickstart's 16 days
    model = (MaskablePPO if args.algo == "maskable" else PPO)(
        "MlpPolicy", venv, n_steps=n_steps, batch_size=4096, n_epochs=6, learning_rate=1e-3, gamma=0.0,
        gae_lambda=0.0, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=10.0, seed=args.seed,
        policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh}, device="cpu", verbose=0,
    )  # fmt: skip
    start = time.perf_counter()
    model.learn(args.steps)
    train_s = time.perf_counter() - start
    print(f"trained {args.steps:,} steps in {train_s:.0f} s", file=sys.stderr, flush=True)
    linears, act = linear_stack(
        torch.nn.ModuleList([model.policy.mlp_extractor.policy_net, model.policy.action_net])
    )
    env = make().unwrapped
    net = policy_from_linears(
        linears, act, decision_kind="route", output="logits", feature_names=tuple(env.feature_names),
        action_names=tuple(env.route_names), trainer="sb3/PPO (gym.make client)",
    )  # fmt: skip
    trained, cheapest = [], []
    for i in range(args.eval_days):
        seed = HELD_OUT_SEED_START + i
        full = gym.make("payroute/Routing-v0", decline_cost=False).unwrapped
        trained.append(rollout_kpis(full, net, seed)["margin_per_tx_usd"])
        cheapest.append(_cheapest_kpis(seed)["margin_per_tx_usd"])
        print(
            f"day {seed}: trained {trained[-1]:.4f}, cheapest {cheapest[-1]:.4f}", file=sys.stderr, flush=True
        )
    diff = paired_interval(np.array(trained), np.array(cheapest))
    print(
        json.dumps(
            {
                "credit": args.credit,
                "algo": args.algo,
                "steps": args.steps,
                "seed": args.seed,
                "train_s": round(train_s, 1),
                "eval_seeds": [HELD_OUT_SEED_START, HELD_OUT_SEED_START + args.eval_days - 1],
                "margin_per_tx_trained": round(float(np.mean(trained)), 4),
                "margin_per_tx_cheapest": round(float(np.mean(cheapest)), 4),
                "uplift_over_cheapest": round(diff.mean, 4),
                "uplift_interval": [round(diff.low, 4), round(diff.high, 4)],
            }
        )
    )


if __name__ == "__main__":
    main()
