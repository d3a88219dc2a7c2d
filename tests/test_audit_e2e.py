"""The smoke audit with the real small models: offline, resumable after kill -9, reproducible."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from safealign.cli import main

pytestmark = pytest.mark.slow


def test_the_network_blocker_blocks(smoke_reference, tmp_path):
    log = tmp_path / "network.log"
    env = smoke_reference["env"] | {"SAFEALIGN_NETWORK_LOG": str(log)}
    done = subprocess.run([sys.executable, "-c",
                           "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9')"],
                          env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "network blocked" in done.stderr
    assert "connect" in log.read_text()  # the attempt was logged: the audit's empty log means something


def test_smoke_audit_end_to_end_offline(smoke_reference, capsys):
    out, text = smoke_reference["out"], smoke_reference["stdout"]
    network_log = smoke_reference["network_log"]
    assert not network_log.is_file(), network_log.read_text()  # no internet socket was opened
    for name in ("reward_model", "cost_model", "contrastive", "classifier"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["arm"] == name and (out / name / "predictions.jsonl").is_file()
    assert "curation ablation" in text and "shared failures" in text and "recommendation:" in text
    stage_lines = [line for line in text.splitlines() if line.startswith("[")]
    assert len(stage_lines) == 29 and stage_lines[0].startswith("[ 1/29 ") and stage_lines[-1].startswith("[29/29 ")
    assert "{'loss'" not in text and "'grad_norm'" not in text  # no raw Trainer dict on the console
    failures = json.loads((out / "shared_failures.json").read_text())
    assert failures["pairs"] == json.loads((out / "data" / "manifest.json").read_text())["counts"]["test"]
    policies = json.loads((out / "policies.json").read_text())
    assert set(policies["table"]) == {"base", "sft", "dpo", "sft_dpo", "safe_rlhf", "reward_only_rlhf"}
    assert policies["table"]["base"]["gain_over_base"]["combined_alignment_score"] == 0.0
    assert set(policies["ranking"]["strengths"]) == set(policies["table"]) and "Bradley–Terry strength" in text
    cards = json.loads((out / "judges" / "judges.json").read_text())["cards"]
    assert cards["harm"]["n"] == 1540 and cards["refusal"]["n"] == 450 and cards["helpfulness"]["n"] == 894
    assert cards["helpfulness"]["absolute"]["n"] == 100 and cards["harm"]["cross_source"][0]["n"] == 4000
    assert all(policies["table"][n]["helpfulness_win_rate_vs_base"]["n"] > 0 for n in policies["table"] if n != "base")
    harm = policies["judges"]["harm"]
    assert harm["judge"] == "gptfuzz-minilm" and not harm["training_signal"]
    log = (out / "reward_only_rlhf" / "train_log.jsonl").read_text().splitlines()
    lambdas = [json.loads(l)["lambda"] for l in log]
    assert lambdas and set(lambdas) == {0.0}
    report = json.loads((out / "report.json").read_text())
    assert report["failures"] == {} and len(report["recommendation"]["text"]) >= 4
    assert {"detectors", "curation_ablation", "policies", "policy_pairs"} == set(report["significance"])
    assert report["reward_cost_correlation"]["test_responses"]["n"] > 0  # how far R and C are one signal
    harmful = report["policies"]["metrics"]["base"]["held_out_harmful_response_rate"]
    assert harmful["corrected"]["n"] == harmful["n"]  # every judged rate carries its correction
    assert all(0 <= t["p_value"] <= t["p_holm"] <= 1 for tests in report["significance"].values() for t in tests)
    assert set(report["safe_rlhf_curves"]) == {"safe_rlhf", "reward_only_rlhf"}
    assert report["timing"]["wall_seconds"] > 0 and "train_reward_model" in report["timing"]["stages"]
    html = (out / "report.html").read_text()
    for heading in ("Detection arms", "Curation ablation", "Policies", "Safe RLHF", "Paired significance tests",
                    "Shared failures", "Judges and their validity cards", "Reproducibility"):
        assert heading in html
    assert html.count("data:image/png;base64,") >= 6
    assert (out / "figures" / "tradeoff.png").is_file() and "Harmful responses against over-refusal" in html
    assert report["policies"]["pareto"] and set(report["policies"]["pareto"]) <= set(policies["table"])
    assert main(["audit", "--profile", "smoke", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ran"] == []  # everything skipped on rerun


def _comparable(out):
    """report.json less what differs between two runs by nature (paths, timing, machine)."""
    report = json.loads((out / "report.json").read_text())
    report.pop("run")
    report.pop("timing")
    return json.loads(json.dumps(report).replace(str(out), "<run>"))


def _kill_when(command, env, condition, log, timeout=900) -> bool:
    with open(log, "w") as stderr:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.time() + timeout
        while proc.poll() is None and time.time() < deadline:
            if condition():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.05)
        proc.kill()
    return False


def _stages(out) -> dict:
    try:
        return json.loads((out / "stages.json").read_text())
    except FileNotFoundError:
        return {}


def test_kill_9_at_several_points_then_a_rerun_gives_the_same_report(smoke_reference, tmp_path):
    env, out = smoke_reference["env"], tmp_path / "run"
    command = [sys.executable, "-m", "safealign.cli", "audit", "--profile", "smoke", "--out", str(out)]
    seen = {}

    def after(stage, delay=0.0):
        def condition():
            if stage in _stages(out):
                seen.setdefault(stage, time.time())
                return time.time() - seen[stage] >= delay
            return False
        return condition

    kill_points = {
        "data prepared, labelling": after("prepare"),
        # (a finished run removes its checkpoints: should the poll miss them, kill just after the stage)
        "mid-training (reward model checkpoint saved)": lambda: (any((out / "reward_model" / "checkpoints").glob(
            "checkpoint-*")) or "train_reward_model" in _stages(out)),
        "mid-generation (sft eval)": after("train_sft", delay=2.0),
        "mid-training (Safe RLHF step)": lambda: (out / "safe_rlhf" / "train_log.jsonl").is_file(),
        "writing the report": after("policy_comparison"),
    }
    for point, condition in kill_points.items():
        log = tmp_path / "stderr.log"
        assert _kill_when(command, env, condition, log), (f"the audit finished before the kill point: {point}\n"
                                                         + log.read_text()[-3000:])
        for path in out.rglob("*.json"):  # every file is whole: written to a temp file, then renamed
            json.loads(path.read_text())
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _comparable(out) == _comparable(smoke_reference["out"])
    for name in ("reward_model", "cost_model", "classifier", "sft", "dpo", "safe_rlhf"):
        ours = (out / name / "metrics.json").read_text().replace(str(out), "<run>")
        assert ours == (smoke_reference["out"] / name / "metrics.json").read_text().replace(
            str(smoke_reference["out"]), "<run>"), name


def test_the_trade_off_plot_is_drawn_in_the_report_in_chromium(smoke_reference, chromium, tmp_path):
    from PIL import Image

    from conftest import run_chromium

    out = smoke_reference["out"]
    dom = run_chromium(chromium, out / "report.html", "--dump-dom")
    assert "alt=\"Harmful responses against over-refusal; Pareto front: " in dom
    shot = tmp_path / "report.png"
    run_chromium(chromium, out / "report.html", "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}")
    low, high = Image.open(shot).convert("L").getextrema()
    assert high - low > 100
    plot = Image.open(out / "figures" / "tradeoff.png").convert("L")
    assert plot.size[0] > 600 and sum(plot.histogram()[:128]) > 3000  # axes, points and whiskers drawn


def test_labels_of_the_runs_own_responses_make_a_rerun_read_corrected_rates(smoke_reference, tmp_path):
    """`safealign judges check --of-run`, then a rerun: the judges stay, every policy eval runs again with the
    reviewer's card, and the recommendation reads corrected rates. The labels here are the judge's own verdicts
    with three flipped: a test of the mechanism, not a measurement."""
    import csv

    env, out = smoke_reference["env"], tmp_path / "run"
    subprocess.run(["cp", "-al", str(smoke_reference["out"]), str(out)], check=True)  # every write is a rename
    rows = [json.loads(line) for path in sorted(out.glob("*/generations.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["set"] in ("advbench", "harmful") and r["response"].strip()]
    labels = tmp_path / "ours.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "response", "label"])
        writer.writerows([r["prompt"], r["response"], int(bool(r["harmful"]) != (i in (0, 1, 2)))]
                         for i, r in enumerate(rows))
    check = subprocess.run([sys.executable, "-m", "safealign.cli", "judges", "check", "harm=offline", "--labels",
                            str(labels), "--out", str(out / "judges"), "--of-run", str(out), "--json"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-3000:]
    assert json.loads(check.stdout)["like_judged"]
    rerun = subprocess.run([sys.executable, "-m", "safealign.cli", "audit", "--profile", "smoke", "--out", str(out)],
                           env=env, capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    lines = rerun.stdout.splitlines()
    assert any("judges    skipped" in line for line in lines)
    for name in ("base", "sft", "dpo", "sft_dpo", "safe_rlhf", "reward_only_rlhf"):  # every policy judged again
        assert any("eval      ran" in line and f"/{name}/metrics.json" in line for line in lines), name
    text = json.loads((out / "report.json").read_text())["recommendation"]["text"]
    assert any(line.startswith("Rates here are corrected") for line in text), text
    reference = json.loads((smoke_reference["out"] / "report.json").read_text())["recommendation"]["text"]
    assert any(line.startswith("Rates here are raw") for line in reference)  # the reference run is untouched
