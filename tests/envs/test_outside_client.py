"""An outside client: only Gymnasium, Stable-Baselines3, NumPy and payroute's registered ids, default arguments.

What a researcher does first with someone else's environment, for every registered ``payroute/`` id with its
default arguments (only the scenario's volume and the episode's length made small, so that a few hundred steps
cross several episode ends): SB3's ``make_vec_env`` and a few hundred steps of PPO, A2C, DQN (discrete actions)
and MaskablePPO (masked ones); a Gymnasium vector env, sync and async, in each autoreset mode, across several
episode ends with a sampler that honours ``info["action_mask"]``; ``pickle`` and ``copy.deepcopy`` mid-episode
with identical continuations; actions of a wrong type refused with a message that says what is allowed.
"""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import payroute  # noqa: F401 - registers the ids

ENV_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("payroute/"))
SMALL = {"volume_scale": 0.02}
# default arguments but the size: a quarter of a day per episode (a few dozen payments for routing and risk, six
# hourly pricing and treasury periods; a pricing step simulates its whole period, a day by default)
KWARGS = {
    "payroute/Routing-v0": {"scenario_overrides": SMALL, "days": 0.25},
    "payroute/Risk-v0": {"scenario_overrides": SMALL, "days": 0.25},
    "payroute/Pricing-v0": {"scenario_overrides": {**SMALL, "prices": {"period_s": 3600}}, "days": 0.25},
    "payroute/Treasury-v0": {"scenario_overrides": SMALL, "days": 0.25},
}
SB3_STEPS = 256
TINY_NET = {"net_arch": [16]}


def test_the_ids_under_test_are_every_registered_one():
    assert sorted(KWARGS) == ENV_IDS


def _learners(env_id: str) -> list[str]:
    space = gym.make(env_id, **KWARGS[env_id]).action_space
    return ["PPO", "A2C"] + (["DQN", "MaskablePPO"] if isinstance(space, gym.spaces.Discrete) else [])


SB3_CASES = [(env_id, name) for env_id in ENV_IDS for name in _learners(env_id)]


@pytest.mark.parametrize(("env_id", "learner"), SB3_CASES)
def test_sb3_learns_a_few_hundred_steps_on_make_vec_env_of_the_plain_id(env_id, learner):
    venv = make_vec_env(env_id, n_envs=2, env_kwargs=KWARGS[env_id], seed=0)
    cls, kwargs = {
        "PPO": (PPO, {"n_steps": 64, "batch_size": 64, "n_epochs": 1}),
        "A2C": (A2C, {"n_steps": 8}),
        "DQN": (DQN, {"learning_starts": 64, "buffer_size": 1_000, "train_freq": 4}),
        "MaskablePPO": (MaskablePPO, {"n_steps": 64, "batch_size": 64, "n_epochs": 1}),
    }[learner]
    model = cls("MlpPolicy", venv, seed=0, device="cpu", policy_kwargs=TINY_NET, **kwargs)
    model.learn(SB3_STEPS)
    # SB3's Monitor saw whole episodes end inside the vector env (autoreset worked) ...
    assert len(model.ep_info_buffer) >= 2
    assert all(np.isfinite(ep["r"]) for ep in model.ep_info_buffer)
    # ... and the policy answers inside the action space
    obs = venv.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert all(venv.action_space.contains(a) for a in action)
    venv.close()


