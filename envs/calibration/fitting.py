"""Turn a log's statistics into scenario values, each with its provenance.

Every value the log identifies is fitted and carries the rows it used and a 95% interval; every value it
cannot identify is kept from the base scenario and flagged with the reason. What is fitted, and how:

* ``demand.transactions_per_day``, ``weekly_profile`` (when every weekday was seen on a business day),
  ``holiday_factor`` (when a holiday was seen), ``intraday_profile``: counts of genuine arrivals by local day
  and hour (a non-homogeneous Poisson process); the interval is Poisson.
* the mixes (instrument, segment, merchant category, networks, cross-border and foreign-card shares,
  currencies, urgency): shares of genuine arrivals, Wilson intervals.
* ``card_amount``, ``bank_amount``, ``cross_border_amount``: lognormal by moments of log amount.
* ``routes.R.approval.by_segment``: approvals over answered attempts (approved + declined) of genuine
  home-card payments, beta-binomial shrinkage toward the base value with ``prior_strength`` pseudo-rows (a thin
  cell stays near the base); the interval is the posterior's. ``foreign_card_logit_offset`` from foreign cards.
* ``routes.R.latency``: the median and log-sd of the latency of answered attempts that arrived while the
  route was open, from quantiles (robust to the slow tail of a degraded route).
* ``routes.R.fee``: least squares of the fee charged on the amount (fixed + bps) over approved attempts; for
  card routes the base scenario's interchange and network assessment are taken off first.
* ``fraud.patterns.P.attacks_per_day`` and ``discovery_median_days`` / ``discovery_sigma``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from scipy import stats as st

from payroute.envs.calibration.stats import LOG_LAT_BINS, LOG_LAT_HI, LOG_LAT_LO, LogStats
from payroute.envs.scenarios.bounds import MAX_TRANSACTIONS_PER_DAY
from payroute.envs.scenarios.schema import Scenario
from payroute.envs.world.clock import us_fed_holidays
from payroute.errors import PayrouteError

Z95 = 1.959964
MIN_ROWS = 10  # fewer rows than this: a latency, amount or fee is kept from the base

NOT_IDENTIFIED = {
    "routes.*.capacity, hours, windows, limit_cents, settlement": "the log shows outcomes, not the rail's rules",
    "routes.*.health": "route health is hidden; outages in the log show only as failures",
    "routes.*.approval.fraud_logit_offset, drift_sigma_per_day": "not separable from the approval rate in one log",
    "accounts": "settlement-account balances and inflows are not in a payment log",
    "interchange": "card-scheme pass-through costs: taken as published in the base",
    "prices, customers": "price response needs prices that varied; kept from the base",
    "risk, fraud economics": "the risk score's separability and the fraudsters' economics are not in the log",
    "service_level": "what a missed deadline costs is not in the log",
}


class Fit:
    """The fitted scenario (a plain mapping) and the provenance of each value."""

    def __init__(
        self, stats: LogStats, base_data: dict[str, Any], base: Scenario, prior_strength: float
    ) -> None:
        self.stats = stats
        self.base = base
        self.data = copy.deepcopy(base_data)
        self.prior_strength = prior_strength
        self.values: dict[str, dict[str, Any]] = {}
        self.volume_ratio = 1.0  # the log's genuine volume over the base's
        self.days = [stats.first_day + i for i in range(stats.last_day - stats.first_day + 1)]

    def note(self, path: str, value: Any, status: str, rows: int, interval=None, why: str = "") -> None:
        entry: dict[str, Any] = {"status": status, "rows": int(rows), "value": value}
        if interval is not None:
            entry["interval"] = [_r(interval[0]), _r(interval[1])]
        if why:
            entry["note"] = why
        self.values[path] = entry

    # ---------------------------------------------------------------- the whole fit
    def run(self) -> None:
        self.data["start_date"] = self.stats.date(self.stats.first_day).isoformat()
        self.data["volume_scale"] = 1.0
        self.data.pop("incidents", None)  # the base's scheduled incidents are not the log's
        self.data.pop("fee_changes", None)
        self._volume()
        self._mixes()
        self._amounts()
        for name in self.base.routes:
            self._currencies(name)
            self._approval(name)
            self._latency(name)
            self._fee(name)
        self._fraud()

    # ---------------------------------------------------------------- demand
    def _is_holiday(self, ordinal: int) -> bool:
        date = self.stats.date(ordinal)
        return date in us_fed_holidays(date.year) or date in set(self.base.extra_holidays)

    def _volume(self) -> None:
        s, d = self.stats, self.data["demand"]
        counts = {day: s.day_counts.get(day, 0) for day in self.days}
        weekday = {day: s.date(day).weekday() for day in self.days}
        ordinary = [day for day in self.days if not self._is_holiday(day)]  # weekends included
        holidays = [day for day in self.days if self._is_holiday(day)]
        seen = {weekday[day] for day in ordinary}
        n_ordinary = sum(counts[day] for day in ordinary)
        n_hol = sum(counts[day] for day in holidays)
        if len(seen) == 7:
            means = [np.mean([counts[x] for x in ordinary if weekday[x] == k]) for k in range(7)]
            weekly = [m / np.mean(means) for m in means]
            d["weekly_profile"] = [_r(w) for w in weekly]
            self.note("demand.weekly_profile", d["weekly_profile"], "fitted", n_ordinary)
        else:
            base = np.asarray(self.base.demand.weekly_profile)
            weekly = list(base / base.mean())
            self.note("demand.weekly_profile", d["weekly_profile"], "base", n_ordinary,
                      why=f"weekdays seen on days that are not holidays: {sorted(seen)}; all 7 are needed")  # fmt: skip
        if n_ordinary > 0:
            n, expected, why = n_ordinary, sum(weekly[weekday[day]] for day in ordinary), ""
        elif n_hol > 0:  # only holidays: the volume through the base's holiday factor
            factor = self.base.demand.holiday_factor
            n, expected = n_hol, factor * sum(weekly[weekday[day]] for day in holidays)
            why = f"the log has only holidays: their volume over the base's holiday factor {factor:g}"
        else:
            raise PayrouteError("the log has no genuine payments: nothing to fit the volume on")
        per_day = n / expected
        if per_day > MAX_TRANSACTIONS_PER_DAY:
            raise PayrouteError(
                f"the log has {per_day:,.0f} payments a day; allowed at most {MAX_TRANSACTIONS_PER_DAY:,}"
            )
        d["transactions_per_day"] = max(1, int(round(per_day)))
        self.volume_ratio = per_day / (self.base.demand.transactions_per_day * self.base.volume_scale)
        half = Z95 * math.sqrt(n) / expected
        self.note("demand.transactions_per_day", d["transactions_per_day"], "fitted", n,
                  (max(per_day - half, 0.0), per_day + half), why=why)  # fmt: skip
        if holidays and n_ordinary > 0:
            exp_hol = per_day * sum(weekly[weekday[day]] for day in holidays)
            d["holiday_factor"] = _r(min(n_hol / exp_hol, 10.0))
            # the factor is a ratio of two Poisson counts: both uncertainties count
            half = Z95 * (n_hol / exp_hol) * math.sqrt(1 / max(n_hol, 1) + 1 / n_ordinary)
            self.note("demand.holiday_factor", d["holiday_factor"], "fitted", n_hol,
                      (max(n_hol / exp_hol - half, 0.0), n_hol / exp_hol + half))  # fmt: skip
        else:
            why = "no holiday in the log" if not holidays else "no day that is not a holiday to compare with"
            self.note("demand.holiday_factor", d["holiday_factor"], "base", n_hol, why=why)
        total = s.hour_counts.sum()
        d["intraday_profile"] = [_r(100.0 * c / total) for c in s.hour_counts]
        self.note("demand.intraday_profile", "shares of the day by hour, x100", "fitted", int(total))

    def _mixes(self) -> None:
        d, mixes = self.data["demand"], self.stats.mixes
        for name in ("instrument_mix", "segment_mix", "merchant_category_mix", "credit_networks",
                     "debit_networks", "cross_border_currencies", "urgency_mix"):  # fmt: skip
            counter = mixes.get(name, {})
            total = sum(counter.values())
            if total == 0:
                self.note(f"demand.{name}", d[name], "base", 0, why="not in the log")
                continue
            keys = list(d[name]) + sorted(
                set(counter) - set(d[name])
            )  # the base's order: a bundle's features
            d[name] = {k: _r(counter.get(k, 0) / total) for k in keys}
            for k in keys:
                self.note(
                    f"demand.{name}.{k}", d[name][k], "fitted", total, _wilson(counter.get(k, 0), total)
                )
        for name in ("cross_border_share", "foreign_card_share"):
            counter = mixes.get(name, {})
            yes, total = counter.get("true", 0), counter.get("true", 0) + counter.get("false", 0)
            if total == 0:
                self.note(f"demand.{name}", d[name], "base", 0, why="not in the log")
                continue
            d[name] = _r(yes / total)
            self.note(f"demand.{name}", d[name], "fitted", total, _wilson(yes, total))

    def _amounts(self) -> None:
        d = self.data["demand"]
        for name, m in sorted(self.stats.amounts.items()):
            if m.n < MIN_ROWS:
                self.note(
                    f"demand.{name}", d[name], "base", m.n, why=f"fewer than {MIN_ROWS} genuine payments"
                )
                continue
            sigma = min(m.sd, 3.0)
            base = d[name]
            lo = int(min(base.get("min_cents", 100), math.floor(math.exp(m.lo))))
            hi = int(max(base.get("max_cents", 10_000_000), math.ceil(math.exp(m.hi))))
            median = int(min(max(round(math.exp(m.mean)), lo), hi))
            d[name] = {"median_cents": median, "sigma": _r(sigma), "min_cents": max(lo, 1), "max_cents": hi}
            se = m.sd / math.sqrt(m.n)
            self.note(f"demand.{name}.median_cents", median, "fitted", m.n,
                      (math.exp(m.mean - Z95 * se), math.exp(m.mean + Z95 * se)))  # fmt: skip
            se_sd = m.sd / math.sqrt(2 * (m.n - 1))
            self.note(f"demand.{name}.sigma", d[name]["sigma"], "fitted", m.n,
                      (m.sd - Z95 * se_sd, m.sd + Z95 * se_sd))  # fmt: skip

    # ---------------------------------------------------------------- routes
    def _currencies(self, name: str) -> None:
        """A route that carried a currency the base does not list for it gets it (else no payment in it routes)."""
        route = self.data["routes"][name]
        seen = sorted(c for (r, c), n in self.stats.route_currencies.items() if r == name and c and n)
        extra = [c for c in seen if c not in route["currencies"]]
        if extra:
            route["currencies"] = [*route["currencies"], *extra]
            rows = sum(self.stats.route_currencies[(name, c)] for c in extra)
            self.note(f"routes.{name}.currencies", route["currencies"], "fitted", rows,
                      why=f"the log shows it carrying {extra}")  # fmt: skip

    def _approval(self, name: str) -> None:
        approval = self.data["routes"][name]["approval"]
        base_by = self.base.routes[name].approval.by_segment
        fallback = float(np.mean(list(base_by.values())))
        # the rate drifts (a random walk in logit): the log's average wanders by about sigma * sqrt(days / 3)
        drift = self.base.routes[name].approval.drift_sigma_per_day * math.sqrt(len(self.days) / 3.0)
        by, by_segment = {}, "segment" in self.stats.present
        for seg in sorted(self.data["demand"]["segment_mix"]):
            cell = (
                seg if by_segment else ""
            )  # without a segment column: the route's pooled rate, every segment
            k = self.stats.approval.get((name, cell, "approved"), 0)
            n = k + self.stats.approval.get((name, cell, "declined"), 0)
            p0 = base_by.get(seg, fallback)
            path = f"routes.{name}.approval.by_segment.{seg}"
            if n == 0:
                by[seg] = p0
                self.note(path, p0, "base", 0, why="no answered attempt of this segment on this route")
                continue
            a, b = self.prior_strength * p0 + k, self.prior_strength * (1 - p0) + n - k
            by[seg] = _r(a / (a + b))
            lo, hi = _widen_logit(st.beta.ppf([0.025, 0.975], a, b), drift)
            self.note(path, by[seg], "fitted", n, (lo, hi),
                      why=f"shrunk toward the base {p0} with {self.prior_strength:g} pseudo-rows; the interval "
                      f"holds the base's drift ({drift:g} logit a day) over the log's days"
                      + ("" if by_segment else "; the log has no segment: the route's rate over all"))  # fmt: skip
        approval["by_segment"] = by
        k_f = self.stats.foreign_approval.get((name, "approved"), 0)
        n_f = k_f + self.stats.foreign_approval.get((name, "declined"), 0)
        k_h = sum(v for (r, _, o), v in self.stats.approval.items() if r == name and o == "approved")
        n_h = sum(v for (r, _, o), v in self.stats.approval.items() if r == name)
        path = f"routes.{name}.approval.foreign_card_logit_offset"
        if n_f >= 30 and 0 < k_h < n_h:
            pf, ph = (k_f + 0.5) / (n_f + 1), k_h / n_h
            offset = math.log(pf / (1 - pf)) - math.log(ph / (1 - ph))
            se = math.sqrt(1 / (n_f * pf * (1 - pf)) + 1 / (n_h * ph * (1 - ph)))
            approval["foreign_card_logit_offset"] = _r(min(max(offset, -10.0), 10.0))
            self.note(
                path,
                approval["foreign_card_logit_offset"],
                "fitted",
                n_f,
                (offset - Z95 * se, offset + Z95 * se),
            )
        elif self.base.routes[name].rail == "card":
            self.note(path, approval.get("foreign_card_logit_offset", 0.0), "base", n_f,
                      why="fewer than 30 answered foreign-card attempts")  # fmt: skip

    def _latency(self, name: str) -> None:
        route = self.data["routes"][name]
        hist = self.stats.latency.get(name)
        n = int(hist.sum()) if hist is not None else 0
        if n < MIN_ROWS:
            self.note(f"routes.{name}.latency", route["latency"], "base", n,
                      why=f"fewer than {MIN_ROWS} answered attempts with a latency while the route was open")  # fmt: skip
            return
        q16, q50, q84 = _hist_quantiles(hist, (0.158655, 0.5, 0.841345))
        sigma = min(max((q84 - q16) / 2.0, 0.0), 2.0)
        median = min(max(math.exp(q50), 1e-3), 86_400.0)
        route["latency"] = {"median_s": _r(median), "sigma": _r(sigma)}
        se = 1.2533 * max(sigma, 1e-3) / math.sqrt(n)
        self.note(f"routes.{name}.latency.median_s", route["latency"]["median_s"], "fitted", n,
                  (math.exp(q50 - Z95 * se), math.exp(q50 + Z95 * se)))  # fmt: skip
        se_s = math.sqrt(0.925 / n) * max(sigma, 1e-3)
        self.note(f"routes.{name}.latency.sigma", route["latency"]["sigma"], "fitted", n,
                  (sigma - Z95 * se_s, sigma + Z95 * se_s))  # fmt: skip

    def _fee(self, name: str) -> None:
        fee = self.data["routes"][name]["fee"]
        m = self.stats.fees.get(name)
        n = m.n if m is not None else 0
        path = f"routes.{name}.fee"
        if "fee" not in self.stats.present:
            self.note(path, "base", "base", 0, why="the log has no fee column")
            return
        tiers = self.base.routes[name].fee.tiers
        busiest = max((c for (r, _), c in self.stats.route_months.items() if r == name), default=0)
        if tiers and busiest >= tiers[0].from_count:
            self.note(path, "base", "base", n,
                      why=f"{busiest} attempts in a month reach the base's volume tiers: the schedule is kept")  # fmt: skip
            return
        if m is None or n < MIN_ROWS:
            self.note(path, "base", "base", n, why=f"fewer than {MIN_ROWS} approved attempts with a fee")
            return
        if m.sxx <= 1e-12 * max(n, 1):
            fixed, var_a, bps, var_b = m.my, max(m.syy / max(n - 1, 1), 1 / 12) / n, 0.0, None
        else:
            bps = m.sxy / m.sxx
            fixed = m.my - bps * m.mx
            s2 = max((m.syy - bps * m.sxy) / max(n - 2, 1), 1 / 12)
            var_b = s2 / m.sxx
            var_a = s2 * (1 / n + m.mx * m.mx / m.sxx)
        fee["fixed_cents"] = max(0, int(round(fixed)))
        fee["bps"] = _r(max(bps, 0.0))
        fee["source"] = f"fitted: least squares on {n} approved attempts" + (
            " (below the first volume tier: the base's tiers kept)" if tiers else ""
        )
        sa = math.sqrt(var_a)
        # the value written is a whole cent: its interval holds the rounding too
        interval = (fixed - Z95 * sa - 0.5, fixed + Z95 * sa + 0.5)
        self.note(f"{path}.fixed_cents", fee["fixed_cents"], "fitted", n, interval)
        if var_b is None:
            self.note(f"{path}.bps", fee["bps"], "base", n, why="every amount was the same: bps set to 0")
        else:
            sb = math.sqrt(var_b)
            self.note(f"{path}.bps", fee["bps"], "fitted", n, (bps - Z95 * sb, bps + Z95 * sb))

    # ---------------------------------------------------------------- fraud
    def _fraud(self) -> None:
        s = self.stats
        patterns = self.data["fraud"]["patterns"]
        n_days = len(self.days)
        if "is_fraud" not in s.present:
            self.note("fraud.patterns", "base", "base", 0, why="the log has no fraud label")
            return
        if set(s.fraud) == {""} or (s.fraud and "fraud_pattern" not in s.present):
            total = sum(s.fraud.values())
            expected = n_days * self.base.volume_scale * sum(p["attacks_per_day"] for p in patterns.values())
            k = total / expected if expected > 0 else 0.0
            for name, p in sorted(patterns.items()):
                p["attacks_per_day"] = _r(p["attacks_per_day"] * self.base.volume_scale * k)
                self.note(f"fraud.patterns.{name}.attacks_per_day", p["attacks_per_day"], "scaled", total,
                          why="the log labels fraud without its pattern: the base's pattern mix scaled to it")  # fmt: skip
            return
        for name, p in sorted(patterns.items()):
            count = s.fraud.get(name, 0)
            path = f"fraud.patterns.{name}"
            if count == 0:
                p["attacks_per_day"] = _r(p["attacks_per_day"] * self.volume_ratio)
                self.note(f"{path}.attacks_per_day", p["attacks_per_day"], "scaled", 0,
                          why="pattern never seen in the log: the base's rate, scaled by the log's volume")  # fmt: skip
            else:
                p["attacks_per_day"] = _r(count / n_days)
                half = Z95 * math.sqrt(count) / n_days
                self.note(f"{path}.attacks_per_day", p["attacks_per_day"], "fitted", count,
                          (max(count / n_days - half, 0.0), count / n_days + half))  # fmt: skip
            m = s.delays.get(name)
            if m is None or m.n < MIN_ROWS:
                self.note(f"{path}.discovery_median_days", p.get("discovery_median_days", 30.0), "base",
                          0 if m is None else m.n, why=f"fewer than {MIN_ROWS} frauds found after settling")  # fmt: skip
                continue
            p["discovery_median_days"] = _r(min(max(math.exp(m.mean), 1e-3), 3650.0))
            p["discovery_sigma"] = _r(min(m.sd, 3.0))
            se = m.sd / math.sqrt(m.n)
            self.note(f"{path}.discovery_median_days", p["discovery_median_days"], "fitted", m.n,
                      (math.exp(m.mean - Z95 * se), math.exp(m.mean + Z95 * se)))  # fmt: skip
            se_sd = m.sd / math.sqrt(2 * (m.n - 1))
            self.note(f"{path}.discovery_sigma", p["discovery_sigma"], "fitted", m.n,
                      (m.sd - Z95 * se_sd, m.sd + Z95 * se_sd))  # fmt: skip

    def response_codes(self) -> dict[str, dict[str, float]]:
        """Each route's shares of response codes (the scenario has no place for them; the provenance keeps them)."""
        out: dict[str, dict[str, float]] = {}
        for (route, code), n in sorted(self.stats.codes.items()):
            out.setdefault(route, {})[code] = n
        for route, counts in out.items():
            total = sum(counts.values())
            out[route] = {c: _r(v / total) for c, v in counts.items()}
        return out


