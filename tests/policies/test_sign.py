"""`payroute sign`: a bundle that exists is signed after the fact (a reviewer's approval, a new key), only when
it is intact, and nothing but its signature changes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from payroute.experiments.cli import app
from payroute.policies import load_bundle
from payroute.policies.bundle.signing import generate_keypair, load_private_key, load_public_key
from tests.hostile.test_bundles import bundle_files, write_dir, write_zip


@pytest.fixture
def team(tmp_path):
    private, public, kid = generate_keypair(tmp_path / "team")
    return private, load_public_key(public), kid


@pytest.mark.parametrize("shape", ["folder", "zip"])
def test_sign_replaces_the_signature_of_an_intact_bundle_and_nothing_else(tmp_path, team, shape):
    private, public, kid = team
    old_private, _pub, old_id = generate_keypair(tmp_path / "old")
    files = bundle_files(key=load_private_key(old_private))  # signed by a key being retired
    path = write_dir(tmp_path / "b", files) if shape == "folder" else write_zip(tmp_path / "b.zip", files)
    result = CliRunner().invoke(app, ["sign", str(path), "--sign-key", str(private)])
    assert result.exit_code == 0, result.output
    assert f"signed by {kid}" in result.output
    bundle = load_bundle(path, trusted_keys=[public])
    assert bundle.signature.describe() == f"signed by {kid} (trusted: signing.pub)" and kid != old_id
    assert bundle.checksums_sha256 == load_bundle(path).checksums_sha256  # the same files, newly signed
    if shape == "folder":
        assert {p.name for p in path.iterdir()} == set(files)  # no temporary file left beside them


def test_sign_refuses_a_bundle_whose_files_do_not_match_their_checksums(tmp_path, team):
    private, _public, _kid = team
    files = bundle_files()
    files["golden.json"] = files["golden.json"].replace(b"1", b"2", 1)  # changed after the checksums
    path = write_dir(tmp_path / "b", files)
    result = CliRunner().invoke(app, ["sign", str(path), "--sign-key", str(private)])
    assert result.exit_code == 2 and "golden.json" in result.output
    assert not (path / "signature.json").exists()
