"""What a fit needs from a log, gathered batch by batch in memory that does not grow with the log.

:class:`LogStats` folds each normal-form batch (:mod:`payroute.envs.calibration.reading`) into counts,
histograms and running moments: arrivals by local day and hour, the mixes, log-amount moments by family,
approvals by route x segment, log-latency histograms by route, least-squares moments of each route's fee on the
amount, fraud counts by pattern and the delays until fraud came to light. Its size depends on the number of days,
routes and categories, not on the number of rows (the own log's pending frauds, a few per thousand payments,
are the one exception).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from payroute.envs.calibration.mapping import Mapping
from payroute.envs.calibration.reading import LogReader, troubled_hours
from payroute.envs.scenarios.schema import Scenario, hhmm_to_s
from payroute.envs.world.clock import us_fed_holidays

DAY_S = 86_400
EPOCH = dt.date(1970, 1, 1)
LOG_LAT_LO, LOG_LAT_HI, LOG_LAT_BINS = math.log(1e-3), math.log(1e6), 10_000
LOG_AMOUNT_HI, AMOUNT_BINS = math.log(1e12), 1_000  # log cents from 1 cent to $10bn
SEP = "\x1f"


@dataclass
class Moments:
    """Running count, mean and centred sum of squares of one variable (Chan's parallel update)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        nb, mb = len(x), float(np.mean(x))
        m2b = float(np.sum((x - mb) ** 2))
        n = self.n + nb
        d = mb - self.mean
        self.m2 += m2b + d * d * self.n * nb / n
        self.mean += d * nb / n
        self.n = n
        self.lo, self.hi = min(self.lo, float(np.min(x))), max(self.hi, float(np.max(x)))

    @property
    def sd(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


@dataclass
class LineMoments:
    """Running moments of (x, y) for a least-squares line y = a + b x (Chan's parallel update)."""

    n: int = 0
    mx: float = 0.0
    my: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0
    syy: float = 0.0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) == 0:
            return
        nb, mxb, myb = len(x), float(np.mean(x)), float(np.mean(y))
        dxb, dyb = x - mxb, y - myb
        n = self.n + nb
        dx, dy = mxb - self.mx, myb - self.my
        w = self.n * nb / n
        self.sxx += float(dxb @ dxb) + dx * dx * w
        self.sxy += float(dxb @ dyb) + dx * dy * w
        self.syy += float(dyb @ dyb) + dy * dy * w
        self.mx += dx * nb / n
        self.my += dy * nb / n
        self.n = n


@dataclass
class LogStats:
    """Everything the fit reads, folded from the log one batch at a time."""

    base: Scenario
    present: set[str]
    fee_includes_interchange: bool = True
    rows: int = 0
    t_lo: float = math.inf
    t_hi: float = -math.inf
    day_counts: Counter = field(default_factory=Counter)  # local date ordinal -> genuine arrivals
    hour_counts: np.ndarray = field(default_factory=lambda: np.zeros(24))
    mixes: dict[str, Counter] = field(default_factory=dict)
    amounts: dict[str, Moments] = field(default_factory=dict)
    amount_hist: dict[str, np.ndarray] = field(default_factory=dict)  # family -> histogram of log cents
    approval: Counter = field(default_factory=Counter)  # (route, segment, outcome) -> n
    foreign_approval: Counter = field(default_factory=Counter)  # (route, outcome) -> n, foreign cards
    attempts: Counter = field(default_factory=Counter)  # (route, outcome) -> n, every routed attempt
    codes: Counter = field(default_factory=Counter)  # (route, code) -> n
    route_choice: Counter = field(default_factory=Counter)  # (instrument, cross_border, route) -> attempts
    route_currencies: Counter = field(default_factory=Counter)  # (route, currency) -> routed attempts
    route_months: Counter = field(default_factory=Counter)  # (route, year * 12 + month) -> routed attempts
    latency: dict[str, np.ndarray] = field(default_factory=dict)
    fees: dict[str, LineMoments] = field(default_factory=dict)
    fraud: Counter = field(default_factory=Counter)  # pattern ("" if the log has none) -> attempts
    delays: dict[str, Moments] = field(default_factory=dict)  # pattern -> log-days until found
    pending: dict[int, tuple[str, float]] = field(default_factory=dict)  # own log: tx_id -> pattern, settled
    trouble: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # route -> hours (since 1970) it failed attempts
    trouble_rows: int = 0  # answered attempts in those hours, left out of approval and latency

    # ---------------------------------------------------------------- folding one batch
    def add(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        self.rows += n
        col = {name: batch.column(name) for name in batch.schema.names}
        t = col["t"].to_numpy(zero_copy_only=False)
        self.t_lo, self.t_hi = min(self.t_lo, float(t.min())), max(self.t_hi, float(t.max()))
        fraud = pc.fill_null(col["is_fraud"], False)
        legit = pc.invert(fraud)
        legit_np = legit.to_numpy(zero_copy_only=False)
        self._arrivals(t[legit_np])
        self._mixes(col, legit)
        self._amounts(col, legit)
        self._routes(col, legit, t)
        self._fraud(col, fraud)

    def _arrivals(self, t: np.ndarray) -> None:
        days = np.floor(t / DAY_S).astype(np.int64)
        values, counts = np.unique(days, return_counts=True)
        for d, c in zip(values.tolist(), counts.tolist(), strict=True):
            self.day_counts[d] += c
        hours = ((t - days * DAY_S) // 3600).astype(np.int64).clip(0, 23)
        self.hour_counts += np.bincount(hours, minlength=24)

    def _count(self, name: str, mask: pa.Array, *columns: pa.Array) -> None:
        counter = self.mixes.setdefault(name, Counter())
        for key, count in _value_counts(mask, *columns).items():
            if key and all(key.split(SEP)):
                counter[key] += count

    def _mixes(self, col: dict[str, pa.Array], legit: pa.Array) -> None:
        inst = col["instrument"]
        bank = pc.and_(legit, pc.equal(inst, "bank_account"))
        card = pc.and_(legit, pc.not_equal(inst, "bank_account"))
        self._count("instrument_mix", legit, inst)
        self._count("segment_mix", legit, col["segment"])
        self._count("merchant_category_mix", legit, col["merchant_category"])
        self._count("credit_networks", pc.and_(legit, pc.equal(inst, "card_credit")), col["network"])
        self._count("debit_networks", pc.and_(legit, pc.equal(inst, "card_debit")), col["network"])
        self._count("cross_border_share", bank, col["cross_border"].cast(pa.string()))
        self._count("foreign_card_share", card, col["foreign_card"].cast(pa.string()))
        xb = pc.and_(bank, pc.fill_null(col["cross_border"], False))
        self._count("cross_border_currencies", xb, col["currency"])
        self._count("urgency_mix", bank, col["urgency"])

    def _amounts(self, col: dict[str, pa.Array], legit: pa.Array) -> None:
        inst = col["instrument"]
        xb = pc.fill_null(col["cross_border"], False)
        bank = pc.equal(inst, "bank_account")
        families = {
            "card_amount": pc.invert(bank),
            "bank_amount": pc.and_(bank, pc.invert(xb)),
            "cross_border_amount": pc.and_(bank, xb),
        }
        amount = col["amount"]
        for name, mask in families.items():
            values = pc.filter(amount, pc.and_(legit, mask)).to_numpy(zero_copy_only=False)
            logs = np.log(values.astype(float))
            self.amounts.setdefault(name, Moments()).add(logs)
            hist = self.amount_hist.setdefault(name, np.zeros(AMOUNT_BINS))
            hist += np.histogram(logs, bins=AMOUNT_BINS, range=(0.0, LOG_AMOUNT_HI))[0]

    def _routes(self, col: dict[str, pa.Array], legit: pa.Array, t: np.ndarray) -> None:
        route, outcome = col["route"], col["outcome"]
        routed = pc.fill_null(pc.not_equal(route, ""), False)
        if not pc.any(routed).as_py():
            return
        for key, count in _value_counts(routed, route, outcome).items():
            self.attempts[tuple(key.split(SEP))] += count
        days = np.floor(pc.filter(col["t"], routed).to_numpy(zero_copy_only=False) / DAY_S).astype(np.int64)
        unique, inverse = np.unique(days, return_inverse=True)
        month = pa.array(np.array([_month(d) for d in unique.tolist()], dtype=np.int64)[inverse])
        everything = pa.array(np.ones(len(days), bool))
        for key, count in _value_counts(everything, pc.filter(route, routed), month).items():
            r, m = key.split(SEP)
            self.route_months[(r, int(m))] += count
        xb = pc.cast(pc.fill_null(col["cross_border"], False), pa.string())
        for key, count in _value_counts(routed, col["instrument"], xb, route).items():
            self.route_choice[tuple(key.split(SEP))] += count
        for key, count in _value_counts(routed, route, col["currency"]).items():
            self.route_currencies[tuple(key.split(SEP))] += count
        if "code" in self.present:
            for key, count in _value_counts(routed, route, col["code"]).items():
                self.codes[tuple(key.split(SEP))] += count
        answered = pc.and_(routed, pc.is_in(outcome, pa.array(["approved", "declined"])))
        clean = self._clean(route, t, answered)
        foreign = pc.fill_null(col["foreign_card"], False)
        home = pc.and_(pc.and_(clean, legit), pc.invert(foreign))
        for key, count in _value_counts(home, route, col["segment"], outcome).items():
            self.approval[tuple(key.split(SEP))] += count
        for key, count in _value_counts(pc.and_(pc.and_(clean, legit), foreign), route, outcome).items():
            self.foreign_approval[tuple(key.split(SEP))] += count
        encoded = pc.filter(route, answered).dictionary_encode()
        if not len(encoded):
            return
        names = encoded.indices.to_numpy(zero_copy_only=False)
        t_ans = t[answered.to_numpy(zero_copy_only=False)]
        clean_ans = pc.filter(clean, answered).to_numpy(zero_copy_only=False)
        lat = pc.filter(col["latency_s"], answered).to_numpy(zero_copy_only=False).astype(float)
        fee = pc.filter(col["fee"], answered).to_numpy(zero_copy_only=False).astype(float)
        amount = pc.filter(col["amount"], answered).to_numpy(zero_copy_only=False).astype(float)
        approved = pc.filter(pc.equal(outcome, "approved"), answered).to_numpy(zero_copy_only=False)
        network_cost = self._card_network_cents(
            pc.filter(col["instrument"], answered), pc.filter(col["network"], answered),
            pc.filter(foreign, answered), amount,
        )  # fmt: skip
        for code, name in enumerate(encoded.dictionary.to_pylist()):
            spec = self.base.routes[name]
            sel = names == code
            lat_r = lat[sel]
            ok = ~np.isnan(lat_r) & (lat_r > 0) & clean_ans[sel]
            if spec.hours is not None:
                ok &= _open_at(t_ans[sel], spec.hours, self.base)
            hist = self.latency.setdefault(name, np.zeros(LOG_LAT_BINS))
            hist += np.histogram(np.log(lat_r[ok]), bins=LOG_LAT_BINS, range=(LOG_LAT_LO, LOG_LAT_HI))[0]
            paid = sel & approved & ~np.isnan(fee)
            card = spec.rail == "card" and self.fee_includes_interchange
            y = fee[paid] - (network_cost[paid] if card else 0.0)
            self.fees.setdefault(name, LineMoments()).add(amount[paid] / 10_000.0, y)

    def _clean(self, route: pa.Array, t: np.ndarray, answered: pa.Array) -> pa.Array:
        """``answered`` less the attempts on a route in an hour it failed attempts (counted in ``trouble_rows``)."""
        if not self.trouble:
            return answered
        hours = np.floor(t / 3600.0).astype(np.int64)
        names = pc.fill_null(route, "").to_numpy(zero_copy_only=False)
        bad = np.zeros(len(t), bool)
        for name, troubled in self.trouble.items():
            sel = names == name
            if sel.any():
                bad[sel] = np.isin(hours[sel], troubled)
        bad &= answered.to_numpy(zero_copy_only=False)
        self.trouble_rows += int(bad.sum())
        return pc.and_(answered, pa.array(~bad))

    def _card_network_cents(
        self, instrument: pa.Array, network: pa.Array, foreign: pa.Array, amount: np.ndarray
    ) -> np.ndarray:
        """Interchange plus network assessment of each card payment, as the base scenario prices it."""
        ic = self.base.interchange
        inst = instrument.to_numpy(zero_copy_only=False)
        abroad = foreign.to_numpy(zero_copy_only=False).astype(bool)
        cost = np.zeros(len(amount))
        for name, sched in (("card_credit", ic.credit), ("card_debit", ic.debit_regulated)):
            sel = inst == name
            fee = np.rint(sched.fixed_cents + amount[sel] * sched.bps / 10_000.0)
            fee = np.maximum(fee, sched.min_cents)
            if sched.max_cents is not None:
                fee = np.minimum(fee, sched.max_cents)
            cost[sel] = fee
        card = inst != "bank_account"
        known = pa.array(list(ic.network_assessment_bps), pa.string())
        per_net = pa.array(list(ic.network_assessment_bps.values()), pa.float64())
        bps = pc.fill_null(pc.take(per_net, pc.index_in(network, known)), 0.0).to_numpy(zero_copy_only=False)
        bps = bps + abroad * ic.foreign_card_bps
        cost += np.where(card, np.rint(amount * bps / 10_000.0), 0.0)
        if (
            ic.amex is not None
        ):  # a closed network: its merchant discount instead of interchange and assessment
            sel = card & (network.to_numpy(zero_copy_only=False) == "amex")
            fee = np.rint(ic.amex.fixed_cents + amount[sel] * ic.amex.bps / 10_000.0)
            fee = np.maximum(fee, ic.amex.min_cents)
            if ic.amex.max_cents is not None:
                fee = np.minimum(fee, ic.amex.max_cents)
            cost[sel] = fee + np.rint(amount[sel] * abroad[sel] * ic.foreign_card_bps / 10_000.0)
        return cost

    def _fraud(self, col: dict[str, pa.Array], fraud: pa.Array) -> None:
        if "is_fraud" not in self.present or not pc.any(fraud).as_py():
            return
        pattern = pc.fill_null(col["fraud_pattern"], "")
        for key, count in _value_counts(fraud, pattern).items():
            self.fraud[key] += count
        settled = pc.and_(fraud, pc.equal(col["outcome"], "approved"))
        rows = pc.filter(
            pa.table({
                "p": pattern, "s": col["settled_at"], "t": col["t"], "cb": col["chargeback_at"],
                "rt": col["return_at"], "id": col["tx_id"],
            }),
            settled,
        ).to_pylist()  # fmt: skip
        for r in rows:
            start = r["s"] if r["s"] is not None else r["t"]
            found = r["cb"] if r["cb"] is not None else r["rt"]
            if found is not None:
                self._delay(r["p"], found - start)
            elif r["id"] is not None:
                self.pending[int(r["id"])] = (r["p"], start)

    def _delay(self, pattern: str, seconds: float) -> None:
        if seconds > 0:
            self.delays.setdefault(pattern, Moments()).add(np.array([math.log(seconds / DAY_S)]))

    def finish(self, discoveries: dict[int, tuple[str, float]]) -> None:
        """Join the own log's late events (chargebacks, returns) to the frauds they surfaced."""
        for tx_id in sorted(self.pending):
            pattern, start = self.pending[tx_id]
            if tx_id in discoveries:
                self._delay(pattern, discoveries[tx_id][1] - start)
        self.pending.clear()

    # ---------------------------------------------------------------- what the fit reads
    @property
    def first_day(self) -> int:
        return int(self.t_lo // DAY_S)

    @property
    def last_day(self) -> int:
        return int(self.t_hi // DAY_S)

    def date(self, ordinal: int) -> dt.date:
        return EPOCH + dt.timedelta(days=ordinal)


def read_log_stats(
    log: str | Path, mapping: Mapping | None, base: Scenario, start_date: dt.date | None = None
) -> tuple[LogReader, LogStats]:
    """Read ``log`` into :class:`LogStats`: a light first pass finds each route's hours with technical failures
    (a degraded or down route), left out of its approval and latency in the second, full pass (the base's
    health process puts its own bad hours back when the scenario runs)."""
    found: set[tuple[str, int]] = set()
    for batch in LogReader(log, mapping, base, light=True, start_date=start_date).batches():
        found |= troubled_hours(batch)
    by_route: dict[str, list[int]] = {}
    for route, hour in sorted(found):
        by_route.setdefault(route, []).append(hour)
    reader = LogReader(log, mapping, base, start_date=start_date)
    stats = LogStats(
        base, reader.present,
        fee_includes_interchange=mapping.fee_includes_interchange if mapping is not None else True,
        trouble={route: np.array(hours, dtype=np.int64) for route, hours in by_route.items()},
    )  # fmt: skip
    for batch in reader.batches():
        stats.add(batch)
    stats.finish(reader.discoveries)
    return reader, stats


def _value_counts(mask: pa.Array, *columns: pa.Array) -> dict[str, int]:
    """Counts of the joined values (``SEP``-separated, nulls as ``""``) of ``columns`` on the rows of ``mask``."""
    cols = [pc.filter(pc.fill_null(c.cast(pa.string()), ""), mask) for c in columns]
    if not len(cols[0]):
        return {}
    key = cols[0] if len(cols) == 1 else pc.binary_join_element_wise(*cols, SEP)
    counts = pc.value_counts(key)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def _month(day: int) -> int:
    date = EPOCH + dt.timedelta(days=day)
    return date.year * 12 + date.month


def _open_at(t: np.ndarray, hours, base: Scenario) -> np.ndarray:
    """Whether a route with these ``hours`` was open at each local time ``t`` (base clock)."""
    local = t + (hours.utc_offset_h - base.base_utc_offset_h) * 3600.0
    days = np.floor(local / DAY_S).astype(np.int64)
    tod = local - days * DAY_S
    is_open = (tod >= hhmm_to_s(hours.open)) & (tod < hhmm_to_s(hours.close))
    extra = set(base.extra_holidays)
    for d in np.unique(days).tolist():
        date = EPOCH + dt.timedelta(days=d)
        if hours.days == "all":
            ok = True
        elif hours.days == "weekdays":
            ok = date.weekday() < 5
        else:
            ok = date.weekday() < 5 and date not in us_fed_holidays(date.year) and date not in extra
        if not ok:
            is_open[days == d] = False
    return is_open
