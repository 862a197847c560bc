"""The review's integrity gate on who vouches for a bundle: the signature against the reviewer's trusted keys.

:func:`load_bundle` has already refused an invalid signature (the bundle changed after it was signed) and checked
every file; here the review says plainly what the signature is and whether the review config lets it pass:
``signed by <key id> (trusted)`` passes; ``signed by an unknown key <id>`` and ``unsigned`` are reported and fail
only when ``integrity.require_signature`` is true. Either way the card's training and evaluation records are
claims of whoever signed the bundle (or of nobody), and the report shows them so.
"""

from __future__ import annotations

from pathlib import Path

from payroute.policies.bundle import BundlePolicy, load_bundle
from payroute.policies.bundle.sandbox import GraphLimits
from payroute.policies.bundle.signing import TrustedKey, trusted_keys
from payroute.policies.review.checks import FAIL, PASS, WARN, Check
from payroute.policies.review.config import IntegrityReviewConfig


def review_keys(cfg: IntegrityReviewConfig, extra: tuple[str | Path, ...] = ()) -> tuple[TrustedKey, ...]:
    """The keys the review trusts: the config's, those given on the command line, and the zoo's unless off."""
    return trusted_keys([*cfg.trusted_keys, *extra], zoo=cfg.trust_zoo_key)


def load_for_review(
    path: str | Path, cfg: IntegrityReviewConfig, keys: tuple[TrustedKey, ...]
) -> BundlePolicy:
    """The bundle verified as every loader does, its untrusted graph run under the config's limits."""
    limits = GraphLimits(time_s=cfg.time_limit_s, memory_mb=cfg.memory_limit_mb)
    return load_bundle(path, trusted_keys=keys, limits=limits)


def signature_check(policy: BundlePolicy, cfg: IntegrityReviewConfig, what: str = "signature") -> Check:
    sig = policy.signature
    said = f"{policy.source.name} is {sig.describe()}"
    if sig.trusted:
        return Check(
            "integrity", what, PASS, f"{said}; the signature matches checksums.sha256", details=sig.to_dict()
        )
    why = (
        "its key is not among the trusted keys (--trusted-key, integrity.trusted_keys)"
        if sig.status == "unknown"
        else "it has no signature.json (export with --sign-key)"
    )
    if cfg.require_signature:
        return Check(
            "integrity", what, FAIL, f"{said}: {why}; the review config requires a trusted signature",
            details=sig.to_dict(),
        )  # fmt: skip
    return Check(
        "integrity", what, WARN,
        f"{said}: {why}; reported, not failed (integrity.require_signature: false); the card's claims are "
        f"{sig.claims()}",
        details=sig.to_dict(),
    )  # fmt: skip


__all__ = ["load_for_review", "review_keys", "signature_check"]
