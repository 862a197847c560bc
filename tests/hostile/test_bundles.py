"""Hostile bundles: a forged or re-checksummed bundle, graphs that read outside the bundle, loop forever or eat
memory, and archives that lie. Every case ends in a one-line PayrouteError (exit 2 from the CLI) naming the bundle
and the entry, or, for a valid bundle, in correct numbers. The graphs are built here with ``onnx.helper`` (no
torch), so the file runs in seconds."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from payroute.errors import PayrouteError
from payroute.experiments.cli import app
from payroute.policies import load_bundle
from payroute.policies.bundle import loading
from payroute.policies.bundle.sandbox import GraphLimits
from payroute.policies.bundle.signing import (
    default_trusted_keys,
    generate_keypair,
    load_private_key,
    load_public_key,
    sign_checksums,
)
from payroute.policies.review.checks import FAIL, PASS, WARN
from payroute.policies.review.config import IntegrityReviewConfig
from payroute.policies.review.integrity import signature_check

D, A = 3, 3
ACTIONS = ["allow", "challenge", "block"]
W = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32)


# ---------------------------------------------------------------------- building bundles
def _io(batch: int | str = "batch") -> tuple[list, list]:
    inputs = [
        helper.make_tensor_value_info("obs", TensorProto.FLOAT, [batch, D]),
        helper.make_tensor_value_info("action_mask", TensorProto.BOOL, [batch, A]),
    ]
    return inputs, [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, A])]


def graph_model(
    w: np.ndarray = W, extra_nodes=(), extra_inits=(), score="score", opset=17, batch="batch", domains=()
) -> onnx.ModelProto:
    """logits = where(mask, obs @ w [+ extra], -1e9)."""
    inputs, outputs = _io(batch)
    nodes = [
        helper.make_node("MatMul", ["obs", "w"], ["score"]),
        *extra_nodes,
        helper.make_node("Where", ["action_mask", score, "masked"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(w.astype(np.float32), "w"),
        numpy_helper.from_array(np.array(-1e9, dtype=np.float32), "masked"),
        *extra_inits,
    ]
    graph = helper.make_graph(nodes, "policy", inputs, outputs, inits)
    imports = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def card(opset: int = 17) -> dict:
    return {
        "bundle_schema_version": "1",
        "decision_kind": "risk",
        "observation": [{"name": f"f{i}"} for i in range(D)],
        "actions": ACTIONS,
        "training": {"iterations": 100, "final_margin_usd": 9.99},
        "evaluation": {"versus": "beats every baseline"},
        "io": {"opset": opset, "obs_dim": D, "n_actions": A},
    }


def golden(w: np.ndarray = W) -> dict:
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((8, D)).astype(np.float32)
    mask = np.ones((8, A), dtype=bool)
    logits = obs @ w
    return {"obs": obs.tolist(), "action_mask": mask.astype(int).tolist(), "logits": logits.tolist(),
            "actions": logits.argmax(axis=1).tolist()}  # fmt: skip


def checksums(files: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in sorted(files.items())).encode()


def bundle_files(model=None, card_doc=None, golden_doc=None, key=None) -> dict[str, bytes]:
    files = {
        "policy.onnx": (model if model is not None else graph_model()).SerializeToString(),
        "card.json": json.dumps(card_doc or card()).encode(),
        "golden.json": json.dumps(golden_doc or golden()).encode(),
    }
    files["checksums.sha256"] = checksums(files)
    if key is not None:
        files["signature.json"] = sign_checksums(key, files["checksums.sha256"])
    return files


def write_dir(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def write_zip(path: Path, files: dict[str, bytes], **kw) -> Path:
    with zipfile.ZipFile(path, "w", compression=kw.pop("compression", zipfile.ZIP_DEFLATED)) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def refused(path: Path, match: str, **kw) -> str:
    with pytest.raises(PayrouteError, match=match) as err:
        load_bundle(path, **kw)
    message = str(err.value)
    assert "\n" not in message and f"bundle {path.name}" in message, message
    return message


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    private, public, kid = generate_keypair(root / "team")
    other_private, _pub, _kid = generate_keypair(root / "other")
    return {
        "key": load_private_key(private),
        "pub": public,
        "id": kid,
        "other": load_private_key(other_private),
    }


# ---------------------------------------------------------------------- signatures
def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    result = CliRunner().invoke(app, ["keygen", "--out", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    private, public = tmp_path / "k" / "signing.key", tmp_path / "k" / "signing.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    kid = load_public_key(public).key_id
    assert f"key id {kid}" in result.output and len(kid) == 16
    again = CliRunner().invoke(app, ["keygen", "--out", str(tmp_path / "k")])
    assert again.exit_code == 2 and "already exists" in again.output
    assert load_public_key(public).key_id == kid


def test_a_valid_bundle_gives_its_network_s_numbers_and_says_who_signed_it(tmp_path, keys):
    files = bundle_files(key=keys["key"])
    path = write_dir(tmp_path / "signed", files)
    trusted = load_bundle(path, trusted_keys=[load_public_key(keys["pub"])])
    obs = np.array([[1.0, 1.0, 1.0], [3.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(trusted.logits(obs), obs @ W)
    assert trusted.act(obs).tolist() == [2, 0]
    assert trusted.signature.describe() == f"signed by {keys['id']} (trusted: signing.pub)"
    assert load_bundle(path).signature.describe() == f"signed by an unknown key {keys['id']}"
    del files["signature.json"]
    assert load_bundle(write_dir(tmp_path / "unsigned", files)).signature.describe() == "unsigned"


def test_a_signed_bundle_whose_network_golden_and_checksums_were_regenerated_is_invalid(tmp_path, keys):
    # the case: the router changed to send everything one way, golden.json and checksums.sha256
    # regenerated to match, signature.json left as it was
    signed = bundle_files(key=keys["key"])
    forged_w = np.zeros_like(W)
    forged_w[:, 0] = 100.0  # every decision goes to action 0
    forged = bundle_files(graph_model(forged_w), golden_doc=golden(forged_w))
    forged["signature.json"] = signed["signature.json"]
    path = write_dir(tmp_path / "forged", forged)
    pub = load_public_key(keys["pub"])
    for trusted in ([pub], []):  # refused whether or not the reviewer trusts the key
        refused(path, "signature INVALID: checksums.sha256 is not what key .* signed", trusted_keys=trusted)
    result = CliRunner().invoke(app, ["review", str(path), "--trusted-key", str(keys["pub"])])
    assert result.exit_code == 2 and "signature INVALID" in result.output and "Traceback" not in result.output


def test_a_signature_claiming_a_trusted_key_id_with_another_key_is_invalid(tmp_path, keys):
    files = bundle_files(key=keys["other"])
    doc = json.loads(files["signature.json"])
    doc["key_id"] = default_trusted_keys()[0].key_id  # pretend to be the zoo
    files["signature.json"] = json.dumps(doc).encode()
    refused(write_dir(tmp_path / "b", files), "signature INVALID: signature.json names a key id")


def test_required_signatures_refuse_unsigned_and_unknown_keys(tmp_path, keys):
    unsigned = write_dir(tmp_path / "u", bundle_files())
    unknown = write_dir(tmp_path / "k", bundle_files(key=keys["other"]))
    refused(unsigned, "is unsigned; a signature by a trusted key is required", require_signature=True)
    refused(
        unknown,
        "signed by an unknown key .*; a signature by a trusted key is required",
        require_signature=True,
    )


def test_the_review_reports_the_signature_and_the_config_decides_if_untrusted_fails(tmp_path, keys):
    pub = load_public_key(keys["pub"])
    signed = load_bundle(write_dir(tmp_path / "s", bundle_files(key=keys["key"])), trusted_keys=[pub])
    unsigned = load_bundle(write_dir(tmp_path / "u", bundle_files()))
    report, require = IntegrityReviewConfig(), IntegrityReviewConfig(require_signature=True)
    assert signature_check(signed, require).status == PASS
    shipped = signature_check(unsigned, report)
    assert shipped.status == WARN and "unsigned" in shipped.summary and "unsigned claims" in shipped.summary
    assert signature_check(unsigned, require).status == FAIL


def test_the_report_shows_the_card_s_records_as_claims_of_the_signer(tmp_path, keys):
    from payroute.policies.review import ReviewConfig
    from payroute.policies.review.pipeline import ReviewResult
    from payroute.policies.review.report import render_html

    for key, says in ((keys["key"], f"claimed by the signer, signed by key {keys['id']}"),
                      (None, "unsigned claims")):  # fmt: skip
        policy = load_bundle(write_dir(tmp_path / str(key is None), bundle_files(key=key)))
        sig = {**policy.signature.to_dict(), "claims": policy.signature.claims()}
        result = ReviewResult(policy.source.name, str(policy.source), policy.card.model_dump(mode="json"),
                              "default", ReviewConfig(), [], signature=sig)  # fmt: skip
        page = render_html(result)
        assert f"training: {says}" in page and f"evaluation on the card: {says}" in page


def test_export_signs_the_checksums_and_the_signature_is_not_among_them(tmp_path, keys):
    torch = pytest.importorskip("torch")
    from payroute.experiments.onnx_export import export_torch_policy

    doc = {k: v for k, v in card().items() if k not in ("io", "bundle_schema_version")}
    out = export_torch_policy(torch.nn.Linear(D, A), D, A, doc, tmp_path / "b", sign_key=keys["key"])
    assert "signature.json" not in (out / "checksums.sha256").read_text()
    policy = load_bundle(out, trusted_keys=[load_public_key(keys["pub"])])
    assert policy.signature.status == "trusted"


# ---------------------------------------------------------------------- the graph
def test_external_data_is_refused_before_anything_reads_it(tmp_path, monkeypatch):
    model = graph_model()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="weights.bin")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(W.tobytes())  # in the working directory, outside the bundle
    read: list[str] = []
    real_open = open

    def spy(file, *a, **k):
        read.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    refused(write_dir(tmp_path / "ext", bundle_files(model)), "tensor 'w' refers to an external data file")
    assert not any("weights.bin" in f for f in read)


def test_external_data_in_a_constant_node_is_refused(tmp_path):
    t = numpy_helper.from_array(np.zeros(A, dtype=np.float32), "c")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="/etc/passwd")
    model = graph_model(extra_nodes=[helper.make_node("Constant", [], ["c"], value=t),
                                     helper.make_node("Add", ["score", "c"], ["s2"])], score="s2")  # fmt: skip
    refused(write_dir(tmp_path / "b", bundle_files(model)), "refers to an external data file")


def test_an_operator_of_an_unknown_domain_is_refused(tmp_path):
    model = graph_model(
        extra_nodes=[helper.make_node("Evil", ["score"], ["s2"], domain="com.evil")], score="s2",
        domains=["com.evil"],
    )  # fmt: skip
    refused(write_dir(tmp_path / "b", bundle_files(model)), r"imports op domains \['com.evil'\]")


@pytest.mark.parametrize(
    ("graph_opset", "card_opset", "message"),
    [(15, 17, "uses ai.onnx opset 15; the card declares opset 17"),
     (99, 99, "uses ai.onnx opset 99; supported: 11 to 17")],
)  # fmt: skip
def test_an_opset_the_card_does_not_declare_or_payroute_does_not_support_is_refused(
    tmp_path, graph_opset, card_opset, message
):
    files = bundle_files(graph_model(opset=graph_opset), card_doc=card(card_opset))
    refused(write_dir(tmp_path / "b", files), message)


def test_a_graph_that_only_takes_a_batch_of_64_is_refused(tmp_path):
    refused(write_dir(tmp_path / "fixed", bundle_files(graph_model(batch=64))), "fixed batch dimension of 64")
    # declared dynamic, but reshaped to 8 rows inside: the one-row probe shows it
    shape = numpy_helper.from_array(np.array([8, A], dtype=np.int64), "shape8")
    model = graph_model(extra_nodes=[helper.make_node("Reshape", ["score", "shape8"], ["s2"])], score="s2",
                        extra_inits=[shape])  # fmt: skip
    refused(write_dir(tmp_path / "hidden", bundle_files(model)), "policy.onnx failed on the golden vectors")


def _loop_model(trips: int | None) -> onnx.ModelProto:
    """A Loop of ``trips`` iterations, or, with None, of as many as the largest observation value."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")],
    )  # fmt: skip
    counted = [helper.make_node("ReduceMax", ["obs"], ["mx"], keepdims=0), helper.make_node("Relu", ["mx"], ["mxr"]),
               helper.make_node("Cast", ["mxr"], ["trips"], to=TensorProto.INT64)]  # fmt: skip
    inits = [*([] if trips is None else [numpy_helper.from_array(np.array(trips, dtype=np.int64), "trips")]),
             numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.array(0.0, dtype=np.float32), "v0"),
             numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]  # fmt: skip
    nodes = [*(counted if trips is None else []),
             helper.make_node("Loop", ["trips", "cond", "v0"], ["v"], body=body),
             helper.make_node("Mul", ["v", "zero"], ["v0x"]),
             helper.make_node("Add", ["score", "v0x"], ["s2"])]  # fmt: skip
    return graph_model(extra_nodes=nodes, extra_inits=inits, score="s2")


