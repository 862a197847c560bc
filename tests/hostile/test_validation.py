"""Hostile input, values that are valid floats but nonsense: refused at load with the file and field named.

Every number of every config model (scenario, experiment with its sweep, review config, RTGS game) is finite,
whichever field it is in: the property tests walk a valid config's numbers generically and put ``inf``,
``-inf`` or ``nan`` in one of them. Every number of a scenario is also bounded: an absurd magnitude in any of
them is refused. The issue's cases go through the CLI the way a user meets them and end in exit code 2 and a
message naming the file and the field, before anything runs (Ray is made unimportable here: importing it
would be a traceback, not exit 2). A world that runs out of events with payments unfinished fails instead of
reporting KPIs.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from payroute.envs.baselines import bound_policies
from payroute.envs.rtgs.config import deterministic_two_period_config, load_rtgs_config
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import PaymentWorld
from payroute.errors import ConfigError, PayrouteError
from payroute.experiments.cli import app
from payroute.experiments.schema import experiment_from_dict, load_experiment
from payroute.policies.review.config import load_review_config

runner = CliRunner()
NON_FINITE = st.sampled_from([math.inf, -math.inf, math.nan])
SCENARIO = load_scenario("default")
SCENARIO_DATA = SCENARIO.model_dump(mode="json")
EXPERIMENT_DATA = load_experiment("router_ppo").resolved()  # has a sweep, kwargs and library_options
REVIEW_DATA = load_review_config().model_dump(mode="json")
RTGS_DATA = [
    load_rtgs_config().model_dump(mode="json"),
    deterministic_two_period_config().model_dump(mode="json"),
]


def numeric_paths(data: Any, path: tuple = ()) -> list[tuple]:
    """The path of every number (not bool) in nested mappings and lists."""
    if isinstance(data, bool):
        return []
    if isinstance(data, int | float):
        return [path]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    return [p for key, value in items for p in numeric_paths(value, (*path, key))]


def with_value(data: Any, path: tuple, value: Any) -> Any:
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def value_at(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


def named_paths(message: str) -> list[str]:
    """The field path each problem line of a ConfigError names (``a.b = v: ... at c.d`` names ``a.b.c.d``)."""
    out = []
    for line in message.splitlines()[1:]:
        loc = line.strip().split(" = ", 1)[0]
        nested = re.search(r" at ([\w.]+)$", line)
        out.append(f"{loc}.{nested.group(1)}" if nested else loc)
    return out


def dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def absurd(value: Any, sign: int) -> Any:
    return sign * 10**30 if isinstance(value, int) else sign * 1e30


# ------------------------------------------------------------------------------------------ every number finite


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(numeric_paths(SCENARIO_DATA)), bad=NON_FINITE)
def test_a_non_finite_number_anywhere_in_a_scenario_is_refused_with_its_path(path, bad):
    with pytest.raises(ConfigError) as err:
        load_scenario(SCENARIO, with_value(SCENARIO_DATA, path, bad))
    assert dotted(path) in named_paths(str(err.value)), str(err.value)
    assert "finite" in str(err.value)


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(numeric_paths(SCENARIO_DATA)), sign=st.sampled_from([1, -1]))
def test_an_absurd_magnitude_anywhere_in_a_scenario_is_refused_with_its_path(path, sign):
    bad = absurd(value_at(SCENARIO_DATA, path), sign)
    with pytest.raises(ConfigError) as err:
        load_scenario(SCENARIO, with_value(SCENARIO_DATA, path, bad))
    assert dotted(path) in named_paths(str(err.value)), str(err.value)


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(numeric_paths(EXPERIMENT_DATA)), bad=NON_FINITE)
def test_a_non_finite_number_anywhere_in_an_experiment_is_refused_with_its_path(path, bad):
    with pytest.raises(ConfigError) as err:
        experiment_from_dict(with_value(EXPERIMENT_DATA, path, bad), source="exp.yaml")
    assert str(err.value).startswith("exp.yaml: ")
    assert dotted(path) in named_paths(str(err.value)), str(err.value)


@settings(max_examples=40, deadline=None)
@given(path=st.sampled_from(numeric_paths(REVIEW_DATA)), bad=NON_FINITE)
def test_a_non_finite_number_anywhere_in_a_review_config_is_refused_with_its_path(
    tmp_path_factory, path, bad
):
    config = tmp_path_factory.mktemp("review") / "review.yaml"
    config.write_text(yaml.safe_dump(with_value(REVIEW_DATA, path, bad)))
    with pytest.raises(ConfigError) as err:
        load_review_config(config)
    assert str(err.value).startswith("review.yaml: ")
    assert dotted(path) in named_paths(str(err.value)), str(err.value)


@settings(max_examples=40, deadline=None)
@given(data=st.sampled_from(RTGS_DATA), pick=st.integers(0, 10**6), bad=NON_FINITE)
def test_a_non_finite_number_anywhere_in_the_rtgs_game_config_is_refused_with_its_path(data, pick, bad):
    paths = numeric_paths(data)
    path = paths[pick % len(paths)]
    with pytest.raises(ConfigError) as err:
        load_rtgs_config(with_value(data, path, bad))
    # the demand union's tag (random, fixed) is part of the reported path
    reported = [re.sub(r"^demand\.(random|fixed|csv)\.", "demand.", p) for p in named_paths(str(err.value))]
    assert dotted(path) in reported, str(err.value)


def test_the_shipped_configs_are_within_every_bound():
    from payroute.envs.scenarios import available_scenarios
    from payroute.experiments.schema import available_experiments

    for name in available_scenarios():
        load_scenario(name)
    for name in available_experiments():
        load_experiment(name)
    load_review_config(Path(__file__).parents[2] / "policies" / "zoo" / "review.yaml")


# ------------------------------------------------------------------------------------------ physical bounds


@pytest.mark.parametrize(
    ("overrides", "path", "allowed"),
    [
        ({"base_utc_offset_h": 15.0}, "base_utc_offset_h", "less than or equal to 14"),
        ({"routes": {"fedwire": {"hours": {"utc_offset_h": -13.0}}}}, "routes.fedwire.hours.utc_offset_h", "-12"),
        ({"routes": {"card_alpha": {"latency": {"median_s": 1e20}}}}, "routes.card_alpha.latency.median_s", "86400"),
        ({"routes": {"card_alpha": {"latency": {"median_s": -1.0}}}}, "routes.card_alpha.latency.median_s", "greater than 0"),
        ({"routes": {"rtp": {"approval": {"fraud_logit_offset": 50.0}}}}, "routes.rtp.approval.fraud_logit_offset", "10"),
        ({"routes": {"rtp": {"approval": {"by_segment": {"consumer": 1.5}}}}}, "routes.rtp.approval.by_segment.consumer", "1"),
        ({"treasury_period_s": 0}, "treasury_period_s", "greater than 0"),
        ({"prices": {"period_s": -3600}}, "prices.period_s", "greater than 0"),
        ({"incidents": [{"route": "card_alpha", "day": 10**9, "at": "10:00", "duration_min": 5}]}, "incidents.0.day", "366"),
        ({"fee_changes": [{"route": "card_alpha", "multiplier": 0.0}]}, "fee_changes.0.multiplier", "greater than 0"),
        ({"demand": {"transactions_per_day": 10**15}}, "demand.transactions_per_day", "10000000"),
        ({"demand": {"transactions_per_day": 0}}, "demand.transactions_per_day", "greater than 0"),
        ({"accounts": {"fed_master": {"opening_balance_cents": -5}}}, "accounts.fed_master.opening_balance_cents", "0"),
        ({"start_date": "9999-12-01"}, "start_date", "2199-12-31"),
    ],
)  # fmt: skip
def test_a_value_outside_its_physical_bounds_is_refused_naming_field_value_and_bound(
    overrides, path, allowed
):
    with pytest.raises(ConfigError) as err:
        load_scenario("default", overrides)
    line = next((ln for ln in str(err.value).splitlines() if ln.strip().startswith(f"{path} = ")), None)
    assert line is not None, str(err.value)
    assert allowed in line


def test_the_daily_volume_is_capped_whatever_scale_makes_it():
    with pytest.raises(
        ConfigError, match=r"transactions_per_day x volume_scale = 20,000,000: allowed at most"
    ):
        load_scenario("default", {"demand": {"transactions_per_day": 1_000_000}, "volume_scale": 20.0})


# ------------------------------------------------------------------------------------------ through the CLI


@pytest.fixture
def no_ray(monkeypatch):
    """Importing Ray (starting it, training, sweeping) becomes an ImportError: a traceback, never exit 2."""
    monkeypatch.setitem(sys.modules, "ray", None)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _exits_2_naming(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for part in parts:
        assert part in result.stderr, result.stderr


def test_a_nan_fraud_offset_in_a_scenario_file_is_exit_2_naming_file_and_field(tmp_path):
    bad = _write(tmp_path, "nan_fraud.yaml", "name: nan_fraud\nbase: default\noverrides:\n"
                 "  routes: {card_alpha: {approval: {fraud_logit_offset: .nan}}}\n")  # fmt: skip
    result = runner.invoke(app, ["simulate", str(bad), "--days", "0.1"])
    _exits_2_naming(result, str(bad), "routes.card_alpha.approval.fraud_logit_offset = nan", "finite")


def test_a_huge_latency_in_a_scenario_file_is_exit_2_naming_file_field_and_bound(tmp_path):
    bad = _write(tmp_path, "slow.yaml", "name: slow\nbase: default\noverrides:\n"
                 "  routes: {rtp: {latency: {median_s: 1.0e+20}}}\n")  # fmt: skip
    result = runner.invoke(app, ["simulate", str(bad), "--days", "0.1"])
    _exits_2_naming(result, str(bad), "routes.rtp.latency.median_s = 1e+20", "less than or equal to 86400")


def test_an_infinite_learning_rate_is_exit_2_before_any_training(tmp_path, no_ray):
    bad = _write(tmp_path, "inf_lr.yaml", "name: inf_lr\nstopping: {iterations: 1}\n"
                 "trainer: {hyperparameters: {lr: .inf}}\n")  # fmt: skip
    result = runner.invoke(app, ["train", str(bad), "--runs", str(tmp_path / "runs")])
    _exits_2_naming(result, str(bad), "trainer.hyperparameters.lr = inf", "finite")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("trainer: {hyperparameters: {lr: 5.0}}", "trainer.hyperparameters.lr = 5.0"),
        ("trainer: {library_options: {vf_clip_param: .inf}}", "trainer.library_options.vf_clip_param"),
        ("env: {kwargs: {decline_cost: false, levels: [1.0, .nan]}}", "env.kwargs.levels"),
        ("trainer: {network: {hidden: [100000000]}}", "trainer.network.hidden.0 = 100000000"),
        ("env: {days: 1.0e+9}", "env.days = 1000000000.0"),
    ],
)
def test_nonsense_training_settings_are_exit_2_before_any_training(tmp_path, no_ray, line, says):
    bad = _write(tmp_path, "bad.yaml", f"name: bad\nstopping: {{iterations: 1}}\n{line}\n")
    result = runner.invoke(app, ["train", str(bad), "--runs", str(tmp_path / "runs")])
    _exits_2_naming(result, str(bad), says)


def test_scenario_overrides_of_an_experiment_are_checked_as_a_scenario_at_load(tmp_path, no_ray):
    bad = _write(tmp_path, "slow_exp.yaml", "name: slow_exp\nstopping: {iterations: 1}\n"
                 "scenario_overrides: {routes: {rtp: {latency: {median_s: 1.0e+20}}}}\n")  # fmt: skip
    result = runner.invoke(app, ["train", str(bad), "--runs", str(tmp_path / "runs")])
    _exits_2_naming(result, str(bad), "scenario_overrides applied to scenario 'default'",
                    "routes.rtp.latency.median_s = 1e+20")  # fmt: skip


@pytest.mark.parametrize(
    ("dimension", "says"),
    [
        ("trainer.hyperparameters.batch_size: {randint: [4000, 100]}", "randint = [4000, 100]: the low bound"),
        ("trainer.hyperparameters.lr: {uniform: [0.01, 0.001]}", "uniform = [0.01, 0.001]: the low bound"),
        ("trainer.hyperparameters.lr: {loguniform: [0.0, 0.01]}", "greater than 0"),
        ("trainer.hyperparameters.lr: {choice: [0.001, .inf]}", "finite"),
        ("trainer.hyperparameters.lr: {choice: [0.001, 7.0]}",
         "sweep.space['trainer.hyperparameters.lr'].choice.1 = 7.0 gives an invalid experiment"),
        ("trainer.hyperparameters.gamma: {uniform: [0.9, 1.5]}",
         "sweep.space['trainer.hyperparameters.gamma'].uniform.1 = 1.5"),
        ("trainer.hyperparameters.batch_size: {randint: [64, 128]}", "minibatch_size (256) must not exceed"),
        ("scenario_overrides.volume_scale: {choice: [0.1, 1000.0]}", "volume_scale = 1000.0"),
    ],
)  # fmt: skip
def test_every_value_a_sweep_can_take_is_validated_before_ray_starts(tmp_path, no_ray, dimension, says):
    bad = _write(
        tmp_path, "sweep.yaml", f"name: sw\nstopping: {{iterations: 1}}\nsweep:\n  space:\n    {dimension}\n"
    )
    result = runner.invoke(app, ["sweep", str(bad), "--runs", str(tmp_path / "runs")])
    _exits_2_naming(result, str(bad), says)
    assert not (tmp_path / "runs").exists()


def test_a_nonsense_review_config_is_exit_2_naming_file_and_field(tmp_path):
    bad = _write(tmp_path, "review.yaml", "ope: {confidence: .nan, n_bootstrap: 1000000000000}\n")
    result = runner.invoke(app, ["review", str(tmp_path / "no_bundle"), "--config", str(bad)])
    _exits_2_naming(result, "review.yaml", "ope.confidence = nan", "ope.n_bootstrap = 1000000000000")


# ------------------------------------------------------------------------------------------ the run-time guard


def test_a_world_that_runs_out_of_events_with_payments_unfinished_fails_instead_of_reporting_kpis():
    # validation refuses an endless latency; the guard is the world's own line behind it, so build one past it
    small = load_scenario("default", {"volume_scale": 0.05})
    endless = small.routes["card_alpha"].latency.model_copy(update={"median_s": math.inf})
    routes = {n: r.model_copy(update={"latency": endless}) for n, r in small.routes.items()}
    world = PaymentWorld(small.model_copy(update={"routes": routes}), 0, bound_policies(), days=0.1)
    with pytest.raises(PayrouteError, match=r"scenario 'default': the world ran out of events with [\d,]+ of [\d,]+ "
                       r"payments unfinished"):  # fmt: skip
        world.run()
    assert world.in_flight > 0


def test_a_world_that_drains_normally_passes_the_guard(small_scenario):
    world = PaymentWorld(small_scenario, 3, bound_policies(), days=0.25)
    world.run()
    assert world.in_flight == 0 and world.arrivals > 0
    world.check_drained()


def test_holidays_that_close_a_route_for_a_month_are_exit_2_naming_the_route(tmp_path):
    days = ", ".join(str(dt.date(2026, 3, 2) + dt.timedelta(days=i)) for i in range(40))
    bad = _write(tmp_path, "closed.yaml", "name: closed\nbase: default\noverrides:\n"
                 f"  volume_scale: 0.02\n  extra_holidays: [{days}]\n")  # fmt: skip
    result = runner.invoke(app, ["simulate", str(bad), "--days", "0.1"])
    _exits_2_naming(result, "route '", "no opening in the 30 days from 2026-03-02", "at most 29 closed days")
