"""Pipelines the ``payroute`` commands run: a bundle's review, and the quickstart end to end.

``payroute run`` is four commands in a row, each printing what it prints on its own::

    payroute train quickstart  ->  payroute evaluate RUN  ->  payroute export RUN --out RUN/bundle
                               ->  payroute review RUN/bundle --report RUN/review/report.html
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from payroute.experiments.console import (
    EXPORTING,
    console,
    err_console,
    evaluating,
    print_evaluation,
    print_review,
    progress_bar,
)

if TYPE_CHECKING:
    from payroute.experiments.evaluate import Evaluation
    from payroute.policies.review.pipeline import ReviewResult


def run_review(
    bundle: Path,
    logs: Path | None,
    champion: Path | None,
    config: Path | None,
    report: Path | None,
    json_out: Path | None,
    trusted_keys: tuple[Path, ...] = (),
    ray_address: str | None = None,
    shadow: Path | None = None,
    shadow_out: Path | None = None,
    scenario: str | None = None,
) -> ReviewResult:
    """Review ``bundle`` with a progress bar; write the HTML report, the JSON summary and the shadow replay's
    per-decision JSON where asked (every path checked before the review starts, every file written whole or not
    at all). ``ray_address``: the stress worlds run on that Ray cluster. ``scenario`` (a shipped name or a YAML
    path, e.g. a calibrated scenario) is the review's world: the bundle must fit it, the constraint checks run
    on it and every stress variant is layered on it (:func:`payroute.policies.review.stress.layered_scenario`)."""
    from payroute.errors import PayrouteError
    from payroute.experiments.cluster import ray_executor
    from payroute.files import check_output_file
    from payroute.policies.review import default_config_path, load_review_config, review_bundle
    from payroute.policies.review.config import with_scenario

    check_output_file(report, "--report")
    check_output_file(json_out, "--json")
    check_output_file(shadow_out, "--shadow-out")
    if shadow_out is not None and shadow is None:
        raise PayrouteError("--shadow-out writes the shadow replay's decisions; pass --shadow LOG with it")
    cfg = load_review_config(config)
    if scenario is not None:
        cfg = with_scenario(cfg, scenario)
    with ray_executor(ray_address) as executor, progress_bar() as progress:
        result = review_bundle(
            bundle, logs=logs, champion=champion, config=cfg, progress=progress, trusted_keys=trusted_keys,
            shadow=shadow, executor=executor, config_file=config or default_config_path(),
        )  # fmt: skip
    if report is not None:
        from payroute.policies.review.report import write_html

        write_html(result, report)
    if json_out is not None:
        result.write_json(json_out)
    if shadow_out is not None and result.shadow is not None:
        result.shadow.write_decisions(shadow_out, result.bundle)
    return result


@dataclass(frozen=True)
class QuickstartRun:
    """Where everything ``payroute run`` made is, and how long it took."""

    run_dir: Path
    record: dict[str, Any]  # the run's run.json
    trained_s: float
    evaluation: Evaluation
    bundle: Path
    review_dir: Path
    review: ReviewResult
    total_s: float
    page: Path  # the run's summary page (summary.html)


def run_quickstart(
    experiment: str, runs: Path, seed: int | None, review_config: Path | None, argv: list[str]
) -> QuickstartRun:
    """Train ``experiment``, evaluate it on held-out seeds, export its policy as a bundle and review the bundle,
    printing each stage as its own command does."""
    from payroute.config_io import read_json
    from payroute.experiments.evaluate import evaluate_run
    from payroute.experiments.export import export_run
    from payroute.experiments.run_page import write_run_page
    from payroute.experiments.runner import train as run_train
    from payroute.files import check_output_folder

    check_output_folder(runs, "--runs")
    start = time.perf_counter()
    console.rule(f"1/4 training {experiment}")
    run_dir = run_train(experiment, seed=seed, runs_root=runs, argv=argv, console=err_console)
    trained_s = time.perf_counter() - start
    console.rule("2/4 evaluating on held-out seeds")
    with progress_bar(evaluating) as report:
        evaluation = evaluate_run(run_dir, progress=report)
    print_evaluation(evaluation)
    console.rule("3/4 exporting the policy bundle")
    with err_console.status(EXPORTING):
        written, _skipped = export_run(run_dir, run_dir / "bundle")
    role, bundle = next(iter(written.items()))
    console.print(f"{role}: {bundle}")
    console.rule("4/4 reviewing the bundle (payroute review)")
    review_dir = run_dir / "review"
    review_dir.mkdir(exist_ok=True)
    verdict = run_review(
        bundle, None, None, review_config, review_dir / "report.html", review_dir / "summary.json"
    )
    print_review(verdict, None, None)
    record = read_json(run_dir / "run.json")
    page = write_run_page(evaluation, record, verdict, review_dir / "report.html", bundle)
    return QuickstartRun(
        run_dir, record, trained_s, evaluation, bundle, review_dir, verdict, time.perf_counter() - start, page
    )
