"""Signed bundles: who vouches for a bundle, checked against public keys the reviewer trusts.

The checksums prove a bundle was not changed by accident; they prove nothing against an author, who can change
the network and regenerate them. A signature can: ``payroute export --sign-key KEY`` signs ``checksums.sha256``
with an Ed25519 private key the exporting team holds and writes ``signature.json`` beside it (outside the
checksums it signs). Changing any file then means regenerating the checksums, and the signature no longer
matches them.

A loader verifies ``signature.json`` against the public keys it trusts (``--trusted-key PUB``; the zoo's key,
``policies/zoo/zoo_signing.pub``, is trusted by default) and finds one of:

- **trusted**: signed by a trusted key, and the signature matches;
- **unknown key**: signed, the signature matches the key named in the file, but nobody trusts that key (anyone
  can make a key: this says only that the bundle is as that key's holder wrote it);
- **unsigned**: no ``signature.json``;
- **invalid**: the signature does not match the checksums (the bundle changed after it was signed), or the file
  names a trusted key id with another key: always refused.

A key id is the first 16 hex digits of the sha256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from payroute.errors import PayrouteError
from payroute.policies.bundle.card import CHECKSUM_FILE, SIGNATURE_FILE

SIGNATURE_FORMAT = "payroute-bundle-signature/1"
SIGNED_PREFIX = b"payroute bundle signature v1\n"  # domain separation: what is signed is prefix + checksums
PRIVATE_KEY_FILE, PUBLIC_KEY_FILE = "signing.key", "signing.pub"
ZOO_PUBLIC_KEY = "zoo_signing.pub"
MAX_KEY_FILE_BYTES = 16 << 10


@dataclass(frozen=True)
class TrustedKey:
    """An Ed25519 public key a loader trusts, with where it came from."""

    key_id: str
    public_bytes: bytes
    source: str


@dataclass(frozen=True)
class Signature:
    """What a bundle's signature says: ``trusted``, ``unknown`` or ``unsigned`` (an invalid one is refused)."""

    status: Literal["trusted", "unknown", "unsigned"]
    key_id: str | None = None
    key_source: str | None = None

    @property
    def trusted(self) -> bool:
        return self.status == "trusted"

    def describe(self) -> str:
        if self.status == "trusted":
            return f"signed by {self.key_id} (trusted: {self.key_source})"
        if self.status == "unknown":
            return f"signed by an unknown key {self.key_id}"
        return "unsigned"

    def claims(self) -> str:
        """Who makes the claims of the card (training, evaluation): never established facts."""
        if self.status == "unsigned":
            return "unsigned claims (nobody vouches for them)"
        trust = "a trusted key" if self.status == "trusted" else "a key nobody here trusts"
        return f"claimed by the signer, signed by key {self.key_id} ({trust})"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "status": self.status,
            "key_id": self.key_id,
            "key_source": self.key_source,
            "says": self.describe(),
        }


def key_id(public_bytes: bytes) -> str:
    return hashlib.sha256(public_bytes).hexdigest()[:16]


