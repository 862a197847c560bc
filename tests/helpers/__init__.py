"""What several tests share: small worlds, rollouts, tiny experiments, test bundles, a two-router env."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository root (docs/, notebooks/, policies/zoo/ are read from here)."""
