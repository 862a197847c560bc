"""What the review keeps of a bundle's card, and what it says about where the bundle was trained.

The card's scenario and experiment configs are large (and hashed on the card), so the review's result keeps the
card without them, but with what a reader needs from them: the scenarios the bundle was trained on (the
experiment's ``train_scenarios`` mix) and the volume of its scenario.
"""

from __future__ import annotations

from typing import Any


def card_record(card: Any) -> dict[str, Any]:
    """The card (a pydantic model) as the review keeps it: the scenario's and experiment's configs are left out
    (they are large and hashed), what says where the bundle was trained is kept from them
    (``experiment.train_scenarios``, ``scenario.volume_scale``)."""
    out = card.model_dump(mode="json", exclude={"scenario": {"config"}, "experiment": {"config"}})
    full = card.model_dump(mode="json", include={"scenario", "experiment"})
    exp_cfg = (full.get("experiment") or {}).get("config") or {}
    scen_cfg = (full.get("scenario") or {}).get("config") or {}
    if (
        isinstance(out.get("experiment"), dict)
        and isinstance(exp_cfg, dict)
        and exp_cfg.get("train_scenarios")
    ):
        out["experiment"]["train_scenarios"] = exp_cfg["train_scenarios"]
    if isinstance(out.get("scenario"), dict) and isinstance(scen_cfg, dict) and "volume_scale" in scen_cfg:
        out["scenario"]["volume_scale"] = scen_cfg["volume_scale"]
    return out


def trained_on(card: dict[str, Any]) -> str:
    """One line: the scenarios (with their mix) and budget the bundle was trained on, as the card says."""
    experiment = card.get("experiment") or {}
    exp = experiment.get("config") or {}
    scen = card.get("scenario") or {}
    mix = experiment.get("train_scenarios") or exp.get("train_scenarios") or {}
    where = (
        ", ".join(f"{k} ({v:g})" if isinstance(v, int | float) else str(k) for k, v in mix.items())
        if mix
        else str(scen.get("name") or exp.get("scenario") or "an unrecorded scenario")
    )
    volume = (
        scen.get("volume_scale", (scen.get("config") or {}).get("volume_scale"))
        if isinstance(scen, dict)
        else None
    )
    train = card.get("training") or {}
    steps = train.get("env_steps") if isinstance(train, dict) else None
    who = train.get("trainer") if isinstance(train, dict) else None
    parts = [f"trained on {where}"]
    if isinstance(volume, int | float):
        parts.append(f"volume {volume:g}")
    if isinstance(steps, int | float):
        parts.append(f"{steps:,.0f} env steps")
    if who:
        parts.append(f"by {who}")
    return ", ".join(parts)


__all__ = ["card_record", "trained_on"]
