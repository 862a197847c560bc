"""`payroute train` and `payroute evaluate` end to end on tiny experiments (a 2% volume day, a few updates)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from payroute.agents.networks import load_policy
from payroute.experiments.evaluate import evaluate_run
from payroute.experiments.rundir import latest_checkpoint, read_run
from payroute.experiments.runner import train
from tests.helpers.experiments import tiny_experiment, write_experiment

pytestmark = pytest.mark.slow


def _tb_tags(run_dir) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    path = write_experiment(root, tiny_experiment("tiny_ppo"))
    return train(path, runs_root=root / "runs", argv=["payroute", "train", str(path)], progress=False)


def test_a_run_folder_holds_config_hash_command_versions_curves_checkpoints_and_policy(ppo_run):
    exp, record = read_run(ppo_run)
    assert ppo_run.name.endswith(exp.config_hash()[:12])
    assert record["config_hash"] == exp.config_hash()
    assert record["command"].startswith("payroute train ")
    assert {"ray", "torch", "gymnasium", "payroute"} <= set(record["packages"])
    assert "commit" in record["git"]
    assert record["status"] == "finished" and record["iterations"] == 2
    tags = _tb_tags(ppo_run)
    assert {"kpi/margin_per_tx_usd", "kpi/approval_rate", "kpi/fraud_loss_bps", "kpi/sla_misses",
            "kpi/liquidity_cost_usd", "agent/router/episode_return"} <= tags  # fmt: skip
    assert "rllib/learners/router/policy_loss" in tags and "rllib/learners/router/vf_loss" in tags
    ckpt, info = latest_checkpoint(ppo_run)
    assert info["iteration"] == 2 and ckpt.name == "iter_000002"
    rows = [json.loads(line) for line in (ppo_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]
    assert (ppo_run / "policy" / "router" / "policy.pt").is_file()


def test_the_extracted_network_is_the_trained_module(ppo_run):
    """What evaluate binds (and the exporter will turn into ONNX) computes the RLlib module's own logits."""
    from ray.rllib.core.columns import Columns

    from payroute.agents.rllib.trainer import RLlibTrainer

    exp, _ = read_run(ppo_run)
    trainer = RLlibTrainer(exp)
    try:
        trainer.restore(latest_checkpoint(ppo_run)[0])
        module = trainer._module("router")
        net = trainer.policy_nets()["router"]
        saved = load_policy(ppo_run / "policy" / "router")
        obs = torch.rand(64, net.spec.obs_dim)
        mask = (torch.rand(64, net.spec.n_actions) > 0.3).float()
        mask[:, 0] = 1.0
        out = module.forward_inference({Columns.OBS: {"observations": obs, "action_mask": mask}})
        logits = out[Columns.ACTION_DIST_INPUTS]
        masked = torch.where(mask > 0, net(obs), torch.tensor(-1e30))
        assert torch.equal(logits.argmax(-1), masked.argmax(-1))
        assert torch.allclose(logits[mask > 0], net(obs)[mask > 0], atol=1e-5)
        assert torch.allclose(saved(obs), net(obs), atol=1e-6)
    finally:
        trainer.close()


def test_evaluate_writes_tables_parquet_and_plots(ppo_run, tmp_path):
    result = evaluate_run(ppo_run, out=tmp_path / "eval")
    assert set(result.summary["policy"]) == {"trained", "cheapest", "fastest", "oracle"}
    assert set(result.runs["seed"]) == {1_000_000_000, 1_000_000_001}
    cheap = result.summary.set_index("policy").loc["cheapest"]
    assert cheap["margin_diff"] == 0.0 and cheap["oracle_share"] == 0.0
    assert result.summary.set_index("policy").loc["oracle", "oracle_share"] == pytest.approx(1.0)
    assert set(result.versus["versus"]) == {"cheapest", "fastest", "oracle"}
    for name in ("runs", "summary", "versus", "hourly", "margin_curve", "route_mix"):
        assert not pd.read_parquet(tmp_path / "eval" / f"{name}.parquet").empty
    for kind in ("kpis", "approval_by_hour", "cumulative_margin", "route_mix"):
        png = tmp_path / "eval" / f"{kind}_default.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| trained |" in report and "![kpis_default](kpis_default.png)" in report
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["config_hash"] == read_run(ppo_run)[0].config_hash()


