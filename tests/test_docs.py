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


def _record_audit():
    spec = importlib.util.spec_from_file_location("record_audit", REPO / "benchmarks" / "record_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_new_audit_record_keeps_the_earlier_times_and_their_machines():
    def record(commit, machine, wall, earlier=None):
        return {"commit": commit, "machine": machine, "timing": {"make_audit_wall": wall, "audit_wall": wall}} | (
            {"earlier": earlier} if earlier is not None else {})

    fast, slow = {"cpu": "A", "cores": 2, "bf16_units": ["amx_bf16"]}, {"cpu": "B", "cores": 2, "bf16_units": []}
    with_earlier = _record_audit().with_earlier
    first = with_earlier(record("c1", None, "13:52"), None)
    assert "earlier" not in first
    second = with_earlier(record("c2", fast, "10:26"), first)
    assert second["earlier"] == [{"commit": "c1", "machine": None, "make_audit_wall": "13:52", "audit_wall": "13:52"}]
    third = with_earlier(record("c2", slow, "12:00"), second)  # the same commit on another machine: both kept
    assert [(e["commit"], e["machine"]) for e in third["earlier"]] == [("c2", fast), ("c1", None)]
    again = with_earlier(record("c2", slow, "11:59"), third)  # re-recorded on the same machine: replaced
    assert [(e["commit"], e["machine"]) for e in again["earlier"]] == [("c2", fast), ("c1", None)]
    many = record("c0", None, "1:00")
    for i in range(8):
        many = with_earlier(record(f"c{i + 1}", None, "1:00"), many)
    assert len(many["earlier"]) == 5 and many["earlier"][0]["commit"] == "c7"
    assert "13:52 (13:52) at c1 on a machine whose CPU was not recorded" in _render_docs()._earlier(second)


def test_recorded_wall_times_round_to_the_second_without_a_60():
    module = _record_audit()
    assert module.minutes(119.59) == "2:00" and module.minutes(832.4) == "13:52" and module.minutes(59.4) == "0:59"
