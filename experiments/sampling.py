"""The ``trainer.sampler`` section of an experiment: which RLlib env runner samples, and whether it overlaps the
learner (:mod:`payroute.agents.rllib.batched`; docs/experiments.md, Samplers).

Kept apart from :mod:`payroute.experiments.schema` (which holds every other section) so that module stays short;
the schema uses :class:`SamplerSection`, :func:`check_sampler` and :func:`drop_default_sampler`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from payroute.config_model import ConfigModel

PLAIN_SAMPLER = {"env_runner": "rllib", "async_sampling": False, "keep_infos": False}


class SamplerSection(ConfigModel):
    """How RLlib samples: ``env_runner`` (``rllib``: RLlib's own; ``batched``: the batched sampler, PPO and APPO
    on single-agent environments with a discrete action) and ``async_sampling`` (batched, remote env runners:
    sample the next batch while the learner updates, so the learner trains on data one update old)."""

    env_runner: Literal["rllib", "batched"] = Field(
        "rllib", description="rllib: RLlib's SingleAgentEnvRunner; batched: payroute.agents.rllib.batched"
    )
    async_sampling: bool = Field(
        False, description="batched sampler with remote env runners: sample the next batch during the update"
    )
    keep_infos: bool = Field(
        False,
        description="batched sampler: keep every step's info in the episodes (default: the last step's only)",
    )


def check_sampler(exp: Any) -> Any:
    """The experiment-wide checks of ``trainer.sampler`` (an ``Experiment`` model validator, mode ``after``)."""
    sampler, trainer = exp.trainer.sampler, exp.trainer
    if sampler.env_runner == "batched" and (trainer.library, trainer.algorithm) not in (
        ("rllib", "PPO"),
        ("rllib", "APPO"),
    ):
        raise ValueError(
            f"trainer.sampler.env_runner 'batched' needs trainer.library 'rllib' with PPO or APPO (got "
            f"{trainer.library!r}, {trainer.algorithm!r}); 'rllib' samples for the others"
        )
    if sampler.env_runner == "batched" and ":" in exp.env.id:
        raise ValueError(
            f"trainer.sampler.env_runner 'batched' is for the single-agent payroute environments, not {exp.env.id!r}"
        )
    for flag in ("async_sampling", "keep_infos"):
        if getattr(sampler, flag) and sampler.env_runner != "batched":
            raise ValueError(f"trainer.sampler.{flag} true needs trainer.sampler.env_runner 'batched'")
    if sampler.async_sampling and not exp.resources.num_env_runners:
        raise ValueError(
            "trainer.sampler.async_sampling true needs resources.num_env_runners >= 1 (a remote env runner samples "
            "while the learner updates in the driver)"
        )
    return exp


def drop_default_sampler(data: dict[str, Any]) -> None:
    """Leave out a default sampler from a resolved config, so configs written before it existed keep their hash."""
    if data["trainer"].get("sampler") == PLAIN_SAMPLER:
        del data["trainer"]["sampler"]