def test_a_loop_of_a_trillion_iterations_is_stopped_at_the_time_limit(tmp_path):
    path = write_dir(tmp_path / "loop", bundle_files(_loop_model(10**12)))
    # the CPU-time limit, or on a machine too loaded to give it that second in time, the wall-clock one
    limit = (
        r"ran past the limit of 1 s of CPU time|did not answer the golden vectors within 11 s of wall-clock"
    )
    refused(path, limit, limits=GraphLimits(time_s=1, memory_mb=512))


def test_a_loop_that_only_runs_long_on_some_input_is_stopped_in_process_at_the_limit(tmp_path):
    # the golden rows (values around 1) loop a few times; a value of 1e12 would loop for days
    path = write_dir(tmp_path / "counted", bundle_files(_loop_model(None)))
    policy = load_bundle(path, limits=GraphLimits(time_s=1, memory_mb=512))
    np.testing.assert_allclose(
        policy.logits(np.eye(D, dtype=np.float32)), W
    )  # correct numbers where it is fine
    with pytest.raises(PayrouteError, match=r"ran past the limit of 1 s on a batch of 1 rows"):
        policy.logits(np.full(D, 1e12, dtype=np.float32))
    np.testing.assert_allclose(policy.logits(np.eye(D, dtype=np.float32)), W)  # and it still answers after


