"""Constraint checks catch networks that ignore the mask, break on extreme inputs, or set prices beyond the caps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from payroute.envs.scenarios import load_scenario
from payroute.experiments.cli import app
from payroute.experiments.onnx_export import export_torch_policy
from payroute.policies import load_bundle
from payroute.policies.review.checks import FAIL, NOT_RUN, PASS
from payroute.policies.review.constraints import (
    check_action_caps,
    check_latency,
    check_malformed_inputs,
    check_masked_actions,
    random_contexts,
)
from tests.helpers.route_bundles import resign

torch = pytest.importorskip("torch")

D, A = 6, 4
FEATURES = [{"name": f"f{i}", "unit": "share", "low": 0.0, "high": 1.0} for i in range(D)]


def card(kind="route", actions=None, **extra):
    return {
        "decision_kind": kind,
        "observation": FEATURES,
        "actions": actions or [f"a{i}" for i in range(A)],
        **extra,
    }


class SqrtNet(torch.nn.Module):
    """Fine on the declared ranges (features are shares in [0, 1]); NaN on a negative input."""

    def __init__(self, n_actions: int = A) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(D, n_actions)

    def forward(self, obs):
        return self.linear(torch.sqrt(obs))


def linear(n_actions: int = A, bias=None):
    torch.manual_seed(1)
    net = torch.nn.Linear(D, n_actions)
    if bias is not None:
        with torch.no_grad():
            net.weight.mul_(0.01)
            net.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return net


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return export_torch_policy(linear(), D, A, card(), tmp_path_factory.mktemp("c") / "good")


def without_mask(src: Path, dst: Path) -> Path:
    """A re-signed copy whose graph ignores the action mask (logits straight from the linear layer)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    shutil.copytree(src, dst)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((D, A)).astype(np.float32)
    b = np.array([0.0, 0.0, 0.0, 5.0], dtype=np.float32)  # the last action dominates, allowed or not
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logits"])],
        "unmasked",
        [
            helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", D]),
            helper.make_tensor_value_info("action_mask", TensorProto.BOOL, ["batch", A]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", A])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    (dst / "policy.onnx").write_bytes(data)
    golden = json.loads((dst / "golden.json").read_text())
    obs = np.asarray(golden["obs"], dtype=np.float32)
    mask = np.asarray(golden["action_mask"], dtype=bool)
    logits = ort.InferenceSession(data).run(["logits"], {"obs": obs, "action_mask": mask})[0]
    golden["logits"] = logits.tolist()
    golden["actions"] = np.argmax(np.where(mask, logits, -np.inf), axis=1).tolist()
    (dst / "golden.json").write_text(json.dumps(golden))
    resign(dst)
    return dst


def test_a_network_that_ignores_the_mask_is_caught_even_though_the_loader_remasks(good, tmp_path):
    bad = load_bundle(without_mask(good, tmp_path / "unmasked"))
    ctx = random_contexts(bad, 500, seed=0)
    # the loader's own act() never returns a masked action...
    assert ctx.masks[np.arange(ctx.n), bad.act(ctx.obs, ctx.masks)].all()
    # ...but the network prefers one wherever the last action is masked
    check = check_masked_actions(bad, [ctx], max_rate=0.0)
    assert check.status == FAIL
    # its argmax is the masked last action on every row that masks it; every partly masked row leaks mass
    assert check.details["sources"]["random"]["masked_argmax"] == int(np.sum(~ctx.masks[:, -1]))
    assert check.value == pytest.approx(float(np.mean(~ctx.masks.all(axis=1))))
    assert "chose 'a3'" in check.summary and "does not apply the action mask" in check.summary
    assert check_masked_actions(load_bundle(good), [ctx], max_rate=0.0).status == PASS


def test_malformed_inputs_get_the_documented_behaviour_and_a_nan_network_fails(good, tmp_path):
    ok = check_malformed_inputs(load_bundle(good), [])
    assert ok.status == PASS, ok.summary
    refused = [c for c in ok.details["cases"] if c["expected"] == "PayrouteError"]
    assert len(refused) >= 10 and all(c["got"].startswith("PayrouteError") for c in refused)

    nan_bundle = export_torch_policy(SqrtNet(), D, A, card(), tmp_path / "sqrt")
    bad = check_malformed_inputs(load_bundle(nan_bundle), [])
    assert bad.status == FAIL
    failed = [c["case"] for c in bad.details["cases"] if not c["ok"]]
    assert "every feature 10 ranges below its declared low" in failed
    assert "every feature 1e6" not in failed  # sqrt of a large positive number is fine
    assert "non-finite logits" in bad.summary


def test_price_levels_beyond_the_scenario_caps_fail_and_within_pass(tmp_path):
    scenario = load_scenario("default")  # prices.min_multiplier 0.5, max_multiplier 2.0
    levels = {"actions": ["x0.5", "x1", "x3"], "action_values": [0.5, 1.0, 3.0]}
    greedy = export_torch_policy(linear(3, [0, 0, 4.0]), D, 3, card("price", **levels), tmp_path / "greedy")
    fair = export_torch_policy(linear(3, [0, 4.0, 0]), D, 3, card("price", **levels), tmp_path / "fair")
    for path, expected in ((greedy, FAIL), (fair, PASS)):
        policy = load_bundle(path)
        check = check_action_caps(policy, [random_contexts(policy, 300, 0)], None, None, scenario)
        assert check.status == expected, check.summary
    assert (
        "x3 (value 3)"
        in check_action_caps(
            load_bundle(greedy), [random_contexts(load_bundle(greedy), 300, 0)], None, None, scenario
        ).summary
    )
    # a configured cap overrides the scenario's
    fair_policy = load_bundle(fair)
    tight = check_action_caps(fair_policy, [random_contexts(fair_policy, 300, 0)], 1.5, None, scenario)
    assert tight.status == FAIL
    # a price bundle without action values cannot be checked: that fails; a route bundle's choices are not levels
    plain = export_torch_policy(
        linear(3), D, 3, card("price", actions=["lo", "mid", "hi"]), tmp_path / "plain"
    )
    assert check_action_caps(load_bundle(plain), [], None, None, scenario).status == FAIL
    route = load_bundle(export_torch_policy(linear(), D, A, card(), tmp_path / "route"))
    assert check_action_caps(route, [], None, None, scenario).status == NOT_RUN


def test_a_price_bundle_beyond_its_caps_fails_review_without_a_world(tmp_path):
    from payroute.envs.roles import PricerRole

    features = [  # the pricer's observation, so the bundle fits the review scenario
        {"name": f.name, "low": float(f.low) if np.isfinite(f.low) else None,
         "high": float(f.high) if np.isfinite(f.high) else None}
        for f in PricerRole(load_scenario("default")).features
    ]  # fmt: skip
    levels = {"actions": ["x0.5", "x1", "x3"], "action_values": [0.5, 1.0, 3.0], "observation": features}
    net = torch.nn.Linear(len(features), 3)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0, 0, 4.0]))
    bundle = export_torch_policy(net, len(features), 3, card("price", **levels), tmp_path / "price")
    cfg = tmp_path / "review.yaml"
    cfg.write_text(
        "stress: {enabled: false}\n"
        "constraints: {random_contexts: 300, latency_decisions: 200, latency_p99_ms: 60000}\n"
    )
    out = tmp_path / "out.json"
    res = CliRunner().invoke(app, ["review", str(bundle), "--config", str(cfg), "--json", str(out)])
    assert res.exit_code == 1, res.output
    summary = json.loads(out.read_text())
    assert [f.split(":")[0] for f in summary["failed"]] == ["constraints/action_caps"]
    assert "outside the caps [0.5, 2.0]" in summary["failed"][0]
    statuses = {c["name"]: c["status"] for c in summary["checks"]}
    assert statuses["stress_suite"] == NOT_RUN


def test_latency_gate_compares_the_p99_with_the_budget():
    times = np.concatenate([np.full(990, 0.05), np.full(10, 3.0)])
    assert check_latency(times, 2.0).status == PASS  # p99 sits at the 990th value
    slow = np.concatenate([np.full(980, 0.05), np.full(20, 3.0)])
    check = check_latency(slow, 2.0)
    assert check.status == FAIL and "over the 2 ms budget" in check.summary
