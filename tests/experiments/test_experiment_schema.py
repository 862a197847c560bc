"""Experiment YAML: every shipped file loads; bad input names the field, the bad value and what is allowed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from payroute.errors import ConfigError, PayrouteError
from payroute.experiments.cli import app
from payroute.experiments.runner import check_environment
from payroute.experiments.schema import available_experiments, experiment_from_dict, load_experiment
from tests.helpers import REPO
from tests.helpers.experiments import tiny_experiment, write_experiment

SHIPPED = available_experiments()
# environments not yet in payroute (their experiments must name the missing environment); all have landed
NOT_YET: set[str] = set()


def test_the_seven_experiments_ship():
    assert set(SHIPPED) >= {
        "quickstart", "router_ppo", "router_sb3", "risk_vs_fraudster", "pricing_ppo", "treasury_ppo", "rtgs_game",
    }  # fmt: skip
    assert SHIPPED[0] == "quickstart"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_experiment_loads_and_its_environment_builds_or_is_named_missing(name):
    exp = load_experiment(name)
    assert exp.name == name
    assert len(exp.config_hash()) == 64
    try:
        check_environment(exp)
    except PayrouteError as err:
        assert name in NOT_YET, f"{name}: {err}"
        assert "env.id" in str(err)
    else:
        assert name not in NOT_YET, f"{name} builds now: drop it from NOT_YET"


def _error(data) -> str:
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(data, source="exp.yaml")
    return str(info.value)


def test_unknown_field_names_path_value_and_allowed_fields():
    data = tiny_experiment()
    data["trainer"]["hyperparameters"]["clipp"] = 0.3
    msg = _error(data)
    assert "trainer.hyperparameters.clipp = 0.3: unknown field; allowed: " in msg
    assert "clip" in msg.split("allowed:")[1]


def test_a_hyperparameter_of_another_algorithm_is_refused():
    data = tiny_experiment()
    data["trainer"]["algorithm"] = "DQN"
    msg = _error(data)  # PPO's minibatch_size and epochs mean nothing to DQN
    assert "trainer.hyperparameters.minibatch_size = 400: unknown field" in msg
    assert "buffer_size" in msg


def test_algorithm_must_exist_and_belong_to_the_library():
    data = tiny_experiment()
    data["trainer"]["algorithm"] = "SAC"
    assert "trainer.algorithm = 'SAC': allowed: 'PPO', 'APPO', 'DQN', 'MaskablePPO' or 'A2C'" in _error(data)
    data["trainer"]["algorithm"] = "APPO"
    data["trainer"]["library"] = "sb3"
    assert "algorithm 'APPO' is not available with sb3; allowed: PPO, MaskablePPO, DQN, A2C" in _error(data)


def test_bad_baseline_scenario_seed_and_numbers_each_get_a_line():
    data = tiny_experiment()
    data["agents"]["baselines"]["risk"] = "paranoid"
    data["scenario"] = "mars"
    data["evaluation"]["seeds"]["start"] = 5
    data["trainer"]["hyperparameters"]["lr"] = -1
    msg = _error(data)
    assert msg.startswith("exp.yaml: 4 problem(s)")
    assert "agents.baselines.risk = 'paranoid': unknown risk baseline; allowed: allow_all, threshold" in msg
    assert "scenario = 'mars': unknown scenario 'mars'; allowed: default" in msg
    assert "evaluation.seeds.start = 5: Input should be greater than or equal to 1000000000" in msg
    assert "trainer.hyperparameters.lr = -1: Input should be greater than 0" in msg


def test_stopping_needs_a_limit_and_env_kwargs_cannot_shadow_the_experiment():
    data = tiny_experiment()
    data["stopping"] = {}
    data["env"]["kwargs"] = {"scenario": "fee_hike"}
    msg = _error(data)
    assert "stopping = {}: set at least one of iterations, env_steps, wall_time_s" in msg
    assert "these are set elsewhere in the experiment: scenario (set by the top-level 'scenario')" in msg


def test_a_learning_agent_cannot_also_be_a_baseline():
    data = tiny_experiment()
    data["agents"]["baselines"]["router"] = "cheapest"
    assert "agents.baselines = " not in _error(data)  # reported at the section, with the agents named
    assert "['router'] are both learning and bound to a baseline" in _error(data)


@pytest.mark.parametrize("credit", ["decision", "expected", "expected_outcome"])
def test_decision_credit_trains_with_either_library_on_policy_and_never_with_dqn(credit):
    data = tiny_experiment()
    data["env"]["credit"] = credit
    for algorithm in ("PPO", "MaskablePPO", "A2C"):  # SB3 updates on complete days too
        data["trainer"] = {"library": "sb3", "algorithm": algorithm}
        assert experiment_from_dict(data).env.credit == credit
    data["trainer"] = {"library": "sb3", "algorithm": "DQN"}
    assert (
        f"env.credit '{credit}' needs an algorithm that updates on complete days: with trainer.library 'sb3', "
        "PPO, MaskablePPO or A2C (got DQN)" in _error(data)
    )
    data["trainer"] = {"library": "rllib", "algorithm": "DQN"}
    assert "with trainer.library 'rllib', PPO or APPO (got DQN)" in _error(data)


def test_the_trainers_credit_and_the_environments_own_credit_are_not_stacked():
    data = tiny_experiment()
    data["env"].update(credit="expected_outcome", kwargs={"credit": "expected_margin"})
    assert "env.credit 'expected_outcome' replaces the step rewards the environment pays" in _error(data)
    # either one alone: the environment's own credit trains through any library
    data["env"].update(credit="resolved")
    assert experiment_from_dict(data).env.kwargs["credit"] == "expected_margin"


def test_the_route_baseline_needs_the_router_with_expected_credit():
    data = tiny_experiment()
    data["env"]["baseline"] = "route_mean"
    assert "env.baseline 'route_mean' needs env.id 'payroute/Routing-v0' and env.credit" in _error(data)
    data["env"]["baseline"] = "oracle"
    assert "env.baseline" in _error(data) and "'none' or 'route_mean'" in _error(data)
    data["env"].update(baseline="route_mean", credit="expected_outcome")
    with_baseline = experiment_from_dict(data)
    assert with_baseline.resolved()["env"]["baseline"] == "route_mean"
    # a config without one hashes as it did before the field existed
    without = experiment_from_dict(tiny_experiment())
    assert "baseline" not in without.resolved()["env"]
    no_key = {**data, "env": {k: v for k, v in data["env"].items() if k != "baseline"}}
    assert with_baseline.with_changes({"env.baseline": "none"}).config_hash() == (
        experiment_from_dict(no_key).config_hash()
    )
    assert with_baseline.config_hash() != experiment_from_dict(no_key).config_hash()


def test_hash_is_of_the_result_not_of_where_it_runs():
    a = experiment_from_dict(tiny_experiment())
    b = experiment_from_dict(tiny_experiment(resources__ray_address="10.0.0.1:6379"))
    c = a.with_changes({"trainer.hyperparameters.lr": 1e-3})
    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != c.config_hash()
    assert experiment_from_dict(a.resolved()).config_hash() == a.config_hash()  # resolved config round-trips
    with pytest.raises(ConfigError, match="trainer.hyperparameters.lr = -1"):
        a.with_changes({"trainer.hyperparameters.lr": -1})


def test_cli_reports_a_bad_experiment_in_a_line_and_exits_2(tmp_path):
    data = tiny_experiment("broken")
    data["trainer"]["network"]["activation"] = "sigmoid"
    path = write_experiment(tmp_path, data)
    result = CliRunner().invoke(app, ["train", str(path), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "trainer.network.activation = 'sigmoid': allowed: 'tanh', 'relu', 'silu' or 'elu'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_cli_names_a_missing_environment_before_any_training(tmp_path):
    path = write_experiment(tmp_path, tiny_experiment("later", env__id="payroute/Settlement-v9"))
    result = CliRunner().invoke(app, ["train", str(path), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "env.id: environment 'payroute/Settlement-v9' is not registered" in result.output


def test_training_days_can_be_drawn_from_several_scenarios_that_fit_the_same_policy(tmp_path):
    import yaml

    from payroute.agents.training_env import ExperimentEnv
    from payroute.envs.scenarios import load_scenario

    data = tiny_experiment()
    data["train_scenarios"] = {"default": 1.0, "processor_outage": 1.0, "fraud_surge": 2.0}
    exp = experiment_from_dict(data)
    assert exp.resolved()["train_scenarios"] == {"default": 1.0, "processor_outage": 1.0, "fraud_surge": 2.0}
    # a config without a mix hashes as it did before the field existed
    assert "train_scenarios" not in experiment_from_dict(tiny_experiment()).resolved()
    config = {
        "env_id": "payroute/Routing-v0",
        "kwargs": {"scenario": "default", "scenario_overrides": {"volume_scale": 0.002}},
        "seed": 3,
        "train_scenarios": [[k, v] for k, v in exp.train_scenarios.items()],
    }
    env = ExperimentEnv(config)
    seen = []
    for _ in range(40):
        env.reset()
        seen.append(env.unwrapped.world.scenario.name)
        assert env.unwrapped.world.scenario.volume_scale == 0.002  # the overrides apply to every scenario
    assert set(seen) == {"default", "processor_outage", "fraud_surge"}
    assert seen.count("fraud_surge") > seen.count("default")
    again = ExperimentEnv(config)
    assert [again.reset() and again.unwrapped.world.scenario.name for _ in range(40)] == seen  # same seed

    # a scenario whose days look different to the policy (one more route) is refused by name
    extra = load_scenario("default").routes["card_alpha"].model_dump(mode="json")
    wide = tmp_path / "wide.yaml"
    wide.write_text(
        yaml.safe_dump({"name": "wide", "base": "default", "overrides": {"routes": {"card_delta": extra}}})
    )
    with pytest.raises(
        ValueError, match="'.*wide.yaml' does not give the observation and actions of 'default'"
    ):
        ExperimentEnv({**config, "train_scenarios": [["default", 1.0], [str(wide), 1.0]]})
    bad = _error({**tiny_experiment(), "train_scenarios": {"nowhere": 1.0}})
    assert "train_scenarios = {'nowhere': 1.0}: unknown scenario 'nowhere'; allowed: default," in bad
    assert "train_scenarios.fraud_surge = -1" in _error(
        {**tiny_experiment(), "train_scenarios": {"fraud_surge": -1}}
    )


def test_train_timings_draw_each_training_days_date_and_incident_start_from_the_seed_stream():
    """A training mix whose outage falls on one Friday afternoon teaches "no card_alpha on Fridays"; with
    train_timings each day's date and incident start are drawn, from the scenarios as loaded, reproducibly."""
    from payroute.agents.training_env import ExperimentEnv, experiment_env_config

    data = tiny_experiment()
    data["train_scenarios"] = {"default": 1.0, "processor_outage": 3.0}
    data["train_timings"] = {
        "weekdays": ["mon", "tue", "wed", "thu", "fri"],
        "incident_hours": ["09:00", "15:00"],
    }
    exp = experiment_from_dict(data)
    assert exp.resolved()["train_timings"]["incident_hours"] == ["09:00", "15:00"]
    assert (
        "train_timings" not in experiment_from_dict(tiny_experiment()).resolved()
    )  # old configs keep their hash
    config = {**experiment_env_config(exp), "seed": 5}
    config["kwargs"] = {**config["kwargs"], "scenario_overrides": {"volume_scale": 0.002}}

    def calendar(env):
        sc = env.unwrapped.world.scenario
        return sc.name, sc.start_date, tuple((i.route, i.day, i.at, i.duration_min) for i in sc.incidents)

    env = ExperimentEnv(config)
    days = []
    for _ in range(30):
        env.reset()
        days.append(calendar(env))
    outages = [d for d in days if d[0] == "processor_outage"]
    assert {d[1].weekday() for d in days} == {0, 1, 2, 3, 4}  # every weekday, not only the shipped Friday
    assert {d[2][0][2] for d in outages} == {"09:00", "15:00"}  # the outage starts at both drawn hours ...
    assert {d[2][0][3] for d in outages} == {120.0}  # ... and lasts as the scenario wrote it, never re-drawn
    again = ExperimentEnv(config)
    assert [again.reset() and calendar(again) for _ in range(30)] == days  # same seed, same calendars
    # without train_timings every day keeps the scenario's own calendar (Friday 2026-03-06, 14:00)
    plain = ExperimentEnv({**config, "train_timings": None})
    for _ in range(8):
        plain.reset()
        name, start, incidents = calendar(plain)
        assert name == "default" or (start.isoformat(), incidents[0][2]) == ("2026-03-06", "14:00")
    bad = _error({**tiny_experiment(), "train_timings": {"weekdays": ["fri", "fri"]}})
    assert "train_timings.weekdays" in bad and "lists a value twice" in bad


def test_every_shipped_single_agent_experiment_builds_its_training_environment():
    """`payroute train experiments/<name>.yaml` starts from this config: each shipped experiment on a single-agent
    payroute environment builds and resets its training environment (Risk-v0 takes no route baseline)."""
    from payroute.agents.training_env import ExperimentEnv, experiment_env_config
    from payroute.experiments.schema import load_experiment

    built = []
    for path in sorted((REPO / "experiments").glob("*.yaml")):
        exp = load_experiment(path.stem)
        if not exp.env.id.startswith("payroute/"):
            continue
        config = experiment_env_config(exp)
        overrides = {**config["kwargs"].get("scenario_overrides", {}), "volume_scale": 0.002}
        env = ExperimentEnv({**config, "kwargs": {**config["kwargs"], "scenario_overrides": overrides}})
        env.reset()
        built.append(exp.env.id)
    assert {"payroute/Routing-v0", "payroute/Risk-v0", "payroute/Pricing-v0"} <= set(built)
