"""``python -m payroute.policies.benchmark [--out PATH] [--workers N]``: regenerate docs/benchmark.md."""

import argparse
from pathlib import Path

from payroute.policies.benchmark.page import write_page

parser = argparse.ArgumentParser(prog="python -m payroute.policies.benchmark", description=__doc__)
parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "docs" / "benchmark.md")
parser.add_argument("--workers", type=int, default=1)
args = parser.parse_args()
print(
    write_page(args.out, args.workers, lambda name, done, total: print(f"{name}: {done}/{total}", flush=True))
)