def _r(x: float) -> float:
    """Six significant digits: what the YAML holds (deterministic, readable)."""
    x = float(x)
    return 0.0 if x == 0 else float(f"{x:.6g}")


def _widen_logit(interval, sd: float) -> tuple[float, float]:
    """A probability's interval widened, in logit space, by another source of spread with this sd."""
    lo, hi = (min(max(float(x), 1e-9), 1 - 1e-9) for x in interval)
    a, b = math.log(lo / (1 - lo)), math.log(hi / (1 - hi))
    mid, half = (a + b) / 2, math.hypot((b - a) / 2, Z95 * sd)
    return 1 / (1 + math.exp(-(mid - half))), 1 / (1 + math.exp(-(mid + half)))


def _wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    denom = 1 + Z95 * Z95 / n
    centre = (p + Z95 * Z95 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 * Z95 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _hist_quantiles(hist: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles of a histogram of log latencies, linear within a bin."""
    width = (LOG_LAT_HI - LOG_LAT_LO) / LOG_LAT_BINS
    cum = np.cumsum(hist)
    out = []
    for q in qs:
        target = q * cum[-1]
        i = int(np.searchsorted(cum, target, side="left"))
        before = cum[i - 1] if i > 0 else 0.0
        out.append(LOG_LAT_LO + width * (i + (target - before) / hist[i]))
    return out


__all__ = ["NOT_IDENTIFIED", "Fit"]
