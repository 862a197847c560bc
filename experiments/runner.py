"""``payroute train``: one experiment, from its YAML to a run folder with curves, checkpoints and policies.

The loop is the whole story, CleanRL style::

    run folder (config, hash, command, versions, commit)  ->  trainer (RLlib or SB3)
    repeat: one training iteration -> TensorBoard + metrics.jsonl -> progress bar with KPIs
            -> every N iterations an atomic checkpoint -> stop at the first limit reached
    final checkpoint, the learned policy network of every learning agent, the run record closed

``--resume RUN_DIR`` reads the run's own config (so the hash is the original one), restores the newest
complete checkpoint, truncates the TensorBoard and metrics history after it, and carries on; the wall-time
limit counts the time spent before the interruption. The trainer restores everything that decides the next
iterations (RLlib, single- and multi-agent: the episodes under way, the seed cursor, every random generator,
the optimizer), so the resumed run is the run that was killed. A finished run is left as it is; a run killed
after its final checkpoint is closed from that checkpoint without training.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from payroute.errors import PayrouteError
from payroute.experiments.rundir import (
    METRICS_FILE,
    POLICY_DIR,
    TB_DIR,
    create_run_dir,
    keep_metrics,
    latest_checkpoint,
    mark_stopped,
    read_metrics,
    read_run,
    save_checkpoint,
    update_run,
)
from payroute.experiments.schema import Experiment, load_experiment
from payroute.files import atomic_folder


def make_trainer(exp: Experiment, ray_address: str | None = None) -> Any:
    """The library adapter for ``exp.trainer.library`` (imported only when needed)."""
    if exp.trainer.library == "rllib":
        from payroute.agents.rllib.trainer import RLlibTrainer

        return RLlibTrainer(exp, ray_address=ray_address)
    from payroute.agents.sb3.trainer import SB3Trainer

    return SB3Trainer(exp)


def check_environment(exp: Experiment) -> None:
    """Fail early, with a clear message, if the experiment's environment cannot be built."""
    from payroute.agents.training_env import env_kwargs, make_env

    try:
        kwargs = env_kwargs(
            exp.env.id, exp.scenario, exp.scenario_overrides, exp.env.days, exp.agents.baselines.named(),
            dict(exp.env.kwargs), learn=exp.agents.learn,
        )  # fmt: skip
        env = make_env(exp.env.id, kwargs)
    except LookupError as exc:
        raise PayrouteError(f"env.id: {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise PayrouteError(f"env: {exp.env.id} rejected its arguments: {exc}") from None
    if exp.train_scenarios:  # each one is built here, not first inside a Ray worker
        from payroute.agents.training_env import training_mix

        mix = {"env_id": exp.env.id, "kwargs": kwargs, "train_scenarios": list(exp.train_scenarios.items())}
        try:
            training_mix(mix, env)
        except (PayrouteError, LookupError, TypeError, ValueError) as exc:
            text = str(exc)
            raise PayrouteError(
                text if text.startswith("train_scenarios") else f"train_scenarios: {text}"
            ) from None
    roles = set(getattr(env, "possible_agents", ()) or ())
    if not roles:
        kind = getattr(env, "decision_kind", None)
        from payroute.experiments.schema import ROLE_KIND

        roles = {r for r, k in ROLE_KIND.items() if k == kind}
    unknown = sorted(set(exp.agents.learn) - roles)
    if unknown and roles:
        raise PayrouteError(
            f"agents.learn = {exp.agents.learn}: {exp.env.id} has agents {sorted(roles)} only"
        )
    close = getattr(env, "close", None)
    if close:
        close()


class _Progress:
    """A rich progress bar over the first stopping limit, with the latest KPIs beside it."""

    def __init__(self, exp: Experiment, console: Console | None, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        s = exp.stopping
        if s.env_steps:
            self.unit, self.total = "env steps", s.env_steps
        elif s.iterations:
            self.unit, self.total = "iterations", s.iterations
        else:
            self.unit, self.total = "seconds", s.wall_time_s
        self.bar = Progress(
            SpinnerColumn(),  # moves while an iteration is under way, before the first one reports
            TextColumn("{task.description}", style="bold", markup=False),  # experiment names are not markup
            BarColumn(),
            TextColumn("{task.fields[where]}", markup=False),
            TextColumn("{task.fields[kpis]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),  # estimated from the iterations done so far
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.bar.add_task(f"training {exp.name}", total=self.total, where="", kpis="")

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def update(self, iteration: int, env_steps: int, elapsed_s: float, scalars: dict[str, float]) -> None:
        done = {"env steps": env_steps, "iterations": iteration, "seconds": elapsed_s}[self.unit]
        where = f"it {iteration} · {env_steps:,} steps" if iteration else "iteration 1 under way"
        self.bar.update(
            self.task,
            completed=min(done, self.total),
            where=where,
            kpis=format_kpis(scalars),
        )


def format_kpis(scalars: dict[str, float]) -> str:
    """``margin/tx $1.0412 · approval 86.1% · fraud 11.2 bps · SLA misses 120`` from the latest numbers."""

    def pick(name: str) -> float | None:
        for prefix in ("kpi", "kpi_running"):
            v = scalars.get(f"{prefix}/{name}")
            if v is not None and not math.isnan(v):
                return v
        return None

    parts = []
    for name, fmt in (
        ("margin_per_tx_usd", "margin/tx ${:.4f}"),
        ("approval_rate", "approval {:.1%}"),
        ("fraud_loss_bps", "fraud {:.1f} bps"),
        ("sla_misses", "SLA misses {:,.0f}"),
    ):
        v = pick(name)
        if v is not None:
            parts.append(fmt.format(v))
    final = any(not math.isnan(scalars.get(f"kpi/{k}", math.nan)) for k in ("margin_per_tx_usd",))
    return " · ".join(parts) + ("" if final or not parts else " (episode so far)")


def _stop_reason(exp: Experiment, iteration: int, env_steps: int, elapsed_s: float, kpis: dict) -> str | None:
    s = exp.stopping
    if s.iterations is not None and iteration >= s.iterations:
        return f"reached {s.iterations} iterations"
    if s.env_steps is not None and env_steps >= s.env_steps:
        return f"reached {s.env_steps:,} env steps"
    if s.wall_time_s is not None and elapsed_s >= s.wall_time_s:
        return f"reached the wall-time limit of {s.wall_time_s:g} s"
    if s.target is not None:
        v = kpis.get(f"kpi/{s.target.kpi}")
        if v is not None and not math.isnan(v):
            hit = v >= s.target.value if s.target.mode == "max" else v <= s.target.value
            if hit:
                return f"{s.target.kpi} = {v:.4g} reached the target {s.target.value:g}"
    return None


def _truncate_history(run_dir: Path, iteration: int) -> None:
    """Drop metrics rows written after the checkpoint we resume from (they will be recomputed)."""
    if (run_dir / METRICS_FILE).exists():
        keep_metrics(run_dir, [row for row in read_metrics(run_dir) if row["iteration"] <= iteration])


def _finish_from_checkpoint(run_dir: Path, folder: Path, info: dict[str, Any], reason: str) -> None:
    """Close a run whose newest checkpoint already met its stopping rule: its policy from that checkpoint."""
    source = folder / POLICY_DIR
    if source.is_dir():
        with atomic_folder(run_dir / POLICY_DIR, replace=True) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
    update_run(
        run_dir, status="finished", finished_utc=dt.datetime.now(dt.UTC).isoformat(), stop_reason=reason,
        iterations=int(info["iteration"]), env_steps=int(info.get("env_steps", 0)),
        train_wall_s=round(float(info.get("elapsed_s", 0.0)), 2), final_scalars=dict(info.get("kpis", {})),
    )  # fmt: skip


def _experiment(experiment: str | Path | Experiment, seed: int | None) -> Experiment:
    changes = {"seed": seed} if seed is not None else None
    if isinstance(experiment, Experiment):
        return experiment.with_changes(changes) if changes else experiment
    return load_experiment(experiment, changes)


def train(
    experiment: str | Path | Experiment | None = None,
    *,
    on_start: Callable[[Path], None] | None = None,
    **options: Any,
) -> Path:
    """Train ``experiment`` (a YAML path or shipped name), or resume the run in ``resume``; the run folder.

    Options as :func:`_train`. A run that stops on an error or Ctrl-C after its folder was made is recorded as
    ``failed`` (with the error) or ``interrupted`` in ``run.json``; never left marked ``running``.
    """
    started: list[Path] = []

    def record_start(run_dir: Path) -> None:
        started.append(run_dir)
        if on_start is not None:
            on_start(run_dir)

    try:
        return _train(experiment, on_start=record_start, **options)
    except BaseException as exc:
        if started:
            mark_stopped(started[0], exc)
        raise


def _train(
    experiment: str | Path | Experiment | None = None,
    *,
    seed: int | None = None,
    resume: Path | None = None,
    ray_address: str | None = None,
    runs_root: Path = Path("runs"),
    argv: list[str] | None = None,
    console: Console | None = None,
    progress: bool = True,
    on_iteration: Callable[[Any], None] | None = None,
    on_start: Callable[[Path], None] | None = None,
) -> Path:
    """Train ``experiment`` (a YAML path or shipped name), or resume the run in ``resume``; the run folder."""
    from torch.utils.tensorboard import SummaryWriter

    console = console or Console(stderr=True)
    start_iteration, start_steps, elapsed_before = 0, 0, 0.0
    checkpoint = None
    if resume is not None:
        run_dir = Path(resume)
        exp, record = read_run(run_dir)
        if experiment is not None:
            given = _experiment(experiment, seed)
            if given.config_hash() != exp.config_hash():
                raise PayrouteError(
                    f"{experiment} (hash {given.config_hash()[:12]}) is not the config of {run_dir} "
                    f"(hash {exp.config_hash()[:12]}); resume with the run's own config (omit EXP.yaml)"
                )
        elif seed is not None and seed != exp.seed:
            raise PayrouteError(
                f"--seed {seed} differs from the run's seed {exp.seed}; a resumed run keeps its config"
            )
        if record.get("status") == "finished":
            console.print(
                f"{run_dir} is finished ({record.get('stop_reason') or 'stopped'} at iteration "
                f"{record.get('iterations')}); nothing to resume",
                markup=False, highlight=False,
            )  # fmt: skip
            return run_dir
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is not None:
            info = checkpoint[1]
            start_iteration, start_steps = int(info["iteration"]), int(info.get("env_steps", 0))
            elapsed_before = float(info.get("elapsed_s", 0.0))
            done = _stop_reason(exp, start_iteration, start_steps, elapsed_before, info.get("kpis", {}))
            if done is not None:  # killed after its final checkpoint: finish it, train nothing
                _finish_from_checkpoint(run_dir, checkpoint[0], info, done)
                console.print(
                    f"{run_dir} had {done} at its last checkpoint; finished it without training",
                    markup=False, highlight=False,
                )  # fmt: skip
                return run_dir
        update_run(
            run_dir,
            status="running",
            resumes=[*record.get("resumes", []), {
                "at_utc": dt.datetime.now(dt.UTC).isoformat(), "from_iteration": start_iteration,
                "command": " ".join(argv or []),
            }],
        )  # fmt: skip
    else:
        if experiment is None:
            raise PayrouteError("give an experiment YAML, or --resume RUN_DIR")
        exp = _experiment(experiment, seed)
        check_environment(exp)
        run_dir = create_run_dir(exp, runs_root, argv)
    if on_start is not None:
        on_start(run_dir)

    if progress:
        with console.status(f"building the {exp.trainer.library} trainer (workers and the algorithm)"):
            trainer = make_trainer(exp, ray_address)
    else:
        trainer = make_trainer(exp, ray_address)
    if checkpoint is not None:
        trainer.restore(checkpoint[0], env_steps=start_steps)
        _truncate_history(run_dir, start_iteration)
    writer = SummaryWriter(str(run_dir / TB_DIR), purge_step=start_steps + 1 if checkpoint else None)
    if checkpoint is None:
        writer.add_text("config", "```yaml\n" + (run_dir / "config.yaml").read_text() + "\n```", 0)
    t0 = time.perf_counter()
    iteration, env_steps = start_iteration, start_steps
    last_saved = start_iteration if checkpoint else -1
    scalars: dict[str, float] = {}
    reason = None

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def checkpoint_now() -> None:
        nonlocal last_saved

        def write(folder: Path) -> None:
            from payroute.agents.networks import save_policy

            # the networks first: building them draws from torch's generator, and the trainer's state (its
            # generators included) must be the one the next iteration starts from
            for role, net in trainer.policy_nets().items():
                save_policy(net, folder / POLICY_DIR / role)
            trainer.save(folder)

        save_checkpoint(
            run_dir, iteration, write,
            {"env_steps": env_steps, "elapsed_s": elapsed(),
             "kpis": {k: v for k, v in scalars.items() if k.startswith("kpi") and not math.isnan(v)}},
            exp.checkpoint.keep_last,
        )  # fmt: skip
        last_saved = iteration

    try:
        with _Progress(exp, console, progress) as bar, open(run_dir / METRICS_FILE, "a") as metrics:
            bar.update(iteration, env_steps, elapsed(), scalars)
            while True:
                report = trainer.train_iteration()
                iteration, env_steps = report.iteration, report.env_steps
                scalars = report.scalars
                for tag, value in scalars.items():
                    if not math.isnan(value):
                        writer.add_scalar(tag, value, env_steps)
                writer.add_scalar("charts/iteration", iteration, env_steps)
                writer.flush()
                row = {"iteration": iteration, "env_steps": env_steps, "elapsed_s": round(elapsed(), 3)}
                row.update({k: v for k, v in scalars.items() if not math.isnan(v)})
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                bar.update(iteration, env_steps, elapsed(), scalars)
                if on_iteration is not None:
                    on_iteration(report)
                reason = _stop_reason(exp, iteration, env_steps, elapsed(), scalars)
                if reason is None and iteration % exp.checkpoint.every_iterations == 0:
                    checkpoint_now()
                if reason is not None:
                    break
        if last_saved != iteration:
            checkpoint_now()
        from payroute.agents.networks import save_policy

        nets = trainer.policy_nets()
        for role, net in nets.items():
            save_policy(net, run_dir / POLICY_DIR / role)
        update_run(
            run_dir,
            status="finished",
            finished_utc=dt.datetime.now(dt.UTC).isoformat(),
            stop_reason=reason,
            iterations=iteration,
            env_steps=env_steps,
            train_wall_s=round(elapsed(), 2),
            final_scalars={
                k: v for k, v in scalars.items() if k.startswith(("kpi", "agent/")) and not math.isnan(v)
            },
        )
    finally:
        writer.close()
        trainer.close()
    return run_dir