def test_a_memory_bomb_is_stopped_at_the_memory_limit(tmp_path):
    shape = numpy_helper.from_array(np.array([1 << 15, 1 << 14], dtype=np.int64), "bomb_shape")  # 2 GiB
    nodes = [helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"]),
             helper.make_node("ReduceSum", ["bomb"], ["total"], keepdims=0),
             helper.make_node("Add", ["score", "total"], ["s2"])]  # fmt: skip
    path = write_dir(
        tmp_path / "bomb", bundle_files(graph_model(extra_nodes=nodes, extra_inits=[shape], score="s2"))
    )
    refused(path, r"ran past the limit of 256 MiB of memory", limits=GraphLimits(time_s=30, memory_mb=256))


def _memory_on_input_model() -> onnx.ModelProto:
    """A graph that allocates (largest observation value) x 16,384 floats: 64 KiB per unit, so the golden rows
    (values around 1) take kilobytes and a value of 1e5 over 6 GB."""
    nodes = [helper.make_node("ReduceMax", ["obs"], ["mx"], keepdims=0), helper.make_node("Relu", ["mx"], ["mxr"]),
             helper.make_node("Cast", ["mxr"], ["rows"], to=TensorProto.INT64),
             helper.make_node("Unsqueeze", ["rows", "ax0"], ["rows1"]),
             helper.make_node("Concat", ["rows1", "cols"], ["shape"], axis=0),
             helper.make_node("ConstantOfShape", ["shape"], ["bomb"]),
             helper.make_node("ReduceSum", ["bomb"], ["total"], keepdims=0),
             helper.make_node("Add", ["score", "total"], ["s2"])]  # fmt: skip
    inits = [numpy_helper.from_array(np.array([0], dtype=np.int64), "ax0"),
             numpy_helper.from_array(np.array([1 << 14], dtype=np.int64), "cols")]  # fmt: skip
    return graph_model(extra_nodes=nodes, extra_inits=inits, score="s2")