def test_sb3_subprocess_workers_make_the_module_qualified_id():
    """SB3's subprocess workers start from a fresh interpreter (forkserver) that has not imported payroute (here:
    pytest's main module does not): ``"payroute:payroute/Routing-v0"`` imports it there first."""
    env_id = "payroute/Routing-v0"
    venv = make_vec_env(
        f"payroute:{env_id}", n_envs=2, env_kwargs=KWARGS[env_id], seed=0, vec_env_cls=SubprocVecEnv
    )
    try:
        obs = venv.reset()
        assert obs.shape == (2, *venv.observation_space.shape)
        masks = np.stack(venv.env_method("action_masks"))
        rng = np.random.default_rng(0)
        ended = 0
        # across episode ends: SB3 resets a finished worker at once and keeps its reset info apart
        for _ in range(200):
            obs, _r, done, infos = venv.step(np.array([_masked_choice(rng, m) for m in masks]))
            masks = np.stack(
                [
                    (venv.reset_infos[i] if d else info)["action_mask"]
                    for i, (d, info) in enumerate(zip(done, infos, strict=True))
                ]
            )
            np.testing.assert_array_equal(masks.astype(bool), np.stack(venv.env_method("action_masks")))
            ended += int(done.sum())
        assert ended >= 2
    finally:
        venv.close()


# ---------------------------------------------------------------------------------------------------- vector envs
def _masked_choice(rng: np.random.Generator, mask: np.ndarray) -> int:
    """What a masked categorical does: it has nothing to sample from an all-zero mask."""
    allowed = np.flatnonzero(mask)
    if allowed.size == 0:
        raise ValueError("an all-zero action mask: no action can be sampled")
    return int(rng.choice(allowed))


@pytest.mark.parametrize("autoreset", list(AutoresetMode), ids=lambda m: m.name)
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_vector_env_crosses_episode_ends_with_a_masked_sampler(env_id, mode, autoreset):
    n, boundaries = 2, 3
    envs = gym.make_vec(
        env_id,
        num_envs=n,
        vectorization_mode=mode,
        vector_kwargs={"autoreset_mode": autoreset},
        **KWARGS[env_id],
    )
    envs.action_space.seed(0)
    rng = np.random.default_rng(0)
    obs, info = envs.reset(seed=3)
    masked = "action_mask" in info
    masks = np.array(info["action_mask"]) if masked else None
    ended = np.zeros(n, dtype=int)
    for _ in range(2_000):
        assert envs.observation_space.contains(obs)
        if masked:
            # the mask in the info is the one the environment answers with (sb3-contrib reads action_masks())
            np.testing.assert_array_equal(masks.astype(bool), np.stack(envs.call("action_masks")))
            action = np.array([_masked_choice(rng, m) for m in masks])
        else:
            action = envs.action_space.sample()
        obs, reward, terminated, truncated, info = envs.step(action)
        assert reward.dtype.kind == "f" and np.all(np.isfinite(reward))
        done = terminated | truncated
        ended += done
        if masked:
            fresh = info["_action_mask"]
            masks[fresh] = np.asarray(info["action_mask"])[fresh]
        if autoreset == AutoresetMode.DISABLED and done.any():
            obs, reset_info = envs.reset(options={"reset_mask": done})
            if masked:
                masks[done] = np.asarray(reset_info["action_mask"])[done]
        if autoreset == AutoresetMode.SAME_STEP and done.any():
            assert "final_obs" in info and info["_final_obs"].tolist() == done.tolist()
        if ended.min() >= boundaries:
            break
    envs.close()
    assert ended.min() >= boundaries, f"episode ends per sub-environment: {ended.tolist()}"


# ---------------------------------------------------------------------------------------------------- copies
def _policy(env: gym.Env, info: dict, rng: np.random.Generator):
    if "action_mask" in info:
        return _masked_choice(rng, info["action_mask"])
    return env.action_space.sample()  # the environment's own space generator: a copy must continue it too


