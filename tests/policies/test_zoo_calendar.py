"""The zoo router has no calendar artefact: an ordinary Friday is routed as an ordinary Thursday.

A router trained when every training outage fell on Friday 14:00 can learn "no card_alpha on Fridays", outage or
not. The reference router is trained with drawn incident days and hours (experiments/router_ppo.yaml,
train_timings). On each seed, its share of payments sent to card_alpha on Thursday 2026-03-05 and on Friday
2026-03-06 agree: the median gap over six seeds is within a few points. (A single day can differ far more for a
reason that is not the calendar: on a day when card_alpha's approval has drifted low the router keeps off it, as
it should; the median is not moved by such a day, and a Friday rule would move every seed.)
"""

from __future__ import annotations

import numpy as np
import pytest

from payroute.experiments import whatif
from payroute.policies import zoo

SEEDS = range(6)
THURSDAY, FRIDAY = "2026-03-05", "2026-03-06"


def _card_alpha_shares(start_date: str) -> np.ndarray:
    shares = []
    for seed in SEEDS:
        world = whatif.run(
            zoo("router"), "default", {"start_date": start_date, "volume_scale": 0.03}, seed=seed
        )
        counts = world.books.route_counts
        shares.append(counts.get("card_alpha", 0) / sum(counts.values()))
    return np.array(shares)


@pytest.mark.slow(minutes=1)
def test_the_zoo_router_sends_as_much_to_card_alpha_on_an_ordinary_friday_as_on_a_thursday():
    thursday, friday = _card_alpha_shares(THURSDAY), _card_alpha_shares(FRIDAY)
    assert np.median(thursday) > 0.2 and np.median(friday) > 0.2, (thursday, friday)  # it uses card_alpha
    assert np.median(np.abs(friday - thursday)) <= 0.05, (thursday, friday)