def test_a_graph_that_eats_memory_only_on_some_input_is_stopped_in_process_at_the_memory_limit(
    tmp_path, keys
):
    files = bundle_files(_memory_on_input_model(), key=keys["key"])
    path = write_dir(tmp_path / "hungry", files)
    # signed, but by a key nobody here trusts: limited
    policy = load_bundle(path, limits=GraphLimits(time_s=30, memory_mb=64))
    assert policy.limits == GraphLimits(time_s=30, memory_mb=64)
    within = np.full((1, D), 200.0, dtype=np.float32)  # 12.5 MiB: within the limit, and the right numbers
    np.testing.assert_allclose(policy.logits(within), within @ W)
    with pytest.raises(
        PayrouteError, match=r"ran past the limit of 64 MiB of memory on a batch of 1 rows"
    ) as err:
        policy.logits(np.full(D, 1e5, dtype=np.float32))  # 6 GB asked for
    assert "\n" not in str(err.value) and str(err.value).startswith("bundle hungry: policy.onnx")
    with pytest.raises(PayrouteError, match="64 MiB of memory"):
        policy.logits(np.full(D, 2000.0, dtype=np.float32))  # 125 MiB: over, though far from the machine's
    np.testing.assert_allclose(policy.logits(within), within @ W)  # the process and the policy carry on
    # a graph signed by a trusted key runs unlimited: the same 125 MiB call answers
    trusted = load_bundle(path, trusted_keys=[load_public_key(keys["pub"])], limits=GraphLimits(memory_mb=64))
    assert trusted.limits is None
    np.testing.assert_allclose(trusted.logits(np.full(D, 2000.0, dtype=np.float32)), np.full(D, 2000.0) @ W)