def _play(env: gym.Env, info: dict, steps: int, seed: int) -> list:
    """``steps`` steps through episode ends (``reset()`` without a seed: the environment's seed cursor)."""
    rng = np.random.default_rng(seed)
    trail = []
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(_policy(env, info, rng))
        trail.append((obs, reward, terminated, np.asarray(info.get("action_mask", []))))
        if terminated or truncated:
            obs, info = env.reset()
            trail.append((obs, None, None, np.asarray(info.get("action_mask", []))))
    return trail


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (obs_a, r_a, t_a, m_a), (obs_b, r_b, t_b, m_b) in zip(a, b, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert (r_a, t_a) == (r_b, t_b)
        np.testing.assert_array_equal(m_a, m_b)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_and_deepcopy_mid_episode_continue_identically(env_id):
    env = gym.make(env_id, **KWARGS[env_id], seed=4)
    env.action_space.seed(4)
    _obs, info = env.reset()
    rng = np.random.default_rng(1)
    for _ in range(3):  # mid-episode: every episode here is longer than three steps
        _obs, _r, terminated, _t, info = env.step(_policy(env, info, rng))
        if terminated:
            _obs, info = env.reset()
    pickled = pickle.loads(pickle.dumps(env))
    deep = copy.deepcopy(env)
    steps = 150  # across at least one episode end and the next reset's seed draw
    original = _play(env, info, steps, seed=2)
    _assert_same(original, _play(pickled, info, steps, seed=2))
    _assert_same(original, _play(deep, info, steps, seed=2))
    assert any(t for _o, _r, t, _m in original), "the continuation should cross an episode end"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_an_environment_copied_before_its_first_reset_runs_the_same_episodes(env_id):
    env = gym.make(env_id, **KWARGS[env_id], seed=8)
    twin = pickle.loads(pickle.dumps(env))
    env.action_space.seed(0)
    twin.action_space.seed(0)
    _o, info = env.reset()
    _o2, info2 = twin.reset()
    _assert_same(_play(env, info, 20, seed=5), _play(twin, info2, 20, seed=5))


# ---------------------------------------------------------------------------------------------------- wrong actions
@pytest.mark.parametrize("env_id", ["payroute/Routing-v0", "payroute/Risk-v0"])
def test_a_discrete_environment_takes_integers_and_refuses_anything_else(env_id):
    env = gym.make(env_id, **KWARGS[env_id])
    _obs, info = env.reset(seed=0)
    a = _masked_choice(np.random.default_rng(0), info["action_mask"])
    for bad, error in [
        (str(a), TypeError),
        (a + 0.5, TypeError),
        (float(a), TypeError),
        (True, TypeError),
        (np.array([a, a]), TypeError),
        (np.array([float(a)]), TypeError),
        (None, TypeError),
        (env.action_space.n, ValueError),
        (-1, ValueError),
    ]:
        with pytest.raises(error, match=r"action must be .* in 0\.\.\d+"):
            env.step(bad)
    # a refused action changes nothing: the integer forms SB3 and RLlib pass step the same world
    clients = [a, np.int64(a), np.array(a), np.array([a], dtype=np.int32)]
    steps = []
    for form in clients:
        twin = gym.make(env_id, **KWARGS[env_id])
        twin.reset(seed=0)
        steps.append(twin.step(form))
    steps.append(env.step(a))
    for obs, reward, *_ in steps[1:]:
        np.testing.assert_array_equal(obs, steps[0][0])
        assert reward == steps[0][1]


@pytest.mark.parametrize("env_id", ["payroute/Pricing-v0", "payroute/Treasury-v0"])
def test_a_box_environment_refuses_a_wrong_shape_a_non_number_and_a_non_finite_value(env_id):
    env = gym.make(env_id, **KWARGS[env_id])
    env.reset(seed=0)
    good = env.action_space.sample()
    for bad, error, match in [
        (np.append(good.ravel(), 1.0), ValueError, "shape"),
        (np.full(good.shape, np.nan), ValueError, "non-finite"),
        (np.full(good.shape, np.inf), ValueError, "non-finite"),
        ("1.0", TypeError, "finite"),
        (np.full(good.shape, "x"), TypeError, "finite"),
    ]:
        with pytest.raises(error, match=match):
            env.step(bad)
    env.step(good)


def test_render_mode_rgb_array_is_refused_with_a_type_error_sb3_retries_without():
    with pytest.raises(TypeError, match="render_mode 'rgb_array' is not supported"):
        gym.make("payroute/Routing-v0", render_mode="rgb_array", **KWARGS["payroute/Routing-v0"])