def test_evaluate_a_checkpoint_beside_the_final_evaluation(ppo_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from payroute.experiments.cli import app

    run = tmp_path / ppo_run.name
    shutil.copytree(ppo_run, run)
    final = evaluate_run(run, out=tmp_path / "final").runs
    # the last checkpoint holds the final policy: the same numbers, written to their own folder
    cli = CliRunner().invoke(app, ["evaluate", str(run), "--checkpoint", "2", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["run_dir"] == str(run)
    second = pd.read_parquet(run / "eval_checkpoint_2" / "runs.parquet")
    key = ["policy", "seed"]
    pd.testing.assert_frame_equal(
        final.sort_values(key).reset_index(drop=True), second.sort_values(key).reset_index(drop=True)
    )
    assert not (run / "eval").exists()
    missing = CliRunner().invoke(app, ["evaluate", str(run), "--checkpoint", "99"])
    assert missing.exit_code == 2 and "has no checkpoint 99; checkpoints kept: [" in missing.output


def test_same_config_and_seed_give_the_same_evaluation_numbers(ppo_run, tmp_path):
    exp, _ = read_run(ppo_run)
    path = write_experiment(tmp_path, exp.resolved())
    again = train(path, runs_root=tmp_path / "runs", progress=False)
    assert again.name.split("-")[-1] == ppo_run.name.split("-")[-1]  # same config hash
    first = (
        evaluate_run(ppo_run, out=tmp_path / "a").runs.sort_values(["policy", "seed"]).reset_index(drop=True)
    )
    second = (
        evaluate_run(again, out=tmp_path / "b").runs.sort_values(["policy", "seed"]).reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(first, second)
    a, b = load_policy(ppo_run / "policy" / "router"), load_policy(again / "policy" / "router")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_resume_refuses_a_different_config(ppo_run, tmp_path):
    from payroute.errors import PayrouteError

    other = write_experiment(tmp_path, tiny_experiment("tiny_ppo", seed=5))
    with pytest.raises(PayrouteError, match="is not the config of"):
        train(other, resume=ppo_run, progress=False)


@pytest.mark.parametrize(
    "library,algorithm,hyper",
    [
        ("rllib", "APPO", {"batch_size": 400}),
        ("rllib", "DQN", {"batch_size": 32, "learning_starts": 100, "steps_per_iteration": 300}),
        ("sb3", "PPO", {"batch_size": 256, "minibatch_size": 64, "epochs": 1}),
        ("sb3", "MaskablePPO", {"batch_size": 256, "minibatch_size": 64, "epochs": 1}),
        ("sb3", "A2C", {"batch_size": 16}),
        ("sb3", "DQN", {"batch_size": 32, "learning_starts": 100, "steps_per_iteration": 300}),
    ],
)
def test_every_trainer_kind_trains_and_hands_back_its_policy_network(tmp_path, library, algorithm, hyper):
    # APPO samples asynchronously: its first iterations may return before any sample arrived
    data = tiny_experiment(
        f"tiny_{library}_{algorithm}".lower(), stopping={"env_steps": 300, "iterations": 40}
    )
    data["trainer"] = {"library": library, "algorithm": algorithm, "hyperparameters": hyper,
                       "network": {"hidden": [16], "activation": "tanh"}}  # fmt: skip
    if library == "sb3":
        data["resources"] = {"num_env_runners": 0, "num_envs_per_env_runner": 2}
    if algorithm == "APPO":
        data["resources"]["num_env_runners"] = 1
    run_dir = train(write_experiment(tmp_path, data), runs_root=tmp_path / "runs", progress=False)
    _exp, record = read_run(run_dir)
    assert record["status"] == "finished" and record["env_steps"] > 0
    net = load_policy(run_dir / "policy" / "router")
    assert net.spec.trainer == f"{library}/{algorithm}"
    assert net.spec.output == ("q_values" if algorithm == "DQN" else "logits")
    assert net(torch.zeros(3, net.spec.obs_dim)).shape == (3, 10)
    if library == "sb3":
        _check_sb3_network_matches_model(run_dir, algorithm, net)


def _check_sb3_network_matches_model(run_dir, algorithm, net):
    from payroute.agents.sb3.trainer import ALGORITHMS, MODEL_FILE

    model = ALGORITHMS[algorithm].load(latest_checkpoint(run_dir)[0] / MODEL_FILE, device="cpu")
    obs = np.random.default_rng(0).random((16, net.spec.obs_dim), dtype=np.float32)
    with torch.no_grad():
        mine = net(torch.from_numpy(obs)).argmax(-1).numpy()
    if algorithm == "MaskablePPO":
        theirs, _ = model.predict(obs, deterministic=True, action_masks=np.ones((16, 10), dtype=bool))
    else:
        theirs, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(mine, theirs)


def test_several_learning_agents_get_one_module_each(tmp_path):
    data = tiny_experiment("two_desks", stopping={"iterations": 2})
    data["env"] = {"id": "tests.helpers.ma_env:TwoRouters", "kpi_every_steps": 0}
    data["agents"] = {"learn": ["router_a", "router_b"]}
    data["trainer"]["hyperparameters"]["batch_size"] = 2400
    run_dir = train(write_experiment(tmp_path, data), runs_root=tmp_path / "runs", progress=False)
    _exp, record = read_run(run_dir)
    assert record["status"] == "finished"
    a, b = load_policy(run_dir / "policy" / "router_a"), load_policy(run_dir / "policy" / "router_b")
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    tags = _tb_tags(run_dir)
    assert {"agent/router_a/episode_return", "agent/router_b/episode_return", "kpi/margin_per_tx_usd"} <= tags
    assert "rllib/learners/router_a/policy_loss" in tags and "rllib/learners/router_b/policy_loss" in tags


def test_payroute_run_trains_evaluates_exports_reviews_and_says_where_everything_is(tmp_path):
    from typer.testing import CliRunner

    from payroute.experiments.cli import app
    from payroute.policies import load_bundle

    path = write_experiment(tmp_path, tiny_experiment("tiny_run"))
    review = tmp_path / "review.yaml"
    review.write_text(yaml.safe_dump({
        "stress": {"scenarios": ["processor_outage"], "baselines": ["cheapest"], "include_oracle": False,
                   "seeds": 2, "volume_multiplier": 0.02},
        "constraints": {"random_contexts": 200, "latency_decisions": 200, "latency_p99_ms": 60_000.0,
                        "simulated": {"volume_multiplier": 0.02}},
    }))  # fmt: skip
    result = CliRunner().invoke(
        app,
        ["run", "--experiment", str(path), "--runs", str(tmp_path / "runs"), "--review-config", str(review)],
    )
    assert result.exit_code == 0, result.output[-3000:]
    run_dir = next((tmp_path / "runs" / "tiny_run").iterdir())
    out = result.output.replace("\n", "")
    assert "trained policy minus each policy" in out
    assert "report.md" in out and "tensorboard --logdir" in out
    assert (run_dir / "eval" / "report.md").is_file() and (run_dir / "tb").is_dir()
    bundle = load_bundle(run_dir / "bundle")
    assert (
        bundle.card.evaluation["policies"][0] == "trained"
    )  # exported after the evaluation, which it records
    summary = json.loads((run_dir / "review" / "summary.json").read_text())
    assert (run_dir / "review" / "report.html").is_file()
    assert summary["verdict"] in ("pass", "fail") and summary["verdict"].upper() in out


def test_the_run_page_shows_the_verdict_curve_table_and_where_everything_is(ppo_run, tmp_path):
    import re
    import shutil
    from types import SimpleNamespace

    from payroute.experiments.run_page import write_run_page
    from payroute.policies.review.checks import Check

    run = tmp_path / ppo_run.name  # a copy: the other tests read the shared run as training left it
    shutil.copytree(ppo_run, run)
    result = evaluate_run(run)  # the run's own evaluation folder, as `payroute run` makes it
    failed = Check("stress", "fraud_surge margin", "fail", "below the gate")
    review = SimpleNamespace(passed=False, failed=[failed], checks=[failed, Check("ope", "x", "pass", "ok")])
    page = write_run_page(result, read_run(run)[1], review, run / "review" / "report.html")
    text = page.read_text()
    assert page == run / "summary.html"
    best = result.meta["best_heuristic"]["default"]
    assert f"the best heuristic, {best}:" in text and "paired 95%" in text
    assert "FAIL (1 of 2 checks)" in text and "stress / fraud_surge margin" in text
    assert text.count("data:image/png;base64,") == 1  # the learning curve
    assert f"{best} (best heuristic)" in text and "oracle share" in text and "100%" in text  # the oracle's
    for link in re.findall(r"src='([^':]+)'", text) + re.findall(r"href='([^':]+)'", text):
        if link != "review/report.html":  # written by the review, not here
            assert (run / link).exists(), link