def test_stress_workers_verify_a_bundle_against_the_review_s_keys_and_limits(tmp_path, keys, monkeypatch):
    import pickle

    from payroute.policies import compare

    pub = load_public_key(keys["pub"])
    limits = GraphLimits(time_s=1, memory_mb=64)
    signed = load_bundle(write_dir(tmp_path / "team", bundle_files(key=keys["key"])), trusted_keys=[pub])
    hungry = load_bundle(
        write_dir(tmp_path / "hungry", bundle_files(_memory_on_input_model())), limits=limits
    )
    for policy, status, want_limits in ((signed, "trusted", None), (hungry, "unsigned", limits)):
        # as a spawned worker gets it
        arm = pickle.loads(pickle.dumps(compare.bundle_policy(policy, "candidate")))
        monkeypatch.setattr(compare, "_LOADED", {})  # a fresh worker: nothing verified yet
        reloaded = arm.make().policy
        assert reloaded is not policy and reloaded.source == policy.source
        assert reloaded.signature.status == status and reloaded.limits == want_limits
        assert reloaded.trusted_keys == policy.trusted_keys
    with pytest.raises(PayrouteError, match="limit of 64 MiB of memory"):  # the worker's copy is held to it
        reloaded.logits(np.full(D, 2000.0, dtype=np.float32))


