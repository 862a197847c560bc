"""Sign a bundle that already exists: ``payroute sign BUNDLE --sign-key KEY``.

A team signs what it ships at export (``payroute export --sign-key``). Some signatures come later: a model-risk
function that signs the bundles it approved, or a new signing key that replaces an old one. The bundle is
verified first exactly as :func:`~payroute.policies.bundle.loading.load_bundle` verifies it (checksums, card,
ONNX checker, golden vectors), with any earlier signature set aside: only an intact bundle is signed, and
nothing but ``signature.json`` changes, written so that a reader sees the old bundle or the new one.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from payroute.files import atomic_path, atomic_write_bytes
from payroute.policies.bundle.card import CHECKSUM_FILE, SIGNATURE_FILE
from payroute.policies.bundle.loading import load_bundle_files, read_bundle_files
from payroute.policies.bundle.signing import (
    Signature,
    load_private_key,
    public_key_of,
    sign_checksums,
    verify_signature,
)


def sign_bundle(path: str | Path, sign_key: str | Path) -> Signature:
    """Sign the bundle at ``path`` (a folder or a ``.zip``) with the Ed25519 private key in ``sign_key``,
    replacing any signature it had; the signature as a loader trusting that key reads it."""
    path = Path(path)
    key = load_private_key(sign_key)
    files = read_bundle_files(path)
    files.pop(SIGNATURE_FILE, None)
    load_bundle_files(files, path, trusted_keys=[])  # intact, whoever signed it before
    files[SIGNATURE_FILE] = sign_checksums(key, files[CHECKSUM_FILE])
    if path.is_dir():
        atomic_write_bytes(path / SIGNATURE_FILE, files[SIGNATURE_FILE])
    else:
        with (
            atomic_path(path) as partial,
            zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        ):
            for name, data in files.items():
                zf.writestr(name, data)
    return verify_signature(files, [public_key_of(key, str(sign_key))], path.name)


__all__ = ["sign_bundle"]
