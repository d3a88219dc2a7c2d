"""Every figure in the README and docs/ is rendered from benchmarks/results/: a page that disagrees fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _render_docs():
    spec = importlib.util.spec_from_file_location("render_docs", REPO / "benchmarks" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_and_docs_agree_with_their_results_files():
    assert _render_docs().main(["--check"]) == 0, "run python benchmarks/render_docs.py"


def test_a_stale_figure_is_caught(tmp_path):
    render = _render_docs()
    page = (REPO / "docs" / "judges.md").read_text()
    stale = page.replace("| refusal | refusal-rules |", "| refusal | refusal-rules (typed by hand) |", 1)
    assert stale != page and render.render(stale) == page  # rendering restores the results file's table


def test_the_readme_starts_like_a_tool():
    lines = (REPO / "README.md").read_text().splitlines()
    assert lines[0] == "# SafeAlign" and "make audit" in "\n".join(lines[:10]) and "make test" in "\n".join(lines[:10])
    assert len(lines) <= 160


def test_recorded_wall_times_round_to_the_second_without_a_60():
    spec = importlib.util.spec_from_file_location("record_audit", REPO / "benchmarks" / "record_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.minutes(119.59) == "2:00" and module.minutes(832.4) == "13:52" and module.minutes(59.4) == "0:59"
