"""Make the shipped example of a flat log: a bank-style CSV export simulated from a shipped scenario.

``python -m payroute.envs.calibration.example_log OUT_FOLDER [--scenario default] [--days 7] [--volume 0.005]``
simulates the scenario with the cheapest router under 30% exploration (every route gets traffic), then writes
``transactions.csv`` the way a PSP's warehouse might export it: ISO 8601 UTC timestamps, amounts and fees in
dollars, card schemes and customer types in its own codes, ISO 8583 response codes (DE 39), the issuer's
country, fraud and chargeback labels with their dates. ``mapping.yaml`` beside it (shipped, written by hand)
tells ``payroute calibrate`` how to read it. The same arguments give the same file, byte for byte.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from payroute.envs.baselines import bound_policies
from payroute.envs.baselines.exploration import EpsilonGreedyRoute
from payroute.envs.scenarios import load_scenario
from payroute.envs.world import EventLog, PaymentWorld
from payroute.files import atomic_write_text

EXAMPLE_DIR = Path(__file__).parent / "example"

INSTRUMENT_CODES = {"card_credit": "CREDIT", "card_debit": "DEBIT", "bank_account": "ACCOUNT"}
SCHEME_CODES = {"visa": "VISA", "mastercard": "MC", "amex": "AMEX", "": ""}
CUSTOMER_CODES = {"consumer": "C", "small_business": "SB", "enterprise": "ENT"}
MCC = {"retail": "5311", "digital_goods": "5815", "travel": "4722", "marketplace": "5399"}
SPEED_CODES = {"standard": "STD", "same_day": "SDA", "instant": "INST", "": ""}
ACQUIRER_CODES = {
    "card_alpha": "ACQ-ALPHA", "card_beta": "ACQ-BETA", "card_gamma": "ACQ-GAMMA", "ach_standard": "ACH-NEXTDAY",
    "ach_same_day": "ACH-SAMEDAY", "fedwire": "FEDWIRE", "rtp": "RTP", "fednow": "FEDNOW",
    "swift_correspondent": "SWIFT-CORR", "digital_remit": "REMIT-DIGITAL", "": "",
}  # fmt: skip
# ISO 8583 DE 39 response codes (00 approved, 05 do not honour, 91 issuer or switch inoperative) and the
# export's own codes for what never reached an issuer (blocked by risk, abandoned, expired)
RESPONSE_CODES = {
    "settled": "00",
    "declined": "05",
    "failed": "91",
    "blocked": "R1",
    "abandoned": "A1",
    "expired": "X1",
}
COLUMNS = (
    "txn_time", "amount", "currency", "pan_type", "scheme", "issuer_country", "customer_type", "mcc",
    "cross_border", "speed", "acquirer", "resp_code", "fee", "latency_s", "settled_at", "fraud_flag",
    "fraud_type", "chargeback_date", "return_date",
)  # fmt: skip


def _stamp(epoch: dt.datetime, seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    return (epoch + dt.timedelta(seconds=round(seconds, 3))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def make_example(scenario: str = "default", days: float = 7.0, volume: float = 0.005, seed: int = 0) -> str:
    """The example log's CSV text."""
    sc = load_scenario(scenario, {"volume_scale": volume})
    policies = bound_policies(risk="threshold")
    policies["route"] = EpsilonGreedyRoute(bound_policies(route="cheapest")["route"], 0.3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.parquet"
        log = EventLog(path)
        PaymentWorld(sc, seed=seed, policies=policies, days=days, log=log, drain=True).run()
        log.close()
        rows = pq.read_table(path).to_pylist()
    found = {r["tx_id"]: r for r in rows if r["record"] == "post_settlement"}
    # the simulation's clock starts at midnight of start_date on its base time zone
    epoch = dt.datetime.combine(sc.start_date, dt.time()) - dt.timedelta(hours=sc.base_utc_offset_h)
    lines = [",".join(COLUMNS)]
    txs = sorted(
        (r for r in rows if r["record"] == "transaction"), key=lambda r: (r["t_arrival"], r["tx_id"])
    )
    for r in txs:
        late = found.get(r["tx_id"])
        kind = late["kind"] if late else ""
        state = r["state"]
        fee = r["route_cost_cents"] if state == "settled" else None
        answered = state in ("settled", "declined", "failed") and r["route"]
        values = (
            _stamp(epoch, r["t_arrival"]),
            f"{r['amount_cents'] / 100:.2f}",
            r["currency"],
            INSTRUMENT_CODES[r["instrument"]],
            SCHEME_CODES[r["network"]],
            ("GB" if r["foreign_card"] else "US") if r["instrument"] != "bank_account" else "",
            CUSTOMER_CODES[r["segment"]],
            MCC[r["merchant_category"]],
            "Y" if r["cross_border"] else "N",
            SPEED_CODES[r["urgency"]],
            ACQUIRER_CODES[r["route"]],
            RESPONSE_CODES[state],
            "" if fee is None else f"{fee / 100:.2f}",
            f"{r['latency_s']:.3f}" if answered else "",
            _stamp(epoch, r["t_settled"]) if state == "settled" else "",
            "Y" if r["is_fraud"] else "N",
            r["fraud_pattern"],
            _stamp(epoch, late["t"]) if kind == "chargeback" else "",
            _stamp(epoch, late["t"]) if kind in ("return", "reimbursement") else "",
        )
        lines.append(",".join(values))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=EXAMPLE_DIR)
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--volume", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    text = make_example(args.scenario, args.days, args.volume, args.seed)
    atomic_write_text(args.out / "transactions.csv", text)
    print(
        f"wrote {args.out / 'transactions.csv'} ({len(text.splitlines()) - 1} rows, {len(text) / 1e6:.2f} MB)"
    )


if __name__ == "__main__":
    main()