def test_simulate_says_who_signed_the_bundle_it_ran_and_nothing_else_changes(tmp_path, keys):
    import shutil

    zoo = Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router"
    unknown = Path(shutil.copytree(zoo, tmp_path / "unknown"))
    (unknown / "signature.json").write_bytes(
        sign_checksums(keys["key"], (zoo / "checksums.sha256").read_bytes())
    )
    unsigned = Path(shutil.copytree(zoo, tmp_path / "unsigned"))
    (unsigned / "signature.json").unlink()
    zoo_id = default_trusted_keys()[0].key_id
    said = {}
    for bundle, extra, says in (
        (zoo, [], f"signed by {zoo_id} (trusted: zoo_signing.pub)"),
        (unknown, [], f"signed by an unknown key {keys['id']}"),
        (unknown, ["--trusted-key", str(keys["pub"])], f"signed by {keys['id']} (trusted: signing.pub)"),
        (unsigned, [], "unsigned"),
    ):
        args = ["simulate", "default", "--policy", str(bundle), "--days", "0.01", *extra]
        shown = CliRunner().invoke(app, args)
        assert shown.exit_code == 0, shown.output
        assert f"bundle {bundle.name}: {says}\n" in shown.output
        as_json = CliRunner().invoke(app, [*args, "--json"])
        summary = json.loads(as_json.output)
        assert summary.pop("signature") == {
            **_signature_of(says, zoo_id, keys),
            "bundle": bundle.name,
            "says": says,
        }
        for volatile in ("wall_s", "policy"):
            summary.pop(volatile)
        said[says] = summary
    first, *others = said.values()  # the same network: the same numbers whoever signed it
    assert all(o == first for o in others) and first["arrivals"] > 0


def _signature_of(says: str, zoo_id: str, keys: dict) -> dict:
    if says == "unsigned":
        return {"status": "unsigned", "key_id": None, "key_source": None}
    if "unknown" in says:
        return {"status": "unknown", "key_id": keys["id"], "key_source": None}
    kid, source = (zoo_id, "zoo_signing.pub") if zoo_id in says else (keys["id"], "signing.pub")
    return {"status": "trusted", "key_id": kid, "key_source": source}


# ---------------------------------------------------------------------- archives and files
def _patch_headers(path: Path, entry: str, size: int | None = None, flags: int | None = None) -> None:
    """Rewrite the uncompressed size or the flags ``entry`` declares, in its local and central headers."""
    data = bytearray(path.read_bytes())
    name = entry.encode()
    for sig, size_at, flags_at, name_at in ((b"PK\x03\x04", 22, 6, 30), (b"PK\x01\x02", 24, 8, 46)):
        at = data.find(sig)
        while at != -1:
            if data[at + name_at : at + name_at + len(name)] == name:
                if size is not None:
                    struct.pack_into("<I", data, at + size_at, size)
                if flags is not None:
                    struct.pack_into("<H", data, at + flags_at, flags)
            at = data.find(sig, at + 4)
    path.write_bytes(bytes(data))


def test_a_valid_zip_loads_as_the_directory_does(tmp_path):
    files = bundle_files()
    policy = load_bundle(write_zip(tmp_path / "b.zip", files))
    np.testing.assert_allclose(policy.logits(np.eye(D, dtype=np.float32)), W)


def test_an_entry_whose_header_lies_about_its_size_is_refused_naming_it(tmp_path):
    small = write_zip(tmp_path / "small.zip", bundle_files())
    _patch_headers(
        small, "golden.json", size=10
    )  # smaller than it is: the read stops there and the CRC fails
    refused(small, "entry 'golden.json' cannot be read")
    huge = write_zip(tmp_path / "huge.zip", bundle_files())
    _patch_headers(huge, "card.json", size=100_000_000)  # larger than allowed: refused before reading
    refused(huge, "card.json is 100,000,000 bytes; at most")


def test_a_corrupt_entry_is_refused_naming_it(tmp_path):
    path = write_zip(tmp_path / "b.zip", bundle_files())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("policy.onnx")
    start = info.header_offset + 30 + len(b"policy.onnx")
    for i in range(start + 5, start + 40):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    refused(path, "entry 'policy.onnx' cannot be read")


def test_encrypted_and_unsupported_compression_entries_are_refused(tmp_path):
    files = bundle_files()
    path = write_zip(tmp_path / "enc.zip", files)
    _patch_headers(path, "card.json", flags=0x1)
    refused(path, "zip entry 'card.json' is encrypted")
    bz = write_zip(tmp_path / "bz.zip", files, compression=zipfile.ZIP_BZIP2)
    refused(bz, "uses compression method 12; allowed: stored")


