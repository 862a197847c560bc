"""Benchmark: the review report in a real headless browser: every plot decodes, and a screenshot to look at.

Scenario: the zoo router (policies/zoo/router) is reviewed at a small scale (``--seeds`` stress seeds of every
stress scenario at ``--volume`` of each scenario's own volume, a logged day of the cheapest route with 10%
exploration for off-policy evaluation, the constraint checks with small samples), and its HTML report is written.
Or ``--report FILE`` takes a report already written (e.g. by ``payroute review ... --report``). Then Debian's
``chromium`` (``apt-get install chromium``) opens the page headless twice:

1. a copy of the page with a short script that, once loaded, records for every ``<img>`` whether it decoded
   (``complete`` and a natural width > 0) and the page's height, read back with ``--dump-dom``;
2. the page itself, screenshotted at 1200 px wide and its full height (``--screenshot``).

It prints the report's size, the images found and decoded, the page height and the screenshot's path, then a JSON
line; the exit code is 1 when an image did not decode. Without chromium it says so and exits 0 (skipped).

Run: ``python benchmarks/review_report.py [--out DIR] [--seeds 2] [--volume 0.02] [--report FILE]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO_ROUTER = Path(__file__).resolve().parents[1] / "policies" / "zoo" / "router"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH = 1200
PROBE = """
<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const out = document.createElement('pre');
  out.id = 'payroute-probe';
  out.textContent = JSON.stringify({images: imgs.length, bad: bad,
                                    height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>
"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def write_report(out: Path, seeds: int, volume: float) -> Path:
    """A small real review of the zoo router, its report at ``out/report.html``."""
    from payroute.experiments.simulate import run_simulation
    from payroute.policies.review import ReviewConfig, review_bundle
    from payroute.policies.review.report import write_html

    log = out / "explore.parquet"
    run_simulation(
        "default", route="cheapest", seed=7, log_path=log, overrides={"volume_scale": 0.02}, explore=0.1
    )
    config = ReviewConfig.model_validate(
        {
            "stress": {"seeds": seeds, "volume_multiplier": volume, "workers": 2},
            "constraints": {
                "random_contexts": 300,
                "latency_decisions": 300,
                "simulated": {"volume_multiplier": 0.02},
            },
        }
    )
    result = review_bundle(ZOO_ROUTER, logs=log, config=config)
    report = out / "report.html"
    write_html(result, report)
    return report


def _browser(browser: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run(
        [browser, *flags, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def probe(browser: str, report: Path, work: Path) -> dict:
    """Images found and decoded, and the page height, as the browser saw them."""
    page = report.read_text(encoding="utf-8")
    probed = work / "probe.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
    res = _browser(browser, f"--window-size={WIDTH},2000", "--dump-dom", probed.as_uri())
    found = re.search(r"<pre id=\"payroute-probe\">(.*?)</pre>", res.stdout, re.S)
    if not found:
        raise RuntimeError(f"the browser gave no probe result: {(res.stderr or res.stdout)[-500:]}")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(browser: str, report: Path, png: Path, height: int) -> None:
    res = _browser(browser, f"--window-size={WIDTH},{height}", f"--screenshot={png}", report.as_uri())
    if not png.is_file():
        raise RuntimeError(f"no screenshot written: {(res.stderr or res.stdout)[-500:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", type=Path, default=None, help="folder for report.html and report.png (default: temp)"
    )
    ap.add_argument("--report", type=Path, default=None, help="screenshot this report instead of reviewing")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--volume", type=float, default=0.02)
    args = ap.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("skipped: no headless browser found (install Debian's chromium: apt-get install chromium)")
        print(json.dumps({"benchmark": "review_report", "skipped": "no chromium"}))
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="payroute-report-"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = args.report or write_report(out, args.seeds, args.volume)
    review_s = time.perf_counter() - start
    seen = probe(browser, report, out)
    png = out / "report.png"
    screenshot(browser, report, png, max(800, min(int(seen["height"]) + 40, 30_000)))
    record = {
        "benchmark": "review_report",
        "report": str(report),
        "report_bytes": report.stat().st_size,
        "images": seen["images"],
        "images_not_decoded": seen["bad"],
        "page_height_px": seen["height"],
        "screenshot": str(png),
        "review_s": round(review_s, 1),
        "browser": browser,
        "passed": not seen["bad"] and seen["images"] > 0,
    }
    print(f"report {report} ({record['report_bytes'] / 1e6:.2f} MB), reviewed in {review_s:.0f} s")
    print(
        f"{seen['images']} images, {len(seen['bad'])} not decoded {seen['bad'] or ''}; page {seen['height']} px"
    )
    print(f"screenshot {png}")
    print(json.dumps(record))
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
