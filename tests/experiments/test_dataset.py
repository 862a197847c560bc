"""`payroute dataset`: logged episodes as a Minari dataset that minari reads back, with the behaviour propensities
and action masks of `payroute simulate --explore`, the same bytes for the same seed, and bad input in one line."""

from __future__ import annotations

import filecmp
import shlex
from pathlib import Path

import minari
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from payroute.envs.baselines import RiskThreshold
from payroute.experiments import dataset as dataset_module
from payroute.experiments.cli import app
from payroute.experiments.dataset import write_dataset
from payroute.experiments.simulate import run_simulation
from payroute.policies import zoo
from payroute.policies.logs.reading import OBS_PREFIX
from payroute.vocabulary import HELD_OUT_SEED_START
from tests.helpers.route_bundles import fee_columns

runner = CliRunner()
TINY = ["default", "--volume-scale", "0.02", "--days", "1"]


def _write(out: Path, *args: str) -> None:
    result = runner.invoke(app, ["dataset", *TINY, "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    assert "minari.MinariDataset" in result.stdout


def _episodes(data_path: Path) -> list:
    return list(minari.MinariDataset(data_path).iterate_episodes())


@pytest.fixture(scope="module")
def routing_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("datasets") / "routing-default-v0"
    _write(out, "--explore", "0.2", "--seed", "3")
    return out


def test_minari_load_dataset_reads_the_routing_dataset_with_masks_propensities_and_its_recipe(
    routing_dataset, monkeypatch
):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(routing_dataset.parent))
    data = minari.load_dataset("routing-default-v0")
    assert data.total_episodes == 1 and data.total_steps > 500
    (ep,) = list(data.iterate_episodes())
    n = len(ep.actions)
    assert ep.observations.shape == (n + 1, data.observation_space.shape[0])
    assert all(data.observation_space.contains(o) for o in ep.observations)
    assert ep.rewards.shape == (n,) and ep.terminations[-1] and not ep.terminations[:-1].any()
    assert not ep.truncations.any()
    mask, prop = ep.infos["action_mask"], ep.infos["propensity"]
    assert mask.shape == (n + 1, data.action_space.n) and prop.shape == (n + 1,)
    assert (mask[np.arange(n), ep.actions] == 1).all(), "every logged action is one the mask allowed"
    assert (mask[-1] == 1).all() and np.isnan(prop[-1])
    # the behaviour policy recomputed from what the router saw: the cheapest eligible route, else uniform
    env = data.recover_environment()  # the env the dataset was logged on, by its plain id and arguments
    names, routes = env.unwrapped.feature_names, env.unwrapped.route_names
    fees = fee_columns(ep.observations[:-1], names, routes)
    greedy = np.argmin(np.where(mask[:-1] == 1, fees, np.inf), axis=1)
    behaviour = 0.2 * mask[:-1] / mask[:-1].sum(axis=1, keepdims=True)
    behaviour[np.arange(n), greedy] += 0.8
    np.testing.assert_allclose(prop[:-1], behaviour[np.arange(n), ep.actions], rtol=0, atol=1e-12)
    assert 0.1 < np.mean(ep.actions != greedy) < 0.2  # exploration happened (0.2 x the share not greedy)
    meta = data.storage.metadata["payroute"]
    assert meta["env_id"] == "payroute/Routing-v0" and meta["scenario_name"] == "default"
    assert meta["policy"] == "cheapest" and meta["explore"] == 0.2 and meta["episode_seeds"] == [3]
    assert data.storage.get_episode_metadata([0]).__next__()["seed"] == 3
    # how the rewards were paid is written out, defaults included, and the recovered environment pays the same
    reward_args = {k: meta["env_kwargs"][k] for k in ("credit", "baseline", "decline_cost")}
    assert reward_args == {"credit": "expected_margin", "baseline": "route_mean", "decline_cost": False}
    assert (env.unwrapped.credit, env.unwrapped.baseline) == ("expected_margin", "route_mean")
    assert env.unwrapped.scenario.volume_scale == 0.02 and env.action_space == data.action_space
    env.close()


def test_recorded_actions_propensities_masks_and_observations_are_those_payroute_simulate_logs(
    routing_dataset, tmp_path
):
    """`payroute simulate --explore` on the same seed and scenario makes the same decisions with the same
    exploration: the dataset's propensities are the exploration's, row for row."""
    (ep,) = _episodes(routing_dataset / "data")
    log = tmp_path / "log.parquet"
    run_simulation("default", "cheapest", seed=3, explore=0.2, log_path=log, overrides={"volume_scale": 0.02})
    rows = pd.read_parquet(log)
    rows = rows[(rows.record == "transaction") & (rows.route_index >= 0)].sort_values("tx_id")
    assert len(rows) == len(ep.actions)
    np.testing.assert_array_equal(rows.route_index.to_numpy(), ep.actions)
    np.testing.assert_array_equal(rows.route_propensity.to_numpy(), ep.infos["propensity"][:-1])
    mask = ep.infos["action_mask"][:-1].astype(np.int64)
    np.testing.assert_array_equal((mask << np.arange(mask.shape[1])).sum(axis=1), rows.eligible_mask)
    obs_cols = [c for c in rows.columns if c.startswith(OBS_PREFIX)]
    np.testing.assert_array_equal(rows[obs_cols].to_numpy(np.float32), ep.observations[:-1])


@pytest.mark.parametrize(
    ("scenario", "policy"),
    [("processor_outage", "success_rate"), ("default", zoo("router"))],
    ids=["learner", "bundle"],
)
def test_a_router_that_learns_from_outcomes_or_a_bundle_logs_what_payroute_simulate_logs(
    tmp_path, scenario, policy
):
    out = tmp_path / "ds-v0"
    write_dataset(scenario, out, policy=policy, explore=0.3, seed=2, volume_scale=0.01)
    (ep,) = _episodes(out / "data")
    log = tmp_path / "log.parquet"
    run_simulation(scenario, policy, seed=2, explore=0.3, log_path=log, overrides={"volume_scale": 0.01})
    rows = pd.read_parquet(log)
    rows = rows[(rows.record == "transaction") & (rows.route_index >= 0)].sort_values("tx_id")
    np.testing.assert_array_equal(rows.route_index.to_numpy(), ep.actions)
    np.testing.assert_array_equal(rows.route_propensity.to_numpy(), ep.infos["propensity"][:-1])


def test_the_recorded_command_with_the_same_seed_writes_the_same_bytes_and_another_seed_other_data(
    routing_dataset, tmp_path
):
    meta = minari.MinariDataset(routing_dataset / "data").storage.metadata["payroute"]
    args = shlex.split(meta["command"])
    assert args[:2] == ["payroute", "dataset"] and args[-2:] == ["--out", routing_dataset.name]
    again = tmp_path / routing_dataset.name
    result = runner.invoke(app, [*args[1:-1], str(again)])
    assert result.exit_code == 0, result.output
    diff = filecmp.dircmp(routing_dataset, again)

    def same(d: filecmp.dircmp) -> bool:
        _match, mismatch, errors = filecmp.cmpfiles(d.left, d.right, d.common_files, shallow=False)
        return not (d.left_only or d.right_only or mismatch or errors) and all(map(same, d.subdirs.values()))

    assert same(diff), "the same seed must write the same dataset, byte for byte"
    other = tmp_path / "other-v0"
    _write(other, "--explore", "0.2", "--seed", "4")
    (a,), (b,) = _episodes(routing_dataset / "data"), _episodes(other / "data")
    assert len(a.actions) != len(b.actions) or not np.array_equal(a.observations, b.observations)


def test_a_risk_dataset_from_the_zoo_bundle_explores_all_three_actions_with_their_propensities(tmp_path):
    out = tmp_path / "risk-v0"
    _write(out, "--env", "payroute/Risk-v0", "--policy", zoo("risk"), "--explore", "0.3", "--days", "2")
    episodes = _episodes(out / "data")
    assert [e.id for e in episodes] == [0, 1]
    for ep in episodes:
        assert (ep.infos["action_mask"] == 1).all()
        prop = ep.infos["propensity"][:-1]
        assert set(np.round(np.unique(prop), 12)) <= {round(0.7 + 0.1, 12), 0.1}
        assert set(np.unique(ep.actions)) == {0, 1, 2}, "exploration reaches challenge and block too"
        explored_share = np.isclose(prop, 0.1).mean()  # actions other than the bundle's: 2/3 of explored
        assert 0.1 < explored_share < 0.3


def test_without_policy_a_risk_dataset_is_the_threshold_desk_and_replays_on_the_recovered_environment(
    tmp_path,
):
    """No --policy on Risk-v0: the risk desk's default baseline; with --explore 0 every propensity is 1, and the
    recovered environment on the recorded seed, answered by that baseline, gives the logged actions and rewards."""
    out = tmp_path / "risk-v0"
    _write(out, "--env", "payroute/Risk-v0", "--explore", "0", "--seed", "7")
    data = minari.MinariDataset(out / "data")
    assert data.storage.metadata["payroute"]["policy"] == "threshold"
    (ep,) = list(data.iterate_episodes())
    assert (ep.infos["propensity"][:-1] == 1.0).all() and len(set(ep.actions)) > 1
    env, desk = data.recover_environment(), RiskThreshold()
    obs, info = env.reset(seed=7)
    np.testing.assert_array_equal(obs, ep.observations[0])
    for t, logged in enumerate(ep.actions):
        assert desk.act(obs, info) == logged
        obs, reward, *_rest, info = env.step(logged)
        assert reward == ep.rewards[t]
    env.close()


def test_a_failed_run_leaves_no_dataset_folder_behind(tmp_path, monkeypatch):
    out = tmp_path / "never-v0"

    def broken(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(dataset_module, "_episode", broken)
    with pytest.raises(RuntimeError):
        write_dataset("default", out, volume_scale=0.02)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--policy", "threshold"], ["--policy = 'threshold'", "not a route policy", "cheapest"]),
        (["--env", "payroute/Risk-v0", "--policy", "cheapest"], ["not a risk policy", "threshold"]),
        (["--policy", zoo("risk")], ["the bundle decides 'risk'", "'route' policy"]),
        (["--explore", "1.5"], ["--explore = 1.5", "[0, 1]"]),
        (["--explore", "nan"], ["--explore = nan", "[0, 1]"]),
        (["--days", "0"], ["--days = 0", ">= 1"]),
        (["--seed", str(HELD_OUT_SEED_START - 1), "--days", "2"], ["--seed", f"below {HELD_OUT_SEED_START}"]),
        (["--env", "payroute/Pricing-v0"], ["--env = 'payroute/Pricing-v0'", "payroute/Routing-v0"]),
        (["--volume-scale", "0.00001"], ["world seed 0", "no decision", "raise --volume-scale"]),
        (["--out", "{tmp}/routing data"], ["--out = ", "routing data", "NAME-vN"]),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, expected):
    out = tmp_path / "ds-v0"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, ["dataset", "default", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for text in expected:
        assert text in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_an_existing_out_folder_is_refused_and_left_as_it_was(tmp_path):
    out = tmp_path / "ds-v0"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["dataset", *TINY, "--out", str(out)])
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
