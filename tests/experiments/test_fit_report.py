"""The fit report's HTML page: every block with its plots and distances, the verdicts first, the flagged values."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import re

import pytest
from PIL import Image
from typer.testing import CliRunner

from payroute.envs.calibration import calibrate
from payroute.envs.calibration.example_log import EXAMPLE_DIR
from payroute.envs.calibration.report import fit_comparison
from payroute.envs.scenarios import load_scenario
from payroute.experiments.cli import app
from payroute.experiments.fit_report import render_fit_report

BLOCKS = ("arrivals", "mixes", "amounts", "approval", "latency", "fees", "fraud", "discovery")
LOG, MAPPING = EXAMPLE_DIR / "transactions.csv", EXAMPLE_DIR / "mapping.yaml"


@pytest.fixture(scope="module")
def fitted():
    return calibrate(LOG, MAPPING, name="example_fit")


@pytest.fixture(scope="module")
def page(fitted):
    report, simulated = fitted.compare(days=2, seed=3)
    return report, render_fit_report(fitted, report, simulated)


def _block_verdict(page: str, block: str) -> str:
    found = re.search(rf"<h2 id='block-{block}'>[^<]*<span class='st (\w+)'>", page)
    assert found, f"no section for block {block}"
    return found.group(1)


def _images(page: str) -> list[Image.Image]:
    out = []
    for data in re.findall(r"src='data:image/png;base64,([^']+)'", page):
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()  # decodes the whole PNG: a truncated or corrupt one raises
        out.append(image)
    return out


def test_the_page_has_every_block_with_its_verdict_and_plots(page):
    report, text = page
    assert set(report["blocks"]) == set(BLOCKS)
    for block in BLOCKS:
        assert _block_verdict(text, block) == report["blocks"][block]["verdict"]
    images = _images(text)
    assert len(images) == len(BLOCKS)  # the example log has rows for every block, a few chargebacks included
    assert all(im.format == "PNG" and im.size[0] > 200 and im.size[1] > 100 for im in images)


def test_the_verdict_summary_comes_first_and_the_flagged_values_are_listed(fitted, page):
    report, text = page
    verdict = text.index("id='verdict'")
    assert verdict < text.index("id='summary'") < text.index("id='block-arrivals'")
    assert report["verdict"].upper() in text[verdict : verdict + 80]
    flagged = text[text.index("id='flagged'") : text.index("id='block-arrivals'")]
    assert fitted.flagged  # the example leaves some values to the base
    for path in fitted.flagged:
        assert html.escape(path) in flagged


def test_a_wrong_world_warns_in_the_block_that_is_wrong(fitted):
    data = fitted.scenario.model_dump(mode="json")
    data["routes"]["card_gamma"]["approval"]["by_segment"]["consumer"] = 0.5
    wrong = load_scenario(fitted.scenario, data)
    report, simulated = fit_comparison(wrong, fitted.stats, days=2, seed=3)
    text = render_fit_report(dataclasses.replace(fitted, scenario=wrong), report, simulated)
    assert _block_verdict(text, "approval") == "warn"
    assert _block_verdict(text, "mixes") == "pass" and _block_verdict(text, "amounts") == "pass"
    top = text[text.index("id='verdict'") : text.index("id='summary'")]
    assert "WARN" in top and "approval" in top


def test_calibrate_writes_html_for_an_html_report_and_json_otherwise(tmp_path):
    runner = CliRunner()
    args = ["calibrate", str(LOG), "--mapping", str(MAPPING), "--report-days", "1"]
    res = runner.invoke(
        app, [*args, "--out", str(tmp_path / "a.yaml"), "--report", str(tmp_path / "fit.html")]
    )
    assert res.exit_code == 0, res.output
    text = (tmp_path / "fit.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and all(f"id='block-{b}'" in text for b in BLOCKS)
    assert (tmp_path / "a.yaml").is_file()
    res = runner.invoke(
        app, [*args, "--out", str(tmp_path / "b.yaml"), "--report", str(tmp_path / "fit.json")]
    )
    assert res.exit_code == 0, res.output
    assert set(json.loads((tmp_path / "fit.json").read_text())["blocks"]) == set(BLOCKS)


def test_each_block_s_plot_is_a_figure_a_notebook_can_show(fitted):
    from matplotlib.figure import Figure

    from payroute.errors import PayrouteError
    from payroute.experiments.fit_report import fit_figure

    _, simulated = fitted.compare(days=1, seed=3)
    for block in BLOCKS:
        assert isinstance(fit_figure(fitted, simulated, block), Figure), block
    with pytest.raises(PayrouteError, match="approvals"):
        fit_figure(fitted, simulated, "approvals")