def test_a_broken_archive_is_one_line_from_the_cli(tmp_path):
    path = write_zip(tmp_path / "b.zip", bundle_files())
    data = path.read_bytes()
    path.write_bytes(data[: data.rfind(b"PK\x01\x02")] + data[data.rfind(b"PK\x05\x06") :])
    result = CliRunner().invoke(app, ["review", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "b.zip" in result.output


def test_an_unlisted_or_oversized_file_in_a_directory_is_refused_by_its_size_before_it_is_read(
    tmp_path, monkeypatch
):
    read: list[str] = []
    real = loading._read_plain
    monkeypatch.setattr(
        loading, "_read_plain", lambda entry, limit: (read.append(entry.name), real(entry, limit))[1]
    )
    folder = write_dir(tmp_path / "unlisted", bundle_files())
    with open(folder / "movie.bin", "wb") as f:
        f.truncate(1_200_000_000)  # sparse: no disk used
    refused(folder, "movie.bin is not listed in checksums.sha256")
    assert "movie.bin" not in read
    big = write_dir(tmp_path / "big", bundle_files())
    os.truncate(big / "policy.onnx", 1_200_000_000)
    read.clear()
    refused(big, "policy.onnx is 1,200,000,000 bytes; at most")
    assert "policy.onnx" not in read


def test_a_card_nested_too_deep_is_refused(tmp_path):
    deep = card()
    deep["training"] = json.loads("[" * 100 + "]" * 100)
    refused(
        write_dir(tmp_path / "b", bundle_files(card_doc=deep)),
        r"card.json: nested \d+ levels deep; allowed: at most 64",
    )
    raw = bundle_files()
    raw["card.json"] = b'{"training": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    raw["checksums.sha256"] = checksums({k: v for k, v in raw.items() if k != "checksums.sha256"})
    refused(write_dir(tmp_path / "c", raw), r"card.json: nested \d+ levels deep; allowed: at most 64")


# ---------------------------------------------------------------------- keys and the review config
def test_a_key_file_that_is_not_a_key_is_one_line_naming_it(tmp_path, keys):
    junk = tmp_path / "team.pub"
    junk.write_text("[red]not a key[/red]\n")
    bundle = write_dir(tmp_path / "b", bundle_files())
    result = CliRunner().invoke(app, ["review", str(bundle), "--trusted-key", str(junk)])
    assert result.exit_code == 2 and "trusted key team.pub: not a PEM public key" in result.output
    with pytest.raises(PayrouteError, match="--sign-key signing.pub: not an unencrypted PEM private key"):
        load_private_key(keys["pub"])


def test_the_review_config_names_trusted_keys_relative_to_itself_and_bounds_the_limits(tmp_path):
    from payroute.errors import ConfigError
    from payroute.policies.review import load_review_config

    path = tmp_path / "review.yaml"
    path.write_text("integrity: {trusted_keys: [keys/team.pub], require_signature: true}\n")
    cfg = load_review_config(path).integrity
    assert cfg.trusted_keys == [str(tmp_path / "keys" / "team.pub")] and cfg.require_signature
    for bad in (".inf", ".nan", "0", "-1"):
        path.write_text(f"integrity: {{time_limit_s: {bad}}}\n")
        with pytest.raises(ConfigError, match="integrity.time_limit_s"):
            load_review_config(path)


def test_simulate_with_an_unsafe_bundle_is_exit_2_naming_it(tmp_path):
    bundle = write_dir(tmp_path / "fixed", bundle_files(graph_model(batch=64)))
    result = CliRunner().invoke(app, ["simulate", "default", "--policy", str(bundle), "--days", "0.01"])
    assert result.exit_code == 2 and "fixed batch dimension of 64" in result.output
    assert "Traceback" not in result.output


def test_a_fifo_or_an_oversized_file_given_as_the_bundle_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "bundle.zip"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    refused(fifo, "is neither a directory nor a plain file")
    big = tmp_path / "big.zip"
    with open(big, "wb") as f:
        f.truncate(1_200_000_000)
    refused(big, "is larger than 1,073,741,824 bytes")
