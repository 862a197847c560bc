"""A clone of the repository can follow every reference it makes: no file points outside the repository.

The default scenario and the code that cite public figures cite docs/calibration.md, which ships with the
repository; a path into a neighbouring folder (``../shared/...``) or an absolute path on someone's machine
would send a reader nowhere.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".yaml",
    ".yml",
    ".toml",
    ".txt",
    ".cfg",
    ".ipynb",
    ".html",
    ".csv",
    ".json",
    "",
}
# The zoo's bundles are signed artefacts: their cards record, word for word, the scenario they were trained on
# (checksums and signature cover them), so their embedded source strings are history, not references to follow.
# The risk and pricing bundles were trained before docs/calibration.md existed; the router, retrained since, is
# held to the rule like every other file.
FROZEN = re.compile(r"^policies/zoo/(?:risk|pricing)/card\.json$")
OUTSIDE = re.compile(r"\.\./shared|CALIBRATION\.md|/work/(?:shared|main|wt-)")
MD_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _tracked() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [p for p in out.stdout.splitlines() if Path(p).suffix in TEXT_SUFFIXES and (ROOT / p).is_file()]


def test_no_file_refers_to_a_path_outside_the_repository():
    offenders = []
    for rel in _tracked():
        if FROZEN.match(rel):
            continue
        text = (ROOT / rel).read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) and rel != "tests/test_self_contained.py":
                offenders.append(f"{rel}:{lineno}: {line.strip()[:120]}")
    assert not offenders, "references outside the repository:\n" + "\n".join(offenders)


def test_every_relative_link_in_the_docs_lands_on_a_file_of_the_repository():
    broken = []
    for rel in _tracked():
        if not rel.endswith(".md"):
            continue
        page = ROOT / rel
        for target in MD_LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{rel}: {target}")
    assert not broken, "links that leave the repository or lead nowhere:\n" + "\n".join(broken)


def test_the_default_scenario_cites_the_calibration_page_that_ships_with_it():
    default = (ROOT / "envs/scenarios/default.yaml").read_text(encoding="utf-8")
    assert "docs/calibration.md" in default
    assert (ROOT / "docs/calibration.md").is_file()
