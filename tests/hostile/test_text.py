"""Hostile text: names, keys and card fields that look like terminal markup or HTML print as written.

Every case drives the real CLI (``payroute.experiments.cli.app``) as a user would: it ends in exit 0 with the text
shown literally, or exit 2 with one message that names the file and quotes the text literally - never a
traceback (rich's ``MarkupError``) and never a swallowed ``[red]...[/red]``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from payroute.experiments.cli import app

ZOO_ROUTER = Path(__file__).resolve().parents[2] / "policies" / "zoo" / "router"
NASTY = "[/x] [red]r[/red] [bold]b [link=http://x]l[/link] \\[esc]"
# the review of a route bundle without the stress suite: integrity, card, constraints in a few seconds
FAST_REVIEW = {
    "stress": {"enabled": False},
    "constraints": {
        "random_contexts": 100,
        "latency_decisions": 100,
        "latency_p99_ms": 60_000.0,  # a budget no machine misses: the gate, not the speed
        "simulated": {"volume_multiplier": 0.02},
    },
}


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def error_line(output: str, prefix: str = "error:") -> str:
    (line,) = [ln for ln in output.splitlines() if ln.startswith(prefix)]
    return line


def variant(tmp_path: Path, name: str = "v", **fields) -> Path:
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": "default", **fields}, allow_unicode=True))
    return path


def checksum(folder: Path) -> None:
    """Rewrite checksums.sha256 over the folder's files, as a careless re-packer would, and drop the signature
    those checksums no longer match (a re-packer without the key): the bundle is then unsigned."""
    (folder / "signature.json").unlink(missing_ok=True)
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted(folder.iterdir())
        if p.name != "checksums.sha256"
    ]
    (folder / "checksums.sha256").write_text("".join(lines))


# ---------------------------------------------------------------------- console: scenarios, keys, policies
def test_a_scenario_named_like_markup_simulates_and_prints_its_name_as_written(tmp_path):
    name = "[/x][red]r[/red][b]"  # short: a title wider than the 80-column test terminal wraps
    path = variant(tmp_path, name=name, description=NASTY, overrides={"volume_scale": 0.02})
    result = cli("simulate", str(path), "--days", "0.05")
    assert_no_traceback(result)
    assert result.exit_code == 0
    assert (
        f"simulated {name}" in result.output and f"{name} · seed 0" in result.output
    )  # the table title (and the progress line) carry the name unchanged
    assert "approval rate" in result.output


def test_a_markup_key_is_quoted_literally_in_the_one_error_line(tmp_path):
    path = variant(tmp_path, overrides={"[red]x[/red]": 1})
    result = cli("simulate", str(path))
    assert_no_traceback(result)
    assert result.exit_code == 2
    line = error_line(result.output)
    assert str(path) in line
    assert "[red]x[/red] = 1: unknown field" in result.output


_MARKUP_ALPHABET = st.sampled_from(list("[]/\\=#:@ abcdefxyz") + ["red", "bold", "link", "/x", "[/", "[/]"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.lists(_MARKUP_ALPHABET, min_size=1, max_size=12).map("".join).map(str.strip).filter(bool))
def test_any_text_with_markup_characters_in_a_key_round_trips_into_the_message(tmp_path, key):
    path = variant(tmp_path, overrides={key: 1})
    result = cli("simulate", str(path))
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert str(path) in error_line(result.output)
    assert any(ln.startswith(f"  {key} = 1: unknown field") for ln in result.output.splitlines())


def test_a_policy_named_like_markup_is_refused_quoting_the_name():
    result = cli("simulate", "default", "--policy", "[/x][red]p[/red]", "--days", "0.01")
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert "[/x][red]p[/red]" in error_line(result.output)


def test_an_unknown_scenario_named_like_markup_is_refused_quoting_the_name():
    result = cli("baselines", "[/x]nope[red]", "--seeds", "2")
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert "'[/x]nope[red]'" in error_line(result.output)


def test_a_review_config_key_named_like_markup_is_quoted_literally(tmp_path):
    cfg = tmp_path / "review.yaml"
    cfg.write_text(yaml.safe_dump({"stress": {"[red]seeds[/red]": 3, "[/x]": 1}}))
    result = cli("review", str(ZOO_ROUTER), "--config", str(cfg))
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert "stress.[red]seeds[/red] = 3: unknown field" in result.output
    assert "stress.[/x] = 1: unknown field" in result.output


# ---------------------------------------------------------------------- bundles: zip entries, card fields
def test_a_zip_entry_named_like_markup_is_refused_naming_the_entry(tmp_path):
    bundle = tmp_path / "router.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        for p in sorted(ZOO_ROUTER.iterdir()):
            zf.write(p, p.name)
        zf.writestr("[/x][red]e[/red]", b"extra")
    result = cli("review", str(bundle))
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert "[/x][red]e[/red]" in error_line(result.output, "could not review:")


@pytest.fixture(scope="module")
def hostile_card_review(tmp_path_factory):
    """A zoo router whose card's free-text fields hold markup and a script, reviewed with a report."""
    root = tmp_path_factory.mktemp("hostile_card")
    bundle = root / "router"
    shutil.copytree(ZOO_ROUTER, bundle)
    card = json.loads((bundle / "card.json").read_text())
    card["training"] = {"method": f"<script>alert(1)</script> {NASTY}"}
    card["git_commit"] = "<img src=x onerror=alert(2)>[/x]"
    card["scenario"]["name"] = "[/x]<b>s</b>"
    card["reward"]["definition"] = "</td></tr></table><script>alert(3)</script>"
    (bundle / "card.json").write_text(json.dumps(card))
    checksum(bundle)
    cfg = root / "review.yaml"
    cfg.write_text(yaml.safe_dump(FAST_REVIEW))
    report, summary = root / "report.html", root / "summary.json"
    result = cli("review", str(bundle), "--config", str(cfg), "--report", str(report), "--json", str(summary))
    return result, report.read_text(encoding="utf-8"), json.loads(summary.read_text())


def test_card_fields_with_markup_do_not_break_the_review(hostile_card_review):
    result, _html, summary = hostile_card_review
    assert_no_traceback(result)
    assert result.exit_code in (0, 1)  # reviewed: the verdict is the gates', not the text's
    assert "verdict:" in result.output
    assert summary["exit_code"] == result.exit_code


def test_the_html_report_escapes_every_card_field(hostile_card_review):
    _result, html, _summary = hostile_card_review
    assert "<script>" not in html and "<img src=x" not in html and "</td></tr></table><script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;[/x]" in html
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in html
    assert "[red]r[/red]" in html  # terminal markup is plain text in HTML too
