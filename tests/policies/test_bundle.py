"""Policy bundles: export from torch, verified load on onnxruntime, refusal of unsafe or altered bundles."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from payroute.envs.baselines import bound_policies
from payroute.envs.world import EventLog, PaymentWorld
from payroute.errors import PayrouteError
from payroute.experiments.onnx_export import export_torch_policy
from payroute.policies import (
    MASKED_LOGIT,
    FeatureSpec,
    PolicyCard,
    config_sha256,
    load_bundle,
)
from payroute.policies.logs import read_logged_decisions
from payroute.vocabulary import DECISION_KINDS

torch = pytest.importorskip("torch")

OBS_DIM, N_ACTIONS = 6, 5
FEATURES = [
    {"name": f"f{i}", "unit": "z-score", "scaling": "standardised", "low": -3.0, "high": 3.0}
    for i in range(OBS_DIM)
]
ACTIONS = [f"a{i}" for i in range(N_ACTIONS)]
BUNDLE_FILES = ("policy.onnx", "card.json", "golden.json")


def tiny_mlp(obs_dim: int = OBS_DIM, n_actions: int = N_ACTIONS, seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(obs_dim, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, n_actions),
    ).eval()  # fmt: skip


def card(**extra):
    return {
        "decision_kind": "route",
        "observation": FEATURES,
        "actions": ACTIONS,
        "reward": {"definition": "margin per decision", "unit": "cents"},
        "scenario": {"name": "default", "config": {"volume_scale": 0.05}},
        "seeds": {"train": [0, 1]},
        "training": {"iterations": 3},
        "evaluation": {"margin_per_tx_usd": {"mean": 1.0, "ci95": [0.9, 1.1]}},
        **extra,
    }


@pytest.fixture(scope="module")
def module():
    return tiny_mlp()


@pytest.fixture(scope="module")
def bundle_dir(module, tmp_path_factory) -> Path:
    return export_torch_policy(module, OBS_DIM, N_ACTIONS, card(), tmp_path_factory.mktemp("b") / "policy")


@pytest.fixture(scope="module")
def bundle_zip(module, tmp_path_factory) -> Path:
    return export_torch_policy(
        module, OBS_DIM, N_ACTIONS, card(), tmp_path_factory.mktemp("z") / "policy.zip"
    )


def random_inputs(n: int, seed: int, n_actions: int = N_ACTIONS):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-3, 3, (n, OBS_DIM)).astype(np.float32)
    mask = rng.random((n, n_actions)) < 0.6
    mask[np.arange(n), rng.integers(0, n_actions, n)] = True
    return obs, mask


def torch_masked_logits(module, obs, mask):
    with torch.no_grad():
        logits = module(torch.from_numpy(obs)).numpy()
    return np.where(mask, logits, MASKED_LOGIT)


def rewrite_checksums(folder: Path) -> None:
    """Re-sign a bundle after editing it, as a careless or malicious re-packer would."""
    lines = [
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n"
        for n in sorted(p.name for p in folder.iterdir())
        if n != "checksums.sha256"
    ]
    (folder / "checksums.sha256").write_text("".join(lines))


def copy_bundle(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------- parity
def test_onnx_and_torch_agree_on_10000_observations(module, bundle_dir):
    policy = load_bundle(bundle_dir)
    obs, mask = random_inputs(10_000, seed=1)
    expected = torch_masked_logits(module, obs, mask)
    got = policy.logits(obs, mask)
    assert got.shape == (10_000, N_ACTIONS)
    assert np.max(np.abs(got - expected)) <= 1e-5
    with torch.no_grad():
        probs = torch.softmax(torch.from_numpy(expected.astype(np.float32)).double(), dim=1).numpy()
    assert np.max(np.abs(policy.action_probs(obs, mask) - probs)) <= 1e-5
    assert np.array_equal(policy.act(obs, mask), np.argmax(expected, axis=1))


def test_golden_vectors_reproduce_and_card_is_complete(bundle_dir):
    golden = json.loads((bundle_dir / "golden.json").read_text())
    policy = load_bundle(bundle_dir)
    obs = np.asarray(golden["obs"], dtype=np.float32)
    mask = np.asarray(golden["action_mask"], dtype=bool)
    assert obs.shape[0] >= 32 and mask[0].all() and mask.any(axis=1).all()
    assert np.allclose(policy.logits(obs, mask), np.asarray(golden["logits"], dtype=np.float32), atol=1e-5)
    assert policy.act(obs, mask).tolist() == golden["actions"]
    # golden observations respect each feature's declared range
    assert obs.min() >= -3.0 and obs.max() <= 3.0

    c = json.loads((bundle_dir / "card.json").read_text())
    assert c["bundle_schema_version"] == "1" and c["decision_kind"] == "route"
    assert c["io"] == {
        "opset": 17, "obs_input": "obs", "mask_input": "action_mask", "output": "logits",
        "obs_dim": OBS_DIM, "n_actions": N_ACTIONS, "masked_logit": MASKED_LOGIT,
    }  # fmt: skip
    assert c["scenario"]["sha256"] == config_sha256({"volume_scale": 0.05})
    assert {"numpy", "onnx", "onnxruntime", "torch"} <= set(c["versions"])
    assert c["evaluation"]["margin_per_tx_usd"]["ci95"] == [0.9, 1.1]


def test_exported_network_is_onnx_checker_clean_with_a_fixed_opset(bundle_dir):
    import onnx

    model = onnx.load(bundle_dir / "policy.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert [i.name for i in model.graph.input] == ["obs", "action_mask"]
    assert [o.name for o in model.graph.output] == ["logits"]


def test_card_decision_kinds_are_the_worlds():
    assert set(get_args(PolicyCard.model_fields["decision_kind"].annotation)) == set(DECISION_KINDS)


def test_config_hash_survives_the_card_round_trip(module, tmp_path):
    config = {"start_date": date(2025, 3, 3), "at": datetime(2025, 3, 3, 9, 30), "volume_scale": 0.05}
    path = export_torch_policy(
        module, OBS_DIM, N_ACTIONS, card(scenario={"name": "x", "config": config}), tmp_path / "b"
    )
    stored = load_bundle(path).card.scenario
    assert stored.sha256 == config_sha256(config) == config_sha256(stored.config)
    assert stored.config["start_date"] == "2025-03-03"


def test_checksums_file_verifies_with_sha256sum_format(bundle_dir):
    listed = dict(
        reversed(line.split("  ")) for line in (bundle_dir / "checksums.sha256").read_text().splitlines()
    )
    assert set(listed) == set(BUNDLE_FILES)
    for name, digest in listed.items():
        assert hashlib.sha256((bundle_dir / name).read_bytes()).hexdigest() == digest


# ---------------------------------------------------------------------- acting
def test_a_masked_action_is_never_chosen(tmp_path):
    net = tiny_mlp(seed=3)
    with torch.no_grad():
        net[-1].bias[0] += 1e4  # the network wants action 0 above everything else
    policy = load_bundle(export_torch_policy(net, OBS_DIM, N_ACTIONS, card(), tmp_path / "b"))
    obs, mask = random_inputs(5_000, seed=2)
    assert (policy.act(obs) == 0).all()
    mask[:, 0] = False
    mask[np.arange(5_000), 1 + np.arange(5_000) % (N_ACTIONS - 1)] = True
    rng = np.random.default_rng(0)
    for actions in (policy.act(obs, mask), policy.act(obs, mask, rng=rng)):
        assert mask[np.arange(5_000), actions].all()
    probs = policy.action_probs(obs, mask)
    assert (probs[~mask] == 0).all()
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_sampled_actions_follow_the_action_probabilities(bundle_dir):
    policy = load_bundle(bundle_dir)
    obs = np.zeros((40_000, OBS_DIM), dtype=np.float32)
    mask = np.ones((40_000, N_ACTIONS), dtype=bool)
    mask[:, 2] = False
    actions = policy.act(obs, mask, rng=np.random.default_rng(5))
    freq = np.bincount(actions, minlength=N_ACTIONS) / actions.size
    assert np.abs(freq - policy.action_probs(obs[0], mask[0])).max() < 0.01
    again = policy.act(obs, mask, rng=np.random.default_rng(5))
    assert np.array_equal(actions, again)


def test_single_observation_is_answered_unbatched(bundle_dir):
    policy = load_bundle(bundle_dir)
    obs, mask = random_inputs(3, seed=4)
    assert policy.act(obs[1], mask[1]) == policy.act(obs, mask)[1]
    assert policy.action_probs(obs[1], mask[1]).shape == (N_ACTIONS,)


@pytest.mark.parametrize(
    ("obs", "mask", "message"),
    [
        (np.zeros((2, OBS_DIM + 1)), None, "expects"),
        (np.zeros((2, 2, OBS_DIM)), None, "expects"),
        (np.array([[0, 0, np.nan, 0, 0, 0]]), None, "feature 'f2'"),
        (np.array([[0, 0, 0, np.inf, 0, 0]]), None, "must be finite"),
        (np.zeros((2, OBS_DIM)), np.ones((2, N_ACTIONS - 1), bool), "action mask has shape"),
        (np.zeros((2, OBS_DIM)), np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]), "row 1 allows no action"),
        (np.zeros((1, OBS_DIM)), np.array([[2, 0, 0, 0, 0]]), "booleans or 0/1"),
    ],
)
def test_malformed_inputs_are_refused(bundle_dir, obs, mask, message):
    policy = load_bundle(bundle_dir)
    with pytest.raises(PayrouteError, match=message):
        policy.act(obs, mask)


# ---------------------------------------------------------------------- loading and refusing
def test_directory_zip_and_zipped_folder_load_the_same_policy(bundle_dir, bundle_zip, tmp_path):
    foldered = tmp_path / "foldered.zip"
    with zipfile.ZipFile(foldered, "w") as zf:  # what `zip -r foldered.zip policy/` makes
        zf.writestr("policy/", b"")
        for p in bundle_dir.iterdir():
            zf.write(p, f"policy/{p.name}")
    obs, mask = random_inputs(100, seed=6)
    logits = [load_bundle(p).logits(obs, mask) for p in (bundle_dir, bundle_zip, foldered)]
    assert np.array_equal(logits[0], logits[1]) and np.array_equal(logits[0], logits[2])
    assert sorted(zipfile.ZipFile(bundle_zip).namelist()) == sorted((*BUNDLE_FILES, "checksums.sha256"))


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_a_tampered_file_is_refused_and_named(bundle_dir, tmp_path, name):
    folder = copy_bundle(bundle_dir, tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(PayrouteError, match=rf"{name} does not match its checksum"):
        load_bundle(folder)


def test_a_tampered_zip_is_refused(bundle_zip, tmp_path):
    with zipfile.ZipFile(bundle_zip) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    files["card.json"] = files["card.json"].replace(b'"route"', b'"risk"')
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    with pytest.raises(PayrouteError, match="card.json does not match its checksum"):
        load_bundle(tampered)


@pytest.mark.parametrize("name", (*BUNDLE_FILES, "checksums.sha256"))
def test_a_missing_file_is_refused_and_named(bundle_dir, tmp_path, name):
    folder = copy_bundle(bundle_dir, tmp_path)
    (folder / name).unlink()
    with pytest.raises(PayrouteError, match=rf"{name} is missing"):
        load_bundle(folder)


def test_an_unlisted_file_is_refused(bundle_dir, tmp_path):
    folder = copy_bundle(bundle_dir, tmp_path)
    (folder / "extra.onnx").write_bytes(b"\x00")
    with pytest.raises(PayrouteError, match="extra.onnx is not listed"):
        load_bundle(folder)


def test_a_symlinked_file_is_refused(bundle_dir, tmp_path):
    folder = copy_bundle(bundle_dir, tmp_path)
    (folder / "policy.onnx").unlink()
    (folder / "policy.onnx").symlink_to(bundle_dir / "policy.onnx")
    with pytest.raises(PayrouteError, match="policy.onnx is a symbolic link"):
        load_bundle(folder)


@pytest.mark.parametrize("evil", ["../evil.txt", "policy/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt"])
def test_zip_entries_escaping_the_folder_are_refused(bundle_dir, tmp_path, evil):
    path = tmp_path / "slip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in bundle_dir.iterdir():
            zf.write(p, p.name)
        zf.writestr(zipfile.ZipInfo(evil), b"owned")
    with pytest.raises(PayrouteError, match="escapes the bundle folder") as err:
        load_bundle(path)
    assert evil.replace("\\", "\\\\") in str(err.value)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_another_bundle_schema_version_is_refused_even_when_re_signed(bundle_dir, tmp_path):
    folder = copy_bundle(bundle_dir, tmp_path)
    c = json.loads((folder / "card.json").read_text())
    c["bundle_schema_version"] = "2"
    (folder / "card.json").write_text(json.dumps(c))
    rewrite_checksums(folder)
    with pytest.raises(PayrouteError, match="bundle_schema_version is '2'; this payroute reads '1'"):
        load_bundle(folder)


def test_golden_vectors_that_do_not_reproduce_are_refused(bundle_dir, tmp_path):
    folder = copy_bundle(bundle_dir, tmp_path)
    g = json.loads((folder / "golden.json").read_text())
    g["logits"][3][0] += 0.01 if g["action_mask"][3][0] else 0.0
    g["logits"][0][1] += 0.01
    (folder / "golden.json").write_text(json.dumps(g))
    rewrite_checksums(folder)
    with pytest.raises(PayrouteError, match="golden.json vectors do not reproduce"):
        load_bundle(folder)


def test_a_card_inconsistent_with_the_network_is_refused(bundle_dir, tmp_path):
    folder = copy_bundle(bundle_dir, tmp_path)
    c = json.loads((folder / "card.json").read_text())
    c["observation"] = c["observation"][:-1]
    c["io"]["obs_dim"] = OBS_DIM - 1
    (folder / "card.json").write_text(json.dumps(c))
    rewrite_checksums(folder)
    with pytest.raises(PayrouteError, match="policy.onnx obs is not a \\(batch, 5\\) tensor"):
        load_bundle(folder)


def test_observation_schema_is_checked_against_the_expected_one(bundle_dir):
    names = [f["name"] for f in FEATURES]
    assert load_bundle(bundle_dir, expected_observation=names).feature_names == names
    load_bundle(bundle_dir, expected_observation=[FeatureSpec(**f) for f in FEATURES])
    with pytest.raises(PayrouteError, match="feature 1 is 'f1', expected 'amount'"):
        load_bundle(bundle_dir, expected_observation=[names[0], "amount", *names[2:]])
    with pytest.raises(PayrouteError, match="6 features in the bundle, 7 expected"):
        load_bundle(bundle_dir, expected_observation=[*names, "extra"])
    wrong_unit = [dict(f) for f in FEATURES]
    wrong_unit[4]["unit"] = "cents"
    with pytest.raises(PayrouteError, match="feature 'f4' unit is 'z-score', expected 'cents'"):
        load_bundle(bundle_dir, expected_observation=wrong_unit)


def test_not_a_bundle_and_no_bundle_are_clear_errors(tmp_path):
    with pytest.raises(PayrouteError, match="bundle not found"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "file.zip").write_bytes(b"not a zip")
    with pytest.raises(PayrouteError, match="neither a bundle directory nor a .zip"):
        load_bundle(tmp_path / "file.zip")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actions": ACTIONS[:-1]}, "io.n_actions is 5 but actions lists 4"),
        ({"decision_kind": "routing"}, "decision_kind"),
        ({"observation": [*FEATURES[:-1], FEATURES[0]]}, "duplicate feature names"),
        ({"surprise": 1}, "surprise = 1: unknown field"),
        ({"io": {}}, "written by the exporter"),
        (
            {"scenario": {"name": "default", "sha256": "0" * 64, "config": {"a": 1}}},
            "does not match the sha256",
        ),
    ],
)
def test_export_refuses_a_bad_card(module, tmp_path, change, message):
    with pytest.raises(PayrouteError, match=message):
        export_torch_policy(module, OBS_DIM, N_ACTIONS, card(**change), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_export_refuses_to_overwrite(module, bundle_dir):
    with pytest.raises(PayrouteError, match="already exists"):
        export_torch_policy(module, OBS_DIM, N_ACTIONS, card(), bundle_dir)


def test_export_leaves_a_training_module_in_training_mode(tmp_path):
    net = tiny_mlp().train()
    load_bundle(export_torch_policy(net, OBS_DIM, N_ACTIONS, card(), tmp_path / "b.zip"))
    assert net.training


def test_export_refuses_a_module_the_graph_cannot_match(tmp_path):
    class Drifting(torch.nn.Module):
        """Different answers on every call: the exported graph cannot agree with it."""

        def forward(self, obs):
            return torch.rand(obs.shape[0], N_ACTIONS) * 100

    with pytest.raises(PayrouteError, match="disagrees with the torch module"):
        export_torch_policy(Drifting(), OBS_DIM, N_ACTIONS, card(), tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- in the world
class TinyRoutingObservation:
    """A stand-in for the routing observation builder: six transaction features."""

    feature_names = [f["name"] for f in FEATURES]

    def __call__(self, world, payload):
        tx, _eligible = payload
        return np.array(
            [
                np.log10(tx.amount_cents) - 4.0, float(tx.cross_border), tx.risk_score * 4 - 2,
                (world.now % 86_400) / 43_200 - 1, float(tx.instrument == "bank_account"), float(tx.foreign_card),
            ],
            dtype=np.float32,
        )  # fmt: skip


def test_a_bundle_routes_payments_in_the_world_and_logs_its_propensities(small_scenario, tmp_path):
    routes = list(small_scenario.routes)
    net = tiny_mlp(n_actions=len(routes), seed=7)
    path = export_torch_policy(net, OBS_DIM, len(routes), card(actions=routes), tmp_path / "router")
    policy = load_bundle(path)
    builder = TinyRoutingObservation()

    policies = bound_policies()
    policies["route"] = policy.bound(builder, sample=True)
    log = EventLog(keep_in_memory=True)
    world = PaymentWorld(small_scenario, seed=3, policies=policies, days=0.25, log=log)
    world.run()
    assert world.in_flight == 0 and sum(world.terminal.values()) == world.arrivals
    decisions = read_logged_decisions(log.table(), route_names=routes)
    assert decisions.n > 100
    assert (decisions.propensities < 1).mean() > 0.5  # a stochastic policy logs its probabilities
    assert decisions.masks[np.arange(decisions.n), decisions.actions].all()

    # greedy binding takes exactly the bundle's argmax for the world's observation and eligible routes
    greedy = policy.bound(builder)
    seen = []
    original_decide = greedy.decide

    def spy(world, payload):
        action, prop = original_decide(world, payload)
        mask = np.zeros(len(routes), bool)
        mask[[r.index for r in payload[1]]] = True
        seen.append((action, int(policy.act(builder(world, payload), mask)), prop))
        return action, prop

    greedy.decide = spy
    policies = bound_policies()
    policies["route"] = greedy
    PaymentWorld(small_scenario, seed=3, policies=policies, days=0.1).run()
    assert len(seen) > 50
    assert all(a == b and p == 1.0 for a, b, p in seen)


def test_binding_a_bundle_for_other_routes_is_refused(small_scenario, bundle_dir):
    policies = bound_policies()
    policies["route"] = load_bundle(bundle_dir).bound(TinyRoutingObservation())
    with pytest.raises(PayrouteError, match="do not match this world's route actions"):
        PaymentWorld(small_scenario, seed=0, policies=policies, days=0.1)


# ---------------------------------------------------------------------- no ray, no torch
def test_policies_import_and_load_a_bundle_without_ray_or_torch(bundle_zip):
    script = textwrap.dedent(
        f"""
        import sys
        from importlib.abc import MetaPathFinder

        BLOCKED = ("ray", "torch", "stable_baselines3")

        class Block(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked in this test")
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import payroute.policies
        from payroute.policies import load_bundle
        from payroute.policies import logs
        from payroute.policies.review import ope

        policy = load_bundle({str(bundle_zip)!r})
        actions = policy.act(np.zeros((4, {OBS_DIM}), dtype=np.float32))
        assert actions.shape == (4,)
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker let torch through")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok", actions.tolist())
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("ok")
