"""Calibrate a scenario from a payment log: what ``payroute calibrate`` does, as functions.

::

    from payroute.envs.calibration import calibrate
    result = calibrate("my_log.csv", mapping="my_mapping.yaml", base="default", name="my_world")
    result.scenario          # a validated Scenario (provenance attached)
    result.yaml_text()       # the YAML file: an ordinary scenario with a provenance: section
    result.report(days=1)    # the fit report: the log against a simulated day of the fitted world (JSON-able)
    report, simulated = result.compare(days=1)  # the same, and the simulated day's statistics (for plots)

The log is read a batch at a time (:mod:`~payroute.envs.calibration.reading`), folded into statistics whose
size does not grow with it (:mod:`~payroute.envs.calibration.stats`), and fitted
(:mod:`~payroute.envs.calibration.fitting`); the fit report compares the log with a simulation of the fitted
scenario (:mod:`~payroute.envs.calibration.report`). The same log, mapping and base give the same YAML, byte
for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from payroute.envs.calibration.fitting import NOT_IDENTIFIED, Fit
from payroute.envs.calibration.mapping import Mapping, load_mapping
from payroute.envs.calibration.stats import LogStats, read_log_stats
from payroute.envs.scenarios import Scenario, load_scenario
from payroute.errors import ConfigError, PayrouteError, format_validation_error

DEFAULT_PRIOR_STRENGTH = 20.0


@dataclass(frozen=True)
class Calibration:
    """A fitted scenario and what it was fitted from."""

    scenario: Scenario
    data: dict[str, Any]
    provenance: dict[str, Any]
    stats: LogStats = field(repr=False, compare=False)

    @property
    def log_days(self) -> int:
        return self.stats.last_day - self.stats.first_day + 1

    def report(self, days: float | None = None, seed: int = 0) -> dict[str, Any]:
        """The fit report: the log against ``days`` (default: the log's, at most 7) simulated days of the fitted
        scenario routed as the log routed (:mod:`~payroute.envs.calibration.report`)."""
        from payroute.envs.calibration.report import fit_report

        return fit_report(self.scenario, self.stats, days or min(self.log_days, 7), seed)

    def compare(self, days: float | None = None, seed: int = 0) -> tuple[dict[str, Any], LogStats]:
        """The fit report and the simulated days' statistics (what the HTML report plots beside the log's)."""
        from payroute.envs.calibration.report import fit_comparison

        return fit_comparison(self.scenario, self.stats, days or min(self.log_days, 7), seed)

    def summary(
        self, out: Path, report: Path | None = None, fit: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """What ``payroute calibrate`` prints: rows, dates, how many values were fitted and which were flagged."""
        p = self.provenance
        summary = {
            "out": str(out), "rows_read": p["rows_read"], "rows_used": p["rows_used"],
            "rows_left_out": p["rows_left_out"], "date_from": p["date_from"], "date_to": p["date_to"],
            "fitted": sum(1 for v in p["values"].values() if v["status"] == "fitted"), "flagged": self.flagged,
        }  # fmt: skip
        if fit is not None:
            summary["report"] = {"path": str(report), "verdict": fit["verdict"], "days": fit["simulated_days"],
                                 "blocks": {k: b["verdict"] for k, b in fit["blocks"].items()}}  # fmt: skip
        return summary

    @property
    def flagged(self) -> list[str]:
        """The values the log could not identify (kept from the base), by field path."""
        return sorted(p for p, v in self.provenance["values"].items() if v["status"] != "fitted")

    def yaml_text(self) -> str:
        p = self.provenance
        fitted = sum(1 for v in p["values"].values() if v["status"] == "fitted")
        head = [
            f"# {self.scenario.name}: calibrated by `payroute calibrate` from {p['log']}",
            f"# (sha256 {p['log_sha256'][:16]}...) on the base scenario {p['base']!r}: {p['date_from']} to "
            f"{p['date_to']}, {p['rows_used']:,} of {p['rows_read']:,} rows used.",
            f"# {fitted} values fitted; {len(self.flagged)} kept from the base and flagged (status: base or",
            "# scaled); the rest of the world (see provenance.not_identified) is the base's. Every fitted value's",
            "# rows, 95% interval and method are under provenance.values; the world never reads that section.",
        ]
        body = yaml.safe_dump(self.data, sort_keys=False, width=120, allow_unicode=True)
        prov = yaml.safe_dump({"provenance": p}, sort_keys=False, width=120, allow_unicode=True)
        return "\n".join(head) + "\n" + body + "\n" + prov


def calibrate(
    log: str | Path,
    mapping: str | Path | Mapping | None = None,
    base: str | Path = "default",
    name: str = "calibrated",
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    start_date: dt.date | str | None = None,
) -> Calibration:
    """Fit a scenario to ``log`` (payroute's own Parquet event log, or a flat CSV/Parquet with ``mapping``).

    Raises :class:`~payroute.errors.PayrouteError` for a log that cannot be read (naming the column, row and
    problem) and :class:`~payroute.errors.ConfigError` for a bad mapping file. ``start_date`` is the date of
    an own log's day 0 (the scenario it was simulated from started then; default: the base's ``start_date``).
    """
    if prior_strength < 0:
        raise PayrouteError(f"prior strength = {prior_strength}: allowed: a number >= 0 (pseudo-rows)")
    base_scenario = load_scenario(base)
    mapping_model = load_mapping(mapping) if isinstance(mapping, str | Path) else mapping
    if isinstance(start_date, str):
        try:
            start_date = dt.date.fromisoformat(start_date)
        except ValueError:
            raise PayrouteError(f"start date = {start_date!r}: allowed: a date such as 2026-03-02") from None
    reader, stats = read_log_stats(log, mapping_model, base_scenario, start_date)
    if stats.rows == 0:
        left = ", ".join(f"{n} {why}" for why, n in sorted(reader.excluded.items())) or "none"
        raise PayrouteError(f"{log}: no usable payment rows (rows left out: {left})")
    base_data = base_scenario.model_dump(mode="json")
    fit = Fit(stats, base_data, base_scenario, prior_strength)
    fit.run()
    data = fit.data
    data["name"] = name
    data["description"] = (
        f"calibrated from {Path(log).name} ({stats.date(stats.first_day)} to {stats.date(stats.last_day)}) "
        f"on the base scenario {str(base)!r}"
    )
    data = {"name": data.pop("name"), "description": data.pop("description"), **data}
    provenance = {
        "log": Path(log).name,
        "log_sha256": _sha256(Path(log)),
        "mapping": None
        if mapping is None
        else (Path(mapping).name if isinstance(mapping, str | Path) else "given"),
        "base": str(base),
        "date_from": stats.date(stats.first_day).isoformat(),
        "date_to": stats.date(stats.last_day).isoformat(),
        "rows_read": reader.rows_read,
        "rows_used": stats.rows + reader.late_rows,
        "rows_left_out": {why: n for why, n in sorted(reader.excluded.items()) if n},
        "prior_strength": float(prior_strength),
        "failure_hours": {route: len(hours) for route, hours in stats.trouble.items()},
        "failure_hour_attempts": stats.trouble_rows,
        "values": dict(sorted(fit.values.items())),
        "not_identified": dict(NOT_IDENTIFIED),
        "response_codes": fit.response_codes(),
    }
    try:
        scenario = Scenario.model_validate({**data, "provenance": provenance})
    except ValidationError as err:
        raise ConfigError(format_validation_error(f"the scenario fitted to {log}", err, Scenario)) from None
    return Calibration(scenario, data, provenance, stats)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["Calibration", "Mapping", "calibrate", "load_mapping"]