# ---------------------------------------------------------------------- keys
def generate_keypair(out_dir: str | Path) -> tuple[Path, Path, str]:
    """Write a new Ed25519 key pair in ``out_dir``: ``signing.key`` (PEM, mode 0600) and ``signing.pub``.

    Refuses to overwrite either file. Returns (private key path, public key path, key id)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PayrouteError(f"--out = {str(out)!r}: is a file; allowed: a folder for the key pair")
    private_path, public_path = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    for p in (private_path, public_path):
        if p.exists() or p.is_symlink():
            raise PayrouteError(f"{p} already exists; keys are never overwritten: choose another --out")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    os.chmod(private_path, 0o600)  # whatever the umask
    public_path.write_bytes(public_pem)
    return private_path, public_path, key_id(raw)


def _read_key_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise PayrouteError(f"{what} {str(path)!r} not found (or not a file)")
    if path.stat().st_size > MAX_KEY_FILE_BYTES:
        raise PayrouteError(f"{what} {str(path)!r} is larger than {MAX_KEY_FILE_BYTES} bytes; not a key file")
    return path.read_bytes()


def load_private_key(path: str | Path) -> object:
    """The Ed25519 private key in a PEM file (as ``payroute keygen`` writes it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    raw = _read_key_file(path, "--sign-key")
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as err:
        raise PayrouteError(
            f"--sign-key {path.name}: not an unencrypted PEM private key ({str(err).splitlines()[0][:120]}); "
            "make one with `payroute keygen --out DIR`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PayrouteError(f"--sign-key {path.name}: a {type(key).__name__}; allowed: an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> TrustedKey:
    """A trusted public key from a PEM file (``signing.pub`` as ``payroute keygen`` writes it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    raw = _read_key_file(path, "trusted key")
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as err:
        raise PayrouteError(
            f"trusted key {path.name}: not a PEM public key ({str(err).splitlines()[0][:120]})"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise PayrouteError(f"trusted key {path.name}: a {type(key).__name__}; allowed: an Ed25519 key")
    public = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return TrustedKey(key_id(public), public, path.name)


def public_key_of(private_key: object, source: str) -> TrustedKey:
    """The public half of a private key, as a trusted key (an exporter reading back what it signed)."""
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return TrustedKey(key_id(raw), raw, source)


def zoo_public_key() -> TrustedKey:
    """The key the reference bundles in ``policies/zoo`` are signed with (its private half was discarded)."""
    return load_public_key(Path(__file__).resolve().parent.parent / "zoo" / ZOO_PUBLIC_KEY)


def default_trusted_keys() -> tuple[TrustedKey, ...]:
    """The keys every loader trusts unless told otherwise: the zoo's."""
    return (zoo_public_key(),)


def trusted_keys(paths: Iterable[str | Path] = (), *, zoo: bool = True) -> tuple[TrustedKey, ...]:
    """The keys in ``paths`` (PEM public keys), with the zoo's key unless ``zoo`` is false."""
    keys = [load_public_key(p) for p in paths]
    return (*default_trusted_keys(), *keys) if zoo else tuple(keys)


# ---------------------------------------------------------------------- signing and verifying
def sign_checksums(private_key: object, checksums: bytes) -> bytes:
    """``signature.json`` for a bundle whose ``checksums.sha256`` holds ``checksums``."""
    from cryptography.hazmat.primitives import serialization

    public = private_key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signature = private_key.sign(SIGNED_PREFIX + checksums)  # type: ignore[attr-defined]
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "signed_file": CHECKSUM_FILE,
        "key_id": key_id(public),
        "public_key": base64.b64encode(public).decode(),
        "signature": base64.b64encode(signature).decode(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def verify_signature(files: dict[str, bytes], trusted: Sequence[TrustedKey], name: str) -> Signature:
    """Check ``signature.json`` (when present) over ``checksums.sha256``; raise on an invalid signature."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = files.get(SIGNATURE_FILE)
    if raw is None:
        return Signature("unsigned")

    def invalid(why: str) -> PayrouteError:
        return PayrouteError(f"bundle {name}: signature INVALID: {SIGNATURE_FILE} {why}; refusing to load")

    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid("is not valid JSON") from None
    fields = {"format", "algorithm", "signed_file", "key_id", "public_key", "signature"}
    if not isinstance(doc, dict) or set(doc) != fields or not all(isinstance(doc[k], str) for k in fields):
        raise invalid(f"must hold exactly the string fields {sorted(fields)}")
    if (doc["format"], doc["algorithm"], doc["signed_file"]) != (SIGNATURE_FORMAT, "ed25519", CHECKSUM_FILE):
        raise invalid(
            f"is format {doc['format'][:40]!r}, algorithm {doc['algorithm'][:20]!r} over {doc['signed_file'][:40]!r}; "
            f"allowed: {SIGNATURE_FORMAT!r}, 'ed25519' over {CHECKSUM_FILE!r}"
        )
    try:
        public = base64.b64decode(doc["public_key"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
    except ValueError:
        raise invalid("holds a key or signature that is not base64") from None
    if len(public) != 32 or len(signature) != 64 or doc["key_id"] != key_id(public):
        raise invalid(
            "names a key id that is not the hash of its 32-byte public key, or a malformed signature"
        )
    match = next((k for k in trusted if k.key_id == doc["key_id"]), None)
    if match is not None and match.public_bytes != public:
        raise invalid(f"claims trusted key id {doc['key_id']} with another public key")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, SIGNED_PREFIX + files[CHECKSUM_FILE])
    except InvalidSignature:
        raise PayrouteError(
            f"bundle {name}: signature INVALID: {CHECKSUM_FILE} is not what key {doc['key_id']} signed "
            "(the bundle was changed after it was signed); refusing to load"
        ) from None
    if match is not None:
        return Signature("trusted", match.key_id, match.source)
    return Signature("unknown", doc["key_id"])


__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "SIGNATURE_FILE",
    "Signature",
    "TrustedKey",
    "default_trusted_keys",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_key_of",
    "sign_checksums",
    "trusted_keys",
    "verify_signature",
    "zoo_public_key",
]
